use super::*;

fn gone() -> io::Result<Vec<u8>> {
    Err(io::Error::from(io::ErrorKind::NotFound))
}

fn changed(judged: Judged<'_>) -> Option<Vec<u8>> {
    match judged {
        Judged::Changed(content) => Some(content.to_vec()),
        _ => None,
    }
}

fn reported(judged: Judged<'_>) -> Option<bool> {
    match judged {
        Judged::Failed { report, .. } => Some(report),
        _ => None,
    }
}

#[test]
fn the_same_content_is_unchanged_and_new_content_changed() {
    let mut seen = Seen::nothing();
    assert_eq!(changed(seen.judge(Ok(b"a".to_vec()), false)).unwrap(), b"a");
    assert!(matches!(
        seen.judge(Ok(b"a".to_vec()), false),
        Judged::Unchanged
    ));
    assert_eq!(changed(seen.judge(Ok(b"b".to_vec()), false)).unwrap(), b"b");

    let mut seen = Seen::acted_on(b"a".to_vec());
    assert!(matches!(
        seen.judge(Ok(b"a".to_vec()), false),
        Judged::Unchanged
    ));
}

#[test]
fn a_forced_read_is_changed_even_when_unchanged() {
    let mut seen = Seen::acted_on(b"a".to_vec());
    assert_eq!(changed(seen.judge(Ok(b"a".to_vec()), true)).unwrap(), b"a");
    assert!(matches!(
        seen.judge(Ok(b"a".to_vec()), false),
        Judged::Unchanged
    ));
}

#[test]
fn a_failure_is_reported_once_unless_forced() {
    for mut seen in [Seen::nothing(), Seen::acted_on(b"a".to_vec())] {
        assert_eq!(reported(seen.judge(gone(), false)), Some(true));
        assert_eq!(reported(seen.judge(gone(), false)), Some(false));
        assert_eq!(reported(seen.judge(gone(), true)), Some(true));
        assert_eq!(reported(seen.judge(gone(), false)), Some(false));
    }
}

#[test]
fn after_a_failure_the_file_is_acted_on_again_and_failing_again_is_news() {
    let mut seen = Seen::acted_on(b"a".to_vec());
    assert_eq!(reported(seen.judge(gone(), false)), Some(true));
    // The same content as before the failure is acted on again.
    assert_eq!(changed(seen.judge(Ok(b"a".to_vec()), false)).unwrap(), b"a");
    assert!(matches!(
        seen.judge(Ok(b"a".to_vec()), false),
        Judged::Unchanged
    ));
    assert_eq!(reported(seen.judge(gone(), false)), Some(true));
}

#[test]
fn a_read_larger_than_the_cap_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"12345").unwrap();
    assert_eq!(read_capped(&path, 5).unwrap(), b"12345");
    assert!(read_capped(&path, 4).is_err());
}

#[tokio::test]
async fn requests_force_a_read_and_the_watch_ends_with_its_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"a").unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(()).unwrap();
    tx.send(()).unwrap();
    drop(tx);
    let mut reads = Vec::new();
    let seen = Seen::acted_on(b"a".to_vec());
    watch(&path, 16, seen, None, Some(rx), |judged| {
        reads.push(changed(judged))
    })
    .await;
    assert_eq!(reads, [Some(b"a".to_vec()), Some(b"a".to_vec())]);
    watch(&path, 16, Seen::nothing(), None, None, |_| unreachable!()).await;
}
