//! Typed errors of the GHES client. Messages name what went wrong and never contain a token,
//! password or client secret: only status codes, GHES's own messages and field names.

use std::time::Duration;

use serde::Deserialize;

/// One entry of a 422 response's `errors` list.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FieldError {
    /// The resource GHES validated, e.g. `OauthAccess`.
    #[serde(default)]
    pub resource: Option<String>,
    /// The field at fault, e.g. `description` (GHES's name for a personal token's note).
    #[serde(default)]
    pub field: Option<String>,
    /// What is wrong: `already_exists`, `invalid`, `missing_field`, `custom`, ...
    pub code: String,
    /// A message, for `custom` codes.
    #[serde(default)]
    pub message: Option<String>,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = self.field.as_deref().unwrap_or("?");
        match &self.message {
            Some(message) => write!(f, "{field}: {} ({message})", self.code),
            None => write!(f, "{field}: {}", self.code),
        }
    }
}

/// Everything that can go wrong talking to GHES.
#[derive(Debug, thiserror::Error)]
pub enum GhesError {
    /// The account's configuration is unusable (server URL, CA bundle, TOTP seed...).
    #[error("invalid GHES client configuration: {0}")]
    Config(String),
    /// 401: the login or password is wrong. Never retried; the account stays unusable until its
    /// credentials change.
    #[error("GHES rejected the credentials (401): {message}")]
    InvalidCredentials {
        /// GHES's message.
        message: String,
    },
    /// 401 with `X-GitHub-OTP: required`: the account has two-factor authentication and no TOTP
    /// seed was given, or the generated code was refused.
    #[error("GHES requires a two-factor code ({method}){detail}")]
    OtpRequired {
        /// Delivery method GHES named (`app` or `sms`).
        method: String,
        /// Why the operator could not answer it.
        detail: String,
    },
    /// 403 that is not a rate limit: e.g. too many failed logins, or not permitted.
    #[error("GHES refused the request (403): {message}")]
    Forbidden {
        /// GHES's message.
        message: String,
    },
    /// 422: GHES validated the request and refused it.
    #[error("GHES refused the request as invalid (422): {message}{}", format_field_errors(.errors))]
    Validation {
        /// GHES's message, usually `Validation Failed`.
        message: String,
        /// The per-field errors.
        errors: Vec<FieldError>,
    },
    /// 400: GHES could not parse the request.
    #[error("GHES could not parse the request (400): {message}")]
    BadRequest {
        /// GHES's message.
        message: String,
    },
    /// 404: the object does not exist (or the endpoint is not available to this user).
    #[error("not found on GHES (404): {what}")]
    NotFound {
        /// What was asked for: method and path.
        what: String,
    },
    /// 410: the OAuth Authorizations API is disabled on this server.
    #[error("the OAuth Authorizations API is disabled on this GHES server (410): {message}")]
    ApiDisabled {
        /// GHES's message.
        message: String,
    },
    /// 403/429 rate limit that outlasted the retries or the longest wait the client accepts.
    #[error("GHES rate limit: retry in {}s", retry_after.as_secs())]
    RateLimited {
        /// How long GHES asked to wait.
        retry_after: Duration,
    },
    /// The account's own request budget (requestsPerSecond) is spoken for by the requests
    /// already waiting: this one comes back when its turn is due instead of holding a worker.
    #[error(
        "waiting its turn in the account's request budget (requestsPerSecond): retry in {}s",
        retry_after.as_secs()
    )]
    Queued {
        /// When its turn is due.
        retry_after: Duration,
    },
    /// 5xx, connection failure or timeout that outlasted the retries.
    #[error("transient GHES failure: {message}")]
    Transient {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// What happened.
        message: String,
        /// Whether GHES may have carried out the request although no answer arrived (a `POST`
        /// whose response was lost). The caller must then look the result up before trying again.
        outcome_unknown: bool,
    },
    /// A response the client could not understand.
    #[error("unexpected GHES response: {0}")]
    Protocol(String),
    /// The account's GHES stopped answering (no connection, timeouts, 5xx): the request was not
    /// sent. One probe per backoff step decides when it is back.
    #[error("GHES does not answer since {since}: {message}")]
    Unavailable {
        /// When the first failure was seen.
        since: jiff::Timestamp,
        /// The last failure.
        message: String,
        /// When the account probes the server next.
        next_probe: jiff::Timestamp,
    },
}

impl GhesError {
    /// A short CamelCase reason for conditions, Events and metric labels (a bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Config(_) => "InvalidAccountConfig",
            Self::InvalidCredentials { .. } => "InvalidCredentials",
            Self::OtpRequired { .. } => "OtpRequired",
            Self::Forbidden { .. } => "Forbidden",
            Self::Validation { .. } => "ValidationFailed",
            Self::BadRequest { .. } => "BadRequest",
            Self::NotFound { .. } => "NotFound",
            Self::ApiDisabled { .. } => "ApiDisabled",
            Self::RateLimited { .. } => "RateLimited",
            Self::Queued { .. } => "RequestBudget",
            Self::Transient { .. } => "GhesUnavailable",
            Self::Protocol(_) => "UnexpectedResponse",
            Self::Unavailable { .. } => "GhesUnavailable",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Queued { .. }
                | Self::Transient { .. }
                | Self::Unavailable { .. }
        )
    }

    /// Whether the credentials themselves are the problem: no further call may be made with them.
    pub fn is_credentials_problem(&self) -> bool {
        match self {
            Self::InvalidCredentials { .. } | Self::OtpRequired { .. } => true,
            Self::Forbidden { message } => is_login_lockout(message),
            _ => false,
        }
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether the failure is about the server, not the request: no connection, a timeout, a
    /// stalled body, a 5xx. Such a failure makes the account unavailable until a probe answers.
    pub fn is_server_failure(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Whether GHES may have created something although the call failed.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Self::Transient {
                outcome_unknown: true,
                ..
            }
        )
    }
}

/// Whether a 403 message is GHES's lock-out after too many failed logins.
pub(crate) fn is_login_lockout(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("maximum number of login attempts")
}

fn format_field_errors(errors: &[FieldError]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!(" [{}]", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_name_the_field_and_code() {
        let error = GhesError::Validation {
            message: "Validation Failed".into(),
            errors: vec![FieldError {
                resource: Some("OauthAccess".into()),
                field: Some("description".into()),
                code: "already_exists".into(),
                message: None,
            }],
        };
        assert_eq!(
            error.to_string(),
            "GHES refused the request as invalid (422): Validation Failed [description: already_exists]"
        );
        assert_eq!(error.reason(), "ValidationFailed");
        assert!(!error.is_transient());
    }

    #[test]
    fn lockout_is_a_credentials_problem() {
        let error = GhesError::Forbidden {
            message: "Maximum number of login attempts exceeded. Please try again later.".into(),
        };
        assert!(error.is_credentials_problem());
        assert!(
            !GhesError::Forbidden {
                message: "Must have admin rights".into()
            }
            .is_credentials_problem()
        );
    }
}
