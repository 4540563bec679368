//! What an emulator starts with: users, OAuth apps and settings, plus the `login:password[:seed]`
//! and `client_id:client_secret[:name]` command-line forms that describe them.

use serde::{Deserialize, Serialize};

use super::totp;

/// Everything an emulator starts with.
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    /// Users that can authenticate with HTTP Basic.
    pub users: Vec<UserSpec>,
    /// OAuth apps tokens can be created for.
    pub apps: Vec<AppSpec>,
    /// Server-wide behaviour (API switch, rate limit, token lifetime, lockout threshold).
    pub settings: Settings,
}

/// Server-wide behaviour that the `/_emulator/settings` hook can change at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// When true, `POST /authorizations` answers 410 and the get-or-create `PUT`s answer 404, as
    /// on a server where the OAuth Authorizations API was switched off.
    pub api_disabled: bool,
    /// Per-user request budget; `None` (the GHES default) means no rate limiting and no headers.
    pub rate_limit: Option<RateLimit>,
    /// Lifetime of new tokens; `None` means they never expire (`expires_at: null`).
    pub token_ttl_secs: Option<u64>,
    /// Consecutive failed logins after which a user is locked out with 403.
    pub max_login_attempts: u32,
    /// Authorization ids that `GET /authorizations` leaves out although they are live: what
    /// offset paging does to a client when items before its page are deleted meanwhile.
    pub listing_skips: Vec<u64>,
    /// How far GHES's clock is ahead of the host's (negative: behind), in seconds: `created_at`,
    /// `updated_at` and the `Date` header follow it, as on a server whose clock drifted.
    #[serde(default)]
    pub clock_offset_secs: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            api_disabled: false,
            rate_limit: None,
            token_ttl_secs: None,
            max_login_attempts: 5,
            listing_skips: Vec::new(),
            clock_offset_secs: 0,
        }
    }
}

/// A fixed-window request budget, counted per authenticated login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length in seconds.
    pub window_secs: u64,
}

/// A user of the emulated server.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Login name.
    pub login: String,
    /// Password accepted with HTTP Basic.
    pub password: String,
    /// Base32 TOTP seed; when present the user has two-factor authentication on.
    #[serde(default)]
    pub totp_seed: Option<String>,
}

impl std::fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSpec")
            .field("login", &self.login)
            .field("password", &"***")
            .field("totp_seed", &self.totp_seed.as_ref().map(|_| "***"))
            .finish()
    }
}

/// An OAuth app registered on the emulated server.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// The app's client id (at most 20 characters, as on GHES).
    pub client_id: String,
    /// The app's client secret (at most 40 characters).
    pub client_secret: String,
    /// Display name; empty means the client id.
    #[serde(default)]
    pub name: String,
}

impl std::fmt::Debug for AppSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSpec")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("name", &self.name)
            .finish()
    }
}

/// Why a user or app description was refused. Messages never contain passwords or secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A user spec lacks its login or password.
    #[error("user spec must be LOGIN:PASSWORD[:TOTP_SEED]: {0}")]
    UserShape(&'static str),
    /// The login is not a valid GitHub login.
    #[error(
        "user spec: login {0:?} is invalid (1-39 letters, digits or single hyphens, not at either end)"
    )]
    Login(String),
    /// The TOTP seed is not base32.
    #[error("user spec for {0:?}: the TOTP seed is not valid base32 (A-Z, 2-7)")]
    TotpSeed(String),
    /// An app spec lacks its client id or secret.
    #[error("app spec must be CLIENT_ID:CLIENT_SECRET[:NAME]: {0}")]
    AppShape(&'static str),
    /// The client id is empty, too long or has characters that do not fit in a URL path.
    #[error("app spec: client id {0:?} is invalid (1-20 characters from A-Z a-z 0-9 . _ -)")]
    ClientId(String),
    /// The client secret is longer than GHES allows.
    #[error("app spec for {0:?}: the client secret must be 1-40 characters")]
    ClientSecret(String),
    /// Two users share a login.
    #[error("user {0:?} is defined twice")]
    DuplicateUser(String),
    /// Two apps share a client id.
    #[error("app {0:?} is defined twice")]
    DuplicateApp(String),
}

impl UserSpec {
    /// Parses `login:password[:TOTPBASE32]`. The password cannot contain `:`.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let mut parts = spec.splitn(3, ':');
        let login = parts.next().unwrap_or_default();
        let password = parts
            .next()
            .ok_or(SpecError::UserShape("missing ':' and password"))?;
        let user = Self {
            login: login.to_owned(),
            password: password.to_owned(),
            totp_seed: parts.next().map(str::to_owned),
        };
        user.validate()?;
        Ok(user)
    }

    /// Checks the login, password and seed.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.login.is_empty() {
            return Err(SpecError::UserShape("empty login"));
        }
        if !valid_login(&self.login) {
            return Err(SpecError::Login(self.login.clone()));
        }
        if self.password.is_empty() {
            return Err(SpecError::UserShape("empty password"));
        }
        if let Some(seed) = &self.totp_seed
            && totp::decode_seed(seed).is_err()
        {
            return Err(SpecError::TotpSeed(self.login.clone()));
        }
        Ok(())
    }
}

impl AppSpec {
    /// Parses `client_id:client_secret[:name]`; the name may contain `:`.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let mut parts = spec.splitn(3, ':');
        let client_id = parts.next().unwrap_or_default();
        let client_secret = parts
            .next()
            .ok_or(SpecError::AppShape("missing ':' and client secret"))?;
        let app = Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            name: parts.next().unwrap_or_default().to_owned(),
        };
        app.validate()?;
        Ok(app)
    }

    /// Checks the client id and secret.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.client_id.is_empty() {
            return Err(SpecError::AppShape("empty client id"));
        }
        let id_ok = self.client_id.len() <= 20
            && self
                .client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(SpecError::ClientId(self.client_id.clone()));
        }
        if self.client_secret.is_empty() || self.client_secret.chars().count() > 40 {
            return Err(SpecError::ClientSecret(self.client_id.clone()));
        }
        Ok(())
    }
}

/// GitHub logins: alphanumerics and single hyphens, not starting or ending with one, at most 39.
fn valid_login(login: &str) -> bool {
    login.len() <= 39
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--")
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_spec_with_and_without_seed() {
        let plain = UserSpec::parse("alice:s3cret").unwrap();
        assert_eq!(
            (plain.login.as_str(), plain.password.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(plain.totp_seed, None);
        let twofa = UserSpec::parse("bob:pw:JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(twofa.totp_seed.as_deref(), Some("JBSWY3DPEHPK3PXP"));
    }

    #[test]
    fn user_spec_errors_name_the_problem_without_the_password() {
        assert_eq!(
            UserSpec::parse("alice"),
            Err(SpecError::UserShape("missing ':' and password"))
        );
        assert_eq!(
            UserSpec::parse(":pw"),
            Err(SpecError::UserShape("empty login"))
        );
        assert_eq!(
            UserSpec::parse("bad--name:pw"),
            Err(SpecError::Login("bad--name".into()))
        );
        let err = UserSpec::parse("carol:hunter2:not-base32!").unwrap_err();
        assert_eq!(err, SpecError::TotpSeed("carol".into()));
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn app_spec_name_may_contain_colons() {
        let app = AppSpec::parse("Iv1.abc:secret:CI: nightly").unwrap();
        assert_eq!(app.client_id, "Iv1.abc");
        assert_eq!(app.name, "CI: nightly");
        assert_eq!(
            AppSpec::parse("abc"),
            Err(SpecError::AppShape("missing ':' and client secret"))
        );
        assert_eq!(
            AppSpec::parse("a/b:s"),
            Err(SpecError::ClientId("a/b".into()))
        );
        assert!(AppSpec::parse("abcdefghijklmnopqrstu:s").is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let user = UserSpec::parse("alice:s3cret:JBSWY3DPEHPK3PXP").unwrap();
        let app = AppSpec::parse("cid:topsecret").unwrap();
        let shown = format!("{user:?} {app:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("JBSW") && !shown.contains("topsecret")
        );
    }
}
