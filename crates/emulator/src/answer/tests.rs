use super::*;
use serde_json::json;

#[test]
fn segments_drop_one_trailing_slash_only() {
    assert_eq!(segments(""), Some((vec![], false)));
    assert_eq!(segments("/"), Some((vec![], true)));
    assert_eq!(segments("a/b"), Some((vec!["a", "b"], false)));
    assert_eq!(segments("a/b/"), Some((vec!["a", "b"], true)));
    for bad in ["a//b", "a/b//", "/a"] {
        assert_eq!(segments(bad), None, "{bad:?}");
    }
}

#[test]
fn walk_reads_members_and_indices() {
    let doc = json!({"network": {"interface": [{"macAddress": "00"}]}});
    let at = |path: &[&str], ignore| walk(&doc, path, ignore).cloned();
    assert_eq!(
        at(&["network", "interface", "0", "macAddress"], false),
        Some(json!("00"))
    );
    assert_eq!(
        at(&["NETWORK", "Interface", "0", "macaddress"], true),
        Some(json!("00"))
    );
    assert_eq!(at(&["NETWORK"], false), None);
    for bad in ["00", "+0", "1", "-0", ""] {
        assert_eq!(at(&["network", "interface", bad], false), None, "{bad:?}");
    }
}

#[test]
fn jwts_have_three_base64url_parts() {
    let token = jwt(&json!({"alg": "RS256"}), &json!({"aud": "x"}));
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let payload = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url");
    assert_eq!(
        serde_json::from_slice::<Value>(&payload).expect("json"),
        json!({"aud": "x"})
    );
    assert_eq!(
        URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url").len(),
        256
    );
    assert_eq!(etag(b"a"), etag(b"a"));
    assert_ne!(etag(b"a"), etag(b"b"));
}
