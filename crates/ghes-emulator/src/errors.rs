//! The error answers of the emulated API, with GitHub's status codes, messages and body shapes
//! (`basic-error` and `validation-error`), and the JSON response helper every route uses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Where GHES 3.22 error bodies point.
pub(crate) const DOCUMENTATION_URL: &str = "https://docs.github.com/enterprise-server@3.22/rest";

/// `Content-Type` of every JSON answer, as GitHub sends it.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The resource name GitHub reports in validation errors of this API.
pub(crate) const RESOURCE: &str = "OauthAccess";

/// One entry of a `validation-error` body's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FieldError {
    pub(crate) resource: &'static str,
    pub(crate) code: &'static str,
    pub(crate) field: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

impl FieldError {
    /// `{"resource":"OauthAccess","code":code,"field":field}`.
    pub(crate) fn new(field: &'static str, code: &'static str) -> Self {
        Self {
            resource: RESOURCE,
            code,
            field,
            message: None,
        }
    }

    /// The same with a human-readable `message`.
    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

/// An error answer of the emulated API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 401: no `Authorization` header.
    RequiresAuthentication,
    /// 401: unknown login, wrong password or a scheme other than Basic.
    BadCredentials,
    /// 401 with `X-GitHub-OTP: required; app`: two-factor code missing or wrong.
    OtpRequired,
    /// 403: the user failed to log in too many times in a row.
    LoginAttemptsExceeded,
    /// 404.
    NotFound,
    /// 410: the API is disabled on this server.
    Gone,
    /// 400: the body is not JSON.
    ProblemsParsingJson,
    /// 422 with a schema complaint (`Invalid request.\n\n...`).
    InvalidRequest(String),
    /// 422 `Validation Failed` with its field errors.
    ValidationFailed(Vec<FieldError>),
}

impl ApiError {
    /// A 422 with one field error.
    pub(crate) fn invalid(field: &'static str, code: &'static str) -> Self {
        Self::ValidationFailed(vec![FieldError::new(field, code)])
    }

    /// The HTTP status of this answer.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::RequiresAuthentication | Self::BadCredentials | Self::OtpRequired => {
                StatusCode::UNAUTHORIZED
            }
            Self::LoginAttemptsExceeded => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Gone => StatusCode::GONE,
            Self::ProblemsParsingJson => StatusCode::BAD_REQUEST,
            Self::InvalidRequest(_) | Self::ValidationFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The `message` of the body.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::RequiresAuthentication => "Requires authentication".into(),
            Self::BadCredentials => "Bad credentials".into(),
            Self::OtpRequired => "Must specify two-factor authentication OTP code.".into(),
            Self::LoginAttemptsExceeded => {
                "Maximum number of login attempts exceeded. Please try again later.".into()
            }
            Self::NotFound => "Not Found".into(),
            Self::Gone => "The OAuth Authorizations API has been disabled on this server.".into(),
            Self::ProblemsParsingJson => "Problems parsing JSON".into(),
            Self::InvalidRequest(detail) => format!("Invalid request.\n\n{detail}"),
            Self::ValidationFailed(_) => "Validation Failed".into(),
        }
    }

    /// The field errors of a 422 `Validation Failed`, empty otherwise.
    pub(crate) fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::ValidationFailed(errors) => errors,
            _ => &[],
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    documentation_url: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            message: self.message(),
            errors: self.field_errors(),
            documentation_url: DOCUMENTATION_URL,
        };
        let mut response = json(self.status(), &body);
        if self == Self::OtpRequired {
            response
                .headers_mut()
                .insert("x-github-otp", HeaderValue::from_static("required; app"));
        }
        response
    }
}

/// A JSON answer with GitHub's `Content-Type`.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(JSON_CONTENT_TYPE),
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A JSON `{"message": ...}` answer, used by the test hooks and injected faults.
pub(crate) fn message(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "message": message }))
}
