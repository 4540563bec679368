//! Tokens stranded by an account's credentials that moved to another GHES user or server: the
//! new credentials cannot revoke them, so each is reported, kept in status, and revoked should
//! the account log in as their user again.
//!
//! Only a login GHES reported counts (in a listing, or in the answer that issued a token): the
//! username in the credentials may spell it differently. A run that starts before the new user
//! is known (no token of theirs listed yet) decides once its token is issued, on the identity
//! and tokens recorded when it began.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::{Reconciliation, live_by_id, object_key};
use crate::api::{AuthorizationStatus, MAX_STRANDED_TOKENS, StrandedToken};
use crate::controller::account::registry::AccountEntry;
use crate::controller::error::Result;

/// Why a token counts as abandoned when its account's credentials moved away from its user.
const STRANDED: &str = "CredentialsChanged";

/// The identity and tokens status recorded when a run began, until the run has compared them
/// with the user the account logs in as now.
#[derive(Clone, Debug)]
pub(super) struct Recorded(AuthorizationStatus);

/// Tokens by id, with their last eight characters.
type Tokens = Vec<(u64, Option<String>)>;

impl Recorded {
    /// What `stored` records.
    pub(super) fn of(stored: &AuthorizationStatus) -> Self {
        Self(stored.clone())
    }

    /// The identity and tokens stranded when the account logs in as `identity` (each id with
    /// its token's last eight characters), by the lifecycle's rule.
    fn stranded_by(&self, identity: &str) -> Option<(String, Tokens)> {
        let (recorded, ids) = super::lifecycle::State::of(&self.0).stranded_by(identity)?;
        let status = &self.0;
        let last_eight = |id: u64| {
            if status.authorization_id == i64::try_from(id).ok() {
                status.token_last_eight.clone()
            } else {
                status
                    .previous
                    .as_ref()
                    .and_then(|previous| previous.token_last_eight.clone())
            }
        };
        let tokens = ids.into_iter().map(|id| (id, last_eight(id))).collect();
        Some((recorded.to_owned(), tokens))
    }
}

/// Whether the run forgets the current token of a moved identity (before it is located), or
/// keeps it (it was just issued as the new user).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Current {
    Forget,
    Keep,
}

impl Reconciliation<'_> {
    /// Compares the identity recorded when the run began with `identity`, the user the account
    /// logs in as now (`None`: not known yet, nothing is decided). Moved: the recorded tokens
    /// are stranded — reported, listed in status, and (`Current::Forget`) no longer this
    /// resource's current token. Stranded tokens of `identity` are revoked.
    pub(super) async fn settle_identity(
        &mut self,
        entry: &AccountEntry,
        identity: Option<String>,
        current: Current,
    ) -> Result<()> {
        let Some(identity) = identity else {
            return Ok(());
        };
        self.revoke_reachable(entry, &identity).await?;
        let recorded = self.recorded.take();
        self.status.identity = Some(identity.clone());
        let Some((previous, tokens)) =
            recorded.and_then(|recorded| recorded.stranded_by(&identity))
        else {
            return Ok(());
        };
        let since = Time(Timestamp::now());
        let mut list = self.status.stranded_tokens.clone();
        for (id, last_eight) in &tokens {
            let id = i64::try_from(*id).unwrap_or_default();
            if !list.iter().any(|token| token.authorization_id == id) {
                list.push(StrandedToken {
                    authorization_id: id,
                    identity: previous.clone(),
                    token_last_eight: last_eight.clone(),
                    since: Some(since.clone()),
                });
            }
        }
        let overflow = list.len().saturating_sub(MAX_STRANDED_TOKENS);
        list.drain(..overflow);
        if current == Current::Forget {
            // The previous user's tokens are this resource's no more: no id, no previous
            // token; the fingerprint stays (its rotation number never goes back).
            self.status = AuthorizationStatus {
                conditions: self.status.conditions.clone(),
                observed_generation: self.status.observed_generation,
                fingerprint: self.status.fingerprint.clone(),
                rotate_request: self.status.rotate_request.clone(),
                identity: Some(identity.clone()),
                ..AuthorizationStatus::default()
            };
        }
        self.status.stranded_tokens = list;
        self.write_status().await?;
        self.ctx.metrics.count_abandoned(STRANDED, tokens.len());
        let named = tokens
            .iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(
            authorization = %object_key(self.authorization),
            ids = %named,
            from = %previous,
            to = %identity,
            "credentials moved to another GHES user: tokens stranded"
        );
        self.publish(
            EventType::Warning,
            "TokenStranded",
            format!(
                "the account now logs in as {identity}: GHES authorization {named} of {previous} \
                 stays live, since these credentials cannot revoke it (status.strandedTokens); \
                 this resource gets a token as the new user. Revoke it on GHES by hand, or log \
                 in as {previous} again and the operator revokes it"
            ),
        )
        .await;
        Ok(())
    }

    /// Revokes the stranded tokens that belong to `identity`, the user the account logs in as
    /// now, each once proven this resource's; one that is gone or not proven is dropped from
    /// the list.
    async fn revoke_reachable(&mut self, entry: &AccountEntry, identity: &str) -> Result<()> {
        let reachable: Vec<i64> = self
            .status
            .stranded_tokens
            .iter()
            .filter(|token| token.identity == identity)
            .map(|token| token.authorization_id)
            .collect();
        if reachable.is_empty() {
            return Ok(());
        }
        for stranded in reachable {
            let id = u64::try_from(stranded).unwrap_or_default();
            if let Some(live) = live_by_id(entry, None, id).await? {
                let note = format!(
                    "revoked GHES authorization {id}, stranded when the account logged in as \
                     another user: it logs in as {identity} again"
                );
                self.revoke_proven(entry, &live, note).await?;
            }
            self.status
                .stranded_tokens
                .retain(|token| token.authorization_id != stranded);
        }
        self.write_status().await
    }
}
