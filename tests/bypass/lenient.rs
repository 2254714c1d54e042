//! How the most lenient server behind the guard could read a request target.
//!
//! The guard is only as strict as the server behind it is lenient: a target that the guard
//! checked as `/latest/meta-data/x` but that some server reads as `/latest/user-data` is a bypass.
//! This module models the sloppiest readings real servers have been seen to make, each one
//! separately and all together: percent-escapes decoded over and over (`%252e` → `.`), `%uXXXX`
//! escapes, overlong UTF-8 and full-width forms taken for ASCII, `\` taken for `/`, `;`
//! parameters dropped, a query or fragment cut off (or not), trailing dots and spaces of a
//! segment ignored (as Windows does), dot segments resolved, ASCII case ignored. Tests use it as
//! an independent oracle: if any reading of a forwarded target names something the policy
//! denies, the guard forwarded too much.

/// Every way of reading `target` that this model knows, as lower-cased segments with dot
/// segments resolved.
pub fn readings(target: &str) -> Vec<Vec<String>> {
    let decoded = decode_fully(target.as_bytes());
    let mut out = Vec::new();
    for text in [target.to_owned(), decoded] {
        for cut_query in [false, true] {
            for trim in [false, true] {
                let reading = read(&text, cut_query, trim);
                if !out.contains(&reading) {
                    out.push(reading);
                }
            }
        }
    }
    out
}

fn read(text: &str, cut_query: bool, trim: bool) -> Vec<String> {
    let mut text = text.replace('\\', "/");
    if cut_query {
        if let Some(end) = text.find(['?', '#']) {
            text.truncate(end);
        }
    }
    let mut segments: Vec<String> = Vec::new();
    for raw in text.split('/') {
        // `;` starts path parameters (Tomcat, Jetty and others drop them).
        let segment = raw.split(';').next().unwrap_or("");
        let segment = if trim { trim_windows(segment) } else { segment };
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.to_ascii_lowercase()),
        }
    }
    segments
}

/// Windows ignores trailing dots and spaces of a name, and some servers trim spaces around it;
/// `.` and `..` keep their meaning once the spaces are gone.
fn trim_windows(segment: &str) -> &str {
    let spaced = segment.trim_matches(' ');
    if spaced == "." || spaced == ".." {
        return spaced;
    }
    spaced.trim_end_matches(['.', ' '])
}

/// Decodes until nothing changes (at most a few rounds: each round only shortens the text).
pub fn decode_fully(bytes: &[u8]) -> String {
    let mut current = bytes.to_vec();
    for _ in 0..8 {
        let next = decode_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    normalise_unicode(&current)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// One round of `%XX` and `%uXXXX` decoding; anything malformed is kept as it is.
pub fn decode_once(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
            // IIS's `%u002e`.
            if matches!(bytes.get(i + 1), Some(b'u' | b'U')) {
                let digits: Option<Vec<u8>> = (2..6)
                    .map(|k| bytes.get(i + k).copied().and_then(hex))
                    .collect();
                if let Some(d) = digits {
                    let code = d.iter().fold(0u32, |acc, &x| acc * 16 + u32::from(x));
                    let mut buf = [0u8; 4];
                    let c = char::from_u32(code).unwrap_or('\u{fffd}');
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Overlong UTF-8 (`C0 AE` for `.`) and full-width forms (`．` for `.`) as a careless decoder or a
/// compatibility normalisation would read them: as the ASCII character they stand for.
fn normalise_unicode(bytes: &[u8]) -> String {
    let mut ascii = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = |k: usize| bytes.get(i + k).copied().unwrap_or(0);
        if (b == 0xC0 || b == 0xC1) && next(1) & 0xC0 == 0x80 {
            ascii.push(((b & 0x1F) << 6) | (next(1) & 0x3F));
            i += 2;
        } else if b == 0xE0 && next(1) & 0xE0 == 0x80 && next(2) & 0xC0 == 0x80 {
            ascii.push(((next(1) & 0x1F) << 6) | (next(2) & 0x3F));
            i += 3;
        } else {
            ascii.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&ascii)
        .chars()
        .map(|c| match u32::from(c) {
            // Full-width ASCII variants, U+FF01..U+FF5E.
            code @ 0xFF01..=0xFF5E => char::from_u32(code - 0xFF01 + 0x21).unwrap_or(c),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads_as(target: &str, path: &str) -> bool {
        let want: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        readings(target).contains(&want)
    }

    #[test]
    fn the_model_sees_through_the_classic_tricks() {
        let ud = "/latest/user-data";
        assert!(reads_as("/latest/meta-data/../user-data", ud));
        assert!(reads_as("/latest/meta-data/%2e%2E/user-data", ud));
        assert!(reads_as("/latest/meta-data/%252e%252e/user-data", ud));
        assert!(reads_as("/latest/meta-data/%c0%ae%c0%ae/user-data", ud));
        assert!(reads_as("/latest/meta-data/%u002e%u002e/user-data", ud));
        assert!(reads_as("/latest/meta-data/\u{ff0e}\u{ff0e}/user-data", ud));
        assert!(reads_as("/latest/meta-data%2f..%2fuser-data", ud));
        assert!(reads_as("/latest/meta-data\\..\\user-data", ud));
        assert!(reads_as("/latest/meta-data/..;/user-data", ud));
        assert!(reads_as("/latest/meta-data/..%20/user-data", ud));
        assert!(reads_as("/LATEST/User-Data", ud));
        assert!(reads_as("/latest/user-data?x", ud));
        assert!(reads_as(
            "/latest/meta-data/iam./info",
            "/latest/meta-data/iam/info"
        ));
        assert!(!reads_as("/latest/meta-data/instance-id", ud));
    }
}
