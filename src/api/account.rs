//! The `Account` (namespaced) and `ClusterAccount` (cluster-scoped) custom resources: who the
//! operator acts as, on which GHES server, and how it prunes what nothing declares.
//!
//! Both kinds share [`AccountSettings`] (flattened into their specs) and [`AccountStatus`]; they
//! differ only where the Secret with the credentials lives and which namespaces may use them.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::core::{ParseExpressionError, Selector, SelectorExt};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::authorization::AccountKind;
use super::duration::Duration;
use super::patterns::{
    API_URL, CLIENT_ID, DNS_LABEL, DNS_SUBDOMAIN, HTTPS_URL, PEM_CERTIFICATE, SECRET_KEY,
};

/// The most prune candidates listed in `status.prune.candidates`; `candidateCount` has the total.
/// Keeps the status far below the API server's object size limit.
pub const MAX_LISTED_PRUNE_CANDIDATES: usize = 100;

/// The shortest `syncInterval` the CRDs accept.
pub const MIN_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Spec of an Account: a GHES user in one namespace, usable by the Authorizations of that namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "oauth.ghes.io",
    version = "v1alpha1",
    kind = "Account",
    namespaced,
    status = "AccountStatus",
    shortname = "ghacct",
    category = "ghes",
    derive = "PartialEq",
    doc = "A GitHub Enterprise Server user that the operator acts as, on behalf of the Authorizations in this namespace. Its credentials come from a Secret in the same namespace."
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.caBundle) || !has(self.caBundleRef)", "message": "set caBundle or caBundleRef, not both"}
]))]
pub struct AccountSpec {
    /// Server, rate limits, sync interval and pruning.
    #[serde(flatten)]
    pub settings: AccountSettings,

    /// The Secret, in the Account's namespace, that holds the user's credentials.
    pub credentials_secret_ref: CredentialsSecretRef,
}

/// Spec of a ClusterAccount: a GHES user shared by the Authorizations of the namespaces it allows.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "oauth.ghes.io",
    version = "v1alpha1",
    kind = "ClusterAccount",
    status = "AccountStatus",
    shortname = "ghcacct",
    category = "ghes",
    derive = "PartialEq",
    doc = "A GitHub Enterprise Server user that the operator acts as, on behalf of the Authorizations in the namespaces that allowedNamespaces selects. Its credentials come from a Secret in the namespace that credentialsSecretRef names."
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.caBundle) || !has(self.caBundleRef)", "message": "set caBundle or caBundleRef, not both"}
]))]
pub struct ClusterAccountSpec {
    /// Server, rate limits, sync interval and pruning.
    #[serde(flatten)]
    pub settings: AccountSettings,

    /// The Secret that holds the user's credentials, and its namespace.
    pub credentials_secret_ref: ClusterCredentialsSecretRef,

    /// The namespaces whose Authorizations may use this ClusterAccount, as a label selector on
    /// namespaces. Absent: no namespace may (the safe default). `{}`: every namespace may. Example:
    /// `{matchLabels: {kubernetes.io/metadata.name: team-a}}` allows the namespace team-a only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<LabelSelector>,
}

/// The printer columns of Account and ClusterAccount (`kubectl get ghacct,ghcacct`), written once
/// for both; [`super::crds`] sets them on both CRDs.
pub fn printer_columns() -> Vec<CustomResourceColumnDefinition> {
    fn column(
        name: &str,
        type_: &str,
        json_path: &str,
        description: Option<&str>,
        priority: Option<i32>,
    ) -> CustomResourceColumnDefinition {
        CustomResourceColumnDefinition {
            name: name.to_owned(),
            type_: type_.to_owned(),
            json_path: json_path.to_owned(),
            description: description.map(str::to_owned),
            priority,
            format: None,
        }
    }
    vec![
        column(
            "Ready",
            "string",
            ".status.conditions[?(@.type==\"Ready\")].status",
            Some("Whether the operator can sign in with the account's credentials"),
            None,
        ),
        column(
            "Reason",
            "string",
            ".status.conditions[?(@.type==\"Ready\")].reason",
            Some("Why the account is or is not ready"),
            Some(1),
        ),
        column(
            "Server",
            "string",
            ".spec.server",
            Some("The GHES server"),
            None,
        ),
        column(
            "Login",
            "string",
            ".status.login",
            Some("The GHES login the credentials belong to"),
            None,
        ),
        column(
            "Authorizations",
            "integer",
            ".status.authorizationCount",
            Some("Authorizations of the user on GHES at the last sync"),
            None,
        ),
        column(
            "Prune-Mode",
            "string",
            ".spec.prune.mode",
            Some("Whether undeclared authorizations and grants are pruned"),
            None,
        ),
        column(
            "Suspended",
            "boolean",
            ".spec.suspend",
            Some("Whether the account is suspended (no GHES call for it or its Authorizations)"),
            Some(1),
        ),
        column(
            "Served-By",
            "string",
            ".status.servedBy",
            Some("The operator replica and shard that serve the account (run --shards)"),
            Some(1),
        ),
        column("Age", "date", ".metadata.creationTimestamp", None, None),
    ]
}

/// What an Account and a ClusterAccount have in common.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountSettings {
    /// The GHES server's base URL, such as `https://ghes.example.com` (https only, no path — GHES
    /// serves at the root of its host — and no `user:password@`: credentials belong in the
    /// credentials Secret). The REST API is reached at `<server>/api/v3` unless apiUrl says
    /// otherwise.
    #[schemars(pattern(HTTPS_URL), length(max = 2048))]
    pub server: String,

    /// The REST API root, overriding `<server>/api/v3`, such as `https://api.ghes.example.com`.
    /// `http://` only for a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`: test doubles);
    /// anywhere else the credentials would cross the network in clear. No `user:password@`.
    /// Default: `<server>/api/v3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(API_URL), length(max = 2048))]
    pub api_url: Option<String>,

    /// PEM-encoded CA certificates added to the system trust roots when talking to GHES, for a
    /// server whose certificate an internal CA issued. TLS is always verified. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(PEM_CERTIFICATE), length(max = 262144))]
    pub ca_bundle: Option<String>,

    /// Where to read PEM-encoded CA certificates instead of caBundle: a key of a ConfigMap or
    /// Secret in the namespace of the credentials Secret (an Account's own namespace). A change
    /// is picked up at the next reconcile. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_ref: Option<CaBundleRef>,

    /// Client-side limit on GHES requests per second made for this account, from 0.1 to 100.
    /// Default: 5.
    #[serde(default = "default_requests_per_second")]
    #[schemars(range(min = 0.1, max = 100.0))]
    pub requests_per_second: f64,

    /// How many requests may exceed requestsPerSecond in a short burst, from 1 to 100. Default: 10.
    #[serde(default = "default_burst")]
    // `format: int32`, not schemars' `uint32`, which the API server does not know.
    #[schemars(range(min = 1, max = 100), extend("format" = "int32"))]
    pub burst: u32,

    /// How often the account's authorizations and grants are listed on GHES to detect drift, as a
    /// Go duration such as `5m` or `1h`; at least `30s`. Changes to Kubernetes resources are acted
    /// on at once regardless. Default: `5m`.
    #[serde(default = "default_sync_interval")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('30s')", "message": "syncInterval must be at least 30s"}
    ]))]
    pub sync_interval: Duration,

    /// Removal of the authorizations and grants on GHES that no Authorization declares. Default:
    /// report them without deleting anything (mode DryRun).
    #[serde(default)]
    pub prune: PruneSpec,

    /// How long a deleted Authorization of this account keeps trying to revoke its token when
    /// GHES cannot be reached, as a Go duration such as `10m`, from `0s` to `24h`. After that
    /// its finalizer goes and the token is recorded as abandoned: an Event in the operator's
    /// namespace names it, and `ghes_oauth_operator_tokens_abandoned_total` counts it. Refused
    /// credentials and a missing account abandon at once. Meanwhile the account and its
    /// credentials Secret stay (finalizer `oauth.ghes.io/in-use`), so a namespace being deleted
    /// waits at most this long. Default: `10m`.
    #[serde(default = "default_revoke_timeout")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) <= duration('24h')", "message": "revokeTimeout must be at most 24h"}
    ]))]
    pub revoke_timeout: Duration,

    /// Pauses the account: while true, the operator makes no GHES call for it (no sync, no
    /// pruning) and suspends each of its Authorizations as if its own `suspend` were true.
    /// Deleting an Authorization still revokes its token. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

fn default_requests_per_second() -> f64 {
    5.0
}

fn default_burst() -> u32 {
    10
}

fn default_revoke_timeout() -> Duration {
    Duration::from_secs(10 * 60)
}

fn default_sync_interval() -> Duration {
    Duration::from_secs(5 * 60)
}

impl AccountSettings {
    /// The REST API root without a trailing slash: `apiUrl`, else `<server>/api/v3`.
    pub fn api_root(&self) -> String {
        match &self.api_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("{}/api/v3", self.server.trim_end_matches('/')),
        }
    }
}

/// The Secret, in the Account's own namespace, that holds a GHES user's credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[schemars(pattern(DNS_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,

    /// Key in the Secret's data that holds the GHES login. Default: `username`.
    #[serde(default = "default_username_key")]
    #[schemars(pattern(SECRET_KEY), length(min = 1, max = 253))]
    pub username_key: String,

    /// Key in the Secret's data that holds the password. Default: `password`.
    #[serde(default = "default_password_key")]
    #[schemars(pattern(SECRET_KEY), length(min = 1, max = 253))]
    pub password_key: String,

    /// Key in the Secret's data that holds the base32 TOTP seed of a user with two-factor
    /// authentication, from which the operator computes one-time codes. Default: `totpSecret`
    /// when the Secret has that key; otherwise none (the user has no two-factor authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(SECRET_KEY), length(min = 1, max = 253))]
    pub totp_secret_key: Option<String>,
}

/// A ConfigMap or Secret key holding PEM CA certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaBundleRef {
    /// `ConfigMap` or `Secret`. Default: `ConfigMap`.
    #[serde(default)]
    pub kind: CaBundleKind,

    /// Name of the ConfigMap or Secret.
    #[schemars(pattern(DNS_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,

    /// Key that holds the PEM certificates. Default: `ca.crt`.
    #[serde(default = "default_ca_key")]
    #[schemars(pattern(SECRET_KEY), length(min = 1, max = 253))]
    pub key: String,
}

/// What holds a CA bundle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CaBundleKind {
    /// A ConfigMap (CA certificates are public).
    #[default]
    ConfigMap,
    /// A Secret.
    Secret,
}

fn default_ca_key() -> String {
    "ca.crt".to_owned()
}

fn default_username_key() -> String {
    "username".to_owned()
}

fn default_password_key() -> String {
    "password".to_owned()
}

impl CredentialsSecretRef {
    /// A reference to the Secret of the given name with the default keys.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            username_key: default_username_key(),
            password_key: default_password_key(),
            totp_secret_key: None,
        }
    }
}

/// The Secret that holds a ClusterAccount's credentials, and its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCredentialsSecretRef {
    /// Namespace of the Secret: the operator's own namespace (`--cluster-resource-namespace`; with
    /// the Helm chart, the release namespace). ClusterAccount credentials are read from nowhere
    /// else, so that whoever may create a ClusterAccount cannot send another Secret of the
    /// cluster to a server of their choosing; another namespace leaves the account not Ready.
    #[schemars(pattern(DNS_LABEL), length(min = 1, max = 63))]
    pub namespace: String,

    /// Name and keys of the Secret.
    #[serde(flatten)]
    pub secret: CredentialsSecretRef,
}

/// How undeclared authorizations and grants are pruned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneSpec {
    /// `Disabled`: do not look for candidates. `DryRun`: report candidates in status, Events and
    /// metrics, delete nothing. `Enabled`: delete candidates, at most maxDeletionsPerRun per sync.
    /// Default: `DryRun`.
    #[serde(default)]
    pub mode: PruneMode,

    /// Prune the user's authorizations that no Authorization (current or previous token) claims.
    /// Default: true.
    #[serde(default = "default_true")]
    pub authorizations: bool,

    /// Prune the user's grants of OAuth apps that no Authorization uses (revoking a grant revokes
    /// every token of that app for the user). Default: true.
    #[serde(default = "default_true")]
    pub grants: bool,

    /// Authorizations and grants never pruned, whatever declares them. Default: none.
    #[serde(default)]
    pub keep: PruneKeep,

    /// Never prune an authorization or grant younger than this, as a Go duration such as `10m` or
    /// `24h`, counted on GHES's clock (the `Date` of its answers). Default: `10m`.
    #[serde(default = "default_min_age")]
    pub min_age: Duration,

    /// The most deletions in one sync when mode is Enabled, from 0 to 1000; the rest wait for the
    /// next sync. Default: 10.
    #[serde(default = "default_max_deletions_per_run")]
    #[schemars(range(max = 1000), extend("format" = "int32"))]
    pub max_deletions_per_run: u32,
}

impl Default for PruneSpec {
    fn default() -> Self {
        Self {
            mode: PruneMode::default(),
            authorizations: true,
            grants: true,
            keep: PruneKeep::default(),
            min_age: default_min_age(),
            max_deletions_per_run: default_max_deletions_per_run(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_min_age() -> Duration {
    Duration::from_secs(10 * 60)
}

fn default_max_deletions_per_run() -> u32 {
    10
}

/// Whether pruning looks for candidates, and whether it deletes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PruneMode {
    /// Do not look for candidates.
    Disabled,
    /// Report candidates; delete nothing.
    #[default]
    DryRun,
    /// Delete candidates.
    Enabled,
}

impl PruneMode {
    /// The wire form, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "Disabled",
            Self::DryRun => "DryRun",
            Self::Enabled => "Enabled",
        }
    }
}

impl std::fmt::Display for PruneMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Authorizations and grants that pruning never touches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneKeep {
    /// Keep the authorizations and grants of these OAuth apps (client IDs). Default: none.
    #[serde(default)]
    #[schemars(
        extend("x-kubernetes-list-type" = "set"),
        inner(pattern(CLIENT_ID), length(min = 1, max = 20))
    )]
    pub client_ids: Vec<String>,

    /// Keep the authorizations whose note starts with one of these prefixes. Default: none.
    #[serde(default)]
    #[schemars(
        extend("x-kubernetes-list-type" = "set"),
        inner(length(min = 1, max = 255))
    )]
    pub note_prefixes: Vec<String>,

    /// Keep the authorizations and grants with these GHES ids. Default: none.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub ids: Vec<i64>,
}

impl PruneKeep {
    /// Whether an authorization or grant with these attributes must be kept.
    pub fn keeps(&self, id: i64, client_id: Option<&str>, note: Option<&str>) -> bool {
        self.ids.contains(&id)
            || client_id.is_some_and(|c| self.client_ids.iter().any(|k| k == c))
            || note.is_some_and(|n| self.note_prefixes.iter().any(|p| n.starts_with(p.as_str())))
    }
}

/// Observed state of an Account or ClusterAccount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// Ready=True means the operator can sign in to GHES with the credentials. Reasons and
    /// messages say what to fix when it is False (for example InvalidCredentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The GHES login the credentials belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,

    /// How many authorizations the user had on GHES at the last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_count: Option<i64>,

    /// How many OAuth app grants the user had on GHES at the last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_count: Option<i64>,

    /// When the authorizations and grants were last listed on GHES (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// The outcome of the last prune run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneStatus>,

    /// Credentials GHES refused. They are never sent again (GHES locks an account out after
    /// repeated failures) — not after a restart, a leader change, an Account edit or a change of
    /// the credentials Secret's metadata — until the API root, username, password or two-factor
    /// seed changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_credentials: Option<RefusedCredentials>,

    /// The operator replica that reconciles this account and its Authorizations, and its
    /// shard (`pod-7c9f (shard 2 of 3)`), when the operator runs sharded (`run --shards`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

/// Credentials GHES refused, recorded so that they are not sent again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedCredentials {
    /// A keyed, salted and stretched hash (PBKDF2-HMAC-SHA256, salted with the account's uid) of
    /// the API root, username, password and two-factor seed: it tells whether they changed, and
    /// never contains them.
    pub fingerprint: String,
    /// What GHES answered (InvalidCredentials, OtpRequired, LoginLockedOut, ...).
    pub reason: String,
    /// When GHES refused them (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// The outcome of a prune run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneStatus {
    /// The prune mode of the run.
    #[serde(default)]
    pub mode: PruneMode,

    /// When the run happened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<Time>,

    /// How many candidates the run found (candidates lists at most 100 of them).
    #[serde(default)]
    pub candidate_count: i64,

    /// Authorizations and grants that nothing declares and nothing keeps: deleted by an Enabled
    /// run (up to maxDeletionsPerRun), reported only by a DryRun. At most 100 are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub candidates: Vec<PruneCandidate>,

    /// How many candidates the run deleted.
    #[serde(default)]
    pub deleted: i64,

    /// Why the run refused to prune, when it did: at all (an Authorization of the account's
    /// GHES user is being created, or no Authorization uses the user while GHES holds tokens
    /// the operator created), or some tokens (made by this installation for Authorizations in
    /// namespaces the operator does not watch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,

    /// How many of the user's tokens another installation of the operator made (another
    /// cluster, or another install with its own installation id). They are never candidates.
    #[serde(default)]
    pub foreign: i64,

    /// Candidates the run did not delete, and why (for example the deletion limit was reached, or
    /// GHES refused), and what the run protected (prune.keep, minAge, the account's own login).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub skipped: Vec<PruneSkip>,
}

/// What a prune candidate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PruneTarget {
    /// An OAuth authorization (a token).
    Authorization,
    /// An OAuth app grant (revoking it revokes every token of the app for the user).
    Grant,
}

/// An authorization or grant that nothing declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneCandidate {
    /// `Authorization` or `Grant`.
    pub kind: PruneTarget,

    /// The GHES id of the authorization or grant.
    pub id: i64,

    /// The client ID of its OAuth app, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,

    /// The name of its OAuth app, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,

    /// The authorization's note, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,

    /// When it was created on GHES (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
}

/// A prune candidate that was not deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneSkip {
    /// `Authorization` or `Grant`.
    pub kind: PruneTarget,

    /// The GHES id of the authorization or grant.
    pub id: i64,

    /// Why it was not deleted.
    pub reason: String,
}

impl ClusterAccountSpec {
    /// Whether Authorizations in a namespace with these labels may use this ClusterAccount.
    /// Absent allowedNamespaces allows none; `{}` allows all. Errors on a malformed selector.
    pub fn allows_namespace(
        &self,
        namespace_labels: &BTreeMap<String, String>,
    ) -> Result<bool, ParseExpressionError> {
        match &self.allowed_namespaces {
            None => Ok(false),
            Some(selector) => Ok(Selector::try_from(selector.clone())?.matches(namespace_labels)),
        }
    }
}

/// A GHES user on one server: (API root, login). Logins are case-insensitive on GHES.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GhesUser {
    api_root: String,
    login: String,
}

impl GhesUser {
    /// The identity of `login` on the server with API root `api_root`.
    pub fn new(api_root: &str, login: &str) -> Self {
        Self {
            api_root: normalize_root(api_root),
            login: login.to_ascii_lowercase(),
        }
    }

    /// Whether the server with API root `api_root` is this user's.
    pub fn is_on(&self, api_root: &str) -> bool {
        normalize_root(api_root) == self.api_root
    }

    /// Whether `login` names this user (logins are case-insensitive).
    pub fn is_login(&self, login: &str) -> bool {
        login.to_ascii_lowercase() == self.login
    }
}

impl std::fmt::Display for GhesUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.login, self.api_root)
    }
}

/// An API root as compared between accounts: scheme and host in lowercase, no trailing slash.
fn normalize_root(root: &str) -> String {
    match url::Url::parse(root) {
        Ok(url) => url.as_str().trim_end_matches('/').to_owned(),
        Err(_) => root.trim_end_matches('/').to_owned(),
    }
}

/// Identifies an account: kind, namespace (Accounts only) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountKey {
    /// `Account` or `ClusterAccount`.
    pub kind: AccountKind,
    /// Namespace of an Account; `None` for a ClusterAccount.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl AccountKey {
    /// The key of an account resource.
    pub fn of<A: AccountResource + kube::Resource>(account: &A) -> Self {
        Self {
            kind: A::KIND,
            namespace: account.meta().namespace.clone(),
            name: account.name_any(),
        }
    }

    /// The key of the account `authorization` names: an Account in its own namespace, or a
    /// ClusterAccount.
    pub fn referenced_by(authorization: &super::Authorization) -> Self {
        let reference = &authorization.spec.account_ref;
        Self {
            kind: reference.kind,
            namespace: (reference.kind == AccountKind::Account)
                .then(|| authorization.namespace())
                .flatten(),
            name: reference.name.clone(),
        }
    }
}

impl std::fmt::Display for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// What the controller needs from either kind of account.
pub trait AccountResource {
    /// Which kind this is.
    const KIND: AccountKind;

    /// Server, rate limits, sync interval and pruning.
    fn settings(&self) -> &AccountSettings;

    /// Name and keys of the credentials Secret.
    fn credentials_secret_ref(&self) -> &CredentialsSecretRef;

    /// Namespace of the credentials Secret (`None` only for an Account without a namespace, which
    /// the API server never returns).
    fn credentials_namespace(&self) -> Option<String>;

    /// The observed state, if any.
    fn account_status(&self) -> Option<&AccountStatus>;
}

impl AccountResource for Account {
    const KIND: AccountKind = AccountKind::Account;

    fn settings(&self) -> &AccountSettings {
        &self.spec.settings
    }

    fn credentials_secret_ref(&self) -> &CredentialsSecretRef {
        &self.spec.credentials_secret_ref
    }

    fn credentials_namespace(&self) -> Option<String> {
        self.namespace()
    }

    fn account_status(&self) -> Option<&AccountStatus> {
        self.status.as_ref()
    }
}

impl AccountResource for ClusterAccount {
    const KIND: AccountKind = AccountKind::ClusterAccount;

    fn settings(&self) -> &AccountSettings {
        &self.spec.settings
    }

    fn credentials_secret_ref(&self) -> &CredentialsSecretRef {
        &self.spec.credentials_secret_ref.secret
    }

    fn credentials_namespace(&self) -> Option<String> {
        Some(self.spec.credentials_secret_ref.namespace.clone())
    }

    fn account_status(&self) -> Option<&AccountStatus> {
        self.status.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_account_gets_every_default() {
        let spec: AccountSpec = serde_yaml::from_str(
            "server: https://ghes.example.com\ncredentialsSecretRef: {name: ghes-bot}\n",
        )
        .unwrap();
        let s = &spec.settings;
        assert_eq!(s.requests_per_second, 5.0);
        assert_eq!(s.burst, 10);
        assert_eq!(
            s.sync_interval.as_std(),
            std::time::Duration::from_secs(300)
        );
        assert_eq!(s.sync_interval.as_str(), "5m");
        assert_eq!(s.prune, PruneSpec::default());
        assert_eq!(s.prune.mode, PruneMode::DryRun);
        assert!(s.prune.authorizations && s.prune.grants);
        assert_eq!(s.prune.min_age.as_str(), "10m");
        assert_eq!(s.prune.max_deletions_per_run, 10);
        assert_eq!(
            spec.credentials_secret_ref,
            CredentialsSecretRef::named("ghes-bot")
        );
        assert_eq!(s.api_root(), "https://ghes.example.com/api/v3");
    }

    #[test]
    fn api_url_overrides_the_api_root() {
        let spec: AccountSpec = serde_yaml::from_str(
            "server: https://ghes.example.com/\napiUrl: http://127.0.0.1:8080/api/v3/\n\
             credentialsSecretRef: {name: bot}\n",
        )
        .unwrap();
        assert_eq!(spec.settings.api_root(), "http://127.0.0.1:8080/api/v3");
    }

    #[test]
    fn cluster_account_reads_credentials_from_the_named_namespace() {
        let spec: ClusterAccountSpec = serde_yaml::from_str(
            "server: https://ghes.example.com\n\
             credentialsSecretRef: {namespace: ops, name: bot, totpSecretKey: totp}\n",
        )
        .unwrap();
        let account = ClusterAccount::new("shared", spec);
        assert_eq!(account.credentials_namespace().as_deref(), Some("ops"));
        assert_eq!(account.credentials_secret_ref().name, "bot");
        assert_eq!(account.credentials_secret_ref().username_key, "username");
        assert_eq!(
            account.credentials_secret_ref().totp_secret_key.as_deref(),
            Some("totp")
        );
        assert_eq!(
            <ClusterAccount as AccountResource>::KIND,
            AccountKind::ClusterAccount
        );
    }

    #[test]
    fn cluster_account_without_credentials_namespace_is_refused() {
        let parsed: Result<ClusterAccountSpec, _> = serde_yaml::from_str(
            "server: https://ghes.example.com\ncredentialsSecretRef: {name: bot}\n",
        );
        assert!(parsed.is_err());
    }

    #[test]
    fn allowed_namespaces_absent_allows_none_and_empty_allows_all() {
        let mut spec: ClusterAccountSpec = serde_yaml::from_str(
            "server: https://ghes.example.com\ncredentialsSecretRef: {namespace: ops, name: bot}\n",
        )
        .unwrap();
        let team_a = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        assert!(!spec.allows_namespace(&team_a).unwrap());

        spec.allowed_namespaces = Some(LabelSelector::default());
        assert!(spec.allows_namespace(&team_a).unwrap());
        assert!(spec.allows_namespace(&BTreeMap::new()).unwrap());

        spec.allowed_namespaces = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("team".to_owned(), "b".to_owned())])),
            ..LabelSelector::default()
        });
        assert!(!spec.allows_namespace(&team_a).unwrap());
    }

    #[test]
    fn keep_matches_ids_client_ids_and_note_prefixes() {
        let keep = PruneKeep {
            client_ids: vec!["abc".into()],
            note_prefixes: vec!["manual/".into()],
            ids: vec![42],
        };
        assert!(keep.keeps(42, None, None));
        assert!(keep.keeps(1, Some("abc"), None));
        assert!(keep.keeps(1, None, Some("manual/laptop")));
        assert!(!keep.keeps(1, Some("xyz"), Some("team-a/bot")));
    }

    #[test]
    fn empty_status_serializes_as_an_empty_object() {
        assert_eq!(
            serde_json::to_string(&AccountStatus::default()).unwrap(),
            "{}"
        );
    }
}
