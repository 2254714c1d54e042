//! Generalisation: identifiers become `*`, field names stay, sensitive paths stay explicit.

use super::*;

/// Paths read, each by the pods listed: `("/a/b", &[0, 1])`.
fn reads(list: &[(&str, &[u32])]) -> BTreeMap<(Vec<String>, String), Reads> {
    let mut out: BTreeMap<(Vec<String>, String), Reads> = BTreeMap::new();
    for (path, pods) in list {
        let (path, query) = path
            .split_once('?')
            .map_or((*path, String::new()), |(p, q)| (p, format!("?{q}")));
        let key = (
            path.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            query,
        );
        let r = out.entry(key).or_default();
        r.requests += pods.len() as u64;
        r.paths = 1;
        r.pods.extend(pods.iter().copied());
    }
    out
}

fn patterns(cloud: Cloud, list: &[(&str, &[u32])]) -> Vec<String> {
    generalise(cloud, reads(list))
        .into_iter()
        .map(|m| text(&m.segments) + &m.query)
        .collect()
}

#[test]
fn exact_paths_stay_exact() {
    assert_eq!(
        patterns(Cloud::Aws, &[("/latest/meta-data/instance-id", &[0, 1, 2])]),
        ["/latest/meta-data/instance-id"]
    );
    assert_eq!(patterns(Cloud::Gcp, &[("/", &[0])]), ["/"]);
}

#[test]
fn field_names_read_side_by_side_are_not_merged() {
    let fields: &[(&str, &[u32])] = &[
        ("/latest/meta-data/instance-id", &[0, 1]),
        ("/latest/meta-data/ami-id", &[0, 1]),
        ("/latest/meta-data/placement/region", &[0]),
    ];
    assert_eq!(
        patterns(Cloud::Aws, fields),
        [
            "/latest/meta-data/ami-id",
            "/latest/meta-data/instance-id",
            "/latest/meta-data/placement/region"
        ]
    );
}

#[test]
fn identifiers_that_vary_between_pods_become_one_segment() {
    // Each pod has its own MAC and reads two fields of it: the MAC varies, the fields do not.
    let macs: &[(&str, &[u32])] = &[
        (
            "/latest/meta-data/network/interfaces/macs/0e:1/local-ipv4s",
            &[0],
        ),
        (
            "/latest/meta-data/network/interfaces/macs/0e:1/subnet-id",
            &[0],
        ),
        (
            "/latest/meta-data/network/interfaces/macs/0e:2/local-ipv4s",
            &[1],
        ),
        (
            "/latest/meta-data/network/interfaces/macs/0e:2/subnet-id",
            &[1],
        ),
        (
            "/latest/meta-data/network/interfaces/macs/0e:3/local-ipv4s",
            &[2],
        ),
    ];
    assert_eq!(
        patterns(Cloud::Aws, macs),
        [
            "/latest/meta-data/network/interfaces/macs/*/local-ipv4s",
            "/latest/meta-data/network/interfaces/macs/*/subnet-id"
        ]
    );
    // Never across lengths, never `**`.
    let lengths: &[(&str, &[u32])] = &[("/latest/a/x", &[0]), ("/latest/a/y/z", &[1])];
    assert_eq!(
        patterns(Cloud::Aws, lengths),
        ["/latest/a/x", "/latest/a/y/z"]
    );
    let made = generalise(Cloud::Aws, reads(macs));
    assert_eq!(made[0].reads.paths, 3);
    assert_eq!(made[0].reads.requests, 3);
    assert_eq!(made[0].reads.pods.len(), 3);
}

#[test]
fn a_varying_role_becomes_a_star_within_the_credential_path_only() {
    let roles: &[(&str, &[u32])] = &[
        ("/latest/meta-data/iam/security-credentials/", &[0, 1, 2]),
        ("/latest/meta-data/iam/security-credentials/role-a", &[0]),
        ("/latest/meta-data/iam/security-credentials/role-b", &[1]),
        ("/latest/meta-data/iam/security-credentials/role-c", &[2]),
    ];
    let made = generalise(Cloud::Aws, reads(roles));
    let texts: Vec<String> = made.iter().map(|m| text(&m.segments)).collect();
    assert_eq!(
        texts,
        [
            "/latest/meta-data/iam/security-credentials",
            "/latest/meta-data/iam/security-credentials/*"
        ]
    );
    assert!(!made[0].sensitive && made[1].sensitive);
    // One pod with one role: exact.
    assert_eq!(
        patterns(
            Cloud::Aws,
            &[("/latest/meta-data/iam/security-credentials/role-a", &[0])]
        ),
        ["/latest/meta-data/iam/security-credentials/role-a"]
    );
    // A credential path never merges with an ordinary one, nor does a merge of ordinary paths
    // reach a credential path.
    let mixed: &[(&str, &[u32])] = &[
        ("/latest/meta-data/iam/security-credentials/role-a", &[0]),
        ("/latest/meta-data/iam/other-thing/role-a", &[1]),
    ];
    assert_eq!(
        patterns(Cloud::Aws, mixed),
        [
            "/latest/meta-data/iam/other-thing/role-a",
            "/latest/meta-data/iam/security-credentials/role-a"
        ]
    );
    let reaching: &[(&str, &[u32])] = &[
        ("/latest/meta-data/iam/x/role-a", &[0]),
        ("/latest/meta-data/iam/y/role-a", &[1]),
    ];
    assert_eq!(
        patterns(Cloud::Aws, reaching),
        [
            "/latest/meta-data/iam/x/role-a",
            "/latest/meta-data/iam/y/role-a"
        ]
    );
}

#[test]
fn gcp_accounts_merge_within_their_credential_path_and_azure_identities_never() {
    let accounts: &[(&str, &[u32])] = &[
        (
            "/computeMetadata/v1/instance/service-accounts/a@x/token",
            &[0],
        ),
        (
            "/computeMetadata/v1/instance/service-accounts/b@x/token",
            &[1],
        ),
        (
            "/computeMetadata/v1/instance/service-accounts/a@x/email",
            &[0],
        ),
        (
            "/computeMetadata/v1/instance/service-accounts/b@x/email",
            &[1],
        ),
    ];
    assert_eq!(
        patterns(Cloud::Gcp, accounts),
        [
            "/computeMetadata/v1/instance/service-accounts/*/email",
            "/computeMetadata/v1/instance/service-accounts/*/token"
        ]
    );
    // Concealed attributes stay explicit too.
    let concealed: &[(&str, &[u32])] = &[
        ("/computeMetadata/v1/instance/attributes/kube-env", &[0]),
        ("/computeMetadata/v1/instance/attributes/cluster-name", &[1]),
    ];
    assert_eq!(
        patterns(Cloud::Gcp, concealed),
        [
            "/computeMetadata/v1/instance/attributes/cluster-name",
            "/computeMetadata/v1/instance/attributes/kube-env"
        ]
    );
    // `/metadata/identity/**` has no `*` to merge into: every path stays.
    let identity: &[(&str, &[u32])] = &[
        ("/metadata/identity/oauth2/token?resource=https://a", &[0]),
        ("/metadata/identity/oauth2/token?resource=https://b", &[1]),
        ("/metadata/identity/info", &[0]),
        ("/metadata/identity/other", &[1]),
    ];
    assert_eq!(
        patterns(Cloud::Azure, identity),
        [
            "/metadata/identity/info",
            "/metadata/identity/oauth2/token?resource=https://a",
            "/metadata/identity/oauth2/token?resource=https://b",
            "/metadata/identity/other"
        ]
    );
}

#[test]
fn merging_is_stable_and_covered_patterns_are_absorbed() {
    // `a/*` made from pods 0 and 1; pod 0 also read `b/x`... merged again at the first segment
    // only where the pods differ.
    let list: &[(&str, &[u32])] = &[
        ("/latest/a/x", &[0]),
        ("/latest/a/y", &[1]),
        ("/latest/b/x", &[2]),
        ("/latest/b/y", &[3]),
    ];
    assert_eq!(patterns(Cloud::Aws, list), ["/latest/*/*"]);
    let once = patterns(Cloud::Aws, list);
    assert_eq!(once, patterns(Cloud::Aws, list), "deterministic");
    // Pod 0 read two of the values: field names, kept.
    let fields: &[(&str, &[u32])] = &[
        ("/latest/a/x", &[0]),
        ("/latest/a/y", &[1]),
        ("/latest/a/z", &[0]),
    ];
    assert_eq!(
        patterns(Cloud::Aws, fields),
        ["/latest/a/x", "/latest/a/y", "/latest/a/z"]
    );
    // A pattern another covers is absorbed into it.
    let reads = |n: u64| {
        (
            Reads {
                requests: n,
                pods: [0].into(),
                paths: 1,
            },
            false,
        )
    };
    let mut items: Items = [
        ((String::new(), segments("/latest/a/*")), reads(2)),
        ((String::new(), segments("/latest/a/z")), reads(5)),
        (
            ("?resource=r".to_owned(), segments("/latest/a/z")),
            reads(1),
        ),
    ]
    .into();
    absorb_covered(&mut items);
    assert_eq!(items.len(), 2, "other constraints are another pattern");
    assert_eq!(
        items[&(String::new(), segments("/latest/a/*"))].0.requests,
        7
    );
}

#[test]
fn overlaps_and_within() {
    let p = |t: &str| segments(t);
    assert!(overlaps(&p("/a/*/c"), &p("/a/b/*")));
    assert!(!overlaps(&p("/a/*/c"), &p("/a/b/d")));
    assert!(overlaps(&p("/metadata/*/x"), &p("/metadata/identity/**")));
    assert!(overlaps(&p("/a"), &p("/a/**")));
    assert!(!overlaps(&p("/b/c"), &p("/a/**")));
    assert!(within(&p("/a/b"), &p("/a/*")));
    assert!(!within(&p("/a/*"), &p("/a/b")));
    assert!(within(&p("/a/*/c"), &p("/a/**")));
    assert!(within(&p("/a"), &p("/a/**")));
    assert!(!within(&p("/a/b"), &p("/a/b/c")));
}
