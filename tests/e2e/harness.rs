//! The end-to-end harness: a Kubernetes API (the in-process test server, or a real cluster when
//! `E2E_KUBECONFIG` is set), the GHES emulator on loopback, and the real operator binary as a
//! subprocess pointed at both through an ordinary kubeconfig.
//!
//! Against a real cluster the harness installs the CRDs itself, works in namespaces of its own
//! and removes them afterwards; tests then run one at a time (a process-wide lock), because
//! cluster-scoped objects and the operator's view of them are shared.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ghes_emulator::{AppSpec, Emulator, EmulatorConfig, RunningEmulator, UserSpec};
use ghes_oauth_operator::api::Authorization;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kube_testkit::{RunningApiServer, TestApiServer};
use serde_json::json;
#[path = "../support/cluster.rs"]
mod cluster;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The operator binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ghes-oauth-operator");

/// Longest wait for anything the operator should do.
pub const WAIT: Duration = Duration::from_secs(60);

/// The operator's Kubernetes user on the test server.
pub const OPERATOR_USER: &str = "operator";
/// A second replica's Kubernetes user (same permissions), so faults can single one out.
pub const SECOND_OPERATOR_USER: &str = "operator-b";
/// The test's own Kubernetes user on the test server: unrestricted.
pub const TEST_USER: &str = "e2e-test";

/// The operator's RBAC table, as the test server's permissions.
pub fn operator_permissions() -> Vec<kube_testkit::Permission> {
    ghes_oauth_operator::controller::rbac::all_rules()
        .flat_map(|rule| {
            rule.api_groups.iter().flat_map(move |group| {
                rule.resources.iter().flat_map(move |resource| {
                    rule.verbs
                        .iter()
                        .map(move |verb| kube_testkit::Permission::new(group, resource, verb))
                })
            })
        })
        .collect()
}

/// The read-only identity of `plan` (test server only).
pub const PLAN_USER: &str = "plan";

/// The permissions of `examples/gitops/plan/rbac.yaml`'s ClusterRole: what a CI job running
/// `plan` is granted.
pub fn plan_permissions() -> Vec<kube_testkit::Permission> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gitops/plan/rbac.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read rbac.yaml");
    let mut permissions = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let object: serde_json::Value =
            serde::Deserialize::deserialize(document).expect("rbac.yaml is YAML");
        if object["kind"] != "ClusterRole" {
            continue;
        }
        for rule in object["rules"].as_array().expect("rules") {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .expect("a list")
                    .iter()
                    .map(|v| v.as_str().expect("a string").to_owned())
                    .collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        permissions.push(kube_testkit::Permission::new(&group, &resource, &verb));
                    }
                }
            }
        }
    }
    assert!(!permissions.is_empty(), "rbac.yaml grants nothing");
    permissions
}

/// A plain GHES user of the emulator.
pub const USER: &str = "team-bot";
/// Its password.
pub const PASSWORD: &str = "team-bot-password";
/// A two-factor user.
pub const OTP_USER: &str = "otp-bot";
/// Its password.
pub const OTP_PASSWORD: &str = "otp-bot-password";
/// Its TOTP seed.
pub const OTP_SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DP";
/// The OAuth app.
pub const CLIENT_ID: &str = "Iv1.e2e0000000000001";
/// Its secret.
pub const CLIENT_SECRET: &str = "e2e-client-secret-0123456789";
/// A second OAuth app, that no Authorization declares in the prune tests.
pub const OTHER_CLIENT_ID: &str = "Iv1.e2e0000000000002";
/// Its secret.
pub const OTHER_CLIENT_SECRET: &str = "e2e-other-secret-0123456789";

/// Tests share the machine; a heavy test (or any test against a real cluster) runs alone.
static GATE: std::sync::OnceLock<Arc<RwLock<()>>> = std::sync::OnceLock::new();

/// A test's hold on [`GATE`].
enum Gate {
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Exclusive(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

/// Where the Kubernetes API is.
enum Cluster {
    /// The in-process test server (default); it stops when dropped.
    TestServer { _server: RunningApiServer },
    /// A real cluster from `E2E_KUBECONFIG`.
    Real,
}

/// One test's world.
pub struct World {
    cluster: Cluster,
    /// The kubeconfig the operator uses.
    pub kubeconfig: PathBuf,
    /// The test's own client.
    pub client: Client,
    /// The GHES emulator.
    pub ghes: RunningEmulator,
    /// The namespaces this test created.
    pub namespaces: Vec<String>,
    operator: Option<Operator>,
    /// A second replica (test server only), as [`SECOND_OPERATOR_USER`].
    second: Option<Operator>,
    /// This scenario's part of the suite record.
    record: Record,
    _gate: Gate,
    _dir: TempDir,
    /// Dropped last: the doubles above stop before their threads go.
    _doubles: Doubles,
}

/// The test doubles' own threads. A test's runtime has one thread, busy with the test itself
/// (the fault matrix polls 72 cells on it); a double served there answers when that thread is
/// free, and an answer late past the operator's `--ghes-timeout` is, for the operator, a
/// request GHES never answered: it rightly sends it again. On threads of their own, the
/// doubles answer as promptly as real servers.
struct Doubles(Option<tokio::runtime::Runtime>);

impl Doubles {
    fn new() -> Self {
        Self(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("e2e-doubles")
                .enable_all()
                .build()
                .expect("the test doubles' runtime"),
        ))
    }

    /// Runs `start` on the doubles' threads: whatever it spawns (a server) runs there.
    async fn start<F>(&self, start: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0
            .as_ref()
            .expect("the doubles' runtime")
            .spawn(start)
            .await
            .expect("a test double failed to start")
    }
}

impl Drop for Doubles {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A running operator process.
pub struct Operator(Child);

impl Operator {
    /// Stops the process as a rollout does (SIGTERM) and returns how it exited.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        self.wait_exit(WAIT).await
    }

    /// Waits up to `limit` for the process to end; its exit status.
    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("the operator's status") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the operator did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl World {
    /// A new world with `namespaces` (prefixed uniquely) and the CRDs installed.
    pub async fn new(namespaces: &[&str]) -> Self {
        Self::create(namespaces, false, &[]).await
    }

    /// A world for a heavy test: no other test runs beside it.
    pub async fn exclusive(namespaces: &[&str]) -> Self {
        Self::create(namespaces, true, &[]).await
    }

    /// A world for a heavy test whose GHES has these more users (login, password).
    pub async fn exclusive_with_users(namespaces: &[&str], users: &[(String, String)]) -> Self {
        Self::create(namespaces, true, users).await
    }

    async fn create(namespaces: &[&str], exclusive: bool, more_users: &[(String, String)]) -> Self {
        let gate = GATE.get_or_init(|| Arc::new(RwLock::new(()))).clone();
        let gate = if exclusive || std::env::var_os("E2E_KUBECONFIG").is_some() {
            Gate::Exclusive(gate.write_owned().await)
        } else {
            Gate::Shared(gate.read_owned().await)
        };
        let suffix: String = {
            use rand::Rng;
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(6)
                .map(|c| char::from(c).to_ascii_lowercase())
                .collect()
        };
        let dir = std::env::temp_dir().join(format!("ghes-e2e-{suffix}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        let doubles = Doubles::new();
        let cluster = match std::env::var_os("E2E_KUBECONFIG") {
            Some(path) => {
                std::fs::copy(&path, &kubeconfig).expect("copy E2E_KUBECONFIG");
                Cluster::Real
            }
            None => {
                // The operator gets exactly the permissions of its RBAC table where a hardened
                // API server checks them (OwnerReferencesPermissionEnforcement).
                let server = doubles
                    .start(
                        TestApiServer::new()
                            .restrict(OPERATOR_USER, operator_permissions())
                            .restrict(SECOND_OPERATOR_USER, operator_permissions())
                            .restrict(PLAN_USER, plan_permissions())
                            .bind(([127, 0, 0, 1], 0).into()),
                    )
                    .await
                    .expect("test API server");
                server
                    .write_kubeconfig(&kubeconfig, OPERATOR_USER)
                    .expect("kubeconfig");
                server
                    .write_kubeconfig(dir.join("kubeconfig-b"), SECOND_OPERATOR_USER)
                    .expect("second kubeconfig");
                Cluster::TestServer { _server: server }
            }
        };
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).expect("read kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("kubeconfig");
        // The test itself acts as a cluster admin, not as the operator.
        let client = match &cluster {
            Cluster::TestServer { _server } => _server.client(TEST_USER).expect("client"),
            Cluster::Real => Client::try_from(config).expect("client"),
        };
        cluster::install_crds(&client, "e2e-test").await;
        let ghes = doubles
            .start(Emulator::start(
                EmulatorConfig {
                    users: [
                        UserSpec::parse(&format!("{USER}:{PASSWORD}")).expect("user"),
                        UserSpec::parse(&format!("{OTP_USER}:{OTP_PASSWORD}:{OTP_SEED}"))
                            .expect("otp user"),
                    ]
                    .into_iter()
                    .chain(more_users.iter().map(|(login, password)| {
                        UserSpec::parse(&format!("{login}:{password}")).expect("more users")
                    }))
                    .collect(),
                    apps: vec![
                        AppSpec::parse(&format!("{CLIENT_ID}:{CLIENT_SECRET}:E2E App"))
                            .expect("app"),
                        AppSpec::parse(&format!(
                            "{OTHER_CLIENT_ID}:{OTHER_CLIENT_SECRET}:Other App"
                        ))
                        .expect("other app"),
                    ],
                    ..EmulatorConfig::default()
                },
                ([127, 0, 0, 1], 0).into(),
            ))
            .await
            .expect("emulator");
        let mut world = Self {
            cluster,
            kubeconfig,
            client,
            ghes,
            namespaces: Vec::new(),
            operator: None,
            second: None,
            record: Record::new(),
            _gate: gate,
            _dir: TempDir(dir),
            _doubles: doubles,
        };
        for name in namespaces {
            let full = format!("e2e-{suffix}-{name}");
            world.create_namespace(&full, &[]).await;
            world.namespaces.push(full);
        }
        world
    }

    /// A kubeconfig for a person with full access (the test's own user), as `status` and
    /// `rotate` would use it; on a real cluster, the one the suite was given.
    pub fn user_kubeconfig(&self) -> PathBuf {
        self.kubeconfig_of(TEST_USER, "kubeconfig-user")
    }

    /// A kubeconfig for `plan`'s read-only identity ([`PLAN_USER`]); on a real cluster, the
    /// one the suite was given.
    pub fn plan_kubeconfig(&self) -> PathBuf {
        self.kubeconfig_of(PLAN_USER, "kubeconfig-plan")
    }

    /// A kubeconfig for `user` in the scenario's directory as `file`; on a real cluster, the
    /// one the suite was given.
    fn kubeconfig_of(&self, user: &str, file: &str) -> PathBuf {
        match &self.cluster {
            Cluster::TestServer { _server } => {
                let path = self._dir.0.join(file);
                _server
                    .write_kubeconfig(&path, user)
                    .unwrap_or_else(|error| panic!("{file}: {error}"));
                path
            }
            Cluster::Real => self.kubeconfig.clone(),
        }
    }

    /// The permissions `user` used (test server only; `None` on a real cluster).
    pub fn permissions_used(
        &self,
        user: &str,
    ) -> Option<std::collections::BTreeSet<kube_testkit::Permission>> {
        match &self.cluster {
            Cluster::TestServer { _server } => {
                Some(_server.permissions_used(user).into_iter().collect())
            }
            Cluster::Real => None,
        }
    }

    /// The scenario's own temporary directory (removed at the end).
    pub fn dir(&self) -> &std::path::Path {
        &self._dir.0
    }

    /// A secret value the scenario handles: the record must not show it anywhere.
    pub fn secret_value(&self, value: &str) {
        self.record.secret(value);
    }

    /// The namespace created for `index`.
    pub fn ns(&self, index: usize) -> &str {
        &self.namespaces[index]
    }

    /// Creates a namespace with labels.
    pub async fn create_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        Api::<Namespace>::all(self.client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": labels}
                }))
                .expect("namespace"),
            )
            .await
            .expect("create namespace");
    }

    /// Starts the operator watching this world's namespaces.
    pub fn start_operator(&mut self) {
        self.start_operator_with(&[]);
    }

    /// Starts the operator with extra `run` arguments.
    pub fn start_operator_with(&mut self, extra: &[&str]) {
        self.start_operator_env(extra, &[]);
    }

    /// Starts the operator with extra `run` arguments and environment variables (e.g.
    /// `FAILPOINTS`).
    pub fn start_operator_env(&mut self, extra: &[&str], env: &[(&str, &str)]) {
        self.operator = Some(spawn_operator(
            &self.kubeconfig,
            &self.namespaces,
            extra,
            env,
            Some(&self.record),
        ));
    }

    /// Starts a second replica beside the first, as [`SECOND_OPERATOR_USER`] (test server only).
    pub fn start_second_operator(&mut self, extra: &[&str]) {
        self.second = Some(spawn_operator(
            &self._dir.0.join("kubeconfig-b"),
            &self.namespaces,
            extra,
            &[],
            Some(&self.record),
        ));
    }

    /// Waits up to `limit` for the operator process to end by itself; its exit status.
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    pub async fn wait_operator_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.operator
            .as_mut()
            .expect("an operator is running")
            .wait_exit(limit)
            .await
    }

    /// Starts the operator with its admin server (`/readyz`, `/metrics`) on a free loopback
    /// port, and returns its address.
    pub fn start_operator_with_admin(&mut self) -> std::net::SocketAddr {
        self.start_operator_with_admin_and(&[])
    }

    /// Like [`World::start_operator_with_admin`], with `extra` flags.
    pub fn start_operator_with_admin_and(&mut self, extra: &[&str]) -> std::net::SocketAddr {
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port");
        let address_text = address.to_string();
        let mut args = vec!["--admin-address", address_text.as_str()];
        args.extend_from_slice(extra);
        self.start_operator_with(&args);
        address
    }

    /// Starts one more operator process beside any other, as [`OPERATOR_USER`], owned by the
    /// caller: dropping it kills it (SIGKILL), as a crash would.
    pub fn spawn_replica(&self, extra: &[&str]) -> Operator {
        spawn_operator(
            &self.kubeconfig,
            &self.namespaces,
            extra,
            &[],
            Some(&self.record),
        )
    }

    /// Kills the operator at once (SIGKILL), as a crash would.
    pub fn kill_operator(&mut self) {
        self.operator = None;
    }

    /// A GHES Account in `namespace` for `user`, with its credentials Secret.
    pub async fn account(
        &self,
        namespace: &str,
        name: &str,
        user: &str,
        password: &str,
        totp: Option<&str>,
    ) {
        self.account_with(namespace, name, user, password, totp, json!({}))
            .await;
    }

    /// Like [`World::account`], with `extra` merged into the Account's spec (e.g. `prune`).
    pub async fn account_with(
        &self,
        namespace: &str,
        name: &str,
        user: &str,
        password: &str,
        totp: Option<&str>,
        extra: serde_json::Value,
    ) {
        self.record.secret(password);
        if let Some(seed) = totp {
            self.record.secret(seed);
        }
        let mut data = json!({"username": user, "password": password});
        let mut reference = json!({"name": format!("{name}-credentials")});
        if let Some(seed) = totp {
            data["totpSecret"] = json!(seed);
            reference["totpSecretKey"] = json!("totpSecret");
        }
        self.apply_json(
            namespace,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("{name}-credentials"), "namespace": namespace},
                "stringData": data,
            }),
        )
        .await;
        let mut account = json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "server": "https://ghes.invalid",
                "apiUrl": self.ghes.api_url(),
                "credentialsSecretRef": reference,
                "requestsPerSecond": 50,
                "burst": 50,
            },
        });
        if let (Some(spec), Some(extra)) = (account["spec"].as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                spec.insert(key.clone(), value.clone());
            }
        }
        self.apply_json(namespace, account).await;
    }

    /// The app's client-secret Secret in `namespace`.
    pub async fn app_secret(&self, namespace: &str) {
        self.record.secret(CLIENT_SECRET);
        self.apply_json(
            namespace,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "oauth-app", "namespace": namespace},
                "stringData": {"clientSecret": CLIENT_SECRET},
            }),
        )
        .await;
    }

    /// Applies any object (server-side apply as the test).
    pub async fn apply_json(&self, namespace: &str, object: serde_json::Value) {
        cluster::apply(&self.client, "e2e-test", namespace, object).await;
    }

    /// Applies a ClusterAccount pointed at the emulator, logging in with the Secret
    /// `secret_namespace/secret_name`, for the namespaces `allowed` selects
    /// (`spec.allowedNamespaces`).
    pub async fn cluster_account(
        &self,
        name: &str,
        secret_namespace: &str,
        secret_name: &str,
        allowed: serde_json::Value,
    ) {
        self.apply_json(
            secret_namespace,
            json!({
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "ClusterAccount",
                "metadata": {"name": name},
                "spec": {"server": "https://ghes.invalid", "apiUrl": self.ghes.api_url(),
                         "credentialsSecretRef": {"namespace": secret_namespace, "name": secret_name},
                         "allowedNamespaces": allowed},
            }),
        )
        .await;
    }

    /// Applies an Authorization.
    pub async fn authorization(&self, namespace: &str, name: &str, spec: serde_json::Value) {
        self.apply_json(
            namespace,
            json!({
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }),
        )
        .await;
    }

    /// Changes an Authorization by a JSON merge patch, as `kubectl patch --type merge` would.
    pub async fn patch_authorization(&self, namespace: &str, name: &str, patch: serde_json::Value) {
        self.authorizations(namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|error| panic!("patch {namespace}/{name}: {error}"));
    }

    /// The Authorization API of a namespace.
    pub fn authorizations(&self, namespace: &str) -> Api<Authorization> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The Secret API of a namespace.
    pub fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Waits until the Authorization's Ready condition has `status` (and returns it).
    pub async fn wait_ready(&self, namespace: &str, name: &str, status: &str) -> Authorization {
        let api = self.authorizations(namespace);
        wait_for(&format!("{namespace}/{name} Ready={status}"), || async {
            let authorization = api.get_opt(name).await.ok().flatten()?;
            let current = authorization.status.as_ref()?;
            let ready = current.conditions.iter().find(|c| c.type_ == "Ready")?;
            let fresh = current.observed_generation == authorization.metadata.generation;
            (ready.status == status && fresh).then_some(authorization)
        })
        .await
    }

    /// Waits until the Authorization is Ready=False for its generation; returns that condition.
    pub async fn wait_not_ready(&self, namespace: &str, name: &str) -> Condition {
        let authorization = self.wait_ready(namespace, name, "False").await;
        authorization
            .status
            .and_then(|status| status.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .expect("a Ready condition")
    }

    /// Deletes an Authorization and waits until it is gone (its finalizer done).
    pub async fn delete_authorization(&self, namespace: &str, name: &str) {
        let api = self.authorizations(namespace);
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete the Authorization");
        self.wait_gone(namespace, name).await;
    }

    /// Waits until the Authorization is gone (its finalizer done).
    pub async fn wait_gone(&self, namespace: &str, name: &str) {
        let api = self.authorizations(namespace);
        wait_for(&format!("{namespace}/{name} to go"), || async {
            api.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    /// The token in an Authorization's Secret.
    pub async fn token(&self, namespace: &str, secret: &str, key: &str) -> Option<String> {
        let secret = self
            .secrets(namespace)
            .get_opt(secret)
            .await
            .ok()
            .flatten()?;
        let bytes = secret.data?.get(key)?.0.clone();
        String::from_utf8(bytes).ok()
    }

    /// `METHOD STATUS` of the emulator's requests from `seq` on.
    pub fn ghes_calls_since(&self, seq: u64) -> Vec<String> {
        self.ghes
            .requests()
            .iter()
            .filter(|r| r.seq > seq)
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect()
    }

    /// GHES writes (anything but GET) after `seq`, as `METHOD PATH STATUS`.
    pub fn ghes_writes_since(&self, seq: u64) -> Vec<String> {
        self.ghes_calls_since(seq)
            .into_iter()
            .filter(|call| !call.starts_with("GET "))
            .collect()
    }

    /// The newest request sequence number of the emulator.
    pub fn ghes_seq(&self) -> u64 {
        self.ghes.requests().last().map_or(0, |r| r.seq)
    }

    /// The newest request sequence number of the Kubernetes API test server.
    pub fn kube_seq(&self) -> u64 {
        self.kube_requests().last().map_or(0, |r| r.seq)
    }

    /// Reasons of the Events about an object.
    pub async fn event_reasons(&self, namespace: &str, name: &str) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), namespace);
        events
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .into_iter()
                    .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                    .filter_map(|e| e.reason)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes what the test created (real clusters only; a test server just stops).
    pub async fn cleanup(mut self) {
        self.operator = None;
        self.second = None;
        self.write_record().await;
        // For the record (shown with --nocapture): what this scenario cost on GHES.
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for request in self.ghes.requests() {
            *counts
                .entry(format!("{} {}", request.method, request.status))
                .or_default() += 1;
        }
        eprintln!(
            "GHES calls of {}: {counts:?}",
            std::thread::current().name().unwrap_or("this test")
        );
        if matches!(self.cluster, Cluster::Real) {
            let namespaces = Api::<Namespace>::all(self.client.clone());
            for namespace in &self.namespaces {
                let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
            }
        }
    }
}

/// Starts the operator binary against the cluster of `kubeconfig`, watching `namespaces`.
fn spawn_operator(
    kubeconfig: &std::path::Path,
    namespaces: &[String],
    extra: &[&str],
    env: &[(&str, &str)],
    record: Option<&Record>,
) -> Operator {
    // Every operator of the suite logs at debug level into the record, plain and JSON in turn.
    let (log, format) = match record {
        Some(record) if std::env::var_os("E2E_OPERATOR_LOGS").is_none() => {
            let (file, format) = record.operator_log();
            (Stdio::from(file), format)
        }
        _ if std::env::var_os("E2E_OPERATOR_LOGS").is_some() => (Stdio::inherit(), "plain"),
        _ => (Stdio::null(), "plain"),
    };
    // E2E_OPERATOR_BIN runs the suite against another build (an older one, to see a test fail
    // before a fix).
    let bin = std::env::var_os("E2E_OPERATOR_BIN").unwrap_or_else(|| BIN.into());
    let child = Command::new(bin)
        .arg("run")
        .args(["--namespace", &namespaces.join(",")])
        // The first namespace plays the operator's own (where ClusterAccount credentials live).
        .args([
            "--cluster-resource-namespace",
            namespaces.first().map_or("default", String::as_str),
        ])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        // Operators run side by side: each admin server on a port of its own.
        .env("ADMIN_ADDRESS", "127.0.0.1:0")
        .env("LOG_LEVEL", "debug")
        .env("LOG_FORMAT", format)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the operator");
    Operator(child)
}

/// A second cluster (always an in-process test server) with an operator installation of its
/// own, sharing the world's GHES: what another cluster using the same bot user looks like.
pub struct OtherCluster {
    /// The test's client for it.
    pub client: Client,
    /// Its namespace.
    pub namespace: String,
    kubeconfig: PathBuf,
    _operator: Option<Operator>,
    _server: RunningApiServer,
}

impl OtherCluster {
    /// Starts its operator with `run` arguments (e.g. `--installation-id`).
    pub fn start_operator_with(&mut self, extra: &[&str]) {
        self._operator = Some(spawn_operator(
            &self.kubeconfig,
            std::slice::from_ref(&self.namespace),
            extra,
            &[],
            None,
        ));
    }
}

impl World {
    /// A second cluster with the CRDs and one namespace `namespace`; its operator is not
    /// started yet.
    pub async fn other_cluster(&self, namespace: &str) -> OtherCluster {
        let server = TestApiServer::new()
            .restrict(OPERATOR_USER, operator_permissions())
            .bind(([127, 0, 0, 1], 0).into())
            .await
            .expect("second test API server");
        let kubeconfig = self._dir.0.join("other-kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, OPERATOR_USER)
            .expect("kubeconfig");
        let client = server.client(TEST_USER).expect("client");
        cluster::install_crds(&client, "e2e-test").await;
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}}))
                    .expect("namespace"),
            )
            .await
            .expect("create namespace");
        OtherCluster {
            client,
            namespace: namespace.to_owned(),
            kubeconfig,
            _operator: None,
            _server: server,
        }
    }

    /// Ends every open watch of the test API server with a 410 and compacts its history, so
    /// the operator must list again (test server only).
    pub fn expire_watches(&self) -> bool {
        match &self.cluster {
            Cluster::TestServer { _server } => {
                _server.expire_watches();
                true
            }
            Cluster::Real => false,
        }
    }

    /// The test API server's request journal (empty on a real cluster).
    pub fn kube_requests(&self) -> Vec<kube_testkit::RequestRecord> {
        match &self.cluster {
            Cluster::TestServer { _server } => _server.requests(),
            Cluster::Real => Vec::new(),
        }
    }

    /// Removes the test API server's injected faults.
    pub fn clear_kube_faults(&self) {
        if let Cluster::TestServer { _server } = &self.cluster {
            _server.clear_faults();
        }
    }

    /// Makes the test API server answer matching requests with a fault (test server only;
    /// a real cluster cannot be told to).
    pub fn kube_fault(&self, fault: kube_testkit::FaultSpec) -> bool {
        match &self.cluster {
            Cluster::TestServer { _server } => {
                _server.inject(fault);
                true
            }
            Cluster::Real => false,
        }
    }
}

/// A token created on GHES by a person, `age` ago.
pub fn seed(world: &World, note: &str, client_id: Option<&str>, age: Duration) -> (u64, String) {
    let created = jiff::Timestamp::now() - jiff::SignedDuration::try_from(age).expect("age");
    let seeded = world
        .ghes
        .seed_authorization(ghes_emulator::SeedAuthorization {
            login: USER.into(),
            client_id: client_id.map(str::to_owned),
            scopes: vec!["repo".into()],
            note: Some(note.into()),
            created_at: Some(created),
            ..Default::default()
        })
        .expect("seed");
    world.record.secret(&seeded.token);
    (seeded.id, seeded.token)
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for_within(what, WAIT, probe).await
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `limit`.
pub async fn wait_for_within<T, F, Fut>(what: &str, limit: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    cluster::wait_for(what, limit, probe).await
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    ghes_oauth_operator::ghes::redacted::sha256_hex(text.as_bytes())
}

impl World {
    /// The status of an Account.
    pub async fn account_status(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<ghes_oauth_operator::api::AccountStatus> {
        Api::<ghes_oauth_operator::api::Account>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .ok()
            .flatten()?
            .status
    }

    /// How many Authorizations of `namespace` whose name starts with `prefix` are Ready.
    pub async fn ready_with_prefix(&self, namespace: &str, prefix: &str) -> usize {
        self.authorizations(namespace)
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter(|a| {
                        a.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with(prefix))
                    })
                    .filter(|a| {
                        a.status.as_ref().is_some_and(|status| {
                            status
                                .conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                    })
                    .count()
            })
            .unwrap_or_default()
    }

    /// The Namespace API.
    pub fn namespaces_api(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }
}

impl World {
    /// A GHES user's live authorizations: (id, SHA-256 of the token, scopes).
    pub fn live_tokens(&self, login: &str) -> Vec<(i64, String, Vec<String>)> {
        self.ghes
            .state()
            .authorizations
            .into_iter()
            .filter(|a| a.user.as_ref().map(|u| u.login.as_str()) == Some(login))
            .map(|a| {
                (
                    i64::try_from(a.id).unwrap_or(i64::MAX),
                    a.hashed_token.unwrap_or_default(),
                    a.scopes,
                )
            })
            .collect()
    }

    /// What a user checks after any fault or crash: each `held` Secret (name, scopes it must
    /// have) in `namespace` holds a live token of `login` with those scopes, and GHES holds no
    /// other token of `login` than those and `left` (tokens the test expects to remain).
    pub async fn check_tokens(
        &self,
        namespace: &str,
        login: &str,
        held: &[(&str, &[&str])],
        left: &std::collections::BTreeSet<i64>,
    ) -> Result<(), String> {
        let live = self.live_tokens(login);
        let mut accounted = left.clone();
        for (secret, want) in held {
            let token = self
                .token(namespace, secret, "token")
                .await
                .ok_or_else(|| format!("Secret {secret} holds no token"))?;
            let hash = sha256_hex(&token);
            let (id, _, scopes) = live
                .iter()
                .find(|(_, hashed, _)| *hashed == hash)
                .ok_or_else(|| format!("Secret {secret} holds a revoked token"))?;
            if !want.iter().all(|scope| scopes.iter().any(|s| s == scope)) {
                return Err(format!(
                    "Secret {secret}'s token has scopes {scopes:?}, want {want:?}"
                ));
            }
            accounted.insert(*id);
        }
        let ids: Vec<i64> = live.iter().map(|(id, _, _)| *id).collect();
        let leaked: Vec<&i64> = ids.iter().filter(|id| !accounted.contains(id)).collect();
        if !leaked.is_empty() {
            return Err(format!(
                "GHES holds tokens nothing accounts for: {leaked:?}"
            ));
        }
        if ids.len() != accounted.len() {
            return Err(format!(
                "expected tokens {accounted:?} live, GHES has {ids:?}"
            ));
        }
        Ok(())
    }

    /// Panics unless, within 30 s, each `held` Secret in `namespace` holds a live token of the
    /// shared [`USER`] with its scopes and GHES holds no other token of that user.
    pub async fn expect_tokens(&self, namespace: &str, held: &[(&str, &[&str])]) {
        self.settle_tokens(
            namespace,
            USER,
            held,
            &std::collections::BTreeSet::new(),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|problem| panic!("{problem}"));
    }

    /// [`World::check_tokens`] until it holds (an orphan may need a listing to be found), or
    /// its last complaint after `limit`.
    pub async fn settle_tokens(
        &self,
        namespace: &str,
        login: &str,
        held: &[(&str, &[&str])],
        left: &std::collections::BTreeSet<i64>,
        limit: Duration,
    ) -> Result<(), String> {
        let started = std::time::Instant::now();
        loop {
            match self.check_tokens(namespace, login, held, left).await {
                Ok(()) => return Ok(()),
                Err(problem) if started.elapsed() > limit => return Err(problem),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}

// The record of the whole run: every operator's log (debug level, plain and JSON), every
// scenario's objects and Events, the permissions the operator used, and (apart, in
// `secrets/`) the secret values the scenario handled. `scripts/test` clears it before the run
// and checks it as a whole after (`tests/e2e_record.rs`); each scenario checks its own part
// when it cleans up.
#[path = "../support/record.rs"]
mod record;
pub use record::record_dir;

/// One scenario's part of the suite record.
struct Record {
    prefix: String,
    operators: std::sync::atomic::AtomicUsize,
    secrets: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Record {
    fn new() -> Self {
        let test = std::thread::current()
            .name()
            .unwrap_or("scenario")
            .replace("::", "-");
        let suffix: u32 = rand::random();
        let dir = record_dir();
        std::fs::create_dir_all(dir.join("secrets")).expect("record dir");
        Self {
            prefix: format!("{test}-{suffix:08x}"),
            operators: Default::default(),
            secrets: Default::default(),
        }
    }

    /// A secret value this scenario handles: it must appear nowhere in the record.
    fn secret(&self, value: &str) {
        if value.len() >= 6 {
            self.secrets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(value.to_owned());
        }
    }

    /// A new operator log file, and its format: plain and JSON in turn.
    fn operator_log(&self) -> (std::fs::File, &'static str) {
        let n = self
            .operators
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let format = if n.is_multiple_of(2) { "plain" } else { "json" };
        let path = record_dir().join(format!("{}-operator-{n}.log", self.prefix));
        (std::fs::File::create(path).expect("operator log"), format)
    }

    fn write(&self, what: &str, text: &str) {
        std::fs::write(record_dir().join(format!("{}-{what}", self.prefix)), text)
            .expect("write the record");
    }
}

impl World {
    /// Writes this scenario's record and checks it: no secret in any log line, Event or status.
    async fn write_record(&self) {
        use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
        let mut objects = Vec::new();
        let kinds = [
            ("oauth.ghes.io", "v1alpha1", "Authorization"),
            ("oauth.ghes.io", "v1alpha1", "Account"),
            ("events.k8s.io", "v1", "Event"),
            ("", "v1", "Event"),
        ];
        for namespace in &self.namespaces {
            for (group, version, kind) in kinds {
                let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), namespace, &resource);
                if let Ok(list) = api.list(&Default::default()).await {
                    objects.extend(
                        list.items
                            .into_iter()
                            .filter_map(|o| serde_json::to_value(o).ok()),
                    );
                }
            }
            // The Secrets hold the credentials and tokens of the scenario: their values are
            // what must not show anywhere else.
            if let Ok(list) = self.secrets(namespace).list(&Default::default()).await {
                for secret in list.items {
                    for (key, value) in secret.data.unwrap_or_default() {
                        // Entries that templates fill with public values only.
                        if !matches!(
                            key.as_str(),
                            "username" | "login" | "host" | "GH_HOST" | "GH_SCOPES"
                        ) {
                            self.record.secret(&String::from_utf8_lossy(&value.0));
                        }
                    }
                }
            }
        }
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "oauth.ghes.io",
            "v1alpha1",
            "ClusterAccount",
        ));
        if let Ok(list) = Api::<DynamicObject>::all_with(self.client.clone(), &resource)
            .list(&Default::default())
            .await
        {
            objects.extend(
                list.items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok()),
            );
        }
        self.record.write(
            "cluster.json",
            &serde_json::to_string_pretty(&objects).unwrap_or_default(),
        );
        if let Cluster::TestServer { _server } = &self.cluster {
            let used: Vec<String> = [OPERATOR_USER, SECOND_OPERATOR_USER]
                .iter()
                .flat_map(|user| _server.permissions_used(user))
                .map(|p| format!("{} {} {}", p.group, p.resource, p.verb))
                .collect();
            self.record.write("permissions-used.txt", &used.join("\n"));
        }
        let secrets = self
            .record
            .secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let listed: Vec<&str> = secrets.iter().map(String::as_str).collect();
        std::fs::write(
            record_dir()
                .join("secrets")
                .join(format!("{}.txt", self.record.prefix)),
            listed.join("\n"),
        )
        .expect("write the secrets list");
        // This scenario's files, checked now.
        let finder = record::finder(&secrets);
        let mut found = Vec::new();
        for entry in std::fs::read_dir(record_dir())
            .expect("record dir")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&self.record.prefix) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            found.extend(
                record::leaks(&text, &finder)
                    .into_iter()
                    .map(|leak| format!("{name}: {leak}")),
            );
        }
        assert!(found.is_empty(), "secrets in the record: {found:?}");
    }
}
