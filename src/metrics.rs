//! The operator's Prometheus metrics (prometheus-client, OpenMetrics text on the admin server's
//! `/metrics`), all under the prefix `ghes_oauth_operator_`.
//!
//! Every label but the per-token gauges' has a bounded set of values: controller kinds, results,
//! error reasons (CamelCase constants), GHES operation names and HTTP status codes; none holds a
//! resource name, a namespace, an id or a login. The per-token gauges (as cert-manager's
//! `certmanager_certificate_expiration_timestamp_seconds`) have one series per Authorization,
//! labelled by `namespace` and `name`; `run --token-metrics=false` turns them off for very large
//! fleets. They are read from the watch cache at each scrape, so they hold no memory per token.
//!
//! | metric | labels |
//! |---|---|
//! | `reconciles_total` | `controller`, `result` (`success`, `error`, `config_error`), `reason` |
//! | `reconcile_duration_seconds` (histogram) | `controller` |
//! | `ghes_requests_total` | `operation`, `status` (HTTP code, or `error`: no response) |
//! | `ghes_rate_limit_wait_seconds_total`, `ghes_rate_limit_waits_total` | `operation` |
//! | `kubernetes_requests_total` (requests the operator sent to the Kubernetes API, counted by its client) | `verb`, `resource` (the resources it uses, `/status` for the subresource; anything else `other`) |
//! | `tokens_issued_total`, `tokens_reissued_total`, `tokens_rotated_total`, `tokens_revoked_total` | |
//! | `tokens_abandoned_total` (tokens left live on GHES that the operator can no longer revoke: a deletion that could not revoke them in time, or credentials moved to another GHES user) | `reason` |
//! | `prune_candidates` (gauge), `prune_deletions_total` | `kind` (`authorization`, `grant`) |
//! | `prune_refused_accounts` (gauge: accounts whose latest prune run refused, or withheld tokens) | |
//! | `tokens_rotation_overdue`, `tokens_expired` (gauges: Authorizations past their scheduled rotation, or holding an expired token) | |
//! | `authorizations` (gauge) | `ready` (`true`, `false`) |
//! | `authorizations_suspended` (gauge: of the Authorizations not Ready, those suspended by their own or their account's `spec.suspend`) | |
//! | `leader` (gauge: 1 while this instance runs the controllers) | |
//! | `shard_held` (gauge: 1 while this replica holds the shard; `run --shards` only) | `shard` (0 to K−1, K ≤ 64) |
//! | `shard_authorizations` (gauge: Authorizations of the shard in this replica's caches) | `shard` |
//! | `token_expiration_timestamp_seconds`, `token_next_rotation_timestamp_seconds` (gauges: `status.expiresAt`, `status.nextRotationAt`; no series when unset), `token_ready` (gauge: 1 when Ready) | `namespace`, `name` |

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::ghes::{Operation, RequestObserver};

/// What prune runs found: candidates of each kind, and runs that refused to prune.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// GHES authorizations pruning would delete.
    pub authorizations: usize,
    /// Grants pruning would delete.
    pub grants: usize,
    /// Runs (one per account) that refused to prune or withheld tokens, and said why in status.
    pub refused: usize,
}

/// The prefix of every metric name.
pub const PREFIX: &str = "ghes_oauth_operator";

/// Shorter waits for a rate-limit token are bookkeeping, not waits.
const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_millis(1);

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What happened to a token on GHES, as the reconcile that did it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenChange {
    /// A first token for a resource.
    Issued,
    /// A token replacing one that was lost or gone.
    Reissued,
    /// A token replacing one that was due (rotation).
    Rotated,
    /// A token revoked by the operator.
    Revoked,
}

/// Which controller a reconcile belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControllerKind {
    /// Authorizations.
    Authorization,
    /// Accounts.
    Account,
    /// ClusterAccounts.
    ClusterAccount,
}

impl ControllerKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::Account => "account",
            Self::ClusterAccount => "clusteraccount",
        }
    }
}

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// The object is as its spec says.
    Success,
    /// A transient failure; retried with backoff.
    Error,
    /// A configuration problem that waits for the user to change something.
    ConfigError,
}

impl ReconcileResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::ConfigError => "config_error",
        }
    }
}

/// What pruning deals with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PruneKind {
    /// A GHES authorization (token) nothing declares.
    Authorization,
    /// A grant of an OAuth app no Authorization uses.
    Grant,
}

impl PruneKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::Grant => "grant",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubernetesRequestLabels {
    verb: &'static str,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    ready: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: String,
}

impl ShardLabels {
    fn of(shard: u32) -> Self {
        Self {
            shard: shard.to_string(),
        }
    }
}

/// One Authorization as the per-token gauges show it.
#[derive(Clone, Copy, Debug)]
pub struct TokenSample<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its Ready condition is True.
    pub ready: bool,
    /// When GHES expires its token (Unix seconds), if it does.
    pub expires_at: Option<i64>,
    /// When its token is next rotated (Unix seconds), if it is scheduled.
    pub next_rotation_at: Option<i64>,
}

/// Where the per-token gauges come from: the Authorizations in one set of controllers' caches,
/// read at each scrape, so that they cost no memory per token between scrapes.
pub trait TokenSource: Send + Sync {
    /// Calls `each` with every Authorization.
    fn for_each(&self, each: &mut dyn FnMut(TokenSample<'_>));
}

/// The labels of a per-token gauge (by hand: the derive takes no borrowed fields).
struct TokenLabels<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl EncodeLabelSet for TokenLabels<'_> {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("namespace", self.namespace).encode(encoder.encode_label())?;
        ("name", self.name).encode(encoder.encode_label())
    }
}

type TokenSources = std::sync::Arc<
    std::sync::Mutex<std::collections::BTreeMap<Option<u32>, std::sync::Arc<dyn TokenSource>>>,
>;

/// The per-token gauges, encoded at each scrape from the sources the controllers register.
struct TokenGauges(TokenSources);

impl std::fmt::Debug for TokenGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGauges").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for TokenGauges {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        let sources: Vec<std::sync::Arc<dyn TokenSource>> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        if sources.is_empty() {
            return Ok(());
        }
        type Pick = fn(&TokenSample<'_>) -> Option<i64>;
        let gauges: [(&str, &str, Option<Unit>, Pick); 3] = [
            (
                "token_expiration_timestamp",
                "When GHES expires the Authorization's current token (status.expiresAt); absent for a token that does not expire",
                Some(Unit::Seconds),
                |token| token.expires_at,
            ),
            (
                "token_next_rotation_timestamp",
                "When the Authorization's token is next rotated (status.nextRotationAt); absent when no rotation is scheduled",
                Some(Unit::Seconds),
                |token| token.next_rotation_at,
            ),
            (
                "token_ready",
                "1 when the Authorization is Ready (its Secret holds a live token matching the spec), else 0",
                None,
                |token| Some(i64::from(token.ready)),
            ),
        ];
        for (name, help, unit, pick) in gauges {
            let mut metric = encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            let mut failed = Ok(());
            for source in &sources {
                source.for_each(&mut |token| {
                    let Some(value) = pick(&token) else {
                        return;
                    };
                    if failed.is_err() {
                        return;
                    }
                    let labels = TokenLabels {
                        namespace: token.namespace,
                        name: token.name,
                    };
                    failed = metric
                        .encode_family(&labels)
                        .and_then(|family| ConstGauge::new(value).encode(family));
                });
            }
            failed?;
        }
        Ok(())
    }
}

/// What one set of controllers (all of them, or one shard's) counts in its caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Authorizations Ready.
    pub ready: usize,
    /// Authorizations not Ready.
    pub not_ready: usize,
    /// Of those not Ready, the suspended ones (their own `spec.suspend` or their account's).
    pub suspended: usize,
    /// Authorizations past their scheduled rotation.
    pub rotation_overdue: usize,
    /// Authorizations holding an expired token.
    pub expired: usize,
    /// The latest prune runs of the accounts.
    pub prune: PruneOutcome,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets of the reconcile duration: 5 ms to about 40 s.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Every metric of the operator and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    ghes_requests: Family<RequestLabels, Counter>,
    kubernetes_requests: Family<KubernetesRequestLabels, Counter>,
    rate_limit_wait_seconds: Family<OperationLabels, Counter<f64, AtomicU64>>,
    rate_limit_waits: Family<OperationLabels, Counter>,
    tokens_issued: Counter,
    tokens_reissued: Counter,
    tokens_rotated: Counter,
    tokens_revoked: Counter,
    tokens_abandoned: Family<ReasonLabels, Counter>,
    prune_candidates: Family<KindLabels, Gauge>,
    prune_deletions: Family<KindLabels, Counter>,
    prune_refused: Gauge,
    authorizations: Family<ReadyLabels, Gauge>,
    authorizations_suspended: Gauge,
    tokens_rotation_overdue: Gauge,
    tokens_expired: Gauge,
    leader: Gauge,
    shard_held: Family<ShardLabels, Gauge>,
    shard_authorizations: Family<ShardLabels, Gauge>,
    /// The Authorizations behind the per-token gauges, by set of controllers.
    token_sources: TokenSources,
    /// The latest sample of each set of controllers (`None`: unsharded), summed into the gauges.
    samples: std::sync::Mutex<std::collections::BTreeMap<Option<u32>, Sample>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            registry: Registry::default(),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            ghes_requests: Family::default(),
            kubernetes_requests: Family::default(),
            rate_limit_wait_seconds: Family::default(),
            rate_limit_waits: Family::default(),
            tokens_issued: Counter::default(),
            tokens_reissued: Counter::default(),
            tokens_rotated: Counter::default(),
            tokens_revoked: Counter::default(),
            tokens_abandoned: Family::default(),
            prune_candidates: Family::default(),
            prune_deletions: Family::default(),
            prune_refused: Gauge::default(),
            authorizations: Family::default(),
            authorizations_suspended: Gauge::default(),
            tokens_rotation_overdue: Gauge::default(),
            tokens_expired: Gauge::default(),
            leader: Gauge::default(),
            shard_held: Family::default(),
            shard_authorizations: Family::default(),
            token_sources: Default::default(),
            samples: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        };
        let sub = registry.sub_registry_with_prefix(PREFIX);
        sub.register(
            "reconciles",
            "Reconciles by controller, result and reason",
            metrics.reconciles.clone(),
        );
        sub.register_with_unit(
            "reconcile_duration",
            "How long reconciles took, by controller",
            Unit::Seconds,
            metrics.reconcile_duration.clone(),
        );
        sub.register(
            "ghes_requests",
            "GHES API responses by operation and HTTP status (error: no response)",
            metrics.ghes_requests.clone(),
        );
        sub.register(
            "kubernetes_requests",
            "Requests the operator sent to the Kubernetes API, by verb and resource",
            metrics.kubernetes_requests.clone(),
        );
        sub.register_with_unit(
            "ghes_rate_limit_wait",
            "Time spent waiting for a rate limit before sending a GHES request",
            Unit::Seconds,
            metrics.rate_limit_wait_seconds.clone(),
        );
        sub.register(
            "ghes_rate_limit_waits",
            "GHES requests that waited for a rate limit before being sent",
            metrics.rate_limit_waits.clone(),
        );
        sub.register(
            "tokens_issued",
            "Tokens issued for Authorizations that had none",
            metrics.tokens_issued.clone(),
        );
        sub.register(
            "tokens_reissued",
            "Tokens revoked and issued again because the Secret lost the token or GHES lost the authorization",
            metrics.tokens_reissued.clone(),
        );
        sub.register(
            "tokens_rotated",
            "Tokens replaced by a rotation",
            metrics.tokens_rotated.clone(),
        );
        sub.register(
            "tokens_revoked",
            "Tokens revoked on GHES because their Authorization was deleted",
            metrics.tokens_revoked.clone(),
        );
        sub.register(
            "tokens_abandoned",
            "Tokens left live on GHES that the operator can no longer revoke, by reason: a \
             deleted Authorization's (GHES unreachable past the account's revokeTimeout, \
             credentials refused, account gone; an Event in the operator's namespace names each) \
             or one stranded when its account's credentials moved to another GHES user \
             (CredentialsChanged; a TokenStranded Event and status.strandedTokens name each)",
            metrics.tokens_abandoned.clone(),
        );
        sub.register(
            "prune_candidates",
            "What pruning would delete, as of each account's latest run, by kind",
            metrics.prune_candidates.clone(),
        );
        sub.register(
            "prune_deletions",
            "What pruning deleted, by kind",
            metrics.prune_deletions.clone(),
        );
        sub.register(
            "prune_refused_accounts",
            "Accounts whose latest prune run refused to prune or withheld tokens (status.prune.refused says why)",
            metrics.prune_refused.clone(),
        );
        sub.register(
            "authorizations",
            "Authorizations in the watched namespaces by their Ready condition",
            metrics.authorizations.clone(),
        );
        sub.register(
            "authorizations_suspended",
            "Authorizations suspended (spec.suspend, theirs or their account's): not Ready, and not to be",
            metrics.authorizations_suspended.clone(),
        );
        sub.register(
            "tokens_rotation_overdue",
            "Authorizations whose token is past its scheduled rotation (status.nextRotationAt)",
            metrics.tokens_rotation_overdue.clone(),
        );
        sub.register(
            "tokens_expired",
            "Authorizations whose token has expired on GHES (status.expiresAt)",
            metrics.tokens_expired.clone(),
        );
        sub.register(
            "leader",
            "1 while this instance runs the controllers (leads, or runs without leader election)",
            metrics.leader.clone(),
        );
        sub.register(
            "shard_held",
            "1 while this replica holds the shard (run --shards)",
            metrics.shard_held.clone(),
        );
        sub.register(
            "shard_authorizations",
            "Authorizations of the shard in this replica's caches (run --shards)",
            metrics.shard_authorizations.clone(),
        );
        // Series that dashboards and alerts expect before anything happened.
        for kind in [PruneKind::Authorization, PruneKind::Grant] {
            metrics.set_prune_candidates(kind, 0);
            metrics
                .prune_deletions
                .get_or_create(&KindLabels {
                    kind: kind.as_str(),
                })
                .inc_by(0);
        }
        metrics.set_authorizations(0, 0);
        sub.register_collector(Box::new(TokenGauges(metrics.token_sources.clone())));
        Self {
            registry,
            ..metrics
        }
    }

    /// Every metric as OpenMetrics text (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Records one reconcile. `reason` is empty on success, else an error reason (a CamelCase
    /// constant, see `controller::Error::reason`).
    pub fn reconciled(
        &self,
        controller: ControllerKind,
        result: ReconcileResult,
        reason: &str,
        elapsed: Duration,
    ) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                controller: controller.as_str(),
                result: result.as_str(),
                reason: bounded_reason(reason),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a token issued, re-issued, rotated or revoked.
    pub fn count_token(&self, change: TokenChange) {
        match change {
            TokenChange::Issued => self.tokens_issued.inc(),
            TokenChange::Reissued => self.tokens_reissued.inc(),
            TokenChange::Rotated => self.tokens_rotated.inc(),
            TokenChange::Revoked => self.tokens_revoked.inc(),
        };
    }

    /// Counts tokens a deletion left live on GHES, with the reason it could not revoke them.
    pub fn count_abandoned(&self, reason: &'static str, tokens: usize) {
        self.tokens_abandoned
            .get_or_create(&ReasonLabels { reason })
            .inc_by(u64::try_from(tokens).unwrap_or(u64::MAX));
    }

    /// Sets how many candidates of `kind` pruning currently reports, summed over accounts.
    pub fn set_prune_candidates(&self, kind: PruneKind, candidates: usize) {
        self.prune_candidates
            .get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .set(gauge_value(candidates));
    }

    /// Sets the prune gauges from the latest runs of all accounts.
    pub fn set_prune_outcome(&self, outcome: PruneOutcome) {
        self.set_prune_candidates(PruneKind::Authorization, outcome.authorizations);
        self.set_prune_candidates(PruneKind::Grant, outcome.grants);
        self.prune_refused.set(gauge_value(outcome.refused));
    }

    /// Sets how many Authorizations are past their scheduled rotation and how many hold an
    /// expired token.
    pub fn set_token_deadlines(&self, rotation_overdue: usize, expired: usize) {
        self.tokens_rotation_overdue
            .set(gauge_value(rotation_overdue));
        self.tokens_expired.set(gauge_value(expired));
    }

    /// Counts one object of `kind` that pruning deleted.
    pub fn prune_deleted(&self, kind: PruneKind) {
        self.prune_deletions
            .get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Sets the number of Authorizations that are Ready and that are not.
    pub fn set_authorizations(&self, ready: usize, not_ready: usize) {
        for (label, count) in [("true", ready), ("false", not_ready)] {
            self.authorizations
                .get_or_create(&ReadyLabels { ready: label })
                .set(gauge_value(count));
        }
    }

    /// Records what the controllers of `shard` (`None`: unsharded) count in their caches; the
    /// gauges hold the sum over the sets of controllers this process runs.
    pub fn report_sample(&self, shard: Option<u32>, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.insert(shard, sample);
        if let Some(index) = shard {
            self.shard_authorizations
                .get_or_create(&ShardLabels::of(index))
                .set(gauge_value(sample.ready + sample.not_ready));
        }
        self.set_sum(&samples);
    }

    /// Shows the Authorizations of `source` in the per-token gauges (`run --token-metrics`),
    /// as those of the controllers of `shard` (`None`: unsharded).
    pub fn set_token_source(&self, shard: Option<u32>, source: std::sync::Arc<dyn TokenSource>) {
        self.token_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shard, source);
    }

    /// Forgets the sample of `shard`, whose controllers stopped, and its per-token gauges.
    pub fn forget_sample(&self, shard: Option<u32>) {
        self.token_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&shard);
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.remove(&shard);
        if let Some(index) = shard {
            self.shard_authorizations
                .get_or_create(&ShardLabels::of(index))
                .set(0);
        }
        self.set_sum(&samples);
    }

    fn set_sum(&self, samples: &std::collections::BTreeMap<Option<u32>, Sample>) {
        let sum = samples.values().fold(Sample::default(), |sum, one| Sample {
            ready: sum.ready + one.ready,
            not_ready: sum.not_ready + one.not_ready,
            suspended: sum.suspended + one.suspended,
            rotation_overdue: sum.rotation_overdue + one.rotation_overdue,
            expired: sum.expired + one.expired,
            prune: PruneOutcome {
                authorizations: sum.prune.authorizations + one.prune.authorizations,
                grants: sum.prune.grants + one.prune.grants,
                refused: sum.prune.refused + one.prune.refused,
            },
        });
        self.set_authorizations(sum.ready, sum.not_ready);
        self.authorizations_suspended
            .set(gauge_value(sum.suspended));
        self.set_token_deadlines(sum.rotation_overdue, sum.expired);
        self.set_prune_outcome(sum.prune);
    }

    /// Records whether this replica holds `shard`.
    pub fn set_shard_held(&self, shard: u32, held: bool) {
        self.shard_held
            .get_or_create(&ShardLabels::of(shard))
            .set(i64::from(held));
    }

    /// Records whether this instance runs the controllers.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

impl RequestObserver for Metrics {
    fn on_response(&self, operation: Operation, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |code| code.to_string());
        self.ghes_requests
            .get_or_create(&RequestLabels {
                operation: operation.as_str(),
                status,
            })
            .inc();
    }

    fn on_rate_limit_wait(&self, operation: Operation, waited: Duration) {
        // The client reports the time it took to take a token, which is never quite zero;
        // only a real wait for the bucket to refill (or for GHES's reset) counts.
        if waited < MIN_RATE_LIMIT_WAIT {
            return;
        }
        let labels = OperationLabels {
            operation: operation.as_str(),
        };
        self.rate_limit_wait_seconds
            .get_or_create(&labels)
            .inc_by(waited.as_secs_f64());
        self.rate_limit_waits.get_or_create(&labels).inc();
    }
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A reason label: CamelCase constants pass; anything else (which no caller should pass) is
/// folded into `Other`, so a mistake cannot make the label unbounded.
fn bounded_reason(reason: &str) -> String {
    let plausible = reason.len() <= 48 && reason.chars().all(|c| c.is_ascii_alphanumeric());
    if plausible {
        reason.to_owned()
    } else {
        "Other".to_owned()
    }
}

impl Metrics {
    /// Counts one request to the Kubernetes API (see [`crate::kube_requests`]).
    pub fn count_kubernetes_request(&self, verb: &'static str, resource: String) {
        self.kubernetes_requests
            .get_or_create(&KubernetesRequestLabels { verb, resource })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tokens(Vec<(&'static str, bool, Option<i64>, Option<i64>)>);

    impl TokenSource for Tokens {
        fn for_each(&self, each: &mut dyn FnMut(TokenSample<'_>)) {
            for (name, ready, expires_at, next_rotation_at) in &self.0 {
                each(TokenSample {
                    namespace: "team-a",
                    name,
                    ready: *ready,
                    expires_at: *expires_at,
                    next_rotation_at: *next_rotation_at,
                });
            }
        }
    }

    #[test]
    fn per_token_gauges_show_each_authorization_until_its_controllers_stop() {
        let metrics = Metrics::new();
        let text = metrics.encode().expect("encode");
        assert!(!text.contains("token_ready"), "{text}");
        metrics.set_token_source(
            Some(1),
            std::sync::Arc::new(Tokens(vec![
                ("ci", true, Some(1_800_000_000), Some(1_790_000_000)),
                ("release", false, None, None),
            ])),
        );
        let text = metrics.encode().expect("encode");
        for line in [
            r#"ghes_oauth_operator_token_expiration_timestamp_seconds{namespace="team-a",name="ci"} 1800000000"#,
            r#"ghes_oauth_operator_token_next_rotation_timestamp_seconds{namespace="team-a",name="ci"} 1790000000"#,
            r#"ghes_oauth_operator_token_ready{namespace="team-a",name="ci"} 1"#,
            r#"ghes_oauth_operator_token_ready{namespace="team-a",name="release"} 0"#,
            "# TYPE ghes_oauth_operator_token_expiration_timestamp_seconds gauge",
            "# UNIT ghes_oauth_operator_token_expiration_timestamp_seconds seconds",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        // No series for what is unset.
        assert!(!text.contains(r#"timestamp_seconds{namespace="team-a",name="release"}"#));
        metrics.forget_sample(Some(1));
        let text = metrics.encode().expect("encode");
        assert!(!text.contains("token_ready"), "{text}");
    }

    #[test]
    fn the_gauges_sum_the_shards_a_process_runs() {
        let metrics = Metrics::new();
        let sample = |ready, not_ready| Sample {
            ready,
            not_ready,
            suspended: not_ready,
            rotation_overdue: 1,
            expired: 0,
            prune: PruneOutcome {
                authorizations: 2,
                grants: 0,
                refused: 1,
            },
        };
        metrics.report_sample(Some(0), sample(3, 1));
        metrics.report_sample(Some(4), sample(5, 0));
        metrics.set_shard_held(4, true);
        let text = metrics.encode().expect("encode");
        for line in [
            r#"ghes_oauth_operator_authorizations{ready="true"} 8"#,
            r#"ghes_oauth_operator_authorizations{ready="false"} 1"#,
            "ghes_oauth_operator_authorizations_suspended 1",
            "ghes_oauth_operator_tokens_rotation_overdue 2",
            r#"ghes_oauth_operator_prune_candidates{kind="authorization"} 4"#,
            "ghes_oauth_operator_prune_refused_accounts 2",
            r#"ghes_oauth_operator_shard_authorizations{shard="0"} 4"#,
            r#"ghes_oauth_operator_shard_authorizations{shard="4"} 5"#,
            r#"ghes_oauth_operator_shard_held{shard="4"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        // A shard given up leaves the sums.
        metrics.forget_sample(Some(4));
        let text = metrics.encode().expect("encode");
        assert!(text.contains(r#"ghes_oauth_operator_authorizations{ready="true"} 3"#));
        assert!(text.contains(r#"ghes_oauth_operator_shard_authorizations{shard="4"} 0"#));
    }

    #[test]
    fn names_carry_the_prefix_units_and_total_suffixes() {
        let metrics = Metrics::new();
        metrics.reconciled(
            ControllerKind::Authorization,
            ReconcileResult::Success,
            "",
            Duration::from_millis(20),
        );
        metrics.on_response(Operation::GetOrCreateForAppAndFingerprint, Some(201));
        metrics.on_response(Operation::ListAuthorizations, None);
        metrics.on_rate_limit_wait(Operation::ListAuthorizations, Duration::from_millis(1500));
        metrics.on_rate_limit_wait(Operation::ListGrants, Duration::from_micros(3));
        metrics.count_token(TokenChange::Issued);
        metrics.set_prune_candidates(PruneKind::Grant, 3);
        metrics.prune_deleted(PruneKind::Authorization);
        metrics.set_authorizations(2, 1);
        metrics.set_prune_outcome(PruneOutcome {
            authorizations: 4,
            grants: 3,
            refused: 1,
        });
        metrics.set_token_deadlines(2, 1);
        metrics.set_leader(true);
        let text = metrics.encode().unwrap();
        for line in [
            r#"ghes_oauth_operator_reconciles_total{controller="authorization",result="success",reason=""} 1"#,
            r#"ghes_oauth_operator_reconcile_duration_seconds_count{controller="authorization"} 1"#,
            r#"ghes_oauth_operator_ghes_requests_total{operation="get-or-create-authorization-for-app-and-fingerprint",status="201"} 1"#,
            r#"ghes_oauth_operator_ghes_requests_total{operation="list-authorizations",status="error"} 1"#,
            r#"ghes_oauth_operator_ghes_rate_limit_wait_seconds_total{operation="list-authorizations"} 1.5"#,
            r#"ghes_oauth_operator_ghes_rate_limit_waits_total{operation="list-authorizations"} 1"#,
            "ghes_oauth_operator_tokens_issued_total 1",
            "ghes_oauth_operator_tokens_reissued_total 0",
            "ghes_oauth_operator_tokens_revoked_total 0",
            r#"ghes_oauth_operator_prune_candidates{kind="grant"} 3"#,
            r#"ghes_oauth_operator_prune_candidates{kind="authorization"} 4"#,
            "ghes_oauth_operator_prune_refused_accounts 1",
            "ghes_oauth_operator_tokens_rotation_overdue 2",
            "ghes_oauth_operator_tokens_expired 1",
            r#"ghes_oauth_operator_prune_deletions_total{kind="grant"} 0"#,
            r#"ghes_oauth_operator_prune_deletions_total{kind="authorization"} 1"#,
            r#"ghes_oauth_operator_authorizations{ready="true"} 2"#,
            r#"ghes_oauth_operator_authorizations{ready="false"} 1"#,
            "ghes_oauth_operator_leader 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert!(
            !text.contains("list-grants"),
            "a token taken at once is no wait:\n{text}"
        );
    }

    #[test]
    fn reasons_stay_bounded() {
        assert_eq!(bounded_reason("AccountNotFound"), "AccountNotFound");
        assert_eq!(bounded_reason("team-a/ci-bot"), "Other");
        assert_eq!(bounded_reason(&"A".repeat(100)), "Other");
    }
}
