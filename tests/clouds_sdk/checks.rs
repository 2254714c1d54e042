//! What `tests/clouds_sdk.rs` checks: a client script's report ([`Report`]: each step's value,
//! or its error and how fast it came) and the guard's audit lines.

use serde_json::Value;

use super::lab::FAST;

// ---- what a client reported ----

/// A client's report: `{"client": {..versions}, "steps": {NAME: {"ok": ..} | {"error": ..}}}`.
pub struct Report {
    /// The script's file name.
    pub script: String,
    /// Its JSON report.
    pub value: Value,
}

impl Report {
    pub fn step(&self, name: &str) -> &Value {
        let step = &self.value["steps"][name];
        assert!(
            !step.is_null(),
            "{}: no step {name}:\n{:#}",
            self.script,
            self.value
        );
        step
    }

    /// The value of a step that must have succeeded.
    pub fn ok(&self, name: &str) -> &Value {
        let step = self.step(name);
        assert!(
            step.get("ok").is_some(),
            "{}: {name} failed: {}\n{}",
            self.script,
            step["error"],
            step["trace"].as_str().unwrap_or_default()
        );
        &step["ok"]
    }

    /// The error of a step that must have failed, fast, with every word of `words` in its
    /// message (or in one it was raised from).
    pub fn refused(&self, name: &str, words: &[&str]) -> String {
        let step = self.step(name);
        assert!(
            step.get("ok").is_none(),
            "{}: {name} succeeded for a denied pod: {:#}",
            self.script,
            step["ok"]
        );
        let text = format!("{} {} {}", step["error"], step["chain"], step["status"]);
        for word in words {
            assert!(
                text.contains(word),
                "{}: {name} failed without {word:?}: {text}",
                self.script
            );
        }
        let seconds = step["seconds"].as_f64().unwrap();
        assert!(
            seconds < FAST,
            "{}: {name} took {seconds:.1} s to fail (a retried refusal?): {text}",
            self.script
        );
        step["error"].as_str().unwrap().to_owned()
    }

    /// The value of a step that must have succeeded fast: what a client gives when it swallows a
    /// refusal instead of raising.
    pub fn quick(&self, name: &str) -> &Value {
        let ok = self.ok(name);
        let seconds = self.step(name)["seconds"].as_f64().unwrap();
        assert!(
            seconds < FAST,
            "{}: {name} took {seconds:.1} s (a retried refusal?): {ok}",
            self.script
        );
        ok
    }

    pub fn versions(&self) -> String {
        self.value["client"].to_string()
    }

    /// Each step in short: what it gave or how it failed, and how long it took.
    pub fn summary(&self) -> String {
        let mut out = format!("{} {}\n", self.script, self.versions());
        if let Some(steps) = self.value["steps"].as_object() {
            for (name, step) in steps {
                let what = match step.get("ok") {
                    Some(ok) => format!("ok {ok}"),
                    None => format!("error {}", step["error"]),
                };
                let what: String = what.chars().take(240).collect();
                out.push_str(&format!(
                    "  {name} ({:.2} s): {what}\n",
                    step["seconds"].as_f64().unwrap_or(-1.0)
                ));
            }
        }
        out
    }
}

// ---- audit lines ----

pub fn text<'a>(event: &'a Value, name: &str) -> &'a str {
    event[name].as_str().unwrap_or("null")
}

/// One audit line in short.
fn brief(event: &Value) -> String {
    format!(
        "{} {} {} {} {} {} rule={}",
        text(event, "src"),
        text(event, "method"),
        text(event, "path"),
        event["status"],
        text(event, "decision"),
        text(event, "reason"),
        text(event, "rule"),
    )
}

pub fn briefs(events: &[&Value]) -> String {
    events.iter().map(|e| format!("  {}\n", brief(e))).collect()
}

/// The lines of requests from `src`.
pub fn from<'a>(events: &'a [Value], src: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| text(e, "src") == src).collect()
}

/// Whether the line is of `target`: its path, and its query too when `target` has one (the audit
/// line has the canonical target, query included).
fn seen_as(event: &Value, target: &str) -> bool {
    let seen = text(event, "path");
    if target.contains('?') {
        seen == target
    } else {
        seen.split('?').next() == Some(target)
    }
}

/// The lines of allowed requests, and the others.
pub fn split_refused<'a>(events: &[&'a Value]) -> (Vec<&'a Value>, Vec<&'a Value>) {
    events.iter().partition(|e| text(e, "decision") == "allow")
}

/// Every line is an allowed request of `imds/prod-5c7b9`, by the rule `imds-prod`, and `paths`
/// are among them.
pub fn assert_allowed(events: &[&Value], paths: &[&str]) {
    assert!(!events.is_empty(), "no audit lines of the allowed pod");
    for e in events {
        assert!(
            text(e, "decision") == "allow"
                && text(e, "pod") == "imds/prod-5c7b9"
                && text(e, "rule") == "imds-prod",
            "a request of the allowed pod was not allowed by its rule:\n{}",
            briefs(events)
        );
    }
    for path in paths {
        assert!(
            events.iter().any(|e| seen_as(e, path)),
            "no audit line of {path}:\n{}",
            briefs(events)
        );
    }
}

/// Every line is a refusal of `pod` with 403 and `reason`; there is at least one.
pub fn assert_denied(events: &[&Value], pod: &str, reason: &str) {
    assert!(!events.is_empty(), "no audit lines of the denied pod");
    for e in events {
        assert!(
            text(e, "decision") == "deny"
                && e["status"] == 403
                && text(e, "reason") == reason
                && text(e, "pod") == pod
                && e["upstream_ms"].is_null(),
            "a request of {pod} was not refused with 403 {reason}:\n{}",
            briefs(events)
        );
    }
}
