//! An in-process Kubernetes API server for tests, `demo` and end-to-end runs without a cluster.
//!
//! It speaks the Kubernetes API over plain HTTP on loopback, well enough for the unmodified
//! operator binary (a `kube::Client` from an ordinary kubeconfig), for `kube::runtime`'s
//! watchers, reflectors, controllers and event recorder, and for kubectl-style requests. It
//! exists to test the operator, so it reproduces the API server's behaviour rather than being
//! lenient: the same status codes, `Status` objects and messages, the same resourceVersion,
//! generation, finalizer, garbage-collection and server-side-apply rules.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use kube_testkit::TestApiServer;
//! let server = TestApiServer::start("127.0.0.1:0".parse()?).await?;
//! let client = server.client("alice")?;
//! server.write_kubeconfig("/tmp/kubeconfig", "alice")?;
//! # drop(client);
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # What it serves
//! - Core `v1`: `namespaces` (with `status` and `finalize`), `secrets`, `configmaps`, `events`;
//!   `events.k8s.io/v1` `events` (the same objects as core Events, converted);
//!   `coordination.k8s.io/v1` `leases`; `apiextensions.k8s.io/v1` `customresourcedefinitions`.
//!   Creating or updating a CRD registers its served versions, scope, names, `status`
//!   subresource and schema; deleting one deletes its custom resources first.
//! - Every custom resource of a registered CRD, namespaced or cluster-scoped, validated against
//!   the schema of the version used (types, `required`, `enum`, `pattern`, formats, bounds,
//!   list-type uniqueness, …), pruned of unknown fields and defaulted, with the API server's
//!   messages (`Authorization.oauth.ghes.io "x" is invalid: spec.deletionPolicy: Unsupported
//!   value: "Later": supported values: "Delete", "Orphan"`). Updates are ratcheted: an invalid
//!   value the object already had does not fail them.
//! - Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`.
//! - Verbs: get, list (label and field selectors, `limit`/`continue` over a consistent
//!   snapshot, `resourceVersion` and `resourceVersionMatch`), watch (see `watch.rs`), create,
//!   update, patch (JSON merge, JSON patch, strategic merge for built-in types, server-side
//!   apply with field ownership and conflicts), delete (preconditions, propagation policies,
//!   finalizers and `deletionTimestamp`), deletecollection; the `status` subresource;
//!   metadata-only requests (`Accept: …;as=PartialObjectMetadata[List]`); `dryRun=All`;
//!   `fieldValidation` (`Strict` refuses unknown fields, `Warn` — the default — answers with
//!   `Warning` headers).
//! - The controllers the operator relies on: garbage collection by owner references,
//!   namespace termination, CRD cleanup, watch bookmarks.
//!
//! # What it does not reproduce
//! - CEL rules (`x-kubernetes-validations`) are evaluated with CEL's standard library only
//!   (`cel.rs`): Kubernetes' extension libraries (`url()`, `quantity()`, …) are missing, and a
//!   rule calling one fails as an evaluation error; `messageExpression` is not evaluated. Not
//!   reproduced at all: validating or mutating admission webhooks, `ValidatingAdmissionPolicy`,
//!   RBAC beyond the permission table of [`TestApiServer::restrict`] (without one, every bearer
//!   token is accepted and is the user's name; requests without credentials are
//!   `system:anonymous` and allowed, because kubectl sends no token over plain HTTP; other
//!   schemes get 401), quotas or priority and fairness.
//! - Structural-schema checks of CRDs themselves, conversion webhooks (versions convert by
//!   rewriting `apiVersion`, the `None` strategy), `x-kubernetes-embedded-resource` metadata
//!   validation, printer columns (`Accept: …;as=Table` gets a plain list, which kubectl prints
//!   with its default columns), the OpenAPI documents beyond what kubectl needs (`/openapi/v3`
//!   has paths with their `fieldValidation` parameter and the custom resources' schemas, no
//!   built-in schemas; `/openapi/v2` is 404), and aggregated discovery (clients fall back to the
//!   legacy documents).
//! - Strategic merge patch knows the merge keys of `metadata.finalizers` (a set) and
//!   `metadata.ownerReferences` (by `uid`) and the `$patch` / `$deleteFromPrimitiveList`
//!   directives; every other list is replaced whole (`$setElementOrder` and `$retainKeys` are
//!   ignored). Custom resources refuse it with 415, as on a real server.
//! - Server-side apply tracks leaf fields, map keys, set items and map-list items (by their
//!   keys); lists are never tracked by index, and an explicit `null` in an applied configuration
//!   is treated as an omitted field.
//! - `propagationPolicy=Foreground` adds the `foregroundDeletion` finalizer and the garbage
//!   collector deletes dependents in the background, waiting only for those with
//!   `blockOwnerDeletion: true`, as the real one does; it does not mark their owners' deletion
//!   as waiting across several levels.
//! - Graceful deletion periods (Pods) do not exist here: deletion is immediate or waits for
//!   finalizers (`deletionGracePeriodSeconds: 0`).
//! - A watch or list at a `resourceVersion` newer than the server's: lists answer 504
//!   `Too large resource version` at once (the real one waits up to 3 s first); watches start
//!   from it. Continue tokens that expired get 410 without an inconsistent-continue token.
//! - Protobuf: requests and answers are JSON (and YAML bodies); kubectl's imperative
//!   `create secret` / `create configmap` send protobuf and get 415 — use `kubectl apply -f`.
//! - The watch history is one window of the last changes of all resources (10 000 by default),
//!   where the real watch cache keeps a window per resource: a watch can expire because other
//!   resources changed a lot.
//! - Type-specific Secret validation (`kubernetes.io/tls` keys and the like), Event series
//!   validation beyond count and time, and built-in field selectors other than those listed
//!   in `selector.rs`.
//!
//! Module map (a table of contents):
//! - `routes`: HTTP surface, auth, request log, faults, dispatch; `kubeconfig`: client config.
//! - `read`: get and list; `watch`: watch streams; `crud`: the write pipeline; `delete`:
//!   deletion; `patch`: patch formats; `apply`: field ownership and server-side apply.
//! - `resources`: what is served and version conversion; `discovery`: discovery documents;
//!   `openapi`: the minimal OpenAPI v3 documents kubectl reads.
//! - `hooks`: per-type rules; `schema`: CRD schemas; `metadata`: metadata rules; `selector`:
//!   label and field selectors.
//! - `store`: objects, resourceVersions, history; `gc`: the controllers; `journal`: request log
//!   and faults; `errors`: errors and `Status` objects.

mod admission;
mod apply;
mod cel;
mod crud;
mod delete;
mod discovery;
mod errors;
mod gc;
mod hooks;
mod journal;
mod kubeconfig;
mod memo;
mod metadata;
mod openapi;
mod patch;
mod read;
mod resources;
mod routes;
mod schema;
mod selector;
mod store;
#[cfg(test)]
mod test_support;
mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

pub use admission::Permission;
pub use errors::Error;
pub use journal::{FaultSpec, RequestRecord};

use admission::Permissions;
use crud::WriteRequest;
use routes::App;
use store::{Store, StoreConfig};

/// The result of the testkit's own operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long [`RunningApiServer::shutdown`] waits for open connections before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The namespaces every cluster starts with.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Configures and starts a test API server.
#[derive(Clone, Debug, Default)]
pub struct TestApiServer {
    config: StoreConfig,
    restricted: HashMap<String, Arc<Permissions>>,
}

impl TestApiServer {
    /// A server with the default settings: 10 000 changes of watch history, bookmarks every
    /// second, the garbage collector 50 ms after a change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a server with the default settings on `addr` (a loopback address; port 0 picks a
    /// free port).
    pub async fn start(addr: SocketAddr) -> Result<RunningApiServer> {
        Self::new().bind(addr).await
    }

    /// How many changes the watch history keeps; a watch from an older version gets 410.
    pub fn history_limit(mut self, changes: usize) -> Self {
        self.config.history_limit = changes.max(1);
        self
    }

    /// How often watches that asked for bookmarks get one.
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.config.bookmark_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long the garbage collector and namespace controller wait after a change.
    pub fn gc_delay(mut self, delay: Duration) -> Self {
        self.config.gc_delay = delay;
        self
    }

    /// Restricts `user` to `permissions`, as RBAC does: a resource request outside them gets the
    /// authorizer's 403. The `OwnerReferencesPermissionEnforcement` admission plugin
    /// (OpenShift's default) checks them too: a write by `user` that sets `blockOwnerDeletion`
    /// on an owner whose `finalizers` it may not update, or changes the owner references of an
    /// object it may not delete, gets 403. [`RunningApiServer::permissions_used`] tells which
    /// were used.
    pub fn restrict(mut self, user: &str, permissions: Vec<Permission>) -> Self {
        self.restricted
            .insert(user.to_owned(), Arc::new(Permissions::new(permissions)));
        self
    }

    /// Starts this server on `addr` (a loopback address; port 0 picks a free port).
    pub async fn bind(self, addr: SocketAddr) -> Result<RunningApiServer> {
        if !addr.ip().is_loopback() {
            return Err(Error::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (stop, stopped) = signal::channel(false);
        let app = build(self.config, self.restricted, local, stopped.clone());
        let mut tasks = spawn_controllers(&app.store);
        let server_app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut stopped = stopped;
            let until_stopped = async move {
                // A dropped sender stops the server too.
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, routes::router(server_app))
                .with_graceful_shutdown(until_stopped)
                .await
            {
                tracing::warn!(error = %e, "test API server stopped with an error");
            }
        }));
        tracing::info!(addr = %local, "test API server listening");
        Ok(RunningApiServer {
            addr: local,
            app,
            stop,
            tasks,
        })
    }
}

fn build(
    config: StoreConfig,
    restricted: HashMap<String, Arc<Permissions>>,
    addr: SocketAddr,
    stopped: signal::Receiver<bool>,
) -> Arc<App> {
    let store = Arc::new(Store::new(config, stopped));
    {
        let mut st = store.lock();
        if let Some(info) = st.registry.get("", "v1", "namespaces").cloned() {
            let rq = WriteRequest::internal(info, "", "kube-apiserver");
            for name in INITIAL_NAMESPACES {
                if let Err(e) = crud::create(&mut st, &rq, gc::initial_namespace(name)) {
                    tracing::warn!(namespace = name, error = %e.message, "could not create an initial namespace");
                }
            }
        }
    }
    Arc::new(App::new(store, format!("http://{addr}"), restricted))
}

fn spawn_controllers(store: &Arc<Store>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(gc::run_controllers(store.clone())),
        tokio::spawn(gc::run_ticker(store.clone())),
    ]
}

/// Serves a new, empty test API server on `listener` (which must be bound to a loopback
/// address) until `shutdown` completes; for the `demo` command or a CLI.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        return Err(Error::NotLoopback(addr));
    }
    let (stop, stopped) = signal::channel(false);
    let app = build(StoreConfig::default(), HashMap::new(), addr, stopped);
    let tasks = spawn_controllers(&app.store);
    tracing::info!(%addr, "test API server listening");
    let result = axum::serve(listener, routes::router(app))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
    for task in tasks {
        task.abort();
    }
    Ok(result?)
}

/// A test API server running on a background task. Dropping it stops the server.
pub struct RunningApiServer {
    addr: SocketAddr,
    app: Arc<App>,
    stop: signal::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningApiServer {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig for this server whose user authenticates with the bearer token `user` (which
    /// is how the request log names the user); the context's namespace is `default`.
    pub fn kubeconfig_yaml(&self, user: &str) -> String {
        // Serializing a JSON tree of strings to YAML cannot fail.
        kubeconfig::kubeconfig_yaml(&self.url(), user).unwrap_or_default()
    }

    /// Writes [`kubeconfig_yaml`](Self::kubeconfig_yaml) to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>, user: &str) -> Result<()> {
        std::fs::write(path, kubeconfig::kubeconfig_yaml(&self.url(), user)?)?;
        Ok(())
    }

    /// A `kube::Client` configured as `kube::Config::from_custom_kubeconfig` configures one from
    /// [`kubeconfig_yaml`](Self::kubeconfig_yaml) (call it inside a Tokio runtime).
    pub fn client(&self, user: &str) -> Result<kube::Client> {
        kubeconfig::client(&self.url(), user)
    }

    /// Every request answered so far (up to the last 100 000), in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.app.journal().records()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        self.app.journal().clear();
    }

    /// Injects a fault into the next `fault.count` matching requests.
    pub fn inject(&self, fault: FaultSpec) {
        self.app.journal().inject(fault);
    }

    /// The permissions a restricted `user` has used so far — by its requests and by the
    /// admission checks of its writes — as they were asked for (not as the table grants them).
    pub fn permissions_used(&self, user: &str) -> Vec<Permission> {
        self.app
            .restricted
            .get(user)
            .map(|permissions| permissions.used())
            .unwrap_or_default()
    }

    /// Removes every injected fault that has not run out.
    pub fn clear_faults(&self) {
        self.app.journal().clear_faults();
    }

    /// Compacts the watch history: every open watch ends with an in-stream 410 `Expired` and
    /// no version seen so far can be resumed from, so every client must list again (what
    /// etcd compaction or an API server restart does to long-running watches).
    pub fn expire_watches(&self) {
        self.app.store.lock().compact();
    }

    /// Stops the server: open watches end, new connections are refused.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        for mut task in tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for RunningApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}
