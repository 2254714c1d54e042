//! Config checks: good files load, bad ones are refused naming the key.

use super::*;

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const RULE: &str = r#"
[[rules]]
name = "seed"
pod_labels = { "allow-node-metadata-lookup" = "true" }
allow = ["/latest/**"]
"#;

#[test]
fn empty_file_gives_defaults_and_denies_everyone() {
    let config = parse("").unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:8181".parse().unwrap());
    assert_eq!(config.server.mode, Mode::Enforce);
    assert_eq!(config.upstream.url, "http://169.254.169.254");
    assert!(!config.upstream.emulator);
    assert_eq!(config.inventory.source, Source::Static);
    assert_eq!(
        config.inventory.unknown_source_grace,
        Duration::from_secs(1)
    );
    assert!(config.policy.rules().is_empty());
    assert_eq!(config.imdsv2.max_token_ttl_seconds, 21600);
    assert_eq!(
        config.netfilter.interfaces,
        ["eni+", "cali+", "cni0", "weave", "lxc+", "azv+"]
    );
}

#[test]
fn the_shipped_config_toml_is_valid() {
    let text = include_str!("../../config.toml");
    let config = parse(text).unwrap();
    assert!(config.upstream.emulator);
    assert!(!config.inventory.pods.is_empty());
    assert!(!config.policy.rules().is_empty());
}

#[test]
fn full_contract_parses() {
    let config = parse(
        r#"
[server]
listen = "0.0.0.0:8181"
admin_listen = "127.0.0.1:9000"
mode = "audit"
shutdown_grace_seconds = 3

[upstream]
url = "http://127.0.0.1:1338"
emulator = true
connect_timeout_ms = 200
timeout_ms = 900

[inventory]
source = "static"

[[inventory.pods]]
ip = "127.0.0.2"
namespace = "imds"
name = "prod-5c7b9"
labels = { app = "prod" }

[[inventory.pods]]
ip = "fd00::2"
namespace = "imds"
name = "v6"
uid = "1234"
namespace_labels = { team = "infra" }

[imdsv2]
require_tokens = true
max_token_ttl_seconds = 600

[[rules]]
name = "prod"
namespaces = ["imds"]
pod_labels = { app = "prod" }
namespace_labels = { team = "infra" }
allow = ["/latest/meta-data/**"]
deny = ["/latest/meta-data/iam/**"]
max_token_ttl_seconds = 60

[netfilter]
manage = false
interfaces = ["cali+"]
"#,
    )
    .unwrap();
    assert_eq!(config.server.mode, Mode::Audit);
    assert_eq!(
        config.upstream.socket_addr(),
        Some("127.0.0.1:1338".parse().unwrap())
    );
    assert_eq!(config.upstream.timeout, Duration::from_millis(900));
    assert_eq!(config.inventory.pods.len(), 2);
    assert_eq!(config.inventory.pods[0].0.uid, "static:imds/prod-5c7b9");
    assert_eq!(config.inventory.pods[1].0.uid, "1234");
    assert!(config.imdsv2.require_tokens);
    let rule = &config.policy.rules()[0];
    assert_eq!(&*rule.name, "prod");
    assert_eq!(rule.max_token_ttl_seconds, Some(60));
    assert_eq!(rule.deny[0].as_str(), "/latest/meta-data/iam/**");
}

#[test]
fn refusals_name_the_key_and_reason() {
    let cases: &[(&str, &str)] = &[
        ("[server]\nlsiten = \"127.0.0.1:1\"", "server.lsiten: unknown field `lsiten`, expected one of `listen`"),
        ("[server]\nlisten = \"localhost\"", "server.listen: `localhost` is not an address with a port"),
        ("[server]\nlisten = 8181", "server.listen: invalid type"),
        ("[server]\nmode = \"enforcing\"", "server.mode: unknown variant `enforcing`"),
        ("[server]\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:1\"", "server.admin_listen: must differ"),
        ("[upstream]\nurl = \"https://169.254.169.254\"", "upstream.url: must start with http://"),
        ("[upstream]\nurl = \"http://169.254.169.254/latest\"", "upstream.url: must be http://host[:port]"),
        ("[upstream]\nurl = \"http://user@169.254.169.254\"", "upstream.url: must not carry user information"),
        ("[upstream]\nurl = \"http://imds.local\"\nemulator = true", "upstream.url: with emulator = true"),
        ("[upstream]\ntimeout_ms = 0", "upstream.timeout_ms: must be greater than 0"),
        ("[server]\nworkers = 65", "server.workers: must be from 0 (one per CPU) to 64"),
        ("[upstream]\nmax_connections = 0", "upstream.max_connections: must be from 1 to 4096"),
        ("[upstream]\nmax_connections = 5000", "upstream.max_connections: must be from 1 to 4096"),
        ("[upstream]\nemulator = \"yes\"", "upstream.emulator: invalid type"),
        ("[inventory]\nsource = \"etcd\"", "inventory.source: unknown variant `etcd`"),
        ("[inventory]\nnode_name = \"\"", "inventory.node_name: must not be empty"),
        ("[[inventory.pods]]\nip = \"127.0.0.300\"\nnamespace = \"a\"\nname = \"b\"", "inventory.pods[0].ip: invalid IP address"),
        ("[[inventory.pods]]\nip = \"127.0.0.2\"\nnamespace = \"\"\nname = \"b\"", "inventory.pods[0].namespace: must not be empty"),
        ("[[inventory.pods]]\nip = \"127.0.0.2\"\nnamespace = \"a\"", "inventory.pods[0]: missing field `name`"),
        (
            "[[inventory.pods]]\nip = \"127.0.0.2\"\nnamespace = \"a\"\nname = \"b\"\n[[inventory.pods]]\nip = \"127.0.0.2\"\nnamespace = \"a\"\nname = \"c\"",
            "inventory.pods[1].ip: 127.0.0.2 is already given to a/b",
        ),
        ("[inventory]\nsource = \"kubernetes\"\n[[inventory.pods]]\nip = \"127.0.0.2\"\nnamespace = \"a\"\nname = \"b\"", "inventory.pods: only used with source"),
        ("[imdsv2]\nmax_token_ttl_seconds = 0", "imdsv2.max_token_ttl_seconds: must be from 1 to 21600"),
        ("[imdsv2]\nmax_token_ttl_seconds = 21601", "imdsv2.max_token_ttl_seconds: must be from 1 to 21600"),
        ("[[rules]]\nname = \"a\"\nall_pods = true\nallow = [\"latest/**\"]", "rules[0].allow[0]: `latest/**`: a pattern must start with `/`"),
        ("[[rules]]\nname = \"a\"\nall_pods = true\ndeny = [\"/latest/x\", \"/a/../b\"]", "rules[0].deny[1]: `/a/../b`: not a valid path: dot segment"),
        ("[[rules]]\nname = \"a\"\nall_pods = true\nallow = [\"/latest/ami-*\"]", "rules[0].allow[0]: `/latest/ami-*`: `*` and `**` must stand alone"),
        ("[[rules]]\nname = \"a\"\nallow = [\"/latest/**\"]", "rules[0]: selects no pods"),
        ("[[rules]]\nname = \"a\"\nall_pods = true\nnamespaces = [\"x\"]", "rules[0].all_pods: cannot be combined"),
        ("[[rules]]\nname = \"a\"\nnamespaces = []", "rules[0].namespaces: must list at least one"),
        ("[[rules]]\nname = \"\"\nall_pods = true", "rules[0].name: must not be empty"),
        ("[[rules]]\nname = \"a\"\nall_pods = true\n[[rules]]\nname = \"a\"\nall_pods = true", "rules[1].name: `a` is already the name of rules[0]"),
        ("[[rules]]\nname = \"a\"\nall_pods = true\nalow = []", "rules[0].alow: unknown field `alow`"),
        ("[[rules]]\nname = \"a\"\nall_pods = true\nallow = \"/latest/**\"", "rules[0].allow: invalid type"),
        ("[[rules]]\nname = \"a\"\nall_pods = true\nmax_token_ttl_seconds = 99999", "rules[0].max_token_ttl_seconds: must be from 1"),
        ("[netfilter]\ninterfaces = [\"cali+\", \"bad name\"]", "netfilter.interfaces[1]: an interface name may hold"),
        ("[server]\nheader_read_timeout_ms = 0", "server.header_read_timeout_ms: must be from 1 to 300000"),
        ("[server]\nmax_connections = 0", "server.max_connections: must be at least 1"),
        ("[server]\nmax_connections = 10\nmax_connections_per_source = 11", "server.max_connections_per_source: must be from 1 to"),
        ("[netfilter]\ncheck_interval_seconds = 0", "netfilter.check_interval_seconds: must be from 1 to 3600"),
        ("[netfilter]\ninterfaces = [\"+\"]", "netfilter.interfaces[0]: an interface name or prefix must have"),
        ("[netfilter]\ninterfaces = [\"cali+\", \"cali+\"]", "netfilter.interfaces[1]: `cali+` is listed twice"),
        ("[netfilter]\nbackend = \"iptables\"", "netfilter.backend: unknown variant `iptables`"),
        ("[netfilter]\nmanage = true", "server.listen: 127.0.0.1:8181 is a loopback address: pod traffic DNATed from PREROUTING to loopback is dropped"),
        ("[server]\nlisten = \"[fd00::1]:8181\"\n[netfilter]\nmanage = true", "server.listen: [fd00::1]:8181 is an IPv6 address"),
        ("[server]\nlisten = \"0.0.0.0:8181\"\n[netfilter]\nmanage = true\ninterfaces = []", "netfilter.interfaces: is empty"),
        ("[imdsv2]\nhop_limit = 0", "imdsv2.hop_limit: must be from 1 to 64"),
        ("[imdsv2]\nhop_limit = 65", "imdsv2.hop_limit: must be from 1 to 64"),
        ("[imdsv2]\nhop_limit = -1", "imdsv2.hop_limit: must be from 1 to 64"),
        ("[imdsv2]\nhop_limit = \"1\"", "imdsv2.hop_limit: invalid type"),
        ("[sever]\nlisten = \"127.0.0.1:1\"", "unknown field `sever`"),
        ("[server\nlisten = 1", "line 1:"),
    ];
    let mismatches: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = err(text);
            (!got.contains(want)).then(|| format!("config:\n{text}\nwant: {want}\ngot:  {got}\n"))
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn errors_point_at_the_line() {
    let got = err("[server]\nlisten = \"127.0.0.1:8181\"\nmode = \"nope\"\n");
    assert!(got.contains("(line 3)"), "{got}");
}

#[test]
fn load_names_a_missing_file() {
    let got = load(Path::new("/nonexistent/imds-guard.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        got.starts_with("cannot read /nonexistent/imds-guard.toml"),
        "{got}"
    );
}

#[test]
fn a_rule_can_select_by_namespace_only() {
    let config = parse(&format!("{RULE}\n[[rules]]\nname = \"ns\"\nnamespaces = [\"kube-system\"]\nallow = [\"/latest/meta-data/placement/**\"]\n")).unwrap();
    assert_eq!(config.policy.rules().len(), 2);
}

#[test]
fn netfilter_and_hop_limit_keys() {
    let config = parse("").unwrap();
    assert_eq!(config.token_hop_limit, None);
    assert_eq!(config.netfilter.backend, super::Backend::Auto);
    // Loopback is fine while the rules are not managed (local runs, tests).
    assert!(!config.netfilter.manage);
    let config = parse(
        "[server]\nlisten = \"0.0.0.0:8181\"\n[imdsv2]\nhop_limit = 2\n\
         [netfilter]\nmanage = true\nbackend = \"legacy\"\n",
    )
    .unwrap();
    assert_eq!(config.token_hop_limit, Some(2));
    assert!(config.netfilter.manage);
    assert_eq!(config.netfilter.backend, super::Backend::Legacy);
}

#[test]
fn environment_variables_expand_in_addresses() {
    let env = |name: &str| match name {
        "HOST_IP" => Some("10.0.3.7".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    assert_eq!(expand_env("${HOST_IP}:8181", env).unwrap(), "10.0.3.7:8181");
    assert_eq!(
        expand_env("[${HOST_IP}]:${HOST_IP}", env).unwrap(),
        "[10.0.3.7]:10.0.3.7"
    );
    assert_eq!(expand_env("127.0.0.1:8181", env).unwrap(), "127.0.0.1:8181");
    assert_eq!(
        expand_env("${NOPE}:1", env).unwrap_err(),
        "environment variable NOPE is not set"
    );
    assert_eq!(
        expand_env("${EMPTY}:1", env).unwrap_err(),
        "environment variable EMPTY is not set"
    );
    assert!(expand_env("${HOST_IP:1", env)
        .unwrap_err()
        .contains("unclosed"));
    assert!(expand_env("${A-B}:1", env)
        .unwrap_err()
        .contains("not a variable name"));
    // Through the config: an unset variable names the key.
    let got = err("[server]\nlisten = \"${IMDS_GUARD_TEST_SURELY_UNSET}:8181\"\n");
    assert!(
        got.contains("server.listen: environment variable IMDS_GUARD_TEST_SURELY_UNSET is not set"),
        "{got}"
    );
}

#[test]
fn workers_as_set_or_one_per_cpu_up_to_the_cap() {
    let set = parse("[server]\nworkers = 3").unwrap();
    assert_eq!(set.server.worker_threads(), 3);
    let auto = parse("").unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(auto.server.worker_threads(), cpus.min(AUTO_WORKERS_MAX));
}

#[test]
fn the_front_defaults_guard_tokens_a_cache_and_limits() {
    let config = parse("").unwrap();
    assert_eq!(config.tokens, TokenIssuer::Guard);
    assert_eq!(config.token_key_file, None);
    let cache = config.cache.expect("on with guard tokens");
    assert_eq!(cache.max_age, Duration::from_secs(300));
    assert_eq!(cache.credentials_refresh, Duration::from_secs(300));
    assert_eq!(cache.max_entries, 1024);
    assert_eq!(config.limits, Limits::default());
    assert_eq!(
        (
            config.limits.pod_requests_per_second,
            config.limits.pod_burst,
            config.limits.upstream_requests_per_second
        ),
        (20.0, 100, 100.0)
    );
    let passthrough = parse("[imdsv2]\ntokens = \"passthrough\"\n").unwrap();
    assert!(passthrough.cache.is_none(), "off with passthrough tokens");
    let off = parse("[cache]\nenabled = false\n").unwrap();
    assert!(off.cache.is_none());
    let full = parse(
        "[imdsv2]\ntoken_key_file = \"/etc/imds-guard/token.key\"\n\
         [cache]\nmax_age_seconds = 60\ncredentials_refresh_seconds = 1\nmax_entries = 10\n\
         add_paths = [\"/latest/meta-data/iam/info\"]\nremove_paths = [\"/latest/meta-data/mac\"]\n\
         [limits]\npod_requests_per_second = 0\npod_burst = 1\nupstream_requests_per_second = 5.5\n",
    )
    .unwrap();
    assert_eq!(
        full.token_key_file.as_deref(),
        Some(Path::new("/etc/imds-guard/token.key"))
    );
    let cache = full.cache.unwrap();
    let class = |p: &str| cache.paths.class(&crate::target::parse_target(p).unwrap());
    assert_eq!(
        class("/latest/meta-data/iam/info"),
        crate::cacheable::CacheClass::Stable
    );
    assert_eq!(
        class("/latest/meta-data/mac"),
        crate::cacheable::CacheClass::Never
    );
    assert_eq!(full.limits.upstream_requests_per_second, 5.5);
}

#[test]
fn front_keys_are_checked_by_name() {
    for (text, want) in [
        (
            "[imdsv2]\ntokens = \"passthrough\"\n[cache]\nenabled = true\n",
            "cache.enabled: the cache needs [imdsv2] tokens = \"guard\"",
        ),
        (
            "[imdsv2]\ntokens = \"passthrough\"\ntoken_key_file = \"/k\"\n",
            "imdsv2.token_key_file: only guard tokens are sealed",
        ),
        ("[imdsv2]\ntokens = \"aws\"\n", "imdsv2.tokens"),
        (
            "[imdsv2]\ntoken_key_file = \"\"\n",
            "imdsv2.token_key_file: must not be empty",
        ),
        (
            "[cache]\nmax_age_seconds = 0\n",
            "cache.max_age_seconds: must be from 1",
        ),
        (
            "[cache]\ncredentials_refresh_seconds = 3601\n",
            "cache.credentials_refresh_seconds",
        ),
        (
            "[cache]\ncredentials_refresh_seconds = 0\n",
            "cache.credentials_refresh_seconds: must be from 1",
        ),
        (
            "[limits]\npod_requests_per_second = 1e-20\n",
            "limits.pod_requests_per_second: must be 0 (no limit) or from 0.001",
        ),
        ("[cache]\nmax_entries = 0\n", "cache.max_entries"),
        (
            "[cache]\nadd_paths = [\"relative\"]\n",
            "cache.add_paths[0]: a pattern must start with `/`",
        ),
        (
            "[cache]\nremove_paths = [\"/a/b*\"]\n",
            "cache.remove_paths[0]",
        ),
        ("[cache]\nttl = 5\n", "unknown field `ttl`"),
        (
            "[limits]\npod_requests_per_second = -1\n",
            "limits.pod_requests_per_second",
        ),
        (
            "[limits]\nupstream_requests_per_second = nan\n",
            "limits.upstream_requests_per_second",
        ),
        (
            "[limits]\npod_burst = 0\n",
            "limits.pod_burst: must be from 1",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn the_cloud_chooses_defaults_and_what_patterns_may_say() {
    let config = |extra: &str| parse(&format!("[upstream]\n{extra}"));
    let aws = config("").unwrap();
    assert_eq!(aws.upstream.cloud, Cloud::Aws);
    assert_eq!(aws.upstream.url, "http://169.254.169.254");
    assert_eq!(aws.tokens, TokenIssuer::Guard);

    let alibaba = config("cloud = \"alibaba\"").unwrap();
    assert_eq!(alibaba.upstream.url, "http://100.100.100.200");
    assert_eq!(alibaba.tokens, TokenIssuer::Passthrough);
    assert!(alibaba.cache.is_none());

    let azure = config("cloud = \"azure\"").unwrap();
    assert_eq!(azure.limits.upstream_requests_per_second, 5.0);
    let set =
        parse("[upstream]\ncloud = \"azure\"\n[limits]\nupstream_requests_per_second = 3").unwrap();
    assert_eq!(set.limits.upstream_requests_per_second, 3.0);

    let err = config("cloud = \"gce\"").unwrap_err().to_string();
    assert!(err.contains("unknown cloud \"gce\""), "{err}");
    let err = parse("[upstream]\ncloud = \"gcp\"\n[imdsv2]\ntokens = \"guard\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("imdsv2.tokens"), "{err}");

    let rule = |cloud: &str, pattern: &str| {
        parse(&format!(
            "[upstream]\ncloud = \"{cloud}\"\n[[rules]]\nname = \"r\"\nall_pods = true\nallow = [\"{pattern}\"]"
        ))
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert_eq!(rule("gcp", "/computeMetadata/v1/**"), Ok(()));
    assert_eq!(rule("gcp", "/"), Ok(()));
    assert_eq!(rule("gcp", "/**"), Ok(()));
    assert_eq!(
        rule(
            "gcp",
            "/computeMetadata/v1/instance/service-accounts/*/identity?audience=https://x"
        ),
        Ok(())
    );
    for (cloud, pattern, why) in [
        ("gcp", "/latest/meta-data/**", "matches no path of gcp"),
        ("aws", "/computeMetadata/v1/**", "matches no path of aws"),
        ("aws", "/latest/meta-data/?x=1", "takes no query strings"),
        (
            "azure",
            "/metadata/instance?recursive=true",
            "no query key `recursive`",
        ),
        ("oci", "/latest/meta-data/", "matches no path of oci"),
    ] {
        let err = rule(cloud, pattern).unwrap_err();
        assert!(
            err.contains("rules[0].allow[0]") && err.contains(why),
            "{cloud} {pattern}: {err}"
        );
    }
    // Azure's paths are compared in lower case, as the guard reads them there.
    let azure = parse("[upstream]\ncloud = \"azure\"\n[[rules]]\nname = \"r\"\nall_pods = true\nallow = [\"/Metadata/Instance/compute/vmId\"]").unwrap();
    let path = crate::target::parse_target("/metadata/instance/compute/vmid").unwrap();
    assert!(azure.policy.rules()[0].allow[0].matches(&path, false));
}

#[test]
fn audit_labels_and_static_owners() {
    let config = parse("").unwrap();
    assert_eq!(
        &*config.audit.workload_labels,
        ["app.kubernetes.io/name", "app"]
    );
    let config = parse(
        "[audit]\nworkload_labels = [\"team\"]\n\n[[inventory.pods]]\nip = \"127.0.0.2\"\nnamespace = \"a\"\nname = \"b\"\nowner = { kind = \"Deployment\", name = \"web\" }\n",
    )
    .unwrap();
    assert_eq!(&*config.audit.workload_labels, ["team"]);
    assert_eq!(
        config.inventory.pods[0].0.owner,
        Some(Owner {
            kind: "Deployment".into(),
            name: "web".into()
        })
    );
    let pod = "[[inventory.pods]]\nip = \"127.0.0.2\"\nnamespace = \"a\"\nname = \"b\"\n";
    for (owner, want) in [
        (
            "{ kind = \"\", name = \"web\" }",
            "inventory.pods[0].owner.kind: must not be empty",
        ),
        (
            "{ kind = \"Job\", name = \"\" }",
            "inventory.pods[0].owner.name: must not be empty",
        ),
        (
            "{ kind = \"Job\" }",
            "inventory.pods[0].owner: missing field `name`",
        ),
        (
            "{ kind = \"Job\", name = \"j\", uid = \"u\" }",
            "inventory.pods[0].owner.uid: unknown field",
        ),
    ] {
        let e = err(&format!("{pod}owner = {owner}\n"));
        assert!(e.starts_with(want), "{owner}: {e}");
    }
    let e = err("[audit]\nworkload_labels = [\"app\", \"bad key\"]\n");
    assert!(
        e.starts_with("audit.workload_labels[1]: `bad key`: not a label key"),
        "{e}"
    );
    let e = err("[audit]\nlabels = []\n");
    assert!(e.starts_with("audit.labels: unknown field"), "{e}");
}
