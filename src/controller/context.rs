//! What every reconcile shares: the Kubernetes client, the account registry, the Event
//! recorder, the metrics and the per-object failure counts behind exponential backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::events::{EventPublisher, EventType};
use crate::ghes::RetryPolicy;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;

use super::account::registry::{AccountRegistry, ClientOptions};
use super::cache::{AccountViews, Conflicts, NamespaceLabels, SecretCache, Versions};
use super::error::Error;
use super::fair::FairShare;
use super::fingerprint::InstallationId;
use crate::metrics::Metrics;

/// First delay after a transient failure.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest delay after repeated transient failures.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The same jittered exponential backoff the GHES client uses, with reconcile-sized delays.
const RECONCILE_BACKOFF: RetryPolicy = RetryPolicy {
    max_retries: 0,
    base_delay: BACKOFF_BASE,
    max_delay: BACKOFF_MAX,
    max_wait: BACKOFF_MAX,
};

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Accounts: GHES clients and snapshots.
    pub accounts: AccountRegistry,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// The Secrets reconciles read, kept until a watch sees them change.
    pub secrets: SecretCache,
    /// The newest version of each Authorization this process wrote or read.
    pub versions: Versions,
    /// The Accounts and ClusterAccounts the watches keep (empty: no account resolves; the
    /// controllers set them when they start).
    pub account_views: AccountViews,
    /// The Authorizations held back by a Secret they do not own, by that Secret.
    pub conflicts: Conflicts,
    /// Namespace labels, for the namespace rules of ClusterAccounts.
    pub namespaces: NamespaceLabels,
    /// The reconcile workers each account may hold while others have work.
    pub workers: FairShare,
    /// The accounts and credentials Secrets this process put the in-use finalizer on.
    pub protected: super::in_use::Protected,
    events: EventPublisher,
    /// The operator itself (its pod, in its namespace): what Events that must outlive a
    /// namespace are about.
    operator: ObjectReference,
    failures: Mutex<HashMap<String, u32>>,
    refusals: Mutex<HashMap<String, Refusal>>,
    watched_namespaces: Vec<String>,
    installation: InstallationId,
    served_by: Option<String>,
}

impl Context {
    /// A context for one operator process; `instance` names it in Events (the pod name) and,
    /// unless `options` names another, in its GHES clients' `User-Agent`. Every GHES client it
    /// builds reports to `metrics`.
    pub fn new(
        client: Client,
        instance: Option<String>,
        installation: InstallationId,
        mut options: ClientOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        options.metrics = Some(metrics.clone());
        // The GHES clients' User-Agent names this instance unless the caller named another.
        if options.instance.is_none() {
            options.instance.clone_from(&instance);
        }
        let operator = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(
                instance
                    .clone()
                    .unwrap_or_else(|| "ghes-oauth-operator".into()),
            ),
            namespace: Some(client.default_namespace().to_owned()),
            ..ObjectReference::default()
        };
        Self {
            events: EventPublisher::new(client.clone(), "ghes-oauth-operator", instance),
            operator,
            accounts: AccountRegistry::new(options),
            metrics,
            secrets: SecretCache::new(client.clone()),
            versions: Versions::default(),
            account_views: AccountViews::default(),
            conflicts: Conflicts::default(),
            namespaces: NamespaceLabels::default(),
            workers: FairShare::new(4),
            protected: Default::default(),
            client,
            failures: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
            watched_namespaces: Vec::new(),
            installation,
            served_by: None,
        }
    }

    /// The id of this operator installation, written into every fingerprint it makes.
    pub fn installation(&self) -> &InstallationId {
        &self.installation
    }

    /// Reads ClusterAccount credentials only from `namespace` (the operator's own).
    pub fn with_cluster_resource_namespace(mut self, namespace: String) -> Self {
        self.operator.namespace = Some(namespace.clone());
        self.accounts = self.accounts.with_cluster_namespace(namespace);
        self
    }

    /// Publishes an Event in the operator's own namespace, about the operator: for what must
    /// outlive the namespace it concerns (a token abandoned while its namespace is deleted).
    pub async fn publish_to_operator(&self, type_: EventType, reason: &str, note: String) {
        let operator = self.operator.clone();
        self.publish(&operator, type_, reason, "Delete", note).await;
    }

    /// Reads Accounts and ClusterAccounts from these watch caches.
    pub fn with_account_views(mut self, views: AccountViews) -> Self {
        self.account_views = views;
        self
    }

    /// Shares `workers` reconciles at once fairly between the accounts (`run --concurrency`).
    pub fn with_concurrency(mut self, workers: u16) -> Self {
        self.workers = FairShare::new(usize::from(workers));
        self
    }

    /// Restricts the context to these namespaces (empty: all), as `run --namespace` does.
    pub fn with_watched_namespaces(mut self, namespaces: Vec<String>) -> Self {
        self.watched_namespaces = namespaces;
        self
    }

    /// Names this replica and its shard in the accounts' `status.servedBy` (sharded runs).
    pub fn with_served_by(mut self, served_by: Option<String>) -> Self {
        self.served_by = served_by;
        self
    }

    /// The replica and shard that serve this context's accounts, when sharded.
    pub fn served_by(&self) -> Option<&str> {
        self.served_by.as_deref()
    }

    /// The watched namespaces; empty means all.
    pub fn watched_namespaces(&self) -> &[String] {
        &self.watched_namespaces
    }

    /// Publishes an Event about `object`. A failure to publish is logged, never fatal.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let note = truncate(note, 1024);
        if let Err(error) = self
            .events
            .publish(object, type_, reason, action, &note)
            .await
        {
            tracing::warn!(%error, reason, "could not publish an Event");
        }
    }

    /// The delay before retrying `key` after another transient failure: exponential with
    /// jitter, per object, so one broken object does not slow the others.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        RECONCILE_BACKOFF.backoff(*count - 1)
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Remembers that GHES refused the request for the token `fingerprint` of the object
    /// `uid` at `generation` as invalid. Other errors are not remembered: a transient one is
    /// retried, and one of the account (its credentials) clears as soon as the account is
    /// fixed.
    pub fn remember_refusal(
        &self,
        uid: &str,
        generation: Option<i64>,
        fingerprint: &str,
        error: &Error,
    ) {
        if !(matches!(error, Error::InvalidSpec(_) | Error::Ghes(_)) && error.is_config()) {
            return;
        }
        let refusal = Refusal {
            generation,
            fingerprint: fingerprint.to_owned(),
            at: Instant::now(),
            reason: error.reason(),
            message: error.to_string(),
        };
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.to_owned(), refusal);
    }

    /// The refusal to answer again, without asking GHES, for the same request: same object,
    /// generation and token, within the period after which configuration errors are
    /// re-checked. Every status write triggers a reconcile; without this, each would send the
    /// refused request once more.
    pub fn refused_before(
        &self,
        uid: &str,
        generation: Option<i64>,
        fingerprint: &str,
        recheck: Duration,
    ) -> Option<Error> {
        let refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        let refusal = refusals.get(uid)?;
        (refusal.generation == generation
            && refusal.fingerprint == fingerprint
            && refusal.at.elapsed() < recheck)
            .then(|| Error::RefusedBefore {
                reason: refusal.reason,
                message: refusal.message.clone(),
            })
    }

    /// Forgets the refusals of objects (by uid) that no longer exist.
    pub fn retain_refusals(&self, live: impl Fn(&str) -> bool) {
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|uid, _| live(uid));
    }

    /// Forgets the failures of objects that no longer exist.
    pub fn retain_backoff(&self, live: impl Fn(&str) -> bool) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| live(key));
    }
}

/// A request GHES refused with a configuration error.
struct Refusal {
    generation: Option<i64>,
    fingerprint: String,
    at: Instant,
    reason: &'static str,
    message: String,
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
