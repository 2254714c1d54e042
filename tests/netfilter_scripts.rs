//! `iptables/install.sh` and `remove.sh` against the Rust rule set, so the two cannot drift: the
//! scripts' `--print` output is compared with the generator's for the same inputs and the same
//! current rules (for every cloud, `IMDS_GUARD_CLOUD` against `[upstream] cloud`), and in a network
//! namespace the script's rules pass `imds-guard iptables status`.

use crate::netfilter_netns;

use imds_guard::netfilter::render;
use imds_guard::netfilter::rules::{remove_payload, Family, RuleSet};
use imds_guard::netfilter::tools::Variant;
use imds_guard_core::cloud::{Cloud, ALL};
use netfilter_netns::scripts::{
    print, print_for, script, text, DRIFTED_V4, FOREIGN_V4, OTHER_CLOUD_V4, OTHER_CLOUD_V6, V6_DUAL,
};
use netfilter_netns::{preflight, Ns};

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

#[test]
fn install_sh_prints_what_the_rust_generator_would_apply() {
    let states = [("", ""), (FOREIGN_V4, ""), (DRIFTED_V4, V6_DUAL)];
    let inputs: &[(&str, &[&str])] = &[
        ("10.0.0.5:8181", &["eni+", "cni0"]),
        ("0.0.0.0:8181", &["cali+", "eni+", "cali+"]),
        ("[::]:9000", &["cali+"]),
    ];
    let mut compared = 0;
    for (listen, interfaces) in inputs {
        let owned: Vec<String> = interfaces.iter().map(|s| s.to_string()).collect();
        let set = RuleSet::new(listen.parse().unwrap(), &owned).unwrap();
        for (v4, v6) in states {
            let want = render(
                Variant::Nft,
                &[
                    (Family::V4, set.install_payload(Family::V4, v4)),
                    (Family::V6, set.install_payload(Family::V6, v6)),
                ],
            );
            let mut args = vec![*listen];
            args.extend(interfaces.iter());
            let out = print("install.sh", &args, v4, v6);
            assert!(out.status.success(), "install.sh {args:?}: {}", text(&out));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                want,
                "install.sh {args:?} differs from the Rust rule set"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 9);
}

#[test]
fn remove_sh_prints_what_the_rust_generator_would_apply() {
    for (v4, v6) in [("", ""), (FOREIGN_V4, ""), (DRIFTED_V4, V6_DUAL)] {
        let out = print("remove.sh", &[], v4, v6);
        assert!(out.status.success(), "{}", text(&out));
        let want = format!("{}{}", remove_payload(v4), remove_payload(v6));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}

#[test]
fn install_sh_refuses_what_the_rust_generator_refuses_with_the_same_words() {
    for (listen, interfaces) in [
        ("127.0.0.1:8181", vec!["eni+".to_owned()]),
        ("[fd00::1]:8181", vec!["eni+".to_owned()]),
        ("10.0.0.5:0", vec!["eni+".to_owned()]),
    ] {
        let rust = RuleSet::new(listen.parse().unwrap(), &interfaces).unwrap_err();
        let out = print("install.sh", &[listen, "eni+"], "", "");
        assert!(!out.status.success(), "install.sh accepted {listen}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!("imds-guard: {rust}"),
        );
    }
}

#[test]
fn the_scripts_rules_pass_the_binary_s_status_in_a_namespace() {
    preflight(&[
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("conntrack", "conntrack"),
    ]);
    let node = Ns::new("scripts");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"10.199.0.1:8181\"\n[netfilter]\ninterfaces = [\"pod+\", \"rtr0\"]\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    node.ok(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "up0",
        "-j",
        "RETURN",
    ]);
    let install = script("install.sh");
    let install = install.to_str().unwrap();
    let plan = |ns: &Ns| {
        (
            ns.ok(&[install, "--print", "10.199.0.1:8181", "pod+", "rtr0"]),
            ns.ok(&[BIN, "iptables", "install", "--dry-run", "--config", config]),
        )
    };
    let (sh, rust) = plan(&node);
    assert_eq!(sh, rust, "fresh namespace");

    node.ok(&[install, "10.199.0.1:8181", "pod+", "rtr0"]);
    let status = node.exec(&[BIN, "iptables", "status", "--config", config]);
    assert!(status.status.success(), "{}", text(&status));
    let (sh, rust) = plan(&node);
    assert_eq!(sh, rust, "after install");

    let remove = script("remove.sh");
    node.ok(&[remove.to_str().unwrap()]);
    let rules = node.rules();
    assert!(!rules.contains("IMDS-GUARD"), "{rules}");
    assert!(rules.contains("-A POSTROUTING -o up0 -j RETURN"), "{rules}");
    let status = node.exec(&[BIN, "iptables", "status", "--config", config]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
}

#[test]
fn install_sh_sidecar_prints_what_the_rust_generator_would_apply() {
    let states = [("", ""), (FOREIGN_V4, ""), (DRIFTED_V4, V6_DUAL)];
    for (listen, uid) in [("127.0.0.1:8181", 1337), ("127.0.0.9:15001", 4_294_967_295)] {
        let set = RuleSet::sidecar(listen.parse().unwrap(), uid).unwrap();
        for (v4, v6) in states {
            let want = render(
                Variant::Nft,
                &[
                    (Family::V4, set.install_payload(Family::V4, v4)),
                    (Family::V6, set.install_payload(Family::V6, v6)),
                ],
            );
            let uid = uid.to_string();
            let out = print("install.sh", &["--sidecar", &uid, listen], v4, v6);
            assert!(
                out.status.success(),
                "--sidecar {uid} {listen}: {}",
                text(&out)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                want,
                "install.sh --sidecar {uid} {listen} differs from the Rust rule set"
            );
        }
    }
}

#[test]
fn install_sh_sidecar_refuses_what_the_rust_generator_refuses_with_the_same_words() {
    for (listen, uid) in [
        ("10.0.0.5:8181", 1337),
        ("0.0.0.0:8181", 1337),
        ("[::1]:8181", 1337),
        ("127.0.0.1:0", 1337),
        ("127.0.0.1:8181", 0),
    ] {
        let rust = RuleSet::sidecar(listen.parse().unwrap(), uid).unwrap_err();
        let out = print(
            "install.sh",
            &["--sidecar", &uid.to_string(), listen],
            "",
            "",
        );
        assert!(
            !out.status.success(),
            "install.sh accepted --sidecar {uid} {listen}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!("imds-guard: {rust}"),
        );
    }
    for bad in [
        &["--sidecar", "x", "127.0.0.1:8181"][..],
        &["--sidecar", "4294967296", "127.0.0.1:8181"],
        &["--sidecar", "1", "127.0.0.1:8181", "eni+"],
    ] {
        let out = print("install.sh", bad, "", "");
        assert!(!out.status.success(), "install.sh accepted {bad:?}");
    }
}

#[test]
fn the_sidecar_script_s_rules_pass_the_binary_s_status_in_a_namespace() {
    preflight(&[
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("conntrack", "conntrack"),
    ]);
    let pod = Ns::new("scripts-sidecar");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:8181\"\n[inventory]\nsource = \"self\"\n[netfilter]\nsidecar_uid = 1337\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let install = script("install.sh");
    let install = install.to_str().unwrap();
    let binary = |action: &str, extra: &[&str]| {
        let mut args = vec![BIN, "iptables", action, "--sidecar", "--config", config];
        args.extend_from_slice(extra);
        pod.exec(&args)
    };
    let sh = pod.ok(&[install, "--print", "--sidecar", "1337", "127.0.0.1:8181"]);
    let rust = binary("install", &["--dry-run"]);
    assert_eq!(sh, String::from_utf8_lossy(&rust.stdout), "fresh namespace");

    pod.ok(&[install, "--sidecar", "1337", "127.0.0.1:8181"]);
    let status = binary("status", &[]);
    assert!(status.status.success(), "{}", text(&status));
    // Another UID is another rule set: status says so.
    let other = binary("status", &["--sidecar-uid", "1000"]);
    assert_eq!(other.status.code(), Some(1), "{}", text(&other));

    pod.ok(&[script("remove.sh").to_str().unwrap()]);
    assert!(!pod.rules().contains("IMDS-GUARD"));
}

/// The Rust rule set's restore input for `v4` / `v6`, as the scripts print it.
fn want(set: &RuleSet, v4: &str, v6: &str) -> String {
    render(
        Variant::Nft,
        &[
            (Family::V4, set.install_payload(Family::V4, v4)),
            (Family::V6, set.install_payload(Family::V6, v6)),
        ],
    )
}

#[test]
fn install_sh_prints_what_the_rust_generator_would_apply_for_every_cloud() {
    let states = [
        ("", ""),
        (FOREIGN_V4, ""),
        (DRIFTED_V4, V6_DUAL),
        (OTHER_CLOUD_V4, OTHER_CLOUD_V6),
    ];
    let inputs: &[(&str, &[&str])] = &[
        ("10.0.0.5:8181", &["eni+", "cni0"]),
        ("0.0.0.0:8181", &["cali+", "eni+", "cali+"]),
        ("[::]:9000", &["cali+"]),
    ];
    let mut compared = 0;
    for cloud in ALL {
        for (listen, interfaces) in inputs {
            let owned: Vec<String> = interfaces.iter().map(|s| s.to_string()).collect();
            let set = RuleSet::for_cloud(cloud, listen.parse().unwrap(), &owned).unwrap();
            let mut args = vec![*listen];
            args.extend(interfaces.iter());
            for (v4, v6) in states {
                let out = print_for(Some(cloud.as_str()), "install.sh", &args, v4, v6);
                assert!(out.status.success(), "{cloud} {args:?}: {}", text(&out));
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    want(&set, v4, v6),
                    "IMDS_GUARD_CLOUD={cloud} install.sh {args:?} differs from the Rust rule set"
                );
                compared += 1;
            }
        }
        for (listen, uid) in [("127.0.0.1:8181", 1337), ("127.0.0.9:15001", 4_294_967_295)] {
            let set = RuleSet::sidecar_for_cloud(cloud, listen.parse().unwrap(), uid).unwrap();
            let uid = uid.to_string();
            for (v4, v6) in states {
                let args = ["--sidecar", &uid, listen];
                let out = print_for(Some(cloud.as_str()), "install.sh", &args, v4, v6);
                assert!(out.status.success(), "{cloud} {args:?}: {}", text(&out));
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    want(&set, v4, v6),
                    "IMDS_GUARD_CLOUD={cloud} install.sh {args:?} differs from the Rust rule set"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, ALL.len() * (3 + 2) * 4);
    // Without IMDS_GUARD_CLOUD, the script writes AWS's rules, as a config without the key does.
    let aws = RuleSet::for_cloud(
        Cloud::Aws,
        "10.0.0.5:8181".parse().unwrap(),
        &["eni+".into()],
    );
    let out = print("install.sh", &["10.0.0.5:8181", "eni+"], FOREIGN_V4, "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        want(&aws.unwrap(), FOREIGN_V4, "")
    );
}

#[test]
fn install_sh_refuses_an_unknown_cloud_with_the_config_s_words() {
    let rust = "Gcp".parse::<Cloud>().unwrap_err();
    let out = print_for(Some("Gcp"), "install.sh", &["10.0.0.5:8181"], "", "");
    assert!(!out.status.success(), "install.sh accepted the cloud Gcp");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("imds-guard: IMDS_GUARD_CLOUD: {rust}"),
    );
}

/// For every cloud, in a namespace: the script's rules (node and sidecar mode) pass the binary's
/// `status` for a config naming that cloud, and fail it for a config naming another.
#[test]
fn every_cloud_s_script_rules_pass_the_binary_s_status_in_a_namespace() {
    preflight(&[
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("ip6tables", "iptables"),
        ("conntrack", "conntrack"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let install = script("install.sh");
    let install = install.to_str().unwrap();
    let remove = script("remove.sh");
    let remove = remove.to_str().unwrap();
    // (mode, the config's keys beside [upstream] cloud, the script's arguments, status's).
    let modes: [(&str, &str, &[&str], &[&str]); 2] = [
        (
            "node",
            "[server]\nlisten = \"[::]:8181\"\n[netfilter]\ninterfaces = [\"pod+\"]\n",
            &["[::]:8181", "pod+"],
            &[],
        ),
        (
            "sidecar",
            "[server]\nlisten = \"127.0.0.1:8181\"\n[inventory]\nsource = \"self\"\n\
             [netfilter]\nsidecar_uid = 1337\n",
            &["--sidecar", "1337", "127.0.0.1:8181"],
            &["--sidecar"],
        ),
    ];
    for cloud in ALL {
        let ns = Ns::new(&format!("scripts-{cloud}"));
        let other = if cloud == Cloud::Gcp {
            Cloud::Aws
        } else {
            Cloud::Gcp
        };
        for (mode, keys, script_args, status_args) in modes {
            let config = |cloud: Cloud| {
                let path = dir.path().join(format!("{cloud}-{mode}.toml"));
                std::fs::write(&path, format!("[upstream]\ncloud = \"{cloud}\"\n{keys}")).unwrap();
                path.to_string_lossy().into_owned()
            };
            let status = |config: &str| {
                let mut args = vec![BIN, "iptables", "status", "--config", config];
                args.extend_from_slice(status_args);
                ns.exec(&args)
            };
            let env = format!("IMDS_GUARD_CLOUD={cloud}");
            let mut args = vec!["env", env.as_str(), install];
            args.extend_from_slice(script_args);
            ns.ok(&args);
            let ours = status(&config(cloud));
            assert!(ours.status.success(), "{cloud} {mode}: {}", text(&ours));
            let theirs = status(&config(other));
            assert_eq!(
                theirs.status.code(),
                Some(1),
                "{cloud} {mode} checked as {other}: {}",
                text(&theirs)
            );
            ns.ok(&[remove]);
            assert!(!ns.rules().contains("IMDS-GUARD"), "{cloud} {mode}");
        }
    }
}
