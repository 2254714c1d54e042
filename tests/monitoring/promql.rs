//! Just enough of PromQL's lexer to list the series selectors of an expression: which metric
//! names an alert or a dashboard panel reads, and which labels its matchers name. Strings,
//! range and subquery brackets, grouping label lists (`by (…)`, `on (…)`, …), function and
//! aggregation names, keywords, numbers and durations, and Grafana's `$variables` are skipped.

/// One series selector: `name{label="…", …}`.
#[derive(Debug, PartialEq, Eq)]
pub struct Selector {
    pub name: String,
    /// The label names of its matchers, in order.
    pub labels: Vec<String>,
}

/// Aggregation operators: followed by `by`/`without` or by `(`, never a metric.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Keywords followed by a parenthesised list of label names.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Other keywords, and the literals that read like names.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "offset", "bool", "atan2", "inf", "nan", "start", "end",
];

/// The selectors of `expr`, in order. Panics on a selector without a metric name (`{__name__=…}`
/// or a bare `{…}`), which this check could not follow.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out: Vec<Selector> = Vec::new();
    let mut i = 0;
    // Whether the last token was a metric name, so that a `{` belongs to it.
    let mut after_name = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
            after_name = false;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '{' {
            assert!(
                after_name,
                "a selector without a metric name in {expr:?}: list the name before `{{`"
            );
            let (labels, end) = matchers(&chars, i, expr);
            out.last_mut().expect("the selector's name").labels = labels;
            i = end;
            after_name = false;
            continue;
        }
        if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
            after_name = false;
            continue;
        }
        if c == '$' {
            // A Grafana variable: `$node`, `$__rate_interval`, `${datasource}`.
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
            }
            after_name = false;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number or a duration (0.2, 1e3, 10m, 1h30m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            after_name = false;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            after_name = false;
            if GROUPING.contains(&lower.as_str()) {
                // Its label list, if one follows (`group_left` may stand alone).
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if j < chars.len() && chars[j] == '(' {
                    while j < chars.len() && chars[j] != ')' {
                        j += 1;
                    }
                    i = j + 1;
                }
            } else if next == Some(&'(')
                || AGGREGATIONS.contains(&lower.as_str())
                || KEYWORDS.contains(&lower.as_str())
            {
                // A function, an aggregation or a keyword.
            } else {
                out.push(Selector {
                    name: word,
                    labels: Vec::new(),
                });
                after_name = true;
            }
            continue;
        }
        after_name = false;
        i += 1;
    }
    out
}

/// The metric names `expr` reads.
pub fn metric_names(expr: &str) -> std::collections::BTreeSet<String> {
    selectors(expr).into_iter().map(|s| s.name).collect()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index just past the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The label names of the matchers in the `{…}` at `start`, and the index just past it.
fn matchers(chars: &[char], start: usize, expr: &str) -> (Vec<String>, usize) {
    let mut labels = Vec::new();
    let mut i = start + 1;
    let mut expect_label = true;
    while i < chars.len() && chars[i] != '}' {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
            continue;
        }
        if c == ',' {
            expect_label = true;
        } else if expect_label && (c.is_ascii_alphabetic() || c == '_') {
            let from = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let label: String = chars[from..i].iter().collect();
            assert_ne!(label, "__name__", "a selector by __name__ in {expr:?}");
            labels.push(label);
            expect_label = false;
            continue;
        }
        i += 1;
    }
    (labels, i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn reads_names_through_functions_aggregations_and_grouping() {
        let expr = r#"sum by (job, node) (rate(imds_guard_requests_total{decision=~"deny|would-deny",reason!="rate-limited"}[10m] offset 1h))
            > 3 * (x_total or 0 * on (node) group_left (pod) y) and z > 0.2"#;
        assert_eq!(
            names(expr),
            ["imds_guard_requests_total", "x_total", "y", "z"]
        );
        let s = selectors(expr);
        assert_eq!(s[0].labels, ["decision", "reason"]);
        assert!(s[1].labels.is_empty());
    }

    #[test]
    fn grafana_variables_strings_and_durations_are_not_names() {
        let expr = r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="imds-guard",node=~"$node"}[$__rate_interval])))
            / min((b_seconds{x="y"} > 0) - time()) + label_replace(c, "dst", "$1", "src", "(.*)") + count(d) by (e)"#;
        assert_eq!(names(expr), ["a_bucket", "b_seconds", "c", "d"]);
        assert_eq!(selectors(expr)[0].labels, ["job", "node"]);
    }

    #[test]
    fn names_that_look_like_keywords_are_names() {
        assert_eq!(names("up == 0"), ["up"]);
        assert_eq!(
            names("summary_total + by_node + Inf"),
            ["by_node", "summary_total"]
        );
    }

    #[test]
    #[should_panic(expected = "without a metric name")]
    fn a_selector_by_matchers_alone_is_refused() {
        selectors(r#"{__name__="x"}"#);
    }
}
