//! End-to-end tests: the emulator on 127.0.0.1:0, driven over HTTP by a plain reqwest client.

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use super::*;

const SEED: &str = "JBSWY3DPEHPK3PXP";

async fn start() -> RunningEmulator {
    let config = EmulatorConfig {
        users: vec![
            UserSpec::parse("alice:alice-pw").unwrap(),
            UserSpec::parse(&format!("bob:bob-pw:{SEED}")).unwrap(),
        ],
        apps: vec![AppSpec::parse("app1:secret1:Build bot").unwrap()],
        ..EmulatorConfig::default()
    };
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn call(emulator: &RunningEmulator, method: Method, path: &str) -> RequestBuilder {
    Client::new().request(method, format!("{}{path}", emulator.api_url()))
}

fn alice(emulator: &RunningEmulator, method: Method, path: &str) -> RequestBuilder {
    call(emulator, method, path).basic_auth("alice", Some("alice-pw"))
}

async fn body(response: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, headers, value)
}

#[tokio::test]
async fn personal_token_lifecycle_matches_ghes() {
    let emulator = start().await;
    let (status, _, error) = body(
        call(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["message"], "Requires authentication");

    let create =
        json!({"scopes": ["public_repo", "repo", "gist"], "note": "ci", "fingerprint": "f1"});
    let response = alice(&emulator, Method::POST, "/authorizations")
        .json(&create)
        .send()
        .await
        .unwrap();
    let (status, headers, created) = body(response).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    let id = created["id"].as_u64().unwrap();
    let url = format!("{}/authorizations/{id}", emulator.api_url());
    assert_eq!(headers["location"], url.as_str());
    assert_eq!(created["url"], url.as_str());
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ghp_") && token.len() == 40);
    assert_eq!(created["hashed_token"], crate::store::sha256_hex(&token));
    assert_eq!(created["token_last_eight"], &token[32..]);
    assert_eq!(created["scopes"], json!(["gist", "repo"]));
    assert_eq!(created["app"]["client_id"], PERSONAL_CLIENT_ID);
    assert_eq!(created["app"]["name"], "ci (API)");
    assert_eq!(created["user"]["login"], "alice");
    assert!(created["installation"].is_null() && created["expires_at"].is_null());
    for field in ["note_url", "created_at", "updated_at", "fingerprint"] {
        assert!(created.get(field).is_some(), "{field}");
    }
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let again = alice(&emulator, Method::POST, "/authorizations")
        .json(&create)
        .send()
        .await
        .unwrap();
    let (status, _, error) = body(again).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error["errors"][0],
        json!({"resource": "OauthAccess", "code": "already_exists", "field": "description"})
    );

    let (status, _, shown) = body(
        alice(&emulator, Method::GET, &format!("/authorizations/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, shown["token"].as_str()),
        (StatusCode::OK, Some(""))
    );

    let patch = json!({"add_scopes": ["read:org"], "note": "ci2"});
    let (status, _, patched) = body(
        alice(&emulator, Method::PATCH, &format!("/authorizations/{id}"))
            .json(&patch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["scopes"], json!(["gist", "read:org", "repo"]));
    assert_eq!(
        (patched["note"].as_str(), patched["token"].as_str()),
        (Some("ci2"), Some(""))
    );

    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap();
    let as_bob = call(&emulator, Method::GET, &format!("/authorizations/{id}"))
        .basic_auth("bob", Some("bob-pw"))
        .header("X-GitHub-OTP", totp_code(SEED, now).unwrap());
    assert_eq!(
        as_bob.send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "other users' ids are 404"
    );
    let (status, _, _) = body(
        call(&emulator, Method::GET, "/authorizations")
            .basic_auth("bob", Some(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "alice's token is not bob's password"
    );
    let (status, _, _) = body(
        call(&emulator, Method::GET, "/authorizations")
            .basic_auth("alice", Some(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a live token works as the password");

    let deleted = alice(&emulator, Method::DELETE, &format!("/authorizations/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, _, error) = body(
        alice(&emulator, Method::GET, &format!("/authorizations/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("Not Found"))
    );
    let (status, _, _) = body(
        alice(&emulator, Method::GET, "/authorizations/abc")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, error) = body(
        alice(&emulator, Method::POST, "/authorizations")
            .body("{oops")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Problems parsing JSON"))
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn app_get_or_create_grants_and_paging() {
    let emulator = start().await;
    let put = |fingerprint: &str| {
        alice(
            &emulator,
            Method::PUT,
            &format!("/authorizations/clients/app1/{fingerprint}"),
        )
        .json(&json!({"client_secret": "secret1", "scopes": ["read:org"]}))
    };
    let (status, _, first) = body(put("fp-1").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(first["token"].as_str().unwrap().starts_with("gho_"));
    assert_eq!(
        first["app"],
        json!({"client_id": "app1", "name": "Build bot", "url": "https://example.com/apps/app1"})
    );
    let (status, headers, existing) = body(put("fp-1").send().await.unwrap()).await;
    assert_eq!(
        (status, existing["token"].as_str()),
        (StatusCode::OK, Some(""))
    );
    assert_eq!(existing["id"], first["id"]);
    assert!(headers.contains_key("location"));
    let wrong_secret = alice(&emulator, Method::PUT, "/authorizations/clients/app1")
        .json(&json!({"client_secret": "nope"}));
    let (status, _, error) = body(wrong_secret.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (
            error["errors"][0]["field"].as_str(),
            error["errors"][0]["code"].as_str()
        ),
        (Some("client_secret"), Some("invalid"))
    );
    for n in 2..=5 {
        assert_eq!(
            put(&format!("fp-{n}")).send().await.unwrap().status(),
            StatusCode::CREATED
        );
    }

    let page = alice(
        &emulator,
        Method::GET,
        "/authorizations?client_id=app1&per_page=2&page=2",
    );
    let (status, headers, items) = body(page.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items.as_array().unwrap().len(), 2);
    let base = format!(
        "{}/authorizations?client_id=app1&per_page=2",
        emulator.api_url()
    );
    assert_eq!(
        headers["link"].to_str().unwrap(),
        format!(
            "<{base}&page=1>; rel=\"prev\", <{base}&page=3>; rel=\"next\", <{base}&page=3>; rel=\"last\", <{base}&page=1>; rel=\"first\""
        )
    );

    let (status, _, grants) = body(
        alice(&emulator, Method::GET, "/applications/grants")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let grant_id = grants[0]["id"].as_u64().unwrap();
    assert_eq!(grants[0]["scopes"], json!(["read:org"]));
    assert_eq!(
        grants[0]["url"],
        format!("{}/applications/grants/{grant_id}", emulator.api_url())
    );
    let revoke = alice(
        &emulator,
        Method::DELETE,
        &format!("/applications/grants/{grant_id}"),
    );
    assert_eq!(
        revoke.send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let (_, _, left) = body(
        alice(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(left, json!([]));
    let state = emulator.state();
    assert!(state.grants.is_empty() && state.authorizations.is_empty());
    emulator.shutdown().await;
}

#[tokio::test]
async fn two_factor_lockout_and_rate_limit() {
    let emulator = start().await;
    let bob = || call(&emulator, Method::GET, "/authorizations").basic_auth("bob", Some("bob-pw"));
    let (status, headers, error) = body(bob().send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["x-github-otp"], "required; app");
    assert_eq!(
        error["message"],
        "Must specify two-factor authentication OTP code."
    );
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap();
    let code = totp_code(SEED, now).unwrap();
    assert_eq!(
        bob()
            .header("X-GitHub-OTP", code)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let wrong = || call(&emulator, Method::GET, "/authorizations").basic_auth("alice", Some("bad"));
    for _ in 0..5 {
        let (status, _, error) = body(wrong().send().await.unwrap()).await;
        assert_eq!(
            (status, error["message"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("Bad credentials"))
        );
    }
    let (status, _, error) = body(
        alice(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error["message"],
        "Maximum number of login attempts exceeded. Please try again later."
    );
    let reset = Client::new().post(format!("{}/_emulator/reset-lockouts", emulator.base_url()));
    assert_eq!(reset.send().await.unwrap().status(), StatusCode::NO_CONTENT);

    let settings = Client::new()
        .put(format!("{}/_emulator/settings", emulator.base_url()))
        .json(&json!({"rate_limit": {"limit": 2, "window_secs": 60}}));
    let (_, _, applied) = body(settings.send().await.unwrap()).await;
    assert_eq!(applied["rate_limit"]["limit"], 2);
    let first = alice(&emulator, Method::GET, "/authorizations")
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["x-ratelimit-remaining"], "1");
    assert_eq!(first.headers()["x-ratelimit-resource"], "core");
    alice(&emulator, Method::GET, "/authorizations")
        .send()
        .await
        .unwrap();
    let (status, headers, error) = body(
        alice(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, headers["x-ratelimit-remaining"].to_str().unwrap()),
        (StatusCode::FORBIDDEN, "0")
    );
    assert_eq!(error["message"], "API rate limit exceeded for user ID 1.");

    let log = emulator.requests();
    assert!(log.iter().all(|r| r.path == "/api/v3/authorizations"));
    assert_eq!(
        log.iter()
            .filter(|r| r.user.as_deref() == Some("bob"))
            .count(),
        2
    );
    assert!(log.iter().any(|r| r.otp && r.status == 200));
    emulator.shutdown().await;
}

#[tokio::test]
async fn injected_faults_reach_the_client() {
    let emulator = start().await;
    emulator
        .inject(Fault::reset().times(1).method("GET"))
        .unwrap();
    let error = alice(&emulator, Method::GET, "/authorizations")
        .send()
        .await
        .unwrap_err();
    // hyper's "connection closed before message completed": no status, no body.
    assert!(error.is_request() && !error.is_status(), "{error:?}");
    assert!(
        format!("{error:?}").contains("IncompleteMessage"),
        "{error:?}"
    );
    assert_eq!(
        alice(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let fault = json!({"kind": "status", "status": 502, "retry_after": 3, "count": 1, "path_prefix": "/api/v3/authorizations"});
    let hook = Client::new()
        .post(format!("{}/_emulator/faults", emulator.base_url()))
        .json(&fault);
    assert_eq!(hook.send().await.unwrap().status(), StatusCode::CREATED);
    let (status, headers, _) = body(
        alice(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, headers["retry-after"].to_str().unwrap()),
        (StatusCode::BAD_GATEWAY, "3")
    );

    emulator
        .inject(Fault::latency(Duration::from_millis(150)).times(1))
        .unwrap();
    let started = std::time::Instant::now();
    alice(&emulator, Method::GET, "/applications/grants")
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));

    let statuses: Vec<u16> = emulator.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 200, 502, 200]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn one_fault_is_removed_and_a_password_changes() {
    let emulator = start().await;
    let hooks = format!("{}/_emulator", emulator.base_url());
    // A two-factor challenge for alice only, then a 500 for everyone.
    let otp = json!({"kind": "status", "status": 401, "otp_required": "app", "login": "alice"});
    let (status, _, otp) = body(
        Client::new()
            .post(format!("{hooks}/faults"))
            .json(&otp)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    emulator
        .inject(Fault::status(500).method("DELETE"))
        .unwrap();
    let (status, headers, error) = body(
        alice(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["x-github-otp"], "required; app");
    assert_eq!(
        error["message"],
        "Must specify two-factor authentication OTP code."
    );
    let hits: Vec<u64> = emulator.active_faults().iter().map(|f| f.hits).collect();
    assert_eq!(hits, [1, 0]);
    let hits: Vec<u64> = emulator.active_faults().iter().map(|f| f.hits).collect();
    assert_eq!(hits, [1, 0]);
    // Removing the challenge leaves the other fault; removing it twice is a 404.
    let remove = |id: &Value| Client::new().delete(format!("{hooks}/faults/{id}")).send();
    assert_eq!(
        remove(&otp["id"]).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        remove(&otp["id"]).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(emulator.active_faults().len(), 1);
    assert_eq!(
        alice(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // A new password: the old one is refused, the new one works.
    let patch = Client::new()
        .patch(format!("{hooks}/users/alice"))
        .json(&json!({"password": "alice-new-pw"}));
    assert_eq!(patch.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let unknown = Client::new()
        .patch(format!("{hooks}/users/nobody"))
        .json(&json!({"password": "x"}));
    assert_eq!(
        unknown.send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        alice(&emulator, Method::GET, "/authorizations")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&emulator, Method::GET, "/authorizations")
            .basic_auth("alice", Some("alice-new-pw"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn hooks_seed_and_snapshot_without_secrets() {
    let emulator = start().await;
    let hooks = format!("{}/_emulator", emulator.base_url());
    let seed = json!({"login": "alice", "client_id": "app1", "scopes": ["repo"], "created_at": "2020-01-02T03:04:05Z"});
    let (status, _, seeded) = body(
        Client::new()
            .post(format!("{hooks}/authorizations"))
            .json(&seed)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(seeded["token"].as_str().unwrap().starts_with("gho_"));
    assert_eq!(seeded["created_at"], "2020-01-02T03:04:05Z");
    let unknown = json!({"login": "nobody", "note": "x"});
    let refused = Client::new()
        .post(format!("{hooks}/authorizations"))
        .json(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);

    let (_, _, state) = body(
        Client::new()
            .get(format!("{hooks}/state"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        state["users"][1],
        json!({"login": "bob", "id": 2, "has_totp": true})
    );
    assert_eq!(state["authorizations"][0]["token"], "");
    assert_eq!(
        state["authorizations"][0]["hashed_token"],
        seeded["hashed_token"]
    );
    assert_eq!(state["grants"][0]["created_at"], "2020-01-02T03:04:05Z");
    let text = state.to_string();
    assert!(!text.contains("alice-pw") && !text.contains(SEED) && !text.contains("secret1"));

    let add_user = json!({"login": "carol", "password": "carol-pw"});
    let created = Client::new()
        .post(format!("{hooks}/users"))
        .json(&add_user)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let carol =
        call(&emulator, Method::GET, "/authorizations").basic_auth("carol", Some("carol-pw"));
    assert_eq!(carol.send().await.unwrap().status(), StatusCode::OK);

    let disable = Client::new()
        .put(format!("{hooks}/settings"))
        .json(&json!({"api_disabled": true}));
    disable.send().await.unwrap();
    let post = alice(&emulator, Method::POST, "/authorizations").json(&json!({"note": "n"}));
    assert_eq!(post.send().await.unwrap().status(), StatusCode::GONE);
    emulator.shutdown().await;
}
