//! Rotation: on schedule, before GHES expires a token, and on request through the
//! `oauth.ghes.io/rotate` annotation. What a consumer sees is sampled every 100 ms: the Secret
//! holds a live token at every instant, the previous token lives until its grace period is
//! over, and one rotation costs GHES exactly one create and one delete.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ghes_emulator::SettingsPatch;
use ghes_oauth_operator::api::Authorization;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use crate::harness::*;

/// What the sampler saw.
#[derive(Debug, Default)]
struct Samples {
    taken: usize,
    /// Samples at which the Secret held no live token (time, why).
    dead: Vec<(Timestamp, String)>,
    /// Distinct tokens the Secret held, in order (SHA-256).
    held: Vec<String>,
    /// When each token first was no longer live on GHES (SHA-256, time).
    revoked: Vec<(String, Timestamp)>,
    /// Distinct values of the consumer Deployment's `oauth.ghes.io/restartedAt`, with the
    /// token the Secret held when each was first seen.
    restarts: Vec<(String, Option<String>)>,
}

/// Samples the Secret and GHES every 100 ms until `stop` is set (bounded to 2 minutes).
fn sample(
    world: &World,
    namespace: &str,
    secret: &str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Samples> {
    let secrets = world.secrets(namespace);
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(world.client.clone(), namespace);
    let ghes = world.ghes.clone();
    let secret = secret.to_owned();
    tokio::spawn(async move {
        let mut samples = Samples::default();
        let started = std::time::Instant::now();
        // One last sample after `stop`: the test stops once status shows the end of a
        // rotation, which comes after the revoke, so that sample sees it.
        let mut last = false;
        while !last && started.elapsed() < Duration::from_secs(120) {
            last = stop.load(Ordering::SeqCst);
            let now = Timestamp::now();
            let token = secrets
                .get_opt(&secret)
                .await
                .ok()
                .flatten()
                .and_then(|s| s.data)
                .and_then(|data| data.get("token").map(|t| t.0.clone()))
                .and_then(|bytes| String::from_utf8(bytes).ok());
            let live: Vec<(String, Option<Timestamp>)> = ghes
                .state()
                .authorizations
                .into_iter()
                .filter_map(|a| a.hashed_token.map(|h| (h, a.expires_at)))
                .collect();
            samples.taken += 1;
            for hash in samples.held.clone() {
                let gone = !live.iter().any(|(h, _)| *h == hash);
                if gone && !samples.revoked.iter().any(|(h, _)| *h == hash) {
                    samples.revoked.push((hash, now));
                }
            }
            let restarted = deployments
                .get_opt(CONSUMER)
                .await
                .ok()
                .flatten()
                .and_then(|d| d.spec.template.metadata?.annotations)
                .and_then(|a| a.get("oauth.ghes.io/restartedAt").cloned());
            if let Some(restarted) = restarted
                && samples.restarts.last().map(|(r, _)| r) != Some(&restarted)
            {
                let holds = token.as_deref().map(sha256_hex);
                samples.restarts.push((restarted, holds));
            }
            match token {
                None => samples.dead.push((now, "no token in the Secret".into())),
                Some(token) => {
                    let hash = sha256_hex(&token);
                    match live.iter().find(|(h, _)| *h == hash) {
                        None => samples.dead.push((now, "the token is revoked".into())),
                        Some((_, Some(expiry))) if *expiry <= now => {
                            samples.dead.push((now, "the token expired".into()))
                        }
                        Some(_) => {}
                    }
                    if samples.held.last() != Some(&hash) {
                        samples.held.push(hash);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        samples
    })
}

/// The Deployment that reads the token.
const CONSUMER: &str = "consumer";

/// A workload of `kind` named `name` in `namespace`, as the test user applies it.
async fn workload(world: &World, namespace: &str, kind: &str, name: &str) {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "registry.example/consumer:1"}]},
        },
    });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    // No pods: a real cluster's controllers then report every rollout done by themselves, and
    // the test server's status is the test's to write (see `roll_out`).
    if kind != "DaemonSet" {
        spec["replicas"] = json!(0);
    }
    world
        .apply_json(
            namespace,
            json!({
                "apiVersion": "apps/v1", "kind": kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }),
        )
        .await;
}

/// Reports the rollout of the workload done, as its controller would once every pod of its
/// current template is up (the test server runs no controller; a real cluster's agrees, the
/// workloads having no pods).
async fn roll_out(world: &World, namespace: &str, kind: &str, name: &str) {
    let plural = format!("{}s", kind.to_ascii_lowercase());
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("apps", "v1", kind),
        &plural,
    );
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(world.client.clone(), namespace, &resource);
    let object = api.get(name).await.expect("workload");
    let generation = object.metadata.generation.unwrap_or(1);
    let status = match kind {
        "DaemonSet" => json!({
            "observedGeneration": generation, "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0,
            "updatedNumberScheduled": 0, "numberAvailable": 0,
        }),
        "StatefulSet" => json!({
            "observedGeneration": generation, "replicas": 0, "updatedReplicas": 0,
            "readyReplicas": 0, "availableReplicas": 0,
        }),
        _ => json!({
            "observedGeneration": generation, "replicas": 0, "updatedReplicas": 0,
            "readyReplicas": 0, "availableReplicas": 0,
        }),
    };
    api.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap_or_else(|error| panic!("status of {kind} {name}: {error}"));
}

/// GHES writes (method and status) of the emulator's requests after `seq`.
fn writes_since(world: &World, seq: u64) -> Vec<String> {
    world
        .ghes_writes_since(seq)
        .into_iter()
        .map(|call| {
            let mut parts = call.split(' ');
            let method = parts.next().unwrap_or_default().to_owned();
            let status = parts.nth(1).unwrap_or_default();
            format!("{method} {status}")
        })
        .collect()
}

/// Waits until the token is the `n`-th rotation's and no previous token is pending.
pub(crate) async fn wait_rotated(
    world: &World,
    namespace: &str,
    name: &str,
    n: u32,
) -> Authorization {
    let api = world.authorizations(namespace);
    let suffix = format!(".{n}");
    wait_for(&format!("{namespace}/{name} rotated {n} times"), || async {
        let authorization = api.get_opt(name).await.ok().flatten()?;
        let status = authorization.status.as_ref()?;
        let done = status.fingerprint.as_deref()?.ends_with(&suffix)
            && status.authorization_id.is_some()
            && status.previous.is_none();
        done.then_some(authorization)
    })
    .await
}

pub(crate) async fn annotate(world: &World, namespace: &str, name: &str, value: &str) {
    world
        .patch_authorization(
            namespace,
            name,
            json!({"metadata": {"annotations": {"oauth.ghes.io/rotate": value}}}),
        )
        .await;
}

/// The Account `bot` and the personal Authorization `release` with `rotation`.
async fn release_with(world: &World, namespace: &str, rotation: serde_json::Value) {
    world.account(namespace, "bot", USER, PASSWORD, None).await;
    world
        .authorization(
            namespace,
            "release",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"], "rotation": rotation}),
        )
        .await;
}

fn time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Timestamp {
    t.0
}

#[tokio::test]
async fn periodic_rotation_keeps_a_live_token_in_the_secret_at_every_instant() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    release_with(
        &world,
        &ns,
        json!({
            "period": "15s",
            "gracePeriod": "4s",
            "restartTargets": [
                {"kind": "Deployment", "name": CONSUMER},
                {"kind": "StatefulSet", "name": "consumer-db"},
                {"kind": "DaemonSet", "name": "consumer-agent"},
                {"kind": "Deployment", "name": "not-deployed"},
            ],
        }),
    )
    .await;
    workload(&world, &ns, "Deployment", CONSUMER).await;
    workload(&world, &ns, "StatefulSet", "consumer-db").await;
    workload(&world, &ns, "DaemonSet", "consumer-agent").await;
    world.start_operator();
    let first = world.wait_ready(&ns, "release", "True").await;
    let status = first.status.clone().expect("status");
    let issued = time(status.issued_at.as_ref().expect("issuedAt"));
    assert_eq!(
        status.next_rotation_at.as_ref().map(time),
        Some(issued + jiff::SignedDuration::from_secs(15)),
        "nextRotationAt is issuedAt + rotation.period"
    );
    let seq = world.ghes_seq();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(&world, &ns, "release", stop.clone());

    // During the grace period: the Secret holds the new token, the previous one still lives.
    let api = world.authorizations(&ns);
    let previous = wait_for("a rotation in its grace period", || async {
        let status = api.get_opt("release").await.ok().flatten()?.status?;
        let previous = status.previous?;
        previous.revoke_after.is_some().then_some(previous)
    })
    .await;
    assert_eq!(
        previous.authorization_id,
        status.authorization_id.expect("id")
    );
    let revoke_after = time(previous.revoke_after.as_ref().expect("revokeAfter"));
    // The restarted consumers come up: the previous token waits for that too.
    assert!(previous.restarted_at.is_some(), "{previous:?}");
    for (kind, name) in [
        ("Deployment", CONSUMER),
        ("StatefulSet", "consumer-db"),
        ("DaemonSet", "consumer-agent"),
    ] {
        roll_out(&world, &ns, kind, name).await;
    }

    let rotated = wait_rotated(&world, &ns, "release", 1).await;
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.expect("sampler");
    assert!(samples.taken > 50, "only {} samples", samples.taken);
    assert!(
        samples.dead.is_empty(),
        "the Secret held no live token at {:?}",
        samples.dead
    );
    assert_eq!(samples.held.len(), 2, "one switch: {:?}", samples.held);
    let (old_hash, revoked_at) = samples.revoked.first().cloned().expect("old revoked");
    assert_eq!(old_hash, samples.held[0]);
    assert!(
        revoked_at >= revoke_after,
        "the previous token went at {revoked_at}, before its revokeAfter {revoke_after}"
    );
    assert_eq!(
        writes_since(&world, seq),
        ["POST 201", "DELETE 204"],
        "one rotation costs one create and one delete"
    );
    let status = rotated.status.expect("status");
    assert_ne!(
        status.authorization_id,
        first.status.expect("status").authorization_id
    );
    let issued = time(status.issued_at.as_ref().expect("issuedAt"));
    assert_eq!(
        status.next_rotation_at.as_ref().map(time),
        Some(issued + jiff::SignedDuration::from_secs(15))
    );
    // The consumers restarted once, after the Secret switched and before the old token went.
    assert_eq!(samples.restarts.len(), 1, "{:?}", samples.restarts);
    assert_eq!(
        samples.restarts[0].1.as_ref(),
        Some(&samples.held[1]),
        "restarted while the Secret held the new token"
    );
    let restarted_at: Timestamp = samples.restarts[0].0.parse().expect("a time");
    assert!(
        restarted_at < revoked_at,
        "restarted before the old token went"
    );
    for (kind, name) in [
        ("statefulsets", "consumer-db"),
        ("daemonsets", "consumer-agent"),
    ] {
        let resource = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("apps", "v1", ""),
            kind,
        );
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(world.client.clone(), &ns, &resource);
        let object = api.get(name).await.expect("workload");
        assert!(
            object.data["spec"]["template"]["metadata"]["annotations"]["oauth.ghes.io/restartedAt"]
                .is_string(),
            "{kind}/{name} restarted"
        );
    }
    let reasons = world.event_reasons(&ns, "release").await;
    for reason in ["Rotated", "Restarted", "RestartTargetMissing"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
    world.expect_tokens(&ns, &[("release", &["gist"])]).await;
    world.cleanup().await;
}

#[tokio::test]
async fn the_rotate_annotation_rotates_once_per_value() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.app_secret(&ns).await;
    // Present from the start: the first token answers it, nothing rotates.
    world
        .apply_json(
            &ns,
            json!({
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
                "metadata": {
                    "name": "ci", "namespace": ns,
                    "annotations": {"oauth.ghes.io/rotate": "initial"},
                },
                "spec": {
                    "accountRef": {"name": "bot"},
                    "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}},
                    "scopes": ["repo"],
                },
            }),
        )
        .await;
    world.start_operator();
    let ready = world.wait_ready(&ns, "ci", "True").await;
    let status = ready.status.expect("status");
    assert_eq!(status.rotate_request.as_deref(), Some("initial"));
    assert_eq!(status.next_rotation_at, None, "nothing scheduled");
    let seq = world.ghes_seq();

    annotate(&world, &ns, "ci", "first").await;
    wait_rotated(&world, &ns, "ci", 1).await;
    // The same value again (and another change that makes the operator look): no rotation.
    world
        .patch_authorization(
            &ns,
            "ci",
            json!({"metadata": {"labels": {"touched": "yes"}}}),
        )
        .await;
    annotate(&world, &ns, "ci", "second").await;
    let rotated = wait_rotated(&world, &ns, "ci", 2).await;
    assert_eq!(
        rotated.status.expect("status").rotate_request.as_deref(),
        Some("second")
    );
    assert_eq!(
        writes_since(&world, seq),
        ["PUT 201", "DELETE 204", "PUT 201", "DELETE 204"],
        "two values, two rotations, two writes each"
    );
    world.expect_tokens(&ns, &[("ci", &["repo"])]).await;
    world.cleanup().await;
}

#[tokio::test]
async fn an_expiring_token_is_replaced_before_it_expires() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.ghes.update_settings(SettingsPatch {
        token_ttl_secs: Some(Some(20)),
        ..SettingsPatch::default()
    });
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    // No rotation settings: an expiring token is renewed anyway, at half its life here.
    world
        .authorization(
            &ns,
            "release",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    world.start_operator();
    let first = world.wait_ready(&ns, "release", "True").await;
    let status = first.status.expect("status");
    let expires = time(status.expires_at.as_ref().expect("expiresAt"));
    let next = time(status.next_rotation_at.as_ref().expect("nextRotationAt"));
    let issued = time(status.issued_at.as_ref().expect("issuedAt"));
    assert!(
        next < expires && next >= issued,
        "next rotation {next} between issue {issued} and expiry {expires}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(&world, &ns, "release", stop.clone());
    let rotated = wait_rotated(&world, &ns, "release", 1).await;
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.expect("sampler");
    assert!(
        samples.dead.is_empty(),
        "the Secret held a dead token at {:?}",
        samples.dead
    );
    let (_, revoked_at) = samples.revoked.first().cloned().expect("old token revoked");
    assert!(
        revoked_at < expires,
        "the old token was revoked at {revoked_at}, after its expiry {expires}"
    );
    let status = rotated.status.expect("status");
    assert!(status.expires_at.is_some());
    world.expect_tokens(&ns, &[("release", &["gist"])]).await;
    world.cleanup().await;
}

#[tokio::test]
async fn the_previous_token_outlives_the_rollout_of_the_restarted_workloads() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    // The default gracePeriod, 0s: the restarted pods still need the old token
    // until they run with the new one.
    release_with(
        &world,
        &ns,
        json!({"restartTargets": [{"kind": "Deployment", "name": CONSUMER}]}),
    )
    .await;
    workload(&world, &ns, "Deployment", CONSUMER).await;
    world.start_operator();
    world.wait_ready(&ns, "release", "True").await;
    roll_out(&world, &ns, "Deployment", CONSUMER).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(&world, &ns, "release", stop.clone());
    annotate(&world, &ns, "release", "roll-1").await;
    // The consumer restarts; its new pods take a while to come up.
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(world.client.clone(), &ns);
    wait_for("the consumer to restart", || async {
        let deployment = deployments.get_opt(CONSUMER).await.ok().flatten()?;
        deployment
            .spec
            .template
            .metadata?
            .annotations?
            .contains_key("oauth.ghes.io/restartedAt")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rolled_out = Timestamp::now();
    roll_out(&world, &ns, "Deployment", CONSUMER).await;
    wait_rotated(&world, &ns, "release", 1).await;
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.expect("sampler");
    assert!(samples.dead.is_empty(), "{:?}", samples.dead);
    let (_, revoked_at) = samples
        .revoked
        .first()
        .cloned()
        .expect("the old token revoked");
    assert!(
        revoked_at >= rolled_out,
        "the previous token went at {revoked_at}, before the restarted consumer was up at \
         {rolled_out}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_rollout_that_never_finishes_holds_the_previous_token_only_until_the_rollout_timeout() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    release_with(
        &world,
        &ns,
        json!({
            "restartTargets": [{"kind": "Deployment", "name": "stuck"}],
            "rolloutTimeout": "3s",
        }),
    )
    .await;
    // One pod that never comes up (no node runs it).
    world
        .apply_json(
            &ns,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "stuck", "namespace": ns},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "stuck"}},
                    "template": {
                        "metadata": {"labels": {"app": "stuck"}},
                        "spec": {"containers": [{"name": "main", "image": "registry.example/consumer:1"}]},
                    },
                },
            }),
        )
        .await;
    world.start_operator();
    let first = world.wait_ready(&ns, "release", "True").await;
    let first_id = first.status.and_then(|s| s.authorization_id).expect("id");
    annotate(&world, &ns, "release", "roll-1").await;
    let api = world.authorizations(&ns);
    let restarted_at = wait_for("the consumer restarted", || async {
        let previous = api
            .get_opt("release")
            .await
            .ok()
            .flatten()?
            .status?
            .previous?;
        previous.restarted_at.map(|t| t.0)
    })
    .await;
    wait_rotated(&world, &ns, "release", 1).await;
    let gone_at = Timestamp::now();
    assert!(
        world
            .ghes
            .state()
            .authorizations
            .iter()
            .all(|a| a.id as i64 != first_id),
        "the previous token is revoked"
    );
    assert!(
        gone_at.duration_since(restarted_at) >= jiff::SignedDuration::from_secs(3),
        "revoked {:?} after the restart, before the rolloutTimeout",
        gone_at.duration_since(restarted_at)
    );
    let reasons = world.event_reasons(&ns, "release").await;
    assert!(reasons.iter().any(|r| r == "RolloutTimeout"), "{reasons:?}");
    world.cleanup().await;
}

/// The day of the week (as the windows spell it) `days` days after today (UTC).
fn weekday_in(days: i64) -> &'static str {
    let date = Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .expect("a date")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    match date.weekday() {
        jiff::civil::Weekday::Monday => "Mon",
        jiff::civil::Weekday::Tuesday => "Tue",
        jiff::civil::Weekday::Wednesday => "Wed",
        jiff::civil::Weekday::Thursday => "Thu",
        jiff::civil::Weekday::Friday => "Fri",
        jiff::civil::Weekday::Saturday => "Sat",
        jiff::civil::Weekday::Sunday => "Sun",
    }
}

#[tokio::test]
async fn a_due_rotation_waits_for_its_window_and_an_expiring_token_does_not() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    // Open all day, three days from now only (UTC): never today, nor tomorrow.
    let later = json!({"allowed": [{"days": [weekday_in(3)], "start": "00:00", "end": "24:00"}]});
    world
        .authorization(
            &ns,
            "periodic",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"],
                   "rotation": {"period": "3s", "windows": later}}),
        )
        .await;
    world.start_operator();
    let first = world.wait_ready(&ns, "periodic", "True").await;
    let status = first.status.expect("status");
    let first_id = status.authorization_id.expect("an id");
    let next = time(status.next_rotation_at.as_ref().expect("nextRotationAt"));
    let issued = time(status.issued_at.as_ref().expect("issuedAt"));
    // Due 3 s after issue, but the window opens in two days or more.
    assert!(
        next.duration_since(issued) > jiff::SignedDuration::from_hours(40),
        "next rotation {next}, issued {issued}"
    );
    let reason = status.next_rotation_reason.expect("nextRotationReason");
    assert!(reason.contains("in a rotation window"), "{reason}");
    // Well past the period: no rotation.
    let mark = world.ghes_seq();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let held = world.wait_ready(&ns, "periodic", "True").await;
    assert_eq!(held.status.and_then(|s| s.authorization_id), Some(first_id));
    assert_eq!(world.ghes_writes_since(mark), Vec::<String>::new());
    // The rotate annotation acts at once, windows or not.
    world
        .patch_authorization(
            &ns,
            "periodic",
            json!({"metadata": {"annotations": {"oauth.ghes.io/rotate": "now"}}}),
        )
        .await;
    wait_rotated(&world, &ns, "periodic", 1).await;

    // An expiring token (20 s lifetime, renewed at half) whose window opens only in three
    // days: the expiry wins, and it is replaced before it expires.
    world.ghes.update_settings(SettingsPatch {
        token_ttl_secs: Some(Some(20)),
        ..SettingsPatch::default()
    });
    world
        .authorization(
            &ns,
            "expiring",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"],
                   "rotation": {"windows": later}}),
        )
        .await;
    let first = world.wait_ready(&ns, "expiring", "True").await;
    let status = first.status.expect("status");
    let expires = time(status.expires_at.as_ref().expect("expiresAt"));
    let next = time(status.next_rotation_at.as_ref().expect("nextRotationAt"));
    assert!(next < expires, "next rotation {next}, expiry {expires}");
    let reason = status.next_rotation_reason.expect("nextRotationReason");
    assert!(reason.contains("the expiry wins"), "{reason}");
    let rotated = wait_rotated(&world, &ns, "expiring", 1).await;
    assert!(
        time(
            rotated
                .status
                .as_ref()
                .and_then(|s| s.issued_at.as_ref())
                .expect("issuedAt")
        ) < expires
    );
    world.cleanup().await;
}
