//! The `Authorization` custom resource: one desired GHES OAuth token, the account that owns it, and
//! the Secret it is written to.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::labels::MANAGED_BY;
use super::patterns::{CLIENT_ID, DNS_SUBDOMAIN, HTTP_URL, SCOPE, SECRET_KEY};

/// Spec of an Authorization: one OAuth token on a GitHub Enterprise Server, issued for the user of
/// an Account or ClusterAccount and kept in a Secret in this namespace.
// Clippy reads the repeated `type_ = "string"` of the printer columns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "oauth.ghes.io",
    version = "v1alpha1",
    kind = "Authorization",
    namespaced,
    status = "AuthorizationStatus",
    shortname = "ghauth",
    category = "ghes",
    derive = "PartialEq",
    doc = "An OAuth token on a GitHub Enterprise Server, issued for the user of an Account or ClusterAccount, written to a Secret in the same namespace, kept in line with this spec and rotated on schedule.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the Secret holds a live token matching the spec"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the Authorization is or is not ready",
        priority = 1
    ),
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".spec.accountRef.name",
        description = "The Account or ClusterAccount whose user owns the token"
    ),
    printcolumn(
        name = "Scopes",
        type_ = "string",
        json_path = ".spec.scopes",
        description = "The OAuth scopes requested"
    ),
    printcolumn(
        name = "Last-8",
        type_ = "string",
        json_path = ".status.tokenLastEight",
        description = "The last eight characters of the current token"
    ),
    printcolumn(
        name = "Next-Rotation",
        type_ = "string",
        json_path = ".status.nextRotationAt",
        description = "When the token is next rotated"
    ),
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".status.expiresAt",
        description = "When GHES expires the current token",
        priority = 1
    ),
    printcolumn(
        name = "Suspended",
        type_ = "boolean",
        json_path = ".spec.suspend",
        description = "Whether the Authorization is suspended (no GHES call, no Secret write)",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.app) == has(oldSelf.app)",
        "message": "spec.app cannot be added or removed: a personal token and an OAuth app's token are different authorizations; create a new Authorization instead"
    },
    {
        "rule": "(has(self.managementPolicy) && self.managementPolicy == 'Observe') == has(self.observe)",
        "message": "spec.observe names the authorization to observe: set it with managementPolicy Observe, and only then"
    }
]))]
pub struct AuthorizationSpec {
    /// The Account (in this namespace) or ClusterAccount whose GHES user owns the token. Immutable:
    /// to move a token to another account, create a new Authorization.
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self == oldSelf",
            "message": "accountRef is immutable: the token belongs to that account's user; create a new Authorization to use another account"
        }
    ]))]
    pub account_ref: AccountRef,

    /// The OAuth app to issue the token for. Absent: a personal token of the account's user. Cannot
    /// be added or removed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Box<OAuthApp>>,

    /// The OAuth scopes of the token, such as `repo`, `read:org` or `admin:repo_hook`. GHES
    /// normalizes scopes (implied scopes, order), so they are compared as sets. A name that is
    /// not a GHES classic scope is refused before any GHES call (Ready=False, InvalidSpec).
    /// Default: none (a token that can read public information only).
    #[serde(default)]
    #[schemars(
        extend("x-kubernetes-list-type" = "set"),
        length(max = 64),
        inner(pattern(SCOPE), length(max = 64))
    )]
    pub scopes: Vec<String>,

    /// A note that tells the token's purpose on GHES, at most 255 characters. Default:
    /// `<namespace>/<name>` of this Authorization. GHES requires notes of personal tokens to be
    /// unique per user. A rotated token's note ends in ` (rotation N)`, so that it differs from
    /// the note of the token it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub note: Option<String>,

    /// A URL that tells more about the token's purpose (`http://` or `https://`), at most 2048
    /// characters. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(HTTP_URL), length(max = 2048))]
    pub note_url: Option<String>,

    /// Where the token is written: a Secret in this namespace, created and owned by the operator.
    /// Default: a Secret named like this Authorization, with the token under the key `token`.
    #[serde(default)]
    pub secret: TokenSecret,

    /// When to replace the token with a new one. Default: never (rotate on demand by changing the
    /// `oauth.ghes.io/rotate` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Box<Rotation>>,

    /// What happens on GHES when this Authorization is deleted: `Delete` revokes the token (and a
    /// previous one still in its grace period); `Orphan` leaves it on GHES. The Secret is deleted
    /// either way. Default: `Delete`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Manage` (the default): the operator issues, updates, rotates and revokes the token.
    /// `Observe`: it binds to the existing authorization that `observe` names and reports it in
    /// status — never a write to GHES, no Secret (GHES does not hand out an existing token), never
    /// pruned, not revoked on deletion.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// The existing authorization to observe (with managementPolicy Observe only): by GHES id or
    /// by fingerprint, exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observe: Option<Box<ObserveTarget>>,

    /// Pauses the Authorization: while true, the operator makes no GHES call for it and does not
    /// write its Secret — no issue, update, rotation or repair; the token last issued stays live
    /// and in its Secret (a previous token in its grace period is revoked once resumed).
    /// Ready=False with reason `Suspended` says so. Changes made meanwhile (scopes, a rotation
    /// asked for, a rotation due) are carried out once it is false again. Deleting it still
    /// revokes its token (deletionPolicy `Delete`). Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// Whether the operator manages the token or only observes an existing one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Issue, update, rotate and revoke the token.
    #[default]
    Manage,
    /// Report an existing authorization; never write to GHES.
    Observe,
}

/// The existing authorization an Observe Authorization binds to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.id) != has(self.fingerprint)",
        "message": "observe names an authorization by id or by fingerprint, exactly one"
    }
]))]
pub struct ObserveTarget {
    /// The GHES id of the authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub id: Option<i64>,

    /// The fingerprint the authorization carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub fingerprint: Option<String>,
}

/// A reference to the Account or ClusterAccount that owns a token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// `Account` (in the Authorization's namespace) or `ClusterAccount` (cluster-scoped; it must
    /// allow this namespace in its allowedNamespaces). Default: `Account`.
    #[serde(default)]
    pub kind: AccountKind,

    /// Name of the Account or ClusterAccount.
    #[schemars(pattern(DNS_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,
}

impl AccountRef {
    /// A reference to the `Account` of the given name.
    pub fn account(name: impl Into<String>) -> Self {
        Self {
            kind: AccountKind::Account,
            name: name.into(),
        }
    }

    /// A reference to the `ClusterAccount` of the given name.
    pub fn cluster_account(name: impl Into<String>) -> Self {
        Self {
            kind: AccountKind::ClusterAccount,
            name: name.into(),
        }
    }
}

/// The two kinds of account an Authorization can reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AccountKind {
    /// A namespaced `Account`, usable from its own namespace only.
    #[default]
    Account,
    /// A cluster-scoped `ClusterAccount`, usable from the namespaces it allows.
    ClusterAccount,
}

impl AccountKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "Account",
            Self::ClusterAccount => "ClusterAccount",
        }
    }
}

impl std::fmt::Display for AccountKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OAuth app a token is issued for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthApp {
    /// The app's client ID, as shown on its settings page on GHES (at most 20 characters:
    /// letters, digits, `.`, `_`, `-`). Immutable: create a new Authorization for another app.
    #[schemars(
        pattern(CLIENT_ID),
        length(min = 1, max = 20),
        extend("x-kubernetes-validations" = [
            {
                "rule": "self == oldSelf",
                "message": "app.clientId is immutable: a token belongs to one app; create a new Authorization for another app"
            }
        ])
    )]
    pub client_id: String,

    /// The Secret (in the Authorization's namespace) that holds the app's client secret.
    pub client_secret_ref: ClientSecretRef,
}

/// A key of a Secret in the Authorization's namespace that holds an OAuth app's client secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretRef {
    /// Name of the Secret.
    #[schemars(pattern(DNS_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,

    /// Key in the Secret's data that holds the client secret. Default: `clientSecret`.
    #[serde(default = "default_client_secret_key")]
    #[schemars(pattern(SECRET_KEY), length(min = 1, max = 253))]
    pub key: String,
}

/// The Secret the token is written to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecret {
    /// Name of the Secret, in the Authorization's namespace. Default: the Authorization's name. The
    /// operator never takes over a Secret it did not create (Ready=False, reason SecretConflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DNS_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: Option<String>,

    /// Key in the Secret's data that holds the token. Default: `token`. Not used when
    /// `template` is set.
    #[serde(default = "default_token_key")]
    #[schemars(pattern(SECRET_KEY), length(min = 1, max = 253))]
    pub key: String,

    /// Labels added to the Secret. The operator sets `app.kubernetes.io/managed-by` itself, so
    /// that key is not allowed here. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "!('app.kubernetes.io/managed-by' in self)",
            "message": "the operator sets the app.kubernetes.io/managed-by label itself; remove it from secret.labels"
        }
    ]))]
    pub labels: BTreeMap<String, String>,

    /// Annotations added to the Secret. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// The Secret's type and data rendered from templates, for consumers that need more than
    /// the bare token (basic-auth repository credentials, a docker config, a .netrc line).
    /// Default: an `Opaque` Secret with the token under `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
}

impl Default for TokenSecret {
    fn default() -> Self {
        Self {
            name: None,
            key: default_token_key(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            template: None,
        }
    }
}

/// A Secret shaped for its consumer. Each data value is a MiniJinja (Jinja2) template with the
/// variables `token`, `login`, `server` (the account's GHES address), `host` (its host name),
/// `scopes` (a list), `authorizationId` and `expiresAt` (RFC 3339, empty when the token does not
/// expire), and the filter `b64encode`; templates read no files and no environment. An
/// unknown variable or a template error is a configuration error checked before any GHES call.
/// Changing the template (or a variable it uses other than the token) rotates the token: the
/// operator keeps the token nowhere but in the Secret, so a new rendering needs a new token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'kubernetes.io/basic-auth' || 'username' in self.data || 'password' in self.data",
        "message": "a kubernetes.io/basic-auth Secret needs a username or password entry in template.data"
    },
    {
        "rule": "self.type != 'kubernetes.io/dockerconfigjson' || '.dockerconfigjson' in self.data",
        "message": "a kubernetes.io/dockerconfigjson Secret needs a .dockerconfigjson entry in template.data"
    },
    {
        "rule": "self.data.all(key, key.size() <= 253 && key.matches('^[-._a-zA-Z0-9]+$'))",
        "message": "template.data keys must be Secret keys: letters, digits, '-', '_' and '.', at most 253 characters"
    }
]))]
pub struct SecretTemplate {
    /// The Secret's type. Default: `Opaque`.
    #[serde(default, rename = "type")]
    pub type_: SecretType,

    /// The Secret's data: key → template. At least one entry, at most 16; each template at
    /// most 4096 characters.
    #[schemars(extend("minProperties" = 1, "maxProperties" = 16))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 4096}))]
    pub data: BTreeMap<String, String>,
}

/// The Secret types a template can produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SecretType {
    /// Any keys.
    #[default]
    Opaque,
    /// `username` and/or `password` (Flux GitRepository, Argo CD repository credentials).
    #[serde(rename = "kubernetes.io/basic-auth")]
    BasicAuth,
    /// A `.dockerconfigjson` entry (image pull Secrets for the GHES container registry).
    #[serde(rename = "kubernetes.io/dockerconfigjson")]
    DockerConfigJson,
}

impl SecretType {
    /// The value of a Secret's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "Opaque",
            Self::BasicAuth => "kubernetes.io/basic-auth",
            Self::DockerConfigJson => "kubernetes.io/dockerconfigjson",
        }
    }
}

impl TokenSecret {
    /// The Secret's name: `name` when set, else the Authorization's name.
    pub fn name_or<'a>(&'a self, resource_name: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(resource_name)
    }

    /// The labels to put on the Secret: the user's, plus the operator's `managed-by` label (which
    /// wins, so the operator's Secret watch always finds its Secrets).
    pub fn labels_with_managed_by(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(
            MANAGED_BY.to_owned(),
            super::labels::MANAGED_BY_VALUE.to_owned(),
        );
        labels
    }
}

/// When a token is replaced with a new one. Each field is optional; the earliest trigger wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.gracePeriod) || !has(self.period) || duration(self.gracePeriod) < duration(self.period)",
        "message": "rotation.gracePeriod must be shorter than rotation.period"
    }
]))]
pub struct Rotation {
    /// Rotate the token this long after it was issued, as a Go duration such as `720h` or `168h`;
    /// must be greater than zero. Default: no periodic rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s')", "message": "rotation.period must be greater than zero"}
    ]))]
    pub period: Option<Duration>,

    /// How long the previous token stays valid after a rotation, so that its consumers can pick up
    /// the new one, as a Go duration such as `1h`; must be shorter than period. Default: `0s`
    /// (revoked as soon as the Secret holds the new token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,

    /// For tokens that GHES expires: rotate this long before the expiry, as a Go duration such as
    /// `24h`. Default: `24h`, or half the token's lifetime when that is shorter (this applies even
    /// when rotation is absent, so an expiring token is always replaced in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before_expiry: Option<Duration>,

    /// Workloads in this namespace to restart once the Secret holds the new token (before the
    /// previous one is revoked), by setting the `oauth.ghes.io/restartedAt` annotation of their
    /// pod template, as `kubectl rollout restart` does. A target that does not exist gets a
    /// Warning Event; the rotation goes on. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub restart_targets: Vec<RestartTarget>,

    /// How long the previous token waits, once restartTargets were restarted, for their
    /// rollouts to finish (as `kubectl rollout status` judges them: every pod of the new
    /// template updated and available) before it is revoked anyway, with a `RolloutTimeout`
    /// Warning Event, as a Go duration of at most `24h`. The previous token is revoked at the
    /// later of revokeAfter and the rollouts' end. Default: `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) <= duration('24h')", "message": "rotation.rolloutTimeout must be at most 24h"}
    ]))]
    pub rollout_timeout: Option<Duration>,

    /// When scheduled rotations may happen: days of the week and hours, in a time zone. A
    /// rotation that period makes due waits for the next window. One that an expiry makes due
    /// waits only for a window that opens at least half of its renewal window (renewBeforeExpiry,
    /// at most half the token's lifetime) before the token expires; otherwise the expiry wins
    /// and it happens outside the windows. The rotate
    /// annotation acts at once. status.nextRotationAt and nextRotationReason show the outcome.
    /// Default: any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Box<super::windows::RotationWindows>>,
}

/// A workload that reads the token and is restarted after a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartTarget {
    /// The kind of workload.
    pub kind: RestartKind,
    /// Its name, in the Authorization's namespace.
    #[schemars(pattern(DNS_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,
}

/// The kinds of workload a rotation can restart (`apps/v1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RestartKind {
    /// A Deployment.
    Deployment,
    /// A StatefulSet.
    StatefulSet,
    /// A DaemonSet.
    DaemonSet,
}

/// What happens on GHES when an Authorization is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Revoke the token on GHES.
    #[default]
    Delete,
    /// Leave the token on GHES.
    Orphan,
}

/// Observed state of an Authorization.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationStatus {
    /// Ready=True means the Secret holds a live token matching the spec; Synced reports the last
    /// reconcile against GHES. Reasons and messages say what to fix when they are False.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The GHES id of the current authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_id: Option<i64>,

    /// The fingerprint that identifies the current authorization on GHES. Recorded before a token
    /// is created, so a crash between the GHES call and the status update cannot create a second
    /// token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,

    /// The scopes GHES reports for the current token (after its normalization).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub scopes: Vec<String>,

    /// The scopes last requested from GHES for the current token (spec.scopes when they were
    /// sent). A difference from spec.scopes means the spec changed; a difference between GHES's
    /// scopes and `scopes` means somebody changed the token on GHES. Both are repaired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub requested_scopes: Vec<String>,

    /// The last eight characters of the current token, to recognize it without revealing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_last_eight: Option<String>,

    /// SHA-256 of the current token (lowercase hex), as GHES reports it; used to check that the
    /// Secret still holds that token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed_token: Option<String>,

    /// The name of the Secret that holds the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// The note the current authorization carries on GHES.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,

    /// When the current token was issued (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Time>,

    /// When GHES expires the current token (RFC 3339); absent when it does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// When the operator next rotates the token (RFC 3339); absent when no rotation is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<Time>,

    /// Why the next rotation is at nextRotationAt: the period or the expiry, and what the
    /// rotation windows made of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_reason: Option<String>,

    /// The token a rotation replaces. Recorded before the new token is created; while
    /// revokeAfter is absent the Secret still holds it, then it stays valid until revokeAfter so
    /// that its consumers can switch over. Absent outside a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<PreviousAuthorization>>,

    /// The last value of the `oauth.ghes.io/rotate` annotation acted on: a new value rotates the
    /// token once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_request: Option<String>,

    /// The GHES user and server the current token belongs to, as `login at apiRoot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,

    /// Tokens of this resource left live as a GHES user its account no longer logs in as (its
    /// credentials changed to another user or server): the account's credentials cannot revoke
    /// them. Each was reported (a `TokenStranded` Event, the abandoned-tokens counter); one is
    /// revoked when the account logs in as its user again, else revoke it on GHES by hand. The
    /// newest 10 are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub stranded_tokens: Vec<StrandedToken>,
}

/// A token left live as a GHES user the account no longer logs in as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StrandedToken {
    /// Its GHES id.
    pub authorization_id: i64,
    /// The GHES user and server it belongs to, as `login at apiRoot`.
    pub identity: String,
    /// The last eight characters of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_last_eight: Option<String>,
    /// When the account's credentials moved away from its user (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// The most stranded tokens `status.strandedTokens` lists.
pub const MAX_STRANDED_TOKENS: usize = 10;

/// A token replaced by a rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousAuthorization {
    /// The GHES id of the previous authorization.
    pub authorization_id: i64,

    /// The last eight characters of the previous token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_last_eight: Option<String>,

    /// When the operator revokes the previous authorization (RFC 3339): the moment the Secret
    /// switched to the new token plus rotation.gracePeriod. Absent until the Secret switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_after: Option<Time>,

    /// When rotation.restartTargets were restarted for the new token (RFC 3339): the previous
    /// authorization also waits for their rollouts, at most rotation.rolloutTimeout from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
}

fn default_client_secret_key() -> String {
    "clientSecret".to_owned()
}

fn default_token_key() -> String {
    "token".to_owned()
}

/// How long the previous token waits for restarted workloads' rollouts when
/// `rotation.rolloutTimeout` is unset.
pub const DEFAULT_ROLLOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// How long before its expiry a token is rotated when `rotation.renewBeforeExpiry` is unset.
pub const DEFAULT_RENEW_BEFORE_EXPIRY: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

impl AuthorizationSpec {
    /// The Secret's name: `spec.secret.name` when set, else the Authorization's name.
    pub fn secret_name<'a>(&'a self, resource_name: &'a str) -> &'a str {
        self.secret.name_or(resource_name)
    }

    /// The note sent to GHES: `spec.note` when set, else `<namespace>/<name>`.
    pub fn note_or_default(&self, namespace: &str, name: &str) -> String {
        match &self.note {
            Some(note) => note.clone(),
            None => format!("{namespace}/{name}"),
        }
    }

    /// The rotation period, if periodic rotation is configured.
    pub fn rotation_period(&self) -> Option<std::time::Duration> {
        self.rotation
            .as_ref()
            .and_then(|r| r.period.as_ref())
            .map(Duration::as_std)
    }

    /// When scheduled rotations may happen, if restricted.
    pub fn rotation_windows(&self) -> Option<&super::windows::RotationWindows> {
        self.rotation.as_ref().and_then(|r| r.windows.as_deref())
    }

    /// How long the previous token stays valid after a rotation (zero when unset).
    pub fn grace_period(&self) -> std::time::Duration {
        self.rotation
            .as_ref()
            .and_then(|r| r.grace_period.as_ref())
            .map(Duration::as_std)
            .unwrap_or_default()
    }

    /// How long the previous token waits for the restarted workloads' rollouts:
    /// `rotation.rolloutTimeout`, else [`DEFAULT_ROLLOUT_TIMEOUT`].
    pub fn rollout_timeout(&self) -> std::time::Duration {
        self.rotation
            .as_ref()
            .and_then(|r| r.rollout_timeout.as_ref())
            .map_or(DEFAULT_ROLLOUT_TIMEOUT, Duration::as_std)
    }

    /// How long before its expiry a token is rotated: `rotation.renewBeforeExpiry`, else
    /// [`DEFAULT_RENEW_BEFORE_EXPIRY`]. The caller caps it at half the token's lifetime.
    pub fn renew_before_expiry(&self) -> std::time::Duration {
        self.rotation
            .as_ref()
            .and_then(|r| r.renew_before_expiry.as_ref())
            .map_or(DEFAULT_RENEW_BEFORE_EXPIRY, Duration::as_std)
    }

    /// Whether this is a personal token (no OAuth app).
    pub fn is_personal(&self) -> bool {
        self.app.is_none()
    }
}

impl Authorization {
    /// The Secret's name: `spec.secret.name` when set, else this resource's name.
    pub fn secret_name(&self) -> String {
        self.spec.secret_name(&self.name_any()).to_owned()
    }

    /// The note sent to GHES: `spec.note` when set, else `<namespace>/<name>`.
    pub fn note(&self) -> String {
        self.spec
            .note_or_default(&self.namespace().unwrap_or_default(), &self.name_any())
    }

    /// The note of the token made by the `rotation`-th rotation: [`note`](Self::note), and for
    /// a rotated token ` (rotation N)` after it, so that it differs from the note of the token
    /// it replaces (GHES refuses two personal tokens with one note). The note is shortened to
    /// keep the whole within GHES's 255 characters.
    pub fn rotated_note(&self, rotation: u32) -> String {
        let note = self.note();
        if rotation == 0 {
            return note;
        }
        let suffix = format!(" (rotation {rotation})");
        let mut keep = NOTE_MAX.saturating_sub(suffix.chars().count());
        if note.chars().count() <= keep {
            keep = note.len();
        } else {
            keep = note
                .char_indices()
                .nth(keep)
                .map_or(note.len(), |(at, _)| at);
        }
        format!("{}{suffix}", &note[..keep])
    }
}

/// The longest note GHES keeps.
const NOTE_MAX: usize = 255;

impl AuthorizationStatus {
    /// The GHES ids this status names: the current token's and a rotation's previous one.
    pub fn token_ids(&self) -> Vec<u64> {
        self.authorization_id
            .into_iter()
            .chain(self.previous.as_ref().map(|p| p.authorization_id))
            .filter_map(|id| u64::try_from(id).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml(yaml: &str) -> AuthorizationSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn minimal_spec_gets_every_default() {
        let spec = from_yaml("accountRef: {name: ghes-bot}\n");
        assert_eq!(spec.account_ref, AccountRef::account("ghes-bot"));
        assert!(spec.app.is_none() && spec.is_personal());
        assert!(spec.scopes.is_empty());
        assert_eq!(spec.secret, TokenSecret::default());
        assert_eq!(spec.secret.key, "token");
        assert!(spec.rotation.is_none());
        assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
    }

    #[test]
    fn app_client_secret_key_defaults_to_client_secret() {
        let spec = from_yaml(
            "accountRef: {kind: ClusterAccount, name: shared}\n\
             app: {clientId: 0123abcd, clientSecretRef: {name: oauth-app}}\n",
        );
        assert_eq!(spec.account_ref, AccountRef::cluster_account("shared"));
        let app = spec.app.unwrap();
        assert_eq!(app.client_secret_ref.key, "clientSecret");
    }

    #[test]
    fn secret_name_and_note_fall_back_to_the_resource() {
        let mut auth = Authorization::new("ci-bot", from_yaml("accountRef: {name: bot}\n"));
        auth.metadata.namespace = Some("team-a".into());
        assert_eq!(auth.secret_name(), "ci-bot");
        assert_eq!(auth.note(), "team-a/ci-bot");

        auth.spec.secret.name = Some("ci-bot-token".into());
        auth.spec.note = Some("CI bot".into());
        assert_eq!(auth.secret_name(), "ci-bot-token");
        assert_eq!(auth.spec.secret_name("ignored"), "ci-bot-token");
        assert_eq!(auth.note(), "CI bot");
        assert_eq!(auth.rotated_note(0), "CI bot");
        assert_eq!(auth.rotated_note(3), "CI bot (rotation 3)");
        auth.spec.note = Some("é".repeat(255));
        let long = auth.rotated_note(12);
        assert_eq!(long.chars().count(), 255);
        assert!(long.ends_with("é (rotation 12)"), "{long}");
    }

    #[test]
    fn managed_by_label_always_wins() {
        let mut secret = TokenSecret::default();
        secret
            .labels
            .insert(MANAGED_BY.into(), "someone-else".into());
        secret.labels.insert("team".into(), "a".into());
        let labels = secret.labels_with_managed_by();
        assert_eq!(labels[MANAGED_BY], "ghes-oauth-operator");
        assert_eq!(labels["team"], "a");
    }

    #[test]
    fn status_serializes_without_empty_fields() {
        let status = AuthorizationStatus::default();
        assert_eq!(serde_json::to_string(&status).unwrap(), "{}");
    }

    #[test]
    fn unknown_deletion_policy_is_refused() {
        assert!(
            serde_yaml::from_str::<AuthorizationSpec>(
                "accountRef: {name: bot}\ndeletionPolicy: Retain\n"
            )
            .is_err()
        );
    }
}
