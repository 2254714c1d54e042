//! The interception rule set as data, and the `iptables-restore` text that installs or removes it.
//!
//! Pure: it reads `iptables-save` output and writes `iptables-restore` input, so every decision is
//! tested without root, and `iptables/install.sh` can be checked line for line against it. Rules
//! are written exactly as `iptables-save` prints them (legacy and nf_tables print the same text), so
//! what is installed and what is found compare as strings.
//!
//! What is intercepted follows the cloud ([`Cloud`]): its IPv4 address on port 80 goes to the
//! proxy; its IPv6 endpoint, where it has one, goes to the proxy when that listens on `[::]` and
//! is rejected otherwise; the ports of the server the guard cannot inspect (GCP's HTTPS endpoint)
//! are rejected, so pods fail closed there instead of going around the guard, and so are the side
//! doors beside the server (Azure's WireServer on ports 80 and 32526; never its DNS on 53).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::cloud::Cloud;

pub use super::error::RuleError;
pub use super::lines::{Diff, Line};
use super::save::{parse_save, SavedTable};

/// Our one chain, in every table we use. Anything that jumps to it is ours too.
pub const CHAIN: &str = "IMDS-GUARD";
/// The AWS metadata service.
pub const IMDS_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The AWS metadata service's IPv6 endpoint (Nitro instances, opt-in).
pub const IMDS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
/// The metadata service's port.
pub const IMDS_PORT: u16 = 80;

/// How pods' IPv6 traffic to the service is refused: a prompt error, not a timeout.
const REJECT_V6: &str = "-j REJECT --reject-with icmp6-adm-prohibited";
/// How pods' connections to a port the guard cannot inspect are refused: a TCP reset, which the
/// client reads as "connection refused" (and so does not wait for a timeout, or retry as long).
const REJECT_TCP: &str = "-j REJECT --reject-with tcp-reset";

/// IPv4 (`iptables`) or IPv6 (`ip6tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The command family: `iptables` or `ip6tables`.
    pub fn command(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// What our chain holds in one table, and which built-in chain jumps to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRules {
    /// `nat` or `filter`.
    pub table: &'static str,
    /// The built-in chain that jumps to ours: once per pod interface pattern (node mode), or once
    /// for all traffic (sidecar mode).
    pub hook: &'static str,
    /// The rules of our chain, without the leading `-A IMDS-GUARD `.
    pub rules: Vec<String>,
}

/// The whole rule set: node mode (pod interfaces into the node's `PREROUTING`) or sidecar mode
/// (the pod's own `OUTPUT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// The cloud whose metadata server is intercepted.
    pub cloud: Cloud,
    /// Pod interface patterns, in config order, without repeats (node mode; empty for a sidecar).
    pub interfaces: Vec<String>,
    /// What each jump to our chain matches, as `iptables-save` prints it between the hook and
    /// `-j IMDS-GUARD`: `-i eni+` per pod interface, or nothing (sidecar: all local traffic).
    jump_matches: Vec<String>,
    v4: Vec<TableRules>,
    v6: Vec<TableRules>,
}

/// One rule's words, without the empty ones (an absent owner match, say).
fn words(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `-d ADDR/PREFIX -p tcp -m tcp --dport PORT`, as `iptables-save` prints it.
fn tcp_to(dst: IpAddr, port: u16) -> String {
    let prefix = if dst.is_ipv4() { 32 } else { 128 };
    format!("-d {dst}/{prefix} -p tcp -m tcp --dport {port}")
}

/// The `filter` rules that refuse pods' IPv6 metadata traffic that was not redirected: the
/// IPv4-mapped form of the cloud's address (every cloud), and its IPv6 endpoint (where it has
/// one). `others` is the sidecar's owner match, or empty.
fn v6_rejects(cloud: Cloud, others: &str) -> Vec<String> {
    let mapped = format!("-d {}/128", cloud.ipv4().to_ipv6_mapped());
    let mut rules = vec![words(&[&mapped, others, REJECT_V6])];
    if let Some(v6) = cloud.ipv6() {
        rules.push(words(&[&format!("-d {v6}/128"), others, REJECT_V6]));
    }
    rules
}

/// The `filter` table that rejects pods' connections to what they are refused outright
/// ([`Cloud::refused_for_pods`]: the ports of the server the guard cannot inspect, the side doors
/// beside it), jumped to from `hook`; `None` when the cloud has none.
fn refused(cloud: Cloud, hook: &'static str, others: &str) -> Option<TableRules> {
    let rules: Vec<String> = cloud
        .refused_for_pods()
        .into_iter()
        .map(|(addr, port)| words(&[&tcp_to(addr.into(), port), others, REJECT_TCP]))
        .collect();
    (!rules.is_empty()).then_some(TableRules {
        table: "filter",
        hook,
        rules,
    })
}

impl RuleSet {
    /// AWS's rules: [`RuleSet::for_cloud`] with [`Cloud::Aws`].
    pub fn new(listen: SocketAddr, interfaces: &[String]) -> Result<RuleSet, RuleError> {
        RuleSet::for_cloud(Cloud::Aws, listen, interfaces)
    }

    /// The rules that send pods' traffic to `cloud`'s metadata server to a proxy listening on
    /// `listen`, for packets arriving on the pod `interfaces`.
    ///
    /// IPv4: DNAT of `<cloud.ipv4()>:80` to `listen`, or REDIRECT to its port when it is
    /// unspecified (`0.0.0.0`, `[::]`); in `filter FORWARD`, REJECT (TCP reset) of the
    /// [`Cloud::refused_for_pods`] (uninspectable ports, side doors). IPv6: REDIRECT of `[<cloud.ipv6()>]:80` when the cloud has
    /// an IPv6 endpoint and the proxy listens on `[::]` (and so takes IPv6 too); in `filter
    /// FORWARD`, pods' IPv6 traffic to the endpoint that was not redirected, and to the
    /// IPv4-mapped form of the IPv4 address, is rejected.
    pub fn for_cloud(
        cloud: Cloud,
        listen: SocketAddr,
        interfaces: &[String],
    ) -> Result<RuleSet, RuleError> {
        let ip = listen.ip();
        if ip.is_loopback() || ip.to_canonical().is_loopback() {
            return Err(RuleError::LoopbackListen(listen));
        }
        if listen.port() == 0 {
            return Err(RuleError::PortZero(listen));
        }
        let mut unique: Vec<String> = Vec::with_capacity(interfaces.len());
        for iface in interfaces {
            if !unique.contains(iface) {
                unique.push(iface.clone());
            }
        }
        if unique.is_empty() {
            return Err(RuleError::NoInterfaces);
        }
        let port = listen.port();
        let redirect = format!("-j REDIRECT --to-ports {port}");
        let v4_target = match ip {
            IpAddr::V4(a) if a.is_unspecified() => redirect.clone(),
            IpAddr::V6(a) if a.is_unspecified() => redirect.clone(),
            IpAddr::V4(a) => format!("-j DNAT --to-destination {a}:{port}"),
            IpAddr::V6(_) => return Err(RuleError::Ipv6Listen(listen)),
        };
        let mut v4 = vec![TableRules {
            table: "nat",
            hook: "PREROUTING",
            rules: vec![words(&[
                &tcp_to(cloud.ipv4().into(), IMDS_PORT),
                &v4_target,
            ])],
        }];
        v4.extend(refused(cloud, "FORWARD", ""));
        let mut v6 = Vec::new();
        if let (Some(v6_addr), IpAddr::V6(a)) = (cloud.ipv6(), ip) {
            if a.is_unspecified() {
                v6.push(TableRules {
                    table: "nat",
                    hook: "PREROUTING",
                    rules: vec![words(&[&tcp_to(v6_addr.into(), IMDS_PORT), &redirect])],
                });
            }
        }
        v6.push(TableRules {
            table: "filter",
            hook: "FORWARD",
            rules: v6_rejects(cloud, ""),
        });
        Ok(RuleSet {
            cloud,
            jump_matches: unique.iter().map(|i| format!("-i {i}")).collect(),
            interfaces: unique,
            v4,
            v6,
        })
    }

    /// AWS's sidecar rules: [`RuleSet::sidecar_for_cloud`] with [`Cloud::Aws`].
    pub fn sidecar(listen: SocketAddr, uid: u32) -> Result<RuleSet, RuleError> {
        RuleSet::sidecar_for_cloud(Cloud::Aws, listen, uid)
    }

    /// Sidecar mode: the rules, inside one pod's network namespace, that send the pod's own
    /// traffic to `cloud`'s metadata server to the sidecar listening on `listen` (loopback), for
    /// every process except those running as `uid` (the sidecar, whose upstream requests must go
    /// out untouched).
    ///
    /// IPv4: `nat OUTPUT` DNAT (locally generated packets may be DNATed to loopback, unlike
    /// forwarded ones); `filter OUTPUT` rejects the [`Cloud::refused_for_pods`]. IPv6: the
    /// sidecar has no IPv6 listener, so `filter OUTPUT` rejects the IPv6 endpoint (where there is
    /// one) and the IPv4-mapped form instead. Each rule spares `uid`.
    pub fn sidecar_for_cloud(
        cloud: Cloud,
        listen: SocketAddr,
        uid: u32,
    ) -> Result<RuleSet, RuleError> {
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => ip,
            _ => return Err(RuleError::SidecarListen(listen)),
        };
        if listen.port() == 0 {
            return Err(RuleError::PortZero(listen));
        }
        if uid == 0 {
            return Err(RuleError::SidecarRoot);
        }
        let port = listen.port();
        let others = format!("-m owner ! --uid-owner {uid}");
        let dnat = format!("-j DNAT --to-destination {ip}:{port}");
        let mut v4 = vec![TableRules {
            table: "nat",
            hook: "OUTPUT",
            rules: vec![words(&[
                &tcp_to(cloud.ipv4().into(), IMDS_PORT),
                &others,
                &dnat,
            ])],
        }];
        v4.extend(refused(cloud, "OUTPUT", &others));
        let v6 = vec![TableRules {
            table: "filter",
            hook: "OUTPUT",
            rules: v6_rejects(cloud, &others),
        }];
        Ok(RuleSet {
            cloud,
            interfaces: Vec::new(),
            jump_matches: vec![String::new()],
            v4,
            v6,
        })
    }

    /// The addresses whose port-80 connections the rules send to the proxy (or, for IPv6 without
    /// an IPv6 listener, reject): the cloud's IPv4 address, and its IPv6 endpoint if any. Tracked
    /// connections to these that predate the rules still reach the service.
    pub fn intercepted(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => Some(self.cloud.ipv4().into()),
            Family::V6 => self.cloud.ipv6().map(IpAddr::V6),
        }
    }

    /// The tables this rule set uses in one family, `nat` first.
    pub fn tables(&self, family: Family) -> &[TableRules] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// The jumps of one table without the leading `-A ` (`PREROUTING -i eni+ -j IMDS-GUARD`).
    fn jump_specs(&self, wanted: &TableRules) -> Vec<String> {
        self.jump_matches
            .iter()
            .map(|m| match m.as_str() {
                "" => format!("{} -j {CHAIN}", wanted.hook),
                m => format!("{} {m} -j {CHAIN}", wanted.hook),
            })
            .collect()
    }

    /// The jump lines of one table, as `iptables-save` prints them.
    fn jumps(&self, wanted: &TableRules) -> Vec<String> {
        let specs = self.jump_specs(wanted);
        specs.into_iter().map(|s| format!("-A {s}")).collect()
    }

    /// Every rule of one family, as `iptables-save` prints it: the jumps, then our chain.
    pub fn expected(&self, family: Family) -> Vec<Line> {
        let mut lines = Vec::new();
        for wanted in self.tables(family) {
            let jumps = self.jumps(wanted);
            let own = wanted.rules.iter().map(|r| format!("-A {CHAIN} {r}"));
            for rule in jumps.into_iter().chain(own) {
                lines.push(Line::new(family, wanted.table, rule));
            }
        }
        lines
    }

    /// The `iptables-restore --noflush` input that turns `current` (the family's `iptables-save`
    /// output) into exactly this rule set.
    ///
    /// Our chain is declared and flushed, then refilled, in one transaction per table. Jumps that
    /// are missing are inserted at the top of the hook chain (before rules that might accept the
    /// packet first); jumps to our chain that are not wanted, or repeated, are deleted. Tables
    /// holding our chain that this rule set no longer uses are cleared as by [`remove_payload`].
    /// Nothing that neither is nor jumps to our chain is named.
    pub fn install_payload(&self, family: Family, current: &str) -> String {
        let tables = parse_save(current);
        let mut out = String::new();
        for wanted in self.tables(family) {
            let jumps = self.jumps(wanted);
            out.push_str(&format!(
                "*{}\n:{CHAIN} - [0:0]\n-F {CHAIN}\n",
                wanted.table
            ));
            for rule in &wanted.rules {
                out.push_str(&format!("-A {CHAIN} {rule}\n"));
            }
            let mut present = vec![false; jumps.len()];
            if let Some(table) = tables.iter().find(|t| t.name == wanted.table) {
                for jump in table.jumps() {
                    match jumps.iter().position(|j| j == jump) {
                        Some(i) if !present[i] => present[i] = true,
                        _ => out.push_str(&delete(jump)),
                    }
                }
            }
            for (i, spec) in self.jump_specs(wanted).iter().enumerate().rev() {
                if !present[i] {
                    out.push_str(&format!("-I {spec}\n"));
                }
            }
            out.push_str("COMMIT\n");
        }
        for table in &tables {
            let used = self.tables(family).iter().any(|w| w.table == table.name);
            if table.has_chain() && !used {
                out.push_str(&remove_section(table));
            }
        }
        out
    }

    /// What `current` (the family's `iptables-save` output) lacks, and what of ours it holds
    /// beyond this rule set.
    pub fn diff(&self, family: Family, current: &str) -> Diff {
        let mut missing = self.expected(family);
        let mut extra = Vec::new();
        for table in parse_save(current) {
            let ours: Vec<&str> = table.jumps().chain(table.own_rules()).collect();
            if table.has_chain() && ours.is_empty() {
                extra.push(Line::new(family, table.name, format!("-N {CHAIN}")));
            }
            for rule in ours {
                let found = missing
                    .iter()
                    .position(|l| l.table == table.name && l.rule == rule);
                match found {
                    Some(i) => {
                        missing.remove(i);
                    }
                    None => extra.push(Line::new(family, table.name, rule.to_owned())),
                }
            }
        }
        Diff { missing, extra }
    }
}

/// The `iptables-restore --noflush` input that deletes every jump to our chain and the chain
/// itself, in every table of `current` that has it. Empty when there is nothing of ours.
pub fn remove_payload(current: &str) -> String {
    parse_save(current)
        .iter()
        .filter(|t| t.has_chain())
        .map(remove_section)
        .collect()
}

/// Our rules in `current`, wherever they are (for a backend we are not using).
pub fn ours(family: Family, current: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for table in parse_save(current) {
        if table.has_chain() {
            lines.push(Line::new(family, table.name, format!("-N {CHAIN}")));
        }
        for rule in table.jumps().chain(table.own_rules()) {
            lines.push(Line::new(family, table.name, rule.to_owned()));
        }
    }
    lines
}

/// `-A X spec` becomes `-D X spec`.
fn delete(rule: &str) -> String {
    format!("-D {}\n", rule.strip_prefix("-A ").unwrap_or(rule))
}

fn remove_section(table: &SavedTable<'_>) -> String {
    let mut out = format!("*{}\n", table.name);
    for jump in table.jumps() {
        out.push_str(&delete(jump));
    }
    out.push_str(&format!("-F {CHAIN}\n-X {CHAIN}\nCOMMIT\n"));
    out
}

#[cfg(test)]
mod tests;
