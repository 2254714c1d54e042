//! The source-IP → pod index.
//!
//! A plain synchronous structure updated by the feeding tasks and read by every request. Each pod
//! is keyed by uid with the IPs it claims; the reverse map lists the claimants of each IP, so two
//! live pods claiming one IP are seen as such (and refused as ambiguous) rather than one silently
//! overwriting the other. When namespace labels are tracked, they are joined into the pods at
//! update time, so a lookup is one hash probe under a read lock.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A pod as the policy sees it. Deliberately free of Kubernetes types: any source can build one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// Tells apart two pods that had the same name at different times (audit lines carry it).
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Labels of the pod's namespace, for rules that select on them.
    pub namespace_labels: BTreeMap<String, String>,
    /// The workload the pod belongs to, when the source knows it: audit lines carry it, so that
    /// `policy suggest` can group pods into workloads. Never consulted by the policy.
    pub owner: Option<Owner>,
    /// The pod runs in the node's network namespace (`hostNetwork`): its address is the node's,
    /// so it is never indexed by address; only its cgroup can name it (see [`Index::identify`]).
    pub host_network: bool,
}

/// What controls a pod: a Deployment, a StatefulSet, a DaemonSet, a Job… (the Kubernetes source
/// reads it from the pod's controller `ownerReference`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// `Deployment`, `StatefulSet`, `ReplicaSet`, …
    pub kind: String,
    pub name: String,
}

impl Pod {
    /// `namespace/name`, as audit lines and refusals name the pod.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Told after every change of an [`Index`], once its lock is released: the adapter that shares
/// the index wakes requests waiting for an address through it. `()` tells no one.
pub trait Observer: Send + Sync {
    fn changed(&self);
}

impl Observer for () {
    fn changed(&self) {}
}

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
    /// The kernel says this pod's cgroup opened the connection, but the pod does not hold the
    /// source address (another pod's address taken as its own, or an address reused while the
    /// index was stale): refuse, naming the pod the kernel named.
    Mismatch(Arc<Pod>),
}

/// The longest label value Kubernetes allows; what an audit line keeps of a label (longer values,
/// only a static source's, are cut and end in `…`).
pub const MAX_LABEL_VALUE: usize = 63;

/// The labels that name a pod's workload when `[audit] workload_labels` is not set: the
/// recommended name label and the older convention.
pub const DEFAULT_WORKLOAD_LABELS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// How a connection's pod is to be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// From the source address alone (netfilter interception, static and sidecar setups).
    Address,
    /// From the cgroup that opened the connection (cgroup interception): `Some(uid)` when the
    /// kernel recorded the connection and its cgroup belongs to pod `uid`; `None` when there is
    /// no record (the connection did not come through the guard's hooks) or the cgroup is no
    /// pod's.
    Cgroup(Option<&'a str>),
}

impl Origin<'_> {
    /// How the pod was identified, as audit lines say it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Address => "address",
            Origin::Cgroup(_) => "cgroup",
        }
    }
}

/// Label keys and values.
pub type Labels = BTreeMap<String, String>;

#[derive(Default)]
struct State {
    pods_synced: bool,
    /// The source says it may not keep the index current (see [`Index::suspend`]).
    suspended: bool,
    /// Sidecar mode: the one pod held answers for every address (see [`Index::any_source`]).
    any_source: bool,
    /// `None` when namespace labels are not tracked (static source, or no rule uses them).
    namespaces: Option<Namespaces>,
    by_uid: HashMap<String, (Arc<Pod>, Vec<IpAddr>)>,
    by_ip: HashMap<IpAddr, Vec<Arc<Pod>>>,
}

#[derive(Default)]
struct Namespaces {
    synced: bool,
    labels: HashMap<String, Labels>,
}

/// The index shared by the feeding source and the request path.
pub struct Index<O = ()> {
    state: RwLock<State>,
    /// Told of every change, so that requests waiting for an unknown IP wake on updates instead
    /// of polling.
    observer: O,
}

impl<O: Observer + Default> Default for Index<O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: Observer + Default> Index<O> {
    /// An empty index that answers [`Lookup::NotReady`] until [`Index::reset`] is called.
    pub fn new() -> Self {
        Self {
            state: RwLock::new(State::default()),
            observer: O::default(),
        }
    }

    /// An index that also tracks namespace labels: ready only once both pods and namespaces have
    /// had a complete view, and pods carry their namespace's labels.
    pub fn with_namespace_labels() -> Self {
        let index = Self::new();
        index.write().namespaces = Some(Namespaces::default());
        index
    }

    /// An index for one pod (sidecar mode): every address is that pod's, since only the pod's
    /// own processes can reach a loopback listener. It answers [`Lookup::NotReady`] until
    /// [`Index::reset`], then the one pod it holds; [`Lookup::Unknown`] if it holds none and
    /// [`Lookup::Ambiguous`] if it holds more than one, so it never picks one.
    pub fn any_source() -> Self {
        let index = Self::new();
        index.write().any_source = true;
        index
    }
}

impl<O: Observer> Index<O> {
    /// What is told of this index's changes.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// Looks up the pod holding `ip`. IPv4-mapped IPv6 addresses are read as IPv4, so a pod cannot
    /// change its identity by how it writes its address.
    pub fn lookup(&self, ip: IpAddr) -> Lookup {
        let state = self.read();
        if !state.is_ready() {
            return Lookup::NotReady;
        }
        if state.any_source {
            let mut pods = state.by_uid.values();
            return match (pods.next(), pods.next()) {
                (None, _) => Lookup::Unknown,
                (Some((pod, _)), None) => Lookup::Found(Arc::clone(pod)),
                _ => Lookup::Ambiguous,
            };
        }
        match state.by_ip.get(&ip.to_canonical()).map(Vec::as_slice) {
            None | Some([]) => Lookup::Unknown,
            Some([pod]) => Lookup::Found(Arc::clone(pod)),
            Some(_) => Lookup::Ambiguous,
        }
    }

    /// Identifies the pod behind a connection from `ip` whose origin is `origin`.
    ///
    /// By cgroup, the kernel's word decides which pod it is, and the address must agree: the pod
    /// must hold `ip` (unless it is a hostNetwork pod, whose address is the node's), else
    /// [`Lookup::Mismatch`]. An address several pods claim stays [`Lookup::Ambiguous`]: the index
    /// is inconsistent, and a refusal is safer than trusting either half of it. No record, or a
    /// cgroup of no known pod, is [`Lookup::Unknown`].
    pub fn identify(&self, ip: IpAddr, origin: Origin<'_>) -> Lookup {
        let uid = match origin {
            Origin::Address => return self.lookup(ip),
            Origin::Cgroup(uid) => uid,
        };
        let state = self.read();
        if !state.is_ready() {
            return Lookup::NotReady;
        }
        let Some((pod, ips)) = uid.and_then(|uid| state.by_uid.get(uid)) else {
            return Lookup::Unknown;
        };
        if pod.host_network {
            return Lookup::Found(Arc::clone(pod));
        }
        let ip = ip.to_canonical();
        if !ips.contains(&ip) {
            return Lookup::Mismatch(Arc::clone(pod));
        }
        match state.by_ip.get(&ip).map(Vec::as_slice) {
            Some([_]) => Lookup::Found(Arc::clone(pod)),
            _ => Lookup::Ambiguous,
        }
    }

    /// Whether every tracked source has delivered its first complete view.
    pub fn is_ready(&self) -> bool {
        self.read().is_ready()
    }

    /// Number of pods indexed.
    pub fn len(&self) -> usize {
        self.read().by_uid.len()
    }

    /// Whether no pod is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct IPs held.
    pub fn ip_count(&self) -> usize {
        self.read().by_ip.len()
    }

    /// Adds or replaces one pod (by uid) and the IPs it claims.
    pub fn apply(&self, pod: Pod, ips: Vec<IpAddr>) {
        let mut state = self.write();
        state.remove(&pod.uid);
        state.insert(pod, ips);
        self.changed(state);
    }

    /// Removes a pod and releases its IPs.
    pub fn delete(&self, uid: &str) {
        let mut state = self.write();
        state.remove(uid);
        self.changed(state);
    }

    /// Replaces every pod with a complete view, and marks pods synced.
    pub fn reset(&self, pods: impl IntoIterator<Item = (Pod, Vec<IpAddr>)>) {
        let mut state = self.write();
        state.by_uid.clear();
        state.by_ip.clear();
        for (pod, ips) in pods {
            state.remove(&pod.uid);
            state.insert(pod, ips);
        }
        state.pods_synced = true;
        self.changed(state);
    }

    /// The source may not keep the index current (the API server forbids its watch): what the
    /// index holds can only grow stale — a deleted pod's address, reused by a new pod, would keep
    /// the old pod's identity — so lookups answer [`Lookup::NotReady`] until [`Index::resume`].
    pub fn suspend(&self) {
        let mut state = self.write();
        state.suspended = true;
        self.changed(state);
    }

    /// The source delivers again: lookups answer from the index once more.
    pub fn resume(&self) {
        let mut state = self.write();
        if state.suspended {
            state.suspended = false;
            self.changed(state);
        }
    }

    /// Sets one namespace's labels (tracked indexes only) and re-labels its pods.
    pub fn apply_namespace(&self, name: &str, labels: Labels) {
        let mut state = self.write();
        if let Some(namespaces) = &mut state.namespaces {
            namespaces.labels.insert(name.to_owned(), labels);
            state.relabel(Some(name));
        }
        self.changed(state);
    }

    /// Forgets a namespace: its pods keep no namespace labels.
    pub fn delete_namespace(&self, name: &str) {
        let mut state = self.write();
        if let Some(namespaces) = &mut state.namespaces {
            namespaces.labels.remove(name);
            state.relabel(Some(name));
        }
        self.changed(state);
    }

    /// Replaces every namespace with a complete view, and marks namespaces synced.
    pub fn reset_namespaces(&self, all: impl IntoIterator<Item = (String, Labels)>) {
        let mut state = self.write();
        if let Some(namespaces) = &mut state.namespaces {
            namespaces.labels = all.into_iter().collect();
            namespaces.synced = true;
            state.relabel(None);
        }
        self.changed(state);
    }

    fn changed(&self, state: RwLockWriteGuard<'_, State>) {
        drop(state);
        self.observer.changed();
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read()
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write()
    }
}

impl State {
    fn is_ready(&self) -> bool {
        !self.suspended && self.pods_synced && self.namespaces.as_ref().is_none_or(|n| n.synced)
    }

    fn insert(&mut self, mut pod: Pod, mut ips: Vec<IpAddr>) {
        if let Some(namespaces) = &self.namespaces {
            pod.namespace_labels = namespaces
                .labels
                .get(&pod.namespace)
                .cloned()
                .unwrap_or_default();
        }
        let pod = Arc::new(pod);
        for ip in &mut ips {
            *ip = ip.to_canonical();
        }
        if pod.host_network {
            // The node's address: every hostNetwork pod shares it, so it names none of them.
            ips.clear();
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

    /// Re-joins namespace labels into the pods of `namespace` (or of every namespace).
    fn relabel(&mut self, namespace: Option<&str>) {
        let affected: Vec<(Pod, Vec<IpAddr>)> = self
            .by_uid
            .values()
            .filter(|(pod, _)| namespace.is_none_or(|ns| pod.namespace == ns))
            .map(|(pod, ips)| (Pod::clone(pod), ips.clone()))
            .collect();
        for (pod, ips) in affected {
            self.remove(&pod.uid);
            self.insert(pod, ips);
        }
    }
}

#[cfg(test)]
mod tests;
