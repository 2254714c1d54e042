use super::*;

const LINE: &str = r#"{"ts":"2026-11-23T11:02:03.456Z","src":"10.1.0.5","pod":"shop/web-1","pod_uid":"u-1","labels":{"app":"web"},"owner":{"kind":"Deployment","name":"web"},"method":"GET","path":"/latest/meta-data/instance-id","decision":"would-deny","reason":"no-rule","rule":null,"status":200,"imds_version":"v2","upstream_ms":0.3,"error":null,"cache":null,"token":"valid","bytes":19,"duration_ms":0.5}"#;

fn record(line: &str) -> Record {
    match read(line) {
        Line::Audit(r) => *r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn reads_what_suggest_and_replay_need() {
    let r = record(LINE);
    assert_eq!(r.pod, Some(("shop".into(), "web-1".into())));
    assert_eq!(r.pod_uid.as_deref(), Some("u-1"));
    assert_eq!(r.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(r.owner.as_ref().map(|o| o.name.as_str()), Some("web"));
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.decision, r.status),
        (
            "GET",
            "/latest/meta-data/instance-id",
            Disposal::WouldDeny,
            200
        )
    );
    assert!(r.tokened);
}

#[test]
fn prefixes_older_lines_and_unknown_sources() {
    let prefixed = format!("[pod/imds-guard-x/imds-guard] {LINE}");
    assert_eq!(record(&prefixed), record(LINE));
    let stamped = format!("2026-11-23T11:02:03.456789Z {LINE}\r");
    assert_eq!(record(&stamped), record(LINE));
    // Lines written before labels and owners were carried.
    let old = LINE.replace(
        r#""labels":{"app":"web"},"owner":{"kind":"Deployment","name":"web"},"#,
        "",
    );
    let r = record(&old);
    assert!(r.labels.is_empty() && r.owner.is_none());
    let unknown = LINE.replace(r#""pod":"shop/web-1""#, r#""pod":null"#);
    assert_eq!(record(&unknown).pod, None);
}

#[test]
fn log_lines_are_other_and_broken_audit_lines_malformed() {
    for other in [
        "",
        "2026-11-23T11:02:03Z  INFO imds_guard::server: serving",
        "42",
    ] {
        assert_eq!(read(other), Line::Other, "{other}");
    }
    for broken in [
        &LINE[..LINE.len() / 2],
        r#"{"foo": 1}"#,
        &LINE.replace(r#""pod":"shop/web-1","#, ""),
        &LINE.replace("would-deny", "maybe"),
        &LINE.replace(r#""status":200"#, r#""status":"200""#),
        &LINE.replace("shop/web-1", "web-1"),
        "{not json",
    ] {
        assert!(matches!(read(broken), Line::Malformed(_)), "{broken}");
    }
}
