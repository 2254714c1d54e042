//! Requests that would get denied material through a guard that read them exactly to a lenient
//! server, one list per way of reading; each list has a test of its own in `tests/bypass.rs`.
//!
//! All but the last two lists use the leniency the deny patterns already assume of a server
//! (trailing dots and spaces trimmed, segments that trim to nothing skipped, ASCII case ignored),
//! applied to GCP's legacy trees and to the aggregate roots of Azure (`/metadata/instance`), OCI
//! (`opc`, `instance`, the member names) and Alibaba (`meta-data/all`), which the guard therefore
//! recognises leniently too.

use super::clouds::raw;
use super::corpus::Case;

fn get(target: &str, header: &str) -> Vec<u8> {
    raw(&format!("GET {target} HTTP/1.1"), header, "")
}

fn cases(prefix: &str, targets: &[&str], header: &str) -> Vec<Case> {
    targets
        .iter()
        .map(|t| (format!("{prefix}: {t}"), get(t, header)))
        .collect()
}

const FLAVOR: &str = "Metadata-Flavor: Google\r\n";
const META: &str = "Metadata: true\r\n";

/// GCP legacy trees spelled so that `Cloud::is_legacy` (a prefix compare after lower-casing) does
/// not see them: with `allow = ["/**"]` they reach `/0.1/` and `v1beta1`, whose kube-env the
/// deny of `/computeMetadata/v1/...` does not name.
pub fn gcp_legacy_spellings() -> Vec<Case> {
    cases(
        "legacy spelling",
        &[
            "/0.1./meta-data/attributes/kube-env",
            "/0.1%20/meta-data/attributes/kube-env",
            "/%200.1/meta-data/attributes/kube-env",
            "/.../0.1/meta-data/attributes/kube-env",
            "/computeMetadata/v1beta1./instance/attributes/kube-env",
            "/computeMetadata/v1beta1%20/instance/attributes/kube-env",
            "/computeMetadata/.../v1beta1/instance/attributes/kube-env",
            "/computeMetadata./v1beta1/instance/attributes/kube-env",
        ],
        FLAVOR,
    )
}

/// Azure's instance document spelled so that `Cloud::aggregate_root` (`under(path,
/// "/metadata/instance")`, exact) does not take it for an aggregate; compute below a trimmed
/// `instance.` is missed the same way.
pub fn azure_document_spellings() -> Vec<Case> {
    cases(
        "document spelling",
        &[
            "/metadata/instance.?api-version=2021-02-01",
            "/metadata/instance%20?api-version=2021-02-01",
            "/metadata/instance./?api-version=2021-02-01",
            "/metadata/.../instance?api-version=2021-02-01",
            "/metadata/instance./compute?api-version=2021-02-01",
            "/metadata/instance%20/compute?api-version=2021-02-01",
            "/metadata/%20instance/compute?api-version=2021-02-01",
        ],
        META,
    )
}

/// OCI's instance document and its `metadata` object spelled so that `Cloud::aggregate_root`
/// (exact `opc` and `instance`, exact-but-case member names) does not see them.
pub fn oci_document_spellings() -> Vec<Case> {
    cases(
        "document spelling",
        &[
            "/opc/v2/instance.",
            "/opc/v2/instance%20",
            "/opc/v2/Instance",
            "/opc/v2/INSTANCE/",
            "/opc/v2/.../instance/",
            "/opc/v2/instance/metadata.",
            "/opc/v2/instance/metadata%20",
            "/opc/v2/instance/.../metadata",
            "/opc/v1/Instance",
        ],
        "Authorization: Bearer Oracle\r\n",
    )
}

/// Alibaba's `meta-data/all` spelled so that `Cloud::aggregate_root` (`strip_suffix("/all")`,
/// exact) does not see it.
pub fn alibaba_all_spellings() -> Vec<Case> {
    cases(
        "all spelling",
        &[
            "/latest/meta-data/ALL",
            "/latest/meta-data/All/",
            "/latest/meta-data/all.",
            "/latest/meta-data/all%20",
            "/latest/meta-data/.../all",
        ],
        "X-aliyun-ecs-metadata-token: tok\r\n",
    )
}

/// Key Vault spelled as a URL reader normalises it (spaces trimmed, default port, dot segments,
/// doubled slashes, `/.default`), escaped twice, or hidden in a value that a decode-then-split
/// reader splits: a deny by `resource` must catch each (it compares values as such a reader
/// does, and escaped separators are refused). Less certain than the path spellings: it depends
/// on how IMDS and Entra ID read `resource`.
pub fn azure_resource_spellings() -> Vec<Case> {
    let token = "/metadata/identity/oauth2/token?api-version=2018-02-01&";
    [
        "resource=https://vault.azure.net//",
        "resource=%20https://vault.azure.net",
        "resource=https://vault.azure.net%20",
        "resource=https://vault.azure.net:443",
        "resource=https://vault.azure.net/./",
        "resource=https://vault.azure.net/.default",
        "resource=https://vault.azure.net%2B",
        "resource=https%253A%252F%252Fvault.azure.net",
        "resource=https://management.azure.com/%26resource%3Dhttps://vault.azure.net",
        "resource=https://management.azure.com/%26client_id%3Dx",
    ]
    .into_iter()
    .map(|q| {
        (
            format!("resource spelling: {q}"),
            get(&format!("{token}{q}"), META),
        )
    })
    .collect()
}

/// A free-text value (`last_etag`) that carries an escaped `&` or `;`: a server that decodes the
/// query before splitting it would read `recursive=true`, so such values are refused. (Least
/// certain: Go's and most readers split first.)
pub fn gcp_decode_before_split() -> Vec<Case> {
    cases(
        "decode-then-split",
        &[
            "/computeMetadata/v1/instance/attributes/?last_etag=x%26recursive%3Dtrue",
            "/computeMetadata/v1/instance/attributes/?last_etag=x%3Brecursive%3Dtrue",
        ],
        FLAVOR,
    )
}
