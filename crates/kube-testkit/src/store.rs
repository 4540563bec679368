//! The object store: every object in its stored form, one global `resourceVersion` counter, a
//! bounded history of changes (for watches that resume and for lists at an exact version), and
//! the broadcast that live watches follow.
//!
//! All writes happen under one lock, in `resourceVersion` order, and are broadcast under that lock,
//! so a watch that snapshots and subscribes under the lock never misses or repeats a change.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};

use super::errors::{ApiError, ApiResult};
use super::resources::{Registry, StorageKey};

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub(crate) type ObjKey = (String, String);

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed change.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub storage: StorageKey,
    pub namespace: String,
    pub name: String,
    pub kind: ChangeType,
    /// The object after the change (for a deletion: its last state, at the deletion's version).
    pub object: Arc<Value>,
    /// The object before the change.
    pub prev: Option<Arc<Value>>,
}

/// A resource's objects at one version: the current ones with the newer changes undone.
pub(crate) struct Snapshot<'s> {
    current: Option<&'s BTreeMap<ObjKey, Value>>,
    /// What each object changed since was at that version (`None`: it did not exist).
    undone: BTreeMap<ObjKey, Option<&'s Value>>,
}

impl<'s> Snapshot<'s> {
    /// The objects after `after` (all without it), in key order.
    pub fn after<'a>(
        &'a self,
        after: Option<&'a ObjKey>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'s Value)> + use<'a, 's> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut current = self
            .current
            .into_iter()
            .flat_map(move |objects| objects.range::<ObjKey, _>((from, Bound::Unbounded)))
            .peekable();
        let mut undone = self
            .undone
            .range::<ObjKey, _>((from, Bound::Unbounded))
            .peekable();
        std::iter::from_fn(move || {
            loop {
                let next = match (current.peek(), undone.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => current.next().map(|(k, v)| (k, Some(v))),
                    (None, Some(_)) => undone.next().map(|(k, v)| (k, *v)),
                    (Some((now, _)), Some((then, _))) => match now.cmp(then) {
                        std::cmp::Ordering::Less => current.next().map(|(k, v)| (k, Some(v))),
                        std::cmp::Ordering::Equal => {
                            current.next();
                            undone.next().map(|(k, v)| (k, *v))
                        }
                        std::cmp::Ordering::Greater => undone.next().map(|(k, v)| (k, *v)),
                    },
                };
                match next {
                    Some((key, Some(value))) => return Some((key, value)),
                    // Did not exist at that version.
                    Some((_, None)) => {}
                    None => return None,
                }
            }
        })
    }
}

/// What live watches receive.
#[derive(Clone, Debug)]
pub(crate) enum Broadcast {
    Change(Arc<Change>),
    /// Everything up to this version has been broadcast: a bookmark may carry it.
    Tick(u64),
    /// The history was compacted: every open watch ends with a 410 `Expired` error.
    Expire(u64),
}

/// Tunables of the server.
#[derive(Clone, Debug)]
pub(crate) struct StoreConfig {
    pub history_limit: usize,
    pub bookmark_interval: Duration,
    pub gc_delay: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(1),
            gc_delay: Duration::from_millis(50),
        }
    }
}

/// The data behind the lock.
pub(crate) struct State {
    pub rv: u64,
    pub registry: Registry,
    objects: HashMap<StorageKey, BTreeMap<ObjKey, Value>>,
    uids: HashMap<String, (StorageKey, ObjKey)>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Every change newer than this is in `history`.
    floor: u64,
    sender: broadcast::Sender<Broadcast>,
}

/// How many broadcast messages a slow watch may fall behind before it is closed (the client
/// then resumes from its last version).
const BROADCAST_CAPACITY: usize = 4096;

impl State {
    fn new(history_limit: usize) -> Self {
        let (sender, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            rv: 0,
            registry: Registry::builtin(),
            objects: HashMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            floor: 0,
            sender,
        }
    }

    /// A stored object.
    pub fn get(&self, key: &StorageKey, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(key)?
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The stored objects of a resource, in key order, optionally in one namespace.
    pub fn list(&self, key: &StorageKey, namespace: Option<&str>) -> Vec<(ObjKey, Value)> {
        let Some(objects) = self.objects.get(key) else {
            return Vec::new();
        };
        objects
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The stored objects of a resource by reference, in key order, optionally in one
    /// namespace: for scans that act on a few of them.
    pub fn iter<'s>(
        &'s self,
        key: &StorageKey,
        namespace: Option<&'s str>,
    ) -> impl Iterator<Item = (&'s ObjKey, &'s Value)> + use<'s> {
        self.objects
            .get(key)
            .into_iter()
            .flatten()
            .filter(move |((ns, _), _)| namespace.is_none_or(|want| want == ns))
    }

    /// Every storage key that holds objects.
    pub fn storage_keys(&self) -> Vec<StorageKey> {
        self.objects
            .iter()
            .filter(|(_, objects)| !objects.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The object with this uid.
    pub fn by_uid(&self, uid: &str) -> Option<(StorageKey, ObjKey, &Value)> {
        let (key, obj_key) = self.uids.get(uid)?;
        let obj = self.objects.get(key)?.get(obj_key)?;
        Some((key.clone(), obj_key.clone(), obj))
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.sender.send(Broadcast::Change(change));
    }

    /// Stores `obj` (stored form) under a new resourceVersion and returns it.
    pub fn put(&mut self, key: &StorageKey, namespace: &str, name: &str, mut obj: Value) -> Value {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let obj_key = (namespace.to_owned(), name.to_owned());
        let prev = self
            .objects
            .entry(key.clone())
            .or_default()
            .insert(obj_key.clone(), obj.clone());
        if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
            self.uids.insert(uid.to_owned(), (key.clone(), obj_key));
        }
        let kind = if prev.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(Change {
            rv,
            storage: key.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            kind,
            object: Arc::new(obj.clone()),
            prev: prev.map(Arc::new),
        });
        obj
    }

    /// Removes an object; returns its last state at the deletion's resourceVersion.
    pub fn remove(&mut self, key: &StorageKey, namespace: &str, name: &str) -> Option<Value> {
        let obj_key = (namespace.to_owned(), name.to_owned());
        let prev = self.objects.get_mut(key)?.remove(&obj_key)?;
        if let Some(uid) = prev.pointer("/metadata/uid").and_then(Value::as_str) {
            self.uids.remove(uid);
        }
        self.rv += 1;
        let rv = self.rv;
        let mut last = prev.clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        self.record(Change {
            rv,
            storage: key.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            kind: ChangeType::Deleted,
            object: Arc::new(last.clone()),
            prev: Some(Arc::new(prev)),
        });
        Some(last)
    }

    /// The changes after `rv`, or `Err(floor)` when some of them are no longer kept.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, u64> {
        if rv < self.floor {
            return Err(self.floor);
        }
        let start = self.history.partition_point(|c| c.rv <= rv);
        Ok(self.history.range(start..).cloned().collect())
    }

    /// The objects of a resource as they were at `rv` (for lists at an exact version and for
    /// continuing a paginated list consistently), by reference: a page costs its own objects,
    /// not a copy of the whole resource.
    pub fn snapshot(&self, key: &StorageKey, rv: u64) -> ApiResult<Snapshot<'_>> {
        if rv < self.floor {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                self.floor + 1
            )));
        }
        let mut undone = BTreeMap::new();
        // Oldest last: the change right after `rv` decides what the object was at `rv`.
        for change in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if &change.storage != key {
                continue;
            }
            let was = match change.kind {
                ChangeType::Added => None,
                _ => change.prev.as_deref(),
            };
            undone.insert((change.namespace.clone(), change.name.clone()), was);
        }
        Ok(Snapshot {
            current: self.objects.get(key),
            undone,
        })
    }

    /// The objects of a resource now, by reference.
    pub fn current(&self, key: &StorageKey) -> Snapshot<'_> {
        Snapshot {
            current: self.objects.get(key),
            undone: BTreeMap::new(),
        }
    }

    /// A receiver of every change committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Broadcast> {
        self.sender.subscribe()
    }

    /// Drops the change history, as etcd's compaction does, and ends every open watch with a
    /// 410: clients must list again; resuming from any version seen so far is refused.
    pub fn compact(&mut self) {
        self.history.clear();
        self.floor = self.rv;
        let _ = self.sender.send(Broadcast::Expire(self.rv));
    }

    /// Tells live watches that everything up to the current version was broadcast.
    pub fn tick(&self) {
        let _ = self.sender.send(Broadcast::Tick(self.rv));
    }
}

/// The shared store: state under a lock, the garbage collector's wake-up, the shutdown signal.
pub(crate) struct Store {
    state: Mutex<State>,
    pub gc_wake: Notify,
    pub shutdown: watch::Receiver<bool>,
    pub config: StoreConfig,
}

impl Store {
    pub fn new(config: StoreConfig, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            state: Mutex::new(State::new(config.history_limit)),
            gc_wake: Notify::new(),
            shutdown,
            config,
        }
    }

    /// Locks the state. A panic while holding the lock cannot leave it half-written in a way
    /// that matters to tests, so a poisoned lock is used as it is.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> StorageKey {
        StorageKey {
            group: String::new(),
            plural: "configmaps".into(),
        }
    }

    #[test]
    fn snapshot_undoes_newer_changes() {
        let mut st = State::new(100);
        st.put(
            &key(),
            "ns",
            "a",
            json!({"metadata": {"uid": "1"}, "data": {"v": "1"}}),
        );
        let at = st.rv;
        st.put(
            &key(),
            "ns",
            "a",
            json!({"metadata": {"uid": "1"}, "data": {"v": "2"}}),
        );
        st.put(&key(), "ns", "b", json!({"metadata": {"uid": "2"}}));
        st.remove(&key(), "ns", "a");
        let snapshot = st.snapshot(&key(), at).unwrap();
        let snap: Vec<_> = snapshot.after(None).collect();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].0, &("ns".to_owned(), "a".to_owned()));
        assert_eq!(snap[0].1["data"]["v"], "1");
        // Later objects only, from a key on; the current objects as they are.
        st.put(&key(), "ns", "c", json!({"metadata": {"uid": "3"}}));
        let now = st.current(&key());
        let names: Vec<_> = now.after(None).map(|(k, _)| k.1.clone()).collect();
        assert_eq!(names, ["b", "c"]);
        let from_b = ("ns".to_owned(), "b".to_owned());
        let names: Vec<_> = now.after(Some(&from_b)).map(|(k, _)| k.1.clone()).collect();
        assert_eq!(names, ["c"]);
    }

    #[test]
    fn history_is_bounded_and_old_versions_expire() {
        let mut st = State::new(2);
        for i in 0..5 {
            st.put(&key(), "ns", &format!("o{i}"), json!({"metadata": {}}));
        }
        assert!(st.changes_since(1).is_err());
        assert_eq!(st.changes_since(3).unwrap().len(), 2);
        assert_eq!(st.snapshot(&key(), 1).err().map(|e| e.code), Some(410));
    }
}
