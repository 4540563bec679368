//! The Argo CD health script of `examples/gitops/argocd/argocd-cm.yaml`, run by a Lua 5.1 (the
//! language of Argo CD's gopher-lua) against the objects the operator writes in each state; and
//! its `rotate` resource action.

use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::Value;

#[path = "support/states.rs"]
mod states;
use states::{condition, object, states};

const CONFIG_MAP: &str = include_str!("../examples/gitops/argocd/argocd-cm.yaml");

/// The one health script (the same under each kind's key).
fn script() -> String {
    let config_map: Value = serde_yaml::from_str(CONFIG_MAP).expect("argocd-cm.yaml");
    let data = config_map["data"].as_object().expect("data");
    let scripts: Vec<&str> = ["Authorization", "Account", "ClusterAccount"]
        .iter()
        .map(|kind| {
            data[&format!("resource.customizations.health.oauth.ghes.io_{kind}")]
                .as_str()
                .expect("a script per kind")
        })
        .collect();
    assert!(
        scripts.iter().all(|s| *s == scripts[0]),
        "one script, the same for every kind"
    );
    scripts[0].to_owned()
}

/// What Argo CD shows for `object`: (status, message).
fn health(object: &Value) -> (String, String) {
    let lua = Lua::new();
    let obj = lua.to_value(object).expect("object to Lua");
    lua.globals().set("obj", obj).expect("obj");
    let hs: Table = lua.load(script()).eval().expect("the script runs");
    (
        hs.get::<String>("status").expect("status"),
        hs.get::<Option<String>>("message")
            .expect("message")
            .unwrap_or_default(),
    )
}

#[test]
fn every_recorded_state_gets_its_health() {
    for state in states() {
        assert_eq!(health(&state.object).0, state.argocd, "{}", state.name);
    }
}

#[test]
fn no_status_yet_is_progressing() {
    assert_eq!(health(&object(1, None, vec![])).0, "Progressing");
}

#[test]
fn a_first_attempt_in_flight_is_progressing() {
    let (status, message) = health(&object(
        1,
        Some(1),
        vec![
            condition("Ready", "Unknown", "Reconciling", "issuing the token", 1),
            condition("Reconciling", "True", "Progressing", "issuing the token", 1),
        ],
    ));
    assert_eq!(status, "Progressing");
    assert_eq!(message, "Progressing: issuing the token");
}

#[test]
fn a_transient_failure_is_progressing_with_its_message() {
    for reason in ["GhesUnavailable", "RateLimited"] {
        let (status, message) = health(&object(
            2,
            Some(2),
            vec![
                condition("Ready", "False", reason, "GHES answered 503", 2),
                condition("Reconciling", "True", reason, "GHES answered 503", 2),
                condition("Synced", "False", reason, "GHES answered 503", 2),
            ],
        ));
        assert_eq!(status, "Progressing", "{reason}");
        assert_eq!(message, format!("{reason}: GHES answered 503"));
    }
}

#[test]
fn a_configuration_error_is_degraded_with_its_message() {
    let (status, message) = health(&object(
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
    ));
    assert_eq!(status, "Degraded");
    assert_eq!(message, "AccountNotFound: Account \"nope\" not found");
}

#[test]
fn ready_for_the_current_generation_is_healthy() {
    let ready = vec![condition(
        "Ready",
        "True",
        "TokenReady",
        "Secret ci holds token …abcd1234",
        3,
    )];
    let (status, message) = health(&object(3, Some(3), ready.clone()));
    assert_eq!(status, "Healthy");
    assert_eq!(message, "Secret ci holds token …abcd1234");
    // The same status, but the spec changed since: not healthy yet.
    assert_eq!(health(&object(4, Some(3), ready)).0, "Progressing");
}

#[test]
fn an_older_operators_ready_false_is_read_by_its_reason() {
    // Without Stalled or Reconciling (written before those existed): the reason decides.
    let transient = vec![condition("Ready", "False", "GhesUnavailable", "503", 1)];
    assert_eq!(health(&object(1, Some(1), transient)).0, "Progressing");
    let config = vec![condition("Ready", "False", "InvalidSpec", "bad", 1)];
    assert_eq!(health(&object(1, Some(1), config)).0, "Degraded");
}

/// The `rotate` action's discovery and action scripts.
fn action_scripts() -> (String, String) {
    let config_map: Value = serde_yaml::from_str(CONFIG_MAP).expect("argocd-cm.yaml");
    let actions = config_map["data"]["resource.customizations.actions.oauth.ghes.io_Authorization"]
        .as_str()
        .expect("the actions of Authorization");
    let actions: Value = serde_yaml::from_str(actions).expect("actions YAML");
    let discovery = actions["discovery.lua"].as_str().expect("discovery.lua");
    let definitions = actions["definitions"].as_array().expect("definitions");
    assert_eq!(definitions.len(), 1);
    assert_eq!(definitions[0]["name"], "rotate");
    let action = definitions[0]["action.lua"].as_str().expect("action.lua");
    (discovery.to_owned(), action.to_owned())
}

fn run_lua(script: &str, object: &Value) -> Value {
    let lua = Lua::new();
    let obj = lua.to_value(object).expect("object to Lua");
    lua.globals().set("obj", obj).expect("obj");
    let result: mlua::Value = lua.load(script).eval().expect("the script runs");
    lua.from_value(result).expect("a result")
}

#[test]
fn the_rotate_action_is_offered_unless_a_rotation_is_pending_or_it_observes() {
    let (discovery, _) = action_scripts();
    let ready = serde_json::json!({
        "metadata": {"name": "ci", "generation": 1},
        "spec": {"accountRef": {"name": "bot"}},
        "status": {"authorizationId": 7},
    });
    assert_eq!(run_lua(&discovery, &ready)["rotate"]["disabled"], false);
    let mut pending = ready.clone();
    pending["status"]["previous"] = serde_json::json!({"authorizationId": 6});
    assert_eq!(run_lua(&discovery, &pending)["rotate"]["disabled"], true);
    let mut observer = ready.clone();
    observer["spec"]["managementPolicy"] = "Observe".into();
    assert_eq!(run_lua(&discovery, &observer)["rotate"]["disabled"], true);
}

#[test]
fn the_rotate_action_sets_a_new_annotation_value_and_keeps_the_others() {
    let (_, action) = action_scripts();
    let bare = serde_json::json!({"metadata": {"name": "ci"}, "spec": {}});
    let rotated = run_lua(&action, &bare);
    let value = rotated["metadata"]["annotations"]["oauth.ghes.io/rotate"]
        .as_str()
        .expect("the annotation");
    let at: jiff::Timestamp = value.parse().expect("an RFC 3339 time");
    assert!(
        (jiff::Timestamp::now() - at).get_seconds().abs() < 60,
        "{value}"
    );
    let annotated = serde_json::json!({
        "metadata": {"name": "ci", "annotations": {"team": "a", "oauth.ghes.io/rotate": "old"}},
    });
    let rotated = run_lua(&action, &annotated);
    assert_eq!(rotated["metadata"]["annotations"]["team"], "a");
    assert_ne!(
        rotated["metadata"]["annotations"]["oauth.ghes.io/rotate"],
        "old"
    );
}
