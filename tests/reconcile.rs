//! Reconcile scenarios, one reconcile at a time (as kube-rs/controller-rs's `fixtures.rs`):
//! the GHES emulator answers GHES, the Kubernetes API test server answers the controller and
//! records its requests, and each test names every call one reconcile must make, in order —
//! an extra call fails it as surely as a missing one.
//!
//! The reconcile runs in the test's process against the operator's library, with the watch
//! caches it reads (Accounts, ClusterAccounts) filled by the test, so there is no controller,
//! no watch and no timing: what is asserted is exactly what the reconcile did.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/fixture.rs"]
mod fixture;

use kube::api::{Api, DeleteParams};
use serde_json::json;

use fixture::*;

#[tokio::test]
async fn first_issue_of_an_app_token() {
    let fixture = Fixture::new().await;
    fixture.authorization("ci", app_spec(&["repo"])).await;
    // The first reconcile only adds the finalizer; its own write triggers the next.
    fixture
        .reconcile("ci")
        .await
        .expect(&["patch authorizations/ci"], &[]);
    fixture.reconcile("ci").await.expect(
        &[
            // The app's client secret; the token Secret is known absent from the watch.
            "get secrets/oauth-app",
            // The account's first token: its Account and credentials Secret are held by the
            // in-use finalizer before the PUT.
            "patch accounts/bot",
            "patch secrets/bot-credentials",
            "create events",
            // Created whole: no apply after the create.
            "create secrets",
            // One status write: an app token's PUT is a get-or-create, no intent to record.
            "patch authorizations/status/ci",
        ],
        &["PUT /api/v3/authorizations/clients/{client_id}/{fingerprint} 201"],
    );
    assert_eq!(
        fixture.ready("ci").await,
        ("True".into(), "TokenReady".into())
    );
    assert_eq!(fixture.ghes.state().authorizations.len(), 1);
}

#[tokio::test]
async fn first_issue_of_a_personal_token() {
    let fixture = Fixture::new().await;
    fixture.authorization("release", personal_spec()).await;
    fixture
        .reconcile("release")
        .await
        .expect(&["patch authorizations/release"], &[]);
    // The fingerprint is in status before the POST, so a lost answer is found again.
    fixture.reconcile("release").await.expect(
        &[
            "patch accounts/bot",
            "patch secrets/bot-credentials",
            // One status write before the create (Reconciling and the intent), one after.
            "patch authorizations/status/release",
            "create events",
            "create secrets",
            "patch authorizations/status/release",
        ],
        &["POST /api/v3/authorizations 201"],
    );
    assert_eq!(
        fixture.ready("release").await,
        ("True".into(), "TokenReady".into())
    );
}

#[tokio::test]
async fn nothing_to_do() {
    let fixture = Fixture::new().await;
    fixture.issued("ci", app_spec(&["repo"])).await;
    // The Secret the last reconcile wrote is held as written: no Kubernetes call, no GHES
    // call.
    fixture.reconcile("ci").await.expect(&[], &[]);
    fixture.reconcile("ci").await.expect(&[], &[]);
    // A label edit: the object is newer than the one this process last wrote, so it is read
    // once from the API server (not a cache) before anything is decided; no GHES call.
    fixture
        .apply(json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": "ci", "namespace": NS, "labels": {"team": "a"}},
            "spec": app_spec(&["repo"]),
        }))
        .await;
    fixture
        .reconcile("ci")
        .await
        .expect(&["get authorizations/ci"], &[]);
    fixture.reconcile("ci").await.expect(&[], &[]);
}

#[tokio::test]
async fn scope_drift_is_one_patch() {
    let fixture = Fixture::new().await;
    fixture.issued("ci", app_spec(&["repo"])).await;
    fixture.reconcile("ci").await;
    fixture
        .authorization("ci", app_spec(&["repo", "workflow"]))
        .await;
    // A new generation: re-read before writing to GHES, one PATCH, status and an Event.
    fixture.reconcile("ci").await.expect(
        &[
            "get authorizations/ci",
            "create events",
            "patch authorizations/status/ci",
        ],
        &["PATCH /api/v3/authorizations/1 200"],
    );
    fixture.reconcile("ci").await.expect(&[], &[]);
    assert_eq!(
        fixture.ghes.state().authorizations[0].scopes,
        ["repo", "workflow"]
    );
}

#[tokio::test]
async fn a_lost_secret_is_reissued_and_the_old_token_revoked() {
    let fixture = Fixture::new().await;
    fixture.issued("ci", app_spec(&["repo"])).await;
    fixture.reconcile("ci").await;
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(fixture.admin.clone(), NS)
        .delete(TOKEN_SECRET, &DeleteParams::default())
        .await
        .expect("delete the token Secret");
    fixture.secret_changed(TOKEN_SECRET).await;
    fixture.reconcile("ci").await.expect(
        &[
            "create events",
            "create secrets",
            "patch authorizations/status/ci",
        ],
        &[
            "DELETE /api/v3/authorizations/1 204",
            "PUT /api/v3/authorizations/clients/{client_id}/{fingerprint} 201",
        ],
    );
    let live: Vec<u64> = fixture
        .ghes
        .state()
        .authorizations
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(live, [2]);
}

#[tokio::test]
async fn a_missing_account_is_a_condition_without_a_ghes_call() {
    let fixture = Fixture::new().await;
    fixture
        .authorization(
            "stray",
            json!({"accountRef": {"name": "nobody"}, "scopes": ["gist"]}),
        )
        .await;
    fixture.reconcile("stray").await;
    let (result, calls) = fixture.try_reconcile("stray").await;
    assert_eq!(result, Ok(Some("AccountNotFound")));
    calls.expect(&["patch authorizations/status/stray", "create events"], &[]);
    assert_eq!(
        fixture.ready("stray").await,
        ("False".into(), "AccountNotFound".into())
    );
}

#[tokio::test]
async fn deletion_with_policy_delete_revokes_the_token() {
    let fixture = Fixture::new().await;
    fixture.issued("ci", app_spec(&["repo"])).await;
    fixture
        .authorizations()
        .delete("ci", &DeleteParams::default())
        .await
        .expect("delete");
    fixture.reconcile("ci").await.expect(
        &[
            "get authorizations/ci",
            "create events",
            "patch authorizations/ci",
        ],
        &["DELETE /api/v3/authorizations/1 204"],
    );
    assert!(fixture.ghes.state().authorizations.is_empty());
    assert!(
        fixture
            .authorizations()
            .get_opt("ci")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_finished_deletion_is_not_run_again_from_a_watch_cache_that_lags() {
    let fixture = Fixture::new().await;
    fixture.issued("ci", app_spec(&["repo"])).await;
    fixture
        .authorizations()
        .delete("ci", &DeleteParams::default())
        .await
        .expect("delete");
    // What the watch cache holds until it delivers the finalizer's removal: the object being
    // deleted, finalizer still on.
    let cached = fixture.authorizations().get("ci").await.expect("get");
    fixture.reconcile("ci").await;
    assert!(fixture.ghes.state().authorizations.is_empty());
    // A reconcile queued meanwhile (an Account event maps to its Authorizations) gets that
    // copy: the cleanup is over, nothing is sent to GHES again and nothing fails.
    let (result, calls) = fixture.try_reconcile_object(cached).await;
    assert_eq!(result, Ok(None), "{calls:#?}");
    calls.expect(&[], &[]);
}

#[tokio::test]
async fn deletion_with_policy_orphan_leaves_the_token() {
    let fixture = Fixture::new().await;
    let mut spec = personal_spec();
    spec["deletionPolicy"] = json!("Orphan");
    fixture.issued("release", spec).await;
    fixture
        .authorizations()
        .delete("release", &DeleteParams::default())
        .await
        .expect("delete");
    fixture.reconcile("release").await.expect(
        &[
            "get authorizations/release",
            "create events",
            "patch authorizations/release",
        ],
        &[],
    );
    assert_eq!(fixture.ghes.state().authorizations.len(), 1);
    assert!(
        fixture
            .authorizations()
            .get_opt("release")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_refused_password_is_sent_once() {
    let mut fixture = Fixture::new().await;
    fixture.issued("ci", app_spec(&["repo"])).await;
    fixture
        .apply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bot-credentials", "namespace": NS},
            "stringData": {"username": LOGIN, "password": "not-the-password"},
        }))
        .await;
    fixture.secret_changed("bot-credentials").await;
    let (result, calls) = fixture.reconcile_account_calls().await;
    assert_eq!(result, Ok(Some("InvalidCredentials")), "{calls:?}");
    assert_eq!(calls.ghes, ["GET /api/v3/authorizations 401"]);
    // Neither the Account nor an Authorization sends it again, however often they reconcile.
    for _ in 0..2 {
        let (result, calls) = fixture.reconcile_account_calls().await;
        assert_eq!(result, Ok(Some("InvalidCredentials")), "{calls:?}");
        assert_eq!(calls.ghes, Vec::<String>::new());
        let (result, calls) = fixture.try_reconcile("ci").await;
        assert!(matches!(result, Ok(Some(_))), "{result:?} {calls:?}");
        assert_eq!(calls.ghes, Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_rotation_refused_for_longer_than_the_client_waits_goes_on_under_its_own_fingerprint() {
    let fixture = Fixture::new().await;
    fixture.issued("release", personal_spec()).await;
    fixture.reconcile("release").await;
    let first = fixture.ghes.state().authorizations[0].clone();
    fixture
        .apply(json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": "release", "namespace": NS,
                         "annotations": {"oauth.ghes.io/rotate": "2026-12-07"}},
            "spec": personal_spec(),
        }))
        .await;
    // The rotation's create meets a secondary rate limit longer than the client waits.
    fixture
        .ghes
        .inject(
            ghes_emulator::Fault::status(429)
                .retry_after(65)
                .method("POST")
                .times(1),
        )
        .expect("fault");
    let (result, calls) = fixture.try_reconcile("release").await;
    assert!(result.is_err(), "a transient failure: {result:?}");
    assert_eq!(calls.ghes, ["POST /api/v3/authorizations 429"]);
    // Once GHES accepts again: the same rotation, under its own fingerprint and note, and the
    // previous token revoked (gracePeriod 0s).
    let calls = fixture.reconcile("release").await;
    let writes: Vec<&String> = calls
        .ghes
        .iter()
        .filter(|c| !c.starts_with("GET "))
        .collect();
    assert_eq!(
        writes,
        [
            "POST /api/v3/authorizations 201",
            &format!("DELETE /api/v3/authorizations/{} 204", first.id)
        ],
        "{calls:?}"
    );
    assert_eq!(
        fixture.ready("release").await,
        ("True".into(), "TokenReady".into())
    );
    let tokens = fixture.ghes.state().authorizations;
    let next = tokens
        .iter()
        .find(|token| token.id != first.id)
        .expect("the rotation's token");
    assert_ne!(next.fingerprint, first.fingerprint);
    assert_ne!(next.note, first.note);
    let status = fixture
        .authorizations()
        .get("release")
        .await
        .expect("Authorization")
        .status
        .expect("status");
    assert_eq!(status.authorization_id, i64::try_from(next.id).ok());
    assert_eq!(status.previous, None);
    assert_eq!(tokens.len(), 1, "the previous token is revoked");
}

#[tokio::test]
async fn a_token_made_for_the_resource_but_neither_current_nor_previous_is_revoked() {
    let mut fixture = Fixture::new().await;
    fixture.issued("release", personal_spec()).await;
    let first = fixture
        .authorizations()
        .get("release")
        .await
        .expect("Authorization")
        .status
        .and_then(|s| s.fingerprint)
        .expect("fingerprint");
    // One rotation: the first token is replaced and revoked (gracePeriod 0s).
    fixture
        .apply(json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": "release", "namespace": NS,
                         "annotations": {"oauth.ghes.io/rotate": "once"}},
            "spec": personal_spec(),
        }))
        .await;
    fixture.reconcile("release").await;
    assert_eq!(fixture.ghes.state().authorizations.len(), 1);
    // A token under the first fingerprint that no status records: a create whose answer was
    // lost, made again by a run that then gave it up.
    let stray = fixture
        .ghes
        .seed_authorization(ghes_emulator::SeedAuthorization {
            login: LOGIN.into(),
            scopes: vec!["gist".into()],
            note: Some("team/release (lost)".into()),
            fingerprint: Some(first),
            ..Default::default()
        })
        .expect("seed");
    // A new process: its first reconcile lists the account and revokes the stray.
    fixture.restart().await;
    let calls = fixture.reconcile("release").await;
    assert!(
        calls
            .ghes
            .contains(&format!("DELETE /api/v3/authorizations/{} 204", stray.id)),
        "{calls:?}"
    );
    let live = fixture.ghes.state().authorizations;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_ne!(live[0].id, stray.id);
    assert_eq!(
        fixture.ready("release").await,
        ("True".into(), "TokenReady".into())
    );
}

#[tokio::test]
async fn an_account_in_sync_writes_no_status_again() {
    let mut fixture = Fixture::new().await;
    fixture.issued("ci", app_spec(&["repo"])).await;
    fixture.reconcile_account().await;
    // Nothing changed since: the next sync, with its prune report kept from the last run,
    // finds the status as it wrote it (to the second the API server keeps).
    let before = fixture.account_status_json().await;
    let (result, calls) = fixture.reconcile_account_calls().await;
    assert_eq!(result, Ok(None), "{calls:?}");
    let after = fixture.account_status_json().await;
    assert!(
        !calls
            .kubernetes
            .iter()
            .any(|c| c.contains("accounts/status")),
        "{calls:?}\n{before}\n{after}"
    );
}
