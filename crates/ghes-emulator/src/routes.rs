//! The HTTP surface: the ten operations under `/api/v3`, GitHub's response headers and
//! conditional GETs, the middleware stack (request log → faults → headers → rate limit), and the
//! `/_emulator` hooks beside it.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};

use super::auth::{Credentials, OTP_HEADER};
use super::errors::{ApiError, json};
use super::store::{now, sha256_hex};
use super::{Emulator, authorization_routes as authz, grant_routes as grants, hooks};
use super::{faults, journal, ratelimit};

/// Largest response body the conditional-GET layer buffers.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The emulator's full router: the API under `/api/v3` and the hooks under `/_emulator`.
pub fn router(emulator: Emulator) -> Router {
    let api = Router::new()
        .route("/api/v3/applications/grants", get(grants::list))
        .route(
            "/api/v3/applications/grants/{grant_id}",
            get(grants::get).delete(grants::delete),
        )
        .route(
            "/api/v3/authorizations",
            get(authz::list).post(authz::create),
        )
        .route(
            "/api/v3/authorizations/clients/{client_id}",
            put(authz::get_or_create_for_app),
        )
        .route(
            "/api/v3/authorizations/clients/{client_id}/{fingerprint}",
            put(authz::get_or_create_for_app_and_fingerprint),
        )
        .route(
            "/api/v3/authorizations/{authorization_id}",
            get(authz::get).patch(authz::update).delete(authz::delete),
        )
        .route("/api/v3/{*rest}", any(not_found))
        .method_not_allowed_fallback(not_found)
        // Layers wrap what is above them: the last one added runs first.
        .layer(from_fn_with_state(emulator.clone(), ratelimit::enforce))
        .layer(from_fn(github_headers))
        .layer(from_fn_with_state(emulator.clone(), date_header))
        .layer(from_fn_with_state(emulator.clone(), faults::inject))
        .layer(from_fn_with_state(emulator.clone(), journal::record))
        .with_state(emulator.clone());
    Router::new()
        .merge(api)
        .merge(hooks::router(emulator))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The `Host` the client used (URLs in answers are built from it), or the listening address.
pub(crate) fn request_host(headers: &HeaderMap, emulator: &Emulator) -> String {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .map_or_else(|| emulator.default_host(), str::to_owned)
}

/// The non-empty value of query parameter `name`.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// A path id; anything that is not a positive integer is 404, as on GitHub.
pub(crate) fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ApiError::NotFound)
}

/// The authenticated caller of an API operation and the host it called.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user_id: u64,
    pub(crate) host: String,
}

impl FromRequestParts<Emulator> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, emulator: &Emulator) -> Result<Self, ApiError> {
        let credentials = Credentials::from_headers(&parts.headers);
        let otp = parts
            .headers
            .get(OTP_HEADER)
            .and_then(|value| value.to_str().ok());
        let user_id = emulator.store().authenticate(&credentials, otp, now())?;
        Ok(Self {
            user_id,
            host: request_host(&parts.headers, emulator),
        })
    }
}

/// A 200 list answer with its `Link` header.
pub(crate) fn list_response<T: serde::Serialize>(items: &[T], link: Option<String>) -> Response {
    let mut response = json(StatusCode::OK, items);
    if let Some(value) = link.and_then(|link| HeaderValue::from_str(&link).ok()) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// Whether `If-None-Match` names `etag` (weak comparison, `*` matches anything).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    if_none_match
        .split(',')
        .any(|candidate| candidate.trim() == "*" || bare(candidate) == bare(etag))
}

/// Middleware: GitHub's informational headers, and `ETag` / 304 for GETs.
/// `Date`, on GHES's clock (HTTP's IMF-fixdate).
async fn date_header(State(emulator): State<Emulator>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let clock = emulator.store().clock();
    let date = clock.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(value) = HeaderValue::from_str(&date) {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

async fn github_headers(request: Request, next: Next) -> Response {
    let conditional = (request.method() == Method::GET).then(|| {
        request
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    });
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        "x-github-media-type",
        HeaderValue::from_static("github.v3; format=json"),
    );
    headers.insert(
        "x-github-enterprise-version",
        HeaderValue::from_static("3.22.0"),
    );
    let Some(if_none_match) = conditional else {
        return response;
    };
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let etag = format!("W/\"{}\"", sha256_hex(&bytes));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        parts.headers.insert(header::ETAG, value);
    }
    if if_none_match.is_some_and(|inm| etag_matches(&inm, &etag)) {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(parse_id("42"), Ok(42));
        for bad in ["0", "-1", "abc", "1.5", ""] {
            assert_eq!(parse_id(bad), Err(ApiError::NotFound), "{bad}");
        }
    }

    #[test]
    fn etag_comparison_is_weak() {
        assert!(etag_matches("W/\"abc\"", "W/\"abc\""));
        assert!(etag_matches("\"abc\"", "W/\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "W/\"abc\""));
        assert!(etag_matches("*", "W/\"abc\""));
        assert!(!etag_matches("\"abd\"", "W/\"abc\""));
    }
}
