//! Admission the test server applies to callers it was told to restrict (see
//! [`TestApiServer::restrict`](super::TestApiServer::restrict)): the rule of the
//! `OwnerReferencesPermissionEnforcement` plugin, which OpenShift enables by default. Changing
//! an object's `ownerReferences` needs `delete` on the object (except on create), and a
//! reference that newly sets `blockOwnerDeletion: true` needs `update` on the owner's
//! `finalizers` subresource — otherwise the write is refused with 403, as that plugin does.
//!
//! The same permissions are the caller's RBAC: a resource request they lack is refused with
//! the authorizer's 403 before anything else (see `routes`), and every permission a request or
//! an admission check used is remembered, so a test can compare what was used with what was
//! granted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::crud::WriteRequest;
use super::errors::{ApiError, ApiResult};
use super::resources::Registry;

/// One permitted (API group, resource, verb); `*` matches anything.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// API group (`""` is the core group).
    pub group: String,
    /// Resource, with `/subresource` where it is one (`authorizations/finalizers`).
    pub resource: String,
    /// Verb.
    pub verb: String,
}

impl Permission {
    /// A permission.
    pub fn new(group: &str, resource: &str, verb: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
            verb: verb.to_owned(),
        }
    }

    fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        let matches = |have: &str, want: &str| have == "*" || have == want;
        matches(&self.group, group)
            && matches(&self.resource, resource)
            && matches(&self.verb, verb)
    }
}

/// What a restricted caller may do, and which of it the caller has used: every request and
/// every admission check of a restricted user asks here.
#[derive(Clone, Debug, Default)]
pub struct Permissions {
    table: Vec<Permission>,
    used: Arc<Mutex<BTreeSet<Permission>>>,
}

impl Permissions {
    pub(crate) fn new(table: Vec<Permission>) -> Self {
        Self {
            table,
            used: Arc::default(),
        }
    }

    /// Whether the table allows it; an allowed permission is remembered as used.
    pub(crate) fn allow(&self, group: &str, resource: &str, verb: &str) -> bool {
        let allowed = self.table.iter().any(|p| p.allows(group, resource, verb));
        if allowed {
            self.used
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(Permission::new(group, resource, verb));
        }
        allowed
    }

    /// Every permission used so far.
    pub(crate) fn used(&self) -> Vec<Permission> {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// `(uid, blockOwnerDeletion)` of each owner reference of an object.
fn references(obj: Option<&Value>) -> Vec<(String, bool, Value)> {
    obj.and_then(|o| o.pointer("/metadata/ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .map(|r| {
                    (
                        r["uid"].as_str().unwrap_or_default().to_owned(),
                        r["blockOwnerDeletion"].as_bool().unwrap_or(false),
                        r.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The plugin's check of a create (`old` is `None`) or an update of `new`.
pub(crate) fn owner_references(
    registry: &Registry,
    rq: &WriteRequest,
    name: &str,
    new: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let Some(permissions) = &rq.permissions else {
        return Ok(());
    };
    let before = references(old);
    let after = references(Some(new));
    let strip = |refs: &[(String, bool, Value)]| -> Vec<Value> {
        refs.iter().map(|(_, _, r)| r.clone()).collect()
    };
    if strip(&before) == strip(&after) {
        return Ok(());
    }
    let info = &rq.info;
    if old.is_some() && !permissions.allow(&info.group, &info.plural, "delete") {
        return Err(ApiError::forbidden(
            &info.gr(),
            name,
            "cannot set an ownerRef on a resource you can't delete",
        ));
    }
    for (uid, blocking, reference) in &after {
        let was_blocking = before.iter().any(|(u, b, _)| u == uid && *b);
        if !*blocking || was_blocking {
            continue;
        }
        let api_version = reference["apiVersion"].as_str().unwrap_or_default();
        let kind = reference["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let owner = registry
            .all()
            .find(|r| r.group == group && r.version == version && r.kind == kind);
        let allowed = owner.is_some_and(|owner| {
            permissions.allow(group, &format!("{}/finalizers", owner.plural), "update")
        });
        if !allowed {
            let resource = owner.map_or_else(|| kind.to_lowercase(), |o| o.plural.clone());
            return Err(ApiError::forbidden(
                &info.gr(),
                name,
                &format!(
                    "cannot set blockOwnerDeletion if an ownerReference refers to a resource you \
                     can't set finalizers on: User {:?} cannot update resource \
                     \"{resource}/finalizers\" in API group {group:?} in the namespace {:?}",
                    rq.user, rq.namespace
                ),
            ));
        }
    }
    Ok(())
}
