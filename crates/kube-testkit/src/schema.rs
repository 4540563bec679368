//! A CRD's structural schema (`openAPIV3Schema`) applied to custom resources the way the API
//! server applies it: pruning unknown fields, dropping non-nullable nulls, defaulting, and
//! validation with the API server's messages (kube-openapi's wording as apiextensions converts
//! it to field errors).
//!
//! Supported: `type`, `nullable`, `required`, `enum`, `pattern`, `format` (`date-time`, `date`,
//! `byte`, `uuid`, `int-or-string`), `minimum`/`maximum` (and `exclusive…`), `multipleOf`,
//! `minLength`/`maxLength`, `minItems`/`maxItems`, `uniqueItems`, `minProperties`/`maxProperties`,
//! `additionalProperties`, `allOf`/`anyOf`/`oneOf`/`not`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-embedded-resource` (kept, not checked further),
//! `x-kubernetes-list-type` (`set` and `map` items must be unique) and `default`.
//!
//! CEL rules (`x-kubernetes-validations`) are evaluated apart (`cel.rs`); [`cel_rules`] lists
//! them so that a CRD whose rules do not compile is refused.

use std::collections::BTreeSet;

use jiff::Timestamp;
use regex::Regex;
use serde_json::{Map, Value};

use super::errors::FieldError;

/// How a list is merged by server-side apply and checked for duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Which element of a path into an object.
#[derive(Clone, Debug)]
pub(crate) enum Step<'a> {
    Field(&'a str),
    Item,
}

fn is_preserve_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn is_nullable(schema: &Value) -> bool {
    schema
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn additional_schema(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|v| v.is_object())
}

fn allows_any_additional(schema: &Value) -> bool {
    schema.get("additionalProperties").and_then(Value::as_bool) == Some(true)
}

/// The schema of the value at `steps` below `schema`, if the schema describes it.
pub(crate) fn schema_at<'a>(schema: &'a Value, steps: &[Step<'_>]) -> Option<&'a Value> {
    let mut current = schema;
    for step in steps {
        current = match step {
            Step::Field(name) => match current.get("properties").and_then(|p| p.get(*name)) {
                Some(child) => child,
                None => additional_schema(current)?,
            },
            Step::Item => current.get("items")?,
        };
    }
    Some(current)
}

/// The list type declared at `schema` (a list's own schema).
pub(crate) fn list_type(schema: &Value) -> ListType {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

/// Removes the fields the schema does not know (outside `metadata`, `apiVersion` and `kind` at
/// the top level, which the server handles itself). Returns the paths removed.
pub(crate) fn prune(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    if let Value::Object(map) = obj {
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match schema.get("properties").and_then(|p| p.get(&key)) {
                Some(child) => {
                    if let Some(value) = map.get_mut(&key) {
                        prune_value(value, child, &key, &mut pruned);
                    }
                }
                None if is_preserve_unknown(schema) => {}
                None => {
                    map.remove(&key);
                    pruned.push(key);
                }
            }
        }
    }
    pruned
}

fn prune_value(value: &mut Value, schema: &Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = additional_schema(schema);
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = format!("{path}.{key}");
                let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
                match child_schema {
                    Some(child) => {
                        if let Some(v) = map.get_mut(&key) {
                            prune_value(v, child, &child_path, pruned);
                        }
                    }
                    None => {
                        let embedded_meta = schema
                            .get("x-kubernetes-embedded-resource")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
                        if !(is_preserve_unknown(schema)
                            || allows_any_additional(schema)
                            || embedded_meta)
                        {
                            map.remove(&key);
                            pruned.push(child_path);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item, item_schema, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s, and drops `null`s of non-nullable fields first (so that their default,
/// if any, applies), recursively, as the API server does when it decodes a request.
pub(crate) fn apply_defaults(obj: &mut Value, schema: &Value) {
    default_value(obj, schema, true);
}

fn default_value(value: &mut Value, schema: &Value, top: bool) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, child) in properties {
                    if top && key == "metadata" {
                        continue;
                    }
                    let is_null = map.get(key).is_some_and(Value::is_null);
                    if is_null && !is_nullable(child) {
                        map.remove(key);
                    }
                    if !map.contains_key(key)
                        && let Some(default) = child.get("default")
                    {
                        map.insert(key.clone(), default.clone());
                    }
                    if let Some(v) = map.get_mut(key) {
                        default_value(v, child, false);
                    }
                }
            }
            if let Some(additional) = additional_schema(schema) {
                for v in map.values_mut() {
                    default_value(v, additional, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    default_value(item, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

/// Validates a custom resource (all but `metadata`, `apiVersion` and `kind`).
pub(crate) fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(map) = obj.as_object() else {
        return errors;
    };
    let mut top = Map::new();
    for (k, v) in map {
        if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            top.insert(k.clone(), v.clone());
        }
    }
    let mut top_schema = schema.clone();
    if let Some(required) = top_schema.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| !matches!(r.as_str(), Some("apiVersion" | "kind" | "metadata")));
    }
    if let Some(props) = top_schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        props.remove("metadata");
        props.remove("apiVersion");
        props.remove("kind");
    }
    validate_value(&Value::Object(top), &top_schema, "", &mut errors);
    errors
}

/// `path.key`, or `key` at the root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The type name kube-openapi reports for a value.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

fn body_path(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn validate_value(value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let shown = body_path(path);
    if value.is_null() {
        if is_nullable(schema) {
            return;
        }
        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            errors.push(FieldError::type_invalid(
                path,
                Value::String("null".into()),
                format!("{shown} in body must be of type {expected}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if int_or_string {
        if !(value.is_string() || is_integer(value)) {
            errors.push(FieldError::type_invalid(
                path,
                Value::String(type_name(value).into()),
                format!(
                    "{shown} in body must be of type integer,string: \"{}\"",
                    type_name(value)
                ),
            ));
            return;
        }
    } else if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !type_matches(expected, value)
    {
        errors.push(FieldError::type_invalid(
            path,
            Value::String(type_name(value).into()),
            format!(
                "{shown} in body must be of type {expected}: \"{}\"",
                type_name(value)
            ),
        ));
        return;
    }

    match value {
        Value::String(s) => validate_string(s, schema, path, errors),
        Value::Number(_) => validate_number(value, schema, path, errors),
        Value::Array(items) => validate_array(items, schema, path, errors),
        Value::Object(map) => validate_object(map, schema, path, errors),
        _ => {}
    }

    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| json_equal(a, value))
    {
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        errors.push(FieldError::not_supported(path, value.clone(), &supported));
    }

    validate_combinators(value, schema, path, errors);
}

/// JSON equality where `1` and `1.0` are the same number.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn validate_string(s: &str, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let shown = body_path(path);
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !format_ok(format, s)
    {
        errors.push(FieldError::invalid(
            path,
            Value::String(s.to_owned()),
            format!(
                "{shown} in body must be of type {format}: {}",
                super::errors::go_quote(s)
            ),
        ));
    }
    let chars = s.chars().count();
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars as u64 > max
    {
        errors.push(FieldError::too_long(path, max as usize));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (chars as u64) < min
    {
        errors.push(FieldError::invalid(
            path,
            Value::String(s.to_owned()),
            format!("{shown} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match pattern_regex(pattern).as_ref() {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => errors.push(FieldError::invalid(
                path,
                Value::String(s.to_owned()),
                format!("{shown} in body should match '{pattern}'"),
            )),
            Err(e) => errors.push(FieldError::invalid(
                path,
                Value::String(s.to_owned()),
                format!("the schema's pattern '{pattern}' does not compile: {e}"),
            )),
        }
    }
}

/// `pattern`, compiled once per thread.
fn pattern_regex(pattern: &str) -> std::rc::Rc<Result<Regex, regex::Error>> {
    thread_local! {
        static COMPILED: std::cell::RefCell<super::memo::Memo<Result<Regex, regex::Error>>> =
            std::cell::RefCell::default();
    }
    COMPILED.with_borrow_mut(|compiled| compiled.get(pattern, Regex::new))
}

/// The string formats kube-openapi checks (others pass).
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => s.parse::<Timestamp>().is_ok(),
        "date" => jiff::civil::Date::strptime("%Y-%m-%d", s).is_ok(),
        "byte" => data_encoding::BASE64.decode(s.as_bytes()).is_ok(),
        "uuid" => {
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 5
                && [8, 4, 4, 4, 12]
                    .iter()
                    .zip(&parts)
                    .all(|(len, p)| p.len() == *len && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        _ => true,
    }
}

fn validate_number(value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let shown = body_path(path);
    let Some(n) = value.as_f64() else {
        return;
    };
    let exclusive_min = schema
        .get("exclusiveMinimum")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let exclusive_max = schema
        .get("exclusiveMaximum")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let bad = if exclusive_min { n <= min } else { n < min };
        if bad {
            let words = if exclusive_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{shown} in body should be {words} {}", format_number(min)),
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let bad = if exclusive_max { n >= max } else { n > max };
        if bad {
            let words = if exclusive_max {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{shown} in body should be {words} {}", format_number(max)),
            ));
        }
    }
    if let Some(factor) = schema.get("multipleOf").and_then(Value::as_f64)
        && factor != 0.0
        && (n / factor).fract() != 0.0
    {
        errors.push(FieldError::invalid(
            path,
            value.clone(),
            format!(
                "{shown} in body should be a multiple of {}",
                format_number(factor)
            ),
        ));
    }
}

fn validate_array(items: &[Value], schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let shown = body_path(path);
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        errors.push(FieldError::too_many(path, items.len(), max as usize));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        errors.push(FieldError::invalid(
            path,
            serde_json::json!(items.len()),
            format!("{shown} in body should have at least {min} items"),
        ));
    }
    if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        let distinct: BTreeSet<String> = items.iter().map(Value::to_string).collect();
        if distinct.len() != items.len() {
            errors.push(FieldError::invalid(
                path,
                Value::Array(items.to_vec()),
                format!("{shown} in body shouldn't contain duplicates"),
            ));
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_value(item, item_schema, &format!("{path}[{i}]"), errors);
        }
    }
    match list_type(schema) {
        ListType::Atomic => {}
        ListType::Set => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    errors.push(FieldError::duplicate(format!("{path}[{i}]"), item.clone()));
                }
            }
        }
        ListType::Map(keys) => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let mut key = Map::new();
                for k in &keys {
                    if let Some(v) = item.get(k) {
                        key.insert(k.clone(), v.clone());
                    }
                }
                if !seen.insert(Value::Object(key.clone()).to_string()) {
                    errors.push(FieldError::duplicate(
                        format!("{path}[{i}]"),
                        Value::Object(key),
                    ));
                }
            }
        }
    }
}

fn validate_object(
    map: &Map<String, Value>,
    schema: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let shown = body_path(path);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                errors.push(FieldError::required(join(path, name), ""));
            }
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && map.len() as u64 > max
    {
        errors.push(FieldError::too_many(path, map.len(), max as usize));
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && (map.len() as u64) < min
    {
        errors.push(FieldError::invalid(
            path,
            serde_json::json!(map.len()),
            format!("{shown} in body should have at least {min} properties"),
        ));
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = additional_schema(schema);
    for (key, value) in map {
        let child_path = join(path, key);
        if let Some(child) = properties.and_then(|p| p.get(key)) {
            validate_value(value, child, &child_path, errors);
        } else if let Some(child) = additional {
            validate_value(value, child, &child_path, errors);
        }
    }
}

fn validate_combinators(value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let shown = body_path(path);
    let passes = |sub: &Value| {
        let mut errs = Vec::new();
        validate_value(value, sub, path, &mut errs);
        errs
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for sub in all {
            errors.extend(passes(sub));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(|sub| passes(sub).is_empty())
    {
        errors.push(FieldError::invalid(
            path,
            value.clone(),
            format!("{shown} in body must validate at least one schema (anyOf)"),
        ));
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
        && one.iter().filter(|sub| passes(sub).is_empty()).count() != 1
    {
        errors.push(FieldError::invalid(
            path,
            value.clone(),
            format!("{shown} in body must validate one and only one schema (oneOf)"),
        ));
    }
    if let Some(not) = schema.get("not")
        && passes(not).is_empty()
    {
        errors.push(FieldError::invalid(
            path,
            value.clone(),
            format!("{shown} in body must not validate the schema (not)"),
        ));
    }
}

/// Every CEL rule in a schema, as `(path, rule)`.
pub(crate) fn cel_rules(schema: &Value) -> Vec<(String, String)> {
    let mut rules = Vec::new();
    collect_rules(schema, "", &mut rules);
    rules
}

fn collect_rules(schema: &Value, path: &str, rules: &mut Vec<(String, String)>) {
    if let Some(list) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in list {
            if let Some(text) = rule.get("rule").and_then(Value::as_str) {
                let shown = if path.is_empty() { "<root>" } else { path };
                rules.push((shown.to_owned(), text.to_owned()));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            collect_rules(child, &join(path, k), rules);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_rules(items, &format!("{path}[*]"), rules);
    }
    if let Some(additional) = additional_schema(schema) {
        collect_rules(additional, &format!("{path}[*]"), rules);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                        "policy": {"type": "string", "enum": ["Delete", "Orphan"], "default": "Delete"},
                        "count": {"type": "integer", "minimum": 1, "maximum": 3},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "maxItems": 2},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "note": {"type": "string", "nullable": true},
                        "inner": {"type": "object", "default": {}, "properties": {"k": {"type": "string", "default": "v"}}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true},
                        "at": {"type": "string", "format": "date-time"}
                    }
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_preserved_and_maps() {
        let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"x": 1},
            "junk": 1, "spec": {"name": "a", "bogus": true, "labels": {"any": "thing"},
            "free": {"whatever": {"deep": 1}}}});
        let pruned = prune(&mut obj, &schema());
        assert_eq!(pruned, vec!["junk".to_owned(), "spec.bogus".to_owned()]);
        assert_eq!(obj["spec"]["labels"]["any"], "thing");
        assert_eq!(obj["spec"]["free"]["whatever"]["deep"], 1);
        assert_eq!(obj["metadata"]["x"], 1);
    }

    #[test]
    fn defaults_fill_absent_and_non_nullable_null_fields() {
        let mut obj = json!({"spec": {"name": "a", "policy": null, "note": null}});
        apply_defaults(&mut obj, &schema());
        assert_eq!(obj["spec"]["policy"], "Delete");
        assert_eq!(obj["spec"]["inner"]["k"], "v");
        assert!(obj["spec"]["note"].is_null());
        assert!(obj["spec"].as_object().unwrap().contains_key("note"));
    }

    #[test]
    fn validation_messages_match_the_api_server() {
        let obj = json!({"spec": {"name": "ABCDEFG", "policy": "Later", "count": 0,
            "tags": ["a", "a", "b"], "port": true, "at": "yesterday"}});
        let messages: Vec<String> = validate(&obj, &schema())
            .iter()
            .map(|e| e.message())
            .collect();
        let expected = [
            "spec.at: Invalid value: \"yesterday\": spec.at in body must be of type date-time: \"yesterday\"",
            "spec.count: Invalid value: 0: spec.count in body should be greater than or equal to 1",
            "spec.name: Too long: may not be more than 5 bytes",
            "spec.name: Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'",
            "spec.policy: Unsupported value: \"Later\": supported values: \"Delete\", \"Orphan\"",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "spec.tags: Too many: 3: must have at most 2 items",
            "spec.tags[1]: Duplicate value: \"a\"",
        ];
        for e in expected {
            assert!(
                messages.contains(&e.to_owned()),
                "missing {e} in {messages:#?}"
            );
        }
        assert_eq!(messages.len(), expected.len(), "{messages:#?}");
    }

    #[test]
    fn required_and_type_errors() {
        let obj = json!({"spec": {"count": "3"}});
        let messages: Vec<String> = validate(&obj, &schema())
            .iter()
            .map(|e| e.message())
            .collect();
        assert!(messages.contains(&"spec.name: Required value".to_owned()));
        assert!(messages.contains(
            &"spec.count: Invalid value: \"string\": spec.count in body must be of type integer: \"string\"".to_owned()
        ));
        let messages: Vec<String> = validate(&json!({}), &schema())
            .iter()
            .map(|e| e.message())
            .collect();
        assert_eq!(messages, vec!["spec: Required value".to_owned()]);
    }

    #[test]
    fn cel_rules_are_listed() {
        let s = json!({"properties": {"spec": {"x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}});
        assert_eq!(
            cel_rules(&s),
            vec![("spec".to_owned(), "self == oldSelf".to_owned())]
        );
    }
}
