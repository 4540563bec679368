//! Writes: create, update (PUT), patch (merge, JSON, strategic, apply) and delete, through one
//! pipeline in the API server's order: type and name checks, namespace lifecycle, decode (typed
//! round trip or prune and default), the resource's strategy (status reset, generation), system
//! fields, field ownership, validation, preconditions, then commit, or deletion when the last
//! finalizer of a deleting object goes.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::admission::{self, Permissions};
use super::apply::{self, Scope, Shape, Writer};
use super::errors::{ApiError, ApiResult, FieldError, GroupResource};
use super::hooks::{self, Endpoint};
use super::metadata::{
    generated_suffix, new_uid, now, validate_meta, validate_meta_update, validate_name,
};
use super::patch::{self, PatchType, accepted_patch_types};
use super::resources::{Kind, ResourceInfo, StorageKey};
use super::schema;
use super::store::State;

/// What the client asked for about unknown fields (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// One write request.
#[derive(Clone, Debug)]
pub(crate) struct WriteRequest {
    pub info: ResourceInfo,
    /// Empty for cluster-scoped resources.
    pub namespace: String,
    pub manager: String,
    /// Whether `fieldManager` was given (apply requires it).
    pub explicit_manager: bool,
    pub dry_run: bool,
    pub endpoint: Endpoint,
    pub field_validation: FieldValidation,
    /// Who asks.
    pub user: String,
    /// What the caller may do, when the server was told to restrict it (`None`: anything).
    pub permissions: Option<Arc<Permissions>>,
}

impl WriteRequest {
    /// A write by the server's own controllers.
    pub fn internal(info: ResourceInfo, namespace: &str, manager: &str) -> Self {
        Self {
            info,
            namespace: namespace.to_owned(),
            manager: manager.to_owned(),
            explicit_manager: true,
            dry_run: false,
            endpoint: Endpoint::Main,
            field_validation: FieldValidation::Ignore,
            user: manager.to_owned(),
            permissions: None,
        }
    }

    fn scope(&self) -> Scope {
        match self.endpoint {
            Endpoint::Status => Scope::Status,
            Endpoint::Main | Endpoint::Finalize => Scope::Main {
                status_separate: self.info.status_subresource,
            },
        }
    }

    fn writer(&self) -> Writer {
        Writer {
            manager: self.manager.clone(),
            api_version: self.info.api_version(),
            subresource: self.endpoint.subresource().to_owned(),
        }
    }

    pub(super) fn gr(&self) -> GroupResource<'_> {
        self.info.gr()
    }
}

/// A successful write: the HTTP status, the body, and `Warning` headers.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub status: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

impl Outcome {
    pub(super) fn ok(status: u16, body: Value, warnings: Vec<String>) -> Self {
        Self {
            status,
            body,
            warnings,
        }
    }
}

/// How field ownership of a write is decided.
enum Ownership {
    /// An `Update` by the request's manager: it owns what it changed.
    Update,
    /// Computed by server-side apply.
    Applied(Vec<apply::ManagedEntry>),
}

pub(super) fn meta_str<'v>(obj: &'v Value, field: &str) -> &'v str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn ensure_metadata(obj: &mut Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
}

pub(super) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    ensure_metadata(obj);
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(meta) => meta,
        None => unreachable!("ensure_metadata made metadata an object"),
    }
}

/// Checks (or fills in) `apiVersion` and `kind` against the endpoint.
fn check_type_meta(info: &ResourceInfo, obj: &mut Value, required: bool) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    let expected_version = info.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v == expected_version => {}
        Some(v) if !v.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )));
        }
        _ if required => {
            return Err(ApiError::bad_request(format!(
                "Object 'apiVersion' is missing in '{}'",
                obj
            )));
        }
        _ => obj["apiVersion"] = Value::String(expected_version),
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k == info.kind => {}
        Some(k) if !k.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({k}) does not match the kind of the request ({})",
                info.kind
            )));
        }
        _ if required => {
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{}'",
                obj
            )));
        }
        _ => obj["kind"] = Value::String(info.kind.clone()),
    }
    ensure_metadata(obj);
    Ok(())
}

fn check_namespace(rq: &WriteRequest, obj: &mut Value) -> ApiResult<()> {
    let meta = meta_mut(obj);
    if rq.info.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != rq.namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), Value::String(rq.namespace.clone()));
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

fn check_url_name(obj: &Value, name: &str) -> ApiResult<()> {
    let body_name = meta_str(obj, "name");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

fn namespace_key() -> StorageKey {
    StorageKey {
        group: String::new(),
        plural: "namespaces".into(),
    }
}

pub(super) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

pub(super) fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// How admission names the object of a create in its errors: by its name, else its
/// `generateName` (no name is generated yet), else `Unknown`.
fn admission_name(obj: &Value) -> &str {
    [meta_str(obj, "name"), meta_str(obj, "generateName")]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or("Unknown")
}

/// The namespace lifecycle admission of creates (including those of server-side apply and of
/// an update that creates): no objects in missing or terminating namespaces. Updates, patches
/// and deletions of existing objects pass, as the real plugin lets them (a terminating
/// namespace's objects must be able to lose their finalizers).
fn admit_namespace(st: &State, rq: &WriteRequest, name: &str) -> ApiResult<()> {
    if !rq.info.namespaced {
        return Ok(());
    }
    match st.get(&namespace_key(), "", &rq.namespace) {
        None => Err(ApiError::not_found(
            &GroupResource {
                group: "",
                resource: "namespaces",
            },
            &rq.namespace,
        )),
        Some(ns) if is_deleting(ns) => Err(ApiError::forbidden(
            &rq.gr(),
            name,
            &format!(
                "unable to create new content in namespace {} because it is being terminated",
                rq.namespace
            ),
        )
        .with_cause(
            "NamespaceTerminating",
            &format!("namespace {} is being terminated", rq.namespace),
            "metadata.namespace",
        )),
        Some(_) => Ok(()),
    }
}

/// Whether the CRD behind a custom resource is being deleted.
fn crd_terminating(st: &State, info: &ResourceInfo) -> bool {
    let Some(crd_name) = &info.crd_name else {
        return false;
    };
    let key = StorageKey {
        group: "apiextensions.k8s.io".into(),
        plural: "customresourcedefinitions".into(),
    };
    st.get(&key, "", crd_name).is_some_and(is_deleting)
}

fn unknown_fields(rq: &WriteRequest, lost: &[String]) -> ApiResult<Vec<String>> {
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let described: Vec<String> = lost
        .iter()
        .map(|p| format!("unknown field {}", super::errors::go_quote(p)))
        .collect();
    match rq.field_validation {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(described),
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            described.join(", ")
        ))),
    }
}

/// Schema errors, then the CEL rules' (transition rules only when `old` is given).
fn schema_errors(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    match (&info.rules, &info.schema) {
        (Kind::Custom, Some(schema)) => {
            let mut errors = schema::validate(obj, schema);
            errors.extend(super::cel::validate(obj, old, schema));
            errors
        }
        _ => Vec::new(),
    }
}

fn encode_ownership(obj: &mut Value, entries: &[apply::ManagedEntry]) {
    let meta = meta_mut(obj);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), apply::encode_entries(entries));
    }
}

/// Keeps the old `time` of entries whose fields did not change, so a write that changes nothing
/// stays a no-op.
fn keep_unchanged_times(entries: &mut [apply::ManagedEntry], old: &[apply::ManagedEntry]) {
    for entry in entries.iter_mut() {
        if let Some(previous) = old.iter().find(|o| {
            o.manager == entry.manager
                && o.operation == entry.operation
                && o.api_version == entry.api_version
                && o.subresource == entry.subresource
                && o.fields == entry.fields
        }) {
            entry.time = previous.time.clone();
        }
    }
}

fn without_metadata(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
    }
    copy
}

/// After a CRD is stored: serve its resources, and set the status its controllers would.
fn after_commit(st: &mut State, info: &ResourceInfo, stored: &Value) {
    if info.rules != Kind::Crd {
        return;
    }
    let name = meta_str(stored, "name").to_owned();
    st.registry
        .register_crd(&name, hooks::crd_resources(stored));
    let wanted = hooks::crd_established_status(stored, &now());
    let same_conditions = stored
        .pointer("/status/acceptedNames")
        .is_some_and(|n| Some(n) == wanted.get("acceptedNames"))
        && stored.pointer("/status/storedVersions") == wanted.get("storedVersions")
        && stored
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Established"));
    if !same_conditions && !is_deleting(stored) {
        let mut updated = stored.clone();
        let conditions = stored.pointer("/status/conditions").cloned();
        updated["status"] = wanted;
        if let Some(Value::Array(old)) = conditions {
            // Keep any other condition (Terminating) as it was.
            if let Some(new) = updated
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in old {
                    if !new.iter().any(|n| n["type"] == c["type"]) {
                        new.push(c);
                    }
                }
            }
        }
        st.put(&info.storage, "", &name, updated);
    }
}

/// POST.
pub(crate) fn create(st: &mut State, rq: &WriteRequest, body: Value) -> ApiResult<Outcome> {
    create_with(st, rq, body, Ownership::Update)
}

fn create_with(
    st: &mut State,
    rq: &WriteRequest,
    mut obj: Value,
    ownership: Ownership,
) -> ApiResult<Outcome> {
    let info = &rq.info;
    check_type_meta(info, &mut obj, false)?;
    check_namespace(rq, &mut obj)?;
    // The custom resource handler refuses creates while the CRD terminates, before decoding.
    if crd_terminating(st, info) {
        return Err(ApiError::method_not_supported(&rq.gr(), "create"));
    }
    let (mut obj, lost) = hooks::decode(info, obj)?;
    let warnings = unknown_fields(rq, &lost)?;
    // Admission runs on the decoded object, before the storage generates a name, validates or
    // checks the resourceVersion.
    admit_namespace(st, rq, admission_name(&obj))?;
    let mut name = meta_str(&obj, "name").to_owned();
    if name.is_empty() {
        let generate = meta_str(&obj, "generateName").to_owned();
        if generate.is_empty() {
            return Err(ApiError::invalid(
                &info.kind,
                &info.group,
                "",
                &[FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        name = format!("{generate}{}", generated_suffix());
        meta_mut(&mut obj).insert("name".into(), Value::String(name.clone()));
    }
    if !meta_str(&obj, "resourceVersion").is_empty() {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    hooks::prepare_create(info, &mut obj);

    let timestamp = now();
    {
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), Value::String(new_uid()));
        meta.insert("creationTimestamp".into(), Value::String(timestamp.clone()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("selfLink");
        meta.remove("resourceVersion");
        if info.has_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    let shape = Shape {
        schema: info.schema.as_deref(),
    };
    let entries = match ownership {
        Ownership::Update => {
            let mut entries = Vec::new();
            apply::record_update(
                &mut entries,
                None,
                &obj,
                &shape,
                rq.scope(),
                &rq.writer(),
                &timestamp,
            );
            entries
        }
        Ownership::Applied(mut entries) => {
            apply::prune_entries(&mut entries, &obj, &shape);
            entries
        }
    };
    encode_ownership(&mut obj, &entries);

    admission::owner_references(&st.registry, rq, &name, &obj, None)?;
    let mut errors = validate_name(&name, info.rules == Kind::Namespace);
    errors.extend(validate_meta(&obj["metadata"]));
    errors.extend(hooks::validate_create(info, &obj));
    errors.extend(schema_errors(info, &obj, None));
    if !errors.is_empty() {
        return Err(ApiError::invalid(&info.kind, &info.group, &name, &errors));
    }
    if let Some(existing) = st.get(&info.storage, &rq.namespace, &name) {
        let mut error = ApiError::already_exists(&rq.gr(), &name);
        if is_deleting(existing) {
            error.message = format!("object is being deleted: {}", error.message);
        }
        return Err(error);
    }
    if rq.dry_run {
        return Ok(Outcome::ok(201, obj, warnings));
    }
    let stored = st.put(&info.storage, &rq.namespace, &name, info.stored(obj));
    after_commit(st, info, &stored);
    Ok(Outcome::ok(201, info.served(&stored), warnings))
}

/// PUT.
pub(crate) fn update(
    st: &mut State,
    rq: &WriteRequest,
    name: &str,
    mut body: Value,
) -> ApiResult<Outcome> {
    check_type_meta(&rq.info, &mut body, false)?;
    check_namespace(rq, &mut body)?;
    check_url_name(&body, name)?;
    let Some(stored) = st.get(&rq.info.storage, &rq.namespace, name).cloned() else {
        if rq.info.allow_create_on_update() && rq.endpoint == Endpoint::Main {
            if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            return create(st, rq, body);
        }
        return Err(ApiError::not_found(&rq.gr(), name));
    };
    if meta_str(&body, "resourceVersion").is_empty() && !rq.info.allow_unconditional_update() {
        return Err(ApiError::invalid(
            &rq.info.kind,
            &rq.info.group,
            name,
            &[FieldError::invalid(
                "metadata.resourceVersion",
                json!("0x0"),
                "must be specified for an update",
            )],
        ));
    }
    update_existing(st, rq, &stored, body, Ownership::Update)
}

fn update_existing(
    st: &mut State,
    rq: &WriteRequest,
    stored: &Value,
    mut new: Value,
    ownership: Ownership,
) -> ApiResult<Outcome> {
    let info = &rq.info;
    let old = info.served(stored);
    let name = meta_str(&old, "name").to_owned();
    ensure_metadata(&mut new);

    let new_rv = meta_str(&new, "resourceVersion");
    if !new_rv.is_empty() && new_rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(&rq.gr(), &name));
    }
    let new_uid = meta_str(&new, "uid");
    if !new_uid.is_empty() && new_uid != meta_str(&old, "uid") {
        return Err(ApiError::conflict(
            &rq.gr(),
            &name,
            &format!(
                "Precondition failed: UID in precondition: {new_uid}, UID in object meta: {}",
                meta_str(&old, "uid")
            ),
        ));
    }
    let explicit_fields = new.pointer("/metadata/managedFields").cloned();

    let (mut new, lost) = hooks::decode(info, new)?;
    let warnings = unknown_fields(rq, &lost)?;
    hooks::prepare_update(info, rq.endpoint, &mut new, &old);

    {
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let meta = meta_mut(&mut new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => {
                    meta.insert(field.into(), v.clone());
                }
                None => {
                    meta.remove(field);
                }
            }
        }
        meta.remove("selfLink");
    }
    // Only the main endpoint's strategy bumps the generation (status writes never do).
    if info.has_generation()
        && rq.endpoint == Endpoint::Main
        && without_metadata(&new) != without_metadata(&old)
    {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
    }

    let shape = Shape {
        schema: info.schema.as_deref(),
    };
    let timestamp = now();
    let old_entries = apply::decode_entries(&old);
    let mut entries = match ownership {
        Ownership::Applied(mut entries) => {
            apply::prune_entries(&mut entries, &new, &shape);
            entries
        }
        Ownership::Update => {
            let reset = match &explicit_fields {
                // An explicitly empty list resets ownership; a changed one is taken as given.
                Some(Value::Array(list)) if list.is_empty() => Some(Vec::new()),
                Some(given) if Some(given) != old.pointer("/metadata/managedFields") => Some(
                    apply::decode_entries(&json!({"metadata": {"managedFields": given}})),
                ),
                _ => None,
            };
            match reset {
                Some(entries) => entries,
                None => {
                    let mut entries = old_entries.clone();
                    apply::record_update(
                        &mut entries,
                        Some(&old),
                        &new,
                        &shape,
                        rq.scope(),
                        &rq.writer(),
                        &timestamp,
                    );
                    entries
                }
            }
        }
    };
    keep_unchanged_times(&mut entries, &old_entries);
    encode_ownership(&mut new, &entries);

    admission::owner_references(&st.registry, rq, &name, &new, Some(&old))?;
    let mut errors = validate_meta_update(&new["metadata"], &old["metadata"]);
    errors.extend(hooks::validate_update(info, &new, &old));
    let old_schema_errors: Vec<String> = schema_errors(info, &old, None)
        .iter()
        .map(FieldError::message)
        .collect();
    // Ratcheting: an invalid value the object already had does not fail the update.
    errors.extend(
        schema_errors(info, &new, Some(&old))
            .into_iter()
            .filter(|e| !old_schema_errors.contains(&e.message())),
    );
    if !errors.is_empty() {
        return Err(ApiError::invalid(&info.kind, &info.group, &name, &errors));
    }

    if new == old {
        return Ok(Outcome::ok(200, old, warnings));
    }
    if rq.dry_run {
        return Ok(Outcome::ok(200, new, warnings));
    }
    if is_deleting(&new) && finalizers(&new).is_empty() && !namespace_spec_pending(&new, info) {
        // The update is not stored: the object is deleted as it was (watchers get it in the
        // DELETED event, finalizers included), and the answer is the update that emptied its
        // finalizers, at the old resourceVersion.
        let removed = st
            .remove(&info.storage, &rq.namespace, &name)
            .unwrap_or_else(|| stored.clone());
        after_remove(st, info, &removed);
        return Ok(Outcome::ok(200, new, warnings));
    }
    let stored = st.put(&info.storage, &rq.namespace, &name, info.stored(new));
    after_commit(st, info, &stored);
    Ok(Outcome::ok(200, info.served(&stored), warnings))
}

/// Whether a namespace still waits for its `spec.finalizers`.
pub(super) fn namespace_spec_pending(obj: &Value, info: &ResourceInfo) -> bool {
    info.rules == Kind::Namespace
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

/// After an object is really gone: unregister a CRD's resources.
pub(super) fn after_remove(st: &mut State, info: &ResourceInfo, removed: &Value) {
    if info.rules == Kind::Crd {
        let name = meta_str(removed, "name").to_owned();
        st.registry.unregister_crd(&name);
    }
}

fn parse_patch_body(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// PATCH.
pub(crate) fn patch(
    st: &mut State,
    rq: &WriteRequest,
    name: &str,
    patch_type: Option<PatchType>,
    body: &[u8],
    force: bool,
) -> ApiResult<Outcome> {
    let custom = rq.info.rules == Kind::Custom;
    let patch_type = match patch_type {
        Some(PatchType::Strategic) if custom => None,
        other => other,
    };
    let Some(patch_type) = patch_type else {
        return Err(ApiError::unsupported_media_type(&accepted_patch_types(
            custom,
        )));
    };
    if force && patch_type != PatchType::Apply {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            &[FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )],
        ));
    }
    if patch_type == PatchType::Apply {
        return apply_patch(st, rq, name, body, force);
    }
    let Some(stored) = st.get(&rq.info.storage, &rq.namespace, name).cloned() else {
        return Err(ApiError::not_found(&rq.gr(), name));
    };
    let patch_value = parse_patch_body(body)?;
    let mut patched = rq.info.served(&stored);
    match patch_type {
        PatchType::Merge => {
            if !patch_value.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal into Go value of type map[string]interface {}",
                ));
            }
            patch::merge_patch(&mut patched, &patch_value);
        }
        PatchType::Json => patch::json_patch(&mut patched, &patch_value)?,
        PatchType::Strategic => patch::strategic_merge_patch(&mut patched, &patch_value)?,
        PatchType::Apply => {}
    }
    check_type_meta(&rq.info, &mut patched, false)?;
    check_url_name(&patched, name)?;
    update_existing(st, rq, &stored, patched, Ownership::Update)
}

fn apply_patch(
    st: &mut State,
    rq: &WriteRequest,
    name: &str,
    body: &[u8],
    force: bool,
) -> ApiResult<Outcome> {
    if !rq.explicit_manager {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            &[FieldError::required(
                "fieldManager",
                "is required for apply patch",
            )],
        ));
    }
    let mut applied: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
    };
    check_type_meta(&rq.info, &mut applied, true)?;
    if meta_str(&applied, "name").is_empty() {
        meta_mut(&mut applied).insert("name".into(), Value::String(name.to_owned()));
    }
    check_url_name(&applied, name)?;
    check_namespace(rq, &mut applied)?;
    apply::clean_applied(&mut applied);
    apply::restrict_to_scope(&mut applied, rq.scope());

    let shape = Shape {
        schema: rq.info.schema.as_deref(),
    };
    let timestamp = now();
    let Some(stored) = st.get(&rq.info.storage, &rq.namespace, name).cloned() else {
        if rq.endpoint != Endpoint::Main {
            return Err(ApiError::not_found(&rq.gr(), name));
        }
        let mut entries = Vec::new();
        let created = apply::apply(
            &json!({}),
            &applied,
            &shape,
            rq.scope(),
            &rq.writer(),
            force,
            &mut entries,
            &timestamp,
        )
        .map_err(|c| apply::conflict_error(&c))?;
        return create_with(st, rq, created, Ownership::Applied(entries));
    };
    let live = rq.info.served(&stored);
    let mut entries = apply::decode_entries(&live);
    let merged = apply::apply(
        &live,
        &applied,
        &shape,
        rq.scope(),
        &rq.writer(),
        force,
        &mut entries,
        &timestamp,
    )
    .map_err(|c| apply::conflict_error(&c))?;
    update_existing(st, rq, &stored, merged, Ownership::Applied(entries))
}

/// An update by the server's own controllers (garbage collector, namespace controller): the same
/// pipeline as a client's update, without a resourceVersion precondition.
pub(crate) fn internal_update(
    st: &mut State,
    rq: &WriteRequest,
    stored: &Value,
    new: Value,
) -> ApiResult<Outcome> {
    update_existing(st, rq, stored, new, Ownership::Update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delete::{self, DeleteOptions};
    use crate::test_support::{store, write_request as request};

    /// Namespace `t1` with a ConfigMap `held` that has a finalizer, being deleted.
    fn terminating(st: &mut State) {
        let namespaces = request(st, "", "namespaces", "");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t1"}});
        create(st, &namespaces, ns).unwrap();
        let held = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]}});
        create(st, &request(st, "", "configmaps", "t1"), held).unwrap();
        let deleted = delete::delete(st, &namespaces, "t1", &DeleteOptions::background()).unwrap();
        assert_eq!(deleted.body["status"]["phase"], "Terminating");
    }

    fn refused(result: ApiResult<Outcome>, resource: &str, name: &str) {
        let error = result.expect_err("a create in a terminating namespace");
        assert_eq!((error.code, error.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            error.message,
            format!(
                "{resource} \"{name}\" is forbidden: unable to create new content in namespace t1 because it is being terminated"
            )
        );
        let details = Value::Object(error.details.unwrap());
        assert_eq!(details["name"], name);
        assert_eq!(
            details["causes"],
            json!([{"reason": "NamespaceTerminating", "message": "namespace t1 is being terminated",
                "field": "metadata.namespace"}])
        );
    }

    #[test]
    fn a_terminating_namespace_refuses_every_kind_of_create() {
        let store = store();
        let st = &mut store.lock();
        terminating(st);
        let configmaps = request(st, "", "configmaps", "t1");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}});
        refused(create(st, &configmaps, cm), "configmaps", "new");
        // Admission runs before a name is generated, and before validation.
        let cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}});
        refused(create(st, &configmaps, cm), "configmaps", "gen-");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        refused(create(st, &configmaps, cm), "configmaps", "Unknown");

        let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev1"},
            "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "t1", "name": "held"},
            "reason": "Test", "message": "m", "type": "Normal", "count": 1,
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z",
            "source": {"component": "test"}});
        let events = request(st, "", "events", "t1");
        refused(create(st, &events, event), "events", "ev1");
        let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "ev2"}, "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingController": "example.com/test", "reportingInstance": "test-1",
            "action": "Testing", "reason": "Test", "note": "m", "type": "Normal",
            "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "t1", "name": "held"}});
        let events = request(st, "events.k8s.io", "events", "t1");
        refused(create(st, &events, event), "events.events.k8s.io", "ev2");

        // Server-side apply of an object that does not exist creates it.
        let applied =
            br#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}}"#;
        refused(
            patch(
                st,
                &configmaps,
                "applied",
                Some(PatchType::Apply),
                applied,
                false,
            ),
            "configmaps",
            "applied",
        );
        assert!(st.get(&configmaps.info.storage, "t1", "applied").is_none());

        // The namespace itself cannot be created again while it goes.
        let namespaces = request(st, "", "namespaces", "");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t1"}});
        let error = create(st, &namespaces, ns).unwrap_err();
        assert_eq!((error.code, error.reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(
            error.message,
            "object is being deleted: namespaces \"t1\" already exists"
        );
    }

    #[test]
    fn a_terminating_namespace_lets_existing_objects_change() {
        let store = store();
        let st = &mut store.lock();
        terminating(st);
        let configmaps = request(st, "", "configmaps", "t1");
        let labelled = patch(
            st,
            &configmaps,
            "held",
            Some(PatchType::Merge),
            br#"{"metadata": {"labels": {"x": "y"}}}"#,
            false,
        )
        .unwrap();
        assert_eq!(labelled.status, 200);
        assert_eq!(labelled.body["metadata"]["labels"], json!({"x": "y"}));
        let applied = br#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "labels": {"z": "w"}}}"#;
        let applied = patch(
            st,
            &configmaps,
            "held",
            Some(PatchType::Apply),
            applied,
            false,
        )
        .unwrap();
        assert_eq!(
            applied.body["metadata"]["labels"],
            json!({"x": "y", "z": "w"})
        );
        let mut put = applied.body.clone();
        put["data"] = json!({"k": "v"});
        let updated = update(st, &configmaps, "held", put).unwrap();
        assert_eq!(updated.body["data"], json!({"k": "v"}));

        // Deletions pass too; once its last finalizer is gone, the object goes.
        let marked = delete::delete(st, &configmaps, "held", &DeleteOptions::background()).unwrap();
        assert!(is_deleting(&marked.body));
        let released = patch(
            st,
            &configmaps,
            "held",
            Some(PatchType::Merge),
            br#"{"metadata": {"finalizers": null}}"#,
            false,
        )
        .unwrap();
        assert_eq!(released.status, 200);
        assert_eq!(released.body["metadata"].get("finalizers"), None);
        assert_eq!(
            released.body["metadata"]["resourceVersion"],
            marked.body["metadata"]["resourceVersion"]
        );
        assert!(st.get(&configmaps.info.storage, "t1", "held").is_none());
    }
}
