//! Deleting an Authorization: revoke what it owns on GHES, or orphan it, and never wedge.

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::lifecycle::{Release, State, released};
use super::locate::{Listing, remains};
use super::{remember_refusal, revoke};
use crate::api::AccountKey;
use crate::api::Authorization;
use crate::controller::account::registry::AccountEntry;
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::metrics::TokenChange;

/// Deletion: revoke on GHES unless the policy is Orphan; the Secret goes with its owner.
///
/// Every token made for this resource goes: the ids in status and whatever carries one of its
/// fingerprints in the account's listing (a crash between the create and the first status
/// write leaves no id behind), each checked against its live fingerprint first. Deletion never
/// wedges: when GHES cannot be reached for a configuration reason (no account, no credentials,
/// refused credentials), a Warning Event names the token and the finalizer is released; the
/// token is left to pruning. Transient errors (GHES unreachable) retry until the account's
/// `revokeTimeout` after the deletion began, then give up the same way. Every token given up
/// is counted and named in an Event in the operator's namespace, which outlives the
/// Authorization's.
pub(super) async fn cleanup(authorization: &Authorization, ctx: &Context) -> Result<Action> {
    let reference = authorization.object_ref(&());
    let status = authorization.status.clone().unwrap_or_default();
    let state = State::of(&status);
    let released = match released(&authorization.spec, &state) {
        Some(Release::Observed) => Some((
            "Released",
            "managementPolicy is Observe: the authorization stays on GHES",
        )),
        Some(Release::Orphan) => Some((
            "Orphaned",
            "deletionPolicy is Orphan: the token stays on GHES",
        )),
        Some(Release::NeverIssued) => return Ok(Action::await_change()),
        None => None,
    };
    if let Some((reason, note)) = released {
        ctx.events
            .publish(&reference, EventType::Normal, reason, "Delete", note.into())
            .await;
        return Ok(Action::await_change());
    }
    let uid = authorization.uid().unwrap_or_default();
    let ids: Vec<u64> = status.token_ids();
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
        .resolve(&ctx.caches, &namespace, &authorization.spec.account_ref)
        .await
    {
        Ok(entry) => revoke_all(authorization, ctx, &entry).await,
        Err(error @ Error::AccountNotFound { .. }) => {
            // The account went first (e.g. namespace deletion): use its last known client.
            match ctx
                .accounts
                .lookup(&AccountKey::referenced_by(authorization))
            {
                Some(entry) => revoke_all(authorization, ctx, &entry).await,
                None => Err(error),
            }
        }
        Err(error) => Err(error),
    };
    if let Err(error) = &outcome {
        remember_refusal(ctx, authorization, error).await;
    }
    // Given up: at once for a configuration error, after revokeTimeout for the rest.
    let given_up = match &outcome {
        Ok(()) => None,
        Err(error) if error.is_config() => Some((error.reason(), error.reason().to_owned())),
        Err(error) => overdue(ctx, authorization).await.map(|timeout| {
            (
                "RevokeTimeout",
                format!(
                    "{} for {} (the account's revokeTimeout)",
                    error.reason(),
                    crate::api::duration::Duration::from(timeout)
                ),
            )
        }),
    };
    match (outcome, given_up) {
        (Ok(()), _) => Ok(Action::await_change()),
        (Err(error), Some((reason, why))) => {
            let message = abandon(&error);
            let tokens = ids.len().max(1);
            ctx.metrics.count_abandoned(reason, tokens);
            ctx.events.publish_to_operator(
                EventType::Warning,
                "TokenAbandoned",
                format!(
                    "Authorization {namespace}/{} (uid {uid}) of {} {} at {}: {message} ({why})",
                    authorization.name_any(),
                    authorization.spec.account_ref.kind.as_str(),
                    authorization.spec.account_ref.name,
                    ctx.accounts
                        .lookup(&AccountKey::referenced_by(authorization))
                        .map(|entry| format!("{} as {}", entry.server, entry.username))
                        .unwrap_or_else(|| "an unknown GHES".into()),
                ),
            )
            .await;
            ctx.events
                .publish(
                    &reference,
                    EventType::Warning,
                    "RevokeAbandoned",
                    "Delete",
                    message,
                )
                .await;
            Ok(Action::await_change())
        }
        (Err(error), None) => {
            ctx.events
                .publish(
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

/// The account's `revokeTimeout` (the default when the account is gone), when the deletion of
/// `authorization` began longer ago than that.
async fn overdue(ctx: &Context, authorization: &Authorization) -> Option<std::time::Duration> {
    let since = authorization.metadata.deletion_timestamp.as_ref()?;
    let waited = Timestamp::now().duration_since(since.0).unsigned_abs();
    let namespace = authorization.namespace().unwrap_or_default();
    let settings = ctx
        .caches
        .account_views
        .referenced(&namespace, &authorization.spec.account_ref)
        .await
        .ok()
        .flatten()
        .map(|account| account.settings().revoke_timeout.as_std());
    let timeout = settings.unwrap_or(DEFAULT_REVOKE_TIMEOUT);
    (waited >= timeout).then_some(timeout)
}

/// The revokeTimeout of an account that is gone.
const DEFAULT_REVOKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Revokes every token of the resource that GHES holds: `ids` from status and whatever carries
/// the resource's fingerprint in the listing, each only after its fingerprint proved it is
/// the resource's.
pub(super) async fn revoke_all(
    authorization: &Authorization,
    ctx: &Context,
    entry: &AccountEntry,
) -> Result<()> {
    let reference = authorization.object_ref(&());
    let status = authorization.status.clone().unwrap_or_default();
    let state = State::of(&status);
    let remains = remains(
        entry,
        authorization,
        &state,
        ctx.installation(),
        Listing::Fresh,
    )
    .await?;
    for (_, why) in remains.unproven {
        ctx.events
            .publish(
                &reference,
                EventType::Warning,
                "NotOwned",
                "Delete",
                format!("status names {why}; it is not revoked"),
            )
            .await;
    }
    for proof in remains.proven {
        let (id, fingerprint) = (proof.id(), proof.fingerprint().to_owned());
        revoke(entry, proof).await?;
        ctx.metrics.count_token(TokenChange::Revoked);
        crate::failpoint::hit("delete.revoked");
        ctx.events
            .publish(
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
