//! Bad input the schema cannot refuse, at the controller: references to what does not exist,
//! Secrets without the keys named, a two-factor user without a seed, scopes GHES does not
//! know, Secrets that belong to someone else. Each Authorization must end `Stalled` with a
//! reason and a message naming the field to fix, at zero GHES calls (a two-factor challenge
//! costs exactly its one request), and nothing on GHES is revoked.

use std::collections::BTreeSet;

use ghes_emulator::UserSpec;
use serde_json::{Value, json};

use crate::harness::*;

/// One Authorization in trouble.
struct Case {
    name: &'static str,
    spec: Value,
    reason: &'static str,
    /// Substrings of the Ready condition's message: the field first.
    message: &'static [&'static str],
}

fn personal(account: &str) -> Value {
    json!({"accountRef": {"name": account}, "scopes": ["repo"]})
}

fn app(secret: &str, key: Option<&str>) -> Value {
    let mut reference = json!({"name": secret});
    if let Some(key) = key {
        reference["key"] = json!(key);
    }
    json!({"accountRef": {"name": "bot"}, "scopes": ["repo"],
           "app": {"clientId": CLIENT_ID, "clientSecretRef": reference}})
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "no-such-account",
            spec: personal("nope"),
            reason: "AccountNotFound",
            message: &["spec.accountRef", "Account \"nope\" not found"],
        },
        Case {
            name: "no-such-cluster-account",
            spec: json!({"accountRef": {"kind": "ClusterAccount", "name": "nope"}, "scopes": ["repo"]}),
            reason: "AccountNotFound",
            message: &["spec.accountRef", "ClusterAccount \"nope\" not found"],
        },
        Case {
            name: "namespace-not-allowed",
            spec: json!({"accountRef": {"kind": "ClusterAccount", "name": "narrow"}, "scopes": ["repo"]}),
            reason: "NamespaceNotAllowed",
            message: &["spec.accountRef", "does not allow namespace"],
        },
        Case {
            name: "credentials-secret-missing",
            spec: personal("no-secret"),
            reason: "CredentialsNotFound",
            message: &["spec.credentialsSecretRef", "not found"],
        },
        Case {
            name: "password-key-missing",
            spec: personal("no-password"),
            reason: "CredentialsNotFound",
            message: &["spec.credentialsSecretRef", "\"password\""],
        },
        Case {
            name: "username-key-missing",
            spec: personal("no-login-key"),
            reason: "CredentialsNotFound",
            message: &["spec.credentialsSecretRef", "\"login\""],
        },
        Case {
            name: "totp-key-missing",
            spec: personal("no-seed-key"),
            reason: "CredentialsNotFound",
            message: &["spec.credentialsSecretRef", "\"seed\""],
        },
        Case {
            name: "totp-seed-invalid",
            spec: personal("bad-seed"),
            reason: "InvalidSpec",
            message: &["\"totpSecret\"", "credentials Secret"],
        },
        Case {
            name: "two-factor-without-seed",
            spec: personal("two-factor"),
            reason: "AccountNotReady",
            message: &["spec.accountRef", "totpSecretKey"],
        },
        Case {
            name: "client-secret-missing",
            spec: app("no-such-secret", None),
            reason: "ClientSecretNotFound",
            message: &["spec.app.clientSecretRef", "not found"],
        },
        Case {
            name: "client-secret-key-missing",
            spec: app("oauth-app", Some("secret")),
            reason: "ClientSecretNotFound",
            message: &["spec.app.clientSecretRef", "\"secret\""],
        },
        Case {
            name: "unknown-scope",
            spec: json!({"accountRef": {"name": "bot"}, "scopes": ["repo", "repoo"]}),
            reason: "InvalidSpec",
            message: &["spec.scopes[1]", "\"repoo\" is not a GHES OAuth scope"],
        },
        Case {
            name: "secret-taken",
            spec: json!({"accountRef": {"name": "bot"}, "scopes": ["repo"],
                         "secret": {"name": "someone-elses"}}),
            reason: "SecretConflict",
            message: &["spec.secret.name", "\"someone-elses\" already exists"],
        },
        Case {
            name: "ca-bundle-missing",
            spec: personal("no-ca"),
            reason: "CABundleNotFound",
            message: &["spec.caBundleRef", "not found"],
        },
        Case {
            name: "ca-bundle-key-missing",
            spec: personal("no-ca-key"),
            reason: "CABundleNotFound",
            message: &["spec.caBundleRef", "\"ca.crt\""],
        },
        Case {
            name: "cluster-credentials-elsewhere",
            spec: json!({"accountRef": {"kind": "ClusterAccount", "name": "borrows"}, "scopes": ["repo"]}),
            reason: "InvalidSpec",
            message: &[
                "spec.credentialsSecretRef.namespace",
                "operator's namespace",
            ],
        },
    ]
}

/// The accounts the cases point at, each on a GHES user of its own.
async fn accounts(world: &World, ns: &str) {
    let secret = |name: &str, data: Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": ns}, "stringData": data})
    };
    let account = |name: &str, spec: Value| {
        let mut full = json!({"server": "https://ghes.invalid", "apiUrl": world.ghes.api_url()});
        for (key, value) in spec.as_object().expect("spec") {
            full[key] = value.clone();
        }
        json!({"apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
               "metadata": {"name": name, "namespace": ns}, "spec": full})
    };
    world.account(ns, "bot", USER, PASSWORD, None).await;
    world.app_secret(ns).await;
    let user = |login: &str| json!({"username": login, "password": format!("{login}-password")});
    for login in [
        "no-password",
        "no-login-key",
        "no-seed-key",
        "bad-seed",
        "no-ca",
        "no-ca-key",
    ] {
        world
            .ghes
            .add_user(UserSpec::parse(&format!("{login}:{login}-password")).expect("user"))
            .expect("add user");
    }
    let objects = vec![
        account(
            "no-secret",
            json!({"credentialsSecretRef": {"name": "absent"}}),
        ),
        secret("no-password", json!({"username": "no-password"})),
        account(
            "no-password",
            json!({"credentialsSecretRef": {"name": "no-password"}}),
        ),
        secret("no-login-key", user("no-login-key")),
        account(
            "no-login-key",
            json!({"credentialsSecretRef": {"name": "no-login-key", "usernameKey": "login"}}),
        ),
        secret("no-seed-key", user("no-seed-key")),
        account(
            "no-seed-key",
            json!({"credentialsSecretRef": {"name": "no-seed-key", "totpSecretKey": "seed"}}),
        ),
        secret("bad-seed", {
            let mut data = user("bad-seed");
            data["totpSecret"] = json!("not base32 !!");
            data
        }),
        account(
            "bad-seed",
            json!({"credentialsSecretRef": {"name": "bad-seed"}}),
        ),
        secret(
            "two-factor",
            json!({"username": OTP_USER, "password": OTP_PASSWORD}),
        ),
        account(
            "two-factor",
            json!({"credentialsSecretRef": {"name": "two-factor"}}),
        ),
        secret("no-ca", user("no-ca")),
        account(
            "no-ca",
            json!({"credentialsSecretRef": {"name": "no-ca"}, "caBundleRef": {"name": "absent-ca"}}),
        ),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "other-ca", "namespace": ns}, "data": {"bundle.pem": "x"}}),
        secret("no-ca-key", user("no-ca-key")),
        account(
            "no-ca-key",
            json!({"credentialsSecretRef": {"name": "no-ca-key"}, "caBundleRef": {"name": "other-ca"}}),
        ),
        secret("someone-elses", json!({"token": "not ours"})),
    ];
    for object in objects {
        world.apply_json(ns, object).await;
    }
    world
        .cluster_account(
            "narrow",
            ns,
            "bot-credentials",
            json!({"matchLabels": {"team": "other"}}),
        )
        .await;
    world
        .cluster_account("borrows", "kube-system", "bot-credentials", json!({}))
        .await;
}

#[tokio::test]
async fn the_controller_names_the_field_and_calls_no_ghes() {
    let mut world = World::new(&["b"]).await;
    let ns = world.ns(0).to_owned();
    accounts(&world, &ns).await;
    // A token made by hand on the shared user: nothing may revoke it.
    let (kept, _) = seed(
        &world,
        "made by hand",
        None,
        std::time::Duration::from_secs(7200),
    );
    let cases = cases();
    assert!(cases.len() >= 15);
    for case in &cases {
        world.authorization(&ns, case.name, case.spec.clone()).await;
    }
    world.start_operator();

    let mut failures = Vec::new();
    for case in &cases {
        let api = world.authorizations(&ns);
        let seen = wait_for_within(&format!("{} Stalled", case.name), WAIT, || async {
            let object = api.get_opt(case.name).await.ok().flatten()?;
            let status = object.status?;
            let stalled = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Stalled" && c.status == "True");
            let ready = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            (stalled && ready.status == "False").then_some(ready)
        })
        .await;
        let missing: Vec<&&str> = case
            .message
            .iter()
            .filter(|part| !seen.message.contains(**part))
            .collect();
        if seen.reason != case.reason || !missing.is_empty() {
            failures.push(format!(
                "{}: {} {:?} (want {} with {missing:?})",
                case.name, seen.reason, seen.message, case.reason
            ));
        }
    }

    // GHES: no write at all, and no request by the misconfigured accounts' users — but for
    // the two-factor challenge, which costs exactly one.
    let requests = world.ghes.requests();
    let writes: Vec<String> = requests
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    if !writes.is_empty() {
        failures.push(format!("GHES writes: {writes:?}"));
    }
    let by_user = |login: &str| {
        requests
            .iter()
            .filter(|r| r.user.as_deref() == Some(login))
            .count()
    };
    for login in [
        "no-password",
        "no-login-key",
        "no-seed-key",
        "bad-seed",
        "no-ca",
        "no-ca-key",
    ] {
        if by_user(login) != 0 {
            failures.push(format!("{login}: {} GHES requests", by_user(login)));
        }
    }
    if by_user(OTP_USER) != 1 {
        failures.push(format!(
            "the two-factor user: {} requests, want 1",
            by_user(OTP_USER)
        ));
    }
    world
        .check_tokens(&ns, USER, &[], &BTreeSet::from([kept as i64]))
        .await
        .unwrap_or_else(|problem| failures.push(format!("GHES tokens: {problem}")));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    world.cleanup().await;
}

/// Two Authorizations naming one Secret (a copy-paste): one holds it, the other reports
/// `SecretConflict` naming `spec.secret.name` — and GHES keeps no token for the loser.
#[tokio::test]
async fn two_authorizations_naming_one_secret_leave_one_token() {
    let mut world = World::new(&["b"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    for name in ["first", "second"] {
        world
            .authorization(
                &ns,
                name,
                json!({"accountRef": {"name": "bot"}, "scopes": ["repo"],
                       "note": format!("{name} token"), "secret": {"name": "shared"}}),
            )
            .await;
    }
    // Both reconcile at once: each finds no Secret and issues a token before either Secret
    // write lands (the first two Secret creates are held half a second).
    world.kube_fault(kube_testkit::FaultSpec {
        verb: "create".into(),
        resource: "secrets".into(),
        user: Some(OPERATOR_USER.into()),
        delay_ms: Some(500),
        count: 2,
        ..Default::default()
    });
    world.start_operator();
    let api = world.authorizations(&ns);
    let (winner, loser) = wait_for("one Ready, one SecretConflict", || async {
        let mut ready = None;
        let mut conflict = None;
        for name in ["first", "second"] {
            let object = api.get_opt(name).await.ok().flatten()?;
            let condition = object
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            match (condition.status.as_str(), condition.reason.as_str()) {
                ("True", _) => ready = Some(name),
                ("False", "SecretConflict") => conflict = Some((name, condition.message)),
                _ => {}
            }
        }
        Some((ready?, conflict?))
    })
    .await;
    assert!(loser.1.contains("spec.secret.name"), "{}", loser.1);
    // GHES holds the Secret's token and nothing else: the loser issued none, or revoked it.
    world
        .settle_tokens(
            &ns,
            USER,
            &[("shared", &["repo"])],
            &BTreeSet::new(),
            std::time::Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|problem| panic!("{winner} holds the Secret, {}: {problem}", loser.0));
    world.cleanup().await;
}
