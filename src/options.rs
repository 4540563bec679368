//! The flags `run` and `plan` share, defined once and flattened into both: which objects the
//! operator serves, which installation it is, and how it talks to GHES. [`OperatorOptions::resolve`]
//! turns them into the one [`OperatorConfig`] the controllers read.

use std::time::Duration;

use clap::Args;
use kube::Client;

use crate::controller::config::{ConfigError, OperatorConfig};
use crate::controller::fingerprint::InstallationId;

/// The flags of the operator's configuration that `run` and `plan` share.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct OperatorOptions {
    /// Namespaces the operator watches, comma-separated or repeated; empty watches all
    /// namespaces. (`plan`: pruning leaves alone this installation's tokens it cannot
    /// attribute when not every namespace is watched, and the plan says so too.)
    #[arg(
        help_heading = "Watch",
        long = "namespace",
        visible_alias = "watch-namespace",
        env = "WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// The operator's own namespace: the only one ClusterAccount credentials Secrets (and CA
    /// bundles) are read from, so that whoever may create a ClusterAccount cannot send other
    /// Secrets to a server of their choosing (default: `POD_NAMESPACE`, else the kubeconfig's
    /// namespace).
    #[arg(help_heading = "Watch", long, env = "CLUSTER_RESOURCE_NAMESPACE")]
    pub cluster_resource_namespace: Option<String>,
    /// Timeout of one GHES request, in seconds (GitHub's own API gives up after 10). A request
    /// that times out makes its account unavailable until a probe answers.
    #[arg(help_heading = "Reconcile", long, env = "GHES_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub ghes_timeout: u64,
    /// Id of this installation of the operator, written into the fingerprint of every token it
    /// makes so that tokens of another cluster or installation sharing a GHES user are never
    /// pruned or revoked (default: the uid of the `kube-system` namespace). A DNS label; keep it
    /// stable: tokens made under another id are no longer recognised as this installation's.
    #[arg(help_heading = "Identity", long, env = "INSTALLATION_ID")]
    pub installation_id: Option<InstallationId>,
    /// The pod's namespace (`POD_NAMESPACE`, from the downward API), read once: the default of
    /// `--cluster-resource-namespace` (and of `run --leader-election-namespace`).
    #[arg(skip = std::env::var("POD_NAMESPACE").ok())]
    pub pod_namespace: Option<String>,
}

impl OperatorOptions {
    /// The watched namespaces, trimmed, without empty ones.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty())
            .collect()
    }

    /// `chosen`, else the pod's namespace; trimmed, `None` when empty.
    pub(crate) fn or_pod_namespace(&self, chosen: &Option<String>) -> Option<String> {
        chosen
            .as_ref()
            .or(self.pod_namespace.as_ref())
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty())
    }

    /// The configuration these flags describe, resolved through `client`: the installation id
    /// defaults to the `kube-system` namespace's uid, the operator's namespace to
    /// `POD_NAMESPACE`, else the client's namespace.
    pub async fn resolve(&self, client: &Client) -> Result<OperatorConfig, ConfigError> {
        let cluster_resource_namespace = self.or_pod_namespace(&self.cluster_resource_namespace);
        let config = OperatorConfig::resolve(
            client,
            self.installation_id.clone(),
            cluster_resource_namespace,
        )
        .await?;
        Ok(OperatorConfig {
            namespaces: self.namespaces(),
            ghes_timeout: Duration::from_secs(self.ghes_timeout),
            ..config
        })
    }
}
