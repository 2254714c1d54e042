//! The fake API server's state: the objects, the history of changes behind resourceVersions, and
//! the open watches those changes fan out to. It all sits under one lock so that a watch's replay
//! and its registration for live events see the same history: no gap and no duplicate between them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::select::Filter;
use super::{Kind, Refusal};

/// (kind, namespace — "" for namespaces —, name); the order lists and continue tokens use.
type Key = (Kind, String, String);

/// One entry of the history a watch replays from its resourceVersion.
struct Change {
    rv: u64,
    key: Key,
    /// The object before, if any: a filtered watch needs it to tell ADDED/MODIFIED/DELETED apart.
    old: Option<Value>,
    /// The object after the change; for a delete, its last state stamped with the delete's RV.
    new: Value,
    deleted: bool,
}

/// An open watch stream, as the store sees it.
struct Watch {
    /// How its body deregisters itself when the client goes away.
    id: u64,
    filter: Filter,
    /// Whether it asked for BOOKMARK events (`allowWatchBookmarks=true`).
    bookmarks: bool,
    /// Event lines to its body; dropping it ends the stream cleanly.
    tx: mpsc::UnboundedSender<Bytes>,
}

/// Everything the server knows; see the module docs.
#[derive(Default)]
pub(super) struct Store {
    /// The newest resourceVersion, one sequence across all kinds.
    rv: u64,
    /// RVs below this are gone: watches and exact reads from them get 410.
    compacted: u64,
    objects: BTreeMap<Key, Value>,
    /// The objects at the compaction point: with `history`, any RV since then can be rebuilt.
    base: BTreeMap<Key, Value>,
    /// Every change since the compaction point, oldest first.
    history: Vec<Change>,
    watches: Vec<Watch>,
    next_watch: u64,
}

/// Locks the store even if a panicking test poisoned it: a watch closing during that test's
/// unwinding must not panic again and abort the whole test binary.
pub(super) fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Creates or replaces an object, stamping a new RV (and a uid if it has none).
    pub(super) fn put(&mut self, kind: Kind, mut obj: Value) {
        obj["kind"] = kind.name().into();
        obj["apiVersion"] = "v1".into();
        let meta = &mut obj["metadata"];
        let name = meta["name"]
            .as_str()
            .expect("object without metadata.name")
            .to_string();
        let namespace = match kind {
            Kind::Pod => meta["namespace"].as_str().unwrap_or("default").to_string(),
            Kind::Namespace => {
                // The real server labels every namespace with its own name.
                meta["labels"]["kubernetes.io/metadata.name"] = name.clone().into();
                String::new()
            }
        };
        if kind == Kind::Pod {
            meta["namespace"] = namespace.clone().into();
        }
        let key = (kind, namespace, name);
        let old = self.objects.get(&key).cloned();
        self.rv += 1;
        if meta.get("uid").is_none() {
            // An update keeps the uid; a new object gets a fresh one.
            let kept = old.as_ref().map(|o| o["metadata"]["uid"].clone());
            meta["uid"] =
                kept.unwrap_or_else(|| format!("00000000-0000-4000-8000-{:012x}", self.rv).into());
        }
        meta["resourceVersion"] = self.rv.to_string().into();
        self.objects.insert(key.clone(), obj.clone());
        self.record(Change {
            rv: self.rv,
            key,
            old,
            new: obj,
            deleted: false,
        });
    }

    /// Deletes an object; panics if there is none (a test mistake worth hearing about).
    pub(super) fn delete(&mut self, kind: Kind, namespace: &str, name: &str) {
        let key = (kind, namespace.to_string(), name.to_string());
        let old = self
            .objects
            .remove(&key)
            .unwrap_or_else(|| panic!("delete of unknown {kind:?} {namespace}/{name}"));
        self.rv += 1;
        let mut last = old.clone();
        last["metadata"]["resourceVersion"] = self.rv.to_string().into();
        self.record(Change {
            rv: self.rv,
            key,
            old: Some(old),
            new: last,
            deleted: true,
        });
    }

    pub(super) fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(kind, namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// A list page: `rv`/`rv_match` pick the snapshot, `cont` resumes a previous page's snapshot.
    pub(super) fn list(
        &self,
        filter: &Filter,
        rv: Option<&str>,
        rv_match: Option<&str>,
        limit: usize,
        cont: Option<&str>,
    ) -> Result<Value, Refusal> {
        let (at, after) = match cont {
            Some(token) => {
                // Tokens are "RV/namespace/name" of the last item sent: names cannot hold a '/'.
                let mut parts = token.splitn(3, '/');
                let (at, ns, name) = match (
                    parts.next().and_then(|r| r.parse().ok()),
                    parts.next(),
                    parts.next(),
                ) {
                    (Some(at), Some(ns), Some(name)) => (at, ns.to_string(), name.to_string()),
                    _ => {
                        return Err(Refusal::bad_request(format!(
                            "invalid continue token {token:?}"
                        )))
                    }
                };
                if at < self.compacted {
                    return Err(Refusal::gone(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ));
                }
                (at, Some((filter.kind, ns, name)))
            }
            None => (self.list_rv(rv, rv_match, limit)?, None),
        };
        let snapshot = self.snapshot(at);
        let mut items = Vec::new();
        let mut last: Option<&Key> = None;
        let mut more = false;
        let candidates = snapshot
            .iter()
            .filter(|(k, _)| k.0 == filter.kind && after.as_ref().is_none_or(|a| *k > a));
        for (key, obj) in candidates.filter(|(_, obj)| filter.matches(obj)) {
            if limit > 0 && items.len() == limit {
                more = true;
                break;
            }
            let mut item = obj.clone();
            if let Some(fields) = item.as_object_mut() {
                // List items carry no kind/apiVersion on the wire; the list does.
                fields.remove("kind");
                fields.remove("apiVersion");
            }
            items.push(item);
            last = Some(key);
        }
        let mut metadata = json!({"resourceVersion": at.to_string()});
        if let (true, Some((_, ns, name))) = (more, last) {
            metadata["continue"] = format!("{at}/{ns}/{name}").into();
        }
        let kind = format!("{}List", filter.kind.name());
        Ok(json!({"kind": kind, "apiVersion": "v1", "metadata": metadata, "items": items}))
    }

    /// The RV a fresh list reads at, following the real server's `resourceVersion(Match)` rules.
    fn list_rv(
        &self,
        rv: Option<&str>,
        rv_match: Option<&str>,
        limit: usize,
    ) -> Result<u64, Refusal> {
        let n = parse_rv(rv)?;
        let rv_match = match rv_match.filter(|m| !m.is_empty()) {
            // The legacy rule, kept for old clients: a paginated list at a given RV is exact.
            None if limit > 0 && n.is_some_and(|n| n > 0) => Some("Exact"),
            given => given,
        };
        match (rv_match, n) {
            (Some(_), None) => Err(Refusal::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )),
            (Some("Exact"), Some(0)) => Err(Refusal::bad_request(
                "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
            )),
            (Some(m), _) if m != "Exact" && m != "NotOlderThan" => Err(Refusal::bad_request(
                format!("unsupported resourceVersionMatch {m:?}"),
            )),
            (_, Some(n)) if n > self.rv => Err(Refusal::new(
                504,
                "Timeout",
                format!("Too large resource version: {n}, current: {}", self.rv),
            )),
            (Some("Exact"), Some(n)) if n < self.compacted => Err(Refusal::gone(format!(
                "too old resource version: {n} ({})",
                self.compacted
            ))),
            (Some("Exact"), Some(n)) => Ok(n),
            // Unset, "0" and NotOlderThan may all be served from the newest state, as the real
            // server does from its watch cache: an old RV here is no 410, even when compacted.
            _ => Ok(self.rv),
        }
    }

    /// The objects as they were at `at`.
    fn snapshot(&self, at: u64) -> Cow<'_, BTreeMap<Key, Value>> {
        if at >= self.rv {
            return Cow::Borrowed(&self.objects);
        }
        let mut objects = self.base.clone();
        for change in self.history.iter().take_while(|c| c.rv <= at) {
            if change.deleted {
                objects.remove(&change.key);
            } else {
                objects.insert(change.key.clone(), change.new.clone());
            }
        }
        Cow::Owned(objects)
    }

    /// Opens a watch: queues what it must replay, then registers it for live events. Returns its
    /// id (`None` if the stream is already complete, as after a 410) and its event lines.
    pub(super) fn watch(
        &mut self,
        filter: Filter,
        rv: Option<&str>,
        bookmarks: bool,
        initial_events: bool,
    ) -> Result<(Option<u64>, mpsc::UnboundedReceiver<Bytes>), Refusal> {
        let (tx, rx) = mpsc::unbounded_channel();
        match parse_rv(rv)? {
            Some(n) if n > 0 && n < self.compacted => {
                // The real server answers 200 and reports the expiry in the stream, then ends it.
                let gone = Refusal::gone(format!(
                    "too old resource version: {n} ({})",
                    self.compacted
                ));
                let _ = tx.send(line(json!({"type": "ERROR", "object": gone.status()})));
                return Ok((None, rx));
            }
            Some(n) if n > 0 && !initial_events => {
                for line in self
                    .history
                    .iter()
                    .filter(|c| c.rv > n)
                    .filter_map(|c| event(&filter, c))
                {
                    let _ = tx.send(line);
                }
            }
            _ => {
                // No RV (or "0"): synthetic ADDED events for the current state, then live ones.
                for (_, obj) in self
                    .objects
                    .iter()
                    .filter(|(k, o)| k.0 == filter.kind && filter.matches(o))
                {
                    let _ = tx.send(line(json!({"type": "ADDED", "object": obj})));
                }
                if initial_events {
                    // A streaming list ends its initial events with this annotated bookmark.
                    let _ = tx.send(self.bookmark_line(filter.kind, true));
                }
            }
        }
        self.next_watch += 1;
        self.watches.push(Watch {
            id: self.next_watch,
            filter,
            bookmarks,
            tx,
        });
        Ok((Some(self.next_watch), rx))
    }

    pub(super) fn unwatch(&mut self, id: u64) {
        self.watches.retain(|w| w.id != id);
    }

    pub(super) fn open_watches(&self) -> usize {
        self.watches.iter().filter(|w| !w.tx.is_closed()).count()
    }

    pub(super) fn bookmark(&mut self) {
        for w in self.watches.iter().filter(|w| w.bookmarks) {
            let _ = w.tx.send(self.bookmark_line(w.filter.kind, false));
        }
    }

    /// Ends every watch: dropping a sender ends its stream after what was already queued.
    pub(super) fn drop_watches(&mut self) {
        self.watches.clear();
    }

    /// Forgets the history. The RV advances first — in a real cluster unrelated writes move it
    /// on all the time — so that every RV handed out so far is too old, even a quiet watcher's.
    pub(super) fn compact(&mut self) {
        self.rv += 1;
        self.compacted = self.rv;
        self.base = self.objects.clone();
        self.history.clear();
    }

    fn bookmark_line(&self, kind: Kind, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": self.rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": kind.name(), "apiVersion": "v1", "metadata": metadata});
        line(json!({"type": "BOOKMARK", "object": object}))
    }

    fn record(&mut self, change: Change) {
        for w in &self.watches {
            if let Some(line) = event(&w.filter, &change) {
                let _ = w.tx.send(line);
            }
        }
        self.history.push(change);
    }
}

/// The event a filtered watch sees for a change: like the real server, an object that starts
/// matching is ADDED and one that stops matching is DELETED.
fn event(filter: &Filter, change: &Change) -> Option<Bytes> {
    if change.key.0 != filter.kind {
        return None;
    }
    let was = change.old.as_ref().is_some_and(|o| filter.matches(o));
    let is = !change.deleted && filter.matches(&change.new);
    let kind = match (was, is) {
        (false, true) => "ADDED",
        (true, true) => "MODIFIED",
        (true, false) => "DELETED",
        (false, false) => return None,
    };
    Some(line(json!({"type": kind, "object": change.new})))
}

fn parse_rv(rv: Option<&str>) -> Result<Option<u64>, Refusal> {
    match rv.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| Refusal::bad_request(format!("invalid resource version {s:?}"))),
    }
}

fn line(value: Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&value).expect("JSON serialises");
    bytes.push(b'\n');
    Bytes::from(bytes)
}
