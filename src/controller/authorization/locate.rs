//! Observing an Authorization's token: the live GHES authorization in its account's listing,
//! and whether the Secret holds its token.

use jiff::Timestamp;
use kube::ResourceExt;

use super::lifecycle::{Found, Observed, State};
use super::{Reconciliation, SecretState, account_error, live_by_id, rotate, token_secret};
use crate::api::Authorization;
use crate::controller::account::registry::{AccountEntry, Snapshot};
use crate::controller::error::Result;
use crate::controller::fingerprint::{Fingerprint, InstallationId, Owned};
use crate::ghes::Authorization as GhesAuthorization;

impl SecretState {
    /// Why the Secret does not hold the live token, when it does not.
    pub(crate) fn lost_reason(&self) -> &'static str {
        match &self.existing {
            None => "the Secret was missing",
            Some(_) if self.recipe.is_some() && self.embedded_hash.is_none() => {
                "the Secret's data was changed since it was rendered"
            }
            Some(_) if self.token.is_none() && self.embedded_hash.is_none() => {
                "the Secret held no token"
            }
            Some(_) => "the Secret's token does not match the authorization",
        }
    }
}

/// How fresh the listing is that finds an interrupted create: a reconcile, about to create,
/// lists again; `plan` reads the account's cached listing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    Fresh,
    Cached,
}

/// Observes what [`lifecycle::decide`] needs of `authorization`'s token, in `state`: the live
/// token (from `snapshot`, by a GET when status names one the listing does not show, by
/// fingerprint after an interrupted create), each proven this resource's, and what the
/// Secret holds. Reads only; shared by reconcile and `plan`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn observe(
    entry: &AccountEntry,
    snapshot: &Snapshot,
    authorization: &Authorization,
    state: &State<'_>,
    fingerprint: &Fingerprint,
    secret: &SecretState,
    installation: &InstallationId,
    listing: Listing,
) -> Result<Observed> {
    let (found, disowned) = find(
        entry,
        snapshot,
        authorization,
        state,
        fingerprint,
        installation,
        listing,
    )
    .await?;
    let spec = &authorization.spec;
    let (held, render_anew) = match &found {
        Found::Live { live, .. } => {
            let held = live
                .hashed_token
                .as_deref()
                .or(state.status().hashed_token.as_deref())
                .is_some_and(|hash| secret.holds(hash));
            let render_anew = match &spec.secret.template {
                Some(template) => {
                    let inputs = token_secret::template_inputs(spec, entry, Some(live));
                    crate::controller::template::recipe_hash(template, &inputs).ok()
                        != secret.recipe
                }
                None => secret.recipe.is_some(),
            };
            (held, render_anew)
        }
        _ => (false, false),
    };
    Ok(Observed {
        found,
        disowned,
        held,
        lost_reason: secret.lost_reason(),
        readable: secret.token.is_some(),
        render_anew,
        rotate_request: rotate::rotate_annotation(authorization),
        clock_offset: entry.client.clock_offset().unwrap_or_default(),
        note: authorization.rotated_note(fingerprint.rotation()),
    })
}

/// The live GHES authorization of this resource, if any, proven its own; and a token status
/// names or the fingerprint finds that is not, with why.
async fn find(
    entry: &AccountEntry,
    snapshot: &Snapshot,
    authorization: &Authorization,
    state: &State<'_>,
    fingerprint: &Fingerprint,
    installation: &InstallationId,
    listing: Listing,
) -> Result<(Found, Option<(u64, String)>)> {
    let uid = authorization.uid().unwrap_or_default();
    let client_id = authorization
        .spec
        .app
        .as_ref()
        .map(|app| app.client_id.as_str());
    let fingerprint = fingerprint.to_string();
    let proven = |live: &GhesAuthorization| Owned::verify(live, &uid, installation);
    if let Some(id) = state.current() {
        // Not in the listing: issued after it, skipped by its offset paging while others
        // were deleted, or gone. Only GHES can say which; a token is never declared lost on
        // a listing's word alone.
        let Some(live) = live_by_id(entry, Some(snapshot), id).await? else {
            return Ok((Found::Gone(id), None));
        };
        let why = match proven(&live) {
            Ok(_) => {
                let found = Found::Live {
                    live,
                    recorded: true,
                };
                return Ok((found, None));
            }
            Err(why) => why,
        };
        // Status names a token that is not this resource's: look for its own instead.
        let found = match snapshot
            .by_fingerprint(client_id, &fingerprint)
            .filter(|own| proven(own).is_ok())
        {
            Some(own) => Found::Live {
                live: own.clone(),
                recorded: false,
            },
            None => Found::NotOwned { id },
        };
        return Ok((found, Some((id, why))));
    }
    if !state.creating() {
        return Ok((Found::Nothing, None));
    }
    // A create was started and its outcome is unknown: look it up by fingerprint.
    let fresh;
    let listed = match listing {
        Listing::Fresh => {
            fresh = entry
                .sync(Some(Timestamp::now()))
                .await
                .map_err(|error| account_error(&entry.key, error))?;
            &fresh
        }
        Listing::Cached => snapshot,
    };
    Ok(match listed.by_fingerprint(client_id, &fingerprint) {
        Some(live) => match proven(live) {
            Ok(_) => {
                let found = Found::Live {
                    live: live.clone(),
                    recorded: false,
                };
                (found, None)
            }
            // Not this resource's, whatever its fingerprint says: a token of its own is made.
            Err(why) => (Found::Nothing, Some((live.id, why))),
        },
        None => (Found::Nothing, None),
    })
}

/// The tokens a deletion of `authorization` finds on GHES: every one in the listing proven
/// made for it (any rotation), and each id status names that the listing does not show, as
/// GHES answers for it; those status names that are not its own are left alone, with why.
pub(crate) struct Remains {
    /// Proven its own: these are revoked.
    pub(crate) proven: Vec<Owned>,
    /// Named in status but not made for it.
    pub(crate) unproven: Vec<(u64, String)>,
}

/// Observes what a deletion of `authorization`, in `state`, would revoke. Reads only; shared
/// by the deletion and `plan`.
pub(crate) async fn remains(
    entry: &AccountEntry,
    authorization: &Authorization,
    state: &State<'_>,
    installation: &InstallationId,
    listing: Listing,
) -> Result<Remains> {
    let uid = authorization.uid().unwrap_or_default();
    // A personal token's create under way: only a listing made now can show its outcome.
    let snapshot = if listing == Listing::Fresh && state.creating() {
        entry.sync(Some(Timestamp::now())).await
    } else {
        entry.ensure_synced().await
    }
    .map_err(|error| account_error(&entry.key, error))?;
    let mut proven: Vec<Owned> = snapshot
        .iter()
        .filter_map(|live| Owned::verify(live, &uid, installation).ok())
        .collect();
    let mut unproven = Vec::new();
    for id in state.status().token_ids() {
        if proven.iter().any(|owned| owned.id() == id) {
            continue;
        }
        // Issued after the listing, or gone: GHES says which.
        let Some(live) = live_by_id(entry, Some(&snapshot), id).await? else {
            continue;
        };
        match Owned::verify(&live, &uid, installation) {
            Ok(owned) => proven.push(owned),
            Err(why) => unproven.push((id, why)),
        }
    }
    Ok(Remains { proven, unproven })
}

impl Reconciliation<'_> {
    /// Revokes this resource's tokens on GHES other than its current and previous one: a
    /// create whose answer was lost and then made again, or a token a run gave up on when GHES
    /// wrongly answered 404. Each is found under one of the resource's fingerprints up to the
    /// current rotation, and proven this installation's before it goes.
    pub(super) async fn revoke_strays(
        &mut self,
        entry: &AccountEntry,
        fingerprint: &Fingerprint,
    ) -> Result<()> {
        let keep: Vec<u64> = self.status.token_ids();
        // The account's view as of now: what this run revoked or made is in it.
        let (false, Some(snapshot)) = (keep.is_empty(), entry.snapshot()) else {
            return Ok(());
        };
        let installation = self.ctx.installation();
        let mut candidate = Fingerprint::new(&self.uid, installation);
        let mut strays = Vec::new();
        for _ in 0..=fingerprint.rotation() {
            strays.extend(
                snapshot
                    .with_fingerprint(&candidate.to_string())
                    .filter(|live| !keep.contains(&live.id))
                    .cloned(),
            );
            candidate = candidate.rotated(installation);
        }
        for live in strays {
            let note = format!(
                "revoked GHES authorization {} (token …{}), made for this resource but neither \
                 its current nor its previous token",
                live.id,
                live.token_last_eight.as_deref().unwrap_or("????????")
            );
            self.revoke_proven(entry, &live, note).await?;
        }
        Ok(())
    }
}
