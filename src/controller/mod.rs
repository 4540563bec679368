//! The controllers: Authorizations (issue, store, repair and revoke tokens) and Accounts /
//! ClusterAccounts (credentials and the shared listing of their authorizations).
//!
//! - `authorization`, `account`: the reconcilers (`account::registry`: per-account GHES
//!   clients and the shared listing); `prune`: what no resource declares, and its deletion.
//! - `config`: how they run, resolved once; `context`: what reconciles share; `cache`: what
//!   they read from memory instead of the API server; `memory`: what the process remembers of
//!   each object, by uid; `fair`: the workers shared between the accounts.
//! - `secret`, `status`, `events`, `template`: the writes they make (`managed_fields`: what
//!   they and the Secret cache read of a Secret's field owners); `in_use`: the finalizers
//!   that hold an account and its credentials while tokens made through them live.
//! - `fingerprint`, `identity`: which tokens this installation made, and as which GHES user.
//! - `sharding`: which objects a shard's controllers own; `rbac`: the permissions they use.
//! - `error`: the reconcile errors and their reasons.

pub mod account;
pub mod authorization;
pub mod cache;
pub(crate) mod compact;
pub mod config;
pub mod context;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod fair;
pub mod fingerprint;
pub mod identity;
pub(crate) mod in_use;
pub(crate) mod managed_fields;
pub(crate) mod memory;
pub(crate) mod packed;
pub(crate) mod prune;
pub mod rbac;
pub(crate) mod secret;
pub(crate) mod sharding;
pub(crate) mod status;
pub(crate) mod template;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::{self, BoxFuture};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

pub use context::Context;
pub use error::Error;

use crate::api::AccountKey;
use crate::api::{
    Account, AccountKind, AccountResource, Authorization, ClusterAccount, conditions, labels,
};
use crate::cluster::{scoped_api, scopes};
use crate::metrics::{ControllerKind, Metrics, ReconcileResult};
use config::OperatorConfig;
use packed::PackedAuthorization;

/// How often the `authorizations` gauge is recounted from the controllers' caches.
const AUTHORIZATIONS_GAUGE_PERIOD: Duration = Duration::from_secs(5);

/// Runs every controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    run_with(client, config, Arc::new(Metrics::new()), || {}, shutdown).await;
}

/// [`run`], recording into `metrics` and calling `on_synced` once the Authorization caches
/// have synced (what `/readyz` waits for).
pub async fn run_with(
    client: Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    on_synced: impl FnOnce() + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tracing::info!(
        installation = %config.installation,
        "installation id (in every fingerprint this operator makes)"
    );
    let scopes = scopes(&config.namespaces);
    // The Accounts and ClusterAccounts each scope's Authorization controller watches, kept for
    // its reconciles.
    let mut views = cache::AccountViews::default();
    let mut account_writers = Vec::new();
    for scope in &scopes {
        let (accounts, account_writer) = reflector::store();
        let (cluster_accounts, cluster_account_writer) = reflector::store();
        views.add(scope.clone(), accounts, cluster_accounts);
        account_writers.push((account_writer, cluster_account_writer));
    }
    let watch_config = config.watch_config();
    let sharded = config.shard.is_some();
    let shard = config.shard.map(|shard| shard.index);
    let controller_config = ControllerConfig::default().concurrency(config.concurrency);
    let ctx = Arc::new(Context::new(client.clone(), config, views, metrics.clone()));
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let when_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };

    let mut tasks: Vec<BoxFuture<'static, ()>> = Vec::new();
    let mut authorization_stores = Vec::new();
    let mut account_stores = Vec::new();
    for (namespace, (account_writer, cluster_account_writer)) in
        scopes.into_iter().zip(account_writers)
    {
        let (authorization_controller, store, accounts) = authorization_controller(
            &client,
            namespace,
            &ctx,
            account_writer,
            cluster_account_writer,
            &watch_config,
        );
        authorization_stores.push(store);
        let reconcile = departing(
            &authorization_controller,
            sharded,
            authorization::reconcile_packed,
        );
        tasks.push(drive(
            authorization_controller,
            &controller_config,
            when_stopped(),
            ControllerKind::Authorization,
            reconcile,
            authorization::error_policy_packed,
            &ctx,
        ));

        let account_controller = Controller::new(accounts, watch_config.clone());
        let account_store = account_controller.store();
        let account_controller = account_controller.reconcile_on(
            availability_changes(&ctx)
                .map(move |change| affected_accounts(&account_store, change))
                .flat_map(futures::stream::iter),
        );
        account_stores.push(account_controller.store());
        let reconcile = departing(
            &account_controller,
            sharded,
            account::reconcile::reconcile::<Account>,
        );
        tasks.push(drive(
            account_controller,
            &controller_config,
            when_stopped(),
            ControllerKind::Account,
            reconcile,
            account::reconcile::error_policy::<Account>,
            &ctx,
        ));
    }
    let cluster_account_controller = Controller::new(
        Api::<ClusterAccount>::all(client.clone()),
        watch_config.clone(),
    );
    let cluster_account_store = cluster_account_controller.store();
    let cluster_accounts_changed = cluster_account_store.clone();
    let cluster_account_controller = cluster_account_controller.reconcile_on(
        availability_changes(&ctx)
            .map(move |change| affected_accounts(&cluster_accounts_changed, change))
            .flat_map(futures::stream::iter),
    );
    let reconcile = departing(
        &cluster_account_controller,
        sharded,
        account::reconcile::reconcile::<ClusterAccount>,
    );
    tasks.push(drive(
        cluster_account_controller,
        &controller_config,
        when_stopped(),
        ControllerKind::ClusterAccount,
        reconcile,
        account::reconcile::error_policy::<ClusterAccount>,
        &ctx,
    ));
    tasks.push(Box::pin(watch_caches(
        Stores {
            authorizations: authorization_stores,
            accounts: account_stores,
            cluster_accounts: cluster_account_store,
            shard,
        },
        ctx.clone(),
        on_synced,
        when_stopped(),
    )));
    tracing::info!("controllers started");
    futures::future::join_all(tasks).await;
    tracing::info!("controllers stopped");
}

/// The Authorization controller of one scope (a namespace, or all): it watches Authorizations,
/// the operator's token Secrets, every Secret's metadata (for conflicts and re-reads), and the
/// Accounts and ClusterAccounts their reconciles read. Also returns its store and the scope's
/// Accounts API.
fn authorization_controller(
    client: &Client,
    namespace: Option<String>,
    ctx: &Arc<Context>,
    account_writer: reflector::store::Writer<Account>,
    cluster_account_writer: reflector::store::Writer<ClusterAccount>,
    config: &watcher::Config,
) -> (
    Controller<PackedAuthorization>,
    Store<PackedAuthorization>,
    Api<Account>,
) {
    // Secrets as `PartialObjectMeta`: kube asks for metadata only, so neither the wire nor
    // memory carries their data.
    let authorizations: Api<Authorization> = scoped_api(client, namespace.as_deref());
    let accounts: Api<Account> = scoped_api(client, namespace.as_deref());
    let secrets: Api<PartialObjectMeta<Secret>> = scoped_api(client, namespace.as_deref());
    let (store, writer) = reflector::store();
    let own_writes = ctx.clone();
    let conflicts = ctx.clone();
    let controller = Controller::for_stream(
        watcher(authorizations, config.clone())
            .default_backoff()
            .modify(strip)
            .map(move |event| {
                conflicts.caches.conflicts.observe(&event);
                pack(event)
            })
            .reflect(writer)
            .applied_objects()
            // The event of the operator's own status write triggers nothing: the
            // reconcile that wrote it has chosen when to look again. (Otherwise a status
            // that changes each time, such as a rate limit's "retry in", reconciles in a
            // loop.) Anyone else's change, status included, still triggers.
            .filter(move |object| {
                let own = matches!(object, Ok(object) if own_writes.memory.is_own_write(object));
                futures::future::ready(!own)
            }),
        store.clone(),
    );
    // Only the operator's own Secrets, metadata only: memory does not grow with the
    // cluster's Secrets, and a deleted or edited token Secret is repaired at once.
    // The reconcile an edit triggers must not read the Secret's copy from before it: the drop
    // happens here, before the trigger, not only when the watch of all Secrets below gets to
    // the same edit (the two watches deliver in no common order). The event of the operator's
    // own write triggers nothing, as for its status writes: the reconcile that wrote the
    // Secret goes on from there.
    let stale = ctx.clone();
    let owned_secrets = watcher(
        secrets.clone(),
        watcher::Config::default().labels(&labels::managed_by_selector()),
    )
    .default_backoff()
    .filter_map(move |event| {
        let touched = match event {
            Ok(watcher::Event::Apply(secret)) => {
                let own_write = stale.caches.secrets.changed_at(
                    &secret.namespace().unwrap_or_default(),
                    &secret.name_any(),
                    secret.resource_version().as_deref(),
                );
                (!own_write).then_some(Ok(secret))
            }
            Ok(watcher::Event::InitApply(secret) | watcher::Event::Delete(secret)) => {
                stale.caches.secrets.changed_at(
                    &secret.namespace().unwrap_or_default(),
                    &secret.name_any(),
                    secret.resource_version().as_deref(),
                );
                Some(Ok(secret))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(error) => Some(Err(error)),
        };
        futures::future::ready(touched)
    });
    // Any Secret's metadata, kept nowhere: a Secret the operator read is read again once
    // it changed, and a Secret that blocks an Authorization (SecretConflict) is looked at
    // again as soon as it changes or goes.
    let secret_cache = ctx.clone();
    let any_secrets = watcher(secrets, watcher::Config::default())
        .default_backoff()
        .map(move |event| {
            secret_cache
                .caches
                .secrets
                .observe(namespace.as_deref(), &event);
            event
        })
        .touched_objects();
    let conflicts = ctx.clone();
    let account_store = store.clone();
    let cluster_store = store.clone();
    let parked = store.clone();
    let authorization_controller = controller
        // An account whose GHES answers again: its parked Authorizations resume at once.
        .reconcile_on(
            availability_changes(ctx)
                .map(move |change| match change {
                    Some(change) if !change.available => Vec::new(),
                    Some(change) => users_of(
                        &parked,
                        change.key.kind,
                        change.key.namespace.as_deref(),
                        &change.key.name,
                    ),
                    None => parked
                        .state()
                        .iter()
                        .map(|object| ObjectRef::from_obj(object.as_ref()))
                        .collect(),
                })
                .flat_map(futures::stream::iter),
        )
        .owns_stream(owned_secrets)
        .watches_stream(any_secrets, move |secret: PartialObjectMeta<Secret>| {
            conflicts
                .caches
                .conflicts
                .waiting_for(&secret.namespace().unwrap_or_default(), &secret.name_any())
                .into_iter()
                .map(|reference| packed_reference(&reference))
                .collect::<Vec<_>>()
        })
        .watches_stream(
            watcher(accounts.clone(), config.clone())
                .default_backoff()
                .modify(strip)
                .reflect(account_writer)
                .filter_map(account_changes::<Account>()),
            move |account: Account| {
                users_of(
                    &account_store,
                    AccountKind::Account,
                    account.namespace().as_deref(),
                    &account.name_any(),
                )
            },
        )
        .watches_stream(
            watcher(Api::<ClusterAccount>::all(client.clone()), config.clone())
                .default_backoff()
                .modify(strip)
                .reflect(cluster_account_writer)
                .filter_map(account_changes::<ClusterAccount>()),
            move |account: ClusterAccount| {
                users_of(
                    &cluster_store,
                    AccountKind::ClusterAccount,
                    None,
                    &account.name_any(),
                )
            },
        );
    (authorization_controller, store, accounts)
}

/// Runs one controller until shutdown: the shared configuration, a graceful stop, the measured
/// reconcile, and a debug line for each run that failed.
fn drive<K, F, Fut>(
    controller: Controller<K>,
    config: &ControllerConfig,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
    kind: ControllerKind,
    reconcile: F,
    error_policy: fn(Arc<K>, &Error, Arc<Context>) -> Action,
    ctx: &Arc<Context>,
) -> BoxFuture<'static, ()>
where
    K: Clone
        + kube::Resource
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default + std::fmt::Debug + Unpin + Send + Sync,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reconciled, Error>> + Send + 'static,
{
    Box::pin(
        controller
            .with_config(config.clone())
            .graceful_shutdown_on(stop)
            .run(measured(kind, reconcile), error_policy, ctx.clone())
            .for_each(move |result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, controller = kind.as_str(), "controller");
                }
            }),
    )
}

/// How a reconcile ended when it did not fail: what to do next, and whether it was handed
/// back before any work. (A configuration error is an `Err`: `error_policy` makes it wait for
/// a change, and the metrics count it as such.)
#[derive(Debug)]
pub struct Reconciled {
    /// When to look again.
    pub action: Action,
    /// Handed back before any work, over its account's share of the workers: not a reconcile
    /// in the metrics.
    pub handed_back: bool,
}

impl Reconciled {
    /// Done, or nothing to do.
    pub fn done(action: Action) -> Self {
        Self {
            action,
            handed_back: false,
        }
    }

    /// Handed back, holding no worker, to come again with its turn.
    pub fn handed_back(turn_due: Duration) -> Self {
        Self {
            handed_back: true,
            ..Self::done(Action::requeue(turn_due))
        }
    }
}

/// Wraps a reconciler so that every reconcile is timed and counted by result and reason (one
/// handed back before any work is not a reconcile there).
/// How often a running reconcile looks whether its object left the controller's store.
const DEPARTURE_CHECK: Duration = Duration::from_millis(250);

/// `reconcile`, stopped, when sharded, once its object leaves `controller`'s store: its shard
/// label moved it to another replica's shard. The reconcile stops at once (as a crash would
/// stop it), and the new shard's waits out the hand-over (`sharding::handoff_wait`), so no object
/// has two writers.
fn departing<K, F, Fut>(
    controller: &Controller<K>,
    sharded: bool,
    reconcile: F,
) -> impl Fn(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Reconciled, Error>> + use<K, F, Fut>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default + Send + Sync,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reconciled, Error>> + Send + 'static,
{
    let store = controller.store();
    move |object, ctx| {
        let reference = ObjectRef::from_obj(object.as_ref());
        let run = reconcile(object, ctx);
        if !sharded {
            return Box::pin(run);
        }
        let store = store.clone();
        Box::pin(async move {
            let gone = async {
                loop {
                    tokio::time::sleep(DEPARTURE_CHECK).await;
                    if store.get(&reference).is_none() {
                        return;
                    }
                }
            };
            tokio::select! {
                result = run => result,
                () = gone => {
                    tracing::info!(
                        object = %reference,
                        "moved to another shard: its reconcile here stops"
                    );
                    Ok(Reconciled::done(Action::await_change()))
                }
            }
        })
    }
}

fn measured<K, F, Fut>(
    controller: ControllerKind,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>>
where
    F: Fn(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Reconciled, Error>> + Send + 'static,
{
    move |object, ctx| {
        let metrics = ctx.metrics.clone();
        let reconcile = reconcile(object, ctx);
        Box::pin(async move {
            let started = Instant::now();
            let result = reconcile.await;
            if let Ok(Reconciled {
                handed_back: true,
                action,
                ..
            }) = result
            {
                return Ok(action);
            }
            let (outcome, reason) = match &result {
                Err(error) if error.is_config() => (ReconcileResult::ConfigError, error.reason()),
                Err(error) => (ReconcileResult::Error, error.reason()),
                Ok(_) => (ReconcileResult::Success, ""),
            };
            metrics.reconciled(controller, outcome, reason, started.elapsed());
            result.map(|reconciled| reconciled.action)
        })
    }
}

/// The controllers' watch stores.
struct Stores {
    authorizations: Vec<Store<PackedAuthorization>>,
    accounts: Vec<Store<Account>>,
    cluster_accounts: Store<ClusterAccount>,
    /// The shard these caches hold, when sharded.
    shard: Option<u32>,
}

/// The Authorizations of a set of controllers' watch caches, as the per-token gauges read them
/// at each scrape.
struct TokenStores(Vec<Store<PackedAuthorization>>);

impl crate::metrics::TokenSource for TokenStores {
    fn for_each(&self, each: &mut dyn FnMut(crate::metrics::TokenSample<'_>)) {
        for store in &self.0 {
            for authorization in store.state() {
                let summary = authorization.summary;
                let meta = kube::Resource::meta(authorization.as_ref());
                each(crate::metrics::TokenSample {
                    namespace: meta.namespace.as_deref().unwrap_or_default(),
                    name: meta.name.as_deref().unwrap_or_default(),
                    ready: summary.ready,
                    expires_at: summary.expires_at.map(|at| at.as_second()),
                    next_rotation_at: summary.next_rotation_at.map(|at| at.as_second()),
                });
            }
        }
    }
}

/// Calls `on_synced` once every Authorization cache has synced; then, until `stop`, keeps the
/// `authorizations` gauge current and forgets what belonged to deleted accounts and objects
/// (GHES clients with their passwords and listings, prune counts, failure counts).
async fn watch_caches(
    caches: Stores,
    ctx: Arc<Context>,
    on_synced: impl FnOnce() + Send + 'static,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(stop);
    let synced = async {
        for store in &caches.authorizations {
            // An error means the controller (the store's writer) is gone: never synced.
            store.wait_until_ready().await.ok()?;
        }
        for store in &caches.accounts {
            store.wait_until_ready().await.ok()?;
        }
        caches.cluster_accounts.wait_until_ready().await.ok()?;
        Some(())
    };
    tokio::select! {
        synced = synced => match synced {
            Some(()) => {
                tracing::info!("controller caches synced");
                on_synced();
            }
            None => return,
        },
        () = &mut stop => return,
    }
    let metrics = ctx.metrics.clone();
    if ctx.config.token_metrics {
        metrics.set_token_source(
            caches.shard,
            Arc::new(TokenStores(caches.authorizations.clone())),
        );
    }
    let mut ticker = tokio::time::interval(AUTHORIZATIONS_GAUGE_PERIOD);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let (mut ready, mut not_ready, mut suspended) = (0, 0, 0);
                let (mut rotation_overdue, mut expired) = (0, 0);
                let now = Timestamp::now();
                let mut uids: HashSet<String> = HashSet::new();
                for authorization in caches.authorizations.iter().flat_map(Store::state) {
                    uids.extend(authorization.uid());
                    let summary = authorization.summary;
                    if summary.ready {
                        ready += 1;
                    } else {
                        not_ready += 1;
                    }
                    suspended += usize::from(summary.suspended);
                    // A suspended token waits for its rotation on purpose.
                    rotation_overdue +=
                        usize::from(!summary.suspended && summary.rotation_overdue(now));
                    expired += usize::from(summary.token_expired(now));
                }
                let shard = caches.shard;
                let mut accounts: HashSet<AccountKey> = HashSet::new();
                for account in caches.accounts.iter().flat_map(Store::state) {
                    uids.extend(account.uid());
                    accounts.insert(AccountKey::of(account.as_ref()));
                }
                for account in caches.cluster_accounts.state() {
                    uids.extend(account.uid());
                    accounts.insert(AccountKey::of(account.as_ref()));
                }
                ctx.accounts.retain(&accounts);
                ctx.memory.retain(|uid| uids.contains(uid));
                metrics.report_sample(shard, crate::metrics::Sample {
                    ready,
                    not_ready,
                    suspended,
                    rotation_overdue,
                    expired,
                    prune: ctx.accounts.prune_outcome(),
                });
            }
            () = &mut stop => {
                metrics.forget_sample(caches.shard);
                return;
            }
        }
    }
}

/// The account changes its Authorizations must see: a new or deleted account, and a change of
/// what their reconciles read of it — its spec (generation), whether it is Ready and why, and
/// the credentials GHES refused. The account's own status write after each sync (counts, last
/// sync time) changes none of them and re-reconciles none of its Authorizations.
#[allow(clippy::type_complexity)]
fn account_changes<A: AccountResource + kube::Resource>() -> impl FnMut(
    Result<watcher::Event<A>, watcher::Error>,
) -> future::Ready<
    Option<Result<A, watcher::Error>>,
> {
    let mut seen: HashMap<String, u64> = HashMap::new();
    move |event| {
        future::ready(match event {
            Err(error) => Some(Err(error)),
            Ok(watcher::Event::Apply(account) | watcher::Event::InitApply(account)) => {
                let uid = account.meta().uid.clone().unwrap_or_default();
                let read = what_users_read(&account);
                (seen.insert(uid, read) != Some(read)).then_some(Ok(account))
            }
            Ok(watcher::Event::Delete(account)) => {
                seen.remove(account.meta().uid.as_deref().unwrap_or_default());
                Some(Ok(account))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
        })
    }
}

/// What an Authorization's reconcile reads of its account, hashed.
fn what_users_read<A: AccountResource + kube::Resource>(account: &A) -> u64 {
    use std::hash::{Hash, Hasher};
    let status = account.account_status();
    let ready = status
        .and_then(|status| conditions::find_condition(&status.conditions, conditions::READY))
        .map(|ready| (ready.status.clone(), ready.reason.clone()));
    let refused = status
        .and_then(|status| status.refused_credentials.as_ref())
        .map(|refused| refused.fingerprint.clone());
    // The login: credentials that move to another GHES user strand their tokens.
    let login = status.and_then(|status| status.login.clone());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (account.meta().generation, ready, refused, login).hash(&mut hasher);
    hasher.finish()
}

/// A 64-bit hash of `value`, for what memory keeps of a string it only compares (a Secret's
/// name, a fingerprint, a resourceVersion): never for anything a collision could turn into a
/// wrong write, since each user either checks the value itself or only skips work.
pub(crate) fn string_hash(value: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Drops what no reconcile reads from objects kept in memory: managed fields and kubectl's
/// last-applied copy are often larger than the object itself.
fn strip<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    // A map emptied by that removal still holds its node.
    if meta.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        meta.annotations = None;
    }
}

/// The accounts' changes of availability, as they happen; `None` when this listener fell behind
/// and missed some (then every object is looked at).
fn availability_changes(
    ctx: &Context,
) -> impl futures::Stream<Item = Option<account::registry::AvailabilityChange>> + Send + 'static {
    futures::stream::unfold(ctx.accounts.availability_changes(), |mut changes| async {
        use tokio::sync::broadcast::error::RecvError;
        match changes.recv().await {
            Ok(change) => Some((Some(change), changes)),
            Err(RecvError::Lagged(_)) => Some((None, changes)),
            Err(RecvError::Closed) => None,
        }
    })
}

/// The accounts of `store` that a change of availability concerns: the one named, or every
/// one when changes were missed.
fn affected_accounts<A>(
    store: &Store<A>,
    change: Option<account::registry::AvailabilityChange>,
) -> Vec<ObjectRef<A>>
where
    A: AccountResource + kube::Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter(|account| {
            change
                .as_ref()
                .is_none_or(|change| AccountKey::of(account.as_ref()) == change.key)
        })
        .map(|account| ObjectRef::from_obj(account.as_ref()))
        .collect()
}

/// The Authorizations that use an account, to reconcile when it changes (each unpacked: an
/// account's change is rare beside its Authorizations' reconciles).
fn users_of(
    store: &Store<PackedAuthorization>,
    kind: AccountKind,
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<PackedAuthorization>> {
    store
        .state()
        .iter()
        .filter(|packed| {
            kind == AccountKind::ClusterAccount || packed.namespace().as_deref() == namespace
        })
        .filter(|packed| match packed.unpack() {
            Ok(authorization) => {
                let reference = &authorization.spec.account_ref;
                reference.kind == kind && reference.name == name
            }
            // Cannot happen (it was packed from the same type); reconciling it costs little.
            Err(_) => true,
        })
        .map(|packed| ObjectRef::from_obj(packed.as_ref()))
        .collect()
}

/// A watch event of Authorizations, packed for the cache. An object that cannot be packed
/// (it was just read as that type, so it cannot happen) fails the event as a watch error.
fn pack(
    event: Result<watcher::Event<Authorization>, watcher::Error>,
) -> Result<watcher::Event<PackedAuthorization>, watcher::Error> {
    let packed = |authorization| {
        PackedAuthorization::pack(authorization)
            .map_err(|error| watcher::Error::WatchFailed(kube::Error::SerdeError(error)))
    };
    Ok(match event? {
        watcher::Event::Apply(authorization) => watcher::Event::Apply(packed(authorization)?),
        watcher::Event::Delete(authorization) => watcher::Event::Delete(packed(authorization)?),
        watcher::Event::InitApply(authorization) => {
            watcher::Event::InitApply(packed(authorization)?)
        }
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    })
}

/// The controller's reference to an Authorization.
fn packed_reference(reference: &ObjectRef<Authorization>) -> ObjectRef<PackedAuthorization> {
    let packed = ObjectRef::new(&reference.name);
    match reference.namespace.as_deref() {
        Some(namespace) => packed.within(namespace),
        None => packed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_drops_managed_fields_and_kubectls_copy_and_keeps_the_rest() {
        let mut account: Account = serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
            "metadata": {
                "name": "a", "namespace": "n",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "labels": {"team": "a"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {"server": "https://ghes.example.com", "credentialsSecretRef": {"name": "c"}},
        }))
        .expect("an Account");
        strip(&mut account);
        assert_eq!(account.metadata.managed_fields, None);
        assert_eq!(
            account.metadata.annotations, None,
            "emptied: none, not an empty map"
        );
        assert_eq!(account.metadata.labels.as_ref().map(|l| l.len()), Some(1));

        account.metadata.annotations = Some(
            [
                ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
                ("keep", "me"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        );
        strip(&mut account);
        let annotations = account.metadata.annotations.expect("one left");
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["keep"]);
    }
}
