//! The commands for people — `status`, `rotate`, `check api` — run as a user would, through a
//! kubeconfig of their own, against the test server and a running operator.

use std::process::Output;

use serde_json::{Value, json};

use crate::harness::*;

/// Runs the binary with `args` and the person's kubeconfig.
pub(crate) async fn ctl(world: &World, args: &[&str]) -> Output {
    ctl_as(world.user_kubeconfig(), args).await
}

/// Runs the binary with `args` and `kubeconfig`.
pub(crate) async fn ctl_as(kubeconfig: std::path::PathBuf, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env_remove("POD_NAMESPACE")
            .output()
            .expect("run the binary")
    });
    tokio::time::timeout(WAIT, run)
        .await
        .expect("the command ends")
        .expect("the command's thread")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn status_shows_ready_tokens_and_why_others_are_not() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .authorization(
            &ns,
            "release",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"], "rotation": {"period": "720h"}}),
        )
        .await;
    world
        .authorization(
            &ns,
            "orphan",
            json!({"accountRef": {"name": "nobody"}, "scopes": ["repo"]}),
        )
        .await;
    world.start_operator();
    let release = world.wait_ready(&ns, "release", "True").await;
    world.wait_ready(&ns, "orphan", "False").await;
    let last_eight = release
        .status
        .and_then(|s| s.token_last_eight)
        .expect("last eight");

    let output = ctl(&world, &["status", "-n", &ns]).await;
    assert!(output.status.success(), "{output:?}");
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("NAME  "), "{table}");
    assert!(lines[0].contains("NEXT-ROTATION") && lines[0].contains("LATEST-WARNING"));
    let orphan = lines[1];
    assert!(orphan.starts_with("orphan "), "{table}");
    assert!(
        orphan.contains("False") && orphan.contains("AccountNotFound"),
        "{orphan}"
    );
    let release = lines[2];
    assert!(release.starts_with("release "), "{table}");
    assert!(
        release.contains("True") && release.contains("TokenReady"),
        "{release}"
    );
    assert!(release.contains(&format!("…{last_eight}")), "{release}");
    assert!(release.contains("Account/bot") && release.contains("gist"));
    assert!(
        release.contains("in 29d"),
        "next rotation in 30 days: {release}"
    );

    let output = ctl(&world, &["status", "orphan", "-n", &ns, "-o", "json"]).await;
    assert!(output.status.success(), "{output:?}");
    let rows: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(rows[0]["name"], "orphan");
    assert_eq!(rows[0]["ready"], "False");
    assert_eq!(rows[0]["latestWarning"]["reason"], "AccountNotFound");
    assert!(
        rows[0]["latestWarning"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nobody")),
        "{rows}"
    );

    let output = ctl(&world, &["status", "-A", "-o", "yaml"]).await;
    assert!(output.status.success(), "{output:?}");
    let rows: Value = serde_yaml::from_slice(&output.stdout).expect("YAML");
    assert!(
        rows.as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["namespace"] == ns.as_str())),
        "{rows}"
    );

    let output = ctl(&world, &["status", "missing", "-n", &ns]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"missing\" not found"));
    world.cleanup().await;
}

#[tokio::test]
async fn rotate_asks_and_waits_for_a_new_token() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    for name in ["one", "two"] {
        world
            .apply_json(
                &ns,
                json!({
                    "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
                    "metadata": {"name": name, "namespace": ns, "labels": {"team": "a"}},
                    "spec": {"accountRef": {"name": "bot"}, "scopes": ["gist"]},
                }),
            )
            .await;
    }
    world.start_operator();
    world.wait_ready(&ns, "one", "True").await;
    world.wait_ready(&ns, "two", "True").await;
    let seq = world.ghes_seq();

    let output = ctl(&world, &["rotate", "one", "-n", &ns, "--wait"]).await;
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "{ns}/one: rotation requested (oauth.ghes.io/rotate="
        )) && text.contains(&format!("{ns}/one: rotated, the Secret holds token …")),
        "{text}"
    );
    crate::rotation::wait_rotated(&world, &ns, "one", 1).await;

    let output = ctl(&world, &["rotate", "-l", "team=a", "-n", &ns, "--wait"]).await;
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert_eq!(text.matches("rotation requested").count(), 2, "{text}");
    crate::rotation::wait_rotated(&world, &ns, "one", 2).await;
    crate::rotation::wait_rotated(&world, &ns, "two", 1).await;
    let writes = world.ghes_writes_since(seq).len();
    assert_eq!(writes, 6, "three rotations, two writes each");
    world
        .expect_tokens(&ns, &[("one", &["gist"]), ("two", &["gist"])])
        .await;

    let output = ctl(&world, &["rotate", "-n", &ns]).await;
    assert_eq!(
        output.status.code(),
        Some(2),
        "names, -l or --all are required"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn check_api_passes_once_the_crds_are_served_and_the_lease_is_held() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let output = ctl(&world, &["check", "api", "--skip-lease"]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("CRDs served: oauth.ghes.io/v1alpha1"));

    let output = ctl(&world, &["check", "api", "--lease-namespace", &ns]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no Lease"),
        "{output:?}"
    );

    world.start_operator_with(&["--leader-elect", "--leader-election-namespace", &ns]);
    let output = ctl(
        &world,
        &["check", "api", "--lease-namespace", &ns, "--wait", "30"],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("held by"), "{output:?}");
    world.cleanup().await;
}
