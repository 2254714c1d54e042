//! A container of a rendered manifest, turned into `podman run` options as a kubelet would run it:
//! the user, capabilities, privilege escalation, read-only root and seccomp profile of its
//! security context (the pod's, overridden by the container's), its environment (downward-API
//! fields from values the test gives), its volume mounts, its network (the node's, for a
//! hostNetwork pod; the pod's otherwise) and its command and arguments.
//!
//! Read from the manifest, never retyped: a field this does not know fails the test, so that a
//! change to a manifest cannot go untested here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

/// Where the test's "node" keeps what the manifest's volumes name.
pub struct Node {
    /// The network namespace of the node (hostNetwork) or of the pod.
    pub netns: String,
    /// A host path of a `hostPath` volume → the test's stand-in for it.
    pub host_paths: BTreeMap<String, PathBuf>,
    /// A `configMap`, `secret` or `downwardAPI` volume's name → the directory the test filled.
    pub volumes: BTreeMap<String, PathBuf>,
    /// A downward-API field path (`status.hostIP`) → its value.
    pub fields: BTreeMap<String, String>,
    /// The profile `RuntimeDefault` stands for: podman's own when `None` (CRI-O's too), or a file
    /// (containerd's, from tests/image/containerd.rs).
    pub runtime_default: Option<PathBuf>,
}

/// The `podman run` options and arguments for `container` of `pod` (a pod spec), ending with the
/// image and the container's arguments.
pub fn podman_args(pod: &Value, container: &Value, node: &Node, image: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--pull=never".into(),
        format!("--network=ns:/run/netns/{}", node.netns),
    ];
    args.extend(super::podman::LIMITS.map(String::from));
    args.extend(security(pod, container, node));
    args.extend(env(container, node));
    args.extend(mounts(pod, container, node));
    if let Some(command) = container.get("command") {
        let command = strings(command);
        assert_eq!(command.len(), 1, "a command of one program: {command:?}");
        args.push(format!("--entrypoint={}", command[0]));
    }
    // The manifest's image, as a kubelet names it to the runtime, must be the one built here.
    let named = container["image"].as_str().expect("image");
    let normalized = match named.split_once('/') {
        Some((registry, _)) if registry.contains(['.', ':']) => named.to_owned(),
        Some(_) => format!("docker.io/{named}"),
        None => format!("docker.io/library/{named}"),
    };
    assert_eq!(
        normalized, image,
        "the manifest runs {named}, not the image built here"
    );
    args.push(image.to_owned());
    args.extend(strings(&container["args"]).into_iter().map(str::to_owned));
    args
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().expect("a string")).collect())
        .unwrap_or_default()
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The security context: the pod's fields that apply to containers, overridden by the
/// container's.
fn security(pod: &Value, container: &Value, node: &Node) -> Vec<String> {
    let mut merged = Map::new();
    for (key, value) in object(&pod["securityContext"]) {
        match key.as_str() {
            "runAsUser" | "runAsGroup" | "runAsNonRoot" | "seccompProfile" => {
                merged.insert(key, value);
            }
            other => panic!("pod securityContext.{other}: not known to tests/image/context.rs"),
        }
    }
    merged.extend(object(&container["securityContext"]));

    let mut args = Vec::new();
    let user = merged.get("runAsUser").and_then(Value::as_u64);
    match (user, merged.get("runAsGroup").and_then(Value::as_u64)) {
        (Some(u), Some(g)) => args.push(format!("--user={u}:{g}")),
        (Some(u), None) => args.push(format!("--user={u}")),
        (None, _) => {}
    }
    for (key, value) in &merged {
        match key.as_str() {
            "runAsUser" | "runAsGroup" => {}
            "runAsNonRoot" => {
                // The kubelet refuses to start a container that would run as root with this set.
                if value == true {
                    assert!(
                        user.is_some_and(|u| u != 0),
                        "runAsNonRoot with user {user:?}: the kubelet would not start it (the image runs as 0)"
                    );
                }
            }
            "privileged" => {
                if value == true {
                    args.push("--privileged".into());
                }
            }
            "allowPrivilegeEscalation" => {
                if value == false {
                    args.push("--security-opt=no-new-privileges".into());
                }
            }
            "readOnlyRootFilesystem" => {
                if value == true {
                    // Only the root: no tmpfs of podman's own on /tmp, /run and /var/tmp (the
                    // kubelet adds none); the manifest's volumes are all that is writable.
                    args.push("--read-only".into());
                    args.push("--read-only-tmpfs=false".into());
                }
            }
            "capabilities" => {
                for (list, flag) in [("drop", "--cap-drop"), ("add", "--cap-add")] {
                    for cap in strings(&value[list]) {
                        let cap = if cap == "ALL" {
                            cap.to_owned()
                        } else {
                            format!("CAP_{cap}")
                        };
                        args.push(format!("{flag}={cap}"));
                    }
                }
            }
            "seccompProfile" => match value["type"].as_str() {
                // The runtime's own default profile: podman applies its own unless told
                // otherwise.
                Some("RuntimeDefault") => {
                    if let Some(profile) = &node.runtime_default {
                        args.push(format!("--security-opt=seccomp={}", profile.display()));
                    }
                }
                Some("Unconfined") => args.push("--security-opt=seccomp=unconfined".into()),
                other => {
                    panic!("seccompProfile type {other:?}: not known to tests/image/context.rs")
                }
            },
            other => panic!("securityContext.{other}: not known to tests/image/context.rs"),
        }
    }
    args
}

fn env(container: &Value, node: &Node) -> Vec<String> {
    let mut args = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name");
        let value = if let Some(value) = var["value"].as_str() {
            value.to_owned()
        } else if let Some(path) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            node.fields
                .get(path)
                .unwrap_or_else(|| panic!("env {name}: the test gives no value for {path}"))
                .clone()
        } else {
            panic!("env {name}: {var} is not known to tests/image/context.rs")
        };
        args.push(format!("--env={name}={value}"));
    }
    assert!(
        container.get("envFrom").is_none(),
        "envFrom: not known to tests/image/context.rs"
    );
    args
}

fn mounts(pod: &Value, container: &Value, node: &Node) -> Vec<String> {
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["name"].as_str().expect("volume name"), v))
        .collect();
    let mut args = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().expect("volumeMount name");
        let target = mount["mountPath"].as_str().expect("mountPath");
        let volume = volumes
            .get(name)
            .unwrap_or_else(|| panic!("volumeMount {name}: no such volume"));
        let mut options = Vec::new();
        if mount["readOnly"] == true {
            options.push("ro");
        }
        match mount["mountPropagation"].as_str() {
            None | Some("None") => {}
            Some("HostToContainer") => options.push("rslave"),
            Some("Bidirectional") => options.push("rshared"),
            Some(other) => panic!("mountPropagation {other}: not known"),
        }
        for key in object(mount).keys() {
            assert!(
                ["name", "mountPath", "readOnly", "mountPropagation"].contains(&key.as_str()),
                "volumeMount {name}: {key} is not known to tests/image/context.rs"
            );
        }
        let source = if let Some(host) = volume.get("hostPath") {
            let path = host["path"].as_str().expect("hostPath path");
            let stand_in = node
                .host_paths
                .get(path)
                .unwrap_or_else(|| panic!("hostPath {path}: the test gives no stand-in for it"));
            match host["type"].as_str() {
                Some("FileOrCreate") if !stand_in.exists() => {
                    std::fs::write(stand_in, "").expect("create the hostPath file")
                }
                Some("FileOrCreate") | Some("File") => assert!(stand_in.is_file()),
                Some("Directory") => assert!(stand_in.is_dir(), "{}", stand_in.display()),
                other => panic!("hostPath type {other:?}: not known to tests/image/context.rs"),
            }
            stand_in.to_string_lossy().into_owned()
        } else if let Some(empty) = volume.get("emptyDir") {
            // The kubelet backs it with the node's disk or, with medium Memory, a tmpfs.
            let mut tmpfs = format!("--tmpfs={target}:rw");
            if let Some(size) = empty["sizeLimit"].as_str() {
                tmpfs.push_str(&format!(
                    ",size={}",
                    size.trim_end_matches('i').to_lowercase()
                ));
            }
            args.push(tmpfs);
            continue;
        } else if ["configMap", "secret", "downwardAPI", "projected"]
            .iter()
            .any(|kind| volume.get(*kind).is_some())
        {
            node.volumes
                .get(name)
                .unwrap_or_else(|| panic!("volume {name}: the test gives no directory for it"))
                .to_string_lossy()
                .into_owned()
        } else {
            panic!("volume {volume}: not known to tests/image/context.rs")
        };
        let suffix = if options.is_empty() {
            String::new()
        } else {
            format!(":{}", options.join(","))
        };
        args.push(format!("--volume={source}:{target}{suffix}"));
    }
    args
}
