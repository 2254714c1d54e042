//! The Helm chart in `deploy/helm/imds-guard`, checked as a cluster would see it and against the
//! kustomize base it must never drift from.
//!
//! `helm lint --strict` passes with the default values, with `tests/helm/custom.yaml` (every value
//! changed) and for every cloud. `helm template` renders validate strictly against the Kubernetes
//! schemas (as `deploy.rs` validates the kustomize renders; the real API server's dry run of both
//! is in `controlplane_rbac.rs`). The default render is `kubectl kustomize deploy/` with the
//! canary component (on by default in the chart; `canary.enabled=false` is the base alone) object
//! for object and field for field — but the Namespace, which the chart renders only with
//! `namespace.create` — and so are the startup-taint, networkpolicy and `interception.method=cgroup`
//! values against those components, each cloud against its cloud component (with and without the
//! cgroup interception), monitoring against the monitoring component, and the sidecar example
//! against `deploy/sidecar/example`. The configs the chart renders pass the real binary's `check`, and
//! their policy decides as its values say (`imds-guard explain`). Every value is commented in
//! `values.yaml` and named in docs/deploy.md's Helm table.
//!
//! `helm` must have been built by `tests/support/helm/build.sh` (tests/run.sh does it); `kubectl`,
//! `kubernetes-validate` and `python3` with PyYAML as for `deploy.rs`. Missing, they fail the
//! tests, saying what to do; they never skip.

use crate::{chart, checks};
#[allow(dead_code)]
#[path = "helm/compare.rs"]
mod compare;
use crate::render;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use chart::{
    chart_dir, default_render, lint, template, template_fails, template_of, values_file, NAMESPACE,
};
use compare::{assert_same_objects, without_kind};
use render::{
    base, canary, cloud_components, config, config_text, guard, guard_daemonset, of_kind, one,
    overlay, strings, Rendered,
};

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

/// `helm template --set` of each item.
fn with(sets: &[&str]) -> Rendered {
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", *s]).collect();
    template(&args)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs the real binary on `config` (written to a file) as the DaemonSet would.
fn imds_guard(args: &[&str], config: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config).expect("write config");
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&file)
        .env("HOST_IP", "10.0.0.1")
        .env("NODE_NAME", "n")
        .output()
        .expect("run imds-guard")
}

fn assert_check_passes(config: &str, what: &str) {
    let out = imds_guard(&["check"], config);
    assert!(
        out.status.success(),
        "imds-guard check refused {what}'s config.toml:\n{}\n{config}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The render's objects and the kustomize render's, but its Namespace (which the chart renders
/// only with `namespace.create`).
fn assert_same_but_namespace(chart: &Rendered, kustomize: &Rendered, what: &str) {
    assert_eq!(
        of_kind(chart, "Namespace").count(),
        0,
        "{what}: the chart rendered a Namespace without namespace.create"
    );
    assert_eq!(of_kind(kustomize, "Namespace").count(), 1, "{what}");
    assert_same_essentials(chart, kustomize, what);
    assert_same_objects(&chart.objects, &without_kind(kustomize, "Namespace"), what);
}

/// What matters most, compared one by one for a clear message before the whole objects are: the
/// RBAC rules, the guard container's args, env, ports and security context, and the config (as
/// TOML, then as text).
fn assert_same_essentials(chart: &Rendered, kustomize: &Rendered, what: &str) {
    assert_eq!(
        one(chart, "ClusterRole")["rules"],
        one(kustomize, "ClusterRole")["rules"],
        "{what}: RBAC rules"
    );
    let (_, ours) = guard(chart);
    let (_, theirs) = guard(kustomize);
    assert_eq!(
        of_kind(chart, "DaemonSet").count(),
        of_kind(kustomize, "DaemonSet").count(),
        "{what}: the DaemonSets (the guard, and the canary or not)"
    );
    for field in ["args", "env", "ports", "securityContext", "image"] {
        assert_eq!(
            ours[field], theirs[field],
            "{what}: the container's {field}"
        );
    }
    assert_eq!(config(chart), config(kustomize), "{what}: config.toml");
    assert_eq!(
        config_text(chart),
        config_text(kustomize),
        "{what}: config.toml's text"
    );
    for r in [chart, kustomize] {
        checks::check_rbac_common(r);
    }
}

/// Every object carries the chart's labels; every workload's selector matches its pods.
fn assert_labelled(r: &Rendered) {
    for o in &r.objects {
        let labels = &o["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "imds-guard", "{o}");
        for name in chart::HELM_LABELS {
            assert!(labels[name].is_string(), "{name} missing: {o}");
        }
        let workload = o["spec"]["template"].is_object();
        if let Some(selector) = o["spec"]["selector"]["matchLabels"]
            .as_object()
            .filter(|_| workload)
        {
            let pod = &o["spec"]["template"]["metadata"]["labels"];
            for (k, v) in selector {
                assert_eq!(&pod[k], v, "the selector does not match the pods: {o}");
            }
        }
    }
}

#[test]
fn chart_lints_strictly_with_default_and_custom_values_and_every_cloud() {
    let dir = chart_dir();
    lint(&dir, &[]);
    lint(&dir, &["-f", &values_file("custom.yaml")]);
    for cloud in imds_guard::cloud::ALL.map(|c| c.as_str()) {
        let set = format!("cloud={cloud}");
        lint(
            &dir,
            &["--set", &set, "--set", "networkPolicy.enabled=true"],
        );
    }
}

/// The kustomize base with the canary component, which the chart renders by default.
fn base_and_canary() -> &'static Rendered {
    static R: std::sync::OnceLock<Rendered> = std::sync::OnceLock::new();
    R.get_or_init(|| overlay(&["canary"]))
}

#[test]
fn default_render_is_the_kustomize_base_and_canary_but_the_namespace() {
    let chart = default_render();
    assert_labelled(chart);
    assert_same_but_namespace(chart, base_and_canary(), "default values");
    assert_check_passes(&config_text(chart), "the default render");
    checks::check_canary(chart);

    // With namespace.create, the Namespace too: the whole base (and canary).
    let with_namespace = with(&["namespace.create=true"]);
    assert_same_essentials(&with_namespace, base_and_canary(), "namespace.create");
    assert_same_objects(
        &with_namespace.objects,
        &base_and_canary().objects,
        "namespace.create",
    );
    checks::check_daemonset(&with_namespace);
    checks::check_canary(&with_namespace);

    // Without the canary, the base itself.
    let no_canary = with(&["canary.enabled=false", "namespace.create=true"]);
    assert_same_objects(&no_canary.objects, &base().objects, "canary.enabled=false");
}

/// The canary's values: its interval, its resources; and the chart refuses NetworkPolicies in
/// the canary's own namespace (they would keep it from the metadata address).
#[test]
fn canary_values_take_effect() {
    let r = with(&[
        "canary.intervalSeconds=30",
        "canary.resources.requests.cpu=10m",
    ]);
    checks::check_canary(&r);
    let c = &canary(&r)["spec"]["template"]["spec"]["containers"][0];
    assert!(strings(&c["args"]).contains(&"--interval-seconds=30"));
    assert_eq!(c["resources"]["requests"]["cpu"], "10m");
    assert_eq!(
        c["resources"]["limits"]["memory"], "48Mi",
        "the rest as the default"
    );
    let said = template_fails(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        &format!("networkPolicy.namespaces={{default,{NAMESPACE}}}"),
    ]);
    assert!(said.contains("where the canary runs"), "{said}");
    // Without the canary, any namespace.
    with(&[
        "networkPolicy.enabled=true",
        &format!("networkPolicy.namespaces={{default,{NAMESPACE}}}"),
        "canary.enabled=false",
    ]);
}

/// `interception.method=cgroup` is components/cgroup-interception: alone, with the other
/// components, and with each cloud (the cloud component listed before it, as it must be); and
/// its other values reach the config and the pod template's section.
#[test]
fn interception_cgroup_value_is_the_cgroup_interception_component() {
    let chart = with(&["interception.method=cgroup"]);
    assert_labelled(&chart);
    let kustomize = overlay(&["canary", "cgroup-interception"]);
    assert_same_but_namespace(&chart, &kustomize, "interception.method=cgroup");
    checks::check_daemonset(&with(&[
        "interception.method=cgroup",
        "namespace.create=true",
    ]));
    checks::check_cgroup_method(&chart);
    assert_check_passes(&config_text(&chart), "interception.method=cgroup");

    let all = with(&[
        "interception.method=cgroup",
        "startupTaint.enabled=true",
        "networkPolicy.enabled=true",
    ]);
    let kustomize = overlay(&[
        "networkpolicy",
        "startup-taint",
        "canary",
        "cgroup-interception",
    ]);
    assert_same_but_namespace(&all, &kustomize, "every component, cgroup");

    for component in cloud_components() {
        let cloud = component.strip_prefix("cloud-").unwrap();
        let set = format!("cloud={cloud}");
        let chart = with(&[&set, "interception.method=cgroup"]);
        let kustomize = overlay(&["canary", &component, "cgroup-interception"]);
        assert_same_but_namespace(&chart, &kustomize, &format!("{component}, cgroup"));
        assert_check_passes(&config_text(&chart), &format!("{component}, cgroup"));
    }

    // The other two values, in the config and on the pod template.
    let r = with(&[
        "interception.method=cgroup",
        "interception.hostNetworkPods=true",
        "interception.backstop=false",
    ]);
    let c = config(&r);
    assert_eq!(c["interception"]["host_network_pods"].as_bool(), Some(true));
    assert_eq!(c["interception"]["backstop"].as_bool(), Some(false));
    let annotation = guard_daemonset(&r)["spec"]["template"]["metadata"]["annotations"]
        ["imds-guard/interception"]
        .as_str()
        .unwrap()
        .to_owned();
    let section: toml::Table = toml::from_str(&annotation).unwrap();
    assert_eq!(
        toml::Value::Table(section)["interception"],
        c["interception"]
    );
    assert_check_passes(&config_text(&r), "hostNetworkPods, backstop");
    // With netfilter they change nothing: the base's render.
    let netfilter = with(&[
        "interception.hostNetworkPods=true",
        "interception.backstop=false",
    ]);
    assert_same_but_namespace(&netfilter, base_and_canary(), "netfilter");
    // With another value changed too (the config written anew), the same section.
    let audit = with(&["interception.method=cgroup", "mode=audit"]);
    assert_eq!(
        config(&audit)["interception"],
        config(&chart)["interception"]
    );
    assert_eq!(config(&audit)["server"]["mode"].as_str(), Some("audit"));
    assert_check_passes(&config_text(&audit), "cgroup, audit");
    // A config.toml given whole with the cgroup method: the DaemonSet follows it.
    let whole = config_text(&chart);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &whole).unwrap();
    let given = template(&["--set-file", &format!("config.toml={}", file.display())]);
    checks::check_cgroup_method(&given);
}

#[test]
fn startup_taint_and_networkpolicy_values_are_the_components() {
    let both = with(&["startupTaint.enabled=true", "networkPolicy.enabled=true"]);
    assert_labelled(&both);
    let components = overlay(&["networkpolicy", "startup-taint", "canary"]);
    assert_same_but_namespace(&both, &components, "every component");
    for (component, value) in [
        ("startup-taint", "startupTaint.enabled=true"),
        ("networkpolicy", "networkPolicy.enabled=true"),
    ] {
        let alone = with(&[value]);
        assert_same_but_namespace(&alone, &overlay(&[component, "canary"]), component);
    }
}

#[test]
fn every_cloud_value_is_its_cloud_component() {
    // The chart's configs are the kustomize ones, byte for byte, and there is one per cloud.
    let files = chart_dir().join("files/config");
    assert_eq!(
        read(&files.join("aws.toml")),
        read(&repo("deploy/imds-guard.toml")),
        "files/config/aws.toml is a copy of deploy/imds-guard.toml"
    );
    let mut clouds = vec!["aws".to_owned()];
    for component in cloud_components() {
        let cloud = component.strip_prefix("cloud-").expect("cloud-NAME");
        let kustomize = repo("deploy/components")
            .join(&component)
            .join("imds-guard.toml");
        assert_eq!(
            read(&files.join(format!("{cloud}.toml"))),
            read(&kustomize),
            "files/config/{cloud}.toml is a copy of {}",
            kustomize.display()
        );
        clouds.push(cloud.to_owned());
    }
    let mut in_chart: Vec<String> = std::fs::read_dir(&files)
        .expect("files/config")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    in_chart.sort();
    let mut want: Vec<String> = clouds.iter().map(|c| format!("{c}.toml")).collect();
    want.sort();
    assert_eq!(in_chart, want, "one config per cloud in the chart");

    for component in cloud_components() {
        let cloud = component.strip_prefix("cloud-").unwrap();
        let set = format!("cloud={cloud}");
        let chart = with(&[
            &set,
            "startupTaint.enabled=true",
            "networkPolicy.enabled=true",
        ]);
        let kustomize = overlay(&["networkpolicy", "startup-taint", "canary", &component]);
        assert_same_but_namespace(&chart, &kustomize, &component);
        assert_check_passes(&config_text(&chart), &component);
    }
    assert_same_but_namespace(&with(&["cloud=aws"]), base_and_canary(), "cloud=aws");
}

/// The values file as JSON.
fn values_of(file: &str) -> Value {
    let text = read(Path::new(file));
    let json = render::run(
        "python3",
        &[
            "-c",
            "import sys,json,yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ],
        Some(&text),
    );
    serde_json::from_str(&json).expect("values as JSON")
}

#[test]
fn custom_values_take_effect() {
    let file = values_file("custom.yaml");
    let v = values_of(&file);
    let r = template(&["-f", &file]);
    assert_labelled(&r);
    // The RBAC is the base's and the start-up taint's, under another name.
    let rules = checks::rbac_rules(&r);
    let reading = checks::set(&["get", "list", "watch"]);
    assert_eq!(checks::verbs_on(&rules, "pods"), reading);
    assert_eq!(checks::verbs_on(&rules, "namespaces"), reading);
    assert_eq!(
        checks::verbs_on(&rules, "nodes"),
        checks::set(&["get", "patch"])
    );
    assert_eq!(rules.len(), 2, "{rules:?}");

    // Names follow fullnameOverride.
    let name = v["fullnameOverride"].as_str().unwrap();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
    ] {
        assert_eq!(one(&r, kind)["metadata"]["name"], name, "{kind}");
    }
    let binding = one(&r, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], name);
    assert_eq!(binding["subjects"][0]["name"], name);
    assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);

    // The config: the cloud's, with the values applied; the real binary accepts it.
    let maps: Vec<&Value> = of_kind(&r, "ConfigMap")
        .filter(|m| m["metadata"]["name"] == format!("{name}-config"))
        .collect();
    assert_eq!(maps.len(), 1, "{name}-config");
    let text = maps[0]["data"]["config.toml"]
        .as_str()
        .expect("config.toml");
    assert_check_passes(text, "custom.yaml");
    let c: toml::Table = toml::from_str(text).expect("TOML");
    let cloud = v["cloud"].as_str().unwrap();
    let file_config: toml::Table = toml::from_str(&read(
        &chart_dir().join(format!("files/config/{cloud}.toml")),
    ))
    .unwrap();
    assert_eq!(c["upstream"]["cloud"].as_str(), Some(cloud));
    assert_eq!(c["server"]["mode"].as_str(), v["mode"].as_str());
    let interfaces: Vec<&str> = c["netfilter"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(interfaces, strings(&v["interfaces"]));
    let rule_names = |t: &toml::Table| -> Vec<String> {
        t["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut want = rule_names(&file_config);
    want.push(v["extraRules"][0]["name"].as_str().unwrap().to_owned());
    assert_eq!(rule_names(&c), want, "extraRules come after the cloud's");
    let o = &v["config"]["override"];
    assert_eq!(
        c["server"]["admin_listen"].as_str(),
        o["server"]["admin_listen"].as_str()
    );
    // Whole numbers stay integers (Helm reads values files' numbers as floats).
    assert_eq!(
        c["server"]["max_connections"].as_integer(),
        o["server"]["max_connections"].as_i64()
    );
    assert_eq!(
        c["limits"]["pod_burst"].as_integer(),
        o["limits"]["pod_burst"].as_i64()
    );
    assert_eq!(c["netfilter"]["backend"].as_str(), Some("nft"));
    // What the values do not touch stays the file's.
    for section in ["upstream", "inventory"] {
        assert_eq!(c[section], file_config[section], "[{section}]");
    }
    assert_eq!(
        c["server"]["listen"], file_config["server"]["listen"],
        "server.listen"
    );

    // The DaemonSet, with the cgroup interception's section on its pods and in the config.
    assert_eq!(
        of_kind(&r, "DaemonSet").count(),
        1,
        "canary.enabled=false: no canary"
    );
    let ds = guard_daemonset(&r);
    let i = &v["interception"];
    assert_eq!(c["interception"]["method"].as_str(), i["method"].as_str());
    assert_eq!(
        c["interception"]["host_network_pods"].as_bool(),
        i["hostNetworkPods"].as_bool()
    );
    assert_eq!(
        c["interception"]["backstop"].as_bool(),
        i["backstop"].as_bool()
    );
    let (pod, container) = guard(&r);
    let tag = v["image"]["tag"].as_str().unwrap();
    assert_eq!(
        container["image"].as_str().unwrap(),
        format!("{}:{tag}", v["image"]["repository"].as_str().unwrap())
    );
    assert_eq!(container["imagePullPolicy"], v["image"]["pullPolicy"]);
    assert_eq!(pod["imagePullSecrets"], v["imagePullSecrets"]);
    let env = container["env"].as_array().unwrap();
    let rust_log = env.iter().find(|e| e["name"] == "RUST_LOG").unwrap();
    assert_eq!(rust_log["value"], v["logLevel"]);
    assert_eq!(container["resources"], v["resources"]);
    assert_eq!(
        container["securityContext"]["capabilities"]["add"],
        v["capabilities"]
    );
    for key in [
        "tolerations",
        "nodeSelector",
        "affinity",
        "priorityClassName",
    ] {
        assert_eq!(pod[key], v[key], "{key}");
    }
    assert_eq!(
        pod["terminationGracePeriodSeconds"],
        v["terminationGracePeriodSeconds"]
    );
    assert_eq!(ds["spec"]["updateStrategy"], v["updateStrategy"]);
    let template_meta = &ds["spec"]["template"]["metadata"];
    for (k, value) in v["podAnnotations"].as_object().unwrap() {
        assert_eq!(
            &template_meta["annotations"][k], value,
            "podAnnotations.{k}"
        );
    }
    let section: toml::Table = toml::from_str(
        template_meta["annotations"]["imds-guard/interception"]
            .as_str()
            .expect("the interception section on the pods"),
    )
    .unwrap();
    assert_eq!(
        toml::Value::Table(section)["interception"],
        toml::Value::Table(c.clone())["interception"]
    );
    for (k, value) in v["podLabels"].as_object().unwrap() {
        assert_eq!(&template_meta["labels"][k], value, "podLabels.{k}");
    }
    let volumes = pod["volumes"].as_array().unwrap();
    let config_volume = volumes.iter().find(|v| v["name"] == "config").unwrap();
    assert_eq!(config_volume["configMap"]["name"], format!("{name}-config"));
    assert_eq!(pod["serviceAccountName"], name);
    // The ports follow the config: the probes reach the admin listener on its new port.
    let ports = container["ports"].as_array().unwrap();
    let port = |n: &str| {
        ports.iter().find(|p| p["name"] == n).unwrap()["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(port("admin"), 9182);
    assert_eq!(port("proxy"), 8181);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }

    // The start-up taint, with its key.
    let taint = format!(
        "--remove-startup-taint={}",
        v["startupTaint"]["key"].as_str().unwrap()
    );
    assert!(strings(&container["args"]).contains(&taint.as_str()));

    // The Namespace, privileged.
    let ns = one(&r, "Namespace");
    assert_eq!(ns["metadata"]["name"], NAMESPACE);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );

    // The NetworkPolicies in every namespace listed, with the nodes' CIDR on the guard's port.
    let policies: Vec<&Value> = of_kind(&r, "NetworkPolicy").collect();
    let namespaces = strings(&v["networkPolicy"]["namespaces"]);
    assert_eq!(policies.len(), 2 * namespaces.len());
    for ns in namespaces {
        for policy in ["deny-node-metadata", "allow-node-metadata"] {
            assert!(
                policies
                    .iter()
                    .any(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == policy),
                "{policy} in {ns}"
            );
        }
    }
    let allow = policies
        .iter()
        .find(|p| p["metadata"]["name"] == "allow-node-metadata")
        .unwrap();
    assert_eq!(
        allow["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"],
        v["networkPolicy"]["nodesCIDR"]
    );
    assert_eq!(allow["spec"]["egress"][1]["ports"][0]["port"], 8181);

    // The sidecar example, with the chart's image.
    let deployment = one(&r, "Deployment");
    let init = deployment["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap();
    assert!(init.iter().all(|c| c["image"] == container["image"]));

    // The PodMonitor, with its labels and interval (no rules or dashboard unless the chart has
    // their files: see monitoring_renders_from_the_chart_s_files).
    let monitor = one(&r, "PodMonitor");
    let m = &v["monitoring"]["podMonitor"];
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        m["labels"]["release"]
    );
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["interval"],
        m["interval"]
    );
}

/// `imds-guard explain` of `path` on `config` (its inventory replaced by a static one of a pod
/// labelled allow-node-metadata-lookup=true and one without labels): "allow" or "deny".
fn decide(config: &str, labelled: bool, path: &str) -> String {
    let mut table: toml::Table = toml::from_str(config).expect("TOML");
    let inventory: toml::Table = toml::from_str(
        "source = \"static\"\n\
         [[pods]]\nip = \"10.1.0.1\"\nnamespace = \"shop\"\nname = \"labelled\"\n\
         labels = { \"allow-node-metadata-lookup\" = \"true\" }\n\
         [[pods]]\nip = \"10.1.0.2\"\nnamespace = \"shop\"\nname = \"other\"\n",
    )
    .unwrap();
    table.insert("inventory".into(), toml::Value::Table(inventory));
    let source = if labelled { "10.1.0.1" } else { "10.1.0.2" };
    let text = toml::to_string(&table).unwrap();
    let out = imds_guard(&["explain", "--source", source, "--path", path], &text);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.lines()
        .find_map(|l| l.strip_prefix("decision:"))
        .map(|d| d.trim().to_owned())
        .unwrap_or_else(|| {
            panic!(
                "explain {path}: no decision in {said}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn rules_values_are_the_policy_the_guard_applies() {
    const CREDENTIALS: &str = "/latest/meta-data/iam/security-credentials/";
    const ZONE: &str = "/latest/meta-data/placement/availability-zone";
    let placement = r#"[{"name":"placement for everyone","all_pods":true,"allow":["/latest/meta-data/placement/**"]}]"#;
    let cases: [(&[&str], bool, bool, bool, bool); 4] = [
        // (helm args, labelled: credentials, zone; other pod: credentials, zone)
        (&[], true, true, false, false),
        (
            &["--set-json", &format!("rules={placement}")],
            false,
            true,
            false,
            true,
        ),
        (
            &["--set-json", &format!("extraRules={placement}")],
            true,
            true,
            false,
            true,
        ),
        (&["--set-json", "rules=[]"], false, false, false, false),
    ];
    let word = |allowed: bool| if allowed { "allow" } else { "deny" };
    for (args, labelled_credentials, labelled_zone, other_credentials, other_zone) in cases {
        let r = template(args);
        let text = config_text(&r);
        assert_check_passes(&text, &format!("{args:?}"));
        for (labelled, path, want) in [
            (true, CREDENTIALS, labelled_credentials),
            (true, ZONE, labelled_zone),
            (false, CREDENTIALS, other_credentials),
            (false, ZONE, other_zone),
        ] {
            assert_eq!(
                decide(&text, labelled, path),
                word(want),
                "{args:?}: labelled {labelled}, {path}"
            );
        }
    }
}

#[test]
fn config_toml_replaces_the_config_and_the_render_follows_it() {
    // Alibaba's config, its proxy on another port: the config is used as it is (mode ignored),
    // the NetworkPolicy covers Alibaba's address and the guard's new port, the container port
    // follows.
    let text = read(&repo("deploy/components/cloud-alibaba/imds-guard.toml"))
        .replace("${HOST_IP}:8181", "${HOST_IP}:9181");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &text).unwrap();
    let set_file = format!("config.toml={}", file.display());
    let r = template(&[
        "--set-file",
        &set_file,
        "--set",
        "mode=audit",
        "--set",
        "networkPolicy.enabled=true",
    ]);
    assert_eq!(config_text(&r), text);
    let deny = of_kind(&r, "NetworkPolicy")
        .find(|p| p["metadata"]["name"] == "deny-node-metadata")
        .unwrap();
    assert_eq!(
        deny["spec"]["egress"][0]["to"][0]["ipBlock"]["except"],
        serde_json::json!(["100.100.100.200/32"])
    );
    let allow = of_kind(&r, "NetworkPolicy")
        .find(|p| p["metadata"]["name"] == "allow-node-metadata")
        .unwrap();
    assert_eq!(
        allow["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"],
        "100.100.100.200/32"
    );
    assert_eq!(allow["spec"]["egress"][1]["ports"][0]["port"], 9181);
    let (_, c) = guard(&r);
    assert_eq!(c["ports"][0]["name"], "proxy");
    assert_eq!(c["ports"][0]["containerPort"], 9181);
    // The same with cloud=alibaba and no config.toml: the kustomize component's render.
    assert_same_but_namespace(
        &with(&["cloud=alibaba", "networkPolicy.enabled=true"]),
        &overlay(&["networkpolicy", "canary", "cloud-alibaba"]),
        "cloud=alibaba",
    );
}

#[test]
fn wrong_values_are_refused_with_the_reason() {
    for (args, says) in [
        (vec!["--set", "cloud=aws2"], "cloud"),
        (vec!["--set", "mode=block"], "mode"),
        (vec!["--set", "startupTaints.enabled=true"], "startupTaints"),
        (vec!["--set", "capabilities={NET_RAW}"], "capabilities"),
        (vec!["--set", "interception.method=ebpf"], "interception"),
        (
            vec![
                "--set",
                "interception.method=cgroup",
                "--set",
                "capabilities={NET_ADMIN}",
            ],
            "BPF",
        ),
        (vec!["--set", "canary.intervalSeconds=0"], "intervalSeconds"),
        (vec!["--set", "interfaces={}"], "interfaces"),
        (
            vec!["--set", "config.toml=[server"],
            "config.toml is not TOML",
        ),
        (
            vec!["--set", "config.override.server.listen=nowhere"],
            "has no port",
        ),
    ] {
        let said = template_fails(&args);
        assert!(said.contains(says), "{args:?}: {said}");
    }
}

#[test]
fn sidecar_example_value_is_deploy_sidecar_example() {
    assert_eq!(
        read(&chart_dir().join("files/sidecar/imds-guard.toml")),
        read(&repo("deploy/sidecar/example/imds-guard.toml")),
        "files/sidecar/imds-guard.toml is a copy of deploy/sidecar/example/imds-guard.toml"
    );
    let chart = with(&["node.enabled=false", "sidecarExample.enabled=true"]);
    assert_labelled(&chart);
    // kustomize leaves the namespace to `kubectl apply -n`; the chart puts it in the release's.
    let mut kustomize = render::render(&repo("deploy/sidecar/example")).objects;
    for o in &mut kustomize {
        o["metadata"]["namespace"] = Value::from(NAMESPACE);
    }
    assert_same_objects(&chart.objects, &kustomize, "sidecar example");
    // Alone with the DaemonSet's objects, as the default render has them.
    let both = with(&["sidecarExample.enabled=true"]);
    assert_eq!(
        both.objects.len(),
        default_render().objects.len() + chart.objects.len()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Stand-ins for the monitoring files, for as long as the chart has none.
const RULES: &str = "groups:\n  - name: imds-guard\n    rules:\n      - alert: ImdsGuardAuditLinesDropped\n        expr: imds_guard_audit_dropped_lines > 0\n        for: 5m\n        labels: {severity: warning}\n        annotations:\n          summary: \"{{ $labels.pod }} drops audit lines\"\n";
const DASHBOARD: &str = "{\"title\": \"imds-guard\", \"panels\": []}\n";

#[test]
fn monitoring_renders_from_the_chart_s_files() {
    let on = ["--set", "monitoring.enabled=true"];
    // Without the files (until they are added): only the PodMonitor, and the chart still lints.
    let bare = tempfile::tempdir().unwrap();
    let bare_chart = bare.path().join("imds-guard");
    copy_dir(&chart_dir(), &bare_chart);
    let _ = std::fs::remove_dir_all(bare_chart.join("files/monitoring"));
    lint(&bare_chart, &on);
    let r = template_of(&bare_chart, &on);
    assert_eq!(
        of_kind(&r, "PodMonitor").count(),
        2,
        "the guard's and the canary's"
    );
    assert_eq!(of_kind(&r, "PrometheusRule").count(), 0);
    assert_eq!(of_kind(&r, "ConfigMap").count(), 1, "the config only");
    // Off by default.
    assert_eq!(of_kind(default_render(), "PodMonitor").count(), 0);

    // With them: the chart's own when it has them, else stand-ins.
    let full = tempfile::tempdir().unwrap();
    let full_chart = full.path().join("imds-guard");
    copy_dir(&chart_dir(), &full_chart);
    let files = full_chart.join("files/monitoring");
    std::fs::create_dir_all(&files).unwrap();
    for (name, stand_in) in [
        ("prometheus-rules.yaml", RULES),
        ("grafana-dashboard.json", DASHBOARD),
    ] {
        if !files.join(name).exists() {
            std::fs::write(files.join(name), stand_in).unwrap();
        }
    }
    lint(&full_chart, &on);
    let r = template_of(
        &full_chart,
        &[
            "--set",
            "monitoring.enabled=true",
            "--set",
            "monitoring.dashboard.namespace=grafana",
        ],
    );
    assert_labelled(&r);

    let monitor = of_kind(&r, "PodMonitor")
        .find(|m| m["metadata"]["name"] == "imds-guard")
        .expect("the guard's PodMonitor");
    let (pod, container) = guard(&r);
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    let port = endpoint["port"].as_str().unwrap();
    let ports = container["ports"].as_array().unwrap();
    let admin = ports
        .iter()
        .find(|p| p["name"] == port)
        .expect("a named container port");
    let config_map = of_kind(&r, "ConfigMap")
        .find(|m| m["metadata"]["name"] == "imds-guard-config")
        .unwrap();
    let c: toml::Table =
        toml::from_str(config_map["data"]["config.toml"].as_str().unwrap()).unwrap();
    let admin_listen = c["server"]["admin_listen"].as_str().unwrap();
    assert_eq!(
        admin["containerPort"].as_u64(),
        Some(render::port_of(admin_listen))
    );
    let ds = guard_daemonset(&r);
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&ds["spec"]["template"]["metadata"]["labels"][k], v);
    }
    // The alerts select job="imds-guard" and group by node.
    assert_eq!(
        monitor["metadata"]["namespace"],
        ds["metadata"]["namespace"]
    );
    assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/name");
    assert_eq!(
        ds["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
        "imds-guard"
    );
    assert_eq!(endpoint["relabelings"][0]["targetLabel"], "node");
    let _ = pod;

    let rule = one(&r, "PrometheusRule");
    let rules_text = read(&files.join("prometheus-rules.yaml"));
    let want = render::run(
        "python3",
        &[
            "-c",
            "import sys,json,yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ],
        Some(&rules_text),
    );
    let want: Value = serde_json::from_str(&want).unwrap();
    assert_eq!(rule["spec"], want, "the PrometheusRule's spec is the file");
    assert!(rule["spec"]["groups"].is_array());

    let dashboard = of_kind(&r, "ConfigMap")
        .find(|m| m["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    let json = dashboard["data"]["imds-guard.json"].as_str().unwrap();
    assert_eq!(json, read(&files.join("grafana-dashboard.json")));
    let _: Value = serde_json::from_str(json).expect("the dashboard is JSON");

    // Each piece can be turned off.
    let r = template_of(
        &full_chart,
        &[
            "--set",
            "monitoring.enabled=true",
            "--set",
            "monitoring.prometheusRule.enabled=false",
            "--set",
            "monitoring.dashboard.enabled=false",
            "--set",
            "monitoring.podMonitor.enabled=false",
        ],
    );
    assert_eq!(r.objects.len(), default_render().objects.len());
}

/// The dotted paths of values.yaml's values, down to the maps whose keys are the user's or
/// Kubernetes' (resources, affinity, …), which are values as a whole.
fn value_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    const WHOLE: [&str; 8] = [
        "resources",
        "canary.resources",
        "updateStrategy",
        "affinity",
        "nodeSelector",
        "podAnnotations",
        "podLabels",
        "config.override",
    ];
    for (k, value) in v.as_object().expect("a map") {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let nested = value.as_object().is_some_and(|m| !m.is_empty())
            && !WHOLE.contains(&path.as_str())
            && !path.ends_with(".labels")
            && !path.ends_with(".annotations");
        if nested {
            value_paths(value, &path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_value_is_commented_and_in_the_deploy_docs_table() {
    // Every key of values.yaml has a comment on the line above (maps of Kubernetes' own fields
    // under a commented key excepted).
    let text = read(&chart_dir().join("values.yaml"));
    let lines: Vec<&str> = text.lines().collect();
    let mut parents: Vec<(usize, String)> = Vec::new();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        while parents.last().is_some_and(|(d, _)| *d >= indent) {
            parents.pop();
        }
        let free_form = parents
            .iter()
            .any(|(_, k)| ["resources", "updateStrategy", "tolerations"].contains(&k.as_str()));
        let commented = i > 0 && lines[i - 1].trim_start().starts_with('#');
        if !free_form && !commented && !line.contains(" # ") {
            missing.push(format!("values.yaml:{}: {key}", i + 1));
        }
        parents.push((indent, key.to_owned()));
    }
    assert!(
        missing.is_empty(),
        "values without a comment:\n{}",
        missing.join("\n")
    );

    // And docs/deploy.md's Helm section names every value.
    let docs = read(&repo("docs/deploy.md"));
    let helm = docs
        .split_once("\n## Helm")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
        .expect("docs/deploy.md has a Helm section");
    let mut paths = Vec::new();
    value_paths(
        &values_of(&chart_dir().join("values.yaml").display().to_string()),
        "",
        &mut paths,
    );
    let absent: Vec<&String> = paths
        .iter()
        .filter(|p| !helm.contains(&format!("`{p}`")))
        .collect();
    assert!(
        absent.is_empty(),
        "values missing from docs/deploy.md's Helm table: {absent:?}"
    );
}

/// Once deploy/components/monitoring exists: the chart's monitoring files are its copies, and
/// `monitoring.enabled` renders what the base with that component renders, object for object.
#[test]
fn monitoring_value_is_the_monitoring_component_once_there_is_one() {
    let component = repo("deploy/components/monitoring");
    if !component.join("kustomization.yaml").exists() {
        eprintln!("no deploy/components/monitoring yet: nothing to compare the chart's with");
        return;
    }
    let chart_files = chart_dir().join("files/monitoring");
    let rules = read(&component.join("prometheus-rules.yaml"));
    assert_eq!(
        read(&chart_files.join("prometheus-rules.yaml")),
        rules,
        "files/monitoring/prometheus-rules.yaml is a copy of the component's"
    );
    let kustomize = overlay(&["canary", "monitoring"]);
    let chart = with(&["monitoring.enabled=true"]);
    assert_same_objects(
        &chart.objects,
        &without_kind(&kustomize, "Namespace"),
        "monitoring",
    );
    // Without the canary, the chart leaves its PodMonitor out; the component (which cannot know)
    // keeps it, selecting nothing.
    let kustomize = overlay(&["monitoring"]);
    let chart = with(&["monitoring.enabled=true", "canary.enabled=false"]);
    let theirs: Vec<Value> = without_kind(&kustomize, "Namespace")
        .into_iter()
        .filter(|o| o["metadata"]["name"] != "imds-guard-canary")
        .collect();
    assert_same_objects(&chart.objects, &theirs, "monitoring without the canary");
}
