use super::*;

#[test]
fn lines_are_read_whatever_they_hold() {
    let line = r#"{"ts":"t","pod":"a/b","method":"GET","path":"/latest/meta-data/instance-id","decision":"allow","reason":"path-allowed","status":200,"imds_version":"v1"}"#;
    let mut text = Vec::new();
    text.extend_from_slice(line.as_bytes());
    text.extend_from_slice(b"\nnot an audit line\n\xff\xfe{\"ts\": broken\n");
    text.push(b'{');
    text.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
    text.extend_from_slice(b"\n");
    text.extend_from_slice(line.as_bytes());
    let mut log = Log::default();
    read_into(&mut log, &text[..]).unwrap();
    assert_eq!((log.lines, log.malformed), (2, 2));
    assert_eq!(
        log.requests.values().sum::<u64>(),
        2,
        "the last line has no newline"
    );
}
