//! Resolving what a run works with, before any GHES write: the scopes are known, the account
//! and its client, the app's client secret, the token Secret, the account's listing and this
//! resource's fingerprint. A configuration problem found here costs no GHES call.

use super::*;

/// What the later steps of a run work with.
pub(super) struct Resolved {
    /// The account's client and listing.
    pub(super) entry: Arc<AccountEntry>,
    /// The OAuth app's client secret (app tokens only).
    pub(super) client_secret: Option<crate::ghes::SecretValue>,
    /// The token Secret as it is.
    pub(super) secret: SecretState,
    /// The account's listing.
    pub(super) snapshot: Snapshot,
    /// This resource's fingerprint.
    pub(super) fingerprint: Fingerprint,
}

impl Run<'_> {
    /// Everything from Kubernetes (and the account's listing) that the run needs.
    pub(super) async fn resolve(&mut self) -> Result<Resolved> {
        if let Some((index, scope)) = crate::api::scopes::first_unknown(&self.spec().scopes) {
            return Err(Error::InvalidSpec(format!(
                "spec.scopes[{index}]: {scope:?} is not a GHES OAuth scope (e.g. repo, read:org, \
                 gist, workflow, admin:repo_hook)"
            )));
        }
        let entry = self
            .ctx
            .accounts
            .resolve(self.ctx, &self.namespace, &self.spec().account_ref)
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
                    &self.ctx.secrets,
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
