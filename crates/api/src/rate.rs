//! The per-account request rate limit: a token bucket per account, off unless configured.
//!
//! Every authenticated request (REST, or an agent's action through the event bridge) takes
//! one token from its account's bucket; an empty bucket answers Twilio's 429 (code 20429)
//! with `Retry-After`, and the request changes nothing. Buckets exist only for accounts that
//! authenticated, so a stranger's guesses cannot grow the table.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use taskyard_engine::Sid;

/// The configured rate: `per_second` tokens refill each second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// The buckets of every account seen so far.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<Sid, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit: RateLimit {
                per_second: limit.per_second,
                // A bucket smaller than one token would refuse everything.
                burst: limit.burst.max(1.0),
            },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `account` at `now`; when there is none, how long until there is.
    pub fn take(&self, account: Sid, now: Instant) -> Result<(), Duration> {
        let RateLimit { per_second, burst } = self.limit;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.entry(account).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> Sid {
        Sid::parse_with(&format!("AC{:032x}", n), "AC").expect("sid")
    }

    #[test]
    fn a_burst_then_the_rate() {
        let l = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take(sid(1), t0), Ok(()));
        }
        let wait = l.take(sid(1), t0).expect_err("the bucket is empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // Another account has a bucket of its own.
        assert_eq!(l.take(sid(2), t0), Ok(()));
        // A tenth of a second refills one token, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.take(sid(1), t1), Ok(()));
        assert!(l.take(sid(1), t1).is_err());
        // A long pause refills up to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.take(sid(1), t2), Ok(()));
        }
        assert!(l.take(sid(1), t2).is_err());
    }

    #[test]
    fn a_burst_below_one_still_admits_one_request() {
        let l = RateLimiter::new(RateLimit {
            per_second: 0.5,
            burst: 0.0,
        });
        let t0 = Instant::now();
        assert_eq!(l.take(sid(1), t0), Ok(()));
        assert_eq!(l.take(sid(1), t0), Err(Duration::from_secs(2)));
    }
}
