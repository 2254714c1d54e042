use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_kubelet_s_format_is_read() {
    let text = "app=\"shop\"\nallow-node-metadata-lookup=\"true\"\n\
                app.kubernetes.io/name=\"web\"\npod-template-hash=\"5c7b9\"";
    assert_eq!(
        parse_labels(text).unwrap(),
        labels(&[
            ("app", "shop"),
            ("allow-node-metadata-lookup", "true"),
            ("app.kubernetes.io/name", "web"),
            ("pod-template-hash", "5c7b9"),
        ])
    );
    assert!(parse_labels("").unwrap().is_empty());
    assert_eq!(parse_labels("a=\"\"\n").unwrap(), labels(&[("a", "")]));
}

#[test]
fn go_escapes_are_undone() {
    let text = r#"q="say \"hi\"\\now"
n="two\nlines\ttab"
x="\x41\101\u00e9\U0001F600"
raw="é""#;
    assert_eq!(
        parse_labels(text).unwrap(),
        labels(&[
            ("q", "say \"hi\"\\now"),
            ("n", "two\nlines\ttab"),
            ("x", "AAé😀"),
            ("raw", "é"),
        ])
    );
}

#[test]
fn anything_else_is_malformed() {
    let cases = [
        ("app=shop", "the value must be in double quotes"),
        ("app=\"shop", "the value must be in double quotes"),
        ("app=\"shop\" ", "the value must be in double quotes"),
        ("app", "expected key=\"value\""),
        ("=\"x\"", "empty label key"),
        (
            "a b=\"x\"",
            "a label key may hold letters, digits, `.`, `_`, `-` and `/`",
        ),
        ("a=\"x\"y\"", "an unescaped `\"` inside the value"),
        ("a=\"x\\\"", "a `\\` at the end of the value"),
        ("a=\"\\q\"", "an unknown escape inside the value"),
        ("a=\"\\x4\"", "a malformed escape inside the value"),
        ("a=\"\\777\"", "an escape larger than a byte"),
        ("a=\"\\xff\"", "the value is not UTF-8"),
        (
            "a=\"\\ud800\"",
            "an escape of something that is not a character",
        ),
        ("a=\"tab\there\"", "a control character inside the value"),
        ("a=\"cr\"\r", "the value must be in double quotes"),
    ];
    for (text, reason) in cases {
        assert_eq!(
            parse_labels(text),
            Err(LabelsError::Line { line: 1, reason }),
            "{text:?}"
        );
    }
    assert_eq!(
        parse_labels("a=\"1\"\nb=\"2\"\na=\"3\""),
        Err(LabelsError::Repeated {
            line: 3,
            key: "a".into()
        })
    );
    let second = parse_labels("a=\"1\"\nb=2").unwrap_err();
    assert_eq!(
        second.to_string(),
        "line 2: the value must be in double quotes"
    );
}
