//! Resolving what a run works with, before any GHES write: the scopes are known, the account
//! and its client, the app's client secret, the token Secret, the account's listing and this
//! resource's fingerprint. A configuration problem found here costs no GHES call.

use std::sync::Arc;

use kube::{Api, ResourceExt};

use super::{Reconciliation, SecretState, account_error};
use crate::api::Authorization;
use crate::controller::account::registry::{AccountEntry, Snapshot};
use crate::controller::context::Context;
use crate::controller::error::{Error, ROLE_CLIENT_SECRET, Result};
use crate::controller::fingerprint::Fingerprint;
use crate::controller::secret;

/// What the later steps of a run work with.
pub(crate) struct Resolved {
    /// The account's client and listing.
    pub(crate) entry: Arc<AccountEntry>,
    /// The OAuth app's client secret (app tokens only).
    pub(crate) client_secret: Option<crate::ghes::SecretValue>,
    /// The token Secret as it is.
    pub(crate) secret: SecretState,
    /// The account's listing.
    pub(crate) snapshot: Snapshot,
    /// This resource's fingerprint.
    pub(crate) fingerprint: Fingerprint,
}

/// What a reconcile of `authorization` resolves before any GHES write, in the reconcile's own
/// order and with its own errors; reads only. `plan` judges the Authorization from it.
pub(crate) async fn resolve(ctx: &Context, authorization: &Authorization) -> Result<Resolved> {
    let api = Api::namespaced(
        ctx.client.clone(),
        &authorization.namespace().unwrap_or_default(),
    );
    Reconciliation::new(&api, authorization, ctx)
        .resolve()
        .await
}

impl Reconciliation<'_> {
    /// Everything from Kubernetes (and the account's listing) that the run needs.
    pub(super) async fn resolve(&mut self) -> Result<Resolved> {
        if let Some((index, scope)) = crate::api::scopes::first_unknown(&self.spec().scopes) {
            return Err(Error::InvalidSpec(format!(
                "spec.scopes[{index}]: {scope:?} is not a GHES OAuth scope (e.g. repo, read:org, \
                 gist, workflow, admin:repo_hook)"
            )));
        }
        if let Some(windows) = self.spec().rotation_windows() {
            windows.validate().map_err(Error::InvalidSpec)?;
        }
        let entry = self
            .ctx
            .accounts
            .resolve(&self.ctx.caches, &self.namespace, &self.spec().account_ref)
            .await?;
        // A template that cannot render stops here, before any GHES call.
        if let Some(spec) = &self.spec().secret.template {
            crate::controller::template::check(spec, &self.template_inputs(&entry, None))?;
        }
        // Everything from Kubernetes first: a missing client secret costs no GHES call.
        let client_secret = match &self.spec().app {
            None => None,
            Some(app) => Some(
                secret::read_value(
                    &self.ctx.caches.secrets,
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
        Ok(Resolved {
            entry,
            client_secret,
            secret,
            snapshot,
            fingerprint,
        })
    }
}
