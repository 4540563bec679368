//! Crash points: the operator built with the `failpoints` feature aborts at a named step (as a
//! crash or an OOM kill would), the test restarts it, and checks what a user would: the
//! resource converges, its Secret holds a live token, and GHES holds no token that nothing
//! accounts for. `scripts/test` builds with the feature; the README's list of steps is
//! generated from `ghes_oauth_operator::failpoint::POINTS`.

use std::fmt::Write as _;

#[test]
fn the_readme_lists_every_crash_point() {
    let mut list = String::new();
    for (point, instant) in ghes_oauth_operator::failpoint::POINTS {
        let _ = writeln!(list, "- `{point}`: {instant}");
    }
    crate::generated::check_section(
        "README.md",
        "crash-points",
        "cargo test --test e2e the_readme_lists_every_crash_point",
        &list,
    );
}

#[cfg(feature = "failpoints")]
mod with_failpoints {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;

    use kube::api::DeleteParams;
    use serde_json::json;

    use crate::harness::*;

    /// SIGABRT: what `std::process::abort` ends with.
    const SIGABRT: i32 = 6;

    fn personal(scopes: &[&str]) -> serde_json::Value {
        json!({"accountRef": {"name": "bot"}, "scopes": scopes})
    }

    fn app(scopes: &[&str]) -> serde_json::Value {
        json!({
            "accountRef": {"name": "bot"},
            "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}},
            "scopes": scopes,
        })
    }

    /// One namespace with the Account `bot` and the app's client secret; no operator yet.
    async fn world() -> (World, String) {
        let world = World::new(&["a"]).await;
        let ns = world.ns(0).to_owned();
        world.account(&ns, "bot", USER, PASSWORD, None).await;
        world.app_secret(&ns).await;
        (world, ns)
    }

    fn arm(world: &mut World, point: &str) {
        world.start_operator_env(&[], &[("FAILPOINTS", point)]);
    }

    /// Waits for the armed operator to abort at its point, then starts a plain one.
    async fn crash_and_restart(world: &mut World, point: &str) {
        let status = world.wait_operator_exit(WAIT).await;
        assert_eq!(
            status.signal(),
            Some(SIGABRT),
            "the operator should abort at {point}, it ended with {status:?}"
        );
        world.start_operator();
    }

    fn creates(world: &World) -> usize {
        world
            .ghes_calls_since(0)
            .iter()
            .filter(|call| {
                call.starts_with("POST /api/v3/authorizations ") || call.starts_with("PUT ")
            })
            .count()
    }

    /// A fresh personal Authorization, crashed at `point` on its way to Ready.
    async fn personal_first_issue(point: &str) {
        let (mut world, ns) = world().await;
        arm(&mut world, point);
        world
            .authorization(&ns, "release", personal(&["gist"]))
            .await;
        crash_and_restart(&mut world, point).await;
        world.wait_ready(&ns, "release", "True").await;
        world.expect_tokens(&ns, &[("release", &["gist"])]).await;
        world.cleanup().await;
    }

    #[tokio::test]
    async fn crash_after_recording_the_intent() {
        personal_first_issue("issue.intent-recorded").await;
    }

    #[tokio::test]
    async fn crash_after_ghes_created_a_personal_token() {
        personal_first_issue("issue.created").await;
    }

    #[tokio::test]
    async fn crash_after_ghes_created_an_app_token() {
        let (mut world, ns) = world().await;
        arm(&mut world, "issue.created");
        world.authorization(&ns, "ci", app(&["repo"])).await;
        crash_and_restart(&mut world, "issue.created").await;
        world.wait_ready(&ns, "ci", "True").await;
        world.expect_tokens(&ns, &[("ci", &["repo"])]).await;
        world.cleanup().await;
    }

    #[tokio::test]
    async fn crash_after_the_secret_is_written_adopts_the_token() {
        let (mut world, ns) = world().await;
        arm(&mut world, "secret.written");
        world
            .authorization(&ns, "release", personal(&["gist"]))
            .await;
        crash_and_restart(&mut world, "secret.written").await;
        world.wait_ready(&ns, "release", "True").await;
        world.expect_tokens(&ns, &[("release", &["gist"])]).await;
        assert_eq!(
            creates(&world),
            1,
            "the token in the Secret is adopted, not replaced: {:?}",
            world.ghes_calls_since(0)
        );
        world.cleanup().await;
    }

    /// Ready first with a plain operator, then a restart armed at `point`.
    async fn ready_then_arm(point: &str, spec: serde_json::Value) -> (World, String) {
        let (mut world, ns) = world().await;
        world.authorization(&ns, "release", spec).await;
        world.start_operator();
        world.wait_ready(&ns, "release", "True").await;
        world.kill_operator();
        arm(&mut world, point);
        (world, ns)
    }

    #[tokio::test]
    async fn crash_between_revoking_a_lost_token_and_its_replacement() {
        let (mut world, ns) = ready_then_arm("reissue.revoked", personal(&["gist"])).await;
        world
            .secrets(&ns)
            .delete("release", &DeleteParams::default())
            .await
            .expect("delete the Secret");
        crash_and_restart(&mut world, "reissue.revoked").await;
        wait_for("a new token in a new Secret", || async {
            world.token(&ns, "release", "token").await
        })
        .await;
        world.wait_ready(&ns, "release", "True").await;
        world.expect_tokens(&ns, &[("release", &["gist"])]).await;
        world.cleanup().await;
    }

    /// Ready with a plain operator, then armed at `point`, then a rotation asked for: after the
    /// crash and a restart, that one rotation completes (the counter is 1, never 2), the
    /// Secret holds the new token and GHES holds nothing else.
    async fn crash_in_rotation(point: &str) {
        let (mut world, ns) = ready_then_arm(point, personal(&["gist"])).await;
        crate::rotation::annotate(&world, &ns, "release", "now").await;
        crash_and_restart(&mut world, point).await;
        crate::rotation::wait_rotated(&world, &ns, "release", 1).await;
        world.wait_ready(&ns, "release", "True").await;
        world.expect_tokens(&ns, &[("release", &["gist"])]).await;
        world.cleanup().await;
    }

    #[tokio::test]
    async fn crash_after_recording_a_rotation() {
        crash_in_rotation("rotate.recorded").await;
    }

    #[tokio::test]
    async fn crash_after_ghes_created_the_rotated_token() {
        crash_in_rotation("issue.created").await;
    }

    #[tokio::test]
    async fn crash_after_the_secret_switched_to_the_rotated_token() {
        crash_in_rotation("secret.written").await;
    }

    #[tokio::test]
    async fn crash_after_the_grace_period_started() {
        crash_in_rotation("rotate.switched").await;
    }

    #[tokio::test]
    async fn crash_after_revoking_the_previous_token() {
        crash_in_rotation("rotate.revoked").await;
    }

    #[tokio::test]
    async fn crash_after_a_scope_change_reached_ghes() {
        let (mut world, ns) = ready_then_arm("update.patched", personal(&["gist"])).await;
        world
            .authorization(&ns, "release", personal(&["gist", "repo"]))
            .await;
        crash_and_restart(&mut world, "update.patched").await;
        world.wait_ready(&ns, "release", "True").await;
        world
            .expect_tokens(&ns, &[("release", &["gist", "repo"])])
            .await;
        world.cleanup().await;
    }

    #[tokio::test]
    async fn crash_after_revoking_a_deleted_resources_token() {
        let (mut world, ns) = ready_then_arm("delete.revoked", personal(&["gist"])).await;
        world
            .authorizations(&ns)
            .delete("release", &DeleteParams::default())
            .await
            .expect("delete the Authorization");
        crash_and_restart(&mut world, "delete.revoked").await;
        world.wait_gone(&ns, "release").await;
        world.expect_tokens(&ns, &[]).await;
        world.cleanup().await;
    }

    #[tokio::test]
    async fn crash_after_a_prune_deletion() {
        let (mut world, ns) = world().await;
        seed(&world, "made by hand", None, Duration::from_secs(7200));
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
        world.authorization(&ns, "ci", app(&["repo"])).await;
        arm(&mut world, "prune.deleted");
        crash_and_restart(&mut world, "prune.deleted").await;
        world.wait_ready(&ns, "ci", "True").await;
        world.expect_tokens(&ns, &[("ci", &["repo"])]).await;
        world.cleanup().await;
    }
}
