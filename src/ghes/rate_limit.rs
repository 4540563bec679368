//! Client-side request-rate limit: a token bucket per account, plus a pause that GHES can order
//! through `x-ratelimit-remaining: 0` / `x-ratelimit-reset` so no request is sent before the reset.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The longest a request queues for the bucket inside a reconcile. When the requests already
/// waiting would make it wait longer, it is handed back with the time its turn is due: a slow
/// account's queue never holds the workers that other accounts need.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);

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
    /// Requests sleeping for a permit.
    waiting: usize,
    /// The latest turn handed back to a request: turns are spaced one refill apart, so the
    /// requests handed back do not all return at once.
    last_turn: Option<Instant>,
}

/// A place among the requests waiting for a permit; leaving it (also by cancellation) frees it.
struct Waiting<'a>(&'a RateLimiter);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        state.waiting = state.waiting.saturating_sub(1);
    }
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
                waiting: 0,
                last_turn: None,
            }),
        }
    }

    /// The requests a second this limiter allows on average.
    pub fn per_second(&self) -> f64 {
        self.per_second
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

    /// Like [`acquire`](Self::acquire), but without holding the caller long: a pause GHES
    /// ordered that lasts longer than `max_pause`, or a queue of waiting requests longer than
    /// [`MAX_QUEUE_WAIT`], is not waited out. `Err` says when to come back: when the pause
    /// ends (`Paused`), or when this request's turn is due (`Queued`).
    pub async fn acquire_within(&self, max_pause: Duration) -> Result<Duration, Deferred> {
        let started = Instant::now();
        let mut queued = None;
        loop {
            let now = Instant::now();
            match self.try_take(now) {
                None => return Ok(started.elapsed()),
                Some((wait, true)) if wait > max_pause => return Err(Deferred::Paused(wait)),
                Some((wait, paused)) => {
                    if queued.is_none() && !paused {
                        queued = Some(self.queue(now).map_err(Deferred::Queued)?);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Joins the requests waiting for a permit, unless those already waiting would keep this
    /// one longer than [`MAX_QUEUE_WAIT`]: then `Err` says when its turn is due.
    fn queue(&self, now: Instant) -> Result<Waiting<'_>, Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let turn = Duration::from_secs_f64(1.0 / self.per_second);
        let ahead = state.waiting as f64 + 1.0 - state.available;
        let wait = Duration::from_secs_f64(ahead.max(0.0) / self.per_second);
        if wait <= MAX_QUEUE_WAIT {
            state.waiting += 1;
            return Ok(Waiting(self));
        }
        let due = match state.last_turn {
            Some(last) if last + turn > now + wait => last + turn,
            _ => now + wait,
        };
        state.last_turn = Some(due);
        Err(due - now)
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

/// Why [`RateLimiter::acquire_within`] did not wait, and how long until the caller may try
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    /// GHES ordered a pause that lasts this long.
    Paused(Duration),
    /// The requests already waiting come first: this one's turn is due in this long.
    Queued(Duration),
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
        let Err(Deferred::Paused(left)) = limiter.acquire_within(Duration::from_secs(60)).await
        else {
            panic!("not waited out");
        };
        assert!(left > Duration::from_secs(3590), "{left:?}");
        assert_eq!(started.elapsed(), Duration::ZERO, "returned at once");
        // A short pause is waited out as before.
        let limiter = RateLimiter::new(100.0, 10);
        limiter.pause_until(Instant::now() + Duration::from_secs(7));
        let waited = limiter.acquire_within(Duration::from_secs(60)).await;
        assert!(waited.is_ok_and(|w| w >= Duration::from_secs(7)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_queue_hands_requests_back_with_their_turns_spaced() {
        // One request a second, no burst beyond one: a slow account.
        let limiter = std::sync::Arc::new(RateLimiter::new(1.0, 1));
        assert_eq!(
            limiter.acquire_within(Duration::from_secs(60)).await,
            Ok(Duration::ZERO)
        );
        // The next waits its second, holding its caller.
        let held = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire_within(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        // Those behind it would wait longer than MAX_QUEUE_WAIT: handed back at once, each
        // told a later turn, one refill apart.
        let started = Instant::now();
        let mut turns = Vec::new();
        for _ in 0..3 {
            match limiter.acquire_within(Duration::from_secs(60)).await {
                Err(Deferred::Queued(turn)) => turns.push(turn),
                other => panic!("expected a turn, got {other:?}"),
            }
        }
        assert_eq!(started.elapsed(), Duration::ZERO, "nobody held");
        assert!(turns[0] >= Duration::from_secs(2), "{turns:?}");
        assert_eq!(turns[1] - turns[0], Duration::from_secs(1), "{turns:?}");
        assert_eq!(turns[2] - turns[1], Duration::from_secs(1), "{turns:?}");
        let waited = held.await.expect("task").expect("permit");
        assert!(waited >= Duration::from_millis(990), "{waited:?}");
        // A caller that gave up its place (cancelled) frees it.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(10),
            limiter.acquire_within(Duration::from_secs(60)),
        )
        .await;
        assert!(cancelled.is_err(), "still waiting when cancelled");
        assert_eq!(limiter.state.lock().expect("lock").waiting, 0);
    }
}
