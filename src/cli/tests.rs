//! The iptables mode flags: sidecar mode needs a UID, and a sidecar config needs `--sidecar`.

use super::*;

const SIDECAR: &str = "[server]\nlisten = \"127.0.0.1:8181\"\n[inventory]\nsource = \"self\"\n";

fn mode(sidecar: bool, sidecar_uid: Option<u32>) -> ModeArgs {
    ModeArgs {
        sidecar,
        sidecar_uid,
    }
}

#[test]
fn the_mode_comes_from_the_flags_and_the_uid_from_the_flag_or_the_config() {
    let bare = crate::config::parse(SIDECAR).unwrap();
    let e = mode(false, None).settings(&bare).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inventory.source = \"self\" is sidecar mode: add --sidecar"
    );
    let e = mode(true, None).settings(&bare).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--sidecar needs the sidecar's UID"),
        "{e}"
    );
    let flag = mode(true, Some(1000)).settings(&bare).unwrap();
    assert_eq!(flag.sidecar_uid, Some(1000));

    let with_uid = format!("{SIDECAR}[netfilter]\nsidecar_uid = 1337\n");
    let config = crate::config::parse(&with_uid).unwrap();
    assert_eq!(
        mode(true, None).settings(&config).unwrap().sidecar_uid,
        Some(1337)
    );
    // The flag wins over the config.
    assert_eq!(
        mode(true, Some(7)).settings(&config).unwrap().sidecar_uid,
        Some(7)
    );
    // Node mode stays node mode for node configs.
    let node = crate::config::parse("").unwrap();
    assert_eq!(mode(false, None).settings(&node).unwrap().sidecar_uid, None);
}

#[test]
fn sidecar_flags_parse() {
    let cli = Cli::try_parse_from([
        "imds-guard",
        "iptables",
        "install",
        "--sidecar",
        "--sidecar-uid",
        "1337",
    ])
    .unwrap();
    let Command::Iptables(IptablesArgs {
        action: IptablesAction::Install(args),
    }) = cli.command
    else {
        panic!("not an install");
    };
    assert!(args.mode.sidecar);
    assert_eq!(args.mode.sidecar_uid, Some(1337));
    // A UID without --sidecar means nothing: refused rather than ignored.
    assert!(
        Cli::try_parse_from(["imds-guard", "iptables", "status", "--sidecar-uid", "1"]).is_err()
    );
}
