#[test]
fn the_conntrack_summary_is_read() {
    let said = "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.";
    assert_eq!(super::deleted_count(said), 3);
    assert_eq!(super::deleted_count("garbage"), 0);
}
