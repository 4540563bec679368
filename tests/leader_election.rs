//! Leader election: two operator processes (`run --leader-elect`) against one Kubernetes API
//! test server. Each process has its own kubeconfig user, so the server's request log tells
//! who did what: exactly one leads, only the leader writes, both are ready, and when the
//! leader dies (SIGKILL) or stops (SIGTERM) the standby takes over and reconciles.
//!
//! Everything listens on loopback; every wait is bounded. `E2E_OPERATOR_LOGS=1` shows the
//! operators' logs.

#[path = "support/cluster.rs"]
mod cluster;

use cluster::wait_for;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ghes_emulator::{Emulator, EmulatorConfig, RunningEmulator, UserSpec};
use ghes_oauth_operator::api::Authorization;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use kube_testkit::{FaultSpec, RunningApiServer, TestApiServer};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ghes-oauth-operator");
const NAMESPACE: &str = "default";
const LEASE: &str = "ghes-oauth-operator";
/// The operator's default Lease duration.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long a standby may take beyond the Lease duration: it must see the Lease unchanged for
/// the duration by its own clock (up to one retry period late) and then poll (another one).
const TAKEOVER_MARGIN: Duration = Duration::from_secs(8);
/// Longest wait for anything else.
const WAIT: Duration = Duration::from_secs(60);
const USER: &str = "leader-bot";
const PASSWORD: &str = "leader-bot-password";
/// The test's own user in the request log.
const TEST_USER: &str = "test";

/// The API server, the GHES emulator and a scratch directory for kubeconfigs.
struct Cluster {
    server: RunningApiServer,
    client: Client,
    ghes: RunningEmulator,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    async fn start() -> Self {
        let server = TestApiServer::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("test API server");
        let client = server.client(TEST_USER).expect("client");
        cluster::install_crds(&client, "leader-test").await;
        let ghes = Emulator::start(
            EmulatorConfig {
                users: vec![UserSpec::parse(&format!("{USER}:{PASSWORD}")).expect("user")],
                ..EmulatorConfig::default()
            },
            ([127, 0, 0, 1], 0).into(),
        )
        .await
        .expect("emulator");
        let dir = std::env::temp_dir().join(format!(
            "ghes-leader-{}-{}",
            std::process::id(),
            server.addr().port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cluster = Self {
            server,
            client,
            ghes,
            dir,
        };
        cluster.account().await;
        cluster
    }

    /// An Account for the emulator's user, with its credentials Secret.
    async fn account(&self) {
        self.apply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bot-credentials", "namespace": NAMESPACE},
            "stringData": {"username": USER, "password": PASSWORD},
        }))
        .await;
        self.apply(json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
            "metadata": {"name": "bot", "namespace": NAMESPACE},
            "spec": {
                "server": "https://ghes.invalid",
                "apiUrl": self.ghes.api_url(),
                "credentialsSecretRef": {"name": "bot-credentials"},
                "requestsPerSecond": 50,
                "burst": 50,
            },
        }))
        .await;
    }

    /// A personal-token Authorization.
    async fn authorization(&self, name: &str) {
        self.apply(json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"accountRef": {"name": "bot"}, "scopes": ["gist"]},
        }))
        .await;
    }

    async fn apply(&self, object: serde_json::Value) {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            group, version, kind,
        ));
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), NAMESPACE, &resource);
        api.patch(
            &name,
            &PatchParams::apply("leader-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|error| panic!("apply {kind} {name}: {error}"));
    }

    /// Waits until the Authorization is Ready for its current generation.
    async fn wait_ready(&self, name: &str) {
        let api = Api::<Authorization>::namespaced(self.client.clone(), NAMESPACE);
        wait_for(&format!("Authorization {name} Ready"), WAIT, || async {
            let authorization = api.get_opt(name).await.ok().flatten()?;
            let status = authorization.status.as_ref()?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (ready && status.observed_generation == authorization.metadata.generation).then_some(())
        })
        .await;
    }

    /// Waits until the Account is Ready and its first prune run is recorded: its last write
    /// after a listing.
    async fn wait_account_synced(&self) {
        let api =
            Api::<ghes_oauth_operator::api::Account>::namespaced(self.client.clone(), NAMESPACE);
        wait_for("Account bot synced", WAIT, || async {
            let status = api.get_opt("bot").await.ok().flatten()?.status?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (ready && status.prune.is_some_and(|p| p.last_run_time.is_some())).then_some(())
        })
        .await;
    }

    /// The Lease's holder and transitions, if the Lease exists.
    async fn lease(&self) -> Option<(Option<String>, i32)> {
        let lease = Api::<Lease>::namespaced(self.client.clone(), NAMESPACE)
            .get_opt(LEASE)
            .await
            .ok()
            .flatten()?;
        let spec = lease.spec.unwrap_or_default();
        Some((
            spec.holder_identity.filter(|h| !h.is_empty()),
            spec.lease_transitions.unwrap_or(0),
        ))
    }

    /// Waits until one of `candidates` holds the Lease and returns it.
    async fn wait_leader(&self, candidates: &[&str], within: Duration) -> String {
        wait_for("a leader", within, || async {
            let holder = self.lease().await?.0?;
            candidates.contains(&holder.as_str()).then_some(holder)
        })
        .await
    }

    /// Users that made writes (other than to the Lease) after request `after`, the test aside.
    fn writers_since(&self, after: u64) -> BTreeSet<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.seq > after && r.user != TEST_USER)
            .filter(|r| {
                matches!(
                    r.verb.as_str(),
                    "create" | "update" | "patch" | "delete" | "deletecollection"
                )
            })
            .filter(|r| r.resource != "leases")
            .map(|r| r.user)
            .collect()
    }

    /// Resources `user` touched in any way, after request `after`.
    fn resources_of(&self, user: &str, after: u64) -> BTreeSet<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.seq > after && r.user == user)
            .map(|r| r.resource)
            .collect()
    }

    /// `verb resource/name` of every request `user` made other than on Leases.
    fn non_lease_requests_of(&self, user: &str) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.user == user && r.resource != "leases")
            .map(|r| format!("{} {}/{}", r.verb, r.resource, r.name.unwrap_or_default()))
            .collect()
    }

    fn last_seq(&self) -> u64 {
        self.server.requests().last().map_or(0, |r| r.seq)
    }
}

/// One operator process, named as its kubeconfig user and its Lease identity.
struct Operator {
    name: String,
    child: Child,
    admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Operator {
    fn start(cluster: &Cluster, name: &str) -> Self {
        let kubeconfig = cluster.dir.join(format!("{name}.kubeconfig"));
        cluster
            .server
            .write_kubeconfig(&kubeconfig, name)
            .expect("kubeconfig");
        let mut child = Command::new(BIN)
            .args([
                "run",
                "--leader-elect",
                "--leader-election-namespace",
                NAMESPACE,
            ])
            .args(["--instance", name, "--admin-address", "127.0.0.1:0"])
            .env("KUBECONFIG", &kubeconfig)
            .env("LOG_LEVEL", "info,ghes_oauth_operator=debug")
            .env_remove("RUST_LOG")
            .env_remove("POD_NAMESPACE")
            .env_remove("LEADER_ELECTION_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the operator");
        let admin = admin_address(&mut child);
        let logs = collect_logs(&mut child, name);
        Self {
            name: name.to_owned(),
            child,
            admin,
            logs,
        }
    }

    /// Waits for the process to exit on its own; its exit status, if it did in time.
    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The log lines (stderr) so far.
    fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `GET /readyz`: the status code and body.
    async fn readyz(&self) -> Option<(u16, String)> {
        let response = reqwest::get(format!("http://{}/readyz", self.admin))
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Waits until `/readyz` answers 200 and returns its body.
    async fn wait_ready(&self) -> String {
        wait_for(&format!("{} /readyz 200", self.name), WAIT, || async {
            let (status, body) = self.readyz().await?;
            (status == 200).then_some(body)
        })
        .await
    }

    /// SIGKILL, as a crash or an evicted node would.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, as Kubernetes stops a pod; returns whether it exited successfully in time.
    fn terminate(&mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.wait_exit(WAIT).is_some_and(|status| status.success())
    }
}

/// Collects the operator's stderr (and echoes it with `E2E_OPERATOR_LOGS`).
fn collect_logs(child: &mut Child, name: &str) -> Arc<Mutex<Vec<String>>> {
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    let echo = std::env::var_os("E2E_OPERATOR_LOGS").is_some();
    let name = name.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[{name}] {line}");
            }
            if let Ok(mut logs) = sink.lock() {
                logs.push(line);
            }
        }
    });
    logs
}

/// Reads the admin address the operator prints on stdout, then keeps draining stdout.
fn admin_address(child: &mut Child) -> SocketAddr {
    let stdout = child.stdout.take().expect("stdout");
    let (found, address) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && let Some(rest) = line.strip_prefix("admin server listening on http://") {
                sent = true;
                let _ = found.send(rest.trim().to_owned());
            }
        }
    });
    address
        .recv_timeout(WAIT)
        .expect("the operator prints its admin address")
        .parse()
        .expect("a socket address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_writes_and_a_standby_takes_over_after_a_crash() {
    let cluster = Cluster::start().await;
    let a = Operator::start(&cluster, "op-a");
    let b = Operator::start(&cluster, "op-b");
    let leader = cluster.wait_leader(&["op-a", "op-b"], WAIT).await;
    let (mut leader, standby) = if leader == a.name { (a, b) } else { (b, a) };

    // Both are ready: the leader on synced caches, the standby as a standby.
    assert!(
        leader.wait_ready().await.contains("controllers running"),
        "leader"
    );
    assert!(
        standby.wait_ready().await.contains("standing by"),
        "standby"
    );

    cluster.authorization("first").await;
    cluster.wait_ready("first").await;
    assert_eq!(
        cluster.lease().await.map(|l| l.0),
        Some(Some(leader.name.clone()))
    );
    assert_eq!(
        cluster.writers_since(0),
        BTreeSet::from([leader.name.clone()]),
        "only the leader writes"
    );
    // At start it reads its installation id (so a misconfiguration fails before it ever
    // leads); then it only watches the Lease.
    assert_eq!(
        cluster.non_lease_requests_of(&standby.name),
        ["get namespaces/kube-system"],
        "the standby reads nothing else"
    );
    assert!(cluster.resources_of(&standby.name, 0).contains("leases"));
    let transitions = cluster.lease().await.map_or(0, |l| l.1);

    // The leader crashes: the standby takes over once the Lease expires.
    let crashed_at = cluster.last_seq();
    let started = Instant::now();
    leader.kill();
    let new_leader = cluster
        .wait_leader(&[standby.name.as_str()], LEASE_DURATION + TAKEOVER_MARGIN)
        .await;
    let took = started.elapsed();
    eprintln!("the standby took over {took:?} after the leader crashed");
    assert_eq!(new_leader, standby.name);
    assert!(
        took >= LEASE_DURATION - Duration::from_secs(5),
        "took over a live Lease after {took:?}"
    );
    assert_eq!(
        cluster.lease().await.map(|l| l.1),
        Some(transitions + 1),
        "a takeover is a transition"
    );

    // The new leader reconciles.
    cluster.authorization("second").await;
    cluster.wait_ready("second").await;
    assert_eq!(
        cluster.writers_since(crashed_at),
        BTreeSet::from([standby.name.clone()]),
        "after the crash, only the new leader writes"
    );
    assert!(
        standby
            .readyz()
            .await
            .is_some_and(|(status, body)| status == 200 && body.contains("controllers running"))
    );
    assert_eq!(cluster.ghes.state().authorizations.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_releases_the_lease_for_an_immediate_takeover() {
    let cluster = Cluster::start().await;
    let mut first = Operator::start(&cluster, "op-first");
    cluster.wait_leader(&["op-first"], WAIT).await;
    first.wait_ready().await;
    let second = Operator::start(&cluster, "op-second");
    assert!(second.wait_ready().await.contains("op-first leads"));
    cluster.authorization("before").await;
    cluster.wait_ready("before").await;
    cluster.wait_account_synced().await;

    let stopped_at = cluster.last_seq();
    let started = Instant::now();
    assert!(first.terminate(), "SIGTERM ends the operator with status 0");
    // A graceful stop finishes the reconciles in flight (they may still write), then lets go of
    // the Lease: from that request on, the first must not write anything.
    let released_at = cluster
        .server
        .requests()
        .iter()
        .find(|r| {
            r.seq > stopped_at
                && r.user == first.name
                && r.resource == "leases"
                && r.verb == "update"
                && r.status == 200
        })
        .map(|r| r.seq)
        .expect("a graceful stop releases the Lease");
    cluster
        .wait_leader(&["op-second"], Duration::from_secs(10))
        .await;
    let took = started.elapsed();
    assert!(
        took < LEASE_DURATION / 2,
        "the standby took {took:?}: it should not wait for the Lease to expire"
    );

    cluster.authorization("after").await;
    cluster.wait_ready("after").await;
    assert_eq!(
        cluster.writers_since(released_at),
        BTreeSet::from([second.name.clone()]),
        "after releasing the Lease, the first wrote: {:?}",
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.seq > released_at && r.user == first.name && r.resource != "leases")
            .map(|r| format!(
                "{} {}/{}",
                r.verb,
                r.resource,
                r.name.clone().unwrap_or_default()
            ))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_the_lease_expires() {
    let cluster = Cluster::start().await;
    let mut only = Operator::start(&cluster, "op-only");
    cluster.wait_leader(&["op-only"], WAIT).await;
    only.wait_ready().await;
    cluster.authorization("steady").await;
    cluster.wait_ready("steady").await;

    // Every Lease update fails from now on: the leader cannot renew.
    cluster.server.inject(FaultSpec {
        verb: "update".into(),
        resource: "leases".into(),
        status: Some(500),
        count: 10_000,
        ..FaultSpec::default()
    });
    let started = Instant::now();
    let status = only
        .wait_exit(LEASE_DURATION + TAKEOVER_MARGIN)
        .expect("the leader stops");
    let took = started.elapsed();
    assert!(!status.success(), "losing the Lease is an error exit");
    // The renew deadline is the Lease duration less one retry period, counted from the last
    // successful renewal (at most one renew period before the faults began).
    assert!(
        took < LEASE_DURATION - Duration::from_secs(2) + Duration::from_secs(1),
        "stopped only after {took:?}: a standby could have taken over meanwhile"
    );
    let logs = only.logs().join("\n");
    assert!(logs.contains("lost the leader Lease"), "{logs}");
}
