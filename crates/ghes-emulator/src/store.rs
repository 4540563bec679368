//! The emulated server's data: users, OAuth apps, authorizations and grant records, plus how each
//! is rendered as JSON. Lifecycle rules live in `lifecycle.rs`, grants in `grants.rs`, logins in
//! `auth.rs`; all of them work on this one [`Store`] behind one mutex.

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::config::{AppSpec, EmulatorConfig, Settings, SpecError, UserSpec};
use super::errors::ApiError;
use super::ratelimit::RateWindow;
use super::wire::{
    AppSummary, Authorization, AuthorizationApp, EmulatorState, PERSONAL_APP_URL,
    PERSONAL_CLIENT_ID, SimpleUser, UserSummary,
};

/// A user of the emulated server.
#[derive(Debug, Clone)]
pub(crate) struct UserRecord {
    pub(crate) id: u64,
    pub(crate) login: String,
    pub(crate) password: String,
    pub(crate) totp_seed: Option<String>,
}

/// An OAuth app.
#[derive(Debug, Clone)]
pub(crate) struct AppRecord {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

/// An authorization. The token itself is not kept: only its hash and last eight characters.
#[derive(Debug, Clone)]
pub(crate) struct AuthorizationRecord {
    pub(crate) id: u64,
    pub(crate) user_id: u64,
    /// `None` for a personal token.
    pub(crate) client_id: Option<String>,
    pub(crate) hashed_token: String,
    pub(crate) token_last_eight: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) note: Option<String>,
    pub(crate) note_url: Option<String>,
    pub(crate) fingerprint: Option<String>,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) expires_at: Option<Timestamp>,
}

impl AuthorizationRecord {
    /// Whether the token can still be used (not past `expires_at`).
    pub(crate) fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|expiry| expiry > now)
    }
}

/// The grant of an app to a user: exists while the user holds at least one of the app's tokens.
#[derive(Debug, Clone)]
pub(crate) struct GrantRecord {
    pub(crate) id: u64,
    pub(crate) created_at: Timestamp,
}

/// All state of the emulated server.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) users: BTreeMap<String, UserRecord>,
    pub(crate) apps: BTreeMap<String, AppRecord>,
    pub(crate) authorizations: BTreeMap<u64, AuthorizationRecord>,
    /// Keyed by (user id, client id).
    pub(crate) grants: BTreeMap<(u64, String), GrantRecord>,
    /// Consecutive failed logins per user id.
    pub(crate) failed_logins: HashMap<u64, u32>,
    /// Rate-limit windows per login.
    pub(crate) rate_windows: HashMap<String, RateWindow>,
    pub(crate) settings: Settings,
    last_user_id: u64,
    last_authorization_id: u64,
    last_grant_id: u64,
}

/// The current time at GitHub's precision (whole seconds).
pub(crate) fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Store {
    /// The time on GHES's clock (whole seconds): the host's, moved by
    /// [`crate::Settings::clock_offset_secs`].
    pub(crate) fn clock(&self) -> Timestamp {
        let offset = jiff::SignedDuration::from_secs(self.settings.clock_offset_secs);
        now().checked_add(offset).unwrap_or_else(|_| now())
    }
}

/// Lowercase hex SHA-256, as in `hashed_token`.
pub(crate) fn sha256_hex(value: impl AsRef<[u8]>) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(value.as_ref()))
}

impl Store {
    /// A store holding the configured users, apps and settings.
    pub(crate) fn new(config: EmulatorConfig) -> Result<Self, SpecError> {
        let mut store = Self {
            settings: config.settings,
            ..Self::default()
        };
        for user in config.users {
            store.add_user(user)?;
        }
        for app in config.apps {
            store.add_app(app)?;
        }
        Ok(store)
    }

    /// Registers a user with the next numeric id.
    pub(crate) fn add_user(&mut self, spec: UserSpec) -> Result<UserSummary, SpecError> {
        spec.validate()?;
        if self.users.contains_key(&spec.login) {
            return Err(SpecError::DuplicateUser(spec.login));
        }
        self.last_user_id += 1;
        let record = UserRecord {
            id: self.last_user_id,
            login: spec.login.clone(),
            password: spec.password,
            totp_seed: spec.totp_seed,
        };
        let summary = user_summary(&record);
        self.users.insert(spec.login, record);
        Ok(summary)
    }

    /// Registers an OAuth app.
    pub(crate) fn add_app(&mut self, spec: AppSpec) -> Result<AppSummary, SpecError> {
        spec.validate()?;
        if self.apps.contains_key(&spec.client_id) {
            return Err(SpecError::DuplicateApp(spec.client_id));
        }
        let name = if spec.name.trim().is_empty() {
            spec.client_id.clone()
        } else {
            spec.name
        };
        let record = AppRecord {
            name,
            url: format!("https://example.com/apps/{}", spec.client_id),
            client_id: spec.client_id.clone(),
            client_secret: spec.client_secret,
        };
        let summary = app_summary(&record);
        self.apps.insert(spec.client_id, record);
        Ok(summary)
    }

    /// The user with numeric id `id`.
    pub(crate) fn user_by_id(&self, id: u64) -> Option<&UserRecord> {
        self.users.values().find(|user| user.id == id)
    }

    /// Takes the next authorization id.
    pub(crate) fn next_authorization_id(&mut self) -> u64 {
        self.last_authorization_id += 1;
        self.last_authorization_id
    }

    /// Takes the next grant id.
    pub(crate) fn next_grant_id(&mut self) -> u64 {
        self.last_grant_id += 1;
        self.last_grant_id
    }

    /// `expires_at` for a token created at `created_at` under the current settings.
    pub(crate) fn expiry_for(&self, created_at: Timestamp) -> Option<Timestamp> {
        let ttl = self.settings.token_ttl_secs?;
        let ttl = SignedDuration::from_secs(i64::try_from(ttl).unwrap_or(i64::MAX));
        created_at.checked_add(ttl).ok()
    }

    /// The `app` object of an authorization or grant.
    pub(crate) fn app_object(
        &self,
        client_id: Option<&str>,
        note: Option<&str>,
    ) -> AuthorizationApp {
        match client_id.and_then(|id| self.apps.get(id)) {
            Some(app) => AuthorizationApp {
                client_id: app.client_id.clone(),
                name: app.name.clone(),
                url: app.url.clone(),
            },
            None => AuthorizationApp {
                client_id: PERSONAL_CLIENT_ID.into(),
                name: format!("{} (API)", note.unwrap_or_default()),
                url: PERSONAL_APP_URL.into(),
            },
        }
    }

    /// The simple-user object of user `user_id` as seen from `host`.
    pub(crate) fn user_object(&self, user_id: u64, host: &str) -> Option<SimpleUser> {
        self.user_by_id(user_id)
            .map(|user| SimpleUser::new(&user.login, user.id, host))
    }

    /// An authorization as the API shows it; `token` is the secret in a creating response only.
    pub(crate) fn render(
        &self,
        record: &AuthorizationRecord,
        host: &str,
        token: &str,
    ) -> Authorization {
        Authorization {
            id: record.id,
            url: format!("http://{host}/api/v3/authorizations/{}", record.id),
            scopes: record.scopes.clone(),
            token: token.to_owned(),
            token_last_eight: Some(record.token_last_eight.clone()),
            hashed_token: Some(record.hashed_token.clone()),
            app: self.app_object(record.client_id.as_deref(), record.note.as_deref()),
            note: record.note.clone(),
            note_url: record.note_url.clone(),
            updated_at: record.updated_at,
            created_at: record.created_at,
            fingerprint: record.fingerprint.clone(),
            user: self.user_object(record.user_id, host),
            installation: None,
            expires_at: record.expires_at,
        }
    }

    /// The authorization `id` rendered, or 404.
    pub(crate) fn render_by_id(
        &self,
        id: u64,
        host: &str,
        token: &str,
    ) -> Result<Authorization, ApiError> {
        self.authorizations
            .get(&id)
            .map(|record| self.render(record, host, token))
            .ok_or(ApiError::NotFound)
    }

    /// Everything, without secrets, with URLs for `host`.
    pub(crate) fn snapshot(&self, host: &str) -> EmulatorState {
        let mut grants: Vec<_> = self
            .grants
            .iter()
            .filter_map(|((user_id, client_id), grant)| {
                self.render_grant(*user_id, client_id, grant, host)
            })
            .collect();
        grants.sort_by_key(|grant| grant.id);
        let mut users: Vec<_> = self.users.values().map(user_summary).collect();
        users.sort_by_key(|user| user.id);
        EmulatorState {
            users,
            apps: self.apps.values().map(app_summary).collect(),
            authorizations: self
                .authorizations
                .values()
                .map(|record| self.render(record, host, ""))
                .collect(),
            grants,
            settings: self.settings.clone(),
        }
    }
}

fn user_summary(user: &UserRecord) -> UserSummary {
    UserSummary {
        login: user.login.clone(),
        id: user.id,
        has_totp: user.totp_seed.is_some(),
    }
}

fn app_summary(app: &AppRecord) -> AppSummary {
    AppSummary {
        client_id: app.client_id.clone(),
        name: app.name.clone(),
        url: app.url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn duplicate_users_and_apps_are_refused() {
        let config = EmulatorConfig {
            users: vec![
                UserSpec::parse("alice:a").unwrap(),
                UserSpec::parse("alice:b").unwrap(),
            ],
            ..EmulatorConfig::default()
        };
        assert_eq!(
            Store::new(config).unwrap_err(),
            SpecError::DuplicateUser("alice".into())
        );
        let mut store = Store::default();
        store.add_app(AppSpec::parse("cid:s").unwrap()).unwrap();
        assert!(store.add_app(AppSpec::parse("cid:t").unwrap()).is_err());
    }
}
