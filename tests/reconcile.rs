//! Reconcile scenarios, one reconcile at a time (as kube-rs/controller-rs's `fixtures.rs`):
//! the GHES emulator answers GHES, the Kubernetes API test server answers the controller and
//! records its requests, and each test names every call one reconcile must make, in order —
//! an extra call fails it as surely as a missing one.
//!
//! The reconcile runs in the test's process against the operator's library, with the watch
//! caches it reads (Accounts, ClusterAccounts) filled by the test, so there is no controller,
//! no watch and no timing: what is asserted is exactly what the reconcile did.

use std::sync::Arc;

use ghes_emulator::{AppSpec, Emulator, EmulatorConfig, RunningEmulator, UserSpec};
use ghes_oauth_operator::api::{Account, Authorization, ClusterAccount};
use ghes_oauth_operator::controller::account::registry::ClientOptions;
use ghes_oauth_operator::controller::cache::AccountViews;
use ghes_oauth_operator::controller::context::Context;
use ghes_oauth_operator::controller::fingerprint::InstallationId;
use ghes_oauth_operator::controller::{account, authorization};
use ghes_oauth_operator::metrics::Metrics;
use kube::Client;
use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube_testkit::{RunningApiServer, TestApiServer};

#[path = "support/cluster.rs"]
mod cluster;
use serde_json::{Value, json};

const NS: &str = "team";
const LOGIN: &str = "fixture-bot";
const PASSWORD: &str = "fixture-bot-password";
const CLIENT_ID: &str = "Iv1.fixture000000001";
const CLIENT_SECRET: &str = "fixture-client-secret-0123";
/// The operator's user on the test server; the test's own requests go as another.
const OPERATOR: &str = "operator";

/// One scenario's world: both servers, the operator's context, and the caches it reads.
struct Fixture {
    kube: RunningApiServer,
    ghes: RunningEmulator,
    /// The test's client (not recorded as the operator's).
    admin: Client,
    ctx: Arc<Context>,
    accounts: Writer<Account>,
}

impl Fixture {
    /// A namespace with the account's credentials, the app's client secret and an Account
    /// pointed at the emulator; the Account has been reconciled once (signed in, Ready) and
    /// is in the cache Authorization reconciles read.
    async fn new() -> Self {
        let ghes = Emulator::start(
            EmulatorConfig {
                users: vec![UserSpec {
                    login: LOGIN.into(),
                    password: PASSWORD.into(),
                    totp_seed: None,
                }],
                apps: vec![AppSpec {
                    client_id: CLIENT_ID.into(),
                    client_secret: CLIENT_SECRET.into(),
                    name: "fixture app".into(),
                }],
                ..EmulatorConfig::default()
            },
            ([127, 0, 0, 1], 0).into(),
        )
        .await
        .expect("emulator");
        let kube = TestApiServer::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("test server");
        let admin = kube.client("admin").expect("client");
        cluster::install_crds(&admin, "fixture").await;
        let (account_store, accounts) = reflector::store();
        let (cluster_store, mut cluster_accounts) = reflector::store::<ClusterAccount>();
        cluster_accounts.apply_watcher_event(&watcher::Event::Init);
        cluster_accounts.apply_watcher_event(&watcher::Event::InitDone);
        let mut views = AccountViews::default();
        views.add(None, account_store, cluster_store);
        let client = kube.client(OPERATOR).expect("client");
        let ctx = Arc::new(
            Context::new(
                client,
                Some("fixture".into()),
                InstallationId::parse("fixture").expect("installation id"),
                ClientOptions::default(),
                Arc::new(Metrics::new()),
            )
            .with_cluster_resource_namespace(NS.into())
            .with_account_views(views),
        );
        let fixture = Self {
            kube,
            ghes,
            admin,
            ctx,
            accounts,
        };
        fixture
            .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .await;
        fixture
            .apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "bot-credentials", "namespace": NS},
                "stringData": {"username": LOGIN, "password": PASSWORD},
            }))
            .await;
        fixture
            .apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "oauth-app", "namespace": NS},
                "stringData": {"clientSecret": CLIENT_SECRET},
            }))
            .await;
        fixture
            .apply(json!({
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
                "metadata": {"name": "bot", "namespace": NS},
                "spec": {
                    "server": "https://ghes.invalid",
                    "apiUrl": fixture.ghes.api_url(),
                    "credentialsSecretRef": {"name": "bot-credentials"},
                },
            }))
            .await;
        // The Secrets' metadata watch has listed (nothing changes under it in a scenario
        // unless the test says so): the Secrets a reconcile read stay cached, as in a
        // running operator.
        for event in [watcher::Event::Init, watcher::Event::InitDone] {
            fixture.ctx.secrets.observe(None, &Ok(event));
        }
        let mut fixture = fixture;
        fixture.reconcile_account().await;
        fixture
    }

    /// Tells the Secret cache that `name` changed or went, as its watch would.
    fn secret_changed(&self, name: &str) {
        let mut secret =
            kube::core::PartialObjectMeta::<k8s_openapi::api::core::v1::Secret>::default();
        secret.metadata.name = Some(name.into());
        secret.metadata.namespace = Some(NS.into());
        self.ctx
            .secrets
            .observe(None, &Ok(watcher::Event::Delete(secret)));
    }

    /// Server-side apply of any object, as the test.
    async fn apply(&self, object: Value) {
        cluster::apply(&self.admin, "fixture", NS, object).await;
    }

    /// Reconciles the Account once and puts it, as the API server now has it, in the cache.
    async fn reconcile_account(&mut self) {
        let (result, calls) = self.reconcile_account_calls().await;
        assert_eq!(result, Ok(None), "the Account reconciles: {calls:?}");
    }

    /// Reconciles the Account once (the cache follows); what it returned, and its calls.
    async fn reconcile_account_calls(&mut self) -> (Result<Option<&'static str>, String>, Calls) {
        let account = Api::<Account>::namespaced(self.admin.clone(), NS)
            .get("bot")
            .await
            .expect("Account");
        self.forget_calls();
        let result = account::reconcile::reconcile::<Account>(Arc::new(account), self.ctx.clone())
            .await
            .map(|reconciled| reconciled.config_error)
            .map_err(|error| error.to_string());
        let calls = self.calls();
        self.cache_account().await;
        (result, calls)
    }

    /// Puts the Account, as the API server has it, in the cache (or nothing when it is gone).
    async fn cache_account(&mut self) {
        let api = Api::<Account>::namespaced(self.admin.clone(), NS);
        self.accounts.apply_watcher_event(&watcher::Event::Init);
        if let Some(account) = api.get_opt("bot").await.expect("get Account") {
            self.accounts
                .apply_watcher_event(&watcher::Event::InitApply(account));
        }
        self.accounts.apply_watcher_event(&watcher::Event::InitDone);
    }

    fn authorizations(&self) -> Api<Authorization> {
        Api::namespaced(self.admin.clone(), NS)
    }

    /// Creates an Authorization named `name` with `spec`.
    async fn authorization(&self, name: &str, spec: Value) {
        self.apply(json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))
        .await;
    }

    /// Forgets every request so far: what follows is one reconcile's.
    fn forget_calls(&self) {
        self.kube.clear_requests();
        self.ghes.clear_requests();
    }

    /// Reconciles the Authorization `name` as the API server has it now; the reconcile's
    /// Kubernetes and GHES calls, in order. Fails the test when the reconcile fails.
    async fn reconcile(&self, name: &str) -> Calls {
        let (result, calls) = self.try_reconcile(name).await;
        if let Err(error) = result {
            panic!("the reconcile failed: {error}\n{calls:#?}");
        }
        calls
    }

    /// Like [`Fixture::reconcile`], and what the reconcile returned: `Ok(Some(reason))` for
    /// a configuration error it waits on.
    async fn try_reconcile(&self, name: &str) -> (Result<Option<&'static str>, String>, Calls) {
        let authorization = self
            .authorizations()
            .get(name)
            .await
            .expect("Authorization");
        self.forget_calls();
        let result = authorization::reconcile(Arc::new(authorization), self.ctx.clone()).await;
        (
            result
                .map(|reconciled| reconciled.config_error)
                .map_err(|error| error.to_string()),
            self.calls(),
        )
    }

    /// Issues the token of `name`: the reconcile that adds the finalizer, then the one that
    /// issues.
    async fn issued(&self, name: &str, spec: Value) {
        self.authorization(name, spec).await;
        self.reconcile(name).await;
        self.reconcile(name).await;
        assert_eq!(self.ready(name).await, ("True".into(), "TokenReady".into()));
    }

    /// The operator's calls since [`Fixture::forget_calls`]: `verb resource[/name]` on
    /// Kubernetes, `METHOD path status` on GHES.
    fn calls(&self) -> Calls {
        let kubernetes = self
            .kube
            .requests()
            .into_iter()
            .filter(|r| r.user == OPERATOR)
            .map(|r| {
                let name = r.name.map(|n| format!("/{n}")).unwrap_or_default();
                format!("{} {}{name}", r.verb, r.resource)
            })
            .collect();
        let ghes = self
            .ghes
            .requests()
            .into_iter()
            .map(|r| {
                let path = fingerprint()
                    .replace_all(&r.path.replace(CLIENT_ID, "{client_id}"), "{fingerprint}")
                    .into_owned();
                format!("{} {path} {}", r.method, r.status)
            })
            .collect();
        Calls { kubernetes, ghes }
    }

    async fn ready(&self, name: &str) -> (String, String) {
        let authorization = self
            .authorizations()
            .get(name)
            .await
            .expect("Authorization");
        let ready = authorization
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .expect("a Ready condition");
        (ready.status, ready.reason)
    }
}

/// One reconcile's calls, in order, on each server.
#[derive(Debug, PartialEq)]
struct Calls {
    kubernetes: Vec<String>,
    ghes: Vec<String>,
}

impl Calls {
    fn expect(&self, kubernetes: &[&str], ghes: &[&str]) {
        assert_eq!(
            (self.kubernetes.as_slice(), self.ghes.as_slice()),
            (
                &kubernetes.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..],
                &ghes.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]
            ),
            "the reconcile's calls (Kubernetes, GHES)"
        );
    }
}

/// The fingerprints this installation makes (`k8s-<uid>.fixture`), which differ per run.
fn fingerprint() -> regex::Regex {
    regex::Regex::new(r"k8s-[0-9a-f-]{36}\.fixture").expect("pattern")
}

fn app_spec(scopes: &[&str]) -> Value {
    json!({
        "accountRef": {"name": "bot"},
        "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}},
        "scopes": scopes,
        "secret": {"name": "ci-token"},
    })
}

const TOKEN_SECRET: &str = "ci-token";

fn personal_spec() -> Value {
    json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]})
}

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
            "patch authorizations/status/ci",
            "get secrets/oauth-app",
            "get secrets/ci-token",
            // The account's first token: its Account and credentials Secret are held by the
            // in-use finalizer before the PUT.
            "patch accounts/bot",
            "patch secrets/bot-credentials",
            "create events",
            "create secrets",
            "patch secrets/ci-token",
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
            "patch authorizations/status/release",
            "get secrets/release",
            "patch accounts/bot",
            "patch secrets/bot-credentials",
            "patch authorizations/status/release",
            "create events",
            "create secrets",
            "patch secrets/release",
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
    // The Secret the last reconcile wrote is read once into the cache...
    fixture
        .reconcile("ci")
        .await
        .expect(&["get secrets/ci-token"], &[]);
    // ...and then nothing: no Kubernetes call, no GHES call.
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
            "patch authorizations/status/ci",
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
    fixture.secret_changed(TOKEN_SECRET);
    fixture.reconcile("ci").await.expect(
        &[
            "get secrets/ci-token",
            "create events",
            "create secrets",
            "patch secrets/ci-token",
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
    calls.expect(
        &[
            "patch authorizations/status/stray",
            "patch authorizations/status/stray",
            "create events",
        ],
        &[],
    );
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
    fixture.secret_changed("bot-credentials");
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
