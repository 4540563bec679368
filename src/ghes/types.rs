//! Wire types of the GHES OAuth Authorizations API (schemas `authorization` and
//! `application-grant` of the official description), and the request bodies the operator sends.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

use super::redacted::{SecretValue, Token, deserialize_token};

/// The OAuth app an authorization or grant belongs to. Personal tokens report a placeholder app.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AppRef {
    /// The app's client id.
    pub client_id: String,
    /// The app's display name.
    pub name: String,
}

/// The user an authorization belongs to (only the fields the operator reads).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct User {
    /// Login name.
    pub login: String,
    /// Numeric id.
    pub id: u64,
}

/// One OAuth authorization (a token's record) as GHES reports it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Authorization {
    /// Unique id.
    pub id: u64,
    /// Scopes as the server normalized them.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub scopes: Vec<String>,
    /// The token: present only in the response that created the authorization.
    #[serde(default, deserialize_with = "deserialize_token")]
    pub token: Option<Token>,
    /// Last eight characters of the token.
    #[serde(default)]
    pub token_last_eight: Option<String>,
    /// SHA-256 of the token (lowercase hex; some servers use base64).
    #[serde(default)]
    pub hashed_token: Option<String>,
    /// The app this authorization is for.
    pub app: AppRef,
    /// Free-form note.
    #[serde(default)]
    pub note: Option<String>,
    /// URL shown beside the note.
    #[serde(default)]
    pub note_url: Option<String>,
    /// Caller-chosen string, unique per user and app.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
    /// Expiry time, when the server sets one.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// The owning user.
    #[serde(default)]
    pub user: Option<User>,
}

#[cfg(test)]
impl Authorization {
    /// An authorization as a listing shows it, for unit tests: no token, no scopes, no note,
    /// created at the epoch.
    pub(crate) fn listed(id: u64, client_id: &str, fingerprint: Option<&str>) -> Self {
        Self {
            id,
            scopes: vec![],
            token: None,
            token_last_eight: None,
            hashed_token: None,
            app: AppRef {
                client_id: client_id.into(),
                name: String::new(),
            },
            note: None,
            note_url: None,
            fingerprint: fingerprint.map(str::to_owned),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
            expires_at: None,
            user: None,
        }
    }
}

impl Authorization {
    /// Whether `token` is the token of this authorization, judged by `hashed_token`.
    pub fn is_token(&self, token: &Token) -> bool {
        self.hashed_token
            .as_deref()
            .is_some_and(|hashed| token.matches_hash(hashed))
    }

    /// Scopes as a sorted, de-duplicated set, for comparisons that ignore order.
    pub fn scope_set(&self) -> std::collections::BTreeSet<&str> {
        self.scopes.iter().map(String::as_str).collect()
    }
}

/// One grant: an OAuth app the user has authorized, whatever the number of its tokens.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Grant {
    /// Unique id.
    pub id: u64,
    /// API URL of this grant.
    pub url: String,
    /// The granted app.
    pub app: AppRef,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
    /// Union of the scopes of the app's tokens.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub scopes: Vec<String>,
    /// The owning user.
    #[serde(default)]
    pub user: Option<User>,
}

/// The client id and secret of an OAuth app.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    /// The app's client id (not secret).
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretValue,
}

/// Body of `POST /authorizations`: a personal token when `app` is `None`.
#[derive(Clone, Debug, Default)]
pub struct NewAuthorization {
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Note (required and unique among the user's personal tokens).
    pub note: Option<String>,
    /// URL shown beside the note.
    pub note_url: Option<String>,
    /// The app to create the token for, if any.
    pub app: Option<AppCredentials>,
    /// Fingerprint, unique per user and app.
    pub fingerprint: Option<String>,
}

/// Body of the two get-or-create `PUT` operations.
#[derive(Clone, Debug)]
pub struct AppAuthorizationRequest {
    /// The app's client secret (required by GHES).
    pub client_secret: SecretValue,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Note.
    pub note: Option<String>,
    /// URL shown beside the note.
    pub note_url: Option<String>,
}

/// How a `PATCH` changes scopes: GHES accepts exactly one of these per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeChange {
    /// Replace the scopes (`scopes`).
    Replace(Vec<String>),
    /// Add scopes (`add_scopes`).
    Add(Vec<String>),
    /// Remove scopes (`remove_scopes`).
    Remove(Vec<String>),
}

/// Body of `PATCH /authorizations/{id}`; `None` fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizationUpdate {
    /// Scope change, if any.
    pub scopes: Option<ScopeChange>,
    /// New note.
    pub note: Option<String>,
    /// New note URL.
    pub note_url: Option<String>,
    /// New fingerprint.
    pub fingerprint: Option<String>,
}

impl AuthorizationUpdate {
    /// Whether the update changes nothing (and so need not be sent).
    pub fn is_empty(&self) -> bool {
        self.scopes.is_none()
            && self.note.is_none()
            && self.note_url.is_none()
            && self.fingerprint.is_none()
    }
}

/// Result of a get-or-create: `created` tells whether the response was 201 (and carries a token).
#[derive(Clone, Debug, PartialEq)]
pub struct GetOrCreated {
    /// The authorization, existing or new.
    pub authorization: Authorization,
    /// `true` for 201 Created (token present), `false` for 200 (existing, token empty).
    pub created: bool,
}

fn null_as_empty<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `authorization` example of the official description, as GHES sends it on creation.
    const CREATED: &str = r#"{
      "id": 1, "url": "https://api.github.com/authorizations/1", "scopes": ["public_repo"],
      "token": "ghu_16C7e42F292c6912E7710c838347Ae178B4a", "token_last_eight": "Ae178B4a",
      "hashed_token": "25f94a2a5c7fbaf499c665bc73d67c1c87e496da8985131633ee0a95819db2e8",
      "app": {"url": "https://example.com", "name": "my github app", "client_id": "abcde12345fghij67890"},
      "note": "optional note", "note_url": "http://optional/note/url",
      "updated_at": "2011-09-06T20:39:23Z", "created_at": "2011-09-06T17:26:27Z",
      "expires_at": "2011-10-06T17:26:27Z", "fingerprint": "jklmnop12345678"
    }"#;

    #[test]
    fn parses_the_description_example_and_redacts_the_token_in_debug() {
        let authorization: Authorization = serde_json::from_str(CREATED).expect("parses");
        let token = authorization
            .token
            .clone()
            .expect("token present on creation");
        assert_eq!(token.last_eight(), "Ae178B4a");
        assert!(authorization.expires_at.is_some());
        assert!(!format!("{authorization:?}").contains("ghu_16C7e42F"));
    }

    #[test]
    fn empty_token_and_null_scopes_mean_absent() {
        let json = CREATED
            .replace(r#""ghu_16C7e42F292c6912E7710c838347Ae178B4a""#, r#""""#)
            .replace(r#"["public_repo"]"#, "null")
            .replace(r#""2011-10-06T17:26:27Z""#, "null");
        let authorization: Authorization = serde_json::from_str(&json).expect("parses");
        assert!(authorization.token.is_none());
        assert!(authorization.scopes.is_empty());
        assert!(authorization.expires_at.is_none());
    }
}
