//! The operator process that `run` starts: the admin server first, then the controllers — at
//! once, once this instance holds the leader Lease, or per shard it holds — until a signal, or
//! until the Lease is lost.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use kube::Client;
use tokio::sync::watch;

use crate::admin::{AdminServer, Health, Phase};
use crate::controller::config::{ConfigError, OperatorConfig};
use crate::leader::{self, LeaderElector, LeaseLost, LeaseSettings};
use crate::metrics::Metrics;
use crate::shard::{ShardSettings, StartShard};

/// How the replicas share the work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Election {
    /// This instance runs the controllers alone.
    Alone,
    /// Only the holder of the leader Lease runs them.
    Leader(LeaseSettings),
    /// Each holder of a shard's Lease runs that shard's controllers.
    Shards(ShardSettings),
}

/// Why the operator process could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No Kubernetes client could be made from the kubeconfig or the pod's service account.
    #[error("cannot reach Kubernetes: {0}")]
    Kubernetes(String),
    /// The configuration could not be resolved.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The leader-election flags are inconsistent.
    #[error("leader election: {0}")]
    Lease(String),
    /// The admin server could not listen.
    #[error("cannot listen on {address}: {source}")]
    Admin {
        /// The address asked for.
        address: SocketAddr,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// Leadership was lost: the controllers stopped at once, and a fresh process stands by.
    #[error("{0}; exiting so that a fresh instance stands by")]
    LeaderLost(#[from] LeaseLost),
}

/// A Kubernetes client from the kubeconfig (or the pod's service account) whose every request
/// is counted in `metrics` (`kubernetes_requests_total`).
pub async fn client(metrics: Arc<Metrics>) -> Result<Client, RunError> {
    let config = kube::Config::infer()
        .await
        .map_err(|error| RunError::Kubernetes(error.to_string()))?;
    crate::kube_requests::client(config, metrics)
        .map_err(|error| RunError::Kubernetes(error.to_string()))
}

/// Runs the operator as `config` says, its admin server on `admin_address`, sharing the work
/// with other replicas as `election` says, until SIGTERM or Ctrl-C (in-flight reconciles
/// finish first). Losing the Lease ends it with [`RunError::LeaderLost`]: the controllers stop
/// at once and Kubernetes restarts the process as a standby.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    config: OperatorConfig,
    admin_address: SocketAddr,
    election: Election,
) -> Result<(), RunError> {
    let health = Arc::new(Health::new());
    let admin = AdminServer::bind(admin_address)
        .await
        .map_err(|source| RunError::Admin {
            address: admin_address,
            source,
        })?;
    let listening = admin.local_addr().map_err(|source| RunError::Admin {
        address: admin_address,
        source,
    })?;
    // On stdout for scripts and tests that ask for port 0; a closed stdout is no reason to stop.
    announce(&format!("admin server listening on http://{listening}\n"));
    tracing::info!(address = %listening, "admin server: /livez, /readyz, /metrics");
    let (stop_admin, admin_stopped) = watch::channel(false);
    let admin_task = tokio::spawn(admin.serve(
        metrics.clone(),
        health.clone(),
        leader::stopped(admin_stopped),
    ));
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });

    let outcome = match election {
        Election::Shards(settings) => {
            let start = shard_starter(client.clone(), metrics.clone(), config);
            crate::shard::run_sharded(
                client,
                settings,
                health.clone(),
                metrics.clone(),
                shutdown,
                start,
            )
            .await;
            Ok(())
        }
        Election::Alone => {
            metrics.set_leader(true);
            health.set(Phase::Syncing);
            controllers(client, metrics.clone(), config, health.clone())(Box::pin(
                leader::stopped(shutdown),
            ))
            .await;
            Ok(())
        }
        Election::Leader(settings) => {
            tracing::info!(
                lease = %format!("{}/{}", settings.namespace, settings.name),
                identity = %settings.identity,
                "leader election on: the controllers start once this instance holds the Lease"
            );
            let start = controllers(client.clone(), metrics.clone(), config, health.clone());
            let elector = LeaderElector::new(client, settings);
            leader::run_while_leading(elector, &health, &metrics, shutdown, start)
                .await
                .map_err(RunError::from)
        }
    };
    health.set(Phase::Stopping);
    let _ = stop_admin.send(true);
    match admin_task.await {
        Ok(Err(error)) => tracing::warn!(%error, "the admin server failed"),
        Err(error) => tracing::warn!(%error, "the admin server task failed"),
        Ok(Ok(())) => {}
    }
    outcome
}

/// What stops the controllers: it resolves on shutdown or when the Lease is lost.
type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The controllers of an unsharded run, to start once (at once, or with the Lease); Ready
/// once their caches synced.
fn controllers(
    client: Client,
    metrics: Arc<Metrics>,
    config: OperatorConfig,
    health: Arc<Health>,
) -> impl FnOnce(Stop) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    move |stop| {
        Box::pin(crate::controller::run_with(
            client,
            config,
            metrics,
            move || health.set(Phase::Running),
            stop,
        ))
    }
}

/// Starts the controllers of each shard this replica takes; the holder of shard 0 also runs
/// the labeller that assigns every object to its shard, under the same stop.
fn shard_starter(client: Client, metrics: Arc<Metrics>, config: OperatorConfig) -> StartShard {
    Arc::new(move |shard, stop, on_synced| {
        let config = OperatorConfig {
            shard: Some(shard),
            ..config.clone()
        };
        let stop = stop.shared();
        let labeller = (shard.index == 0).then(|| {
            crate::shard::label(
                client.clone(),
                shard.count,
                config.namespaces.clone(),
                config.cluster_resource_namespace.clone(),
                stop.clone(),
            )
        });
        let controllers =
            crate::controller::run_with(client.clone(), config, metrics.clone(), on_synced, stop);
        Box::pin(async move {
            match labeller {
                Some(labeller) => {
                    futures::join!(controllers, labeller);
                }
                None => controllers.await,
            }
        })
    })
}

/// Writes a line for scripts on stdout; a closed pipe (`| head`) is not an error.
fn announce(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
