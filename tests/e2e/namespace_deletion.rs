//! Deleting a namespace loses nothing: its Account and credentials Secret stay (finalizer
//! `oauth.ghes.io/in-use`) until every Authorization in it has revoked its token, so the
//! namespace goes with no token left live on GHES. When GHES is down for good, each deletion
//! gives up after the account's `revokeTimeout`, and every token left behind is counted and
//! named in an Event in the operator's namespace, which outlives the deleted one.

use std::time::{Duration, Instant};

use ghes_emulator::Fault;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use crate::harness::*;

/// Authorizations in the namespace that is deleted.
const TOKENS: usize = 20;

/// A team namespace with an Account at one request a second, its Secret and 20 Ready personal
/// tokens; the operator's namespace is the world's first.
async fn team_with_tokens(world: &mut World, extra: serde_json::Value) -> String {
    let team = world.ns(1).to_owned();
    let mut spec = json!({"requestsPerSecond": 1, "burst": 1});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    world
        .account_with(&team, "bot", USER, PASSWORD, None, spec)
        .await;
    for i in 0..TOKENS {
        world
            .authorization(
                &team,
                &format!("token-{i}"),
                json!({"accountRef": {"name": "bot"}, "scopes": ["read:user"]}),
            )
            .await;
    }
    world.start_operator();
    wait_for_within("every token Ready", Duration::from_secs(120), || async {
        (world.ready_with_prefix(&team, "token-").await == TOKENS).then_some(())
    })
    .await;
    assert_eq!(world.live_tokens(USER).len(), TOKENS);
    team
}

async fn delete_namespace_and_wait(world: &World, namespace: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    world
        .namespaces_api()
        .delete(namespace, &DeleteParams::default())
        .await
        .expect("delete namespace");
    wait_for_within("the namespace to be gone", limit, || async {
        world
            .namespaces_api()
            .get_opt(namespace)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn deleting_a_namespace_revokes_every_token_before_it_goes() {
    let mut world = World::exclusive(&["op", "team"]).await;
    let team = team_with_tokens(&mut world, json!({})).await;
    let took = delete_namespace_and_wait(&world, &team, Duration::from_secs(180)).await;
    eprintln!("namespace with {TOKENS} tokens at 1 request/s gone in {took:.1?}");
    assert_eq!(
        world.live_tokens(USER),
        Vec::new(),
        "tokens left live on GHES once the namespace is gone"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_namespace_whose_ghes_is_gone_for_good_goes_after_the_revoke_timeout() {
    let mut world = World::exclusive(&["op", "team"]).await;
    let operator_namespace = world.ns(0).to_owned();
    let team = team_with_tokens(&mut world, json!({"revokeTimeout": "5s"})).await;
    // GHES answers nothing but 503 from now on.
    world
        .ghes
        .inject(Fault::status(503).login(USER))
        .expect("fault");
    let took = delete_namespace_and_wait(&world, &team, Duration::from_secs(120)).await;
    eprintln!("namespace with {TOKENS} tokens on a dead GHES gone in {took:.1?}");
    assert!(
        took >= Duration::from_secs(5),
        "the namespace went before the revokeTimeout: {took:?}"
    );
    // Left live, and said so where it outlives the namespace.
    assert_eq!(world.live_tokens(USER).len(), TOKENS);
    let events = Api::<Event>::namespaced(world.client.clone(), &operator_namespace);
    let abandoned: Vec<String> = wait_for("an abandoned-token Event for every token", || async {
        let notes: Vec<String> = events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("TokenAbandoned"))
            .filter_map(|e| e.note)
            .collect();
        (notes.len() >= TOKENS).then_some(notes)
    })
    .await;
    // Every token named (a cleanup retried after its Event may name one twice).
    let named: std::collections::BTreeSet<&str> = abandoned
        .iter()
        .filter_map(|note| note.split_whitespace().nth(1))
        .collect();
    assert_eq!(named.len(), TOKENS, "{abandoned:#?}");
    for note in &abandoned {
        assert!(
            note.contains(&format!("Authorization {team}/token-"))
                && note.contains("Account bot")
                && note.contains("GHES authorization ")
                && note.contains("revokeTimeout"),
            "{note}"
        );
    }
    world.ghes.clear_faults();
    world.cleanup().await;
}
