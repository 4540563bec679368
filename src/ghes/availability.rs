//! Whether an account's GHES answers at all: a failure that is about the server, not the
//! request (no connection, a timeout, a stalled body, a 5xx), marks it unavailable once, and
//! from then on no request of the account is sent but one probe per backoff step. The probe's
//! success makes it available again, at once for every caller.
//!
//! This is what keeps one GHES that is down from costing anyone else their tokens: the
//! account's reconciles fail at once, without a request and without holding a worker, until
//! the probe says the server is back.

use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::GhesError;
use super::retry::RetryPolicy;

/// The backoff between probes of an unavailable server: from about a second, doubling, with
/// jitter, to at most two minutes.
pub const PROBE_BACKOFF: RetryPolicy = RetryPolicy {
    max_retries: 0,
    base_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(120),
    max_wait: Duration::from_secs(120),
};

/// One account's view of whether its GHES answers.
#[derive(Debug)]
pub struct Availability {
    state: Mutex<Option<Outage>>,
    /// Counts every change (down, a failed probe, back up), for those who wait on one.
    changes: watch::Sender<u64>,
    backoff: RetryPolicy,
}

/// Since when and why a server does not answer, and when it is probed next.
#[derive(Clone, Debug, PartialEq)]
pub struct Outage {
    /// When the first failure was seen.
    pub since: Timestamp,
    /// What the last failure was (never a secret: the client's own error message).
    pub message: String,
    /// Probes sent and failed so far.
    pub probes: u32,
    /// When the next probe is sent (wall clock, for status).
    pub next_probe: Timestamp,
    /// When the next probe is sent (monotonic, for waiting).
    pub next_probe_at: Instant,
}

impl Outage {
    /// The error of a request that is not sent because of this outage.
    pub fn error(&self) -> GhesError {
        GhesError::Unavailable {
            since: self.since,
            message: self.message.clone(),
            next_probe: self.next_probe,
        }
    }

    /// How long until the next probe.
    pub fn until_probe(&self) -> Duration {
        self.next_probe_at.saturating_duration_since(Instant::now())
    }
}

impl Default for Availability {
    fn default() -> Self {
        Self::new(PROBE_BACKOFF)
    }
}

impl Availability {
    /// Available, probing with `backoff` once it is not.
    pub fn new(backoff: RetryPolicy) -> Self {
        Self {
            state: Mutex::new(None),
            changes: watch::Sender::new(0),
            backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current outage, `None` while the server answers.
    pub fn outage(&self) -> Option<Outage> {
        self.lock().clone()
    }

    /// Fails with [`GhesError::Unavailable`] while the server is marked unavailable.
    pub fn check(&self) -> Result<(), GhesError> {
        match &*self.lock() {
            Some(outage) => Err(outage.error()),
            None => Ok(()),
        }
    }

    /// A request failed in a way that is about the server (`error` is transient): marks it
    /// unavailable, once. Later failures while it is unavailable change nothing: only the
    /// probes move the backoff on.
    pub fn failed(&self, error: &GhesError) {
        let mut state = self.lock();
        if state.is_some() {
            return;
        }
        let wait = self.backoff.backoff(0);
        *state = Some(Outage {
            since: Timestamp::now(),
            message: error.to_string(),
            probes: 0,
            next_probe: wall_after(wait),
            next_probe_at: Instant::now() + wait,
        });
        drop(state);
        tracing::warn!(
            error = %error,
            next_probe_ms = wait.as_millis() as u64,
            "GHES does not answer: the account's requests stop until a probe succeeds"
        );
        self.changes.send_modify(|count| *count += 1);
    }

    /// The probe failed too: the next one waits one backoff step longer.
    pub fn probe_failed(&self, error: &GhesError) {
        let mut state = self.lock();
        let Some(outage) = state.as_mut() else {
            return;
        };
        outage.probes = outage.probes.saturating_add(1);
        let wait = self.backoff.backoff(outage.probes);
        outage.message = error.to_string();
        outage.next_probe = wall_after(wait);
        outage.next_probe_at = Instant::now() + wait;
        let probes = outage.probes;
        drop(state);
        tracing::info!(
            error = %error,
            probes,
            next_probe_ms = wait.as_millis() as u64,
            "GHES probe failed"
        );
        self.changes.send_modify(|count| *count += 1);
    }

    /// The probe was answered: the server is available again. Returns whether it was not.
    pub fn recovered(&self) -> bool {
        let was = self.lock().take();
        if let Some(outage) = &was {
            tracing::info!(
                since = %outage.since,
                probes = outage.probes + 1,
                "GHES answers again: the account's requests resume"
            );
            self.changes.send_modify(|count| *count += 1);
        }
        was.is_some()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

fn wall_after(wait: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(wait)
        .ok()
        .and_then(|wait| Timestamp::now().checked_add(wait).ok())
        .unwrap_or_else(Timestamp::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> GhesError {
        GhesError::Transient {
            status: None,
            message: "GET /api/v3/authorizations: connection refused".into(),
            outcome_unknown: false,
        }
    }

    #[tokio::test]
    async fn marked_once_probed_with_growing_steps_and_cleared_by_a_probe() {
        let availability = Availability::new(RetryPolicy {
            max_retries: 0,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_wait: Duration::from_secs(8),
        });
        let mut changes = availability.subscribe();
        assert!(availability.check().is_ok());
        availability.failed(&down());
        let first = availability.outage().expect("down");
        assert_eq!(first.probes, 0);
        assert!(first.until_probe() <= Duration::from_secs(1));
        assert!(changes.has_changed().unwrap_or(false));
        changes.mark_unchanged();
        // Another failure while down changes nothing: one outage, one schedule.
        availability.failed(&down());
        assert_eq!(availability.outage(), Some(first.clone()));
        assert!(!changes.has_changed().unwrap_or(true));
        let refused = availability.check().expect_err("refused while down");
        assert_eq!(refused.reason(), "GhesUnavailable");
        assert!(refused.to_string().contains("connection refused"));
        for probes in 1..6 {
            availability.probe_failed(&down());
            let outage = availability.outage().expect("still down");
            assert_eq!(outage.probes, probes);
            let ceiling = Duration::from_secs(1 << probes.min(3));
            assert!(outage.until_probe() <= ceiling, "{probes}: {outage:?}");
            assert!(outage.until_probe() >= ceiling / 2 - Duration::from_millis(50));
        }
        assert!(availability.recovered());
        assert!(availability.check().is_ok());
        assert!(!availability.recovered(), "recovered once");
    }
}
