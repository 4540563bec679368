//! The life of an authorization: creation (token minting, scope checks, note and fingerprint
//! uniqueness), lookup, update and deletion — GHES's rules, independent of HTTP.

use jiff::Timestamp;
use rand::Rng;
use rand::distr::Alphanumeric;

use super::errors::{ApiError, FieldError};
use super::scopes;
use super::store::{AuthorizationRecord, Store, sha256_hex};

/// What a new authorization is asked to be.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewAuthorization {
    /// `None` for a personal token.
    pub(crate) client_id: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) note: Option<String>,
    pub(crate) note_url: Option<String>,
    pub(crate) fingerprint: Option<String>,
    /// Backdating for seeded authorizations; `None` means now.
    pub(crate) created_at: Option<Timestamp>,
}

/// The one scope change a PATCH may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScopeChange {
    Replace(Vec<String>),
    Add(Vec<String>),
    Remove(Vec<String>),
}

impl ScopeChange {
    /// The scope names the change mentions.
    fn names(&self) -> &[String] {
        match self {
            Self::Replace(list) | Self::Add(list) | Self::Remove(list) => list,
        }
    }

    /// The normalized scopes after applying the change to `current`. Removal takes out the
    /// exact names given; it does not narrow a broader scope.
    fn apply(&self, current: &[String]) -> Vec<String> {
        match self {
            Self::Replace(list) => scopes::normalize(list),
            Self::Add(list) => {
                let all: Vec<&String> = current.iter().chain(list).collect();
                scopes::normalize(&all)
            }
            Self::Remove(list) => {
                let kept: Vec<&String> = current.iter().filter(|s| !list.contains(s)).collect();
                scopes::normalize(&kept)
            }
        }
    }
}

/// A PATCH: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthorizationPatch {
    pub(crate) scopes: Option<ScopeChange>,
    pub(crate) note: Option<Option<String>>,
    pub(crate) note_url: Option<Option<String>>,
    pub(crate) fingerprint: Option<Option<String>>,
}

/// A fresh token: `gho_` (app) or `ghp_` (personal) and 36 random alphanumerics.
fn mint_token(personal: bool) -> String {
    let prefix = if personal { "ghp_" } else { "gho_" };
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(36)
        .map(char::from)
        .collect();
    format!("{prefix}{random}")
}

/// The field error for unknown names in `requested`, if any.
pub(crate) fn scope_errors(requested: &[String]) -> Option<FieldError> {
    let unknown = scopes::unknown(requested);
    (!unknown.is_empty()).then(|| {
        FieldError::new("scopes", "invalid")
            .with_message(format!("Invalid scopes: {}", unknown.join(", ")))
    })
}

impl Store {
    /// Checks an app's client id and secret as `POST`/`PUT` do.
    pub(crate) fn check_client(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<(), ApiError> {
        let app = self
            .apps
            .get(client_id)
            .ok_or_else(|| ApiError::invalid("client_id", "invalid"))?;
        match secret {
            None => Err(ApiError::invalid("client_secret", "missing_field")),
            Some(secret) if secret != app.client_secret => {
                Err(ApiError::invalid("client_secret", "invalid"))
            }
            Some(_) => Ok(()),
        }
    }

    /// Whether another personal token of the user has this note.
    fn note_taken(&self, user_id: u64, note: &str, except: Option<u64>) -> bool {
        self.authorizations.values().any(|a| {
            a.user_id == user_id
                && a.client_id.is_none()
                && Some(a.id) != except
                && a.note.as_deref() == Some(note)
        })
    }

    /// Whether another token of the user and app has this fingerprint. For app tokens "no
    /// fingerprint" is a value too (one per user and app); personal tokens may share none.
    fn fingerprint_taken(
        &self,
        user_id: u64,
        client_id: Option<&str>,
        fingerprint: Option<&str>,
        except: Option<u64>,
    ) -> bool {
        if client_id.is_none() && fingerprint.is_none() {
            return false;
        }
        self.authorizations.values().any(|a| {
            a.user_id == user_id
                && a.client_id.as_deref() == client_id
                && a.fingerprint.as_deref() == fingerprint
                && Some(a.id) != except
        })
    }

    /// Creates an authorization; returns its id and the token (shown this once).
    pub(crate) fn create_authorization(
        &mut self,
        user_id: u64,
        new: NewAuthorization,
    ) -> Result<(u64, String), ApiError> {
        let client_id = new.client_id.as_deref();
        let mut errors: Vec<FieldError> = scope_errors(&new.scopes).into_iter().collect();
        if client_id.is_none() {
            match new.note.as_deref() {
                None => errors.push(FieldError::new("description", "missing_field")),
                Some(note) if self.note_taken(user_id, note, None) => {
                    errors.push(FieldError::new("description", "already_exists"));
                }
                Some(_) => {}
            }
        }
        if self.fingerprint_taken(user_id, client_id, new.fingerprint.as_deref(), None) {
            errors.push(FieldError::new("fingerprint", "already_exists"));
        }
        if !errors.is_empty() {
            return Err(ApiError::ValidationFailed(errors));
        }
        let token = mint_token(client_id.is_none());
        let created_at = new.created_at.unwrap_or_else(|| self.clock());
        let id = self.next_authorization_id();
        let record = AuthorizationRecord {
            id,
            user_id,
            client_id: new.client_id.clone(),
            hashed_token: sha256_hex(&token),
            token_last_eight: token[token.len() - 8..].to_owned(),
            scopes: scopes::normalize(&new.scopes),
            note: new.note,
            note_url: new.note_url,
            fingerprint: new.fingerprint,
            created_at,
            updated_at: created_at,
            expires_at: self.expiry_for(created_at),
        };
        if let Some(client_id) = &new.client_id {
            self.ensure_grant(user_id, client_id, created_at);
        }
        self.authorizations.insert(id, record);
        Ok((id, token))
    }

    /// The user's token of an app with this fingerprint (`None` = the fingerprint-less one).
    pub(crate) fn find_app_authorization(
        &self,
        user_id: u64,
        client_id: &str,
        fingerprint: Option<&str>,
    ) -> Option<&AuthorizationRecord> {
        self.authorizations.values().find(|a| {
            a.user_id == user_id
                && a.client_id.as_deref() == Some(client_id)
                && a.fingerprint.as_deref() == fingerprint
        })
    }

    /// One of the user's authorizations; other users' ids are 404 like unknown ones.
    pub(crate) fn owned_authorization(
        &self,
        user_id: u64,
        id: u64,
    ) -> Result<&AuthorizationRecord, ApiError> {
        self.authorizations
            .get(&id)
            .filter(|a| a.user_id == user_id)
            .ok_or(ApiError::NotFound)
    }

    /// The user's authorizations by id, optionally only those of one app.
    pub(crate) fn list_authorizations(
        &self,
        user_id: u64,
        client_id: Option<&str>,
    ) -> Vec<&AuthorizationRecord> {
        self.authorizations
            .values()
            .filter(|a| a.user_id == user_id)
            .filter(|a| client_id.is_none() || a.client_id.as_deref() == client_id)
            .collect()
    }

    /// Applies a PATCH with GHES's validation; returns the updated id.
    pub(crate) fn update_authorization(
        &mut self,
        user_id: u64,
        id: u64,
        patch: AuthorizationPatch,
    ) -> Result<u64, ApiError> {
        let current = self.owned_authorization(user_id, id)?.clone();
        let mut errors = Vec::new();
        let scopes = match &patch.scopes {
            Some(change) => match scope_errors(change.names()) {
                Some(error) => {
                    errors.push(error);
                    None
                }
                None => Some(change.apply(&current.scopes)),
            },
            None => None,
        };
        if let Some(note) = &patch.note
            && current.client_id.is_none()
        {
            match note.as_deref() {
                None => errors.push(FieldError::new("description", "missing_field")),
                Some(note) if self.note_taken(user_id, note, Some(id)) => {
                    errors.push(FieldError::new("description", "already_exists"));
                }
                Some(_) => {}
            }
        }
        if let Some(fingerprint) = &patch.fingerprint
            && self.fingerprint_taken(
                user_id,
                current.client_id.as_deref(),
                fingerprint.as_deref(),
                Some(id),
            )
        {
            errors.push(FieldError::new("fingerprint", "already_exists"));
        }
        if !errors.is_empty() {
            return Err(ApiError::ValidationFailed(errors));
        }
        let mut updated = current.clone();
        if let Some(scopes) = scopes {
            updated.scopes = scopes;
        }
        if let Some(note) = patch.note {
            updated.note = note;
        }
        if let Some(note_url) = patch.note_url {
            updated.note_url = note_url;
        }
        if let Some(fingerprint) = patch.fingerprint {
            updated.fingerprint = fingerprint;
        }
        let changed = updated.scopes != current.scopes
            || updated.note != current.note
            || updated.note_url != current.note_url
            || updated.fingerprint != current.fingerprint;
        if changed {
            updated.updated_at = self.clock().max(current.updated_at);
            self.authorizations.insert(id, updated);
        }
        Ok(id)
    }

    /// Deletes one of the user's authorizations; the app's grant goes with its last token.
    pub(crate) fn delete_authorization(&mut self, user_id: u64, id: u64) -> Result<(), ApiError> {
        self.owned_authorization(user_id, id)?;
        if let Some(removed) = self.authorizations.remove(&id)
            && let Some(client_id) = removed.client_id
        {
            self.drop_grant_if_unused(user_id, &client_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppSpec, EmulatorConfig, UserSpec};

    fn store() -> Store {
        Store::new(EmulatorConfig {
            users: vec![
                UserSpec::parse("alice:pw").unwrap(),
                UserSpec::parse("bob:pw").unwrap(),
            ],
            apps: vec![AppSpec::parse("app1:secret1").unwrap()],
            ..EmulatorConfig::default()
        })
        .unwrap()
    }

    fn personal(note: &str) -> NewAuthorization {
        NewAuthorization {
            note: Some(note.into()),
            scopes: vec!["repo".into(), "public_repo".into()],
            ..NewAuthorization::default()
        }
    }

    fn app_token(fingerprint: Option<&str>) -> NewAuthorization {
        NewAuthorization {
            client_id: Some("app1".into()),
            fingerprint: fingerprint.map(str::to_owned),
            ..NewAuthorization::default()
        }
    }

    fn codes(err: ApiError) -> Vec<(&'static str, &'static str)> {
        err.field_errors()
            .iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn tokens_have_github_shape_and_only_their_hash_is_kept() {
        let mut store = store();
        let (id, token) = store.create_authorization(1, personal("ci")).unwrap();
        assert!(token.starts_with("ghp_") && token.len() == 40);
        assert!(token[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        let record = &store.authorizations[&id];
        assert_eq!(record.hashed_token, sha256_hex(&token));
        assert_eq!(record.token_last_eight, token[32..]);
        assert_eq!(record.scopes, ["repo"]);
        let (_, app_token) = store.create_authorization(1, app_token(None)).unwrap();
        assert!(app_token.starts_with("gho_"));
    }

    #[test]
    fn personal_note_is_required_and_unique_per_user() {
        let mut store = store();
        store.create_authorization(1, personal("ci")).unwrap();
        let dup = store.create_authorization(1, personal("ci")).unwrap_err();
        assert_eq!(codes(dup), [("description", "already_exists")]);
        store.create_authorization(2, personal("ci")).unwrap();
        let missing = NewAuthorization::default();
        let err = store.create_authorization(1, missing).unwrap_err();
        assert_eq!(codes(err), [("description", "missing_field")]);
    }

    #[test]
    fn fingerprint_is_unique_per_user_and_app() {
        let mut store = store();
        store
            .create_authorization(1, app_token(Some("fp")))
            .unwrap();
        let dup = store
            .create_authorization(1, app_token(Some("fp")))
            .unwrap_err();
        assert_eq!(codes(dup), [("fingerprint", "already_exists")]);
        store
            .create_authorization(2, app_token(Some("fp")))
            .unwrap();
        store.create_authorization(1, app_token(None)).unwrap();
        let dup_none = store.create_authorization(1, app_token(None)).unwrap_err();
        assert_eq!(codes(dup_none), [("fingerprint", "already_exists")]);
        let mut with_fp = personal("other");
        with_fp.fingerprint = Some("fp".into());
        store.create_authorization(1, with_fp).unwrap();
    }

    #[test]
    fn unknown_scopes_are_refused() {
        let mut store = store();
        let mut bad = personal("x");
        bad.scopes.push("rep".into());
        let err = store.create_authorization(1, bad).unwrap_err();
        assert_eq!(codes(err), [("scopes", "invalid")]);
    }

    #[test]
    fn client_credentials_are_checked() {
        let store = store();
        assert_eq!(store.check_client("app1", Some("secret1")), Ok(()));
        assert_eq!(
            codes(store.check_client("app1", Some("nope")).unwrap_err()),
            [("client_secret", "invalid")]
        );
        assert_eq!(
            codes(store.check_client("nope", Some("secret1")).unwrap_err()),
            [("client_id", "invalid")]
        );
    }

    #[test]
    fn patch_changes_scopes_note_and_keeps_uniqueness() {
        let mut store = store();
        let (a, _) = store.create_authorization(1, personal("a")).unwrap();
        store.create_authorization(1, personal("b")).unwrap();
        let add = AuthorizationPatch {
            scopes: Some(ScopeChange::Add(vec![
                "read:org".into(),
                "repo:status".into(),
            ])),
            ..AuthorizationPatch::default()
        };
        store.update_authorization(1, a, add).unwrap();
        assert_eq!(store.authorizations[&a].scopes, ["read:org", "repo"]);
        let remove = AuthorizationPatch {
            scopes: Some(ScopeChange::Remove(vec!["repo".into()])),
            ..AuthorizationPatch::default()
        };
        store.update_authorization(1, a, remove).unwrap();
        assert_eq!(store.authorizations[&a].scopes, ["read:org"]);
        let rename = AuthorizationPatch {
            note: Some(Some("b".into())),
            ..AuthorizationPatch::default()
        };
        let err = store.update_authorization(1, a, rename).unwrap_err();
        assert_eq!(codes(err), [("description", "already_exists")]);
        let same = AuthorizationPatch {
            note: Some(Some("a".into())),
            ..AuthorizationPatch::default()
        };
        store.update_authorization(1, a, same).unwrap();
        assert_eq!(
            store.update_authorization(2, a, AuthorizationPatch::default()),
            Err(ApiError::NotFound)
        );
    }

    #[test]
    fn other_users_authorizations_are_not_found() {
        let mut store = store();
        let (id, _) = store.create_authorization(1, personal("a")).unwrap();
        assert!(store.owned_authorization(1, id).is_ok());
        assert_eq!(
            store.owned_authorization(2, id).unwrap_err(),
            ApiError::NotFound
        );
        assert_eq!(store.delete_authorization(2, id), Err(ApiError::NotFound));
        assert_eq!(store.delete_authorization(1, id), Ok(()));
        assert_eq!(store.delete_authorization(1, id), Err(ApiError::NotFound));
    }
}
