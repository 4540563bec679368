//! Rotation: when a token is replaced, and the steps that replace it without a moment in
//! which the Secret holds a dead token.
//!
//! 1. [`Reconciliation::begin_rotation`] records the rotation in status: the current token moves to
//!    `status.previous` (no `revokeAfter` yet: the Secret still holds it) and `status.fingerprint`
//!    becomes the next rotation's. From here on a restart continues this rotation and never
//!    starts a second one.
//! 2. The run goes on as for a missing token: it creates one under the new fingerprint (found
//!    again by fingerprint after a crash) and switches the Secret to it.
//! 3. [`Reconciliation::settle_previous`] sets `revokeAfter` (the switch plus `rotation.gracePeriod`),
//!    restarts `rotation.restartTargets`, and once `revokeAfter` has passed, revokes the
//!    previous token and clears `status.previous`.
//!
//! One rotation costs exactly two GHES writes: one create, one delete.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;

use super::{Reconciliation, live_by_id, object_key};
use crate::api::{
    Authorization, AuthorizationSpec, AuthorizationStatus, PreviousAuthorization,
    RESTARTED_AT_ANNOTATION, ROTATE_ANNOTATION, RestartKind,
};
use crate::controller::account::registry::{AccountEntry, Snapshot};
use crate::controller::error::Result;
use crate::controller::fingerprint::Fingerprint;
use crate::controller::secret::FIELD_MANAGER;
use crate::ghes::Authorization as GhesAuthorization;

/// How often a previous token waiting for restarted workloads looks at their rollouts.
const ROLLOUT_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a workload's rollout has finished, as `kubectl rollout status` judges it: its
/// controller has seen the current spec, and every pod runs the current template and is
/// available.
mod rollout {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};

    pub(super) fn deployment_done(deployment: &Deployment) -> bool {
        let Some(status) = &deployment.status else {
            return false;
        };
        let wanted = deployment.spec.replicas.unwrap_or(1);
        let updated = status.updated_replicas.unwrap_or(0);
        observed(deployment.metadata.generation, status.observed_generation)
            && updated >= wanted
            && status.replicas.unwrap_or(0) <= updated
            && status.available_replicas.unwrap_or(0) >= updated
    }

    pub(super) fn stateful_set_done(set: &StatefulSet) -> bool {
        let Some(status) = &set.status else {
            return false;
        };
        let strategy = set.spec.update_strategy.as_ref();
        // Pods of an OnDelete set change only when someone deletes them: nothing to wait for.
        if strategy.and_then(|strategy| strategy.type_.as_deref()) == Some("OnDelete") {
            return true;
        }
        let wanted = set.spec.replicas.unwrap_or(1);
        let partition = strategy
            .and_then(|strategy| strategy.rolling_update.as_ref())
            .and_then(|rolling| rolling.partition)
            .unwrap_or(0);
        observed(set.metadata.generation, status.observed_generation)
            && status.updated_replicas.unwrap_or(0) >= (wanted - partition).max(0)
            && status.ready_replicas.unwrap_or(0) >= wanted
            && (partition > 0 || status.current_revision == status.update_revision)
    }

    pub(super) fn daemon_set_done(set: &DaemonSet) -> bool {
        let Some(status) = &set.status else {
            return false;
        };
        let desired = status.desired_number_scheduled;
        observed(set.metadata.generation, status.observed_generation)
            && status.updated_number_scheduled.unwrap_or(0) >= desired
            && status.number_available.unwrap_or(0) >= desired
    }

    /// Whether the controller has seen the current spec.
    fn observed(generation: Option<i64>, observed: Option<i64>) -> bool {
        observed.unwrap_or(0) >= generation.unwrap_or(0)
    }
}

/// What made a rotation due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// `rotation.period` has passed since the token was issued.
    Period,
    /// The token expires within its renewal window.
    Expiry,
    /// A new value of the `oauth.ghes.io/rotate` annotation.
    Requested,
    /// The Secret must be rendered anew (its template changed, or was added or removed) and
    /// the token it embeds cannot be read back.
    Template,
}

impl Trigger {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Period => "rotation.period has passed since it was issued",
            Self::Expiry => "it expires within its renewal window",
            Self::Requested => "the oauth.ghes.io/rotate annotation asked for it",
            Self::Template => {
                "spec.secret.template changed and the token in the Secret cannot be read back"
            }
        }
    }
}

/// When the token issued at `issued_at` (and expiring at `expires_at`, if GHES expires it) is
/// next rotated on schedule, and why: the earliest of `issued_at + rotation.period` and
/// `expires_at − renewBeforeExpiry`, the window capped at half the token's lifetime, each as
/// the rotation windows allow ([`schedule`]).
pub(crate) fn scheduled(
    spec: &AuthorizationSpec,
    issued_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
) -> Option<(Timestamp, Trigger)> {
    schedule(spec, issued_at, expires_at).map(|next| (next.at, next.trigger))
}

/// The next scheduled rotation, what made it due and what the windows made of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// When.
    pub at: Timestamp,
    /// Why.
    pub trigger: Trigger,
    /// What `rotation.windows` did to it.
    pub window: WindowEffect,
}

/// What `rotation.windows` did to a scheduled rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WindowEffect {
    /// No windows: it happens when due.
    None,
    /// Due inside a window, or moved to the next window (`describe` of the windows).
    Windowed(String),
    /// An expiry: no window opens in time, so it happens when due, outside the windows.
    ExpiryWins(String),
}

impl Schedule {
    /// What `status.nextRotationReason` says.
    pub(crate) fn describe(&self) -> String {
        let why = match self.trigger {
            Trigger::Expiry => "renewBeforeExpiry before the token expires",
            _ => "rotation.period after the token was issued",
        };
        match &self.window {
            WindowEffect::None => why.to_owned(),
            WindowEffect::Windowed(windows) => format!("{why}, in a rotation window ({windows})"),
            WindowEffect::ExpiryWins(windows) => format!(
                "{why}, outside the rotation windows ({windows}): none opens early enough \
                 before the expiry, and the expiry wins"
            ),
        }
    }
}

/// [`scheduled`], with what the windows made of it. A rotation that `period` makes due waits
/// for the next window; one that an expiry makes due waits only for a window that opens at
/// least half of its renewal window before the expiry, else happens when due.
pub(crate) fn schedule(
    spec: &AuthorizationSpec,
    issued_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
) -> Option<Schedule> {
    let windows = spec.rotation_windows();
    let windowed = |at: Timestamp| -> (Timestamp, WindowEffect) {
        match windows.and_then(|w| Some((w.next_open(at)?, w.describe()))) {
            Some((open, described)) => (open, WindowEffect::Windowed(described)),
            None => (at, WindowEffect::None),
        }
    };
    let periodic = spec
        .rotation_period()
        .zip(issued_at)
        .and_then(|(period, issued)| issued.checked_add(period).ok())
        .map(|due| {
            let (at, window) = windowed(due);
            Schedule {
                at,
                trigger: Trigger::Period,
                window,
            }
        });
    let expiring = expires_at.map(|expires| {
        let mut renewal = spec.renew_before_expiry();
        if let Some(lifetime) = issued_at
            .and_then(|issued| std::time::Duration::try_from(expires.duration_since(issued)).ok())
        {
            renewal = renewal.min(lifetime / 2);
        }
        let due = expires.checked_sub(renewal).unwrap_or(expires);
        let latest = expires.checked_sub(renewal / 2).unwrap_or(expires);
        let (at, window) = match windowed(due) {
            (open, WindowEffect::Windowed(described)) if open > latest => {
                (due, WindowEffect::ExpiryWins(described))
            }
            other => other,
        };
        Schedule {
            at,
            trigger: Trigger::Expiry,
            window,
        }
    });
    match (periodic, expiring) {
        (Some(p), Some(e)) => Some(if e.at < p.at { e } else { p }),
        (p, e) => p.or(e),
    }
}

/// The value of `authorization`'s rotate annotation, if set.
pub(super) fn rotate_annotation(authorization: &Authorization) -> Option<String> {
    authorization
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(ROTATE_ANNOTATION))
        .cloned()
}

impl Reconciliation<'_> {
    /// The value of the rotate annotation, if set.
    pub(super) fn rotate_annotation(&self) -> Option<String> {
        rotate_annotation(self.authorization)
    }

    /// Records the rotation of `live` in status before anything is created, and returns the
    /// fingerprint of the new token.
    pub(super) async fn begin_rotation(
        &mut self,
        live: &GhesAuthorization,
        fingerprint: &Fingerprint,
        trigger: Trigger,
    ) -> Result<Fingerprint> {
        let next = fingerprint.rotated(self.ctx.installation());
        tracing::info!(
            authorization = %object_key(self.authorization),
            id = live.id,
            reason = trigger.describe(),
            "rotating the token"
        );
        self.status = AuthorizationStatus {
            conditions: self.status.conditions.clone(),
            observed_generation: self.status.observed_generation,
            fingerprint: Some(next.to_string()),
            secret_name: self.status.secret_name.clone(),
            previous: Some(Box::new(PreviousAuthorization {
                authorization_id: i64::try_from(live.id).unwrap_or_default(),
                token_last_eight: self.stored.token_last_eight.clone(),
                revoke_after: None,
                restarted_at: None,
            })),
            // One annotation value rotates once, even when this rotation is interrupted.
            rotate_request: self
                .rotate_annotation()
                .or_else(|| self.stored.rotate_request.clone()),
            identity: self.status.identity.clone(),
            stranded_tokens: self.status.stranded_tokens.clone(),
            ..AuthorizationStatus::default()
        };
        self.write_status().await?;
        crate::failpoint::hit("rotate.recorded");
        Ok(next)
    }

    /// Whether this run continues a rotation: a previous token recorded, the Secret not yet
    /// switched.
    pub(super) fn rotating(&self) -> bool {
        self.stored
            .previous
            .as_ref()
            .is_some_and(|previous| previous.revoke_after.is_none())
    }

    /// After the Secret holds the current token: starts the previous token's grace period, and
    /// revokes it once the period is over. Returns when to look again for it.
    pub(super) async fn settle_previous(
        &mut self,
        entry: &AccountEntry,
        snapshot: &Snapshot,
    ) -> Result<Option<Timestamp>> {
        let Some(previous) = self.status.previous.clone() else {
            return Ok(None);
        };
        let now = Timestamp::now();
        let revoke_after = match &previous.revoke_after {
            Some(at) => at.0,
            None => {
                let at = now.checked_add(self.spec().grace_period()).unwrap_or(now);
                let restarted = self.restart_targets(now).await;
                if let Some(previous) = self.status.previous.as_mut() {
                    previous.revoke_after = Some(Time(at));
                    previous.restarted_at = restarted.then_some(Time(now));
                }
                crate::failpoint::hit("rotate.switched");
                at
            }
        };
        if revoke_after > now {
            return Ok(Some(revoke_after));
        }
        // The restarted pods may still run on the previous token: it waits for their rollouts,
        // at most rolloutTimeout.
        if let Some(restarted_at) = self
            .status
            .previous
            .as_ref()
            .and_then(|previous| previous.restarted_at.clone())
        {
            let pending = self.rollouts_pending().await;
            if !pending.is_empty() {
                let deadline = restarted_at
                    .0
                    .checked_add(self.spec().rollout_timeout())
                    .unwrap_or(restarted_at.0);
                if now < deadline {
                    return Ok(Some(now.checked_add(ROLLOUT_RECHECK).unwrap_or(now)));
                }
                self.publish(
                    EventType::Warning,
                    "RolloutTimeout",
                    format!(
                        "the rollout of {} did not finish within rotation.rolloutTimeout ({}); \
                         the previous token is revoked anyway",
                        pending.join(", "),
                        crate::api::duration::Duration::from(self.spec().rollout_timeout())
                    ),
                )
                .await;
            }
        }
        let id = u64::try_from(previous.authorization_id).unwrap_or_default();
        if let Some(live) = live_by_id(entry, Some(snapshot), id).await? {
            let note = format!(
                "revoked the previous GHES authorization {id} (token …{}) after its grace period",
                previous.token_last_eight.as_deref().unwrap_or("????????")
            );
            if self.revoke_proven(entry, &live, note).await? {
                crate::failpoint::hit("rotate.revoked");
            }
        }
        self.status.previous = None;
        Ok(None)
    }

    /// The restartTargets whose rollout has not finished, as `kubectl rollout status` judges
    /// it; one that is gone or cannot be read is not waited for.
    async fn rollouts_pending(&self) -> Vec<String> {
        let Some(rotation) = self.spec().rotation.as_ref() else {
            return Vec::new();
        };
        let client = &self.ctx.client;
        let mut pending = Vec::new();
        for target in &rotation.restart_targets {
            let name = target.name.as_str();
            let done = match target.kind {
                RestartKind::Deployment => {
                    Api::<Deployment>::namespaced(client.clone(), &self.namespace)
                        .get_opt(name)
                        .await
                        .map(|d| d.as_ref().is_none_or(rollout::deployment_done))
                }
                RestartKind::StatefulSet => {
                    Api::<StatefulSet>::namespaced(client.clone(), &self.namespace)
                        .get_opt(name)
                        .await
                        .map(|s| s.as_ref().is_none_or(rollout::stateful_set_done))
                }
                RestartKind::DaemonSet => {
                    Api::<DaemonSet>::namespaced(client.clone(), &self.namespace)
                        .get_opt(name)
                        .await
                        .map(|d| d.as_ref().is_none_or(rollout::daemon_set_done))
                }
            };
            match done {
                Ok(true) => {}
                Ok(false) => pending.push(format!("{:?} {name}", target.kind)),
                Err(error) => tracing::warn!(
                    authorization = %object_key(self.authorization),
                    target = name,
                    %error,
                    "cannot read a restart target's rollout; not waiting for it"
                ),
            }
        }
        pending
    }

    /// Restarts the workloads of `rotation.restartTargets` (the Secret holds the new token): a
    /// pod template annotation, as `kubectl rollout restart`. A target that cannot be patched
    /// gets a Warning Event and does not hold the rotation up. Whether any restarted.
    async fn restart_targets(&self, now: Timestamp) -> bool {
        let Some(targets) = self
            .spec()
            .rotation
            .as_ref()
            .map(|rotation| &rotation.restart_targets)
            .filter(|targets| !targets.is_empty())
        else {
            return false;
        };
        let patch = Patch::Merge(serde_json::json!({"spec": {"template": {"metadata": {
            "annotations": {RESTARTED_AT_ANNOTATION: now.to_string()}
        }}}}));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let client = &self.ctx.client;
        let mut restarted = Vec::new();
        for target in targets {
            let name = target.name.as_str();
            let result = match target.kind {
                RestartKind::Deployment => {
                    Api::<Deployment>::namespaced(client.clone(), &self.namespace)
                        .patch(name, &params, &patch)
                        .await
                        .map(drop)
                }
                RestartKind::StatefulSet => {
                    Api::<StatefulSet>::namespaced(client.clone(), &self.namespace)
                        .patch(name, &params, &patch)
                        .await
                        .map(drop)
                }
                RestartKind::DaemonSet => {
                    Api::<DaemonSet>::namespaced(client.clone(), &self.namespace)
                        .patch(name, &params, &patch)
                        .await
                        .map(drop)
                }
            };
            let what = format!("{:?} {name}", target.kind);
            match result {
                Ok(()) => restarted.push(what),
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.publish(
                        EventType::Warning,
                        "RestartTargetMissing",
                        format!(
                            "spec.rotation.restartTargets: {what} does not exist in this \
                             namespace; nothing restarted it for the new token"
                        ),
                    )
                    .await;
                }
                Err(error) => {
                    self.publish(
                        EventType::Warning,
                        "RestartFailed",
                        format!(
                            "spec.rotation.restartTargets: cannot restart {what}: {error}; it \
                             keeps the previous token until it restarts"
                        ),
                    )
                    .await;
                }
            }
        }
        if restarted.is_empty() {
            return false;
        }
        self.publish(
            EventType::Normal,
            "Restarted",
            format!("restarted {} for the new token", restarted.join(", ")),
        )
        .await;
        true
    }

    /// `status.nextRotationAt` for the current token: its schedule, not before a pending
    /// previous token is revoked.
    pub(super) fn next_rotation(&self) -> Option<(Timestamp, String)> {
        let issued_at = self.status.issued_at.as_ref().map(|t| t.0);
        let expires_at = self.status.expires_at.as_ref().map(|t| t.0);
        let next = schedule(self.spec(), issued_at, expires_at)?;
        let pending = self
            .status
            .previous
            .as_ref()
            .and_then(|previous| previous.revoke_after.as_ref())
            .map(|t| t.0);
        let at = pending.map_or(next.at, |pending| next.at.max(pending));
        Some((at, next.describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccountRef, Rotation};

    fn spec(rotation: Option<Rotation>) -> AuthorizationSpec {
        let mut spec: AuthorizationSpec = serde_json::from_value(serde_json::json!({
            "accountRef": {"name": "bot"},
            "scopes": ["repo"],
        }))
        .expect("spec");
        spec.rotation = rotation.map(Box::new);
        let _: &AccountRef = &spec.account_ref;
        spec
    }

    fn rotation(period: Option<&str>, renew: Option<&str>) -> Option<Rotation> {
        Some(Rotation {
            period: period.map(|p| p.parse().expect("duration")),
            grace_period: None,
            renew_before_expiry: renew.map(|r| r.parse().expect("duration")),
            restart_targets: Vec::new(),
            rollout_timeout: None,
            windows: None,
        })
    }

    #[test]
    fn a_rollout_is_done_as_kubectl_rollout_status_judges_it() {
        let deployment = |generation: i64, status: serde_json::Value| -> Deployment {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "d", "generation": generation},
                "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": status,
            }))
            .expect("Deployment")
        };
        let done = serde_json::json!({"observedGeneration": 3, "replicas": 2,
                                      "updatedReplicas": 2, "availableReplicas": 2});
        assert!(rollout::deployment_done(&deployment(3, done.clone())));
        // The controller has not seen the restart yet.
        assert!(!rollout::deployment_done(&deployment(4, done)));
        // Old pods still running beside the new ones.
        assert!(!rollout::deployment_done(&deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 3,
                               "updatedReplicas": 2, "availableReplicas": 3})
        )));
        // New pods not available yet.
        assert!(!rollout::deployment_done(&deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 2,
                               "updatedReplicas": 2, "availableReplicas": 1})
        )));
        let set = |strategy: serde_json::Value, status: serde_json::Value| -> StatefulSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "s", "generation": 2},
                "spec": {"replicas": 1, "selector": {}, "serviceName": "s", "template": {},
                         "updateStrategy": strategy},
                "status": status,
            }))
            .expect("StatefulSet")
        };
        let rolling = serde_json::json!({"type": "RollingUpdate"});
        assert!(rollout::stateful_set_done(&set(
            rolling.clone(),
            serde_json::json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                               "readyReplicas": 1, "currentRevision": "b", "updateRevision": "b"})
        )));
        assert!(!rollout::stateful_set_done(&set(
            rolling,
            serde_json::json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                               "readyReplicas": 1, "currentRevision": "a", "updateRevision": "b"})
        )));
        assert!(rollout::stateful_set_done(&set(
            serde_json::json!({"type": "OnDelete"}),
            serde_json::json!({"replicas": 1})
        )));
        let daemons: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ds", "generation": 5},
            "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 5, "desiredNumberScheduled": 3,
                       "currentNumberScheduled": 3, "numberMisscheduled": 0, "numberReady": 3,
                       "updatedNumberScheduled": 3, "numberAvailable": 2},
        }))
        .expect("DaemonSet");
        assert!(
            !rollout::daemon_set_done(&daemons),
            "one agent not available"
        );
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    /// Saturdays 02:00–04:00 UTC.
    fn saturday_nights(period: Option<&str>, renew: Option<&str>) -> AuthorizationSpec {
        let mut rotation = rotation(period, renew).expect("rotation");
        rotation.windows = Some(Box::new(
            serde_json::from_value(serde_json::json!({
                "allowed": [{"days": ["Sat"], "start": "02:00", "end": "04:00"}],
            }))
            .expect("windows"),
        ));
        spec(Some(rotation))
    }

    #[test]
    fn a_due_rotation_waits_for_its_window_and_an_expiry_does_not() {
        // Issued Wednesday 2026-01-07 12:00; due by period on Thursday 12:00: Saturday 02:00.
        let spec = saturday_nights(Some("24h"), None);
        let issued = at("2026-01-07T12:00:00Z");
        let next = schedule(&spec, Some(issued), None).expect("scheduled");
        assert_eq!(next.at, at("2026-01-10T02:00:00Z"));
        assert_eq!(next.trigger, Trigger::Period);
        assert_eq!(
            next.describe(),
            "rotation.period after the token was issued, in a rotation window (Sat 02:00–04:00 UTC)"
        );
        // Due inside the window: when due.
        let issued = at("2026-01-09T02:30:00Z");
        assert_eq!(
            scheduled(&spec, Some(issued), None),
            Some((at("2026-01-10T02:30:00Z"), Trigger::Period))
        );
        // Expiring Friday 2026-01-09 12:00, renewed 24h before (Thursday 12:00): Saturday
        // comes too late, so the expiry wins and the rotation is when due.
        let spec = saturday_nights(None, Some("24h"));
        let next = schedule(
            &spec,
            Some(at("2026-01-01T12:00:00Z")),
            Some(at("2026-01-09T12:00:00Z")),
        )
        .expect("scheduled");
        assert_eq!(next.at, at("2026-01-08T12:00:00Z"));
        assert_eq!(next.trigger, Trigger::Expiry);
        assert!(
            next.describe().contains("the expiry wins"),
            "{}",
            next.describe()
        );
        // Expiring Monday 2026-01-12 12:00, renewed 96h before (Thursday 12:00): Saturday
        // 02:00 is at least half the renewal window (48h) before the expiry: it waits.
        let spec = saturday_nights(None, Some("96h"));
        let next = schedule(
            &spec,
            Some(at("2026-01-01T12:00:00Z")),
            Some(at("2026-01-12T12:00:00Z")),
        )
        .expect("scheduled");
        assert_eq!(next.at, at("2026-01-10T02:00:00Z"));
        assert_eq!(next.trigger, Trigger::Expiry);
        assert!(
            next.describe().contains("in a rotation window"),
            "{}",
            next.describe()
        );
    }

    #[test]
    fn nothing_is_scheduled_without_a_period_or_an_expiry() {
        assert_eq!(
            scheduled(&spec(None), Some(at("2026-01-01T00:00:00Z")), None),
            None
        );
    }

    #[test]
    fn a_period_counts_from_the_issue() {
        assert_eq!(
            scheduled(
                &spec(rotation(Some("720h"), None)),
                Some(at("2026-01-01T00:00:00Z")),
                None
            ),
            Some((at("2026-01-31T00:00:00Z"), Trigger::Period))
        );
        // Not yet issued: nothing to count from.
        assert_eq!(
            scheduled(&spec(rotation(Some("720h"), None)), None, None),
            None
        );
    }

    #[test]
    fn an_expiring_token_is_renewed_a_day_ahead_or_at_half_its_life() {
        let issued = at("2026-01-01T00:00:00Z");
        // 30 days of life: 24 h before the end, also without any rotation settings.
        assert_eq!(
            scheduled(&spec(None), Some(issued), Some(at("2026-01-31T00:00:00Z"))),
            Some((at("2026-01-30T00:00:00Z"), Trigger::Expiry))
        );
        // 10 hours of life: half of it.
        assert_eq!(
            scheduled(&spec(None), Some(issued), Some(at("2026-01-01T10:00:00Z"))),
            Some((at("2026-01-01T05:00:00Z"), Trigger::Expiry))
        );
        // renewBeforeExpiry set: used, still capped at half the lifetime.
        assert_eq!(
            scheduled(
                &spec(rotation(None, Some("72h"))),
                Some(issued),
                Some(at("2026-01-31T00:00:00Z"))
            ),
            Some((at("2026-01-28T00:00:00Z"), Trigger::Expiry))
        );
    }

    #[test]
    fn the_earliest_trigger_wins() {
        let issued = at("2026-01-01T00:00:00Z");
        let expires = at("2026-01-31T00:00:00Z");
        assert_eq!(
            scheduled(
                &spec(rotation(Some("168h"), None)),
                Some(issued),
                Some(expires)
            ),
            Some((at("2026-01-08T00:00:00Z"), Trigger::Period))
        );
        assert_eq!(
            scheduled(
                &spec(rotation(Some("1000h"), None)),
                Some(issued),
                Some(expires)
            ),
            Some((at("2026-01-30T00:00:00Z"), Trigger::Expiry))
        );
    }
}
