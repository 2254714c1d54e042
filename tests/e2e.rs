//! The end-to-end tier: network namespaces, veth pairs, iptables and cgroup programs, a real
//! kube-apiserver and etcd, the image under podman and containerd, the SDK labs, helm and
//! promtool. Built and run only with `--features e2e` (`bash tests/run.sh` installs what it
//! needs, then runs both tiers), as one program: `cargo test --features e2e --test e2e helm::`
//! runs one area. See docs/testing.md.

mod bypass_model;
mod cgroup_hooks;
mod netfilter_netns;
mod support;

// Shared by several areas: the manifests as kustomize and helm render them, and their checks.
#[allow(dead_code)]
#[path = "helm/chart.rs"]
mod chart;
#[path = "deploy/checks.rs"]
mod checks;
#[allow(dead_code)]
#[path = "deploy/render.rs"]
mod render;

mod clouds_sdk;
mod controlplane;
mod controlplane_rbac;
mod controlplane_scale;
mod deploy;
mod e2e_netns;
mod e2e_sidecar;
mod helm;
mod image;
mod interception_cgroup;
mod monitoring;
mod netfilter_backends;
mod netfilter_bypass;
mod netfilter_clouds;
mod netfilter_readiness;
mod netfilter_scripts;
mod sdk;
