//! The soak's cluster: 50 pods on one node, churned through the fake API server, and the record
//! of everything that happened to them (every uid with its labels and lifetime, and when each
//! address had no pod) for the judge.
//!
//! A pod is never changed in place: it is replaced by a new pod (new name, new uid, new random
//! labels, same address) or deleted for a while. So the labels of a uid are fixed for life.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::oracle::PodRecord;
use crate::support::fake_api::{self, FakeApi};

/// The guard's node.
pub const NODE: &str = "soak-node";
/// Pod addresses: 127.0.3.1 … 127.0.3.50.
pub const PODS: u8 = 50;

/// The address of pod slot `slot` (0-based).
pub fn slot_ip(slot: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 3, slot + 1)
}

/// The cluster as the soak plays it.
pub struct Cluster {
    api: FakeApi,
    state: Mutex<History>,
}

/// What happened, for the judge and the summary.
#[derive(Default)]
pub struct History {
    /// The uid holding each address now.
    pub live: HashMap<Ipv4Addr, String>,
    /// Addresses deleted for a while, and when they get a pod again.
    revive_at: HashMap<Ipv4Addr, Instant>,
    /// Every pod ever created on the node, by uid.
    pub pods: HashMap<String, PodRecord>,
    /// Per address, the intervals without a pod: from just before the delete to just after the
    /// next create (`None` while there is none).
    pub gaps: HashMap<Ipv4Addr, Vec<(Instant, Option<Instant>)>>,
    pub created: u64,
    pub replaced: u64,
    pub deleted_for_a_while: u64,
}

impl Cluster {
    /// One pod at every address, plus pods on another node claiming the same addresses with
    /// every permission (the guard must never see them).
    pub fn start(api: FakeApi, rng: &mut StdRng) -> Cluster {
        let cluster = Cluster {
            api,
            state: Mutex::default(),
        };
        for slot in 0..PODS {
            cluster.create(slot_ip(slot), rng);
            cluster.api.upsert_pod(fake_api::pod(
                "shop",
                &format!("elsewhere-{slot}"),
                "other-node",
                &[&slot_ip(slot).to_string()],
                &[("allow-node-metadata-lookup", "true")],
            ));
        }
        cluster
    }

    /// How many pods are live now.
    pub fn live(&self) -> usize {
        self.state.lock().unwrap().live.len()
    }

    /// The history so far.
    pub fn into_history(self) -> History {
        self.state.into_inner().unwrap()
    }

    /// Creates a new pod at `ip` with a random namespace and random labels.
    fn create(&self, ip: Ipv4Addr, rng: &mut StdRng) {
        let mut state = self.state.lock().unwrap();
        state.created += 1;
        let generation = state.created;
        let namespace = *["shop", "tools", "batch"].choose(rng).unwrap();
        let mut labels = BTreeMap::new();
        // Near misses ("True", "Web") must not select.
        let lookup = [
            Some("true"),
            Some("true"),
            Some("false"),
            Some("True"),
            None,
            None,
        ];
        if let Some(value) = *lookup.choose(rng).unwrap() {
            labels.insert("allow-node-metadata-lookup".to_owned(), value.to_owned());
        }
        let app = [Some("web"), Some("web"), Some("api"), Some("Web"), None];
        if let Some(value) = *app.choose(rng).unwrap() {
            labels.insert("app".to_owned(), value.to_owned());
        }
        labels.insert("generation".to_owned(), generation.to_string());
        let name = format!("soak-{}-{generation}", ip.octets()[3]);
        let uid = format!("5a0c0000-0000-4000-8000-{generation:012x}");
        let label_pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut pod = fake_api::pod(namespace, &name, NODE, &[&ip.to_string()], &label_pairs);
        pod["metadata"]["uid"] = uid.clone().into();
        state.pods.insert(
            uid.clone(),
            PodRecord {
                ip,
                namespace: namespace.to_owned(),
                name,
                labels,
                created: Instant::now(),
                deleted: None,
            },
        );
        self.api.upsert_pod(pod);
        let now = Instant::now();
        if let Some(gap) = state.gaps.entry(ip).or_default().last_mut() {
            gap.1.get_or_insert(now);
        }
        state.live.insert(ip, uid);
    }

    /// Deletes the pod at `ip`; `false` if there was none.
    fn delete(&self, ip: Ipv4Addr) -> bool {
        let mut state = self.state.lock().unwrap();
        let Some(uid) = state.live.remove(&ip) else {
            return false;
        };
        let started = Instant::now();
        state.gaps.entry(ip).or_default().push((started, None));
        let pod = &state.pods[&uid];
        self.api.delete_pod(&pod.namespace, &pod.name);
        state.pods.get_mut(&uid).unwrap().deleted = Some(Instant::now());
        true
    }

    /// One churn step: addresses whose time is up get a new pod, then one random address gets
    /// a new pod in place of its old one (3 in 4) or none for 0.2–1.5 s.
    pub fn churn(&self, rng: &mut StdRng) {
        let now = Instant::now();
        let due: Vec<Ipv4Addr> = {
            let mut state = self.state.lock().unwrap();
            let due: Vec<Ipv4Addr> = state
                .revive_at
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(ip, _)| *ip)
                .collect();
            for ip in &due {
                state.revive_at.remove(ip);
            }
            due
        };
        for ip in due {
            self.create(ip, rng);
        }
        let ip = slot_ip(rng.random_range(0..PODS));
        if !self.delete(ip) {
            return;
        }
        if rng.random_bool(0.75) {
            self.create(ip, rng);
            self.state.lock().unwrap().replaced += 1;
        } else {
            let away = Duration::from_millis(rng.random_range(200..1500));
            let mut state = self.state.lock().unwrap();
            state.revive_at.insert(ip, now + away);
            state.deleted_for_a_while += 1;
        }
    }
}
