//! A token bucket: `rate` requests per second on average, up to `burst` at once. Time is passed in,
//! so the arithmetic is tested without a clock.

use std::time::{Duration, Instant};

/// One bucket. Starts full.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket refilled at `rate` per second, holding at most `burst` (at least 1).
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token at `now`: `Ok` when there was one, else how long until there is.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.rate > 0.0 {
            Err(Duration::try_from_secs_f64((1.0 - self.tokens) / self.rate)
                .unwrap_or(Duration::MAX))
        } else {
            Err(Duration::MAX)
        }
    }

    /// Whether the bucket is full at `now` (it has been idle long enough to be forgotten).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 5, t0);
        for _ in 0..5 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert!(
            (wait.as_secs_f64() - 0.1).abs() < 1e-9,
            "one token every 100 ms: {wait:?}"
        );
        assert!(b.take(t0 + Duration::from_millis(99)).is_err());
        assert!(b.take(t0 + Duration::from_millis(101)).is_ok());
        assert!(b.take(t0 + Duration::from_millis(102)).is_err());
    }

    #[test]
    fn refills_up_to_the_burst_only() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100.0, 3, t0);
        for _ in 0..3 {
            b.take(t0).unwrap();
        }
        assert!(!b.is_full(t0));
        let later = t0 + Duration::from_secs(60);
        assert!(b.is_full(later));
        for _ in 0..3 {
            assert!(b.take(later).is_ok());
        }
        assert!(
            b.take(later).is_err(),
            "a minute idle gives the burst, no more"
        );
    }

    #[test]
    fn a_vanishing_rate_waits_forever_without_panicking() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1e-300, 1, t0);
        b.take(t0).unwrap();
        assert_eq!(b.take(t0), Err(Duration::MAX));
    }

    #[test]
    fn time_going_backwards_takes_nothing_extra() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = Bucket::new(1.0, 1, t0);
        b.take(t0).unwrap();
        assert!(b.take(t0 - Duration::from_secs(5)).is_err());
        assert!(b.take(t0 + Duration::from_millis(1001)).is_ok());
    }
}
