//! The operator's configuration, resolved once: what `run`'s and `plan`'s flags say, with the
//! defaults that need the cluster (the installation id, the operator's namespace) filled in.
//! Every part of the controllers reads it from here.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::fingerprint::InstallationId;
use super::sharding::Shard;

/// The default of `--concurrency`.
pub const DEFAULT_CONCURRENCY: u16 = 32;

/// The default of `--ghes-timeout`.
pub const DEFAULT_GHES_TIMEOUT: Duration = Duration::from_secs(10);

/// How the controllers run, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorConfig {
    /// The id of this installation, written into every fingerprint it makes.
    pub installation: InstallationId,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// The operator's own namespace: the only one ClusterAccount credentials and CA bundles are
    /// read from, and where Events that must outlive a namespace go.
    pub cluster_resource_namespace: String,
    /// Name of this instance in Events and in the `User-Agent` of its GHES requests (the pod
    /// name in a cluster).
    pub instance: Option<String>,
    /// Most reconciles running at once per controller (each account runs what its budget needs
    /// within it).
    pub concurrency: u16,
    /// Timeout of one GHES request.
    pub ghes_timeout: Duration,
    /// Run only this shard's objects (those labelled with it), `run --shards`.
    pub shard: Option<Shard>,
    /// Export the per-token gauges (one series per Authorization), `run --token-metrics`.
    pub token_metrics: bool,
}

/// A configuration that could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The installation id defaults to the `kube-system` namespace's uid, which could not be
    /// read.
    #[error(
        "cannot read the kube-system namespace for the installation id ({0}); set \
         --installation-id"
    )]
    KubeSystem(#[source] kube::Error),
    /// The `kube-system` namespace's uid is not a valid installation id.
    #[error("the kube-system namespace's uid is no installation id ({0}); set --installation-id")]
    Installation(String),
}

impl OperatorConfig {
    /// The configuration with every default: the installation id `installation`, else the uid
    /// of the cluster's `kube-system` namespace (stable for the life of a cluster, distinct
    /// between clusters); the operator's namespace `cluster_resource_namespace`, else the
    /// client's default namespace. Set the other fields with struct update syntax.
    pub async fn resolve(
        client: &Client,
        installation: Option<InstallationId>,
        cluster_resource_namespace: Option<String>,
    ) -> Result<Self, ConfigError> {
        let installation = match installation {
            Some(chosen) => chosen,
            None => kube_system_uid(client).await?,
        };
        Ok(Self::with(
            installation,
            cluster_resource_namespace.unwrap_or_else(|| client.default_namespace().to_owned()),
        ))
    }

    /// The configuration of `installation` in the operator namespace `namespace`, with the
    /// defaults of every flag.
    pub fn with(installation: InstallationId, namespace: String) -> Self {
        Self {
            installation,
            namespaces: Vec::new(),
            cluster_resource_namespace: namespace,
            instance: None,
            concurrency: DEFAULT_CONCURRENCY,
            ghes_timeout: DEFAULT_GHES_TIMEOUT,
            shard: None,
            token_metrics: true,
        }
    }

    /// What the accounts' `status.servedBy` says when sharded: this replica and its shard.
    pub fn served_by(&self) -> Option<String> {
        self.shard.map(|shard| {
            format!(
                "{} ({shard})",
                self.instance.as_deref().unwrap_or("ghes-oauth-operator")
            )
        })
    }

    /// The watch configuration of the operator's own kinds: only the shard's objects when
    /// sharded.
    pub fn watch_config(&self) -> watcher::Config {
        match &self.shard {
            Some(shard) => watcher::Config::default().labels(&shard.selector()),
            None => watcher::Config::default(),
        }
    }
}

async fn kube_system_uid(client: &Client) -> Result<InstallationId, ConfigError> {
    let namespace = Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await
        .map_err(ConfigError::KubeSystem)?;
    let uid = namespace
        .uid()
        .ok_or_else(|| ConfigError::Installation("none".into()))?;
    uid.to_ascii_lowercase()
        .parse()
        .map_err(ConfigError::Installation)
}
