//! `deploy/components/monitoring`: the alerts, the dashboard and the objects that install them.
//!
//! - The rules pass `promtool check rules`, and `promtool test rules` runs
//!   tests/monitoring/rules_test.yaml: every alert fires on its case and stays quiet on the series
//!   beside it, with its summary and description rendered as written there.
//! - Every alert has a severity and a summary, a description and a runbook.
//! - The PrometheusRule's spec is prometheus-rules.yaml's document; the Helm chart's copies of the
//!   rules and of the dashboard are byte-identical to the component's.
//! - The component renders over the base: its PodMonitor selects the DaemonSet's pods and scrapes
//!   the admin port by name (the port the config's `admin_listen` uses), with the job label the
//!   alerts select on; the dashboard's ConfigMap carries the file as it is, labelled for Grafana.
//!   `kubernetes-validate` has no schema for monitoring.coreos.com, so these objects' shape is
//!   checked here; tests/controlplane_rbac.rs has a real API server with the operator's CRDs
//!   accept them.
//! - The dashboard passes Grafana's schema (tests/monitoring/dashboard-check) and holds together
//!   (ids, positions, variables, a query in every panel).
//! - Every metric an alert or a panel reads is one a real guard exposes (tests/monitoring/scrape.rs),
//!   or the real canary's (`imds-guard canary` run against one of those guards, its series read
//!   with job="imds-guard-canary"), or the one guard family listed there as exposed only where
//!   these tests cannot put a guard (a pod interface with another BPF program).
//! - The canary's PodMonitor selects the canary's pods (components/canary) and scrapes their
//!   metrics port by name, as job="imds-guard-canary", which the canary's alerts select on.
//!
//! promtool (tests/support/promtool/build.sh), `go`, `kubectl` and python3 with PyYAML are
//! required: a missing one fails the tests, saying how to install it; they never skip.

#[allow(dead_code)]
#[path = "monitoring/dashboard.rs"]
mod dashboard;
#[allow(dead_code)]
#[path = "monitoring/promql.rs"]
mod promql;
use crate::render;
#[path = "monitoring/scrape.rs"]
mod scrape;
use crate::support;
#[allow(dead_code)]
#[path = "monitoring/tools.rs"]
mod tools;

use std::collections::BTreeSet;

use serde_json::Value;

use tools::{component, root, run_promtool, yaml, yaml_file};

const RULES: &str = "deploy/components/monitoring/prometheus-rules.yaml";
const DASHBOARD: &str = "deploy/components/monitoring/grafana-dashboard.json";
const HELM_FILES: &str = "deploy/helm/imds-guard/files/monitoring";

/// The rules file's document.
fn rules() -> Value {
    let mut docs = yaml_file(&root().join(RULES));
    assert_eq!(docs.len(), 1, "{RULES} holds one document");
    docs.remove(0)
}

/// Every alerting rule, across groups.
fn alerts(rules: &Value) -> Vec<&Value> {
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

#[test]
fn promtool_checks_the_rules() {
    let path = root().join(RULES);
    let (ok, out) = run_promtool(&[
        "check",
        "rules",
        "--lint=all",
        "--lint-fatal",
        path.to_str().unwrap(),
    ]);
    assert!(ok, "promtool check rules {RULES}:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_fires_on_its_case_and_not_beside_it() {
    let rules = rules();
    let runbooks: Vec<(String, String)> = alerts(&rules)
        .iter()
        .map(|a| {
            let name = a["alert"].as_str().unwrap().to_owned();
            let runbook = a["annotations"]["runbook"].as_str().unwrap_or_default();
            assert!(
                !runbook.contains("{{"),
                "{name}: the runbook is plain text (the unit tests copy it)"
            );
            (name, runbook.to_owned())
        })
        .collect();
    let mut tests = yaml_file(&root().join("tests/monitoring/rules_test.yaml")).remove(0);
    // Which alerts were seen firing and seen quiet.
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for group in tests["tests"].as_array_mut().expect("tests") {
        for case in group["alert_rule_test"]
            .as_array_mut()
            .expect("alert_rule_test")
        {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let runbook = &runbooks
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("rules_test.yaml tests {name}, which is no alert"))
                .1;
            let expected = case["exp_alerts"].as_array_mut().expect("exp_alerts");
            if expected.is_empty() {
                quiet.insert(name.clone());
            } else {
                fired.insert(name.clone());
            }
            for alert in expected {
                let annotations = alert["exp_annotations"].as_object_mut().unwrap_or_else(|| {
                    panic!("{name}: exp_annotations with summary and description")
                });
                assert!(
                    annotations.contains_key("summary") && annotations.contains_key("description"),
                    "{name}: expected alerts state their summary and description"
                );
                assert!(
                    !annotations.contains_key("runbook"),
                    "{name}: the runbook is filled in from the rules"
                );
                annotations.insert("runbook".into(), Value::String(runbook.clone()));
            }
        }
    }
    let names: BTreeSet<String> = runbooks.into_iter().map(|(n, _)| n).collect();
    assert_eq!(fired, names, "every alert needs a case where it fires");
    assert_eq!(
        quiet, names,
        "every alert needs a case where it does not fire"
    );

    // JSON is YAML: the cases as promtool reads them, with the rules by absolute path.
    tests["rule_files"] = Value::Array(vec![Value::String(
        root().join(RULES).to_str().unwrap().to_owned(),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules_test.json");
    std::fs::write(&file, serde_json::to_string_pretty(&tests).unwrap()).unwrap();
    let (ok, out) = run_promtool(&["test", "rules", file.to_str().unwrap()]);
    assert!(
        ok,
        "promtool test rules tests/monitoring/rules_test.yaml:\n{out}"
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_says_what_it_means_and_what_to_do() {
    let rules = rules();
    let alerts = alerts(&rules);
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    for wanted in [
        "ImdsGuardDown",
        "ImdsGuardNotReady",
        "ImdsGuardNetfilterRulesMissing",
        "ImdsGuardWatchFailing",
        "ImdsGuardAuditLinesDropped",
        "ImdsGuardDenialRateJump",
        "ImdsGuardUpstreamErrors",
        "ImdsGuardRateLimited",
        "ImdsGuardNodeUnprotected",
        "ImdsGuardCanaryUnseen",
        "ImdsGuardNetfilterBypassSuspected",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing: {names:?}");
    }
    let unique: BTreeSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "alert names repeat: {names:?}");
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        let severity = alert["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{name}: severity critical or warning, not {severity:?}"
        );
        for key in ["summary", "description", "runbook"] {
            let text = alert["annotations"][key].as_str().unwrap_or_default();
            assert!(text.len() > 20, "{name}: annotation {key} missing or empty");
        }
        let annotations = alert["annotations"].as_object().unwrap();
        assert_eq!(
            annotations.len(),
            3,
            "{name}: summary, description, runbook"
        );
    }
}

#[test]
fn the_prometheusrule_embeds_the_rules_file() {
    let rule = yaml_file(&component().join("prometheusrule.yaml")).remove(0);
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(
        rule["spec"],
        rules(),
        "prometheusrule.yaml's spec differs from prometheus-rules.yaml: regenerate it (the command \
         is in deploy/components/monitoring/kustomization.yaml)"
    );
    // Text for text too, so that the comments stay with the rules they explain.
    let text = std::fs::read_to_string(component().join("prometheusrule.yaml")).unwrap();
    let body = text.split_once("\nspec:\n").expect("a spec: line").1;
    let source = std::fs::read_to_string(root().join(RULES)).unwrap();
    let indented: String = source
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("  {l}\n")
            }
        })
        .collect();
    assert_eq!(
        body, indented,
        "prometheusrule.yaml's spec is not prometheus-rules.yaml indented: regenerate it"
    );
}

#[test]
fn the_helm_charts_copies_are_byte_identical() {
    for (file, ours) in [
        ("prometheus-rules.yaml", RULES),
        ("grafana-dashboard.json", DASHBOARD),
    ] {
        let copy = root().join(HELM_FILES).join(file);
        let copy = std::fs::read(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display()));
        let source = std::fs::read(root().join(ours)).unwrap();
        assert!(
            copy == source,
            "{HELM_FILES}/{file} differs from {ours}: `cp {ours} {HELM_FILES}/`"
        );
    }
}

/// The PodMonitor named `name`.
fn podmonitor<'a>(r: &'a render::Rendered, name: &str) -> &'a Value {
    let found: Vec<&Value> = render::of_kind(r, "PodMonitor")
        .filter(|p| p["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one PodMonitor {name}");
    found[0]
}

/// The base with the monitoring component.
fn rendered() -> &'static render::Rendered {
    static R: std::sync::OnceLock<render::Rendered> = std::sync::OnceLock::new();
    R.get_or_init(|| render::overlay(&["monitoring"]))
}

#[test]
fn the_podmonitor_scrapes_the_guards_admin_port_by_name() {
    let r = rendered();
    let ds = render::guard_daemonset(r);
    let pm = podmonitor(r, "imds-guard");
    assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        pm["metadata"]["namespace"], ds["metadata"]["namespace"],
        "the PodMonitor looks in its own namespace: the DaemonSet's"
    );
    let pod_labels = ds["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("pod labels");
    let selector = pm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector.matchLabels");
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "the PodMonitor's {k} does not select the guard's pods"
        );
    }
    // The job the alerts select on: the value of the pods' label named by jobLabel.
    let job_label = pm["spec"]["jobLabel"].as_str().expect("jobLabel");
    assert_eq!(
        pod_labels[job_label], "imds-guard",
        "job=\"imds-guard\" in the alerts"
    );
    let endpoints = pm["spec"]["podMetricsEndpoints"]
        .as_array()
        .expect("podMetricsEndpoints");
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint["path"], "/metrics");
    let (_, container) = render::guard(r);
    let port_name = endpoint["port"].as_str().expect("a port by name");
    let port = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == port_name)
        .unwrap_or_else(|| panic!("the guard's container has no port named {port_name}"));
    let admin = render::config(r)["server"]["admin_listen"]
        .as_str()
        .expect("admin_listen")
        .to_owned();
    assert_eq!(
        port["containerPort"].as_u64(),
        Some(render::port_of(&admin)),
        "port {port_name} is not the admin port ({admin})"
    );
    // The node label the alerts and the dashboard group by.
    let relabelings = endpoint["relabelings"].as_array().expect("relabelings");
    assert!(
        relabelings.iter().any(|r| r["targetLabel"] == "node"
            && r["sourceLabels"] == serde_json::json!(["__meta_kubernetes_pod_node_name"])),
        "{relabelings:?}"
    );
    let known = ["jobLabel", "selector", "podMetricsEndpoints"];
    for key in pm["spec"].as_object().unwrap().keys() {
        assert!(
            known.contains(&key.as_str()),
            "unexpected PodMonitor field {key}"
        );
    }
}

#[test]
fn the_prometheusrule_and_the_dashboard_render_as_written() {
    let r = rendered();
    let rule = render::one(r, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "imds-guard");
    assert_eq!(rule["spec"], rules());
    let maps: Vec<&Value> = render::of_kind(r, "ConfigMap")
        .filter(|m| m["metadata"]["name"] == "imds-guard-dashboard")
        .collect();
    assert_eq!(
        maps.len(),
        1,
        "one dashboard ConfigMap, named without a hash"
    );
    let map = maps[0];
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(map["metadata"]["namespace"], "imds-guard");
    let data = map["data"].as_object().expect("data");
    assert_eq!(data.len(), 1);
    let source = std::fs::read_to_string(root().join(DASHBOARD)).unwrap();
    assert_eq!(
        data["imds-guard.json"].as_str(),
        Some(source.as_str()),
        "the ConfigMap holds the dashboard file as it is"
    );
    // The base's objects are untouched by the component.
    let base = render::base();
    for kind in ["DaemonSet", "ClusterRole", "Namespace", "ServiceAccount"] {
        assert_eq!(
            render::one(r, kind),
            render::one(base, kind),
            "{kind} changed"
        );
    }
    // And YAML of the whole render reads back (kubectl apply reads it so).
    assert!(!yaml(&r.yaml).is_empty());
}

/// The canary's PodMonitor (in the monitoring component, which renders without the canary: it then
/// selects nothing) scrapes the canary's pods, and only them, on their metrics port by name, with
/// the job and node labels the canary's alerts read.
#[test]
fn the_canary_podmonitor_scrapes_the_canarys_metrics_port() {
    let alone = rendered();
    assert_eq!(render::of_kind(alone, "PodMonitor").count(), 2);
    assert_eq!(
        render::of_kind(alone, "DaemonSet").count(),
        1,
        "the monitoring component brings no canary"
    );
    let r = render::overlay(&["canary", "monitoring"]);
    let pm = podmonitor(&r, "imds-guard-canary");
    assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
    let canary = render::canary(&r);
    assert_eq!(pm["metadata"]["namespace"], canary["metadata"]["namespace"]);
    let pod_labels = canary["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("pod labels");
    let selects = |labels: &serde_json::Map<String, Value>, pm: &Value| {
        pm["spec"]["selector"]["matchLabels"]
            .as_object()
            .expect("selector.matchLabels")
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(
        selects(pod_labels, pm),
        "it does not select the canary's pods"
    );
    let guard_labels = render::guard_daemonset(&r)["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("pod labels");
    assert!(
        !selects(guard_labels, pm),
        "the canary's PodMonitor selects the guard's pods"
    );
    assert!(
        !selects(pod_labels, podmonitor(&r, "imds-guard")),
        "the guard's PodMonitor selects the canary's pods"
    );
    let job_label = pm["spec"]["jobLabel"].as_str().expect("jobLabel");
    assert_eq!(pod_labels[job_label], "imds-guard-canary");
    let rules = rules();
    for name in ["ImdsGuardNodeUnprotected", "ImdsGuardCanaryUnseen"] {
        let alert = alerts(&rules)
            .into_iter()
            .find(|a| a["alert"] == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            alert["expr"]
                .as_str()
                .unwrap()
                .contains("imds_guard_canary_protected{job=\"imds-guard-canary\"}"),
            "{name} reads the canary's job"
        );
    }
    let endpoints = pm["spec"]["podMetricsEndpoints"]
        .as_array()
        .expect("podMetricsEndpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["path"], "/metrics");
    let port_name = endpoints[0]["port"].as_str().expect("a port by name");
    let container = &canary["spec"]["template"]["spec"]["containers"][0];
    let port = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == port_name)
        .unwrap_or_else(|| panic!("the canary has no port named {port_name}"));
    assert_eq!(
        port["containerPort"], 8183,
        "the canary's --metrics-listen port"
    );
    let relabelings = endpoints[0]["relabelings"].as_array().expect("relabelings");
    assert!(relabelings.iter().any(|r| r["targetLabel"] == "node"
        && r["sourceLabels"] == serde_json::json!(["__meta_kubernetes_pod_node_name"])));
}
