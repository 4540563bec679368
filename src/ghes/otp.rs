//! Two-factor codes: RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30-second step) from a base32 seed.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::redacted::SecretValue;

/// Length of a time step in seconds.
const STEP_SECONDS: u64 = 30;

/// A TOTP seed, validated as base32 when it is made. `Debug` prints `***`.
#[derive(Clone, Debug)]
pub struct TotpSeed {
    key: SecretValue,
}

/// The seed is not valid base32. The message never contains the seed itself.
#[derive(Debug, thiserror::Error)]
#[error("the TOTP seed is not valid base32 (letters A-Z and digits 2-7, padding optional)")]
pub struct InvalidTotpSeed;

impl TotpSeed {
    /// Parses a base32 seed as authenticator apps show it: case, spaces and padding do not matter.
    pub fn parse(base32: &str) -> Result<Self, InvalidTotpSeed> {
        let normalized: String = base32
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if normalized.is_empty() {
            return Err(InvalidTotpSeed);
        }
        let key = data_encoding::BASE32_NOPAD
            .decode(normalized.as_bytes())
            .map_err(|_| InvalidTotpSeed)?;
        // Keep the raw key bytes hex-encoded inside the redacting wrapper.
        Ok(Self {
            key: SecretValue::new(data_encoding::HEXLOWER.encode(&key)),
        })
    }

    /// The code for a given Unix time.
    pub fn code_at(&self, unix_seconds: u64) -> String {
        let key = data_encoding::HEXLOWER
            .decode(self.key.expose().as_bytes())
            .unwrap_or_default();
        hotp(&key, unix_seconds / STEP_SECONDS)
    }

    /// The code for now.
    pub fn current_code(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0);
        self.code_at(now)
    }
}

/// RFC 4226 HOTP with SHA-1 and six digits.
fn hotp(key: &[u8], counter: u64) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    format!("{:06}", binary % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B vectors (SHA-1, seed "12345678901234567890"), last six digits.
    #[test]
    fn rfc6238_vectors() {
        let seed = TotpSeed::parse(&data_encoding::BASE32.encode(b"12345678901234567890"))
            .expect("valid seed");
        assert_eq!(seed.code_at(59), "287082");
        assert_eq!(seed.code_at(1_111_111_109), "081804");
        assert_eq!(seed.code_at(1_234_567_890), "005924");
        assert_eq!(seed.code_at(2_000_000_000), "279037");
    }

    #[test]
    fn seed_parsing_is_lenient_about_case_spaces_and_padding() {
        let a = TotpSeed::parse("gezd gnbv gy3t qojq").expect("lowercase with spaces");
        let b = TotpSeed::parse("GEZDGNBVGY3TQOJQ====").expect("padded");
        assert_eq!(a.code_at(1000), b.code_at(1000));
        assert!(TotpSeed::parse("not base32!").is_err());
        assert!(TotpSeed::parse("").is_err());
        assert_eq!(format!("{a:?}"), "TotpSeed { key: SecretValue(***) }");
    }
}
