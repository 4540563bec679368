//! RFC 6238 one-time codes (HMAC-SHA1, 6 digits, 30-second steps), as GHES checks `X-GitHub-OTP`.
//!
//! The emulator keeps its own implementation so a bug in the client's code generator is not
//! mirrored by the server that tests it.

use hmac::{Hmac, Mac};
use sha1::Sha1;

const STEP_SECS: u64 = 30;
const DIGITS: u32 = 6;

/// The seed is not base32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("TOTP seed is not valid base32")]
pub struct InvalidSeed;

/// Decodes a base32 seed, tolerating lower case, spaces and missing `=` padding.
pub(crate) fn decode_seed(seed: &str) -> Result<Vec<u8>, InvalidSeed> {
    let mut cleaned: String = seed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if cleaned.is_empty() {
        return Err(InvalidSeed);
    }
    while !cleaned.len().is_multiple_of(8) {
        cleaned.push('=');
    }
    data_encoding::BASE32
        .decode(cleaned.as_bytes())
        .map_err(|_| InvalidSeed)
}

/// The 6-digit code for `seed_base32` at `unix_time` (seconds).
pub fn totp_code(seed_base32: &str, unix_time: u64) -> Result<String, InvalidSeed> {
    let key = decode_seed(seed_base32)?;
    Ok(code_for_counter(&key, unix_time / STEP_SECS))
}

/// Whether `code` is valid for the seed at `unix_time`, one step of clock skew either way.
pub(crate) fn verify(seed_base32: &str, code: &str, unix_time: u64) -> bool {
    let Ok(key) = decode_seed(seed_base32) else {
        return false;
    };
    let code = code.trim();
    if code.len() != DIGITS as usize {
        return false;
    }
    let counter = unix_time / STEP_SECS;
    [
        counter.saturating_sub(1),
        counter,
        counter.saturating_add(1),
    ]
    .iter()
    .any(|c| code_for_counter(&key, *c) == code)
}

fn code_for_counter(key: &[u8], counter: u64) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// base32("12345678901234567890"), the RFC 6238 SHA-1 test key.
    const RFC_SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn matches_rfc_6238_vectors_truncated_to_six_digits() {
        assert_eq!(totp_code(RFC_SEED, 59).unwrap(), "287082");
        assert_eq!(totp_code(RFC_SEED, 1_111_111_109).unwrap(), "081804");
        assert_eq!(totp_code(RFC_SEED, 1_234_567_890).unwrap(), "005924");
        assert_eq!(totp_code(RFC_SEED, 2_000_000_000).unwrap(), "279037");
    }

    #[test]
    fn seed_tolerates_case_spaces_and_padding() {
        let lower = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq";
        assert_eq!(totp_code(lower, 59).unwrap(), "287082");
        assert_eq!(totp_code("JBSWY3DPEHPK3PXP", 0).unwrap().len(), 6);
        assert_eq!(totp_code("not base32!", 0), Err(InvalidSeed));
        assert_eq!(totp_code("", 0), Err(InvalidSeed));
    }

    #[test]
    fn verify_accepts_one_step_of_skew_only() {
        let now = 1_700_000_000;
        let code = totp_code(RFC_SEED, now).unwrap();
        assert!(verify(RFC_SEED, &code, now));
        assert!(verify(RFC_SEED, &code, now + 30));
        assert!(verify(RFC_SEED, &code, now - 30));
        assert!(!verify(RFC_SEED, &code, now + 90));
        assert!(!verify(RFC_SEED, "12345", now));
    }
}
