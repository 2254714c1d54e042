//! Scale on a simulated cluster: a real kube-apiserver and etcd (`support::controlplane`) filled by
//! direct writes with Nodes and Pods (50 pods on every node, `spec.nodeName` set on create and the
//! status set through `pods/status`, as the scheduler and a kubelet would), at three cluster sizes
//! up to 100 nodes and 5,000 pods. At each size the real binary runs as the guard of `node-0`, and
//! the test shows that what it holds, what it costs in memory and what it asks of the API server
//! stay flat as the cluster grows:
//!
//! - pods held: the guard's own `imds_guard_inventory_pods`, always node-0's 50;
//! - memory: VmRSS and VmHWM of the guard's process from `/proc/<pid>/status` after it settled;
//! - requests: the guard's pod requests by verb as the API server's audit log recorded them, and
//!   the API server's own metrics (`apiserver_request_total` for LIST and WATCH of pods, the bytes
//!   of those lists from `apiserver_response_sizes_sum`) as the difference between a snapshot taken
//!   before the guard starts and one after it stopped (a watch is counted when it ends). The test
//!   makes no pod request in between, so the difference is the guard's;
//! - the API server's side for contrast: objects it read from etcd to answer the guard's list
//!   (`apiserver_storage_list_fetched_objects_total`, every pod in the cluster, as the watch cache
//!   is off) against objects it returned (`..._returned_objects_total`, the node's).
//!
//! `cargo test --features e2e --test e2e controlplane_scale:: -- --nocapture` prints the table (with `--release`, the
//! memory of the binary as deployed).

use crate::support;

use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};

use imds_guard_emulator::EmulatorOptions;
use support::binary::Binary;
use support::controlplane::{running_pod, ControlPlane, GUARD_AGENT};
use support::*;

/// Cluster sizes, in nodes.
const SIZES: [usize; 3] = [10, 40, 100];
const PODS_PER_NODE: usize = 50;
/// Requests the test keeps in flight while it fills the cluster.
const WRITERS: usize = 16;
/// How long the guard runs after it is ready before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// The node whose guard is run.
const NODE: &str = "node-0";
const ALLOW: (&str, &str) = ("allow-node-metadata-lookup", "true");

/// The address of pod `j` on node `n`: loopback addresses, each unique in the cluster, so the test
/// can speak to the guard as any pod.
fn pod_ip(node: usize, j: usize) -> String {
    assert!(node < 256 && j < 255);
    format!("127.1.{node}.{}", j + 1)
}

/// Creates `nodes` Nodes and 50 running pods on each (the first of every node labelled for the
/// seed rule), `WRITERS` requests at a time; returns how long it took.
async fn fill(client: &kube::Client, nodes: usize) -> Duration {
    let started = Instant::now();
    let api: Api<Node> = Api::all(client.clone());
    stream::iter(0..nodes)
        .map(|n| {
            let api = api.clone();
            async move {
                let node: Node = serde_json::from_value(
                    serde_json::json!({"metadata": {"name": format!("node-{n}")}}),
                )
                .unwrap();
                api.create(&PostParams::default(), &node).await.unwrap();
            }
        })
        .buffer_unordered(WRITERS)
        .collect::<Vec<()>>()
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let all = (0..nodes).flat_map(|n| (0..PODS_PER_NODE).map(move |j| (n, j)));
    stream::iter(all)
        .map(|(n, j)| {
            let pods = pods.clone();
            async move {
                let labels: &[(&str, &str)] = if j == 0 { &[ALLOW] } else { &[] };
                let (name, node) = (format!("pod-{n}-{j}"), format!("node-{n}"));
                running_pod(&pods, &name, &node, &pod_ip(n, j), labels).await;
            }
        })
        .buffer_unordered(WRITERS)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

/// The sum of every sample of `name` in Prometheus text whose labels include all of `labels`.
fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (set, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let pairs: Vec<&str> = set.split(',').collect();
            labels
                .iter()
                .all(|(k, v)| pairs.contains(&format!("{k}=\"{v}\"").as_str()))
                .then(|| value.split_whitespace().next()?.parse::<f64>().ok())?
        })
        .sum()
}

/// What the API server's own metrics say about pod LISTs and WATCHes.
#[derive(Debug, Clone, Copy)]
struct ApiCounts {
    lists: f64,
    watches: f64,
    /// Watches open now.
    open_watches: f64,
    list_bytes: f64,
    fetched: f64,
    returned: f64,
}

impl std::ops::Sub for ApiCounts {
    type Output = ApiCounts;
    fn sub(self, before: ApiCounts) -> ApiCounts {
        ApiCounts {
            lists: self.lists - before.lists,
            watches: self.watches - before.watches,
            open_watches: self.open_watches - before.open_watches,
            list_bytes: self.list_bytes - before.list_bytes,
            fetched: self.fetched - before.fetched,
            returned: self.returned - before.returned,
        }
    }
}

async fn api_counts(client: &kube::Client) -> ApiCounts {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    let pods = |verb| [("resource", "pods"), ("verb", verb)];
    let counts = ApiCounts {
        lists: sample_sum(&text, "apiserver_request_total", &pods("LIST")),
        watches: sample_sum(&text, "apiserver_request_total", &pods("WATCH")),
        open_watches: sample_sum(&text, "apiserver_longrunning_requests", &pods("WATCH")),
        list_bytes: sample_sum(&text, "apiserver_response_sizes_sum", &pods("LIST")),
        fetched: sample_sum(
            &text,
            "apiserver_storage_list_fetched_objects_total",
            &[("resource", "pods")],
        ),
        returned: sample_sum(
            &text,
            "apiserver_storage_list_returned_objects_total",
            &[("resource", "pods")],
        ),
    };
    assert!(
        text.contains("apiserver_request_total{")
            && text.contains("apiserver_response_sizes_sum{")
            && text.contains("apiserver_storage_list_fetched_objects_total"),
        "the API server's metrics lack what is counted:\n{text}"
    );
    counts
}

/// One value from the guard's `/metrics`.
async fn guard_metric(guard: &Binary, name: &str) -> f64 {
    match metric(guard.admin, name).await {
        (Some(value), _) => value,
        (None, text) => panic!("no {name} in:\n{text}"),
    }
}

/// The reason the guard gives a request from `from` (`allowed` for a 200).
async fn decision(guard: &Binary, from: &str) -> String {
    let answer = get(from, guard.proxy, "/latest/meta-data/instance-id").await;
    match answer.status.as_u16() {
        200 => "allowed".to_owned(),
        _ => answer.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// One cluster size's figures.
#[derive(Debug)]
struct Row {
    nodes: usize,
    pods: usize,
    held: f64,
    rss_kib: u64,
    hwm_kib: u64,
    /// From the audit log: the guard's pod lists and watches.
    lists: usize,
    watches: usize,
    /// From the API server's metrics.
    api: ApiCounts,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn measure(nodes: usize) -> Row {
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    let took = fill(&client, nodes).await;
    let pods = nodes * PODS_PER_NODE;
    println!(
        "{nodes} nodes, {pods} pods written in {:.1} s ({:.0} writes/s)",
        took.as_secs_f64(),
        (nodes + 2 * pods) as f64 / took.as_secs_f64()
    );

    let emu = emulator(EmulatorOptions::default()).await;
    let before = api_counts(&client).await;
    let mut guard = Binary::start(&kube_config(NODE, &plane.kubeconfig, 0, ""), emu.addr, &[]);
    guard.wait_ready().await;
    let held = guard_metric(&guard, "imds_guard_inventory_pods").await;
    // Its node's pods are decided as theirs; another node's are unknown to it.
    assert_eq!(decision(&guard, &pod_ip(0, 0)).await, "allowed");
    assert_eq!(decision(&guard, &pod_ip(0, 1)).await, "no-rule");
    assert_eq!(decision(&guard, &pod_ip(1, 0)).await, "unknown-source");
    tokio::time::sleep(SETTLE).await;
    let (rss_kib, hwm_kib) = guard.memory_kib();
    let open = api_counts(&client).await - before;
    guard.stop();
    // The watch is counted once the API server has seen it end.
    let deadline = Instant::now() + Duration::from_secs(10);
    let api = loop {
        let api = api_counts(&client).await - before;
        if api.open_watches <= 0.0 {
            break api;
        }
        assert!(
            Instant::now() < deadline,
            "the guard's watch still open 10 s after it stopped: {api:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let requests = plane.requests_from(GUARD_AGENT);
    for r in &requests {
        assert!(r.uri.starts_with("/api/v1/pods?"), "{r:?}");
        assert_eq!(r.code, 200, "{r:?}");
    }
    let count = |verb: &str| requests.iter().filter(|r| r.verb == verb).count();
    let (lists, watches) = (count("list"), count("watch"));
    assert_eq!(lists + watches, requests.len(), "{requests:#?}");
    // The API server's own counts agree with its audit log: nothing else listed or watched pods.
    assert_eq!(api.lists, lists as f64, "{api:?} {requests:#?}");
    assert_eq!(api.watches, watches as f64, "{api:?} {requests:#?}");
    assert_eq!(open.open_watches, watches as f64, "{open:?} {requests:#?}");
    Row {
        nodes,
        pods,
        held,
        rss_kib,
        hwm_kib,
        lists,
        watches,
        api,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_on_one_node_stays_flat_as_the_cluster_grows() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = Instant::now();
    let mut rows = Vec::new();
    for nodes in SIZES {
        rows.push(measure(nodes).await);
    }

    println!();
    println!(
        "| nodes | pods in cluster | pods held by the guard | guard VmRSS MiB | guard VmHWM MiB \
         | pod LIST / WATCH requests (audit log) | LIST / WATCH (apiserver_request_total) \
         | LIST response bytes | pods read from etcd / returned |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {} / {} | {} / {} | {} | {} / {} |",
            r.nodes,
            r.pods,
            r.held,
            mib(r.rss_kib),
            mib(r.hwm_kib),
            r.lists,
            r.watches,
            r.api.lists,
            r.api.watches,
            r.api.list_bytes,
            r.api.fetched,
            r.api.returned,
        );
    }
    println!();
    println!("all sizes in {:.1} s", started.elapsed().as_secs_f64());

    let (small, large) = (&rows[0], &rows[rows.len() - 1]);
    for r in &rows {
        assert_eq!(r.held, PODS_PER_NODE as f64, "{r:?}");
        // The watch is opened without a timeout, so the API server keeps it for 30 to 60 min:
        // in these seconds nothing reconnects, and the requests are the same at every size.
        assert_eq!((r.lists, r.watches), (small.lists, small.watches), "{r:?}");
        assert!(r.lists >= 1 && r.watches >= 1, "{r:?}");
        assert_eq!(r.api.returned, PODS_PER_NODE as f64, "{r:?}");
        // Not the guard's cost, but what makes the rest meaningful: the API server did read the
        // whole cluster to answer the node-scoped list.
        assert_eq!(r.api.fetched, r.pods as f64, "{r:?}");
    }
    assert!(
        large.api.list_bytes <= 1.2 * small.api.list_bytes,
        "list bytes grew with the cluster: {small:?} {large:?}"
    );
    // Most of the peak is the mapped program and the runtime, the same at every size; a guard that
    // held (or even listed) the cluster's pods rather than its node's would add a few KiB per pod,
    // megabytes between these sizes, beyond 10 % of the smallest peak plus 2 MiB.
    let bound = 1.1 * small.hwm_kib as f64 + 2048.0;
    assert!(
        large.hwm_kib as f64 <= bound,
        "peak memory grew with the cluster: {} KiB at {} pods, {} KiB at {} pods (bound {bound:.0})",
        large.hwm_kib,
        large.pods,
        small.hwm_kib,
        small.pods
    );
}
