//! The controllers a real cluster runs that the tested behaviour depends on, as background tasks:
//! the garbage collector (owner references: dependents of a removed owner are deleted in the
//! background, dangling references are dropped while another owner remains, `orphan` and
//! `foregroundDeletion` finalizers are honoured), the namespace controller (a terminating
//! namespace is emptied, then removed), the CRD finalizer (a deleted CRD's custom resources are
//! deleted first), and the bookmark ticker of watches.
//!
//! Like the real ones they act asynchronously: shortly after a change wakes them (`gc_delay`) and
//! at least twice a second.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::crud::{self, WriteRequest};
use super::delete::{self, DeleteOptions, Propagation};
use super::hooks::{CRD_CLEANUP_FINALIZER, Endpoint, NAMESPACE_FINALIZER};
use super::resources::StorageKey;
use super::store::{ChangeType, ObjKey, State, Store};

/// The field manager of the server's controllers.
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// How often the controllers look even when nothing woke them.
const RESYNC: Duration = Duration::from_millis(500);

/// Cascades (namespace → objects → their dependents) settle within a few passes.
const MAX_PASSES: usize = 8;

/// Runs the controllers until shutdown.
pub(crate) async fn run_controllers(store: Arc<Store>) {
    let mut shutdown = store.shutdown.clone();
    // Every change up to this version has been looked at and needed nothing more.
    let mut seen = 0;
    loop {
        tokio::select! {
            () = store.gc_wake.notified() => tokio::time::sleep(store.config.gc_delay).await,
            () = tokio::time::sleep(RESYNC) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        let mut st = store.lock();
        if st.rv == seen {
            // The passes depend on the stored objects only: nothing new, nothing to do.
            continue;
        }
        let mut scope = Scope::since(&st, seen);
        for _ in 0..MAX_PASSES {
            if !pass(&mut st, &scope) {
                seen = st.rv;
                break;
            }
            // What this pass deleted can cascade anywhere.
            scope = Scope::Everything;
        }
    }
}

/// What a pass looks at.
enum Scope {
    /// Every object: something was deleted or began deleting, or the history is gone.
    Everything,
    /// Only these objects with owner references, created or changed since the last pass:
    /// nothing was deleted meanwhile, so only their own references can need work. Keeps a
    /// write from costing a scan of the whole store.
    Changed(Vec<(StorageKey, ObjKey)>),
}

impl Scope {
    fn since(st: &State, seen: u64) -> Self {
        let Ok(changes) = st.changes_since(seen) else {
            return Self::Everything;
        };
        let mut changed = Vec::new();
        for change in &changes {
            if change.kind == ChangeType::Deleted || is_deleting(&change.object) {
                return Self::Everything;
            }
            if !owner_refs(&change.object).is_empty() {
                let obj_key = (change.namespace.clone(), change.name.clone());
                changed.push((change.storage.clone(), obj_key));
            }
        }
        changed.sort();
        changed.dedup();
        Self::Changed(changed)
    }
}

/// Sends the bookmark ticks of watches until shutdown.
pub(crate) async fn run_ticker(store: Arc<Store>) {
    let mut shutdown = store.shutdown.clone();
    let mut interval = tokio::time::interval(store.config.bookmark_interval);
    loop {
        tokio::select! {
            _ = interval.tick() => store.lock().tick(),
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

fn text<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn has_finalizer(obj: &Value, name: &str) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == name))
}

fn owner_refs(obj: &Value) -> &[Value] {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Visits every stored object by reference. The passes collect the few objects they act on
/// and act afterwards: copying the store on every pass made each write cost O(objects).
fn scan<'s>(st: &'s State, mut visit: impl FnMut(&StorageKey, &'s ObjKey, &'s Value)) {
    for key in st.storage_keys() {
        for (obj_key, obj) in st.iter(&key, None) {
            visit(&key, obj_key, obj);
        }
    }
}

fn request(st: &State, key: &StorageKey, namespace: &str) -> Option<WriteRequest> {
    let info = st.registry.any_for_storage(key)?.clone();
    Some(WriteRequest::internal(info, namespace, CONTROLLER_MANAGER))
}

/// Deletes an object like a controller would; returns whether anything changed.
fn delete(st: &mut State, key: &StorageKey, obj_key: &ObjKey, propagation: Propagation) -> bool {
    let Some(rq) = request(st, key, &obj_key.0) else {
        return false;
    };
    let before = st.rv;
    let options = DeleteOptions {
        propagation,
        ..DeleteOptions::background()
    };
    if let Err(e) = delete::delete(st, &rq, &obj_key.1, &options) {
        tracing::debug!(name = %obj_key.1, error = %e.message, "controller delete failed");
    }
    st.rv != before
}

/// Updates a stored object with `change` applied to its stored form; returns whether anything
/// changed.
fn update(
    st: &mut State,
    key: &StorageKey,
    obj_key: &ObjKey,
    endpoint: Endpoint,
    change: impl FnOnce(&mut Value),
) -> bool {
    let Some(mut rq) = request(st, key, &obj_key.0) else {
        return false;
    };
    rq.endpoint = endpoint;
    let Some(stored) = st.get(key, &obj_key.0, &obj_key.1).cloned() else {
        return false;
    };
    let mut new = rq.info.served(&stored);
    change(&mut new);
    let before = st.rv;
    if let Err(e) = crud::internal_update(st, &rq, &stored, new) {
        tracing::debug!(name = %obj_key.1, error = %e.message, "controller update failed");
    }
    st.rv != before
}

fn remove_finalizer(obj: &mut Value, name: &str) {
    if let Some(list) = obj
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f != name);
    }
}

/// One pass of every controller over `scope`; returns whether it changed anything.
fn pass(st: &mut State, scope: &Scope) -> bool {
    match scope {
        Scope::Everything => {
            let mut changed = false;
            changed |= namespaces(st);
            changed |= crd_cleanup(st);
            changed |= owner_finalizers(st);
            changed |= dependents(st, None);
            changed
        }
        Scope::Changed(objects) => dependents(st, Some(objects)),
    }
}

/// Empties terminating namespaces, then finalizes them.
fn namespaces(st: &mut State) -> bool {
    let ns_key = StorageKey {
        group: String::new(),
        plural: "namespaces".into(),
    };
    let mut changed = false;
    for ((_, ns), namespace) in st.list(&ns_key, None) {
        if !is_deleting(&namespace) {
            continue;
        }
        let mut remaining = 0;
        let mut doomed = Vec::new();
        for key in st.storage_keys() {
            if key == ns_key {
                continue;
            }
            for (obj_key, obj) in st.iter(&key, Some(&ns)) {
                remaining += 1;
                if !is_deleting(obj) {
                    doomed.push((key.clone(), obj_key.clone()));
                }
            }
        }
        for (key, obj_key) in doomed {
            changed |= delete(st, &key, &obj_key, Propagation::Background);
        }
        let finalizer_pending = namespace
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == NAMESPACE_FINALIZER));
        if remaining == 0 && finalizer_pending {
            changed |= update(
                st,
                &ns_key,
                &(String::new(), ns.clone()),
                Endpoint::Finalize,
                |obj| {
                    if let Some(list) = obj
                        .pointer_mut("/spec/finalizers")
                        .and_then(Value::as_array_mut)
                    {
                        list.retain(|f| f != NAMESPACE_FINALIZER);
                    }
                },
            );
        }
    }
    changed
}

/// Deletes the custom resources of deleted CRDs, then lets the CRDs go.
fn crd_cleanup(st: &mut State) -> bool {
    let crd_key = StorageKey {
        group: "apiextensions.k8s.io".into(),
        plural: "customresourcedefinitions".into(),
    };
    let mut changed = false;
    for (crd_obj_key, crd) in st.list(&crd_key, None) {
        if !is_deleting(&crd) || !has_finalizer(&crd, CRD_CLEANUP_FINALIZER) {
            continue;
        }
        let key = StorageKey {
            group: text(&crd, "/spec/group").to_owned(),
            plural: text(&crd, "/spec/names/plural").to_owned(),
        };
        let instances = st.list(&key, None);
        for (obj_key, obj) in &instances {
            if !is_deleting(obj) {
                changed |= delete(st, &key, obj_key, Propagation::Background);
            }
        }
        if instances.is_empty() {
            changed |= update(st, &crd_key, &crd_obj_key, Endpoint::Main, |obj| {
                remove_finalizer(obj, CRD_CLEANUP_FINALIZER);
            });
        }
    }
    changed
}

/// Where an owner reference points: present (and whether it waits for its dependents), or gone.
enum Owner {
    Solid,
    Waiting,
    Absent,
}

fn classify(st: &State, dependent_ns: &str, reference: &Value) -> Owner {
    let uid = text(reference, "/uid");
    match st.by_uid(uid) {
        Some((_, (owner_ns, _), owner)) if owner_ns.is_empty() || owner_ns == dependent_ns => {
            if is_deleting(owner) && has_finalizer(owner, "foregroundDeletion") {
                Owner::Waiting
            } else {
                Owner::Solid
            }
        }
        _ => Owner::Absent,
    }
}

/// Handles the `orphan` and `foregroundDeletion` finalizers of deleting owners.
fn owner_finalizers(st: &mut State) -> bool {
    // The deleting owners that wait on a finalizer: (storage, key, uid, orphan?).
    let mut owners = Vec::new();
    scan(st, |key, obj_key, owner| {
        if !is_deleting(owner) {
            return;
        }
        let orphan = has_finalizer(owner, "orphan");
        if orphan || has_finalizer(owner, "foregroundDeletion") {
            let uid = text(owner, "/metadata/uid").to_owned();
            owners.push((key.clone(), obj_key.clone(), uid, orphan));
        }
    });
    let mut changed = false;
    for (key, obj_key, uid, orphan) in owners {
        // Its dependents: (storage, key, blocks its deletion?, deleting?).
        let mut dependents = Vec::new();
        scan(st, |dkey, dobj_key, dependent| {
            let refs = owner_refs(dependent);
            if refs.iter().any(|r| text(r, "/uid") == uid) {
                let blocks = refs.iter().any(|r| {
                    text(r, "/uid") == uid
                        && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                });
                dependents.push((
                    dkey.clone(),
                    dobj_key.clone(),
                    blocks,
                    is_deleting(dependent),
                ));
            }
        });
        if orphan {
            for (dkey, dobj_key, _, _) in &dependents {
                changed |= update(st, dkey, dobj_key, Endpoint::Main, |obj| {
                    if let Some(refs) = obj
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        refs.retain(|r| text(r, "/uid") != uid);
                    }
                });
            }
            changed |= update(st, &key, &obj_key, Endpoint::Main, |obj| {
                remove_finalizer(obj, "orphan")
            });
            continue;
        }
        let mut blocking = 0;
        for (dkey, dobj_key, blocks, deleting) in &dependents {
            if *blocks {
                blocking += 1;
            }
            if !deleting {
                changed |= delete(st, dkey, dobj_key, Propagation::Foreground);
            }
        }
        if blocking == 0 {
            changed |= update(st, &key, &obj_key, Endpoint::Main, |obj| {
                remove_finalizer(obj, "foregroundDeletion");
            });
        }
    }
    changed
}

/// What `dependents` does to one dependent.
enum Fix {
    /// All its owners are gone (or wait for it): delete it.
    Delete(Propagation),
    /// Drop the references to these absent owners; another owner remains.
    DropReferences(Vec<String>),
}

/// Deletes dependents whose owners are all gone (or wait for them), and drops dangling
/// references of dependents that still have an owner.
fn dependents(st: &mut State, only: Option<&[(StorageKey, ObjKey)]>) -> bool {
    let mut handled: HashSet<String> = HashSet::new();
    let mut fixes = Vec::new();
    let mut visit = |key: &StorageKey, obj_key: &ObjKey, dependent: &Value| {
        let refs = owner_refs(dependent);
        if refs.is_empty() || is_deleting(dependent) {
            return;
        }
        if !handled.insert(text(dependent, "/metadata/uid").to_owned()) {
            return;
        }
        let mut solid = 0;
        let mut waiting = 0;
        let mut dangling = Vec::new();
        for r in refs {
            match classify(st, &obj_key.0, r) {
                Owner::Solid => solid += 1,
                Owner::Waiting => waiting += 1,
                Owner::Absent => dangling.push(text(r, "/uid").to_owned()),
            }
        }
        let fix = if solid == 0 {
            Fix::Delete(if waiting > 0 {
                Propagation::Foreground
            } else {
                Propagation::Background
            })
        } else if !dangling.is_empty() {
            Fix::DropReferences(dangling)
        } else {
            return;
        };
        fixes.push((key.clone(), obj_key.clone(), fix));
    };
    match only {
        None => scan(st, visit),
        Some(objects) => {
            for (key, obj_key) in objects {
                if let Some(dependent) = st.get(key, &obj_key.0, &obj_key.1) {
                    visit(key, obj_key, dependent);
                }
            }
        }
    }
    let mut changed = false;
    for (key, obj_key, fix) in fixes {
        changed |= match fix {
            Fix::Delete(propagation) => delete(st, &key, &obj_key, propagation),
            Fix::DropReferences(dangling) => update(st, &key, &obj_key, Endpoint::Main, |obj| {
                if let Some(list) = obj
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    list.retain(|r| !dangling.iter().any(|d| d == text(r, "/uid")));
                }
            }),
        };
    }
    changed
}

/// A namespace as the API server creates it at start-up.
pub(crate) fn initial_namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}
