//! The Flux `healthCheckExprs` of `examples/gitops/flux/kustomizations.yaml`, compiled and run
//! by a CEL interpreter against the objects the operator writes in each state (the table in
//! `support/states.rs`, which the Argo CD test reads too).
//!
//! Evaluated the way kustomize-controller's CEL status reader does: an object whose
//! `status.observedGeneration` differs from `metadata.generation` is `InProgress`; then
//! `inProgress`, `failed` and `current` are tried in that order, the first that holds wins,
//! and none holding is `InProgress`. An expression that cannot be evaluated (e.g. no `status`
//! yet) leaves the object unhealthy, so Flux keeps waiting: counted as `InProgress` here.

use serde_json::Value;

#[path = "support/generated.rs"]
mod generated;
#[path = "support/states.rs"]
mod states;
use states::states;

const KUSTOMIZATIONS: &str = include_str!("../examples/gitops/flux/kustomizations.yaml");

/// The `healthCheckExprs` entry for `kind`.
fn exprs(kind: &str) -> Value {
    let documents: Vec<Value> = serde_yaml::Deserializer::from_str(KUSTOMIZATIONS)
        .map(|document| {
            serde::Deserialize::deserialize(document).expect("a Kustomization document")
        })
        .collect();
    documents
        .iter()
        .filter_map(|d| d["spec"]["healthCheckExprs"].as_array())
        .flatten()
        .find(|e| e["kind"] == kind && e["apiVersion"] == "oauth.ghes.io/v1alpha1")
        .cloned()
        .unwrap_or_else(|| panic!("a healthCheckExprs entry for {kind}"))
}

/// Whether `expression` holds for `object`; `None` when it cannot be evaluated.
fn holds(expression: &str, object: &Value) -> Option<bool> {
    let program = cel::Program::compile(expression)
        .unwrap_or_else(|error| panic!("{expression:?} does not compile: {error}"));
    let mut context = cel::Context::default();
    for (field, value) in object.as_object().expect("an object") {
        let value = cel::to_value(value).expect("JSON to CEL");
        context.add_variable_from_value(field.as_str(), value);
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(result)) => Some(result),
        Ok(other) => panic!("{expression:?} gave {other:?}, not a bool"),
        Err(_) => None,
    }
}

/// Flux's status for `object` under the `healthCheckExprs` of its kind.
fn kstatus(object: &Value) -> &'static str {
    let kind = object["kind"].as_str().expect("kind");
    let generation = &object["metadata"]["generation"];
    let observed = &object["status"]["observedGeneration"];
    if !observed.is_null() && observed != generation {
        return "InProgress";
    }
    let exprs = exprs(kind);
    for (key, verdict) in [
        ("inProgress", "InProgress"),
        ("failed", "Failed"),
        ("current", "Current"),
    ] {
        if let Some(expression) = exprs[key].as_str()
            && holds(expression, object) == Some(true)
        {
            return verdict;
        }
    }
    "InProgress"
}

#[test]
fn every_recorded_state_gets_its_kstatus() {
    for state in states() {
        assert_eq!(kstatus(&state.object), state.flux, "{}", state.name);
    }
}

#[test]
fn accounts_are_read_the_same_way() {
    for state in states() {
        let mut account = state.object.clone();
        account["kind"] = "Account".into();
        assert_eq!(kstatus(&account), state.flux, "{}", state.name);
    }
}

#[test]
fn every_expression_compiles() {
    for kind in ["Authorization", "Account"] {
        let exprs = exprs(kind);
        for key in ["inProgress", "failed", "current"] {
            let expression = exprs[key].as_str().expect("all three expressions");
            cel::Program::compile(expression)
                .unwrap_or_else(|error| panic!("{kind} {key}: {error}"));
        }
    }
}

/// The table of `examples/gitops/README.md`: what each tool shows in each state. The Argo CD
/// column is asserted by `tests/argocd_health.rs`, the Flux column above.
#[test]
fn the_gitops_readme_shows_every_state() {
    let mut table = String::from(
        "| State of an Authorization | Argo CD (Lua health check) | Flux (`healthCheckExprs`) |\n\
         |---|---|---|\n",
    );
    for state in states() {
        assert_eq!(kstatus(&state.object), state.flux, "{}", state.name);
        table += &format!("| {} | {} | {} |\n", state.name, state.argocd, state.flux);
    }
    generated::check_section(
        "examples/gitops/README.md",
        "health-states",
        "cargo test --test flux_health",
        &table,
    );
}
