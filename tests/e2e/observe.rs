//! Observe: an Authorization that binds to an existing GHES authorization, reports it, and
//! never writes to GHES — not while observing, not while pruning is Enabled, not on deletion.
//! Switching it to Manage issues a token of its own with one create.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn an_observed_authorization_is_reported_never_written_and_never_pruned() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    // Two tokens made by hand long ago: one observed by id, one by fingerprint.
    let (by_id, token) = seed(&world, "laptop", None, Duration::from_secs(7200));
    let fingerprinted = world
        .ghes
        .seed_authorization(ghes_emulator::SeedAuthorization {
            login: USER.into(),
            client_id: Some(CLIENT_ID.into()),
            scopes: vec!["read:org".into()],
            note: Some("made by another tool".into()),
            fingerprint: Some("other-tool-7".into()),
            created_at: Some(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(3)),
            ..Default::default()
        })
        .expect("seed");
    world.secret_value(&fingerprinted.token);
    // Pruning Enabled, nothing too young: whatever nothing declares would go.
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled", "minAge": "1s"}}),
        )
        .await;
    for (name, observe) in [
        ("laptop", json!({"id": by_id})),
        ("other-tool", json!({"fingerprint": "other-tool-7"})),
    ] {
        world
            .authorization(
                &ns,
                name,
                json!({
                    "accountRef": {"name": "bot"},
                    "managementPolicy": "Observe",
                    "observe": observe,
                }),
            )
            .await;
    }
    world.start_operator();

    let laptop = world.wait_ready(&ns, "laptop", "True").await;
    let status = laptop.status.expect("status");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.reason, "Observed");
    assert_eq!(status.authorization_id, i64::try_from(by_id).ok());
    assert_eq!(status.scopes, ["repo"]);
    assert_eq!(status.note.as_deref(), Some("laptop"));
    assert_eq!(
        status.token_last_eight.as_deref(),
        Some(&token[token.len() - 8..])
    );
    assert!(status.issued_at.is_some(), "its age");
    assert_eq!(
        status.expires_at, None,
        "the emulator's tokens do not expire here"
    );
    let other = world.wait_ready(&ns, "other-tool", "True").await;
    let status = other.status.expect("status");
    assert_eq!(
        status.authorization_id,
        i64::try_from(fingerprinted.id).ok()
    );
    assert_eq!(status.note.as_deref(), Some("made by another tool"));
    assert!(
        world
            .secrets(&ns)
            .get_opt("laptop")
            .await
            .expect("get")
            .is_none(),
        "no Secret: GHES does not hand out an existing token"
    );

    // A prune run after both are observed deletes nothing. Status times have whole seconds:
    // the account changes in the next second, so that its run's time shows it came after.
    let observed_at = jiff::Timestamp::now();
    let to_next_second =
        1_000_000_000 - u64::try_from(observed_at.subsec_nanosecond()).unwrap_or(0);
    tokio::time::sleep(Duration::from_nanos(to_next_second)).await;
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            json!({"prune": {"mode": "Enabled", "minAge": "2s"}}),
        )
        .await;
    let accounts: kube::Api<ghes_oauth_operator::api::Account> =
        kube::Api::namespaced(world.client.clone(), &ns);
    wait_for("a prune run after the observers were ready", || async {
        let prune = accounts.get("bot").await.ok()?.status?.prune?;
        (prune.last_run_time?.0 > observed_at).then_some(())
    })
    .await;
    assert_eq!(
        world.ghes_writes_since(0),
        Vec::<String>::new(),
        "no GHES write"
    );
    assert_eq!(world.live_tokens(USER).len(), 2);

    // Deleting an observer leaves the authorization.
    world.delete_authorization(&ns, "other-tool").await;
    assert_eq!(
        world.ghes_writes_since(0),
        Vec::<String>::new(),
        "no GHES write"
    );

    // From Observe to Manage: a token of its own, by one create; the observed one stays.
    let seq = world.ghes_seq();
    world
        .patch_authorization(
            &ns,
            "laptop",
            json!({"spec": {"managementPolicy": "Manage", "observe": null, "scopes": ["repo"]}}),
        )
        .await;
    wait_for("a Secret with a token of its own", || async {
        world.token(&ns, "laptop", "token").await
    })
    .await;
    world.wait_ready(&ns, "laptop", "True").await;
    assert_eq!(
        world.ghes_writes_since(seq),
        ["POST /api/v3/authorizations 201"]
    );
    let live = world.live_tokens(USER);
    assert!(
        live.iter()
            .any(|(id, _, _)| *id == i64::try_from(by_id).unwrap_or(0))
    );
    assert_eq!(live.len(), 3);
    world.cleanup().await;
}
