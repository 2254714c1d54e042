//! An emulator of the AWS instance metadata service (`imds-guard emulate`), and of the other
//! clouds' metadata servers (`--cloud`, [`EmulatorOptions::cloud`]: every cloud of the core's
//! `Cloud`), each in its own module: `gcp` and `azure` faithfully, `alibaba`, `oci`, `openstack`,
//! `digitalocean`, `hetzner`, `tencent`, `huawei`, `exoscale` and `linode` for the rules that set
//! them apart. Where a real server's behaviour is not documented, the emulator is strict and its
//! module says so.
//!
//! The EC2-style services (AWS, Alibaba, Tencent, Exoscale) are answered synchronously by
//! `handler` (the EC2-style tree and token flow, which never reads a request body); the others by
//! `dispatch`, which reads the body and lets GCP's long polls wait.
//!
//! It is the upstream for local runs, tests and benchmarks of imds-guard, so
//! it reproduces the parts of IMDS the proxy depends on: IMDSv2 session
//! tokens (`PUT /latest/api/token`, token TTLs, the IP hop limit of token
//! responses, refusal of forwarded token requests), IMDSv1 reads when tokens
//! are optional, the metadata tree with AWS's listing and trailing-slash
//! rules, user data, the instance identity document, and IAM role
//! credentials that expire and rotate. The tree can be changed with a JSON
//! override file (see [`load_metadata`]).
//!
//! Built-in values are fixed and consistent with each other; an override
//! changes only the leaves it names (the identity document, for example,
//! does not follow an overridden `instance-id`).

mod alibaba;
mod answer;
mod azure;
mod creds;
mod digitalocean;
mod dispatch;
mod exoscale;
mod gcp;
mod handler;
mod hetzner;
mod huawei;
mod linode;
mod oci;
mod openstack;
mod protocol;
mod session_tokens;
mod tencent;
mod tree;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::net::SocketAddr;

use bytes::Bytes;
use futures::future::{BoxFuture, Either, FutureExt as _};
use http_body_util::Full;
use hyper::body::Incoming;
use imds_guard_core::cloud::Cloud;
use tokio::net::TcpListener;

use handler::{ResponseTtl, State};
use hyper_util::server::graceful::GracefulShutdown;
use imds_guard_net::HopLimit;

/// Whether reads need an IMDSv2 session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// IMDSv1 and IMDSv2: reads without a token are served.
    Optional,
    /// IMDSv2 only: reads without a valid token get 401.
    Required,
}

impl FromStr for TokenMode {
    type Err = EmulatorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "optional" => Ok(TokenMode::Optional),
            "required" => Ok(TokenMode::Required),
            other => Err(EmulatorError::TokenInvalidMode(other.to_owned())),
        }
    }
}

impl fmt::Display for TokenMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenMode::Optional => "optional",
            TokenMode::Required => "required",
        })
    }
}

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Whether reads need a session token. Default: optional.
    pub tokens: TokenMode,
    /// IP TTL of token (PUT) responses, 1..=64. Default: 1, as on EC2.
    pub hop_limit: u8,
    /// Override tree (see [`load_metadata`]), deep-merged over the built-in
    /// tree; JSON null removes a key. Default: none.
    pub metadata: Option<serde_json::Value>,
    /// Lifetime of role credentials (AWS's IAM, Alibaba's RAM, Tencent's CAM roles, Huawei's
    /// agency keys), at least 2 s. New credentials are issued every half lifetime. Default: 6 h.
    pub credentials_ttl: Duration,
    /// Requests answered per second, as the service throttles an instance; beyond it, 429.
    /// Default: none (every request answered).
    pub throttle: Option<u32>,
    /// Which cloud's metadata server to emulate. Default: AWS. `tokens = Required` applies to
    /// AWS and Alibaba (its hardened mode), `metadata` to the EC2-style trees (AWS, Alibaba,
    /// Tencent, Exoscale, and the `/latest/` trees of OpenStack and Huawei); other combinations
    /// are refused.
    pub cloud: Cloud,
    /// GCP only: how often `instance/maintenance-event` flips between `NONE` and
    /// `MIGRATE_ON_HOST_MAINTENANCE`, so that `wait_for_change` long polls see a change.
    /// Default: never.
    pub change_every: Option<Duration>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            tokens: TokenMode::Optional,
            hop_limit: 1,
            metadata: None,
            credentials_ttl: Duration::from_secs(6 * 3600),
            throttle: None,
            cloud: Cloud::Aws,
            change_every: None,
        }
    }
}

/// Allowed hop limits, as on EC2.
const HOP_LIMITS: std::ops::RangeInclusive<u8> = 1..=64;
/// Shortest credentials lifetime: windows of at least a second keep the
/// second-precision timestamps distinct.
const MIN_CREDENTIALS_TTL: Duration = Duration::from_secs(2);
/// Largest metadata file read; far above any real tree.
const MAX_METADATA_FILE: u64 = 16 * 1024 * 1024;
/// How long a client may take to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may finish once the emulator is told to stop (the header read
/// timeout bounds a client still sending its request).
const DRAIN: Duration = Duration::from_secs(30);

/// Errors of the emulator's configuration.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The metadata file could not be read.
    #[error("cannot read metadata file {}: {source}", path.display())]
    ReadMetadata {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The metadata file is larger than any sensible tree.
    #[error("metadata file {} is too large ({size} bytes, at most {MAX_METADATA_FILE})", path.display())]
    MetadataTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// The metadata file is not valid JSON.
    #[error("metadata file {} is not valid JSON: {source}", path.display())]
    ParseMetadata {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with line and column.
        source: serde_json::Error,
    },
    /// The metadata file is JSON but not shaped like a metadata tree.
    #[error("metadata file {}: at {at}: {reason}", path.display())]
    InvalidMetadataFile {
        /// The file.
        path: PathBuf,
        /// Where in the tree, as a `/`-separated path.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// The metadata override in the options is not shaped like a tree.
    #[error("metadata override: at {at}: {reason}")]
    InvalidMetadata {
        /// Where in the tree, as a `/`-separated path.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// A token mode other than `optional` or `required`.
    #[error("invalid token mode {0:?}: expected \"optional\" or \"required\"")]
    TokenInvalidMode(String),
    /// A hop limit outside 1..=64.
    #[error("invalid hop limit {0}: expected 1 to 64")]
    InvalidHopLimit(u8),
    /// A credentials lifetime below the minimum.
    #[error("credentials lifetime {} is too short: at least 2s", humantime::format_duration(*.0))]
    CredentialsTtlTooShort(Duration),
    /// An option the chosen cloud's emulator does not have.
    #[error("{option} does not apply to cloud {cloud}")]
    NotForCloud {
        /// The cloud emulated.
        cloud: Cloud,
        /// The option, as the command line names it.
        option: &'static str,
    },
    /// A change period of zero.
    #[error("change period must be at least 1 ms")]
    ChangeEveryZero,
}

/// Reads a metadata override file: a JSON object shaped like the tree below
/// `/latest/`, such as `{"meta-data": {"instance-id": "i-x"}, "user-data": "..."}`.
/// Strings are values, objects are directories and null removes a key; any
/// other JSON type is an error naming its path in the tree.
pub fn load_metadata(path: &Path) -> Result<serde_json::Value, EmulatorError> {
    let read_error = |source| EmulatorError::ReadMetadata {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_METADATA_FILE {
        return Err(EmulatorError::MetadataTooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| EmulatorError::ParseMetadata {
            path: path.to_owned(),
            source,
        })?;
    tree::validate(&value, true).map_err(|problem| EmulatorError::InvalidMetadataFile {
        path: path.to_owned(),
        at: problem.at,
        reason: problem.reason,
    })?;
    Ok(value)
}

/// Checks the options and builds the shared state.
fn build_state(options: EmulatorOptions) -> Result<State, EmulatorError> {
    if !HOP_LIMITS.contains(&options.hop_limit) {
        return Err(EmulatorError::InvalidHopLimit(options.hop_limit));
    }
    if options.credentials_ttl < MIN_CREDENTIALS_TTL {
        return Err(EmulatorError::CredentialsTtlTooShort(
            options.credentials_ttl,
        ));
    }
    let cloud = options.cloud;
    let not_for = |option| Err(EmulatorError::NotForCloud { cloud, option });
    let token_cloud = matches!(cloud, Cloud::Aws | Cloud::Alibaba);
    if options.tokens == TokenMode::Required && !token_cloud {
        return not_for("--tokens required");
    }
    if options.metadata.is_some() && !ec2_tree(cloud) {
        return not_for("--metadata");
    }
    match options.change_every {
        Some(_) if cloud != Cloud::Gcp => return not_for("--change-every-ms"),
        Some(every) if every.is_zero() => return Err(EmulatorError::ChangeEveryZero),
        _ => {}
    }
    let now = SystemTime::now();
    let mut value = match cloud {
        Cloud::Alibaba => alibaba::builtin(now),
        Cloud::Tencent => tencent::builtin(now),
        Cloud::Huawei => huawei::builtin(now),
        Cloud::Exoscale => exoscale::builtin(now),
        Cloud::Aws
        | Cloud::Gcp
        | Cloud::Azure
        | Cloud::Oci
        | Cloud::Openstack
        | Cloud::Digitalocean
        | Cloud::Hetzner
        | Cloud::Linode => tree::builtin(now),
    };
    if let Some(over) = &options.metadata {
        tree::validate(over, true).map_err(|problem| EmulatorError::InvalidMetadata {
            at: problem.at,
            reason: problem.reason,
        })?;
        tree::merge(&mut value, over);
    }
    Ok(State {
        cloud,
        protocol: handler::protocol(cloud),
        tokens: options.tokens,
        hop_limit: options.hop_limit,
        tree: tree::Node::from_value(&value),
        credentials: creds::CredentialSource::new(options.credentials_ttl),
        store: session_tokens::TokenStore::default(),
        throttle: options.throttle.filter(|rps| *rps > 0).map(|rps| {
            parking_lot::Mutex::new(imds_guard_core::bucket::Bucket::new(
                f64::from(rps),
                rps,
                std::time::Instant::now(),
            ))
        }),
        throttled: std::sync::atomic::AtomicU64::new(0),
        gcp: gcp::GcpState::new(options.change_every),
        openstack: openstack::OpenstackState::default(),
    })
}

/// Whether the cloud serves an EC2-style tree (all of it, or its `/latest/` part), which
/// `--metadata` changes.
fn ec2_tree(cloud: Cloud) -> bool {
    match cloud {
        Cloud::Aws
        | Cloud::Alibaba
        | Cloud::Tencent
        | Cloud::Exoscale
        | Cloud::Openstack
        | Cloud::Huawei => true,
        Cloud::Gcp
        | Cloud::Azure
        | Cloud::Oci
        | Cloud::Digitalocean
        | Cloud::Hetzner
        | Cloud::Linode => false,
    }
}

/// Whether the cloud is answered synchronously by `handler` (its whole service is the EC2-style
/// tree, which never reads a request body); the others go through `dispatch`.
fn synchronous(cloud: Cloud) -> bool {
    match cloud {
        Cloud::Aws | Cloud::Alibaba | Cloud::Tencent | Cloud::Exoscale => true,
        Cloud::Gcp
        | Cloud::Azure
        | Cloud::Oci
        | Cloud::Openstack
        | Cloud::Digitalocean
        | Cloud::Hetzner
        | Cloud::Huawei
        | Cloud::Linode => false,
    }
}

/// An answer now (the EC2-style services: AWS, Alibaba, Tencent, Exoscale), or one still to come
/// (the others).
type Answering = Either<
    std::future::Ready<http::Response<Full<Bytes>>>,
    BoxFuture<'static, http::Response<Full<Bytes>>>,
>;

/// The request handler of one connection from `peer`. A token answer carries its hop limit
/// ([`HopLimit`]) for `imds_guard_net` to apply; every other answer leaves with the normal TTL.
fn connection_handler(
    state: Arc<State>,
    peer: SocketAddr,
) -> impl Fn(http::Request<Incoming>) -> Answering + Send + 'static {
    move |req| {
        if !synchronous(state.cloud) {
            // No token answers here: every answer leaves with the normal TTL.
            let (method, path) = (req.method().clone(), req.uri().path().to_owned());
            let state = Arc::clone(&state);
            return Either::Right(
                async move {
                    let response = dispatch::answer(state, req).await;
                    tracing::debug!(
                        peer = %peer,
                        %method,
                        path,
                        status = response.status().as_u16(),
                        "metadata request"
                    );
                    response
                }
                .boxed(),
            );
        }
        let reply = handler::handle(&state, &req);
        tracing::debug!(
            peer = %peer,
            method = %req.method(),
            path = req.uri().path(),
            status = reply.response.status().as_u16(),
            "metadata request"
        );
        let mut response = reply.response;
        if let ResponseTtl::HopLimit(hops) = reply.ttl {
            response.extensions_mut().insert(HopLimit(hops));
        }
        Either::Left(std::future::ready(response))
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish.
///
/// Invalid options fail at once with `ErrorKind::InvalidInput`. Idle
/// keep-alive connections are closed at shutdown; a client still sending
/// request headers has at most the header read timeout (10 s) to finish.
pub async fn serve(
    listener: TcpListener,
    options: EmulatorOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let state =
        Arc::new(build_state(options).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?);
    tracing::debug!(
        address = ?listener.local_addr().ok(),
        cloud = %state.cloud,
        tokens = %state.tokens,
        hop_limit = state.hop_limit,
        "metadata emulator listening"
    );
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = Arc::clone(&state);
                    let handler = connection_handler(state, peer);
                    imds_guard_net::serve_connection(stream, peer, (), HEADER_READ_TIMEOUT, &graceful, handler);
                }
                Err(e) => imds_guard_net::accept_failed(&e).await,
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    imds_guard_net::drain(graceful, DRAIN).await;
    tracing::info!(
        throttled = state.throttled.load(std::sync::atomic::Ordering::Relaxed),
        "metadata emulator stopping"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
