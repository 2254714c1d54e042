//! The metadata servers of the clouds the guard knows, as data: where each one listens, which
//! header it demands, which query keys each endpoint takes, which reads return a whole subtree,
//! which trees are legacy, and which request headers are passed on to it.
//!
//! Pure: the proxy, the policy check, the netfilter rules and the emulator all read these, so they
//! cannot disagree about a cloud's protocol.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::policy::pattern::PathPattern;
use crate::query::Query;
use crate::target::CanonicalPath;
use std::sync::LazyLock;

/// A cloud's metadata server, chosen by `[upstream] cloud`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cloud {
    /// AWS EC2 IMDS (the default).
    #[default]
    Aws,
    /// Google Compute Engine / GKE.
    Gcp,
    /// Azure IMDS.
    Azure,
    /// Alibaba Cloud ECS.
    Alibaba,
    /// Oracle Cloud Infrastructure.
    Oci,
    /// OpenStack Nova (and the EC2-style tree it serves too).
    Openstack,
    /// DigitalOcean Droplets (DOKS).
    Digitalocean,
    /// Hetzner Cloud.
    Hetzner,
    /// Tencent Cloud CVM (TKE).
    Tencent,
    /// Huawei Cloud ECS (CCE): OpenStack's service, with temporary credentials beside it.
    Huawei,
    /// Exoscale (SKS): an EC2-style tree, and a password server beside it.
    Exoscale,
    /// Linode / Akamai (LKE): `/v1/` with a session-token flow of its own.
    Linode,
}

/// Every cloud, in the order the docs list them.
pub const ALL: [Cloud; 12] = [
    Cloud::Aws,
    Cloud::Gcp,
    Cloud::Azure,
    Cloud::Alibaba,
    Cloud::Oci,
    Cloud::Openstack,
    Cloud::Digitalocean,
    Cloud::Hetzner,
    Cloud::Tencent,
    Cloud::Huawei,
    Cloud::Exoscale,
    Cloud::Linode,
];

/// `Metadata-Flavor`, GCP's gate header, demanded on requests and put on every answer.
pub const GCP_FLAVOR_HEADER: &str = "metadata-flavor";
/// The only value of [`GCP_FLAVOR_HEADER`].
pub const GCP_FLAVOR: &str = "Google";
/// `Metadata`, Azure's gate header.
pub const AZURE_METADATA_HEADER: &str = "metadata";
/// The only value of [`AZURE_METADATA_HEADER`].
pub const AZURE_METADATA: &str = "true";
/// OCI's v2 gate: `Authorization: Bearer Oracle` (a fixed string, not a credential).
pub const OCI_AUTHORIZATION: &str = "Bearer Oracle";
/// Alibaba's token header on reads.
pub const ALIBABA_TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
/// Alibaba's token TTL header on the token PUT.
pub const ALIBABA_TOKEN_TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";

/// Request headers that say the request came through a proxy. Pods never send them; they are
/// refused, and the guard never adds them (a server behind the guard may trust them).
pub const FORWARDING_HEADERS: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
];

/// Whether a request header is a forwarding header ([`FORWARDING_HEADERS`] or any other
/// `X-Forwarded-*`).
pub fn is_forwarding_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    FORWARDING_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-forwarded-")
}

/// The header a cloud demands on every request, and how it answers its absence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// Header name, lower case.
    pub header: &'static str,
    /// The one value accepted, and the one passed on.
    pub value: &'static str,
    /// Whether the server reads the value regardless of ASCII case (Azure: its own samples send
    /// `Metadata: True`); otherwise it is compared exactly.
    pub ignore_case: bool,
    /// The status the real server answers when it is missing or wrong.
    pub status: u16,
    /// Where the gate applies: every path under this prefix (`/` for all).
    pub prefix: &'static str,
}

/// A server beside the metadata server that pods can reach and must not: refused to every pod,
/// on its listed ports only (the address may serve something else that pods need on others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideDoor {
    /// Its name, as the docs and the rules' comments give it.
    pub name: &'static str,
    /// Its IPv4 address.
    pub addr: Ipv4Addr,
    /// The ports refused to pods.
    pub ports: &'static [u16],
}

/// Azure's WireServer, 168.63.129.16: port 80 is the fabric's own API (goal state, certificates,
/// extension settings — with provisioning scripts that have carried a node's TLS bootstrap
/// token), 32526 the HostGAPlugin. AKS itself drops pods' traffic to both. Port 53 on the same
/// address is Azure DNS, which pods need: it is never touched.
pub const AZURE_WIRESERVER: SideDoor = SideDoor {
    name: "wireserver",
    addr: Ipv4Addr::new(168, 63, 129, 16),
    ports: &[80, 32526],
};

/// Exoscale's password server, on the metadata server's own address, port 8080: it hands the
/// VM's password out in clear to whoever asks (`DomU_Request: send_my_password`).
pub const EXOSCALE_PASSWORD_SERVER: SideDoor = SideDoor {
    name: "password-server",
    addr: Ipv4Addr::new(169, 254, 169, 254),
    ports: &[8080],
};

/// A session-token flow: `PUT path` with `ttl_header` (whole seconds, `1..=max_ttl`) gets a token,
/// which reads carry in `token_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFlow {
    /// The token endpoint (PUT only).
    pub path: &'static str,
    /// The request header carrying the token on reads, lower case.
    pub token_header: &'static str,
    /// The request header of the PUT giving the wanted lifetime, lower case.
    pub ttl_header: &'static str,
    /// The longest lifetime the service grants, in seconds.
    pub max_ttl: u32,
}

/// Linode's (Akamai's) metadata service: `PUT /v1/token` with `Metadata-Token-Expiry-Seconds`
/// (up to a day), then `Metadata-Token` on every read.
pub const LINODE_TOKENS: TokenFlow = TokenFlow {
    path: "/v1/token",
    token_header: "metadata-token",
    ttl_header: "metadata-token-expiry-seconds",
    max_ttl: 86_400,
};

/// What one endpoint takes in its query.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// Path pattern of the endpoint, in [`crate::policy::pattern`] syntax (`*`, `**`).
    pub path: &'static str,
    /// Keys it accepts, with the values each may take.
    pub keys: &'static [(&'static str, Values)],
    /// Keys it demands.
    pub required: &'static [&'static str],
}

/// The values a query key may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// One of these, exactly.
    OneOf(&'static [&'static str]),
    /// Decimal digits, at most 6 of them.
    Digits,
    /// An Azure API version: `YYYY-MM-DD`, optionally `-preview`.
    ApiVersion,
    /// Any text (still canonically re-encoded).
    Any,
}

impl Values {
    /// Whether `value` (decoded) is one of these.
    pub fn accepts(self, value: &str) -> bool {
        match self {
            Self::OneOf(options) => options.contains(&value),
            Self::Digits => {
                !value.is_empty() && value.len() <= 6 && value.bytes().all(|b| b.is_ascii_digit())
            }
            Self::ApiVersion => {
                let (date, rest) = value.split_at(value.len().min(10));
                let b = date.as_bytes();
                date.len() == 10
                    && b.iter().enumerate().all(|(i, c)| {
                        if i == 4 || i == 7 {
                            *c == b'-'
                        } else {
                            c.is_ascii_digit()
                        }
                    })
                    && (rest.is_empty() || rest == "-preview")
            }
            Self::Any => true,
        }
    }
}

const BOOL: Values = Values::OneOf(&["true", "false"]);

/// GCP: the keys every `/computeMetadata/v1/` path takes.
const GCP_COMMON: &[(&str, Values)] = &[
    ("recursive", BOOL),
    ("alt", Values::OneOf(&["json", "text"])),
    ("wait_for_change", BOOL),
    ("timeout_sec", Values::Digits),
    ("last_etag", Values::Any),
];

const GCP_ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/computeMetadata/v1/instance/service-accounts/*/token",
        keys: &[
            ("scopes", Values::Any),
            ("alt", Values::OneOf(&["json", "text"])),
        ],
        required: &[],
    },
    Endpoint {
        path: "/computeMetadata/v1/instance/service-accounts/*/identity",
        keys: &[
            ("audience", Values::Any),
            ("format", Values::OneOf(&["standard", "full"])),
            (
                "licenses",
                Values::OneOf(&["TRUE", "FALSE", "true", "false"]),
            ),
        ],
        required: &["audience"],
    },
    Endpoint {
        path: "/computeMetadata/v1/**",
        keys: GCP_COMMON,
        required: &[],
    },
    Endpoint {
        path: "/computeMetadata/v1",
        keys: GCP_COMMON,
        required: &[],
    },
];

/// The endpoints' paths, compiled once (they are constants: every one parses).
static GCP_COMPILED: LazyLock<Vec<PathPattern>> = LazyLock::new(|| compile(GCP_ENDPOINTS));
static AZURE_COMPILED: LazyLock<Vec<PathPattern>> = LazyLock::new(|| compile(AZURE_ENDPOINTS));

fn compile(endpoints: &[Endpoint]) -> Vec<PathPattern> {
    endpoints
        .iter()
        .filter_map(|e| PathPattern::parse(e.path).ok())
        .collect()
}

const AZURE_API: (&str, Values) = ("api-version", Values::ApiVersion);
const AZURE_FORMAT: (&str, Values) = ("format", Values::OneOf(&["json", "text"]));

const AZURE_ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/metadata/versions",
        keys: &[AZURE_FORMAT],
        required: &[],
    },
    Endpoint {
        path: "/metadata/identity/oauth2/token",
        keys: &[
            AZURE_API,
            ("resource", Values::Any),
            ("client_id", Values::Any),
            ("object_id", Values::Any),
            ("msi_res_id", Values::Any),
            ("mi_res_id", Values::Any),
        ],
        required: &["api-version", "resource"],
    },
    Endpoint {
        path: "/metadata/attested/document",
        keys: &[AZURE_API, ("nonce", Values::Any)],
        required: &["api-version"],
    },
    Endpoint {
        path: "/metadata/**",
        keys: &[AZURE_API, AZURE_FORMAT],
        required: &["api-version"],
    },
];

impl Cloud {
    /// The name in the config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Gcp => "gcp",
            Self::Azure => "azure",
            Self::Alibaba => "alibaba",
            Self::Oci => "oci",
            Self::Openstack => "openstack",
            Self::Digitalocean => "digitalocean",
            Self::Hetzner => "hetzner",
            Self::Tencent => "tencent",
            Self::Huawei => "huawei",
            Self::Exoscale => "exoscale",
            Self::Linode => "linode",
        }
    }

    /// The metadata server's IPv4 address.
    pub fn ipv4(self) -> Ipv4Addr {
        match self {
            Self::Alibaba => Ipv4Addr::new(100, 100, 100, 200),
            // metadata.tencentyun.com.
            Self::Tencent => Ipv4Addr::new(169, 254, 0, 23),
            _ => Ipv4Addr::new(169, 254, 169, 254),
        }
    }

    /// The metadata server's IPv6 address, where the cloud has one.
    pub fn ipv6(self) -> Option<Ipv6Addr> {
        match self {
            Self::Aws => Some(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
            Self::Oci => Some(Ipv6Addr::new(0xfd00, 0xc1, 0, 0, 0, 0, 0xa9fe, 0xa9fe)),
            Self::Linode => Some(Ipv6Addr::new(0xfd00, 0xa9fe, 0xa9fe, 0, 0, 0, 0, 1)),
            // Link-local, as OpenStack's (Hetzner's IPv6-only servers reach the service there).
            Self::Openstack | Self::Hetzner => {
                Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe))
            }
            // Served to IPv6 instances; widely listed, not in CLOUDS.md's sources: intercepted
            // anyway, since a missed endpoint would go around the guard.
            Self::Gcp => Some(Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254)),
            // These document the IPv4 address only.
            Self::Azure
            | Self::Alibaba
            | Self::Digitalocean
            | Self::Tencent
            | Self::Huawei
            | Self::Exoscale => None,
        }
    }

    /// Every address the server answers on.
    pub fn addresses(self) -> Vec<IpAddr> {
        let mut all = vec![IpAddr::V4(self.ipv4())];
        all.extend(self.ipv6().map(IpAddr::V6));
        all
    }

    /// Ports of the server that carry what the guard cannot inspect (GCP's HTTPS/mTLS endpoint):
    /// rejected for pods, so that they fail closed instead of going around the guard.
    pub fn uninspectable_ports(self) -> &'static [u16] {
        match self {
            Self::Gcp => &[443],
            _ => &[],
        }
    }

    /// Servers beside the metadata server that pods can reach and must not (Azure's WireServer).
    pub fn side_doors(self) -> &'static [SideDoor] {
        match self {
            Self::Azure => &[AZURE_WIRESERVER],
            Self::Exoscale => &[EXOSCALE_PASSWORD_SERVER],
            _ => &[],
        }
    }

    /// Every address and port pods are refused outright, by the netfilter rules (a TCP reset) and
    /// the cgroup hooks (`EPERM` at `connect()`): the [`Cloud::uninspectable_ports`] of the
    /// server's IPv4 address, then every port of every [`Cloud::side_doors`].
    pub fn refused_for_pods(self) -> Vec<(Ipv4Addr, u16)> {
        let server = self.ipv4();
        let mut all: Vec<(Ipv4Addr, u16)> = self
            .uninspectable_ports()
            .iter()
            .map(|&port| (server, port))
            .collect();
        for door in self.side_doors() {
            all.extend(door.ports.iter().map(|&port| (door.addr, port)));
        }
        all
    }

    /// The default `[upstream] url`.
    pub fn default_url(self) -> String {
        format!("http://{}", self.ipv4())
    }

    /// The header the cloud demands, if any.
    pub fn gate(self) -> Option<Gate> {
        match self {
            Self::Gcp => Some(Gate {
                header: GCP_FLAVOR_HEADER,
                value: GCP_FLAVOR,
                ignore_case: false,
                status: 403,
                prefix: "/",
            }),
            Self::Azure => Some(Gate {
                header: AZURE_METADATA_HEADER,
                value: AZURE_METADATA,
                ignore_case: true,
                status: 400,
                prefix: "/",
            }),
            Self::Oci => Some(Gate {
                header: "authorization",
                value: OCI_AUTHORIZATION,
                ignore_case: false,
                status: 401,
                prefix: "/opc/v2",
            }),
            Self::Aws
            | Self::Alibaba
            | Self::Openstack
            | Self::Digitalocean
            | Self::Hetzner
            | Self::Tencent
            | Self::Huawei
            | Self::Exoscale
            | Self::Linode => None,
        }
    }

    /// Whether the gate accepts `value`.
    pub fn gate_accepts(gate: &Gate, value: &[u8]) -> bool {
        if gate.ignore_case {
            value.eq_ignore_ascii_case(gate.value.as_bytes())
        } else {
            value == gate.value.as_bytes()
        }
    }

    /// Whether the gate applies to `path`.
    pub fn gated(self, path: &CanonicalPath) -> Option<Gate> {
        self.gate().filter(|g| under(path.as_str(), g.prefix))
    }

    /// The cloud's session-token flow, where it has one.
    pub fn token_flow(self) -> Option<TokenFlow> {
        match self {
            Self::Aws => Some(TokenFlow {
                path: crate::imds::TOKEN_PATH,
                token_header: crate::imds::TOKEN_HEADER,
                ttl_header: crate::imds::TOKEN_TTL_HEADER,
                max_ttl: crate::imds::MAX_TOKEN_TTL_SECONDS,
            }),
            Self::Alibaba => Some(TokenFlow {
                path: crate::imds::TOKEN_PATH,
                token_header: ALIBABA_TOKEN_HEADER,
                ttl_header: ALIBABA_TOKEN_TTL_HEADER,
                max_ttl: crate::imds::MAX_TOKEN_TTL_SECONDS,
            }),
            Self::Linode => Some(LINODE_TOKENS),
            _ => None,
        }
    }

    /// The IMDSv2-style session-token headers (token, TTL) of clouds with a token flow.
    pub fn token_headers(self) -> Option<(&'static str, &'static str)> {
        self.token_flow().map(|f| (f.token_header, f.ttl_header))
    }

    /// Request headers passed on to the server, besides `User-Agent` and `Accept`. Everything else
    /// is dropped; the gate header is passed with its one value only.
    pub fn passed_headers(self) -> &'static [&'static str] {
        match self {
            Self::Aws => &[crate::imds::TOKEN_HEADER, crate::imds::TOKEN_TTL_HEADER],
            Self::Alibaba => &[ALIBABA_TOKEN_HEADER, ALIBABA_TOKEN_TTL_HEADER],
            Self::Gcp => &[GCP_FLAVOR_HEADER],
            Self::Azure => &[AZURE_METADATA_HEADER],
            Self::Oci => &["authorization"],
            Self::Openstack
            | Self::Digitalocean
            | Self::Hetzner
            | Self::Tencent
            | Self::Huawei
            | Self::Exoscale => &[],
            Self::Linode => &[LINODE_TOKENS.token_header, LINODE_TOKENS.ttl_header],
        }
    }

    /// Whether paths are read regardless of ASCII case (Azure). The guard then reads, checks and
    /// forwards them in lower case, so a spelling the server reads as a denied path is that path.
    pub fn case_insensitive_paths(self) -> bool {
        self == Self::Azure
    }

    /// Whether the cloud's protocol uses query strings at all.
    pub fn takes_queries(self) -> bool {
        matches!(self, Self::Gcp | Self::Azure)
    }

    /// The endpoint whose query rules apply to `path`: the first that matches.
    pub fn endpoint(self, path: &CanonicalPath) -> Option<&'static Endpoint> {
        let (endpoints, compiled): (_, &[PathPattern]) = match self {
            Self::Gcp => (GCP_ENDPOINTS, &GCP_COMPILED),
            Self::Azure => (AZURE_ENDPOINTS, &AZURE_COMPILED),
            _ => return None,
        };
        let segments: Vec<&str> = path.segments().collect();
        endpoints
            .iter()
            .zip(compiled)
            .find(|(_, p)| p.matches_segments(&segments, false))
            .map(|(e, _)| e)
    }

    /// Legacy trees the guard refuses whatever the policy (GCP's `/0.1/` and `v1beta1`, which need
    /// no header and so are open to any forged request).
    /// Read leniently, as deny patterns read paths (case, escapes, trailing dots and spaces,
    /// segments of dots): a spelling a lenient server takes for a legacy tree is one.
    pub fn is_legacy(self, path: &CanonicalPath) -> bool {
        self == Self::Gcp && GCP_LEGACY.iter().any(|p| p.matches(path, true))
    }

    /// When a read returns a whole subtree (GCP `recursive=true`, Azure's instance document, OCI's
    /// instance document, Alibaba's `meta-data/all`): the root of that subtree. The policy then
    /// allows it only when every path below is allowed.
    ///
    /// Documents are recognised leniently, as deny patterns read paths: `/metadata/instance.`,
    /// `/opc/v2/Instance` or `/latest/meta-data/ALL` are the documents to a lenient server, and
    /// so they are aggregates here.
    pub fn aggregate_root(self, path: &CanonicalPath, query: &Query) -> Option<String> {
        let p = path.as_str();
        let trimmed = p.strip_suffix('/').unwrap_or(p);
        let any = |patterns: &[PathPattern]| patterns.iter().any(|d| d.matches(path, true));
        match self {
            Self::Gcp => (query.get("recursive") == Some("true")).then(|| trimmed.to_owned()),
            // JSON answers of the instance tree are documents of everything below; `format=text`
            // answers only leaves.
            Self::Azure => (any(&AZURE_DOCUMENTS) && query.get("format") != Some("text"))
                .then(|| trimmed.to_owned()),
            // The document, its object members, and any directory-style read below it.
            Self::Oci => (any(&OCI_DOCUMENTS) || (p.ends_with('/') && any(&OCI_BELOW_INSTANCE)))
                .then(|| trimmed.to_owned()),
            // `meta-data/all` is everything below `meta-data`.
            Self::Alibaba => any(&ALIBABA_ALL).then(|| {
                trimmed
                    .rsplit_once('/')
                    .map_or_else(String::new, |(root, _)| root.to_owned())
            }),
            // `/metadata/v1.json` is everything below `/metadata/v1`, user and vendor data
            // included.
            Self::Digitalocean => any(&DIGITALOCEAN_DOCUMENT).then(|| "/metadata/v1".to_owned()),
            // `/hetzner/v1/metadata` (YAML) is every key below it.
            Self::Hetzner => any(&HETZNER_DOCUMENT).then(|| trimmed.to_owned()),
            Self::Aws
            | Self::Openstack
            | Self::Tencent
            | Self::Huawei
            | Self::Exoscale
            | Self::Linode => None,
        }
    }

    /// Whether a policy pattern beginning with `first` (its first segment; `None` for `/` or a
    /// wildcard) can match a path this cloud's server serves.
    pub fn serves_root(self, first: Option<&str>) -> bool {
        let Some(first) = first else { return true };
        let dated = first.len() == 10 && Values::ApiVersion.accepts(first);
        match self {
            Self::Aws | Self::Alibaba | Self::Exoscale => {
                first == "latest" || first == "1.0" || dated
            }
            // Tencent's root lists `1.0`, `2017-09-19`, `latest` and a bare `meta-data`.
            Self::Tencent => first == "latest" || first == "1.0" || first == "meta-data" || dated,
            Self::Gcp => first == "computeMetadata",
            Self::Azure => first.eq_ignore_ascii_case("metadata"),
            Self::Oci => first == "opc",
            Self::Openstack | Self::Huawei => {
                first == "openstack" || first == "latest" || first == "1.0" || dated
            }
            Self::Digitalocean => first == "metadata",
            Self::Hetzner => first == "hetzner",
            Self::Linode => first == "v1",
        }
    }

    /// Whether some endpoint of this cloud takes the query key `key`.
    pub fn takes_key(self, key: &str) -> bool {
        let endpoints = match self {
            Self::Gcp => GCP_ENDPOINTS,
            Self::Azure => AZURE_ENDPOINTS,
            _ => return false,
        };
        endpoints
            .iter()
            .any(|e| e.keys.iter().any(|(k, _)| *k == key))
    }

    /// Paths concealed whatever the rules' wildcards say, as GKE's metadata concealment does: a
    /// read of one is allowed only by an allow pattern without `**` that matches it (naming it, at
    /// most with `*` for a segment). GCP: the node's bootstrap secrets (`kube-env`), start-up and
    /// shutdown scripts, user data, Windows keys, and identity tokens.
    pub fn concealed(self) -> &'static [&'static str] {
        match self {
            Self::Gcp => &[
                "/computeMetadata/v1/instance/attributes/kube-env",
                "/computeMetadata/v1/instance/attributes/startup-script",
                "/computeMetadata/v1/instance/attributes/startup-script-url",
                "/computeMetadata/v1/instance/attributes/shutdown-script",
                "/computeMetadata/v1/instance/attributes/shutdown-script-url",
                "/computeMetadata/v1/instance/attributes/user-data",
                "/computeMetadata/v1/instance/attributes/windows-keys",
                "/computeMetadata/v1/project/attributes/startup-script",
                "/computeMetadata/v1/project/attributes/startup-script-url",
                "/computeMetadata/v1/project/attributes/shutdown-script",
                "/computeMetadata/v1/project/attributes/shutdown-script-url",
                "/computeMetadata/v1/project/attributes/user-data",
                "/computeMetadata/v1/project/attributes/windows-keys",
                "/computeMetadata/v1/instance/service-accounts/*/identity",
            ],
            _ => &[],
        }
    }

    /// Whether what `pattern` (a path pattern's text) matches is never part of an aggregate
    /// answer: GCP's service-account `token` and `identity` are made on request, not stored, so a
    /// recursive read of the account returns neither (email, aliases and scopes only).
    pub fn outside_aggregates(self, pattern: &str) -> bool {
        if self != Self::Gcp {
            return false;
        }
        let path = crate::query::split(pattern).0;
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        matches!(
            segments.as_slice(),
            [.., accounts, account, last]
                if accounts.eq_ignore_ascii_case("service-accounts")
                    && *account != "**"
                    && (last.eq_ignore_ascii_case("token") || last.eq_ignore_ascii_case("identity"))
        )
    }

    /// The paths whose answers are credentials (never cached, audited as such).
    pub fn credential_patterns(self) -> &'static [&'static str] {
        match self {
            Self::Aws => &["/latest/meta-data/iam/security-credentials/*"],
            Self::Gcp => &[
                "/computeMetadata/v1/instance/service-accounts/*/token",
                "/computeMetadata/v1/instance/service-accounts/*/identity",
            ],
            Self::Azure => &["/metadata/identity/**"],
            Self::Alibaba => &["/latest/meta-data/ram/security-credentials/*"],
            Self::Oci => &["/opc/*/identity/**"],
            Self::Openstack => &[
                "/latest/meta-data/iam/security-credentials/*",
                "/openstack/*/password",
            ],
            // In every tree the root lists: versions, `latest`, and the bare `meta-data`.
            Self::Tencent => &[
                "/*/meta-data/cam/security-credentials/*",
                "/meta-data/cam/security-credentials/*",
            ],
            // The droplet's auth token, which DigitalOcean's agents exchange for a droplet token.
            Self::Digitalocean => &["/metadata/v1/auth-token"],
            // The agency's temporary AK/SK, and the admin password.
            Self::Huawei => &["/openstack/*/securitykey", "/openstack/*/password"],
            // None serves credentials; their secrets are the user data (see the deploy
            // components' default policies), and Exoscale's password is behind a side door.
            Self::Hetzner | Self::Exoscale | Self::Linode => &[],
        }
    }
}

/// GCP's legacy trees, matched leniently.
static GCP_LEGACY: LazyLock<Vec<PathPattern>> =
    LazyLock::new(|| patterns(&["/0.1/**", "/computeMetadata/v1beta1/**"]));
/// Azure's instance document and everything in it, matched leniently.
static AZURE_DOCUMENTS: LazyLock<Vec<PathPattern>> =
    LazyLock::new(|| patterns(&["/metadata/instance/**"]));
/// OCI's instance document and its object members, matched leniently.
static OCI_DOCUMENTS: LazyLock<Vec<PathPattern>> = LazyLock::new(|| {
    let mut all = vec!["/opc/*/instance".to_owned()];
    all.extend(OCI_INTERIOR.iter().map(|m| format!("/opc/*/instance/{m}")));
    all.iter()
        .filter_map(|p| PathPattern::parse(p).ok())
        .collect()
});
static OCI_BELOW_INSTANCE: LazyLock<Vec<PathPattern>> =
    LazyLock::new(|| patterns(&["/opc/*/instance/**"]));
/// DigitalOcean's whole document, matched leniently.
static DIGITALOCEAN_DOCUMENT: LazyLock<Vec<PathPattern>> =
    LazyLock::new(|| patterns(&["/metadata/v1.json"]));
/// Hetzner's metadata document, matched leniently.
static HETZNER_DOCUMENT: LazyLock<Vec<PathPattern>> =
    LazyLock::new(|| patterns(&["/hetzner/v1/metadata"]));
/// Alibaba's `meta-data/all`, matched leniently.
static ALIBABA_ALL: LazyLock<Vec<PathPattern>> = LazyLock::new(|| patterns(&["/*/meta-data/all"]));

fn patterns(list: &[&str]) -> Vec<PathPattern> {
    list.iter()
        .filter_map(|p| PathPattern::parse(p).ok())
        .collect()
}

/// OCI instance-document members that are objects (their answer holds what is below them).
const OCI_INTERIOR: &[&str] = &[
    "metadata",
    "definedTags",
    "freeformTags",
    "agentConfig",
    "regionInfo",
    "shapeConfig",
    "sourceDetails",
    "launchOptions",
    "availabilityConfig",
    "instanceOptions",
    "platformConfig",
];

/// Whether `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown cloud name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown cloud {0:?}: expected one of aws, gcp, azure, alibaba, oci, openstack, digitalocean, hetzner, tencent, huawei, exoscale, linode"
)]
pub struct UnknownCloud(pub String);

impl FromStr for Cloud {
    type Err = UnknownCloud;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCloud(s.to_owned()))
    }
}

#[cfg(test)]
mod tests;
