//! The classic OAuth scopes GHES knows. An Authorization naming anything else is refused before
//! any GHES call (`InvalidSpec`, naming `spec.scopes[i]`): a typo such as `repoo` would otherwise
//! reach GHES as a 422 — or, for a scope GHES silently ignores, a token without the access the
//! team expects.

/// Every classic scope of GitHub Enterprise Server 3.x, as its documentation lists them.
pub const KNOWN_SCOPES: &[&str] = &[
    "repo",
    "repo:status",
    "repo_deployment",
    "public_repo",
    "repo:invite",
    "security_events",
    "admin:repo_hook",
    "write:repo_hook",
    "read:repo_hook",
    "admin:org",
    "write:org",
    "read:org",
    "manage_runners:org",
    "admin:public_key",
    "write:public_key",
    "read:public_key",
    "admin:org_hook",
    "gist",
    "notifications",
    "user",
    "read:user",
    "user:email",
    "user:follow",
    "project",
    "read:project",
    "delete_repo",
    "write:packages",
    "read:packages",
    "delete:packages",
    "admin:gpg_key",
    "write:gpg_key",
    "read:gpg_key",
    "admin:ssh_signing_key",
    "write:ssh_signing_key",
    "read:ssh_signing_key",
    "workflow",
    "codespace",
    "admin:enterprise",
    "manage_runners:enterprise",
    "manage_billing:enterprise",
    "read:enterprise",
    "audit_log",
    "read:audit_log",
    "site_admin",
    "devtools",
    "admin:pre_receive_hook",
    "codespace:secrets",
    "copilot",
    "manage_billing:copilot",
    "read:discussion",
    "write:discussion",
    "scim:enterprise",
];

/// The first scope of `scopes` GHES does not know, with its index.
pub fn first_unknown(scopes: &[String]) -> Option<(usize, &str)> {
    scopes
        .iter()
        .enumerate()
        .find(|(_, scope)| !KNOWN_SCOPES.contains(&scope.as_str()))
        .map(|(index, scope)| (index, scope.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_found_with_its_index() {
        let scopes: Vec<String> = ["repo", "read:org", "repoo"].map(String::from).to_vec();
        assert_eq!(first_unknown(&scopes), Some((2, "repoo")));
        assert_eq!(first_unknown(&scopes[..2]), None);
    }
}
