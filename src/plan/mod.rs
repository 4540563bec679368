//! `plan`: what the operator would do once a change is applied — read-only, for a pull
//! request's review, as `terraform plan` is for infrastructure.
//!
//! The manifests of the change are laid over the cluster's current resources; each affected
//! Authorization is then judged by the controller's own decisions (`SecretState::inspect`,
//! `rotation_due`, `drift_update`, `Owned::verify`) and each affected account's pruning by the
//! same pure [`crate::controller::prune::plan`] the controller runs. Accounts resolve through
//! the controller's own registry, so a password GHES refused is not sent again, and a
//! configuration error costs no GHES call. GHES sees only GETs: the account's listing, and an
//! authorization by id where the listing does not show it.

mod decide;
mod manifests;
mod render;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::api::AccountKey;
use crate::api::{Account, Authorization, ClusterAccount};
use crate::cluster::{Pages, scoped_api, scopes};
use crate::controller::cache::AccountViews;
use crate::controller::config::OperatorConfig;
use crate::controller::context::Context;
use crate::metrics::Metrics;

pub use decide::{AuthorizationPlan, Decision, Writes};
pub use manifests::{ManifestError, Manifests, load};
pub use render::Format;

/// `plan` options.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Manifests the change applies: a file or a directory (read recursively for .yaml, .yml
    /// and .json). Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "DIR_OR_FILE"
    )]
    pub files: Vec<PathBuf>,
    /// The kubeconfig to use (default: `KUBECONFIG`, else `~/.kube/config`, else in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Output format: `text`, `markdown` (a pull-request comment) or `json`.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Plan as `kubectl apply --prune`, Argo CD or Flux with pruning would apply: an object of
    /// the cluster the manifests no longer contain is planned as deleted where the manifests
    /// hold others of its kind: an Authorization or Account in a namespace they hold one in, a
    /// ClusterAccount when they hold one. An account still in use is shown held by its
    /// `oauth.ghes.io/in-use` finalizer.
    #[arg(long)]
    pub prune: bool,
    /// The operator's configuration, as given to `run` (its namespaces, installation id and
    /// namespace; defaults as `run` takes them).
    #[command(flatten)]
    pub operator: crate::options::OperatorOptions,
}

/// The exit codes of `plan`, as `terraform plan -detailed-exitcode` has them.
pub mod exit {
    /// Nothing would change.
    pub const NO_CHANGE: u8 = 0;
    /// The plan could not be made, or the change holds a configuration error the controller
    /// would report.
    pub const ERROR: u8 = 1;
    /// Something would change.
    pub const CHANGES: u8 = 2;
}

/// A whole plan.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Each affected Authorization, by namespace and name.
    pub authorizations: Vec<AuthorizationPlan>,
    /// Each affected account's pruning under the new manifests.
    pub accounts: Vec<AccountPlan>,
    /// The GHES writes the change would cost once applied.
    pub writes: Writes,
    /// The GHES calls this plan made (GETs only).
    pub ghes_reads: u64,
    /// Documents of kinds a plan does not read.
    pub ignored_documents: usize,
}

impl Plan {
    /// Whether the controller would report a configuration error.
    pub fn has_errors(&self) -> bool {
        self.authorizations
            .iter()
            .any(|a| a.action == Decision::Error)
            || self.accounts.iter().any(|a| a.error.is_some())
    }

    /// Whether anything would change on GHES or in a Secret.
    pub fn has_changes(&self) -> bool {
        self.authorizations.iter().any(|a| {
            !matches!(
                a.action,
                Decision::Nothing | Decision::Suspended | Decision::Error
            )
        }) || self
            .accounts
            .iter()
            .any(|a| !a.new_deletions.is_empty() || a.deletion.is_some())
    }

    /// The exit code: 1 on a configuration error, 2 on changes, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.has_errors() {
            exit::ERROR
        } else if self.has_changes() {
            exit::CHANGES
        } else {
            exit::NO_CHANGE
        }
    }
}

/// What pruning would do for one account under the new manifests.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPlan {
    /// `Account ns/name` or `ClusterAccount name`.
    pub account: String,
    /// The GHES user and server.
    pub identity: String,
    /// `spec.prune.mode`.
    pub mode: String,
    /// What pruning would delete (DryRun: would list as candidates), described.
    pub candidates: Vec<String>,
    /// Candidates the change adds (deleted in Enabled mode): tokens it stops declaring.
    pub new_deletions: Vec<String>,
    /// What pruning keeps although nothing declares it, and why.
    pub kept: Vec<String>,
    /// Why pruning would refuse to run, or withholds tokens.
    pub refused: Option<String>,
    /// Tokens another installation of the operator made (never touched).
    pub foreign: usize,
    /// Why the account could not be planned (its credentials, GHES unreachable).
    pub error: Option<String>,
    /// The change deletes the account: when it goes, and what holds it until then.
    pub deletion: Option<String>,
}

/// Makes the plan, prints it to `out` and returns the exit code.
pub async fn execute(args: &PlanArgs, out: &mut dyn std::io::Write) -> anyhow::Result<u8> {
    let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
    let plan = make(args, client).await?;
    let text = render::render(&plan, args.output).map_err(anyhow::Error::msg)?;
    out.write_all(text.as_bytes())
        .map_err(|error| anyhow::anyhow!("cannot write the plan: {error}"))?;
    Ok(plan.exit_code())
}

/// Makes the plan through `client`.
pub async fn make(args: &PlanArgs, client: Client) -> anyhow::Result<Plan> {
    let default_namespace = client.default_namespace().to_owned();
    let manifests = manifests::load(&args.files, &default_namespace).map_err(anyhow::Error::msg)?;
    let config = OperatorConfig {
        instance: Some("plan".into()),
        ..args
            .operator
            .resolve(&client)
            .await
            .map_err(anyhow::Error::msg)?
    };
    let cluster = Cluster::read(&client, &config.namespaces).await?;
    let world = World::overlay(cluster, &manifests, args.prune);

    let metrics = Arc::new(Metrics::new());
    let ctx = Context::new(client, config, world.views(), metrics.clone());
    for secret in &manifests.secrets {
        ctx.caches.secrets.assume(secret.clone());
    }
    for namespace in &manifests.namespaces {
        ctx.caches.namespaces.assume(namespace);
    }
    let mut plan = decide::decide(&ctx, &world).await?;
    plan.ignored_documents = manifests.other;
    plan.ghes_reads = ghes_calls(&metrics);
    Ok(plan)
}

/// The resources as they are in the cluster.
struct Cluster {
    authorizations: Vec<Authorization>,
    accounts: Vec<Account>,
    cluster_accounts: Vec<ClusterAccount>,
}

impl Cluster {
    async fn read(client: &Client, namespaces: &[String]) -> anyhow::Result<Self> {
        let error = |what: &str, e: kube::Error| anyhow::anyhow!("cannot list {what}: {e}");
        let mut authorizations = Vec::new();
        let mut accounts = Vec::new();
        for scope in scopes(namespaces) {
            let a: Api<Authorization> = scoped_api(client, scope.as_deref());
            let b: Api<Account> = scoped_api(client, scope.as_deref());
            authorizations.extend(
                Pages::of(&a)
                    .all()
                    .await
                    .map_err(|e| error("Authorizations", e))?,
            );
            accounts.extend(
                Pages::of(&b)
                    .all()
                    .await
                    .map_err(|e| error("Accounts", e))?,
            );
        }
        let cluster_accounts = Pages::of(&Api::<ClusterAccount>::all(client.clone()))
            .all()
            .await
            .map_err(|e| error("ClusterAccounts", e))?;
        Ok(Self {
            authorizations,
            accounts,
            cluster_accounts,
        })
    }
}

/// The resources as they would be once the change is applied.
pub(crate) struct World {
    /// Every Authorization after the change, and whether the change touches it.
    pub(crate) authorizations: Vec<(Authorization, bool)>,
    /// Authorizations the change deletes (with --prune).
    pub(crate) deleted: Vec<Authorization>,
    /// Every Authorization as the cluster has it now.
    pub(crate) before: Vec<Authorization>,
    accounts: Vec<Account>,
    cluster_accounts: Vec<ClusterAccount>,
    /// Accounts the change touches.
    pub(crate) changed_accounts: HashSet<AccountKey>,
    /// Accounts the change deletes (with --prune).
    pub(crate) deleted_accounts: Vec<DeletedAccount>,
}

/// An account the change deletes.
pub(crate) struct DeletedAccount {
    pub(crate) key: AccountKey,
    /// It carries the in-use finalizer: it stays in the world, Terminating, until no
    /// Authorization that uses it still holds a token.
    pub(crate) held: bool,
}

fn object_key<K: ResourceExt>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// The object as applied over `live`: the manifest's spec, labels and annotations on the
/// live object's identity (uid, status, finalizers), as `kubectl apply` leaves it.
fn applied<K>(manifest: &K, live: Option<&K>) -> K
where
    K: ResourceExt + Clone,
{
    let mut object = manifest.clone();
    if let Some(live) = live {
        let meta = object.meta_mut();
        let old = live.meta();
        meta.uid = old.uid.clone();
        meta.creation_timestamp = old.creation_timestamp.clone();
        meta.finalizers = old.finalizers.clone();
        meta.generation = old.generation;
        meta.resource_version = old.resource_version.clone();
        let mut annotations = old.annotations.clone().unwrap_or_default();
        annotations.extend(meta.annotations.clone().unwrap_or_default());
        meta.annotations = Some(annotations);
    }
    object
}

impl World {
    fn overlay(cluster: Cluster, manifests: &Manifests, prune: bool) -> Self {
        let before = cluster.authorizations.clone();
        let mut live: HashMap<(String, String), Authorization> = cluster
            .authorizations
            .into_iter()
            .map(|a| (object_key(&a), a))
            .collect();
        let mut authorizations = Vec::new();
        for manifest in &manifests.authorizations {
            let old = live.remove(&object_key(manifest));
            let mut object = applied(manifest, old.as_ref());
            object.status = old.and_then(|old| old.status);
            authorizations.push((object, true));
        }
        // Where a pruning apply manages a kind: the namespaces the manifests hold one in.
        let namespaces: HashSet<String> = manifests
            .authorizations
            .iter()
            .map(|a| a.namespace().unwrap_or_default())
            .collect();
        let account_namespaces: HashSet<String> = manifests
            .accounts
            .iter()
            .map(|a| a.namespace().unwrap_or_default())
            .collect();
        let mut deleted = Vec::new();
        let mut rest: Vec<Authorization> = live.into_values().collect();
        rest.sort_by_key(object_key);
        for authorization in rest {
            if prune && namespaces.contains(&authorization.namespace().unwrap_or_default()) {
                deleted.push(authorization);
            } else {
                authorizations.push((authorization, false));
            }
        }
        let mut changed_accounts = HashSet::new();
        let mut deleted_accounts = Vec::new();
        let mut overlaid = |key: AccountKey, fate: Fate| {
            if let Fate::Deleted { held } = fate {
                deleted_accounts.push(DeletedAccount {
                    key: key.clone(),
                    held,
                });
            }
            changed_accounts.insert(key);
        };
        let accounts = overlay_accounts(
            cluster.accounts,
            &manifests.accounts,
            |a| prune && account_namespaces.contains(&a.namespace().unwrap_or_default()),
            |a, fate| overlaid(AccountKey::of(a), fate),
        );
        let cluster_accounts = overlay_accounts(
            cluster.cluster_accounts,
            &manifests.cluster_accounts,
            |_| prune && !manifests.cluster_accounts.is_empty(),
            |a, fate| overlaid(AccountKey::of(a), fate),
        );
        deleted_accounts.sort_by_key(|d| d.key.to_string());
        Self {
            authorizations,
            deleted,
            before,
            accounts,
            cluster_accounts,
            changed_accounts,
            deleted_accounts,
        }
    }

    /// Whether the change leaves `key` Terminating, held by its in-use finalizer.
    pub(crate) fn terminating(&self, key: &AccountKey) -> bool {
        self.deleted_accounts
            .iter()
            .any(|deleted| deleted.held && deleted.key == *key)
    }

    /// Stores of the accounts after the change, for the controller's own account resolution.
    fn views(&self) -> AccountViews {
        let mut accounts = Writer::<Account>::new(());
        let mut cluster_accounts = Writer::<ClusterAccount>::new(());
        fill(&mut accounts, &self.accounts);
        fill(&mut cluster_accounts, &self.cluster_accounts);
        let mut views = AccountViews::default();
        views.add(None, accounts.as_reader(), cluster_accounts.as_reader());
        views
    }

    /// The account objects after the change, by key.
    pub(crate) fn account_objects(&self) -> BTreeMap<String, AccountObjectRef<'_>> {
        let mut all = BTreeMap::new();
        for account in &self.accounts {
            all.insert(
                AccountKey::of(account).to_string(),
                AccountObjectRef::Account(account),
            );
        }
        for account in &self.cluster_accounts {
            all.insert(
                AccountKey::of(account).to_string(),
                AccountObjectRef::ClusterAccount(account),
            );
        }
        all
    }
}

/// An Account or a ClusterAccount after the change.
#[derive(Clone, Copy)]
pub(crate) enum AccountObjectRef<'a> {
    Account(&'a Account),
    ClusterAccount(&'a ClusterAccount),
}

/// What the change does to an account.
enum Fate {
    /// Applied from a manifest.
    Applied,
    /// Deleted; `held` when its in-use finalizer keeps it, Terminating.
    Deleted { held: bool },
}

/// The accounts after the change: each manifest applied over the live object, and a live
/// object the manifests no longer hold deleted where `pruned` says a pruning apply manages it.
/// One held by its in-use finalizer stays, with a deletion timestamp, as the API server keeps
/// it; any other is gone.
fn overlay_accounts<K>(
    live: Vec<K>,
    manifests: &[K],
    pruned: impl Fn(&K) -> bool,
    mut changed: impl FnMut(&K, Fate),
) -> Vec<K>
where
    K: ResourceExt + Clone + kube::core::object::HasStatus,
{
    let mut live: HashMap<(String, String), K> =
        live.into_iter().map(|a| (object_key(&a), a)).collect();
    let mut all = Vec::new();
    for manifest in manifests {
        let old = live.remove(&object_key(manifest));
        let mut object = applied(manifest, old.as_ref());
        // Status comes from the cluster, never from the file.
        *object.status_mut() = old.and_then(|mut old| old.status_mut().take());
        changed(&object, Fate::Applied);
        all.push(object);
    }
    for mut object in live.into_values() {
        if !pruned(&object) {
            all.push(object);
            continue;
        }
        let held = crate::controller::in_use::held(object.meta());
        changed(&object, Fate::Deleted { held });
        if held {
            object
                .meta_mut()
                .deletion_timestamp
                .get_or_insert_with(|| Time(jiff::Timestamp::now()));
            all.push(object);
        }
    }
    all
}

fn fill<K>(writer: &mut Writer<K>, objects: &[K])
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object.clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
}

/// The GHES calls counted by `metrics`, summed over operations and statuses.
fn ghes_calls(metrics: &Metrics) -> u64 {
    let Ok(text) = metrics.encode() else {
        return 0;
    };
    text.lines()
        .filter(|line| line.starts_with("ghes_oauth_operator_ghes_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next())
        .filter_map(|count| count.parse::<f64>().ok())
        .map(|count| count as u64)
        .sum()
}
