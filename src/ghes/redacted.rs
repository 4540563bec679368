//! Redacting wrappers for secret values: passwords, client secrets, TOTP seeds and tokens.
//!
//! None of these types implement `Display` or `Serialize`, and their `Debug` never shows the
//! value, so a secret cannot reach a log line, an Event, a status field or an error message by
//! accident. Code that must send the value (an HTTP body, a Secret's data) calls `expose()`.

use std::fmt;

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// A password, client secret or any other secret string. `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// An OAuth access token. `Debug` prints `***` and the last eight characters, which GHES itself
/// reports as `token_last_eight` and which are therefore not secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The token itself, for the one place that must store it (the Kubernetes Secret).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last eight characters (all of them when shorter), as GHES reports in `token_last_eight`.
    pub fn last_eight(&self) -> &str {
        let start = self
            .0
            .char_indices()
            .rev()
            .nth(7)
            .map(|(index, _)| index)
            .unwrap_or(0);
        &self.0[start..]
    }

    /// The lowercase hex SHA-256 of the token, as GHES reports in `hashed_token`.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }

    /// Whether `hashed_token` (as GHES reports it: hex in either case, or base64) is this
    /// token's hash.
    pub fn matches_hash(&self, hashed_token: &str) -> bool {
        TokenHash::of(self.0.as_bytes()).matches(hashed_token)
    }
}

/// The SHA-256 of a token or password, compared with GHES's `hashed_token` in each encoding
/// GHES uses (hex in either case, or base64). `Debug` never shows it: the hash of a password
/// is guessable offline.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Whether `hashed_token`, as GHES reports it, is this hash.
    pub fn matches(&self, hashed_token: &str) -> bool {
        let hashed_token = hashed_token.trim();
        let decoded = if hashed_token.len() == 64 {
            data_encoding::HEXLOWER_PERMISSIVE.decode(hashed_token.as_bytes())
        } else {
            data_encoding::BASE64.decode(hashed_token.as_bytes())
        };
        decoded.is_ok_and(|bytes| bytes.as_slice() == self.0.as_slice())
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(***)")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.chars().count() > 8 {
            write!(f, "Token(***{})", self.last_eight())
        } else {
            f.write_str("Token(***)")
        }
    }
}

/// GHES sends `token: ""` in every response but the creating one: map that to `None`.
pub(crate) fn deserialize_token<'de, D>(deserializer: D) -> Result<Option<Token>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|token| !token.is_empty()).map(Token))
}

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret_values() {
        let password = SecretValue::new("hunter2-password");
        let token = Token::new("ghp_abcdefghijklmnopqrstuvwxyz0123456789");
        assert_eq!(format!("{password:?}"), "SecretValue(***)");
        let shown = format!("{token:?}");
        assert_eq!(shown, "Token(***23456789)");
        assert!(!shown.contains("ghp_abc"));
        assert_eq!(format!("{:?}", Token::new("short")), "Token(***)");
    }

    #[test]
    fn token_hash_matches_hex_and_base64() {
        let token = Token::new("ghu_16C7e42F292c6912E7710c838347Ae178B4a");
        let hex = token.sha256_hex();
        assert_eq!(hex.len(), 64);
        assert!(token.matches_hash(&hex));
        assert!(token.matches_hash(&hex.to_uppercase()));
        let base64 = data_encoding::BASE64.encode(&Sha256::digest(token.expose().as_bytes()));
        assert!(token.matches_hash(&base64));
        assert!(!token.matches_hash(&sha256_hex(b"other")));
        assert!(!token.matches_hash("not a hash"));
        assert_eq!(token.last_eight(), "Ae178B4a");
    }
}
