//! Locating the live GHES authorization of an Authorization in its account's listing.

use super::*;

impl Run<'_> {
    /// Finds the live GHES authorization of this resource, from the account's snapshot.
    pub(super) async fn locate(
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
}
