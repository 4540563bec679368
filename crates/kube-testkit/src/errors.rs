//! Errors: the testkit's own [`Error`] (setting the server up), and the API errors it answers
//! with, rendered as real `Status` objects in the API server's wording (`ApiError`, `FieldError`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Why the test API server could not be started, served or connected to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server only binds loopback addresses.
    #[error("the test API server binds loopback addresses only, not {0}")]
    NotLoopback(std::net::SocketAddr),
    /// Binding or serving the listener failed.
    #[error("serving the test API server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The generated kubeconfig could not be written or read back.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// Building a `kube::Client` failed.
    #[error("kube client: {0}")]
    Client(#[from] kube::Error),
}

/// The kinds of field error the API server reports (apimachinery's `field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldErrorType {
    Required,
    Duplicate,
    Invalid,
    TypeInvalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
}

impl FieldErrorType {
    /// The `reason` of the `StatusCause`.
    fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
        }
    }

    /// The words the message starts with.
    fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
        }
    }
}

/// One field error of a 422 `Invalid` answer, like apimachinery's `field.Error`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldError {
    pub field: String,
    pub kind: FieldErrorType,
    /// The bad value shown in the message (`None`: not shown).
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorType::Required, None, detail)
    }

    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorType::Invalid, Some(value), detail)
    }

    pub fn type_invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorType::TypeInvalid, Some(value), detail)
    }

    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        Self::new(field, FieldErrorType::Duplicate, Some(value), "")
    }

    pub fn not_supported(field: impl Into<String>, value: Value, supported: &[String]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(field, FieldErrorType::NotSupported, Some(value), detail)
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorType::Forbidden, None, detail)
    }

    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::new(
            field,
            FieldErrorType::TooLong,
            None,
            format!("may not be more than {max} {unit}"),
        )
    }

    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        Self::new(
            field,
            FieldErrorType::TooMany,
            Some(json!(actual)),
            format!("must have at most {max} items"),
        )
    }

    /// `field is immutable`, as `ValidateImmutableField` says it.
    pub fn immutable(field: impl Into<String>, value: Value) -> Self {
        Self::invalid(field, value, "field is immutable")
    }

    fn new(
        field: impl Into<String>,
        kind: FieldErrorType,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// The message without the field (`ErrorBody` in apimachinery).
    pub fn body(&self) -> String {
        let mut body = match (&self.kind, &self.value) {
            (FieldErrorType::Required | FieldErrorType::Forbidden | FieldErrorType::TooLong, _)
            | (_, None) => self.kind.label().to_owned(),
            (_, Some(value)) => format!("{}: {}", self.kind.label(), render_value(value)),
        };
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }

    /// The full message: `spec.x: Invalid value: …`.
    pub fn message(&self) -> String {
        if self.field.is_empty() {
            self.body()
        } else {
            format!("{}: {}", self.field, self.body())
        }
    }
}

/// A value as apimachinery prints it: strings quoted, numbers and booleans plain, `null`, and
/// anything else as JSON (Go prints its own struct syntax there).
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// Go's `%q` for the strings that occur here (JSON string escaping is the same for them).
pub(crate) fn go_quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// An API error answered as a `Status` object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Map<String, Value>>,
    pub retry_after: Option<u32>,
}

/// A group and resource (`secrets`, `authorizations.oauth.ghes.io`) as errors name them.
#[derive(Clone, Debug)]
pub(crate) struct GroupResource<'a> {
    pub group: &'a str,
    pub resource: &'a str,
}

impl std::fmt::Display for GroupResource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

impl GroupResource<'_> {
    fn details(&self, name: &str) -> Map<String, Value> {
        let mut details = Map::new();
        if !name.is_empty() {
            details.insert("name".into(), json!(name));
        }
        if !self.group.is_empty() {
            details.insert("group".into(), json!(self.group));
        }
        details.insert("kind".into(), json!(self.resource));
        details
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, details: Map<String, Value>) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a cause to the details.
    pub fn with_cause(mut self, reason: &str, message: &str, field: &str) -> Self {
        let details = self.details.get_or_insert_with(Map::new);
        let causes = details.entry("causes").or_insert_with(|| json!([]));
        if let Some(causes) = causes.as_array_mut() {
            let mut cause = Map::new();
            cause.insert("reason".into(), json!(reason));
            cause.insert("message".into(), json!(message));
            if !field.is_empty() {
                cause.insert("field".into(), json!(field));
            }
            causes.push(Value::Object(cause));
        }
        self
    }

    /// 404 `NotFound`: `secrets "x" not found`.
    pub fn not_found(gr: &GroupResource<'_>, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{gr} {} not found", go_quote(name)),
        )
        .with_details(gr.details(name))
    }

    /// 404 for a path the server does not serve.
    pub fn no_such_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(Map::new())
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(gr: &GroupResource<'_>, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{gr} {} already exists", go_quote(name)),
        )
        .with_details(gr.details(name))
    }

    /// 409 `Conflict`: `Operation cannot be fulfilled on secrets "x": <why>`.
    pub fn conflict(gr: &GroupResource<'_>, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {gr} {}: {why}",
                go_quote(name)
            ),
        )
        .with_details(gr.details(name))
    }

    /// The conflict of an update whose `resourceVersion` is not the stored one.
    pub fn stale(gr: &GroupResource<'_>, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `Invalid`: `Kind.group "x" is invalid: <errors>`.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let listed = match errors {
            [one] => one.message(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(FieldError::message)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut details = Map::new();
        if !name.is_empty() {
            details.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            details.insert("group".into(), json!(group));
        }
        details.insert("kind".into(), json!(kind));
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.kind.reason(), "message": e.body(), "field": e.field}))
            .collect();
        details.insert("causes".into(), Value::Array(causes));
        Self::new(
            422,
            "Invalid",
            format!("{qualified} {} is invalid: {listed}", go_quote(name)),
        )
        .with_details(details)
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 403 `Forbidden`: `secrets "x" is forbidden: <why>`.
    pub fn forbidden(gr: &GroupResource<'_>, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{gr} {} is forbidden: {why}", go_quote(name)),
        )
        .with_details(gr.details(name))
    }

    /// 403 `Forbidden` from RBAC: `User "x" cannot list resource "secrets" in API group ""
    /// in the namespace "y"`, as the API server's authorizer words it.
    pub fn rbac_forbidden(
        gr: &GroupResource<'_>,
        name: Option<&str>,
        verb: &str,
        user: &str,
        namespace: Option<&str>,
    ) -> Self {
        let subject = match name {
            Some(name) => format!("{gr} {}", go_quote(name)),
            None => gr.to_string(),
        };
        let scope = match namespace {
            Some(namespace) => format!("in the namespace {}", go_quote(namespace)),
            None => "at the cluster scope".to_owned(),
        };
        Self::new(
            403,
            "Forbidden",
            format!(
                "{subject} is forbidden: User {} cannot {verb} resource {} in API group {} {scope}",
                go_quote(user),
                go_quote(gr.resource),
                go_quote(gr.group),
            ),
        )
        .with_details(gr.details(name.unwrap_or_default()))
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_supported(gr: &GroupResource<'_>, action: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "{action} is not supported on resources of kind {}",
                go_quote(&gr.to_string())
            ),
        )
        .with_details(gr.details(""))
    }

    /// 410 `Expired`.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(Map::new())
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_cause("", &message.to_string(), "")
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// A 422 from applying a JSON patch, as `NewGenericServerResponse` words it.
    pub fn patch_failed(message: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        )
        .with_details(Map::new())
        .with_cause("UnexpectedServerResponse", message, "")
    }

    /// An injected fault: a `Status` with `code` and the reason the API server uses for it.
    pub fn injected(code: u16) -> Self {
        let (reason, message) = match code {
            400 => (
                "BadRequest",
                "the server rejected our request for an unknown reason",
            ),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "forbidden by an injected fault"),
            404 => (
                "NotFound",
                "the server could not find the requested resource",
            ),
            405 => (
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
            409 => ("Conflict", "the server reported a conflict"),
            410 => ("Expired", "the resource version is too old"),
            422 => (
                "Invalid",
                "the server rejected our request due to an error in our request",
            ),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            500 => (
                "InternalError",
                "an error on the server (\"injected fault\") has prevented the request from succeeding",
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request",
            ),
            _ => ("", "the server responded with an injected fault"),
        };
        let mut error = Self::new(code, reason, message).with_details(Map::new());
        if matches!(code, 429 | 503 | 504) {
            error.retry_after = Some(1);
        }
        error
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            let mut details = details.clone();
            if let Some(retry) = self.retry_after {
                details.insert("retryAfterSeconds".into(), json!(retry));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.status().to_string(),
        )
            .into_response();
        if let Some(retry) = self.retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&retry.to_string())
        {
            response.headers_mut().insert("Retry-After", value);
        }
        response
    }
}

/// The result of the server's operations.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_error_reads_like_the_api_server() {
        let e = FieldError::not_supported(
            "spec.deletionPolicy",
            json!("Later"),
            &["Delete".into(), "Orphan".into()],
        );
        let err = ApiError::invalid("Authorization", "oauth.ghes.io", "x", &[e]);
        assert_eq!(
            err.message,
            "Authorization.oauth.ghes.io \"x\" is invalid: spec.deletionPolicy: Unsupported value: \"Later\": supported values: \"Delete\", \"Orphan\""
        );
        assert_eq!(
            err.status()["details"]["causes"][0]["field"],
            "spec.deletionPolicy"
        );
    }

    #[test]
    fn several_errors_are_bracketed() {
        let errs = [
            FieldError::required("spec.accountRef", ""),
            FieldError::too_long("spec.note", 255),
        ];
        let err = ApiError::invalid("Authorization", "oauth.ghes.io", "x", &errs);
        assert!(err.message.ends_with(
            "is invalid: [spec.accountRef: Required value, spec.note: Too long: may not be more than 255 bytes]"
        ));
    }

    #[test]
    fn not_found_names_the_group_resource() {
        let gr = GroupResource {
            group: "",
            resource: "namespaces",
        };
        assert_eq!(
            ApiError::not_found(&gr, "x").message,
            "namespaces \"x\" not found"
        );
    }
}
