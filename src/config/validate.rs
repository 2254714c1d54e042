//! Validation: from the raw, deserialised sections to a [`Config`] whose every value was checked,
//! each refusal naming its key.

use super::*;
use imds_guard_core::iptables::rules::{RuleError, RuleSet};

pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.server.listen == raw.server.admin_listen {
        return Err(invalid(
            "server.admin_listen",
            "must differ from server.listen",
        ));
    }
    let server = &raw.server;
    if server.header_read_timeout_ms == 0 || server.header_read_timeout_ms > 300_000 {
        return Err(invalid(
            "server.header_read_timeout_ms",
            "must be from 1 to 300000",
        ));
    }
    if server.max_connections == 0 {
        return Err(invalid("server.max_connections", "must be at least 1"));
    }
    if server.max_connections_per_source == 0
        || server.max_connections_per_source > server.max_connections
    {
        return Err(invalid(
            "server.max_connections_per_source",
            "must be from 1 to server.max_connections",
        ));
    }
    if server.workers > 64 {
        return Err(invalid(
            "server.workers",
            "must be from 0 (one per CPU) to 64",
        ));
    }
    let upstream = validate_upstream(raw.upstream)?;
    let cloud = upstream.cloud;
    let inventory = validate_inventory(raw.inventory)?;
    if inventory.source == Source::SelfPod {
        self_pod::check_mode(raw.server.listen, &raw.netfilter)?;
    }
    let imdsv2 = Imdsv2 {
        require_tokens: raw.imdsv2.require_tokens,
        max_token_ttl_seconds: check_ttl(
            "imdsv2.max_token_ttl_seconds",
            raw.imdsv2.max_token_ttl_seconds,
        )?,
    };
    let token_hop_limit = match raw.imdsv2.hop_limit {
        None => None,
        Some(hops) => match u8::try_from(hops) {
            Ok(hops @ 1..=64) => Some(hops),
            _ => return Err(invalid(
                "imdsv2.hop_limit",
                "must be from 1 to 64 (the IP TTL of token answers, like the instance's hop limit)",
            )),
        },
    };
    front::check_key_file(&raw.imdsv2.token_key_file)?;
    let tokens = match (raw.imdsv2.tokens, cloud) {
        (None, Cloud::Aws) => TokenIssuer::Guard,
        (None, _) => TokenIssuer::Passthrough,
        (Some(TokenIssuer::Guard), c) if c != Cloud::Aws => {
            return Err(invalid(
                "imdsv2.tokens",
                format!("guard tokens are issued in front of AWS's server only; with cloud = \"{c}\" use \"passthrough\" (the default there)"),
            ))
        }
        (Some(t), _) => t,
    };
    if tokens == TokenIssuer::Passthrough && raw.imdsv2.token_key_file.is_some() {
        return Err(invalid(
            "imdsv2.token_key_file",
            "only guard tokens are sealed with a key: set [imdsv2] tokens = \"guard\" or remove it",
        ));
    }
    let cache = front::validate_cache(raw.cache, tokens)?;
    let limits = front::validate_limits(raw.limits, cloud)?;
    let rules = validate_rules(raw.rules, cloud)?;
    let audit = audit::validate(raw.audit)?;
    validate_netfilter(&raw.netfilter, raw.server.listen)?;
    interception::validate(&raw.interception, raw.server.listen)?;
    if raw.interception.method == Method::Cgroup && inventory.source == Source::SelfPod {
        return Err(invalid(
            "interception.method",
            "the cgroup method guards a node's pods; a sidecar (inventory.source = \"self\") is \
             reached through its pod's own netfilter rules",
        ));
    }
    Ok(Config {
        server: raw.server,
        upstream,
        inventory,
        imdsv2,
        policy: Arc::new(Policy::new(rules, imdsv2).for_cloud(cloud)),
        netfilter: raw.netfilter,
        interception: raw.interception,
        token_hop_limit,
        startup_taint: None,
        tokens,
        token_key_file: raw.imdsv2.token_key_file,
        cache,
        limits,
        audit,
    })
}

fn validate_netfilter(raw: &Netfilter, listen: SocketAddr) -> Result<(), ConfigError> {
    for (i, iface) in raw.interfaces.iter().enumerate() {
        check_interface(iface).map_err(|r| invalid(format!("netfilter.interfaces[{i}]"), r))?;
        if raw.interfaces[..i].contains(iface) {
            return Err(invalid(
                format!("netfilter.interfaces[{i}]"),
                format!("`{iface}` is listed twice"),
            ));
        }
    }
    if raw.sidecar_uid == Some(0) {
        let e = RuleError::SidecarRoot;
        return Err(invalid(e.key(), e));
    }
    if !(1..=3600).contains(&raw.check_interval_seconds) {
        return Err(invalid(
            "netfilter.check_interval_seconds",
            "must be from 1 to 3600",
        ));
    }
    // `iptables install` refuses these too; with manage = true, `check` says so up front.
    if raw.manage {
        RuleSet::new(listen, &raw.interfaces).map_err(|e| invalid(e.key(), e))?;
    }
    Ok(())
}

fn validate_upstream(raw: RawUpstream) -> Result<Upstream, ConfigError> {
    let url = raw.url.unwrap_or_else(|| raw.cloud.default_url());
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid("upstream.url", format!("not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            "upstream.url",
            "must start with http:// (the metadata service speaks plain HTTP)",
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| invalid("upstream.url", "has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("upstream.url", "must not carry user information"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "upstream.url",
            "must be http://host[:port] without a path or query",
        ));
    }
    if raw.connect_timeout_ms == 0 || raw.timeout_ms == 0 {
        let key = if raw.timeout_ms == 0 {
            "upstream.timeout_ms"
        } else {
            "upstream.connect_timeout_ms"
        };
        return Err(invalid(key, "must be greater than 0"));
    }
    if raw.max_connections == 0 || raw.max_connections > 4096 {
        return Err(invalid(
            "upstream.max_connections",
            "must be from 1 to 4096",
        ));
    }
    let upstream = Upstream {
        cloud: raw.cloud,
        url: format!("http://{authority}"),
        authority,
        emulator: raw.emulator,
        connect_timeout: Duration::from_millis(raw.connect_timeout_ms),
        timeout: Duration::from_millis(raw.timeout_ms),
        max_connections: raw.max_connections,
    };
    if upstream.emulator && !cfg!(feature = "emulator") {
        return Err(invalid(
            "upstream.emulator",
            "this imds-guard was built without the emulator (the `emulator` feature), as the shipped image is",
        ));
    }
    if upstream.emulator && upstream.socket_addr().is_none() {
        return Err(invalid(
            "upstream.url",
            "with emulator = true the host must be an IP address to listen on",
        ));
    }
    Ok(upstream)
}

fn validate_inventory(raw: RawInventory) -> Result<Inventory, ConfigError> {
    if raw.source != Source::Static && !raw.pods.is_empty() {
        return Err(invalid(
            "inventory.pods",
            "only used with source = \"static\"",
        ));
    }
    if raw.unknown_source_grace_ms > 10_000 {
        return Err(invalid(
            "inventory.unknown_source_grace_ms",
            "must be at most 10000 (a pod waits this long before it is refused)",
        ));
    }
    if raw.node_name.as_deref() == Some("") {
        return Err(invalid("inventory.node_name", "must not be empty"));
    }
    let self_pod = self_pod::validate(
        raw.source,
        self_pod::RawSelfPod {
            pod_namespace: raw.pod_namespace,
            pod_name: raw.pod_name,
            pod_uid: raw.pod_uid,
            labels_file: raw.labels_file,
            labels_poll_ms: raw.labels_poll_ms,
        },
    )?;
    let mut owners: HashMap<IpAddr, String> = HashMap::new();
    let mut pods = Vec::with_capacity(raw.pods.len());
    for (i, p) in raw.pods.into_iter().enumerate() {
        let key = |field: &str| format!("inventory.pods[{i}].{field}");
        if p.namespace.is_empty() {
            return Err(invalid(key("namespace"), "must not be empty"));
        }
        if p.name.is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        let qualified = format!("{}/{}", p.namespace, p.name);
        // A hostNetwork pod has the node's address, which names no pod: it is known by its
        // cgroup only (`[interception] method = "cgroup"`, `host_network_pods = true`).
        let ips = match (p.ip, p.host_network) {
            (Some(ip), true) => {
                return Err(invalid(
                    key("ip"),
                    format!("{ip}: a hostNetwork pod has the node's address, which names no pod: remove ip (the pod is known by its cgroup, from its uid)"),
                ))
            }
            (None, true) if p.uid.is_none() => {
                return Err(invalid(
                    key("uid"),
                    "a hostNetwork pod is known by its cgroup, which names its uid: set uid",
                ))
            }
            (None, true) => Vec::new(),
            (None, false) => return Err(invalid(key("ip"), "missing (every pod but a hostNetwork one has an address)")),
            (Some(ip), false) => {
                if let Some(owner) = owners.insert(ip.to_canonical(), qualified.clone()) {
                    return Err(invalid(
                        key("ip"),
                        format!("{ip} is already given to {owner}"),
                    ));
                }
                vec![ip]
            }
        };
        let owner = match p.owner {
            None => None,
            Some(RawOwner { kind, .. }) if kind.is_empty() => {
                return Err(invalid(key("owner.kind"), "must not be empty"))
            }
            Some(RawOwner { name, .. }) if name.is_empty() => {
                return Err(invalid(key("owner.name"), "must not be empty"))
            }
            Some(RawOwner { kind, name }) => Some(Owner { kind, name }),
        };
        let pod = Pod {
            uid: p.uid.unwrap_or_else(|| format!("static:{qualified}")),
            namespace: p.namespace,
            name: p.name,
            labels: p.labels,
            namespace_labels: p.namespace_labels,
            owner,
            host_network: p.host_network,
        };
        pods.push((pod, ips));
    }
    Ok(Inventory {
        source: raw.source,
        node_name: raw.node_name,
        kubeconfig: raw.kubeconfig,
        unknown_source_grace: Duration::from_millis(raw.unknown_source_grace_ms),
        pods,
        self_pod,
    })
}

fn validate_rules(raw: Vec<RawRule>, cloud: Cloud) -> Result<Vec<Rule>, ConfigError> {
    let mut names = HashMap::new();
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("rules[{i}].{field}");
        if r.name.trim().is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        if let Some(first) = names.insert(r.name.clone(), i) {
            return Err(invalid(
                key("name"),
                format!("`{}` is already the name of rules[{first}]", r.name),
            ));
        }
        let selector = Selector {
            all_pods: r.all_pods,
            namespaces: r.namespaces,
            pod_labels: r.pod_labels,
            namespace_labels: r.namespace_labels,
        };
        if selector.is_empty() {
            return Err(invalid(
                format!("rules[{i}]"),
                "selects no pods: set namespaces, pod_labels or namespace_labels (or all_pods = true to select every pod)",
            ));
        }
        if selector.all_pods
            && (selector.namespaces.is_some()
                || !selector.pod_labels.is_empty()
                || !selector.namespace_labels.is_empty())
        {
            return Err(invalid(
                key("all_pods"),
                "cannot be combined with other selectors",
            ));
        }
        if selector.namespaces.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                key("namespaces"),
                "must list at least one namespace (or be left out)",
            ));
        }
        let compile = |field: &str, list: &[String]| {
            list.iter()
                .enumerate()
                .map(|(j, p)| {
                    compile_pattern(p, cloud).map_err(|e| {
                        invalid(format!("rules[{i}].{field}[{j}]"), format!("`{p}`: {e}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let max_token_ttl_seconds = r
            .max_token_ttl_seconds
            .map(|ttl| check_ttl(&key("max_token_ttl_seconds"), ttl))
            .transpose()?;
        rules.push(Rule {
            name: r.name.as_str().into(),
            allow: compile("allow", &r.allow)?,
            deny: compile("deny", &r.deny)?,
            selector,
            require_tokens: r.require_tokens,
            max_token_ttl_seconds,
        });
    }
    Ok(rules)
}

/// One rule pattern, for `cloud`'s server: query constraints only where it takes queries, keys it
/// takes, a first segment it serves; Azure's paths in lower case, as the guard reads them there.
fn compile_pattern(source: &str, cloud: Cloud) -> Result<PathPattern, String> {
    let (path, query) = crate::query::split(source);
    let path = if cloud.case_insensitive_paths() {
        path.to_ascii_lowercase()
    } else {
        path.to_owned()
    };
    let pattern = match query {
        None => PathPattern::parse(&path),
        Some(_) if !cloud.takes_queries() => {
            return Err(format!(
            "{cloud}'s metadata server takes no query strings, so a query constraint never matches"
        ))
        }
        Some(q) => PathPattern::parse_with_query(&format!("{path}?{q}")),
    }
    .map_err(|e| e.to_string())?;
    if let Some((key, _)) = pattern
        .query_constraints()
        .iter()
        .find(|(k, _)| !cloud.takes_key(k))
    {
        return Err(format!(
            "{cloud}'s metadata server takes no query key `{key}`"
        ));
    }
    let first = path
        .split('/')
        .find(|s| !s.is_empty())
        .filter(|s| !s.starts_with('*'));
    if !cloud.serves_root(first) {
        return Err(format!(
            "matches no path of {cloud}'s metadata server (set [upstream] cloud, or start the pattern where that server's paths start)"
        ));
    }
    Ok(pattern)
}

fn check_ttl(key: &str, ttl: u32) -> Result<u32, ConfigError> {
    if (1..=MAX_TOKEN_TTL_SECONDS).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(invalid(
            key,
            format!("must be from 1 to {MAX_TOKEN_TTL_SECONDS} seconds"),
        ))
    }
}

/// iptables interface names: up to 15 characters of `[A-Za-z0-9_.-]`, optionally ending in `+`.
pub(super) fn check_interface(name: &str) -> Result<(), &'static str> {
    let stem = name.strip_suffix('+').unwrap_or(name);
    if stem.is_empty() || name.len() > 15 {
        return Err("an interface name or prefix must have 1 to 15 characters");
    }
    if !stem
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("an interface name may hold letters, digits, `_`, `.`, `-` and a final `+`");
    }
    Ok(())
}
