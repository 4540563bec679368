//! Client-side request-rate limit: a token bucket per account, plus a pause that GHES can order
//! through `x-ratelimit-remaining: 0` / `x-ratelimit-reset` so no request is sent before the reset.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    available: f64,
    refilled_at: Instant,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests a second on average and `burst` at once.
    /// Non-positive or non-finite rates are raised to one request every ten seconds.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            0.1
        };
        let burst = f64::from(burst.max(1));
        Self {
            per_second,
            burst,
            state: Mutex::new(BucketState {
                available: burst,
                refilled_at: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits for permission to send one request; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        loop {
            match self.try_take(Instant::now()) {
                None => return started.elapsed(),
                Some((wait, _)) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Like [`acquire`](Self::acquire), but a pause GHES ordered that lasts longer than
    /// `max_pause` is not waited out: `Err` says how long it still lasts, so the caller can
    /// come back then instead of holding a worker.
    pub async fn acquire_within(&self, max_pause: Duration) -> Result<Duration, Duration> {
        let started = Instant::now();
        loop {
            match self.try_take(Instant::now()) {
                None => return Ok(started.elapsed()),
                Some((wait, true)) if wait > max_pause => return Err(wait),
                Some((wait, _)) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Stops all requests until `until` (GHES said the rate limit is exhausted).
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
    }

    /// Takes a permit when one is free, else says how long to wait before asking again, and
    /// whether that is a pause GHES ordered (`true`) or the bucket refilling.
    fn try_take(&self, now: Instant) -> Option<(Duration, bool)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = state.paused_until {
            if until > now {
                return Some((until - now, true));
            }
            state.paused_until = None;
        }
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        state.available = (state.available + elapsed * self.per_second).min(self.burst);
        state.refilled_at = now;
        if state.available >= 1.0 {
            state.available -= 1.0;
            None
        } else {
            Some((
                Duration::from_secs_f64((1.0 - state.available) / self.per_second),
                false,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let limiter = RateLimiter::new(5.0, 10);
        let started = Instant::now();
        for _ in 0..10 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
        // Ten more at five a second take two seconds.
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1990), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_every_request_until_the_reset() {
        let limiter = RateLimiter::new(100.0, 10);
        limiter.pause_until(Instant::now() + Duration::from_secs(7));
        let waited = limiter.acquire().await;
        assert!(waited >= Duration::from_secs(7), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_caller_waits_is_handed_back() {
        let limiter = RateLimiter::new(100.0, 10);
        limiter.pause_until(Instant::now() + Duration::from_secs(3600));
        let started = Instant::now();
        let left = limiter
            .acquire_within(Duration::from_secs(60))
            .await
            .expect_err("not waited out");
        assert!(left > Duration::from_secs(3590), "{left:?}");
        assert_eq!(started.elapsed(), Duration::ZERO, "returned at once");
        // A short pause is waited out as before.
        let limiter = RateLimiter::new(100.0, 10);
        limiter.pause_until(Instant::now() + Duration::from_secs(7));
        let waited = limiter.acquire_within(Duration::from_secs(60)).await;
        assert!(waited.is_ok_and(|w| w >= Duration::from_secs(7)));
    }
}
