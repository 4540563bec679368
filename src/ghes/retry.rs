//! When and how long to wait before trying a GHES request again: jittered exponential backoff
//! for transient failures, and the server's own `Retry-After` / `x-ratelimit-reset` for limits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use rand::Rng;

/// Retry settings of one client.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt (transient failures and rate limits together).
    pub max_retries: u32,
    /// First backoff delay.
    pub base_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest server-requested wait the client sits out itself; a longer one is returned to the
    /// caller as `RateLimited` so the controller can requeue instead of blocking a worker.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `attempt` (0-based): uniformly random in `[d/2, d]` with
    /// `d = min(base * 2^attempt, max)`, so many clients failing together spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(20));
        let ceiling = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let floor = ceiling / 2;
        if ceiling <= floor {
            return ceiling;
        }
        let span = ceiling - floor;
        floor + span.mul_f64(rand::rng().random_range(0.0..=1.0))
    }
}

/// How long GHES asks the client to wait, from `Retry-After` (seconds or an HTTP date) or, when
/// `x-ratelimit-remaining` is `0`, from `x-ratelimit-reset` (Unix seconds).
pub fn server_requested_wait(headers: &HeaderMap) -> Option<Duration> {
    server_requested_wait_at(headers, SystemTime::now())
}

fn server_requested_wait_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(value) = header_str(headers, "retry-after") {
        if let Ok(seconds) = value.trim().parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(date) = httpdate_to_system_time(value) {
            return Some(date.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    if rate_limit_exhausted(headers) {
        let reset = header_str(headers, "x-ratelimit-reset")?
            .trim()
            .parse::<u64>()
            .ok()?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        // One extra second: the reset is rounded down to whole seconds.
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    None
}

/// Whether the response says the rate limit is used up (`x-ratelimit-remaining: 0`).
pub fn rate_limit_exhausted(headers: &HeaderMap) -> bool {
    header_str(headers, "x-ratelimit-remaining").is_some_and(|value| value.trim() == "0")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form `Retry-After` dates take.
fn httpdate_to_system_time(value: &str) -> Result<SystemTime, ()> {
    let parsed = jiff::fmt::rfc2822::parse(value.trim()).map_err(|_| ())?;
    let seconds = u64::try_from(parsed.timestamp().as_second()).map_err(|_| ())?;
    Ok(UNIX_EPOCH + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn backoff_grows_and_stays_in_bounds() {
        let policy = RetryPolicy::default();
        for attempt in 0..30 {
            let delay = policy.backoff(attempt);
            let ceiling = policy
                .base_delay
                .saturating_mul(2u32.saturating_pow(attempt.min(20)))
                .min(policy.max_delay);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(
            server_requested_wait_at(&headers, now),
            Some(Duration::from_secs(3))
        );
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Tue, 14 Nov 2023 22:13:30 GMT"),
        );
        assert_eq!(
            server_requested_wait_at(&headers, now),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn ratelimit_reset_counts_only_when_exhausted() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1700000005"));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
        assert_eq!(server_requested_wait_at(&headers, now), None);
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(
            server_requested_wait_at(&headers, now),
            Some(Duration::from_secs(6))
        );
    }
}
