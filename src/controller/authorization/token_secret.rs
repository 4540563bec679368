//! The token Secret of an Authorization: read it (refusing one that belongs to something
//! else, following a rename) and write it (create-only the first time).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::{Reconciliation, SecretState};
use crate::controller::account::registry::AccountEntry;
use crate::controller::error::{Error, Result};
use crate::controller::secret::DesiredSecret;
use crate::controller::{secret, template};
use crate::ghes::{Authorization as GhesAuthorization, GhesError, Token};

/// What the template of `spec` is rendered from for `live` (before any: the spec's scopes).
pub(crate) fn template_inputs(
    spec: &crate::api::AuthorizationSpec,
    entry: &AccountEntry,
    live: Option<&GhesAuthorization>,
) -> template::Inputs {
    template::Inputs {
        login: entry.username.clone(),
        server: entry.server.clone(),
        scopes: live.map_or_else(|| spec.scopes.clone(), |live| live.scopes.clone()),
        authorization_id: live.map_or(0, |live| live.id),
        expires_at: live
            .and_then(|live| live.expires_at)
            .map(|at| at.to_string())
            .unwrap_or_default(),
    }
}

impl SecretState {
    /// What the Secret as read holds for the token key `key`: the current Secret, or the one
    /// before a rename. Pure, so that `plan` reads a Secret exactly as a reconcile does.
    pub(crate) fn inspect(
        existing: Option<Arc<Secret>>,
        renamed_from: Option<Arc<Secret>>,
        key: &str,
    ) -> Self {
        let source = existing.as_deref().or(renamed_from.as_deref());
        let annotation =
            |name: &str| source.and_then(|secret| secret.annotations().get(name).cloned());
        let recipe = annotation(secret::TEMPLATE_SHA256_ANNOTATION);
        // A rendered Secret: its token is found by the hash the operator wrote beside it, and
        // only while the data is exactly as it was rendered.
        let embedded_hash = source
            .filter(|secret| {
                let data = secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k, v.0.as_slice()));
                annotation(secret::DATA_SHA256_ANNOTATION)
                    .is_some_and(|written| written == template::data_hash(data))
            })
            .and_then(|_| annotation(secret::TOKEN_SHA256_ANNOTATION));
        let token = source
            .filter(|_| recipe.is_none())
            .and_then(|secret| secret::token_in(secret, key).or_else(|| only_value(secret)));
        Self {
            existing,
            token,
            renamed_from,
            embedded_hash,
            recipe,
        }
    }
}

impl Reconciliation<'_> {
    /// Reads the Secret: refuses one owned by something else; finds the token even after a
    /// rename of spec.secret.name or spec.secret.key.
    pub(super) async fn read_secret(&self) -> Result<SecretState> {
        let secrets = &self.ctx.caches.secrets;
        let name = self.authorization.secret_name();
        let existing = secrets.get(&self.namespace, &name).await?;
        if let Some(existing) = &existing
            && !secret::is_controlled_by(existing, &self.uid)
        {
            return Err(Error::SecretConflict { name });
        }
        let mut renamed_from = None;
        if existing.is_none()
            && let Some(old_name) = self.stored.secret_name.as_ref().filter(|old| **old != name)
            && let Some(old) = secrets.get(&self.namespace, old_name).await?
            && secret::is_controlled_by(&old, &self.uid)
        {
            renamed_from = Some(old);
        }
        Ok(SecretState::inspect(
            existing,
            renamed_from,
            &self.spec().secret.key,
        ))
    }

    /// What a template is rendered from for `live`.
    pub(super) fn template_inputs(
        &self,
        entry: &AccountEntry,
        live: Option<&GhesAuthorization>,
    ) -> template::Inputs {
        template_inputs(self.spec(), entry, live)
    }

    /// The type, data and extra annotations the Secret should have for `live`: the token under
    /// the spec's key, or the template rendered. Without a readable `token`, a rendered Secret
    /// keeps the data it has (the operator keeps the token nowhere else).
    fn desired_secret(
        &self,
        entry: &AccountEntry,
        live: &GhesAuthorization,
        token: Option<&Token>,
        secret: &SecretState,
    ) -> Result<DesiredSecret> {
        let no_token = || {
            Error::Ghes(GhesError::Protocol(
                "no token for a live authorization".into(),
            ))
        };
        let (type_, data, extra) = match (&self.spec().secret.template, token) {
            (None, token) => {
                let token = token.ok_or_else(no_token)?;
                let data = [(
                    self.spec().secret.key.clone(),
                    token.expose().as_bytes().to_vec(),
                )];
                ("Opaque".to_owned(), data.into(), BTreeMap::new())
            }
            (Some(spec), Some(token)) => {
                let inputs = self.template_inputs(entry, Some(live));
                let recipe = template::recipe_hash(spec, &inputs)?;
                let data: BTreeMap<String, Vec<u8>> = template::render(spec, token, &inputs)?
                    .into_iter()
                    .map(|(key, value)| (key, value.into_bytes()))
                    .collect();
                let data_hash = template::data_hash(data.iter().map(|(k, v)| (k, v.as_slice())));
                let extra = [
                    (
                        secret::TOKEN_SHA256_ANNOTATION.to_owned(),
                        token.sha256_hex(),
                    ),
                    (secret::DATA_SHA256_ANNOTATION.to_owned(), data_hash),
                    (secret::TEMPLATE_SHA256_ANNOTATION.to_owned(), recipe),
                ];
                (spec.type_.as_str().to_owned(), data, extra.into())
            }
            (Some(_), None) => {
                let kept = secret.source().ok_or_else(no_token)?;
                let data = kept
                    .data
                    .iter()
                    .flatten()
                    .map(|(key, value)| (key.clone(), value.0.clone()))
                    .collect();
                let extra = [
                    secret::TOKEN_SHA256_ANNOTATION,
                    secret::DATA_SHA256_ANNOTATION,
                    secret::TEMPLATE_SHA256_ANNOTATION,
                ]
                .into_iter()
                .filter_map(|name| {
                    let value = kept.annotations().get(name)?;
                    Some((name.to_owned(), value.clone()))
                })
                .collect();
                (secret::type_of(kept).to_owned(), data, extra)
            }
        };
        Ok(DesiredSecret::of(
            self.authorization,
            live.id,
            &type_,
            data,
            extra,
        ))
    }

    /// Writes the Secret when it lacks the token or the spec's labels, annotations, type or
    /// data.
    pub(super) async fn write_secret(
        &self,
        entry: &AccountEntry,
        live: &GhesAuthorization,
        token: Option<&Token>,
        secret: &SecretState,
    ) -> Result<()> {
        let desired = self.desired_secret(entry, live, token, secret)?;
        let current = secret
            .existing
            .as_ref()
            .is_some_and(|existing| desired.is_met_by(existing));
        if current && secret.renamed_from.is_none() {
            return Ok(());
        }
        let written = self.write_secret_as(&desired, current, secret).await;
        // What was written is what the next read finds; after a failure, it asks the API
        // server.
        match &written {
            Ok(Some(secret)) => self.ctx.caches.secrets.wrote(secret),
            _ => self
                .ctx
                .caches
                .secrets
                .changed(&self.namespace, &self.authorization.secret_name()),
        }
        if let Some(old) = secret.renamed_from.as_deref() {
            self.ctx
                .caches
                .secrets
                .changed(&self.namespace, &old.name_any());
        }
        written.map(|_| ())
    }

    /// The writes of [`Self::write_secret`]; the Secret as written, if it was.
    async fn write_secret_as(
        &self,
        desired: &DesiredSecret,
        current: bool,
        secret: &SecretState,
    ) -> Result<Option<Secret>> {
        let mut written = None;
        if !current {
            let mut existing = secret.existing.as_deref();
            if let Some(old) = existing
                && secret::type_of(old) != desired.type_
            {
                // A Secret's type cannot change: this one goes, and is made again.
                secret::delete_owned(&self.ctx.client, &self.namespace, old).await?;
                existing = None;
            }
            written = Some(
                secret::write_token_secret(&self.ctx.client, self.authorization, desired, existing)
                    .await?,
            );
            crate::failpoint::hit("secret.written");
        }
        if let Some(old) = &secret.renamed_from {
            secret::delete_owned(&self.ctx.client, &self.namespace, old).await?;
        }
        Ok(written)
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
