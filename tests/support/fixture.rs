//! The reconcile fixture: the GHES emulator and the Kubernetes API test server, the operator's
//! context over them, and the caches its reconciles read, filled by the test. Shared by the
//! reconcile scenarios (`tests/reconcile.rs`) and the model test (`tests/model.rs`), each of
//! which uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use ghes_emulator::{AppSpec, Emulator, EmulatorConfig, RunningEmulator, UserSpec};
use ghes_oauth_operator::api::{Account, Authorization, ClusterAccount};
use ghes_oauth_operator::controller::cache::AccountViews;
use ghes_oauth_operator::controller::config::OperatorConfig;
use ghes_oauth_operator::controller::context::Context;
use ghes_oauth_operator::controller::fingerprint::InstallationId;
use ghes_oauth_operator::controller::{account, authorization};
use ghes_oauth_operator::metrics::Metrics;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube_testkit::{RunningApiServer, TestApiServer};

use crate::cluster;
use serde_json::{Value, json};

pub const NS: &str = "team";
pub const LOGIN: &str = "fixture-bot";
pub const PASSWORD: &str = "fixture-bot-password";
pub const CLIENT_ID: &str = "Iv1.fixture000000001";
pub const CLIENT_SECRET: &str = "fixture-client-secret-0123";
/// The operator's user on the test server; the test's own requests go as another.
pub const OPERATOR: &str = "operator";

/// One scenario's world: both servers, the operator's context, and the caches it reads.
pub struct Fixture {
    pub kube: RunningApiServer,
    pub ghes: RunningEmulator,
    /// The test's client (not recorded as the operator's).
    pub admin: Client,
    pub ctx: Arc<Context>,
    pub accounts: Writer<Account>,
}

impl Fixture {
    /// A namespace with the account's credentials, the app's client secret and an Account
    /// pointed at the emulator; the Account has been reconciled once (signed in, Ready) and
    /// is in the cache Authorization reconciles read.
    pub async fn new() -> Self {
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
        let (_, accounts) = reflector::store();
        let ctx = context(&kube, &accounts);
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
        let mut fixture = fixture;
        fixture.list_secrets().await;
        fixture.reconcile_account().await;
        fixture
    }

    /// A new operator process: what the last one held in memory (clients, refusals, caches)
    /// is gone; the Account cache is filled again from the API server.
    pub async fn restart(&mut self) {
        self.ctx = context(&self.kube, &self.accounts);
        self.list_secrets().await;
        self.cache_account().await;
    }

    /// Tells the Secret cache that `name` changed or went, as its watch would.
    pub async fn secret_changed(&self, name: &str) {
        let secrets: Api<Secret> = Api::namespaced(self.admin.clone(), NS);
        let current = secrets.get_opt(name).await.expect("read the Secret");
        let mut meta = kube::core::PartialObjectMeta::<Secret>::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.namespace = Some(NS.into());
        let event = match current {
            Some(secret) => {
                meta.metadata.resource_version = secret.metadata.resource_version;
                watcher::Event::Apply(meta)
            }
            None => watcher::Event::Delete(meta),
        };
        self.ctx.caches.secrets.observe(None, &Ok(event));
    }

    /// The Secret cache's watch lists again: every Secret of the namespace.
    async fn list_secrets(&self) {
        let secrets: Api<Secret> = Api::namespaced(self.admin.clone(), NS);
        let listed = secrets
            .list(&Default::default())
            .await
            .expect("list Secrets");
        self.ctx
            .caches
            .secrets
            .observe(None, &Ok(watcher::Event::Init));
        for secret in listed {
            let meta = kube::core::PartialObjectMeta::<Secret> {
                metadata: secret.metadata,
                ..Default::default()
            };
            self.ctx
                .caches
                .secrets
                .observe(None, &Ok(watcher::Event::InitApply(meta)));
        }
        self.ctx
            .caches
            .secrets
            .observe(None, &Ok(watcher::Event::InitDone));
    }

    /// Server-side apply of any object, as the test; the Secret cache's watch sees a Secret.
    pub async fn apply(&self, object: Value) {
        let secret = (object["kind"] == "Secret")
            .then(|| object["metadata"]["name"].as_str().map(str::to_owned))
            .flatten();
        cluster::apply(&self.admin, "fixture", NS, object).await;
        if let Some(name) = secret {
            self.secret_changed(&name).await;
        }
    }

    /// Reconciles the Account once and puts it, as the API server now has it, in the cache.
    pub async fn reconcile_account(&mut self) {
        let (result, calls) = self.reconcile_account_calls().await;
        assert_eq!(result, Ok(None), "the Account reconciles: {calls:?}");
    }

    /// Reconciles the Account once (the cache follows); what it returned, and its calls.
    pub async fn reconcile_account_calls(
        &mut self,
    ) -> (Result<Option<&'static str>, String>, Calls) {
        let account = Api::<Account>::namespaced(self.admin.clone(), NS)
            .get("bot")
            .await
            .expect("Account");
        self.forget_calls();
        let result = waiting_on(
            account::reconcile::reconcile::<Account>(Arc::new(account), self.ctx.clone()).await,
        );
        let calls = self.calls();
        self.cache_account().await;
        (result, calls)
    }

    /// The Account's status as the API server has it, as JSON.
    pub async fn account_status_json(&self) -> String {
        let account = Api::<Account>::namespaced(self.admin.clone(), NS)
            .get("bot")
            .await
            .expect("Account");
        serde_json::to_string(&account.status).expect("status")
    }

    /// Puts the Account, as the API server has it, in the cache (or nothing when it is gone).
    pub async fn cache_account(&mut self) {
        let api = Api::<Account>::namespaced(self.admin.clone(), NS);
        self.accounts.apply_watcher_event(&watcher::Event::Init);
        if let Some(account) = api.get_opt("bot").await.expect("get Account") {
            self.accounts
                .apply_watcher_event(&watcher::Event::InitApply(account));
        }
        self.accounts.apply_watcher_event(&watcher::Event::InitDone);
    }

    pub fn authorizations(&self) -> Api<Authorization> {
        Api::namespaced(self.admin.clone(), NS)
    }

    /// Creates an Authorization named `name` with `spec`.
    pub async fn authorization(&self, name: &str, spec: Value) {
        self.apply(json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))
        .await;
    }

    /// Forgets every request so far: what follows is one reconcile's.
    pub fn forget_calls(&self) {
        self.kube.clear_requests();
        self.ghes.clear_requests();
    }

    /// Reconciles the Authorization `name` as the API server has it now; the reconcile's
    /// Kubernetes and GHES calls, in order. Fails the test when the reconcile fails.
    pub async fn reconcile(&self, name: &str) -> Calls {
        let (result, calls) = self.try_reconcile(name).await;
        if let Err(error) = result {
            panic!("the reconcile failed: {error}\n{calls:#?}");
        }
        calls
    }

    /// Like [`Fixture::reconcile`], and what the reconcile returned: `Ok(Some(reason))` for
    /// a configuration error it waits on.
    pub async fn try_reconcile(&self, name: &str) -> (Result<Option<&'static str>, String>, Calls) {
        let authorization = self
            .authorizations()
            .get(name)
            .await
            .expect("Authorization");
        self.try_reconcile_object(authorization).await
    }

    /// Reconciles `authorization` as given, as the controller does with what its watch cache
    /// holds (which may be behind the API server).
    pub async fn try_reconcile_object(
        &self,
        authorization: Authorization,
    ) -> (Result<Option<&'static str>, String>, Calls) {
        self.forget_calls();
        let result = authorization::reconcile(Arc::new(authorization), self.ctx.clone()).await;
        (waiting_on(result), self.calls())
    }

    /// Issues the token of `name`: the reconcile that adds the finalizer, then the one that
    /// issues.
    pub async fn issued(&self, name: &str, spec: Value) {
        self.authorization(name, spec).await;
        self.reconcile(name).await;
        self.reconcile(name).await;
        assert_eq!(self.ready(name).await, ("True".into(), "TokenReady".into()));
    }

    /// The operator's calls since [`Fixture::forget_calls`]: `verb resource[/name]` on
    /// Kubernetes, `METHOD path status` on GHES.
    pub fn calls(&self) -> Calls {
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

    pub async fn ready(&self, name: &str) -> (String, String) {
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

/// The operator's context over the test server, reading Accounts from `accounts`' store. The
/// fixture plays the Secrets' metadata watch (it lists at the start and at each restart, and
/// sees the Secrets the test applies or says changed): the Secrets a reconcile read stay
/// cached, as in a running operator.
fn context(kube: &RunningApiServer, accounts: &Writer<Account>) -> Arc<Context> {
    let (cluster_store, mut cluster_accounts) = reflector::store::<ClusterAccount>();
    cluster_accounts.apply_watcher_event(&watcher::Event::Init);
    cluster_accounts.apply_watcher_event(&watcher::Event::InitDone);
    let mut views = AccountViews::default();
    views.add(None, accounts.as_reader(), cluster_store);
    let client = kube.client(OPERATOR).expect("client");
    let config = OperatorConfig {
        instance: Some("fixture".into()),
        ..OperatorConfig::with(
            InstallationId::parse("fixture").expect("installation id"),
            NS.into(),
        )
    };
    let ctx = Context::new(client, config, views, Arc::new(Metrics::new()));
    Arc::new(ctx)
}

/// One reconcile's calls, in order, on each server.
#[derive(Debug, PartialEq)]
pub struct Calls {
    pub kubernetes: Vec<String>,
    pub ghes: Vec<String>,
}

impl Calls {
    pub fn expect(&self, kubernetes: &[&str], ghes: &[&str]) {
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
pub fn fingerprint() -> regex::Regex {
    regex::Regex::new(r"k8s-[0-9a-f-]{36}\.fixture").expect("pattern")
}

pub fn app_spec(scopes: &[&str]) -> Value {
    json!({
        "accountRef": {"name": "bot"},
        "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}},
        "scopes": scopes,
        "secret": {"name": "ci-token"},
    })
}

pub const TOKEN_SECRET: &str = "ci-token";

pub fn personal_spec() -> Value {
    json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]})
}

/// What a reconcile returned, as the tests read it: `Ok(Some(reason))` for a configuration
/// error it waits on (an `Err` that `error_policy` turns into a wait), `Ok(None)` when it
/// succeeded, `Err(message)` for a failure it retries.
fn waiting_on(
    result: Result<
        ghes_oauth_operator::controller::Reconciled,
        ghes_oauth_operator::controller::Error,
    >,
) -> Result<Option<&'static str>, String> {
    match result {
        Ok(_) => Ok(None),
        Err(error) if error.is_config() => Ok(Some(error.reason())),
        Err(error) => Err(error.to_string()),
    }
}
