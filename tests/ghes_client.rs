//! The GHES client against the emulator over loopback: every operation's success and error
//! paths, two-factor login, paging, retries, rate limits, and the 401 latch.

mod support;

use std::time::{Duration, Instant};

use ghes_emulator::{Fault, SeedAuthorization, SettingsPatch};
use ghes_oauth_operator::ghes::{
    AppAuthorizationRequest, AppCredentials, AuthorizationUpdate, GhesApi, GhesError,
    HttpGhesClient, NewAuthorization, ScopeChange, SecretValue,
};
use support::*;

fn app_request(scopes: &[&str]) -> AppAuthorizationRequest {
    AppAuthorizationRequest {
        client_secret: SecretValue::new(CLIENT_SECRET),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        note: Some("team-a/ci-bot".into()),
        note_url: Some("https://git.example.com/team-a".into()),
    }
}

fn personal(note: &str, scopes: &[&str]) -> NewAuthorization {
    NewAuthorization {
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        note: Some(note.into()),
        fingerprint: Some(format!("fp-{note}")),
        ..NewAuthorization::default()
    }
}

#[tokio::test]
async fn app_token_get_or_create_by_fingerprint_is_idempotent() {
    let emulator = emulator().await;
    let client = client(&emulator);

    let first = client
        .get_or_create_for_app_and_fingerprint(CLIENT_ID, "uid-1234", &app_request(&["repo"]))
        .await
        .expect("created");
    assert!(first.created);
    let token = first.authorization.token.clone().expect("token on 201");
    assert!(first.authorization.is_token(&token));
    assert_eq!(first.authorization.fingerprint.as_deref(), Some("uid-1234"));
    assert_eq!(first.authorization.app.client_id, CLIENT_ID);

    let second = client
        .get_or_create_for_app_and_fingerprint(CLIENT_ID, "uid-1234", &app_request(&["repo"]))
        .await
        .expect("existing");
    assert!(!second.created);
    assert!(second.authorization.token.is_none(), "token shown once");
    assert_eq!(second.authorization.id, first.authorization.id);

    // The emulator's record holds the same hash and never the token.
    let state = emulator.state();
    assert_eq!(state.authorizations.len(), 1);
    assert_eq!(
        state.authorizations[0].hashed_token.as_deref(),
        Some(token.sha256_hex().as_str())
    );
    assert_eq!(calls(&emulator), ["PUT 201", "PUT 200"]);
}

#[tokio::test]
async fn app_token_get_or_create_without_fingerprint_in_path() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let created = client
        .get_or_create_for_app(CLIENT_ID, Some("body-fp"), &app_request(&["read:org"]))
        .await
        .expect("created");
    assert!(created.created);
    let existing = client
        .get_or_create_for_app(CLIENT_ID, Some("body-fp"), &app_request(&["read:org"]))
        .await
        .expect("existing");
    assert!(!existing.created);
    assert_eq!(existing.authorization.id, created.authorization.id);
    let wrong_secret = AppAuthorizationRequest {
        client_secret: SecretValue::new("not-the-secret"),
        ..app_request(&["read:org"])
    };
    let error = client
        .get_or_create_for_app(CLIENT_ID, Some("other"), &wrong_secret)
        .await
        .expect_err("wrong secret");
    assert!(matches!(error, GhesError::Validation { .. }), "{error:?}");
}

#[tokio::test]
async fn personal_token_note_must_be_unique_and_is_not_retried() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let created = client
        .create_authorization(&personal("release-bot", &["read:user"]))
        .await
        .expect("created");
    assert!(created.token.is_some());
    emulator.clear_requests();

    let mut duplicate = personal("release-bot", &["read:user"]);
    duplicate.fingerprint = Some("another".into());
    let error = client
        .create_authorization(&duplicate)
        .await
        .expect_err("duplicate note");
    match &error {
        GhesError::Validation { errors, .. } => {
            assert!(
                errors.iter().any(|e| e.code == "already_exists"),
                "{errors:?}"
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(calls(&emulator), ["POST 422"]);
}

#[tokio::test]
async fn app_token_through_post_with_client_credentials() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let created = client
        .create_authorization(&NewAuthorization {
            scopes: vec!["repo".into()],
            note: Some("posted app token".into()),
            fingerprint: Some("post-fp".into()),
            app: Some(AppCredentials {
                client_id: OTHER_CLIENT_ID.into(),
                client_secret: SecretValue::new(OTHER_CLIENT_SECRET),
            }),
            ..NewAuthorization::default()
        })
        .await
        .expect("created");
    assert_eq!(created.app.client_id, OTHER_CLIENT_ID);
    assert!(created.token.is_some());
}

#[tokio::test]
async fn get_update_delete_authorization() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let created = client
        .create_authorization(&personal("deployer", &["repo"]))
        .await
        .expect("created");

    let fetched = client.get_authorization(created.id).await.expect("get");
    assert_eq!(fetched.id, created.id);
    assert!(fetched.token.is_none());

    let replaced = client
        .update_authorization(
            created.id,
            &AuthorizationUpdate {
                scopes: Some(ScopeChange::Replace(vec![
                    "read:org".into(),
                    "admin:org".into(),
                    "gist".into(),
                ])),
                note: Some("deployer v2".into()),
                note_url: Some("https://example.com/deployer".into()),
                ..AuthorizationUpdate::default()
            },
        )
        .await
        .expect("replace");
    // admin:org implies read:org; the server normalizes, the client accepts it.
    assert_eq!(replaced.scopes, ["admin:org", "gist"]);
    assert_eq!(replaced.note.as_deref(), Some("deployer v2"));

    let added = client
        .update_authorization(
            created.id,
            &AuthorizationUpdate {
                scopes: Some(ScopeChange::Add(vec!["workflow".into()])),
                ..AuthorizationUpdate::default()
            },
        )
        .await
        .expect("add");
    assert_eq!(added.scopes, ["admin:org", "gist", "workflow"]);

    let removed = client
        .update_authorization(
            created.id,
            &AuthorizationUpdate {
                scopes: Some(ScopeChange::Remove(vec!["gist".into()])),
                ..AuthorizationUpdate::default()
            },
        )
        .await
        .expect("remove");
    assert_eq!(removed.scopes, ["admin:org", "workflow"]);

    let bad_scope = client
        .update_authorization(
            created.id,
            &AuthorizationUpdate {
                scopes: Some(ScopeChange::Replace(vec!["no-such-scope".into()])),
                ..AuthorizationUpdate::default()
            },
        )
        .await
        .expect_err("bad scope");
    assert!(
        matches!(&bad_scope, GhesError::Validation { errors, .. } if errors.iter().any(|e| e.field.as_deref() == Some("scopes"))),
        "{bad_scope:?}"
    );

    client
        .delete_authorization(created.id)
        .await
        .expect("delete");
    let gone = client
        .get_authorization(created.id)
        .await
        .expect_err("gone");
    assert!(gone.is_not_found(), "{gone:?}");
    let again = client
        .delete_authorization(created.id)
        .await
        .expect_err("already gone");
    assert!(again.is_not_found(), "{again:?}");
    let missing_patch = client
        .update_authorization(
            created.id,
            &AuthorizationUpdate {
                note: Some("x".into()),
                ..AuthorizationUpdate::default()
            },
        )
        .await
        .expect_err("patch of a deleted authorization");
    assert!(missing_patch.is_not_found(), "{missing_patch:?}");
}

#[tokio::test]
async fn grants_list_get_and_delete_revokes_the_apps_tokens() {
    let emulator = emulator().await;
    let client = client(&emulator);
    for fingerprint in ["a", "b"] {
        client
            .get_or_create_for_app_and_fingerprint(CLIENT_ID, fingerprint, &app_request(&["repo"]))
            .await
            .expect("app token");
    }
    let other = AppAuthorizationRequest {
        client_secret: SecretValue::new(OTHER_CLIENT_SECRET),
        ..app_request(&["read:org"])
    };
    client
        .get_or_create_for_app_and_fingerprint(OTHER_CLIENT_ID, "c", &other)
        .await
        .expect("other app token");
    client
        .create_authorization(&personal("personal", &["gist"]))
        .await
        .expect("personal");

    let grants = client.list_grants(None).await.expect("grants");
    assert_eq!(
        grants.len(),
        2,
        "one grant per app; personal tokens have none"
    );
    let filtered = client
        .list_grants(Some(CLIENT_ID))
        .await
        .expect("filtered grants");
    assert_eq!(filtered.len(), 1);
    let grant = client.get_grant(filtered[0].id).await.expect("grant");
    assert_eq!(grant.app.client_id, CLIENT_ID);

    let only_app = client
        .list_authorizations(Some(CLIENT_ID))
        .await
        .expect("filtered authorizations");
    assert_eq!(only_app.len(), 2);

    client.delete_grant(grant.id).await.expect("delete grant");
    let left = client.list_authorizations(None).await.expect("list");
    assert_eq!(left.len(), 2, "the app's two tokens went with its grant");
    assert!(left.iter().all(|a| a.app.client_id != CLIENT_ID));
    let gone = client.get_grant(grant.id).await.expect_err("grant gone");
    assert!(gone.is_not_found(), "{gone:?}");
}

#[tokio::test]
async fn lists_250_authorizations_across_three_pages() {
    let emulator = emulator().await;
    for index in 0..250 {
        emulator
            .seed_authorization(SeedAuthorization {
                login: USER.into(),
                scopes: vec!["repo".into()],
                note: Some(format!("seeded {index}")),
                ..SeedAuthorization::default()
            })
            .expect("seed");
    }
    let client = client(&emulator);
    let listed = client.list_authorizations(None).await.expect("list");
    assert_eq!(listed.len(), 250);
    let mut ids: Vec<u64> = listed.iter().map(|a| a.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no page listed twice");
    let requests = emulator.requests();
    assert_eq!(requests.len(), 3, "ceil(250/100) calls");
    assert!(requests.iter().all(|r| r.path == "/api/v3/authorizations"));
    assert!(requests.iter().all(|r| r.query.contains("per_page=100")));
}

#[tokio::test]
async fn two_factor_login_answers_the_challenge_once_then_sends_codes_up_front() {
    let emulator = emulator().await;
    let client = HttpGhesClient::new(config(&emulator, OTP_USER, OTP_PASSWORD, Some(OTP_SEED)))
        .expect("client");
    let created = client
        .create_authorization(&personal("otp token", &["repo"]))
        .await
        .expect("created with OTP");
    assert!(created.token.is_some());
    client.list_authorizations(None).await.expect("list");
    let requests = emulator.requests();
    let seen: Vec<(String, u16, bool)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.status, r.otp))
        .collect();
    assert_eq!(
        seen,
        [
            ("POST".to_owned(), 401, false),
            ("POST".to_owned(), 201, true),
            ("GET".to_owned(), 200, true),
        ]
    );
}

#[tokio::test]
async fn two_factor_without_a_seed_stops_after_one_request() {
    let emulator = emulator().await;
    let client =
        HttpGhesClient::new(config(&emulator, OTP_USER, OTP_PASSWORD, None)).expect("client");
    let error = client.list_grants(None).await.expect_err("otp required");
    assert!(matches!(error, GhesError::OtpRequired { .. }), "{error:?}");
    assert!(error.to_string().contains("TOTP seed"), "{error}");
    let again = client.list_grants(None).await.expect_err("latched");
    assert!(again.is_credentials_problem());
    assert_eq!(calls(&emulator), ["GET 401"]);
}

#[tokio::test]
async fn two_factor_with_a_wrong_seed_is_not_retried() {
    let emulator = emulator().await;
    let client = HttpGhesClient::new(config(
        &emulator,
        OTP_USER,
        OTP_PASSWORD,
        Some("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
    ))
    .expect("client");
    let error = client.list_grants(None).await.expect_err("wrong code");
    assert!(matches!(error, GhesError::OtpRequired { .. }), "{error:?}");
    assert_eq!(calls(&emulator), ["GET 401", "GET 401"]);
}

#[tokio::test]
async fn wrong_password_makes_exactly_one_request() {
    let emulator = emulator().await;
    let client =
        HttpGhesClient::new(config(&emulator, USER, "wrong-password", None)).expect("client");
    let error = client.list_authorizations(None).await.expect_err("401");
    assert!(
        matches!(error, GhesError::InvalidCredentials { .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
    // Every later call is refused without reaching GHES: no lock-out by repetition.
    for _ in 0..3 {
        let error = client
            .create_authorization(&personal("x", &[]))
            .await
            .expect_err("latched");
        assert!(matches!(error, GhesError::InvalidCredentials { .. }));
    }
    assert_eq!(calls(&emulator), ["GET 401"]);
}

/// Wakes a waiter once a response with `status` has reached the client.
struct SeenStatus {
    status: u16,
    seen: tokio::sync::Notify,
}

impl ghes_oauth_operator::ghes::RequestObserver for SeenStatus {
    fn on_response(&self, _: ghes_oauth_operator::ghes::Operation, status: Option<u16>) {
        if status == Some(self.status) {
            self.seen.notify_one();
        }
    }

    fn on_rate_limit_wait(&self, _: ghes_oauth_operator::ghes::Operation, _: Duration) {}
}

/// Polls the emulator's log until `expected` (bounded: 10 s).
async fn wait_for_calls(emulator: &ghes_emulator::RunningEmulator, expected: &[&str]) {
    let started = Instant::now();
    while calls(emulator) != expected {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for {expected:?}, have {:?}",
            calls(emulator)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_retry_is_not_sent_with_credentials_refused_in_the_meantime() {
    let emulator = emulator().await;
    let mut config = config(&emulator, USER, PASSWORD, None);
    config.retry.base_delay = Duration::from_millis(800);
    config.retry.max_delay = Duration::from_millis(800);
    let client = std::sync::Arc::new(HttpGhesClient::new(config).expect("client"));
    emulator
        .inject(Fault::status(502).method("GET").times(1))
        .expect("fault");
    emulator
        .inject(Fault::status(401).method("DELETE"))
        .expect("fault");
    // A listing meets a 502 and waits 400–800 ms to try again...
    let listing = tokio::spawn({
        let client = client.clone();
        async move { client.list_authorizations(None).await }
    });
    wait_for_calls(&emulator, &["GET 502"]).await;
    // ...while another call learns that GHES refuses the credentials.
    let refused = client.delete_authorization(7).await.expect_err("401");
    assert!(
        matches!(refused, GhesError::InvalidCredentials { .. }),
        "{refused:?}"
    );
    let error = listing
        .await
        .expect("task")
        .expect_err("the retry must not be sent");
    assert!(
        matches!(error, GhesError::InvalidCredentials { .. }),
        "{error:?}"
    );
    assert_eq!(calls(&emulator), ["GET 502", "DELETE 401"]);
}

#[tokio::test]
async fn no_request_leaves_while_a_refusal_is_being_read() {
    let emulator = emulator().await;
    let seen = std::sync::Arc::new(SeenStatus {
        status: 401,
        seen: tokio::sync::Notify::new(),
    });
    let mut config = config(&emulator, USER, PASSWORD, None);
    config.observer = Some(seen.clone());
    let client = std::sync::Arc::new(HttpGhesClient::new(config).expect("client"));
    // The 401's body (GHES's reason) arrives half a second after its status line.
    emulator
        .inject(
            Fault::status(401)
                .method("DELETE")
                .body_delay(Duration::from_millis(500)),
        )
        .expect("fault");
    let delete = tokio::spawn({
        let client = client.clone();
        async move { client.delete_authorization(7).await }
    });
    // The client holds the 401's status: it must not send anything more with these
    // credentials, even before it has read GHES's reason.
    tokio::time::timeout(Duration::from_secs(10), seen.seen.notified())
        .await
        .expect("the 401 reaches the client");
    let error = client
        .list_authorizations(None)
        .await
        .expect_err("refused without a request");
    assert!(
        matches!(error, GhesError::InvalidCredentials { .. }),
        "{error:?}"
    );
    let refused = delete.await.expect("task").expect_err("401");
    assert!(
        matches!(refused, GhesError::InvalidCredentials { .. }),
        "{refused:?}"
    );
    assert_eq!(calls(&emulator), ["DELETE 401"]);
}

#[tokio::test]
async fn a_401_whose_body_stalls_past_the_timeout_still_refuses_the_credentials() {
    let emulator = emulator().await;
    let mut config = config(&emulator, USER, PASSWORD, None);
    config.timeout = Duration::from_millis(300);
    let client = HttpGhesClient::new(config).expect("client");
    // The status line says 401; the body (GHES's reason) never arrives within the timeout.
    emulator
        .inject(Fault::status(401).body_delay(Duration::from_secs(3)))
        .expect("fault");
    let error = client.list_authorizations(None).await.expect_err("401");
    assert!(
        matches!(error, GhesError::InvalidCredentials { .. }),
        "{error:?}"
    );
    // The password is not sent again, whatever the body would have said.
    for _ in 0..3 {
        let error = client
            .create_authorization(&personal("x", &[]))
            .await
            .expect_err("refused before");
        assert!(
            matches!(error, GhesError::InvalidCredentials { .. }),
            "{error:?}"
        );
    }
    assert_eq!(calls(&emulator), ["GET 401"]);
}

#[tokio::test]
async fn a_post_answered_5xx_whose_body_is_lost_is_not_sent_again() {
    let emulator = emulator().await;
    let client = client(&emulator);
    // GHES created the token, answered 502, and the connection broke before the body.
    emulator
        .inject(
            Fault::status(502)
                .method("POST")
                .after_processing()
                .body_lost()
                .times(1),
        )
        .expect("fault");
    let error = client
        .create_authorization(&personal("half-answered", &["repo"]))
        .await
        .expect_err("502 without a body");
    assert!(error.outcome_unknown(), "{error:?}");
    assert_eq!(calls(&emulator), ["POST 502"]);
    assert_eq!(
        emulator.state().authorizations.len(),
        1,
        "one token, no duplicate"
    );
}

#[tokio::test]
async fn transient_errors_are_retried_for_idempotent_calls() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator.inject(Fault::status(502).times(2)).expect("fault");
    let listed = client.list_authorizations(None).await.expect("retried");
    assert!(listed.is_empty());
    assert_eq!(calls(&emulator), ["GET 502", "GET 502", "GET 200"]);

    emulator.clear_requests();
    emulator.inject(Fault::reset().times(1)).expect("fault");
    client.list_grants(None).await.expect("retried after reset");
    assert_eq!(calls(&emulator), ["GET 0", "GET 200"]);
}

#[tokio::test]
async fn transient_errors_outlasting_retries_are_reported() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator.inject(Fault::status(503)).expect("fault");
    let error = client
        .get_authorization(1)
        .await
        .expect_err("keeps failing");
    assert!(error.is_transient(), "{error:?}");
    assert!(!error.outcome_unknown(), "a GET is safe to repeat");
    assert_eq!(emulator.requests().len(), 4, "one try and three retries");
}

#[tokio::test]
async fn a_post_that_may_have_reached_ghes_is_not_sent_again() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator
        .inject(Fault::status(502).times(1).method("POST"))
        .expect("fault");
    let error = client
        .create_authorization(&personal("maybe", &["repo"]))
        .await
        .expect_err("502");
    assert!(error.outcome_unknown(), "{error:?}");
    assert_eq!(calls(&emulator), ["POST 502"]);

    // The 502 made this client's server unavailable until a probe answers: a new one.
    let client = self::client(&emulator);
    emulator.clear_requests();
    emulator
        .inject(Fault::reset().times(1).method("POST"))
        .expect("fault");
    let error = client
        .create_authorization(&personal("maybe-2", &["repo"]))
        .await
        .expect_err("reset");
    assert!(error.outcome_unknown(), "{error:?}");
    assert_eq!(calls(&emulator), ["POST 0"]);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator
        .inject(Fault::status(429).retry_after(1).times(1))
        .expect("fault");
    let started = Instant::now();
    client
        .list_authorizations(None)
        .await
        .expect("after waiting");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(calls(&emulator), ["GET 429", "GET 200"]);
}

#[tokio::test]
async fn exhausted_rate_limit_holds_requests_until_the_reset() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator
        .inject(Fault::status(403).ratelimit_reset_in(1).times(1))
        .expect("fault");
    let started = Instant::now();
    client.list_grants(None).await.expect("after the reset");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(calls(&emulator), ["GET 403", "GET 200"]);
}

#[tokio::test]
async fn a_wait_longer_than_the_client_accepts_is_returned_to_the_caller() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator
        .inject(Fault::status(429).retry_after(120).times(1))
        .expect("fault");
    let error = client.list_grants(None).await.expect_err("rate limited");
    match error {
        GhesError::RateLimited { retry_after } => assert_eq!(retry_after.as_secs(), 120),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(calls(&emulator), ["GET 429"]);
}

#[tokio::test]
async fn server_side_rate_limit_is_respected() {
    let emulator = emulator().await;
    emulator.update_settings(SettingsPatch {
        rate_limit: Some(Some(ghes_emulator::RateLimit {
            limit: 3,
            window_secs: 1,
        })),
        ..SettingsPatch::default()
    });
    let client = client(&emulator);
    for _ in 0..6 {
        client.list_grants(None).await.expect("within the limit");
    }
    let refused = emulator
        .requests()
        .iter()
        .filter(|r| r.status == 403)
        .count();
    assert!(
        refused <= 1,
        "the client paused instead of hammering: {:?}",
        calls(&emulator)
    );
}

#[tokio::test]
async fn api_disabled_is_reported_as_such() {
    let emulator = emulator().await;
    emulator.update_settings(SettingsPatch {
        api_disabled: Some(true),
        ..SettingsPatch::default()
    });
    let error = client(&emulator)
        .create_authorization(&personal("x", &[]))
        .await
        .expect_err("410");
    assert!(matches!(error, GhesError::ApiDisabled { .. }), "{error:?}");
    assert_eq!(calls(&emulator), ["POST 410"]);
}

#[tokio::test]
async fn slow_responses_time_out() {
    let emulator = emulator().await;
    let mut config = config(&emulator, USER, PASSWORD, None);
    config.timeout = Duration::from_millis(200);
    config.retry.max_retries = 1;
    let client = HttpGhesClient::new(config).expect("client");
    emulator
        .inject(Fault::latency(Duration::from_secs(2)))
        .expect("fault");
    let error = client.list_grants(None).await.expect_err("timeout");
    assert!(error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
}

#[tokio::test]
async fn client_side_rate_limit_spaces_requests() {
    let emulator = emulator().await;
    let mut config = config(&emulator, USER, PASSWORD, None);
    config.requests_per_second = 10.0;
    config.burst = 1;
    let client = HttpGhesClient::new(config).expect("client");
    let started = Instant::now();
    for _ in 0..6 {
        client.list_grants(None).await.expect("list");
    }
    // Five waits of 100 ms at least; only a lower bound, so a busy machine cannot fail it.
    assert!(
        started.elapsed() >= Duration::from_millis(490),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreachable_server_is_transient() {
    // Bind then drop a listener to get a loopback port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let emulator = emulator().await;
    let mut config = config(&emulator, USER, PASSWORD, None);
    config.api_root = url::Url::parse(&format!("http://127.0.0.1:{port}/api/v3")).expect("url");
    config.retry.max_retries = 1;
    let client = HttpGhesClient::new(config).expect("client");
    let error = client
        .create_authorization(&personal("x", &[]))
        .await
        .expect_err("refused");
    assert!(error.is_transient(), "{error:?}");
    assert!(
        !error.outcome_unknown(),
        "a refused connection never reached GHES"
    );
}

#[tokio::test]
async fn a_lost_answer_after_processing_is_an_unknown_outcome_and_the_token_exists() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator
        .inject(Fault::reset().times(1).method("POST").after_processing())
        .expect("fault");
    let error = client
        .create_authorization(&personal("lost-answer", &["repo"]))
        .await
        .expect_err("answer lost");
    assert!(error.outcome_unknown(), "{error:?}");
    assert_eq!(calls(&emulator), ["POST 0"]);
    // GHES did create it: only a lookup by fingerprint can find it now (from a new client:
    // the lost answer made this one's server unavailable until a probe answers).
    let listed = self::client(&emulator)
        .list_authorizations(None)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].fingerprint.as_deref(), Some("fp-lost-answer"));
}

#[tokio::test]
async fn a_server_that_stops_answering_gets_one_probe_and_nothing_else_until_it_answers() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator.inject(Fault::status(503)).expect("fault");
    let error = client
        .get_authorization(1)
        .await
        .expect_err("keeps failing");
    assert!(error.is_transient(), "{error:?}");
    let asked = emulator.requests().len();
    // Marked unavailable: later calls fail at once, without a request.
    for _ in 0..5 {
        let error = client.list_grants(None).await.expect_err("unavailable");
        assert_eq!(error.reason(), "GhesUnavailable", "{error}");
    }
    assert_eq!(
        emulator.requests().len(),
        asked,
        "nothing sent while unavailable"
    );
    // The probe is one request, never retried, and it does not clear the outage while GHES
    // still fails.
    client.probe().await.expect_err("still 503");
    assert_eq!(emulator.requests().len(), asked + 1, "one probe, no retry");
    client
        .list_grants(None)
        .await
        .expect_err("still unavailable");
    assert_eq!(emulator.requests().len(), asked + 1);
    // GHES answers the next probe: every call goes through again.
    emulator.clear_faults();
    client.probe().await.expect("answered");
    client.list_grants(None).await.expect("available again");
    let calls = calls(&emulator);
    assert_eq!(
        &calls[calls.len() - 2..],
        ["GET 200", "GET 200"],
        "{calls:?}"
    );
}

#[tokio::test]
async fn the_client_reads_ghes_clock_from_its_answers() {
    let emulator = emulator().await;
    let client = client(&emulator);
    assert_eq!(client.clock_offset(), None, "before any answer");
    emulator.update_settings(SettingsPatch {
        clock_offset_secs: Some(-3600),
        ..SettingsPatch::default()
    });
    client.list_authorizations(None).await.expect("list");
    let offset = client.clock_offset().expect("the Date header read");
    assert!(
        (offset.as_secs() + 3600).abs() <= 2,
        "GHES an hour behind, read as {offset:?}"
    );
}
