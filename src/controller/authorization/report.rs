//! What a run reports: the status it records and the conditions it sets.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::Reconciliation;
use crate::api::conditions::{ConditionStatus, READY, RECONCILING, STALLED, SUSPENDED, SYNCED};
use crate::api::{ManagementPolicy, conditions};
use crate::controller::error::{Error, Result};
use crate::controller::fingerprint::Fingerprint;
use crate::controller::status::apply_status;
use crate::ghes::{Authorization as GhesAuthorization, Token};

impl Reconciliation<'_> {
    /// Records the live authorization in the working status.
    pub(super) fn record(
        &mut self,
        live: &GhesAuthorization,
        fingerprint: &Fingerprint,
        token: Option<&Token>,
    ) {
        let issued_changed = self.stored.authorization_id != i64::try_from(live.id).ok();
        self.status.authorization_id = i64::try_from(live.id).ok();
        self.status.fingerprint = Some(fingerprint.to_string());
        self.status.scopes = live.scopes.clone();
        self.status.requested_scopes = self.spec().scopes.clone();
        self.status.token_last_eight = token
            .map(|token| token.last_eight().to_owned())
            .or_else(|| live.token_last_eight.clone())
            .or_else(|| self.stored.token_last_eight.clone());
        self.status.hashed_token = live
            .hashed_token
            .clone()
            .or_else(|| token.map(Token::sha256_hex))
            .or_else(|| self.stored.hashed_token.clone());
        self.status.secret_name = Some(self.authorization.secret_name());
        self.status.note = live.note.clone();
        if issued_changed || self.status.issued_at.is_none() {
            self.status.issued_at = Some(Time(live.created_at.max(Timestamp::now())));
            // A new token answers every rotation asked for so far.
            if let Some(requested) = self.rotate_annotation() {
                self.status.rotate_request = Some(requested);
            }
        }
        self.status.expires_at = live.expires_at.map(Time);
    }

    /// A first attempt at this generation: `Ready=Unknown` and `Reconciling=True` until it ends,
    /// so that nothing reads an older generation's `Ready` as this one's. Recorded in the run's
    /// status only: the run's first status write carries it (the intent before a personal
    /// token's create, or the outcome), so a token costs one status write before its create
    /// and one after. Until then `status.observedGeneration` is the older generation's, which
    /// is what kstatus readers (Argo CD, Flux) take for "in progress".
    pub(super) fn begin(&mut self) {
        let generation = self.authorization.metadata.generation;
        let current = conditions::find_condition(&self.status.conditions, READY)
            .is_some_and(|ready| ready.observed_generation == generation);
        if current {
            return;
        }
        let message = format!(
            "issuing or checking the token for generation {}",
            generation.unwrap_or_default()
        );
        self.set_condition(READY, ConditionStatus::Unknown, "Reconciling", &message);
        self.set_condition(RECONCILING, ConditionStatus::True, "Progressing", &message);
        conditions::remove_condition(&mut self.status.conditions, STALLED);
        self.status.observed_generation = generation;
    }

    pub(super) async fn succeed(&mut self) -> Result<()> {
        let generation = self.authorization.metadata.generation;
        let secret_name = self.authorization.secret_name();
        let last_eight = self.status.token_last_eight.clone().unwrap_or_default();
        let (reason, message) = if self.spec().management_policy == ManagementPolicy::Observe {
            (
                "Observed",
                format!(
                    "observing GHES authorization {} (token …{last_eight}); the operator never \
                     writes to it",
                    self.status.authorization_id.unwrap_or_default()
                ),
            )
        } else {
            let previous = self
                .status
                .previous
                .as_ref()
                .and_then(|p| Some((p.token_last_eight.clone()?, p.revoke_after.clone()?)))
                .map(|(eight, at)| format!("; the previous token …{eight} is revoked at {}", at.0))
                .unwrap_or_default();
            (
                "TokenReady",
                format!("Secret {secret_name} holds token …{last_eight}{previous}"),
            )
        };
        self.set_condition(READY, ConditionStatus::True, reason, &message);
        let id = self.status.authorization_id.unwrap_or_default();
        self.set_condition(
            SYNCED,
            ConditionStatus::True,
            "Synced",
            &format!("GHES authorization {id} matches the spec"),
        );
        conditions::remove_condition(&mut self.status.conditions, RECONCILING);
        conditions::remove_condition(&mut self.status.conditions, STALLED);
        self.status.observed_generation = generation;
        self.save().await
    }

    /// Records that the operator leaves the token alone, and `why`: Ready=False and
    /// Synced=False with reason `Suspended` for the current generation, and neither
    /// Reconciling nor Stalled, so that kstatus reads it as Current (nothing under way, nothing
    /// waiting for a fix). The rest of status, the token last issued, stays as it was.
    pub(super) async fn suspend(&mut self, why: &str) -> Result<()> {
        let was = conditions::has_reason(&self.stored.conditions, READY, SUSPENDED);
        self.set_condition(READY, ConditionStatus::False, SUSPENDED, why);
        self.set_condition(SYNCED, ConditionStatus::False, SUSPENDED, why);
        conditions::remove_condition(&mut self.status.conditions, RECONCILING);
        conditions::remove_condition(&mut self.status.conditions, STALLED);
        self.status.observed_generation = self.authorization.metadata.generation;
        self.save().await?;
        if !was {
            self.publish(EventType::Normal, SUSPENDED, why.to_owned())
                .await;
        }
        Ok(())
    }

    pub(super) async fn fail(&mut self, error: &Error) {
        let message = error.condition_message();
        let reason = error.reason();
        let generation = self.authorization.metadata.generation;
        if error.is_config() {
            // Waits for a human: kstatus reads Stalled as Failed.
            self.set_condition(READY, ConditionStatus::False, reason, &message);
            self.set_condition(STALLED, ConditionStatus::True, reason, &message);
            conditions::remove_condition(&mut self.status.conditions, RECONCILING);
        } else {
            conditions::remove_condition(&mut self.status.conditions, STALLED);
            let satisfied =
                conditions::find_condition(&self.status.conditions, READY).is_some_and(|ready| {
                    ready.status == "True" && ready.observed_generation == generation
                });
            if !satisfied || self.lacks_token {
                // This generation has no token yet, or the Secret lost it: retried, so in
                // progress, not healthy.
                self.set_condition(READY, ConditionStatus::False, reason, &message);
                self.set_condition(RECONCILING, ConditionStatus::True, reason, &message);
            }
        }
        self.set_condition(SYNCED, ConditionStatus::False, reason, &message);
        self.status.observed_generation = self.authorization.metadata.generation;
        let changed = self.status != self.stored;
        if let Err(save_error) = self.save().await {
            tracing::warn!(error = %save_error, "could not record the failure in status");
        }
        if changed {
            self.publish(EventType::Warning, reason, message).await;
        }
    }

    pub(super) fn set_condition(
        &mut self,
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: &str,
    ) {
        let condition = conditions::new_condition(
            type_,
            status,
            reason,
            message,
            self.authorization.metadata.generation,
            Time(Timestamp::now()),
        );
        conditions::set_condition(&mut self.status.conditions, condition);
    }

    pub(super) async fn save(&mut self) -> Result<()> {
        if self.status == self.stored {
            return Ok(());
        }
        self.write_status().await
    }

    /// Writes the status as this run wants it, and remembers the version written: the watch
    /// cache may show the object as it was before until the write's event arrives.
    pub(super) async fn write_status(&mut self) -> Result<()> {
        let written = apply_status(self.api, self.authorization, &self.status).await?;
        self.ctx.memory.wrote_authorization(written);
        self.stored = self.status.clone();
        Ok(())
    }
}
