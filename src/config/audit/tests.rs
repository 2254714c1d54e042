use super::*;

fn keys(list: &[&str]) -> Result<Audit, ConfigError> {
    validate(RawAudit {
        workload_labels: Some(list.iter().map(|s| s.to_string()).collect()),
    })
}

#[test]
fn defaults_and_limits() {
    assert_eq!(
        &*validate(RawAudit::default()).unwrap().workload_labels,
        ["app.kubernetes.io/name", "app"]
    );
    assert!(keys(&[]).unwrap().workload_labels.is_empty());
    assert!(keys(&["team", "app.kubernetes.io/instance", "a_b.c-d"]).is_ok());
    let nine: Vec<String> = (0..9).map(|i| format!("l{i}")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    let e = keys(&nine).unwrap_err().to_string();
    assert!(e.starts_with("audit.workload_labels: at most 8"), "{e}");
    for (bad, want) in [
        ("", "[0]"),
        ("-app", "[0]"),
        ("a/b/c", "[0]"),
        ("Example.com/x", "[0]"),
        ("app name", "[0]"),
    ] {
        let e = keys(&[bad]).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("audit.workload_labels{want}")),
            "{bad}: {e}"
        );
    }
    let long = "a".repeat(64);
    assert!(keys(&[&long]).is_err());
    let e = keys(&["app", "app"]).unwrap_err().to_string();
    assert!(e.contains("[1]") && e.contains("twice"), "{e}");
}
