//! The end-to-end run's record (see `tests/e2e/harness.rs`) and the one scan for secrets in it,
//! shared by each scenario's check and the whole-run check (`tests/e2e_record.rs`).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where the record is: `$E2E_RECORD_DIR`, else `target/tmp/e2e-record`.
pub fn record_dir() -> PathBuf {
    std::env::var_os("E2E_RECORD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-record"))
}

/// The shape of every token GHES (and the emulator) issues.
pub const TOKEN_PATTERN: &str = r"gh[opusr]_[A-Za-z0-9]{36}";

/// One pattern for the token shape and every secret value: a single pass over each file
/// (the record of a whole run is hundreds of megabytes).
pub fn finder(secrets: &BTreeSet<String>) -> regex::Regex {
    let mut alternatives = vec![TOKEN_PATTERN.to_owned()];
    alternatives.extend(secrets.iter().map(|secret| regex::escape(secret)));
    regex::RegexBuilder::new(&alternatives.join("|"))
        .size_limit(1 << 26)
        .build()
        .expect("the secrets pattern")
}

/// What `text` shows that it must not, redacted: `a token gho_…`, `a secret value abc…`.
pub fn leaks(text: &str, finder: &regex::Regex) -> Vec<String> {
    let token = regex::Regex::new(&format!("^{TOKEN_PATTERN}$")).expect("token pattern");
    finder
        .find_iter(text)
        .map(|m| {
            let found = m.as_str();
            let shown: String = found
                .chars()
                .take(if token.is_match(found) { 4 } else { 3 })
                .collect();
            if token.is_match(found) {
                format!("a token {shown}…")
            } else {
                format!("a secret value {shown}…")
            }
        })
        .collect()
}
