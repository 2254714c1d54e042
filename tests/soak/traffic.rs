//! The soak's traffic: workers speaking as random pods, each request recorded with what it
//! was (for the oracle), when it was in flight and what came back.
//!
//! Most requests go in bursts of 1–4 on one kept-alive connection, so one connection sees
//! several decisions, across churn too; targets a client library would not send (malformed,
//! non-canonical, lowercase method, a body) go byte for byte on a connection of their own.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request as HttpRequest;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::cluster::{slot_ip, PODS};
use super::oracle::{Got, Request, Sent, Token};

/// One request to send: how it goes on the wire, and what the oracle needs to know of it.
struct Plan {
    request: Request,
    /// The target as sent (differs from `request.path` when the guard canonicalises it).
    target: String,
    headers: Vec<(&'static str, String)>,
    /// Sent byte for byte on its own connection (targets a client library would not send).
    raw: Option<Vec<u8>>,
    /// The path has no per-request counter, so lines are matched by order per source: such
    /// requests are sent one at a time per source.
    shared_path: bool,
}

/// The `n`th request: a random pick from the mix, its path unique by `n` where it can be.
fn plan(n: u64, rng: &mut StdRng, token: &str) -> Plan {
    let read = |method: &str, path: String, token: Token| Plan {
        request: Request {
            method: method.to_owned(),
            path: path.clone(),
            well_formed: true,
            body: false,
            token,
            ttl: None,
        },
        target: path,
        headers: Vec::new(),
        raw: None,
        shared_path: false,
    };
    let with_token = |mut plan: Plan, value: &str| {
        plan.headers
            .push(("x-aws-ec2-metadata-token", value.to_owned()));
        plan
    };
    let token_put = |ttl: Option<String>| {
        let mut plan = read("PUT", "/latest/api/token".into(), Token::None);
        plan.shared_path = true;
        if let Some(ttl) = &ttl {
            plan.headers
                .push(("x-aws-ec2-metadata-token-ttl-seconds", ttl.clone()));
        }
        plan.request.ttl = ttl;
        plan
    };
    let raw = |method: &str, target: String, path: String, well_formed: bool, body: bool| {
        let mut bytes =
            format!("{method} {target} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n");
        if body {
            bytes.push_str("Content-Length: 5\r\n\r\nhello");
        } else {
            bytes.push_str("\r\n");
        }
        Plan {
            request: Request {
                method: method.to_owned(),
                path,
                well_formed,
                body,
                token: Token::None,
                ttl: None,
            },
            target,
            headers: Vec::new(),
            raw: Some(bytes.into_bytes()),
            shared_path: false,
        }
    };
    let md = format!("/latest/meta-data/soak-{n}");
    match rng.random_range(0..100) {
        0..18 => read("GET", md, Token::None),
        18..27 => read(
            "GET",
            format!("/latest/meta-data/iam/soak-{n}"),
            Token::None,
        ),
        27..30 => read(
            "GET",
            format!("/latest/meta-data/IAM/soak-{n}"),
            Token::None,
        ),
        30..35 => read("GET", format!("/latest/user-data/soak-{n}"), Token::None),
        35..42 => read("GET", format!("/latest/dynamic/soak-{n}"), Token::None),
        42..46 => read("HEAD", md, Token::None),
        46..52 => with_token(
            read("GET", format!("/latest/dynamic/soak-{n}"), Token::Valid),
            token,
        ),
        52..57 => with_token(read("GET", md, Token::Valid), token),
        57..59 => with_token(
            read("GET", format!("/latest/dynamic/soak-{n}"), Token::Bogus),
            "AQAEAsoak-never-issued",
        ),
        59..70 => token_put(Some(rng.random_range(1..=120u32).to_string())),
        70..73 => token_put(
            ["0", "21601", "abc", "+60"]
                .choose(rng)
                .map(|s| (*s).to_owned()),
        ),
        73..74 => token_put(None),
        74..77 => read("PUT", md, Token::None),
        77..80 => read("POST", md, Token::None),
        80..81 => {
            let mut plan = read("GET", "/latest/api/token".into(), Token::None);
            plan.shared_path = true;
            plan
        }
        81..83 => read("DELETE", format!("/latest/dynamic/soak-{n}"), Token::None),
        83..91 => {
            let target = match rng.random_range(0..9) {
                0 => format!("/latest/meta-data/soak-{n}/../../user-data"),
                1 => format!("/latest/meta-data/soak-{n}/%2e%2e/iam"),
                2 => format!("/latest/meta-data/soak-{n}?x=1"),
                3 => format!("/latest/meta-data/soak-{n};x=1"),
                4 => format!("/latest/meta-data/soak-{n}%2fiam"),
                5 => format!("/latest/meta-data/./soak-{n}"),
                6 => format!("/latest/user-d%61ta/soak-{n}"),
                7 => format!("/latest/meta-data/soak-{n}\\..\\..\\user-data"),
                _ => format!("http://169.254.169.254/latest/meta-data/soak-{n}"),
            };
            raw("GET", target.clone(), target, false, false)
        }
        91..94 => raw(
            "GET",
            format!("//latest//meta-data/soak-{n}/"),
            format!("/latest/meta-data/soak-{n}/"),
            true,
            false,
        ),
        94..96 => raw(
            "GET",
            format!("/latest///dynamic/soak-{n}"),
            format!("/latest/dynamic/soak-{n}"),
            true,
            false,
        ),
        96..98 => raw("get", md.clone(), md, true, false),
        _ => raw("POST", md.clone(), md, true, true),
    }
}

/// What the workers share.
pub struct Traffic {
    proxy: SocketAddr,
    /// A live token from the metadata service, for the reads that carry one.
    token: String,
    deadline: Instant,
    /// Numbers requests, for unique paths.
    counter: AtomicU64,
    /// Orders requests as sent.
    seq: AtomicU64,
    /// One per source: held while a request with a shared path is in flight.
    shared_path_locks: HashMap<Ipv4Addr, tokio::sync::Mutex<()>>,
    sent: Mutex<Vec<Sent>>,
    /// Connections that could not be opened (no request was sent on them).
    connect_errors: AtomicU64,
}

async fn connect(src: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src.into(), 0))?;
    socket.connect(to).await
}

/// Sends `bytes` and reads the answer until the guard closes the connection.
async fn send_raw(src: Ipv4Addr, to: SocketAddr, bytes: &[u8]) -> Result<Got, String> {
    let exchange = async {
        let mut stream = connect(src, to).await.map_err(|e| e.to_string())?;
        stream.write_all(bytes).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {text:?}"))?;
        Ok(Got { status, ttl: None })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err("no answer in 10 s".into()))
}

impl Traffic {
    /// Traffic to the guard at `proxy` until `deadline`.
    pub fn new(proxy: SocketAddr, token: String, deadline: Instant) -> Traffic {
        Traffic {
            proxy,
            token,
            deadline,
            counter: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            shared_path_locks: (0..PODS)
                .map(|s| (slot_ip(s), tokio::sync::Mutex::default()))
                .collect(),
            sent: Mutex::default(),
            connect_errors: AtomicU64::new(0),
        }
    }

    /// Every request sent so far.
    pub fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }

    /// Connections that could not be opened.
    pub fn connect_errors(&self) -> u64 {
        self.connect_errors.load(Ordering::Relaxed)
    }

    fn record(
        &self,
        src: Ipv4Addr,
        request: Request,
        seq: u64,
        start: Instant,
        got: Result<Got, String>,
    ) {
        self.sent.lock().unwrap().push(Sent {
            src,
            request,
            seq,
            start,
            end: Instant::now(),
            got,
        });
    }

    /// One worker: until the deadline, picks a pod address and sends it 1–4 requests: those a
    /// client library can send in a burst on one kept-alive connection, the others byte for byte
    /// on connections of their own.
    pub async fn work(self: Arc<Self>, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        while Instant::now() < self.deadline {
            let src = slot_ip(rng.random_range(0..PODS));
            let count = rng.random_range(1..=4);
            let (raw, burst): (Vec<Plan>, Vec<Plan>) = (0..count)
                .map(|_| {
                    let n = self.counter.fetch_add(1, Ordering::Relaxed);
                    plan(n, &mut rng, &self.token)
                })
                .partition(|p| p.raw.is_some());
            for plan in raw {
                if Instant::now() >= self.deadline {
                    return;
                }
                let start = Instant::now();
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                let got = send_raw(src, self.proxy, plan.raw.as_deref().unwrap()).await;
                self.record(src, plan.request, seq, start, got);
            }
            if !burst.is_empty() {
                self.burst(src, burst).await;
            }
        }
    }

    /// Sends `plans` one after the other on one connection; stops at the first failure.
    async fn burst(&self, src: Ipv4Addr, plans: Vec<Plan>) {
        let Ok(stream) = connect(src, self.proxy).await else {
            self.connect_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok((mut sender, connection)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            self.connect_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        tokio::spawn(connection);
        for plan in plans {
            let _turn = match plan.shared_path {
                true => Some(self.shared_path_locks[&src].lock().await),
                false => None,
            };
            // Checked after the turn, which others may have held for a while.
            if Instant::now() >= self.deadline {
                return;
            }
            let mut builder = HttpRequest::builder()
                .method(plan.request.method.as_str())
                .uri(plan.target.as_str())
                .header("host", "169.254.169.254");
            for (name, value) in &plan.headers {
                builder = builder.header(*name, value.as_str());
            }
            let request = builder.body(Empty::<Bytes>::new()).unwrap();
            let start = Instant::now();
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let exchange = async {
                sender.ready().await.map_err(|e| e.to_string())?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let ttl = response
                    .headers()
                    .get("x-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Got { status, ttl })
            };
            let got = tokio::time::timeout(Duration::from_secs(10), exchange)
                .await
                .unwrap_or_else(|_| Err("no answer in 10 s".into()));
            let failed = got.is_err();
            self.record(src, plan.request, seq, start, got);
            if failed {
                return;
            }
        }
    }
}
