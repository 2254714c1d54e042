use super::*;
use crate::upstream::{Answer, UpstreamError};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A service whose token PUT fails, counting the attempts.
#[derive(Default)]
struct Refusing {
    puts: AtomicUsize,
}

impl Forward for Refusing {
    async fn send(
        &self,
        _method: Method,
        _target: Uri,
        _headers: HeaderMap,
        _deadline: Option<std::time::Duration>,
    ) -> Result<Answer, UpstreamError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        Err(UpstreamError::Timeout)
    }
}

#[tokio::test]
async fn a_failed_fetch_is_not_repeated_by_every_request_behind_it() {
    let service = Refusing::default();
    let token = UpstreamToken::default();
    let metrics = Metrics::new();
    for _ in 0..5 {
        assert_eq!(
            token.get(&service, &metrics).await,
            Err(UpstreamFailure::Timeout)
        );
    }
    assert_eq!(
        service.puts.load(Ordering::SeqCst),
        1,
        "one fetch per second at most"
    );
    tokio::time::sleep(RETRY + Duration::from_millis(50)).await;
    assert!(token.get(&service, &metrics).await.is_err());
    assert_eq!(service.puts.load(Ordering::SeqCst), 2);
}
