//! Classic OAuth scopes as GHES knows them: which names exist, which imply which, and how a
//! requested list is normalized before it is stored (sorted, de-duplicated, implied scopes dropped).

use std::collections::BTreeSet;

/// Every classic scope GHES accepts, with the scopes each one directly implies.
const SCOPES: &[(&str, &[&str])] = &[
    (
        "repo",
        &[
            "repo:status",
            "repo_deployment",
            "public_repo",
            "repo:invite",
            "security_events",
        ],
    ),
    ("repo:status", &[]),
    ("repo_deployment", &[]),
    ("public_repo", &[]),
    ("repo:invite", &[]),
    ("security_events", &[]),
    ("admin:repo_hook", &["write:repo_hook"]),
    ("write:repo_hook", &["read:repo_hook"]),
    ("read:repo_hook", &[]),
    ("admin:org", &["write:org"]),
    ("write:org", &["read:org"]),
    ("read:org", &[]),
    ("manage_runners:org", &[]),
    ("admin:public_key", &["write:public_key"]),
    ("write:public_key", &["read:public_key"]),
    ("read:public_key", &[]),
    ("admin:org_hook", &[]),
    ("gist", &[]),
    ("notifications", &[]),
    ("user", &["read:user", "user:email", "user:follow"]),
    ("read:user", &[]),
    ("user:email", &[]),
    ("user:follow", &[]),
    ("project", &["read:project"]),
    ("read:project", &[]),
    ("delete_repo", &[]),
    ("write:packages", &["read:packages"]),
    ("read:packages", &[]),
    ("delete:packages", &[]),
    ("admin:gpg_key", &["write:gpg_key"]),
    ("write:gpg_key", &["read:gpg_key"]),
    ("read:gpg_key", &[]),
    ("admin:ssh_signing_key", &["write:ssh_signing_key"]),
    ("write:ssh_signing_key", &["read:ssh_signing_key"]),
    ("read:ssh_signing_key", &[]),
    ("codespace", &["codespace:secrets"]),
    ("codespace:secrets", &[]),
    ("workflow", &[]),
    ("write:discussion", &["read:discussion"]),
    ("read:discussion", &[]),
    (
        "admin:enterprise",
        &[
            "manage_runners:enterprise",
            "manage_billing:enterprise",
            "read:enterprise",
        ],
    ),
    ("manage_runners:enterprise", &[]),
    ("manage_billing:enterprise", &[]),
    ("read:enterprise", &[]),
    ("scim:enterprise", &[]),
    ("audit_log", &["read:audit_log"]),
    ("read:audit_log", &[]),
    ("copilot", &[]),
    ("manage_billing:copilot", &[]),
    ("site_admin", &[]),
    ("devtools", &[]),
    ("admin:pre_receive_hook", &[]),
];

/// Whether GHES knows the scope name.
pub(crate) fn is_known(scope: &str) -> bool {
    SCOPES.iter().any(|(name, _)| *name == scope)
}

/// The names in `requested` that GHES does not know, in request order.
pub(crate) fn unknown(requested: &[String]) -> Vec<&str> {
    requested
        .iter()
        .map(String::as_str)
        .filter(|s| !is_known(s))
        .collect()
}

/// Whether `broader` implies `narrower`, directly or through a chain (`admin:org` ⇒ `read:org`).
fn implies(broader: &str, narrower: &str) -> bool {
    let direct = SCOPES
        .iter()
        .find(|(name, _)| *name == broader)
        .map(|(_, implied)| *implied)
        .unwrap_or_default();
    direct
        .iter()
        .any(|next| *next == narrower || implies(next, narrower))
}

/// Sorts and de-duplicates `requested` and drops every scope implied by another one in the list.
pub(crate) fn normalize<S: AsRef<str>>(requested: &[S]) -> Vec<String> {
    let unique: BTreeSet<&str> = requested.iter().map(AsRef::as_ref).collect();
    unique
        .iter()
        .filter(|scope| !unique.iter().any(|other| implies(other, scope)))
        .map(|s| (*s).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(scopes: &[&str]) -> Vec<String> {
        normalize(scopes)
    }

    #[test]
    fn sorts_and_removes_duplicates() {
        assert_eq!(
            norm(&["gist", "delete_repo", "gist"]),
            ["delete_repo", "gist"]
        );
        assert!(norm(&[]).is_empty());
    }

    #[test]
    fn drops_scopes_implied_by_another_requested_one() {
        assert_eq!(
            norm(&[
                "public_repo",
                "repo",
                "repo:status",
                "security_events",
                "workflow"
            ]),
            ["repo", "workflow"]
        );
        assert_eq!(norm(&["user:email", "user"]), ["user"]);
        assert_eq!(
            norm(&["write:packages", "read:packages"]),
            ["write:packages"]
        );
        assert_eq!(norm(&["project", "read:project"]), ["project"]);
        assert_eq!(norm(&["audit_log", "read:audit_log"]), ["audit_log"]);
    }

    #[test]
    fn implication_is_transitive() {
        assert_eq!(norm(&["read:org", "admin:org", "write:org"]), ["admin:org"]);
        assert_eq!(norm(&["read:gpg_key", "admin:gpg_key"]), ["admin:gpg_key"]);
        assert_eq!(
            norm(&["read:repo_hook", "admin:repo_hook"]),
            ["admin:repo_hook"]
        );
        assert_eq!(norm(&["read:org", "write:org"]), ["write:org"]);
    }

    #[test]
    fn narrower_scopes_alone_are_kept() {
        assert_eq!(
            norm(&["read:org", "public_repo"]),
            ["public_repo", "read:org"]
        );
    }

    #[test]
    fn knows_the_ghes_classic_scope_list() {
        for scope in [
            "workflow",
            "gist",
            "notifications",
            "delete_repo",
            "admin:enterprise",
            "site_admin",
            "codespace",
            "read:public_key",
            "admin:org_hook",
        ] {
            assert!(is_known(scope), "{scope}");
        }
        let requested = vec!["repo".to_owned(), "rep".to_owned(), "".to_owned()];
        assert_eq!(unknown(&requested), ["rep", ""]);
    }
}
