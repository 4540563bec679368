//! Operations #1–#3: list, get and delete grants.

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::Emulator;
use super::errors::{ApiError, json};
use super::paging::{PageRequest, paginate};
use super::routes::{Caller, list_response, parse_id, query_param};

/// `GET /applications/grants[?client_id=]`.
pub(crate) async fn list(
    caller: Caller,
    State(emulator): State<Emulator>,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let client_id = query_param(&query, "client_id");
    let grants = emulator
        .store()
        .list_grants(caller.user_id, client_id.as_deref(), &caller.host);
    let resource = format!("http://{}{}", caller.host, uri.path());
    let (page, link) = paginate(grants, PageRequest::from_query(&query), &resource, &query);
    list_response(&page, link)
}

/// `GET /applications/grants/{grant_id}`.
pub(crate) async fn get(
    caller: Caller,
    State(emulator): State<Emulator>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw_id)?;
    let grant = emulator.store().grant(caller.user_id, id, &caller.host)?;
    Ok(json(StatusCode::OK, &grant))
}

/// `DELETE /applications/grants/{grant_id}`: revokes the grant and all the app's tokens.
pub(crate) async fn delete(
    caller: Caller,
    State(emulator): State<Emulator>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw_id)?;
    emulator.store().delete_grant(caller.user_id, id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
