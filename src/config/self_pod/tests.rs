use super::super::{parse, Source};
use std::time::Duration;

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const SIDECAR: &str = "[server]\nlisten = \"127.0.0.1:8181\"\nadmin_listen = \"0.0.0.0:8182\"\n";

#[test]
fn the_self_source_and_its_keys() {
    let config = parse(&format!(
        "{SIDECAR}[inventory]\nsource = \"self\"\npod_namespace = \"shop\"\npod_name = \"web\"\n\
         pod_uid = \"u-1\"\nlabels_file = \"/etc/podinfo/labels\"\nlabels_poll_ms = 250\n\
         [netfilter]\nsidecar_uid = 1337\n"
    ))
    .unwrap();
    let own = &config.inventory.self_pod;
    assert_eq!(config.inventory.source, Source::SelfPod);
    assert_eq!(config.inventory.source.as_str(), "self");
    assert_eq!(own.namespace.as_deref(), Some("shop"));
    assert_eq!(own.name.as_deref(), Some("web"));
    assert_eq!(own.uid.as_deref(), Some("u-1"));
    assert_eq!(
        own.labels_file.as_deref(),
        Some(std::path::Path::new("/etc/podinfo/labels"))
    );
    assert_eq!(own.labels_poll, Duration::from_millis(250));
    assert_eq!(config.netfilter.sidecar_uid, Some(1337));
    // Everything from the environment: nothing needs to be set in the file.
    let bare = parse(&format!("{SIDECAR}[inventory]\nsource = \"self\"\n")).unwrap();
    assert_eq!(bare.inventory.self_pod.labels_poll, Duration::from_secs(1));
    assert!(bare.inventory.self_pod.labels_file.is_none());
}

#[test]
fn the_shipped_sidecar_example_is_valid() {
    let text = include_str!("../../../deploy/sidecar/example/imds-guard.toml");
    let config = parse(text).unwrap();
    assert_eq!(config.inventory.source, Source::SelfPod);
    // The component's runAsUser.
    assert_eq!(config.netfilter.sidecar_uid, Some(1337));
    assert!(config.server.listen.ip().is_loopback());
}

#[test]
fn sidecar_mode_refusals_name_the_key() {
    let self_with = |extra: &str| format!("{SIDECAR}[inventory]\nsource = \"self\"\n{extra}");
    let cases = [
        (
            "[server]\nlisten = \"0.0.0.0:8181\"\n[inventory]\nsource = \"self\"\n".to_owned(),
            "server.listen: 0.0.0.0:8181: with inventory.source = \"self\" the proxy must listen on a loopback address",
        ),
        (
            "[server]\nlisten = \"10.0.0.5:8181\"\n[inventory]\nsource = \"self\"\n".to_owned(),
            "server.listen: 10.0.0.5:8181",
        ),
        (
            self_with("[netfilter]\nmanage = true\n"),
            "netfilter.manage: cannot be true with inventory.source = \"self\"",
        ),
        (
            self_with("pod_name = \"\"\n"),
            "inventory.pod_name: must not be empty",
        ),
        (
            self_with("labels_file = \"\"\n"),
            "inventory.labels_file: must not be empty",
        ),
        (
            self_with("labels_poll_ms = 5\n"),
            "inventory.labels_poll_ms: must be from 10 to 60000",
        ),
        (
            "[inventory]\npod_namespace = \"shop\"\n".to_owned(),
            "inventory.pod_namespace: only used with source = \"self\"",
        ),
        (
            "[inventory]\nsource = \"kubernetes\"\nlabels_file = \"/x\"\n".to_owned(),
            "inventory.labels_file: only used with source = \"self\"",
        ),
        (
            "[inventory]\nlabels_poll_ms = 100\n".to_owned(),
            "inventory.labels_poll_ms: only used with source = \"self\"",
        ),
        (
            "[netfilter]\nsidecar_uid = 0\n".to_owned(),
            "netfilter.sidecar_uid: the sidecar's UID is 0: every process running as the sidecar's UID bypasses",
        ),
    ];
    for (text, want) in cases {
        let got = err(&text);
        assert!(got.starts_with(want), "{text}\n=> {got}\nwanted {want}");
    }
    assert!(err("[netfilter]\nsidecar_uid = -1\n").starts_with("netfilter.sidecar_uid: "));
}
