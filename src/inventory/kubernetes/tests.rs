use super::*;

fn pod(json: serde_json::Value) -> KubePod {
    serde_json::from_value(json).unwrap()
}

fn base() -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c"}]},
        "status": {"phase": "Running", "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}]}
    })
}

#[test]
fn converts_every_pod_ip_and_labels() {
    let (p, ips) = convert(&pod(base())).unwrap();
    assert_eq!(
        (p.namespace.as_str(), p.name.as_str(), p.uid.as_str()),
        ("shop", "web-1", "u-1")
    );
    assert_eq!(p.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(
        ips,
        vec![
            "10.1.0.5".parse::<IpAddr>().unwrap(),
            "fd00::5".parse().unwrap()
        ]
    );
}

#[test]
fn falls_back_to_pod_ip() {
    let mut json = base();
    json["status"].as_object_mut().unwrap().remove("podIPs");
    assert_eq!(
        convert(&pod(json)).unwrap().1,
        vec!["10.1.0.5".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn host_network_and_terminal_pods_hold_no_ip() {
    let mut json = base();
    json["spec"]["hostNetwork"] = true.into();
    let (host, ips) = convert(&pod(json)).unwrap();
    assert!(ips.is_empty() && host.host_network);
    assert!(!convert(&pod(base())).unwrap().0.host_network);
    for phase in ["Succeeded", "Failed"] {
        let mut json = base();
        json["status"]["phase"] = phase.into();
        assert!(convert(&pod(json)).unwrap().1.is_empty(), "{phase}");
    }
    let mut json = base();
    json["status"]["phase"] = "Pending".into();
    assert_eq!(convert(&pod(json)).unwrap().1.len(), 2);
}

#[test]
fn malformed_ips_are_skipped_and_incomplete_objects_ignored() {
    let mut json = base();
    json["status"]["podIPs"] =
        serde_json::json!([{"ip": "10.1.0.300"}, {"ip": ""}, {"ip": "10.1.0.6"}]);
    assert_eq!(
        convert(&pod(json)).unwrap().1,
        vec!["10.1.0.6".parse::<IpAddr>().unwrap()]
    );
    let mut json = base();
    json["metadata"].as_object_mut().unwrap().remove("uid");
    assert!(convert(&pod(json)).is_none());
}

#[test]
fn the_owner_is_the_controller_and_a_deployment_for_its_replica_sets() {
    let owned = |refs: serde_json::Value, hash: Option<&str>| {
        let mut json = base();
        json["metadata"]["ownerReferences"] = refs;
        if let Some(hash) = hash {
            json["metadata"]["labels"]["pod-template-hash"] = hash.into();
        }
        convert(&pod(json)).unwrap().0.owner
    };
    let reference = |kind: &str, name: &str, controller: bool| serde_json::json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "o-1", "controller": controller});
    let owner = |kind: &str, name: &str| {
        Some(Owner {
            kind: kind.into(),
            name: name.into(),
        })
    };
    assert_eq!(convert(&pod(base())).unwrap().0.owner, None);
    assert_eq!(
        owned(
            serde_json::json!([reference("ReplicaSet", "web-7d9c6b5f4", true)]),
            Some("7d9c6b5f4")
        ),
        owner("Deployment", "web")
    );
    // A ReplicaSet of its own (no hash label, or a name that does not end in it).
    assert_eq!(
        owned(
            serde_json::json!([reference("ReplicaSet", "web-7d9c6b5f4", true)]),
            None
        ),
        owner("ReplicaSet", "web-7d9c6b5f4")
    );
    assert_eq!(
        owned(
            serde_json::json!([reference("ReplicaSet", "web", true)]),
            Some("7d9c6b5f4")
        ),
        owner("ReplicaSet", "web")
    );
    // Only the controller counts.
    assert_eq!(
        owned(
            serde_json::json!([
                reference("ConfigMap", "x", false),
                reference("StatefulSet", "db", true)
            ]),
            None
        ),
        owner("StatefulSet", "db")
    );
    assert_eq!(
        owned(serde_json::json!([reference("Node", "n", false)]), None),
        None
    );
}

#[test]
fn selector_is_node_scoped() {
    assert_eq!(
        node_selector("ip-10-0-0-1.ec2.internal"),
        "spec.nodeName=ip-10-0-0-1.ec2.internal"
    );
}
