//! The emulator's own JSON shapes of the OAuth Authorizations API (`authorization`,
//! `application-grant`, `nullable-simple-user`), written from the OpenAPI description and kept
//! apart from the client's types so a client bug is not mirrored by the server testing it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `client_id` GitHub shows for personal tokens, which belong to no app.
pub const PERSONAL_CLIENT_ID: &str = "00000000000000000000";

/// `app.url` GitHub shows for personal tokens.
pub const PERSONAL_APP_URL: &str =
    "https://docs.github.com/enterprise-server@3.22/rest/oauth-authorizations";

/// Schema `authorization`: one token as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authorization {
    /// Authorization id.
    pub id: u64,
    /// Absolute API URL of this authorization.
    pub url: String,
    /// Normalized scopes.
    pub scopes: Vec<String>,
    /// The token: only in the response that created it, `""` everywhere else.
    pub token: String,
    /// Last eight characters of the token.
    pub token_last_eight: Option<String>,
    /// Lowercase hex SHA-256 of the token.
    pub hashed_token: Option<String>,
    /// The app, or GitHub's placeholder for personal tokens.
    pub app: AuthorizationApp,
    /// Note.
    pub note: Option<String>,
    /// Note URL.
    pub note_url: Option<String>,
    /// Last change, RFC 3339 UTC with second precision.
    pub updated_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Fingerprint, unique per user and app.
    pub fingerprint: Option<String>,
    /// The owner.
    pub user: Option<SimpleUser>,
    /// Always null: classic OAuth tokens have no GitHub App installation.
    pub installation: Option<serde_json::Value>,
    /// Expiry, null unless the emulator has a token lifetime.
    pub expires_at: Option<Timestamp>,
}

/// The `app` object of authorizations and grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationApp {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Homepage.
    pub url: String,
}

/// Schema `application-grant`: the apps a user has granted, derived from their app tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationGrant {
    /// Grant id, stable while the user holds at least one token of the app.
    pub id: u64,
    /// Absolute API URL of this grant.
    pub url: String,
    /// The app.
    pub app: AuthorizationApp,
    /// When the user's first token of the app was created.
    pub created_at: Timestamp,
    /// Last change of any of the app's tokens.
    pub updated_at: Timestamp,
    /// Normalized union of the scopes of the app's tokens.
    pub scopes: Vec<String>,
    /// The user.
    pub user: Option<SimpleUser>,
}

/// Schema `nullable-simple-user` with every required field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SimpleUser {
    pub login: String,
    pub id: u64,
    pub node_id: String,
    pub avatar_url: String,
    pub gravatar_id: Option<String>,
    pub url: String,
    pub html_url: String,
    pub followers_url: String,
    pub following_url: String,
    pub gists_url: String,
    pub starred_url: String,
    pub subscriptions_url: String,
    pub organizations_url: String,
    pub repos_url: String,
    pub events_url: String,
    pub received_events_url: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub site_admin: bool,
    pub user_view_type: String,
}

impl SimpleUser {
    /// The object GHES shows for user `login` (`id`) on `host`.
    pub(crate) fn new(login: &str, id: u64, host: &str) -> Self {
        let api = format!("http://{host}/api/v3/users/{login}");
        Self {
            login: login.to_owned(),
            id,
            node_id: data_encoding::BASE64.encode(format!("04:User{id}").as_bytes()),
            avatar_url: format!("http://{host}/avatars/u/{id}?"),
            gravatar_id: Some(String::new()),
            html_url: format!("http://{host}/{login}"),
            followers_url: format!("{api}/followers"),
            following_url: format!("{api}/following{{/other_user}}"),
            gists_url: format!("{api}/gists{{/gist_id}}"),
            starred_url: format!("{api}/starred{{/owner}}{{/repo}}"),
            subscriptions_url: format!("{api}/subscriptions"),
            organizations_url: format!("{api}/orgs"),
            repos_url: format!("{api}/repos"),
            events_url: format!("{api}/events{{/privacy}}"),
            received_events_url: format!("{api}/received_events"),
            url: api,
            kind: "User".into(),
            site_admin: false,
            user_view_type: "public".into(),
        }
    }
}

/// A user as `/_emulator/state` lists it (never with its password or seed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// Login.
    pub login: String,
    /// Numeric id.
    pub id: u64,
    /// Whether two-factor authentication is on.
    pub has_totp: bool,
}

/// An app as `/_emulator/state` lists it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Homepage.
    pub url: String,
}

/// Everything the emulator holds, without secrets: tokens show as `""`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmulatorState {
    /// Users, by login.
    pub users: Vec<UserSummary>,
    /// Apps, by client id.
    pub apps: Vec<AppSummary>,
    /// Every user's authorizations, by id.
    pub authorizations: Vec<Authorization>,
    /// Every user's grants, by id.
    pub grants: Vec<ApplicationGrant>,
    /// Current settings.
    pub settings: super::Settings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_user_matches_github_conventions() {
        let user = SimpleUser::new("octocat", 1, "ghes.test");
        assert_eq!(user.node_id, "MDQ6VXNlcjE=");
        assert_eq!(user.url, "http://ghes.test/api/v3/users/octocat");
        let json = serde_json::to_value(&user).unwrap();
        assert_eq!(json["type"], "User");
        assert_eq!(json["gravatar_id"], "");
    }
}
