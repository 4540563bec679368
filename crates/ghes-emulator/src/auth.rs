//! Who is calling: HTTP Basic only (password, or one of the user's live tokens as the password),
//! two-factor codes in `X-GitHub-OTP`, and the lockout after repeated failed logins.

use axum::http::{HeaderMap, header};
use jiff::Timestamp;

use super::errors::ApiError;
use super::store::{Store, sha256_hex};
use super::totp;

/// Request header carrying the two-factor code.
pub(crate) const OTP_HEADER: &str = "x-github-otp";

/// What the `Authorization` header offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// No header at all.
    Missing,
    /// A header that is not usable HTTP Basic (another scheme, bad base64, no `:`).
    Unusable,
    /// Login and password (or token) from HTTP Basic.
    Basic { login: String, password: String },
}

impl Credentials {
    /// Reads the `Authorization` header.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Self::Missing;
        };
        let Some((scheme, encoded)) = value.to_str().ok().and_then(|v| v.trim().split_once(' '))
        else {
            return Self::Unusable;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Self::Unusable;
        }
        let encoded = encoded.trim().as_bytes();
        let decoded = data_encoding::BASE64
            .decode(encoded)
            .or_else(|_| data_encoding::BASE64_NOPAD.decode(encoded))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        match decoded.as_deref().and_then(|pair| pair.split_once(':')) {
            Some((login, password)) => Self::Basic {
                login: login.to_owned(),
                password: password.to_owned(),
            },
            None => Self::Unusable,
        }
    }

    /// The login claimed by Basic credentials, whether or not it is right.
    pub(crate) fn login(&self) -> Option<&str> {
        match self {
            Self::Basic { login, .. } => Some(login),
            _ => None,
        }
    }
}

impl Store {
    /// Authenticates a request; returns the user id. Counts failed passwords towards lockout.
    pub(crate) fn authenticate(
        &mut self,
        credentials: &Credentials,
        otp: Option<&str>,
        now: Timestamp,
    ) -> Result<u64, ApiError> {
        let (login, password) = match credentials {
            Credentials::Missing => return Err(ApiError::RequiresAuthentication),
            Credentials::Unusable => return Err(ApiError::BadCredentials),
            Credentials::Basic { login, password } => (login, password),
        };
        let user = self.users.get(login).ok_or(ApiError::BadCredentials)?;
        let (user_id, seed) = (user.id, user.totp_seed.clone());
        let max_attempts = self.settings.max_login_attempts;
        let failures = self.failed_logins.get(&user_id).copied().unwrap_or(0);
        if max_attempts > 0 && failures >= max_attempts {
            return Err(ApiError::LoginAttemptsExceeded);
        }
        let password_ok = *password == user.password;
        // A live token works as the password and needs no second factor.
        let token_ok = !password_ok && {
            let hashed = sha256_hex(password);
            self.authorizations
                .values()
                .any(|a| a.user_id == user_id && a.hashed_token == hashed && a.is_live(now))
        };
        if !password_ok && !token_ok {
            self.failed_logins
                .insert(user_id, failures.saturating_add(1));
            return Err(ApiError::BadCredentials);
        }
        self.failed_logins.remove(&user_id);
        if password_ok && let Some(seed) = seed {
            let now_secs = u64::try_from(now.as_second()).unwrap_or(0);
            let code_ok = otp.is_some_and(|code| totp::verify(&seed, code, now_secs));
            if !code_ok {
                return Err(ApiError::OtpRequired);
            }
        }
        Ok(user_id)
    }

    /// Lifts every lockout.
    pub(crate) fn reset_lockouts(&mut self) {
        self.failed_logins.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EmulatorConfig, UserSpec};
    use crate::lifecycle::NewAuthorization;
    use axum::http::HeaderValue;

    const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn store() -> Store {
        Store::new(EmulatorConfig {
            users: vec![
                UserSpec::parse("alice:pw").unwrap(),
                UserSpec::parse(&format!("bob:pw:{SEED}")).unwrap(),
            ],
            ..EmulatorConfig::default()
        })
        .unwrap()
    }

    fn basic(login: &str, password: &str) -> Credentials {
        let mut headers = HeaderMap::new();
        let encoded = data_encoding::BASE64.encode(format!("{login}:{password}").as_bytes());
        let value = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap();
        headers.insert(header::AUTHORIZATION, value);
        Credentials::from_headers(&headers)
    }

    #[test]
    fn parses_basic_and_refuses_other_schemes() {
        assert_eq!(basic("a", "b:c").login(), Some("a"));
        assert_eq!(
            basic("a", "b:c"),
            Credentials::Basic {
                login: "a".into(),
                password: "b:c".into()
            }
        );
        let mut headers = HeaderMap::new();
        assert_eq!(Credentials::from_headers(&headers), Credentials::Missing);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("token ghp_x"),
        );
        assert_eq!(Credentials::from_headers(&headers), Credentials::Unusable);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(Credentials::from_headers(&headers), Credentials::Unusable);
    }

    #[test]
    fn lockout_after_consecutive_failures_until_reset() {
        let mut store = store();
        let now = Timestamp::now();
        assert_eq!(store.authenticate(&basic("alice", "pw"), None, now), Ok(1));
        for _ in 0..5 {
            assert_eq!(
                store.authenticate(&basic("alice", "bad"), None, now),
                Err(ApiError::BadCredentials)
            );
        }
        assert_eq!(
            store.authenticate(&basic("alice", "pw"), None, now),
            Err(ApiError::LoginAttemptsExceeded)
        );
        store.reset_lockouts();
        assert_eq!(store.authenticate(&basic("alice", "pw"), None, now), Ok(1));
        assert_eq!(
            store.authenticate(&basic("nobody", "pw"), None, now),
            Err(ApiError::BadCredentials)
        );
    }

    #[test]
    fn expired_tokens_are_no_password() {
        let mut store = store();
        store.settings.token_ttl_secs = Some(60);
        let now = Timestamp::now();
        let backdated = NewAuthorization {
            note: Some("old".into()),
            created_at: Some(now - jiff::SignedDuration::from_secs(120)),
            ..NewAuthorization::default()
        };
        let (id, token) = store.create_authorization(1, backdated).unwrap();
        let expires_at = store.authorizations[&id].expires_at.unwrap();
        assert_eq!(
            expires_at,
            store.authorizations[&id].created_at + jiff::SignedDuration::from_secs(60)
        );
        assert_eq!(
            store.authenticate(&basic("alice", &token), None, now),
            Err(ApiError::BadCredentials)
        );
        let fresh = NewAuthorization {
            note: Some("new".into()),
            ..NewAuthorization::default()
        };
        let (_, token) = store.create_authorization(1, fresh).unwrap();
        assert_eq!(
            store.authenticate(&basic("alice", &token), None, now),
            Ok(1)
        );
    }

    #[test]
    fn two_factor_needs_a_current_code_but_not_with_a_token() {
        let mut store = store();
        let now = Timestamp::now();
        let secs = u64::try_from(now.as_second()).unwrap();
        let creds = basic("bob", "pw");
        assert_eq!(
            store.authenticate(&creds, None, now),
            Err(ApiError::OtpRequired)
        );
        assert_eq!(
            store.authenticate(&creds, Some("000000x"), now),
            Err(ApiError::OtpRequired)
        );
        let code = totp::totp_code(SEED, secs).unwrap();
        assert_eq!(store.authenticate(&creds, Some(&code), now), Ok(2));
        let note = NewAuthorization {
            note: Some("n".into()),
            ..NewAuthorization::default()
        };
        let (_, token) = store.create_authorization(2, note).unwrap();
        assert_eq!(store.authenticate(&basic("bob", &token), None, now), Ok(2));
        assert_eq!(
            store.authenticate(&basic("alice", &token), None, now),
            Err(ApiError::BadCredentials)
        );
    }
}
