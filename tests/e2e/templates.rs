//! Secret templates: each type renders a Secret its consumer can use, with a live token; a bad
//! template stops before GHES; a changed template rotates the token (the operator keeps the
//! token nowhere but in the Secret); edited data is noticed although the token is embedded.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::harness::*;

fn templated(template: serde_json::Value) -> serde_json::Value {
    json!({
        "accountRef": {"name": "bot"},
        "scopes": ["repo"],
        "secret": {"template": template},
    })
}

fn basic_auth() -> serde_json::Value {
    json!({
        "type": "kubernetes.io/basic-auth",
        "data": {"username": "{{ login }}", "password": "{{ token }}"},
    })
}

/// The Secret's data as text.
fn data_of(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).expect("utf-8")))
        .collect()
}

/// Whether `token` is live on GHES.
fn live(world: &World, token: &str) -> bool {
    let hash = sha256_hex(token);
    world
        .live_tokens(USER)
        .iter()
        .any(|(_, hashed, _)| *hashed == hash)
}

async fn secret(world: &World, namespace: &str, name: &str) -> Secret {
    world
        .secrets(namespace)
        .get(name)
        .await
        .expect("the Secret")
}

#[tokio::test]
async fn each_template_type_renders_a_secret_its_consumer_can_use() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(&ns, "repo-creds", templated(basic_auth()))
        .await;
    world
        .authorization(
            &ns,
            "registry",
            templated(json!({
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": r#"{"auths": {"containers.{{ host }}": {"username": {{ login | tojson }}, "password": {{ token | tojson }}, "auth": {{ (login ~ ":" ~ token) | b64encode | tojson }}}}}"#},
            })),
        )
        .await;
    world
        .authorization(
            &ns,
            "git",
            templated(json!({
                "data": {
                    ".git-credentials": "https://{{ login }}:{{ token }}@{{ host }}",
                    ".netrc": "machine {{ host }} login {{ login }} password {{ token }}",
                    "GH_TOKEN": "{{ token }}",
                    "GH_HOST": "{{ host }}",
                    "GH_SCOPES": "{{ scopes | join(',') }}",
                },
            })),
        )
        .await;
    world.start_operator();
    for name in ["repo-creds", "registry", "git"] {
        world.wait_ready(&ns, name, "True").await;
    }
    let host = "ghes.invalid"; // the harness account's spec.server

    let basic = secret(&world, &ns, "repo-creds").await;
    assert_eq!(basic.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    let data = data_of(&basic);
    assert_eq!(data.keys().collect::<Vec<_>>(), ["password", "username"]);
    assert_eq!(data["username"], USER);
    assert!(
        live(&world, &data["password"]),
        "the password is a live token"
    );
    let annotations = basic.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("oauth.ghes.io/token-sha256"),
        Some(&sha256_hex(&data["password"])),
        "the token's hash, never the token, beside the data"
    );

    let docker = secret(&world, &ns, "registry").await;
    assert_eq!(
        docker.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let config: serde_json::Value =
        serde_json::from_str(&data_of(&docker)[".dockerconfigjson"]).expect("a JSON config");
    let entry = &config["auths"][format!("containers.{host}")];
    let auth = data_encoding::BASE64
        .decode(entry["auth"].as_str().expect("auth").as_bytes())
        .expect("base64");
    let (login, token) = std::str::from_utf8(&auth)
        .expect("utf-8")
        .split_once(':')
        .map(|(l, t)| (l.to_owned(), t.to_owned()))
        .expect("login:token");
    assert_eq!(login, USER);
    assert!(live(&world, &token));
    assert_eq!(entry["password"].as_str(), Some(token.as_str()));

    let git = secret(&world, &ns, "git").await;
    assert_eq!(git.type_.as_deref(), Some("Opaque"));
    let data = data_of(&git);
    let token = data["GH_TOKEN"].clone();
    assert!(live(&world, &token));
    assert_eq!(
        data[".git-credentials"],
        format!("https://{USER}:{token}@{host}")
    );
    assert_eq!(
        data[".netrc"],
        format!("machine {host} login {USER} password {token}")
    );
    assert_eq!(data["GH_HOST"], host);
    assert_eq!(data["GH_SCOPES"], "repo");
    world.cleanup().await;
}

#[tokio::test]
async fn a_bad_template_is_a_configuration_error_before_any_ghes_call() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(
            &ns,
            "typo",
            templated(json!({"data": {"url": "https://{{ login }}:{{ tokn }}@{{ host }}"}})),
        )
        .await;
    world.start_operator();
    let ready = world.wait_not_ready(&ns, "typo").await;
    assert_eq!(ready.reason, "SecretTemplateInvalid");
    assert!(
        ready
            .message
            .starts_with("spec.secret.template.data[\"url\"]: unknown variable \"tokn\""),
        "{}",
        ready.message
    );
    let writes: Vec<String> = world.ghes_writes_since(0);
    assert!(writes.is_empty(), "no GHES write: {writes:?}");
    assert!(world.live_tokens(USER).is_empty());
    assert!(
        world
            .secrets(&ns)
            .get_opt("typo")
            .await
            .expect("get")
            .is_none()
    );

    // Fixed: issued.
    world
        .authorization(&ns, "typo", templated(basic_auth()))
        .await;
    world.wait_ready(&ns, "typo", "True").await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_changed_template_rotates_and_edited_data_is_replaced() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(&ns, "repo-creds", templated(basic_auth()))
        .await;
    world.start_operator();
    world.wait_ready(&ns, "repo-creds", "True").await;
    let first = data_of(&secret(&world, &ns, "repo-creds").await)["password"].clone();
    let seq = world.ghes_seq();

    // A new shape needs the token again: a rotation renders it (one create, one delete).
    world
        .authorization(
            &ns,
            "repo-creds",
            templated(json!({
                "type": "kubernetes.io/basic-auth",
                "data": {"username": "{{ login }}", "password": "{{ token }}", "host": "{{ host }}"},
            })),
        )
        .await;
    crate::rotation::wait_rotated(&world, &ns, "repo-creds", 1).await;
    world.wait_ready(&ns, "repo-creds", "True").await;
    let data = data_of(&secret(&world, &ns, "repo-creds").await);
    assert_eq!(data["host"], "ghes.invalid");
    assert_ne!(data["password"], first);
    assert!(live(&world, &data["password"]) && !live(&world, &first));
    let writes: Vec<String> = world.ghes_writes_since(seq);
    assert_eq!(writes.len(), 2, "one create, one delete: {writes:?}");
    let reasons = world.event_reasons(&ns, "repo-creds").await;
    assert!(reasons.iter().any(|r| r == "Rotated"), "{reasons:?}");

    // Somebody edits the rendered data: the token cannot be told any more, so it is replaced.
    let edited = data["password"].clone();
    world
        .secrets(&ns)
        .patch(
            "repo-creds",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "hunter2"}})),
        )
        .await
        .expect("edit the Secret");
    wait_for("the edited Secret replaced", || async {
        let data = data_of(&secret(&world, &ns, "repo-creds").await);
        (data["password"] != "hunter2"
            && data["password"] != edited
            && live(&world, &data["password"]))
        .then_some(())
    })
    .await;
    world.wait_ready(&ns, "repo-creds", "True").await;
    assert!(
        !live(&world, &edited),
        "the token that could not be told is revoked"
    );
    world.cleanup().await;
}
