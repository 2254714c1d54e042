//! The Grafana dashboard: Grafana's schema (the dashboard checker), then what the schema cannot
//! say: unique panel ids, panels inside the grid and not overlapping, a query in every panel, and
//! only variables the dashboard defines.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::tools::{dashboard_check, root};
use super::DASHBOARD;

pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(root().join(DASHBOARD)).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel, rows' nested panels included.
pub fn panels(board: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in board["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// Every PromQL expression: the panels' targets and the query variables' `label_values`
/// selectors.
pub fn expressions(board: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(board) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a target with an expr");
            out.push((format!("panel {:?}", p["title"]), expr.to_owned()));
        }
    }
    for v in board["templating"]["list"]
        .as_array()
        .expect("templating.list")
    {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"].as_str().expect("a variable's query");
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, _)| selector)
            .unwrap_or_else(|| {
                panic!("variable queries are label_values(selector, label): {query}")
            });
        out.push((format!("variable {:?}", v["name"]), inner.to_owned()));
    }
    out
}

#[test]
fn the_dashboard_matches_grafanas_schema() {
    let out = Command::new(dashboard_check())
        .arg(root().join(DASHBOARD))
        .output()
        .expect("run the dashboard checker");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dashboard_holds_together() {
    let board = dashboard();
    assert_eq!(board["uid"], "imds-guard");
    assert_eq!(board["title"], "imds-guard");
    let schema = board["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(board["id"].is_null(), "no id: Grafana gives one on import");

    let variables: BTreeSet<&str> = board["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().expect("a variable's name"))
        .collect();
    assert!(variables.contains("datasource") && variables.contains("node"));
    let text = serde_json::to_string(&board).unwrap();
    for (at, _) in text.match_indices('$') {
        let rest: String = text[at + 1..]
            .chars()
            .skip_while(|c| *c == '{')
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            rest.starts_with("__") || variables.contains(rest.as_str()),
            "${rest} is no variable of the dashboard"
        );
    }

    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for p in panels(&board) {
        let id = p["id"].as_u64().expect("a panel id");
        assert!(ids.insert(id), "panel id {id} repeats");
        let title = p["title"].as_str().expect("a title");
        assert!(titles.insert(title), "panel title {title} repeats");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: outside the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel");
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: the dashboard's data source variable"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(
                refs.insert(t["refId"].as_str().expect("refId")),
                "{title}: refId repeats"
            );
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.is_empty(), "{title}: a target without expr");
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
        }
    }
    // What the issue asks to see.
    for wanted in [
        "Requests by decision",
        "Denials by reason",
        "Request latency",
        "Upstream latency",
        "Upstream errors by kind",
        "Pods indexed by node",
        "Kubernetes watches",
        "Cache reads by result",
        "Rate limited",
        "Config reloads",
        "Audit lines dropped",
    ] {
        assert!(titles.contains(wanted), "no panel {wanted:?}: {titles:?}");
    }
}

/// Each expression of the dashboard parses as PromQL: promtool checks them as recording rules
/// (with Grafana's variables given values).
#[test]
fn the_dashboards_queries_are_promql() {
    let board = dashboard();
    let mut rules = Vec::new();
    for (i, (_, expr)) in expressions(&board).iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$node", ".*");
        rules.push(serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr}));
    }
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.json");
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let (ok, out) = super::tools::run_promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(ok, "the dashboard's queries as rules:\n{out}");
}
