use super::*;

fn config(text: &str) -> Config {
    config::parse(text).unwrap()
}

#[test]
fn restart_needed_names_the_sections() {
    let old = config("[server]\nmode = \"enforce\"\n");
    assert!(restart_needed(&old, &config("[server]\nmode = \"audit\"\n")).is_empty());
    let new = config("[server]\nlisten = \"127.0.0.1:9999\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n[netfilter]\ninterfaces = [\"cali+\"]\n");
    assert_eq!(
        restart_needed(&old, &new),
        ["server.listen/admin_listen", "upstream", "netfilter"]
    );
    let new = config("[imdsv2]\ntokens = \"passthrough\"\n[limits]\npod_burst = 7\n");
    assert_eq!(
        restart_needed(&old, &new),
        ["imdsv2.tokens/token_key_file", "cache", "limits"]
    );
    let new = config("[inventory]\nsource = \"kubernetes\"\n");
    assert_eq!(restart_needed(&old, &new), ["inventory"]);
}

#[test]
fn live_swaps_whole() {
    let old = config("");
    let live = Live::new(&old);
    let before = live.load();
    let new = config("[server]\nmode = \"audit\"\n[imdsv2]\nhop_limit = 2\n[[rules]]\nname = \"a\"\nall_pods = true\nallow = [\"/latest/**\"]\n");
    apply(&old, &new, &live, &Index::new());
    let after = live.load();
    assert_eq!(
        (
            before.mode,
            before.policy.rules().len(),
            before.token_hop_limit
        ),
        (Mode::Enforce, 0, None)
    );
    assert_eq!(
        (
            after.mode,
            after.policy.rules().len(),
            after.token_hop_limit
        ),
        (Mode::Audit, 1, Some(2))
    );
}
