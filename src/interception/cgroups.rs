//! The cgroup v2 tree as the cgroup method needs it: where it is mounted, which directory holds
//! the pods, and which pod a cgroup id belongs to.
//!
//! A cgroup id is its directory's inode number (64-bit kernels, ≥ 5.5), and ids are not reused,
//! so id → pod is cached. The tree is walked when an id is not in the cache (a new pod's first
//! connection) — at most once per [`RESCAN_INTERVAL`] whatever the number of requests — and
//! never per request otherwise.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup::pod_of_path;

/// The fewest time between two walks of the pods' tree for unknown ids.
pub const RESCAN_INTERVAL: Duration = Duration::from_millis(200);

/// How deep below the pods' cgroup a process may sit (QoS class, pod, container, and what a
/// runtime nests below): deeper directories are not walked.
const MAX_DEPTH: usize = 6;

/// The cgroup v2 mount point named in `mountinfo` (the text of `/proc/self/mountinfo`), and
/// whether v1 hierarchies are mounted beside it (a hybrid node).
pub fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, bool)> {
    let mut v2 = None;
    let mut v1 = false;
    for line in mountinfo.lines() {
        // `id parent major:minor root mountpoint options [optional…] - fstype source super`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split(' ').next().unwrap_or("");
        let mount_point = left.split(' ').nth(4).unwrap_or("");
        match fstype {
            "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(unescape(mount_point))),
            "cgroup" => v1 = true,
            _ => {}
        }
    }
    v2.map(|path| (path, v1))
}

/// `mountinfo` escapes spaces, tabs, newlines and backslashes as octal (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pods' cgroup under `root`, as kubelet names it: `kubepods.slice` (systemd driver),
/// `kubepods` (cgroupfs driver), or either below `kubelet.slice/kubelet-kubepods.slice`-style
/// prefixes that some distributions add.
pub fn find_pods_cgroup(root: &Path) -> Option<PathBuf> {
    const CANDIDATES: &[&str] = &[
        "kubepods.slice",
        "kubepods",
        "kubelet.slice/kubelet-kubepods.slice",
        "kubelet/kubepods",
    ];
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|rel| root.join(rel).is_dir())
}

/// A cgroup directory's id (its inode number).
pub fn cgroup_id(dir: &Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(dir)?.ino())
}

/// This process's cgroup (the `0::` line of `/proc/self/cgroup`), relative to the v2 root; `None`
/// in a private cgroup namespace, where it reads `/`.
pub fn own_cgroup(proc_self_cgroup: &str) -> Option<PathBuf> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?
        .trim();
    let rel = path.trim_start_matches('/');
    (!rel.is_empty()).then(|| PathBuf::from(rel))
}

/// cgroup id → pod UID, learnt from the pods' tree.
pub struct Resolver {
    /// The pods' cgroup directory (absolute).
    pods: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Every directory below the pods' cgroup seen so far, with the pod it belongs to (`None`:
    /// a QoS class directory, or anything else that is no pod's).
    known: HashMap<u64, Option<String>>,
    last_scan: Option<Instant>,
}

impl Resolver {
    /// A resolver of the tree below `pods`, walked once now.
    pub fn new(pods: PathBuf) -> Self {
        let resolver = Self {
            pods,
            state: Mutex::new(State::default()),
        };
        resolver.rescan(&mut resolver.lock());
        resolver
    }

    /// The pod whose cgroup (or one below it) has id `id`; `None` for a cgroup of no pod, or one
    /// not in the tree even after a fresh walk.
    pub fn pod_of(&self, id: u64) -> Option<String> {
        let mut state = self.lock();
        if let Some(known) = state.known.get(&id) {
            return known.clone();
        }
        let due = state
            .last_scan
            .is_none_or(|at| at.elapsed() >= RESCAN_INTERVAL);
        if due {
            self.rescan(&mut state);
        }
        state.known.get(&id).cloned().flatten()
    }

    /// How many cgroups the cache holds.
    pub fn len(&self) -> usize {
        self.lock().known.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rescan(&self, state: &mut State) {
        state.last_scan = Some(Instant::now());
        walk(&self.pods, Path::new(""), 0, &mut |_, rel, id| {
            let pod = pod_of_path(&rel.to_string_lossy());
            state.known.insert(id, pod);
        });
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        // The cache is only ever extended; a panic mid-walk leaves it usable.
        self.state.lock()
    }
}

/// The cgroup directory (absolute) of pod `uid` below `pods`, if it is in the tree now.
pub fn find_pod(pods: &Path, uid: &str) -> Option<PathBuf> {
    let mut found = None;
    walk(pods, Path::new(""), 0, &mut |dir, rel, _| {
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if found.is_none() && crate::cgroup::pod_uid(name).as_deref() == Some(uid) {
            found = Some(dir.to_owned());
        }
    });
    found
}

/// Calls `each(dir, path relative to the start, id)` for every directory below `dir` (not `dir`
/// itself), down to [`MAX_DEPTH`]. Directories that vanish meanwhile are passed over.
fn walk(dir: &Path, rel: &Path, depth: usize, each: &mut dyn FnMut(&Path, &Path, u64)) {
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_dir() {
            continue;
        }
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        each(&path, &rel, meta.ino());
        walk(&path, &rel, depth + 1, each);
    }
}

#[cfg(test)]
mod tests;
