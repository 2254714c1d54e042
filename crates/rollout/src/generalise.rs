//! From the paths a workload read to the narrowest patterns that cover them.
//!
//! Exact paths first. Paths of the same length and the same query constraints that differ in
//! exactly one segment are merged into one pattern with `*` there when the values at that segment
//! vary *between pods* — one pod read `role-a`, another `role-b`: a role name, a MAC, an account —
//! and not when one pod read several of them side by side (`instance-id` and `ami-id` are names
//! of fields, and stay listed). Merging repeats until nothing changes. `**` is never made, and
//! lengths are never merged.
//!
//! Sensitive paths — the cloud's credential paths and its concealed paths — stay explicit: they
//! merge only with each other, and only into a pattern that lies within one sensitive pattern and
//! has its `*` where that one has a `*` (`security-credentials/role-a` and `…/role-b` become
//! `security-credentials/*`); an ordinary merge that could match a sensitive path is not made.

use std::collections::{BTreeMap, BTreeSet};

use crate::cloud::Cloud;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Lit(String),
    /// `*`
    One,
    /// `**` (only in the cloud's own patterns, never made here).
    Any,
}

/// A pattern's segments, from its text (`/a/*/b`).
pub fn segments(pattern: &str) -> Vec<Seg> {
    pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "*" => Seg::One,
            "**" => Seg::Any,
            s => Seg::Lit(s.to_owned()),
        })
        .collect()
}

/// The pattern's text: `/` and the segments.
pub fn text(segments: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segments {
        out.push('/');
        out.push_str(match seg {
            Seg::Lit(s) => s,
            Seg::One => "*",
            Seg::Any => "**",
        });
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Whether some path matches both `a` and `b`.
pub fn overlaps(a: &[Seg], b: &[Seg]) -> bool {
    match (a.first(), b.first()) {
        (None, None) => true,
        (Some(Seg::Any), _) => overlaps(&a[1..], b) || (!b.is_empty() && overlaps(a, &b[1..])),
        (_, Some(Seg::Any)) => overlaps(a, &b[1..]) || (!a.is_empty() && overlaps(&a[1..], b)),
        (None, _) | (_, None) => false,
        (Some(x), Some(y)) => {
            let fit = match (x, y) {
                (Seg::Lit(x), Seg::Lit(y)) => x == y,
                _ => true,
            };
            fit && overlaps(&a[1..], &b[1..])
        }
    }
}

/// Whether every path `inner` (no `**`) matches also matches `outer`.
pub fn within(inner: &[Seg], outer: &[Seg]) -> bool {
    match (inner.first(), outer.first()) {
        (_, Some(Seg::Any)) => {
            within(inner, &outer[1..]) || (!inner.is_empty() && within(&inner[1..], outer))
        }
        (None, None) => true,
        (None, _) | (_, None) | (Some(Seg::Any), _) => false,
        (Some(x), Some(y)) => {
            let fit = match (x, y) {
                (_, Seg::One) => true,
                (Seg::Lit(x), Seg::Lit(y)) => x == y,
                _ => false,
            };
            fit && within(&inner[1..], &outer[1..])
        }
    }
}

/// The cloud's sensitive patterns: its credential paths and its concealed paths.
pub fn sensitive(cloud: Cloud) -> Vec<Vec<Seg>> {
    cloud
        .credential_patterns()
        .iter()
        .chain(cloud.concealed())
        .map(|p| segments(p))
        .collect()
}

/// What was read at one path (or, once merged, under one pattern).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reads {
    pub requests: u64,
    /// The pods that read it (by index), to tell identifiers from field names.
    pub pods: BTreeSet<u32>,
    /// Distinct paths it stands for.
    pub paths: u64,
}

impl Reads {
    fn absorb(&mut self, other: Reads) {
        self.requests += other.requests;
        self.pods.extend(other.pods);
        self.paths += other.paths;
    }
}

/// A pattern made: its segments, its query constraints (`?k=v`, or empty) and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub segments: Vec<Seg>,
    pub query: String,
    pub reads: Reads,
    /// It matches (only) sensitive paths.
    pub sensitive: bool,
}

/// Generalises `paths` (exact paths, by segments and query constraints) for `cloud`. The result
/// is sorted by pattern text.
pub fn generalise(cloud: Cloud, paths: BTreeMap<(Vec<String>, String), Reads>) -> Vec<Made> {
    let sensitive = sensitive(cloud);
    let is_sensitive = |segs: &[Seg]| sensitive.iter().any(|s| within(segs, s));
    let mut items: BTreeMap<(String, Vec<Seg>), (Reads, bool)> = paths
        .into_iter()
        .map(|((path, query), reads)| {
            let segs: Vec<Seg> = path.into_iter().map(Seg::Lit).collect();
            let s = is_sensitive(&segs);
            ((query, segs), (reads, s))
        })
        .collect();
    loop {
        let mut changed = false;
        let longest = items.keys().map(|(_, s)| s.len()).max().unwrap_or(0);
        // The deepest segment first: identifiers mostly end a path (roles, accounts).
        for at in (0..longest).rev() {
            changed |= merge_at(&mut items, at, &sensitive);
        }
        if !changed {
            break;
        }
    }
    absorb_covered(&mut items);
    let mut made: Vec<Made> = items
        .into_iter()
        .map(|((query, segments), (reads, sensitive))| Made {
            segments,
            query,
            reads,
            sensitive,
        })
        .collect();
    made.sort_by_key(|m| (text(&m.segments), m.query.clone()));
    made
}

type Items = BTreeMap<(String, Vec<Seg>), (Reads, bool)>;

/// Merges, at segment `at`, every group of patterns equal but there; true if any was merged.
fn merge_at(items: &mut Items, at: usize, sensitive: &[Vec<Seg>]) -> bool {
    let mut groups: BTreeMap<(String, Vec<Seg>), Vec<Vec<Seg>>> = BTreeMap::new();
    for (query, segs) in items.keys() {
        if segs.len() > at && segs[at] != Seg::One {
            let mut rest = segs.clone();
            rest[at] = Seg::One;
            groups
                .entry((query.clone(), rest))
                .or_default()
                .push(segs.clone());
        }
    }
    let mut changed = false;
    for ((query, merged), members) in groups {
        // The merged pattern may already stand (`a/*` beside `a/x`): it joins the group.
        let standing = items.contains_key(&(query.clone(), merged.clone()));
        if members.len() + usize::from(standing) < 2 {
            continue;
        }
        let mut all: Vec<&(Reads, bool)> = members
            .iter()
            .map(|m| &items[&(query.clone(), m.clone())])
            .collect();
        if standing {
            all.push(&items[&(query.clone(), merged.clone())]);
        }
        // Identifiers vary between pods: no pod read two of the values.
        let mut seen = BTreeSet::new();
        let disjoint = all
            .iter()
            .all(|(reads, _)| reads.pods.iter().all(|p| seen.insert(*p)));
        let all_sensitive = all.iter().all(|(_, s)| *s);
        let none_sensitive = all.iter().all(|(_, s)| !*s);
        let allowed = if all_sensitive {
            sensitive.iter().any(|s| {
                !s.contains(&Seg::Any)
                    && s.len() == merged.len()
                    && s[at] == Seg::One
                    && within(&merged, s)
            })
        } else {
            none_sensitive && !sensitive.iter().any(|s| overlaps(&merged, s))
        };
        if !disjoint || !allowed {
            continue;
        }
        let mut reads = Reads::default();
        for m in &members {
            let (r, _) = items
                .remove(&(query.clone(), m.clone()))
                .unwrap_or_default();
            reads.absorb(r);
        }
        let entry = items
            .entry((query, merged))
            .or_insert((Reads::default(), all_sensitive));
        entry.0.absorb(reads);
        changed = true;
    }
    changed
}

/// Drops every pattern another one with the same constraints covers, adding its reads there.
fn absorb_covered(items: &mut Items) {
    let keys: Vec<(String, Vec<Seg>)> = items.keys().cloned().collect();
    for key in &keys {
        let cover = keys.iter().find(|other| {
            *other != key
                && other.0 == key.0
                && within(&key.1, &other.1)
                && items.contains_key(*other)
                && !within(&other.1, &key.1)
        });
        if let Some(cover) = cover {
            if let Some((reads, _)) = items.remove(key) {
                if let Some(entry) = items.get_mut(cover) {
                    entry.0.absorb(reads);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
