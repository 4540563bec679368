//! Reconciling an Account or ClusterAccount: read its credentials, list its authorizations once
//! per sync interval (which also proves the credentials work), and report Ready, the login and
//! the count in status. Invalid credentials stop every call for the account until its Secret
//! changes: the registry keeps the refused client, which sends nothing more.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

pub use super::AccountObject;
use super::registry::{AccountEntry, Snapshot};
use crate::api::AccountKey;
use crate::api::GhesUser;
use crate::api::conditions::{self, ConditionStatus, READY, RECONCILING, STALLED, SUSPENDED};
use crate::api::{
    AccountRef, AccountStatus, PruneMode, PruneStatus, PruneTarget, RefusedCredentials,
};
use crate::controller::Reconciled;
use crate::controller::cache::Referenced;
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::identity;
use crate::controller::status::{apply_status, as_stored};
use crate::controller::{in_use, prune};
use crate::ghes::GhesError;
use crate::metrics::PruneKind;

/// How soon an account that is not ready looks again (reading its Secret; GHES is only called
/// when the Secret or spec changed).
const NOT_READY_RECHECK: Duration = Duration::from_secs(30);

/// Entry point for one Account or ClusterAccount.
pub async fn reconcile<A: AccountObject>(account: Arc<A>, ctx: Arc<Context>) -> Result<Reconciled> {
    // Just moved here from another shard: that shard's replica stops first.
    if let Some(wait) = crate::controller::sharding::handoff_wait(account.meta()) {
        return Ok(Reconciled::done(Action::requeue(wait)));
    }
    if account.meta().deletion_timestamp.is_some() {
        return deleting(account.as_ref(), &ctx).await;
    }
    if account.settings().suspend {
        return suspended(account.as_ref(), &ctx).await;
    }
    let key = AccountKey::of(account.as_ref());
    let stored = account.account_status().cloned().unwrap_or_default();
    let mut status = stored.clone();
    status.observed_generation = account.meta().generation;
    status.served_by = ctx.config.served_by();
    let mut notes = Vec::new();
    let outcome = sync(account.as_ref(), &ctx, &mut status, &mut notes).await;
    // Remember refused credentials in status, so that no restart or edit sends them again.
    match &outcome {
        Ok(_) => status.refused_credentials = None,
        Err(Error::Ghes(error)) if error.is_credentials_problem() => {
            if let Some(entry) = ctx.accounts.lookup(&key)
                && !records(&stored, &entry)
            {
                status.refused_credentials = Some(refusal(&entry, error));
            }
        }
        Err(_) => {}
    }
    let (condition_status, reason, message, requeue) = match &outcome {
        Ok(next) => (
            ConditionStatus::True,
            "Synced",
            format!(
                "logged in as {}; {} authorizations",
                status.login.as_deref().unwrap_or("?"),
                status.authorization_count.unwrap_or_default()
            ),
            *next,
        ),
        Err(error) => (
            ConditionStatus::False,
            error.reason(),
            match ctx
                .accounts
                .lookup(&key)
                .and_then(|e| e.availability.outage())
            {
                Some(outage) if matches!(error, Error::Ghes(GhesError::Unavailable { .. })) => {
                    format!(
                        "{}; {} probe(s) failed since, the next is at {} (one request; nothing \
                         else is sent to this GHES until it answers, and the account's \
                         Authorizations wait without holding a worker)",
                        error.condition_message(),
                        outage.probes,
                        outage
                            .next_probe
                            .round(jiff::Unit::Second)
                            .unwrap_or(outage.next_probe),
                    )
                }
                _ => error.condition_message(),
            },
            NOT_READY_RECHECK,
        ),
    };
    let condition = conditions::new_condition(
        READY,
        condition_status,
        reason,
        &message,
        account.meta().generation,
        Time(Timestamp::now()),
    );
    conditions::set_condition(&mut status.conditions, condition);
    // kstatus: Stalled for what waits for a human, Reconciling while a transient failure is
    // retried; neither once the account works.
    let (stalled, reconciling) = match &outcome {
        Ok(_) => (false, false),
        Err(error) if error.is_config() => (true, false),
        Err(_) => (false, true),
    };
    for (type_, on) in [(STALLED, stalled), (RECONCILING, reconciling)] {
        if on {
            let condition = conditions::new_condition(
                type_,
                ConditionStatus::True,
                reason,
                &message,
                account.meta().generation,
                Time(Timestamp::now()),
            );
            conditions::set_condition(&mut status.conditions, condition);
        } else {
            conditions::remove_condition(&mut status.conditions, type_);
        }
    }
    // What pruning did on GHES is told first: it happened, whether or not the status write
    // below succeeds.
    let reference = account.object_ref(&());
    for note in notes {
        ctx.events
            .publish(&reference, note.type_, note.reason, "Prune", note.message)
            .await;
    }
    if status != stored {
        apply_status(&account.api(ctx.client.clone()), account.as_ref(), &status).await?;
        let was_ready = conditions::is_true(&stored.conditions, READY);
        match &outcome {
            Err(error)
                if was_ready || stored.conditions.is_empty() || reason_changed(&stored, reason) =>
            {
                ctx.events
                    .publish(
                        &reference,
                        EventType::Warning,
                        error.reason(),
                        "Sync",
                        error.to_string(),
                    )
                    .await;
            }
            Ok(_) if !was_ready => {
                ctx.events
                    .publish(
                        &reference,
                        EventType::Normal,
                        "Ready",
                        "Sync",
                        message.clone(),
                    )
                    .await;
            }
            _ => {}
        }
    }
    match outcome {
        Ok(_) => {
            ctx.memory.reset_backoff(account.as_ref());
            Ok(Reconciled::done(Action::requeue(requeue)))
        }
        // A configuration error too: `error_policy` makes it wait for a change.
        Err(error) => Err(error),
    }
}

/// A suspended account: no GHES call (no sync, no pruning); its status says so, Ready=False
/// with reason `Suspended` for the current generation and neither Stalled nor Reconciling, so
/// that kstatus reads it as Current. Its Authorizations see the change and suspend too.
async fn suspended<A: AccountObject>(account: &A, ctx: &Context) -> Result<Reconciled> {
    let stored = account.account_status().cloned().unwrap_or_default();
    let was = conditions::has_reason(&stored.conditions, READY, SUSPENDED);
    let mut status = stored.clone();
    status.observed_generation = account.meta().generation;
    status.served_by = ctx.config.served_by();
    let message = "spec.suspend is true: the operator makes no GHES call for this account (no \
                   sync, no pruning) until it is false, and its Authorizations are suspended; \
                   deleting one of them still revokes its token";
    let condition = conditions::new_condition(
        READY,
        ConditionStatus::False,
        SUSPENDED,
        message,
        account.meta().generation,
        Time(Timestamp::now()),
    );
    conditions::set_condition(&mut status.conditions, condition);
    conditions::remove_condition(&mut status.conditions, STALLED);
    conditions::remove_condition(&mut status.conditions, RECONCILING);
    if status != stored {
        apply_status(&account.api(ctx.client.clone()), account, &status).await?;
    }
    if !was {
        ctx.events
            .publish(
                &account.object_ref(&()),
                EventType::Normal,
                SUSPENDED,
                "Suspend",
                message.to_owned(),
            )
            .await;
    }
    ctx.memory.reset_backoff(account);
    Ok(Reconciled::done(Action::await_change()))
}

/// Whether `status` records the refusal of the credentials `entry` sends.
fn records(status: &AccountStatus, entry: &AccountEntry) -> bool {
    status
        .refused_credentials
        .as_ref()
        .is_some_and(|refused| refused.fingerprint == entry.credentials_digest)
}

/// The record of GHES refusing the credentials `entry` sends.
fn refusal(entry: &AccountEntry, error: &GhesError) -> RefusedCredentials {
    RefusedCredentials {
        fingerprint: entry.credentials_digest.clone(),
        reason: error.reason().to_owned(),
        since: Some(Time(Timestamp::now())),
    }
}

/// Records in the status of the account `reference` names (from an Authorization in
/// `namespace`) that GHES refused the credentials its client sends, when it did and the status
/// does not say so yet: an Authorization's reconcile met the refusal, and the account's own
/// next sync may come after a restart that would send them again.
pub async fn record_refusal(ctx: &Context, namespace: &str, reference: &AccountRef) -> Result<()> {
    match ctx
        .caches
        .account_views
        .referenced(namespace, reference)
        .await?
    {
        Some(Referenced::Account(account)) => record_refusal_of(ctx, account.as_ref()).await,
        Some(Referenced::ClusterAccount(account)) => record_refusal_of(ctx, account.as_ref()).await,
        None => Ok(()),
    }
}

async fn record_refusal_of<A: AccountObject>(ctx: &Context, account: &A) -> Result<()> {
    let key = AccountKey::of(account);
    let Some(entry) = ctx.accounts.lookup(&key) else {
        return Ok(());
    };
    let Some(error) = entry.client.refused() else {
        return Ok(());
    };
    let mut status = account.account_status().cloned().unwrap_or_default();
    if records(&status, &entry) || entry.refusal_recorded.load(Ordering::Relaxed) {
        return Ok(());
    }
    // Written over the status this process last saw: should that be behind, the write makes
    // the account reconcile, which keeps the refusal (its client still refuses) and mends
    // the rest.
    status.refused_credentials = Some(refusal(&entry, &error));
    apply_status(&account.api(ctx.client.clone()), account, &status).await?;
    entry.refusal_recorded.store(true, Ordering::Relaxed);
    tracing::info!(
        account = %key,
        reason = error.reason(),
        "credentials refused: recorded in the account's status, not sent again until they change"
    );
    Ok(())
}

/// How often a deleted account that is still in use looks whether its Authorizations have
/// revoked their tokens.
const DELETION_RECHECK: Duration = Duration::from_secs(2);

/// An account being deleted: it goes once no Authorization that uses it holds a token; until
/// then its status says what it waits for.
async fn deleting<A: AccountObject>(account: &A, ctx: &Context) -> Result<Reconciled> {
    let held = account
        .meta()
        .finalizers
        .as_ref()
        .is_some_and(|finalizers| finalizers.iter().any(|f| f == in_use::IN_USE_FINALIZER));
    if !held {
        return Ok(Reconciled::done(Action::await_change()));
    }
    let holders = in_use::holders(ctx, account).await?;
    if holders == 0 {
        in_use::release(ctx, account).await?;
        tracing::info!(account = %AccountKey::of(account), "deleted account released: no token left");
        return Ok(Reconciled::done(Action::await_change()));
    }
    let stored = account.account_status().cloned().unwrap_or_default();
    let mut status = stored.clone();
    let message = format!(
        "being deleted: waits for {holders} Authorization(s) that use it to revoke their tokens \
         (each gives up after spec.revokeTimeout, {}, when GHES cannot be reached)",
        account.settings().revoke_timeout
    );
    let condition = conditions::new_condition(
        READY,
        ConditionStatus::False,
        "Deleting",
        &message,
        account.meta().generation,
        Time(Timestamp::now()),
    );
    conditions::set_condition(&mut status.conditions, condition);
    if status != stored {
        apply_status(&account.api(ctx.client.clone()), account, &status).await?;
    }
    Ok(Reconciled::done(Action::requeue(DELETION_RECHECK)))
}

fn reason_changed(stored: &AccountStatus, reason: &str) -> bool {
    conditions::find_condition(&stored.conditions, READY).is_none_or(|c| c.reason != reason)
}

/// An Event to publish after the status write.
struct Note {
    type_: EventType,
    reason: &'static str,
    message: String,
}

/// Builds or reuses the client and lists the account's authorizations and grants when the last
/// listing is older than the sync interval; after a fresh listing, runs pruning. Returns when to
/// list next.
async fn sync<A: AccountObject>(
    account: &A,
    ctx: &Context,
    status: &mut AccountStatus,
    notes: &mut Vec<Note>,
) -> Result<Duration> {
    let entry = ctx.accounts.entry_for(&ctx.caches.secrets, account).await?;
    // GHES does not answer: say so now, even with a listing that is not due yet.
    entry.availability.check()?;
    // GHES refused these credentials (perhaps to an Authorization's call): say so now too.
    if let Some(refused) = entry.client.refused() {
        return Err(Error::Ghes(refused));
    }
    let interval = entry.sync_interval;
    let now = Timestamp::now();
    // List when the last listing is older than the interval. Before the first one, any
    // listing will do (an Authorization may be making it right now).
    let due = entry
        .listed_at()
        .is_some_and(|listed| now.duration_since(listed).unsigned_abs() >= interval);
    let snapshot = if due {
        entry.sync(Some(now)).await
    } else {
        entry.ensure_synced().await
    }
    .map_err(Error::Ghes)?;
    let mut snapshot = snapshot;
    // Prune once per listing, whether this reconcile or an Authorization's made it.
    if entry.claim_prune_run(snapshot.listed_at) {
        match prune_run(account, ctx, &entry, &snapshot, status, notes).await {
            Ok(report) => entry.keep_prune_report(report),
            Err(error) => {
                // Nothing was deleted: the retry runs it again.
                entry.release_prune_run(snapshot.listed_at);
                return Err(error);
            }
        }
        if let Some(after) = entry.snapshot() {
            snapshot = after;
        }
    }
    // The last run's report, written by every sync until a newer run replaces it, so that a
    // status write that failed after the run loses nothing.
    if let Some(report) = entry.prune_report() {
        status.prune = Some(report);
    }
    status.login = Some(
        snapshot
            .login
            .clone()
            .unwrap_or_else(|| entry.username.clone()),
    );
    status.authorization_count = i64::try_from(snapshot.len()).ok();
    status.grant_count = i64::try_from(snapshot.grants.len()).ok();
    status.last_sync_time = Some(as_stored(snapshot.listed_at));
    let age = now.duration_since(snapshot.listed_at).unsigned_abs();
    Ok(interval.saturating_sub(age).max(Duration::from_secs(1)))
}

/// One prune run after a fresh listing: plan, delete in Enabled mode, and say what happened.
async fn prune_run<A: AccountObject>(
    account: &A,
    ctx: &Context,
    entry: &AccountEntry,
    snapshot: &Snapshot,
    status: &AccountStatus,
    notes: &mut Vec<Note>,
) -> Result<PruneStatus> {
    let spec = &account.settings().prune;
    let now = Timestamp::now();
    // Claims of the GHES user, not of this account: another Account or ClusterAccount may log
    // in as the same user, and its tokens are not this account's to prune.
    let login = snapshot.login.as_deref().unwrap_or(&entry.username);
    let identity = GhesUser::new(&account.settings().api_root(), login);
    let users = identity::users(ctx, &identity).await?;
    let claims = &users.claims;
    let vantage = prune::Vantage {
        installation: ctx.installation().clone(),
        sees_every_namespace: users.sees_every_namespace,
    };
    let plan = prune::plan(
        spec,
        snapshot,
        claims,
        &entry.credential_hash,
        &vantage,
        now,
    );
    let previous = status.prune.clone().unwrap_or_default();
    let outcome = plan.outcome();
    let (result, deletions) = prune::execute(spec, entry, plan, now).await;
    entry.set_prune_outcome(outcome);
    ctx.metrics.set_prune_outcome(ctx.accounts.prune_outcome());
    for deletion in deletions.iter().filter(|d| d.error.is_none()) {
        ctx.metrics.prune_deleted(match deletion.target {
            prune::Target::Authorization(_) => PruneKind::Authorization,
            prune::Target::Grant(_) => PruneKind::Grant,
        });
    }
    if let Some(refused) = &result.refused
        && previous.refused.as_ref() != Some(refused)
    {
        notes.push(Note {
            type_: EventType::Warning,
            reason: "PruneRefused",
            message: refused.clone(),
        });
    }
    for deletion in &deletions {
        notes.push(match &deletion.error {
            None => Note {
                type_: EventType::Normal,
                reason: "Pruned",
                message: format!(
                    "deleted {} (declared by no Authorization)",
                    deletion.target.describe()
                ),
            },
            Some(error) => Note {
                type_: EventType::Warning,
                reason: "PruneFailed",
                message: format!("could not delete {}: {error}", deletion.target.describe()),
            },
        });
    }
    let ids = |status: &PruneStatus| -> Vec<(PruneTarget, i64)> {
        status.candidates.iter().map(|c| (c.kind, c.id)).collect()
    };
    if spec.mode == PruneMode::DryRun
        && result.candidate_count > 0
        && ids(&result) != ids(&previous)
    {
        let listed: Vec<String> = result
            .candidates
            .iter()
            .take(10)
            .map(|c| format!("{:?} {}", c.kind, c.id))
            .collect();
        notes.push(Note {
            type_: EventType::Normal,
            reason: "PruneCandidates",
            message: format!(
                "DryRun: {} candidate(s) declared by no Authorization would be deleted in Enabled \
                 mode: {}{}",
                result.candidate_count,
                listed.join(", "),
                if result.candidate_count > 10 {
                    ", …"
                } else {
                    ""
                }
            ),
        });
    }
    Ok(result)
}

/// When to look again after a failure: a configuration error re-reads the Secret soon (no
/// GHES call until it changes) and takes no backoff step; a transient one backs off.
pub fn error_policy<A: AccountObject>(account: Arc<A>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = AccountKey::of(account.as_ref()).to_string();
    if error.is_config() {
        ctx.memory.reset_backoff(account.as_ref());
        tracing::info!(account = %key, reason = error.reason(), %error, "account not ready");
        return Action::requeue(NOT_READY_RECHECK);
    }
    let delay = error
        .retry_after()
        .or_else(|| error.parked_for())
        .unwrap_or_else(|| ctx.memory.next_backoff(account.as_ref()));
    tracing::warn!(account = %key, reason = error.reason(), %error, "account sync failed");
    Action::requeue(delay)
}
