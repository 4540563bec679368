//! Pruning end to end: what no Authorization declares is reported (DryRun) or deleted
//! (Enabled) — and what must survive does.

use std::time::Duration;

use ghes_oauth_operator::api::PruneTarget;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::harness::*;

fn app_spec() -> serde_json::Value {
    json!({
        "accountRef": {"name": "bot"},
        "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}},
        "scopes": ["repo"],
    })
}

/// The declared app token `ci`, then the operator; returns when `ci` is Ready.
async fn declare_ci_and_start(world: &mut World, ns: &str) {
    world.app_secret(ns).await;
    world.authorization(ns, "ci", app_spec()).await;
    world.start_operator();
    world.wait_ready(ns, "ci", "True").await;
}

const TWO_HOURS: Duration = Duration::from_secs(7200);

fn live_ids(world: &World) -> Vec<u64> {
    world
        .ghes
        .state()
        .authorizations
        .iter()
        .map(|a| a.id)
        .collect()
}

/// Waits for a prune run of `bot` that satisfies `check`.
async fn wait_prune<F>(
    world: &World,
    ns: &str,
    what: &str,
    check: F,
) -> ghes_oauth_operator::api::PruneStatus
where
    F: Fn(&ghes_oauth_operator::api::PruneStatus) -> bool,
{
    wait_for(what, || async {
        let prune = world.account_status(ns, "bot").await?.prune?;
        check(&prune).then_some(prune)
    })
    .await
}

#[tokio::test]
async fn dry_run_reports_a_hand_made_token_and_enabled_deletes_it() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let (human, _) = seed(&world, "made by hand", None, TWO_HOURS);
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
    declare_ci_and_start(&mut world, &ns).await;
    let dry = wait_prune(&world, &ns, "a DryRun listing the token", |p| {
        p.candidates
            .iter()
            .any(|c| c.id == human as i64 && c.kind == PruneTarget::Authorization)
    })
    .await;
    assert_eq!(dry.deleted, 0);
    assert_eq!(
        dry.candidate_count, 1,
        "the Authorization's own token is no candidate"
    );
    assert!(live_ids(&world).contains(&human), "DryRun deletes nothing");
    wait_for("a PruneCandidates Event", || async {
        world
            .event_reasons(&ns, "bot")
            .await
            .contains(&"PruneCandidates".to_owned())
            .then_some(())
    })
    .await;

    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled"}}),
        )
        .await;
    wait_for("the hand-made token to be pruned", || async {
        (!live_ids(&world).contains(&human)).then_some(())
    })
    .await;
    let enabled = wait_prune(&world, &ns, "an Enabled run", |p| p.deleted == 1).await;
    assert_eq!(enabled.mode.as_str(), "Enabled");
    assert_eq!(live_ids(&world).len(), 1, "the declared token stays");
    world.wait_ready(&ns, "ci", "True").await;
    wait_for("a Pruned Event", || async {
        world
            .event_reasons(&ns, "bot")
            .await
            .contains(&"Pruned".to_owned())
            .then_some(())
    })
    .await;
    world.cleanup().await;
}

#[tokio::test]
async fn keep_and_min_age_protect() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let (by_note, _) = seed(&world, "human: laptop", None, TWO_HOURS);
    let (by_id, _) = seed(&world, "kept by id", None, TWO_HOURS);
    let (young, _) = seed(&world, "fresh", None, Duration::from_secs(60));
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled", "minAge": "30m",
                             "keep": {"notePrefixes": ["human:"], "ids": [by_id]}}}),
        )
        .await;
    declare_ci_and_start(&mut world, &ns).await;
    let run = wait_prune(&world, &ns, "a run with three protected tokens", |p| {
        p.skipped.len() >= 3
    })
    .await;
    let reason = |id: u64| {
        run.skipped
            .iter()
            .find(|s| s.id == id as i64)
            .map(|s| s.reason.clone())
            .unwrap_or_default()
    };
    assert_eq!(reason(by_note), "kept by prune.keep");
    assert_eq!(reason(by_id), "kept by prune.keep");
    assert!(
        reason(young).starts_with("younger than minAge"),
        "{}",
        reason(young)
    );
    assert_eq!(run.deleted, 0);
    for id in [by_note, by_id, young] {
        assert!(live_ids(&world).contains(&id));
    }
    world.cleanup().await;
}

/// A token `age` old on GHES's own clock, `offset` seconds ahead of the host's.
fn seed_on_ghes_clock(world: &World, note: &str, offset: i64, age: Duration) -> u64 {
    let created = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(offset)
        - jiff::SignedDuration::try_from(age).expect("age");
    world
        .ghes
        .seed_authorization(ghes_emulator::SeedAuthorization {
            login: USER.into(),
            scopes: vec!["repo".into()],
            note: Some(note.into()),
            created_at: Some(created),
            ..Default::default()
        })
        .expect("seed")
        .id
}

#[tokio::test]
async fn min_age_is_measured_on_ghes_clock_ahead_or_behind() {
    for offset in [3600, -3600] {
        let mut world = World::new(&["a"]).await;
        let ns = world.ns(0).to_owned();
        world.ghes.update_settings(ghes_emulator::SettingsPatch {
            clock_offset_secs: Some(offset),
            ..Default::default()
        });
        let young = seed_on_ghes_clock(&world, "fresh", offset, Duration::from_secs(60));
        let old = seed_on_ghes_clock(&world, "stale", offset, TWO_HOURS);
        world
            .account_with(
                &ns,
                "bot",
                USER,
                PASSWORD,
                None,
                json!({"prune": {"mode": "Enabled", "minAge": "30m"}}),
            )
            .await;
        declare_ci_and_start(&mut world, &ns).await;
        let run = wait_prune(&world, &ns, "a run that deleted the stale token", |p| {
            p.deleted >= 1
        })
        .await;
        let ids = live_ids(&world);
        assert!(
            ids.contains(&young),
            "GHES clock {offset:+} s: the minute-old token was pruned ({run:?})"
        );
        assert!(!ids.contains(&old), "GHES clock {offset:+} s: {run:?}");
        assert!(
            run.skipped
                .iter()
                .any(|s| s.id == young as i64 && s.reason.starts_with("younger than minAge")),
            "GHES clock {offset:+} s: {run:?}"
        );
        world.cleanup().await;
    }
}

#[tokio::test]
async fn at_most_max_deletions_per_run() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let seeded: Vec<u64> = (0..5)
        .map(|i| seed(&world, &format!("old {i}"), None, TWO_HOURS).0)
        .collect();
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled", "maxDeletionsPerRun": 2}}),
        )
        .await;
    declare_ci_and_start(&mut world, &ns).await;
    let first = wait_prune(&world, &ns, "the first run", |p| p.deleted > 0).await;
    assert_eq!(first.deleted, 2);
    assert_eq!(first.candidate_count, 5);
    assert_eq!(
        first
            .skipped
            .iter()
            .filter(|s| s.reason.contains("maxDeletionsPerRun"))
            .count(),
        3
    );
    let left: Vec<u64> = seeded
        .iter()
        .copied()
        .filter(|id| live_ids(&world).contains(id))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    // A spec change makes the account list (and prune) again.
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled", "maxDeletionsPerRun": 3}}),
        )
        .await;
    wait_for("the rest to go", || async {
        seeded
            .iter()
            .all(|id| !live_ids(&world).contains(id))
            .then_some(())
    })
    .await;
    world.cleanup().await;
}

#[tokio::test]
async fn grant_of_an_undeclared_app_is_revoked_and_a_declared_one_is_not() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let (other_token, _) = seed(&world, "other app token", Some(OTHER_CLIENT_ID), TWO_HOURS);
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled"}}),
        )
        .await;
    declare_ci_and_start(&mut world, &ns).await;
    wait_for("the undeclared app's grant to go", || async {
        let state = world.ghes.state();
        state
            .grants
            .iter()
            .all(|g| g.app.client_id != OTHER_CLIENT_ID)
            .then_some(())
    })
    .await;
    let state = world.ghes.state();
    assert!(
        state.grants.iter().any(|g| g.app.client_id == CLIENT_ID),
        "declared grant stays"
    );
    assert!(
        !live_ids(&world).contains(&other_token),
        "the grant took its token"
    );
    assert!(
        world
            .ghes_calls_since(0)
            .iter()
            .any(|c| c.starts_with("DELETE /api/v3/applications/grants/"))
    );
    world.wait_ready(&ns, "ci", "True").await;
    world.cleanup().await;
}

#[tokio::test]
async fn authorizations_lost_while_the_operator_was_down_do_not_wipe_ghes() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled", "minAge": "0s"}}),
        )
        .await;
    world.app_secret(&ns).await;
    world.authorization(&ns, "ci", app_spec()).await;
    world
        .authorization(
            &ns,
            "release",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    world.start_operator();
    world.wait_ready(&ns, "ci", "True").await;
    world.wait_ready(&ns, "release", "True").await;
    world.kill_operator();
    // All at once, and without the operator's cleanup (finalizers removed): as after a restore
    // of a cluster without these resources, or a careless `kubectl delete --force`.
    for name in ["ci", "release"] {
        let api = world.authorizations(&ns);
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("drop finalizer");
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    world.start_operator();
    // The new process's first run (an earlier run may have refused for another reason: a
    // create was under way then).
    let run = wait_prune(&world, &ns, "a refused run", |p| {
        p.refused
            .as_deref()
            .is_some_and(|r| r.contains("no Authorization uses this account"))
    })
    .await;
    assert!(
        run.refused
            .as_deref()
            .is_some_and(|r| r.contains("no Authorization uses this account")),
        "{run:?}"
    );
    assert_eq!(run.deleted, 0);
    wait_for("a PruneRefused Event", || async {
        world
            .event_reasons(&ns, "bot")
            .await
            .contains(&"PruneRefused".to_owned())
            .then_some(())
    })
    .await;
    // The run that refused deleted nothing (run.deleted above); GHES agrees.
    assert_eq!(
        world.ghes.state().authorizations.len(),
        2,
        "GHES keeps both tokens"
    );
    assert!(
        world
            .ghes_calls_since(0)
            .iter()
            .all(|c| !c.starts_with("DELETE"))
    );
    world.cleanup().await;
}

#[tokio::test]
async fn the_login_token_is_never_pruned() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let (login_id, login_token) = seed(&world, "operator login", None, TWO_HOURS);
    world
        .account_with(
            &ns,
            "bot",
            USER,
            &login_token,
            None,
            json!({"prune": {"mode": "Enabled", "minAge": "0s"}}),
        )
        .await;
    declare_ci_and_start(&mut world, &ns).await;
    let run = wait_prune(&world, &ns, "a run protecting the login", |p| {
        p.skipped.iter().any(|s| s.id == login_id as i64)
    })
    .await;
    let skip = run
        .skipped
        .iter()
        .find(|s| s.id == login_id as i64)
        .expect("skip");
    assert_eq!(skip.reason, "the account logs in with this token");
    assert!(live_ids(&world).contains(&login_id));
    world.cleanup().await;
}

#[tokio::test]
async fn a_thousand_authorizations_cost_eleven_list_calls_per_sync_interval() {
    const N: usize = 1000;
    let mut world = World::exclusive(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"syncInterval": "30s", "requestsPerSecond": 100, "burst": 100,
                   "prune": {"mode": "Enabled"}}),
        )
        .await;
    world.app_secret(&ns).await;
    for index in 0..N {
        let mut spec = app_spec();
        spec["secret"] = json!({"name": format!("token-{index}")});
        world
            .authorization(&ns, &format!("bot-{index}"), spec)
            .await;
    }
    world.start_operator_with(&["--concurrency", "16"]);
    let started = std::time::Instant::now();
    wait_for_within(
        "every Authorization Ready",
        Duration::from_secs(600),
        || async {
            // Listing a thousand objects is not free: look every few seconds.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let list = world
                .authorizations(&ns)
                .list(&Default::default())
                .await
                .ok()?;
            let ready = list.items.iter().filter(|a| {
                a.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            });
            let ready = ready.count();
            eprintln!("{ready}/{N} Ready after {:?}", started.elapsed());
            (ready == N).then_some(())
        },
    )
    .await;
    // One full interval, from the end of one account listing to the end of the next.
    let listing_end = |after: u64| {
        let world = &world;
        async move {
            wait_for("an account listing", || async {
                world
                    .ghes
                    .requests()
                    .iter()
                    .find(|r| r.seq > after && r.path == "/api/v3/applications/grants")
                    .map(|r| r.seq)
            })
            .await
        }
    };
    let start = listing_end(world.ghes_seq()).await;
    let end = listing_end(start).await;
    let interval: Vec<String> = world
        .ghes
        .requests()
        .iter()
        .filter(|r| r.seq > start && r.seq <= end)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let list_authorizations = interval
        .iter()
        .filter(|c| *c == "GET /api/v3/authorizations")
        .count();
    let list_grants = interval
        .iter()
        .filter(|c| *c == "GET /api/v3/applications/grants")
        .count();
    eprintln!(
        "one steady-state interval with {N} Authorizations: {} GHES calls",
        interval.len()
    );
    assert_eq!((list_authorizations, list_grants), (10, 1), "{interval:?}");
    assert_eq!(interval.len(), 11, "no per-resource call: {interval:?}");
    assert_eq!(world.ghes.state().authorizations.len(), N);
    world.cleanup().await;
}

#[tokio::test]
async fn drift_behind_the_operators_back_is_repaired_at_the_next_sync() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"syncInterval": "30s"}),
        )
        .await;
    world.app_secret(&ns).await;
    world.authorization(&ns, "ci", app_spec()).await;
    let mut release = json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]});
    release["secret"] = json!({"name": "release-token"});
    world.authorization(&ns, "release", release).await;
    world.start_operator();
    let ci = world.wait_ready(&ns, "ci", "True").await;
    let release = world.wait_ready(&ns, "release", "True").await;
    let ci_id = ci.status.expect("status").authorization_id.expect("id");
    let release_id = release
        .status
        .expect("status")
        .authorization_id
        .expect("id");
    let old_token = world.token(&ns, "ci", "token").await.expect("token");

    // Somebody revokes one token and widens the other, on GHES directly.
    let http = reqwest::Client::new();
    let api = world.ghes.api_url();
    let deleted = http
        .delete(format!("{api}/authorizations/{ci_id}"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let patched = http
        .patch(format!("{api}/authorizations/{release_id}"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"add_scopes": ["delete_repo"]}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);

    wait_for_within(
        "the revoked token to be re-issued",
        Duration::from_secs(120),
        || async {
            let token = world.token(&ns, "ci", "token").await?;
            (token != old_token).then_some(())
        },
    )
    .await;
    wait_for_within(
        "the widened token to be narrowed",
        Duration::from_secs(120),
        || async {
            let state = world.ghes.state();
            let live = state
                .authorizations
                .iter()
                .find(|a| a.id == release_id as u64)?;
            (live.scopes == ["gist"]).then_some(())
        },
    )
    .await;
    let state = world.ghes.state();
    let token = world.token(&ns, "ci", "token").await.expect("token");
    assert!(
        state
            .authorizations
            .iter()
            .any(|a| a.hashed_token.as_deref() == Some(sha256_hex(&token).as_str()))
    );
    world.cleanup().await;
}
