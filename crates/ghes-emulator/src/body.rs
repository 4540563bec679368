//! Request bodies of the emulated API: JSON syntax errors are 400 `Problems parsing JSON`, type
//! errors 422 `Invalid request` naming the property, as GitHub's schema validation answers.

use serde_json::{Map, Value};

use super::errors::{ApiError, FieldError};
use super::lifecycle::{AuthorizationPatch, NewAuthorization, ScopeChange};

type Object = Map<String, Value>;

/// Parses a body that must be a JSON object; an empty body is an empty object.
fn object(body: &[u8]) -> Result<Object, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Object::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::InvalidRequest(format!(
            "{other} is not an object."
        ))),
        Err(_) => Err(ApiError::ProblemsParsingJson),
    }
}

/// A string property: `None` absent, `Some(None)` null or blank, `Some(Some(s))` a value.
fn string(map: &Object, name: &str) -> Result<Option<Option<String>>, ApiError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(other) => Err(ApiError::InvalidRequest(format!(
            "For 'properties/{name}', {other} is not a string."
        ))),
    }
}

/// A list-of-strings property: `None` absent, `Some(None)` null, `Some(Some(list))` a value.
fn string_list(map: &Object, name: &str) -> Result<Option<Option<Vec<String>>>, ApiError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(ApiError::InvalidRequest(format!(
                    "For 'items', {other} is not a string."
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|list| Some(Some(list))),
        Some(other) => Err(ApiError::InvalidRequest(format!(
            "For 'properties/{name}', {other} is not an array."
        ))),
    }
}

/// The `note_url` property: GHES stores it as a URI, so anything else is 422 `invalid`.
fn note_url(map: &Object) -> Result<Option<Option<String>>, ApiError> {
    let value = string(map, "note_url")?;
    if let Some(Some(url)) = &value
        && url::Url::parse(url).is_err()
    {
        return Err(ApiError::ValidationFailed(vec![
            FieldError::new("note_url", "invalid").with_message("note_url is not a valid URL."),
        ]));
    }
    Ok(value)
}

/// Body of `POST /authorizations` and of the get-or-create `PUT`s.
#[derive(Debug, Clone, Default)]
pub(crate) struct CreateBody {
    pub(crate) authorization: NewAuthorization,
    pub(crate) client_secret: Option<String>,
}

impl CreateBody {
    /// Parses and type-checks the body.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let map = object(body)?;
        let text = |name| string(&map, name).map(Option::flatten);
        Ok(Self {
            authorization: NewAuthorization {
                client_id: text("client_id")?,
                scopes: string_list(&map, "scopes")?.flatten().unwrap_or_default(),
                note: text("note")?,
                note_url: note_url(&map)?.flatten(),
                fingerprint: text("fingerprint")?,
                created_at: None,
            },
            client_secret: text("client_secret")?,
        })
    }
}

/// Parses a `PATCH /authorizations/{id}` body: at most one of `scopes`, `add_scopes`,
/// `remove_scopes`, plus `note`, `note_url`, `fingerprint`.
pub(crate) fn parse_patch(body: &[u8]) -> Result<AuthorizationPatch, ApiError> {
    let map = object(body)?;
    let replace = string_list(&map, "scopes")?.map(Option::unwrap_or_default);
    let add = string_list(&map, "add_scopes")?.map(Option::unwrap_or_default);
    let remove = string_list(&map, "remove_scopes")?.map(Option::unwrap_or_default);
    let scopes = match (replace, add, remove) {
        (None, None, None) => None,
        (Some(list), None, None) => Some(ScopeChange::Replace(list)),
        (None, Some(list), None) => Some(ScopeChange::Add(list)),
        (None, None, Some(list)) => Some(ScopeChange::Remove(list)),
        _ => {
            return Err(ApiError::ValidationFailed(vec![
                FieldError::new("scopes", "invalid")
                    .with_message("Only one of scopes, add_scopes or remove_scopes may be given."),
            ]));
        }
    };
    Ok(AuthorizationPatch {
        scopes,
        note: string(&map, "note")?,
        note_url: note_url(&map)?,
        fingerprint: string(&map, "fingerprint")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_400_and_type_errors_422() {
        assert_eq!(
            CreateBody::parse(b"{not json").unwrap_err(),
            ApiError::ProblemsParsingJson
        );
        assert_eq!(
            CreateBody::parse(br#"{"scopes":"repo"}"#).unwrap_err(),
            ApiError::InvalidRequest("For 'properties/scopes', \"repo\" is not an array.".into())
        );
        assert_eq!(
            CreateBody::parse(br#"{"note":1}"#).unwrap_err().status(),
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        );
        assert!(CreateBody::parse(b"[]").is_err());
        assert_eq!(
            CreateBody::parse(br#"{"note_url":"not a uri"}"#)
                .unwrap_err()
                .status(),
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        );
        assert!(parse_patch(br#"{"note_url":"relative/path"}"#).is_err());
        assert!(parse_patch(br#"{"note_url":"https://example.com/x"}"#).is_ok());
    }

    #[test]
    fn empty_body_and_nulls_mean_nothing_given() {
        let body = CreateBody::parse(b"").unwrap();
        assert!(body.authorization.scopes.is_empty() && body.client_secret.is_none());
        let body = CreateBody::parse(br#"{"scopes":null,"note":"  ","fingerprint":"fp"}"#).unwrap();
        assert_eq!(body.authorization.note, None);
        assert_eq!(body.authorization.fingerprint.as_deref(), Some("fp"));
    }

    #[test]
    fn patch_takes_at_most_one_scope_field() {
        let patch = parse_patch(br#"{"add_scopes":["gist"],"note":null}"#).unwrap();
        assert_eq!(patch.scopes, Some(ScopeChange::Add(vec!["gist".into()])));
        assert_eq!(patch.note, Some(None));
        assert_eq!(patch.fingerprint, None);
        let both = parse_patch(br#"{"scopes":[],"remove_scopes":["gist"]}"#).unwrap_err();
        assert_eq!(both.field_errors()[0].field, "scopes");
    }
}
