//! The patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902, with the semantics of
//! the library the API server uses: testing a missing member against `null` passes), and
//! strategic merge patch for the built-in types.
//!
//! Strategic merge patch is a merge patch plus: `metadata.finalizers` merges as a set,
//! `metadata.ownerReferences` merges by `uid`, and the directives `$patch: replace|delete` (maps)
//! and `$deleteFromPrimitiveList/<field>` work; `$setElementOrder` and `$retainKeys` are ignored,
//! and every other list is replaced whole (the built-in types served here have no other merge
//! lists). Custom resources refuse it with 415, like the real server.

use serde_json::{Map, Value};

use super::errors::{ApiError, ApiResult};

/// A patch's media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// The media types a resource accepts for PATCH.
pub(crate) fn accepted_patch_types(custom: bool) -> Vec<&'static str> {
    let mut types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if !custom {
        types.push("application/strategic-merge-patch+json");
    }
    types.push("application/apply-patch+yaml");
    types
}

/// RFC 7386.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch_map) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(target_map) = target {
                for (key, value) in patch_map {
                    if value.is_null() {
                        target_map.remove(key);
                    } else {
                        let entry = target_map.entry(key.clone()).or_insert(Value::Null);
                        merge_patch(entry, value);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge patch for the built-in types (see the module documentation).
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    strategic(target, patch, &mut Vec::new())
}

fn strategic(target: &mut Value, patch: &Value, path: &mut Vec<String>) -> ApiResult<()> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("replace") => {
            let mut replaced = patch_map.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type found: {other}"
            )));
        }
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return Ok(());
    };
    for (key, value) in patch_map {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(remove)) =
                (target_map.get_mut(field), value)
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        path.push(key.clone());
        let in_metadata = path.len() == 2 && path[0] == "metadata";
        match (in_metadata, key.as_str(), value) {
            (true, "finalizers", Value::Array(add)) => {
                let entry = target_map
                    .entry(key.clone())
                    .or_insert(Value::Array(Vec::new()));
                if let Value::Array(items) = entry {
                    for item in add {
                        if !items.contains(item) {
                            items.push(item.clone());
                        }
                    }
                } else {
                    *entry = value.clone();
                }
            }
            (true, "ownerReferences", Value::Array(refs)) => {
                let entry = target_map
                    .entry(key.clone())
                    .or_insert(Value::Array(Vec::new()));
                if let Value::Array(items) = entry {
                    for r in refs {
                        let uid = r.get("uid");
                        let delete = r.get("$patch").and_then(Value::as_str) == Some("delete");
                        match items.iter().position(|i| i.get("uid") == uid) {
                            Some(pos) if delete => {
                                items.remove(pos);
                            }
                            Some(pos) => strategic(&mut items[pos], r, path)?,
                            None if delete => {}
                            None => items.push(r.clone()),
                        }
                    }
                } else {
                    *entry = value.clone();
                }
            }
            _ => {
                let entry = target_map.entry(key.clone()).or_insert(Value::Null);
                strategic(entry, value, path)?;
                if entry.is_null() {
                    target_map.remove(key);
                }
            }
        }
        path.pop();
    }
    Ok(())
}

/// Splits a JSON pointer into unescaped tokens.
fn pointer_tokens(pointer: &str) -> ApiResult<Vec<String>> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(ApiError::patch_failed(&format!(
            "JSON pointer must be empty or start with a \"/\": {pointer}"
        )));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_mut<'v>(doc: &'v mut Value, tokens: &[String], path: &str) -> ApiResult<&'v mut Value> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::patch_failed(&format!("doc is missing path: \"{path}\": missing value"))
        })?;
    }
    Ok(current)
}

fn get<'v>(doc: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get(token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn add(doc: &mut Value, path: &str, value: Value) -> ApiResult<()> {
    let tokens = pointer_tokens(path)?;
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent, path)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| ApiError::patch_failed(&format!("invalid array index: {last}")))?
            };
            if index > items.len() {
                return Err(ApiError::patch_failed(&format!(
                    "add operation does not apply: doc is missing path: \"{path}\": invalid index"
                )));
            }
            items.insert(index, value);
            Ok(())
        }
        _ => Err(ApiError::patch_failed(&format!(
            "add operation does not apply: doc is missing path: \"{path}\""
        ))),
    }
}

fn remove(doc: &mut Value, path: &str) -> ApiResult<Value> {
    let tokens = pointer_tokens(path)?;
    let Some((last, parent)) = tokens.split_last() else {
        return Err(ApiError::patch_failed(
            "unable to remove the whole document",
        ));
    };
    let missing = || {
        ApiError::patch_failed(&format!(
            "remove operation does not apply: doc is missing path: \"{path}\": missing value"
        ))
    };
    match parent_mut(doc, parent, path)? {
        Value::Object(map) => map.remove(last).ok_or_else(missing),
        Value::Array(items) => {
            let index: usize = last.parse().map_err(|_| missing())?;
            if index < items.len() {
                Ok(items.remove(index))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

fn replace(doc: &mut Value, path: &str, value: Value) -> ApiResult<()> {
    let tokens = pointer_tokens(path)?;
    if get(doc, &tokens).is_none() {
        return Err(ApiError::patch_failed(&format!(
            "replace operation does not apply: doc is missing key: {path}: missing value"
        )));
    }
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent, path)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
    Ok(())
}

/// RFC 6902 (`add`, `remove`, `replace`, `move`, `copy`, `test`).
pub(crate) fn json_patch(doc: &mut Value, patch: &Value) -> ApiResult<()> {
    let Some(ops) = patch.as_array() else {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
        ));
    };
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str).ok_or_else(|| {
            ApiError::patch_failed(&format!("{kind} operation does not apply: missing path"))
        })?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                ApiError::patch_failed(&format!("{kind} operation does not apply: missing value"))
            })
        };
        let from = || {
            op.get("from").and_then(Value::as_str).ok_or_else(|| {
                ApiError::patch_failed(&format!("{kind} operation does not apply: missing from"))
            })
        };
        match kind {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => replace(doc, path, value()?)?,
            "move" => {
                let moved = remove(doc, from()?)?;
                add(doc, path, moved)?;
            }
            "copy" => {
                let tokens = pointer_tokens(from()?)?;
                let copied = get(doc, &tokens).cloned().ok_or_else(|| {
                    ApiError::patch_failed(&format!(
                        "copy operation does not apply: doc is missing from path: {}",
                        from().unwrap_or_default()
                    ))
                })?;
                add(doc, path, copied)?;
            }
            "test" => {
                let tokens = pointer_tokens(path)?;
                let expected = op.get("value").cloned().unwrap_or(Value::Null);
                let parent_exists = tokens
                    .split_last()
                    .is_none_or(|(_, parent)| get(doc, parent).is_some());
                if !parent_exists {
                    return Err(ApiError::patch_failed(&format!(
                        "test operation does not apply: is nil for path {path}"
                    )));
                }
                let actual = get(doc, &tokens).cloned().unwrap_or(Value::Null);
                if actual != expected {
                    return Err(ApiError::patch_failed(&format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!("Unexpected kind: {other}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls_and_merges_maps() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_test_of_missing_member_against_null_passes() {
        let mut doc = json!({"metadata": {"name": "x"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "g"}
        ]);
        json_patch(&mut doc, &patch).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["f", "g"]));
        let failing = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "g"}]);
        let err = json_patch(&mut doc, &failing).unwrap_err();
        assert_eq!(err.code, 422);
        let err = json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn strategic_merge_merges_finalizers_and_owner_references() {
        let mut doc = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}]},
            "data": {"k": "v"}});
        strategic_merge_patch(
            &mut doc,
            &json!({"metadata": {"finalizers": ["b"],
            "ownerReferences": [{"uid": "2", "name": "y"}]}, "data": {"k": null}}),
        )
        .unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            doc["metadata"]["ownerReferences"].as_array().unwrap().len(),
            2
        );
        assert_eq!(doc["data"], json!({}));
        strategic_merge_patch(
            &mut doc,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["b"]));
    }
}
