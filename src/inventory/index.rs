//! The source-IP → pod index.
//!
//! A plain synchronous structure updated by one feeding task and read by every request. Each pod
//! is keyed by uid with the IPs it claims; the reverse map lists the claimants of each IP, so two
//! live pods claiming one IP are seen as such (and refused as ambiguous) rather than one silently
//! overwriting the other.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use super::Pod;

/// The answer to "who is this IP?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Exactly one live pod holds the IP.
    Found(Arc<Pod>),
    /// No pod holds it.
    Unknown,
    /// More than one live pod claims it: refuse rather than guess.
    Ambiguous,
    /// The source has not delivered its first complete view yet.
    NotReady,
}

#[derive(Default)]
struct State {
    ready: bool,
    by_uid: HashMap<String, (Arc<Pod>, Vec<IpAddr>)>,
    by_ip: HashMap<IpAddr, Vec<Arc<Pod>>>,
}

/// The index shared by the feeding source and the request path.
#[derive(Default)]
pub struct Index {
    state: RwLock<State>,
}

impl Index {
    /// An empty index that answers [`Lookup::NotReady`] until [`Index::reset`] is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks up the pod holding `ip`. IPv4-mapped IPv6 addresses are read as IPv4, so a pod cannot
    /// change its identity by how it writes its address.
    pub fn lookup(&self, ip: IpAddr) -> Lookup {
        let state = self.read();
        if !state.ready {
            return Lookup::NotReady;
        }
        match state.by_ip.get(&ip.to_canonical()).map(Vec::as_slice) {
            None | Some([]) => Lookup::Unknown,
            Some([pod]) => Lookup::Found(Arc::clone(pod)),
            Some(_) => Lookup::Ambiguous,
        }
    }

    /// Whether the first complete view has arrived.
    pub fn is_ready(&self) -> bool {
        self.read().ready
    }

    /// Number of pods indexed.
    pub fn len(&self) -> usize {
        self.read().by_uid.len()
    }

    /// Whether no pod is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds or replaces one pod (by uid) and the IPs it claims.
    pub fn apply(&self, pod: Pod, ips: Vec<IpAddr>) {
        let mut state = self.write();
        state.remove(&pod.uid);
        state.insert(Arc::new(pod), ips);
    }

    /// Removes a pod and releases its IPs.
    pub fn delete(&self, uid: &str) {
        self.write().remove(uid);
    }

    /// Replaces the whole content with a complete view, and marks the index ready.
    pub fn reset(&self, pods: impl IntoIterator<Item = (Pod, Vec<IpAddr>)>) {
        let mut fresh = State {
            ready: true,
            ..State::default()
        };
        for (pod, ips) in pods {
            fresh.remove(&pod.uid);
            fresh.insert(Arc::new(pod), ips);
        }
        *self.write() = fresh;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A writer that panicked left a consistent map (every mutation is a whole insert or
        // remove), so a poisoned lock is still safe to read.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn insert(&mut self, pod: Arc<Pod>, mut ips: Vec<IpAddr>) {
        for ip in &mut ips {
            *ip = ip.to_canonical();
        }
        ips.sort_unstable();
        ips.dedup();
        for ip in &ips {
            self.by_ip.entry(*ip).or_default().push(Arc::clone(&pod));
        }
        self.by_uid.insert(pod.uid.clone(), (pod, ips));
    }

    fn remove(&mut self, uid: &str) {
        let Some((_, ips)) = self.by_uid.remove(uid) else {
            return;
        };
        for ip in ips {
            if let Some(claims) = self.by_ip.get_mut(&ip) {
                claims.retain(|p| p.uid != uid);
                if claims.is_empty() {
                    self.by_ip.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, name: &str) -> Pod {
        Pod {
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
            labels: Default::default(),
            namespace_labels: Default::default(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn not_ready_until_reset() {
        let index = Index::new();
        assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::NotReady);
        index.reset([]);
        assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::Unknown);
    }

    #[test]
    fn finds_by_every_ip_and_by_mapped_ipv4() {
        let index = Index::new();
        index.reset([(pod("u1", "a"), vec![ip("10.0.0.1"), ip("fd00::1")])]);
        for addr in ["10.0.0.1", "fd00::1", "::ffff:10.0.0.1"] {
            match index.lookup(ip(addr)) {
                Lookup::Found(p) => assert_eq!(p.name, "a", "{addr}"),
                other => panic!("{addr}: {other:?}"),
            }
        }
        assert_eq!(index.lookup(ip("10.0.0.2")), Lookup::Unknown);
    }

    #[test]
    fn two_claims_are_ambiguous_until_one_goes() {
        let index = Index::new();
        index.reset([(pod("u1", "a"), vec![ip("10.0.0.1")])]);
        index.apply(pod("u2", "b"), vec![ip("10.0.0.1")]);
        assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::Ambiguous);
        index.delete("u1");
        assert!(matches!(index.lookup(ip("10.0.0.1")), Lookup::Found(p) if p.name == "b"));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn apply_replaces_a_pods_ips() {
        let index = Index::new();
        index.reset([(pod("u1", "a"), vec![ip("10.0.0.1")])]);
        index.apply(pod("u1", "a"), vec![ip("10.0.0.2")]);
        assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::Unknown);
        assert!(matches!(index.lookup(ip("10.0.0.2")), Lookup::Found(_)));
        index.delete("u1");
        assert_eq!(index.lookup(ip("10.0.0.2")), Lookup::Unknown);
        assert!(index.is_empty());
    }
}
