//! Bad input at the schema: every spec field of the three kinds with a value the API server
//! must refuse, applied with `kubectl apply --server-side` semantics (strict field validation)
//! to the Kubernetes API test server — which checks the CRDs' OpenAPI schemas and evaluates
//! their CEL rules — and the answer must be a 422 naming the field and saying what is wrong.
//! What the schema cannot refuse, the controller must: `tests/e2e/bad_input.rs`.

use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, ValidationDirective,
};
use kube::{Api, Client};
use kube_testkit::TestApiServer;
use serde_json::{Value, json};

#[path = "support/cluster.rs"]
mod cluster;

const NS: &str = "team-a";

/// One bad value: where it goes and what the refusal must say.
struct Case {
    what: &'static str,
    kind: &'static str,
    /// The spec before (an update case: `spec` is then a JSON merge patch of it, as
    /// `kubectl edit` or `kubectl patch` sends), or `None` (a create).
    before: Option<Value>,
    spec: Value,
    /// Substrings of the 422's message, the field first.
    expect: &'static [&'static str],
}

fn personal() -> Value {
    json!({"accountRef": {"name": "bot"}, "scopes": ["repo"]})
}

fn app() -> Value {
    json!({"accountRef": {"name": "bot"}, "scopes": ["repo"],
           "app": {"clientId": "Iv1.0123456789abcdef", "clientSecretRef": {"name": "oauth-app"}}})
}

fn account() -> Value {
    json!({"server": "https://ghes.example.com", "credentialsSecretRef": {"name": "creds"}})
}

fn cluster_account() -> Value {
    json!({"server": "https://ghes.example.com",
           "credentialsSecretRef": {"name": "creds", "namespace": "ghes-system"},
           "allowedNamespaces": {}})
}

/// `base` with `pointer` set to `value` (`Value::Null` removes it).
fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let mut target = &mut base;
    for step in parent.split('/').filter(|s| !s.is_empty()) {
        if target.get(step).is_none() {
            target[step] = json!({});
        }
        target = &mut target[step];
    }
    match value {
        Value::Null => {
            target.as_object_mut().map(|o| o.remove(key));
        }
        value => target[key] = value,
    }
    base
}

fn create(
    what: &'static str,
    kind: &'static str,
    spec: Value,
    expect: &'static [&'static str],
) -> Case {
    Case {
        what,
        kind,
        before: None,
        spec,
        expect,
    }
}

fn cases() -> Vec<Case> {
    let a = |pointer: &str, value: Value| with(personal(), pointer, value);
    let acct = |pointer: &str, value: Value| with(account(), pointer, value);
    let cluster = |pointer: &str, value: Value| with(cluster_account(), pointer, value);
    let long = |n: usize| Value::String("x".repeat(n));
    vec![
        // Authorization
        create(
            "no accountRef",
            "Authorization",
            a("/accountRef", Value::Null),
            &["spec.accountRef: Required value"],
        ),
        create(
            "empty account name",
            "Authorization",
            a("/accountRef/name", json!("")),
            &["spec.accountRef.name"],
        ),
        create(
            "account name not a DNS name",
            "Authorization",
            a("/accountRef/name", json!("Bad_Name")),
            &["spec.accountRef.name", "should match"],
        ),
        create(
            "unknown account kind",
            "Authorization",
            a("/accountRef/kind", json!("Team")),
            &["spec.accountRef.kind: Unsupported value: \"Team\""],
        ),
        create(
            "a scope with a space",
            "Authorization",
            a("/scopes", json!(["BAD SCOPE"])),
            &["spec.scopes[0]", "should match"],
        ),
        create(
            "a scope twice",
            "Authorization",
            a("/scopes", json!(["repo", "repo"])),
            &["spec.scopes[1]: Duplicate value: \"repo\""],
        ),
        create(
            "65 scopes",
            "Authorization",
            a("/scopes", json!(vec!["repo"; 65])),
            &["spec.scopes: Too many"],
        ),
        create(
            "scopes as a string",
            "Authorization",
            a("/scopes", json!("repo")),
            &[
                "spec.scopes: Invalid value: \"string\"",
                "must be of type array",
            ],
        ),
        create(
            "a 256-character note",
            "Authorization",
            a("/note", long(256)),
            &["spec.note: Too long", "255"],
        ),
        create(
            "an empty note",
            "Authorization",
            a("/note", json!("")),
            &["spec.note", "at least 1"],
        ),
        create(
            "a note URL that is not http(s)",
            "Authorization",
            a("/noteUrl", json!("ftp://x.example.com")),
            &["spec.noteUrl", "should match"],
        ),
        create(
            "a 2049-character note URL",
            "Authorization",
            a(
                "/noteUrl",
                Value::String(format!("https://x.example.com/{}", "a".repeat(2030))),
            ),
            &["spec.noteUrl: Too long"],
        ),
        create(
            "a Secret name with a space",
            "Authorization",
            a("/secret/name", json!("Bad Name")),
            &["spec.secret.name", "should match"],
        ),
        create(
            "a Secret key with a slash",
            "Authorization",
            a("/secret/key", json!("bad/key")),
            &["spec.secret.key", "should match"],
        ),
        create(
            "the managed-by label in secret.labels",
            "Authorization",
            a(
                "/secret/labels",
                json!({"app.kubernetes.io/managed-by": "me"}),
            ),
            &["spec.secret.labels", "managed-by label itself"],
        ),
        create(
            "a label value that is not a string",
            "Authorization",
            a("/secret/labels", json!({"team": 7})),
            &["spec.secret.labels.team", "must be of type string"],
        ),
        create(
            "unknown deletion policy",
            "Authorization",
            a("/deletionPolicy", json!("Later")),
            &[
                "spec.deletionPolicy: Unsupported value: \"Later\"",
                "\"Delete\", \"Orphan\"",
            ],
        ),
        create(
            "a client id with spaces",
            "Authorization",
            with(app(), "/app/clientId", json!("bad id!")),
            &["spec.app.clientId", "should match"],
        ),
        create(
            "a 21-character client id",
            "Authorization",
            with(app(), "/app/clientId", long(21)),
            &["spec.app.clientId: Too long"],
        ),
        create(
            "an app without its client secret",
            "Authorization",
            with(app(), "/app/clientSecretRef", Value::Null),
            &["spec.app.clientSecretRef: Required value"],
        ),
        create(
            "a client secret key with a space",
            "Authorization",
            with(app(), "/app/clientSecretRef/key", json!("a b")),
            &["spec.app.clientSecretRef.key", "should match"],
        ),
        create(
            "a zero rotation period",
            "Authorization",
            a("/rotation", json!({"period": "0s"})),
            &[
                "spec.rotation.period",
                "rotation.period must be greater than zero",
            ],
        ),
        create(
            "a rotation period in words",
            "Authorization",
            a("/rotation", json!({"period": "soon"})),
            &["spec.rotation.period", "should match"],
        ),
        create(
            "a grace period longer than the period",
            "Authorization",
            a("/rotation", json!({"period": "1h", "gracePeriod": "2h"})),
            &[
                "spec.rotation",
                "gracePeriod must be shorter than rotation.period",
            ],
        ),
        create(
            "a restart target of another kind",
            "Authorization",
            a(
                "/rotation",
                json!({"restartTargets": [{"kind": "CronJob", "name": "nightly"}]}),
            ),
            &["spec.rotation.restartTargets[0].kind", "Unsupported value"],
        ),
        create(
            "a basic-auth template without username or password",
            "Authorization",
            a(
                "/secret",
                json!({"template": {"type": "kubernetes.io/basic-auth", "data": {"user": "{{ login }}"}}}),
            ),
            &["spec.secret.template", "needs a username or password entry"],
        ),
        create(
            "a docker config template without .dockerconfigjson",
            "Authorization",
            a(
                "/secret",
                json!({"template": {"type": "kubernetes.io/dockerconfigjson", "data": {"config": "{}"}}}),
            ),
            &["spec.secret.template", "needs a .dockerconfigjson entry"],
        ),
        create(
            "a template key that is no Secret key",
            "Authorization",
            a(
                "/secret",
                json!({"template": {"data": {"a b": "{{ token }}"}}}),
            ),
            &["spec.secret.template", "must be Secret keys"],
        ),
        create(
            "a template without data",
            "Authorization",
            a("/secret", json!({"template": {"data": {}}})),
            &["spec.secret.template.data"],
        ),
        create(
            "observe without managementPolicy Observe",
            "Authorization",
            a("/observe", json!({"id": 7})),
            &[
                "spec",
                "set it with managementPolicy Observe, and only then",
            ],
        ),
        create(
            "managementPolicy Observe without observe",
            "Authorization",
            a("/managementPolicy", json!("Observe")),
            &[
                "spec",
                "set it with managementPolicy Observe, and only then",
            ],
        ),
        create(
            "an observer naming both an id and a fingerprint",
            "Authorization",
            with(
                a("/managementPolicy", json!("Observe")),
                "/observe",
                json!({"id": 7, "fingerprint": "jenkins-7"}),
            ),
            &["spec.observe", "by id or by fingerprint, exactly one"],
        ),
        create(
            "renewBeforeExpiry in days",
            "Authorization",
            a("/rotation", json!({"renewBeforeExpiry": "1d"})),
            &["spec.rotation.renewBeforeExpiry", "should match"],
        ),
        create(
            "an unknown field",
            "Authorization",
            a("/scope", json!(["repo"])),
            &["unknown field \"spec.scope\""],
        ),
        Case {
            what: "another account for an issued token",
            kind: "Authorization",
            before: Some(personal()),
            spec: json!({"accountRef": {"name": "other"}}),
            expect: &["spec.accountRef", "accountRef is immutable"],
        },
        Case {
            what: "an app added to a personal token",
            kind: "Authorization",
            before: Some(personal()),
            spec: json!({"app": app()["app"]}),
            expect: &["spec: Invalid value", "spec.app cannot be added or removed"],
        },
        Case {
            what: "the app removed from an app token",
            kind: "Authorization",
            before: Some(app()),
            spec: json!({"app": null}),
            expect: &["spec: Invalid value", "spec.app cannot be added or removed"],
        },
        Case {
            what: "another app for an issued token",
            kind: "Authorization",
            before: Some(app()),
            spec: json!({"app": {"clientId": "Iv1.ffffffffffffffff"}}),
            expect: &["spec.app.clientId", "app.clientId is immutable"],
        },
        // Account
        create(
            "no server",
            "Account",
            acct("/server", Value::Null),
            &["spec.server: Required value"],
        ),
        create(
            "a plain http server",
            "Account",
            acct("/server", json!("http://ghes.example.com")),
            &["spec.server", "should match"],
        ),
        create(
            "a server with a path",
            "Account",
            acct("/server", json!("https://ghes.example.com/api/v3")),
            &["spec.server", "should match"],
        ),
        create(
            "a server with user-info",
            "Account",
            acct("/server", json!("https://bot:hunter2@ghes.example.com")),
            &["spec.server", "should match"],
        ),
        create(
            "a plain http API URL to another host",
            "Account",
            acct("/apiUrl", json!("http://ghes.example.com/api/v3")),
            &["spec.apiUrl", "should match"],
        ),
        create(
            "an API URL with user-info",
            "Account",
            acct("/apiUrl", json!("https://bot@ghes.example.com/api/v3")),
            &["spec.apiUrl", "should match"],
        ),
        create(
            "no credentials Secret",
            "Account",
            acct("/credentialsSecretRef", Value::Null),
            &["spec.credentialsSecretRef: Required value"],
        ),
        create(
            "a credentials Secret name in capitals",
            "Account",
            acct("/credentialsSecretRef/name", json!("CREDS")),
            &["spec.credentialsSecretRef.name", "should match"],
        ),
        create(
            "a TOTP key with a space",
            "Account",
            acct("/credentialsSecretRef/totpSecretKey", json!("totp seed")),
            &["spec.credentialsSecretRef.totpSecretKey", "should match"],
        ),
        create(
            "a 10-second sync interval",
            "Account",
            acct("/syncInterval", json!("10s")),
            &["spec.syncInterval", "syncInterval must be at least 30s"],
        ),
        create(
            "a sync interval in words",
            "Account",
            acct("/syncInterval", json!("5 minutes")),
            &["spec.syncInterval", "should match"],
        ),
        create(
            "zero requests per second",
            "Account",
            acct("/requestsPerSecond", json!(0)),
            &["spec.requestsPerSecond", "greater than or equal to 0.1"],
        ),
        create(
            "1000 requests per second",
            "Account",
            acct("/requestsPerSecond", json!(1000)),
            &["spec.requestsPerSecond", "less than or equal to 100"],
        ),
        create(
            "a zero burst",
            "Account",
            acct("/burst", json!(0)),
            &["spec.burst", "greater than or equal to 1"],
        ),
        create(
            "a fractional burst",
            "Account",
            acct("/burst", json!(2.5)),
            &["spec.burst", "must be of type integer"],
        ),
        create(
            "both caBundle and caBundleRef",
            "Account",
            with(
                acct(
                    "/caBundle",
                    json!("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
                ),
                "/caBundleRef",
                json!({"name": "ca"}),
            ),
            &[
                "spec: Invalid value",
                "set caBundle or caBundleRef, not both",
            ],
        ),
        create(
            "a CA bundle that is not PEM",
            "Account",
            acct("/caBundle", json!("not a certificate")),
            &["spec.caBundle", "should match"],
        ),
        create(
            "a CA bundle in a Volume",
            "Account",
            acct("/caBundleRef", json!({"name": "ca", "kind": "Volume"})),
            &["spec.caBundleRef.kind: Unsupported value: \"Volume\""],
        ),
        create(
            "an unknown prune mode",
            "Account",
            acct("/prune", json!({"mode": "Sometimes"})),
            &["spec.prune.mode: Unsupported value: \"Sometimes\""],
        ),
        create(
            "negative maxDeletionsPerRun",
            "Account",
            acct("/prune", json!({"maxDeletionsPerRun": -1})),
            &[
                "spec.prune.maxDeletionsPerRun",
                "greater than or equal to 0",
            ],
        ),
        create(
            "a prune minAge in words",
            "Account",
            acct("/prune", json!({"minAge": "ten minutes"})),
            &["spec.prune.minAge", "should match"],
        ),
        create(
            "a kept id that is not a number",
            "Account",
            acct("/prune", json!({"keep": {"ids": ["x"]}})),
            &["spec.prune.keep.ids[0]", "must be of type integer"],
        ),
        create(
            "an unknown Account field",
            "Account",
            acct("/serverUrl", json!("https://ghes.example.com")),
            &["unknown field \"spec.serverUrl\""],
        ),
        create(
            "allowedNamespaces on an Account",
            "Account",
            acct("/allowedNamespaces", json!({})),
            &["unknown field \"spec.allowedNamespaces\""],
        ),
        // ClusterAccount
        create(
            "ClusterAccount credentials without a namespace",
            "ClusterAccount",
            cluster("/credentialsSecretRef/namespace", Value::Null),
            &["spec.credentialsSecretRef.namespace: Required value"],
        ),
        create(
            "ClusterAccount credentials namespace not a DNS label",
            "ClusterAccount",
            cluster("/credentialsSecretRef/namespace", json!("Bad_NS")),
            &["spec.credentialsSecretRef.namespace", "should match"],
        ),
        create(
            "a 29-second ClusterAccount sync interval",
            "ClusterAccount",
            cluster("/syncInterval", json!("29s")),
            &["spec.syncInterval", "syncInterval must be at least 30s"],
        ),
        create(
            "a namespace label selector value that is a number",
            "ClusterAccount",
            cluster("/allowedNamespaces/matchLabels", json!({"team": 1})),
            &[
                "spec.allowedNamespaces.matchLabels.team",
                "must be of type string",
            ],
        ),
        create(
            "a ClusterAccount server with a path",
            "ClusterAccount",
            cluster("/server", json!("https://ghes.example.com/ghes")),
            &["spec.server", "should match"],
        ),
    ]
}

fn api(client: &Client, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("oauth.ghes.io", "v1alpha1", kind));
    if kind == "ClusterAccount" {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), NS, &resource)
    }
}

async fn merge(client: &Client, kind: &str, name: &str, spec: &Value) -> Result<(), String> {
    let patch = Patch::Merge(json!({"spec": spec}));
    answer(
        api(client, kind)
            .patch(name, &PatchParams::default(), &patch)
            .await,
    )
}

fn answer<T>(result: kube::Result<T>) -> Result<(), String> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(format!("{} {}", status.code, status.message)),
        Err(other) => Err(other.to_string()),
    }
}

async fn apply(client: &Client, kind: &str, name: &str, spec: &Value) -> Result<(), String> {
    let object = json!({
        "apiVersion": "oauth.ghes.io/v1alpha1", "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    });
    let params = PatchParams::apply("bad-input")
        .force()
        .validation(ValidationDirective::Strict);
    answer(
        api(client, kind)
            .patch(name, &params, &Patch::Apply(object))
            .await,
    )
}

#[tokio::test]
async fn the_schema_refuses_every_bad_value_naming_the_field() {
    let server = TestApiServer::new()
        .bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("test API server");
    let client = server.client("admin").expect("client");
    cluster::install_crds(&client, "bad-input").await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace"),
        )
        .await
        .expect("namespace");

    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let name = format!("case-{index}");
        if let Some(before) = &case.before
            && let Err(error) = apply(&client, case.kind, &name, before).await
        {
            failures.push(format!(
                "{}: the valid object before was refused: {error}",
                case.what
            ));
            continue;
        }
        let outcome = match case.before {
            Some(_) => merge(&client, case.kind, &name, &case.spec).await,
            None => apply(&client, case.kind, &name, &case.spec).await,
        };
        match outcome {
            Ok(()) => failures.push(format!("{}: accepted", case.what)),
            Err(error) => {
                let expected_code = if case.expect[0].starts_with("unknown field") {
                    "400 "
                } else {
                    "422 "
                };
                let missing: Vec<&&str> = case
                    .expect
                    .iter()
                    .filter(|part| !error.contains(**part))
                    .collect();
                if !error.starts_with(expected_code) || !missing.is_empty() {
                    failures.push(format!(
                        "{}: {error:?} lacks {missing:?} or is not {expected_code}",
                        case.what
                    ));
                }
            }
        }
    }
    // The valid bases themselves pass: the refusals above are the bad values', not the bases'.
    for (index, (kind, spec)) in [
        ("Authorization", personal()),
        ("Authorization", app()),
        ("Account", account()),
        ("ClusterAccount", cluster_account()),
    ]
    .into_iter()
    .enumerate()
    {
        if let Err(error) = apply(&client, kind, &format!("valid-{index}"), &spec).await {
            failures.push(format!("the valid {kind} was refused: {error}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
