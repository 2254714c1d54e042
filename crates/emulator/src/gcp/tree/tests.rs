use super::*;

#[test]
fn recursive_json_is_camel_case_except_user_names() {
    let mut tree = builtin();
    tree["instance"]["guest-attributes"] = json!({"my-ns": {"some-key": "v"}});
    let doc = recursive_json(&tree, "", false);
    let guest = recursive_json(
        &tree["instance"]["guest-attributes"],
        "guest-attributes",
        false,
    );
    assert_eq!(guest["my-ns"]["some-key"], "v");
    let instance = &doc["instance"];
    assert_eq!(instance["machineType"], tree["instance"]["machine-type"]);
    assert_eq!(instance["networkInterfaces"][0]["ip"], "10.128.0.7");
    assert!(instance["attributes"]["kube-env"].is_string());
    assert!(instance["attributes"].get("kubeEnv").is_none());
    assert_eq!(
        instance["serviceAccounts"][SA_EMAIL]["aliases"][0],
        "default"
    );
    assert_eq!(instance["guestAttributes"]["my-ns"]["some-key"], "v");
    assert_eq!(doc["project"]["numericProjectId"], PROJECT_NUMBER);
}

#[test]
fn listings_and_leaves() {
    let tree = builtin();
    let account = &tree["instance"]["service-accounts"]["default"];
    assert_eq!(
        listing(&entries(account, true)),
        "aliases\nemail\nidentity\nscopes\ntoken\n"
    );
    assert_eq!(
        listing(&entries(&tree["instance"]["network-interfaces"], false)),
        "0/\n"
    );
    assert!(is_dir(&tree["instance"]["network-interfaces"]));
    assert!(!is_dir(&account["scopes"]));
    assert_eq!(leaf_text(&account["aliases"]), "default\n");
    assert_eq!(leaf_text(&tree["instance"]["id"]), INSTANCE_ID.to_string());
    let mut text = String::new();
    recursive_text(account, "", &mut text);
    assert!(text.starts_with("aliases default\nemail "), "{text}");
}
