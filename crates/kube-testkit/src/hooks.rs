//! Per-resource rules (the API server's "strategies"): how a request body is decoded (built-in
//! types through their typed form, which drops unknown fields; custom resources pruned and
//! defaulted by their schema), what create and update reset, and what each type validates:
//! Secrets (`stringData`, keys, size, `type`, `immutable`), ConfigMaps, Namespaces, Events (both
//! APIs), Leases and CRDs (which register their custom resources).

use std::sync::Arc;

use data_encoding::BASE64;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult, FieldError};
use super::metadata::subdomain_problems;
use super::resources::{Kind, ResourceInfo, StorageKey};
use super::schema;

/// Which endpoint a write goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Main,
    Status,
    /// `namespaces/{name}/finalize`.
    Finalize,
}

impl Endpoint {
    /// The subresource name, empty for the main resource.
    pub fn subresource(self) -> &'static str {
        match self {
            Self::Main => "",
            Self::Status => "status",
            Self::Finalize => "finalize",
        }
    }
}

/// The finalizer the namespace lifecycle uses (`spec.finalizers`).
pub(crate) const NAMESPACE_FINALIZER: &str = "kubernetes";

/// The finalizer that holds a CRD until its custom resources are gone.
pub(crate) const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn round_trip<T: DeserializeOwned + Serialize>(
    info: &ResourceInfo,
    obj: &Value,
) -> ApiResult<Value> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = info.kind,
            version = info.version
        ))
    })?;
    serde_json::to_value(&typed).map_err(ApiError::internal)
}

/// The leaf paths of `before` that `after` lacks (fields a decode dropped).
fn lost_paths(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    Some(av) => lost_paths(v, av, &child, out),
                    None if !v.is_null() => out.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                lost_paths(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Decodes a request body into the form the rest of the server works on, and reports the
/// unknown fields it dropped (for `fieldValidation`).
pub(crate) fn decode(info: &ResourceInfo, obj: Value) -> ApiResult<(Value, Vec<String>)> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: the object must be a JSON object",
            kind = info.kind,
            version = info.version
        )));
    }
    let decoded = match info.rules {
        Kind::Namespace => round_trip::<Namespace>(info, &obj)?,
        Kind::Secret => round_trip::<Secret>(info, &obj)?,
        Kind::ConfigMap => round_trip::<ConfigMap>(info, &obj)?,
        Kind::CoreEvent => round_trip::<CoreEvent>(info, &obj)?,
        Kind::Event => round_trip::<Event>(info, &obj)?,
        Kind::Lease => round_trip::<Lease>(info, &obj)?,
        Kind::Deployment => round_trip::<Deployment>(info, &obj)?,
        Kind::StatefulSet => round_trip::<StatefulSet>(info, &obj)?,
        Kind::DaemonSet => round_trip::<DaemonSet>(info, &obj)?,
        Kind::Crd => round_trip::<CustomResourceDefinition>(info, &obj)?,
        Kind::Custom => {
            let mut decoded = obj.clone();
            let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let meta: ObjectMeta = serde_json::from_value(meta).map_err(|e| {
                ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: metadata: {e}",
                    kind = info.kind,
                    version = info.version
                ))
            })?;
            decoded["metadata"] = serde_json::to_value(&meta).map_err(ApiError::internal)?;
            if let Some(schema) = &info.schema {
                schema::prune(&mut decoded, schema);
                schema::apply_defaults(&mut decoded, schema);
            }
            decoded
        }
    };
    let mut lost = Vec::new();
    lost_paths(&obj, &decoded, "", &mut lost);
    // Defaulting adds, it never drops; `stringData` is folded into `data`, not unknown.
    lost.retain(|p| !p.starts_with("stringData"));
    Ok((decoded, lost))
}

fn merge_string_data(obj: &mut Value) {
    let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    if let Value::Object(entries) = string_data {
        if !obj.get("data").is_some_and(Value::is_object) {
            obj["data"] = json!({});
        }
        for (k, v) in entries {
            let text = v.as_str().unwrap_or_default();
            obj["data"][k] = Value::String(BASE64.encode(text.as_bytes()));
        }
    }
}

/// What a create resets or fills in (`PrepareForCreate`).
pub(crate) fn prepare_create(info: &ResourceInfo, obj: &mut Value) {
    if info.status_subresource
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    match info.rules {
        Kind::Namespace => {
            obj["spec"] = json!({"finalizers": [NAMESPACE_FINALIZER]});
            obj["status"] = json!({"phase": "Active"});
            set_namespace_name_label(obj);
        }
        Kind::Secret => {
            merge_string_data(obj);
            if obj
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                obj["type"] = json!("Opaque");
            }
        }
        Kind::Crd => {
            let kind = obj
                .pointer("/spec/names/kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if obj.pointer("/spec/names/singular").is_none() && !kind.is_empty() {
                obj["spec"]["names"]["singular"] = json!(kind.to_lowercase());
            }
            if obj.pointer("/spec/names/listKind").is_none() && !kind.is_empty() {
                obj["spec"]["names"]["listKind"] = json!(format!("{kind}List"));
            }
            if obj.pointer("/spec/conversion").is_none() && obj.get("spec").is_some() {
                obj["spec"]["conversion"] = json!({"strategy": "None"});
            }
        }
        _ => {}
    }
}

fn set_namespace_name_label(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !obj["metadata"].get("labels").is_some_and(Value::is_object) {
        obj["metadata"]["labels"] = json!({});
    }
    obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = Value::String(name);
}

/// What an update resets (`PrepareForUpdate`): through the main endpoint, `status` (when it has
/// its own subresource); through `status`, everything but `status`; through `finalize`,
/// everything but `spec.finalizers`.
pub(crate) fn prepare_update(
    info: &ResourceInfo,
    endpoint: Endpoint,
    new: &mut Value,
    old: &Value,
) {
    match endpoint {
        Endpoint::Main => {
            if info.status_subresource {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            if info.rules == Kind::Namespace {
                match old.pointer("/spec/finalizers") {
                    Some(f) => new["spec"] = json!({"finalizers": f}),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("spec");
                        }
                    }
                }
                set_namespace_name_label(new);
            }
        }
        Endpoint::Status | Endpoint::Finalize => {
            let mut kept = old.clone();
            if let Some(fields) = new.pointer("/metadata/managedFields") {
                kept["metadata"]["managedFields"] = fields.clone();
            }
            if endpoint == Endpoint::Status {
                match new.get("status") {
                    Some(status) => kept["status"] = status.clone(),
                    None => {
                        if let Some(map) = kept.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            } else {
                let finalizers = new
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                kept["spec"]["finalizers"] = finalizers;
            }
            *new = kept;
        }
    }
    if info.rules == Kind::Secret {
        merge_string_data(new);
        if new
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(t) = old.get("type")
        {
            new["type"] = t.clone();
        }
    }
}

const CONFIG_KEY: &str = "[-._a-zA-Z0-9]+";
const MAX_SECRET_BYTES: usize = 1024 * 1024;

fn valid_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && key != "."
        && key != ".."
}

fn validate_keys(
    obj: &Value,
    field: &str,
    decoded_len: impl Fn(&Value) -> usize,
) -> (Vec<FieldError>, usize) {
    let mut errors = Vec::new();
    let mut total = 0;
    if let Some(map) = obj.get(field).and_then(Value::as_object) {
        for (key, value) in map {
            if !valid_config_key(key) {
                errors.push(FieldError::invalid(
                    format!("{field}[{key}]"),
                    Value::String(key.clone()),
                    format!("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '{CONFIG_KEY}')"),
                ));
            }
            total += decoded_len(value);
        }
    }
    (errors, total)
}

fn base64_len(value: &Value) -> usize {
    value
        .as_str()
        .and_then(|s| BASE64.decode(s.as_bytes()).ok())
        .map_or(0, |b| b.len())
}

fn str_len(value: &Value) -> usize {
    value.as_str().map_or(0, str::len)
}

fn require(obj: &Value, field: &str, max: usize, errors: &mut Vec<FieldError>) {
    match obj.get(field).and_then(Value::as_str) {
        None | Some("") => errors.push(FieldError::required(field, "")),
        Some(s) if s.len() > max => errors.push(FieldError::too_long(field, max)),
        Some(_) => {}
    }
}

/// The API server's rules for the well-known Secret types this project writes.
fn validate_secret_type(obj: &Value, errors: &mut Vec<FieldError>) {
    let data = |key: &str| obj.get("data").and_then(|data| data.get(key));
    match obj.get("type").and_then(Value::as_str) {
        Some("kubernetes.io/basic-auth")
            if data("username").is_none() && data("password").is_none() =>
        {
            errors.push(FieldError::required("data[username]", ""));
            errors.push(FieldError::required("data[password]", ""));
        }
        Some("kubernetes.io/dockerconfigjson") => match data(".dockerconfigjson") {
            None => errors.push(FieldError::required("data[.dockerconfigjson]", "")),
            Some(value) => {
                let parsed = value
                    .as_str()
                    .and_then(|text| BASE64.decode(text.as_bytes()).ok())
                    .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
                if parsed.is_none() {
                    errors.push(FieldError::invalid(
                        "data[.dockerconfigjson]",
                        json!("<secret contents redacted>"),
                        "invalid character: not a JSON document",
                    ));
                }
            }
        },
        _ => {}
    }
}

/// Type-specific validation of a new object (schema validation of custom resources is separate).
pub(crate) fn validate_create(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match info.rules {
        Kind::Secret => {
            let (errs, total) = validate_keys(obj, "data", base64_len);
            errors.extend(errs);
            if total > MAX_SECRET_BYTES {
                errors.push(FieldError::too_long("data", MAX_SECRET_BYTES));
            }
            validate_secret_type(obj, &mut errors);
        }
        Kind::ConfigMap => {
            let (errs, text) = validate_keys(obj, "data", str_len);
            let (errs2, binary) = validate_keys(obj, "binaryData", base64_len);
            errors.extend(errs);
            errors.extend(errs2);
            if text + binary > MAX_SECRET_BYTES {
                errors.push(FieldError::too_long("", MAX_SECRET_BYTES));
            }
        }
        Kind::Event => validate_v1_event(obj, &mut errors),
        Kind::CoreEvent => validate_event_namespace(obj, "involvedObject", &mut errors),
        Kind::Lease => {
            if let Some(d) = obj
                .pointer("/spec/leaseDurationSeconds")
                .and_then(Value::as_i64)
                && d <= 0
            {
                errors.push(FieldError::invalid(
                    "spec.leaseDurationSeconds",
                    json!(d),
                    "must be greater than 0",
                ));
            }
            if let Some(t) = obj
                .pointer("/spec/leaseTransitions")
                .and_then(Value::as_i64)
                && t < 0
            {
                errors.push(FieldError::invalid(
                    "spec.leaseTransitions",
                    json!(t),
                    "must be greater than or equal to 0",
                ));
            }
        }
        Kind::Crd => validate_crd(obj, &mut errors),
        Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet => {
            // As the API server's apps validation: a selector, and a template it selects.
            if obj.pointer("/spec/selector").is_none_or(Value::is_null) {
                errors.push(FieldError::required("spec.selector", ""));
            }
            if obj
                .pointer("/spec/template/spec/containers")
                .is_none_or(Value::is_null)
            {
                errors.push(FieldError::required("spec.template.spec.containers", ""));
            }
        }
        Kind::Namespace | Kind::Custom => {}
    }
    errors
}

fn validate_event_namespace(obj: &Value, field: &str, errors: &mut Vec<FieldError>) {
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let involved = obj
        .get(field)
        .and_then(|o| o.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mismatch = if involved.is_empty() {
        !namespace.is_empty() && namespace != "default"
    } else {
        namespace != involved
    };
    if mismatch {
        errors.push(FieldError::invalid(
            format!("{field}.namespace"),
            Value::String(involved.to_owned()),
            "does not match event.namespace",
        ));
    }
}

fn validate_v1_event(obj: &Value, errors: &mut Vec<FieldError>) {
    if obj.get("eventTime").is_none_or(Value::is_null) {
        errors.push(FieldError::required("eventTime", ""));
    }
    let event_type = obj.get("type").and_then(Value::as_str).unwrap_or_default();
    if event_type != "Normal" && event_type != "Warning" {
        errors.push(FieldError::invalid(
            "type",
            Value::String(String::new()),
            format!("has invalid value: {event_type}"),
        ));
    }
    require(obj, "reportingController", 253, errors);
    require(obj, "reportingInstance", 128, errors);
    require(obj, "action", 128, errors);
    require(obj, "reason", 128, errors);
    if obj
        .get("note")
        .and_then(Value::as_str)
        .is_some_and(|n| n.len() > 1024)
    {
        errors.push(FieldError::too_long("note", 1024));
    }
    if let Some(series) = obj.get("series").filter(|s| !s.is_null()) {
        let count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
        if count < 2 {
            errors.push(FieldError::invalid(
                "series.count",
                json!(count),
                "should be at least 2",
            ));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            errors.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    validate_event_namespace(obj, "regarding", errors);
}

fn validate_crd(obj: &Value, errors: &mut Vec<FieldError>) {
    let text = |pointer: &str| {
        obj.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let group = text("/spec/group");
    let plural = text("/spec/names/plural");
    if group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errors.push(FieldError::invalid(
            "spec.group",
            json!(group),
            "should be a domain with at least one dot",
        ));
    } else {
        for p in subdomain_problems(group) {
            errors.push(FieldError::invalid("spec.group", json!(group), p));
        }
    }
    if plural.is_empty() {
        errors.push(FieldError::required("spec.names.plural", ""));
    }
    if text("/spec/names/kind").is_empty() {
        errors.push(FieldError::required("spec.names.kind", ""));
    }
    let name = text("/metadata/name");
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = text("/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        errors.push(FieldError::not_supported(
            "spec.scope",
            json!(scope),
            &["Cluster".into(), "Namespaced".into()],
        ));
    }
    let versions = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errors.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else {
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if storage != 1 {
            errors.push(FieldError::invalid(
                "spec.versions",
                Value::Array(versions.clone()),
                "must have exactly one version marked as storage version",
            ));
        }
        for (i, v) in versions.iter().enumerate() {
            match v.pointer("/schema/openAPIV3Schema") {
                None => errors.push(FieldError::required(
                    format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    "schemas are required",
                )),
                Some(schema) => {
                    for (path, rule, error) in super::cel::compile_errors(schema) {
                        errors.push(FieldError::invalid(
                            format!(
                                "spec.versions[{i}].schema.openAPIV3Schema.{path}.x-kubernetes-validations"
                            ),
                            json!(rule),
                            format!("compilation failed: {error}"),
                        ));
                    }
                }
            }
        }
    }
}

fn immutable_data_errors(new: &Value, old: &Value, fields: &[&str], errors: &mut Vec<FieldError>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    for field in fields {
        if new.get(*field) != old.get(*field) {
            errors.push(FieldError::forbidden(
                *field,
                "field is immutable when `immutable` is set",
            ));
        }
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errors.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
}

/// Type-specific validation of an update.
pub(crate) fn validate_update(info: &ResourceInfo, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = match info.rules {
        // Events validate their create rules on update only for what stays mutable.
        Kind::Event | Kind::CoreEvent => Vec::new(),
        _ => validate_create(info, new),
    };
    match info.rules {
        Kind::Secret => {
            if new.get("type") != old.get("type") {
                errors.push(FieldError::immutable(
                    "type",
                    new.get("type").cloned().unwrap_or(Value::Null),
                ));
            }
            immutable_data_errors(new, old, &["data"], &mut errors);
        }
        Kind::ConfigMap => immutable_data_errors(new, old, &["data", "binaryData"], &mut errors),
        Kind::Event => {
            for field in [
                "regarding",
                "reason",
                "note",
                "type",
                "eventTime",
                "action",
                "related",
                "reportingController",
                "reportingInstance",
            ] {
                if new.get(field) != old.get(field) {
                    errors.push(FieldError::immutable(
                        field,
                        new.get(field).cloned().unwrap_or(Value::Null),
                    ));
                }
            }
        }
        Kind::Crd if new.pointer("/spec/scope") != old.pointer("/spec/scope") => {
            errors.push(FieldError::immutable(
                "spec.scope",
                new.pointer("/spec/scope").cloned().unwrap_or(Value::Null),
            ));
        }
        _ => {}
    }
    errors
}

/// The resources a CRD serves: one per served version.
pub(crate) fn crd_resources(crd: &Value) -> Vec<ResourceInfo> {
    let text = |pointer: &str| {
        crd.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let strings = |pointer: &str| -> Vec<String> {
        crd.pointer(pointer)
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let group = text("/spec/group");
    let plural = text("/spec/names/plural");
    let kind = text("/spec/names/kind");
    let crd_name = text("/metadata/name");
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .map(|v| ResourceInfo {
            group: group.clone(),
            version: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            plural: plural.clone(),
            singular: {
                let s = text("/spec/names/singular");
                if s.is_empty() { kind.to_lowercase() } else { s }
            },
            kind: kind.clone(),
            namespaced: text("/spec/scope") == "Namespaced",
            short_names: strings("/spec/names/shortNames"),
            categories: strings("/spec/names/categories"),
            status_subresource: v.pointer("/subresources/status").is_some(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
            selectable_fields: v
                .get("selectableFields")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            rules: Kind::Custom,
            storage: StorageKey {
                group: group.clone(),
                plural: plural.clone(),
            },
            storage_version: storage_version.clone(),
            crd_name: Some(crd_name.clone()),
        })
        .collect()
}

/// The status the CRD controllers set once the names are accepted and the API is served.
pub(crate) fn crd_established_status(crd: &Value, now: &str) -> Value {
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let mut stored = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    let condition = |kind: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": now})
    };
    json!({
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({})),
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn info(group: &str, plural: &str) -> ResourceInfo {
        Registry::builtin()
            .get(group, "v1", plural)
            .cloned()
            .unwrap()
    }

    #[test]
    fn secrets_drop_unknown_fields_and_fold_string_data() {
        let secret = info("", "secrets");
        let (mut obj, lost) = decode(
            &secret,
            json!({"metadata": {"name": "s", "bogus": 1}, "stringData": {"token": "abc"}, "extra": true}),
        )
        .unwrap();
        assert_eq!(lost, vec!["extra".to_owned(), "metadata.bogus".to_owned()]);
        prepare_create(&secret, &mut obj);
        assert_eq!(obj["data"]["token"], "YWJj");
        assert_eq!(obj["type"], "Opaque");
        assert!(obj.get("stringData").is_none());
    }

    #[test]
    fn immutable_secrets_refuse_data_changes() {
        let secret = info("", "secrets");
        let old = json!({"type": "Opaque", "immutable": true, "data": {"a": "YQ=="}});
        let new = json!({"type": "Opaque", "immutable": true, "data": {"a": "Yg=="}});
        let errs = validate_update(&secret, &new, &old);
        assert_eq!(
            errs[0].message(),
            "data: Forbidden: field is immutable when `immutable` is set"
        );
    }

    #[test]
    fn bad_base64_is_a_bad_request() {
        let err = decode(&info("", "secrets"), json!({"data": {"a": "!!"}})).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .starts_with("Secret in version \"v1\" cannot be handled as a Secret")
        );
    }
}
