//! Reads: get and list, with label and field selectors, `limit`/`continue` pagination over a
//! consistent snapshot, the list `resourceVersion` semantics (unset, `0`, `NotOlderThan`,
//! `Exact`), and the metadata-only forms (`PartialObjectMetadata[List]`).

use serde_json::{Map, Value, json};

use super::errors::{ApiError, ApiResult, FieldError};
use super::resources::{Kind, ResourceInfo};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{ObjKey, State};

/// What the client's `Accept` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Full,
    /// `as=PartialObjectMetadata` / `as=PartialObjectMetadataList`.
    Metadata,
}

impl Output {
    /// From an `Accept` header.
    pub fn from_accept(accept: &str) -> Self {
        if accept.contains("as=PartialObjectMetadata") {
            Self::Metadata
        } else {
            Self::Full
        }
    }
}

/// An object reduced to `PartialObjectMetadata`.
pub(crate) fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// An object as a request sees it.
pub(crate) fn render(info: &ResourceInfo, stored: &Value, output: Output) -> Value {
    let obj = info.served(stored);
    match output {
        Output::Full => obj,
        Output::Metadata => partial(&obj),
    }
}

/// GET of one object.
pub(crate) fn get(
    st: &State,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    output: Output,
) -> ApiResult<Value> {
    st.get(&info.storage, namespace, name)
        .map(|stored| render(info, stored, output))
        .ok_or_else(|| ApiError::not_found(&info.gr(), name))
}

/// The query of a list.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub version_match: Option<String>,
}

/// Parses a `resourceVersion` parameter.
pub(crate) fn parse_rv(rv: &str) -> ApiResult<u64> {
    rv.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))
}

fn too_large(rv: u64, current: u64) -> ApiError {
    let mut error = ApiError::new(
        504,
        "Timeout",
        format!("Too large resource version: {rv}, current: {current}"),
    )
    .with_cause("ResourceVersionTooLarge", "Too large resource version", "");
    error.retry_after = Some(1);
    error
}

const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn encode_continue(rv: u64, last: &ObjKey, namespaced: bool) -> String {
    let start = if namespaced {
        format!("{}/{}\u{0}", last.0, last.1)
    } else {
        format!("{}\u{0}", last.1)
    };
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    data_encoding::BASE64URL.encode(token.to_string().as_bytes())
}

fn decode_continue(token: &str, namespaced: bool) -> ApiResult<(u64, ObjKey)> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = data_encoding::BASE64URL
        .decode(token.as_bytes())
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = value
        .get("rv")
        .and_then(Value::as_u64)
        .ok_or_else(invalid)?;
    let start = value
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?
        .trim_end_matches('\u{0}');
    let key = if namespaced {
        let (ns, name) = start.split_once('/').ok_or_else(invalid)?;
        (ns.to_owned(), name.to_owned())
    } else {
        (String::new(), start.to_owned())
    };
    Ok((rv, key))
}

/// LIST, in one namespace or across all.
pub(crate) fn list(
    st: &State,
    info: &ResourceInfo,
    namespace: Option<&str>,
    query: &ListQuery,
    output: Output,
) -> ApiResult<Value> {
    let rv = query.resource_version.as_deref().filter(|r| !r.is_empty());
    match (query.version_match.as_deref(), rv) {
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                &[FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                )],
            ));
        }
        (Some("Exact"), Some("0")) => {
            return Err(ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                &[FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                )],
            ));
        }
        (Some("Exact" | "NotOlderThan") | None, _) => {}
        (Some(other), _) => {
            return Err(ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                &[FieldError::not_supported(
                    "resourceVersionMatch",
                    json!(other),
                    &["Exact".into(), "NotOlderThan".into(), String::new()],
                )],
            ));
        }
    }

    let (list_rv, objects, after) = if let Some(token) = &query.continue_token {
        let (rv, last) = decode_continue(token, info.namespaced)?;
        let objects = st
            .snapshot(&info.storage, rv)
            .map_err(|_| ApiError::expired(CONTINUE_TOO_OLD))?;
        (rv, objects, Some(last))
    } else if query.version_match.as_deref() == Some("Exact") {
        let rv = parse_rv(rv.unwrap_or_default())?;
        if rv > st.rv {
            return Err(too_large(rv, st.rv));
        }
        (rv, st.snapshot(&info.storage, rv)?, None)
    } else {
        if let Some(rv) = rv {
            let rv = parse_rv(rv)?;
            if rv > st.rv {
                return Err(too_large(rv, st.rv));
            }
        }
        (st.rv, st.current(&info.storage), None)
    };

    // Only the page is converted and copied; the rest is counted (or, with selectors, looked
    // at until one more matches), as the API server's paging does.
    let mut candidates = objects
        .after(after.as_ref())
        .filter(|(key, _)| namespace.is_none_or(|ns| ns == key.0));
    let selects = |obj: &Value| query.labels.matches(obj) && query.fields.matches(info, obj);
    let limit = query.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let mut page: Vec<(ObjKey, Value)> = Vec::new();
    while page.len() < limit {
        let Some((key, stored)) = candidates.next() else {
            break;
        };
        let obj = info.served(stored);
        if selects(&obj) {
            page.push((key.clone(), obj));
        }
    }
    let unselected = query.labels.is_empty() && query.fields == FieldSelector::default();
    let remaining = if unselected {
        candidates.count()
    } else {
        usize::from(candidates.any(|(_, stored)| selects(&info.served(stored))))
    };
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), Value::String(list_rv.to_string()));
    if remaining > 0
        && let Some((last, _)) = page.last()
    {
        meta.insert(
            "continue".into(),
            Value::String(encode_continue(list_rv, last, info.namespaced)),
        );
        if unselected {
            meta.insert("remainingItemCount".into(), json!(remaining));
        }
    }

    let typed_list = info.rules != Kind::Custom;
    let items: Vec<Value> = page
        .into_iter()
        .map(|(_, mut obj)| match output {
            Output::Metadata => {
                json!({"metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))})
            }
            Output::Full => {
                // Typed lists of the built-in kinds carry no kind and apiVersion per item.
                if typed_list && let Some(map) = obj.as_object_mut() {
                    map.remove("kind");
                    map.remove("apiVersion");
                }
                obj
            }
        })
        .collect();
    let (kind, api_version) = match output {
        Output::Metadata => (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        ),
        Output::Full => (format!("{}List", info.kind), info.api_version()),
    };
    Ok(json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": Value::Object(meta),
        "items": items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, &("ns".into(), "name".into()), true);
        assert_eq!(
            decode_continue(&token, true).unwrap(),
            (42, ("ns".into(), "name".into()))
        );
        assert_eq!(decode_continue("garbage", true).unwrap_err().code, 400);
    }
}
