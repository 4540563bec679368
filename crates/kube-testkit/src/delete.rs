//! Deletion: preconditions, propagation policies (`Background`, `Foreground` and `Orphan`, as
//! the `foregroundDeletion` and `orphan` finalizers the garbage collector honours), finalizers
//! and `deletionTimestamp`, the namespaces that may not be deleted, and the answer (the object,
//! or a `Status` for built-in kinds deleted at once).

use serde_json::{Map, Value, json};

use super::crud::{
    Outcome, WriteRequest, after_remove, finalizers, is_deleting, meta_mut, meta_str,
    namespace_spec_pending,
};
use super::errors::{ApiError, ApiResult, FieldError};
use super::hooks::CRD_CLEANUP_FINALIZER;
use super::metadata::now;
use super::resources::Kind;
use super::store::State;

/// How a delete propagates to dependents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// The options of a DELETE (query and `DeleteOptions` body).
#[derive(Clone, Debug)]
pub(crate) struct DeleteOptions {
    pub propagation: Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// Background, no preconditions.
    pub fn background() -> Self {
        Self {
            propagation: Propagation::Background,
            uid: None,
            resource_version: None,
        }
    }

    /// From the query string and the body.
    pub fn parse(query: &[(String, String)], body: &[u8]) -> ApiResult<(Self, bool)> {
        let mut options = Self::background();
        let mut dry_run = false;
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        let policy = query
            .iter()
            .find(|(k, _)| k == "propagationPolicy")
            .map(|(_, v)| v.clone())
            .or_else(|| {
                body.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        let orphan = query
            .iter()
            .find(|(k, _)| k == "orphanDependents")
            .map(|(_, v)| v == "true")
            .or_else(|| body.get("orphanDependents").and_then(Value::as_bool));
        options.propagation = match (policy.as_deref(), orphan) {
            (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
            (Some("Foreground"), _) => Propagation::Foreground,
            (Some("Background") | None, _) => Propagation::Background,
            (Some(other), _) => {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "meta.k8s.io",
                    "",
                    &[FieldError::not_supported(
                        "propagationPolicy",
                        json!(other),
                        &[
                            "Foreground".into(),
                            "Background".into(),
                            "Orphan".into(),
                            "nil".into(),
                        ],
                    )],
                ));
            }
        };
        options.uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        options.resource_version = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if query.iter().any(|(k, v)| k == "dryRun" && v == "All")
            || body
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|l| !l.is_empty())
        {
            dry_run = true;
        }
        Ok((options, dry_run))
    }
}

/// The namespaces the namespace lifecycle admission never lets go.
const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// DELETE of one object.
pub(crate) fn delete(
    st: &mut State,
    rq: &WriteRequest,
    name: &str,
    options: &DeleteOptions,
) -> ApiResult<Outcome> {
    let info = &rq.info;
    let Some(stored) = st.get(&info.storage, &rq.namespace, name).cloned() else {
        return Err(ApiError::not_found(&rq.gr(), name));
    };
    let obj = info.served(&stored);
    if info.rules == Kind::Namespace && IMMORTAL_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            &rq.gr(),
            name,
            "this namespace may not be deleted",
        ));
    }
    if let Some(uid) = &options.uid
        && uid != meta_str(&obj, "uid")
    {
        return Err(ApiError::conflict(
            &rq.gr(),
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&obj, "uid")
            ),
        ));
    }
    if let Some(rv) = &options.resource_version
        && rv != meta_str(&obj, "resourceVersion")
    {
        return Err(ApiError::conflict(
            &rq.gr(),
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(&obj, "resourceVersion")
            ),
        ));
    }

    let mut fins = finalizers(&obj);
    let mut add = |f: &str| {
        if !fins.iter().any(|x| x == f) {
            fins.push(f.to_owned());
        }
    };
    match options.propagation {
        Propagation::Orphan => add("orphan"),
        Propagation::Foreground => add("foregroundDeletion"),
        Propagation::Background => {}
    }
    if info.rules == Kind::Crd {
        add(CRD_CLEANUP_FINALIZER);
    }
    let pending = !fins.is_empty() || namespace_spec_pending(&obj, info);
    if pending {
        let mut marked = obj.clone();
        let first = !is_deleting(&obj);
        {
            let meta = meta_mut(&mut marked);
            if !fins.is_empty() {
                meta.insert("finalizers".into(), json!(fins));
            }
            if first {
                meta.insert("deletionTimestamp".into(), Value::String(now()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
                if let Some(g) = meta.get("generation").and_then(Value::as_i64)
                    && g > 0
                {
                    meta.insert("generation".into(), json!(g + 1));
                }
            }
        }
        if info.rules == Kind::Namespace {
            marked["status"]["phase"] = json!("Terminating");
        }
        if info.rules == Kind::Crd && first {
            let condition = json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionPending",
                "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
                "lastTransitionTime": now()});
            match marked
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                Some(conditions) => conditions.push(condition),
                None => marked["status"]["conditions"] = json!([condition]),
            }
        }
        if marked == obj || rq.dry_run {
            return Ok(Outcome::ok(200, marked, Vec::new()));
        }
        let stored = st.put(&info.storage, &rq.namespace, name, info.stored(marked));
        return Ok(Outcome::ok(200, info.served(&stored), Vec::new()));
    }
    if rq.dry_run {
        return Ok(Outcome::ok(200, obj, Vec::new()));
    }
    let removed = st
        .remove(&info.storage, &rq.namespace, name)
        .unwrap_or(stored);
    after_remove(st, info, &removed);
    if info.returns_deleted_object() {
        return Ok(Outcome::ok(200, info.served(&removed), Vec::new()));
    }
    let mut details = Map::new();
    details.insert("name".into(), json!(name));
    if !info.group.is_empty() {
        details.insert("group".into(), json!(info.group));
    }
    details.insert("kind".into(), json!(info.plural));
    details.insert("uid".into(), json!(meta_str(&removed, "uid")));
    Ok(Outcome::ok(
        200,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": Value::Object(details)}),
        Vec::new(),
    ))
}
