//! Errors of the reconcilers. Each carries a `reason` (a bounded CamelCase set used in
//! conditions, Events and metric labels) and says whether it is a configuration problem — which
//! waits for the user to change something — or transient, which backs off and retries.

use crate::ghes::GhesError;

/// Everything a reconcile can fail with. Messages tell the user what to fix and never contain a
/// secret value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The referenced Account or ClusterAccount does not exist.
    #[error("spec.accountRef: {kind} {name:?} not found{}", in_namespace(.namespace))]
    AccountNotFound {
        /// `Account` or `ClusterAccount`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// Where it was looked for (Accounts only).
        namespace: Option<String>,
    },
    /// A ClusterAccount that does not allow the Authorization's namespace.
    #[error(
        "spec.accountRef: ClusterAccount {name:?} does not allow namespace {namespace:?}: {detail}"
    )]
    NamespaceNotAllowed {
        /// The ClusterAccount.
        name: String,
        /// The Authorization's namespace.
        namespace: String,
        /// Why (no allowedNamespaces, selector does not match, bad selector).
        detail: String,
    },
    /// The account exists but cannot be used (credentials refused, two-factor, ...).
    #[error("spec.accountRef: {kind} {name:?} is not ready ({reason}): {message}")]
    AccountNotReady {
        /// `Account` or `ClusterAccount`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The account's own reason.
        reason: &'static str,
        /// The account's own message.
        message: String,
    },
    /// The account is being deleted: it issues no new token.
    #[error(
        "spec.accountRef: {account} is being deleted; it issues no new token (it goes once its \
         Authorizations have revoked theirs)"
    )]
    AccountDeleting {
        /// The account.
        account: String,
    },
    /// GHES refused these very credentials before: they are not sent again.
    #[error(
        "spec.credentialsSecretRef: GHES refused these credentials ({reason}); they are not sent \
         again until the API root, username, password or two-factor seed in the credentials \
         Secret changes"
    )]
    CredentialsRefused {
        /// What GHES answered then.
        reason: String,
    },
    /// GHES refused this very request for this generation a moment ago: it is not sent again
    /// on every event, only after a change of the spec or at the periodic re-check.
    #[error("{message}")]
    RefusedBefore {
        /// The reason of the refusal.
        reason: &'static str,
        /// Its message, as it was.
        message: String,
    },
    /// The operator's watch of these resources has not listed yet (it is retried).
    #[error("the operator's watch of {0} has not listed them yet; retrying")]
    CacheNotSynced(&'static str),
    /// The ConfigMap or key that spec.caBundleRef names is missing or holds no certificate.
    #[error("spec.caBundleRef: {0}")]
    CaBundleNotFound(String),
    /// spec.server or spec.apiUrl is unusable or unsafe: no request is made.
    #[error("spec.server/spec.apiUrl: {0}")]
    InvalidServerUrl(String),
    /// A Secret or key the spec points to is missing or unusable.
    #[error("{0}")]
    MissingSecret(MissingSecret),
    /// The spec is not usable (what the schema could not refuse).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The authorization an Observe Authorization names does not exist.
    #[error("{field}: {what} does not exist for GHES user {login:?}")]
    ObservedNotFound {
        /// The spec field that names it.
        field: &'static str,
        /// What was looked for.
        what: String,
        /// The account's login.
        login: String,
    },
    /// spec.secret.template cannot be rendered.
    #[error("{0}")]
    SecretTemplate(#[from] super::template::TemplateError),
    /// The Secret to write exists and belongs to something else: it is never adopted.
    #[error(
        "Secret {name:?} already exists and is not owned by this Authorization; \
         delete it or set spec.secret.name to another name"
    )]
    SecretConflict {
        /// The Secret's name.
        name: String,
    },
    /// GHES refused or failed a call.
    #[error("{0}")]
    Ghes(#[from] GhesError),
    /// A GHES call whose outcome is unknown; the next reconcile looks the result up.
    #[error(
        "GHES may have created the token, but its answer was lost: {0}; it will be found by fingerprint and replaced"
    )]
    OutcomeUnknown(GhesError),
    /// The Kubernetes API failed a call.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// A missing Secret or key, with the names a user needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum MissingSecret {
    /// The Secret does not exist.
    #[error("{}: {role} Secret {namespace}/{name} not found", field_of(role))]
    Secret {
        /// What the Secret is for (e.g. "credentials", "client secret").
        role: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The Secret exists but lacks the key, or the value is empty or not UTF-8.
    #[error(
        "{}: {role} Secret {namespace}/{name} has no usable key {key:?}{detail}",
        field_of(role)
    )]
    Key {
        /// What the Secret is for.
        role: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
        /// Extra detail (never the value).
        detail: String,
    },
}

/// The spec field that names a Secret of `role`.
fn field_of(role: &str) -> &'static str {
    match role {
        ROLE_CREDENTIALS => "spec.credentialsSecretRef",
        ROLE_CLIENT_SECRET => "spec.app.clientSecretRef",
        ROLE_CA_BUNDLE => "spec.caBundleRef",
        _ => "spec",
    }
}

fn in_namespace(namespace: &Option<String>) -> String {
    namespace
        .as_ref()
        .map(|ns| format!(" in namespace {ns:?}"))
        .unwrap_or_default()
}

impl Error {
    /// The reason for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::AccountNotFound { .. } => "AccountNotFound",
            Self::NamespaceNotAllowed { .. } => "NamespaceNotAllowed",
            Self::AccountNotReady { .. } => "AccountNotReady",
            Self::AccountDeleting { .. } => "AccountDeleting",
            Self::CredentialsRefused { .. } => "CredentialsRefused",
            Self::RefusedBefore { reason, .. } => reason,
            Self::InvalidServerUrl(_) => "InvalidServerURL",
            Self::CaBundleNotFound(_) => "CABundleNotFound",
            Self::MissingSecret(MissingSecret::Secret { role, .. })
            | Self::MissingSecret(MissingSecret::Key { role, .. }) => match *role {
                ROLE_CREDENTIALS => "CredentialsNotFound",
                ROLE_CLIENT_SECRET => "ClientSecretNotFound",
                ROLE_CA_BUNDLE => "CABundleNotFound",
                _ => "SecretNotFound",
            },
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::SecretTemplate(_) => "SecretTemplateInvalid",
            Self::ObservedNotFound { .. } => "ObservedNotFound",
            Self::SecretConflict { .. } => "SecretConflict",
            Self::Ghes(error) => error.reason(),
            Self::OutcomeUnknown(_) => "OutcomeUnknown",
            Self::CacheNotSynced(_) => "KubernetesError",
            Self::Kube(_) => "KubernetesError",
        }
    }

    /// When GHES said to come back, for a rate limit: the requeue waits that long instead of
    /// backing off.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Ghes(
                crate::ghes::GhesError::RateLimited { retry_after }
                | crate::ghes::GhesError::Queued { retry_after },
            ) => Some(*retry_after),
            _ => None,
        }
    }

    /// For a request not sent because the account's GHES is unavailable: when to look again
    /// should the probe's recovery not wake the object first (shortly after the next probe).
    pub fn parked_for(&self) -> Option<std::time::Duration> {
        match self {
            Self::Ghes(crate::ghes::GhesError::Unavailable { next_probe, .. }) => {
                let until = next_probe.duration_since(jiff::Timestamp::now());
                Some(
                    std::time::Duration::try_from(until)
                        .unwrap_or_default()
                        .saturating_add(PARKED_SLACK),
                )
            }
            _ => None,
        }
    }

    /// The message for a condition: a rate limit says when the budget resets.
    pub fn condition_message(&self) -> String {
        match self.retry_after() {
            Some(wait) => {
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(
                        i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
                    ))
                    .map(|at| at.round(jiff::Unit::Second).unwrap_or(at).to_string())
                    .unwrap_or_else(|_| "an unknown time".into());
                format!(
                    "{self}; GHES's budget for this user resets at {at}, the operator retries then"
                )
            }
            None => self.to_string(),
        }
    }

    /// Whether only a change by the user can fix this: no hot retry, wait for a change.
    pub fn is_config(&self) -> bool {
        match self {
            Self::AccountNotFound { .. }
            | Self::NamespaceNotAllowed { .. }
            | Self::AccountNotReady { .. }
            | Self::AccountDeleting { .. }
            | Self::CredentialsRefused { .. }
            | Self::RefusedBefore { .. }
            | Self::InvalidServerUrl(_)
            | Self::CaBundleNotFound(_)
            | Self::MissingSecret(_)
            | Self::InvalidSpec(_)
            | Self::SecretTemplate(_)
            | Self::ObservedNotFound { .. }
            | Self::SecretConflict { .. } => true,
            Self::Ghes(error) => !error.is_transient(),
            Self::OutcomeUnknown(_) | Self::CacheNotSynced(_) | Self::Kube(_) => false,
        }
    }
}

/// How long after the next probe of an unavailable GHES its parked objects look again by
/// themselves; the probe's success wakes them before.
const PARKED_SLACK: std::time::Duration = std::time::Duration::from_secs(15);

/// Role of a credentials Secret in messages.
pub const ROLE_CREDENTIALS: &str = "credentials";
/// Role of an OAuth app's client-secret Secret in messages.
pub const ROLE_CLIENT_SECRET: &str = "client secret";
/// Role of a Secret holding a CA bundle (caBundleRef) in messages.
pub const ROLE_CA_BUNDLE: &str = "CA bundle";

/// Result alias of the controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_wait_for_a_change() {
        let missing = Error::MissingSecret(MissingSecret::Key {
            role: ROLE_CREDENTIALS,
            namespace: "team-a".into(),
            name: "ghes-bot".into(),
            key: "password".into(),
            detail: String::new(),
        });
        assert!(missing.is_config());
        assert_eq!(missing.reason(), "CredentialsNotFound");
        assert_eq!(
            missing.to_string(),
            "spec.credentialsSecretRef: credentials Secret team-a/ghes-bot has no usable key \"password\""
        );
        let transient = Error::Ghes(GhesError::Transient {
            status: Some(502),
            message: "bad gateway".into(),
            outcome_unknown: false,
        });
        assert!(!transient.is_config());
        let refused = Error::Ghes(GhesError::Validation {
            message: "Validation Failed".into(),
            errors: vec![],
        });
        assert!(refused.is_config());
    }
}
