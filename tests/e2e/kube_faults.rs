//! Kubernetes faults: watches that end with 410 or fail, the API server unreachable for the
//! operator, and conflicts on its writes. The operator must miss no change, write nothing on
//! GHES while it cannot see the cluster, and converge once the API server answers again.

use std::collections::BTreeSet;
use std::time::Duration;

use ghes_oauth_operator::api::PruneTarget;
use kube::api::{Patch, PatchParams};
use kube_testkit::FaultSpec;
use serde_json::json;

use crate::harness::*;

/// A fault for the operator's own requests only (the test keeps its access).
fn operator_fault(verb: &str, resource: &str, status: u16, count: u32) -> FaultSpec {
    FaultSpec {
        verb: verb.into(),
        resource: resource.into(),
        user: Some(OPERATOR_USER.into()),
        status: Some(status),
        count,
        ..FaultSpec::default()
    }
}

fn personal(scopes: &[&str]) -> serde_json::Value {
    json!({"accountRef": {"name": "bot"}, "scopes": scopes})
}

/// Takes the token out of a token Secret, as a careless edit would.
async fn empty_secret(world: &World, ns: &str, name: &str) {
    world
        .secrets(ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"token": null}})),
        )
        .await
        .expect("empty the Secret");
}

#[tokio::test]
async fn expired_and_failing_watches_miss_no_change() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(&ns, "release", personal(&["gist"]))
        .await;
    world.start_operator();
    world.wait_ready(&ns, "release", "True").await;
    if !world.expire_watches() {
        return; // a real cluster cannot be told to
    }
    let edits: [&[&str]; 3] = [
        &["gist", "repo"],
        &["gist", "read:org"],
        &["gist", "workflow"],
    ];
    for (round, scopes) in edits.iter().enumerate() {
        // Every watch ends with a 410 and its history is gone; in the second round the
        // operator's new watches fail too, until they have failed six times.
        world.expire_watches();
        if round == 1 {
            world.kube_fault(operator_fault("watch", "*", 500, 6));
        }
        world.authorization(&ns, "release", personal(scopes)).await;
        world.wait_ready(&ns, "release", "True").await;
        world
            .settle_tokens(
                &ns,
                USER,
                &[("release", scopes)],
                &BTreeSet::new(),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|problem| panic!("round {round}: {problem}"));
    }
    let patches = world
        .ghes_calls_since(0)
        .iter()
        .filter(|call| call.starts_with("PATCH "))
        .count();
    assert_eq!(
        patches,
        3,
        "one PATCH per edit: {:?}",
        world.ghes_calls_since(0)
    );
    world.cleanup().await;
}

#[tokio::test]
async fn no_ghes_write_while_the_api_server_is_unreachable() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"syncInterval": "30s", "prune": {"mode": "Enabled", "minAge": "1m"}}),
        )
        .await;
    world
        .authorization(&ns, "release", personal(&["gist"]))
        .await;
    world.start_operator();
    world.wait_ready(&ns, "release", "True").await;
    // The API server stops answering the operator (every verb, every resource).
    if !world.kube_fault(operator_fault("*", "*", 500, u32::MAX)) {
        return;
    }
    let blind_from = world.ghes_seq();
    // Meanwhile, what would make a seeing operator write: a prune candidate on GHES, and the
    // token Secret gone.
    let (hand_made, _) = seed(&world, "made by hand", None, Duration::from_secs(7200));
    empty_secret(&world, &ns, "release").await;
    // The account's timer fires while the operator is blind: its sync lists GHES and ends
    // in a status write that the API server refuses. Only then is "no write" meaningful.
    let kube_from = world.kube_seq();
    wait_for_within("a sync while blind", Duration::from_secs(90), || async {
        let listed = world
            .ghes_calls_since(blind_from)
            .iter()
            .any(|c| c.starts_with("GET /api/v3/authorizations"));
        let sync_ended = world.kube_requests().iter().any(|r| {
            r.seq > kube_from
                && r.user == OPERATOR_USER
                && r.resource == "accounts/status"
                && r.status == 500
        });
        (listed && sync_ended).then_some(())
    })
    .await;
    let blind = world.ghes_writes_since(blind_from);
    assert!(blind.is_empty(), "GHES writes while blind: {blind:?}");

    world.clear_kube_faults();
    wait_for("a new token in the Secret", || async {
        world.token(&ns, "release", "token").await
    })
    .await;
    wait_for("the hand-made token pruned", || async {
        (!world
            .live_tokens(USER)
            .iter()
            .any(|(id, _, _)| *id == hand_made as i64))
        .then_some(())
    })
    .await;
    world.wait_ready(&ns, "release", "True").await;
    world.expect_tokens(&ns, &[("release", &["gist"])]).await;
    world.cleanup().await;
}

#[tokio::test]
async fn conflicts_on_status_and_secret_writes_are_retried() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    if !world.kube_fault(operator_fault("patch", "authorizations/status", 409, 3)) {
        return;
    }
    world
        .authorization(&ns, "release", personal(&["gist"]))
        .await;
    world.start_operator();
    world.wait_ready(&ns, "release", "True").await;
    let creates = |world: &World| {
        world
            .ghes_calls_since(0)
            .iter()
            .filter(|call| call.starts_with("POST "))
            .count()
    };
    assert_eq!(creates(&world), 1, "{:?}", world.ghes_calls_since(0));
    let first = world.token(&ns, "release", "token").await.expect("a token");

    // The token leaves the Secret; the rewrite meets two conflicts.
    world.kube_fault(operator_fault("patch", "secrets", 409, 2));
    empty_secret(&world, &ns, "release").await;
    wait_for("a new token in the Secret", || async {
        world
            .token(&ns, "release", "token")
            .await
            .filter(|token| *token != first)
    })
    .await;
    world.wait_ready(&ns, "release", "True").await;
    world.expect_tokens(&ns, &[("release", &["gist"])]).await;
    world.cleanup().await;
}

/// With leader election the operator holds its Lease under its own RBAC (the chart's table
/// grants get, create and update on leases): it creates the Lease, renews it, and works.
#[tokio::test]
async fn the_leader_takes_and_renews_its_lease() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(&ns, "release", personal(&["gist"]))
        .await;
    world.start_operator_with(&[
        "--leader-elect",
        "--leader-election-namespace",
        &ns,
        "--lease-duration",
        "4",
        "--lease-renew-period",
        "1",
        "--lease-retry-period",
        "1",
    ]);
    world.wait_ready(&ns, "release", "True").await;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(world.client.clone(), &ns);
    let renewed = |lease: &k8s_openapi::api::coordination::v1::Lease| {
        lease.spec.as_ref().and_then(|s| s.renew_time.clone())
    };
    let first = wait_for("the Lease", || async {
        renewed(&leases.get_opt("ghes-oauth-operator").await.ok()??)
    })
    .await;
    wait_for("a renewal", || async {
        let lease = leases.get_opt("ghes-oauth-operator").await.ok()??;
        renewed(&lease).filter(|time| *time != first).map(|_| ())
    })
    .await;
    world.cleanup().await;
}

/// Two replicas, and the leader cut off from the API server's Lease: it must stop before the
/// Lease can expire, so that the two never both work. The emulator's log, which records each
/// request's `User-Agent` (carrying the instance name), proves it: every request of the old
/// leader comes before the first of the new one, while Authorizations keep arriving.
#[tokio::test]
async fn a_leader_cut_off_from_its_lease_stops_before_the_standby_starts() {
    let mut world = World::exclusive(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    let lease_flags = |instance: &'static str| -> Vec<String> {
        [
            "--leader-elect",
            "--leader-election-namespace",
            &ns,
            "--lease-duration",
            "4",
            "--lease-renew-period",
            "1",
            "--lease-retry-period",
            "1",
            "--instance",
            instance,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let a = lease_flags("replica-a");
    world.start_operator_with(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(world.client.clone(), &ns);
    let holder = || async {
        leases
            .get_opt("ghes-oauth-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    };
    wait_for("replica-a to lead", || async {
        (holder().await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let b = lease_flags("replica-b");
    world.start_second_operator(&b.iter().map(String::as_str).collect::<Vec<_>>());
    for i in 0..3 {
        world
            .authorization(&ns, &format!("before-{i}"), personal(&["gist"]))
            .await;
    }
    for i in 0..3 {
        world.wait_ready(&ns, &format!("before-{i}"), "True").await;
    }
    // replica-a can no longer renew; Authorizations keep coming while the Lease changes hands.
    if !world.kube_fault(operator_fault("update", "leases", 500, u32::MAX)) {
        return;
    }
    for i in 0..20 {
        world
            .authorization(&ns, &format!("during-{i}"), personal(&["gist"]))
            .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    wait_for("replica-b to lead", || async {
        (holder().await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    for i in 0..20 {
        world.wait_ready(&ns, &format!("during-{i}"), "True").await;
    }
    let requests = world.ghes.requests();
    let by = |instance: &str| -> Vec<u64> {
        requests
            .iter()
            .filter(|r| {
                r.user_agent
                    .as_deref()
                    .is_some_and(|ua| ua.ends_with(&format!("instance/{instance}")))
            })
            .map(|r| r.seq)
            .collect()
    };
    let (from_a, from_b) = (by("replica-a"), by("replica-b"));
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "{from_a:?} {from_b:?}"
    );
    assert_eq!(
        from_a.len() + from_b.len(),
        requests.len(),
        "every GHES request names its replica"
    );
    let last_a = from_a.iter().max().copied().unwrap_or_default();
    let first_b = from_b.iter().min().copied().unwrap_or_default();
    assert!(
        last_a < first_b,
        "the replicas overlapped on GHES: replica-a's last request is #{last_a}, replica-b's \
         first #{first_b}"
    );
    let held: Vec<(String, &[&str])> = (0..3)
        .map(|i| format!("before-{i}"))
        .chain((0..20).map(|i| format!("during-{i}")))
        .map(|name| (name, &["gist"][..]))
        .collect();
    let held: Vec<(&str, &[&str])> = held.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    world.expect_tokens(&ns, &held).await;
    world.cleanup().await;
}

/// A prune run whose status write fails is recorded by the retry, not lost until the next
/// listing (the sync interval, 5 minutes by default): what DryRun would delete is in status
/// within the retry's backoff.
#[tokio::test]
async fn a_prune_run_whose_status_write_failed_is_recorded_by_the_retry() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let (human, _) = seed(&world, "made by hand", None, Duration::from_secs(7200));
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "DryRun"}}),
        )
        .await;
    if !world.kube_fault(operator_fault("patch", "accounts/status", 500, 1)) {
        return;
    }
    world.start_operator();
    let prune = wait_for(
        "the DryRun's candidates in the Account's status",
        || async { world.account_status(&ns, "bot").await?.prune },
    )
    .await;
    assert!(
        prune
            .candidates
            .iter()
            .any(|c| c.id == human as i64 && c.kind == PruneTarget::Authorization),
        "{prune:?}"
    );
    assert_eq!(prune.candidate_count, 1, "{prune:?}");
    world.cleanup().await;
}
