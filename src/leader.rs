//! Leader election through a `coordination.k8s.io/v1` Lease, so that two replicas never both
//! write: only the instance holding the Lease runs the controllers; the others stand by.
//!
//! The protocol is client-go's, with the Lease's `resourceVersion` as the only lock (optimistic
//! concurrency: an update or create that answers 409 means another instance got there first):
//!
//! - **Acquire** when the Lease is absent (create), has no holder (released), is ours already
//!   (a restarted container with the same pod name), or has expired. Expired means both that
//!   `renewTime + leaseDurationSeconds` is in the past by this instance's clock *and* that this
//!   instance has seen the Lease unchanged for `leaseDurationSeconds` by its own monotonic
//!   clock: a standby whose wall clock runs ahead cannot take a live Lease over. Taking the
//!   Lease from another holder increments `leaseTransitions`.
//! - **Renew** every renew period while leading; after a failure, retry every retry period.
//! - **Lose** the Lease when another instance holds it, it was deleted, or no renewal succeeded
//!   for `leaseDuration − retryPeriod` (the renew deadline, measured from the start of the last
//!   successful renewal): the controllers (in a task of their own, so that no reconcile delays
//!   a renewal) are aborted at once, before any standby can see the
//!   Lease expire, and [`run_while_leading`] returns the error so the process exits non-zero
//!   and Kubernetes restarts it as a fresh standby.
//! - **Release** on graceful shutdown, after the controllers stopped: clear `holderIdentity` so
//!   a standby takes over at its next poll instead of waiting for the Lease to expire.

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::admin::{Health, Phase};
use crate::metrics::Metrics;

/// Settings of the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This instance's name in `holderIdentity`; unique among the replicas.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_period: Duration,
    /// How often a standby tries to acquire, and a leader retries a failed renewal.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Defaults: 15 s Lease, renewed every 5 s, retries every 2 s.
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }

    /// How long a leader keeps leading without a successful renewal: the Lease duration less
    /// one retry period, so it stops before any standby can see the Lease expire.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration.saturating_sub(self.retry_period)
    }

    /// Checks that the periods fit in the Lease duration.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_duration.as_secs() < 2 || self.lease_duration.as_secs() > i32::MAX as u64 {
            return Err("the lease duration must be at least 2 seconds".into());
        }
        if self.retry_period.is_zero() || self.retry_period >= self.lease_duration {
            return Err("the retry period must be shorter than the lease duration".into());
        }
        if self.renew_period.is_zero() || self.renew_period >= self.renew_deadline() {
            return Err(
                "the renew period must be shorter than the lease duration minus the retry period"
                    .into(),
            );
        }
        if self.name.is_empty() || self.namespace.is_empty() || self.identity.is_empty() {
            return Err("the lease name, its namespace and the identity must not be empty".into());
        }
        Ok(())
    }
}

/// This instance's identity: the pod name when known, else the host name with a random suffix
/// (two processes on one host must differ).
pub fn default_identity(instance: Option<&str>) -> String {
    if let Some(instance) = instance.map(str::trim).filter(|i| !i.is_empty()) {
        return instance.to_owned();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ghes-oauth-operator".to_owned());
    let suffix: String = {
        use rand::Rng;
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(6)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect()
    };
    format!("{host}-{suffix}")
}

/// Why this instance stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum LeaseLost {
    /// Another instance holds the Lease now.
    #[error("lost the leader Lease: {holder} holds it now")]
    TakenOver {
        /// The new holder.
        holder: String,
    },
    /// Someone deleted the Lease.
    #[error("lost the leader Lease: it was deleted")]
    Deleted,
    /// No renewal succeeded in time.
    #[error(
        "lost the leader Lease: no renewal succeeded for {}s (last error: {last_error})",
        deadline.as_secs()
    )]
    NotRenewed {
        /// The renew deadline.
        deadline: Duration,
        /// The last failure.
        last_error: String,
    },
}

/// What one look at the Lease found.
enum Attempt {
    /// This instance holds the Lease (as this object).
    Holding(Box<Lease>),
    /// Another instance holds it.
    Held { holder: Option<String> },
}

/// The Lease as last seen, and when it last changed by this instance's monotonic clock.
struct Observed {
    resource_version: Option<String>,
    since: Instant,
}

/// One instance's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
    /// The Lease as this instance last wrote it, while leading.
    held: Option<Lease>,
    /// When the request that last acquired or renewed the Lease started.
    renewed_at: Option<Instant>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("settings", &self.settings)
            .field("leading", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// An elector for `settings` (call [`LeaseSettings::validate`] first).
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
            held: None,
            renewed_at: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// Waits until this instance holds the Lease, trying every retry period; `on_standby` hears
    /// who holds it meanwhile. Cancel it by dropping the future.
    pub async fn acquire(&mut self, mut on_standby: impl FnMut(Option<&str>)) {
        let mut last_holder: Option<Option<String>> = None;
        loop {
            let started = Instant::now();
            match self.try_acquire().await {
                Ok(Attempt::Holding(lease)) => {
                    self.renewed_at = Some(started);
                    tracing::info!(
                        lease = %self.lease_path(),
                        identity = %self.settings.identity,
                        "acquired the leader Lease"
                    );
                    self.held = Some(*lease);
                    return;
                }
                Ok(Attempt::Held { holder }) => {
                    if last_holder.as_ref() != Some(&holder) {
                        tracing::info!(
                            lease = %self.lease_path(),
                            leader = holder.as_deref().unwrap_or("-"),
                            "standing by while another instance leads"
                        );
                    }
                    on_standby(holder.as_deref());
                    last_holder = Some(holder);
                }
                Err(error) => {
                    tracing::warn!(lease = %self.lease_path(), %error, "cannot read or take the leader Lease");
                }
            }
            tokio::time::sleep(self.settings.retry_period).await;
        }
    }

    /// One attempt to take the Lease (free, ours or expired); `true` when this instance holds
    /// it now, to [`hold`](Self::hold) next.
    pub async fn try_take(&mut self) -> Result<bool, String> {
        let started = Instant::now();
        match self.try_acquire().await? {
            Attempt::Holding(lease) => {
                self.renewed_at = Some(started);
                self.held = Some(*lease);
                Ok(true)
            }
            Attempt::Held { .. } => Ok(false),
        }
    }

    /// Whether the Lease as listed may be taken now: no holder, this instance, or expired.
    pub fn may_take(&self, lease: &Lease, now: Timestamp) -> bool {
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let unchanged_for = self
            .observed
            .as_ref()
            .map_or(Duration::ZERO, |seen| seen.since.elapsed());
        holder.is_none()
            || holder.as_deref() == Some(self.settings.identity.as_str())
            || expired(&self.settings, &spec, now, unchanged_for)
    }

    /// Renews the Lease while leading; returns only when leadership is lost. Cancel it by
    /// dropping the future (then [`release`](Self::release) the Lease).
    pub async fn hold(&mut self) -> LeaseLost {
        let deadline_after = self.settings.renew_deadline();
        // Count from the start of the request that wrote the last `renewTime`, never later.
        let mut renewed_at = self.renewed_at.unwrap_or_else(Instant::now);
        let mut last_error = String::from("none");
        let mut wait = self.settings.renew_period;
        loop {
            let deadline = renewed_at + deadline_after;
            let wake = Instant::now() + wait;
            if wake >= deadline {
                tokio::time::sleep_until(deadline.into()).await;
                return LeaseLost::NotRenewed {
                    deadline: deadline_after,
                    last_error,
                };
            }
            tokio::time::sleep_until(wake.into()).await;
            let started = Instant::now();
            let remaining = deadline.saturating_duration_since(started);
            match tokio::time::timeout(remaining, self.renew()).await {
                Ok(Ok(())) => {
                    renewed_at = started;
                    self.renewed_at = Some(started);
                    wait = self.settings.renew_period;
                    tracing::debug!(lease = %self.lease_path(), "renewed the leader Lease");
                }
                Ok(Err(RenewError::Lost(lost))) => return lost,
                Ok(Err(RenewError::Failed(error))) => {
                    tracing::warn!(lease = %self.lease_path(), %error, "cannot renew the leader Lease");
                    last_error = error;
                    wait = self.settings.retry_period;
                }
                Err(_) => {
                    last_error = "the renewal timed out".into();
                    wait = Duration::ZERO;
                }
            }
        }
    }

    /// Gives the Lease up (after the controllers stopped), so that a standby takes over at
    /// once. Best effort: a failure leaves the Lease to expire.
    pub async fn release(&mut self) {
        let Some(mut lease) = self.held.take() else {
            return;
        };
        let timeout = self.settings.retry_period.max(Duration::from_secs(2));
        for _ in 0..3 {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
                return;
            }
            spec.holder_identity = None;
            // A released Lease is free at once; the short duration tells clients that do not
            // treat an empty holder as free (older client-go) that it expires right away.
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            let name = self.settings.name.clone();
            let written = tokio::time::timeout(
                timeout,
                self.api.replace(&name, &PostParams::default(), &lease),
            )
            .await;
            match written {
                Ok(Ok(_)) => {
                    tracing::info!(lease = %self.lease_path(), "released the Lease");
                    return;
                }
                Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                    match tokio::time::timeout(timeout, self.api.get_opt(&name)).await {
                        Ok(Ok(Some(fresh))) => lease = fresh,
                        _ => return,
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(lease = %self.lease_path(), %error, "cannot release the leader Lease; it will expire");
                    return;
                }
                Err(_) => {
                    tracing::warn!(lease = %self.lease_path(), "releasing the leader Lease timed out; it will expire");
                    return;
                }
            }
        }
    }

    fn lease_path(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.name)
    }

    fn request_timeout(&self) -> Duration {
        self.settings.renew_deadline()
    }

    /// One look at the Lease: take it if it is free, ours or expired.
    async fn try_acquire(&mut self) -> Result<Attempt, String> {
        let name = self.settings.name.clone();
        let timeout = self.request_timeout();
        let current = tokio::time::timeout(timeout, self.api.get_opt(&name))
            .await
            .map_err(|_| "reading the Lease timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        let now = Timestamp::now();
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(taken_spec(&self.settings, now, None)),
            };
            return match tokio::time::timeout(
                timeout,
                self.api.create(&PostParams::default(), &lease),
            )
            .await
            .map_err(|_| "creating the Lease timed out".to_owned())?
            {
                Ok(created) => Ok(Attempt::Holding(Box::new(created))),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    Ok(Attempt::Held { holder: None })
                }
                Err(error) => Err(error.to_string()),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if !self.may_take(&lease, now) {
            return Ok(Attempt::Held { holder });
        }
        let ours = holder.as_deref() == Some(self.settings.identity.as_str());
        lease.spec = Some(if ours {
            renewed_spec(&self.settings, spec, now)
        } else {
            taken_spec(&self.settings, now, Some(&spec))
        });
        match tokio::time::timeout(
            timeout,
            self.api.replace(&name, &PostParams::default(), &lease),
        )
        .await
        .map_err(|_| "updating the Lease timed out".to_owned())?
        {
            Ok(updated) => {
                if let Some(previous) = holder.filter(|_| !ours) {
                    tracing::info!(previous = %previous, "took over the expired leader Lease");
                }
                Ok(Attempt::Holding(Box::new(updated)))
            }
            // Another instance wrote first: it won this round.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Held { holder }),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Writes a new `renewTime` on the held Lease.
    async fn renew(&mut self) -> Result<(), RenewError> {
        let name = self.settings.name.clone();
        let Some(mut lease) = self.held.clone() else {
            return Err(RenewError::Lost(LeaseLost::Deleted));
        };
        let spec = lease.spec.take().unwrap_or_default();
        lease.spec = Some(renewed_spec(&self.settings, spec, Timestamp::now()));
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.held = Some(updated);
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                Err(RenewError::Lost(LeaseLost::Deleted))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Changed since our last write: still ours (someone edited a label), or lost.
                let fresh = self
                    .api
                    .get_opt(&name)
                    .await
                    .map_err(|error| RenewError::Failed(error.to_string()))?
                    .ok_or(RenewError::Lost(LeaseLost::Deleted))?;
                let holder = fresh
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                if holder == self.settings.identity {
                    self.held = Some(fresh);
                    Err(RenewError::Failed(
                        "the Lease changed since the last renewal; renewing again".into(),
                    ))
                } else {
                    Err(RenewError::Lost(LeaseLost::TakenOver {
                        holder: if holder.is_empty() {
                            "nobody".into()
                        } else {
                            holder
                        },
                    }))
                }
            }
            Err(error) => Err(RenewError::Failed(error.to_string())),
        }
    }

    /// Remembers when the Lease last changed, by this instance's monotonic clock: from a read
    /// of its own, or from a listing someone else made.
    pub fn observe(&mut self, lease: &Lease) {
        let version = lease.metadata.resource_version.clone();
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|seen| seen.resource_version != version);
        if changed {
            self.observed = Some(Observed {
                resource_version: version,
                since: Instant::now(),
            });
        }
    }
}

/// Whether the holder let the Lease expire: by this instance's wall clock *and* by how long this
/// instance has seen the Lease unchanged (`unchanged_for`), so that a fast wall clock alone
/// cannot end a live leader's term.
fn expired(
    settings: &LeaseSettings,
    spec: &LeaseSpec,
    now: Timestamp,
    unchanged_for: Duration,
) -> bool {
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(settings.lease_duration, Duration::from_secs);
    let by_clock = spec.renew_time.as_ref().is_none_or(|renewed| {
        Duration::try_from(now.duration_since(renewed.0)).is_ok_and(|age| age > duration)
    });
    by_clock && unchanged_for > duration
}

fn duration_seconds(settings: &LeaseSettings) -> i32 {
    i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX)
}

/// The spec of a Lease this instance takes: new (`previous` is `None`), or from another holder
/// or a released Lease, which counts as a transition.
fn taken_spec(settings: &LeaseSettings, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
    let transitions = previous.map_or(0, |p| p.lease_transitions.unwrap_or(0).saturating_add(1));
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(duration_seconds(settings)),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..previous.cloned().unwrap_or_default()
    }
}

/// The spec of a Lease this instance renews.
fn renewed_spec(settings: &LeaseSettings, spec: LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(duration_seconds(settings)),
        renew_time: Some(MicroTime(now)),
        acquire_time: spec.acquire_time.clone().or(Some(MicroTime(now))),
        ..spec
    }
}

/// A renewal that did not succeed.
enum RenewError {
    /// The Lease is gone or someone else's.
    Lost(LeaseLost),
    /// Try again (until the renew deadline).
    Failed(String),
}

/// Resolves once `stop` says so (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Runs `controllers` in a task of their own while this one renews the Lease: a reconcile
/// that keeps its thread for a while (a large page parsed at once, any step on a starved
/// machine) never delays a renewal, as it would if both were polled by one task. Returns
/// `None` when the controllers ended, or why the Lease was lost: then they are aborted, and
/// gone, before this returns. Dropping this future aborts them too.
pub async fn hold_while<F>(elector: &mut LeaderElector, controllers: F) -> Option<LeaseLost>
where
    F: Future<Output = ()> + Send + 'static,
{
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(tokio::spawn(controllers));
    tokio::select! {
        ended = &mut task.0 => {
            // A panic goes on up, as it did when this task polled the controllers itself.
            if let Err(error) = ended
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
            None
        }
        lost = elector.hold() => {
            task.0.abort();
            let _ = (&mut task.0).await;
            Some(lost)
        }
    }
}

/// Waits for the Lease, runs the controllers that `start` makes while holding it, and releases
/// it after they stopped. `start` gets a future that resolves on shutdown, and the controllers
/// it returns must stop (gracefully) when it does.
///
/// Returns `Ok` after a graceful shutdown (as a standby, or after releasing the Lease), and
/// `Err` when leadership was lost: the controllers are dropped at once, mid-reconcile if need
/// be (every reconcile step is safe to interrupt), and the caller should exit non-zero.
pub async fn run_while_leading<F, Fut>(
    mut elector: LeaderElector,
    health: &Health,
    metrics: &Metrics,
    shutdown: watch::Receiver<bool>,
    start: F,
) -> Result<(), LeaseLost>
where
    F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    metrics.set_leader(false);
    let acquired = tokio::select! {
        () = elector.acquire(|leader| health.set(Phase::Standby { leader: leader.map(str::to_owned) })) => true,
        () = stopped(shutdown.clone()) => false,
    };
    if !acquired {
        return Ok(());
    }
    metrics.set_leader(true);
    health.set(Phase::Syncing);
    let lost = hold_while(&mut elector, start(Box::pin(stopped(shutdown)))).await;
    metrics.set_leader(false);
    match lost {
        None => {
            elector.release().await;
            Ok(())
        }
        Some(lost) => Err(lost),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LeaseSettings {
        LeaseSettings::new("ops".into(), "lease".into(), "me".into())
    }

    #[test]
    fn defaults_are_valid_and_stop_before_expiry() {
        let settings = settings();
        assert_eq!(settings.validate(), Ok(()));
        assert_eq!(settings.renew_deadline(), Duration::from_secs(13));
    }

    #[test]
    fn periods_must_fit_in_the_lease() {
        let mut slow_renewal = settings();
        slow_renewal.renew_period = Duration::from_secs(14);
        assert!(slow_renewal.validate().is_err());
        let mut slow_retry = settings();
        slow_retry.retry_period = Duration::from_secs(15);
        assert!(slow_retry.validate().is_err());
    }

    #[test]
    fn identity_is_the_instance_or_a_unique_host_name() {
        assert_eq!(default_identity(Some("pod-7")), "pod-7");
        assert_ne!(default_identity(None), default_identity(Some("  ")));
    }

    #[test]
    fn taking_over_counts_a_transition_renewing_does_not() {
        let settings = settings();
        let now = Timestamp::now();
        let previous = LeaseSpec {
            holder_identity: Some("other".into()),
            lease_transitions: Some(2),
            lease_duration_seconds: Some(30),
            acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            ..LeaseSpec::default()
        };
        let taken = taken_spec(&settings, now, Some(&previous));
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        assert_eq!(taken_spec(&settings, now, None).lease_transitions, Some(0));
        let renewed = renewed_spec(&settings, taken.clone(), Timestamp::now());
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }

    #[test]
    fn expiry_needs_the_clock_and_the_observation_to_agree() {
        let settings = settings();
        let now = Timestamp::now();
        let spec = |age_secs: i64| LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(now - jiff::SignedDuration::from_secs(age_secs))),
            ..LeaseSpec::default()
        };
        let long = Duration::from_secs(16);
        let short = Duration::from_secs(3);
        assert!(expired(&settings, &spec(20), now, long));
        assert!(
            !expired(&settings, &spec(20), now, short),
            "just started watching"
        );
        assert!(!expired(&settings, &spec(5), now, long), "renewed recently");
        let no_renewal = LeaseSpec {
            renew_time: None,
            ..spec(0)
        };
        assert!(expired(&settings, &no_renewal, now, long));
    }
}
