use super::*;
use crate::config::parse;

fn err(text: &str) -> String {
    parse(text).expect_err(text).to_string()
}

#[test]
fn defaults_keep_netfilter() {
    let config = parse("").unwrap();
    assert_eq!(config.interception.method, Method::Netfilter);
    assert_eq!(
        config.interception.bpf_pin_dir,
        PathBuf::from("/sys/fs/bpf/imds-guard")
    );
    assert!(config.interception.backstop && !config.interception.host_network_pods);
    assert_eq!(
        config
            .interception
            .backstop_interfaces(&config.netfilter.interfaces),
        config.netfilter.interfaces.as_slice()
    );
}

#[test]
fn cgroup_keys_are_read() {
    let config = parse(
        "[server]\nlisten = \"10.0.0.5:8181\"\n[interception]\nmethod = \"cgroup\"\n\
         cgroup_root = \"/sys/fs/cgroup\"\npods_cgroup = \"kubepods.slice\"\n\
         bpf_pin_dir = \"/sys/fs/bpf/x\"\nhost_network_pods = true\nbackstop = false\n\
         interfaces = [\"veth+\"]\n",
    )
    .unwrap();
    let i = &config.interception;
    assert_eq!(i.method, Method::Cgroup);
    assert_eq!(i.cgroup_root.as_deref(), Some("/sys/fs/cgroup".as_ref()));
    assert_eq!(i.pods_cgroup.as_deref(), Some("kubepods.slice".as_ref()));
    assert!(i.host_network_pods && !i.backstop);
    assert_eq!(i.backstop_interfaces(&[]), ["veth+".to_owned()]);
}

#[test]
fn bad_values_name_their_key() {
    let cgroup = "[interception]\nmethod = \"cgroup\"\n";
    for (text, want) in [
        (
            cgroup.to_owned(),
            "server.listen: 127.0.0.1:8181: with [interception] method = \"cgroup\"",
        ),
        (
            format!("[server]\nlisten = \"0.0.0.0:8181\"\n{cgroup}"),
            "server.listen: 0.0.0.0:8181: with",
        ),
        (
            format!("[server]\nlisten = \"[fd00::1]:8181\"\n{cgroup}"),
            "server.listen: [fd00::1]:8181: an IPv6 listener",
        ),
        (
            "[interception]\nmethod = \"ebpf\"\n".to_owned(),
            "interception.method: unknown variant `ebpf`",
        ),
        (
            "[interception]\nbpf_pin_dir = \"bpf\"\n".to_owned(),
            "interception.bpf_pin_dir: must be an absolute path",
        ),
        (
            "[interception]\ncgroup_root = \"cg\"\n".to_owned(),
            "interception.cgroup_root: must be an absolute path",
        ),
        (
            "[interception]\npods_cgroup = \"/kubepods\"\n".to_owned(),
            "interception.pods_cgroup: must be a path below",
        ),
        (
            "[interception]\npods_cgroup = \"a/../b\"\n".to_owned(),
            "interception.pods_cgroup: must be a path below",
        ),
        (
            "[interception]\ninterfaces = [\"a+\", \"a+\"]\n".to_owned(),
            "interception.interfaces[1]: `a+` is listed twice",
        ),
        (
            "[interception]\ninterfaces = [\"+\"]\n".to_owned(),
            "interception.interfaces[0]: ",
        ),
        (
            "[interception]\nmode = \"cgroup\"\n".to_owned(),
            "interception.mode: unknown field",
        ),
    ] {
        let got = err(&text);
        assert!(got.starts_with(want), "{text}: {got}");
    }
}
