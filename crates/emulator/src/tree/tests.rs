use super::*;

fn tree() -> Node {
    Node::from_value(&builtin(SystemTime::UNIX_EPOCH))
}

#[test]
fn builtin_tree_is_valid() {
    assert_eq!(validate(&builtin(SystemTime::now()), false), Ok(()));
}

#[test]
fn public_keys_are_listed_by_name_and_reached_by_index() {
    let tree = tree();
    assert_eq!(
        tree.lookup(&["meta-data", "public-keys"]),
        Lookup::Listing("0=node-key".into())
    );
    assert_eq!(
        tree.lookup(&["meta-data", "public-keys", "0"]),
        Lookup::Listing("openssh-key".into())
    );
    assert!(matches!(
        tree.lookup(&["meta-data", "public-keys", "0", "openssh-key"]),
        Lookup::Value(v) if v.starts_with("ssh-ed25519 ")
    ));
    // The index rule is specific to public-keys.
    assert_eq!(tree.lookup(&["meta-data", "iam", "0"]), Lookup::NotFound);
}

#[test]
fn roles_resolve_to_credentials_and_the_directory_to_a_listing() {
    let tree = tree();
    assert_eq!(
        tree.lookup(&["meta-data", "iam", "security-credentials", DEFAULT_ROLE]),
        Lookup::Credentials(DEFAULT_ROLE)
    );
    assert_eq!(
        tree.lookup(&["meta-data", "iam", "security-credentials"]),
        Lookup::Listing(DEFAULT_ROLE.into())
    );
}

#[test]
fn without_a_credentials_dir_roles_are_plain_values() {
    let tree = tree();
    let role = ["meta-data", "iam", "security-credentials", DEFAULT_ROLE];
    assert_eq!(tree.lookup_in(&role, None), Lookup::Value(""));
    assert_eq!(
        tree.lookup_in(&role, Some(&["meta-data", "cam", "security-credentials"])),
        Lookup::Value("")
    );
    // A leaf directly below the root is never a role, whatever the directory.
    assert_eq!(
        tree.lookup_in(&["user-data"], None),
        tree.lookup(&["user-data"])
    );
}

#[test]
fn below_a_leaf_and_empty_segments_are_not_found() {
    let tree = tree();
    assert_eq!(tree.lookup(&["user-data", "x"]), Lookup::NotFound);
    assert_eq!(tree.lookup(&["meta-data", "", "mac"]), Lookup::NotFound);
    assert_eq!(tree.lookup(&["Meta-Data"]), Lookup::NotFound);
}

#[test]
fn merge_replaces_adds_and_removes() {
    let mut base = json!({"a": {"b": "1", "c": "2"}, "d": "3"});
    merge(
        &mut base,
        &json!({"a": {"b": "9", "c": null, "n": {"x": null, "y": "4"}}, "d": {"e": "5"}}),
    );
    assert_eq!(
        base,
        json!({"a": {"b": "9", "n": {"y": "4"}}, "d": {"e": "5"}})
    );
}

#[test]
fn validate_names_the_offending_path() {
    let err = validate(&json!({"meta-data": {"ami-launch-index": 0}}), true)
        .expect_err("number must be refused");
    assert_eq!(err.at, "meta-data/ami-launch-index");
    assert!(err.reason.contains("a number"), "{}", err.reason);
    let err = validate(&json!({"a": {"b/c": "x"}}), true).expect_err("slash");
    assert_eq!(err.at, "a/b/c");
    assert!(validate(&json!({"a": null}), false).is_err());
    assert!(validate(&json!(["a"]), true).is_err());
}
