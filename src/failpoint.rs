//! Named crash points. A build with the `failpoints` feature (the test suite's) aborts the
//! process when it reaches a step named in the `FAILPOINTS` environment variable
//! (comma-separated), as a crash or an OOM kill would at that instant; the end-to-end suite
//! restarts the binary after each and checks that nothing leaked. Without the feature every
//! point compiles to nothing and the variable is ignored.

/// Every crash point with the instant it stands for. The README's list is generated from it.
pub const POINTS: &[(&str, &str)] = &[
    (
        "issue.intent-recorded",
        "a personal token's fingerprint is recorded in status; GHES has not been asked",
    ),
    (
        "issue.created",
        "GHES created the token (POST, or PUT get-or-create); no Secret holds it yet",
    ),
    (
        "secret.written",
        "the Secret holds the new token; status does not name it yet",
    ),
    (
        "reissue.revoked",
        "a lost token was revoked; its replacement is not created yet",
    ),
    (
        "rotate.recorded",
        "a rotation is recorded in status (the current token moved to previous); GHES has not \
         been asked for the new one",
    ),
    (
        "rotate.switched",
        "a rotation's new token is in the Secret and the previous token's grace period set; \
         status does not record either yet",
    ),
    (
        "rotate.revoked",
        "a rotation's previous token is revoked after its grace period; status still names it",
    ),
    (
        "update.patched",
        "GHES applied a scope change; status does not record it yet",
    ),
    (
        "delete.revoked",
        "a deleted resource's token is revoked; the finalizer is still on",
    ),
    (
        "prune.deleted",
        "a prune run deleted a token; the Account's status does not count it yet",
    ),
];

/// Aborts the process if `FAILPOINTS` names `name` (with the `failpoints` feature only).
#[cfg(feature = "failpoints")]
pub fn hit(name: &'static str) {
    use std::sync::OnceLock;
    static ACTIVE: OnceLock<Vec<String>> = OnceLock::new();
    debug_assert!(
        POINTS.iter().any(|(point, _)| *point == name),
        "unknown failpoint {name}"
    );
    let active = ACTIVE.get_or_init(|| {
        std::env::var("FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .map(|point| point.trim().to_owned())
            .filter(|point| !point.is_empty())
            .collect()
    });
    if active.iter().any(|point| point == name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting the process");
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}

/// Does nothing: this build has no failpoints.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &'static str) {}
