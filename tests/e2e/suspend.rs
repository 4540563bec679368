//! Suspend and resume (`spec.suspend`, `suspend`/`resume`): a suspended Authorization, or one
//! of a suspended account, costs GHES no call and its Secret no write; its status says so in a
//! form Argo CD and kstatus read; resuming catches up at once; deleting one still revokes.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use serde_json::json;

use crate::ctl::{ctl, stdout};
use crate::harness::*;

/// The named condition of an Authorization's status.
fn condition(
    authorization: &ghes_oauth_operator::api::Authorization,
    type_: &str,
) -> Option<Condition> {
    authorization
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Waits until the Authorization reports Suspended for its current generation; checks the
/// rest of what kstatus and Argo CD read.
async fn wait_suspended(world: &World, ns: &str, name: &str) {
    let ready = world.wait_not_ready(ns, name).await;
    assert_eq!(ready.reason, "Suspended", "{ready:?}");
    let authorization = world
        .authorizations(ns)
        .get(name)
        .await
        .expect("the Authorization");
    assert_eq!(
        condition(&authorization, "Synced").map(|c| (c.status, c.reason)),
        Some(("False".into(), "Suspended".into()))
    );
    // kstatus: Current (nothing under way, nothing waiting for a fix).
    assert!(condition(&authorization, "Reconciling").is_none());
    assert!(condition(&authorization, "Stalled").is_none());
}

fn suspend_cli<'a>(verb: &'a str, ns: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![verb];
    args.extend_from_slice(extra);
    args.extend(["-n", ns]);
    args
}

#[tokio::test]
async fn a_suspended_authorization_is_left_alone_until_resumed_and_deletion_still_revokes() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.start_operator();
    world
        .authorization(
            &ns,
            "ci",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    let ready = world.wait_ready(&ns, "ci", "True").await;
    let first_id = ready
        .status
        .and_then(|s| s.authorization_id)
        .expect("an id");
    let secrets: Api<Secret> = world.secrets(&ns);
    let secret_version = || async {
        secrets
            .get("ci")
            .await
            .expect("the token Secret")
            .metadata
            .resource_version
    };
    let written = secret_version().await;

    // Suspend with the command, beside rotate.
    let output = ctl(&world, &suspend_cli("suspend", &ns, &["ci"])).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        format!("Authorization {ns}/ci: suspended (spec.suspend: true)\n")
    );
    wait_suspended(&world, &ns, "ci").await;
    assert!(
        world
            .event_reasons(&ns, "ci")
            .await
            .contains(&"Suspended".to_owned())
    );

    // While suspended: a scope change and a rotation asked for reach GHES not at all, and the
    // Secret is not written.
    let suspended_at = world.ghes_seq();
    world
        .patch_authorization(
            &ns,
            "ci",
            json!({"metadata": {"annotations": {"oauth.ghes.io/rotate": "now"}},
                   "spec": {"scopes": ["gist", "repo"]}}),
        )
        .await;
    // The reconcile of the new generation ran (and recorded it as suspended)...
    wait_suspended(&world, &ns, "ci").await;
    // ... and let anything that change might still trigger happen.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        world.ghes_calls_since(suspended_at),
        Vec::<String>::new(),
        "GHES heard from a suspended Authorization"
    );
    assert_eq!(secret_version().await, written, "the Secret was written");
    // Saying it twice changes nothing.
    let output = ctl(&world, &suspend_cli("suspend", &ns, &["ci"])).await;
    assert_eq!(
        stdout(&output),
        format!("Authorization {ns}/ci: already suspended\n")
    );

    // Resumed: the scope change and the rotation happen at once.
    let output = ctl(&world, &suspend_cli("resume", &ns, &["ci"])).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        format!("Authorization {ns}/ci: resumed (spec.suspend removed)\n")
    );
    let resumed = wait_for("the rotated token with the new scopes", || async {
        let authorization = world.wait_ready(&ns, "ci", "True").await;
        let status = authorization.status?;
        (status.authorization_id != Some(first_id) && status.scopes.contains(&"repo".to_owned()))
            .then_some(status)
    })
    .await;
    assert!(!world.ghes_writes_since(suspended_at).is_empty());
    assert_ne!(secret_version().await, written);

    // Suspended again, then deleted: its token is revoked all the same.
    let output = ctl(&world, &suspend_cli("suspend", &ns, &["ci"])).await;
    assert!(output.status.success(), "{output:?}");
    wait_suspended(&world, &ns, "ci").await;
    world.delete_authorization(&ns, "ci").await;
    let id = resumed.authorization_id.expect("an id");
    wait_for("the token revoked", || async {
        let live = world.live_tokens(USER);
        (!live.iter().any(|(live_id, _, _)| *live_id == id)).then_some(())
    })
    .await;
    world.cleanup().await;
}

#[tokio::test]
async fn a_suspended_account_holds_its_authorizations_and_its_own_sync() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account_with(&ns, "bot", USER, PASSWORD, None, json!({"suspend": true}))
        .await;
    world.start_operator();
    world
        .authorization(
            &ns,
            "ci",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    wait_suspended(&world, &ns, "ci").await;
    let account = wait_for("the Account to say Suspended", || async {
        let status = world.account_status(&ns, "bot").await?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "Suspended").then(|| status.clone())
    })
    .await;
    assert!(
        !account
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" || c.type_ == "Reconciling"),
        "{account:?}"
    );
    // Neither the Account (its sync, its pruning) nor its Authorization called GHES.
    assert_eq!(world.ghes_calls_since(0), Vec::<String>::new());
    assert!(
        world
            .secrets(&ns)
            .get_opt("ci")
            .await
            .expect("read")
            .is_none()
    );

    // Resuming the account resumes its Authorization.
    let output = ctl(
        &world,
        &suspend_cli("resume", &ns, &["--kind", "Account", "bot"]),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        format!("Account {ns}/bot: resumed (spec.suspend removed)\n")
    );
    world.wait_ready(&ns, "ci", "True").await;
    assert!(world.token(&ns, "ci", "token").await.is_some());
    world.cleanup().await;
}
