use super::*;

const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
28 26 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
";
const PURE: &str = "\
31 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
34 23 0:29 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:12 - bpf bpf rw,mode=700
";

#[test]
fn the_cgroup2_mount_is_found_and_hybrids_are_told() {
    assert_eq!(
        cgroup2_mount(HYBRID),
        Some((PathBuf::from("/sys/fs/cgroup/unified"), true))
    );
    assert_eq!(
        cgroup2_mount(PURE),
        Some((PathBuf::from("/sys/fs/cgroup"), false))
    );
    assert_eq!(
        cgroup2_mount("28 26 0:26 / /x rw - cgroup cgroup rw\n"),
        None
    );
    let escaped = "31 23 0:26 / /my\\040cgroup rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        cgroup2_mount(escaped),
        Some((PathBuf::from("/my cgroup"), false))
    );
}

#[test]
fn own_cgroup_reads_the_unified_line() {
    let hybrid =
        "12:pids:/user.slice\n1:name=systemd:/user.slice/x.scope\n0::/user.slice/x.scope\n";
    assert_eq!(
        own_cgroup(hybrid),
        Some(PathBuf::from("user.slice/x.scope"))
    );
    assert_eq!(own_cgroup("0::/\n"), None);
    assert_eq!(own_cgroup("5:memory:/a\n"), None);
}

#[test]
fn the_resolver_learns_pods_and_new_cgroups() {
    let tmp = tempfile::tempdir().unwrap();
    let pods = tmp.path().join("kubepods");
    let uid = "5f1f3a4e-8c1d-4c2b-9b0e-0123456789ab";
    let container = pods.join("burstable").join(format!("pod{uid}")).join("c1");
    std::fs::create_dir_all(&container).unwrap();
    assert_eq!(
        find_pods_cgroup(tmp.path()),
        Some(PathBuf::from("kubepods"))
    );
    let resolver = Resolver::new(pods.clone());
    let id = cgroup_id(&container).unwrap();
    assert_eq!(resolver.pod_of(id).as_deref(), Some(uid));
    let qos = cgroup_id(&pods.join("burstable")).unwrap();
    assert_eq!(resolver.pod_of(qos), None);
    assert_eq!(
        find_pod(&pods, uid),
        Some(container.parent().unwrap().to_owned())
    );

    // A pod that appears later is learnt on its first lookup (after the rescan interval).
    let other = "00000000-1111-2222-3333-444444444444";
    let late = pods.join(format!("pod{other}")).join("c");
    std::fs::create_dir_all(&late).unwrap();
    std::thread::sleep(RESCAN_INTERVAL);
    assert_eq!(
        resolver.pod_of(cgroup_id(&late).unwrap()).as_deref(),
        Some(other)
    );
    // An id of nothing in the tree is no pod's.
    assert_eq!(resolver.pod_of(1), None);
    assert!(resolver.len() >= 5);
}
