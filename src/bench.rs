//! `bench`: N Authorizations on K accounts, against the GHES emulator (in this process) and
//! the Kubernetes API test server (in this process) or a real cluster (`--kubeconfig`). The
//! operator runs as its own process — the binary's `run` — so that its memory is measured
//! alone. Prints one table of figures (or JSON); asserts nothing.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::DeleteParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use serde_json::json;

use crate::api::Authorization;
use ghes_emulator::{Emulator, EmulatorConfig, RateLimit, Settings, UserSpec};
use kube_testkit::TestApiServer;

/// `bench` options.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    ghes-oauth-operator bench --n 1000\n  \
    ghes-oauth-operator bench --n 10000 --requests-per-second 100 --json\n  \
    ghes-oauth-operator bench --n 1000 --accounts 4 --rate-limit 5000/3600\n  \
    ghes-oauth-operator bench --n 1000 --unrelated-secrets 100000\n  \
    ghes-oauth-operator bench --n 10000 --accounts 30 --replicas 3 --shards 3\n  \
    ghes-oauth-operator bench --n 1000 --kubeconfig ~/.kube/config   # a real cluster")]
pub struct BenchArgs {
    /// Authorizations to create.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Accounts (GHES users) they are spread over.
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Each Account's `requestsPerSecond`: the operator's budget on GHES.
    #[arg(long, default_value_t = 100)]
    pub requests_per_second: u32,
    /// GHES's own rate limit per user, LIMIT/WINDOW_SECS (default: none, as GHES by default).
    #[arg(long, value_parser = crate::demo::parse_rate_limit)]
    pub rate_limit: Option<RateLimit>,
    /// Each Account's `syncInterval` in seconds (at least 30); steady state is measured over
    /// two.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(30..))]
    pub sync_interval: u64,
    /// Secrets that have nothing to do with the operator, created in its namespace before it
    /// starts: what they cost it shows in the RSS before any Authorization.
    #[arg(long, default_value_t = 0)]
    pub unrelated_secrets: usize,
    /// A real cluster (the CRDs are applied, a namespace `ghes-bench-*` is created and deleted);
    /// default: the test server in this process.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Operator processes; more than one needs --shards.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub replicas: u32,
    /// Run the operators sharded (`run --shards`) with this many shards; 0: unsharded.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i64::from(crate::shard::MAX_SHARDS)))]
    pub shards: u32,
    /// The operator binary to measure; default: this one. The image ships a
    /// `--no-default-features` build, without the test doubles this binary carries.
    #[arg(long, value_name = "PATH")]
    pub operator: Option<PathBuf>,
    /// How long to wait for every token, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Authorizations.
    pub n: usize,
    /// Accounts.
    pub accounts: usize,
    /// Operator processes.
    pub replicas: u32,
    /// Shards (0: unsharded).
    pub shards: u32,
    /// Where: `test server` or `cluster`.
    pub kubernetes: String,
    /// The operator binary measured (`this binary`, or `--operator`'s path).
    pub operator: String,
    /// CPU cores of this machine.
    pub cores: usize,
    /// Authorizations Ready at the end.
    pub ready: usize,
    /// Seconds from the first create to the last Ready (or to the timeout).
    pub convergence_seconds: f64,
    /// Tokens per second over the convergence.
    pub tokens_per_second: f64,
    /// The accounts' combined budget, requests per second.
    pub budget_per_second: u32,
    /// GHES calls per token during convergence.
    pub ghes_calls_per_token: f64,
    /// GHES 403/429 answers during convergence.
    pub ghes_throttled: usize,
    /// Listing calls (`GET /authorizations`, `GET /applications/grants`) per sync interval in
    /// steady state.
    pub list_calls_per_sync_interval: f64,
    /// Calls on one authorization (GET, PATCH, DELETE by id; POST, PUT) in steady state.
    pub per_resource_calls_steady: usize,
    /// Reconciles of Authorizations in the steady-state window.
    pub steady_reconciles: u64,
    /// Kubernetes requests per token during convergence, by the operator's own counters.
    pub kubernetes_calls_per_token: KubernetesCalls,
    /// Kubernetes requests other than watches and lists the operator made during those
    /// reconciles (reads, writes), by its own counters.
    pub kubernetes_requests_steady: (u64, u64),
    /// Median reconcile time while converging (upper bound of its histogram bucket), ms.
    pub converging_p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub converging_p99_ms: Option<f64>,
    /// Median reconcile time with nothing to do (upper bound of its histogram bucket), ms.
    pub reconcile_p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub reconcile_p99_ms: Option<f64>,
    /// CPU seconds the operator processes used while converging.
    pub operator_cpu_seconds: Option<f64>,
    /// CPU seconds the Kubernetes API used meanwhile: a cluster's API server by its own
    /// `process_cpu_seconds_total` (`None` when its `/metrics` cannot be read), or the bench
    /// process (the test server and the GHES emulator).
    pub kubernetes_cpu_seconds: Option<f64>,
    /// Unrelated Secrets in the operator's namespace.
    pub unrelated_secrets: usize,
    /// Resident memory of the operator once ready, before any Authorization, MB (the largest
    /// of the replicas).
    pub operator_idle_rss_mb: Option<f64>,
    /// Peak resident memory of an operator process, MB (the largest of the replicas).
    pub operator_peak_rss_mb: Option<f64>,
    /// Resident memory of an operator process at the end, MB (the largest of the replicas).
    pub operator_rss_mb: Option<f64>,
}

/// Kubernetes requests per token during convergence, from the operator's own counters
/// (`kubernetes_requests_total`); watches and lists, which do not grow with the tokens, are
/// left out.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesCalls {
    /// `get` requests per token.
    pub reads: f64,
    /// Writes (create, update, patch, delete) per token.
    pub writes: f64,
    /// Per token, by `verb resource`.
    pub by_kind: BTreeMap<String, f64>,
}

impl KubernetesCalls {
    /// The requests between two readings of the counters, per token of `tokens`.
    pub fn between(
        before: &BTreeMap<String, u64>,
        after: &BTreeMap<String, u64>,
        tokens: usize,
    ) -> Self {
        let per_token = |count: u64| (count as f64 / tokens.max(1) as f64 * 100.0).round() / 100.0;
        let mut calls = Self::default();
        let (mut reads, mut writes) = (0, 0);
        for (kind, count) in after {
            let delta = count.saturating_sub(before.get(kind).copied().unwrap_or(0));
            let verb = kind.split(' ').next().unwrap_or_default();
            if delta == 0 || matches!(verb, "watch" | "list") {
                continue;
            }
            if verb == "get" {
                reads += delta;
            } else {
                writes += delta;
            }
            calls.by_kind.insert(kind.clone(), per_token(delta));
        }
        calls.reads = per_token(reads);
        calls.writes = per_token(writes);
        calls
    }
}

/// A failure of the bench itself.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Something did not start.
    #[error("cannot start {0}")]
    Start(String),
    /// The Kubernetes API refused something.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// The user the operator's requests carry on the test server.
const OPERATOR_USER: &str = "operator";

/// The operator child process; killed on drop.
struct Operator {
    child: Child,
    admin: SocketAddr,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Operator {
    fn start(
        binary: Option<&PathBuf>,
        kubeconfig: &PathBuf,
        namespace: &str,
        extra: &[String],
    ) -> Result<Self, BenchError> {
        let exe = match binary {
            Some(binary) => binary.clone(),
            None => std::env::current_exe().map_err(|e| BenchError::Start(format!("self: {e}")))?,
        };
        let mut child = Command::new(&exe)
            .args([
                "--log-level",
                "error",
                "run",
                "--admin-address",
                "127.0.0.1:0",
            ])
            .args(["--namespace", namespace, "--installation-id", "bench"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", namespace)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::Start(format!("the operator {}: {e}", exe.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Start("the operator's stdout".into()))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| BenchError::Start(format!("the operator's first line: {e}")))?;
        let admin = line
            .trim()
            .strip_prefix("admin server listening on http://")
            .and_then(|address| address.parse().ok())
            .ok_or_else(|| BenchError::Start(format!("the operator said {line:?}")))?;
        Ok(Self { child, admin })
    }

    /// Waits (at most `timeout`) until `/readyz` answers 200: the caches have synced.
    async fn ready(&self, timeout: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        let url = format!("http://{}/readyz", self.admin);
        while Instant::now() < deadline {
            if reqwest::get(&url)
                .await
                .is_ok_and(|response| response.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BenchError::Start(format!(
            "the operator: not ready within {} s",
            timeout.as_secs()
        )))
    }

    /// CPU seconds used so far, from /proc (Linux).
    fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// (peak, current) resident memory in MB, from /proc (Linux).
    fn memory(&self) -> (Option<f64>, Option<f64>) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// The operator's `/metrics` text (empty when it cannot be read).
    async fn metrics(&self) -> String {
        match reqwest::get(format!("http://{}/metrics", self.admin)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The operator's Kubernetes requests so far, by `verb resource` (its own counters).
    async fn kubernetes_requests(&self) -> BTreeMap<String, u64> {
        let text = self.metrics().await;
        let mut counts = BTreeMap::new();
        for line in text
            .lines()
            .filter(|line| line.starts_with("ghes_oauth_operator_kubernetes_requests_total{"))
        {
            let label = |name: &str| line.split(&format!("{name}=\"")).nth(1)?.split('"').next();
            let (Some(verb), Some(resource), Some(Ok(count))) = (
                label("verb"),
                label("resource"),
                line.rsplit(' ').next().map(str::parse::<u64>),
            ) else {
                continue;
            };
            *counts.entry(format!("{verb} {resource}")).or_default() += count;
        }
        counts
    }

    /// The Authorization controller's reconcile-duration histogram: (upper bound s, count).
    async fn reconcile_buckets(&self) -> Vec<(f64, u64)> {
        let text = self.metrics().await;
        text.lines()
            .filter(|line| {
                line.starts_with("ghes_oauth_operator_reconcile_duration_seconds_bucket{")
                    && line.contains("controller=\"authorization\"")
            })
            .filter_map(|line| {
                let le = line.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                let count = line.rsplit(' ').next()?.parse().ok()?;
                Some((le, count))
            })
            .collect()
    }
}

/// User and system CPU seconds of a process from its `/proc/PID/stat` (clock ticks of 1/100 s,
/// Linux's `USER_HZ`).
fn cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The fields after the command, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the command.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The CPU seconds the Kubernetes API has used: a cluster's API server by its
/// `process_cpu_seconds_total`, the test server by this process's own.
async fn kubernetes_cpu(client: &Client, test_server: bool) -> Option<f64> {
    if test_server {
        return cpu_seconds("/proc/self/stat");
    }
    let request = http::Request::get("/metrics").body(Vec::new()).ok()?;
    let text = client.request_text(request).await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("process_cpu_seconds_total "))
        .and_then(|value| value.trim().parse().ok())
}

/// The sum of the operators' figures, when every one has it.
fn sum(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.sum()
}

/// The `q` quantile (0..1) of the observations between two cumulative histograms, as the
/// upper bound of its bucket in ms; `None` without observations.
pub fn quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<f64> {
    let earlier: BTreeMap<String, u64> = before
        .iter()
        .map(|(le, count)| (le.to_string(), *count))
        .collect();
    let deltas: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, count)| {
            let was = earlier.get(&le.to_string()).copied().unwrap_or(0);
            (*le, count.saturating_sub(was))
        })
        .collect();
    let total = deltas.last().map(|(_, count)| *count)?;
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    deltas
        .iter()
        .find(|(_, count)| *count >= rank)
        .map(|(le, _)| le * 1000.0)
}

/// Applies `object(i)` for each `i` in `0..count`, 16 at a time.
async fn apply_each(
    client: &Client,
    count: usize,
    object: impl Fn(usize) -> serde_json::Value,
) -> Result<(), BenchError> {
    futures::stream::iter((0..count).map(object))
        .map(|object| async move { crate::demo::apply(client, &object).await })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Runs the bench and returns its figures.
pub async fn run(args: &BenchArgs) -> Result<Figures, BenchError> {
    let accounts = args.accounts.max(1);
    let users: Vec<UserSpec> = (0..accounts)
        .map(|i| UserSpec::parse(&format!("bench-{i}:bench-password-{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError::Start(format!("the users: {e}")))?;
    let ghes = Emulator::start(
        EmulatorConfig {
            users,
            apps: vec![],
            settings: Settings {
                rate_limit: args.rate_limit,
                ..Settings::default()
            },
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .map_err(|e| BenchError::Start(format!("the GHES emulator: {e}")))?;

    let dir = std::env::temp_dir().join(format!("ghes-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Start(format!("a temp dir: {e}")))?;
    // The operator gets a kubeconfig of its own: the test server logs its requests by user.
    let (kubeconfig, operator_kubeconfig, server, kubernetes) = match &args.kubeconfig {
        Some(path) => (path.clone(), path.clone(), None, "cluster"),
        None => {
            let server = TestApiServer::start(([127, 0, 0, 1], 0).into())
                .await
                .map_err(|e| BenchError::Start(format!("the test server: {e}")))?;
            let path = dir.join("kubeconfig");
            let operator_path = dir.join("operator-kubeconfig");
            server
                .write_kubeconfig(&path, "bench")
                .and_then(|()| server.write_kubeconfig(&operator_path, OPERATOR_USER))
                .map_err(|e| BenchError::Start(format!("a kubeconfig: {e}")))?;
            (path, operator_path, Some(server), "test server")
        }
    };
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)
            .map_err(|e| BenchError::Start(format!("{}: {e}", kubeconfig.display())))?,
        &Default::default(),
    )
    .await
    .map_err(|e| BenchError::Start(format!("{}: {e}", kubeconfig.display())))?;
    let client = Client::try_from(config)?;
    crate::demo::install_crds(&client).await?;
    let namespace = format!("ghes-bench-{}", std::process::id());
    crate::demo::apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
    )
    .await?;
    for i in 0..accounts {
        crate::demo::apply(
            &client,
            &json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("bench-{i}"), "namespace": namespace},
                "stringData": {"username": format!("bench-{i}"), "password": format!("bench-password-{i}")},
            }),
        )
        .await?;
        crate::demo::apply(
            &client,
            &json!({
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
                "metadata": {"name": format!("bench-{i}"), "namespace": namespace},
                "spec": {
                    "server": "https://ghes.invalid",
                    "apiUrl": ghes.api_url(),
                    "credentialsSecretRef": {"name": format!("bench-{i}")},
                    "requestsPerSecond": args.requests_per_second,
                    "burst": args.requests_per_second,
                    "syncInterval": format!("{}s", args.sync_interval),
                },
            }),
        )
        .await?;
    }
    apply_each(&client, args.unrelated_secrets, |i| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("unrelated-{i:06}"), "namespace": namespace,
                         "labels": {"app": "unrelated"}},
            "stringData": {"config": "x".repeat(1024)},
        })
    })
    .await?;
    if args.replicas > 1 && args.shards == 0 {
        return Err(BenchError::Start(
            "several replicas need --shards: unsharded, they would all write".into(),
        ));
    }
    let mut operators = Vec::new();
    for replica in 0..args.replicas {
        let extra: Vec<String> = if args.shards > 0 {
            vec![
                "--shards".into(),
                args.shards.to_string(),
                "--instance".into(),
                format!("bench-{replica}"),
                "--leader-election-namespace".into(),
                namespace.clone(),
            ]
        } else {
            Vec::new()
        };
        operators.push(Operator::start(
            args.operator.as_ref(),
            &operator_kubeconfig,
            &namespace,
            &extra,
        )?);
    }
    for operator in &operators {
        operator.ready(Duration::from_secs(args.timeout)).await?;
    }
    if args.shards > 0 {
        shards_spread(
            &client,
            &namespace,
            args.shards,
            args.replicas,
            args.timeout,
        )
        .await?;
    }
    let idle_rss = largest(operators.iter().map(|o| o.memory().1));

    // Convergence.
    let kubernetes_before = kubernetes_requests(&operators).await;
    let buckets_before = reconcile_buckets(&operators).await;
    let cpu_before = (
        sum(operators.iter().map(Operator::cpu_seconds)),
        kubernetes_cpu(&client, server.is_some()).await,
    );
    let started = Instant::now();
    apply_each(&client, args.n, |i| {
        json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": format!("token-{i:06}"), "namespace": namespace},
            "spec": {
                "accountRef": {"name": format!("bench-{}", i % accounts)},
                "scopes": ["read:user"],
            },
        })
    })
    .await?;
    let api = Api::<Authorization>::namespaced(client.clone(), &namespace);
    let deadline = started + Duration::from_secs(args.timeout);
    // Ready is followed by a watch: listing every Authorization again and again would load
    // the API server the operator is measured against.
    let mut ready_names: HashSet<String> = HashSet::new();
    let changes = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    tokio::pin!(changes);
    let until = tokio::time::sleep_until(deadline.into());
    tokio::pin!(until);
    while ready_names.len() < args.n {
        tokio::select! {
            change = changes.next() => match change {
                Some(Ok(authorization)) => {
                    if crate::demo::is_ready(&authorization) {
                        ready_names.insert(authorization.name_any());
                    } else {
                        ready_names.remove(&authorization.name_any());
                    }
                }
                Some(Err(_)) => {}
                None => break,
            },
            () = &mut until => break,
        }
    }
    let ready = ready_names.len();
    let convergence = started.elapsed().as_secs_f64();
    let kubernetes_converged = kubernetes_requests(&operators).await;
    let kubernetes_calls_per_token =
        KubernetesCalls::between(&kubernetes_before, &kubernetes_converged, ready);
    let spent =
        |before: Option<f64>, after: Option<f64>| Some(((after? - before?) * 10.0).round() / 10.0);
    let operator_cpu_seconds = spent(
        cpu_before.0,
        sum(operators.iter().map(Operator::cpu_seconds)),
    );
    let kubernetes_cpu_seconds = spent(
        cpu_before.1,
        kubernetes_cpu(&client, server.is_some()).await,
    );
    let buckets_converged = reconcile_buckets(&operators).await;
    let converged_requests = ghes.requests();
    let throttled = converged_requests
        .iter()
        .filter(|r| r.status == 403 || r.status == 429)
        .count();

    // Steady state: two sync intervals with nothing to do.
    let seq = converged_requests.last().map_or(0, |r| r.seq);
    let before = reconcile_buckets(&operators).await;
    let kubernetes_before_steady = kubernetes_requests(&operators).await;
    tokio::time::sleep(Duration::from_secs(2 * args.sync_interval)).await;
    let after = reconcile_buckets(&operators).await;
    let steady_calls = KubernetesCalls::between(
        &kubernetes_before_steady,
        &kubernetes_requests(&operators).await,
        1,
    );
    let kubernetes_requests_steady = (
        steady_calls.reads.round() as u64,
        steady_calls.writes.round() as u64,
    );
    let steady: Vec<_> = ghes
        .requests()
        .into_iter()
        .filter(|r| r.seq > seq)
        .collect();
    let lists = steady
        .iter()
        .filter(|r| {
            r.method == "GET"
                && (r.path.ends_with("/authorizations") || r.path.ends_with("/applications/grants"))
        })
        .count();
    let per_resource = steady.len() - lists;
    let peak = largest(operators.iter().map(|o| o.memory().0));
    let rss = largest(operators.iter().map(|o| o.memory().1));
    let steady_reconciles = after.last().map_or(0, |(_, c)| *c)
        - before
            .last()
            .map_or(0, |(_, c)| *c)
            .min(after.last().map_or(0, |(_, c)| *c));
    drop(operators);
    if args.kubeconfig.is_some() {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&namespace, &DeleteParams::default())
            .await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    ghes.shutdown().await;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Ok(Figures {
        n: args.n,
        accounts,
        replicas: args.replicas,
        shards: args.shards,
        kubernetes: kubernetes.into(),
        operator: args
            .operator
            .as_ref()
            .map_or_else(|| "this binary".into(), |path| path.display().to_string()),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        ready,
        convergence_seconds: round(convergence),
        tokens_per_second: round(ready as f64 / convergence.max(0.001)),
        budget_per_second: args.requests_per_second * accounts as u32,
        ghes_calls_per_token: round(converged_requests.len() as f64 / args.n.max(1) as f64),
        ghes_throttled: throttled,
        kubernetes_calls_per_token,
        list_calls_per_sync_interval: round(lists as f64 / 2.0),
        per_resource_calls_steady: per_resource,
        steady_reconciles,
        kubernetes_requests_steady,
        converging_p50_ms: quantile(&buckets_before, &buckets_converged, 0.5),
        converging_p99_ms: quantile(&buckets_before, &buckets_converged, 0.99),
        operator_cpu_seconds,
        kubernetes_cpu_seconds,
        reconcile_p50_ms: quantile(&before, &after, 0.5),
        reconcile_p99_ms: quantile(&before, &after, 0.99),
        unrelated_secrets: args.unrelated_secrets,
        operator_idle_rss_mb: idle_rss,
        operator_peak_rss_mb: peak,
        operator_rss_mb: rss,
    })
}

/// The largest of some figures.
fn largest(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().reduce(f64::max)
}

/// The replicas' reconcile-duration histograms, summed bucket by bucket.
/// The Kubernetes requests of every operator so far, by `verb resource`.
async fn kubernetes_requests(operators: &[Operator]) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for operator in operators {
        for (kind, count) in operator.kubernetes_requests().await {
            *sum.entry(kind).or_default() += count;
        }
    }
    sum
}

async fn reconcile_buckets(operators: &[Operator]) -> Vec<(f64, u64)> {
    let mut sum: Vec<(f64, u64)> = Vec::new();
    for operator in operators {
        for (le, count) in operator.reconcile_buckets().await {
            match sum.iter_mut().find(|(bound, _)| *bound == le) {
                Some((_, total)) => *total += count,
                None => sum.push((le, count)),
            }
        }
    }
    sum.sort_by(|a, b| a.0.total_cmp(&b.0));
    sum
}

/// Waits until the `shards` shard Leases are held, spread over the `replicas`.
async fn shards_spread(
    client: &Client,
    namespace: &str,
    shards: u32,
    replicas: u32,
    timeout: u64,
) -> Result<(), BenchError> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), namespace);
    let most = shards.div_ceil(replicas.min(shards).max(1)) as usize;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    while Instant::now() < deadline {
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for lease in leases.list(&Default::default()).await?.items {
            let name = lease.name_any();
            if let Some(holder) = lease.spec.and_then(|s| s.holder_identity)
                && name.contains("-shard-")
            {
                *per.entry(holder).or_default() += 1;
            }
        }
        let held: usize = per.values().sum();
        if held == shards as usize
            && per.len() == replicas.min(shards) as usize
            && per.values().all(|n| *n <= most)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(BenchError::Start(format!(
        "the {shards} shards did not spread over the {replicas} replicas"
    )))
}

/// The figures as a two-column table.
pub fn table(figures: &Figures) -> String {
    let ms = |value: Option<f64>| value.map_or_else(|| "n/a".into(), |v| format!("≤ {v} ms"));
    let mb = |value: Option<f64>| value.map_or_else(|| "n/a".into(), |v| format!("{v} MB"));
    let seconds = |value: Option<f64>| value.map_or_else(|| "n/a".into(), |v| format!("{v} s"));
    let rows = vec![
        vec![
            "Authorizations (accounts)".into(),
            format!("{} ({})", figures.n, figures.accounts),
        ],
        vec![
            "operator replicas (shards)".into(),
            if figures.shards == 0 {
                format!("{} (unsharded)", figures.replicas)
            } else {
                format!("{} ({})", figures.replicas, figures.shards)
            },
        ],
        vec!["Kubernetes".into(), figures.kubernetes.clone()],
        vec!["operator binary".into(), figures.operator.clone()],
        vec!["cores".into(), figures.cores.to_string()],
        vec![
            "Ready".into(),
            format!("{} of {}", figures.ready, figures.n),
        ],
        vec![
            "convergence".into(),
            format!("{} s", figures.convergence_seconds),
        ],
        vec![
            "tokens/s (budget)".into(),
            format!(
                "{} ({} req/s, {:.0}%)",
                figures.tokens_per_second,
                figures.budget_per_second,
                100.0 * figures.tokens_per_second / f64::from(figures.budget_per_second.max(1))
            ),
        ],
        vec![
            "GHES calls per token".into(),
            figures.ghes_calls_per_token.to_string(),
        ],
        vec![
            "Kubernetes calls per token: reads + writes".into(),
            format!(
                "{} + {}",
                figures.kubernetes_calls_per_token.reads, figures.kubernetes_calls_per_token.writes
            ),
        ],
        vec![
            "  by verb and resource".into(),
            figures
                .kubernetes_calls_per_token
                .by_kind
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ],
        vec![
            "GHES 403/429 answers".into(),
            figures.ghes_throttled.to_string(),
        ],
        vec![
            "list calls per sync interval (steady)".into(),
            figures.list_calls_per_sync_interval.to_string(),
        ],
        vec![
            "per-resource GHES calls (steady)".into(),
            figures.per_resource_calls_steady.to_string(),
        ],
        vec![
            "reconciles with nothing to do".into(),
            figures.steady_reconciles.to_string(),
        ],
        vec![
            "Kubernetes reads / writes (steady)".into(),
            format!(
                "{} / {}",
                figures.kubernetes_requests_steady.0, figures.kubernetes_requests_steady.1
            ),
        ],
        vec![
            "reconcile p50 / p99 (converging)".into(),
            format!(
                "{} / {}",
                ms(figures.converging_p50_ms),
                ms(figures.converging_p99_ms)
            ),
        ],
        vec![
            "CPU while converging: operator / Kubernetes API".into(),
            format!(
                "{} / {}{}",
                seconds(figures.operator_cpu_seconds),
                seconds(figures.kubernetes_cpu_seconds),
                if figures.kubernetes == "test server" {
                    " (the bench process: test server and GHES emulator)"
                } else {
                    " (the API server)"
                }
            ),
        ],
        vec![
            "reconcile p50 / p99 (steady)".into(),
            format!(
                "{} / {}",
                ms(figures.reconcile_p50_ms),
                ms(figures.reconcile_p99_ms)
            ),
        ],
        vec![
            format!(
                "operator RSS ready, before any ({} unrelated Secrets)",
                figures.unrelated_secrets
            ),
            mb(figures.operator_idle_rss_mb),
        ],
        vec![
            "operator RSS peak / end".into(),
            format!(
                "{} / {}",
                mb(figures.operator_peak_rss_mb),
                mb(figures.operator_rss_mb)
            ),
        ],
    ];
    crate::table::render(&["FIGURE", "VALUE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_calls_per_token_leave_watches_and_lists_out() {
        let before: BTreeMap<String, u64> = [
            ("patch authorizations".to_owned(), 2),
            ("watch secrets".to_owned(), 1),
        ]
        .into();
        let after: BTreeMap<String, u64> = [
            ("patch authorizations".to_owned(), 12),
            ("patch authorizations/status".to_owned(), 20),
            ("create secrets".to_owned(), 10),
            ("get secrets".to_owned(), 5),
            ("watch secrets".to_owned(), 3),
            ("list secrets".to_owned(), 4),
        ]
        .into();
        let calls = KubernetesCalls::between(&before, &after, 10);
        assert_eq!((calls.reads, calls.writes), (0.5, 4.0));
        assert_eq!(
            calls.by_kind.keys().collect::<Vec<_>>(),
            [
                "create secrets",
                "get secrets",
                "patch authorizations",
                "patch authorizations/status"
            ]
        );
        assert_eq!(calls.by_kind["patch authorizations/status"], 2.0);
    }

    #[test]
    fn quantiles_come_from_the_histogram_delta() {
        let before = [(0.005, 10), (0.01, 10), (0.02, 10), (f64::INFINITY, 10)];
        let after = [(0.005, 60), (0.01, 108), (0.02, 110), (f64::INFINITY, 110)];
        assert_eq!(quantile(&before, &after, 0.5), Some(5.0));
        // 100 observations: the 99th is in the third bucket (98 end by 10 ms).
        assert_eq!(quantile(&before, &after, 0.99), Some(20.0));
        assert_eq!(quantile(&after, &after, 0.5), None);
    }
}
