//! Sharding: K `coordination.k8s.io` Leases, one per shard, spread over the replicas that are
//! up, so that many replicas share the work and none of them ever writes for a shard it does
//! not hold. Kubernetes is the only coordinator; nothing here is a consensus of its own.
//!
//! - **Membership.** Each replica holds a Lease of its own, `<lease>-member-<identity>`; the
//!   live replicas are those whose member Lease has not expired.
//! - **Shards.** Shard `i` is the Lease `<lease>-shard-<i>`, taken and renewed with the leader
//!   election's own protocol ([`LeaderElector`]). A replica holds at most ceil(K / live
//!   replicas) shards: it takes free or expired ones up to that, and releases the extra ones
//!   (after its controllers for them stopped) when more replicas come up.
//! - **One writer.** A shard's controllers run only while the task that renews its Lease
//!   holds it, in a task of their own (so that no reconcile delays a renewal); when a renewal
//!   cannot succeed before the Lease's renew deadline (its duration less one retry period),
//!   the controllers are aborted at once, before anyone can see the Lease expire.
//! - **Assignment.** An account belongs to shard `hash(identity) mod K`, its identity being the
//!   GHES user it logs in as (API root and login), so that one replica speaks for each GHES
//!   user — its rate limit and its pruning; an Authorization follows its account. The replica
//!   holding shard 0 writes the label `oauth.ghes.io/shard` on every Account, ClusterAccount
//!   and Authorization, and each shard's controllers watch only objects with their label: a
//!   replica's caches hold only its shards' objects.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::admin::{Health, Phase};
use crate::api::AccountKey;
use crate::api::GhesUser;
use crate::api::{Account, AccountKind, AccountResource, Authorization, ClusterAccount};
use crate::cluster::{Pages, scoped_api, scopes};
pub use crate::controller::sharding::{
    HANDOFF, MAX_SHARDS, MOVED_AT_ANNOTATION, SHARD_LABEL, Shard, handoff_wait,
};
use crate::leader::{self, LeaderElector, LeaseSettings};
use crate::metrics::Metrics;

/// How often shard 0's holder sweeps every object's label, besides reacting to changes.
const LABEL_SWEEP: Duration = Duration::from_secs(60);

/// The shard of the GHES user `login` on the server at `api_root`, among `count`: a stable
/// hash, the same in every replica and every release.
pub fn shard_of_identity(identity: &GhesUser, count: u32) -> u32 {
    bucket(&identity.to_string(), count)
}

/// The shard of an account whose login cannot be read (its Secret is missing): by its key, so
/// that one replica reports the problem.
pub fn shard_of_key(key: &AccountKey, count: u32) -> u32 {
    bucket(&format!("account {key}"), count)
}

fn bucket(text: &str, count: u32) -> u32 {
    let hash = crate::ghes::redacted::sha256_hex(text.as_bytes());
    let head = u64::from_str_radix(&hash[..16], 16).unwrap_or(0);
    u32::try_from(head % u64::from(count.max(1))).unwrap_or(0)
}

/// How the shards are held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSettings {
    /// How many shards.
    pub count: u32,
    /// The Lease settings: `name` is the prefix of the shard and member Leases.
    pub lease: LeaseSettings,
}

impl ShardSettings {
    fn shard_lease(&self, index: u32) -> LeaseSettings {
        LeaseSettings {
            name: format!("{}-shard-{index}", self.lease.name),
            ..self.lease.clone()
        }
    }

    fn member_prefix(&self) -> String {
        format!("{}-member-", self.lease.name)
    }

    fn member_lease(&self) -> LeaseSettings {
        LeaseSettings {
            name: format!("{}{}", self.member_prefix(), self.lease.identity),
            ..self.lease.clone()
        }
    }
}

/// Starts the controllers of one shard; they stop (gracefully) when the future it is given
/// resolves.
pub type StartShard = Arc<
    dyn Fn(Shard, Pin<Box<dyn Future<Output = ()> + Send>>, Box<dyn FnOnce() + Send>) -> ShardRun
        + Send
        + Sync,
>;

/// The controllers of one shard, running.
pub type ShardRun = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A shard this replica holds: the task renewing its Lease and running its controllers.
struct Held {
    task: tokio::task::JoinHandle<LeaderElector>,
    release: watch::Sender<bool>,
    /// Set once the shard's caches have synced.
    synced: Arc<AtomicBool>,
}

/// What the health endpoints say of a replica holding shards whose caches have synced (`true`)
/// or not: ready only once every shard it holds works on synced caches.
fn phase_of(synced: impl IntoIterator<Item = bool>) -> Phase {
    let mut held = false;
    for shard in synced {
        if !shard {
            return Phase::Syncing;
        }
        held = true;
    }
    if held {
        Phase::Running
    } else {
        Phase::Standby { leader: None }
    }
}

/// Holds shards until `shutdown`: keeps the member Lease, takes and releases shard Leases as
/// replicas come and go, and runs `start`'s controllers for each shard held.
pub async fn run_sharded(
    client: Client,
    settings: ShardSettings,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    start: StartShard,
) {
    let count = settings.count;
    let identity = settings.lease.identity.clone();
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.lease.namespace);
    let mut member = LeaderElector::new(client.clone(), settings.member_lease());
    tokio::select! {
        () = member.acquire(|_| {}) => {}
        () = leader::stopped(shutdown.clone()) => return,
    }
    // Kept until shutdown, then released: the other replicas count one fewer at once and take
    // the shards this one gives back, instead of waiting for its member Lease to expire.
    let (leave, left) = watch::channel(false);
    let member_task = tokio::spawn(async move {
        loop {
            tokio::select! {
                lost = member.hold() => {
                    tracing::warn!(%lost, "lost this replica's member Lease; taking it again");
                }
                () = leader::stopped(left.clone()) => break,
            }
            tokio::select! {
                () = member.acquire(|_| {}) => {}
                () = leader::stopped(left.clone()) => break,
            }
        }
        member.release().await;
    });
    tracing::info!(
        shards = count,
        identity = %identity,
        "sharding on: this replica takes its part of the shard Leases"
    );
    // Replicas that start together see each other's member Leases before taking shards, so
    // that the first one up does not take them all only to hand most of them back.
    tokio::select! {
        () = tokio::time::sleep(settings.lease.renew_period) => {}
        () = leader::stopped(shutdown.clone()) => {
            let _ = leave.send(true);
            let _ = member_task.await;
            return;
        }
    }
    let mut electors: Vec<Option<LeaderElector>> = (0..count)
        .map(|index| {
            Some(LeaderElector::new(
                client.clone(),
                settings.shard_lease(index),
            ))
        })
        .collect();
    let mut held: HashMap<u32, Held> = HashMap::new();
    // Replicas start looking at different shards, so that they do not all race for shard 0.
    let offset = bucket(&identity, count);
    let mut ticker = tokio::time::interval(settings.lease.retry_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = leader::stopped(shutdown.clone()) => break,
        }
        // Shards whose task ended: the Lease was lost (controllers already dropped).
        let ended: Vec<u32> = held
            .iter()
            .filter(|(_, h)| h.task.is_finished())
            .map(|(index, _)| *index)
            .collect();
        for index in ended {
            if let Some(done) = held.remove(&index)
                && let Ok(elector) = done.task.await
            {
                electors[index as usize] = Some(elector);
            }
        }
        let leases = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(error) => {
                tracing::warn!(%error, "cannot list the shard Leases");
                continue;
            }
        };
        let now = Timestamp::now();
        let live = live_members(&leases, &settings.member_prefix(), &identity, now);
        let target = count.div_ceil(live.max(1));
        let by_name: HashMap<String, &Lease> = leases
            .iter()
            .map(|lease| (lease.name_any(), lease))
            .collect();
        for elector in electors.iter_mut().flatten() {
            if let Some(lease) = by_name.get(&elector.settings().name) {
                elector.observe(lease);
            }
        }
        let holding = u32::try_from(held.len()).unwrap_or(u32::MAX);
        if holding > target {
            // More replicas are up: give back the highest shards, after their controllers stop.
            let mut mine: Vec<u32> = held.keys().copied().collect();
            mine.sort_unstable_by(|a, b| b.cmp(a));
            for index in mine.into_iter().take((holding - target) as usize) {
                if let Some(shard) = held.get(&index) {
                    tracing::info!(
                        shard = index,
                        live,
                        target,
                        "releasing a shard to a new replica"
                    );
                    let _ = shard.release.send(true);
                }
            }
        } else if holding < target {
            let mut wanted = target - holding;
            for step in 0..count {
                if wanted == 0 {
                    break;
                }
                let index = (offset + step) % count;
                if held.contains_key(&index) {
                    continue;
                }
                let Some(mut elector) = electors[index as usize].take() else {
                    continue;
                };
                let free = by_name
                    .get(&elector.settings().name)
                    .is_none_or(|lease| elector.may_take(lease, now));
                if !free {
                    electors[index as usize] = Some(elector);
                    continue;
                }
                match elector.try_take().await {
                    Ok(true) => {
                        let shard = Shard { index, count };
                        tracing::info!(%shard, identity = %identity, "took a shard");
                        held.insert(
                            index,
                            spawn_shard(shard, elector, shutdown.clone(), start.clone()),
                        );
                        wanted -= 1;
                    }
                    Ok(false) => electors[index as usize] = Some(elector),
                    Err(error) => {
                        tracing::warn!(shard = index, %error, "cannot take a shard Lease");
                        electors[index as usize] = Some(elector);
                    }
                }
            }
        }
        for index in 0..count {
            metrics.set_shard_held(index, held.contains_key(&index));
        }
        metrics.set_leader(!held.is_empty());
        health.set(phase_of(
            held.values().map(|h| h.synced.load(Ordering::Relaxed)),
        ));
    }
    // Shutdown: every shard's controllers stop gracefully, then its Lease is released.
    for (_, shard) in held.drain() {
        let _ = shard.release.send(true);
        let _ = shard.task.await;
    }
    let _ = leave.send(true);
    let _ = member_task.await;
    for index in 0..count {
        metrics.set_shard_held(index, false);
    }
    metrics.set_leader(false);
}

/// Runs one shard: its controllers, while its Lease is renewed. Losing the Lease drops them at
/// once; a release or shutdown stops them gracefully and then gives the Lease back.
fn spawn_shard(
    shard: Shard,
    mut elector: LeaderElector,
    shutdown: watch::Receiver<bool>,
    start: StartShard,
) -> Held {
    let (release, released) = watch::channel(false);
    let synced = Arc::new(AtomicBool::new(false));
    let on_synced: Box<dyn FnOnce() + Send> = {
        let synced = synced.clone();
        Box::new(move || synced.store(true, Ordering::Relaxed))
    };
    let task = tokio::spawn(async move {
        let stop = {
            let shutdown = shutdown.clone();
            let released = released.clone();
            Box::pin(async move {
                tokio::select! {
                    () = leader::stopped(shutdown) => {}
                    () = leader::stopped(released) => {}
                }
            })
        };
        match leader::hold_while(&mut elector, start(shard, stop, on_synced)).await {
            None => {
                elector.release().await;
                tracing::info!(%shard, "released the shard");
            }
            Some(lost) => {
                tracing::warn!(%shard, %lost, "stopped the shard's controllers: its Lease is lost");
            }
        }
        elector
    });
    Held {
        task,
        release,
        synced,
    }
}

/// How many replicas are up: unexpired member Leases (this replica always counts).
fn live_members(leases: &[Lease], prefix: &str, identity: &str, now: Timestamp) -> u32 {
    let mut live = 1;
    for lease in leases {
        let name = lease.name_any();
        let Some(member) = name.strip_prefix(prefix) else {
            continue;
        };
        if member == identity {
            continue;
        }
        let Some(spec) = &lease.spec else { continue };
        if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
            continue;
        }
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0);
        let fresh = spec.renew_time.as_ref().is_some_and(|renewed| {
            Duration::try_from(now.duration_since(renewed.0))
                .is_ok_and(|age| age <= Duration::from_secs(duration))
        });
        live += u32::from(fresh);
    }
    live
}

/// Keeps the shard label of every Account, ClusterAccount and Authorization right: run by the
/// replica holding shard 0, until `stop`. New objects are labelled as they appear; a full sweep
/// follows every new account and change of an account's spec, and runs every [`LABEL_SWEEP`]
/// (a changed login in a credentials Secret is seen then).
pub async fn label(
    client: Client,
    count: u32,
    namespaces: Vec<String>,
    cluster_namespace: String,
    stop: impl Future<Output = ()> + Send,
) {
    let labeler = Arc::new(Labeler {
        client: client.clone(),
        count,
        namespaces,
        cluster_namespace,
        shards: std::sync::Mutex::new(HashMap::new()),
    });
    let scopes = labeler.scopes();
    let (kick, mut kicked) = tokio::sync::mpsc::channel::<()>(1);
    // Only a new account or a spec change moves it: status writes trigger nothing.
    let mut account_changes = Vec::new();
    let mut unlabelled = Vec::new();
    for scope in &scopes {
        let authorizations: Api<Authorization> = scoped_api(&client, scope.as_deref());
        let accounts: Api<Account> = scoped_api(&client, scope.as_deref());
        unlabelled.push(
            watcher(
                authorizations,
                watcher::Config::default().labels(&format!("!{SHARD_LABEL}")),
            )
            .default_backoff()
            .applied_objects()
            .boxed(),
        );
        account_changes.push(
            watcher(accounts, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .predicate_filter(predicates::generation, Default::default())
                .map(|_| ())
                .boxed(),
        );
    }
    account_changes.push(
        watcher(
            Api::<ClusterAccount>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default())
        .map(|_| ())
        .boxed(),
    );
    let mut account_changes = futures::stream::select_all(account_changes);
    let account_kick = kick.clone();
    let forward = async move {
        while account_changes.next().await.is_some() {
            // A full channel already holds a kick: the sweep to come sees this change too.
            let _ = account_kick.try_send(());
        }
    };
    // A new Authorization is labelled at once, alone: no replica sees it before.
    let one_by_one = {
        let labeler = labeler.clone();
        let kick = kick.clone();
        let mut unlabelled = futures::stream::select_all(unlabelled);
        async move {
            while let Some(event) = unlabelled.next().await {
                let Ok(authorization) = event else { continue };
                match labeler.label_authorization(&authorization).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = kick.try_send(());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot label an Authorization with its shard");
                        let _ = kick.try_send(());
                    }
                }
            }
        }
    };
    let sweeps = async move {
        loop {
            if let Err(error) = labeler.sweep().await {
                tracing::warn!(%error, "cannot label objects with their shard; retrying");
            }
            tokio::select! {
                _ = kicked.recv() => {}
                () = tokio::time::sleep(LABEL_SWEEP) => {}
            }
        }
    };
    tokio::select! {
        () = forward => {}
        () = one_by_one => {}
        () = sweeps => {}
        () = stop => {}
    }
}

struct Labeler {
    client: Client,
    count: u32,
    namespaces: Vec<String>,
    cluster_namespace: String,
    /// Each account's shard as of the latest sweep (or lookup).
    shards: std::sync::Mutex<HashMap<AccountKey, u32>>,
}

impl Labeler {
    fn scopes(&self) -> Vec<Option<String>> {
        scopes(&self.namespaces)
    }

    /// The API of a namespaced object's own namespace.
    fn own<K>(&self, object: &K) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &object.namespace().unwrap_or_default())
    }

    /// Labels every account, then every Authorization after its account, page by page.
    async fn sweep(&self) -> Result<(), kube::Error> {
        let mut shards: HashMap<AccountKey, u32> = HashMap::new();
        for scope in self.scopes() {
            let api: Api<Account> = scoped_api(&self.client, scope.as_deref());
            for account in Pages::of(&api).all().await? {
                let shard = self.shard_of_account(&account).await;
                shards.insert(AccountKey::of(&account), shard);
                self.set_label(self.own(&account), &account, shard).await?;
            }
        }
        let api = Api::<ClusterAccount>::all(self.client.clone());
        for account in Pages::of(&api).all().await? {
            let shard = self.shard_of_account(&account).await;
            shards.insert(AccountKey::of(&account), shard);
            self.set_label(api.clone(), &account, shard).await?;
        }
        *self.shards.lock().unwrap_or_else(|e| e.into_inner()) = shards.clone();
        for scope in self.scopes() {
            let api: Api<Authorization> = scoped_api(&self.client, scope.as_deref());
            let mut pages = Pages::of(&api);
            while let Some(page) = pages.next().await? {
                for authorization in &page {
                    let key = AccountKey::referenced_by(authorization);
                    let shard = shards
                        .get(&key)
                        .copied()
                        .unwrap_or_else(|| shard_of_key(&key, self.count));
                    self.set_label(self.own(authorization), authorization, shard)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Labels one Authorization after its account, as of the latest sweep; `false` when the
    /// account is not known yet (a new one: the next sweep labels both).
    async fn label_authorization(
        &self,
        authorization: &Authorization,
    ) -> Result<bool, kube::Error> {
        let key = AccountKey::referenced_by(authorization);
        let known = self
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        match known {
            Some(shard) => {
                self.set_label(self.own(authorization), authorization, shard)
                    .await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The shard of an account: by the GHES user its credentials name, else by its key.
    async fn shard_of_account<A>(&self, account: &A) -> u32
    where
        A: AccountResource + Resource<DynamicType = ()>,
    {
        let key = AccountKey::of(account);
        let reference = account.credentials_secret_ref();
        let namespace = match (A::KIND, account.credentials_namespace()) {
            (AccountKind::ClusterAccount, Some(ns)) if ns != self.cluster_namespace => None,
            (_, ns) => ns,
        };
        let login = match namespace {
            Some(ns) => Api::<Secret>::namespaced(self.client.clone(), &ns)
                .get_opt(&reference.name)
                .await
                .ok()
                .flatten()
                .and_then(|secret| {
                    crate::controller::secret::value_of(&secret, &reference.username_key).ok()
                })
                .map(|value| value.expose().to_owned()),
            None => None,
        };
        match login {
            Some(login) => shard_of_identity(
                &GhesUser::new(&account.settings().api_root(), &login),
                self.count,
            ),
            None => shard_of_key(&key, self.count),
        }
    }

    /// Labels `object` (of `api`: its namespace's, or cluster-wide) with `shard`.
    async fn set_label<K>(&self, api: Api<K>, object: &K, shard: u32) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let value = shard.to_string();
        let patch = match object.labels().get(SHARD_LABEL) {
            Some(current) if *current == value => return Ok(()),
            // A move: the new shard waits out the hand-over before it writes.
            Some(_) => serde_json::json!({"metadata": {
                "labels": {SHARD_LABEL: value},
                "annotations": {MOVED_AT_ANNOTATION: Timestamp::now().to_string()},
            }}),
            None => serde_json::json!({"metadata": {"labels": {SHARD_LABEL: value}}}),
        };
        match api
            .patch(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Deleted meanwhile.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    #[test]
    fn a_moved_object_waits_out_the_hand_over() {
        let meta = |moved: Option<Timestamp>| kube::core::ObjectMeta {
            annotations: moved.map(|at| {
                std::collections::BTreeMap::from([(MOVED_AT_ANNOTATION.to_owned(), at.to_string())])
            }),
            ..Default::default()
        };
        assert_eq!(handoff_wait(&meta(None)), None);
        let just_now = handoff_wait(&meta(Some(Timestamp::now()))).expect("a wait");
        assert!(just_now <= HANDOFF && just_now > HANDOFF - Duration::from_secs(2));
        let long_ago = Timestamp::now() - jiff::SignedDuration::from_secs(60);
        assert_eq!(handoff_wait(&meta(Some(long_ago))), None);
    }

    #[test]
    fn a_replica_is_ready_once_every_shard_it_holds_has_synced() {
        assert_eq!(phase_of([]), Phase::Standby { leader: None });
        assert_eq!(phase_of([true, false]), Phase::Syncing);
        assert_eq!(phase_of([false]), Phase::Syncing);
        assert_eq!(phase_of([true, true]), Phase::Running);
    }

    #[test]
    fn identities_spread_over_the_shards_and_stay_put() {
        let mut counts = [0u32; 3];
        for n in 0..300 {
            let identity = GhesUser::new("https://ghes.example.com/api/v3", &format!("bot-{n}"));
            let shard = shard_of_identity(&identity, 3);
            counts[shard as usize] += 1;
            assert_eq!(shard, shard_of_identity(&identity, 3), "stable");
        }
        assert!(counts.iter().all(|c| *c > 70), "{counts:?}");
        // Logins are case-insensitive on GHES: one user, one shard.
        assert_eq!(
            shard_of_identity(&GhesUser::new("https://GHES.example.com/api/v3", "Bot"), 6),
            shard_of_identity(&GhesUser::new("https://ghes.example.com/api/v3/", "bot"), 6)
        );
        assert_eq!(bucket("anything", 1), 0);
    }

    fn member(name: &str, holder: Option<&str>, age_secs: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(
                    Timestamp::now() - jiff::SignedDuration::from_secs(age_secs),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn live_members_are_unexpired_member_leases_and_this_replica() {
        let now = Timestamp::now();
        let leases = vec![
            member("op-member-a", Some("a"), 1, 15),
            member("op-member-b", Some("b"), 20, 15),
            member("op-member-c", None, 1, 15),
            member("op-shard-0", Some("d"), 1, 15),
            member("op-member-me", Some("me"), 100, 15),
        ];
        // a is live; b expired; c released; shard Leases are not members; me counts once.
        assert_eq!(live_members(&leases, "op-member-", "me", now), 2);
        assert_eq!(live_members(&[], "op-member-", "me", now), 1);
    }

    /// A reconcile step that keeps its thread longer than the renew deadline (a large page
    /// parsed at once, or any step on a starved machine) must not cost the shard its Lease:
    /// losing it drops every reconcile in flight, and a token issued by one of them is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reconcile_holding_its_thread_does_not_cost_the_shard_its_lease() {
        let server = kube_testkit::TestApiServer::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("server");
        let client = server.client("operator").expect("client");
        let mut settings = LeaseSettings::new("default".into(), "op-shard-0".into(), "me".into());
        settings.lease_duration = Duration::from_secs(3);
        settings.renew_period = Duration::from_millis(500);
        settings.retry_period = Duration::from_millis(500);
        assert_eq!(settings.validate(), Ok(()));
        let deadline = settings.renew_deadline();
        let mut elector = LeaderElector::new(client.clone(), settings);
        assert_eq!(elector.try_take().await, Ok(true));
        let (_shutdown, shutdown_rx) = watch::channel(false);
        let start: StartShard = Arc::new(move |_, stop, on_synced| {
            Box::pin(async move {
                on_synced();
                std::thread::sleep(deadline + Duration::from_millis(1500));
                stop.await;
            })
        });
        let shard = spawn_shard(Shard { index: 0, count: 1 }, elector, shutdown_rx, start);
        tokio::time::sleep(deadline + Duration::from_secs(3)).await;
        assert!(
            !shard.task.is_finished(),
            "the shard's Lease was lost while a reconcile held its thread"
        );
        let lease = Api::<Lease>::namespaced(client, "default")
            .get("op-shard-0")
            .await
            .expect("the Lease");
        let spec = lease.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(0));
        // A release still stops the controllers gracefully and gives the Lease back.
        let _ = shard.release.send(true);
        shard.task.await.expect("the shard task");
        let lease = Api::<Lease>::namespaced(server.client("operator").expect("client"), "default")
            .get("op-shard-0")
            .await
            .expect("the Lease");
        assert_eq!(lease.spec.and_then(|s| s.holder_identity), None);
    }

    #[test]
    fn a_shard_selects_its_label() {
        let shard = Shard { index: 2, count: 3 };
        assert_eq!(shard.selector(), "oauth.ghes.io/shard=2");
        assert_eq!(shard.to_string(), "shard 2 of 3");
    }
}
