//! The account registry: one GHES client per account and credentials, and the account's
//! snapshot of its authorizations, listed once per sync interval and shared by all its
//! Authorizations so that steady state costs ceil(N/100) GHES calls per interval, not N.
//!
//! A client is replaced only when the account's spec or its credentials Secret changes; a
//! client that GHES refused (401) refuses every later call itself, so a bad password is sent
//! once and never again until the Secret changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Resource, ResourceExt};
use rpds::HashTrieMapSync;

use crate::api::{
    AccountKey, AccountKind, AccountRef, AccountResource, CaBundleKind, CaBundleRef, PruneStatus,
};
use crate::controller::cache::{Caches, SecretCache};
use crate::controller::config::OperatorConfig;
use crate::controller::error::{Error, ROLE_CA_BUNDLE, ROLE_CREDENTIALS, Result};
use crate::controller::secret;
use crate::ghes::{
    Authorization as GhesAuthorization, Availability, ClientConfig, Credentials, GhesApi,
    GhesError, Grant, HttpGhesClient, SecretValue, TotpSeed,
};
use crate::metrics::PruneOutcome;

/// The account's authorizations as of one listing, plus what this process changed since.
///
/// The current view is a persistent map (structural sharing): a [`Snapshot`] is an O(1) clone
/// of it, and recording a change copies O(log N) nodes, so a reconcile's cost does not grow
/// with the number of authorizations. Only a listing rebuilds it, once per sync interval.
#[derive(Debug)]
struct Ledger {
    /// When the last complete listing started; `None` before the first one.
    listed_at: Option<Timestamp>,
    /// Every known live authorization: the listing with this process's changes applied.
    current: Authorizations,
    /// Created or updated by this process, with the time it was recorded.
    recent: HashMap<u64, (Timestamp, Arc<GhesAuthorization>)>,
    /// Deleted by this process, with the time.
    deleted: HashMap<u64, Timestamp>,
    /// The user's grants as of the last listing.
    grants: Arc<Vec<Grant>>,
    /// The login GHES reports for this account's user.
    login: Option<String>,
    /// How far GHES's clock was ahead of ours at the last listing.
    clock_offset: Option<SignedDuration>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            listed_at: None,
            current: Authorizations::default(),
            recent: HashMap::new(),
            deleted: HashMap::new(),
            grants: Arc::new(Vec::new()),
            login: None,
            clock_offset: None,
        }
    }
}

/// Authorizations by id, indexed by (app, fingerprint); cheap to clone.
#[derive(Clone, Debug)]
struct Authorizations {
    by_id: HashTrieMapSync<u64, Arc<GhesAuthorization>>,
    /// A hash of the fingerprint → ids (of any app, or personal) whose fingerprint has that
    /// hash. The hash, not the fingerprint: each would be a second copy of it. A collision
    /// only costs a comparison, as readers check the fingerprint itself.
    by_fingerprint: HashTrieMapSync<u64, Ids>,
}

/// The ids of one fingerprint hash: almost always one, held without an allocation.
#[derive(Clone, Debug)]
enum Ids {
    One(u64),
    Many(Arc<[u64]>),
}

impl Ids {
    fn as_slice(&self) -> &[u64] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    fn of(ids: Vec<u64>) -> Option<Self> {
        match ids.as_slice() {
            [] => None,
            [id] => Some(Ids::One(*id)),
            _ => Some(Ids::Many(ids.into())),
        }
    }
}

/// The key of `fingerprint` in [`Authorizations::by_fingerprint`].
fn fingerprint_key(fingerprint: &str) -> u64 {
    crate::controller::string_hash(fingerprint)
}

/// An authorization as the ledger keeps it: without the token (only a create's answer has
/// one, and the Secret holds it) and without the user (the ledger keeps the login once).
fn ledger_entry(mut authorization: GhesAuthorization) -> GhesAuthorization {
    authorization.token = None;
    authorization.user = None;
    authorization.scopes.shrink_to_fit();
    authorization
}

impl Default for Authorizations {
    fn default() -> Self {
        Self {
            by_id: HashTrieMapSync::new_sync(),
            by_fingerprint: HashTrieMapSync::new_sync(),
        }
    }
}

impl Authorizations {
    fn insert(&mut self, authorization: Arc<GhesAuthorization>) {
        self.remove(authorization.id);
        if let Some(fingerprint) = authorization.fingerprint.as_deref() {
            let key = fingerprint_key(fingerprint);
            let mut ids = self
                .by_fingerprint
                .get(&key)
                .map(|ids| ids.as_slice().to_vec())
                .unwrap_or_default();
            ids.push(authorization.id);
            if let Some(ids) = Ids::of(ids) {
                self.by_fingerprint.insert_mut(key, ids);
            }
        }
        self.by_id.insert_mut(authorization.id, authorization);
    }

    fn remove(&mut self, id: u64) {
        let Some(old) = self.by_id.get(&id).cloned() else {
            return;
        };
        self.by_id.remove_mut(&id);
        if let Some(fingerprint) = old.fingerprint.as_deref() {
            let key = fingerprint_key(fingerprint);
            let ids: Vec<u64> = self
                .by_fingerprint
                .get(&key)
                .map(|ids| {
                    ids.as_slice()
                        .iter()
                        .copied()
                        .filter(|other| *other != id)
                        .collect()
                })
                .unwrap_or_default();
            match Ids::of(ids) {
                None => {
                    self.by_fingerprint.remove_mut(&key);
                }
                Some(ids) => {
                    self.by_fingerprint.insert_mut(key, ids);
                }
            }
        }
    }
}

/// A consistent view of what the account knows about its authorizations at one instant. An
/// O(1) clone of the account's ledger: taking one costs nothing, whatever the account's size.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When the listing behind it started.
    pub listed_at: Timestamp,
    authorizations: Authorizations,
    /// The user's grants (one per OAuth app with tokens) as of the listing.
    pub grants: Arc<Vec<Grant>>,
    /// The login, when GHES reported one.
    pub login: Option<String>,
    /// How far GHES's clock was ahead of ours (negative: behind) when it answered the listing.
    pub clock_offset: Option<SignedDuration>,
}

impl Snapshot {
    /// A snapshot of exactly these authorizations and grants.
    #[cfg(test)]
    pub fn new(
        listed_at: Timestamp,
        authorizations: impl IntoIterator<Item = GhesAuthorization>,
        grants: Vec<Grant>,
        login: Option<String>,
    ) -> Self {
        let mut all = Authorizations::default();
        for authorization in authorizations {
            all.insert(Arc::new(ledger_entry(authorization)));
        }
        Self {
            listed_at,
            authorizations: all,
            grants: Arc::new(grants),
            login,
            clock_offset: None,
        }
    }

    /// `now` on GHES's clock: what `created_at` and `updated_at` of this listing count from.
    pub fn ghes_time(&self, now: Timestamp) -> Timestamp {
        self.clock_offset
            .and_then(|offset| now.checked_add(offset).ok())
            .unwrap_or(now)
    }

    /// The authorization with this id, if it is live.
    pub fn get(&self, id: u64) -> Option<&GhesAuthorization> {
        self.authorizations.by_id.get(&id).map(Arc::as_ref)
    }

    /// Every live authorization, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &GhesAuthorization> {
        self.authorizations.by_id.values().map(Arc::as_ref)
    }

    /// How many authorizations are live.
    pub fn len(&self) -> usize {
        self.authorizations.by_id.size()
    }

    /// The authorization of this app (or personal, `None`) and fingerprint, if live.
    pub fn by_fingerprint(
        &self,
        client_id: Option<&str>,
        fingerprint: &str,
    ) -> Option<&GhesAuthorization> {
        self.with_fingerprint(fingerprint)
            .find(|authorization| match client_id {
                Some(client_id) => authorization.app.client_id == client_id,
                None => is_personal(authorization),
            })
    }

    /// The live authorizations with `fingerprint`, of any app or none.
    pub fn with_fingerprint(&self, fingerprint: &str) -> impl Iterator<Item = &GhesAuthorization> {
        self.authorizations
            .by_fingerprint
            .get(&fingerprint_key(fingerprint))
            .into_iter()
            .flat_map(|ids| ids.as_slice().iter())
            .filter_map(|id| self.get(*id))
            .filter(move |authorization| authorization.fingerprint.as_deref() == Some(fingerprint))
    }
}

/// Whether an authorization is a personal token (no OAuth app).
pub fn is_personal(authorization: &GhesAuthorization) -> bool {
    authorization.app.client_id.chars().all(|c| c == '0')
}

/// The prune run of an account's latest listing.
#[derive(Default)]
struct PruneRun {
    /// The listing claimed by a run.
    listing: Option<Timestamp>,
    /// What the last finished run reported.
    report: Option<PruneStatus>,
}

/// One account's client and ledger.
pub struct AccountEntry {
    /// The account.
    pub key: AccountKey,
    /// GhesUser of the spec and credentials this client was built from.
    version: String,
    /// The GHES client.
    pub client: Arc<dyn GhesApi>,
    /// The login from the credentials Secret.
    pub username: String,
    /// The account's `spec.server` (the GHES web address), without a trailing `/`.
    pub server: String,
    /// The API root its client calls.
    pub api_root: String,
    /// SHA-256 of the password: when the password is a token, this is its `hashed_token`, and
    /// pruning must never revoke the credential the operator logs in with.
    pub credential_hash: crate::ghes::redacted::TokenHash,
    /// How often the account lists its authorizations.
    pub sync_interval: Duration,
    /// [`credentials_digest`] of the credentials this client sends.
    pub credentials_digest: String,
    ledger: Mutex<Ledger>,
    /// The listing the last prune run worked from (each listing is pruned once, whoever made
    /// it), and what that run reported.
    pruned_listing: Mutex<PruneRun>,
    /// What the last prune run found, for the metrics.
    prune_outcome: Mutex<PruneOutcome>,
    /// Serializes listings so concurrent reconciles share one.
    sync_lock: tokio::sync::Mutex<()>,
    /// Whether the account's GHES answers; shared with its client.
    pub availability: Arc<Availability>,
    /// Whether this process wrote GHES's refusal of these credentials to the account's status.
    pub refusal_recorded: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AccountEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountEntry")
            .field("key", &self.key)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AccountEntry {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current snapshot, `None` before the first listing. O(1): no copy of the listing.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let view = self.ledger();
        Some(Snapshot {
            listed_at: view.listed_at?,
            authorizations: view.current.clone(),
            grants: view.grants.clone(),
            login: view.login.clone(),
            clock_offset: view.clock_offset,
        })
    }

    /// The GHES user and server this account's credentials log in as, when GHES reported the
    /// login in `snapshot` (the username in the credentials may be another spelling of it).
    pub fn identity(&self, snapshot: &Snapshot) -> Option<crate::api::GhesUser> {
        snapshot
            .login
            .as_deref()
            .map(|login| self.identity_of(login))
    }

    /// The GHES user `login` on this account's server.
    pub fn identity_of(&self, login: &str) -> crate::api::GhesUser {
        crate::api::GhesUser::new(&self.api_root, login)
    }

    /// When the last complete listing started.
    pub fn listed_at(&self) -> Option<Timestamp> {
        self.ledger().listed_at
    }

    /// Lists the account's authorizations now (one listing at a time per account; a caller that
    /// waited for another's listing which started after `not_before` reuses it).
    pub async fn sync(&self, not_before: Option<Timestamp>) -> Result<Snapshot, GhesError> {
        let _guard = self.sync_lock.lock().await;
        if let (Some(not_before), Some(snapshot)) = (not_before, self.snapshot())
            && snapshot.listed_at >= not_before
        {
            return Ok(snapshot);
        }
        let started = Timestamp::now();
        // The listing goes into the new view page by page, never held whole. An entry it shows
        // unchanged keeps its copy: a listing of an account in sync allocates no second one.
        let before = self.ledger().current.clone();
        let mut current = Authorizations::default();
        let mut login = None;
        self.client
            .list_authorization_pages(None, &mut |page| {
                for authorization in page {
                    if login.is_none() {
                        login = authorization.user.as_ref().map(|u| u.login.clone());
                    }
                    let authorization = ledger_entry(authorization);
                    let kept = before
                        .by_id
                        .get(&authorization.id)
                        .filter(|kept| ***kept == authorization)
                        .cloned();
                    current.insert(kept.unwrap_or_else(|| Arc::new(authorization)));
                }
            })
            .await?;
        drop(before);
        let grants = self.client.list_grants(None).await?;
        {
            let mut view = self.ledger();
            view.grants = Arc::new(grants);
            view.clock_offset = self.client.clock_offset();
            view.login = login.or_else(|| view.login.clone());
            // Keep only what this process recorded after the listing started: the listing
            // already reflects everything before.
            view.recent.retain(|_, (at, _)| *at >= started);
            view.deleted.retain(|_, at| *at >= started);
            for (_, authorization) in view.recent.values() {
                current.insert(authorization.clone());
            }
            for id in view.deleted.keys() {
                current.remove(*id);
            }
            view.current = current;
            view.listed_at = Some(started);
        }
        self.snapshot()
            .ok_or_else(|| GhesError::Protocol("the listing left no snapshot".into()))
    }

    /// The snapshot, listing first when there is none yet.
    pub async fn ensure_synced(&self) -> Result<Snapshot, GhesError> {
        match self.snapshot() {
            Some(snapshot) => Ok(snapshot),
            None => self.sync(Some(Timestamp::UNIX_EPOCH)).await,
        }
    }

    /// Records an authorization this process created or updated.
    pub fn record(&self, authorization: &GhesAuthorization) {
        let mut view = self.ledger();
        // Any answer about the user's tokens names the user: the login is known from the first
        // token, even before a listing shows one.
        if let Some(user) = &authorization.user {
            view.login = Some(user.login.clone());
        }
        view.deleted.remove(&authorization.id);
        let stored = Arc::new(ledger_entry(authorization.clone()));
        view.current.insert(stored.clone());
        view.recent
            .insert(authorization.id, (Timestamp::now(), stored));
    }

    /// Whether the listing that started at `listed_at` still needs its prune run; marks it as
    /// taken, so it runs once however many reconciles see it.
    pub fn claim_prune_run(&self, listed_at: Timestamp) -> bool {
        let mut run = self.prune_run();
        if run.listing == Some(listed_at) {
            return false;
        }
        run.listing = Some(listed_at);
        true
    }

    /// Gives back the claim on the prune run of the listing that started at `listed_at`: the
    /// run failed before it deleted anything, and the next reconcile runs it again.
    pub fn release_prune_run(&self, listed_at: Timestamp) {
        let mut run = self.prune_run();
        if run.listing == Some(listed_at) {
            run.listing = None;
        }
    }

    /// Keeps what the last prune run reported until a newer run replaces it: a status write
    /// that fails after the run loses nothing, since every later sync writes it again.
    pub fn keep_prune_report(&self, report: PruneStatus) {
        self.prune_run().report = Some(report);
    }

    /// What the last prune run of this process reported, if one ran.
    pub fn prune_report(&self) -> Option<PruneStatus> {
        self.prune_run().report.clone()
    }

    fn prune_run(&self) -> std::sync::MutexGuard<'_, PruneRun> {
        self.pruned_listing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records what the last prune run found.
    pub fn set_prune_outcome(&self, outcome: PruneOutcome) {
        *self.prune_outcome.lock().unwrap_or_else(|e| e.into_inner()) = outcome;
    }

    /// Records a grant this process deleted: it took every token of its app with it.
    pub fn forget_grant(&self, grant: &Grant) {
        let gone: Vec<u64> = self
            .snapshot()
            .map(|snapshot| {
                snapshot
                    .iter()
                    .filter(|a| a.app.client_id == grant.app.client_id)
                    .map(|a| a.id)
                    .collect()
            })
            .unwrap_or_default();
        for id in gone {
            self.forget(id);
        }
        let mut view = self.ledger();
        let grants: Vec<Grant> = view
            .grants
            .iter()
            .filter(|g| g.id != grant.id)
            .cloned()
            .collect();
        view.grants = Arc::new(grants);
    }

    /// Records an authorization this process deleted (or found gone).
    pub fn forget(&self, id: u64) {
        let mut view = self.ledger();
        view.recent.remove(&id);
        view.current.remove(id);
        view.deleted.insert(id, Timestamp::now());
    }
}

/// While the account's GHES is marked unavailable, sends one probe per backoff step; when one is
/// answered, tells `recoveries`. Ends with the entry (a new client, or the account gone).
async fn probe_while_unavailable(
    entry: std::sync::Weak<AccountEntry>,
    changes: tokio::sync::broadcast::Sender<AvailabilityChange>,
) {
    let Some(mut changed) = entry.upgrade().map(|entry| entry.availability.subscribe()) else {
        return;
    };
    let tell = |key: &AccountKey, available: bool| {
        // No receiver: no controller runs (plan); nothing to wake.
        let _ = changes.send(AvailabilityChange {
            key: key.clone(),
            available,
        });
    };
    loop {
        let outage = match entry.upgrade() {
            Some(entry) => entry.availability.outage(),
            None => return,
        };
        let Some(outage) = outage else {
            // Available: wait for the next outage (or for the entry to go, which ends the
            // channel).
            if changed.changed().await.is_err() {
                return;
            }
            if let Some(entry) = entry.upgrade()
                && entry.availability.outage().is_some()
            {
                tell(&entry.key, false);
            }
            continue;
        };
        tokio::time::sleep_until(outage.next_probe_at).await;
        let Some(entry) = entry.upgrade() else {
            return;
        };
        let answered = entry.client.probe().await.is_ok();
        changed.mark_unchanged();
        // Either way the account's status changes: back, or the next probe's time.
        tell(
            &entry.key,
            answered || entry.availability.outage().is_none(),
        );
    }
}

/// Reads the PEM bundle a caBundleRef names, with its SHA-256, so that a changed CA builds a
/// new client.
async fn read_ca_bundle(
    secrets: &SecretCache,
    namespace: &str,
    reference: &CaBundleRef,
) -> Result<(String, String)> {
    let pem = match reference.kind {
        CaBundleKind::Secret => {
            let (value, _) = secret::read_value(
                secrets,
                namespace,
                &reference.name,
                &reference.key,
                ROLE_CA_BUNDLE,
            )
            .await?;
            value.expose().to_owned()
        }
        CaBundleKind::ConfigMap => {
            let map = Api::<ConfigMap>::namespaced(secrets.client().clone(), namespace)
                .get_opt(&reference.name)
                .await?
                .ok_or_else(|| {
                    Error::CaBundleNotFound(format!(
                        "ConfigMap {namespace}/{} not found",
                        reference.name
                    ))
                })?;
            map.data
                .as_ref()
                .and_then(|data| data.get(&reference.key).cloned())
                .or_else(|| {
                    map.binary_data
                        .as_ref()
                        .and_then(|data| data.get(&reference.key))
                        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
                })
                .ok_or_else(|| {
                    Error::CaBundleNotFound(format!(
                        "ConfigMap {namespace}/{} has no key {:?}",
                        reference.name, reference.key
                    ))
                })?
        }
    };
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::CaBundleNotFound(format!(
            "{:?} {namespace}/{} key {:?} holds no PEM certificate",
            reference.kind, reference.name, reference.key
        )));
    }
    // Its content, not its resourceVersion: a change of metadata (a label, a finalizer) is no
    // new CA.
    let version = crate::ghes::redacted::sha256_hex(pem.as_bytes());
    Ok((pem, version))
}

/// SHA-256 of a Secret's data, keys and values length-prefixed (in key order): what identifies
/// the credentials a client was built from without keeping them.
fn content_hash(
    data: Option<&std::collections::BTreeMap<String, k8s_openapi::ByteString>>,
) -> String {
    let mut material = Vec::new();
    for (key, value) in data.into_iter().flatten() {
        for part in [key.as_bytes(), value.0.as_slice()] {
            material.extend_from_slice(&(part.len() as u64).to_be_bytes());
            material.extend_from_slice(part);
        }
    }
    crate::ghes::redacted::sha256_hex(&material)
}

/// The key of a credentials Secret that holds a TOTP seed when `totpSecretKey` names none.
pub const DEFAULT_TOTP_KEY: &str = "totpSecret";

/// Rounds of PBKDF2 in [`credentials_digest`]: enough to make guessing a password from
/// status slow, few enough to cost milliseconds once per change of the credentials.
const DIGEST_ROUNDS: u32 = 20_000;

/// What identifies the credentials an account sends, for remembering a refusal in status
/// without the password: PBKDF2-HMAC-SHA256 of the API root, username, password and seed,
/// salted with the account's uid, as lowercase hex.
pub fn credentials_digest(
    account_uid: &str,
    api_root: &str,
    username: &str,
    password: &str,
    totp_seed: Option<&str>,
) -> String {
    use hmac::{Hmac, Mac};
    type HmacSha256 = Hmac<sha2::Sha256>;
    let mut material = Vec::new();
    for part in [api_root, username, password, totp_seed.unwrap_or_default()] {
        material.extend_from_slice(&(part.len() as u64).to_be_bytes());
        material.extend_from_slice(part.as_bytes());
    }
    let salt = format!("ghes-oauth-operator refused credentials {account_uid}");
    // PBKDF2 (RFC 8018) with one output block: U1 = PRF(P, S || INT(1)), Ui = PRF(P, Ui-1).
    let prf = |data: &[u8]| -> [u8; 32] {
        let mut mac = match HmacSha256::new_from_slice(&material) {
            Ok(mac) => mac,
            // HMAC takes keys of any length.
            Err(_) => return [0; 32],
        };
        mac.update(data);
        mac.finalize().into_bytes().into()
    };
    let mut block = salt.into_bytes();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = prf(&block);
    let mut out = u;
    for _ in 1..DIGEST_ROUNDS {
        u = prf(&u);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    data_encoding::HEXLOWER.encode(&out)
}

/// All accounts' clients and views.
pub struct AccountRegistry {
    entries: Mutex<HashMap<AccountKey, Arc<AccountEntry>>>,
    /// Timeout of one GHES request of every client.
    timeout: Duration,
    /// This operator instance's name, sent in every client's `User-Agent`.
    instance: Option<String>,
    /// Counts every client's GHES responses and rate-limit waits.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The operator's own namespace: the only place ClusterAccount credentials are read from.
    cluster_namespace: String,
    /// Accounts whose GHES stopped or started answering.
    availability_changes: tokio::sync::broadcast::Sender<AvailabilityChange>,
}

/// An account whose GHES stopped answering (`available: false`) or answers again after an
/// outage: its status says so, and its parked Authorizations resume.
#[derive(Clone, Debug)]
pub struct AvailabilityChange {
    /// The account.
    pub key: AccountKey,
    /// Whether its GHES answers now.
    pub available: bool,
}

impl Default for AccountRegistry {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            timeout: crate::controller::config::DEFAULT_GHES_TIMEOUT,
            instance: None,
            metrics: None,
            cluster_namespace: String::new(),
            availability_changes: tokio::sync::broadcast::channel(CHANGES_BUFFERED).0,
        }
    }
}

/// How many changes a slow listener may fall behind before it misses some (it then wakes
/// every object: see [`AccountRegistry::availability_changes`]).
const CHANGES_BUFFERED: usize = 1024;

impl AccountRegistry {
    /// An empty registry whose clients are built as `config` says and report to `metrics`.
    pub fn new(config: &OperatorConfig, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self {
            timeout: config.ghes_timeout,
            instance: config.instance.clone(),
            metrics: Some(metrics),
            cluster_namespace: config.cluster_resource_namespace.clone(),
            ..Self::default()
        }
    }

    /// Tells of every account whose GHES stops answering, or answers again after an outage.
    /// A listener that falls behind gets `Lagged`, and should then look at every object.
    pub fn availability_changes(&self) -> tokio::sync::broadcast::Receiver<AvailabilityChange> {
        self.availability_changes.subscribe()
    }

    /// Where an account's credentials Secret (and CA bundle) may be read: an Account's own
    /// namespace; for a ClusterAccount, the operator's namespace only — whoever may create a
    /// ClusterAccount must not be able to send any Secret of the cluster to a server of their
    /// choosing.
    pub fn credentials_namespace<A: AccountResource>(&self, account: &A) -> Result<String> {
        let named = account.credentials_namespace().unwrap_or_default();
        if A::KIND == AccountKind::ClusterAccount && named != self.cluster_namespace {
            return Err(Error::InvalidSpec(format!(
                "spec.credentialsSecretRef.namespace is {named:?}, but ClusterAccount credentials \
                 are read only from the operator's namespace {:?} (--cluster-resource-namespace); \
                 move the Secret there",
                self.cluster_namespace
            )));
        }
        Ok(named)
    }

    /// The entry of an account for its current spec and credentials: reads the credentials
    /// Secret, and builds a new client only when either changed.
    pub async fn entry_for<A>(
        &self,
        secrets: &SecretCache,
        account: &A,
    ) -> Result<Arc<AccountEntry>>
    where
        A: AccountResource + Resource,
    {
        let key = AccountKey::of(account);
        let reference = account.credentials_secret_ref();
        let namespace = self.credentials_namespace(account)?;
        let (password, secret) = secret::read_value(
            secrets,
            &namespace,
            &reference.name,
            &reference.password_key,
            ROLE_CREDENTIALS,
        )
        .await?;
        let username = secret::require_value(&secret, &reference.username_key, ROLE_CREDENTIALS)?;
        let ca_bundle = match &account.settings().ca_bundle_ref {
            Some(ca) => Some(read_ca_bundle(secrets, &namespace, ca).await?),
            None => None,
        };
        // The credentials' content, not the Secret's resourceVersion: a change of its metadata
        // (the in-use finalizer, a label, a deletion under way) keeps the client, and with it
        // a refusal the client holds that status does not record yet.
        let version = format!(
            "{}/{}/{}/{}",
            account.meta().generation.unwrap_or_default(),
            secret.uid().unwrap_or_default(),
            content_hash(secret.data.as_ref()),
            ca_bundle
                .as_ref()
                .map(|(_, version)| version.as_str())
                .unwrap_or_default(),
        );
        if let Some(entry) = self.lookup(&key)
            && entry.version == version
        {
            return Ok(entry);
        }
        // Without totpSecretKey, a seed under the documented default key is used all the same.
        let totp_key = reference.totp_secret_key.clone().or_else(|| {
            secret
                .data
                .as_ref()
                .is_some_and(|data| data.contains_key(DEFAULT_TOTP_KEY))
                .then(|| DEFAULT_TOTP_KEY.to_owned())
        });
        let totp = match &totp_key {
            None => None,
            Some(key) => {
                let seed = secret::require_value(&secret, key, ROLE_CREDENTIALS)?;
                Some(TotpSeed::parse(seed.expose()).map_err(|error| {
                    Error::InvalidSpec(format!(
                        "credentials Secret {namespace}/{} key {key:?}: {error}",
                        reference.name
                    ))
                })?)
            }
        };
        let settings = account.settings();
        let fingerprint = credentials_digest(
            &account.meta().uid.clone().unwrap_or_default(),
            &settings.api_root(),
            username.expose(),
            password.expose(),
            totp_key
                .as_ref()
                .and_then(|key| secret::value_of(&secret, key).ok())
                .as_ref()
                .map(|seed| seed.expose()),
        );
        if let Some(refused) = account
            .account_status()
            .and_then(|status| status.refused_credentials.as_ref())
            .filter(|refused| refused.fingerprint == fingerprint)
        {
            return Err(Error::CredentialsRefused {
                reason: refused.reason.clone(),
            });
        }
        let api_root = crate::ghes::api_root(&settings.server, settings.api_url.as_deref())
            .map_err(|error| match error {
                GhesError::Config(message) => Error::InvalidServerUrl(message),
                other => Error::Ghes(other),
            })?;
        let mut config = ClientConfig::new(
            api_root,
            Credentials {
                username: username.expose().to_owned(),
                password: SecretValue::new(password.expose()),
                totp,
            },
        );
        config.ca_bundle = ca_bundle
            .map(|(pem, _)| pem)
            .or_else(|| settings.ca_bundle.clone());
        config.requests_per_second = settings.requests_per_second;
        config.burst = settings.burst;
        config.timeout = self.timeout;
        config.instance = self.instance.clone();
        config.observer = self
            .metrics
            .clone()
            .map(|metrics| metrics as Arc<dyn crate::ghes::RequestObserver>);
        let availability = Arc::new(Availability::default());
        config.availability = availability.clone();
        let http = HttpGhesClient::new(config)
            .map_err(|error| Error::InvalidSpec(format!("{key}: {error}")))?;
        let entry = Arc::new(AccountEntry {
            key: key.clone(),
            version,
            client: Arc::new(http),
            username: username.expose().to_owned(),
            api_root: settings.api_root(),
            server: settings.server.trim_end_matches('/').to_owned(),
            credential_hash: crate::ghes::redacted::TokenHash::of(password.expose().as_bytes()),
            sync_interval: settings.sync_interval.as_std(),
            credentials_digest: fingerprint,
            ledger: Mutex::new(Ledger::default()),
            pruned_listing: Mutex::new(PruneRun::default()),
            prune_outcome: Mutex::new(PruneOutcome::default()),
            sync_lock: tokio::sync::Mutex::new(()),
            availability,
            refusal_recorded: std::sync::atomic::AtomicBool::new(false),
        });
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Another reconcile may have built the same client meanwhile: keep one per version, so
        // a refused password is sent once, not once per caller.
        if let Some(existing) = entries.get(&key)
            && existing.version == entry.version
        {
            return Ok(existing.clone());
        }
        tracing::info!(account = %key, "GHES client ready for the account's current credentials");
        entries.insert(key, entry.clone());
        drop(entries);
        tokio::spawn(probe_while_unavailable(
            Arc::downgrade(&entry),
            self.availability_changes.clone(),
        ));
        Ok(entry)
    }

    /// The current entry of an account, if any.
    pub fn lookup(&self, key: &AccountKey) -> Option<Arc<AccountEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Forgets accounts that no longer exist.
    pub fn retain(&self, live: &HashSet<AccountKey>) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| live.contains(key));
    }

    /// What the latest prune runs of all accounts found, summed: candidates of each kind, and
    /// how many accounts refused to prune (or withheld tokens).
    pub fn prune_outcome(&self) -> PruneOutcome {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|entry| {
                *entry
                    .prune_outcome
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
            })
            .fold(PruneOutcome::default(), |sum, one| PruneOutcome {
                authorizations: sum.authorizations + one.authorizations,
                grants: sum.grants + one.grants,
                refused: sum.refused + one.refused,
            })
    }

    /// Resolves an Authorization's account reference, applying the namespace rules: an Account
    /// only from its own namespace, a ClusterAccount only where `allowedNamespaces` allows.
    pub async fn resolve(
        &self,
        caches: &Caches,
        namespace: &str,
        reference: &AccountRef,
    ) -> Result<Arc<AccountEntry>> {
        match reference.kind {
            AccountKind::Account => {
                let account = caches
                    .account_views
                    .account(namespace, &reference.name)
                    .await?
                    .ok_or_else(|| Error::AccountNotFound {
                        kind: "Account",
                        name: reference.name.clone(),
                        namespace: Some(namespace.to_owned()),
                    })?;
                self.entry_for(&caches.secrets, account.as_ref()).await
            }
            AccountKind::ClusterAccount => {
                let account = caches
                    .account_views
                    .cluster_account(namespace, &reference.name)
                    .await?
                    .ok_or_else(|| Error::AccountNotFound {
                        kind: "ClusterAccount",
                        name: reference.name.clone(),
                        namespace: None,
                    })?;
                let labels = caches
                    .namespaces
                    .of(caches.secrets.client(), namespace)
                    .await?;
                let not_allowed = |detail: String| Error::NamespaceNotAllowed {
                    name: reference.name.clone(),
                    namespace: namespace.to_owned(),
                    detail,
                };
                match account.spec.allows_namespace(&labels) {
                    Ok(true) => {}
                    Ok(false) if account.spec.allowed_namespaces.is_none() => {
                        return Err(not_allowed(
                            "its spec.allowedNamespaces is not set, which allows no namespace"
                                .into(),
                        ));
                    }
                    Ok(false) => {
                        return Err(not_allowed(
                            "the namespace's labels do not match spec.allowedNamespaces".into(),
                        ));
                    }
                    Err(error) => {
                        return Err(not_allowed(format!(
                            "spec.allowedNamespaces is not a valid selector: {error}"
                        )));
                    }
                }
                self.entry_for(&caches.secrets, account.as_ref()).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: u64, client_id: &str, fingerprint: Option<&str>) -> GhesAuthorization {
        GhesAuthorization::listed(id, client_id, fingerprint)
    }

    const PERSONAL: &str = "00000000000000000000";

    #[test]
    fn lookups_by_id_and_fingerprint_follow_inserts_and_removals() {
        let mut all = Authorizations::default();
        all.insert(Arc::new(token(1, PERSONAL, Some("fp"))));
        all.insert(Arc::new(token(2, "Iv1.app", Some("fp"))));
        all.insert(Arc::new(token(3, "Iv1.app", None)));
        let snapshot = Snapshot {
            listed_at: Timestamp::UNIX_EPOCH,
            authorizations: all.clone(),
            grants: Arc::new(vec![]),
            login: None,
            clock_offset: None,
        };
        assert_eq!(snapshot.len(), 3);
        assert_eq!(snapshot.by_fingerprint(None, "fp").map(|a| a.id), Some(1));
        assert_eq!(
            snapshot.by_fingerprint(Some("Iv1.app"), "fp").map(|a| a.id),
            Some(2)
        );
        assert_eq!(
            snapshot
                .by_fingerprint(Some("Iv1.other"), "fp")
                .map(|a| a.id),
            None
        );
        assert_eq!(snapshot.with_fingerprint("fp").count(), 2);

        // A snapshot taken before a change keeps what it saw; the view moves on.
        all.remove(1);
        all.insert(Arc::new(token(2, "Iv1.app", Some("fp-2"))));
        let later = Snapshot {
            authorizations: all,
            ..snapshot.clone()
        };
        assert_eq!(snapshot.by_fingerprint(None, "fp").map(|a| a.id), Some(1));
        assert!(later.get(1).is_none());
        assert_eq!(later.by_fingerprint(None, "fp").map(|a| a.id), None);
        assert_eq!(later.by_fingerprint(Some("Iv1.app"), "fp"), None);
        assert_eq!(
            later.by_fingerprint(Some("Iv1.app"), "fp-2").map(|a| a.id),
            Some(2)
        );
        assert_eq!(later.len(), 2);

        // The index is by a hash of the fingerprint: an id it names under another
        // fingerprint's hash (a collision) is not taken for that fingerprint.
        let mut collided = later.authorizations.clone();
        collided
            .by_fingerprint
            .insert_mut(fingerprint_key("fp-3"), Ids::One(2));
        let collided = Snapshot {
            authorizations: collided,
            ..later.clone()
        };
        assert_eq!(collided.with_fingerprint("fp-3").count(), 0);
        assert_eq!(collided.with_fingerprint("fp-2").count(), 1);
    }

    #[test]
    fn the_ledger_keeps_neither_the_token_nor_the_user() {
        let mut issued = token(1, PERSONAL, Some("fp"));
        issued.token = Some(crate::ghes::Token::new("ghp_secret"));
        issued.user = Some(crate::ghes::types::User {
            login: "bot".into(),
            id: 7,
        });
        let kept = ledger_entry(issued);
        assert!(kept.token.is_none());
        assert!(kept.user.is_none());
        assert_eq!(kept.fingerprint.as_deref(), Some("fp"));
    }

    #[test]
    fn the_credentials_digest_changes_with_each_part_and_hides_the_password() {
        let base = credentials_digest("uid", "https://ghes/api/v3", "bot", "hunter2", None);
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            credentials_digest("uid", "https://ghes/api/v3", "bot", "hunter2", None)
        );
        assert!(!base.contains("hunter2"));
        for other in [
            credentials_digest("uid-2", "https://ghes/api/v3", "bot", "hunter2", None),
            credentials_digest("uid", "https://other/api/v3", "bot", "hunter2", None),
            credentials_digest("uid", "https://ghes/api/v3", "bot2", "hunter2", None),
            credentials_digest("uid", "https://ghes/api/v3", "bot", "hunter3", None),
            credentials_digest("uid", "https://ghes/api/v3", "bot", "hunter2", Some("SEED")),
            // Parts are length-prefixed: moving a character between them changes the value.
            credentials_digest("uid", "https://ghes/api/v3", "botb", "unter2", None),
        ] {
            assert_ne!(base, other);
        }
    }
}
