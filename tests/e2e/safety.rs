//! The destructive paths: nothing that is not provably this resource's, this installation's,
//! is ever revoked, and deletion never wedges.

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube_testkit::FaultSpec;
use serde_json::json;

use crate::harness::*;

fn app_spec(account: &str) -> serde_json::Value {
    json!({
        "accountRef": {"name": account},
        "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}},
        "scopes": ["repo"],
    })
}

fn personal_spec(account: &str, note: &str) -> serde_json::Value {
    json!({"accountRef": {"name": account}, "scopes": ["gist"], "note": note})
}

/// Creates (POST, or PUT answered 201) and deletes in the emulator's log since `seq`.
fn creates_and_deletes(world: &World, seq: u64) -> (Vec<String>, Vec<String>) {
    let calls = world.ghes_calls_since(seq);
    let creates = calls
        .iter()
        .filter(|c| c.starts_with("POST") || (c.starts_with("PUT") && c.ends_with(" 201")))
        .cloned()
        .collect();
    let deletes = calls
        .iter()
        .filter(|c| c.starts_with("DELETE"))
        .cloned()
        .collect();
    (creates, deletes)
}

const PRUNE_NOW: &str = "1s";

#[tokio::test]
async fn accounts_and_installations_sharing_one_ghes_user_never_prune_each_other() {
    let mut world = World::new(&["a", "b"]).await;
    let (a, b) = (world.ns(0).to_owned(), world.ns(1).to_owned());
    let prune = json!({"syncInterval": "30s",
                       "prune": {"mode": "Enabled", "minAge": PRUNE_NOW}});
    // One Account per namespace for one shared bot user, as platform teams do.
    for ns in [&a, &b] {
        world
            .account_with(ns, "bot", USER, PASSWORD, None, prune.clone())
            .await;
        world.app_secret(ns).await;
    }
    world.authorization(&a, "ci", app_spec("bot")).await;
    world
        .authorization(&b, "release", personal_spec("bot", "release in b"))
        .await;
    world.start_operator();
    // A second cluster with its own installation, the same bot user and the same app.
    let mut other = world.other_cluster("elsewhere").await;
    let ours = std::mem::replace(&mut world.client, other.client.clone());
    world
        .account_with(&other.namespace, "bot", USER, PASSWORD, None, prune.clone())
        .await;
    world.app_secret(&other.namespace).await;
    world
        .authorization(&other.namespace, "deploy", app_spec("bot"))
        .await;
    world.client = ours;
    other.start_operator_with(&["--installation-id", "second-cluster"]);

    world.wait_ready(&a, "ci", "True").await;
    world.wait_ready(&b, "release", "True").await;
    wait_for("the other cluster's token", || async {
        let api = kube::Api::<ghes_oauth_operator::api::Authorization>::namespaced(
            other.client.clone(),
            &other.namespace,
        );
        let deploy = api.get_opt("deploy").await.ok()??;
        let status = deploy.status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
    let settled = world.ghes_seq();
    let (creates, deletes) = creates_and_deletes(&world, 0);
    assert_eq!(creates.len(), 3, "one token each: {creates:?}");
    assert!(deletes.is_empty(), "{deletes:?}");

    // Several sync intervals: the accounts list their grants (and prune) again and again.
    wait_for_within(
        "six listings of grants",
        Duration::from_secs(180),
        || async {
            let listings = world
                .ghes_calls_since(settled)
                .iter()
                .filter(|c| c.starts_with("GET /api/v3/applications/grants "))
                .count();
            (listings >= 6).then_some(())
        },
    )
    .await;
    let (creates, deletes) = creates_and_deletes(&world, settled);
    assert!(
        deletes.is_empty(),
        "nothing declared is pruned: {deletes:?}"
    );
    assert!(creates.is_empty(), "nothing is reissued: {creates:?}");
    assert_eq!(world.ghes.state().authorizations.len(), 3);
    let listings = world
        .ghes_calls_since(settled)
        .iter()
        .filter(|c| c.starts_with("GET /api/v3/applications/grants "))
        .count();
    assert!(listings >= 6, "the accounts kept syncing: {listings}");
    let prune = world
        .account_status(&a, "bot")
        .await
        .and_then(|s| s.prune)
        .expect("a prune run");
    assert_eq!(prune.candidate_count, 0, "{prune:?}");
    assert_eq!(prune.foreign, 1, "the other cluster's token: {prune:?}");
    world.cleanup().await;
}

#[tokio::test]
async fn a_grant_is_kept_while_a_token_of_its_app_is_kept() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let (kept, _) = seed(
        &world,
        "deploy key of another tool",
        Some(OTHER_CLIENT_ID),
        Duration::from_secs(7200),
    );
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled", "keep": {"ids": [kept]}}}),
        )
        .await;
    world.app_secret(&ns).await;
    world.authorization(&ns, "ci", app_spec("bot")).await;
    world.start_operator();
    world.wait_ready(&ns, "ci", "True").await;
    let run = wait_for("a run that protects the grant", || async {
        let prune = world.account_status(&ns, "bot").await?.prune?;
        prune
            .skipped
            .iter()
            .any(|s| s.reason.contains(&format!("its token {} is kept", kept)))
            .then_some(prune)
    })
    .await;
    assert_eq!(run.deleted, 0, "{run:?}");
    let state = world.ghes.state();
    assert!(state.authorizations.iter().any(|a| a.id == kept));
    assert!(
        state
            .grants
            .iter()
            .any(|g| g.app.client_id == OTHER_CLIENT_ID)
    );
    assert!(
        world
            .ghes_calls_since(0)
            .iter()
            .all(|c| !c.starts_with("DELETE")),
        "{:?}",
        world.ghes_calls_since(0)
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_status_naming_another_resources_token_never_revokes_it() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(&ns, "victim", personal_spec("bot", "victim"))
        .await;
    let mut copied = personal_spec("bot", "copied");
    copied["secret"] = json!({"name": "copied-token"});
    world.authorization(&ns, "copied", copied).await;
    world.start_operator();
    let victim = world.wait_ready(&ns, "victim", "True").await;
    world.wait_ready(&ns, "copied", "True").await;
    let victim_status = victim.status.expect("status");
    let victim_id = victim_status.authorization_id.expect("id");
    // A status restored from a backup, copied with a namespace, or edited by hand: it names
    // the other resource's token and fingerprint.
    world
        .authorizations(&ns)
        .patch_status(
            "copied",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "authorizationId": victim_id,
                "fingerprint": victim_status.fingerprint,
            }})),
        )
        .await
        .expect("patch status");
    // The reconcile finds its own token again, leaves the other alone, and says so.
    wait_for("the copied status healed", || async {
        let status = world.authorizations(&ns).get("copied").await.ok()?.status?;
        let healed = status.authorization_id.is_some_and(|id| id != victim_id)
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
        healed.then_some(())
    })
    .await;
    assert!(
        world
            .event_reasons(&ns, "copied")
            .await
            .contains(&"NotOwned".to_owned())
    );
    assert_eq!(
        world.ghes.state().authorizations.len(),
        2,
        "no token was added"
    );
    world.delete_authorization(&ns, "copied").await;
    let state = world.ghes.state();
    assert!(
        state
            .authorizations
            .iter()
            .any(|a| a.id == victim_id as u64),
        "the other resource's token is live"
    );
    assert_eq!(
        world
            .token(&ns, "victim", "token")
            .await
            .map(|t| sha256_hex(&t)),
        state
            .authorizations
            .iter()
            .find(|a| a.id == victim_id as u64)
            .and_then(|a| a.hashed_token.clone()),
        "and still the one in its Secret"
    );
    assert!(
        world
            .ghes_calls_since(0)
            .iter()
            .all(|c| !c.starts_with(&format!("DELETE /api/v3/authorizations/{victim_id} "))),
        "{:?}",
        world.ghes_calls_since(0)
    );
    assert_eq!(
        state.authorizations.len(),
        1,
        "the deleted resource's own token went"
    );
    world.wait_ready(&ns, "victim", "True").await;
    world.cleanup().await;
}

#[tokio::test]
async fn deleting_an_authorization_whose_account_does_not_exist_finishes() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.app_secret(&ns).await;
    world
        .authorization(&ns, "typo", app_spec("no-such-account"))
        .await;
    world.start_operator();
    world.wait_not_ready(&ns, "typo").await;
    world.delete_authorization(&ns, "typo").await;
    let reasons = world.event_reasons(&ns, "typo").await;
    assert!(
        reasons.contains(&"RevokeAbandoned".to_owned()),
        "{reasons:?}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_token_whose_status_was_never_written_is_revoked_on_delete() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.app_secret(&ns).await;
    // GHES issues the token, but neither the token Secret nor any status reaches the API
    // server: as a crash right after the PUT. (The credentials Secret's in-use finalizer,
    // written before the PUT, still goes through.)
    for (resource, name) in [("secrets", Some("ci")), ("authorizations/status", None)] {
        assert!(
            world.kube_fault(FaultSpec {
                verb: "patch".into(),
                resource: resource.into(),
                namespace: Some(ns.clone()),
                name: name.map(str::to_owned),
                user: None,
                delay_ms: None,
                status: Some(500),
                count: 1000,
            }) || std::env::var_os("E2E_KUBECONFIG").is_some()
        );
    }
    if std::env::var_os("E2E_KUBECONFIG").is_some() {
        // A real cluster cannot be told to fail these writes.
        world.cleanup().await;
        return;
    }
    world.authorization(&ns, "ci", app_spec("bot")).await;
    world.start_operator();
    wait_for("GHES to issue the token", || async {
        (world.ghes.state().authorizations.len() == 1).then_some(())
    })
    .await;
    let status = world
        .authorizations(&ns)
        .get("ci")
        .await
        .expect("get")
        .status;
    assert!(
        status.is_none_or(|s| s.authorization_id.is_none() && s.conditions.is_empty()),
        "no status was written"
    );
    world.delete_authorization(&ns, "ci").await;
    wait_for("the token to be revoked", || async {
        world.ghes.state().authorizations.is_empty().then_some(())
    })
    .await;
    world.cleanup().await;
}

#[tokio::test]
async fn token_secrets_pass_owner_reference_permission_enforcement() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.app_secret(&ns).await;
    world.authorization(&ns, "ci", app_spec("bot")).await;
    world.start_operator();
    // The test server refuses, as OpenShift does, a blockOwnerDeletion owner reference from a
    // caller that may not update the owner's finalizers: the RBAC table must grant it.
    world.wait_ready(&ns, "ci", "True").await;
    let secret = world.secrets(&ns).get("ci").await.expect("token Secret");
    let owner = secret
        .metadata
        .owner_references
        .as_deref()
        .and_then(|refs| refs.first())
        .cloned()
        .expect("an owner reference");
    assert_eq!(
        (owner.kind.as_str(), owner.block_owner_deletion),
        ("Authorization", Some(true))
    );
    // Later reconciles create nothing: tests/reconcile.rs's nothing_to_do.
    let (creates, deletes) = creates_and_deletes(&world, 0);
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert!(deletes.is_empty(), "{deletes:?}");
    world.cleanup().await;
}

/// The Account's Ready reason, once it is `reason`.
async fn wait_account_reason(world: &World, ns: &str, reason: &str) {
    wait_for(&format!("Account Ready=False {reason}"), || async {
        let status = world.account_status(ns, "bot").await?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == reason)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_refused_password_is_not_sent_again_after_a_restart_or_a_metadata_change() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account(&ns, "bot", USER, "not-the-password", None)
        .await;
    world
        .authorization(&ns, "release", personal_spec("bot", "release"))
        .await;
    world.start_operator();
    wait_account_reason(&world, &ns, "InvalidCredentials").await;
    wait_for("the refusal recorded in status", || async {
        let status = world.account_status(&ns, "bot").await?;
        let recorded = serde_json::to_value(&status).ok()?["refusedCredentials"].clone();
        (recorded["reason"] == "InvalidCredentials").then_some(recorded)
    })
    .await;
    assert_eq!(world.ghes_calls_since(0).len(), 1);

    // A restart, a label on the Secret (as secret syncers do) and an Account edit.
    world.kill_operator();
    world.start_operator();
    world
        .secrets(&ns)
        .patch(
            "bot-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"synced-by": "external-secrets"}}})),
        )
        .await
        .expect("label the Secret");
    world
        .account_with(
            &ns,
            "bot",
            USER,
            "not-the-password",
            None,
            json!({"syncInterval": "10m"}),
        )
        .await;
    wait_account_reason(&world, &ns, "CredentialsRefused").await;
    // The new process's verdict (the old one's AccountNotReady may still stand for a moment).
    wait_for("the Authorization to see the refusal", || async {
        let status = world
            .authorizations(&ns)
            .get("release")
            .await
            .ok()?
            .status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == "CredentialsRefused")
            .then_some(())
    })
    .await;
    // The new process reconciled the Account and the Authorization without sending it; that no
    // later reconcile does is tests/reconcile.rs's a_refused_password_is_sent_once.
    assert_eq!(
        world.ghes_calls_since(0),
        ["GET /api/v3/authorizations 401"],
        "the wrong password went to GHES once"
    );

    // The right password is tried at once, and clears the record.
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.wait_ready(&ns, "release", "True").await;
    wait_for("the refusal cleared", || async {
        let status = world.account_status(&ns, "bot").await?;
        let recorded = serde_json::to_value(&status).ok()?["refusedCredentials"].clone();
        recorded.is_null().then_some(())
    })
    .await;
    world.cleanup().await;
}

#[tokio::test]
async fn an_exhausted_rate_limit_parks_no_worker_and_waits_for_the_reset() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .account(&ns, "otp", OTP_USER, OTP_PASSWORD, Some(OTP_SEED))
        .await;
    // GHES: the bot user's budget is spent for the next hour.
    world
        .ghes
        .inject(
            ghes_emulator::Fault::status(403)
                .ratelimit_reset_in(3600)
                .login(USER),
        )
        .expect("fault");
    world
        .authorization(&ns, "limited", personal_spec("bot", "limited"))
        .await;
    // One worker per controller: a worker parked until the reset would stop everything.
    world.start_operator_with(&["--concurrency", "1"]);
    let synced = wait_for("Synced=False RateLimited", || async {
        let status = world
            .authorizations(&ns)
            .get("limited")
            .await
            .ok()?
            .status?;
        status
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Synced" && c.reason == "RateLimited")
    })
    .await;
    assert!(synced.message.contains("resets at"), "{}", synced.message);
    // Another account with budget left is served at once.
    world
        .authorization(&ns, "other", personal_spec("otp", "other"))
        .await;
    world.wait_ready(&ns, "other", "True").await;
    // The one worker served "other" after "limited" was parked until the reset: had it been
    // retried meanwhile, the log would show a second 403 by now.
    let refused = world
        .ghes_calls_since(0)
        .into_iter()
        .filter(|c| c.ends_with(" 403"))
        .count();
    assert_eq!(refused, 1, "nothing more is sent before the reset");
    world.cleanup().await;
}

#[tokio::test]
async fn credentials_in_a_url_or_plain_http_to_a_remote_host_are_refused() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let api = kube::Api::<ghes_oauth_operator::api::Account>::namespaced(world.client.clone(), &ns);
    let refused = |spec: serde_json::Value| {
        let api = api.clone();
        async move {
            let account: ghes_oauth_operator::api::Account = serde_json::from_value(json!({
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
                "metadata": {"name": "bad"},
                "spec": spec,
            }))
            .expect("account");
            match api.create(&Default::default(), &account).await {
                Err(kube::Error::Api(status)) => status.message,
                other => panic!("accepted: {other:?}"),
            }
        }
    };
    let credentials = json!({"name": "bot-credentials"});
    let message = refused(json!({"server": "https://bot:secret@ghes.example.com",
                                 "credentialsSecretRef": credentials}))
    .await;
    assert!(message.contains("spec.server"), "{message}");
    let message = refused(json!({"server": "https://ghes.example.com",
                                 "apiUrl": "http://ghes.example.com/api/v3",
                                 "credentialsSecretRef": credentials}))
    .await;
    assert!(message.contains("spec.apiUrl"), "{message}");
    // Loopback test doubles still work over http (as this whole suite does), and nothing was
    // sent anywhere.
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(&ns, "release", personal_spec("bot", "release"))
        .await;
    world.start_operator();
    world.wait_ready(&ns, "release", "True").await;
    world.cleanup().await;
}

/// A self-signed CA (test data only: it signs nothing).
const TEST_CA: &str = include_str!("../support/test-ca.pem");

#[tokio::test]
async fn a_ca_bundle_comes_from_a_config_map_and_nothing_is_sent_without_it() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"caBundleRef": {"name": "ghes-ca"}}),
        )
        .await;
    world
        .authorization(&ns, "release", personal_spec("bot", "release"))
        .await;
    world.start_operator();
    wait_account_reason(&world, &ns, "CABundleNotFound").await;
    let ready = world.wait_not_ready(&ns, "release").await;
    assert_eq!(ready.reason, "CABundleNotFound", "{}", ready.message);
    assert!(ready.message.contains("ghes-ca"), "{}", ready.message);
    assert!(
        world.ghes_calls_since(0).is_empty(),
        "no request without the CA"
    );
    let config_map = |ca: &str| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ghes-ca", "namespace": ns},
            "data": {"ca.crt": ca},
        })
    };
    world.apply_json(&ns, config_map(TEST_CA)).await;
    world.wait_ready(&ns, "release", "True").await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_refused_create_does_not_hold_pruning_back() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    seed(&world, "taken", None, Duration::from_secs(60));
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"syncInterval": "30s", "prune": {"mode": "Enabled"}}),
        )
        .await;
    // GHES refuses the create for good: personal token notes are unique.
    world
        .authorization(&ns, "clash", personal_spec("bot", "taken"))
        .await;
    world.start_operator();
    let ready = world.wait_not_ready(&ns, "clash").await;
    assert_eq!(ready.reason, "InvalidSpec", "{}", ready.message);
    // Later, a stale hand-made token: the next sync's prune run deletes it.
    let (stale, _) = seed(&world, "stale", None, Duration::from_secs(7200));
    wait_for_within(
        "the stale token to be pruned",
        Duration::from_secs(100),
        || async {
            world
                .ghes
                .state()
                .authorizations
                .iter()
                .all(|a| a.id != stale)
                .then_some(())
        },
    )
    .await;
    // Each status write triggers a reconcile: the refused create is not sent again for each.
    let refused = world
        .ghes
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status == 422)
        .count();
    assert_eq!(refused, 1, "the refused create was sent {refused} times");
    world.cleanup().await;
}

#[tokio::test]
async fn an_adopted_token_has_its_scopes_repaired() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.app_secret(&ns).await;
    world.authorization(&ns, "ci", app_spec("bot")).await;
    world.start_operator();
    let ci = world.wait_ready(&ns, "ci", "True").await;
    let id = ci.status.expect("status").authorization_id.expect("id");
    world.kill_operator();
    // Someone widens the token on GHES, and the status is lost (a restore without status).
    let patched = reqwest::Client::new()
        .patch(format!("{}/authorizations/{id}", world.ghes.api_url()))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"add_scopes": ["delete_repo"]}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    world
        .authorizations(&ns)
        .patch_status(
            "ci",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null})),
        )
        .await
        .expect("clear status");
    world.start_operator();
    wait_for("the widened token narrowed back", || async {
        let state = world.ghes.state();
        let live = state.authorizations.iter().find(|a| a.id == id as u64)?;
        (live.scopes == ["repo"]).then_some(())
    })
    .await;
    world.wait_ready(&ns, "ci", "True").await;
    let (creates, deletes) = creates_and_deletes(&world, 0);
    assert_eq!(creates.len(), 1, "the same token, adopted: {creates:?}");
    assert!(deletes.is_empty(), "{deletes:?}");
    let reasons = world.event_reasons(&ns, "ci").await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "Created").count(),
        1,
        "adopting is no creation: {reasons:?}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_token_missing_from_a_listing_is_confirmed_before_it_is_replaced() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(&ns, "release", personal_spec("bot", "release"))
        .await;
    world.start_operator();
    let release = world.wait_ready(&ns, "release", "True").await;
    let id = release
        .status
        .expect("status")
        .authorization_id
        .expect("id");
    // The next listings skip the live token, as offset paging does when earlier items are
    // deleted between pages.
    let seq = world.ghes_seq();
    world.ghes.update_settings(ghes_emulator::SettingsPatch {
        listing_skips: Some(vec![id as u64]),
        ..Default::default()
    });
    // A spec change gives the account a new client, which lists afresh, and reconciles the
    // Authorization against that listing.
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"syncInterval": "10m"}),
        )
        .await;
    wait_for("GHES asked about the token", || async {
        world
            .ghes_calls_since(seq)
            .contains(&format!("GET /api/v3/authorizations/{id} 200"))
            .then_some(())
    })
    .await;
    // It stays Ready with the same token: asked about, neither created nor deleted.
    let release = world.wait_ready(&ns, "release", "True").await;
    let (creates, deletes) = creates_and_deletes(&world, seq);
    assert!(
        creates.is_empty() && deletes.is_empty(),
        "{creates:?} {deletes:?}"
    );
    assert_eq!(release.status.and_then(|s| s.authorization_id), Some(id));
    world.cleanup().await;
}

#[tokio::test]
async fn a_cluster_account_cannot_borrow_credentials_from_another_namespace() {
    let mut world = World::new(&["operator", "team"]).await;
    let (operator_ns, team) = (world.ns(0).to_owned(), world.ns(1).to_owned());
    // A Secret of some team, which whoever may create ClusterAccounts tries to send away.
    world
        .apply_json(
            &team,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "team-bot", "namespace": team},
                "stringData": {"username": USER, "password": PASSWORD},
            }),
        )
        .await;
    let cluster_account = format!("{team}-grab");
    world
        .cluster_account(&cluster_account, &team, "team-bot", json!({}))
        .await;
    world
        .authorization(
            &operator_ns,
            "grab",
            json!({"accountRef": {"kind": "ClusterAccount", "name": cluster_account},
                   "scopes": ["repo"]}),
        )
        .await;
    world.start_operator();
    let ready = world.wait_not_ready(&operator_ns, "grab").await;
    assert_eq!(ready.reason, "InvalidSpec", "{}", ready.message);
    assert!(
        ready.message.contains("operator's namespace"),
        "{}",
        ready.message
    );
    // A configuration error: the reconcile stopped before any GHES call, and waits for a
    // change rather than retrying (tests/reconcile.rs shows one such reconcile's calls).
    assert!(
        world.ghes_calls_since(0).is_empty(),
        "the Secret went nowhere: {:?}",
        world.ghes_calls_since(0)
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_secret_made_by_someone_else_meanwhile_is_never_taken_over() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    // GHES takes three seconds to answer the create: time for someone to make the Secret.
    world
        .ghes
        .inject(
            ghes_emulator::Fault::latency(Duration::from_secs(3))
                .times(1)
                .method("POST"),
        )
        .expect("fault");
    world
        .authorization(&ns, "release", personal_spec("bot", "release"))
        .await;
    world.start_operator();
    wait_for("the create under way", || async {
        let status = world
            .authorizations(&ns)
            .get("release")
            .await
            .ok()?
            .status?;
        status.fingerprint.map(|_| ())
    })
    .await;
    world
        .apply_json(
            &ns,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "release", "namespace": ns},
                "stringData": {"config": "someone else's"},
            }),
        )
        .await;
    let ready = world.wait_not_ready(&ns, "release").await;
    assert_eq!(ready.reason, "SecretConflict", "{}", ready.message);
    let theirs = world
        .secrets(&ns)
        .get("release")
        .await
        .expect("their Secret");
    assert!(theirs.metadata.owner_references.is_none(), "not taken over");
    assert_eq!(
        theirs.data.map(|d| d.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["config".to_owned()])
    );
    // Once it goes, the Authorization gets its Secret at once (the Secret is watched).
    world
        .secrets(&ns)
        .delete("release", &DeleteParams::default())
        .await
        .expect("delete their Secret");
    world.wait_ready(&ns, "release", "True").await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_totp_seed_under_the_documented_key_is_used_without_naming_it() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    // As examples/10-account.yaml says: keys username, password and totpSecret; the Account
    // names no totpSecretKey.
    world
        .apply_json(
            &ns,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "otp-credentials", "namespace": ns},
                "stringData": {"username": OTP_USER, "password": OTP_PASSWORD,
                               "totpSecret": OTP_SEED},
            }),
        )
        .await;
    world
        .apply_json(
            &ns,
            json!({
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
                "metadata": {"name": "otp", "namespace": ns},
                "spec": {"server": "https://ghes.invalid", "apiUrl": world.ghes.api_url(),
                         "credentialsSecretRef": {"name": "otp-credentials"}},
            }),
        )
        .await;
    world
        .authorization(&ns, "release", personal_spec("otp", "release"))
        .await;
    world.start_operator();
    world.wait_ready(&ns, "release", "True").await;
    world.cleanup().await;
}
