//! Rules as an operator reads them: one rule of ours with its family and table, and how the rules
//! found differ from the rules wanted (what `iptables status` prints).

use std::fmt;

use super::rules::Family;

/// One rule (or chain) of ours, in a family and table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub family: Family,
    pub table: String,
    /// As `iptables-save` prints it (`-A CHAIN …`), or `-N IMDS-GUARD` for a bare chain.
    pub rule: String,
}

impl Line {
    pub(crate) fn new(family: Family, table: &str, rule: String) -> Line {
        Line {
            family,
            table: table.to_owned(),
            rule,
        }
    }
}

impl fmt::Display for Line {
    /// As a command an operator could type: `iptables -t nat -A PREROUTING -i eni+ -j IMDS-GUARD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -t {} {}",
            self.family.command(),
            self.table,
            self.rule
        )
    }
}

/// How the rules found differ from the rules wanted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub missing: Vec<Line>,
    pub extra: Vec<Line>,
}

impl Diff {
    /// Every wanted rule is present and nothing else of ours is.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }

    /// Adds another family's differences.
    pub fn merge(&mut self, other: Diff) {
        self.missing.extend(other.missing);
        self.extra.extend(other.extra);
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.missing {
            writeln!(f, "missing: {line}")?;
        }
        for line in &self.extra {
            writeln!(f, "extra:   {line}")?;
        }
        Ok(())
    }
}
