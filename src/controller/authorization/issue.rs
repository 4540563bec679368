//! Issuing a token: app tokens by get-or-create on the fingerprint, personal tokens by POST
//! after the intent is recorded in status.

use super::*;

impl Run<'_> {
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
                ..AuthorizationStatus::default()
            };
            apply_status(self.api, self.authorization, &self.status).await?;
            self.stored = self.status.clone();
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
                let mut answer = entry
                    .client
                    .get_or_create_for_app_and_fingerprint(&app.client_id, fingerprint, &request)
                    .await
                    .map_err(|error| account_error(&entry.key, error))?;
                if !answer.created {
                    // It exists but its token was never stored (or is lost): replace it.
                    if secret
                        .token
                        .as_ref()
                        .is_some_and(|token| answer.authorization.is_token(token))
                        && let Some(token) = secret.token.clone()
                    {
                        return Ok(Issued {
                            authorization: answer.authorization,
                            token,
                            created: false,
                        });
                    }
                    revoke(entry, self.proof(&answer.authorization)?).await?;
                    answer = entry
                        .client
                        .get_or_create_for_app_and_fingerprint(
                            &app.client_id,
                            fingerprint,
                            &request,
                        )
                        .await
                        .map_err(|error| account_error(&entry.key, error))?;
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
                {
                    // GHES answered: nothing was created, so no create is under way any more
                    // (the recorded intent would hold pruning back for good).
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
        Ok(Issued {
            authorization: issued,
            token,
            created: true,
        })
    }
}

/// What [`Run::issue`] got from GHES.
pub(super) struct Issued {
    pub(super) authorization: GhesAuthorization,
    pub(super) token: Token,
    /// Whether GHES created it now (`false`: a get-or-create found the one already held).
    pub(super) created: bool,
}

impl Issued {
    pub(super) fn into_pair(self) -> (GhesAuthorization, Token) {
        (self.authorization, self.token)
    }
}
