//! The controllers: Authorizations (issue, store, repair and revoke tokens) and Accounts /
//! ClusterAccounts (credentials and the shared listing of their authorizations).
//!
//! - `context`: what reconciles share; `accounts`: per-account GHES clients and snapshots.
//! - `authorization`, `account`: the reconcilers; `secret`, `status`: the writes they make.
//! - `error`: the reconcile errors and their reasons.

pub mod account;
pub mod accounts;
pub mod authorization;
pub mod context;
pub mod error;
pub mod prune;
pub mod rbac;
pub mod secret;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

pub use context::Context;
pub use error::Error;

use crate::api::{Account, AccountKind, Authorization, ClusterAccount, labels};
use accounts::ClientOptions;

/// How the controllers run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Reconciles running at once per controller.
    pub concurrency: u16,
    /// Timeout of one GHES request.
    pub ghes_timeout: Duration,
    /// Name of this operator instance in Events (e.g. the pod name).
    pub instance: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            concurrency: 4,
            ghes_timeout: Duration::from_secs(30),
            instance: None,
        }
    }
}

/// Runs every controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            options.instance.clone(),
            ClientOptions {
                timeout: options.ghes_timeout,
            },
        )
        .with_watched_namespaces(options.namespaces.clone()),
    );
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
    let config = ControllerConfig::default().concurrency(options.concurrency);
    let scopes: Vec<Option<String>> = if options.namespaces.is_empty() {
        vec![None]
    } else {
        options.namespaces.iter().cloned().map(Some).collect()
    };

    let mut tasks: Vec<BoxFuture<'static, ()>> = Vec::new();
    for namespace in scopes {
        let scoped = |client: &Client| -> (
            Api<Authorization>,
            Api<Account>,
            Api<PartialObjectMeta<Secret>>,
        ) {
            match &namespace {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                ),
                None => (
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                ),
            }
        };
        let (authorizations, accounts, secrets) = scoped(&client);
        let controller = Controller::new(authorizations, watcher::Config::default());
        let store = controller.store();
        // Only the operator's own Secrets, metadata only: memory does not grow with the
        // cluster's Secrets, and a deleted or edited token Secret is repaired at once.
        let owned_secrets = watcher(
            secrets,
            watcher::Config::default().labels(&labels::managed_by_selector()),
        )
        .default_backoff()
        .touched_objects();
        let account_store = store.clone();
        let cluster_store = store.clone();
        let authorization_controller = controller
            .owns_stream(owned_secrets)
            .watches(
                accounts.clone(),
                watcher::Config::default(),
                move |account: Account| {
                    users_of(
                        &account_store,
                        AccountKind::Account,
                        account.namespace().as_deref(),
                        &account.name_any(),
                    )
                },
            )
            .watches(
                Api::<ClusterAccount>::all(client.clone()),
                watcher::Config::default(),
                move |account: ClusterAccount| {
                    users_of(
                        &cluster_store,
                        AccountKind::ClusterAccount,
                        None,
                        &account.name_any(),
                    )
                },
            )
            .with_config(config.clone())
            .graceful_shutdown_on(when_stopped())
            .run(
                authorization::reconcile,
                authorization::error_policy,
                ctx.clone(),
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "authorization controller");
                }
            });
        tasks.push(Box::pin(authorization_controller));

        let account_controller = Controller::new(accounts, watcher::Config::default())
            .with_config(config.clone())
            .graceful_shutdown_on(when_stopped())
            .run(
                account::reconcile::<Account>,
                account::error_policy::<Account>,
                ctx.clone(),
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "account controller");
                }
            });
        tasks.push(Box::pin(account_controller));
    }
    let cluster_account_controller = Controller::new(
        Api::<ClusterAccount>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(config)
    .graceful_shutdown_on(when_stopped())
    .run(
        account::reconcile::<ClusterAccount>,
        account::error_policy::<ClusterAccount>,
        ctx.clone(),
    )
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "cluster account controller");
        }
    });
    tasks.push(Box::pin(cluster_account_controller));
    tracing::info!("controllers started");
    futures::future::join_all(tasks).await;
    tracing::info!("controllers stopped");
}

/// The Authorizations that use an account, to reconcile when it changes.
fn users_of(
    store: &Store<Authorization>,
    kind: AccountKind,
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<Authorization>> {
    store
        .state()
        .iter()
        .filter(|authorization| {
            let reference = &authorization.spec.account_ref;
            reference.kind == kind
                && reference.name == name
                && (kind == AccountKind::ClusterAccount
                    || authorization.namespace().as_deref() == namespace)
        })
        .map(|authorization| ObjectRef::from_obj(authorization.as_ref()))
        .collect()
}
