//! End-to-end: the real operator binary against the Kubernetes API test server (or a real
//! cluster with `E2E_KUBECONFIG`) and the GHES emulator, asserting what a user would check —
//! Secrets, status, Events, GHES state and the calls GHES received.

mod bad_input;
mod budget;
mod crash;
mod ctl;
#[path = "../support/generated.rs"]
mod generated;
mod harness;
mod health;
mod identity;
mod isolation;
mod kube_faults;
mod matrix;
mod metrics;
mod namespace_deletion;
mod observe;
mod plan;
mod proxy;
mod prune;
mod rotation;
mod safety;
mod sharding;
mod suspend;
mod templates;

use std::time::Duration;

use ghes_emulator::Fault;
use harness::*;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

fn app_spec(scopes: &[&str]) -> serde_json::Value {
    json!({
        "accountRef": {"kind": "Account", "name": "bot"},
        "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}},
        "scopes": scopes,
        "secret": {"name": "ci-token"},
    })
}

/// Sets up one namespace with an Account, the app secret and a running operator.
async fn world_with_account() -> World {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.app_secret(&ns).await;
    world.start_operator();
    world
}

#[tokio::test]
async fn app_token_is_issued_and_stored() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    world
        .authorization(&ns, "ci", app_spec(&["repo", "read:org"]))
        .await;
    let ready = world.wait_ready(&ns, "ci", "True").await;
    let status = ready.status.expect("status");
    let token = world
        .token(&ns, "ci-token", "token")
        .await
        .expect("token in Secret");
    let state = world.ghes.state();
    assert_eq!(state.authorizations.len(), 1);
    let live = &state.authorizations[0];
    assert_eq!(
        live.hashed_token.as_deref(),
        Some(sha256_hex(&token).as_str())
    );
    assert_eq!(status.authorization_id, Some(live.id as i64));
    assert_eq!(
        status.token_last_eight.as_deref(),
        Some(&token[token.len() - 8..])
    );
    assert_eq!(status.scopes, ["read:org", "repo"]);
    assert_eq!(live.app.client_id, CLIENT_ID);
    let secret = world.secrets(&ns).get("ci-token").await.expect("secret");
    let owners = secret.metadata.owner_references.expect("owner");
    assert_eq!(owners[0].kind, "Authorization");
    assert_eq!(
        secret
            .metadata
            .labels
            .expect("labels")
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("ghes-oauth-operator")
    );
    assert!(
        world
            .event_reasons(&ns, "ci")
            .await
            .contains(&"Created".to_owned())
    );
    world.cleanup().await;
}

#[tokio::test]
async fn personal_token_is_issued() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    world
        .authorization(
            &ns,
            "release",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    world.wait_ready(&ns, "release", "True").await;
    let token = world.token(&ns, "release", "token").await.expect("token");
    assert!(token.starts_with("ghp_"));
    let state = world.ghes.state();
    assert_eq!(state.authorizations.len(), 1);
    assert_eq!(
        state.authorizations[0].note.as_deref(),
        Some(format!("{ns}/release").as_str())
    );
    assert!(
        state.authorizations[0]
            .fingerprint
            .as_deref()
            .is_some_and(|f| f.starts_with("k8s-"))
    );
    let posts = world
        .ghes_calls_since(0)
        .iter()
        .filter(|c| c.starts_with("POST"))
        .count();
    assert_eq!(posts, 1);
    world.cleanup().await;
}

#[tokio::test]
async fn scope_edit_is_one_patch_and_keeps_the_token() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    world.authorization(&ns, "ci", app_spec(&["repo"])).await;
    world.wait_ready(&ns, "ci", "True").await;
    let before = world.token(&ns, "ci-token", "token").await.expect("token");
    let seq = world.ghes_seq();
    world
        .authorization(&ns, "ci", app_spec(&["repo", "workflow"]))
        .await;
    let ready = world.wait_ready(&ns, "ci", "True").await;
    assert_eq!(ready.status.expect("status").scopes, ["repo", "workflow"]);
    let calls = world.ghes_calls_since(seq);
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("PATCH")).count(),
        1,
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("POST") && !c.starts_with("PUT") && !c.starts_with("DELETE")),
        "{calls:?}"
    );
    assert_eq!(
        world.token(&ns, "ci-token", "token").await.as_deref(),
        Some(before.as_str())
    );
    assert_eq!(
        world.ghes.state().authorizations[0].scopes,
        ["repo", "workflow"]
    );
    world.cleanup().await;
}

#[tokio::test]
async fn deleted_secret_is_reissued_and_the_old_token_revoked() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    world.authorization(&ns, "ci", app_spec(&["repo"])).await;
    let first = world.wait_ready(&ns, "ci", "True").await;
    let old_id = first.status.expect("status").authorization_id.expect("id");
    let old_token = world.token(&ns, "ci-token", "token").await.expect("token");
    world
        .secrets(&ns)
        .delete("ci-token", &DeleteParams::default())
        .await
        .expect("delete secret");
    let new_token = wait_for("a new token", || async {
        world
            .token(&ns, "ci-token", "token")
            .await
            .filter(|t| *t != old_token)
    })
    .await;
    let state = world.ghes.state();
    assert_eq!(
        state.authorizations.len(),
        1,
        "the old authorization is gone"
    );
    assert_ne!(state.authorizations[0].id as i64, old_id);
    assert_eq!(
        state.authorizations[0].hashed_token.as_deref(),
        Some(sha256_hex(&new_token).as_str())
    );
    wait_for("TokenReissued event", || async {
        world
            .event_reasons(&ns, "ci")
            .await
            .contains(&"TokenReissued".to_owned())
            .then_some(())
    })
    .await;
    world.cleanup().await;
}

#[tokio::test]
async fn deleting_the_resource_revokes_the_token_and_collects_the_secret() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    world.authorization(&ns, "ci", app_spec(&["repo"])).await;
    world.wait_ready(&ns, "ci", "True").await;
    world.delete_authorization(&ns, "ci").await;
    assert!(world.ghes.state().authorizations.is_empty());
    wait_for("the Secret to be collected", || async {
        world
            .secrets(&ns)
            .get_opt("ci-token")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    world.cleanup().await;
}

#[tokio::test]
async fn orphan_policy_keeps_the_token_on_ghes() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    let mut spec = app_spec(&["repo"]);
    spec["deletionPolicy"] = json!("Orphan");
    world.authorization(&ns, "ci", spec).await;
    world.wait_ready(&ns, "ci", "True").await;
    world.delete_authorization(&ns, "ci").await;
    assert_eq!(world.ghes.state().authorizations.len(), 1);
    assert!(
        world
            .ghes_calls_since(0)
            .iter()
            .all(|c| !c.starts_with("DELETE"))
    );
    world.cleanup().await;
}

#[tokio::test]
async fn configuration_errors_say_what_to_fix_and_call_no_ghes() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.app_secret(&ns).await;
    world.start_operator();

    world
        .authorization(&ns, "no-account", app_spec(&["repo"]))
        .await;
    let ready = world.wait_not_ready(&ns, "no-account").await;
    assert_eq!(ready.reason, "AccountNotFound");
    assert!(ready.message.contains("\"bot\""), "{}", ready.message);

    // An Account whose credentials Secret does not exist.
    world.apply_json(&ns, json!({
        "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
        "metadata": {"name": "nocreds", "namespace": ns},
        "spec": {"server": "https://ghes.invalid", "apiUrl": world.ghes.api_url(), "credentialsSecretRef": {"name": "missing"}},
    })).await;
    let mut spec = app_spec(&["repo"]);
    spec["accountRef"]["name"] = json!("nocreds");
    world.authorization(&ns, "no-creds", spec).await;
    let ready = world.wait_not_ready(&ns, "no-creds").await;
    assert_eq!(ready.reason, "CredentialsNotFound");
    assert!(ready.message.contains("missing"), "{}", ready.message);

    // A ClusterAccount that does not allow this namespace.
    world
        .cluster_account(
            &format!("{ns}-shared"),
            &ns,
            "missing",
            json!({"matchLabels": {"never": "matches"}}),
        )
        .await;
    let mut spec = app_spec(&["repo"]);
    spec["accountRef"] = json!({"kind": "ClusterAccount", "name": format!("{ns}-shared")});
    world.authorization(&ns, "forbidden", spec).await;
    let ready = world.wait_not_ready(&ns, "forbidden").await;
    assert_eq!(ready.reason, "NamespaceNotAllowed");

    assert_eq!(
        world.ghes_calls_since(0),
        Vec::<String>::new(),
        "no GHES call"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn wrong_password_makes_one_request_in_total() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account(&ns, "bot", USER, "not-the-password", None)
        .await;
    world.app_secret(&ns).await;
    world.authorization(&ns, "ci", app_spec(&["repo"])).await;
    world
        .authorization(&ns, "ci-2", {
            let mut spec = app_spec(&["gist"]);
            spec["secret"]["name"] = json!("ci-2-token");
            spec
        })
        .await;
    world.start_operator();
    let ready = world.wait_not_ready(&ns, "ci").await;
    assert_eq!(ready.reason, "AccountNotReady");
    assert!(
        ready.message.contains("InvalidCredentials"),
        "{}",
        ready.message
    );
    world.wait_ready(&ns, "ci-2", "False").await;
    let accounts: kube::Api<ghes_oauth_operator::api::Account> =
        kube::Api::namespaced(world.client.clone(), &ns);
    wait_for("Account not Ready", || async {
        let account = accounts.get("bot").await.ok()?;
        let ready = account
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "False" && ready.reason == "InvalidCredentials").then_some(())
    })
    .await;
    // That it is never sent again is tests/reconcile.rs's a_refused_password_is_sent_once.
    assert_eq!(
        world.ghes_calls_since(0).len(),
        1,
        "{:?}",
        world.ghes_calls_since(0)
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_password_an_authorization_met_refused_is_not_sent_again_after_a_restart() {
    let mut world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    world.authorization(&ns, "ci", app_spec(&["repo"])).await;
    world.start_operator();
    world.wait_ready(&ns, "ci", "True").await;
    // Someone changes the bot's password on GHES; the Account still names the old one.
    world
        .ghes
        .set_password(USER, "changed-on-ghes")
        .expect("set password");
    let mark = world.ghes_seq();
    // An edit: the Authorization's reconcile, not the Account's, meets the 401.
    world
        .patch_authorization(&ns, "ci", json!({"spec": {"scopes": ["repo", "gist"]}}))
        .await;
    let failed = world.wait_not_ready(&ns, "ci").await;
    assert!(
        failed.message.contains("InvalidCredentials"),
        "{}",
        failed.message
    );
    // A crash right after: the refusal must already be on record.
    world.kill_operator();
    let accounts: kube::Api<ghes_oauth_operator::api::Account> =
        kube::Api::namespaced(world.client.clone(), &ns);
    world.start_operator();
    wait_for("the Account to report the refusal", || async {
        let account = accounts.get("bot").await.ok()?;
        let status = account.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "False" && status.refused_credentials.is_some()).then_some(())
    })
    .await;
    world.wait_ready(&ns, "ci", "False").await;
    let refused: Vec<String> = world
        .ghes_calls_since(mark)
        .into_iter()
        .filter(|call| call.ends_with(" 401"))
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", world.ghes_calls_since(mark));
    world.cleanup().await;
}

#[tokio::test]
async fn two_factor_account_works() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account(&ns, "bot", OTP_USER, OTP_PASSWORD, Some(OTP_SEED))
        .await;
    world.app_secret(&ns).await;
    world.start_operator();
    world.authorization(&ns, "ci", app_spec(&["repo"])).await;
    world.wait_ready(&ns, "ci", "True").await;
    let token = world.token(&ns, "ci-token", "token").await.expect("token");
    assert_eq!(
        world.ghes.state().authorizations[0].hashed_token.as_deref(),
        Some(sha256_hex(&token).as_str())
    );
    assert!(
        world
            .ghes
            .requests()
            .iter()
            .any(|r| r.otp && r.status < 300)
    );
    world.cleanup().await;
}

#[tokio::test]
async fn restarted_operator_creates_nothing() {
    let mut world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    world.authorization(&ns, "ci", app_spec(&["repo"])).await;
    world
        .authorization(
            &ns,
            "release",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    world.wait_ready(&ns, "ci", "True").await;
    world.wait_ready(&ns, "release", "True").await;
    world.kill_operator();
    let seq = world.ghes_seq();
    let admin = world.start_operator_with_admin();
    // The new process has reconciled both Authorizations (its first listing of them triggers
    // one reconcile each) and listed the account.
    wait_for(
        "two reconciles and a listing by the new operator",
        || async {
            let reconciles = metrics::authorization_reconciles(admin).await?;
            let listed = world
                .ghes_calls_since(seq)
                .iter()
                .any(|c| c.starts_with("GET /api/v3/authorizations"));
            (reconciles >= 2.0 && listed).then_some(())
        },
    )
    .await;
    let calls = world.ghes_calls_since(seq);
    assert!(calls.iter().all(|c| c.starts_with("GET")), "{calls:?}");
    assert_eq!(world.ghes.state().authorizations.len(), 2);
    world.cleanup().await;
}

#[tokio::test]
async fn crash_after_ghes_created_a_token_leaves_one_live_token() {
    let mut world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    // GHES creates the personal token, then holds the answer long enough for the crash.
    world
        .ghes
        .inject(
            Fault::latency(Duration::from_secs(30))
                .times(1)
                .method("POST")
                .after_processing(),
        )
        .expect("fault");
    world
        .authorization(
            &ns,
            "release",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    let orphan = wait_for("GHES to create the token", || async {
        world.ghes.state().authorizations.first().map(|a| a.id)
    })
    .await;
    world.kill_operator();
    assert!(
        world
            .secrets(&ns)
            .get_opt("release")
            .await
            .expect("get")
            .is_none(),
        "no Secret was written"
    );
    world.ghes.clear_faults();
    world.start_operator();
    world.wait_ready(&ns, "release", "True").await;
    let token = world.token(&ns, "release", "token").await.expect("token");
    let state = world.ghes.state();
    assert_eq!(
        state.authorizations.len(),
        1,
        "the orphan was replaced, not kept"
    );
    assert_eq!(
        state.authorizations[0].hashed_token.as_deref(),
        Some(sha256_hex(&token).as_str())
    );
    // The orphan was found by fingerprint and revoked, and one new token created. (The first
    // POST is not in the log: the emulator logs a request when its answer is sent, and that
    // answer is still held.)
    assert_ne!(state.authorizations[0].id, orphan);
    let calls = world.ghes_calls_since(0);
    let count = |method: &str| calls.iter().filter(|c| c.starts_with(method)).count();
    assert!(
        calls.contains(&format!("DELETE /api/v3/authorizations/{orphan} 204")),
        "{calls:?}"
    );
    assert_eq!(
        (count("POST"), count("DELETE"), count("PATCH"), count("PUT")),
        (1, 1, 0, 0),
        "{calls:?}"
    );
    world.cleanup().await;
}

/// A token issued through an account already in use costs the floor of Kubernetes calls: the
/// finalizer, one status write before the create (a personal token's intent, with
/// `Reconciling`), the Secret's create, one status write after, and its Event — no read.
#[tokio::test]
async fn a_first_token_costs_the_fewest_kubernetes_calls() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    let personal =
        |note: &str| json!({"accountRef": {"name": "bot"}, "scopes": ["gist"], "note": note});
    // The account's first token puts its in-use finalizers in place.
    world.authorization(&ns, "first", personal("first")).await;
    world.wait_ready(&ns, "first", "True").await;
    let mark = world.kube_seq();
    world.authorization(&ns, "second", personal("second")).await;
    world.wait_ready(&ns, "second", "True").await;
    let requests = world.kube_requests();
    if requests.is_empty() {
        // A real API server: its own counters are read by `bench --kubeconfig`.
        world.cleanup().await;
        return;
    }
    let calls: Vec<String> = requests
        .iter()
        .filter(|r| r.seq > mark && r.user == OPERATOR_USER)
        .filter(|r| !matches!(r.verb.as_str(), "watch" | "list"))
        .filter(|r| {
            r.name.as_deref() == Some("second") || (r.resource == "secrets" && r.verb == "create")
        })
        .map(|r| format!("{} {}", r.verb, r.resource))
        .collect();
    assert_eq!(
        calls,
        [
            "patch authorizations",
            "patch authorizations/status",
            "create secrets",
            "patch authorizations/status",
        ],
        "the operator's calls for one token"
    );
    // The Event: an Event's request names no object in its path, and the first token's own
    // Events may still be on their way, so it is counted by what the API holds about "second":
    // one Event, created once (a repeat would be a series on it).
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(world.client.clone(), &ns);
    let about_second: Vec<_> = events
        .list(&Default::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("second"))
        .map(|e| (e.reason, e.series.map(|s| s.count)))
        .collect();
    assert_eq!(
        about_second,
        [(Some("Created".to_owned()), None)],
        "the Events about one token"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn cluster_account_serves_two_allowed_namespaces() {
    let mut world = World::new(&["a", "b"]).await;
    let (a, b) = (world.ns(0).to_owned(), world.ns(1).to_owned());
    let label = format!("{a}-shared");
    for ns in [&a, &b] {
        world
            .namespaces_api()
            .patch(
                ns,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"shared": label}}})),
            )
            .await
            .expect("label namespace");
    }
    world
        .apply_json(
            &a,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "shared-credentials", "namespace": a},
                "stringData": {"username": USER, "password": PASSWORD},
            }),
        )
        .await;
    world
        .cluster_account(
            &label,
            &a,
            "shared-credentials",
            json!({"matchLabels": {"shared": label}}),
        )
        .await;
    world.start_operator();
    for ns in [&a, &b] {
        world
            .authorization(ns, "deploy", json!({"accountRef": {"kind": "ClusterAccount", "name": label}, "scopes": ["repo:status"]}))
            .await;
    }
    world.wait_ready(&a, "deploy", "True").await;
    world.wait_ready(&b, "deploy", "True").await;
    assert_eq!(world.ghes.state().authorizations.len(), 2);
    world.cleanup().await;
}

/// A new `secret.name` moves the token: the new Secret holds the same token, the old Secret
/// (the operator's own) goes, and GHES is not called.
/// The Secret is created whole by one create; a later change of its key or labels is an apply
/// that leaves nothing of the earlier content behind (the create's fields are taken over
/// first).
#[tokio::test]
async fn a_new_secret_key_or_label_leaves_nothing_of_the_old_one() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    let mut spec = app_spec(&["repo"]);
    spec["secret"]["labels"] = json!({"team": "a", "tier": "ci"});
    world.authorization(&ns, "ci", spec.clone()).await;
    world.wait_ready(&ns, "ci", "True").await;
    let token = world.token(&ns, "ci-token", "token").await.expect("token");
    let seq = world.ghes_seq();
    spec["secret"]["key"] = json!("gh-token");
    spec["secret"]["labels"] = json!({"team": "a"});
    world.authorization(&ns, "ci", spec).await;
    world.wait_ready(&ns, "ci", "True").await;
    let secret = wait_for("the Secret under its new key only", || async {
        let secret = world.secrets(&ns).get_opt("ci-token").await.ok()??;
        let keys: Vec<&String> = secret.data.iter().flatten().map(|(k, _)| k).collect();
        (keys == ["gh-token"]).then_some(secret)
    })
    .await;
    assert_eq!(
        world.token(&ns, "ci-token", "gh-token").await.as_deref(),
        Some(token.as_str()),
        "the same token, under the new key"
    );
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert!(!labels.contains_key("tier"), "{labels:?}");
    assert!(
        world.ghes_writes_since(seq).is_empty(),
        "{:?}",
        world.ghes_writes_since(seq)
    );
    world.cleanup().await;
}

#[tokio::test]
async fn renaming_the_secret_moves_the_token_without_a_ghes_call() {
    let world = world_with_account().await;
    let ns = world.ns(0).to_owned();
    world.authorization(&ns, "ci", app_spec(&["repo"])).await;
    world.wait_ready(&ns, "ci", "True").await;
    let token = world.token(&ns, "ci-token", "token").await.expect("token");
    let seq = world.ghes_seq();
    world
        .authorization(&ns, "ci", {
            let mut spec = app_spec(&["repo"]);
            spec["secret"]["name"] = json!("ci-renamed");
            spec
        })
        .await;
    world.wait_ready(&ns, "ci", "True").await;
    assert_eq!(
        world.token(&ns, "ci-renamed", "token").await.as_deref(),
        Some(token.as_str())
    );
    wait_for("the old Secret to go", || async {
        world
            .secrets(&ns)
            .get_opt("ci-token")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let writes: Vec<String> = world
        .ghes_calls_since(seq)
        .into_iter()
        .filter(|call| !call.starts_with("GET "))
        .collect();
    assert!(writes.is_empty(), "no GHES write: {writes:?}");
    world.cleanup().await;
}
