//! The controllers a real cluster runs that the tested behaviour depends on, as background tasks:
//! the garbage collector (owner references: dependents of a removed owner are deleted in the
//! background, dangling references are dropped while another owner remains, `orphan` and
//! `foregroundDeletion` finalizers are honoured), the namespace controller (a terminating
//! namespace is emptied one resource type at a time in random order, its conditions say what
//! remains, then it is removed), the CRD finalizer (a deleted CRD's custom resources are
//! deleted first), and the bookmark ticker of watches.
//!
//! Like the real ones they act asynchronously: shortly after a change wakes them (`gc_delay`) and
//! at least twice a second. Unlike the real namespace controller, which looks again seconds
//! later, a namespace goes as soon as the last finalizer holding it does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::{Value, json};

use super::crud::{self, WriteRequest};
use super::delete::{self, DeleteOptions, Propagation};
use super::hooks::{CRD_CLEANUP_FINALIZER, Endpoint, NAMESPACE_FINALIZER};
use super::metadata::now;
use super::resources::StorageKey;
use super::store::{ChangeType, ObjKey, State, Store};

/// The field manager of the server's controllers.
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// How often the controllers look even when nothing woke them.
const RESYNC: Duration = Duration::from_millis(500);

/// Passes in a row before the controllers wait `gc_delay` again. Cascades (namespace → objects
/// → their dependents) settle within a few passes; a terminating namespace takes one pass per
/// resource type it has objects of, and goes on after the wait if it has more.
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
        let mut scope = None;
        let mut settled = false;
        for _ in 0..MAX_PASSES {
            {
                let mut st = store.lock();
                let current = match scope.take() {
                    Some(scope) => scope,
                    // The passes depend on the stored objects only: nothing new, nothing to do.
                    None if st.rv == seen => {
                        settled = true;
                        break;
                    }
                    None => Scope::since(&st, seen),
                };
                if !pass(&mut st, &current) {
                    seen = st.rv;
                    settled = true;
                    break;
                }
            }
            // What this pass deleted can cascade anywhere.
            scope = Some(Scope::Everything);
            // Requests get in between passes: clients see the intermediate states (a
            // terminating namespace with its Secrets gone and its ConfigMaps not yet).
            tokio::task::yield_now().await;
        }
        if !settled {
            // More to do: go on after `gc_delay` rather than at the next resync.
            store.gc_wake.notify_one();
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

fn namespace_key() -> StorageKey {
    StorageKey {
        group: String::new(),
        plural: "namespaces".into(),
    }
}

/// Empties terminating namespaces like the namespace controller, then finalizes them. The real
/// one goes through the namespaced resource types in no particular order (a Go map of them),
/// deleting each type's objects with a deleteCollection: objects without finalizers go, the
/// others are marked and stay. Here each pass does one type of each terminating namespace,
/// picked at random among those with objects not yet deleted, so that watchers see the
/// intermediate states in varying orders. Once none is left to delete, the namespace's
/// conditions say what remains (and which finalizers hold it), and when nothing does, the
/// `kubernetes` finalizer goes and with it the namespace.
fn namespaces(st: &mut State) -> bool {
    let ns_key = namespace_key();
    let mut changed = false;
    for ((_, ns), namespace) in st.list(&ns_key, None) {
        if !is_deleting(&namespace) {
            continue;
        }
        // The types with objects not yet deleted.
        let mut undeleted = Vec::new();
        for key in st.storage_keys() {
            if key != ns_key && st.iter(&key, Some(&ns)).any(|(_, obj)| !is_deleting(obj)) {
                undeleted.push(key);
            }
        }
        if !undeleted.is_empty() {
            undeleted.shuffle(&mut rand::rng());
            // The first type whose deletion changes something (one that cannot be deleted
            // does not hold the others up).
            for key in &undeleted {
                let doomed: Vec<ObjKey> = st
                    .iter(key, Some(&ns))
                    .filter(|(_, obj)| !is_deleting(obj))
                    .map(|(obj_key, _)| obj_key.clone())
                    .collect();
                let mut deleted = false;
                for obj_key in doomed {
                    deleted |= delete(st, key, &obj_key, Propagation::Background);
                }
                if deleted {
                    changed = true;
                    break;
                }
            }
            continue;
        }
        let remaining = Remaining::of(st, &ns);
        changed |= update(
            st,
            &ns_key,
            &(String::new(), ns.clone()),
            Endpoint::Status,
            |obj| set_namespace_conditions(obj, &remaining, &now()),
        );
        let finalizer_pending = namespace
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == NAMESPACE_FINALIZER));
        if remaining.is_empty() && finalizer_pending {
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

/// What is left in a terminating namespace, as the namespace controller counts it: per served
/// group and resource (its preferred version; core and `events.k8s.io` Events count apart,
/// like two resources), and per finalizer.
#[derive(Debug, Default)]
struct Remaining {
    /// `configmaps.` (group empty) or `widgets.example.com`, with its number of objects.
    resources: BTreeMap<String, usize>,
    /// Finalizer → the number of objects (per resource, as above) that have it.
    finalizers: BTreeMap<String, usize>,
}

impl Remaining {
    fn of(st: &State, ns: &str) -> Self {
        let mut remaining = Self::default();
        for key in st.storage_keys() {
            let objects: Vec<&Value> = st.iter(&key, Some(ns)).map(|(_, obj)| obj).collect();
            if objects.is_empty() {
                continue;
            }
            let resources: BTreeSet<(&str, &str)> = st
                .registry
                .all()
                .filter(|info| info.storage == key && info.namespaced)
                .map(|info| (info.group.as_str(), info.plural.as_str()))
                .collect();
            for (group, plural) in resources {
                *remaining
                    .resources
                    .entry(format!("{plural}.{group}"))
                    .or_default() += objects.len();
                for obj in &objects {
                    for finalizer in crud::finalizers(obj) {
                        *remaining.finalizers.entry(finalizer).or_default() += 1;
                    }
                }
            }
        }
        remaining
    }

    fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The conditions the namespace controller maintains, in its order: the type, and the
    /// status, reason and message it has now.
    fn conditions(&self) -> [(&'static str, &'static str, &'static str, String); 5] {
        let sorted = |entries: Vec<String>| {
            let mut entries = entries;
            entries.sort();
            entries.join(", ")
        };
        let content = if self.resources.is_empty() {
            (
                "False",
                "ContentRemoved",
                "All content successfully removed".to_owned(),
            )
        } else {
            let each = self
                .resources
                .iter()
                .map(|(resource, n)| format!("{resource} has {n} resource instances"))
                .collect();
            (
                "True",
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", sorted(each)),
            )
        };
        let finalizers = if self.finalizers.is_empty() {
            (
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".to_owned(),
            )
        } else {
            let each = self
                .finalizers
                .iter()
                .map(|(finalizer, n)| format!("{finalizer} in {n} resource instances"))
                .collect();
            (
                "True",
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    sorted(each)
                ),
            )
        };
        [
            (
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered".to_owned(),
            ),
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".to_owned(),
            ),
            (
                "NamespaceDeletionContentFailure",
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".to_owned(),
            ),
            ("NamespaceContentRemaining", content.0, content.1, content.2),
            (
                "NamespaceFinalizersRemaining",
                finalizers.0,
                finalizers.1,
                finalizers.2,
            ),
        ]
    }
}

/// Updates a namespace's `status.conditions` as the namespace controller does: a missing
/// condition is appended, a changed one is rewritten in place (its `lastTransitionTime` only
/// moves when its status changes), the others are left alone.
fn set_namespace_conditions(namespace: &mut Value, remaining: &Remaining, time: &str) {
    let status = &mut namespace["status"];
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for (kind, state, reason, message) in remaining.conditions() {
        match conditions.iter_mut().find(|c| c["type"] == kind) {
            None => conditions.push(json!({"type": kind, "status": state, "reason": reason,
                "message": message, "lastTransitionTime": time})),
            Some(old) => {
                if old["status"] != state {
                    old["lastTransitionTime"] = json!(time);
                }
                old["status"] = json!(state);
                old["reason"] = json!(reason);
                old["message"] = json!(message);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::PatchType;
    use crate::test_support::{store, write_request};

    fn create(st: &mut State, group: &str, plural: &str, namespace: &str, body: Value) {
        let rq = write_request(st, group, plural, namespace);
        crud::create(st, &rq, body).unwrap();
    }

    fn delete_namespace(st: &mut State, name: &str) {
        let rq = write_request(st, "", "namespaces", "");
        delete::delete(st, &rq, name, &DeleteOptions::background()).unwrap();
    }

    fn get<'s>(
        st: &'s State,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<&'s Value> {
        let key = StorageKey {
            group: group.into(),
            plural: plural.into(),
        };
        st.get(&key, namespace, name)
    }

    /// Runs passes until nothing changes.
    fn settle(st: &mut State) {
        for _ in 0..100 {
            if !pass(st, &Scope::Everything) {
                return;
            }
        }
        panic!("the controllers never settle");
    }

    /// A namespace with a ConfigMap `c`, a Secret `s` and a Lease `l`.
    fn populated(st: &mut State, ns: &str) {
        create(
            st,
            "",
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
        create(
            st,
            "",
            "configmaps",
            ns,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        );
        create(
            st,
            "",
            "secrets",
            ns,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        );
        create(
            st,
            "coordination.k8s.io",
            "leases",
            ns,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}}),
        );
    }

    /// Which of a namespace's objects are left.
    fn left(st: &State, ns: &str) -> Vec<&'static str> {
        [
            ("", "configmaps", "c"),
            ("", "secrets", "s"),
            ("coordination.k8s.io", "leases", "l"),
        ]
        .into_iter()
        .filter(|(group, plural, name)| get(st, group, plural, ns, name).is_some())
        .map(|(_, plural, _)| plural)
        .collect()
    }

    #[test]
    fn namespace_contents_go_one_resource_type_at_a_time_in_no_fixed_order() {
        let store = store();
        let st = &mut store.lock();
        let names: Vec<String> = (0..40).map(|i| format!("ns-{i}")).collect();
        for ns in &names {
            populated(st, ns);
            delete_namespace(st, ns);
        }
        let mut first_gone = BTreeSet::new();
        for step in 1..=3 {
            assert!(namespaces(st));
            for ns in &names {
                let left = left(st, ns);
                assert_eq!(left.len(), 3 - step, "{ns} after {step} passes: {left:?}");
                if step == 1 {
                    for kind in ["configmaps", "secrets", "leases"] {
                        if !left.contains(&kind) {
                            first_gone.insert(kind);
                        }
                    }
                }
            }
        }
        // 40 namespaces that all chose the same type first: one chance in 3^39.
        assert!(first_gone.len() > 1, "always {first_gone:?} first");
        settle(st);
        for ns in &names {
            assert!(get(st, "", "namespaces", "", ns).is_none(), "{ns} is left");
        }
    }

    #[test]
    fn finalizers_keep_a_namespace_terminating_until_the_last_goes() {
        let store = store();
        let st = &mut store.lock();
        populated(st, "t1");
        let held = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]}});
        create(st, "", "configmaps", "t1", held);
        delete_namespace(st, "t1");
        settle(st);

        assert_eq!(left(st, "t1"), Vec::<&str>::new());
        let held = get(st, "", "configmaps", "t1", "held").unwrap();
        assert!(is_deleting(held));
        let ns = get(st, "", "namespaces", "", "t1").unwrap().clone();
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        let conditions: Vec<(&str, &str, &str, &str)> = ns["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert!(c["lastTransitionTime"].is_string());
                (
                    text(c, "/type"),
                    text(c, "/status"),
                    text(c, "/reason"),
                    text(c, "/message"),
                )
            })
            .collect();
        assert_eq!(
            conditions,
            [
                (
                    "NamespaceDeletionDiscoveryFailure",
                    "False",
                    "ResourcesDiscovered",
                    "All resources successfully discovered"
                ),
                (
                    "NamespaceDeletionGroupVersionParsingFailure",
                    "False",
                    "ParsedGroupVersions",
                    "All legacy kube types successfully parsed"
                ),
                (
                    "NamespaceDeletionContentFailure",
                    "False",
                    "ContentDeleted",
                    "All content successfully deleted, may be waiting on finalization"
                ),
                (
                    "NamespaceContentRemaining",
                    "True",
                    "SomeResourcesRemain",
                    "Some resources are remaining: configmaps. has 1 resource instances"
                ),
                (
                    "NamespaceFinalizersRemaining",
                    "True",
                    "SomeFinalizersRemain",
                    "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
                ),
            ]
        );

        let rq = write_request(st, "", "configmaps", "t1");
        let release = br#"{"metadata": {"finalizers": null}}"#;
        crud::patch(st, &rq, "held", Some(PatchType::Merge), release, false).unwrap();
        assert!(get(st, "", "configmaps", "t1", "held").is_none());
        settle(st);
        assert!(get(st, "", "namespaces", "", "t1").is_none());
    }

    #[test]
    fn events_remain_under_both_their_groups_as_discovery_lists_them() {
        let store = store();
        let st = &mut store.lock();
        create(
            st,
            "",
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t1"}}),
        );
        let event = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e1", "finalizers": ["example.com/hold"]},
            "involvedObject": {"kind": "ConfigMap", "namespace": "t1", "name": "x"},
            "reason": "R", "message": "m", "type": "Normal", "count": 1,
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"});
        create(st, "", "events", "t1", event);
        delete_namespace(st, "t1");
        settle(st);
        let ns = get(st, "", "namespaces", "", "t1").unwrap();
        let messages: Vec<&str> = ns["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "True")
            .map(|c| text(c, "/message"))
            .collect();
        // As a real namespace controller words it.
        assert_eq!(
            messages,
            [
                "Some resources are remaining: events. has 1 resource instances, events.events.k8s.io has 1 resource instances",
                "Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances",
            ]
        );
    }

    #[test]
    fn conditions_change_in_place_and_keep_their_time_while_their_status_holds() {
        let mut ns = json!({"status": {"phase": "Terminating", "conditions": [
            {"type": "Other", "status": "True"},
            {"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
             "message": "old", "lastTransitionTime": "t0"},
        ]}});
        let mut remaining = Remaining::default();
        remaining.resources.insert("secrets.".into(), 2);
        set_namespace_conditions(&mut ns, &remaining, "t1");
        let conditions = ns["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 6);
        assert_eq!(conditions[0]["type"], "Other");
        assert_eq!(
            conditions[1],
            json!({"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                "message": "Some resources are remaining: secrets. has 2 resource instances",
                "lastTransitionTime": "t0"})
        );
        set_namespace_conditions(&mut ns, &Remaining::default(), "t2");
        assert_eq!(
            ns["status"]["conditions"][1],
            json!({"type": "NamespaceContentRemaining", "status": "False", "reason": "ContentRemoved",
                "message": "All content successfully removed", "lastTransitionTime": "t2"})
        );
        assert_eq!(ns["status"]["conditions"][2]["lastTransitionTime"], "t1");
    }
}
