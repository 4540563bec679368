//! Locating the live GHES authorization of an Authorization in its account's listing, and
//! whether the Secret holds its token.

use super::*;

/// Where this resource's token stands on GHES.
pub(super) enum Located {
    /// Live, and the Secret holds its token.
    Held(GhesAuthorization),
    /// Live, but its token cannot be read back from the Secret: it must be replaced.
    Lost {
        /// The live authorization.
        live: GhesAuthorization,
        /// Why the Secret does not hold it.
        why: &'static str,
    },
    /// Nothing live: never issued, or gone.
    Missing,
}

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

impl Run<'_> {
    /// Finds the live GHES authorization of this resource, from the account's snapshot.
    pub(super) async fn locate(
        &mut self,
        entry: &AccountEntry,
        snapshot: &Snapshot,
        fingerprint: &Fingerprint,
        secret: &SecretState,
    ) -> Result<Located> {
        let found = self.find(entry, snapshot, fingerprint).await?;
        let Some(live) = found else {
            return Ok(Located::Missing);
        };
        let held = live
            .hashed_token
            .as_deref()
            .or(self.stored.hashed_token.as_deref())
            .is_some_and(|hash| secret.holds(hash));
        if held {
            return Ok(Located::Held(live));
        }
        let why = secret.lost_reason();
        Ok(Located::Lost { live, why })
    }

    /// The live GHES authorization of this resource, if any, proven its own.
    async fn find(
        &mut self,
        entry: &AccountEntry,
        snapshot: &Snapshot,
        fingerprint: &Fingerprint,
    ) -> Result<Option<GhesAuthorization>> {
        let fingerprint = fingerprint.to_string();
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
                .by_fingerprint(self.client_id(), &fingerprint)
                .filter(|own| self.proof(own).is_ok())
                .cloned());
        }
        if self.stored.fingerprint.is_some() {
            // A create was started and its outcome is unknown: look it up in a fresh listing.
            let fresh = entry
                .sync(Some(Timestamp::now()))
                .await
                .map_err(|error| account_error(&entry.key, error))?;
            return match fresh.by_fingerprint(self.client_id(), &fingerprint) {
                Some(live) => Ok(self.owned(live).await.map(|_| live.clone())),
                None => Ok(None),
            };
        }
        Ok(None)
    }
}

impl Run<'_> {
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
