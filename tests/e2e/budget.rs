//! Request budgets: a slow account's queue does not hold the workers another account needs.

use kube::api::ListParams;
use serde_json::json;

use crate::harness::*;

fn ready_count(list: &[ghes_oauth_operator::api::Authorization], prefix: &str) -> usize {
    list.iter()
        .filter(|a| {
            a.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .filter(|a| {
            a.status.as_ref().is_some_and(|status| {
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count()
}

#[tokio::test]
async fn a_slow_account_never_starves_a_fast_one() {
    let mut world = World::new(&["budget"]).await;
    let ns = world.ns(0).to_owned();
    // One request a second for one account, fifty for the other; two workers in all.
    world
        .account_with(
            &ns,
            "slow",
            USER,
            PASSWORD,
            None,
            json!({"requestsPerSecond": 1, "burst": 1}),
        )
        .await;
    world
        .account(&ns, "fast", OTP_USER, OTP_PASSWORD, Some(OTP_SEED))
        .await;
    world.start_operator_with(&["--concurrency", "2"]);
    const EACH: usize = 10;
    // The slow account's Authorizations come first: a worker that waited its turn in a queue
    // would be busy with them for about ten seconds.
    for account in ["slow", "fast"] {
        for i in 0..EACH {
            world
                .authorization(
                    &ns,
                    &format!("{account}-{i}"),
                    json!({"accountRef": {"name": account}, "scopes": ["read:user"]}),
                )
                .await;
        }
    }
    let api = world.authorizations(&ns);
    let slow_ready_when_fast_done = wait_for("every fast Authorization Ready", || async {
        let list = api.list(&ListParams::default()).await.ok()?.items;
        (ready_count(&list, "fast-") == EACH).then(|| ready_count(&list, "slow-"))
    })
    .await;
    assert!(
        slow_ready_when_fast_done <= EACH / 2,
        "the fast account waited behind the slow one's queue: {slow_ready_when_fast_done} of \
         {EACH} slow Authorizations were Ready first"
    );
    // The slow ones finish too, at their own pace, without GHES refusing anything.
    wait_for_within(
        "every slow Authorization Ready",
        std::time::Duration::from_secs(90),
        || async {
            let list = api.list(&ListParams::default()).await.ok()?.items;
            (ready_count(&list, "slow-") == EACH).then_some(())
        },
    )
    .await;
    let throttled = world
        .ghes
        .requests()
        .iter()
        .filter(|r| r.status == 403 || r.status == 429)
        .count();
    assert_eq!(throttled, 0, "GHES refused requests");
    world.cleanup().await;
}
