//! Observing: an Authorization with `managementPolicy: Observe` binds to an existing GHES
//! authorization (by id or fingerprint) and reports it in status. It reads the account's
//! listing (or one GET) and nothing else: no GHES write, no Secret. Its status names the id,
//! so pruning counts the authorization as declared.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Reconciliation, account_error};
use crate::controller::error::{Error, Result};

impl Reconciliation<'_> {
    /// Finds the observed authorization and records it; returns when to look again.
    pub(super) async fn observe(&mut self) -> Result<Duration> {
        let target = self.spec().observe.clone().ok_or_else(|| {
            Error::InvalidSpec(
                "spec.observe: managementPolicy Observe needs observe.id or \
                                observe.fingerprint"
                    .into(),
            )
        })?;
        let entry = self
            .ctx
            .accounts
            .resolve(&self.ctx.caches, &self.namespace, &self.spec().account_ref)
            .await?;
        let snapshot = entry
            .ensure_synced()
            .await
            .map_err(|error| account_error(&entry.key, error))?;
        let login = &entry.username;
        let live = match (target.id, target.fingerprint.as_deref()) {
            (Some(id), _) => {
                let id = u64::try_from(id).unwrap_or_default();
                match snapshot.get(id) {
                    Some(live) => Some(live.clone()),
                    // Made after the listing, or gone: one GET tells.
                    None => match entry.client.get_authorization(id).await {
                        Ok(live) => Some(live),
                        Err(error) if error.is_not_found() => None,
                        Err(error) => return Err(account_error(&entry.key, error)),
                    },
                }
                .ok_or_else(|| Error::ObservedNotFound {
                    field: "spec.observe.id",
                    what: format!("GHES authorization {id}"),
                    login: login.clone(),
                })?
            }
            (None, Some(fingerprint)) => snapshot
                .with_fingerprint(fingerprint)
                .next()
                .cloned()
                .ok_or_else(|| Error::ObservedNotFound {
                    field: "spec.observe.fingerprint",
                    what: format!("an authorization with fingerprint {fingerprint:?}"),
                    login: login.clone(),
                })?,
            (None, None) => {
                return Err(Error::InvalidSpec(
                    "spec.observe: name the authorization by id or fingerprint".into(),
                ));
            }
        };
        self.status.authorization_id = i64::try_from(live.id).ok();
        self.status.fingerprint = live.fingerprint.clone();
        self.status.scopes = live.scopes.clone();
        self.status.requested_scopes = Vec::new();
        self.status.token_last_eight = live.token_last_eight.clone();
        self.status.hashed_token = live.hashed_token.clone();
        self.status.note = live.note.clone();
        self.status.issued_at = Some(Time(live.created_at));
        self.status.expires_at = live.expires_at.map(Time);
        self.status.secret_name = None;
        self.status.next_rotation_at = None;
        self.status.next_rotation_reason = None;
        self.status.previous = None;
        Ok(entry.sync_interval)
    }
}
