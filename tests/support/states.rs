//! The states an Authorization's status can be in, as the operator writes them, with what each
//! GitOps tool must make of it: Argo CD's health (the Lua script) and Flux's kstatus (the
//! `healthCheckExprs`). One table, read by `tests/argocd_health.rs` and `tests/flux_health.rs`.

#![allow(dead_code)] // each test binary reads a different part

use serde_json::{Value, json};

/// A condition as the operator writes it.
pub fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": "2026-11-29T12:00:00Z"})
}

/// An Authorization at `generation` whose status has `conditions`, observed at `observed`
/// (`None`: no status yet).
pub fn object(generation: i64, observed: Option<i64>, conditions: Vec<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
        "metadata": {"name": "ci", "namespace": "team-a", "generation": generation},
        "spec": {"accountRef": {"name": "bot"}, "scopes": ["repo"]},
    });
    if let Some(observed) = observed {
        object["status"] = json!({"observedGeneration": observed, "conditions": conditions});
    }
    object
}

/// One recorded state.
pub struct State {
    /// What it is.
    pub name: &'static str,
    /// The object.
    pub object: Value,
    /// Argo CD's health status.
    pub argocd: &'static str,
    /// Flux's kstatus.
    pub flux: &'static str,
}

fn ready(generation: i64) -> Value {
    condition(
        "Ready",
        "True",
        "TokenReady",
        "Secret ci holds token …abcd1234",
        generation,
    )
}

/// Every state, in the order a user meets them.
pub fn states() -> Vec<State> {
    let transient = |reason: &str| {
        vec![
            condition("Ready", "False", reason, "GHES answered 503", 2),
            condition("Reconciling", "True", reason, "GHES answered 503", 2),
            condition("Synced", "False", reason, "GHES answered 503", 2),
        ]
    };
    vec![
        State {
            name: "applied, no status yet",
            object: object(1, None, vec![]),
            argocd: "Progressing",
            flux: "InProgress",
        },
        State {
            name: "first attempt in flight",
            object: object(
                1,
                Some(1),
                vec![
                    condition("Ready", "Unknown", "Reconciling", "issuing the token", 1),
                    condition("Reconciling", "True", "Progressing", "issuing the token", 1),
                ],
            ),
            argocd: "Progressing",
            flux: "InProgress",
        },
        State {
            name: "GHES unavailable, retrying",
            object: object(2, Some(2), transient("GhesUnavailable")),
            argocd: "Progressing",
            flux: "InProgress",
        },
        State {
            name: "rate limited, waiting for the reset",
            object: object(2, Some(2), transient("RateLimited")),
            argocd: "Progressing",
            flux: "InProgress",
        },
        State {
            name: "configuration error (Stalled)",
            object: object(
                1,
                Some(1),
                vec![
                    condition(
                        "Ready",
                        "False",
                        "AccountNotFound",
                        "Account \"nope\" not found",
                        1,
                    ),
                    condition(
                        "Stalled",
                        "True",
                        "AccountNotFound",
                        "Account \"nope\" not found",
                        1,
                    ),
                ],
            ),
            argocd: "Degraded",
            flux: "Failed",
        },
        State {
            name: "Ready for the current generation",
            object: object(3, Some(3), vec![ready(3)]),
            argocd: "Healthy",
            flux: "Current",
        },
        State {
            name: "Ready, but the spec changed since",
            object: object(4, Some(3), vec![ready(3)]),
            argocd: "Progressing",
            flux: "InProgress",
        },
        State {
            name: "suspended (spec.suspend, its own or its account's)",
            object: object(
                5,
                Some(5),
                vec![
                    condition("Ready", "False", "Suspended", "spec.suspend is true", 5),
                    condition("Synced", "False", "Suspended", "spec.suspend is true", 5),
                ],
            ),
            argocd: "Suspended",
            flux: "Current",
        },
        State {
            name: "observed, but Ready still from the last generation",
            object: object(4, Some(4), vec![ready(3)]),
            argocd: "Progressing",
            flux: "InProgress",
        },
    ]
}
