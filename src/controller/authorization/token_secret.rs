//! The token Secret of an Authorization: read it (refusing one that belongs to something
//! else, following a rename) and write it (create-only the first time).

use super::*;

impl Run<'_> {
    /// Reads the Secret: refuses one owned by something else; finds the token even after a
    /// rename of spec.secret.name or spec.secret.key.
    pub(super) async fn read_secret(&self) -> Result<SecretState> {
        let secrets = Api::<Secret>::namespaced(self.ctx.client.clone(), &self.namespace);
        let name = self.authorization.secret_name();
        let existing = secrets.get_opt(&name).await?;
        if let Some(existing) = &existing
            && !secret::is_controlled_by(existing, &self.uid)
        {
            return Err(Error::SecretConflict { name });
        }
        let mut renamed_from = None;
        if existing.is_none()
            && let Some(old_name) = self.stored.secret_name.as_ref().filter(|old| **old != name)
            && let Some(old) = secrets.get_opt(old_name).await?
            && secret::is_controlled_by(&old, &self.uid)
        {
            renamed_from = Some(old);
        }
        let key = &self.spec().secret.key;
        let token = existing
            .as_ref()
            .or(renamed_from.as_ref())
            .and_then(|secret| secret::token_in(secret, key).or_else(|| only_value(secret)));
        Ok(SecretState {
            existing,
            token,
            renamed_from,
        })
    }

    /// Writes the Secret when it lacks the token or the spec's labels, annotations or key.
    pub(super) async fn write_secret(
        &self,
        live: &GhesAuthorization,
        token: &Token,
        secret: &SecretState,
    ) -> Result<()> {
        let desired = DesiredSecret::of(self.authorization, live.id);
        let current = secret.existing.as_ref().is_some_and(|existing| {
            desired.is_met_by(existing)
                && secret::token_in(existing, &desired.key).as_ref() == Some(token)
        });
        if !current {
            secret::write_token_secret(
                &self.ctx.client,
                self.authorization,
                &desired,
                token,
                secret.existing.is_some(),
            )
            .await?;
            crate::failpoint::hit("secret.written");
        }
        if let Some(old) = &secret.renamed_from {
            secret::delete_owned(&self.ctx.client, &self.namespace, old).await?;
        }
        Ok(())
    }
}

/// The single value of a Secret the operator wrote under a key the spec no longer names.
pub(super) fn only_value(secret: &Secret) -> Option<Token> {
    let data = secret.data.as_ref()?;
    if data.len() != 1 {
        return None;
    }
    let key = data.keys().next()?;
    secret::token_in(secret, key)
}
