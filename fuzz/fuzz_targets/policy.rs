//! Fuzzes the decision: it never panics, the decision for a target is the decision for its
//! canonical form, and nothing the policy lets the frontend pod read is, to a lenient server, a
//! path it is denied.
//!
//! The first byte picks the method and whether a token is sent; the rest is the target.
#![no_main]

#[path = "../../tests/bypass/lenient.rs"]
mod lenient;

use std::collections::BTreeMap;

use imds_guard_core::imds::Method;
use imds_guard_core::index::Pod;
use imds_guard_core::policy::pattern::PathPattern;
use imds_guard_core::target::parse_target;
use imds_guard_core::policy::{Facts, Imdsv2, Policy, Rule, Selector, Verdict};
use libfuzzer_sys::fuzz_target;

fn pod(app: &str) -> Pod {
    Pod {
        namespace: "fuzz".into(),
        name: format!("{app}-0"),
        uid: format!("uid-{app}"),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        namespace_labels: BTreeMap::new(),
        owner: None,
        host_network: false,
    }
}

fn rule(app: &str, allow: &[&str], deny: &[&str], require_tokens: bool) -> Rule {
    let patterns = |list: &[&str]| -> Vec<PathPattern> {
        list.iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect()
    };
    Rule {
        name: app.into(),
        selector: Selector {
            pod_labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            ..Selector::default()
        },
        allow: patterns(allow),
        deny: patterns(deny),
        require_tokens,
        max_token_ttl_seconds: None,
    }
}

fn policy() -> Policy {
    Policy::new(
        vec![
            rule(
                "frontend",
                &["/latest/meta-data/**"],
                &["/latest/meta-data/iam/**"],
                false,
            ),
            rule(
                "batch",
                &[
                    "/latest/meta-data/*/instance-id",
                    "/latest/dynamic/**/document",
                ],
                &[
                    "/latest/**/user-data",
                    "/latest/meta-data/tags/instance/aws:name",
                ],
                true,
            ),
            rule("inspector", &["/latest/**"], &[], false),
        ],
        Imdsv2::default(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let method = [Method::Get, Method::Head, Method::Put, Method::Other][usize::from(selector & 3)];
    let has_token = selector & 4 != 0;
    let target = String::from_utf8_lossy(rest);
    let Ok(path) = parse_target(&target) else {
        return;
    };
    let canonical = parse_target(path.as_str()).expect("the canonical form is accepted");
    let policy = policy();
    for app in ["frontend", "batch", "inspector", "nobody"] {
        let pod = pod(app);
        let decide = |path| {
            policy.decide(
                &pod,
                &Facts::new(method, path, has_token),
            )
        };
        let decision = decide(&path);
        assert_eq!(decision, decide(&canonical), "{target:?} for {app}");
        if app == "frontend" && decision.verdict == Verdict::Allow && method != Method::Put {
            for reading in lenient::readings(path.as_str()) {
                let allowed = reading.starts_with(&["latest".to_owned(), "meta-data".to_owned()])
                    && reading.get(2).map(String::as_str) != Some("iam");
                assert!(
                    allowed,
                    "{target:?} allowed but reads as /{}",
                    reading.join("/")
                );
            }
        }
    }
});
