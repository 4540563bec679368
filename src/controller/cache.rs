//! What a reconcile reads from memory instead of asking the API server, so that a reconcile
//! with nothing to do makes no Kubernetes request:
//!
//! - [`SecretCache`]: the Secrets the operator reads (credentials, client secrets, CA bundles,
//!   token Secrets), as last read or as this process last wrote them, each dropped as soon as
//!   the metadata watch of Secrets sees another version. Only the Secrets the operator reads
//!   are held, never the cluster's others: of those, a hash of each name (a few bytes), so that
//!   a Secret the watch never saw (a new Authorization's) is known absent without a request.
//! - [`AccountViews`]: the Accounts and ClusterAccounts the watches keep.
//! - [`Conflicts`]: the Authorizations held back by a Secret they do not own, by that Secret,
//!   so that a Secret event finds them without scanning every Authorization.
//! - [`Protected`]: the objects this process put the in-use finalizer on.
//! - [`NamespaceLabels`]: the labels a ClusterAccount's `allowedNamespaces` is matched against,
//!   read from the API server, with the Namespaces a `plan` lays over them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::compact::Dictionary;
use super::conditions;
use super::error::{Error, Result};
use crate::api::{Account, AccountKind, AccountRef, Authorization, ClusterAccount};

/// What reconciles read from memory instead of the API server.
pub struct Caches {
    /// The Secrets reconciles read, kept until a watch sees them change.
    pub secrets: SecretCache,
    /// The Accounts and ClusterAccounts the watches keep (empty: no account resolves; the
    /// controllers set them when they start).
    pub account_views: AccountViews,
    /// The Authorizations held back by a Secret they do not own, by that Secret.
    pub conflicts: Conflicts,
    /// Namespace labels, for the namespace rules of ClusterAccounts.
    pub namespaces: NamespaceLabels,
    /// The accounts and credentials Secrets this process put the in-use finalizer on.
    pub protected: Protected,
}

impl Caches {
    /// Caches that read through `client`, with the accounts of `account_views`.
    pub fn new(client: Client, account_views: AccountViews) -> Self {
        Self {
            secrets: SecretCache::new(client),
            account_views,
            conflicts: Conflicts::default(),
            namespaces: NamespaceLabels::default(),
            protected: Protected::default(),
        }
    }
}

/// The objects (by uid) this process put the in-use finalizer on: a watch cache that has not
/// caught up with the finalizer just added asks for no second patch.
#[derive(Debug, Default)]
pub struct Protected(Mutex<HashSet<String>>);

impl Protected {
    /// Whether this process added the finalizer to the object of `meta`.
    pub(crate) fn contains(&self, meta: &ObjectMeta) -> bool {
        meta.uid
            .as_ref()
            .is_some_and(|uid| self.lock().contains(uid))
    }

    /// Remembers that this process added the finalizer to the object of `meta`.
    pub(crate) fn remember(&self, meta: &ObjectMeta) {
        if let Some(uid) = &meta.uid {
            self.lock().insert(uid.clone());
        }
    }

    /// Forgets it, once this process removed the finalizer.
    pub(crate) fn forget(&self, meta: &ObjectMeta) {
        if let Some(uid) = &meta.uid {
            self.lock().remove(uid);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The labels of namespaces, as a ClusterAccount's `allowedNamespaces` sees them.
#[derive(Default)]
pub struct NamespaceLabels {
    /// Namespaces as a change not yet applied declares them (`plan`), by name.
    assumed: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

/// The label the API server gives every Namespace: its name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl NamespaceLabels {
    /// Counts `namespace` as applied: its labels over the cluster's, and its name label, which
    /// the API server adds to every Namespace it creates.
    pub fn assume(&self, namespace: &Namespace) {
        let name = namespace.name_any();
        let mut labels = namespace.labels().clone();
        labels.insert(NAME_LABEL.into(), name.clone());
        self.assumed().insert(name, labels);
    }

    fn assumed(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<String, String>>> {
        self.assumed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The labels of `name` (none when it does not exist).
    pub async fn of(
        &self,
        client: &Client,
        name: &str,
    ) -> std::result::Result<BTreeMap<String, String>, kube::Error> {
        let mut labels = Api::<Namespace>::all(client.clone())
            .get_opt(name)
            .await?
            .map(|namespace| namespace.labels().clone())
            .unwrap_or_default();
        if let Some(assumed) = self.assumed().get(name) {
            labels.extend(assumed.clone());
        }
        Ok(labels)
    }
}

/// Secrets as last read; see the module documentation.
pub struct SecretCache {
    client: Client,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// Bumped whenever an entry is dropped: a read of that Secret that began before must not
    /// store what it read, which may predate the change.
    generation: u64,
    /// The scopes whose watch has listed and runs: `None` for all namespaces, else one
    /// namespace. Secrets elsewhere are always read from the API server.
    live: HashMap<Option<String>, bool>,
    /// (namespace, name) → the Secret, or `None` when it did not exist.
    entries: HashMap<(String, String), Option<Held>>,
    /// The latest drops, newest last, with the generation each made: a read that began at an
    /// older generation is kept if none of the drops since was its Secret's. Bounded.
    dropped: VecDeque<(u64, (String, String))>,
    /// The scopes whose watch has listed every Secret and runs: there, a name missing from
    /// `names` is a Secret that does not exist, and reading it costs no request.
    complete: HashSet<Option<String>>,
    /// Per namespace, a hash of the name of each Secret the watch has seen (and of those this
    /// process wrote or was told changed): a few bytes a Secret, never its content.
    names: HashMap<String, HashSet<u64>>,
}

/// What a held Secret usually says: a token Secret as this operator writes it, the values
/// that differ per Secret left empty.
static HELD: LazyLock<Dictionary> = LazyLock::new(|| {
    Dictionary::of::<Secret>(&[serde_json::json!({
        "metadata": {
            "uid": "00000000-0000-0000-0000-000000000000",
            "ownerReferences": [{
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization", "name": "",
                "uid": "00000000-0000-0000-0000-000000000000",
                "blockOwnerDeletion": true, "controller": true,
            }],
            "labels": {(crate::api::labels::MANAGED_BY): crate::api::labels::MANAGED_BY_VALUE},
            "annotations": {(super::secret::AUTHORIZATION_ID_ANNOTATION): ""},
        },
        "type": "Opaque",
        "data": {"token": ""},
    })])
});

/// A Secret as the cache holds it: what readers use (owners, finalizers, deletion, labels,
/// annotations, type, data) as one compressed JSON buffer ([`super::compact`]), beside its version and whether this manager
/// wrote fields of it by a create. One allocation instead of one per string: a token Secret
/// held as a `Secret` cost several times its content, and one is held per Authorization. Each
/// read rebuilds the `Secret`, which lives as long as the reconcile that asked.
struct Held {
    resource_version: Option<Box<str>>,
    /// This manager wrote fields of it by a create or update ([`super::managed_fields::created_by_update`]).
    created_by_update: bool,
    /// It is held as this process wrote it ([`SecretCache::wrote`]), not as a read found it.
    written: bool,
    packed: Box<[u8]>,
}

impl Held {
    /// `None` if it cannot be packed (then it is not held, and read again when needed).
    fn of(secret: &Secret) -> Option<Self> {
        let meta = &secret.metadata;
        let kept = Secret {
            metadata: ObjectMeta {
                uid: meta.uid.clone(),
                owner_references: meta.owner_references.clone(),
                finalizers: meta.finalizers.clone(),
                deletion_timestamp: meta.deletion_timestamp.clone(),
                labels: meta.labels.clone(),
                annotations: meta.annotations.clone(),
                ..ObjectMeta::default()
            },
            type_: secret.type_.clone(),
            immutable: secret.immutable,
            data: secret.data.clone(),
            string_data: None,
        };
        Some(Self {
            resource_version: meta.resource_version.as_deref().map(Into::into),
            created_by_update: super::managed_fields::created_by_update(secret),
            written: false,
            packed: HELD.pack(&kept).ok()?,
        })
    }

    /// The entry of a read: `Some(None)` for a Secret that does not exist, `None` for one
    /// that cannot be held.
    fn entry(secret: Option<&Secret>) -> Option<Option<Self>> {
        match secret {
            None => Some(None),
            Some(secret) => Self::of(secret).map(Some),
        }
    }

    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// The Secret `namespace/name` as it was held (`None` if it cannot be unpacked).
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        let mut secret: Secret = HELD.unpack(&self.packed).ok()?;
        let metadata = &mut secret.metadata;
        metadata.name = Some(name.to_owned());
        metadata.namespace = Some(namespace.to_owned());
        metadata.resource_version = self.resource_version.as_deref().map(str::to_owned);
        metadata.managed_fields = self
            .created_by_update
            .then(|| vec![super::managed_fields::created_entry()]);
        Some(Arc::new(secret))
    }
}

/// The hash a Secret's name is known by in [`CacheState::names`] (a collision only costs a
/// read).
fn name_hash(name: &str) -> u64 {
    super::string_hash(name)
}

/// How many recent drops are remembered; a read older than that is not kept.
const DROPS_REMEMBERED: usize = 1024;

impl CacheState {
    fn is_live(&self, namespace: &str) -> bool {
        self.live.get(&None).copied().unwrap_or(false)
            || self
                .live
                .get(&Some(namespace.to_owned()))
                .copied()
                .unwrap_or(false)
    }

    /// Whether the watch of `namespace` has listed every Secret there and runs.
    fn is_complete(&self, namespace: &str) -> bool {
        self.is_live(namespace)
            && (self.complete.contains(&None)
                || self.complete.contains(&Some(namespace.to_owned())))
    }

    /// Whether the watch has seen a Secret `namespace/name` (or may have).
    fn may_exist(&self, namespace: &str, name: &str) -> bool {
        self.names
            .get(namespace)
            .is_some_and(|names| names.contains(&name_hash(name)))
    }

    fn seen(&mut self, namespace: &str, name: &str) {
        self.names
            .entry(namespace.to_owned())
            .or_default()
            .insert(name_hash(name));
    }

    fn gone(&mut self, namespace: &str, name: &str) {
        if let Some(names) = self.names.get_mut(namespace) {
            names.remove(&name_hash(name));
            if names.is_empty() {
                self.names.remove(namespace);
            }
        }
    }

    /// Drops every entry of `scope` and stops caching there until its watch has listed again.
    fn reset(&mut self, scope: Option<&str>) {
        self.generation += 1;
        // A reset drops everything: no read that began before it is kept.
        self.dropped.clear();
        self.live.insert(scope.map(str::to_owned), false);
        self.complete.remove(&scope.map(str::to_owned));
        match scope {
            None => {
                self.entries.clear();
                self.names.clear();
            }
            Some(namespace) => {
                self.entries.retain(|(ns, _), _| ns != namespace);
                self.names.remove(namespace);
            }
        }
    }

    /// `namespace/name` exists and changed, to `version` when known: its entry goes unless it
    /// holds that very version (the event of this process's own write).
    /// Returns whether `version` is the one this process wrote and holds.
    fn touched(&mut self, namespace: &str, name: &str, version: Option<&str>) -> bool {
        let key = (namespace.to_owned(), name.to_owned());
        let held = self.entries.get(&key).and_then(|held| held.as_ref());
        let same = version.is_some() && held.and_then(Held::resource_version) == version;
        let own_write = same && held.is_some_and(|held| held.written);
        if !same {
            self.drop_entry(namespace, name);
        }
        self.seen(namespace, name);
        own_write
    }

    fn drop_entry(&mut self, namespace: &str, name: &str) {
        self.generation += 1;
        let key = (namespace.to_owned(), name.to_owned());
        self.entries.remove(&key);
        self.dropped.push_back((self.generation, key));
        if self.dropped.len() > DROPS_REMEMBERED {
            self.dropped.pop_front();
        }
    }

    /// Whether a read of `key` that began at `generation` is still current: nothing dropped
    /// since, or only other Secrets.
    fn still_current(&self, generation: u64, key: &(String, String)) -> bool {
        if generation == self.generation {
            return true;
        }
        // Every drop after `generation` must still be remembered to tell.
        let remembered_from = self.dropped.front().map_or(u64::MAX, |(g, _)| *g);
        remembered_from <= generation + 1
            && self
                .dropped
                .iter()
                .filter(|(g, _)| *g > generation)
                .all(|(_, dropped)| dropped != key)
    }
}

impl SecretCache {
    /// The client it reads through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// An empty cache that reads through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            state: Mutex::new(CacheState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Secret `namespace/name` (`None`: it does not exist): from memory when a live watch
    /// has seen no change since it was read, else from the API server.
    pub async fn get(&self, namespace: &str, name: &str) -> kube::Result<Option<Arc<Secret>>> {
        let key = (namespace.to_owned(), name.to_owned());
        let generation = {
            let state = self.lock();
            if !state.is_live(namespace) {
                None
            } else if let Some(hit) = state.entries.get(&key).and_then(|hit| match hit {
                None => Some(None),
                Some(held) => held.secret(namespace, name).map(Some),
            }) {
                return Ok(hit);
            } else if state.is_complete(namespace) && !state.may_exist(namespace, name) {
                // The watch listed every Secret and never saw this one.
                return Ok(None);
            } else {
                Some(state.generation)
            }
        };
        let read = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(|mut secret| {
                super::managed_fields::strip_managed_fields(&mut secret);
                Arc::new(secret)
            });
        let mut state = self.lock();
        if generation.is_some_and(|generation| state.still_current(generation, &key)) {
            match Held::entry(read.as_deref()) {
                Some(entry) => state.entries.insert(key, entry),
                None => state.entries.remove(&key),
            };
        }
        Ok(read)
    }

    /// Follows an event of the metadata watch of Secrets in `scope` (`None`: all namespaces).
    pub fn observe(
        &self,
        scope: Option<&str>,
        event: &Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>,
    ) {
        let mut state = self.lock();
        match event {
            Ok(watcher::Event::Apply(secret)) => {
                state.touched(
                    &secret.namespace().unwrap_or_default(),
                    &secret.name_any(),
                    secret.resource_version().as_deref(),
                );
            }
            Ok(watcher::Event::InitApply(secret)) => {
                let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
                state.drop_entry(&namespace, &name);
                state.seen(&namespace, &name);
            }
            Ok(watcher::Event::Delete(secret)) => {
                let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
                state.drop_entry(&namespace, &name);
                state.gone(&namespace, &name);
            }
            Ok(watcher::Event::Init) => state.reset(scope),
            Ok(watcher::Event::InitDone) => {
                state.live.insert(scope.map(str::to_owned), true);
                state.complete.insert(scope.map(str::to_owned));
            }
            // Changes may be missed until the watch has listed again.
            Err(_) => state.reset(scope),
        }
    }

    /// Holds `secret` as if read, for a process with no watch that must see Secrets not yet
    /// applied (`plan`). Other Secrets of its namespace are still read from the API server.
    pub fn assume(&self, mut secret: Secret) {
        super::managed_fields::strip_managed_fields(&mut secret);
        let namespace = secret.namespace().unwrap_or_default();
        let key = (namespace.clone(), secret.name_any());
        let mut state = self.lock();
        state.live.insert(Some(namespace), true);
        if let Some(held) = Held::of(&secret) {
            state.entries.insert(key, Some(held));
        }
    }

    /// Forgets a Secret this process has just changed or deleted, or that a watch saw change:
    /// the next read asks the API server.
    pub fn changed(&self, namespace: &str, name: &str) {
        self.lock().touched(namespace, name, None);
    }

    /// Like [`Self::changed`], unless the cache holds the version `version` of it. Returns
    /// whether that is the version this process wrote ([`Self::wrote`]): the event of its own
    /// write, which tells the reconcile that wrote it nothing new.
    pub fn changed_at(&self, namespace: &str, name: &str, version: Option<&str>) -> bool {
        self.lock().touched(namespace, name, version)
    }

    /// Holds `secret` as this process has just written it: the next read finds it without a
    /// request, until the watch shows a later version.
    pub fn wrote(&self, secret: &Secret) {
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        let mut state = self.lock();
        state.touched(&namespace, &name, None);
        if state.is_live(&namespace)
            && let Some(held) = Held::of(secret)
        {
            let held = Held {
                written: true,
                ..held
            };
            state.entries.insert((namespace, name), Some(held));
        }
    }

    /// How many Secrets are held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no Secret is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The Authorizations whose Ready reason is `SecretConflict`, by the Secret (namespace, name)
/// they would write: a change of that Secret is their cue to look again. Fed by the watch of
/// Authorizations; a Secret event costs a hash lookup, not a scan of every Authorization.
#[derive(Default)]
pub struct Conflicts(Mutex<ConflictState>);

#[derive(Default)]
struct ConflictState {
    by_secret: HashMap<SecretKey, HashSet<ObjectRef<Authorization>>>,
    by_authorization: HashMap<ObjectRef<Authorization>, SecretKey>,
    /// While the watch lists again: the conflicts it has listed so far, which replace the
    /// others at the end of the listing (an Authorization deleted meanwhile is then forgotten).
    relisting: Option<Vec<(ObjectRef<Authorization>, SecretKey)>>,
}

/// A Secret's namespace and name.
type SecretKey = (String, String);

/// The Secret `authorization` waits for, if its Ready reason is `SecretConflict`.
fn conflict(authorization: &Authorization) -> Option<(ObjectRef<Authorization>, SecretKey)> {
    let ready = conditions::find_condition(
        &authorization.status.as_ref()?.conditions,
        conditions::READY,
    )?;
    (ready.reason == "SecretConflict").then(|| {
        (
            ObjectRef::from_obj(authorization),
            (
                authorization.namespace().unwrap_or_default(),
                authorization.secret_name(),
            ),
        )
    })
}

impl ConflictState {
    fn forget(&mut self, authorization: &ObjectRef<Authorization>) {
        if let Some(secret) = self.by_authorization.remove(authorization)
            && let Some(waiting) = self.by_secret.get_mut(&secret)
        {
            waiting.remove(authorization);
            if waiting.is_empty() {
                self.by_secret.remove(&secret);
            }
        }
    }

    fn insert(&mut self, authorization: ObjectRef<Authorization>, secret: SecretKey) {
        self.by_secret
            .entry(secret.clone())
            .or_default()
            .insert(authorization.clone());
        self.by_authorization.insert(authorization, secret);
    }
}

impl Conflicts {
    fn lock(&self) -> MutexGuard<'_, ConflictState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows an event of the watch of Authorizations.
    pub fn observe(&self, event: &Result<watcher::Event<Authorization>, watcher::Error>) {
        let mut state = self.lock();
        match event {
            Ok(watcher::Event::Apply(authorization)) => {
                state.forget(&ObjectRef::from_obj(authorization));
                if let Some((reference, secret)) = conflict(authorization) {
                    state.insert(reference, secret);
                }
            }
            Ok(watcher::Event::Delete(authorization)) => {
                state.forget(&ObjectRef::from_obj(authorization));
            }
            Ok(watcher::Event::Init) => state.relisting = Some(Vec::new()),
            Ok(watcher::Event::InitApply(authorization)) => {
                if let (Some(listed), Some(found)) =
                    (state.relisting.as_mut(), conflict(authorization))
                {
                    listed.push(found);
                }
            }
            Ok(watcher::Event::InitDone) => {
                let listed = state.relisting.take().unwrap_or_default();
                state.by_secret.clear();
                state.by_authorization.clear();
                for (reference, secret) in listed {
                    state.insert(reference, secret);
                }
            }
            Err(_) => {}
        }
    }

    /// The Authorizations waiting for the Secret `name` in `namespace`.
    pub fn waiting_for(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Authorization>> {
        self.lock()
            .by_secret
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|waiting| waiting.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The Accounts and ClusterAccounts the Authorization controllers' watches keep, one pair of
/// stores per watched scope (`None`: all namespaces).
#[derive(Clone, Default)]
pub struct AccountViews {
    scopes: Vec<(Option<String>, Store<Account>, Store<ClusterAccount>)>,
}

impl AccountViews {
    /// Adds the stores of one watched scope.
    pub fn add(
        &mut self,
        scope: Option<String>,
        accounts: Store<Account>,
        cluster_accounts: Store<ClusterAccount>,
    ) {
        self.scopes.push((scope, accounts, cluster_accounts));
    }

    /// Every Account the watches keep, in every scope.
    pub fn all_accounts(&self) -> Vec<Arc<Account>> {
        self.scopes
            .iter()
            .flat_map(|(_, accounts, _)| accounts.state())
            .collect()
    }

    /// Every ClusterAccount the watches keep (each scope holds them all: the first one's).
    pub fn all_cluster_accounts(&self) -> Vec<Arc<ClusterAccount>> {
        self.scopes
            .first()
            .map(|(_, _, cluster_accounts)| cluster_accounts.state())
            .unwrap_or_default()
    }

    fn scope_of(
        &self,
        namespace: &str,
    ) -> Option<&(Option<String>, Store<Account>, Store<ClusterAccount>)> {
        self.scopes
            .iter()
            .find(|(scope, _, _)| scope.as_deref().is_none_or(|ns| ns == namespace))
    }

    /// The Account `namespace/name` as the watch of that namespace keeps it (`None`: it does
    /// not exist). `Err` when no watch covers the namespace or it has not listed within
    /// [`STORE_WAIT`]: the reconcile fails and is retried (nothing waits for a watch that
    /// cannot start, for instance for want of a permission).
    pub async fn account(&self, namespace: &str, name: &str) -> Result<Option<Arc<Account>>> {
        let (_, store, _) = self
            .scope_of(namespace)
            .ok_or(Error::CacheNotSynced("Accounts"))?;
        ready(store, "Accounts").await?;
        Ok(store.get(&ObjectRef::new(name).within(namespace)))
    }

    /// The account `reference` names from an Authorization in `namespace`, as the watches keep
    /// it (`None`: it does not exist).
    pub async fn referenced(
        &self,
        namespace: &str,
        reference: &AccountRef,
    ) -> Result<Option<Referenced>> {
        Ok(match reference.kind {
            AccountKind::Account => self
                .account(namespace, &reference.name)
                .await?
                .map(Referenced::Account),
            AccountKind::ClusterAccount => self
                .cluster_account(namespace, &reference.name)
                .await?
                .map(Referenced::ClusterAccount),
        })
    }

    /// The ClusterAccount `name` as the watch serving `namespace` keeps it, like
    /// [`Self::account`].
    pub async fn cluster_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<ClusterAccount>>> {
        let (_, _, store) = self
            .scope_of(namespace)
            .ok_or(Error::CacheNotSynced("ClusterAccounts"))?;
        ready(store, "ClusterAccounts").await?;
        Ok(store.get(&ObjectRef::new(name)))
    }
}

/// An Account or ClusterAccount, as an `accountRef` names it.
#[derive(Clone, Debug)]
pub enum Referenced {
    /// An Account.
    Account(Arc<Account>),
    /// A ClusterAccount.
    ClusterAccount(Arc<ClusterAccount>),
}

impl Referenced {
    /// Its settings.
    pub fn settings(&self) -> &crate::api::AccountSettings {
        match self {
            Self::Account(account) => &account.spec.settings,
            Self::ClusterAccount(account) => &account.spec.settings,
        }
    }
}

/// The longest a reconcile waits for an account store to have listed.
const STORE_WAIT: Duration = Duration::from_secs(5);

/// Waits for `store` (of `what`) to have listed, for at most [`STORE_WAIT`].
async fn ready<K>(store: &Store<K>, what: &'static str) -> Result<()>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(STORE_WAIT, store.wait_until_ready()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Error::CacheNotSynced(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::PostParams;
    use kube_testkit::{RunningApiServer, TestApiServer};

    #[test]
    fn a_held_secret_reads_back_as_it_was() {
        let full: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "ci-token", "namespace": "team", "uid": "u-1", "resourceVersion": "42",
                "labels": {"a": "1", "app.kubernetes.io/managed-by": "ghes-oauth-operator"},
                "annotations": {"oauth.ghes.io/authorization-id": "7"},
                "finalizers": ["oauth.ghes.io/in-use"],
                "deletionTimestamp": "2026-01-02T03:04:05Z",
                "creationTimestamp": "2026-01-01T03:04:05Z",
                "managedFields": [
                    {"manager": crate::controller::secret::FIELD_MANAGER, "operation": "Update",
                     "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}},
                    {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1"},
                ],
                "ownerReferences": [{"apiVersion": "oauth.ghes.io/v1alpha1",
                    "kind": "Authorization", "name": "ci", "uid": "u-2", "controller": true}],
            },
            "type": "kubernetes.io/basic-auth",
            "immutable": false,
            "data": {"token": "Z2hvX3Rva2Vu", "empty": ""},
        }))
        .expect("secret");
        // What no reader uses goes; of the managed fields, only that this manager created it.
        let mut read = full.clone();
        read.metadata.creation_timestamp = None;
        read.metadata.managed_fields =
            Some(vec![crate::controller::managed_fields::created_entry()]);
        let held = Held::of(&full)
            .and_then(|held| held.secret("team", "ci-token"))
            .expect("held");
        assert_eq!(*held, read);
        assert!(crate::controller::managed_fields::created_by_update(&held));
        // A token Secret as the operator writes it is held in under half its JSON.
        let mut token = full.clone();
        token.metadata.finalizers = None;
        token.metadata.deletion_timestamp = None;
        token.type_ = Some("Opaque".into());
        token.immutable = None;
        let json = serde_json::to_vec(&token).expect("json").len();
        let packed = Held::of(&token).expect("held").packed.len();
        assert!(packed * 2 < json, "{packed} of {json}");
        // Absent maps stay absent, and no data is not empty data.
        let bare = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("bare".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            *Held::of(&bare)
                .and_then(|held| held.secret("default", "bare"))
                .expect("held"),
            bare
        );
    }

    fn secret(name: &str, value: &str) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            string_data: Some([("password".to_owned(), value.to_owned())].into()),
            ..Secret::default()
        }
    }

    fn meta(name: &str) -> PartialObjectMeta<Secret> {
        let mut meta = PartialObjectMeta::<Secret>::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.namespace = Some("default".into());
        meta
    }

    fn reads(server: &RunningApiServer) -> usize {
        server
            .requests()
            .iter()
            .filter(|r| r.verb == "get" && r.resource == "secrets")
            .count()
    }

    #[tokio::test]
    async fn reads_once_until_a_watch_says_the_secret_changed() {
        let server = TestApiServer::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("server");
        let client = server.client("operator").expect("client");
        let api = Api::<Secret>::namespaced(client.clone(), "default");
        api.create(&PostParams::default(), &secret("creds", "one"))
            .await
            .expect("create");
        let cache = SecretCache::new(client);

        // Before the watch has listed, every read goes to the API server.
        cache.get("default", "creds").await.expect("get");
        cache.get("default", "creds").await.expect("get");
        assert_eq!(reads(&server), 2);
        assert!(cache.is_empty());

        cache.observe(None, &Ok(watcher::Event::Init));
        cache.observe(None, &Ok(watcher::Event::InitApply(meta("creds"))));
        cache.observe(None, &Ok(watcher::Event::InitDone));
        for _ in 0..3 {
            let got = cache.get("default", "creds").await.expect("get");
            assert!(got.is_some_and(|s| s.metadata.managed_fields.is_none()));
        }
        // The watch listed every Secret and never saw this one: no request at all.
        assert!(cache.get("default", "absent").await.expect("get").is_none());
        assert!(cache.get("default", "absent").await.expect("get").is_none());
        assert_eq!(reads(&server), 3, "one read while nothing changed");

        cache.observe(None, &Ok(watcher::Event::Apply(meta("creds"))));
        cache.get("default", "creds").await.expect("get");
        cache.get("default", "absent").await.expect("get");
        assert_eq!(reads(&server), 4, "only the changed Secret is read again");

        // A Secret created after the list is read once its event is seen.
        api.create(&PostParams::default(), &secret("later", "two"))
            .await
            .expect("create");
        cache.observe(None, &Ok(watcher::Event::Apply(meta("later"))));
        assert!(cache.get("default", "later").await.expect("get").is_some());
        assert_eq!(reads(&server), 5);
        cache.observe(None, &Ok(watcher::Event::Delete(meta("later"))));
        assert!(cache.get("default", "later").await.expect("get").is_none());
        assert_eq!(reads(&server), 5, "a deletion seen: known gone");
        let reads_before = reads(&server);

        // A watch that failed may have missed changes: nothing is trusted until it lists.
        cache.observe(None, &Err(watcher::Error::NoResourceVersion));
        assert!(cache.is_empty());
        cache.get("default", "creds").await.expect("get");
        cache.get("default", "creds").await.expect("get");
        assert_eq!(reads(&server), reads_before + 2);
    }

    #[tokio::test]
    async fn a_secret_this_process_wrote_is_read_back_from_memory() {
        let server = TestApiServer::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("server");
        let client = server.client("operator").expect("client");
        let api = Api::<Secret>::namespaced(client.clone(), "default");
        let cache = SecretCache::new(client);
        cache.observe(None, &Ok(watcher::Event::Init));
        cache.observe(None, &Ok(watcher::Event::InitDone));
        let params = PostParams {
            field_manager: Some(super::super::secret::FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let written = api
            .create(&params, &secret("token", "one"))
            .await
            .expect("create");
        cache.wrote(&written);
        let held = cache.get("default", "token").await.expect("get");
        assert_eq!(reads(&server), 0);
        // Of the managed fields, only that this manager's create wrote some is kept.
        let held = held.expect("held");
        assert!(super::super::managed_fields::created_by_update(&held));
        assert!(
            held.metadata
                .managed_fields
                .iter()
                .flatten()
                .all(|entry| entry.fields_v1.is_none())
        );
        // The watch event of that very write keeps it; a later version drops it.
        let mut own = meta("token");
        own.metadata.resource_version = written.metadata.resource_version.clone();
        cache.observe(None, &Ok(watcher::Event::Apply(own.clone())));
        assert!(
            cache.changed_at("default", "token", own.metadata.resource_version.as_deref()),
            "the event of its own write"
        );
        cache.get("default", "token").await.expect("get");
        assert_eq!(reads(&server), 0, "its own write's events");
        let mut later = own;
        later.metadata.resource_version = Some("999999".into());
        assert!(!cache.changed_at("default", "token", Some("999999")));
        cache.observe(None, &Ok(watcher::Event::Apply(later)));
        let read = cache.get("default", "token").await.expect("get");
        assert_eq!(reads(&server), 1, "someone else's change");
        // Held because a read found it, the same version is not this process's write.
        let version = read.and_then(|secret| secret.metadata.resource_version.clone());
        assert!(version.is_some());
        assert!(!cache.changed_at("default", "token", version.as_deref()));
    }

    #[tokio::test]
    async fn a_change_seen_during_a_read_keeps_that_read_out_of_the_cache() {
        let server = TestApiServer::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("server");
        let client = server.client("operator").expect("client");
        let cache = SecretCache::new(client);
        cache.observe(Some("default"), &Ok(watcher::Event::InitDone));
        let generation = cache.lock().generation;
        let key = ("default".to_owned(), "creds".to_owned());
        // What `get` checks when changes arrive between its start and its answer.
        cache.changed("default", "other");
        assert!(cache.lock().still_current(generation, &key));
        cache.changed("default", "creds");
        cache.changed("default", "other");
        assert!(!cache.lock().still_current(generation, &key));
        let later = cache.lock().generation;
        for i in 0..=DROPS_REMEMBERED {
            cache.changed("default", &format!("other-{i}"));
        }
        assert!(
            !cache.lock().still_current(later, &key),
            "more drops than remembered: not provably current"
        );
        cache.changed("default", "other");
        let latest = cache.lock().generation - 1;
        assert!(cache.lock().still_current(latest, &key));
        // Namespaces no watch follows are never cached.
        cache.get("elsewhere", "creds").await.expect("get");
        assert!(cache.is_empty());
        cache.get("default", "creds").await.expect("get");
        assert_eq!(cache.len(), 1);
    }

    fn authorization(name: &str, secret: &str, reason: &str) -> Authorization {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"accountRef": {"name": "bot"}, "secret": {"name": secret}},
            "status": {"conditions": [{
                "type": "Ready", "status": "False", "reason": reason, "message": "m",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }]},
        }))
        .expect("authorization")
    }

    #[test]
    fn conflicts_follow_the_watch_of_authorizations() {
        let conflicts = Conflicts::default();
        let names = |secret: &str| {
            let mut names: Vec<String> = conflicts
                .waiting_for("default", secret)
                .into_iter()
                .map(|r| r.name)
                .collect();
            names.sort();
            names
        };
        let apply = |a: Authorization| conflicts.observe(&Ok(watcher::Event::Apply(a)));
        apply(authorization("a", "taken", "SecretConflict"));
        apply(authorization("b", "taken", "SecretConflict"));
        apply(authorization("c", "other", "CredentialsNotFound"));
        assert_eq!(names("taken"), ["a", "b"]);
        assert!(names("other").is_empty());
        // Resolved, renamed, deleted: each leaves the index.
        apply(authorization("a", "taken", "Issued"));
        assert_eq!(names("taken"), ["b"]);
        apply(authorization("b", "elsewhere", "SecretConflict"));
        assert!(names("taken").is_empty());
        assert_eq!(names("elsewhere"), ["b"]);
        conflicts.observe(&Ok(watcher::Event::Delete(authorization(
            "b",
            "elsewhere",
            "SecretConflict",
        ))));
        assert!(names("elsewhere").is_empty());
        // A relist replaces what was known with what it listed.
        apply(authorization("gone", "taken", "SecretConflict"));
        conflicts.observe(&Ok(watcher::Event::Init));
        conflicts.observe(&Ok(watcher::Event::InitApply(authorization(
            "d",
            "taken",
            "SecretConflict",
        ))));
        assert_eq!(
            names("taken"),
            ["gone"],
            "the old view until the listing ends"
        );
        conflicts.observe(&Ok(watcher::Event::InitDone));
        assert_eq!(names("taken"), ["d"]);
    }
}
