//! Issuing a token: app tokens by get-or-create on the fingerprint, personal tokens by POST
//! after the intent is recorded in status.

use super::{CONFIG_RECHECK, Reconciliation, SecretState, account_error};
use crate::api::AuthorizationStatus;
use crate::controller::account::registry::AccountEntry;
use crate::controller::error::{Error, Result};
use crate::controller::fingerprint::Fingerprint;
use crate::ghes::{
    AppAuthorizationRequest, Authorization as GhesAuthorization, GhesError, NewAuthorization, Token,
};

impl Reconciliation<'_> {
    /// Creates the token: app tokens by get-or-create on the fingerprint, personal tokens by
    /// POST after recording the fingerprint in status.
    pub(super) async fn issue(
        &mut self,
        entry: &AccountEntry,
        fingerprint: &Fingerprint,
        client_secret: Option<&crate::ghes::SecretValue>,
        secret: &SecretState,
    ) -> Result<Issued> {
        let note = self.note(fingerprint);
        let fingerprint = fingerprint.to_string();
        let fingerprint = fingerprint.as_str();
        let generation = self.authorization.metadata.generation;
        // Refused for this very spec a moment ago: answered the same, without a request.
        if let Some(refused) =
            self.ctx
                .memory
                .refused_before(&self.uid, generation, fingerprint, CONFIG_RECHECK)
        {
            return Err(refused);
        }
        let issued = self
            .request_token(entry, fingerprint, note, client_secret, secret)
            .await;
        match &issued {
            Err(error) => {
                self.ctx
                    .memory
                    .remember_refusal(&self.uid, generation, fingerprint, error);
            }
            // GHES's answer names the user the token belongs to: a run that began before the
            // account's new user was known decides now whether its recorded tokens moved away.
            Ok(issued) => {
                let identity = issued
                    .authorization()
                    .user
                    .as_ref()
                    .map(|user| entry.identity_of(&user.login).to_string());
                self.settle_identity(entry, identity, super::stranded::Current::Keep)
                    .await?;
            }
        }
        issued
    }

    /// The requests of [`Self::issue`].
    async fn request_token(
        &mut self,
        entry: &AccountEntry,
        fingerprint: &str,
        note: String,
        client_secret: Option<&crate::ghes::SecretValue>,
        secret: &SecretState,
    ) -> Result<Issued> {
        // A POST is not idempotent: record the intent first, so that after a crash or a lost
        // answer the next run finds the result by fingerprint. (An app token's PUT is a
        // get-or-create on a fingerprint derived from the uid, so it needs no such record.)
        if self.spec().is_personal()
            && (self.stored.fingerprint.as_deref() != Some(fingerprint)
                || self.stored.authorization_id.is_some())
        {
            self.status = AuthorizationStatus {
                fingerprint: Some(fingerprint.to_owned()),
                conditions: self.status.conditions.clone(),
                observed_generation: self.status.observed_generation,
                previous: self.status.previous.clone(),
                rotate_request: self.status.rotate_request.clone(),
                identity: self.status.identity.clone(),
                stranded_tokens: self.status.stranded_tokens.clone(),
                ..AuthorizationStatus::default()
            };
            self.write_status().await?;
            crate::failpoint::hit("issue.intent-recorded");
        }
        let issued = match (&self.spec().app, client_secret) {
            (Some(app), Some(client_secret)) => {
                let request = AppAuthorizationRequest {
                    client_secret: client_secret.clone(),
                    scopes: self.spec().scopes.clone(),
                    note: Some(note),
                    note_url: self.spec().note_url.clone(),
                };
                let answer = entry
                    .client
                    .get_or_create_for_app_and_fingerprint(&app.client_id, fingerprint, &request)
                    .await
                    .map_err(|error| account_error(&entry.key, error))?;
                if !answer.created {
                    // GHES had one for this fingerprint already: the Secret's, or one whose
                    // token no one can read back any more (the caller replaces it).
                    let held = secret
                        .token
                        .clone()
                        .filter(|token| answer.authorization.is_token(token));
                    return Ok(match held {
                        Some(token) => Issued::Adopted(answer.authorization, token),
                        None => Issued::Unreadable(answer.authorization),
                    });
                }
                answer.authorization
            }
            (None, _) => {
                let request = NewAuthorization {
                    scopes: self.spec().scopes.clone(),
                    note: Some(note.clone()),
                    note_url: self.spec().note_url.clone(),
                    app: None,
                    fingerprint: Some(fingerprint.to_owned()),
                };
                let created = entry.client.create_authorization(&request).await;
                if created
                    .as_ref()
                    .is_err_and(|error| !error.outcome_unknown())
                    && self.status.previous.is_none()
                {
                    // GHES answered: nothing was created, so no create is under way any more
                    // (the recorded intent would hold pruning back for good). A rotation keeps
                    // its fingerprint: the next try is the same rotation, and a rotation's
                    // number never goes back to the token it replaces.
                    self.status.fingerprint = None;
                }
                created.map_err(|error| match error {
                    error if error.outcome_unknown() => Error::OutcomeUnknown(error),
                    GhesError::Validation { errors, .. }
                        if errors.iter().any(|e| {
                            e.code == "already_exists" && e.field.as_deref() == Some("description")
                        }) =>
                    {
                        Error::InvalidSpec(format!(
                            "spec.note {note:?} is already the note of another personal token \
                                 of this GHES user; personal token notes must be unique"
                        ))
                    }
                    error => account_error(&entry.key, error),
                })?
            }
            (Some(_), None) => {
                return Err(Error::InvalidSpec("spec.app has no client secret".into()));
            }
        };
        let token = issued.token.clone().ok_or_else(|| {
            Error::Ghes(GhesError::Protocol(
                "GHES created a token but did not return it".into(),
            ))
        })?;
        entry.record(&issued);
        crate::failpoint::hit("issue.created");
        Ok(Issued::Created(issued, token))
    }
}

impl Issued {
    /// The authorization GHES answered with.
    fn authorization(&self) -> &GhesAuthorization {
        match self {
            Self::Created(authorization, _)
            | Self::Adopted(authorization, _)
            | Self::Unreadable(authorization) => authorization,
        }
    }
}

/// What [`Reconciliation::issue`] got from GHES.
pub(super) enum Issued {
    /// GHES created it now.
    Created(GhesAuthorization, Token),
    /// An app's get-or-create found the token the Secret already holds (status was lost).
    Adopted(GhesAuthorization, Token),
    /// An app's get-or-create found a token for this fingerprint that the Secret does not
    /// hold: it cannot be read back from GHES, so it must be replaced.
    Unreadable(GhesAuthorization),
}
