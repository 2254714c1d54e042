use super::*;
use serde_json::Value;

fn parse(doc: &str) -> Value {
    serde_json::from_str(doc).expect("credentials are JSON")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn same_window_same_credentials_next_window_new_ones() {
    let source = CredentialSource::new(Duration::from_secs(3600));
    // Windows are 30 min long: 1_800_000 starts one.
    let a = parse(&source.document("role", at(1_800_000)));
    let b = parse(&source.document("role", at(1_800_000 + 1799)));
    let c = parse(&source.document("role", at(1_800_000 + 1800)));
    assert_eq!(a, b);
    assert_ne!(a["AccessKeyId"], c["AccessKeyId"]);
    assert_ne!(a["SecretAccessKey"], c["SecretAccessKey"]);
    assert_ne!(a["Token"], c["Token"]);
}

#[test]
fn timestamps_follow_the_window() {
    let source = CredentialSource::new(Duration::from_secs(6 * 3600));
    let doc = parse(&source.document("role", at(10_800 * 5 + 42)));
    let updated =
        humantime::parse_rfc3339(doc["LastUpdated"].as_str().expect("str")).expect("rfc3339");
    let expires =
        humantime::parse_rfc3339(doc["Expiration"].as_str().expect("str")).expect("rfc3339");
    assert_eq!(updated, at(10_800 * 5));
    assert_eq!(expires, at(10_800 * 5 + 6 * 3600));
    assert!(doc["Expiration"].as_str().expect("str").ends_with('Z'));
}

#[test]
fn shape_matches_aws() {
    let source = CredentialSource::new(Duration::from_secs(60));
    let doc = source.document("role", SystemTime::now());
    // Key order as AWS sends it.
    let order = [
        "Code",
        "LastUpdated",
        "Type",
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| doc.find(&format!("\"{k}\"")).expect("key present"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    let doc = parse(&doc);
    let key = doc["AccessKeyId"].as_str().expect("str");
    assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
    assert_eq!(doc["SecretAccessKey"].as_str().map(str::len), Some(40));
    assert_eq!(doc["Type"], "AWS-HMAC");
    assert_eq!(doc["Code"], "Success");
}

#[test]
fn alibaba_shape_and_rotation() {
    let source = CredentialSource::new(Duration::from_secs(3600));
    let doc = source.alibaba_document("role", at(1_800_000));
    let order = [
        "AccessKeyId",
        "AccessKeySecret",
        "Expiration",
        "SecurityToken",
        "LastUpdated",
        "Code",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| doc.find(&format!("\"{k}\"")).expect("key present"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    let doc = parse(&doc);
    assert!(doc["AccessKeyId"]
        .as_str()
        .expect("str")
        .starts_with("STS."));
    assert_eq!(doc["Code"], "Success");
    assert!(doc["Expiration"].as_str().expect("str").ends_with('Z'));
    let same = parse(&source.alibaba_document("role", at(1_800_000 + 1799)));
    let next = parse(&source.alibaba_document("role", at(1_800_000 + 1800)));
    assert_eq!(doc, same);
    assert_ne!(doc["AccessKeyId"], next["AccessKeyId"]);
}

#[test]
fn roles_and_processes_get_different_credentials() {
    let source = CredentialSource::new(Duration::from_secs(3600));
    let other = CredentialSource::new(Duration::from_secs(3600));
    let now = at(1_000_000);
    let a = parse(&source.document("a", now));
    let b = parse(&source.document("b", now));
    let a2 = parse(&other.document("a", now));
    assert_ne!(a["AccessKeyId"], b["AccessKeyId"]);
    assert_ne!(a["AccessKeyId"], a2["AccessKeyId"]);
}

#[test]
fn tencent_shape_and_rotation() {
    let source = CredentialSource::new(Duration::from_secs(3600));
    let doc = parse(&source.tencent_document("role", at(1_800_000 + 5)));
    assert!(doc["TmpSecretId"]
        .as_str()
        .expect("str")
        .starts_with("AKID"));
    assert_eq!(doc["Code"], "Success");
    // Expiration is the window's start plus the lifetime, as a number and as RFC 3339.
    assert_eq!(doc["ExpiredTime"].as_u64(), Some(1_800_000 + 3600));
    assert_eq!(
        humantime::parse_rfc3339(doc["Expiration"].as_str().expect("str")).expect("rfc3339"),
        at(1_800_000 + 3600)
    );
    let same = parse(&source.tencent_document("role", at(1_800_000 + 1799)));
    let next = parse(&source.tencent_document("role", at(1_800_000 + 1800)));
    assert_eq!(doc, same);
    assert_ne!(doc["TmpSecretId"], next["TmpSecretId"]);
    assert_ne!(doc["Token"], next["Token"]);
    assert_eq!(next["ExpiredTime"].as_u64(), Some(1_800_000 + 1800 + 3600));
}

#[test]
fn huawei_shape_and_rotation() {
    let source = CredentialSource::new(Duration::from_secs(3600));
    let doc = parse(&source.huawei_document("agency", at(1_800_000)));
    let credential = &doc["credential"];
    assert_eq!(
        credential["expires_at"], "1970-01-21T21:00:00.000000Z",
        "microseconds, UTC"
    );
    for key in ["access", "secret", "securitytoken"] {
        assert!(
            credential[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}"
        );
    }
    let same = parse(&source.huawei_document("agency", at(1_800_000 + 1799)));
    let next = parse(&source.huawei_document("agency", at(1_800_000 + 1800)));
    assert_eq!(doc, same);
    assert_ne!(credential["access"], next["credential"]["access"]);
    assert_ne!(
        credential["securitytoken"],
        next["credential"]["securitytoken"]
    );
    assert_eq!(
        next["credential"]["expires_at"],
        "1970-01-21T21:30:00.000000Z"
    );
}
