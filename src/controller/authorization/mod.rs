//! Reconciling an Authorization: resolve → locate the live GHES authorization → issue or keep
//! the token → write the Secret → repair drift → write status. Every step is idempotent and it
//! is safe to crash between any two: the fingerprint is recorded in status before any token is
//! created, so a lost answer is found again and replaced, never duplicated.
//!
//! This file holds the run and its order (`Reconciliation::sync`): it observes (`locate`), asks the pure
//! `lifecycle::decide` for the next step (as `plan` does), carries the step out and records
//! the new state. Each step is a file of its own: `resolve`, `issue`, `rotate`, `drift`,
//! `token_secret` (read and write the Secret), `report` (status and conditions), and `cleanup`
//! (deletion).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};

use super::Reconciled;
use super::account::registry::{AccountEntry, Snapshot};
use super::context::Context;
use super::error::{Error, Result};
use super::fair::Priority;
use super::fingerprint::{Fingerprint, Owned};
use super::packed::PackedAuthorization;
use crate::api::AccountKey;
use crate::api::{Authorization, AuthorizationStatus, FINALIZER, ManagementPolicy};
use crate::ghes::{Authorization as GhesAuthorization, AuthorizationUpdate, GhesError, Token};
use crate::metrics::TokenChange;

mod cleanup;
mod drift;
mod issue;
mod lifecycle;
mod locate;
mod observe;
mod report;
mod resolve;
mod rotate;
mod stranded;
mod token_secret;

pub(crate) use drift::drift_update;
pub(crate) use lifecycle::{Before, Release, State, Step, decide, released};
pub(crate) use locate::{Listing, observe, remains};
pub(crate) use resolve::{Resolved, resolve};
pub(crate) use rotate::schedule;

use cleanup::cleanup;
use issue::Issued;

/// How long a configuration error waits before a periodic re-check; changes to the resource
/// and its account trigger at once. Secrets the operator does not own are not watched, so a
/// missing one is looked for again sooner (a Kubernetes read, no GHES call).
fn config_error_recheck(error: &Error) -> Duration {
    match error {
        Error::MissingSecret(_) | Error::CaBundleNotFound(_) => Duration::from_secs(30),
        _ => CONFIG_RECHECK,
    }
}

/// The longest a deletion that failed waits before it tries to revoke again.
const DELETION_RETRY_MAX: Duration = Duration::from_secs(10);

/// The periodic re-check of a configuration error that a change of the resource or its
/// account would otherwise trigger.
const CONFIG_RECHECK: Duration = Duration::from_secs(300);

/// [`reconcile`] of an Authorization as the watch cache keeps it.
pub async fn reconcile_packed(
    packed: Arc<PackedAuthorization>,
    ctx: Arc<Context>,
) -> Result<Reconciled> {
    let authorization = packed
        .unpack()
        .map_err(|error| Error::Kube(kube::Error::SerdeError(error)))?;
    reconcile(Arc::new(authorization), ctx).await
}

/// [`error_policy`] of an Authorization as the watch cache keeps it.
pub fn error_policy_packed(
    packed: Arc<PackedAuthorization>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    match packed.unpack() {
        Ok(authorization) => error_policy(Arc::new(authorization), error, ctx),
        Err(_) => Action::requeue(ctx.memory.next_backoff(packed.as_ref())),
    }
}

/// Entry point of the controller for one Authorization.
pub async fn reconcile(authorization: Arc<Authorization>, ctx: Arc<Context>) -> Result<Reconciled> {
    let namespace = authorization
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("an Authorization must have a namespace".into()))?;
    // Just moved here from another shard: that shard's replica stops first.
    if let Some(wait) = crate::controller::sharding::handoff_wait(&authorization.metadata) {
        return Ok(Reconciled::done(Action::requeue(wait)));
    }
    // Over its account's share of the workers: handed back before any call, holding no worker,
    // with its turn, so that a slow or stalled GHES cannot take every worker from other
    // accounts. What the reconcile costs sizes its account's share.
    // A deletion does not wait behind its account's backlog: its namespace waits for it, and
    // its revokeTimeout runs.
    let priority = match authorization.metadata.deletion_timestamp {
        Some(_) => Priority::Urgent,
        None => Priority::Paced,
    };
    let turn = match ctx
        .workers
        .enter(&AccountKey::referenced_by(&authorization), priority)
    {
        Ok(turn) => turn,
        Err(turn_due) => return Ok(Reconciled::handed_back(turn_due)),
    };
    let (result, usage) =
        crate::ghes::usage::measure(reconcile_turn(authorization, namespace, &ctx)).await;
    turn.finish(usage);
    result
}

/// The reconcile of an Authorization once it holds a worker.
async fn reconcile_turn(
    authorization: Arc<Authorization>,
    namespace: String,
    ctx: &Context,
) -> Result<Reconciled> {
    let api = Api::<Authorization>::namespaced(ctx.client.clone(), &namespace);
    // Its deletion finished here and the watch has not delivered it yet (a reconcile queued
    // meanwhile, e.g. by an Account event): cleaning up again would send GHES what the first
    // cleanup decided against, with whatever credentials the account holds by now.
    if authorization.metadata.deletion_timestamp.is_some()
        && ctx.memory.is_released(authorization.as_ref())
    {
        return Ok(Reconciled::done(Action::await_change()));
    }
    // Decide on the object as the API server has it now: right after this operator's own
    // status write the watch cache can lag, and a stale status (fingerprint recorded, no id
    // yet) would look like an interrupted create. The cache is used when it holds the version
    // this process last wrote or read; when it is behind only by this process's own writes,
    // the object as the newest write returned it; otherwise the object is read.
    let authorization = if ctx.memory.is_current(authorization.as_ref()) {
        authorization
    } else if let Some(own) = ctx.memory.newer_own_write(authorization.as_ref()) {
        // Behind only by this process's own writes: the newest is known without a read.
        own
    } else {
        let Some(fresh) = api.get_opt(&authorization.name_any()).await? else {
            return Ok(Reconciled::done(Action::await_change()));
        };
        ctx.memory.saw(&fresh);
        Arc::new(fresh)
    };
    let reconciled = Arc::clone(&authorization);
    let result = finalizer(&api, FINALIZER, authorization, |event| async {
        match event {
            Finalizer::Apply(authorization) => apply(&api, &authorization, ctx).await,
            Finalizer::Cleanup(authorization) => cleanup(&authorization, ctx).await,
        }
    })
    .await;
    match result {
        Ok(action) => {
            if reconciled.metadata.deletion_timestamp.is_some() {
                ctx.memory.released(reconciled.as_ref());
            }
            ctx.memory.reset_backoff(reconciled.as_ref());
            Ok(Reconciled::done(action))
        }
        Err(kube::runtime::finalizer::Error::ApplyFailed(error))
        | Err(kube::runtime::finalizer::Error::CleanupFailed(error)) => Err(error),
        Err(kube::runtime::finalizer::Error::AddFinalizer(error))
        | Err(kube::runtime::finalizer::Error::RemoveFinalizer(error)) => Err(Error::Kube(error)),
        Err(other) => Err(Error::InvalidSpec(other.to_string())),
    }
}

/// When to look again after a failure: a configuration error waits for a change (or its
/// periodic re-check) and takes no backoff step; a transient one backs off per object.
pub fn error_policy(authorization: Arc<Authorization>, error: &Error, ctx: Arc<Context>) -> Action {
    // A deletion never waits that long: its namespace waits for it.
    if error.is_config() && authorization.metadata.deletion_timestamp.is_none() {
        ctx.memory.reset_backoff(authorization.as_ref());
        let delay = config_error_recheck(error);
        tracing::info!(
            authorization = %object_key(&authorization),
            reason = error.reason(),
            %error,
            recheck_in_s = delay.as_secs(),
            "waiting for a change of the resource, its account or its Secrets"
        );
        return Action::requeue(delay);
    }
    let delay = error
        .retry_after()
        .or_else(|| error.parked_for())
        .unwrap_or_else(|| ctx.memory.next_backoff(authorization.as_ref()));
    // A deletion looks again within its account's revokeTimeout, which it must not overrun
    // by much (a namespace waits for it).
    let delay = match authorization.metadata.deletion_timestamp {
        Some(_) => delay.min(DELETION_RETRY_MAX),
        None => delay,
    };
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

/// Why the operator leaves `authorization` alone, if it does: its own `spec.suspend`, or its
/// account's. Read before anything else, so that a suspended Authorization costs no GHES call
/// and no read of its account's credentials.
pub(crate) async fn suspension(
    authorization: &Authorization,
    ctx: &Context,
) -> Result<Option<String>> {
    const LEFT_ALONE: &str = "no GHES call and no Secret write until it is false; the token last \
                              issued stays live and in its Secret, and deleting the \
                              Authorization still revokes it";
    if authorization.spec.suspend {
        return Ok(Some(format!("spec.suspend is true: {LEFT_ALONE}")));
    }
    let reference = &authorization.spec.account_ref;
    let account = ctx
        .caches
        .account_views
        .referenced(&authorization.namespace().unwrap_or_default(), reference)
        .await?;
    Ok(account
        .filter(|account| account.settings().suspend)
        .map(|_| {
            format!(
                "its {} {:?} is suspended (its spec.suspend is true): {LEFT_ALONE}",
                reference.kind, reference.name
            )
        }))
}

async fn apply(
    api: &Api<Authorization>,
    authorization: &Authorization,
    ctx: &Context,
) -> Result<Action> {
    let mut run = Reconciliation::new(api, authorization, ctx);
    if let Some(why) = suspension(authorization, ctx).await? {
        run.suspend(&why).await?;
        return Ok(Action::await_change());
    }
    run.begin();
    let synced = match authorization.spec.management_policy {
        ManagementPolicy::Manage => run.sync().await,
        ManagementPolicy::Observe => run.observe().await,
    };
    match synced {
        Ok(requeue) => {
            run.succeed().await?;
            Ok(Action::requeue(requeue))
        }
        Err(error) => {
            remember_refusal(ctx, authorization, &error).await;
            run.fail(&error).await;
            // A configuration error too: `error_policy` makes it wait for a change.
            Err(error)
        }
    }
}

/// When GHES refused the account's credentials in this reconcile, records it in the account's
/// status before anything else: no restart, shard move or edit before the account's own next
/// sync sends them again.
async fn remember_refusal(ctx: &Context, authorization: &Authorization, error: &Error) {
    // Whether GHES refused them is the account's client's to say (a refusal reaches here as
    // the account's error or as GHES's).
    if !matches!(error, Error::AccountNotReady { .. } | Error::Ghes(_)) {
        return;
    }
    let namespace = authorization.namespace().unwrap_or_default();
    let reference = &authorization.spec.account_ref;
    if let Err(failure) =
        crate::controller::account::reconcile::record_refusal(ctx, &namespace, reference).await
    {
        tracing::warn!(
            authorization = %object_key(authorization),
            error = %failure,
            "cannot record the refused credentials in the account's status yet"
        );
    }
}

/// One reconcile of one Authorization, with a working copy of its status.
struct Reconciliation<'a> {
    api: &'a Api<Authorization>,
    authorization: &'a Authorization,
    ctx: &'a Context,
    namespace: String,
    uid: String,
    /// The status as stored.
    stored: AuthorizationStatus,
    /// The status as this run wants it.
    status: AuthorizationStatus,
    /// The identity and tokens status recorded when the run began, until compared with the
    /// user the account logs in as now.
    recorded: Option<stranded::Recorded>,
    /// This run found that the Secret holds no live token of this resource.
    lacks_token: bool,
}

/// What a run does about the token, once located: keep it, adopt the one the Secret holds, or
/// hand out a new one.
enum Outcome {
    /// The live token the Secret holds, and the PATCH that repairs its drift.
    Kept(GhesAuthorization, AuthorizationUpdate),
    /// A token the Secret holds, found again after status was lost.
    Adopted(GhesAuthorization, Token),
    /// A token created by this run (`why`: what happened to the one it replaces, if any).
    New {
        live: GhesAuthorization,
        token: Token,
        why: String,
    },
}

/// What the Secret currently holds.
pub(crate) struct SecretState {
    existing: Option<Arc<Secret>>,
    /// The token the Secret holds under a key, if it is a plain one.
    token: Option<Token>,
    /// A Secret of an earlier spec.secret.name that this Authorization still owns.
    renamed_from: Option<Arc<Secret>>,
    /// For a Secret rendered from a template whose data is as the operator wrote it: the
    /// SHA-256 of the token it embeds.
    embedded_hash: Option<String>,
    /// For a Secret rendered from a template: the recipe it was rendered from.
    recipe: Option<String>,
}

impl SecretState {
    /// The Secret as read: the current one, or the one before a rename.
    fn source(&self) -> Option<&Secret> {
        self.existing.as_deref().or(self.renamed_from.as_deref())
    }

    /// Whether the Secret holds the token whose SHA-256 is `hash`, readable or embedded.
    pub(crate) fn holds(&self, hash: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|token| token.matches_hash(hash))
            || self
                .embedded_hash
                .as_deref()
                .is_some_and(|embedded| embedded.eq_ignore_ascii_case(hash))
    }
}

impl<'a> Reconciliation<'a> {
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
            recorded: Some(stranded::Recorded::of(&stored)),
            lacks_token: false,
            stored,
        }
    }

    fn spec(&self) -> &crate::api::AuthorizationSpec {
        &self.authorization.spec
    }

    /// The fingerprint of this resource's token: the one in status when it was made for this
    /// very resource (the older form without an installation id included), else this
    /// installation's. A fingerprint of another resource in status (a restored or copied
    /// status) is never used.
    fn fingerprint(&self) -> Fingerprint {
        match self
            .stored
            .fingerprint
            .as_deref()
            .and_then(Fingerprint::parse)
        {
            Some(recorded) if recorded.uid() == self.uid => recorded,
            _ => Fingerprint::new(&self.uid, self.ctx.installation()),
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
        let Resolved {
            entry,
            client_secret,
            secret,
            snapshot,
            mut fingerprint,
        } = self.resolve().await?;
        // Before any token: the account and its credentials cannot go while it may hold one.
        crate::controller::in_use::protect(self.ctx, &self.namespace, &self.spec().account_ref)
            .await?;
        // Tokens of a GHES user the account no longer logs in as are stranded, not located.
        let identity = entry
            .identity(&snapshot)
            .map(|identity| identity.to_string());
        self.settle_identity(&entry, identity, stranded::Current::Forget)
            .await?;

        // Observe, decide, carry out: what to do is the pure lifecycle decision `plan`
        // shows too.
        let stored = self.stored.clone();
        let state = State::of(&stored);
        let observed = locate::observe(
            &entry,
            &snapshot,
            self.authorization,
            &state,
            &fingerprint,
            &secret,
            self.ctx.installation(),
            Listing::Fresh,
        )
        .await?;
        if let Some((_, why)) = &observed.disowned {
            self.publish(
                EventType::Warning,
                "NotOwned",
                format!("{why}; it is left alone and this resource gets a token of its own"),
            )
            .await;
        }
        let step = lifecycle::decide(self.spec(), &state, &observed, Timestamp::now());
        // The Secret holds no live token of this resource: whatever follows fails or not,
        // Ready=True would be a lie now.
        self.lacks_token = !step.secret_holds_token();
        let outcome = match step {
            Step::Keep { live, update, .. } => Outcome::Kept(live, update),
            Step::Reissue { lost, why } => {
                self.replace(
                    &entry,
                    &fingerprint,
                    client_secret.as_ref(),
                    &secret,
                    lost,
                    why,
                )
                .await?
            }
            Step::Rotate { live, trigger } => {
                fingerprint = self.begin_rotation(&live, &fingerprint, trigger).await?;
                self.issue_new(
                    &entry,
                    &fingerprint,
                    client_secret.as_ref(),
                    &secret,
                    String::new(),
                )
                .await?
            }
            Step::Issue { before } => {
                let why = match before {
                    Before::Nothing => String::new(),
                    Before::Gone(gone) => format!("GHES authorization {gone} was gone; "),
                    Before::NotOwned(id) => {
                        format!("GHES authorization {id} is not this resource's; ")
                    }
                };
                self.issue_new(&entry, &fingerprint, client_secret.as_ref(), &secret, why)
                    .await?
            }
        };
        // Whether this run created the token: one no Secret can hold must not stay live.
        let fresh = matches!(outcome, Outcome::New { .. });
        let (live, token) = match outcome {
            Outcome::Kept(live, update) => {
                // Readable only from a plain Secret; a rendered one keeps its data as it is.
                let token = secret.token.clone().filter(|token| {
                    live.hashed_token
                        .as_deref()
                        .or(self.stored.hashed_token.as_deref())
                        .is_some_and(|hash| token.matches_hash(hash))
                });
                (self.repair_drift(&entry, live, update).await?, token)
            }
            Outcome::Adopted(live, token) => {
                // Status was lost: repair the scopes against what GHES holds, not against a
                // request this process never made.
                self.stored.requested_scopes = live.scopes.clone();
                self.stored.scopes = live.scopes.clone();
                let update =
                    drift_update(self.spec(), &self.stored, &live, self.note(&fingerprint));
                (self.repair_drift(&entry, live, update).await?, Some(token))
            }
            Outcome::New { live, token, why } => {
                self.announce(&live, &token, why).await;
                (live, Some(token))
            }
        };
        if let Err(error) = self
            .write_secret(&entry, &live, token.as_ref(), &secret)
            .await
        {
            if fresh && matches!(error, Error::SecretConflict { .. }) {
                // Another object took the Secret meanwhile (two Authorizations naming one
                // Secret): the token can reach no one, so it goes at once.
                revoke(&entry, self.proof(&live)?).await?;
                self.ctx.metrics.count_token(TokenChange::Revoked);
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
        self.record(&live, &fingerprint, token.as_ref());
        let revoke_previous_at = self.settle_previous(&entry, &snapshot).await?;
        self.revoke_strays(&entry, &fingerprint).await?;
        let next = self.next_rotation();
        self.status.next_rotation_reason = next.as_ref().map(|(_, why)| why.clone());
        self.status.next_rotation_at = next.map(|(at, _)| Time(at));
        let now = Timestamp::now();
        let until = |at: Timestamp| {
            Duration::try_from(at.duration_since(now))
                .unwrap_or_default()
                .max(Duration::from_secs(1))
        };
        Ok([
            revoke_previous_at,
            self.status.next_rotation_at.as_ref().map(|t| t.0),
        ]
        .into_iter()
        .flatten()
        .map(until)
        .fold(entry.sync_interval, Duration::min))
    }

    /// Replaces `lost`, whose token no Secret holds and GHES cannot show again: the one place
    /// that revokes and reissues. Its fingerprint proves it is this resource's first.
    async fn replace(
        &mut self,
        entry: &AccountEntry,
        fingerprint: &Fingerprint,
        client_secret: Option<&crate::ghes::SecretValue>,
        secret: &SecretState,
        lost: GhesAuthorization,
        why: &str,
    ) -> Result<Outcome> {
        revoke(entry, self.proof(&lost)?).await?;
        crate::failpoint::hit("reissue.revoked");
        match self
            .issue(entry, fingerprint, client_secret, secret)
            .await?
        {
            Issued::Created(live, token) => Ok(Outcome::New {
                live,
                token,
                why: format!("{why}: revoked GHES authorization {}; ", lost.id),
            }),
            Issued::Adopted(live, _) | Issued::Unreadable(live) => {
                Err(Error::Ghes(GhesError::Protocol(format!(
                    "GHES still answers authorization {} for this fingerprint after revoking {}",
                    live.id, lost.id
                ))))
            }
        }
    }

    /// Issues a token where none is live (`why`: what happened to the one before, if any).
    async fn issue_new(
        &mut self,
        entry: &AccountEntry,
        fingerprint: &Fingerprint,
        client_secret: Option<&crate::ghes::SecretValue>,
        secret: &SecretState,
        why: String,
    ) -> Result<Outcome> {
        match self
            .issue(entry, fingerprint, client_secret, secret)
            .await?
        {
            Issued::Created(live, token) => Ok(Outcome::New { live, token, why }),
            Issued::Adopted(live, token) => Ok(Outcome::Adopted(live, token)),
            Issued::Unreadable(live) => {
                let why = "GHES held a token for this fingerprint that the Secret does not";
                self.replace(entry, fingerprint, client_secret, secret, live, why)
                    .await
            }
        }
    }

    /// Counts and reports a token this run created: a first issue, a rotation, or a reissue
    /// (`why` says what happened to the one it replaces).
    async fn announce(&self, live: &GhesAuthorization, token: &Token, why: String) {
        let (reason, change, what) = if self.rotating() {
            let previous = self
                .stored
                .previous
                .as_ref()
                .map_or(0, |p| p.authorization_id);
            (
                "Rotated",
                TokenChange::Rotated,
                format!(
                    "rotated the token: {why}issued GHES authorization {} (token …{}); the \
                     previous one, {previous}, stays valid for rotation.gracePeriod ({})",
                    live.id,
                    token.last_eight(),
                    crate::api::duration::Duration::from(self.spec().grace_period()),
                ),
            )
        } else if why.is_empty() {
            (
                "Created",
                TokenChange::Issued,
                format!(
                    "issued GHES authorization {} (token …{}, scopes [{}])",
                    live.id,
                    token.last_eight(),
                    live.scopes.join(", ")
                ),
            )
        } else {
            (
                "TokenReissued",
                TokenChange::Reissued,
                format!(
                    "{why}issued {} (token …{}, scopes [{}])",
                    live.id,
                    token.last_eight(),
                    live.scopes.join(", ")
                ),
            )
        };
        self.ctx.metrics.count_token(change);
        self.publish(EventType::Normal, reason, what).await;
    }

    /// The note of the token with `fingerprint`.
    fn note(&self, fingerprint: &Fingerprint) -> String {
        self.authorization.rotated_note(fingerprint.rotation())
    }

    /// Revokes `live` once proven this resource's (else a Warning says why it is left alone),
    /// counts it, and says so in a `Revoked` Event with `note`; whether it went.
    async fn revoke_proven(
        &self,
        entry: &AccountEntry,
        live: &GhesAuthorization,
        note: String,
    ) -> Result<bool> {
        let Some(owned) = self.owned(live).await else {
            return Ok(false);
        };
        revoke(entry, owned).await?;
        self.ctx.metrics.count_token(TokenChange::Revoked);
        self.publish(EventType::Normal, "Revoked", note).await;
        Ok(true)
    }

    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let reference = self.authorization.object_ref(&());
        self.ctx
            .events
            .publish(&reference, type_, reason, "Reconcile", note)
            .await;
    }
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

/// The live authorization `id`: from `snapshot` when it shows it, else as GHES answers for it
/// (a listing's word alone never says a token is gone); `None` when GHES says it is gone.
/// What GHES answers goes into the account's view, so that the next snapshot agrees.
async fn live_by_id(
    entry: &AccountEntry,
    snapshot: Option<&Snapshot>,
    id: u64,
) -> Result<Option<GhesAuthorization>> {
    if let Some(live) = snapshot.and_then(|snapshot| snapshot.get(id)) {
        return Ok(Some(live.clone()));
    }
    match entry.client.get_authorization(id).await {
        Ok(live) => {
            entry.record(&live);
            Ok(Some(live))
        }
        Err(error) if error.is_not_found() => {
            entry.forget(id);
            Ok(None)
        }
        Err(error) => Err(account_error(&entry.key, error)),
    }
}

/// A GHES error as seen by an Authorization: credential problems belong to the account.
pub(crate) fn account_error(key: &AccountKey, error: GhesError) -> Error {
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
