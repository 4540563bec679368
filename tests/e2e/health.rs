//! Health as GitOps tools read it: kstatus (what Flux computes; its rules ported from
//! `sigs.k8s.io/cli-utils/pkg/kstatus/status` below) for each state an Authorization can be in.

use ghes_emulator::Fault;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::*;

/// kstatus's verdict on an object.
#[derive(Debug, PartialEq, Eq)]
enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

/// The generic rules kstatus applies to a custom resource: deletion, the observed generation,
/// then the `Reconciling` and `Stalled` conditions; anything else is `Current`.
fn kstatus(object: &Value) -> KStatus {
    if !object["metadata"]["deletionTimestamp"].is_null() {
        return KStatus::Terminating;
    }
    let generation = object["metadata"]["generation"].as_i64();
    let observed = object["status"]["observedGeneration"].as_i64();
    if observed.is_some() && observed != generation {
        return KStatus::InProgress;
    }
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let holds = |type_: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    };
    if holds("Reconciling") {
        KStatus::InProgress
    } else if holds("Stalled") {
        KStatus::Failed
    } else {
        KStatus::Current
    }
}

/// The Authorization as JSON, once `check` holds for it.
async fn wait_object<F>(world: &World, ns: &str, name: &str, what: &str, check: F) -> Value
where
    F: Fn(&Value) -> bool,
{
    wait_for(what, || async {
        let object = world.authorizations(ns).get(name).await.ok()?;
        let value = serde_json::to_value(&object).ok()?;
        check(&value).then_some(value)
    })
    .await
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test]
async fn kstatus_reads_every_state_right() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    // A typo in accountRef: a configuration error, waiting for a human.
    world
        .authorization(
            &ns,
            "typo",
            json!({"accountRef": {"name": "nope"}, "scopes": ["repo"]}),
        )
        .await;
    world
        .authorization(
            &ns,
            "release",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    world.start_operator();
    let typo = wait_object(&world, &ns, "typo", "typo Stalled", |o| {
        condition(o, "Stalled").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(kstatus(&typo), KStatus::Failed, "{typo}");
    assert_eq!(condition(&typo, "Ready").expect("Ready")["status"], "False");

    let release = wait_object(&world, &ns, "release", "release Ready", |o| {
        condition(o, "Ready").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(kstatus(&release), KStatus::Current, "{release}");

    // GHES goes down, then the spec changes: the new generation has no token matching it.
    world.ghes.inject(Fault::status(503)).expect("fault");
    world
        .authorizations(&ns)
        .patch(
            "release",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"scopes": ["gist", "read:user"]}})),
        )
        .await
        .expect("spec change");
    let failing = wait_object(&world, &ns, "release", "release retried", |o| {
        let generation = o["metadata"]["generation"].as_i64();
        condition(o, "Ready").is_some_and(|c| {
            c["status"] == "False" && c["observedGeneration"].as_i64() == generation
        })
    })
    .await;
    assert_eq!(kstatus(&failing), KStatus::InProgress, "{failing}");
    assert_eq!(
        condition(&failing, "Reconciling").expect("Reconciling")["status"],
        "True"
    );

    // GHES comes back: healthy again, at the new generation.
    world.ghes.clear_faults();
    let healed = wait_object(&world, &ns, "release", "release Ready again", |o| {
        let generation = o["metadata"]["generation"].as_i64();
        condition(o, "Ready").is_some_and(|c| {
            c["status"] == "True" && c["observedGeneration"].as_i64() == generation
        })
    })
    .await;
    assert_eq!(kstatus(&healed), KStatus::Current, "{healed}");
    assert!(condition(&healed, "Reconciling").is_none());
    world.cleanup().await;
}
