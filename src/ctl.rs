//! Commands for people, through their own kubeconfig (as `cmctl` is for cert-manager):
//! `status` shows what each Authorization holds and why it is not Ready, `rotate` asks for a
//! rotation through the `oauth.ghes.io/rotate` annotation and can wait for it, `suspend` and
//! `resume` set and clear `spec.suspend`, `check api`
//! tells when the operator is installed and leading (a Helm test hook).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::api::AccountKey;
use crate::api::{Authorization, ROTATE_ANNOTATION};
use crate::cluster::scoped_api;

/// How a command prints what it found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Which cluster, and which namespaces.
#[derive(Debug, Clone, clap::Args)]
pub struct Scope {
    /// The kubeconfig to use (default: `KUBECONFIG`, else `~/.kube/config`, else in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

impl Scope {
    async fn client(&self) -> anyhow::Result<Client> {
        crate::cluster::client(self.kubeconfig.as_deref()).await
    }

    /// The Authorization API of the chosen namespaces.
    fn authorizations(&self, client: &Client) -> Api<Authorization> {
        if self.all_namespaces {
            return Api::all(client.clone());
        }
        match &self.namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::default_namespaced(client.clone()),
        }
    }

    /// The Authorization `name`, or an error saying where it was looked for.
    async fn get(
        &self,
        client: &Client,
        api: &Api<Authorization>,
        name: &str,
    ) -> anyhow::Result<Authorization> {
        self.get_kind(client, api, "Authorization", true, name)
            .await
    }

    /// The `kind` object `name` (`namespaced`: in the chosen namespace), or an error saying
    /// where it was looked for.
    async fn get_kind<K>(
        &self,
        client: &Client,
        api: &Api<K>,
        kind: &str,
        namespaced: bool,
        name: &str,
    ) -> anyhow::Result<K>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        api.get_opt(name)
            .await
            .map_err(kube_error)?
            .ok_or_else(|| match namespaced {
                true => anyhow::anyhow!(
                    "{kind} {name:?} not found in namespace {:?}",
                    self.namespace_of(client)
                ),
                false => anyhow::anyhow!("{kind} {name:?} not found"),
            })
    }

    /// What a command acts on: each of `names` (which must exist), else the `kind` objects
    /// `selector` selects (every one without it); an error when nothing matches.
    async fn targets<K>(
        &self,
        client: &Client,
        api: &Api<K>,
        kind: &str,
        namespaced: bool,
        names: &[String],
        selector: Option<&str>,
    ) -> anyhow::Result<Vec<K>>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let targets = if names.is_empty() {
            let mut params = ListParams::default();
            if let Some(selector) = selector {
                params = params.labels(selector);
            }
            api.list(&params).await.map_err(kube_error)?.items
        } else {
            let mut found = Vec::new();
            for name in names {
                found.push(self.get_kind(client, api, kind, namespaced, name).await?);
            }
            found
        };
        if targets.is_empty() {
            return Err(anyhow::anyhow!("no {kind} matches"));
        }
        Ok(targets)
    }

    fn namespace_of<'a>(&'a self, client: &'a Client) -> &'a str {
        self.namespace
            .as_deref()
            .unwrap_or_else(|| client.default_namespace())
    }

    /// The namespace a listing looks in: `None` with `--all-namespaces`.
    fn listed_namespace<'a>(&'a self, client: &'a Client) -> Option<&'a str> {
        (!self.all_namespaces).then(|| self.namespace_of(client))
    }
}

/// `status` options.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    ghes-oauth-operator status -n team-a\n  \
    ghes-oauth-operator status -A -o json\n  \
    ghes-oauth-operator status ci-bot -n team-a -o yaml")]
pub struct StatusArgs {
    /// Only this Authorization.
    pub name: Option<String>,
    #[command(flatten)]
    pub scope: Scope,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `rotate` options.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    ghes-oauth-operator rotate ci-bot -n team-a --wait\n  \
    ghes-oauth-operator rotate -l team=a -n team-a\n  \
    ghes-oauth-operator rotate --all -A")]
pub struct RotateArgs {
    /// The Authorizations to rotate.
    #[arg(required_unless_present_any = ["selector", "all"])]
    pub names: Vec<String>,
    /// Rotate the Authorizations with these labels (a label selector such as `team=a`).
    #[arg(short = 'l', long, conflicts_with_all = ["names", "all"])]
    pub selector: Option<String>,
    /// Rotate every Authorization of the namespace (or of every namespace with -A).
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    #[command(flatten)]
    pub scope: Scope,
    /// Wait until each is Ready with its new token.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// `suspend` and `resume` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SuspendArgs {
    /// The resources (of --kind) to suspend or resume.
    #[arg(required_unless_present_any = ["selector", "all"])]
    pub names: Vec<String>,
    /// The resources with these labels (a label selector such as `team=a`).
    #[arg(short = 'l', long, conflicts_with_all = ["names", "all"])]
    pub selector: Option<String>,
    /// Every resource of the kind in the namespace (or in every namespace with -A).
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// The kind: an Account or ClusterAccount suspends (or resumes) all of its
    /// Authorizations, and itself makes no GHES call.
    #[arg(long, value_enum, default_value_t = SuspendKind::Authorization)]
    pub kind: SuspendKind,
    #[command(flatten)]
    pub scope: Scope,
}

/// What `suspend` and `resume` act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuspendKind {
    /// Authorizations.
    #[value(name = "Authorization", alias = "authorization")]
    Authorization,
    /// Accounts (namespaced).
    #[value(name = "Account", alias = "account")]
    Account,
    /// ClusterAccounts (cluster-scoped: the namespace options do not apply).
    #[value(name = "ClusterAccount", alias = "clusteraccount")]
    ClusterAccount,
}

/// Sets `spec.suspend` of the resources `args` names (`suspend`), or clears it (`resume`):
/// while it is true, the operator makes no GHES call and writes no Secret for them.
pub async fn set_suspend(
    args: &SuspendArgs,
    suspend: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    use kube::core::{ApiResource, DynamicObject};
    let client = args.scope.client().await?;
    let (resource, namespaced) = match args.kind {
        SuspendKind::Authorization => (ApiResource::erase::<Authorization>(&()), true),
        SuspendKind::Account => (ApiResource::erase::<crate::api::Account>(&()), true),
        SuspendKind::ClusterAccount => {
            (ApiResource::erase::<crate::api::ClusterAccount>(&()), false)
        }
    };
    let api: Api<DynamicObject> = if !namespaced || args.scope.all_namespaces {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), args.scope.namespace_of(&client), &resource)
    };
    let targets = args
        .scope
        .targets(
            &client,
            &api,
            &resource.kind,
            namespaced,
            &args.names,
            args.selector.as_deref(),
        )
        .await?;
    // `null` removes the field: resumed is the default.
    let value = if suspend {
        serde_json::Value::Bool(true)
    } else {
        serde_json::Value::Null
    };
    for target in &targets {
        let name = target.name_any();
        let shown = match target.namespace() {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name.clone(),
        };
        let was = target.data["spec"]["suspend"].as_bool() == Some(true);
        let api: Api<DynamicObject> = match target.namespace() {
            Some(namespace) => Api::namespaced_with(client.clone(), &namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let said = match (was, suspend) {
            (true, true) => "already suspended",
            (false, false) => "not suspended",
            (false, true) => "suspended (spec.suspend: true)",
            (true, false) => "resumed (spec.suspend removed)",
        };
        if was != suspend {
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"suspend": value}})),
            )
            .await
            .map_err(kube_error)?;
        }
        writeln!(out, "{} {shown}: {said}", resource.kind)
            .map_err(|error| anyhow::anyhow!("cannot write: {error}"))?;
    }
    Ok(())
}

/// `check` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CheckCommand {
    /// Exit 0 once the CRDs are served and the operator's leader Lease is held.
    #[command(after_help = "Examples:\n  \
        ghes-oauth-operator check api\n  \
        ghes-oauth-operator check api --wait 60 --lease-namespace ghes-system")]
    Api(CheckApiArgs),
}

/// `check api` options.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckApiArgs {
    /// The kubeconfig to use (default: `KUBECONFIG`, else `~/.kube/config`, else in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Keep checking for this many seconds before giving up (0: check once).
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// Namespace of the leader Lease (default: `POD_NAMESPACE`, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "ghes-oauth-operator")]
    pub lease_name: String,
    /// Check only the CRDs (an operator without leader election holds no Lease).
    #[arg(long)]
    pub skip_lease: bool,
}

/// One Authorization as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `True`, `False` or `Unknown` (`Unknown` also before any status).
    pub ready: String,
    /// The Ready condition's reason.
    pub reason: String,
    /// The Ready condition's message.
    pub message: String,
    /// `Kind/name` of the account.
    pub account: String,
    /// The scopes GHES reports (the requested ones before a token exists).
    pub scopes: Vec<String>,
    /// The last eight characters of the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_eight: Option<String>,
    /// When the token was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Timestamp>,
    /// When the next rotation is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<Timestamp>,
    /// The previous token of a rotation, still valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousRow>,
    /// The latest Warning Event about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_warning: Option<WarningRow>,
    /// The operator replica and shard serving its account (`run --shards`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

/// A rotation's previous token.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousRow {
    /// Its GHES id.
    pub authorization_id: i64,
    /// Its last eight characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_eight: Option<String>,
    /// When it is revoked (absent until the Secret switched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_after: Option<Timestamp>,
}

/// A Warning Event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningRow {
    /// Its reason.
    pub reason: String,
    /// Its note.
    pub message: String,
    /// When it last happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

/// The row of `authorization`, with the latest of `warnings` about it.
pub fn status_row(authorization: &Authorization, warnings: &[Event]) -> StatusRow {
    let status = authorization.status.clone().unwrap_or_default();
    let generation = authorization.metadata.generation;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let (ready, reason, message) = match ready {
        // A Ready of an older generation says nothing about this one.
        Some(ready) if ready.observed_generation == generation => (
            ready.status.clone(),
            ready.reason.clone(),
            ready.message.clone(),
        ),
        Some(_) => (
            "Unknown".into(),
            "Reconciling".into(),
            "the operator has not reconciled this generation yet".into(),
        ),
        None => (
            "Unknown".into(),
            String::new(),
            "no status yet: is the operator running?".into(),
        ),
    };
    let namespace = authorization.namespace().unwrap_or_default();
    let name = authorization.name_any();
    let latest_warning = warnings
        .iter()
        .filter(|event| {
            event.type_.as_deref() == Some("Warning")
                && event.regarding.as_ref().is_some_and(|regarding| {
                    regarding.kind.as_deref() == Some("Authorization")
                        && regarding.name.as_deref() == Some(name.as_str())
                        && regarding.namespace.as_deref() == Some(namespace.as_str())
                })
        })
        .map(|event| {
            let at = event
                .series
                .as_ref()
                .map(|series| series.last_observed_time.0)
                .or_else(|| event.event_time.as_ref().map(|t| t.0))
                .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
                .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0));
            WarningRow {
                reason: event.reason.clone().unwrap_or_default(),
                message: event.note.clone().unwrap_or_default(),
                at,
            }
        })
        .max_by_key(|warning| warning.at);
    let scopes = if status.scopes.is_empty() {
        authorization.spec.scopes.clone()
    } else {
        status.scopes.clone()
    };
    StatusRow {
        namespace,
        name,
        ready,
        reason,
        message,
        account: format!(
            "{}/{}",
            authorization.spec.account_ref.kind.as_str(),
            authorization.spec.account_ref.name
        ),
        scopes,
        last_eight: status.token_last_eight.clone(),
        issued_at: status.issued_at.as_ref().map(|t| t.0),
        next_rotation_at: status.next_rotation_at.as_ref().map(|t| t.0),
        previous: status.previous.as_ref().map(|previous| PreviousRow {
            authorization_id: previous.authorization_id,
            last_eight: previous.token_last_eight.clone(),
            revoke_after: previous.revoke_after.as_ref().map(|t| t.0),
        }),
        latest_warning,
        served_by: None,
    }
}

/// A duration as kubectl prints ages: `45s`, `12m`, `5h`, `3d`.
pub fn short_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// The `status` table of `rows`, as of `now`.
pub fn status_table(rows: &[StatusRow], all_namespaces: bool, now: Timestamp) -> String {
    let since = |at: Timestamp| short_duration(now.duration_since(at).as_secs());
    let until = |at: Timestamp| short_duration(at.duration_since(now).as_secs());
    let mut header = vec![
        "NAME",
        "READY",
        "REASON",
        "ACCOUNT",
        "SCOPES",
        "LAST-8",
        "AGE",
        "NEXT-ROTATION",
        "PREVIOUS",
        "LATEST-WARNING",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    // Only a sharded operator says which replica serves an account.
    let sharded = rows.iter().any(|row| row.served_by.is_some());
    if sharded {
        header.push("SERVED-BY");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                row.name.clone(),
                row.ready.clone(),
                row.reason.clone(),
                row.account.clone(),
                row.scopes.join(","),
                row.last_eight
                    .clone()
                    .map_or_else(|| "-".into(), |e| format!("…{e}")),
                row.issued_at.map_or_else(|| "-".into(), since),
                row.next_rotation_at
                    .map_or_else(|| "-".into(), |at| format!("in {}", until(at))),
                row.previous.as_ref().map_or_else(
                    || "-".into(),
                    |previous| {
                        let eight = previous.last_eight.clone().unwrap_or_default();
                        match previous.revoke_after {
                            Some(at) => format!("…{eight} (revoked in {})", until(at)),
                            None => format!("…{eight} (switching)"),
                        }
                    },
                ),
                row.latest_warning.as_ref().map_or_else(
                    || "-".into(),
                    |warning| {
                        let mut message: String = warning.message.chars().take(60).collect();
                        if warning.message.chars().count() > 60 {
                            message.push('…');
                        }
                        format!("{}: {message}", warning.reason)
                    },
                ),
            ];
            if all_namespaces {
                cells.insert(0, row.namespace.clone());
            }
            if sharded {
                cells.push(row.served_by.clone().unwrap_or_else(|| "-".into()));
            }
            cells
        })
        .collect();
    crate::table::render(&header, &cells)
}

fn print(
    output: Output,
    value: &impl Serialize,
    table: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    match output {
        Output::Table => Ok(table()),
        Output::Json => serde_json::to_string_pretty(value)
            .map(|text| format!("{text}\n"))
            .map_err(anyhow::Error::msg),
        Output::Yaml => serde_yaml::to_string(value).map_err(anyhow::Error::msg),
    }
}

/// `status`: what was found, formatted.
pub async fn status(args: &StatusArgs) -> anyhow::Result<String> {
    let client = args.scope.client().await?;
    let api = args.scope.authorizations(&client);
    let authorizations = match &args.name {
        Some(name) => vec![args.scope.get(&client, &api, name).await?],
        None => {
            api.list(&ListParams::default())
                .await
                .map_err(kube_error)?
                .items
        }
    };
    let events: Api<Event> = scoped_api(&client, args.scope.listed_namespace(&client));
    // Events may be unreadable to this user; the table is still worth showing.
    let warnings = events
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let served_by = served_by(&client, &args.scope).await;
    let mut rows: Vec<StatusRow> = authorizations
        .iter()
        .map(|authorization| {
            let mut row = status_row(authorization, &warnings);
            row.served_by = served_by
                .get(&AccountKey::referenced_by(authorization))
                .cloned();
            row
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    if rows.is_empty() && args.output == Output::Table {
        return Ok("No Authorizations found.\n".into());
    }
    print(args.output, &rows, || {
        status_table(&rows, args.scope.all_namespaces, Timestamp::now())
    })
}

/// Which replica serves each account, as the accounts report it (`status.servedBy`, sharded
/// operators only). Best effort: accounts this user may not list are left out.
async fn served_by(client: &Client, scope: &Scope) -> HashMap<AccountKey, String> {
    let mut served = HashMap::new();
    served_by_of::<crate::api::Account>(
        scoped_api(client, scope.listed_namespace(client)),
        &mut served,
    )
    .await;
    served_by_of::<crate::api::ClusterAccount>(Api::all(client.clone()), &mut served).await;
    served
}

/// Adds what the accounts of `api` report serving them.
async fn served_by_of<A>(api: Api<A>, served: &mut HashMap<AccountKey, String>)
where
    A: crate::api::AccountResource
        + kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if let Ok(list) = api.list(&ListParams::default()).await {
        for account in list.items {
            if let Some(by) = account.account_status().and_then(|s| s.served_by.clone()) {
                served.insert(AccountKey::of(&account), by);
            }
        }
    }
}

/// `rotate`: asks for a rotation of each target, and with `--wait` waits for each.
pub async fn rotate(args: &RotateArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let client = args.scope.client().await?;
    let api = args.scope.authorizations(&client);
    let targets = args
        .scope
        .targets(
            &client,
            &api,
            "Authorization",
            true,
            &args.names,
            args.selector.as_deref(),
        )
        .await?;
    let value = Timestamp::now().to_string();
    let write = |out: &mut dyn std::io::Write, line: String| {
        writeln!(out, "{line}").map_err(|error| anyhow::anyhow!("cannot write: {error}"))
    };
    let mut asked = Vec::new();
    for authorization in &targets {
        let namespace = authorization.namespace().unwrap_or_default();
        let name = authorization.name_any();
        let before = authorization
            .status
            .as_ref()
            .and_then(|status| status.fingerprint.clone());
        Api::<Authorization>::namespaced(client.clone(), &namespace)
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({
                    "metadata": {"annotations": {ROTATE_ANNOTATION: value}}
                })),
            )
            .await
            .map_err(kube_error)?;
        write(
            out,
            format!("{namespace}/{name}: rotation requested ({ROTATE_ANNOTATION}={value})"),
        )?;
        asked.push((namespace, name, before));
    }
    if !args.wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    for (namespace, name, before) in asked {
        let api = Api::<Authorization>::namespaced(client.clone(), &namespace);
        loop {
            let current = api.get_opt(&name).await.map_err(kube_error)?;
            let Some(current) = current else {
                return Err(anyhow::anyhow!(
                    "{namespace}/{name} was deleted while rotating"
                ));
            };
            let status = current.status.clone().unwrap_or_default();
            let ready = status.conditions.iter().any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && c.observed_generation == current.metadata.generation
            });
            let rotated = status.rotate_request.as_deref() == Some(value.as_str())
                && status.fingerprint != before
                && status.authorization_id.is_some();
            if ready && rotated {
                write(
                    out,
                    format!(
                        "{namespace}/{name}: rotated, the Secret holds token …{}",
                        status.token_last_eight.unwrap_or_default()
                    ),
                )?;
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let row = status_row(&current, &[]);
                return Err(anyhow::anyhow!(
                    "{namespace}/{name}: not rotated after {}s (Ready={} {}: {})",
                    args.timeout,
                    row.ready,
                    row.reason,
                    row.message
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// `check api`: Ok once the CRDs are served and (unless skipped) the Lease is held; the
/// error says what is missing.
pub async fn check_api(args: &CheckApiArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let scope = Scope {
        kubeconfig: args.kubeconfig.clone(),
        namespace: None,
        all_namespaces: false,
    };
    let client = scope.client().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    loop {
        match check_once(&client, args).await {
            Ok(lines) => {
                for line in lines {
                    writeln!(out, "{line}")
                        .map_err(|error| anyhow::anyhow!("cannot write: {error}"))?;
                }
                return Ok(());
            }
            Err(problem) if tokio::time::Instant::now() >= deadline => return Err(problem),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

async fn check_once(client: &Client, args: &CheckApiArgs) -> anyhow::Result<Vec<String>> {
    let group = format!("{}/{}", crate::api::GROUP, crate::api::VERSION);
    let served = client
        .list_api_group_resources(&group)
        .await
        .map_err(|error| anyhow::anyhow!("the CRDs are not served ({group}): {error}"))?;
    let names: BTreeMap<&str, ()> = served
        .resources
        .iter()
        .map(|resource| (resource.name.as_str(), ()))
        .collect();
    for wanted in ["authorizations", "accounts", "clusteraccounts"] {
        if !names.contains_key(wanted) {
            return Err(anyhow::anyhow!(
                "the CRD {wanted}.{} is not served",
                crate::api::GROUP
            ));
        }
    }
    let mut lines = vec![format!(
        "CRDs served: {group} authorizations, accounts, clusteraccounts"
    )];
    if args.skip_lease {
        return Ok(lines);
    }
    let namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let lease = Api::<Lease>::namespaced(client.clone(), &namespace)
        .get_opt(&args.lease_name)
        .await
        .map_err(kube_error)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no Lease {namespace}/{}: the operator has not started (or runs without \
                 leader election: use --skip-lease)",
                args.lease_name
            )
        })?;
    let spec = lease.spec.unwrap_or_default();
    let holder = spec.holder_identity.filter(|holder| !holder.is_empty());
    let expires = spec.renew_time.as_ref().and_then(|renewed| {
        renewed
            .0
            .checked_add(Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            ))
            .ok()
    });
    match (holder, expires) {
        (Some(holder), Some(expires)) if expires > Timestamp::now() => {
            lines.push(format!(
                "Lease {namespace}/{} held by {holder}",
                args.lease_name
            ));
            Ok(lines)
        }
        (Some(holder), _) => Err(anyhow::anyhow!(
            "Lease {namespace}/{} of {holder} has expired: no replica leads",
            args.lease_name
        )),
        (None, _) => Err(anyhow::anyhow!(
            "Lease {namespace}/{} is held by nobody",
            args.lease_name
        )),
    }
}

fn kube_error(error: kube::Error) -> anyhow::Error {
    anyhow::anyhow!("Kubernetes API: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, ready: &str, reason: &str, scopes: &str, eight: Option<&str>) -> StatusRow {
        StatusRow {
            namespace: "team-a".into(),
            name: name.into(),
            ready: ready.into(),
            reason: reason.into(),
            message: String::new(),
            account: "Account/ghes-bot".into(),
            scopes: scopes.split(',').map(str::to_owned).collect(),
            last_eight: eight.map(str::to_owned),
            issued_at: None,
            next_rotation_at: None,
            previous: None,
            latest_warning: None,
            served_by: None,
        }
    }

    #[test]
    fn a_served_by_column_appears_only_when_an_account_reports_one() {
        let now: Timestamp = "2026-11-30T12:00:00Z".parse().expect("time");
        let plain = status_table(&[row("ci", "True", "TokenReady", "repo", None)], false, now);
        assert!(!plain.contains("SERVED-BY"), "{plain}");
        let mut served = row("ci", "True", "TokenReady", "repo", None);
        served.served_by = Some("op-1 (shard 2 of 3)".into());
        let other = row("cd", "True", "TokenReady", "repo", None);
        let table = status_table(&[served, other], false, now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].trim_end().ends_with("SERVED-BY"), "{table}");
        assert!(
            lines[1].trim_end().ends_with("op-1 (shard 2 of 3)"),
            "{table}"
        );
        assert!(lines[2].trim_end().ends_with(" -"), "{table}");
    }

    #[test]
    fn the_table_shows_token_rotation_and_the_latest_warning() {
        let now: Timestamp = "2026-11-30T12:00:00Z".parse().expect("time");
        let mut ci = row(
            "ci-bot",
            "True",
            "TokenReady",
            "read:org,repo",
            Some("LRpG71rt"),
        );
        ci.issued_at = Some("2026-11-18T09:00:00Z".parse().expect("time"));
        let mut publish = row(
            "publish-bot",
            "True",
            "TokenReady",
            "repo",
            Some("Wzx1BFhx"),
        );
        publish.issued_at = Some("2026-11-30T11:58:00Z".parse().expect("time"));
        publish.next_rotation_at = Some("2026-12-30T11:58:00Z".parse().expect("time"));
        publish.previous = Some(PreviousRow {
            authorization_id: 3,
            last_eight: Some("jetByc9j".into()),
            revoke_after: Some("2026-11-30T12:58:00Z".parse().expect("time")),
        });
        let mut release = row(
            "release-bot",
            "False",
            "AccountNotReady",
            "gist,read:user",
            None,
        );
        release.latest_warning = Some(WarningRow {
            reason: "AccountNotReady".into(),
            message: "spec.accountRef: Account \"ghes-bot\" is not ready (CredentialsRefused): \
                      GHES refused the password"
                .into(),
            at: None,
        });
        let table = status_table(&[ci, publish, release], false, now);
        assert_eq!(
            table,
            "NAME         READY  REASON           ACCOUNT           SCOPES          LAST-8     AGE  NEXT-ROTATION  PREVIOUS                    LATEST-WARNING\n\
             ci-bot       True   TokenReady       Account/ghes-bot  read:org,repo   …LRpG71rt  12d  -              -                           -\n\
             publish-bot  True   TokenReady       Account/ghes-bot  repo            …Wzx1BFhx  2m   in 29d         …jetByc9j (revoked in 58m)  -\n\
             release-bot  False  AccountNotReady  Account/ghes-bot  gist,read:user  -          -    -              -                           AccountNotReady: spec.accountRef: Account \"ghes-bot\" is not ready (Credential…\n"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(short_duration(-3), "0s");
        assert_eq!(short_duration(45), "45s");
        assert_eq!(short_duration(600), "10m");
        assert_eq!(short_duration(5 * 3600), "5h");
        assert_eq!(short_duration(3 * 86_400), "3d");
    }
}
