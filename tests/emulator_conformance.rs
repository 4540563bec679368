//! Conformance of the GHES emulator to the official API description,
//! `ghes-oauth-authorizations.openapi.json`.
//!
//! Each test starts the emulator on `127.0.0.1:0` with two users (`alice` plain, `bob` with a TOTP
//! seed) and two OAuth apps, drives operations over HTTP with a raw reqwest client through their
//! success and error paths, and judges every answer twice: by the description's checker (status
//! declared or documented, body valid against the declared schema) and by the facts the
//! description cannot state (the token shown once, `hashed_token`, `Location`, `Link` paging,
//! two-factor and rate-limit headers). Failures are collected and reported together at the end.
//!
//! Without the description the tests print `SKIPPED` and pass (under `CI=true` they fail).

#[path = "support/openapi.rs"]
mod openapi;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use ghes_emulator::{
    AppSpec, Emulator, EmulatorConfig, Fault, RateLimit, RunningEmulator, SeedAuthorization,
    SettingsPatch, UserSpec, totp_code,
};
use openapi::Description;
use reqwest::header::HeaderMap;
use reqwest::{Client, Method};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password");
/// Bob's two-factor seed (base32).
const BOB_SEED: &str = "JBSWY3DPEHPK3PXP";
const APP_ONE: (&str, &str) = ("app-one", "app-one-secret");
const APP_TWO: (&str, &str) = ("app-two", "app-two-secret");

// The ten operations, named `METHOD template` as the description spells them.
const LIST_GRANTS: &str = "GET /applications/grants";
const GET_GRANT: &str = "GET /applications/grants/{grant_id}";
const DELETE_GRANT: &str = "DELETE /applications/grants/{grant_id}";
const LIST_AUTHORIZATIONS: &str = "GET /authorizations";
const CREATE: &str = "POST /authorizations";
const PUT_FOR_APP: &str = "PUT /authorizations/clients/{client_id}";
const PUT_FOR_FINGERPRINT: &str = "PUT /authorizations/clients/{client_id}/{fingerprint}";
const GET_AUTHORIZATION: &str = "GET /authorizations/{authorization_id}";
const UPDATE: &str = "PATCH /authorizations/{authorization_id}";
const DELETE_AUTHORIZATION: &str = "DELETE /authorizations/{authorization_id}";
const ALL_OPERATIONS: [&str; 10] = [
    LIST_GRANTS,
    GET_GRANT,
    DELETE_GRANT,
    LIST_AUTHORIZATIONS,
    CREATE,
    PUT_FOR_APP,
    PUT_FOR_FINGERPRINT,
    GET_AUTHORIZATION,
    UPDATE,
    DELETE_AUTHORIZATION,
];

/// Upper bound on pages followed through `Link: rel="next"`.
const MAX_PAGES: usize = 10;

/// What a request carries as its body.
#[derive(Debug, Clone)]
enum Payload {
    Empty,
    Json(Value),
    /// Sent as is with `Content-Type: application/json` (malformed bodies).
    Raw(String),
}

/// One request to send, relative to the API root.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    /// Path and query relative to `/api/v3`, e.g. `/authorizations?per_page=100`.
    target: String,
    credentials: Option<(String, String)>,
    otp: Option<String>,
    payload: Payload,
    headers: Vec<(&'static str, String)>,
}

impl Call {
    fn new(method: Method, target: impl Into<String>) -> Self {
        Self {
            method,
            target: target.into(),
            credentials: None,
            otp: None,
            payload: Payload::Empty,
            headers: Vec::new(),
        }
    }

    fn auth(mut self, login: &str, password: &str) -> Self {
        self.credentials = Some((login.to_owned(), password.to_owned()));
        self
    }

    fn otp(mut self, code: impl Into<String>) -> Self {
        self.otp = Some(code.into());
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.payload = Payload::Json(body);
        self
    }

    fn raw(mut self, body: &str) -> Self {
        self.payload = Payload::Raw(body.to_owned());
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The path without the query, as the checker takes it.
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// `alice` with her password.
fn alice(method: Method, target: impl Into<String>) -> Call {
    Call::new(method, target).auth(ALICE.0, ALICE.1)
}

/// `bob` with his password and a current two-factor code.
fn bob(method: Method, target: impl Into<String>) -> Call {
    Call::new(method, target).auth(BOB.0, BOB.1).otp(otp_now())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

fn otp_now() -> String {
    totp_code(BOB_SEED, unix_now()).expect("the seed is base32")
}

fn sha256_hex(value: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(value.as_bytes()))
}

/// One request of each of the ten operations with plausible ids and bodies, without credentials.
fn every_operation(grant_id: u64, authorization_id: u64) -> [Call; 10] {
    let secret = json!({"client_secret": APP_ONE.1});
    [
        Call::new(Method::GET, "/applications/grants"),
        Call::new(Method::GET, format!("/applications/grants/{grant_id}")),
        Call::new(Method::DELETE, format!("/applications/grants/{grant_id}")),
        Call::new(Method::GET, "/authorizations"),
        Call::new(Method::POST, "/authorizations").json(json!({"note": "sweep"})),
        Call::new(
            Method::PUT,
            format!("/authorizations/clients/{}", APP_ONE.0),
        )
        .json(secret.clone()),
        Call::new(
            Method::PUT,
            format!("/authorizations/clients/{}/sweep-fp", APP_ONE.0),
        )
        .json(secret),
        Call::new(Method::GET, format!("/authorizations/{authorization_id}")),
        Call::new(Method::PATCH, format!("/authorizations/{authorization_id}"))
            .json(json!({"note": "sweep"})),
        Call::new(
            Method::DELETE,
            format!("/authorizations/{authorization_id}"),
        ),
    ]
}

/// One answer, its body parsed (an empty body is `Null`).
#[derive(Debug)]
struct Answer {
    label: String,
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn id(&self) -> u64 {
        self.body["id"].as_u64().unwrap_or(0)
    }

    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    fn ids(&self) -> Vec<u64> {
        self.body
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["id"].as_u64()).collect())
            .unwrap_or_default()
    }
}

/// One relation of a `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkRelation {
    rel: String,
    url: String,
}

fn parse_link(value: &str) -> Vec<LinkRelation> {
    value
        .split(',')
        .filter_map(|part| {
            let part = part.trim();
            let url = part.strip_prefix('<')?.split('>').next()?.to_owned();
            let rel = part.split("rel=\"").nth(1)?.split('"').next()?.to_owned();
            Some(LinkRelation { rel, url })
        })
        .collect()
}

/// The emulator, the description, a client, and what went wrong so far.
struct Harness {
    description: Description,
    emulator: RunningEmulator,
    client: Client,
    failures: Vec<String>,
    /// `(METHOD template, status)` pairs exercised.
    covered: BTreeSet<(String, u16)>,
    /// Tokens seen in creating answers, by authorization id.
    tokens: BTreeMap<u64, String>,
    exchanges: usize,
}

impl Harness {
    /// `None` (the test then passes as skipped) when the description is absent.
    async fn start() -> Option<Self> {
        let description = Description::load()?;
        let config = EmulatorConfig {
            users: vec![
                UserSpec::parse(&format!("{}:{}", ALICE.0, ALICE.1)).expect("alice"),
                UserSpec::parse(&format!("{}:{}:{BOB_SEED}", BOB.0, BOB.1)).expect("bob"),
            ],
            apps: vec![
                AppSpec::parse(&format!("{}:{}:App One", APP_ONE.0, APP_ONE.1)).expect("app one"),
                AppSpec::parse(&format!("{}:{}:App Two", APP_TWO.0, APP_TWO.1)).expect("app two"),
            ],
            ..EmulatorConfig::default()
        };
        let emulator = Emulator::start(config, "127.0.0.1:0".parse().expect("loopback"))
            .await
            .expect("the emulator starts on loopback");
        assert!(emulator.addr().ip().is_loopback());
        let client = Client::builder()
            .user_agent(concat!(
                "ghes-oauth-operator-conformance/",
                env!("CARGO_PKG_VERSION")
            ))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("a reqwest client");
        Some(Self {
            description,
            emulator,
            client,
            failures: Vec::new(),
            covered: BTreeSet::new(),
            tokens: BTreeMap::new(),
            exchanges: 0,
        })
    }

    fn api_url(&self) -> String {
        self.emulator.api_url()
    }

    fn fail(&mut self, context: &str, problem: impl std::fmt::Display) {
        self.failures.push(format!("{context}: {problem}"));
    }

    fn expect(&mut self, holds: bool, answer: &Answer, what: impl std::fmt::Display) {
        if !holds {
            self.fail(&answer.label, format!("expected {what}"));
        }
    }

    fn expect_status(&mut self, answer: &Answer, status: u16) -> bool {
        let ok = answer.status == status;
        if !ok {
            self.fail(
                &answer.label,
                format!(
                    "answered {} where {status} was expected: {}",
                    answer.status, answer.body
                ),
            );
        }
        ok
    }

    /// Status and a `message` containing `message`.
    fn expect_error(&mut self, answer: &Answer, status: u16, message: &str) {
        if self.expect_status(answer, status) {
            let has = answer.message().contains(message);
            self.expect(has, answer, format!("a message containing {message:?}"));
        }
    }

    /// 422 `Validation Failed` naming `field` with `code`.
    fn expect_field_error(&mut self, answer: &Answer, field: &str, code: &str) {
        if !self.expect_status(answer, 422) {
            return;
        }
        let named = answer.body["errors"].as_array().is_some_and(|errors| {
            errors
                .iter()
                .any(|e| e["field"] == field && e["code"] == code)
        });
        self.expect(
            named,
            answer,
            format!("an error {{field: {field}, code: {code}}}"),
        );
    }

    /// Like [`Self::send`], but for an absolute URL the emulator handed out (e.g. in `Link`):
    /// it must point into this emulator's API root.
    async fn follow(&mut self, call: Call, url: &str) -> Option<Answer> {
        let api = self.api_url();
        match url.strip_prefix(&api) {
            Some(target) if target.starts_with('/') => Some(
                self.send(Call {
                    target: target.to_owned(),
                    ..call
                })
                .await,
            ),
            _ => {
                self.fail(url, format!("a URL handed out is not under {api}"));
                None
            }
        }
    }

    /// Sends `call`, judges the answer against the description and the facts, and returns it.
    async fn send(&mut self, call: Call) -> Answer {
        self.exchanges += 1;
        let label = format!("{} {}", call.method, call.target);
        let url = format!("{}{}", self.api_url(), call.target);
        let mut request = self
            .client
            .request(call.method.clone(), &url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some((login, password)) = &call.credentials {
            request = request.basic_auth(login, Some(password));
        }
        if let Some(code) = &call.otp {
            request = request.header("x-github-otp", code);
        }
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        request = match &call.payload {
            Payload::Empty => request,
            Payload::Json(body) => request.json(body),
            Payload::Raw(body) => request
                .header("content-type", "application/json")
                .body(body.clone()),
        };
        let (status, headers, text) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.text().await {
                    Ok(text) => (status, headers, text),
                    Err(error) => {
                        self.fail(&label, format!("reading the body failed: {error}"));
                        (status, headers, String::new())
                    }
                }
            }
            Err(error) => {
                self.fail(&label, format!("request failed: {error}"));
                return Answer {
                    label,
                    status: 0,
                    headers: HeaderMap::new(),
                    body: Value::Null,
                };
            }
        };
        let body = if text.is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(body) => body,
                Err(error) => {
                    self.fail(
                        &label,
                        format!("{status} body is not JSON ({error}): {text}"),
                    );
                    Value::Null
                }
            }
        };
        let answer = Answer {
            label: format!("{label} → {status}"),
            status,
            headers,
            body,
        };
        self.judge(&call, &answer);
        answer
    }

    /// The description's verdict plus the facts every answer must show.
    fn judge(&mut self, call: &Call, answer: &Answer) {
        let method = call.method.as_str();
        let path = call.path();
        if let Err(violation) = self
            .description
            .check(method, path, answer.status, &answer.body)
        {
            self.fail(&answer.label, format!("DESCRIPTION VIOLATED: {violation}"));
        }
        let Some(template) = self
            .description
            .operation(method, path)
            .map(|(template, _)| template.to_owned())
        else {
            return;
        };
        self.covered
            .insert((format!("{method} {template}"), answer.status));

        if !answer.body.is_null() {
            let json = answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json"));
            self.expect(json, answer, "Content-Type application/json on a JSON body");
        }
        if !template.starts_with("/authorizations") || !(200..300).contains(&answer.status) {
            return;
        }
        let creating = answer.status == 201 && matches!(method, "POST" | "PUT");
        match &answer.body {
            Value::Array(items) => {
                for item in items {
                    self.authorization_facts(&answer.label, item, false);
                }
            }
            Value::Object(_) => {
                self.authorization_facts(&answer.label, &answer.body, creating);
                let api = self.api_url();
                let url = answer.body["url"].as_str().unwrap_or_default();
                let expected_url = format!("{api}/authorizations/{}", answer.id());
                self.expect(url == expected_url, answer, format!("url {expected_url}"));
                if creating || method == "PUT" {
                    let location = answer.header("location").unwrap_or_default();
                    self.expect(
                        location == url,
                        answer,
                        format!("Location {url:?}, got {location:?}"),
                    );
                }
            }
            _ => {}
        }
    }

    /// Token shown once, `hashed_token` its lowercase hex SHA-256, `token_last_eight` its tail.
    fn authorization_facts(&mut self, label: &str, item: &Value, creating: bool) {
        let id = item["id"].as_u64().unwrap_or(0);
        let token = item["token"].as_str();
        let hashed = item["hashed_token"].as_str().unwrap_or_default();
        let last_eight = item["token_last_eight"].as_str().unwrap_or_default();
        let hex = hashed.len() == 64
            && hashed
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            self.fail(
                label,
                format!("#{id}: hashed_token {hashed:?} is not lowercase hex SHA-256"),
            );
        }
        match (creating, token) {
            (true, Some(token)) if !token.is_empty() => {
                if sha256_hex(token) != hashed {
                    self.fail(label, format!("#{id}: hashed_token is not sha256(token)"));
                }
                let tail = &token[token.len().saturating_sub(8)..];
                if last_eight != tail {
                    self.fail(
                        label,
                        format!("#{id}: token_last_eight {last_eight:?} ≠ {tail:?}"),
                    );
                }
                if let Some(earlier) = self.tokens.insert(id, token.to_owned())
                    && earlier != token
                {
                    self.fail(
                        label,
                        format!("#{id}: a second, different token was issued"),
                    );
                }
            }
            (true, _) => self.fail(label, format!("#{id}: a creating answer lacks the token")),
            (false, Some("")) => {
                if let Some(known) = self.tokens.get(&id)
                    && sha256_hex(known) != hashed
                {
                    self.fail(label, format!("#{id}: hashed_token changed since creation"));
                }
            }
            (false, _) => self.fail(label, format!("#{id}: token is not \"\" outside creation")),
        }
    }

    /// Adds a coverage check for `expected` and fails with every problem found.
    async fn finish(self, area: &str, expected: &[(&str, u16)]) {
        let Self {
            emulator,
            mut failures,
            covered,
            exchanges,
            ..
        } = self;
        for (operation, status) in expected {
            if !covered.contains(&((*operation).to_owned(), *status)) {
                failures.push(format!(
                    "coverage: {operation} → {status} was never answered"
                ));
            }
        }
        let mut matrix: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        for (operation, status) in &covered {
            matrix.entry(operation).or_default().push(*status);
        }
        eprintln!("{area}: {exchanges} exchanges");
        for (operation, statuses) in &matrix {
            eprintln!("  {operation:58} {statuses:?}");
        }
        emulator.shutdown().await;
        assert!(
            failures.is_empty(),
            "{area}: {} failure(s):\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
}

/// Operations #4–#10 through their success paths, for a plain and a two-factor user.
#[tokio::test]
async fn authorization_operations_conform() {
    let Some(mut h) = Harness::start().await else {
        return;
    };

    let empty = h.send(alice(Method::GET, "/authorizations")).await;
    h.expect_status(&empty, 200);
    h.expect(empty.body == json!([]), &empty, "no authorizations yet");
    h.expect(
        empty.header("link").is_none(),
        &empty,
        "no Link on a single page",
    );

    // #5, a personal token: scopes normalized, fields echoed.
    let personal = h
        .send(alice(Method::POST, "/authorizations").json(json!({
            "scopes": ["repo", "public_repo", "gist", "repo"],
            "note": "ci personal",
            "note_url": "https://ci.example.com/personal",
            "fingerprint": "fp-personal",
        })))
        .await;
    h.expect_status(&personal, 201);
    let scopes: BTreeSet<&str> = personal.body["scopes"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    h.expect(
        scopes == BTreeSet::from(["gist", "repo"]),
        &personal,
        format!("scopes normalized to {{gist, repo}}, got {scopes:?}"),
    );
    h.expect(
        personal.body["note"] == "ci personal",
        &personal,
        "the note",
    );
    h.expect(
        personal.body["fingerprint"] == "fp-personal",
        &personal,
        "the fingerprint",
    );
    h.expect(
        personal.body["user"]["login"] == ALICE.0,
        &personal,
        "user alice",
    );
    let personal_id = personal.id();

    // #5, an app token.
    let app_post = h
        .send(alice(Method::POST, "/authorizations").json(json!({
            "client_id": APP_ONE.0,
            "client_secret": APP_ONE.1,
            "scopes": ["read:org"],
            "note": "via post",
            "fingerprint": "fp-post",
        })))
        .await;
    h.expect_status(&app_post, 201);
    h.expect(
        app_post.body["app"]["client_id"] == APP_ONE.0,
        &app_post,
        "app one",
    );

    // #6: created, then the existing one (same id, no token).
    let put_body =
        json!({"client_secret": APP_TWO.1, "scopes": ["public_repo"], "note": "app two"});
    let put_app = format!("/authorizations/clients/{}", APP_TWO.0);
    let created = h
        .send(alice(Method::PUT, &put_app).json(put_body.clone()))
        .await;
    h.expect_status(&created, 201);
    let existing = h.send(alice(Method::PUT, &put_app).json(put_body)).await;
    h.expect_status(&existing, 200);
    h.expect(
        existing.id() == created.id(),
        &existing,
        "the id of the first PUT",
    );

    // #6 with the fingerprint in the body.
    let put_one = format!("/authorizations/clients/{}", APP_ONE.0);
    let body_fp = json!({"client_secret": APP_ONE.1, "fingerprint": "fp-body", "scopes": ["gist"]});
    let first = h
        .send(alice(Method::PUT, &put_one).json(body_fp.clone()))
        .await;
    h.expect_status(&first, 201);
    h.expect(
        first.body["fingerprint"] == "fp-body",
        &first,
        "fingerprint fp-body",
    );
    let again = h.send(alice(Method::PUT, &put_one).json(body_fp)).await;
    h.expect_status(&again, 200);
    h.expect(again.id() == first.id(), &again, "the same authorization");

    // #7: created, then the existing one.
    let put_fp = format!("/authorizations/clients/{}/fp-seven", APP_TWO.0);
    let fp_body = json!({"client_secret": APP_TWO.1, "scopes": ["workflow"], "note": "seven"});
    let fp_created = h
        .send(alice(Method::PUT, &put_fp).json(fp_body.clone()))
        .await;
    h.expect_status(&fp_created, 201);
    h.expect(
        fp_created.body["fingerprint"] == "fp-seven",
        &fp_created,
        "the path's fingerprint",
    );
    let fp_existing = h.send(alice(Method::PUT, &put_fp).json(fp_body)).await;
    h.expect_status(&fp_existing, 200);
    h.expect(
        fp_existing.id() == fp_created.id(),
        &fp_existing,
        "the same authorization",
    );

    // The two-factor user: with a code, and with a token of his as the password (no code).
    let bob_token = h
        .send(bob(Method::POST, "/authorizations").json(json!({"note": "bob's", "scopes": []})))
        .await;
    h.expect_status(&bob_token, 201);
    let bob_fp = h
        .send(
            bob(
                Method::PUT,
                format!("/authorizations/clients/{}/bob-fp", APP_ONE.0),
            )
            .json(json!({"client_secret": APP_ONE.1})),
        )
        .await;
    h.expect_status(&bob_fp, 201);
    let token = bob_token.body["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let with_token = h
        .send(Call::new(Method::GET, "/authorizations").auth(BOB.0, &token))
        .await;
    h.expect_status(&with_token, 200);
    h.expect(
        with_token.ids().len() == 2,
        &with_token,
        "bob's two authorizations",
    );

    // #8 on every authorization created.
    let alice_ids = [
        personal_id,
        app_post.id(),
        created.id(),
        first.id(),
        fp_created.id(),
    ];
    for id in alice_ids {
        let one = h
            .send(alice(Method::GET, format!("/authorizations/{id}")))
            .await;
        h.expect_status(&one, 200);
        h.expect(one.id() == id, &one, format!("authorization {id}"));
    }
    let bob_one = h
        .send(bob(Method::GET, format!("/authorizations/{}", bob_fp.id())))
        .await;
    h.expect_status(&bob_one, 200);

    // #4: everything, then one app's.
    let all = h.send(alice(Method::GET, "/authorizations")).await;
    h.expect_status(&all, 200);
    let listed: BTreeSet<u64> = all.ids().into_iter().collect();
    h.expect(
        listed == BTreeSet::from(alice_ids),
        &all,
        format!("alice's five authorizations, got {listed:?}"),
    );
    let of_app = h
        .send(alice(
            Method::GET,
            format!("/authorizations?client_id={}", APP_TWO.0),
        ))
        .await;
    h.expect_status(&of_app, 200);
    let only_app_two = of_app.body.as_array().is_some_and(|items| {
        items.len() == 2 && items.iter().all(|i| i["app"]["client_id"] == APP_TWO.0)
    });
    h.expect(only_app_two, &of_app, "app two's two authorizations");

    // Conditional GETs: 304 with the ETag, for one authorization and for the list.
    let target = format!("/authorizations/{personal_id}");
    let tagged = h.send(alice(Method::GET, &target)).await;
    let etag = tagged.header("etag").unwrap_or_default().to_owned();
    h.expect(!etag.is_empty(), &tagged, "an ETag on a GET");
    let not_modified = h
        .send(alice(Method::GET, &target).header("if-none-match", &etag))
        .await;
    h.expect_status(&not_modified, 304);
    h.expect(not_modified.body.is_null(), &not_modified, "no body on 304");
    let list_etag = all.header("etag").unwrap_or_default().to_owned();
    let list_304 = h
        .send(alice(Method::GET, "/authorizations").header("if-none-match", &list_etag))
        .await;
    h.expect_status(&list_304, 304);

    // #9: each scope field alone, notes, fingerprint, an empty PATCH.
    let patches = [
        (
            json!({"add_scopes": ["read:org", "repo:status"]}),
            json!(["gist", "read:org", "repo"]),
        ),
        (
            json!({"remove_scopes": ["gist"]}),
            json!(["read:org", "repo"]),
        ),
        (
            json!({"scopes": ["admin:org", "read:org"]}),
            json!(["admin:org"]),
        ),
    ];
    for (patch, scopes) in patches {
        let answer = h.send(alice(Method::PATCH, &target).json(patch)).await;
        h.expect_status(&answer, 200);
        h.expect(
            answer.body["scopes"] == scopes,
            &answer,
            format!("scopes {scopes}"),
        );
    }
    let renamed = h
        .send(alice(Method::PATCH, &target).json(json!({
            "note": "ci personal, renamed",
            "note_url": "https://ci.example.com/renamed",
            "fingerprint": "fp-personal-2",
        })))
        .await;
    h.expect_status(&renamed, 200);
    h.expect(
        renamed.body["note"] == "ci personal, renamed",
        &renamed,
        "the new note",
    );
    h.expect(
        renamed.body["fingerprint"] == "fp-personal-2",
        &renamed,
        "the new fingerprint",
    );
    let unchanged = h.send(alice(Method::PATCH, &target).json(json!({}))).await;
    h.expect_status(&unchanged, 200);
    let stale = h
        .send(alice(Method::GET, &target).header("if-none-match", &etag))
        .await;
    h.expect_status(&stale, 200);

    // A token lifetime makes expires_at a timestamp.
    h.emulator.update_settings(SettingsPatch {
        token_ttl_secs: Some(Some(3600)),
        ..SettingsPatch::default()
    });
    let expiring = h
        .send(alice(Method::POST, "/authorizations").json(json!({"note": "expiring"})))
        .await;
    h.expect_status(&expiring, 201);
    h.expect(
        expiring.body["expires_at"].is_string(),
        &expiring,
        "expires_at set",
    );
    h.emulator.update_settings(SettingsPatch {
        token_ttl_secs: Some(None),
        ..SettingsPatch::default()
    });

    // A GHES clock an hour ahead: created_at and the Date header follow it.
    h.emulator.update_settings(SettingsPatch {
        clock_offset_secs: Some(3600),
        ..SettingsPatch::default()
    });
    let ahead = h
        .send(alice(Method::POST, "/authorizations").json(json!({"note": "clock ahead"})))
        .await;
    h.expect_status(&ahead, 201);
    let created = ahead.body["created_at"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| {
            t.as_second()
                .abs_diff(i64::try_from(unix_now()).unwrap_or(0) + 3600)
        });
    h.expect(
        created.is_some_and(|skew| skew <= 5),
        &ahead,
        "created_at an hour ahead",
    );
    let date = ahead
        .header("date")
        .and_then(|d| {
            jiff::fmt::rfc2822::DateTimeParser::new()
                .parse_timestamp(d)
                .ok()
        })
        .map(|t| {
            t.as_second()
                .abs_diff(i64::try_from(unix_now()).unwrap_or(0) + 3600)
        });
    h.expect(
        date.is_some_and(|skew| skew <= 5),
        &ahead,
        "Date an hour ahead",
    );
    h.emulator.update_settings(SettingsPatch {
        clock_offset_secs: Some(0),
        ..SettingsPatch::default()
    });

    // #10: deleted, then gone.
    let deleted = h.send(alice(Method::DELETE, &target)).await;
    h.expect_status(&deleted, 204);
    h.expect(deleted.body.is_null(), &deleted, "no body on 204");
    let gone = h.send(alice(Method::GET, &target)).await;
    h.expect_error(&gone, 404, "Not Found");
    let twice = h.send(alice(Method::DELETE, &target)).await;
    h.expect_error(&twice, 404, "Not Found");
    let after = h.send(alice(Method::GET, "/authorizations")).await;
    h.expect(
        !after.ids().contains(&personal_id),
        &after,
        "the deleted one unlisted",
    );

    h.finish(
        "authorization operations",
        &[
            (LIST_AUTHORIZATIONS, 200),
            (LIST_AUTHORIZATIONS, 304),
            (CREATE, 201),
            (PUT_FOR_APP, 201),
            (PUT_FOR_APP, 200),
            (PUT_FOR_FINGERPRINT, 201),
            (PUT_FOR_FINGERPRINT, 200),
            (GET_AUTHORIZATION, 200),
            (GET_AUTHORIZATION, 304),
            (GET_AUTHORIZATION, 404),
            (UPDATE, 200),
            (DELETE_AUTHORIZATION, 204),
            (DELETE_AUTHORIZATION, 404),
        ],
    )
    .await;
}

/// Operations #1–#3: grants derived from app tokens, and revoking one takes its tokens along.
#[tokio::test]
async fn grant_operations_conform() {
    let Some(mut h) = Harness::start().await else {
        return;
    };

    let none = h.send(alice(Method::GET, "/applications/grants")).await;
    h.expect_status(&none, 200);
    h.expect(none.body == json!([]), &none, "no grants yet");

    let one_a = h
        .send(
            alice(
                Method::PUT,
                format!("/authorizations/clients/{}", APP_ONE.0),
            )
            .json(json!({"client_secret": APP_ONE.1, "scopes": ["repo"]})),
        )
        .await;
    let one_b = h
        .send(
            alice(
                Method::PUT,
                format!("/authorizations/clients/{}/fp-b", APP_ONE.0),
            )
            .json(json!({"client_secret": APP_ONE.1, "scopes": ["read:org"]})),
        )
        .await;
    let two = h
        .send(
            alice(
                Method::PUT,
                format!("/authorizations/clients/{}/fp-c", APP_TWO.0),
            )
            .json(json!({"client_secret": APP_TWO.1, "scopes": ["gist"]})),
        )
        .await;
    let personal = h
        .send(alice(Method::POST, "/authorizations").json(json!({"note": "no grant"})))
        .await;
    for answer in [&one_a, &one_b, &two, &personal] {
        h.expect_status(answer, 201);
    }
    let bobs = h
        .send(
            bob(
                Method::PUT,
                format!("/authorizations/clients/{}", APP_ONE.0),
            )
            .json(json!({"client_secret": APP_ONE.1})),
        )
        .await;
    h.expect_status(&bobs, 201);

    // #1: one grant per app, scopes the union of its tokens'.
    let grants = h.send(alice(Method::GET, "/applications/grants")).await;
    h.expect_status(&grants, 200);
    h.expect(
        grants.header("link").is_none(),
        &grants,
        "no Link on a single page",
    );
    let items = grants.body.as_array().cloned().unwrap_or_default();
    let apps: Vec<&str> = items
        .iter()
        .filter_map(|g| g["app"]["client_id"].as_str())
        .collect();
    h.expect(
        apps == [APP_ONE.0, APP_TWO.0],
        &grants,
        format!("grants of app one and app two, got {apps:?}"),
    );
    let grant_of = |client_id: &str| {
        items
            .iter()
            .find(|g| g["app"]["client_id"] == client_id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let grant_one = grant_of(APP_ONE.0);
    let grant_two = grant_of(APP_TWO.0);
    h.expect(
        grant_one["scopes"] == json!(["read:org", "repo"]),
        &grants,
        format!(
            "app one's scopes [read:org, repo], got {}",
            grant_one["scopes"]
        ),
    );
    let grant_one_id = grant_one["id"].as_u64().unwrap_or(0);
    let grant_two_id = grant_two["id"].as_u64().unwrap_or(0);
    let filtered = h
        .send(alice(
            Method::GET,
            format!("/applications/grants?client_id={}", APP_TWO.0),
        ))
        .await;
    h.expect_status(&filtered, 200);
    h.expect(
        filtered.ids() == [grant_two_id],
        &filtered,
        "only app two's grant",
    );

    // #2, with its conditional form.
    let target = format!("/applications/grants/{grant_one_id}");
    let one = h.send(alice(Method::GET, &target)).await;
    h.expect_status(&one, 200);
    let expected_url = format!("{}{target}", h.api_url());
    h.expect(
        one.body["url"] == expected_url.as_str(),
        &one,
        format!("url {expected_url}"),
    );
    h.expect(one.body["user"]["login"] == ALICE.0, &one, "user alice");
    let etag = one.header("etag").unwrap_or_default().to_owned();
    let cached = h
        .send(alice(Method::GET, &target).header("if-none-match", &etag))
        .await;
    h.expect_status(&cached, 304);
    let list_etag = grants.header("etag").unwrap_or_default().to_owned();
    let list_cached = h
        .send(alice(Method::GET, "/applications/grants").header("if-none-match", &list_etag))
        .await;
    h.expect_status(&list_cached, 304);

    // Bob's grant is not alice's to see or revoke.
    let bob_grants = h.send(bob(Method::GET, "/applications/grants")).await;
    let bob_grant = bob_grants.ids().first().copied().unwrap_or(0);
    let foreign = h
        .send(alice(
            Method::GET,
            format!("/applications/grants/{bob_grant}"),
        ))
        .await;
    h.expect_error(&foreign, 404, "Not Found");
    let foreign_delete = h
        .send(alice(
            Method::DELETE,
            format!("/applications/grants/{bob_grant}"),
        ))
        .await;
    h.expect_error(&foreign_delete, 404, "Not Found");
    let bob_still = h
        .send(bob(Method::GET, format!("/authorizations/{}", bobs.id())))
        .await;
    h.expect_status(&bob_still, 200);

    // #3: revokes the grant and both of app one's tokens, nothing else.
    let revoked = h.send(alice(Method::DELETE, &target)).await;
    h.expect_status(&revoked, 204);
    h.expect(revoked.body.is_null(), &revoked, "no body on 204");
    for id in [one_a.id(), one_b.id()] {
        let gone = h
            .send(alice(Method::GET, format!("/authorizations/{id}")))
            .await;
        h.expect_error(&gone, 404, "Not Found");
    }
    for id in [two.id(), personal.id()] {
        let kept = h
            .send(alice(Method::GET, format!("/authorizations/{id}")))
            .await;
        h.expect_status(&kept, 200);
    }
    let of_app_one = h
        .send(alice(
            Method::GET,
            format!("/authorizations?client_id={}", APP_ONE.0),
        ))
        .await;
    h.expect(
        of_app_one.body == json!([]),
        &of_app_one,
        "no app one tokens left",
    );
    let gone = h.send(alice(Method::GET, &target)).await;
    h.expect_error(&gone, 404, "Not Found");
    let twice = h.send(alice(Method::DELETE, &target)).await;
    h.expect_error(&twice, 404, "Not Found");
    for bad in ["0", "999999", "not-a-number"] {
        let unknown = h
            .send(alice(Method::GET, format!("/applications/grants/{bad}")))
            .await;
        h.expect_error(&unknown, 404, "Not Found");
    }

    // The grant goes with the app's last token.
    let last = h
        .send(alice(
            Method::DELETE,
            format!("/authorizations/{}", two.id()),
        ))
        .await;
    h.expect_status(&last, 204);
    let left = h.send(alice(Method::GET, "/applications/grants")).await;
    h.expect(left.body == json!([]), &left, "no grants left");
    let gone_two = h
        .send(alice(
            Method::GET,
            format!("/applications/grants/{grant_two_id}"),
        ))
        .await;
    h.expect_error(&gone_two, 404, "Not Found");

    h.finish(
        "grant operations",
        &[
            (LIST_GRANTS, 200),
            (LIST_GRANTS, 304),
            (GET_GRANT, 200),
            (GET_GRANT, 304),
            (GET_GRANT, 404),
            (DELETE_GRANT, 204),
            (DELETE_GRANT, 404),
        ],
    )
    .await;
}

/// Every error answer: 400, 401 (bad credentials, OTP required), 403 (lockout, rate limit),
/// 404, 410, 422, 429 — all ten operations where the error applies to them.
#[tokio::test]
async fn error_answers_conform() {
    let Some(mut h) = Harness::start().await else {
        return;
    };
    let app_token = h
        .send(
            alice(
                Method::PUT,
                format!("/authorizations/clients/{}", APP_ONE.0),
            )
            .json(json!({"client_secret": APP_ONE.1})),
        )
        .await;
    h.expect_status(&app_token, 201);
    let grants = h.send(alice(Method::GET, "/applications/grants")).await;
    let grant_id = grants.ids().first().copied().unwrap_or(1);
    let personal = h
        .send(alice(Method::POST, "/authorizations").json(json!({"note": "taken"})))
        .await;
    h.expect_status(&personal, 201);
    let id = personal.id();

    // 401 without credentials, with an unknown login, with another scheme.
    for call in every_operation(grant_id, id) {
        let answer = h.send(call).await;
        h.expect_error(&answer, 401, "Requires authentication");
    }
    for call in every_operation(grant_id, id) {
        let answer = h.send(call.auth("nobody", "whatever")).await;
        h.expect_error(&answer, 401, "Bad credentials");
    }
    let scheme = h
        .send(Call::new(Method::GET, "/authorizations").header("authorization", "token abc"))
        .await;
    h.expect_error(&scheme, 401, "Bad credentials");
    // A wrong password of a real user, then the right one (which clears the failure count).
    let wrong = h
        .send(Call::new(Method::GET, "/authorizations").auth(ALICE.0, "wrong"))
        .await;
    h.expect_error(&wrong, 401, "Bad credentials");
    let right = h.send(alice(Method::GET, "/authorizations")).await;
    h.expect_status(&right, 200);

    // 401 OTP required: no code, or a wrong one; the header names the method.
    for call in every_operation(grant_id, id) {
        let answer = h.send(call.auth(BOB.0, BOB.1)).await;
        h.expect_error(&answer, 401, "two-factor");
        let header = answer.header("x-github-otp").unwrap_or_default();
        h.expect(
            header == "required; app",
            &answer,
            format!("X-GitHub-OTP: required; app, got {header:?}"),
        );
    }
    let bad_code = h
        .send(
            Call::new(Method::GET, "/authorizations")
                .auth(BOB.0, BOB.1)
                .otp("abcdef"),
        )
        .await;
    h.expect_error(&bad_code, 401, "two-factor");
    h.expect(
        bad_code.header("x-github-otp") == Some("required; app"),
        &bad_code,
        "X-GitHub-OTP on a wrong code",
    );

    // 403 lockout, on a user of its own: max_login_attempts failures, then even the right
    // password is refused on every operation until lockouts are lifted.
    h.emulator
        .add_user(UserSpec::parse("carol:carol-password").expect("carol"))
        .expect("carol is added");
    let attempts = h.emulator.settings().max_login_attempts;
    assert!((1..=20).contains(&attempts), "a small lockout threshold");
    for _ in 0..attempts {
        let answer = h
            .send(Call::new(Method::GET, "/authorizations").auth("carol", "wrong"))
            .await;
        h.expect_error(&answer, 401, "Bad credentials");
    }
    for call in every_operation(grant_id, id) {
        let answer = h.send(call.auth("carol", "carol-password")).await;
        h.expect_error(&answer, 403, "Maximum number of login attempts exceeded");
    }
    h.emulator.reset_lockouts();
    let unlocked = h
        .send(Call::new(Method::GET, "/authorizations").auth("carol", "carol-password"))
        .await;
    h.expect_status(&unlocked, 200);

    // 403 rate limit from the settings: the budget counts down, then every operation is refused.
    let limit = 3;
    h.emulator.update_settings(SettingsPatch {
        rate_limit: Some(Some(RateLimit {
            limit,
            window_secs: 3600,
        })),
        ..SettingsPatch::default()
    });
    for used in 1..=limit {
        let answer = h.send(alice(Method::GET, "/authorizations")).await;
        h.expect_status(&answer, 200);
        let remaining = (limit - used).to_string();
        h.expect(
            answer.header("x-ratelimit-remaining") == Some(remaining.as_str()),
            &answer,
            format!("x-ratelimit-remaining {remaining}"),
        );
    }
    for call in every_operation(grant_id, id) {
        let answer = h.send(call.auth(ALICE.0, ALICE.1)).await;
        h.expect_error(&answer, 403, "rate limit");
        rate_limit_headers(&mut h, &answer);
    }
    h.emulator.update_settings(SettingsPatch {
        rate_limit: Some(None),
        ..SettingsPatch::default()
    });

    // 429 and 403 with Retry-After from injected faults (secondary rate limits).
    h.emulator
        .inject(
            Fault::status(429)
                .retry_after(7)
                .times(1)
                .method("POST")
                .path_prefix("/api/v3/authorizations"),
        )
        .expect("a valid fault");
    let secondary = h
        .send(alice(Method::POST, "/authorizations").json(json!({"note": "throttled"})))
        .await;
    h.expect_error(&secondary, 429, "secondary rate limit");
    h.expect(
        secondary.header("retry-after") == Some("7"),
        &secondary,
        "Retry-After: 7",
    );
    h.emulator
        .inject(
            Fault::status(403)
                .retry_after(5)
                .ratelimit_reset_in(60)
                .times(1)
                .path_prefix("/api/v3/applications/grants"),
        )
        .expect("a valid fault");
    let primary = h.send(alice(Method::GET, "/applications/grants")).await;
    h.expect_error(&primary, 403, "rate limit");
    h.expect(
        primary.header("retry-after") == Some("5"),
        &primary,
        "Retry-After: 5",
    );
    rate_limit_headers(&mut h, &primary);

    // 404: unknown, malformed and other users' ids.
    let bobs = h
        .send(bob(Method::POST, "/authorizations").json(json!({"note": "bob's"})))
        .await;
    h.expect_status(&bobs, 201);
    let bobs_id = bobs.id().to_string();
    for bad in ["999999", "0", "not-a-number", bobs_id.as_str()] {
        for call in [
            alice(Method::GET, format!("/authorizations/{bad}")),
            alice(Method::PATCH, format!("/authorizations/{bad}")).json(json!({"note": "x"})),
            alice(Method::DELETE, format!("/authorizations/{bad}")),
            alice(Method::GET, format!("/applications/grants/{bad}")),
            alice(Method::DELETE, format!("/applications/grants/{bad}")),
        ] {
            let answer = h.send(call).await;
            h.expect_error(&answer, 404, "Not Found");
        }
    }

    // 410 for POST when the API is disabled; the get-or-create PUTs answer 404 then.
    h.emulator.update_settings(SettingsPatch {
        api_disabled: Some(true),
        ..SettingsPatch::default()
    });
    let disabled = h
        .send(alice(Method::POST, "/authorizations").json(json!({"note": "disabled"})))
        .await;
    h.expect_status(&disabled, 410);
    for target in [
        format!("/authorizations/clients/{}", APP_TWO.0),
        format!("/authorizations/clients/{}/fp-disabled", APP_TWO.0),
    ] {
        let answer = h
            .send(alice(Method::PUT, target).json(json!({"client_secret": APP_TWO.1})))
            .await;
        h.expect_error(&answer, 404, "Not Found");
    }
    h.emulator.update_settings(SettingsPatch {
        api_disabled: Some(false),
        ..SettingsPatch::default()
    });

    // 422 Validation Failed, with the field and code of each rule.
    let put_one = format!("/authorizations/clients/{}", APP_ONE.0);
    let put_one_fp = format!("/authorizations/clients/{}/fp-422", APP_ONE.0);
    let target = format!("/authorizations/{id}");
    let cases: Vec<(Call, &str, &str)> = vec![
        (
            alice(Method::POST, "/authorizations").json(json!({"note": "taken"})),
            "description",
            "already_exists",
        ),
        (
            alice(Method::POST, "/authorizations").json(json!({"scopes": ["repo"]})),
            "description",
            "missing_field",
        ),
        (
            alice(Method::POST, "/authorizations")
                .json(json!({"note": "bad scope", "scopes": ["repo", "not-a-scope"]})),
            "scopes",
            "invalid",
        ),
        (
            alice(Method::PUT, &put_one)
                .json(json!({"client_secret": APP_ONE.1, "scopes": ["not-a-scope"]})),
            "scopes",
            "invalid",
        ),
        (
            alice(Method::PUT, &put_one_fp)
                .json(json!({"client_secret": APP_ONE.1, "scopes": ["not-a-scope"]})),
            "scopes",
            "invalid",
        ),
        (
            alice(Method::PATCH, &target).json(json!({"add_scopes": ["not-a-scope"]})),
            "scopes",
            "invalid",
        ),
        (
            alice(Method::PATCH, &target).json(json!({"scopes": ["repo"], "add_scopes": ["gist"]})),
            "scopes",
            "invalid",
        ),
        (
            alice(Method::PATCH, &target)
                .json(json!({"add_scopes": ["gist"], "remove_scopes": ["repo"]})),
            "scopes",
            "invalid",
        ),
        (
            alice(Method::POST, "/authorizations").json(json!({
                "client_id": APP_ONE.0, "client_secret": "wrong-secret", "scopes": ["repo"],
            })),
            "client_secret",
            "invalid",
        ),
        (
            alice(Method::PUT, &put_one).json(json!({"client_secret": "wrong-secret"})),
            "client_secret",
            "invalid",
        ),
        (
            alice(Method::PUT, &put_one_fp).json(json!({"client_secret": "wrong-secret"})),
            "client_secret",
            "invalid",
        ),
        (
            alice(Method::PUT, &put_one).json(json!({"scopes": ["repo"]})),
            "client_secret",
            "missing_field",
        ),
        (
            alice(Method::PUT, "/authorizations/clients/no-such-app")
                .json(json!({"client_secret": "x"})),
            "client_id",
            "invalid",
        ),
    ];
    for (call, field, code) in cases {
        let answer = h.send(call).await;
        h.expect_field_error(&answer, field, code);
    }
    // Duplicate fingerprints: POST for an app, and a PATCH onto another token's fingerprint.
    let fp_body = json!({"client_id": APP_TWO.0, "client_secret": APP_TWO.1, "fingerprint": "dup"});
    let original = h
        .send(alice(Method::POST, "/authorizations").json(fp_body.clone()))
        .await;
    h.expect_status(&original, 201);
    let duplicate = h
        .send(alice(Method::POST, "/authorizations").json(fp_body))
        .await;
    h.expect_field_error(&duplicate, "fingerprint", "already_exists");
    let other = h
        .send(
            alice(
                Method::PUT,
                format!("/authorizations/clients/{}/other", APP_TWO.0),
            )
            .json(json!({"client_secret": APP_TWO.1})),
        )
        .await;
    h.expect_status(&other, 201);
    let moved = h
        .send(
            alice(Method::PATCH, format!("/authorizations/{}", other.id()))
                .json(json!({"fingerprint": "dup"})),
        )
        .await;
    h.expect_field_error(&moved, "fingerprint", "already_exists");
    let second_note = h
        .send(alice(Method::POST, "/authorizations").json(json!({"note": "second"})))
        .await;
    let renamed = h
        .send(
            alice(
                Method::PATCH,
                format!("/authorizations/{}", second_note.id()),
            )
            .json(json!({"note": "taken"})),
        )
        .await;
    h.expect_field_error(&renamed, "description", "already_exists");
    // Wrong JSON types and non-object bodies: 422 Invalid request.
    let typed: Vec<Call> = vec![
        alice(Method::POST, "/authorizations").json(json!({"note": "t", "scopes": "repo"})),
        alice(Method::POST, "/authorizations").json(json!({"note": 5})),
        alice(Method::PUT, &put_one).json(json!({"client_secret": 1})),
        alice(Method::PUT, &put_one_fp).json(json!([APP_ONE.1])),
        alice(Method::PATCH, &target).json(json!({"add_scopes": [1]})),
        alice(Method::PATCH, &target).raw("\"just a string\""),
    ];
    for call in typed {
        let answer = h.send(call).await;
        h.expect_error(&answer, 422, "Invalid request");
    }

    // 400 Problems parsing JSON, on every operation with a body.
    for body in [
        "{not json",
        "{\"note\": \"cut",
        "{\"scopes\": [\"repo\",]}",
        "\u{1}",
    ] {
        for call in [
            alice(Method::POST, "/authorizations"),
            alice(Method::PUT, &put_one),
            alice(Method::PUT, &put_one_fp),
            alice(Method::PATCH, &target),
        ] {
            let answer = h.send(call.raw(body)).await;
            h.expect_error(&answer, 400, "Problems parsing JSON");
        }
    }

    // A note_url the request schema allows (any string) that is no URI: GHES may refuse it
    // (422) or keep it, but an answer that carries it must still match the description, whose
    // `authorization.note_url` is `format: uri`.
    let free_form = h
        .send(
            alice(Method::POST, "/authorizations")
                .json(json!({"note": "free-form note_url", "note_url": "not a uri"})),
        )
        .await;
    h.expect(
        matches!(free_form.status, 201 | 422),
        &free_form,
        "201 or 422 for a non-URI note_url",
    );
    let patched = h
        .send(alice(Method::PATCH, &target).json(json!({"note_url": "relative/path"})))
        .await;
    h.expect(
        matches!(patched.status, 200 | 422),
        &patched,
        "200 or 422 for a non-URI note_url",
    );
    // Put both back, so later answers are not judged on the same fault twice.
    if free_form.status == 201 {
        let id = free_form.id();
        h.send(alice(Method::DELETE, format!("/authorizations/{id}")))
            .await;
    }
    if patched.status == 200 {
        h.send(alice(Method::PATCH, &target).json(json!({"note_url": null})))
            .await;
    }

    // Nothing above changed the authorization that every refused request named.
    let intact = h.send(alice(Method::GET, &target)).await;
    h.expect_status(&intact, 200);
    h.expect(
        intact.body["note"] == "taken",
        &intact,
        "the note unchanged",
    );

    let mut expected: Vec<(&str, u16)> = Vec::new();
    for operation in ALL_OPERATIONS {
        expected.extend([(operation, 401), (operation, 403)]);
    }
    for operation in [
        GET_GRANT,
        DELETE_GRANT,
        GET_AUTHORIZATION,
        UPDATE,
        DELETE_AUTHORIZATION,
    ] {
        expected.push((operation, 404));
    }
    for operation in [CREATE, PUT_FOR_APP, PUT_FOR_FINGERPRINT, UPDATE] {
        expected.extend([(operation, 400), (operation, 422)]);
    }
    expected.extend([
        (CREATE, 410),
        (CREATE, 429),
        (PUT_FOR_APP, 404),
        (PUT_FOR_FINGERPRINT, 404),
    ]);
    h.finish("error answers", &expected).await;
}

/// Exhausted rate-limit headers: nothing remaining, a reset in the future.
fn rate_limit_headers(h: &mut Harness, answer: &Answer) {
    h.expect(
        answer.header("x-ratelimit-remaining") == Some("0"),
        answer,
        "x-ratelimit-remaining: 0",
    );
    let reset = answer
        .header("x-ratelimit-reset")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    h.expect(
        reset >= unix_now(),
        answer,
        format!("x-ratelimit-reset in the future, got {reset}"),
    );
}

/// Walks a listing from `first` through `rel="next"`; returns each page's answer and relations.
async fn walk(h: &mut Harness, first: Call) -> Vec<(Answer, Vec<LinkRelation>)> {
    let mut pages = Vec::new();
    let mut next = Some(first);
    for _ in 0..MAX_PAGES {
        let Some(call) = next.take() else {
            break;
        };
        let answer = h.send(call.clone()).await;
        h.expect_status(&answer, 200);
        let relations = answer.header("link").map(parse_link).unwrap_or_default();
        if let Some(url) = relations
            .iter()
            .find(|r| r.rel == "next")
            .map(|r| r.url.clone())
        {
            let api = h.api_url();
            match url.strip_prefix(&api) {
                Some(target) => {
                    next = Some(Call {
                        target: target.to_owned(),
                        ..call
                    })
                }
                None => h.fail(&answer.label, format!("next {url} is not under {api}")),
            }
        }
        pages.push((answer, relations));
    }
    if next.is_some() {
        h.fail("paging", format!("more than {MAX_PAGES} pages"));
    }
    pages
}

/// `Link` paging: 250 authorizations in pages of 100 are three pages, `next` on the first two,
/// absolute URLs that work when followed; grants page the same way.
#[tokio::test]
async fn paging_conforms() {
    let Some(mut h) = Harness::start().await else {
        return;
    };
    let total = 250;
    for n in 0..total {
        let seeded = h
            .emulator
            .seed_authorization(SeedAuthorization {
                login: ALICE.0.into(),
                scopes: vec!["repo".into()],
                note: Some(format!("seeded-{n:03}")),
                fingerprint: Some(format!("seed-fp-{n:03}")),
                ..SeedAuthorization::default()
            })
            .expect("seeding works");
        h.tokens.insert(seeded.id, seeded.token);
    }

    let pages = walk(&mut h, alice(Method::GET, "/authorizations?per_page=100")).await;
    let sizes: Vec<usize> = pages.iter().map(|(a, _)| a.ids().len()).collect();
    if sizes != [100, 100, 50] {
        h.fail(
            "paging",
            format!("pages of [100, 100, 50] expected, got {sizes:?}"),
        );
    }
    let api = h.api_url();
    let loopback = format!("{api}/authorizations?");
    for (index, (answer, relations)) in pages.iter().enumerate() {
        let page = index + 1;
        let rels: BTreeSet<&str> = relations.iter().map(|r| r.rel.as_str()).collect();
        let expected: BTreeSet<&str> = match page {
            1 => BTreeSet::from(["next", "last"]),
            2 => BTreeSet::from(["prev", "next", "last", "first"]),
            _ => BTreeSet::from(["prev", "first"]),
        };
        h.expect(
            rels == expected,
            answer,
            format!("Link rels {expected:?}, got {rels:?}"),
        );
        for relation in relations {
            let absolute =
                relation.url.starts_with(&loopback) && relation.url.contains("per_page=100");
            h.expect(
                absolute,
                answer,
                format!(
                    "an absolute {loopback}…per_page=100 URL, got {}",
                    relation.url
                ),
            );
        }
    }
    let ids: Vec<u64> = pages.iter().flat_map(|(a, _)| a.ids()).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    if ids.len() != total || unique.len() != total {
        h.fail(
            "paging",
            format!(
                "{total} distinct authorizations expected, got {} ({} distinct)",
                ids.len(),
                unique.len()
            ),
        );
    }

    // The other relations work when followed too.
    if let [first_page, second_page, (_, relations)] = &pages[..] {
        let (first_ids, second_ids) = (first_page.0.ids(), second_page.0.ids());
        for relation in relations.clone() {
            let Some(answer) = h.follow(alice(Method::GET, ""), &relation.url).await else {
                continue;
            };
            h.expect_status(&answer, 200);
            let expected = if relation.rel == "first" {
                &first_ids
            } else {
                &second_ids
            };
            h.expect(
                answer.ids() == *expected,
                &answer,
                format!("rel={} as walked", relation.rel),
            );
        }
    }
    let clamped = h
        .send(alice(Method::GET, "/authorizations?per_page=500"))
        .await;
    h.expect(
        clamped.ids().len() == 100,
        &clamped,
        "per_page clamped to 100",
    );
    let beyond = h
        .send(alice(Method::GET, "/authorizations?per_page=100&page=9"))
        .await;
    h.expect_status(&beyond, 200);
    h.expect(
        beyond.body == json!([]),
        &beyond,
        "an empty page past the last",
    );

    // Grants: three apps' grants in pages of two.
    h.emulator
        .add_app(AppSpec::parse("app-three:app-three-secret").expect("app three"))
        .expect("app three is added");
    for (client_id, secret) in [APP_ONE, APP_TWO, ("app-three", "app-three-secret")] {
        let answer = h
            .send(
                alice(Method::PUT, format!("/authorizations/clients/{client_id}"))
                    .json(json!({"client_secret": secret})),
            )
            .await;
        h.expect_status(&answer, 201);
    }
    let grant_pages = walk(
        &mut h,
        alice(Method::GET, "/applications/grants?per_page=2"),
    )
    .await;
    let sizes: Vec<usize> = grant_pages.iter().map(|(a, _)| a.ids().len()).collect();
    if sizes != [2, 1] {
        h.fail(
            "grant paging",
            format!("pages of [2, 1] expected, got {sizes:?}"),
        );
    }
    for (index, (answer, relations)) in grant_pages.iter().enumerate() {
        let has_next = relations.iter().any(|r| r.rel == "next");
        h.expect(
            has_next == (index == 0),
            answer,
            "rel=\"next\" on the first page only",
        );
    }

    h.finish(
        "paging",
        &[
            (LIST_AUTHORIZATIONS, 200),
            (LIST_GRANTS, 200),
            (PUT_FOR_APP, 201),
        ],
    )
    .await;
}

/// A named way to break a conforming body.
type Breakage = (&'static str, fn(&mut Value));

/// The checker itself is not vacuous: references, `required`, formats, undeclared statuses and
/// bodies where none is declared are all caught (a real 201 body, broken one way at a time).
#[tokio::test]
async fn checker_rejects_what_the_description_forbids() {
    let Some(mut h) = Harness::start().await else {
        return;
    };
    let created = h
        .send(alice(Method::POST, "/authorizations").json(json!({"note": "pristine"})))
        .await;
    h.expect_status(&created, 201);
    let good = created.body.clone();
    let check =
        |status: u16, body: &Value| h.description.check("POST", "/authorizations", status, body);
    let mut problems: Vec<String> = Vec::new();
    if let Err(error) = check(201, &good) {
        problems.push(format!("a conforming body was refused: {error}"));
    }
    let broken: [Breakage; 8] = [
        ("token removed", |b| {
            drop(b.as_object_mut().map(|o| o.remove("token")))
        }),
        ("id a string", |b| b["id"] = json!("1")),
        ("url no URI", |b| b["url"] = json!("not a uri")),
        ("created_at no date-time", |b| {
            b["created_at"] = json!("yesterday")
        }),
        ("scopes a string", |b| b["scopes"] = json!("repo")),
        ("app.client_id removed", |b| {
            drop(b["app"].as_object_mut().map(|o| o.remove("client_id")));
        }),
        ("user.login removed", |b| {
            drop(b["user"].as_object_mut().map(|o| o.remove("login")));
        }),
        ("user.html_url no URI", |b| {
            b["user"]["html_url"] = json!("::")
        }),
    ];
    for (what, breakage) in broken {
        let mut body = good.clone();
        breakage(&mut body);
        if check(201, &body).is_ok() {
            problems.push(format!("201 with {what} was accepted"));
        }
    }
    if check(500, &json!({"message": "Server Error"})).is_ok() {
        problems.push("an undeclared 500 was accepted".into());
    }
    if check(422, &json!({"message": "Validation Failed"})).is_ok() {
        problems.push("a 422 without documentation_url was accepted".into());
    }
    if check(201, &Value::Null).is_ok() {
        problems.push("a 201 without a body was accepted".into());
    }
    let delete = h
        .description
        .check("DELETE", "/authorizations/1", 204, &json!({}));
    if delete.is_ok() {
        problems.push("a 204 with a body was accepted".into());
    }
    h.failures.extend(problems);
    h.finish("checker", &[(CREATE, 201)]).await;
}
