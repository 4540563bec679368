//! The whole end-to-end run, checked as one: `scripts/test` runs this after the suite (it is
//! `#[ignore]`d so that a plain `cargo test` does not run it before the record exists).
//!
//! - No token (by its shape) and no secret value any scenario handled appears in any operator
//!   log line (debug level, plain and JSON, panics included: they go to the same stderr), any
//!   Event or any object's status of the whole run.
//! - The permissions the operator used over the whole run — by its requests and by the admission
//!   checks of its writes, as the test server recorded them — are exactly the operator's RBAC
//!   table (`controller::rbac`, which `scripts/chart-check` proves the chart's rendered Roles
//!   grant): nothing more (the test server refuses it anyway), nothing less (a permission the
//!   chart grants but the operator never needs is a defect of least privilege).

use std::collections::BTreeSet;
use std::path::PathBuf;

#[path = "support/record.rs"]
mod record;
use record::record_dir;

/// Files of the record other than the secrets lists.
fn record_files() -> Vec<PathBuf> {
    let dir = record_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|error| {
        panic!(
            "no e2e record in {} ({error}): run the end-to-end suite first (scripts/test does)",
            dir.display()
        )
    });
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect()
}

#[test]
#[ignore = "run by scripts/test after the end-to-end suite"]
fn no_secret_anywhere_in_the_whole_run() {
    let mut secrets = BTreeSet::new();
    for entry in std::fs::read_dir(record_dir().join("secrets"))
        .expect("the secrets lists")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).expect("a secrets list");
        secrets.extend(text.lines().filter(|l| l.len() >= 6).map(str::to_owned));
    }
    let files = record_files();
    let logs = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".log"))
        .count();
    let json_logs = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".log"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|text| text.lines().next().is_some_and(|l| l.starts_with('{')))
        })
        .count();
    assert!(logs >= 20, "only {logs} operator logs in the record");
    assert!(
        json_logs >= 5,
        "only {json_logs} JSON operator logs in the record"
    );
    let finder = record::finder(&secrets);
    let mut found = Vec::new();
    let mut bytes = 0usize;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        bytes += text.len();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        found.extend(
            record::leaks(&text, &finder)
                .into_iter()
                .map(|leak| format!("{name}: {leak}")),
        );
        // Logs go to files and container runtimes, not terminals: no colour codes.
        if name.ends_with(".log") && text.contains('\u{1b}') {
            found.push(format!(
                "{name}: ANSI escape codes in a log that is not a terminal"
            ));
        }
    }
    eprintln!(
        "checked {} files ({bytes} bytes, {logs} operator logs of which {json_logs} JSON) for \
         {} secret values and the token pattern",
        files.len(),
        secrets.len()
    );
    assert!(
        found.is_empty(),
        "secrets in the record:\n{}",
        found.join("\n")
    );
}

#[test]
#[ignore = "run by scripts/test after the end-to-end suite"]
fn the_operator_used_exactly_its_rbac() {
    let mut used = BTreeSet::new();
    for path in record_files() {
        if path.to_string_lossy().ends_with("-permissions-used.txt") {
            let text = std::fs::read_to_string(&path).expect("a permissions list");
            used.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        }
    }
    let granted: BTreeSet<String> = ghes_oauth_operator::controller::rbac::all_rules()
        .flat_map(|rule| {
            rule.api_groups.iter().flat_map(move |group| {
                rule.resources.iter().flat_map(move |resource| {
                    rule.verbs
                        .iter()
                        .map(move |verb| format!("{group} {resource} {verb}"))
                })
            })
        })
        .collect();
    let beyond: Vec<&String> = used.difference(&granted).collect();
    let unused: Vec<&String> = granted.difference(&used).collect();
    eprintln!("the operator used {} permissions: {used:?}", used.len());
    assert!(
        beyond.is_empty() && unused.is_empty(),
        "used beyond the RBAC table: {beyond:?}; granted but never used in the whole run: {unused:?}"
    );
}

#[test]
fn the_scan_finds_tokens_and_secrets_and_shows_neither() {
    let secrets = BTreeSet::from(["hunter2-password".to_owned()]);
    let finder = record::finder(&secrets);
    let text = "login ok\ntoken=gho_0123456789abcdefghijABCDEFGHIJ012345 pw=hunter2-password\n";
    assert_eq!(
        record::leaks(text, &finder),
        ["a token gho_…", "a secret value hun…"]
    );
    assert!(record::leaks("nothing to see; gho_short", &finder).is_empty());
}
