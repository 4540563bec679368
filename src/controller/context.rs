//! What every reconcile shares, in the spirit of kube-rs's controller-rs: the Kubernetes
//! client, the configuration, the account registry, the caches, what is remembered per
//! object, the Events, the metrics and the workers.

use std::sync::Arc;

use kube::Client;

use super::account::registry::AccountRegistry;
use super::cache::{AccountViews, Caches};
use super::config::OperatorConfig;
use super::events::Events;
use super::fair::FairShare;
use super::fingerprint::InstallationId;
use super::memory::ObjectMemory;
use crate::metrics::Metrics;

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// How the controllers run.
    pub config: OperatorConfig,
    /// Accounts: GHES clients and snapshots.
    pub(crate) accounts: AccountRegistry,
    /// What reconciles read from memory instead of the API server.
    pub caches: Caches,
    /// What this process remembers of each object: versions, failures, refusals.
    pub(crate) memory: ObjectMemory,
    /// The Events the controllers publish.
    pub(crate) events: Events,
    /// The operator's metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The reconcile workers each account may hold while others have work.
    pub(crate) workers: FairShare,
}

impl Context {
    /// A context for one operator process run as `config` says, reading Accounts and
    /// ClusterAccounts from `account_views`; every GHES client it builds reports to
    /// `metrics`.
    pub fn new(
        client: Client,
        config: OperatorConfig,
        account_views: AccountViews,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            accounts: AccountRegistry::new(&config, metrics.clone()),
            caches: Caches::new(client.clone(), account_views),
            memory: ObjectMemory::default(),
            events: Events::new(
                client.clone(),
                config.instance.clone(),
                config.cluster_resource_namespace.clone(),
            ),
            metrics,
            workers: FairShare::new(usize::from(config.concurrency)),
            client,
            config,
        }
    }

    /// The id of this operator installation, written into every fingerprint it makes.
    pub fn installation(&self) -> &InstallationId {
        &self.config.installation
    }

    /// The watched namespaces; empty means all.
    pub fn watched_namespaces(&self) -> &[String] {
        &self.config.namespaces
    }
}
