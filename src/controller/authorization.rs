//! Reconciling an Authorization: resolve → locate the live GHES authorization → issue or keep
//! the token → write the Secret → repair drift → write status. Every step is idempotent and it
//! is safe to crash between any two: the fingerprint is recorded in status before any token is
//! created, so a lost answer is found again and replaced, never duplicated.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};

use super::accounts::{AccountEntry, AccountKey, Snapshot};
use super::context::Context;
use super::error::{Error, ROLE_CLIENT_SECRET, Result};
use super::fingerprint::{Fingerprint, Owned};
use super::secret::{self, DesiredSecret};
use super::status::apply_status;
use crate::api::conditions::{self, ConditionStatus, READY, RECONCILING, STALLED, SYNCED};
use crate::api::{AccountKind, Authorization, AuthorizationStatus, DeletionPolicy, FINALIZER};
use crate::ghes::{
    AppAuthorizationRequest, Authorization as GhesAuthorization, AuthorizationUpdate, GhesError,
    NewAuthorization, ScopeChange, Token,
};

/// How long a configuration error waits before a periodic re-check; changes to the resource
/// and its account trigger at once. Secrets the operator does not own are not watched, so a
/// missing one is looked for again sooner (a Kubernetes read, no GHES call).
fn config_error_recheck(error: &Error) -> Duration {
    match error {
        Error::MissingSecret(_) | Error::CaBundleNotFound(_) => Duration::from_secs(30),
        _ => Duration::from_secs(300),
    }
}

/// Entry point of the controller for one Authorization.
pub async fn reconcile(authorization: Arc<Authorization>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = authorization
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("an Authorization must have a namespace".into()))?;
    let api = Api::<Authorization>::namespaced(ctx.client.clone(), &namespace);
    let key = object_key(&authorization);
    // Decide on the object as the API server has it now, not as the watch cache last saw it:
    // right after this operator's own status write the cache can lag, and a stale status
    // (fingerprint recorded, no id yet) would look like an interrupted create.
    let Some(authorization) = api.get_opt(&authorization.name_any()).await?.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    let result = finalizer(&api, FINALIZER, authorization, |event| async {
        match event {
            Finalizer::Apply(authorization) => apply(&api, &authorization, &ctx).await,
            Finalizer::Cleanup(authorization) => cleanup(&authorization, &ctx).await,
        }
    })
    .await;
    match result {
        Ok(action) => {
            ctx.reset_backoff(&key);
            Ok(action)
        }
        Err(kube::runtime::finalizer::Error::ApplyFailed(error))
        | Err(kube::runtime::finalizer::Error::CleanupFailed(error)) => Err(error),
        Err(kube::runtime::finalizer::Error::AddFinalizer(error))
        | Err(kube::runtime::finalizer::Error::RemoveFinalizer(error)) => Err(Error::Kube(error)),
        Err(other) => Err(Error::InvalidSpec(other.to_string())),
    }
}

/// Requeue after a failure the reconcile returned (transient ones only reach here).
pub fn error_policy(authorization: Arc<Authorization>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = error
        .retry_after()
        .unwrap_or_else(|| ctx.next_backoff(&object_key(&authorization)));
    tracing::warn!(
        authorization = %object_key(&authorization),
        reason = error.reason(),
        %error,
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(delay)
}

fn object_key(authorization: &Authorization) -> String {
    format!(
        "{}/{}",
        authorization.namespace().unwrap_or_default(),
        authorization.name_any()
    )
}

async fn apply(
    api: &Api<Authorization>,
    authorization: &Authorization,
    ctx: &Context,
) -> Result<Action> {
    let mut run = Run::new(api, authorization, ctx);
    run.begin().await;
    match run.sync().await {
        Ok(requeue) => {
            run.succeed().await?;
            Ok(Action::requeue(requeue))
        }
        Err(error) => {
            run.fail(&error).await;
            if error.is_config() {
                Ok(Action::requeue(config_error_recheck(&error)))
            } else {
                Err(error)
            }
        }
    }
}

/// One reconcile of one Authorization, with a working copy of its status.
struct Run<'a> {
    api: &'a Api<Authorization>,
    authorization: &'a Authorization,
    ctx: &'a Context,
    namespace: String,
    uid: String,
    /// The status as stored.
    stored: AuthorizationStatus,
    /// The status as this run wants it.
    status: AuthorizationStatus,
}

/// What the Secret currently holds.
struct SecretState {
    existing: Option<Secret>,
    token: Option<Token>,
    /// A Secret of an earlier spec.secret.name that this Authorization still owns.
    renamed_from: Option<Secret>,
}

impl<'a> Run<'a> {
    fn new(
        api: &'a Api<Authorization>,
        authorization: &'a Authorization,
        ctx: &'a Context,
    ) -> Self {
        let stored = authorization.status.clone().unwrap_or_default();
        Self {
            api,
            authorization,
            ctx,
            namespace: authorization.namespace().unwrap_or_default(),
            uid: authorization.uid().unwrap_or_default(),
            status: stored.clone(),
            stored,
        }
    }

    fn spec(&self) -> &crate::api::AuthorizationSpec {
        &self.authorization.spec
    }

    fn client_id(&self) -> Option<&str> {
        self.spec().app.as_ref().map(|app| app.client_id.as_str())
    }

    /// The fingerprint of this resource's token: the one in status when it was made for this
    /// very resource (the older form without an installation id included), else this
    /// installation's. A fingerprint of another resource in status (a restored or copied
    /// status) is never used.
    fn fingerprint(&self) -> String {
        match self
            .stored
            .fingerprint
            .as_deref()
            .and_then(Fingerprint::parse)
        {
            Some(recorded) if recorded.uid() == self.uid => recorded.to_string(),
            _ => Fingerprint::new(&self.uid, self.ctx.installation()).to_string(),
        }
    }

    /// Proof that `live` was made for this resource; the error says why it was not.
    fn proof(&self, live: &GhesAuthorization) -> Result<Owned> {
        Owned::verify(live, &self.uid, self.ctx.installation())
            .map_err(|why| Error::Ghes(GhesError::Protocol(why)))
    }

    /// Proof that `live` was made for this resource, or a Warning Event saying why it is left
    /// alone.
    async fn owned(&self, live: &GhesAuthorization) -> Option<Owned> {
        match Owned::verify(live, &self.uid, self.ctx.installation()) {
            Ok(owned) => Some(owned),
            Err(why) => {
                self.publish(
                    EventType::Warning,
                    "NotOwned",
                    format!("{why}; it is left alone and this resource gets a token of its own"),
                )
                .await;
                None
            }
        }
    }

    /// Runs the pipeline; returns when to look again.
    async fn sync(&mut self) -> Result<Duration> {
        if let Some((index, scope)) = crate::api::scopes::first_unknown(&self.spec().scopes) {
            return Err(Error::InvalidSpec(format!(
                "spec.scopes[{index}]: {scope:?} is not a GHES OAuth scope (e.g. repo, read:org, \
                 gist, workflow, admin:repo_hook)"
            )));
        }
        let entry = self
            .ctx
            .accounts
            .resolve(&self.ctx.client, &self.namespace, &self.spec().account_ref)
            .await?;
        // Everything from Kubernetes first: a missing client secret costs no GHES call.
        let client_secret = match &self.spec().app {
            None => None,
            Some(app) => Some(
                secret::read_value(
                    &self.ctx.client,
                    &self.namespace,
                    &app.client_secret_ref.name,
                    &app.client_secret_ref.key,
                    ROLE_CLIENT_SECRET,
                )
                .await?
                .0,
            ),
        };
        let secret = self.read_secret().await?;
        let snapshot = entry
            .ensure_synced()
            .await
            .map_err(|error| account_error(&entry.key, error))?;
        let fingerprint = self.fingerprint();

        let live = self.locate(&entry, &snapshot, &fingerprint).await?;
        let token_held = |live: &GhesAuthorization| {
            secret.token.as_ref().is_some_and(|token| {
                live.hashed_token
                    .as_deref()
                    .or(self.stored.hashed_token.as_deref())
                    .is_some_and(|hash| token.matches_hash(hash))
            })
        };
        // Whether this run created the token: one no Secret can hold must not stay live.
        let mut fresh = false;
        let (live, token) = match live {
            Some(live) if token_held(&live) => {
                let token = secret.token.clone();
                (self.repair_drift(&entry, live).await?, token)
            }
            Some(lost) => {
                // The token cannot be read back from GHES: replace the authorization.
                let why = match &secret.existing {
                    None => "the Secret was missing",
                    Some(_) if secret.token.is_none() => "the Secret held no token",
                    Some(_) => "the Secret's token does not match the authorization",
                };
                revoke(&entry, self.proof(&lost)?).await?;
                crate::failpoint::hit("reissue.revoked");
                let issued = self
                    .issue(&entry, &fingerprint, client_secret.as_ref(), &secret)
                    .await?
                    .into_pair();
                fresh = true;
                self.publish(
                    EventType::Normal,
                    "TokenReissued",
                    format!(
                        "{why}: revoked GHES authorization {} and issued {} (token …{})",
                        lost.id,
                        issued.0.id,
                        issued.1.last_eight()
                    ),
                )
                .await;
                (issued.0, Some(issued.1))
            }
            None => {
                let was_issued = self.stored.authorization_id.is_some();
                let issued = self
                    .issue(&entry, &fingerprint, client_secret.as_ref(), &secret)
                    .await?;
                if !issued.created {
                    // The get-or-create found the token this Secret already holds (status was
                    // lost): adopt it, and repair its scopes against what GHES holds, not
                    // against a request this process never made.
                    self.stored.requested_scopes = issued.authorization.scopes.clone();
                    self.stored.scopes = issued.authorization.scopes.clone();
                    let live = self.repair_drift(&entry, issued.authorization).await?;
                    (live, Some(issued.token))
                } else {
                    let issued = issued.into_pair();
                    fresh = true;
                    let (reason, why) = if was_issued {
                        (
                            "TokenReissued",
                            format!(
                                "GHES authorization {} was gone; ",
                                self.stored.authorization_id.unwrap_or_default()
                            ),
                        )
                    } else {
                        ("Created", String::new())
                    };
                    self.publish(
                        EventType::Normal,
                        reason,
                        format!(
                            "{why}issued GHES authorization {} (token …{}, scopes [{}])",
                            issued.0.id,
                            issued.1.last_eight(),
                            issued.0.scopes.join(", ")
                        ),
                    )
                    .await;
                    (issued.0, Some(issued.1))
                }
            }
        };
        let token = token.ok_or_else(|| {
            Error::Ghes(GhesError::Protocol(
                "no token for a live authorization".into(),
            ))
        })?;
        if let Err(error) = self.write_secret(&live, &token, &secret).await {
            if fresh && matches!(error, Error::SecretConflict { .. }) {
                // Another object took the Secret meanwhile (two Authorizations naming one
                // Secret): the token can reach no one, so it goes at once.
                revoke(&entry, self.proof(&live)?).await?;
                self.publish(
                    EventType::Normal,
                    "Revoked",
                    format!(
                        "revoked GHES authorization {} just issued: its Secret {:?} belongs to \
                         something else",
                        live.id,
                        self.authorization.secret_name()
                    ),
                )
                .await;
            }
            return Err(error);
        }
        self.record(&live, &fingerprint, &token);
        Ok(entry.sync_interval)
    }

    /// Reads the Secret: refuses one owned by something else; finds the token even after a
    /// rename of spec.secret.name or spec.secret.key.
    async fn read_secret(&self) -> Result<SecretState> {
        let secrets = Api::<Secret>::namespaced(self.ctx.client.clone(), &self.namespace);
        let name = self.authorization.secret_name();
        let existing = secrets.get_opt(&name).await?;
        if let Some(existing) = &existing
            && !secret::is_controlled_by(existing, &self.uid)
        {
            return Err(Error::SecretConflict { name });
        }
        let mut renamed_from = None;
        if existing.is_none()
            && let Some(old_name) = self.stored.secret_name.as_ref().filter(|old| **old != name)
            && let Some(old) = secrets.get_opt(old_name).await?
            && secret::is_controlled_by(&old, &self.uid)
        {
            renamed_from = Some(old);
        }
        let key = &self.spec().secret.key;
        let token = existing
            .as_ref()
            .or(renamed_from.as_ref())
            .and_then(|secret| secret::token_in(secret, key).or_else(|| only_value(secret)));
        Ok(SecretState {
            existing,
            token,
            renamed_from,
        })
    }

    /// Finds the live GHES authorization of this resource, from the account's snapshot.
    async fn locate(
        &mut self,
        entry: &AccountEntry,
        snapshot: &Snapshot,
        fingerprint: &str,
    ) -> Result<Option<GhesAuthorization>> {
        if let Some(id) = self
            .stored
            .authorization_id
            .and_then(|id| u64::try_from(id).ok())
        {
            let live = match snapshot.get(id) {
                Some(live) => Some(live.clone()),
                // Not in the listing: issued after it, skipped by its offset paging while
                // others were deleted, or gone. Only GHES can say which; a token is never
                // declared lost on a listing's word alone.
                None => match entry.client.get_authorization(id).await {
                    Ok(live) => {
                        entry.record(&live);
                        Some(live)
                    }
                    Err(error) if error.is_not_found() => None,
                    Err(error) => return Err(account_error(&entry.key, error)),
                },
            };
            let Some(live) = live else {
                entry.forget(id);
                return Ok(None);
            };
            if self.owned(&live).await.is_some() {
                return Ok(Some(live));
            }
            // Status names a token that is not this resource's: look for its own instead.
            return Ok(snapshot
                .by_fingerprint(self.client_id(), fingerprint)
                .filter(|own| self.proof(own).is_ok())
                .cloned());
        }
        if self.stored.fingerprint.is_some() {
            // A create was started and its outcome is unknown: look it up in a fresh listing.
            let fresh = entry
                .sync(Some(Timestamp::now()))
                .await
                .map_err(|error| account_error(&entry.key, error))?;
            return match fresh.by_fingerprint(self.client_id(), fingerprint) {
                Some(live) => Ok(self.owned(live).await.map(|_| live.clone())),
                None => Ok(None),
            };
        }
        Ok(None)
    }

    /// Creates the token: app tokens by get-or-create on the fingerprint, personal tokens by
    /// POST after recording the fingerprint in status.
    async fn issue(
        &mut self,
        entry: &AccountEntry,
        fingerprint: &str,
        client_secret: Option<&crate::ghes::SecretValue>,
        secret: &SecretState,
    ) -> Result<Issued> {
        // A POST is not idempotent: record the intent first, so that after a crash or a lost
        // answer the next run finds the result by fingerprint. (An app token's PUT is a
        // get-or-create on a fingerprint derived from the uid, so it needs no such record.)
        if self.spec().is_personal()
            && (self.stored.fingerprint.as_deref() != Some(fingerprint)
                || self.stored.authorization_id.is_some())
        {
            self.status = AuthorizationStatus {
                fingerprint: Some(fingerprint.to_owned()),
                conditions: self.status.conditions.clone(),
                observed_generation: self.status.observed_generation,
                ..AuthorizationStatus::default()
            };
            apply_status(self.api, self.authorization, &self.status).await?;
            self.stored = self.status.clone();
            crate::failpoint::hit("issue.intent-recorded");
        }
        let note = self.note();
        let issued = match (&self.spec().app, client_secret) {
            (Some(app), Some(client_secret)) => {
                let request = AppAuthorizationRequest {
                    client_secret: client_secret.clone(),
                    scopes: self.spec().scopes.clone(),
                    note: Some(note),
                    note_url: self.spec().note_url.clone(),
                };
                let mut answer = entry
                    .client
                    .get_or_create_for_app_and_fingerprint(&app.client_id, fingerprint, &request)
                    .await
                    .map_err(|error| account_error(&entry.key, error))?;
                if !answer.created {
                    // It exists but its token was never stored (or is lost): replace it.
                    if secret
                        .token
                        .as_ref()
                        .is_some_and(|token| answer.authorization.is_token(token))
                        && let Some(token) = secret.token.clone()
                    {
                        return Ok(Issued {
                            authorization: answer.authorization,
                            token,
                            created: false,
                        });
                    }
                    revoke(entry, self.proof(&answer.authorization)?).await?;
                    answer = entry
                        .client
                        .get_or_create_for_app_and_fingerprint(
                            &app.client_id,
                            fingerprint,
                            &request,
                        )
                        .await
                        .map_err(|error| account_error(&entry.key, error))?;
                }
                answer.authorization
            }
            (None, _) => {
                let request = NewAuthorization {
                    scopes: self.spec().scopes.clone(),
                    note: Some(note.clone()),
                    note_url: self.spec().note_url.clone(),
                    app: None,
                    fingerprint: Some(fingerprint.to_owned()),
                };
                let created = entry.client.create_authorization(&request).await;
                if created
                    .as_ref()
                    .is_err_and(|error| !error.outcome_unknown())
                {
                    // GHES answered: nothing was created, so no create is under way any more
                    // (the recorded intent would hold pruning back for good).
                    self.status.fingerprint = None;
                }
                created.map_err(|error| match error {
                    error if error.outcome_unknown() => Error::OutcomeUnknown(error),
                    GhesError::Validation { errors, .. }
                        if errors.iter().any(|e| {
                            e.code == "already_exists" && e.field.as_deref() == Some("description")
                        }) =>
                    {
                        Error::InvalidSpec(format!(
                            "spec.note {note:?} is already the note of another personal token \
                                 of this GHES user; personal token notes must be unique"
                        ))
                    }
                    error => account_error(&entry.key, error),
                })?
            }
            (Some(_), None) => {
                return Err(Error::InvalidSpec("spec.app has no client secret".into()));
            }
        };
        let token = issued.token.clone().ok_or_else(|| {
            Error::Ghes(GhesError::Protocol(
                "GHES created a token but did not return it".into(),
            ))
        })?;
        entry.record(&issued);
        crate::failpoint::hit("issue.created");
        Ok(Issued {
            authorization: issued,
            token,
            created: true,
        })
    }

    /// Fixes scopes, note and note URL with one PATCH when they differ from the spec.
    async fn repair_drift(
        &mut self,
        entry: &AccountEntry,
        live: GhesAuthorization,
    ) -> Result<GhesAuthorization> {
        let desired: BTreeSet<&str> = self.spec().scopes.iter().map(String::as_str).collect();
        let requested: BTreeSet<&str> = self
            .stored
            .requested_scopes
            .iter()
            .map(String::as_str)
            .collect();
        let recorded: BTreeSet<&str> = self.stored.scopes.iter().map(String::as_str).collect();
        let actual = live.scope_set();
        // GHES normalizes scopes, so compare what was asked with the spec, and what GHES holds
        // with what it reported last time: only a real change triggers a PATCH.
        let scopes_changed =
            desired != requested || (self.stored.authorization_id.is_some() && actual != recorded);
        let note = self.note();
        let mut update = AuthorizationUpdate::default();
        if scopes_changed {
            update.scopes = Some(ScopeChange::Replace(self.spec().scopes.clone()));
        }
        if live.note.as_deref() != Some(note.as_str()) {
            update.note = Some(note);
        }
        if let Some(note_url) = &self.spec().note_url
            && live.note_url.as_ref() != Some(note_url)
        {
            update.note_url = Some(note_url.clone());
        }
        if update.is_empty() {
            return Ok(live);
        }
        let updated = match entry.client.update_authorization(live.id, &update).await {
            Ok(updated) => updated,
            Err(error) => return Err(account_error(&entry.key, error)),
        };
        entry.record(&updated);
        crate::failpoint::hit("update.patched");
        let mut changes = Vec::new();
        if update.scopes.is_some() {
            changes.push(format!(
                "scopes [{}] → [{}]",
                live.scopes.join(", "),
                updated.scopes.join(", ")
            ));
        }
        if update.note.is_some() {
            changes.push("note".to_owned());
        }
        if update.note_url.is_some() {
            changes.push("note URL".to_owned());
        }
        self.publish(
            EventType::Normal,
            "Updated",
            format!(
                "updated GHES authorization {}: {}",
                updated.id,
                changes.join(", ")
            ),
        )
        .await;
        Ok(updated)
    }

    /// Writes the Secret when it lacks the token or the spec's labels, annotations or key.
    async fn write_secret(
        &self,
        live: &GhesAuthorization,
        token: &Token,
        secret: &SecretState,
    ) -> Result<()> {
        let desired = DesiredSecret::of(self.authorization, live.id);
        let current = secret.existing.as_ref().is_some_and(|existing| {
            desired.is_met_by(existing)
                && secret::token_in(existing, &desired.key).as_ref() == Some(token)
        });
        if !current {
            secret::write_token_secret(
                &self.ctx.client,
                self.authorization,
                &desired,
                token,
                secret.existing.is_some(),
            )
            .await?;
            crate::failpoint::hit("secret.written");
        }
        if let Some(old) = &secret.renamed_from {
            secret::delete_owned(&self.ctx.client, &self.namespace, old).await?;
        }
        Ok(())
    }

    /// Records the live authorization in the working status.
    fn record(&mut self, live: &GhesAuthorization, fingerprint: &str, token: &Token) {
        let issued_changed = self.stored.authorization_id != i64::try_from(live.id).ok();
        self.status.authorization_id = i64::try_from(live.id).ok();
        self.status.fingerprint = Some(fingerprint.to_owned());
        self.status.scopes = live.scopes.clone();
        self.status.requested_scopes = self.spec().scopes.clone();
        self.status.token_last_eight = Some(token.last_eight().to_owned());
        self.status.hashed_token = Some(
            live.hashed_token
                .clone()
                .unwrap_or_else(|| token.sha256_hex()),
        );
        self.status.secret_name = Some(self.authorization.secret_name());
        if issued_changed || self.status.issued_at.is_none() {
            self.status.issued_at = Some(Time(live.created_at.max(Timestamp::now())));
        }
        self.status.expires_at = live.expires_at.map(Time);
    }

    fn note(&self) -> String {
        self.authorization.note()
    }

    /// A first attempt at this generation: `Ready=Unknown` and `Reconciling=True` until it ends,
    /// so that nothing reads an older generation's `Ready` as this one's.
    /// Best effort: a status that cannot be written now is written when the attempt ends.
    async fn begin(&mut self) {
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
        if let Err(error) = self.save().await {
            tracing::debug!(%error, "could not record the attempt in status yet");
        }
    }

    async fn succeed(&mut self) -> Result<()> {
        let generation = self.authorization.metadata.generation;
        let secret_name = self.authorization.secret_name();
        let last_eight = self.status.token_last_eight.clone().unwrap_or_default();
        self.set_condition(
            READY,
            ConditionStatus::True,
            "TokenReady",
            &format!("Secret {secret_name} holds token …{last_eight}"),
        );
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

    async fn fail(&mut self, error: &Error) {
        let message = error.condition_message();
        let reason = error.reason();
        let generation = self.authorization.metadata.generation;
        if error.is_config() {
            // Waits for a human: kstatus reads Stalled as Failed.
            crate::metrics::note_config_error(reason);
            self.set_condition(READY, ConditionStatus::False, reason, &message);
            self.set_condition(STALLED, ConditionStatus::True, reason, &message);
            conditions::remove_condition(&mut self.status.conditions, RECONCILING);
        } else {
            conditions::remove_condition(&mut self.status.conditions, STALLED);
            let satisfied =
                conditions::find_condition(&self.status.conditions, READY).is_some_and(|ready| {
                    ready.status == "True" && ready.observed_generation == generation
                });
            if !satisfied {
                // This generation has no token yet: retried, so in progress, not healthy.
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

    fn set_condition(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
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

    async fn save(&mut self) -> Result<()> {
        if self.status == self.stored {
            return Ok(());
        }
        apply_status(self.api, self.authorization, &self.status).await?;
        self.stored = self.status.clone();
        Ok(())
    }

    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let reference = self.authorization.object_ref(&());
        self.ctx
            .publish(&reference, type_, reason, "Reconcile", note)
            .await;
    }
}

/// What [`Run::issue`] got from GHES.
struct Issued {
    authorization: GhesAuthorization,
    token: Token,
    /// Whether GHES created it now (`false`: a get-or-create found the one already held).
    created: bool,
}

impl Issued {
    fn into_pair(self) -> (GhesAuthorization, Token) {
        (self.authorization, self.token)
    }
}

/// The single value of a Secret the operator wrote under a key the spec no longer names.
fn only_value(secret: &Secret) -> Option<Token> {
    let data = secret.data.as_ref()?;
    if data.len() != 1 {
        return None;
    }
    let key = data.keys().next()?;
    secret::token_in(secret, key)
}

/// Deletes an authorization on GHES that this resource provably owns; gone already counts as
/// done. The only DELETE of an Authorization's token.
async fn revoke(entry: &AccountEntry, owned: Owned) -> Result<()> {
    match entry.client.delete_authorization(owned.id()).await {
        Ok(()) => {}
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(account_error(&entry.key, error)),
    }
    entry.forget(owned.id());
    Ok(())
}

/// A GHES error as seen by an Authorization: credential problems belong to the account.
fn account_error(key: &AccountKey, error: GhesError) -> Error {
    if error.is_credentials_problem() {
        Error::AccountNotReady {
            kind: key.kind.as_str(),
            name: key.name.clone(),
            reason: error.reason(),
            message: error.to_string(),
        }
    } else {
        Error::Ghes(error)
    }
}

/// Deletion: revoke on GHES unless the policy is Orphan; the Secret goes with its owner.
///
/// Every token made for this resource goes: the ids in status and whatever carries one of its
/// fingerprints in the account's listing (a crash between the create and the first status
/// write leaves no id behind), each checked against its live fingerprint first. Deletion never
/// wedges: when GHES cannot be reached for a configuration reason (no account, no credentials,
/// refused credentials), a Warning Event names the token and the finalizer is released; the
/// token is left to pruning. Transient errors retry.
async fn cleanup(authorization: &Authorization, ctx: &Context) -> Result<Action> {
    let reference = authorization.object_ref(&());
    if authorization.spec.deletion_policy == DeletionPolicy::Orphan {
        ctx.publish(
            &reference,
            EventType::Normal,
            "Orphaned",
            "Delete",
            "deletionPolicy is Orphan: the token stays on GHES".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let status = authorization.status.clone().unwrap_or_default();
    let uid = authorization.uid().unwrap_or_default();
    let ids: Vec<u64> = status
        .authorization_id
        .into_iter()
        .chain(status.previous.as_ref().map(|p| p.authorization_id))
        .filter_map(|id| u64::try_from(id).ok())
        .collect();
    // A personal token is only ever created after its fingerprint is in status; an app
    // token's get-or-create needs no record first, so it may exist without any status.
    if ids.is_empty() && status.fingerprint.is_none() && authorization.spec.app.is_none() {
        return Ok(Action::await_change());
    }
    let abandon = |error: &Error| {
        let known = match (ids.as_slice(), &status.fingerprint) {
            ([], None) => format!("any token made for it (fingerprint prefix k8s-{uid})"),
            ([], Some(fingerprint)) => format!("the token with fingerprint {fingerprint}"),
            (ids, fingerprint) => format!(
                "GHES authorization {} (fingerprint {})",
                ids.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                fingerprint.as_deref().unwrap_or("unknown")
            ),
        };
        format!(
            "cannot revoke {known} of {} {}: {error}; the finalizer is released and the token is \
             left on GHES, to pruning or to revoke by hand",
            authorization.spec.account_ref.kind.as_str(),
            authorization.spec.account_ref.name,
        )
    };
    let namespace = authorization.namespace().unwrap_or_default();
    let outcome = match ctx
        .accounts
        .resolve(&ctx.client, &namespace, &authorization.spec.account_ref)
        .await
    {
        Ok(entry) => revoke_all(authorization, ctx, &entry, &ids).await,
        Err(error @ Error::AccountNotFound { .. }) => {
            // The account went first (e.g. namespace deletion): use its last known client.
            let key = AccountKey {
                kind: authorization.spec.account_ref.kind,
                namespace: (authorization.spec.account_ref.kind == AccountKind::Account)
                    .then(|| namespace.clone()),
                name: authorization.spec.account_ref.name.clone(),
            };
            match ctx.accounts.lookup(&key) {
                Some(entry) => revoke_all(authorization, ctx, &entry, &ids).await,
                None => Err(error),
            }
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => Ok(Action::await_change()),
        Err(error) if error.is_config() => {
            let message = abandon(&error);
            ctx.publish(
                &reference,
                EventType::Warning,
                "RevokeAbandoned",
                "Delete",
                message,
            )
            .await;
            Ok(Action::await_change())
        }
        Err(error) => {
            ctx.publish(
                &reference,
                EventType::Warning,
                "RevokeFailed",
                "Delete",
                format!("cannot revoke the token yet: {error}; retrying"),
            )
            .await;
            Err(error)
        }
    }
}

/// Revokes every token of the resource that GHES holds: `ids` from status and whatever carries
/// the resource's fingerprint in the listing, each only after its fingerprint proved it is
/// the resource's.
async fn revoke_all(
    authorization: &Authorization,
    ctx: &Context,
    entry: &AccountEntry,
    ids: &[u64],
) -> Result<()> {
    let reference = authorization.object_ref(&());
    let uid = authorization.uid().unwrap_or_default();
    let status = authorization.status.clone().unwrap_or_default();
    // A personal token's create under way: only a listing made now can show its outcome.
    let snapshot = if status.authorization_id.is_none() && status.fingerprint.is_some() {
        entry.sync(Some(Timestamp::now())).await
    } else {
        entry.ensure_synced().await
    }
    .map_err(|error| account_error(&entry.key, error))?;
    let mut owned: Vec<Owned> = snapshot
        .authorizations
        .values()
        .filter_map(|live| Owned::verify(live, &uid, ctx.installation()).ok())
        .collect();
    for &id in ids {
        if owned.iter().any(|o| o.id() == id) {
            continue;
        }
        let live = match snapshot.get(id) {
            Some(live) => live.clone(),
            // Issued after the listing, or gone: ask GHES.
            None => match entry.client.get_authorization(id).await {
                Ok(live) => live,
                Err(error) if error.is_not_found() => continue,
                Err(error) => return Err(account_error(&entry.key, error)),
            },
        };
        match Owned::verify(&live, &uid, ctx.installation()) {
            Ok(proof) => owned.push(proof),
            Err(why) => {
                ctx.publish(
                    &reference,
                    EventType::Warning,
                    "NotOwned",
                    "Delete",
                    format!("status names {why}; it is not revoked"),
                )
                .await;
            }
        }
    }
    for proof in owned {
        let (id, fingerprint) = (proof.id(), proof.fingerprint().to_owned());
        revoke(entry, proof).await?;
        crate::failpoint::hit("delete.revoked");
        ctx.publish(
            &reference,
            EventType::Normal,
            "Revoked",
            "Delete",
            format!("revoked GHES authorization {id} (fingerprint {fingerprint})"),
        )
        .await;
    }
    Ok(())
}
