//! Reading `iptables-save` output: which tables hold our chain, its rules, and the jumps to it.

use std::collections::HashMap;

use super::rules::CHAIN;

/// One table of `iptables-save` output.
pub(crate) struct SavedTable<'a> {
    pub(crate) name: &'a str,
    chains: Vec<&'a str>,
    /// `-A …` lines, in order.
    rules: Vec<&'a str>,
}

impl<'a> SavedTable<'a> {
    /// Whether the table declares our chain.
    pub(crate) fn has_chain(&self) -> bool {
        self.chains.contains(&CHAIN)
    }

    /// Rules of other chains whose target is our chain.
    pub(crate) fn jumps(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.rules.iter().copied().filter(|r| is_jump(r))
    }

    /// The rules of our chain.
    pub(crate) fn own_rules(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.rules
            .iter()
            .copied()
            .filter(|r| chain_of(r) == Some(CHAIN))
    }
}

/// The chain of an `-A CHAIN …` rule.
pub(crate) fn chain_of(rule: &str) -> Option<&str> {
    rule.strip_prefix("-A ")?.split(' ').next()
}

fn is_jump(rule: &str) -> bool {
    chain_of(rule) != Some(CHAIN)
        && (rule.ends_with(&format!(" -j {CHAIN}")) || rule.ends_with(&format!(" -g {CHAIN}")))
}

/// Reads `iptables-save` output: tables, their chains and their `-A` rules. Comments, counters
/// and anything unknown are skipped.
pub(crate) fn parse_save(text: &str) -> Vec<SavedTable<'_>> {
    let mut tables: Vec<SavedTable<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    for line in text.lines().map(str::trim_end) {
        if let Some(name) = line.strip_prefix('*') {
            let i = *index.entry(name).or_insert_with(|| {
                tables.push(SavedTable {
                    name,
                    chains: Vec::new(),
                    rules: Vec::new(),
                });
                tables.len() - 1
            });
            current = Some(i);
        } else if line == "COMMIT" {
            current = None;
        } else if let Some(table) = current.and_then(|i| tables.get_mut(i)) {
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(chain) = decl.split(' ').next() {
                    table.chains.push(chain);
                }
            } else if line.starts_with("-A ") {
                table.rules.push(line);
            }
        }
    }
    tables
}
