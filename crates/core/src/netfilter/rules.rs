//! The interception rule set as data, and the `iptables-restore` text that installs or removes it.
//!
//! Pure: it reads `iptables-save` output and writes `iptables-restore` input, so every decision is
//! tested without root, and `iptables/install.sh` can be checked line for line against it. Rules
//! are written exactly as `iptables-save` prints them (legacy and nf_tables print the same text), so
//! what is installed and what is found compare as strings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

/// Why no rule set can be made for a listen address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "{0} is a loopback address: pod traffic DNATed from PREROUTING to loopback is dropped by \
         the kernel (unless route_localnet is set); listen on the node's address or on 0.0.0.0"
    )]
    LoopbackListen(SocketAddr),
    #[error(
        "{0} is an IPv6 address: pods' IPv4 traffic cannot be DNATed to it; listen on the node's \
         IPv4 address, on 0.0.0.0 or on [::]"
    )]
    Ipv6Listen(SocketAddr),
    #[error("{0} has port 0: the rules need the port the proxy listens on")]
    PortZero(SocketAddr),
    #[error("is empty: no pod traffic would be intercepted")]
    NoInterfaces,
    #[error(
        "{0}: in sidecar mode the proxy must listen on an IPv4 loopback address (127.0.0.1:PORT): \
         the rules DNAT the pod's own IPv4 traffic there, and every connection the proxy accepts \
         is taken to come from this pod"
    )]
    SidecarListen(SocketAddr),
    #[error(
        "the sidecar's UID is 0: every process running as the sidecar's UID bypasses the rules, \
         so the sidecar needs a UID of its own that no other container of the pod uses (not root)"
    )]
    SidecarRoot,
}

impl RuleError {
    /// The config key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            RuleError::NoInterfaces => "netfilter.interfaces",
            RuleError::SidecarRoot => "netfilter.sidecar_uid",
            _ => "server.listen",
        }
    }
}

/// The whole rule set: node mode (pod interfaces into the node's `PREROUTING`) or sidecar mode
/// (the pod's own `OUTPUT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// Pod interface patterns, in config order, without repeats (node mode; empty for a sidecar).
    pub interfaces: Vec<String>,
    /// What each jump to our chain matches, as `iptables-save` prints it between the hook and
    /// `-j IMDS-GUARD`: `-i eni+` per pod interface, or nothing (sidecar: all local traffic).
    jump_matches: Vec<String>,
    v4: Vec<TableRules>,
    v6: Vec<TableRules>,
}

impl RuleSet {
    /// The rules that send pods' metadata traffic to a proxy listening on `listen`.
    ///
    /// IPv4: DNAT to `listen`, or REDIRECT to its port when it is unspecified (`0.0.0.0`, `[::]`).
    /// IPv6: REDIRECT of `[fd00:ec2::254]:80` when the proxy listens on `[::]` (and so takes IPv6
    /// too); in `filter`, pods' IPv6 traffic to the metadata service that was not redirected, and
    /// to its IPv4-mapped form `::ffff:169.254.169.254`, is rejected.
    pub fn new(listen: SocketAddr, interfaces: &[String]) -> Result<RuleSet, RuleError> {
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
        let match_tcp = |dst: IpAddr, prefix: u8| {
            format!("-d {dst}/{prefix} -p tcp -m tcp --dport {IMDS_PORT}")
        };
        let v4_target = match ip {
            IpAddr::V4(a) if a.is_unspecified() => redirect.clone(),
            IpAddr::V6(a) if a.is_unspecified() => redirect.clone(),
            IpAddr::V4(a) => format!("-j DNAT --to-destination {a}:{port}"),
            IpAddr::V6(_) => return Err(RuleError::Ipv6Listen(listen)),
        };
        let v4 = vec![TableRules {
            table: "nat",
            hook: "PREROUTING",
            rules: vec![format!("{} {v4_target}", match_tcp(IMDS_V4.into(), 32))],
        }];
        let mut v6 = Vec::new();
        if matches!(ip, IpAddr::V6(a) if a.is_unspecified()) {
            v6.push(TableRules {
                table: "nat",
                hook: "PREROUTING",
                rules: vec![format!("{} {redirect}", match_tcp(IMDS_V6.into(), 128))],
            });
        }
        let reject = "-j REJECT --reject-with icmp6-adm-prohibited";
        v6.push(TableRules {
            table: "filter",
            hook: "FORWARD",
            rules: vec![
                format!("-d {}/128 {reject}", IMDS_V4.to_ipv6_mapped()),
                format!("-d {IMDS_V6}/128 {reject}"),
            ],
        });
        Ok(RuleSet {
            jump_matches: unique.iter().map(|i| format!("-i {i}")).collect(),
            interfaces: unique,
            v4,
            v6,
        })
    }

    /// Sidecar mode: the rules, inside one pod's network namespace, that send the pod's own
    /// metadata traffic to the sidecar listening on `listen` (loopback), for every process except
    /// those running as `uid` (the sidecar, whose upstream requests must go out untouched).
    ///
    /// IPv4: `nat OUTPUT` DNAT (locally generated packets may be DNATed to loopback, unlike
    /// forwarded ones). IPv6: the sidecar has no IPv6 listener, so `filter OUTPUT` rejects the
    /// IPv6 endpoint and the IPv4-mapped form instead, for everyone but `uid`.
    pub fn sidecar(listen: SocketAddr, uid: u32) -> Result<RuleSet, RuleError> {
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
        let v4 = vec![TableRules {
            table: "nat",
            hook: "OUTPUT",
            rules: vec![format!(
                "-d {IMDS_V4}/32 -p tcp -m tcp --dport {IMDS_PORT} {others} -j DNAT --to-destination {ip}:{port}"
            )],
        }];
        let reject = "-j REJECT --reject-with icmp6-adm-prohibited";
        let v6 = vec![TableRules {
            table: "filter",
            hook: "OUTPUT",
            rules: vec![
                format!("-d {}/128 {others} {reject}", IMDS_V4.to_ipv6_mapped()),
                format!("-d {IMDS_V6}/128 {others} {reject}"),
            ],
        }];
        Ok(RuleSet {
            interfaces: Vec::new(),
            jump_matches: vec![String::new()],
            v4,
            v6,
        })
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
#[path = "rules_tests.rs"]
mod tests;
