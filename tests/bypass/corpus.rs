//! The bypass corpus: raw requests a pod allowed only `/latest/meta-data/**` minus
//! `/latest/meta-data/iam/**` might send to reach `/latest/user-data` or the node's credentials.
//!
//! Each case is sent byte for byte, so nothing here is tidied up by a client library. Requests
//! do not ask for `Connection: close` unless the case is about it: a kept-alive connection is
//! what lets a pipelined or smuggled second request be read.

/// One case: a name for the report and the bytes sent.
pub type Case = (String, Vec<u8>);

const HOST: &str = "Host: 169.254.169.254\r\n";

/// `GET <target>` with a Host header.
fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\n{HOST}\r\n").into_bytes()
}

fn line(request_line: &str) -> Vec<u8> {
    format!("{request_line}\r\n{HOST}\r\n").into_bytes()
}

/// A request with `headers` (each ending in CRLF) and a body, exactly as given.
fn with(request_line: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("{request_line}\r\n{HOST}{headers}\r\n{body}").into_bytes()
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// An HTTP/2 HEADERS frame (END_STREAM, END_HEADERS) on stream 1 asking for `path`, HPACK-coded
/// with static-table names and literal values, after an empty SETTINGS frame.
fn h2_request(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.push(0x04); // literal :path, not indexed
    block.push(u8::try_from(path.len()).unwrap());
    block.extend_from_slice(path.as_bytes());
    let authority = "169.254.169.254";
    block.push(0x01); // literal :authority, not indexed
    block.push(u8::try_from(authority.len()).unwrap());
    block.extend_from_slice(authority.as_bytes());
    let mut frames = vec![0, 0, 0, 0x04, 0, 0, 0, 0, 0]; // SETTINGS, empty
    let len = u32::try_from(block.len()).unwrap().to_be_bytes();
    frames.extend_from_slice(&[len[1], len[2], len[3], 0x01, 0x05, 0, 0, 0, 1]);
    frames.extend_from_slice(&block);
    frames
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Every case, in one table.
pub fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| cases.push((name.to_owned(), bytes));

    // Dot segments, raw.
    add("dots: ../user-data", get("/latest/meta-data/../user-data"));
    add(
        "dots: ../../latest/user-data",
        get("/latest/meta-data/../../latest/user-data"),
    );
    add("dots: ./iam", get("/latest/meta-data/./iam/info"));
    add("dots: x/../iam", get("/latest/meta-data/x/../iam/info"));
    add("dots: trailing ..", get("/latest/meta-data/.."));
    add("dots: leading /..", get("/../latest/user-data"));
    add(
        "dots: instance-id/../../user-data",
        get("/latest/meta-data/instance-id/../../user-data"),
    );
    add("dots: ... segment", get("/latest/meta-data/.../user-data"));

    // Dot segments, encoded.
    add("enc: %2e%2e", get("/latest/meta-data/%2e%2e/user-data"));
    add("enc: %2E%2E", get("/latest/meta-data/%2E%2E/user-data"));
    add(
        "enc: %2e%2E mixed",
        get("/latest/meta-data/%2e%2E/user-data"),
    );
    add("enc: .%2e", get("/latest/meta-data/.%2e/user-data"));
    add("enc: %2e.", get("/latest/meta-data/%2e./user-data"));
    add("enc: %2e/iam", get("/latest/meta-data/%2e/iam/info"));
    add(
        "enc2: %252e%252e",
        get("/latest/meta-data/%252e%252e/user-data"),
    );
    add(
        "enc2: %252E%252E",
        get("/latest/meta-data/%252E%252E/user-data"),
    );
    add(
        "enc3: %25252e",
        get("/latest/meta-data/%25252e%25252e/user-data"),
    );
    add(
        "enc: nibble %%32%65",
        get("/latest/meta-data/%%32%65%%32%65/user-data"),
    );
    add(
        "enc: %u002e",
        get("/latest/meta-data/%u002e%u002e/user-data"),
    );
    add(
        "utf8: overlong %c0%ae",
        get("/latest/meta-data/%c0%ae%c0%ae/user-data"),
    );
    add(
        "utf8: overlong %e0%80%ae",
        get("/latest/meta-data/%e0%80%ae%e0%80%ae/user-data"),
    );
    add(
        "utf8: overlong %C0%AE upper",
        get("/latest/meta-data/%C0%AE%C0%AE/user-data"),
    );
    add(
        "utf8: raw overlong bytes",
        concat(&[
            b"GET /latest/meta-data/\xc0\xae\xc0\xae/user-data HTTP/1.1\r\n",
            HOST.as_bytes(),
            b"\r\n",
        ]),
    );
    add(
        "utf8: raw full-width dots",
        get("/latest/meta-data/\u{ff0e}\u{ff0e}/user-data"),
    );
    add(
        "utf8: encoded full-width dots",
        get("/latest/meta-data/%ef%bc%8e%ef%bc%8e/user-data"),
    );

    // Encoded slashes and backslashes.
    add("slash: %2f", get("/latest/meta-data%2f..%2fuser-data"));
    add("slash: %2F", get("/latest/meta-data%2F..%2Fuser-data"));
    add("slash: ..%2f", get("/latest/meta-data/..%2fuser-data"));
    add("slash: ..%252f", get("/latest/meta-data/..%252fuser-data"));
    add("slash: %2fiam%2f", get("/latest/meta-data/%2fiam%2finfo"));
    add(
        "slash: whole iam path encoded",
        get("/latest/meta-data%2fiam%2fsecurity-credentials%2f"),
    );
    add("slash: latest%2fuser-data", get("/latest%2fuser-data"));
    add(
        "slash: overlong %c0%af",
        get("/latest/meta-data/..%c0%afuser-data"),
    );
    add(
        "slash: overlong %e0%80%af",
        get("/latest/meta-data/..%e0%80%afuser-data"),
    );
    add("backslash: raw", get("/latest/meta-data\\..\\user-data"));
    add("backslash: ..\\", get("/latest/meta-data/..\\user-data"));
    add("backslash: %5c", get("/latest/meta-data/%5c..%5cuser-data"));
    add("backslash: ..%5C", get("/latest/meta-data/..%5Cuser-data"));
    add(
        "backslash: %255c",
        get("/latest/meta-data/..%255cuser-data"),
    );

    // `;` parameters.
    add("semicolon: ..;/", get("/latest/meta-data/..;/user-data"));
    add("semicolon: iam;x=1", get("/latest/meta-data/iam;x=1/info"));
    add(
        "semicolon: meta-data;/..",
        get("/latest/meta-data;/../user-data"),
    );
    add("semicolon: %3b", get("/latest/meta-data/iam%3b/info"));
    add(
        "semicolon: %3b/..",
        get("/latest/meta-data/%3b/../user-data"),
    );

    // NUL and control bytes.
    add(
        "control: %00 then ..",
        get("/latest/meta-data/instance-id%00/../../user-data"),
    );
    add("control: iam%00", get("/latest/meta-data/iam%00/info"));
    add(
        "control: raw NUL",
        concat(&[
            b"GET /latest/meta-data/\0/../user-data HTTP/1.1\r\n",
            HOST.as_bytes(),
            b"\r\n",
        ]),
    );
    add("control: raw tab", get("/latest/meta-data/\t/../user-data"));
    add("control: iam%09", get("/latest/meta-data/iam%09/info"));
    add(
        "control: iam%0d%0a",
        get("/latest/meta-data/iam%0d%0a/info"),
    );
    add(
        "control: CRLF injection in target",
        get("/latest/meta-data/instance-id%0d%0aX-Original-URL:%20/latest/user-data"),
    );
    add(
        "control: raw CR in target",
        get("/latest/meta-data/x\r/../../user-data"),
    );
    add("control: %7f", get("/latest/meta-data/iam%7f/info"));

    // Query and fragment.
    add(
        "query: ?/../..",
        get("/latest/meta-data/instance-id?/../../user-data"),
    );
    add("query: ?../..", get("/latest/meta-data/?../../user-data"));
    add(
        "query: denied path first",
        get("/latest/user-data?/latest/meta-data/"),
    );
    add(
        "fragment: #/../..",
        get("/latest/meta-data/instance-id#/../../user-data"),
    );
    add(
        "fragment: /#/../..",
        get("/latest/meta-data/#/../../user-data"),
    );
    add("query: %3f", get("/latest/meta-data/%3f/../../user-data"));
    add("fragment: %23", get("/latest/meta-data/iam%23/info"));
    add("fragment: target is only #", get("#/latest/user-data"));

    // Absolute-form, authority-form, asterisk-form.
    add(
        "absolute: user-data",
        get("http://169.254.169.254/latest/user-data"),
    );
    add(
        "absolute: iam",
        get("http://169.254.169.254/latest/meta-data/iam/info"),
    );
    add(
        "absolute: allowed path",
        get("http://169.254.169.254/latest/meta-data/instance-id"),
    );
    add(
        "absolute: HTTP scheme upper",
        get("HTTP://169.254.169.254/latest/user-data"),
    );
    add(
        "absolute: userinfo",
        get("http://169.254.169.254@127.0.0.1/latest/user-data"),
    );
    add(
        "network-path: //host/...",
        get("//169.254.169.254/latest/user-data"),
    );
    add("authority: GET host:port", get("169.254.169.254:80"));
    add("asterisk: OPTIONS *", line("OPTIONS * HTTP/1.1"));
    add("asterisk: GET *", line("GET * HTTP/1.1"));
    add(
        "connect: tunnel then user-data",
        concat(&[
            &line("CONNECT 169.254.169.254:80 HTTP/1.1"),
            &get("/latest/user-data"),
        ]),
    );
    add(
        "connect: origin-form",
        line("CONNECT /latest/user-data HTTP/1.1"),
    );

    // Methods.
    add("method: get", line("get /latest/user-data HTTP/1.1"));
    add(
        "method: gEt iam",
        line("gEt /latest/meta-data/iam/info HTTP/1.1"),
    );
    add(
        "method: POST",
        with(
            "POST /latest/user-data HTTP/1.1",
            "Content-Length: 0\r\n",
            "",
        ),
    );
    add("method: HEAD", line("HEAD /latest/user-data HTTP/1.1"));
    add(
        "method: PUT user-data",
        with(
            "PUT /latest/user-data HTTP/1.1",
            "Content-Length: 0\r\n",
            "",
        ),
    );
    add(
        "method: PUT token/../..",
        with(
            "PUT /latest/api/token/../../user-data HTTP/1.1",
            "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n",
            "",
        ),
    );
    add("method: TRACE", line("TRACE /latest/user-data HTTP/1.1"));
    add(
        "method: override header",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "X-HTTP-Method-Override: PUT\r\n",
            "",
        ),
    );
    add(
        "syntax: tab separator",
        line("GET\t/latest/user-data HTTP/1.1"),
    );
    add(
        "syntax: double space",
        line("GET  /latest/user-data HTTP/1.1"),
    );
    add(
        "syntax: space in target",
        line("GET /latest/meta-data/instance-id /../../user-data HTTP/1.1"),
    );

    // Versions.
    add(
        "http/1.0: no Host",
        b"GET /latest/user-data HTTP/1.0\r\n\r\n".to_vec(),
    );
    add(
        "http/1.0: no Host, dots",
        b"GET /latest/meta-data/../user-data HTTP/1.0\r\n\r\n".to_vec(),
    );
    add(
        "http/1.0: keep-alive then iam",
        concat(&[
            b"GET /latest/meta-data/instance-id HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            b"GET /latest/meta-data/iam/info HTTP/1.0\r\n\r\n",
        ]),
    );
    add(
        "http/0.9: no version",
        b"GET /latest/user-data\r\n\r\n".to_vec(),
    );
    add("version: HTTP/1.2", line("GET /latest/user-data HTTP/1.2"));
    add(
        "version: HTTP/2.0 text",
        line("GET /latest/user-data HTTP/2.0"),
    );

    // Pipelining: each request on a connection is decided by itself.
    add(
        "pipeline: allowed then user-data",
        concat(&[
            &get("/latest/meta-data/instance-id"),
            &get("/latest/user-data"),
        ]),
    );
    add(
        "pipeline: allowed then credentials",
        concat(&[
            &get("/latest/meta-data/instance-id"),
            &get("/latest/meta-data/iam/security-credentials/node-role"),
        ]),
    );
    add(
        "pipeline: after Connection: close",
        concat(&[
            &with(
                "GET /latest/meta-data/instance-id HTTP/1.1",
                "Connection: close\r\n",
                "",
            ),
            &get("/latest/user-data"),
        ]),
    );
    add(
        "pipeline: allowed, dots, IAM",
        concat(&[
            &get("/latest/meta-data/instance-id"),
            &get("/latest/meta-data/../user-data"),
            &get("/latest/meta-data/IAM/info"),
        ]),
    );

    // Request smuggling: the guard must read the same requests its parser read.
    let smuggled = format!("GET /latest/user-data HTTP/1.1\r\n{HOST}\r\n");
    add(
        "smuggle: CL.TE",
        with(
            "POST /latest/meta-data/instance-id HTTP/1.1",
            &format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                5 + smuggled.len()
            ),
            &format!("0\r\n\r\n{smuggled}"),
        ),
    );
    add(
        "smuggle: TE.CL",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            &format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len()),
        ),
    );
    add(
        "smuggle: GET with a body that is a request",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            &format!("Content-Length: {}\r\n", smuggled.len()),
            &smuggled,
        ),
    );
    add(
        "smuggle: duplicate Content-Length 0 and N",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            &format!(
                "Content-Length: 0\r\nContent-Length: {}\r\n",
                smuggled.len()
            ),
            &smuggled,
        ),
    );
    add(
        "smuggle: Content-Length list",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            &format!("Content-Length: 0, {}\r\n", smuggled.len()),
            &smuggled,
        ),
    );
    add(
        "smuggle: Content-Length +N",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            &format!("Content-Length: +{}\r\n", smuggled.len()),
            &smuggled,
        ),
    );
    add(
        "smuggle: TE chunked, identity",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "Transfer-Encoding: chunked, identity\r\n",
            &format!("0\r\n\r\n{smuggled}"),
        ),
    );
    add(
        "smuggle: TE with space before colon",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "Transfer-Encoding : chunked\r\n",
            &format!("0\r\n\r\n{smuggled}"),
        ),
    );
    add(
        "smuggle: TE xchunked",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "Transfer-Encoding: xchunked\r\n",
            &format!("0\r\n\r\n{smuggled}"),
        ),
    );
    add(
        "smuggle: TE chunk extension",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "Transfer-Encoding: chunked\r\n",
            &format!("0;ext=\"\r\n\"\r\n\r\n{smuggled}"),
        ),
    );

    // obs-fold header continuation.
    add(
        "obs-fold: token header",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "X-aws-ec2-metadata-token: a\r\n b\r\n",
            "",
        ),
    );
    add(
        "obs-fold: carrying a request line",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "User-Agent: x\r\n GET /latest/user-data HTTP/1.1\r\n",
            "",
        ),
    );
    add(
        "obs-fold: Transfer-Encoding",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "Transfer-Encoding:\r\n chunked\r\n",
            &format!("0\r\n\r\n{smuggled}"),
        ),
    );

    // h2c upgrade and HTTP/2 prior knowledge.
    let upgrade = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    add(
        "h2c: upgrade then h2 request for user-data",
        concat(&[
            &with("GET /latest/meta-data/instance-id HTTP/1.1", upgrade, ""),
            PREFACE,
            &h2_request("/latest/user-data"),
        ]),
    );
    add(
        "h2c: upgrade on user-data",
        with("GET /latest/user-data HTTP/1.1", upgrade, ""),
    );
    add(
        "h2c: OPTIONS * upgrade",
        with("OPTIONS * HTTP/1.1", upgrade, ""),
    );
    add(
        "h2: prior-knowledge preface",
        concat(&[PREFACE, &h2_request("/latest/user-data")]),
    );
    add(
        "h2: preface then HTTP/1.1",
        concat(&[PREFACE, &get("/latest/user-data")]),
    );
    add(
        "websocket: upgrade then bytes",
        concat(&[
            &with(
                "GET /latest/meta-data/instance-id HTTP/1.1",
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
                "",
            ),
            &get("/latest/user-data"),
        ]),
    );

    // Line endings.
    add(
        "bare LF: denied path",
        b"GET /latest/user-data HTTP/1.1\nHost: x\n\n".to_vec(),
    );
    add(
        "bare LF: pipelined",
        b"GET /latest/meta-data/instance-id HTTP/1.1\nHost: x\n\nGET /latest/user-data HTTP/1.1\nHost: x\n\n"
            .to_vec(),
    );
    add(
        "bare LF: inside a header",
        b"GET /latest/meta-data/instance-id HTTP/1.1\r\nX: a\nGET /latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n"
            .to_vec(),
    );
    add(
        "bare CR: between requests",
        b"GET /latest/meta-data/instance-id HTTP/1.1\rGET /latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n"
            .to_vec(),
    );

    // Oversized request lines and headers.
    add(
        "oversized: 1100-byte path then ..",
        get(&format!(
            "/latest/meta-data/{}/../../user-data",
            "a".repeat(1100)
        )),
    );
    add(
        "oversized: 70000-byte path",
        get(&format!(
            "/latest/meta-data/{}/../../user-data",
            "a".repeat(70_000)
        )),
    );
    add(
        "oversized: 200 headers",
        with(
            "GET /latest/user-data HTTP/1.1",
            &(0..200)
                .map(|i| format!("X-{i}: v\r\n"))
                .collect::<String>(),
            "",
        ),
    );
    add(
        "oversized: 600 KiB header",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            &format!("X-Big: {}\r\n", "a".repeat(600 * 1024)),
            "",
        ),
    );

    // Case variants of denied paths: deny patterns ignore case.
    add("case: IAM", get("/latest/meta-data/IAM/info"));
    add(
        "case: Iam",
        get("/latest/meta-data/Iam/security-credentials/"),
    );
    add(
        "case: iAm role",
        get("/latest/meta-data/iAm/security-credentials/node-role"),
    );
    add("case: USER-DATA", get("/LATEST/USER-DATA"));
    add("case: User-Data", get("/latest/User-Data"));
    add("case: META-DATA/iam", get("/latest/META-DATA/iam/info"));
    add(
        "case: %49AM (encoded I)",
        get("/latest/meta-data/%49AM/info"),
    );
    add(
        "case: ia%6d (encoded m)",
        get("/latest/meta-data/ia%6d/info"),
    );
    add(
        "unicode: dotless i",
        get("/latest/meta-data/\u{131}am/info"),
    );
    add("unicode: %C4%B1am", get("/latest/meta-data/%C4%B1am/info"));

    // Trailing dots and spaces (Windows ignores them).
    add("trailing: iam.", get("/latest/meta-data/iam./info"));
    add("trailing: iam%20", get("/latest/meta-data/iam%20/info"));
    add("trailing: iam.%20", get("/latest/meta-data/iam.%20/info"));
    add("trailing: iam..", get("/latest/meta-data/iam../info"));
    add("trailing: ..%20", get("/latest/meta-data/..%20/user-data"));
    add("trailing: .%20", get("/latest/meta-data/.%20/iam/info"));
    add("leading: %20..", get("/latest/meta-data/%20../user-data"));
    add("trailing: .../iam", get("/latest/meta-data/.../iam/info"));
    add(
        "trailing: %20 segment",
        get("/latest/meta-data/%20/iam/info"),
    );
    add("trailing: user-data.", get("/latest/user-data."));
    add("trailing: user-data%20", get("/latest/user-data%20"));

    // `//`-prefixed and doubled slashes.
    add("slashes: //latest/user-data", get("//latest/user-data"));
    add(
        "slashes: doubled everywhere",
        get("//latest//meta-data//iam//info"),
    );
    add("slashes: ///..", get("///latest/meta-data/../user-data"));
    add(
        "slashes: meta-data//iam",
        get("/latest/meta-data//iam/info"),
    );
    add("slashes: ///../", get("/latest/meta-data///../user-data"));

    // Host header and routing-header tricks: the guard forwards its own Host and none of these.
    add(
        "host: path in Host",
        concat(&[
            b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254/latest/user-data\r\n\r\n",
        ]),
    );
    add(
        "host: duplicate Host",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "Host: 127.0.0.1\r\n",
            "",
        ),
    );
    add(
        "host: userinfo in Host",
        b"GET /latest/user-data HTTP/1.1\r\nHost: 169.254.169.254:80@127.0.0.1\r\n\r\n".to_vec(),
    );
    add(
        "host: empty Host",
        b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost:\r\n\r\n".to_vec(),
    );
    add(
        "host: absolute-form, other Host",
        b"GET http://127.0.0.1/latest/user-data HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".to_vec(),
    );
    add(
        "header: X-Original-URL",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "X-Original-URL: /latest/user-data\r\nX-Rewrite-URL: /latest/user-data\r\n",
            "",
        ),
    );
    add(
        "header: X-Forwarded-Prefix and Forwarded",
        with(
            "GET /latest/meta-data/instance-id HTTP/1.1",
            "X-Forwarded-Prefix: /latest/user-data\r\nForwarded: for=1.2.3.4;host=x\r\nX-Forwarded-For: 169.254.169.254\r\n",
            "",
        ),
    );
    cases
}
