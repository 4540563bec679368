//! Operations #4–#10: list, create, get-or-create for an app (with and without fingerprint),
//! get, update and delete authorizations.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Emulator;
use super::body::{CreateBody, parse_patch};
use super::errors::{ApiError, json};
use super::lifecycle::scope_errors;
use super::paging::{PageRequest, paginate};
use super::routes::{Caller, list_response, parse_id, query_param};
use super::wire::Authorization;

/// 200/201 with the authorization and its `Location`.
fn with_location(status: StatusCode, authorization: &Authorization) -> Response {
    let mut response = json(status, authorization);
    if let Ok(location) = HeaderValue::from_str(&authorization.url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `GET /authorizations[?client_id=]`.
pub(crate) async fn list(
    caller: Caller,
    State(emulator): State<Emulator>,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let client_id = query_param(&query, "client_id");
    let resource = format!("http://{}{}", caller.host, uri.path());
    let store = emulator.store();
    let mut records = store.list_authorizations(caller.user_id, client_id.as_deref());
    records.retain(|record| !store.settings.listing_skips.contains(&record.id));
    let (page, link) = paginate(records, PageRequest::from_query(&query), &resource, &query);
    let items: Vec<Authorization> = page
        .into_iter()
        .map(|record| store.render(record, &caller.host, ""))
        .collect();
    drop(store);
    list_response(&items, link)
}

/// `POST /authorizations`: a personal token without `client_id`, an app token with it.
pub(crate) async fn create(
    caller: Caller,
    State(emulator): State<Emulator>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if emulator.store().settings.api_disabled {
        return Err(ApiError::Gone);
    }
    let request = CreateBody::parse(&body)?;
    let mut store = emulator.store();
    if let Some(client_id) = &request.authorization.client_id {
        store.check_client(client_id, request.client_secret.as_deref())?;
    }
    let (id, token) = store.create_authorization(caller.user_id, request.authorization)?;
    let created = store.render_by_id(id, &caller.host, &token)?;
    Ok(with_location(StatusCode::CREATED, &created))
}

/// `PUT /authorizations/clients/{client_id}`: fingerprint from the body (or none).
pub(crate) async fn get_or_create_for_app(
    caller: Caller,
    State(emulator): State<Emulator>,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    get_or_create(&caller, &emulator, client_id, None, &body)
}

/// `PUT /authorizations/clients/{client_id}/{fingerprint}`.
pub(crate) async fn get_or_create_for_app_and_fingerprint(
    caller: Caller,
    State(emulator): State<Emulator>,
    Path((client_id, fingerprint)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    get_or_create(&caller, &emulator, client_id, Some(fingerprint), &body)
}

/// Returns the user's token of the app with this fingerprint (200, token `""`) or creates it
/// (201, with the token).
fn get_or_create(
    caller: &Caller,
    emulator: &Emulator,
    client_id: String,
    path_fingerprint: Option<String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    if emulator.store().settings.api_disabled {
        return Err(ApiError::NotFound);
    }
    let mut request = CreateBody::parse(body)?;
    let mut store = emulator.store();
    store.check_client(&client_id, request.client_secret.as_deref())?;
    if let Some(fingerprint) = path_fingerprint {
        request.authorization.fingerprint = Some(fingerprint);
    }
    // Scopes are checked even when an existing token is returned unchanged.
    if let Some(error) = scope_errors(&request.authorization.scopes) {
        return Err(ApiError::ValidationFailed(vec![error]));
    }
    let fingerprint = request.authorization.fingerprint.as_deref();
    if let Some(existing) = store.find_app_authorization(caller.user_id, &client_id, fingerprint) {
        let existing = store.render(existing, &caller.host, "");
        return Ok(with_location(StatusCode::OK, &existing));
    }
    request.authorization.client_id = Some(client_id);
    let (id, token) = store.create_authorization(caller.user_id, request.authorization)?;
    let created = store.render_by_id(id, &caller.host, &token)?;
    Ok(with_location(StatusCode::CREATED, &created))
}

/// `GET /authorizations/{authorization_id}`.
pub(crate) async fn get(
    caller: Caller,
    State(emulator): State<Emulator>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw_id)?;
    let store = emulator.store();
    let record = store.owned_authorization(caller.user_id, id)?;
    Ok(json(
        StatusCode::OK,
        &store.render(record, &caller.host, ""),
    ))
}

/// `PATCH /authorizations/{authorization_id}`.
pub(crate) async fn update(
    caller: Caller,
    State(emulator): State<Emulator>,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw_id)?;
    emulator.store().owned_authorization(caller.user_id, id)?;
    let patch = parse_patch(&body)?;
    let mut store = emulator.store();
    let id = store.update_authorization(caller.user_id, id, patch)?;
    Ok(json(
        StatusCode::OK,
        &store.render_by_id(id, &caller.host, "")?,
    ))
}

/// `DELETE /authorizations/{authorization_id}`.
pub(crate) async fn delete(
    caller: Caller,
    State(emulator): State<Emulator>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw_id)?;
    emulator.store().delete_authorization(caller.user_id, id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
