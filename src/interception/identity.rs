//! Which pod opened an accepted connection, by the cgroup the kernel recorded for it.
//!
//! The sockops program recorded, when the pod's connect left, the connection's 4-tuple as the
//! guard sees it with the cgroup that dialled. On accept the guard takes that record (and deletes
//! it, so a later connection reusing the tuple cannot inherit it) and maps the cgroup to a pod UID
//! through [`Resolver`]. A connection with no record did not come through the hooks (another
//! node, a process that dialled the listener directly): it has no cgroup identity, and is refused
//! as an unknown source.

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap, MapData};

use super::cgroups::Resolver;
use super::kernel::{open_records, tuple_key};
use super::InterceptionError;

/// Looks up accepted connections' cgroups and pods.
pub struct Identifier {
    records: Mutex<HashMap<MapData, [u8; 36], [u8; 16]>>,
    resolver: Resolver,
}

impl Identifier {
    /// Opens the pinned records map under `pin_dir`; pods' cgroups are found below `pods_dir`.
    pub fn open(pin_dir: &Path, pods_dir: PathBuf) -> Result<Self, InterceptionError> {
        Ok(Self {
            records: Mutex::new(open_records(pin_dir)?),
            resolver: Resolver::new(pods_dir),
        })
    }

    /// The cgroup id the kernel recorded for the connection from `peer` to `local`, taking the
    /// record.
    pub fn cgroup_of(&self, peer: SocketAddr, local: SocketAddr) -> Option<u64> {
        let key = tuple_key(peer, local);
        let mut records = self.records.lock();
        let record = records.get(&key, 0).ok()?;
        // Gone already (LRU eviction, a race with another accept of the same tuple): the record
        // was read, which is what counts.
        let _ = records.remove(&key);
        Some(u64::from_ne_bytes(record[..8].try_into().ok()?))
    }

    /// The UID of the pod that opened the connection from `peer` to `local`, if the kernel
    /// recorded it and its cgroup is a pod's.
    pub fn pod_of(&self, peer: SocketAddr, local: SocketAddr) -> Option<String> {
        self.resolver.pod_of(self.cgroup_of(peer, local)?)
    }

    /// The cgroup resolver (for tests and benchmarks).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }
}
