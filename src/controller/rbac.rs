//! The Kubernetes permissions the operator uses, as one table: the Helm chart's RBAC is checked
//! against it, and `ghes-oauth-operator rbac` prints it for installs without Helm.

use serde::Serialize;

/// One RBAC rule: API group, resources, verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// API groups (`""` is the core group).
    pub api_groups: &'static [&'static str],
    /// Resources (with `/status` for the status subresource).
    pub resources: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Why the operator needs it (not part of RBAC; for readers).
    #[serde(skip)]
    pub why: &'static str,
}

/// Rules for the namespaces the operator watches (a ClusterRole, or one Role per watched
/// namespace).
pub const WATCHED_NAMESPACE_RULES: &[Rule] = &[
    Rule {
        api_groups: &["oauth.ghes.io"],
        resources: &["authorizations"],
        verbs: &["get", "list", "watch", "patch"],
        why: "watch Authorizations; add and remove their cleanup finalizer (JSON patch); label \
              them with their shard (run --shards)",
    },
    Rule {
        api_groups: &["oauth.ghes.io"],
        resources: &["accounts"],
        verbs: &["list", "watch", "patch"],
        why: "watch Accounts; add and remove their in-use finalizer (JSON patch); label them \
              with their shard (run --shards)",
    },
    Rule {
        api_groups: &["oauth.ghes.io"],
        resources: &["authorizations/status", "accounts/status"],
        verbs: &["patch"],
        why: "write status by server-side apply",
    },
    Rule {
        api_groups: &["oauth.ghes.io"],
        resources: &["authorizations/finalizers"],
        verbs: &["update"],
        why: "own the token Secrets with blockOwnerDeletion: the \
              OwnerReferencesPermissionEnforcement admission plugin (OpenShift's default) \
              refuses that owner reference to whoever may not update the owner's finalizers",
    },
    Rule {
        api_groups: &[""],
        resources: &["secrets"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        why: "read credentials and client secrets; watch (metadata only) and write the token \
              Secrets by server-side apply; delete a token Secret after a rename; add and \
              remove the in-use finalizer of credentials Secrets (JSON patch)",
    },
    Rule {
        api_groups: &[""],
        resources: &["configmaps"],
        verbs: &["get"],
        why: "read an Account's CA bundle from the ConfigMap its caBundleRef names",
    },
    Rule {
        api_groups: &["events.k8s.io"],
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "publish Events (patch updates an Event series)",
    },
    Rule {
        api_groups: &["apps"],
        resources: &["deployments", "statefulsets", "daemonsets"],
        verbs: &["get", "patch"],
        why: "restart the consumers a rotation names in rotation.restartTargets (a pod \
              template annotation, as kubectl rollout restart), and wait for their rollouts \
              before the previous token is revoked",
    },
];

/// Cluster-wide rules, needed whatever namespaces are watched.
pub const CLUSTER_RULES: &[Rule] = &[
    Rule {
        api_groups: &["oauth.ghes.io"],
        resources: &["clusteraccounts"],
        verbs: &["list", "watch", "patch"],
        why: "watch ClusterAccounts; add and remove their in-use finalizer (JSON patch); label \
              them with their shard (run --shards)",
    },
    Rule {
        api_groups: &["oauth.ghes.io"],
        resources: &["clusteraccounts/status"],
        verbs: &["patch"],
        why: "write ClusterAccount status",
    },
    Rule {
        api_groups: &[""],
        resources: &["namespaces"],
        verbs: &["get"],
        why: "match a namespace's labels against a ClusterAccount's allowedNamespaces",
    },
    Rule {
        api_groups: &["events.k8s.io"],
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "Events about ClusterAccounts (published in the default namespace)",
    },
];

/// Rules in the operator's own namespace: the leader Lease, and the credentials Secrets of
/// ClusterAccounts, which live there when only some namespaces are watched (like cert-manager's
/// cluster resource namespace). When all namespaces are watched, the watched-namespace rules
/// already cover those Secrets.
pub const OPERATOR_NAMESPACE_RULES: &[Rule] = &[
    Rule {
        api_groups: &["coordination.k8s.io"],
        resources: &["leases"],
        verbs: &["get", "list", "create", "update"],
        why: "hold the leader Lease; with --shards, the shard and member Leases (list: which \
              replicas are up)",
    },
    Rule {
        api_groups: &[""],
        resources: &["secrets"],
        verbs: &["get", "patch"],
        why: "read ClusterAccount credentials kept in the operator's namespace; add and remove \
              their in-use finalizer (JSON patch)",
    },
    Rule {
        api_groups: &[""],
        resources: &["configmaps"],
        verbs: &["get"],
        why: "read a ClusterAccount's CA bundle kept in the operator's namespace",
    },
    Rule {
        api_groups: &["events.k8s.io"],
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "Events that outlive the namespace they concern (a token abandoned while its \
              namespace is deleted)",
    },
];

/// Every rule of the three sets.
pub fn all_rules() -> impl Iterator<Item = &'static Rule> {
    WATCHED_NAMESPACE_RULES
        .iter()
        .chain(CLUSTER_RULES)
        .chain(OPERATOR_NAMESPACE_RULES)
}

/// All three sets, as JSON:
/// `{"watchedNamespaces": [...], "cluster": [...], "operatorNamespace": [...]}`.
pub fn rules_json() -> serde_json::Value {
    serde_json::json!({
        "watchedNamespaces": WATCHED_NAMESPACE_RULES,
        "cluster": CLUSTER_RULES,
        "operatorNamespace": OPERATOR_NAMESPACE_RULES,
    })
}
