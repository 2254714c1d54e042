//! The downward API's labels file, as the kubelet writes it: one `key="value"` per line, keys
//! sorted, each value quoted the way Go's `strconv.Quote` does (`\"`, `\\`, `\n`, `\t`, `\xNN`,
//! `\uNNNN`, …), no newline after the last line.
//!
//! Read strictly: a line that is not exactly that, a repeated key or a value that is not UTF-8
//! makes the whole file malformed, so the caller keeps the labels it had instead of acting on a
//! half-understood file.

use std::collections::BTreeMap;

/// Why a labels file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    #[error("the labels file is not UTF-8")]
    NotUtf8,
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("line {line}: label `{key}` is given twice")]
    Repeated { line: usize, key: String },
}

/// Reads a labels file. An empty file is a pod without labels.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, LabelsError> {
    let mut labels = BTreeMap::new();
    for (i, line) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let bad = |reason| LabelsError::Line {
            line: line_no,
            reason,
        };
        // The kubelet writes no blank lines; a trailing newline (an editor's) is harmless.
        if line.is_empty() {
            continue;
        }
        let (key, quoted) = line.split_once('=').ok_or(bad("expected key=\"value\""))?;
        if key.is_empty() {
            return Err(bad("empty label key"));
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        {
            return Err(bad(
                "a label key may hold letters, digits, `.`, `_`, `-` and `/`",
            ));
        }
        let value = unquote(quoted).map_err(bad)?;
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(LabelsError::Repeated {
                line: line_no,
                key: key.to_owned(),
            });
        }
    }
    Ok(labels)
}

/// Undoes Go's `strconv.Quote`: a double-quoted string with Go's escapes, and nothing after the
/// closing quote.
fn unquote(quoted: &str) -> Result<String, &'static str> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .ok_or("the value must be in double quotes")?;
    let mut bytes = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {}
            '"' => return Err("an unescaped `\"` inside the value"),
            c if c.is_control() => return Err("a control character inside the value"),
            c => {
                let mut buf = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        }
        let escaped = chars.next().ok_or("a `\\` at the end of the value")?;
        let simple = match escaped {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(b) = simple {
            bytes.push(b);
            continue;
        }
        match escaped {
            // One byte: `\xNN`, or octal `\NNN`.
            'x' => bytes.push(number(&mut chars, 2, 16).and_then(byte)?),
            '0'..='7' => {
                let rest = number(&mut chars, 2, 8)?;
                let first = escaped.to_digit(8).unwrap_or(0);
                bytes.push(byte(first * 64 + rest)?);
            }
            // One character: `\uNNNN` or `\UNNNNNNNN`.
            'u' | 'U' => {
                let digits = if escaped == 'u' { 4 } else { 8 };
                let c = char::from_u32(number(&mut chars, digits, 16)?)
                    .ok_or("an escape of something that is not a character")?;
                let mut buf = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err("an unknown escape inside the value"),
        }
    }
    String::from_utf8(bytes).map_err(|_| "the value is not UTF-8")
}

/// Reads exactly `digits` digits of `radix`.
fn number(chars: &mut std::str::Chars<'_>, digits: usize, radix: u32) -> Result<u32, &'static str> {
    let mut n: u32 = 0;
    for _ in 0..digits {
        let d = chars
            .next()
            .and_then(|c| c.to_digit(radix))
            .ok_or("a malformed escape inside the value")?;
        n = n * radix + d;
    }
    Ok(n)
}

fn byte(n: u32) -> Result<u8, &'static str> {
    u8::try_from(n).map_err(|_| "an escape larger than a byte")
}

#[cfg(test)]
mod tests;
