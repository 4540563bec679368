//! Repairing drift: scopes, note and note URL back to the spec with one PATCH.

use std::collections::BTreeSet;

use kube::runtime::events::EventType;

use super::{Reconciliation, account_error};
use crate::api::AuthorizationStatus;
use crate::controller::account::registry::AccountEntry;
use crate::controller::error::Result;
use crate::ghes::{Authorization as GhesAuthorization, AuthorizationUpdate, ScopeChange};

/// The one PATCH that brings `live` back to `spec` (empty: nothing drifted). `stored` is the
/// status as stored; `note` the note the token should carry. Pure: part of the lifecycle's
/// decision.
pub(crate) fn drift_update(
    spec: &crate::api::AuthorizationSpec,
    stored: &AuthorizationStatus,
    live: &GhesAuthorization,
    note: String,
) -> AuthorizationUpdate {
    let desired: BTreeSet<&str> = spec.scopes.iter().map(String::as_str).collect();
    let requested: BTreeSet<&str> = stored.requested_scopes.iter().map(String::as_str).collect();
    let recorded: BTreeSet<&str> = stored.scopes.iter().map(String::as_str).collect();
    let actual = live.scope_set();
    // GHES normalizes scopes, so compare what was asked with the spec, and what GHES holds
    // with what it reported last time: only a real change triggers a PATCH.
    let scopes_changed =
        desired != requested || (stored.authorization_id.is_some() && actual != recorded);
    let mut update = AuthorizationUpdate::default();
    if scopes_changed {
        update.scopes = Some(ScopeChange::Replace(spec.scopes.clone()));
    }
    if live.note.as_deref() != Some(note.as_str()) {
        update.note = Some(note);
    }
    if let Some(note_url) = &spec.note_url
        && live.note_url.as_ref() != Some(note_url)
    {
        update.note_url = Some(note_url.clone());
    }
    update
}

impl Reconciliation<'_> {
    /// Fixes scopes, note and note URL with `update`, the one PATCH the lifecycle decided
    /// (empty: nothing drifted).
    pub(super) async fn repair_drift(
        &mut self,
        entry: &AccountEntry,
        live: GhesAuthorization,
        update: AuthorizationUpdate,
    ) -> Result<GhesAuthorization> {
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
}
