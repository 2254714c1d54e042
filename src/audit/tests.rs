//! The background writer: lines arrive whole and in order, nothing waits for a slow reader, and
//! what cannot be held is counted.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::index::{Labels, Owner};

/// A writer that keeps what it is given, and can be made to stall.
#[derive(Clone, Default)]
struct Probe {
    written: Arc<Mutex<Vec<u8>>>,
    stalled: Arc<AtomicBool>,
}

impl Write for Probe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        while self.stalled.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.written.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The labels and the owner of the pod of [`event`].
fn pod_facts() -> &'static (Vec<String>, Labels, Owner) {
    static FACTS: std::sync::OnceLock<(Vec<String>, Labels, Owner)> = std::sync::OnceLock::new();
    FACTS.get_or_init(|| {
        (
            vec!["app.kubernetes.io/name".into(), "app".into(), "team".into()],
            [("app", "web"), ("team", "shop"), ("other", "not carried")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            Owner {
                kind: "Deployment".into(),
                name: "web".into(),
            },
        )
    })
}

fn event(path: &str) -> Event<'_> {
    let (keys, labels, owner) = pod_facts();
    Event {
        ts: now(),
        src: "10.0.0.1".parse().unwrap(),
        pod: Some("ns/pod"),
        pod_uid: Some("uid"),
        labels: Some(WorkloadLabels { keys, labels }),
        owner: Some(OwnerOf(owner)),
        method: "GET",
        path,
        decision: "allow",
        reason: "path-allowed",
        rule: Some("r"),
        status: 200,
        imds_version: "v1",
        upstream_ms: Some(0.5),
        error: None,
        cache: Some("hit"),
        token: None,
        identity: "address",
        bytes: 10,
        duration_ms: 0.6,
    }
}

fn lines(probe: &Probe) -> Vec<serde_json::Value> {
    let text = String::from_utf8(probe.written.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_line_arrives_whole_and_in_order_and_drop_flushes() {
    let probe = Probe::default();
    let sink = Stdout::to_writer(probe.clone(), MAX_PENDING);
    let paths: Vec<String> = (0..500)
        .map(|i| format!("/latest/meta-data/n{i}"))
        .collect();
    for path in &paths {
        sink.record(&event(path));
    }
    drop(sink);
    let got = lines(&probe);
    assert_eq!(got.len(), 500);
    for (line, path) in got.iter().zip(&paths) {
        assert_eq!(line["path"], path.as_str());
        assert_eq!(line["pod"], "ns/pod");
    }
}

#[test]
fn lines_are_written_without_waiting_for_the_end() {
    let probe = Probe::default();
    let sink = Stdout::to_writer(probe.clone(), MAX_PENDING);
    sink.record(&event("/a"));
    let started = Instant::now();
    while lines(&probe).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "line never written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sink.dropped(), 0);
}

#[test]
fn a_full_block_is_written_before_the_period_ends() {
    let probe = Probe::default();
    // A period no test waits for: whatever arrives was sent early.
    let sink = Stdout::flushing_every(probe.clone(), MAX_PENDING, Duration::from_secs(3600));
    let one_line = serde_json::to_vec(&event("/latest/meta-data/x"))
        .unwrap()
        .len()
        + 1;
    let below = (FLUSH_AT - 1) / one_line;
    // The writer's first turn takes what is pending at once; let it pass before recording.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..below {
        sink.record(&event("/latest/meta-data/x"));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        lines(&probe).is_empty(),
        "less than a block waits for the period"
    );
    sink.record(&event("/latest/meta-data/x"));
    let started = Instant::now();
    while lines(&probe).len() < below + 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a full block was not written early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sink.dropped(), 0);
}

#[test]
fn a_stalled_reader_never_blocks_and_drops_are_counted() {
    let probe = Probe::default();
    probe.stalled.store(true, Ordering::Release);
    let one_line = serde_json::to_vec(&event("/latest/meta-data/x"))
        .unwrap()
        .len()
        + 1;
    // Room for ten lines pending.
    let sink = Stdout::to_writer(probe.clone(), one_line * 10);
    // Let the writer take the first (empty) batch and stall on its first real write.
    sink.record(&event("/latest/meta-data/x"));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    for _ in 0..100 {
        sink.record(&event("/latest/meta-data/x"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "recording waited for the writer"
    );
    assert_eq!(
        sink.dropped(),
        90,
        "ten fit, ninety are dropped and counted"
    );
    probe.stalled.store(false, Ordering::Release);
    drop(sink);
    assert_eq!(lines(&probe).len(), 11);
}

#[test]
fn lines_carry_the_chosen_labels_the_pod_has_and_its_owner_bounded() {
    let line = serde_json::to_value(event("/a")).unwrap();
    assert_eq!(
        line["labels"],
        serde_json::json!({"app": "web", "team": "shop"}),
        "only the chosen keys, only those the pod has"
    );
    assert_eq!(
        line["owner"],
        serde_json::json!({"kind": "Deployment", "name": "web"})
    );
    let keys = vec!["app".to_owned()];
    let labels: Labels = [("app".to_owned(), "é".repeat(100))].into();
    let owner = Owner {
        kind: "K".repeat(100),
        name: "n".repeat(1000),
    };
    let e = Event {
        labels: Some(WorkloadLabels {
            keys: &keys,
            labels: &labels,
        }),
        owner: Some(OwnerOf(&owner)),
        ..event("/a")
    };
    let mut text = Vec::new();
    e.write_line(&mut text);
    assert_eq!(
        String::from_utf8(text.clone()).unwrap(),
        serde_json::to_string(&e).unwrap() + "\n"
    );
    let line: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let value = line["labels"]["app"].as_str().unwrap();
    assert_eq!(
        value,
        format!("{}…", "é".repeat(31)),
        "cut at a character boundary"
    );
    assert_eq!(
        line["owner"]["name"].as_str().unwrap(),
        format!("{}…", "n".repeat(MAX_OWNER_NAME))
    );
    assert_eq!(
        line["owner"]["kind"].as_str().unwrap().len(),
        63 + "…".len()
    );
    // The longest line eight chosen labels can make stays a few kilobytes.
    assert!(text.len() < 2048, "{}", text.len());
}

/// The hand-written line is byte for byte what `serde_json` makes of the event, whatever the
/// strings hold (quotes, backslashes, control characters, non-ASCII) and whatever the numbers.
mod same_text_as_serde {
    use super::*;
    use proptest::prelude::*;

    fn line(event: &Event<'_>) -> String {
        let mut out = Vec::new();
        event.write_line(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_ordinary_and_the_hostile() {
        for path in [
            "/latest/meta-data/iam/security-credentials/",
            "/a\"b\\c",
            "/\u{0}\u{1f}\u{7f}",
            "/é/漢字/\u{2028}",
            "",
        ] {
            let mut e = event(path);
            let expected = serde_json::to_string(&e).unwrap() + "\n";
            assert_eq!(line(&e), expected, "{path:?}");
            e.pod = None;
            e.labels = None;
            e.owner = None;
            e.rule = None;
            e.upstream_ms = None;
            e.error = Some("upstream-timeout");
            e.src = "::ffff:10.0.0.1".parse().unwrap();
            let expected = serde_json::to_string(&e).unwrap() + "\n";
            assert_eq!(line(&e), expected, "{path:?}");
        }
    }

    proptest! {
        #[test]
        fn any_event(
            pod in proptest::option::of(".*"),
            method in ".*",
            path in ".*",
            rule in proptest::option::of("[ -~]*"),
            status in any::<u16>(),
            upstream_ms in proptest::option::of(0.0f64..1e7),
            bytes in any::<usize>(),
            duration_ms in 0.0f64..1e7,
            src in any::<std::net::IpAddr>(),
            labels in proptest::collection::btree_map("[a-z./]{1,8}", ".*", 0..4),
            owner in proptest::option::of((".*", ".*")),
        ) {
            let keys: Vec<String> = labels.keys().cloned().chain(["absent".to_owned()]).collect();
            let owner = owner.map(|(kind, name)| Owner { kind, name });
            let e = Event {
                src,
                pod: pod.as_deref(),
                labels: pod.as_ref().map(|_| WorkloadLabels { keys: &keys, labels: &labels }),
                owner: owner.as_ref().map(OwnerOf),
                pod_uid: pod.as_deref(),
                method: &method,
                rule: rule.as_deref(),
                status,
                upstream_ms,
                bytes,
                duration_ms,
                ..event(&path)
            };
            prop_assert_eq!(line(&e), serde_json::to_string(&e).unwrap() + "\n");
        }
    }
}
