//! An account's credentials that change to another GHES user (or server) strand the tokens
//! issued as the previous one: the new credentials cannot revoke them. Each is reported —
//! status, Events, the abandoned-tokens counter — and revoked if the account logs in as that
//! user again.

use serde_json::json;

use crate::harness::*;
use crate::metrics::scrape_quietly;

const OTHER: &str = "other-bot";
const OTHER_PASSWORD: &str = "other-bot-password-0123";

/// Changes the Account's credentials to `user`, and touches the Account so that it reads them
/// now rather than at its next sync.
async fn log_in_as(world: &World, namespace: &str, user: &str, password: &str) {
    world
        .apply_json(
            namespace,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "bot-credentials", "namespace": namespace},
                "stringData": {"username": user, "password": password},
            }),
        )
        .await;
    let accounts: kube::Api<ghes_oauth_operator::api::Account> =
        kube::Api::namespaced(world.client.clone(), namespace);
    accounts
        .patch(
            "bot",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"e2e/login": user}}})),
        )
        .await
        .expect("touch the Account");
}

/// The Authorization's `status.strandedTokens`, as (id, identity).
async fn stranded(world: &World, namespace: &str, name: &str) -> Vec<(i64, String)> {
    let Ok(Some(authorization)) = world.authorizations(namespace).get_opt(name).await else {
        return Vec::new();
    };
    let status = serde_json::to_value(authorization.status).unwrap_or_default();
    status["strandedTokens"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| {
                    (
                        t["authorizationId"].as_i64().unwrap_or_default(),
                        t["identity"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn credentials_moved_to_another_user_report_each_stranded_token() {
    let mut world =
        World::exclusive_with_users(&["a"], &[(OTHER.to_owned(), OTHER_PASSWORD.to_owned())]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(
            &ns,
            "ci",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    let admin = world.start_operator_with_admin();
    let first = world.wait_ready(&ns, "ci", "True").await;
    let first_id = first.status.and_then(|s| s.authorization_id).expect("id");

    // Someone points the account at another GHES user.
    log_in_as(&world, &ns, OTHER, OTHER_PASSWORD).await;
    let second_id = wait_for("a token issued as the other user", || async {
        let authorization = world.wait_ready(&ns, "ci", "True").await;
        let id = authorization.status?.authorization_id?;
        (id != first_id).then_some(id)
    })
    .await;
    // The first token is still live, as the first user's, and said so everywhere.
    assert_eq!(world.live_tokens(USER).len(), 1);
    assert_eq!(world.live_tokens(OTHER).len(), 1);
    let left = stranded(&world, &ns, "ci").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, first_id);
    assert!(
        left[0]
            .1
            .starts_with(&format!("{} at ", USER.to_ascii_lowercase())),
        "{left:?}"
    );
    let reasons = world.event_reasons(&ns, "ci").await;
    assert!(reasons.iter().any(|r| r == "TokenStranded"), "{reasons:?}");
    let abandoned = wait_for("the counter", || async {
        let metrics = scrape_quietly(admin).await?;
        metrics
            .iter()
            .find(|(series, _)| {
                series.starts_with("ghes_oauth_operator_tokens_abandoned_total")
                    && series.contains("CredentialsChanged")
            })
            .map(|(_, value)| *value)
    })
    .await;
    assert_eq!(abandoned, 1.0);

    // Back to the first user: its stranded token is revoked; the other user's is now the
    // stranded one.
    log_in_as(&world, &ns, USER, PASSWORD).await;
    wait_for("the first user's token revoked", || async {
        world
            .live_tokens(USER)
            .iter()
            .all(|(id, ..)| *id != first_id)
            .then_some(())
    })
    .await;
    let left = wait_for("the other user's token stranded", || async {
        let left = stranded(&world, &ns, "ci").await;
        (left.len() == 1 && left[0].0 == second_id).then_some(left)
    })
    .await;
    assert!(left[0].1.starts_with(&format!("{OTHER} at ")), "{left:?}");
    // The new token as the first user is recorded (not only created) before the operator
    // stops: the plan below starts from a settled status.
    let user = format!("{} at ", USER.to_ascii_lowercase());
    wait_for("a token recorded as the first user", || async {
        let status = world.wait_ready(&ns, "ci", "True").await.status?;
        let id = status.authorization_id?;
        (id != second_id && status.identity?.starts_with(&user)).then_some(())
    })
    .await;
    assert_eq!(
        world.live_tokens(USER).len(),
        1,
        "a new token as the first user"
    );

    // `plan` says the same of a change of credentials before the operator acts on it.
    world.kill_operator();
    log_in_as(&world, &ns, OTHER, OTHER_PASSWORD).await;
    let manifests = world.dir().join("ci.yaml");
    std::fs::write(
        &manifests,
        serde_yaml::to_string(&json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": "ci", "namespace": ns},
            "spec": {"accountRef": {"name": "bot"}, "scopes": ["gist"]},
        }))
        .expect("YAML"),
    )
    .expect("manifests");
    let output = crate::ctl::ctl_as(
        world.plan_kubeconfig(),
        &["plan", "-f", &manifests.display().to_string()],
    )
    .await;
    let text = crate::ctl::stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}\n{output:?}");
    assert!(
        text.contains(&format!("reissue  {ns}/ci"))
            && text.contains(&format!("the account now logs in as {OTHER} at "))
            && text.contains("is left live"),
        "{text}"
    );
    world.cleanup().await;
}
