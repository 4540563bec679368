//! Test hooks under `/_emulator/` (no authentication, JSON): faults, the request log, a state
//! snapshot, users, apps, seeded authorizations, settings and lockouts.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use super::Emulator;
use super::config::{AppSpec, UserSpec};
use super::errors::{json, message};
use super::faults::Fault;
use super::handle::{EmulatorError, SeedAuthorization, SettingsPatch};
use super::routes::request_host;

/// The hook routes.
pub(crate) fn router(emulator: Emulator) -> Router {
    Router::new()
        .route(
            "/_emulator/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route(
            "/_emulator/faults/{id}",
            axum::routing::delete(remove_fault),
        )
        .route("/_emulator/requests", get(requests).delete(clear_requests))
        .route("/_emulator/state", get(state))
        .route("/_emulator/users", post(add_user))
        .route(
            "/_emulator/users/{login}",
            axum::routing::patch(update_user),
        )
        .route("/_emulator/apps", post(add_app))
        .route("/_emulator/authorizations", post(seed_authorization))
        .route("/_emulator/settings", get(settings).put(update_settings))
        .route("/_emulator/reset-lockouts", post(reset_lockouts))
        .with_state(emulator)
}

/// Why a hook refused: 400 for an unreadable body, 404 for an unknown user, 422 otherwise.
#[derive(Debug)]
enum HookError {
    Body(serde_json::Error),
    Refused(EmulatorError),
}

impl From<EmulatorError> for HookError {
    fn from(error: EmulatorError) -> Self {
        Self::Refused(error)
    }
}

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        match self {
            Self::Body(error) => message(
                StatusCode::BAD_REQUEST,
                &format!("invalid hook body: {error}"),
            ),
            Self::Refused(error @ EmulatorError::UnknownUser(_)) => {
                message(StatusCode::NOT_FOUND, &error.to_string())
            }
            Self::Refused(error) => message(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string()),
        }
    }
}

/// Parses a hook body; an empty body is `{}`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, HookError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(HookError::Body)
}

async fn list_faults(State(emulator): State<Emulator>) -> Response {
    json(StatusCode::OK, &emulator.active_faults())
}

async fn add_fault(State(emulator): State<Emulator>, body: Bytes) -> Result<Response, HookError> {
    let active = emulator.inject(parse::<Fault>(&body)?)?;
    Ok(json(StatusCode::CREATED, &active))
}

async fn clear_faults(State(emulator): State<Emulator>) -> StatusCode {
    emulator.clear_faults();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(emulator): State<Emulator>, Path(id): Path<u64>) -> StatusCode {
    if emulator.remove_fault(id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn requests(State(emulator): State<Emulator>) -> Response {
    json(StatusCode::OK, &emulator.requests())
}

async fn clear_requests(State(emulator): State<Emulator>) -> StatusCode {
    emulator.clear_requests();
    StatusCode::NO_CONTENT
}

async fn state(State(emulator): State<Emulator>, headers: HeaderMap) -> Response {
    let host = request_host(&headers, &emulator);
    json(StatusCode::OK, &emulator.state_for_host(&host))
}

async fn add_user(State(emulator): State<Emulator>, body: Bytes) -> Result<Response, HookError> {
    let summary = emulator.add_user(parse::<UserSpec>(&body)?)?;
    Ok(json(StatusCode::CREATED, &summary))
}

/// `PATCH /_emulator/users/{login}`: what a user may change on GHES.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    password: String,
}

async fn update_user(
    State(emulator): State<Emulator>,
    Path(login): Path<String>,
    body: Bytes,
) -> Result<StatusCode, HookError> {
    let patch = parse::<UserPatch>(&body)?;
    emulator.set_password(&login, &patch.password)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_app(State(emulator): State<Emulator>, body: Bytes) -> Result<Response, HookError> {
    let summary = emulator.add_app(parse::<AppSpec>(&body)?)?;
    Ok(json(StatusCode::CREATED, &summary))
}

async fn seed_authorization(
    State(emulator): State<Emulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HookError> {
    let seed = parse::<SeedAuthorization>(&body)?;
    let host = request_host(&headers, &emulator);
    let created = emulator.seed_authorization_for_host(seed, &host)?;
    Ok(json(StatusCode::CREATED, &created))
}

async fn settings(State(emulator): State<Emulator>) -> Response {
    json(StatusCode::OK, &emulator.settings())
}

async fn update_settings(
    State(emulator): State<Emulator>,
    body: Bytes,
) -> Result<Response, HookError> {
    let patch = parse::<SettingsPatch>(&body)?;
    Ok(json(StatusCode::OK, &emulator.update_settings(patch)))
}

async fn reset_lockouts(State(emulator): State<Emulator>) -> StatusCode {
    emulator.reset_lockouts();
    StatusCode::NO_CONTENT
}
