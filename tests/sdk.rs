//! Real AWS client libraries through the guard: botocore (the Python SDK's core, driven by
//! `tests/sdk/botocore_imds.py`) and aws-config (the Rust SDK's IMDS client, credentials and
//! region providers), each against the real binary as a separate process, with the emulator as
//! the metadata service (tokens required, so nothing gets through without IMDSv2).
//!
//! What it shows:
//! - with guard tokens and `[imdsv2] token_key_file`, a guard stopped (SIGTERM) and started again
//!   on the same port keeps the SDKs working: the same aws-config client goes on with the token it
//!   holds (the guard takes it after the restart, and no new token is asked for); botocore's
//!   long-lived fetchers get credentials and the region again;
//! - with guard tokens and no key file (a random key per start), both SDKs keep working across
//!   the restart. botocore asks for a new token for every retrieval, so it never presents an old
//!   one. aws-config keeps its token until 120 s before the TTL its PUT was answered with, and
//!   retries a 401 with the same token: a guard whose tokens died with the process would leave it
//!   failing for up to six hours. So a guard without a key file grants two minutes at most, which
//!   aws-config never keeps: it asks for a new token for every read, before and after the restart;
//! - with `[imdsv2] tokens = "passthrough"`, credentials and the region come through as well.
//!
//! Each SDK reaches the guard from the address of an allowed pod (127.0.0.4, allowed
//! `/latest/**`) through a loopback forwarder: the SDKs cannot choose their source address, the
//! guard knows pods by theirs. The guard's audit lines (its stdout) show what each request was,
//! what was answered and what the token was. The SDKs are given their endpoint explicitly and
//! only their IMDS fetchers are called, never a default chain: no request goes to the real
//! metadata address, and no other credential source can answer in IMDS's place.
//!
//! A missing prerequisite (python3, botocore) fails the test with what to install.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_http_client::tls;
use imds_guard_emulator::{EmulatorOptions, TokenMode};
use serde_json::Value;
use support::binary::Binary;
use support::{emulator, free_port, Emulator, LABELLED};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// The pod the SDKs speak for: the inspector, allowed `/latest/**` (credentials included).
const POD: &str = LABELLED;
/// The emulator's role, instance and region.
const ROLE: &str = "imds-guard-node-role";
const INSTANCE_ID: &str = "i-0123456789abcdef0";
const REGION: &str = "us-east-1";
const TOKEN_PATH: &str = "/latest/api/token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/imds-guard-node-role";

/// How the guard issues tokens in a test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tokens {
    /// Guard tokens with a key file: they outlive a restart.
    GuardWithKeyFile,
    /// Guard tokens with a random key per start.
    GuardRandomKey,
    /// The service's tokens pass through.
    Passthrough,
}

/// The metadata service, and the config, ports and files of the guard in front of it (which
/// stay the same across the guard's restarts).
struct Node {
    _emulator: Emulator,
    /// Holds the config and the key file.
    _dir: tempfile::TempDir,
    config: PathBuf,
    proxy: SocketAddr,
    admin: SocketAddr,
}

impl Node {
    async fn new(tokens: Tokens) -> Node {
        let emulator = emulator(EmulatorOptions {
            tokens: TokenMode::Required,
            ..EmulatorOptions::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let proxy = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let imdsv2 = match tokens {
            Tokens::GuardWithKeyFile => {
                let key = dir.path().join("token.key");
                std::fs::write(&key, rand::random::<[u8; 32]>()).unwrap();
                format!("[imdsv2]\ntoken_key_file = \"{}\"\n", key.display())
            }
            Tokens::GuardRandomKey => String::new(),
            Tokens::Passthrough => "[imdsv2]\ntokens = \"passthrough\"\n".to_owned(),
        };
        let text = format!(
            "[server]\nlisten = \"{proxy}\"\nadmin_listen = \"{admin}\"\n\n{}",
            support::config(&imdsv2)
        )
        .replace("{upstream}", &format!("http://{}", emulator.addr));
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        Node {
            _emulator: emulator,
            _dir: dir,
            config,
            proxy,
            admin,
        }
    }

    /// Starts the guard (again): the same config, the same ports; once it is ready.
    async fn start_guard(&mut self) -> Binary {
        let mut guard = Binary::start_file(&self.config, self.proxy, self.admin);
        guard.wait_ready().await;
        guard
    }
}

/// Stops the guard with SIGTERM, as a restart by the kubelet would, and gives its audit lines
/// (all of them: they are written out on stop).
fn stop(mut guard: Binary) -> Vec<Value> {
    guard.stop();
    guard.audit()
}

/// Accepts on `127.0.0.1:0` and relays each connection to `to` from the loopback address
/// `from`, so a client that cannot pick its source address reaches the guard as that pod. One
/// upstream connection per client connection, for as long as either side keeps it (keep-alive
/// included); a connection the guard closes is closed to the client too.
struct Forwarder {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Forwarder {
    async fn start(from: &'static str, to: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            // Dropped with the task: every relay ends with the forwarder.
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                relays.spawn(async move {
                    let socket = TcpSocket::new_v4().unwrap();
                    socket
                        .bind(SocketAddr::new(from.parse().unwrap(), 0))
                        .unwrap();
                    // The guard not listening (being restarted): the client's connection is
                    // closed, as it would be refused.
                    if let Ok(mut guard) = socket.connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut guard).await;
                    }
                });
                while relays.try_join_next().is_some() {}
            }
        });
        Forwarder { addr, task }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- audit lines ----

fn field<'a>(event: &'a Value, name: &str) -> &'a str {
    event[name].as_str().unwrap_or("null")
}

/// One audit line in short: `METHOD path status token=… reason`.
fn brief(event: &Value) -> String {
    format!(
        "{} {} {} token={} cache={} reason={}",
        field(event, "method"),
        field(event, "path"),
        event["status"],
        field(event, "token"),
        field(event, "cache"),
        field(event, "reason"),
    )
}

fn briefs(events: &[Value]) -> String {
    events.iter().map(|e| format!("  {}\n", brief(e))).collect()
}

fn tokens_of(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| field(e, "token")).collect()
}

/// Every line is the pod's, and every read carried a token (no silent fall back to IMDSv1).
fn assert_pod_and_v2(events: &[Value]) {
    assert!(!events.is_empty(), "no audit lines");
    for event in events {
        assert_eq!(event["src"], POD, "{event}");
        assert_eq!(
            event["imds_version"], "v2",
            "a read without a token: {event}"
        );
    }
}

/// The credentials were read from the service (or its cache) through the guard, answered 200,
/// with a valid token.
fn assert_credentials_read(events: &[Value]) {
    assert!(
        events.iter().any(|e| field(e, "path") == CREDENTIALS_PATH
            && e["status"] == 200
            && field(e, "token") == "valid"),
        "no credentials answered 200 with a valid token:\n{}",
        briefs(events)
    );
}

// ---- botocore ----

/// botocore's IMDS fetchers in one long-lived Python process (`tests/sdk/botocore_imds.py`),
/// answering a command at a time. Killed when dropped.
struct Botocore {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Where its (absent) profile files would be.
    _home: tempfile::TempDir,
}

impl Botocore {
    fn start(endpoint: SocketAddr) -> Botocore {
        let home = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/botocore_imds.py");
        let mut command = Command::new("python3");
        command.arg(&script);
        // Nothing of the surrounding environment may point botocore elsewhere: no AWS settings,
        // no profile files, no proxies.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("AWS_") || name.to_ascii_lowercase().ends_with("_proxy") {
                command.env_remove(&name);
            }
        }
        let child = command
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{endpoint}/"))
            .env("AWS_CONFIG_FILE", home.path().join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("credentials"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("python3 is needed for the botocore tests ({e}): install python3 and `python3 -m pip install botocore` (tests/run.sh does)")
            });
        let mut botocore = Botocore::attach(child, home);
        let hello = botocore.read();
        if let Some(error) = hello["error"].as_str() {
            panic!("{error}");
        }
        assert_eq!(
            hello["endpoint"],
            format!("http://{endpoint}/"),
            "botocore does not use the endpoint it was given: {hello}"
        );
        botocore
    }

    fn attach(mut child: Child, home: tempfile::TempDir) -> Botocore {
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Botocore {
            child,
            stdin,
            lines,
            _home: home,
        }
    }

    fn read(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("no answer from the botocore process: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn ask(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.read()
    }

    /// `retrieve_iam_role_credentials()`; panics with `context` when botocore got none.
    fn credentials(&mut self, context: &str) -> Value {
        let answer = self.ask("credentials");
        let credentials = answer["credentials"].clone();
        assert!(
            credentials.is_object(),
            "botocore got no credentials {context}: {answer}"
        );
        assert_eq!(credentials["role_name"], ROLE, "{credentials}");
        assert!(
            credentials["access_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("ASIA")),
            "{credentials}"
        );
        assert_eq!(credentials["has_secret"], true, "{credentials}");
        assert_eq!(credentials["has_token"], true, "{credentials}");
        credentials
    }

    fn region(&mut self, context: &str) {
        let answer = self.ask("region");
        assert_eq!(
            answer["region"], REGION,
            "botocore's region {context}: {answer}"
        );
    }
}

impl Drop for Botocore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// botocore asks for a token for each retrieval: a PUT the guard issues, then reads with it.
fn assert_botocore_fresh_tokens(events: &[Value], context: &str) {
    assert_pod_and_v2(events);
    assert_eq!(
        field(&events[0], "path"),
        TOKEN_PATH,
        "{context}: botocore's first request is not its token PUT:\n{}",
        briefs(events)
    );
    for event in events {
        let expected = if field(event, "path") == TOKEN_PATH {
            "issued"
        } else {
            "valid"
        };
        assert_eq!(
            (event["status"].as_u64(), field(event, "token")),
            (Some(200), expected),
            "{context}:\n{}",
            briefs(events)
        );
    }
    assert_credentials_read(events);
}

async fn botocore_across_a_restart(tokens: Tokens) {
    let mut node = Node::new(tokens).await;
    let guard = node.start_guard().await;
    let forwarder = Forwarder::start(POD, node.proxy).await;
    let mut botocore = Botocore::start(forwarder.addr);

    let before = botocore.credentials("before the restart");
    botocore.region("before the restart");
    let first_run = stop(guard);
    assert_botocore_fresh_tokens(&first_run, "before the restart");

    let guard = node.start_guard().await;
    let after = botocore.credentials("after the restart");
    botocore.region("after the restart");
    // The emulator's credentials hold for hours: the same ones, from the same service.
    assert_eq!(before["access_key"], after["access_key"]);
    let second_run = stop(guard);
    // botocore never presents a token from before the restart, so whichever key the guard has,
    // nothing it sends is refused.
    assert_botocore_fresh_tokens(&second_run, "after the restart");
    assert!(
        !tokens_of(&second_run).contains(&"invalid"),
        "{}",
        briefs(&second_run)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_keeps_working_across_a_restart_with_a_token_key_file() {
    botocore_across_a_restart(Tokens::GuardWithKeyFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_keeps_working_across_a_restart_without_a_key_file() {
    botocore_across_a_restart(Tokens::GuardRandomKey).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_gets_credentials_and_region_with_passthrough_tokens() {
    let mut node = Node::new(Tokens::Passthrough).await;
    let guard = node.start_guard().await;
    let forwarder = Forwarder::start(POD, node.proxy).await;
    let mut botocore = Botocore::start(forwarder.addr);
    botocore.credentials("with passthrough tokens");
    botocore.region("with passthrough tokens");
    let events = stop(guard);
    assert_passthrough_served(&events);
}

/// Every request of a passthrough run served, the credentials among them. The emulator requires
/// tokens: these answers mean the SDK's own token went through.
fn assert_passthrough_served(events: &[Value]) {
    assert_pod_and_v2(events);
    assert!(
        events
            .iter()
            .all(|e| e["status"] == 200 && e["token"].is_null()),
        "{}",
        briefs(events)
    );
    assert!(
        events.iter().any(|e| field(e, "path") == CREDENTIALS_PATH),
        "{}",
        briefs(events)
    );
}

// ---- aws-config ----

/// aws-config's IMDS client for `endpoint`, with an HTTP client of its own stack (hyper, rustls
/// with ring for HTTPS, unused here) and the runtime's sleep.
fn aws_config_client(endpoint: SocketAddr) -> aws_config::imds::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = ProviderConfig::without_region().with_http_client(http);
    aws_config::imds::Client::builder()
        .configure(&config)
        .endpoint(format!("http://{endpoint}/"))
        .unwrap()
        .build()
}

/// The three things a program gets from IMDS through aws-config: a plain read, credentials, the
/// region. The credentials provider hands back the last credentials it had when a retrieval
/// fails, so its success alone proves nothing after the first time: the audit lines show
/// whether the credentials were read again.
struct AwsConfig {
    client: aws_config::imds::Client,
    credentials: ImdsCredentialsProvider,
    region: ImdsRegionProvider,
}

impl AwsConfig {
    fn new(endpoint: SocketAddr) -> AwsConfig {
        let client = aws_config_client(endpoint);
        AwsConfig {
            credentials: ImdsCredentialsProvider::builder()
                .imds_client(client.clone())
                .build(),
            region: ImdsRegionProvider::builder()
                .imds_client(client.clone())
                .build(),
            client,
        }
    }

    /// Reads the instance id, gets credentials and the region; all three are tried before a
    /// failure is reported, with what the guard answered.
    async fn use_all(&self, context: &str, guard: &Binary) {
        let id = self.client.get("/latest/meta-data/instance-id").await;
        let credentials = self.credentials.provide_credentials().await;
        let region = self.region.region().await;
        let id_ok = matches!(&id, Ok(id) if id.as_ref() == INSTANCE_ID);
        let credentials_ok = matches!(&credentials, Ok(c)
            if c.access_key_id().starts_with("ASIA") && c.session_token().is_some());
        let region_ok = region.as_ref().map(|r| r.as_ref()) == Some(REGION);
        if id_ok && credentials_ok && region_ok {
            return;
        }
        // Audit lines are written shortly after the answer.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let events = guard.audit();
        panic!(
            "aws-config {context}:\n  instance-id: {}\n  credentials: {}{}\n  region: {region:?}\nthe guard's audit lines:\n{}",
            match &id {
                Ok(id) => format!("{:?}", id.as_ref()),
                Err(e) => format!("error {e:?}"),
            },
            match &credentials {
                Ok(c) => format!("access key {}", c.access_key_id()),
                Err(e) => format!("error {e}"),
            },
            if credentials.is_ok() && !events.iter().any(|e| field(e, "path") == CREDENTIALS_PATH) {
                " (not read in this run: the provider's last credentials)"
            } else {
                ""
            },
            briefs(&events)
        );
    }
}

async fn aws_config_across_a_restart(tokens: Tokens) -> Vec<Value> {
    let mut node = Node::new(tokens).await;
    let guard = node.start_guard().await;
    let forwarder = Forwarder::start(POD, node.proxy).await;
    let sdk = AwsConfig::new(forwarder.addr);

    sdk.use_all("before the restart", &guard).await;
    let first_run = stop(guard);
    assert_pod_and_v2(&first_run);
    assert_eq!(field(&first_run[0], "path"), TOKEN_PATH);
    assert!(
        first_run
            .iter()
            .all(|e| e["status"] == 200 && ["issued", "valid"].contains(&field(e, "token"))),
        "{}",
        briefs(&first_run)
    );
    let issued = tokens_of(&first_run)
        .iter()
        .filter(|t| **t == "issued")
        .count();
    if tokens == Tokens::GuardWithKeyFile {
        // One token, asked for once and held: every read after it carries it.
        assert_eq!(issued, 1, "{}", briefs(&first_run));
    } else {
        // Granted two minutes at most, which aws-config never keeps: a new token for every read.
        assert_eq!(issued, first_run.len() / 2, "{}", briefs(&first_run));
        assert!(
            first_run
                .chunks(2)
                .all(|pair| field(&pair[0], "path") == TOKEN_PATH),
            "{}",
            briefs(&first_run)
        );
    }
    assert_credentials_read(&first_run);

    let guard = node.start_guard().await;
    sdk.use_all("after the restart", &guard).await;
    let second_run = stop(guard);
    assert_pod_and_v2(&second_run);
    assert_credentials_read(&second_run);
    second_run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_config_keeps_working_across_a_restart_with_a_token_key_file() {
    let second_run = aws_config_across_a_restart(Tokens::GuardWithKeyFile).await;
    // The token from before the restart is still good: no new one, and nothing refused.
    assert!(
        second_run
            .iter()
            .all(|e| e["status"] == 200 && field(e, "token") == "valid"),
        "after the restart:\n{}",
        briefs(&second_run)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_config_keeps_working_across_a_restart_without_a_key_file() {
    let second_run = aws_config_across_a_restart(Tokens::GuardRandomKey).await;
    // aws-config keeps a token until two minutes before the TTL it was granted and retries a 401
    // with the same token; a guard whose key is new after the restart grants two minutes at most,
    // so the SDK holds no token from before it: every read goes through on a new one.
    assert!(
        second_run
            .iter()
            .all(|e| e["status"] == 200 && ["issued", "valid"].contains(&field(e, "token"))),
        "after the restart:\n{}",
        briefs(&second_run)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_config_gets_credentials_and_region_with_passthrough_tokens() {
    let mut node = Node::new(Tokens::Passthrough).await;
    let guard = node.start_guard().await;
    let forwarder = Forwarder::start(POD, node.proxy).await;
    let sdk = AwsConfig::new(forwarder.addr);
    sdk.use_all("with passthrough tokens", &guard).await;
    let events = stop(guard);
    assert_passthrough_served(&events);
}
