//! Suggest and replay on logs made here: the rules suggested replay without a change on the log
//! they came from, and deny what no workload read; a narrowed policy's breakage is reported
//! exactly; workloads are grouped as asked.

use super::*;
use crate::cloud::Cloud;
use crate::imds::Method;
use crate::policy::{Facts, Verdict};
use imds_guard::config::{self, Config};

/// One audit line as the guard writes it (the fields read back, and a few others).
struct L<'a> {
    pod: &'a str,
    labels: serde_json::Value,
    owner: Option<(&'a str, &'a str)>,
    method: &'a str,
    path: &'a str,
    decision: &'a str,
    reason: &'a str,
    token: bool,
}

fn l<'a>(pod: &'a str, labels: serde_json::Value, path: &'a str) -> L<'a> {
    L {
        pod,
        labels,
        owner: None,
        method: "GET",
        path,
        decision: "would-deny",
        reason: "no-rule",
        token: false,
    }
}

impl L<'_> {
    fn text(&self) -> String {
        serde_json::json!({
            "ts": "2026-11-23T11:02:03.456Z", "src": "10.0.0.1",
            "pod": self.pod, "pod_uid": format!("uid-{}", self.pod),
            "labels": self.labels,
            "owner": self.owner.map(|(k, n)| serde_json::json!({"kind": k, "name": n})),
            "method": self.method, "path": self.path, "decision": self.decision,
            "reason": self.reason, "rule": null, "status": 200,
            "imds_version": if self.token || self.method == "PUT" { "v2" } else { "v1" },
            "upstream_ms": 0.2, "error": null, "cache": null, "token": null, "bytes": 3,
            "duration_ms": 0.3,
        })
        .to_string()
    }
}

fn log(lines: &[L<'_>]) -> Log {
    let mut log = Log::default();
    for line in lines {
        log.add_line(&line.text());
    }
    log
}

fn app(name: &str) -> serde_json::Value {
    serde_json::json!({ "app": name })
}

/// The guard's own config check, as the command line hands it to `suggest`.
fn parse(text: &str) -> Result<std::sync::Arc<crate::policy::Policy>, String> {
    config::parse(text)
        .map(|config| config.policy)
        .map_err(|e| e.to_string())
}

fn parsed(cloud: Cloud, rules: &str) -> Config {
    config::parse(&format!("[upstream]\ncloud = \"{cloud}\"\n{rules}"))
        .unwrap_or_else(|e| panic!("{e}\n{rules}"))
}

const CREDS: &str = "/latest/meta-data/iam/security-credentials/";

/// Three workloads: one reads credentials with tokens, one only its instance id, one runs pods
/// with a different role each.
fn three_workloads() -> Vec<L<'static>> {
    let mut lines = Vec::new();
    for _ in 0..2 {
        let put = L {
            method: "PUT",
            ..l("shop/creds-1", app("creds"), "/latest/api/token")
        };
        lines.push(put);
        for path in [
            CREDS,
            "/latest/meta-data/iam/security-credentials/node-role",
        ] {
            lines.push(L {
                token: true,
                ..l("shop/creds-1", app("creds"), path)
            });
        }
    }
    for pod in ["web/id-1", "web/id-2"] {
        lines.push(l(pod, app("id"), "/latest/meta-data/instance-id"));
    }
    for (pod, role) in [
        (
            "batch/roles-1",
            "/latest/meta-data/iam/security-credentials/role-a",
        ),
        (
            "batch/roles-2",
            "/latest/meta-data/iam/security-credentials/role-b",
        ),
        (
            "batch/roles-3",
            "/latest/meta-data/iam/security-credentials/role-c",
        ),
    ] {
        lines.push(l(pod, app("roles"), CREDS));
        lines.push(l(pod, app("roles"), role));
    }
    lines
}

fn allowed(config: &Config, pod: &PodFacts, path: &str) -> bool {
    let (path, query) = crate::query::read(config.policy.cloud(), path).unwrap();
    let facts = Facts::in_cloud(config.policy.cloud(), Method::Get, &path, &query, true);
    config.policy.decide(&pod.pod(), &facts).verdict == Verdict::Allow
}

#[test]
fn suggested_rules_replay_unchanged_and_deny_what_no_workload_read() {
    let log = log(&three_workloads());
    let suggestion = suggest::suggest(&log, Cloud::Aws, &GroupBy::Default, &parse);
    assert!(suggestion.notes.is_empty(), "{:?}", suggestion.notes);
    let text = &suggestion.text;
    let config = parsed(Cloud::Aws, text);
    assert_eq!(config.policy.rules().len(), 3, "{text}");
    let report = replay::replay(&log, &config.policy, &GroupBy::Default);
    assert!(
        report.ok() && report.opened.is_empty(),
        "{}",
        report.render()
    );
    assert_eq!(report.unchanged_served, 14);
    // The credential reader's role stays named, the roles' role is a `*` of the credential path.
    assert!(
        text.contains("\"/latest/meta-data/iam/security-credentials/node-role\""),
        "{text}"
    );
    assert!(
        text.contains("\"/latest/meta-data/iam/security-credentials/*\""),
        "{text}"
    );
    assert!(!text.contains("**"), "{text}");
    // Tokens were carried by every read of one workload only.
    assert_eq!(text.matches("require_tokens = true").count(), 1, "{text}");
    let creds = config
        .policy
        .rules()
        .iter()
        .find(|r| r.name.contains("creds"))
        .unwrap();
    assert!(creds.require_tokens);
    // What nobody read is denied.
    let pod = |i: usize| &log.pods[i];
    let id = log.pods.iter().position(|p| p.name == "id-1").unwrap();
    assert!(allowed(&config, pod(id), "/latest/meta-data/instance-id"));
    assert!(!allowed(&config, pod(id), "/latest/meta-data/ami-id"));
    assert!(!allowed(&config, pod(id), CREDS));
    let creds = log.pods.iter().position(|p| p.name == "creds-1").unwrap();
    assert!(!allowed(
        &config,
        pod(creds),
        "/latest/meta-data/iam/security-credentials/role-a"
    ));
    assert!(!allowed(&config, pod(creds), "/latest/user-data"));
    let roles = log.pods.iter().position(|p| p.name == "roles-1").unwrap();
    assert!(allowed(
        &config,
        pod(roles),
        "/latest/meta-data/iam/security-credentials/role-z"
    ));
    assert!(!allowed(&config, pod(roles), "/latest/meta-data/iam/info"));
}

#[test]
fn a_narrowed_policy_is_reported_exactly() {
    let log = log(&three_workloads());
    let text = suggest::suggest(&log, Cloud::Aws, &GroupBy::Default, &parse).text;
    let narrowed = text.replace(
        "\"/latest/meta-data/iam/security-credentials/*\"",
        "\"/latest/meta-data/iam/security-credentials/role-a\"",
    );
    let report = replay::replay(
        &log,
        &parsed(Cloud::Aws, &narrowed).policy,
        &GroupBy::Default,
    );
    assert!(!report.ok());
    let lines: Vec<String> = report.broken.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "batch app=roles  /latest/meta-data/iam/security-credentials/role-b  allowed → denied (path-not-allowed, -)  1",
            "batch app=roles  /latest/meta-data/iam/security-credentials/role-c  allowed → denied (path-not-allowed, -)  1",
        ]
    );
    assert!(report
        .render()
        .starts_with("allowed → denied: 2 request(s) to 2 path(s)\n"));
    assert_eq!(report.unchanged_served, 12);
}

#[test]
fn refused_requests_are_replayed_and_protocol_refusals_are_not() {
    let mut lines = vec![
        L {
            decision: "deny",
            reason: "path-not-allowed",
            ..l("web/a", app("a"), "/latest/meta-data/ami-id")
        },
        L {
            decision: "deny",
            reason: "bad-request",
            ..l("web/a", app("a"), "/latest/../x")
        },
        l("web/a", app("a"), "/latest/meta-data/instance-id"),
    ];
    lines.push(L {
        pod: "",
        ..l("", app("a"), "/latest/meta-data/instance-id")
    });
    let mut log = log(&lines);
    // An unknown source: pod null.
    log.add_line(&lines[3].text().replace(r#""pod":"""#, r#""pod":null"#));
    assert_eq!(log.malformed, 1, "an empty pod name is not namespace/name");
    assert_eq!(log.unidentified, 1);
    assert_eq!(log.refused_before_policy.get("bad-request"), Some(&1));
    let config = parsed(
        Cloud::Aws,
        "[[rules]]\nname = \"a\"\nnamespaces = [\"web\"]\nallow = [\"/latest/meta-data/*\"]\n",
    );
    let report = replay::replay(&log, &config.policy, &GroupBy::Default);
    assert!(report.ok());
    assert_eq!(
        report.opened.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["web app=a  /latest/meta-data/ami-id  denied (path-not-allowed) → allowed (path-allowed, a)  1"]
    );
    // Suggest counts the refused one and does not allow it.
    let text = suggest::suggest(&log, Cloud::Aws, &GroupBy::Default, &parse).text;
    assert!(
        text.contains("1 refused by the policy in force (not included)"),
        "{text}"
    );
    assert!(!text.contains("ami-id\""), "{text}");
}

#[test]
fn workloads_are_grouped_by_label_owner_or_namespace() {
    let both = serde_json::json!({"app.kubernetes.io/name": "api", "app": "legacy", "team": "t"});
    let lines = [
        L {
            owner: Some(("Deployment", "api")),
            ..l("shop/api-1", both.clone(), "/latest/meta-data/instance-id")
        },
        L {
            owner: Some(("Deployment", "api")),
            ..l(
                "shop/api-2",
                serde_json::json!({"app.kubernetes.io/name": "api", "team": "u"}),
                "/latest/meta-data/instance-id",
            )
        },
        L {
            owner: Some(("StatefulSet", "db")),
            ..l(
                "shop/db-0",
                serde_json::json!({}),
                "/latest/meta-data/placement/region",
            )
        },
        l(
            "shop/bare",
            serde_json::json!({}),
            "/latest/meta-data/ami-id",
        ),
    ];
    let log = log(&lines);
    let names = |group_by: &GroupBy| {
        let mut all: Vec<String> = log
            .pods
            .iter()
            .map(|p| p.workload(group_by).to_string())
            .collect();
        all.dedup();
        all
    };
    assert_eq!(
        names(&GroupBy::Default),
        [
            "shop app.kubernetes.io/name=api",
            "shop StatefulSet/db",
            "shop (namespace)"
        ]
    );
    assert_eq!(
        names(&GroupBy::parse("team")),
        [
            "shop team=t",
            "shop team=u",
            "shop StatefulSet/db",
            "shop (namespace)"
        ]
    );
    assert_eq!(
        names(&GroupBy::parse("owner")),
        [
            "shop Deployment/api",
            "shop StatefulSet/db",
            "shop (namespace)"
        ]
    );
    let text = suggest::suggest(&log, Cloud::Aws, &GroupBy::parse("owner"), &parse).text;
    assert!(text.contains("# grouped by owner Deployment/api, which is no selector: selected by the labels its pods share"), "{text}");
    assert!(
        text.contains("pod_labels = { \"app.kubernetes.io/name\" = \"api\" }"),
        "{text}"
    );
    assert!(text.contains("# grouped by owner StatefulSet/db, which is no selector, and its pods share no carried label"), "{text}");
    assert!(
        text.contains(
            "# no workload label or owner carried: this rule selects the whole namespace"
        ),
        "{text}"
    );
    let config = parsed(Cloud::Aws, &text);
    assert!(replay::replay(&log, &config.policy, &GroupBy::Default).ok());
}

#[test]
fn tokens_are_required_only_where_every_read_of_every_selected_pod_carried_one() {
    let lines = [
        L {
            token: true,
            ..l("ns/a-1", app("a"), "/latest/meta-data/instance-id")
        },
        L {
            token: true,
            ..l("ns/b-1", app("b"), "/latest/meta-data/instance-id")
        },
        l("ns/b-2", app("b"), "/latest/meta-data/instance-id"),
        // No label: its rule selects the namespace, a-1 and b-* included.
        L {
            token: true,
            ..l("ns/c", serde_json::json!({}), "/latest/meta-data/ami-id")
        },
    ];
    let log = log(&lines);
    let text = suggest::suggest(&log, Cloud::Aws, &GroupBy::Default, &parse).text;
    let config = parsed(Cloud::Aws, &text);
    let required: Vec<&str> = config
        .policy
        .rules()
        .iter()
        .filter(|r| r.require_tokens)
        .map(|r| &*r.name)
        .collect();
    assert_eq!(required, ["suggested: ns app=a"], "{text}");
    assert!(replay::replay(&log, &config.policy, &GroupBy::Default).ok());
}

#[test]
fn a_workload_that_only_asked_for_tokens_gets_the_token_path() {
    let log = log(&[L {
        method: "PUT",
        decision: "allow",
        reason: "token-allowed",
        ..l("ns/t", app("t"), "/latest/api/token")
    }]);
    let text = suggest::suggest(&log, Cloud::Aws, &GroupBy::Default, &parse).text;
    assert!(
        text.contains("allow = [\n    \"/latest/api/token\","),
        "{text}"
    );
    let config = parsed(Cloud::Aws, &text);
    let report = replay::replay(&log, &config.policy, &GroupBy::Default);
    assert!(report.ok() && report.unchanged_served == 1);
    assert!(!allowed(
        &config,
        &log.pods[0],
        "/latest/meta-data/instance-id"
    ));
}

#[test]
fn queries_keep_the_keys_that_choose_and_aggregates_get_what_they_need() {
    let azure = log(&[
        l("vault/kv", app("kv"), "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"),
        l("vault/kv", app("kv"), "/metadata/instance/compute/location?api-version=2021-02-01&format=text"),
        l("vault/kv", app("kv"), "/metadata/instance?api-version=2021-02-01"),
    ]);
    let text = suggest::suggest(&azure, Cloud::Azure, &GroupBy::Default, &parse).text;
    assert!(
        text.contains("\"/metadata/identity/oauth2/token?resource=https://vault.azure.net\""),
        "{text}"
    );
    assert!(
        text.contains("\"/metadata/instance/**\",  # 1 request(s); an aggregate read"),
        "{text}"
    );
    assert!(!text.contains("api-version"), "{text}");
    let config = parsed(Cloud::Azure, &text);
    assert!(replay::replay(&azure, &config.policy, &GroupBy::Default).ok());
    assert!(!allowed(&config, &azure.pods[0], "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"));

    // google-auth: the account recursively, then its token; the token stays allowed, other
    // accounts' tokens are not reached. A recursive read of the whole instance cannot pass.
    let gcp = log(&[
        l("ml/train", app("train"), "/computeMetadata/v1/instance/service-accounts/default/?recursive=true"),
        l("ml/train", app("train"), "/computeMetadata/v1/instance/service-accounts/default/token"),
        l("ml/eval", app("eval"), "/computeMetadata/v1/instance/service-accounts/default/?recursive=true"),
        l("ml/eval", app("eval"), "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://x&format=full"),
    ]);
    let suggestion = suggest::suggest(&gcp, Cloud::Gcp, &GroupBy::Default, &parse);
    let text = &suggestion.text;
    assert!(
        suggestion.notes.is_empty(),
        "{:?}\n{text}",
        suggestion.notes
    );
    let config = parsed(Cloud::Gcp, text);
    assert!(
        replay::replay(&gcp, &config.policy, &GroupBy::Default).ok(),
        "{text}"
    );
    let eval = gcp.pods.iter().position(|p| p.name == "eval").unwrap();
    assert!(
        text.contains(
            "deny = [\n    \"/computeMetadata/v1/instance/service-accounts/default/token\""
        ),
        "{text}"
    );
    assert!(!allowed(
        &config,
        &gcp.pods[eval],
        "/computeMetadata/v1/instance/service-accounts/default/token"
    ));
    assert!(text.contains("identity?audience=https://x\""), "{text}");

    let whole = log(&[l(
        "ml/x",
        app("x"),
        "/computeMetadata/v1/instance/?recursive=true",
    )]);
    let suggestion = suggest::suggest(&whole, Cloud::Gcp, &GroupBy::Default, &parse);
    assert!(
        suggestion.notes[0].starts_with("1 served request(s) cannot be allowed"),
        "{:?}",
        suggestion.notes
    );
    assert!(
        suggestion.notes[1].contains("aggregate-denied"),
        "{:?}",
        suggestion.notes
    );
}

#[test]
fn malformed_lines_are_counted_and_said() {
    let good = l("web/a", app("a"), "/latest/meta-data/instance-id").text();
    let mut log = Log::default();
    for line in [
        good.as_str(),
        "2026-11-23T11:02:03Z  INFO imds_guard: a log line",
        &good[..40],
        r#"{"some":"other json"}"#,
        "",
    ] {
        log.add_line(line);
    }
    assert_eq!((log.lines, log.malformed), (1, 2));
    let notes = log.skipped();
    assert!(
        notes[0].starts_with("2 malformed audit line(s) skipped (first: "),
        "{notes:?}"
    );
    let suggestion = suggest::suggest(&log, Cloud::Aws, &GroupBy::Default, &parse);
    assert!(
        suggestion.notes[0].starts_with("2 malformed"),
        "{:?}",
        suggestion.notes
    );
}

#[test]
fn rules_that_cannot_be_replayed_exactly_are_named() {
    let log = log(&[l("web/a", app("a"), "/latest/meta-data/instance-id")]);
    let config = parsed(
        Cloud::Aws,
        "[[rules]]\nname = \"tier\"\npod_labels = { tier = \"x\" }\nallow = [\"/latest/**\"]\n\
         [[rules]]\nname = \"team\"\nnamespace_labels = { team = \"x\" }\nallow = [\"/latest/**\"]\n\
         [[rules]]\nname = \"app\"\npod_labels = { app = \"a\" }\nallow = [\"/latest/**\"]\n",
    );
    let warnings = replay::warnings(&log, &config.policy);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("rules[0] (tier) selects on label \"tier\""));
    assert!(warnings[1].starts_with("rules[1] (team) selects on namespace labels"));
}
