//! The shipped image, run by a real container runtime under the manifests' own security context.
//!
//! `bash deploy/image/build.sh` (tests/run.sh runs it first) writes the image archive; these tests
//! read it, check that the Dockerfile describes the same image, and load it into podman (runc,
//! with a store of each test's own). The DaemonSet's container — rendered by kustomize and by the
//! chart, parsed, never retyped (tests/image/context.rs) — then runs on a "node" network
//! namespace with pods behind veth pairs and the emulator at 169.254.169.254 behind it:
//!
//! ```text
//!  prod 10.200.1.2 ─ cali1 ┐                            ┌ up0 169.254.0.1 ─ imds 169.254.169.254
//!  test 10.200.2.2 ─ cali2 ┴ node (ip_forward=1) ────────┘                    (imds-guard emulate)
//!                            HOST_IP 10.199.0.1: the guard's container, on the node's network
//! ```
//!
//! on a node whose iptables is legacy and on one whose iptables is nf_tables: the image must write
//! its rules with the backend the node uses. The sidecar example's init container and sidecar run
//! the same way in a pod's namespace. The cgroup interception's DaemonSet runs with the host's
//! cgroup root and BPF filesystem stood in for by a cgroup subtree and a bpffs of the test's own,
//! under containerd's RuntimeDefault profile (which allows `bpf()` with `CAP_BPF`) and, refused,
//! under podman's (which does not).
//!
//! Needs root, podman and runc, `ip`, `iptables-legacy`, `iptables-nft`, `curl`, and for the
//! renderings kubectl, kubernetes-validate and helm (tests/run.sh installs and builds them); fails,
//! never skips, naming what is missing. Every namespace, container and store a test makes is
//! removed when it ends, panics included.

use crate::cgroup_hooks;
use crate::chart;
#[path = "image/containerd.rs"]
mod containerd;
#[path = "image/context.rs"]
mod context;
use crate::netfilter_netns;
#[path = "image/podman.rs"]
mod podman;
use crate::render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use context::{podman_args, Node};
use netfilter_netns::guard::BIN;
use netfilter_netns::http::{curl, get, put_token, token_of, Got};
use netfilter_netns::{link, preflight, wait_until, Ns, Proc};
use podman::{archive, path_str, Podman, IMAGE};

const INSTANCE_ID: &str = "i-0123456789abcdef0";
const HOST_IP: &str = "10.199.0.1";
const PROD: &str = "10.200.1.2";
const TEST: &str = "10.200.2.2";
const PROD_UID: &str = "0e1a4c2b-7d4b-4c6f-9000-00000000000a";
const TEST_UID: &str = "0e1a4c2b-5f6d-4b7c-9000-00000000000b";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read_text(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The archive unpacked: the image's configuration and its root filesystem (one layer).
struct Unpacked {
    _dir: tempfile::TempDir,
    config: Value,
    rootfs: PathBuf,
}

fn unpack() -> Unpacked {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("layout");
    let rootfs = dir.path().join("rootfs");
    for d in [&layout, &rootfs] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let tar = |args: &[&str]| {
        let status = Command::new("tar").args(args).status().expect("run tar");
        assert!(status.success(), "tar {args:?}: {status}");
    };
    tar(&[
        "-xf",
        archive().to_str().unwrap(),
        "-C",
        layout.to_str().unwrap(),
    ]);
    let read = |digest: &str| -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob")
    };
    let json = |bytes: Vec<u8>| -> Value { serde_json::from_slice(&bytes).expect("JSON") };
    let index = json(std::fs::read(layout.join("index.json")).expect("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        format!("imds-guard:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        manifests[0]["annotations"]["io.containerd.image.name"],
        IMAGE
    );
    let manifest = json(read(manifests[0]["digest"].as_str().unwrap()));
    let config = json(read(manifest["config"]["digest"].as_str().unwrap()));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    let layer = layout.join("blobs/sha256").join(
        layers[0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    tar(&[
        "-xzf",
        layer.to_str().unwrap(),
        "-C",
        rootfs.to_str().unwrap(),
    ]);
    Unpacked {
        _dir: dir,
        config,
        rootfs,
    }
}

/// The Dockerfile's last stage: its ENV, LABEL, USER, WORKDIR, ENTRYPOINT and CMD.
#[derive(Debug, Default)]
struct Stage {
    env: Vec<String>,
    labels: BTreeMap<String, String>,
    user: String,
    workdir: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    runs: Vec<String>,
    copies: Vec<String>,
}

fn dockerfile_stages() -> Vec<Stage> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    // Continuation lines joined, comments dropped.
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    lines.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    let mut stages: Vec<Stage> = Vec::new();
    for line in lines {
        let (instruction, rest) = line.trim().split_once(' ').expect("INSTRUCTION args");
        if instruction == "FROM" {
            stages.push(Stage::default());
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            continue; // ARG before the first FROM
        };
        match instruction {
            "ENV" => {
                let (k, v) = rest.split_once('=').expect("ENV key=value");
                stage.env.push(format!("{}={}", k.trim(), unquote(v)));
            }
            "LABEL" => {
                let (k, v) = rest.split_once('=').expect("LABEL key=value");
                stage.labels.insert(k.trim().to_owned(), unquote(v));
            }
            "USER" => stage.user = rest.trim().to_owned(),
            "WORKDIR" => stage.workdir = rest.trim().to_owned(),
            "ENTRYPOINT" => stage.entrypoint = serde_json::from_str(rest).expect("exec form"),
            "CMD" => stage.cmd = serde_json::from_str(rest).expect("exec form"),
            "RUN" => stage.runs.push(rest.trim().to_owned()),
            "COPY" => stage.copies.push(rest.trim().to_owned()),
            _ => {}
        }
    }
    stages
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// The packages `deploy/image/packages` names.
fn named_packages() -> BTreeSet<String> {
    std::fs::read_to_string(repo().join("deploy/image/packages"))
        .expect("deploy/image/packages")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_dockerfile_and_the_build_script_make_one_image() {
    let image = unpack();
    let stages = dockerfile_stages();
    let last = stages.last().expect("a stage");
    let config = &image.config["config"];

    assert_eq!(strs(&config["Entrypoint"]), last.entrypoint, "entrypoint");
    assert_eq!(strs(&config["Cmd"]), last.cmd, "command");
    assert_eq!(config["User"], last.user.as_str(), "user");
    assert_eq!(
        config["WorkingDir"],
        last.workdir.as_str(),
        "working directory"
    );
    assert_eq!(strs(&config["Env"]), last.env, "environment");
    let labels: BTreeMap<String, String> =
        serde_json::from_value(config["Labels"].clone()).expect("labels");
    assert_eq!(
        labels.keys().collect::<Vec<_>>(),
        last.labels.keys().collect::<Vec<_>>(),
        "label names"
    );
    for (key, value) in &last.labels {
        // Build arguments (revision, source, time) differ by build; the rest must be equal.
        if !value.contains("${") {
            assert_eq!(&labels[key], value, "label {key}");
        }
    }
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );

    // Both make the root filesystem with the same script from the same package list.
    let rootfs_stage = stages
        .iter()
        .find(|s| s.runs.iter().any(|r| r.contains("rootfs.sh")))
        .expect("a stage that runs deploy/image/rootfs.sh");
    assert!(
        rootfs_stage
            .copies
            .contains(&"deploy/image/ /image/".to_owned()),
        "the rootfs stage copies deploy/image/ (the script and its package list): {:?}",
        rootfs_stage.copies
    );
    assert!(last.copies.contains(&"--from=rootfs /rootfs/ /".to_owned()));
    assert_eq!(
        last.copies.len(),
        1,
        "the image is the root filesystem alone: {:?}",
        last.copies
    );

    // Every package named gave files, and the image records where each file came from.
    let recorded: BTreeSet<String> = std::fs::read_dir(image.rootfs.join("var/lib/dpkg/status.d"))
        .expect("status.d")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for package in named_packages() {
        assert!(
            recorded.contains(&package),
            "{package} is named but gave the image nothing: {recorded:?}"
        );
    }
    for package in &recorded {
        let entry =
            std::fs::read_to_string(image.rootfs.join("var/lib/dpkg/status.d").join(package))
                .unwrap();
        assert!(entry.contains(&format!("Package: {package}\n")), "{entry}");
        assert!(entry.contains("\nVersion: "), "{entry}");
        assert!(
            image
                .rootfs
                .join("usr/share/doc")
                .join(package)
                .join("copyright")
                .is_file(),
            "{package} has no copyright file"
        );
    }
    // No shell, no package manager.
    for path in ["bin/sh", "bin/bash", "usr/bin/dpkg", "usr/bin/apt"] {
        assert!(!image.rootfs.join(path).exists(), "{path} is in the image");
    }
    let os = std::fs::read_to_string(image.rootfs.join("usr/lib/os-release")).unwrap();
    assert!(os.contains("VERSION_CODENAME=bookworm"), "{os}");
}

#[test]
fn the_image_answers_version_and_carries_its_labels() {
    preflight(&[]);
    let podman = Podman::with_image();
    let version = podman.run_once(&[], &["--version"]);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        concat!("imds-guard ", env!("CARGO_PKG_VERSION"))
    );
    let labels: BTreeMap<String, String> = serde_json::from_str(&podman.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Labels}}",
        IMAGE,
    ]))
    .expect("labels as JSON");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(labels["org.opencontainers.image.title"], "imds-guard");
    assert!(!labels["org.opencontainers.image.source"].is_empty());
    // No shell to start.
    let shell = podman.run_once(&["--entrypoint=/bin/sh"], &["-c", "true"]);
    assert!(!shell.status.success(), "the image has a shell");
}

/// The shipped guard has no emulator and none of its test keys: `emulate` and a config asking
/// for the built-in emulator are refused, and the binary holds no private key.
#[test]
fn the_image_carries_no_emulator_and_no_test_key() {
    preflight(&[]);
    for (file, text) in [
        ("Dockerfile", read_text("Dockerfile")),
        ("deploy/image/build.sh", read_text("deploy/image/build.sh")),
    ] {
        assert!(
            text.contains("cargo build --release --locked --no-default-features"),
            "{file} must build the guard without the emulator"
        );
    }
    let unpacked = unpack();
    let binary = std::fs::read(unpacked.rootfs.join("usr/local/bin/imds-guard")).expect("binary");
    let key = read_text("crates/emulator/src/oci/key.pem");
    let key_line = key
        .lines()
        .nth(1)
        .expect("the test key's first base64 line");
    let holds = |needle: &[u8]| binary.windows(needle.len()).any(|w| w == needle);
    // PEM armour around a key ("…PRIVATE KEY-----"); the bare labels ("RSA PRIVATE KEY", "EC
    // PRIVATE KEY") are in every binary whose TLS stack reads PEM, and are no key.
    assert!(
        !holds(b"PRIVATE KEY-----"),
        "the image's binary holds a PEM private key"
    );
    assert!(
        !holds(key_line.as_bytes()),
        "the image's binary holds the emulator's test key"
    );

    let podman = Podman::with_image();
    let emulate = podman.run_once(&[], &["emulate", "--listen", "127.0.0.1:1338"]);
    let stderr = String::from_utf8_lossy(&emulate.stderr);
    assert!(!emulate.status.success(), "emulate ran in the image");
    assert!(stderr.contains("built without the emulator"), "{stderr}");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.toml"),
        "[upstream]\nurl = \"http://127.0.0.1:1338\"\nemulator = true\n",
    )
    .expect("config");
    let volume = format!("{}:/cfg:ro", path_str(dir.path()));
    let check = podman.run_once(&["-v", &volume], &["check", "--config", "/cfg/config.toml"]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success(),
        "the image accepted the built-in emulator"
    );
    assert!(stderr.contains("upstream.emulator"), "{stderr}");
}

/// Which iptables the node's own tools (the kubelet, kube-proxy, the CNI) use.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Legacy,
    Nft,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }

    fn other(self) -> Backend {
        match self {
            Backend::Legacy => Backend::Nft,
            Backend::Nft => Backend::Legacy,
        }
    }
}

/// The node, its pods and the metadata service.
struct Topology {
    node: Ns,
    imds: Ns,
    prod: Ns,
    test: Ns,
    _emulator: Proc,
}

impl Topology {
    fn build() -> Topology {
        let (node, imds) = (Ns::new("node"), Ns::new("imds"));
        let (prod, test) = (Ns::new("prod"), Ns::new("test"));
        link(
            &node,
            "up0 169.254.0.1/16",
            &imds,
            "eth0 169.254.169.254/16",
        );
        link(&node, "cali1 10.200.1.1/24", &prod, "eth0 10.200.1.2/24");
        link(&node, "cali2 10.200.2.1/24", &test, "eth0 10.200.2.2/24");
        imds.sh("ip route add default via 169.254.0.1");
        prod.sh("ip route add default via 10.200.1.1");
        test.sh("ip route add default via 10.200.2.1");
        node.sh(&format!("ip addr add {HOST_IP}/32 dev lo"));
        node.ok(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        // The witness: every TCP connection that reaches the metadata service is counted.
        imds.sh("iptables -A INPUT -p tcp --dport 80 --syn -j ACCEPT");
        let emulator = imds.spawn(&[BIN, "emulate", "--listen", "169.254.169.254:80"]);
        assert!(
            wait_until(Duration::from_secs(10), || {
                get(&imds, "/latest/meta-data/instance-id", None).status == 200
            }),
            "the emulator did not start:\n{}",
            emulator.output()
        );
        Topology {
            node,
            imds,
            prod,
            test,
            _emulator: emulator,
        }
    }

    /// Connections that have reached the metadata service so far.
    fn reached_imds(&self) -> u64 {
        reached(&self.imds)
    }
}

/// The connections that the counting rule in `imds` has seen.
fn reached(imds: &Ns) -> u64 {
    let out = imds.ok(&["iptables", "-L", "INPUT", "-n", "-v", "-x"]);
    out.lines()
        .find(|l| l.contains("dpt:80"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the counting rule")
}

/// Waits for the node guard's `/readyz` (200) on the node's admin port.
fn wait_ready(t: &Topology, guard: &podman::Container) {
    let ready = || curl(&t.node, 2, &[&format!("http://{HOST_IP}:8182/readyz")]).status == 200;
    assert!(
        wait_until(Duration::from_secs(20), || ready() || !guard.running()),
        "the guard did not become ready:\n{}",
        guard.output()
    );
    assert!(guard.running(), "{}", guard.output());
}

/// That the runtime applied a security context to the container's process `pid`: its uid, exactly
/// the capabilities `added` (names without `CAP_`), no privilege escalation, a seccomp filter.
fn assert_context(pid: u32, uid: u32, added: &[&str]) {
    assert_eq!(
        status_field(pid, "Uid").split_whitespace().next(),
        Some(uid.to_string().as_str())
    );
    assert_eq!(
        u64::from_str_radix(&status_field(pid, "CapEff"), 16).unwrap(),
        caps(added),
        "effective capabilities: only {added:?}"
    );
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "Seccomp"), "2", "a seccomp filter");
}

/// The manifest's config with a static inventory in place of the Kubernetes watch (no API server
/// here; tests/controlplane.rs covers the watch): `prod` labelled as the seed's rule wants, `test`
/// not. Everything else — listeners, interfaces, rules, mode — is the manifest's.
fn node_config(rendered: &render::Rendered, dir: &Path) -> PathBuf {
    let mut config = render::config(rendered);
    let inventory: toml::Value = toml::from_str(&format!(
        r#"
source = "static"
[[pods]]
ip = "{PROD}"
namespace = "imds"
name = "prod-7d4b9c6f5-x2x9q"
uid = "{PROD_UID}"
labels = {{ "allow-node-metadata-lookup" = "true", app = "prod" }}
[[pods]]
ip = "{TEST}"
namespace = "imds"
name = "test-5f6d8b7c9-k8k7p"
uid = "{TEST_UID}"
labels = {{ app = "test" }}
"#
    ))
    .expect("inventory");
    config
        .as_table_mut()
        .unwrap()
        .insert("inventory".into(), inventory);
    let volume = dir.join("config");
    std::fs::create_dir_all(&volume).expect("mkdir");
    std::fs::write(
        volume.join("config.toml"),
        toml::to_string(&config).expect("TOML"),
    )
    .expect("write config");
    volume
}

/// The node a DaemonSet's guard runs on: its network namespace, `host_paths`, the rendered config,
/// and the downward-API fields the manifests read (`uid` is the guard pod's).
fn guard_node(
    t: &Topology,
    rendered: &render::Rendered,
    dir: &Path,
    uid: &str,
    host_paths: BTreeMap<String, PathBuf>,
) -> Node {
    Node {
        netns: t.node.name.clone(),
        host_paths,
        volumes: BTreeMap::from([("config".to_owned(), node_config(rendered, dir))]),
        fields: BTreeMap::from([
            ("spec.nodeName".to_owned(), "node-1".to_owned()),
            ("status.hostIP".to_owned(), HOST_IP.to_owned()),
            ("metadata.uid".to_owned(), uid.to_owned()),
        ]),
        runtime_default: None,
    }
}

/// The IMDS-GUARD rules of a backend in the node.
fn guard_rules(node: &Ns, backend: Backend) -> usize {
    let save = node.ok(&[&format!("iptables-{}-save", backend.name())]);
    save.lines()
        .filter(|l| l.starts_with("-A ") && l.contains("IMDS-GUARD"))
        .count()
}

/// The bits of a capability set in /proc/PID/status.
fn caps(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|name| match *name {
            "NET_ADMIN" => 1 << 12,
            "NET_RAW" => 1 << 13,
            "BPF" => 1 << 39,
            other => panic!("capability {other}: add its number here"),
        })
        .sum()
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

/// The seed's scenario through the guard's container: the DaemonSet's pod spec and container of
/// `rendered`, on a node whose iptables is `backend`.
fn a_node_guarded_by_the_daemonset(rendered: &render::Rendered, backend: Backend) {
    preflight(&[
        ("ip", "iproute2"),
        ("iptables-legacy", "iptables"),
        ("iptables-nft", "iptables"),
        ("curl", "curl"),
    ]);
    let (pod, container) = render::guard(rendered);
    let t = Topology::build();
    let dir = tempfile::tempdir().expect("tempdir");

    // The node's tools have written their rules with `backend`: the kubelet's hint chain and a
    // CNI's rule, as on a real node.
    let tool = format!("iptables-{}", backend.name());
    t.node
        .ok(&[&tool, "-t", "mangle", "-N", "KUBE-IPTABLES-HINT"]);
    t.node.ok(&[
        &tool,
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        "10.200.0.0/16",
        "!",
        "-o",
        "cali+",
        "-j",
        "MASQUERADE",
    ]);

    let xtables_lock = BTreeMap::from([(
        "/run/xtables.lock".to_owned(),
        dir.path().join("xtables.lock"),
    )]);
    let node = guard_node(
        &t,
        rendered,
        dir.path(),
        "6f1c2d3e-0000-4000-8000-000000000001",
        xtables_lock,
    );
    let podman = Podman::with_image();
    let guard = podman.start("guard", &podman_args(pod, container, &node, IMAGE));
    let admin = |path: &str| curl(&t.node, 2, &[&format!("http://{HOST_IP}:8182{path}")]);
    wait_ready(&t, &guard);

    // The runtime applied the manifest's security context.
    let pid = guard.pid();
    let added = render::strings(&container["securityContext"]["capabilities"]["add"]);
    assert_context(pid, 0, &added);
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("the root mount");
    assert!(
        root.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "the root is read-only: {root}"
    );

    // The bypass check runs the image's tc under this context. (Its tcx half needs bpf(), which
    // RuntimeDefault profiles allow only with CAP_BPF or CAP_SYS_ADMIN: docs/deploy.md.)
    assert!(
        wait_until(Duration::from_secs(5), || admin("/metrics")
            .body
            .contains("imds_guard_netfilter_bypass_checks_total{")),
        "no bypass check:\n{}\n{}",
        guard.output(),
        admin("/metrics").body
    );
    let stderr = guard.logs().1;
    assert!(
        !stderr.contains("tc not found") && !stderr.contains("`tc -j filter show"),
        "tc does not run in the image:\n{stderr}"
    );

    // The rules are in the node's backend, and only there.
    assert!(guard_rules(&t.node, backend) > 0, "no rules in {backend:?}");
    assert_eq!(
        guard_rules(&t.node, backend.other()),
        0,
        "rules in the other backend"
    );

    // prod reads, with a token; test is refused.
    let token = put_token(&t.prod, 3);
    assert_eq!(token.status, 200, "{token:?}\n{}", guard.output());
    let token = token_of(&token);
    let read = get(&t.prod, "/latest/meta-data/instance-id", Some(&token));
    assert_eq!(
        (read.status, read.body.as_str()),
        (200, INSTANCE_ID),
        "{read:?}"
    );
    let refused = get(&t.test, "/latest/meta-data/instance-id", None);
    assert_eq!(refused.status, 403, "{refused:?}");

    // Audit lines on the container's stdout, one JSON object per line, naming each pod.
    let stdout = || guard.logs().0;
    assert!(
        wait_until(Duration::from_secs(5), || stdout().lines().count() >= 3),
        "{}",
        guard.output()
    );
    let audit: Vec<Value> = stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let decision_of = |pod: &str| -> Vec<String> {
        audit
            .iter()
            .filter(|a| a["pod"] == pod)
            .map(|a| a["decision"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(
        decision_of("imds/prod-7d4b9c6f5-x2x9q")
            .iter()
            .any(|d| d == "allow"),
        "{audit:?}"
    );
    assert!(
        decision_of("imds/test-5f6d8b7c9-k8k7p")
            .iter()
            .any(|d| d == "deny"),
        "{audit:?}"
    );
    let metrics = admin("/metrics");
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(
        metrics.body.lines().any(
            |l| l.starts_with("imds_guard_requests_total{") && l.contains("decision=\"allow\"")
        ),
        "{}",
        metrics.body
    );

    // The guard stopped as the kubelet stops it: the rules stay, pods are refused, and nothing
    // reaches the metadata service.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    guard.stop(grace);
    assert!(
        guard_rules(&t.node, backend) > 0,
        "the rules went with the guard"
    );
    let before = t.reached_imds();
    let direct: Got = get(&t.prod, "/latest/meta-data/instance-id", None);
    assert_eq!(
        direct.status, 0,
        "a pod got an answer with the guard stopped: {direct:?}"
    );
    assert_eq!(
        t.reached_imds(),
        before,
        "a pod reached the metadata service"
    );
}

#[test]
fn the_kustomize_daemonset_guards_a_legacy_node() {
    a_node_guarded_by_the_daemonset(render::base(), Backend::Legacy);
}

#[test]
fn the_kustomize_daemonset_guards_an_nf_tables_node() {
    a_node_guarded_by_the_daemonset(render::base(), Backend::Nft);
}

#[test]
fn the_chart_daemonset_guards_an_nf_tables_node() {
    a_node_guarded_by_the_daemonset(chart::default_render(), Backend::Nft);
}

/// `dir`'s files for a downward-API volume of the pod's labels, as the kubelet writes them.
fn podinfo(labels: &Value, dir: &Path) -> PathBuf {
    let volume = dir.join("podinfo");
    std::fs::create_dir_all(&volume).expect("mkdir");
    let text: String = labels
        .as_object()
        .expect("labels")
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"\n", v.as_str().expect("a label value")))
        .collect();
    std::fs::write(volume.join("labels"), text).expect("write labels");
    volume
}

#[test]
fn the_sidecar_example_guards_its_pod() {
    preflight(&[
        ("ip", "iproute2"),
        ("curl", "curl"),
        ("setpriv", "util-linux"),
    ]);
    let rendered = render::render(&render::deploy_dir().join("sidecar/example"));
    let deployment = render::one(&rendered, "Deployment");
    let template = &deployment["spec"]["template"];
    let pod = &template["spec"];
    let init = pod["initContainers"].as_array().expect("initContainers");
    let [rules, sidecar] = [&init[0], &init[1]];
    assert_eq!(strs(&rules["args"])[..2], ["iptables", "install"]);
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar");
    // The workload runs as the pod's user.
    let workload_uid = pod["securityContext"]["runAsUser"]
        .as_u64()
        .expect("the pod's runAsUser") as u32;

    let (pod_ns, imds) = (Ns::new("pod"), Ns::new("imds"));
    link(&pod_ns, "eth0 10.201.0.2/24", &imds, "eth0 10.201.0.1/24");
    pod_ns.sh("ip route add default via 10.201.0.1");
    imds.sh("ip addr add 169.254.169.254/32 dev lo");
    imds.sh("iptables -A INPUT -p tcp --dport 80 --syn -j ACCEPT");
    let emulator = imds.spawn(&[BIN, "emulate", "--listen", "169.254.169.254:80"]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            get(&imds, "/latest/meta-data/instance-id", None).status == 200
        }),
        "the emulator did not start:\n{}",
        emulator.output()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    std::fs::write(config.join("config.toml"), render::config_text(&rendered)).expect("config");
    let node = Node {
        netns: pod_ns.name.clone(),
        host_paths: BTreeMap::new(),
        volumes: BTreeMap::from([
            ("imds-guard-config".to_owned(), config),
            (
                "imds-guard-podinfo".to_owned(),
                podinfo(&template["metadata"]["labels"], dir.path()),
            ),
        ]),
        fields: BTreeMap::from([
            ("metadata.namespace".to_owned(), "shop".to_owned()),
            (
                "metadata.name".to_owned(),
                "inventory-api-6d9f7-abcde".to_owned(),
            ),
            (
                "metadata.uid".to_owned(),
                "6f1c2d3e-0000-4000-8000-000000000002".to_owned(),
            ),
        ]),
        runtime_default: None,
    };
    let podman = Podman::with_image();
    // The init container: the rules, then it exits.
    let installer = podman.start("rules", &podman_args(pod, rules, &node, IMAGE));
    assert_eq!(
        installer.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        installer.output()
    );
    let guard = podman.start("sidecar", &podman_args(pod, sidecar, &node, IMAGE));
    assert!(
        wait_until(Duration::from_secs(20), || {
            curl(&pod_ns, 2, &["http://127.0.0.1:8182/readyz"]).status == 200 || !guard.running()
        }),
        "the sidecar did not become ready:\n{}",
        guard.output()
    );
    assert_context(guard.pid(), 1337, &[]);

    // The workload: the placement every pod may read; not the instance id (its label is "false").
    let workload = |path: &str| {
        netfilter_netns::http::curl_as(
            &pod_ns,
            Some(workload_uid),
            3,
            &[&format!("http://169.254.169.254{path}")],
        )
    };
    let zone = workload("/latest/meta-data/placement/availability-zone");
    assert_eq!(zone.status, 200, "{zone:?}\n{}", guard.output());
    let refused = workload("/latest/meta-data/instance-id");
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        guard
            .logs()
            .0
            .lines()
            .any(|l| l.contains(r#""pod":"shop/inventory-api-6d9f7-abcde""#)
                && l.contains(r#""decision":"deny""#)),
        "{}",
        guard.output()
    );

    // The sidecar gone: the pod's rules stay, and its requests go nowhere.
    guard.stop(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    let before = reached(&imds);
    let gone = workload("/latest/meta-data/placement/availability-zone");
    assert_eq!(
        gone.status, 0,
        "answered with the sidecar stopped: {gone:?}"
    );
    assert_eq!(
        reached(&imds),
        before,
        "the workload reached the metadata service"
    );
}

#[test]
fn a_security_context_the_image_cannot_live_with_stops_the_guard() {
    preflight(&[("ip", "iproute2"), ("curl", "curl")]);
    // The DaemonSet as rendered, but for one change: NET_ADMIN no longer added.
    let rendered = render::base();
    let (pod, container) = render::guard(rendered);
    let mut container = container.clone();
    let add = container["securityContext"]["capabilities"]["add"]
        .as_array_mut()
        .expect("capabilities.add");
    add.retain(|c| c != "NET_ADMIN");
    let t = Topology::build();
    let dir = tempfile::tempdir().expect("tempdir");
    let xtables_lock = BTreeMap::from([(
        "/run/xtables.lock".to_owned(),
        dir.path().join("xtables.lock"),
    )]);
    let node = guard_node(
        &t,
        rendered,
        dir.path(),
        "6f1c2d3e-0000-4000-8000-000000000004",
        xtables_lock,
    );
    let podman = Podman::with_image();
    let guard = podman.start("guard", &podman_args(pod, &container, &node, IMAGE));
    let code = guard.wait(Duration::from_secs(20));
    assert!(
        code.is_some_and(|c| c != 0),
        "the guard ran without NET_ADMIN (exit {code:?}):\n{}",
        guard.output()
    );
    let (_, stderr) = guard.logs();
    assert!(
        stderr.contains("CAP_NET_ADMIN"),
        "the guard's error names what it lacks:\n{stderr}"
    );
    // Refused before it served: no pod got an answer, and no rule half-installed.
    assert_eq!(guard_rules(&t.node, Backend::Legacy), 0);
    assert_eq!(guard_rules(&t.node, Backend::Nft), 0);
    let proxy = curl(
        &t.node,
        2,
        &[&format!("http://{HOST_IP}:8181/latest/meta-data/")],
    );
    assert_eq!(
        proxy.status, 0,
        "something answers on the proxy port: {proxy:?}"
    );
}

/// The cgroup interception's DaemonSet: hooks on the node's pods' cgroups (a subtree of the test's
/// own, where the pods' processes run as the kubelet's systemd driver names them), pins in a bpffs
/// of the test's own.
#[test]
fn the_cgroup_daemonset_guards_a_node() {
    preflight(&[
        ("ip", "iproute2"),
        ("curl", "curl"),
        ("nsenter", "util-linux"),
    ]);
    let rendered = render::overlay(&["cgroup-interception"]);
    let (pod, container) = render::guard(&rendered);
    let added = render::strings(&container["securityContext"]["capabilities"]["add"]);
    let t = Topology::build();
    let dir = tempfile::tempdir().expect("tempdir");
    let cgroups = cgroup_hooks::Cgroups::new();
    let bpffs = cgroup_hooks::Bpffs::mount();
    let prod_cgroup = cgroups.make(&cgroup_hooks::systemd_pod("besteffort", PROD_UID));
    let test_cgroup = cgroups.make(&cgroup_hooks::systemd_pod("burstable", TEST_UID));
    let node = |runtime_default: Option<PathBuf>| Node {
        runtime_default,
        ..guard_node(
            &t,
            &rendered,
            dir.path(),
            "6f1c2d3e-0000-4000-8000-000000000003",
            BTreeMap::from([
                ("/sys/fs/cgroup".to_owned(), cgroups.root.clone()),
                ("/sys/fs/bpf".to_owned(), bpffs.path().to_owned()),
            ]),
        )
    };
    let podman = Podman::with_image();

    // Under podman's own default profile (CRI-O's): bpf() is refused, and the guard with it.
    let refused = podman.start(
        "crio-default",
        &podman_args(pod, container, &node(None), IMAGE),
    );
    let code = refused.wait(Duration::from_secs(20));
    assert!(
        code.is_some_and(|c| c != 0),
        "the cgroup method ran without bpf() (exit {code:?}):\n{}",
        refused.output()
    );
    let said = refused.logs().1;
    assert!(
        said.contains("cannot load the kernel programs")
            && said.contains("Operation not permitted"),
        "{}",
        refused.output()
    );
    assert!(bpffs.files().is_empty(), "pins left: {:?}", bpffs.files());

    // Under containerd's: the hooks are attached, and pods are known by their cgroup.
    let profile = containerd::runtime_default(&added, dir.path());
    let guard = podman.start(
        "guard",
        &podman_args(pod, container, &node(Some(profile)), IMAGE),
    );
    wait_ready(&t, &guard);
    assert_context(guard.pid(), 0, &added);

    let pod_curl =
        |ns: &Ns, cgroup: &Path, args: &[&str]| cgroup_hooks::curl(ns, Some(cgroup), args);
    let url = "http://169.254.169.254/latest/meta-data/instance-id";
    let token = pod_curl(
        &t.prod,
        &prod_cgroup,
        &[
            "-X",
            "PUT",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 60",
            "http://169.254.169.254/latest/api/token",
        ],
    );
    assert_eq!(token.status, 200, "{token:?}\n{}", guard.output());
    let header = format!("X-aws-ec2-metadata-token: {}", token.body.trim());
    let read = pod_curl(&t.prod, &prod_cgroup, &["-H", &header, url]);
    assert_eq!(
        (read.status, read.body.as_str()),
        (200, INSTANCE_ID),
        "{read:?}"
    );
    let denied = pod_curl(&t.test, &test_cgroup, &[url]);
    assert_eq!(denied.status, 403, "{denied:?}");
    let audit = guard.logs().0;
    assert!(
        audit
            .lines()
            .any(|l| l.contains(r#""pod":"imds/prod-7d4b9c6f5-x2x9q""#)
                && l.contains(r#""identity":"cgroup""#)),
        "{audit}"
    );
    // No netfilter rule: the hooks alone.
    assert_eq!(
        guard_rules(&t.node, Backend::Legacy) + guard_rules(&t.node, Backend::Nft),
        0
    );
    assert!(!bpffs.files().is_empty(), "no pins in the node's bpffs");

    // Stopped: the pinned hooks stay, pods are refused, nothing reaches the metadata service.
    guard.stop(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    let before = t.reached_imds();
    let gone = pod_curl(&t.prod, &prod_cgroup, &[url]);
    assert_eq!(gone.status, 0, "answered with the guard stopped: {gone:?}");
    assert_eq!(
        t.reached_imds(),
        before,
        "a pod reached the metadata service"
    );
}
