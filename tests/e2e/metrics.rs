//! The admin server of a running operator: `/readyz` answers 200 once the caches synced, and
//! `/metrics` counts what issuing one token took — a successful reconcile, one GHES PUT, one
//! token issued — without a name, namespace or id in any label.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::json;

use crate::harness::*;

/// `GET http://{admin}{path}`: status, content type and body.
async fn get(admin: SocketAddr, path: &str) -> Option<(u16, String, String)> {
    let response = reqwest::get(format!("http://{admin}{path}")).await.ok()?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Some((status, content_type, response.text().await.ok()?))
}

/// Every sample of a scrape, by `name{labels}`.
async fn scrape(admin: SocketAddr) -> HashMap<String, f64> {
    let (status, content_type, body) = get(admin, "/metrics").await.expect("scrape /metrics");
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    samples(&body)
}

/// Every sample of a scrape, by `name{labels}`; `None` while the admin server does not answer.
pub(crate) async fn scrape_quietly(admin: SocketAddr) -> Option<HashMap<String, f64>> {
    let (status, _, body) = get(admin, "/metrics").await?;
    (status == 200).then(|| samples(&body))
}

/// The samples of an OpenMetrics text, by `name{labels}`.
fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Authorization reconciles the operator at `admin` has finished, whatever their result
/// (`None` while its admin server does not answer yet).
pub(crate) async fn authorization_reconciles(admin: SocketAddr) -> Option<f64> {
    let (status, _, body) = get(admin, "/metrics").await?;
    (status == 200).then(|| {
        samples(&body)
            .into_iter()
            .filter(|(series, _)| {
                series.starts_with(
                    r#"ghes_oauth_operator_reconciles_total{controller="authorization","#,
                )
            })
            .map(|(_, value)| value)
            .sum()
    })
}

fn sample(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

const RECONCILED: &str = r#"ghes_oauth_operator_reconciles_total{controller="authorization",result="success",reason=""}"#;
const PUT_CREATED: &str = r#"ghes_oauth_operator_ghes_requests_total{operation="get-or-create-authorization-for-app-and-fingerprint",status="201"}"#;
const ISSUED: &str = "ghes_oauth_operator_tokens_issued_total";
const DURATIONS: &str =
    r#"ghes_oauth_operator_reconcile_duration_seconds_count{controller="authorization"}"#;

#[tokio::test]
async fn metrics_count_the_reconcile_the_put_and_the_issued_token() {
    let mut world = World::new(&["metrics"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.app_secret(&ns).await;
    // Without the per-token gauges, no label names a resource (asserted at the end).
    let admin = world.start_operator_with_admin_and(&["--token-metrics=false"]);

    let (_, _, ready) = wait_for("/readyz 200", || async {
        get(admin, "/readyz")
            .await
            .filter(|(status, ..)| *status == 200)
    })
    .await;
    assert!(ready.contains("caches synced"), "{ready}");
    let livez = get(admin, "/livez").await.expect("/livez");
    assert_eq!(livez.0, 200);

    let before = scrape(admin).await;
    assert_eq!(sample(&before, ISSUED), 0.0);
    assert_eq!(sample(&before, PUT_CREATED), 0.0);
    world
        .authorization(
            &ns,
            "ci",
            json!({
                "accountRef": {"kind": "Account", "name": "bot"},
                "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}},
                "scopes": ["repo"],
                "secret": {"name": "ci-token"},
            }),
        )
        .await;
    world.wait_ready(&ns, "ci", "True").await;

    // The reconcile is counted when it returns, a moment after its status write.
    let after = wait_for("the reconcile to be counted", || async {
        let after = scrape(admin).await;
        (sample(&after, RECONCILED) > sample(&before, RECONCILED)).then_some(after)
    })
    .await;
    assert_eq!(
        sample(&after, PUT_CREATED) - sample(&before, PUT_CREATED),
        1.0
    );
    assert_eq!(sample(&after, ISSUED) - sample(&before, ISSUED), 1.0);
    assert!(sample(&after, DURATIONS) > sample(&before, DURATIONS));
    assert_eq!(
        sample(&after, "ghes_oauth_operator_leader"),
        1.0,
        "without leader election the instance runs the controllers"
    );
    // A configuration error ends its reconcile with Ok (it waits for a change), and is counted
    // as one, with its reason.
    world
        .authorization(
            &ns,
            "typo",
            json!({"accountRef": {"name": "nope"}, "scopes": ["repo"]}),
        )
        .await;
    world.wait_ready(&ns, "typo", "False").await;
    const CONFIG_ERROR: &str = r#"ghes_oauth_operator_reconciles_total{controller="authorization",result="config_error",reason="AccountNotFound"}"#;
    let after = wait_for("the configuration error to be counted", || async {
        let after = scrape(admin).await;
        (sample(&after, CONFIG_ERROR) >= 1.0).then_some(after)
    })
    .await;
    assert!(
        after
            .keys()
            .all(|series| !series.contains(&ns) && !series.contains("\"ci\"")),
        "no namespace or name in any label: {:?}",
        after.keys().collect::<Vec<_>>()
    );
    world.cleanup().await;
}

/// The per-token gauges (on by default), scraped: each Authorization's Ready, next rotation
/// and expiry, as its status says them.
#[tokio::test]
async fn per_token_gauges_show_each_authorizations_status() {
    let mut world = World::new(&["tokens"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    let admin = world.start_operator_with_admin();
    world
        .authorization(
            &ns,
            "rotated",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"],
                   "rotation": {"period": "720h"}}),
        )
        .await;
    world
        .authorization(
            &ns,
            "typo",
            json!({"accountRef": {"name": "nope"}, "scopes": ["gist"]}),
        )
        .await;
    let rotated = world.wait_ready(&ns, "rotated", "True").await;
    world.wait_ready(&ns, "typo", "False").await;
    let next_rotation = rotated
        .status
        .and_then(|s| s.next_rotation_at)
        .expect("status.nextRotationAt")
        .0
        .as_second() as f64;
    let series = |name: &str, object: &str| {
        format!(r#"ghes_oauth_operator_{name}{{namespace="{ns}",name="{object}"}}"#)
    };
    // The gauges are read from the watch cache at each scrape: the status is there at once.
    let scraped = wait_for("both Authorizations in the per-token gauges", || async {
        let scraped = scrape(admin).await;
        (scraped.get(&series("token_ready", "rotated")) == Some(&1.0)
            && scraped.get(&series("token_ready", "typo")) == Some(&0.0))
        .then_some(scraped)
    })
    .await;
    assert_eq!(
        scraped.get(&series("token_next_rotation_timestamp_seconds", "rotated")),
        Some(&next_rotation)
    );
    // Nothing scheduled, nothing that expires: no series rather than a made-up value.
    assert!(!scraped.contains_key(&series("token_next_rotation_timestamp_seconds", "typo")));
    assert!(!scraped.contains_key(&series("token_expiration_timestamp_seconds", "rotated")));
    world.cleanup().await;
}

const CANDIDATES: &str = r#"ghes_oauth_operator_prune_candidates{kind="authorization"}"#;

#[tokio::test]
async fn a_deleted_account_is_forgotten() {
    let mut world = World::new(&["forget"]).await;
    let ns = world.ns(0).to_owned();
    seed(&world, "laptop", None, std::time::Duration::from_secs(7200));
    world
        .account_with(
            &ns,
            "bot",
            USER,
            PASSWORD,
            None,
            serde_json::json!({"prune": {"mode": "DryRun"}}),
        )
        .await;
    let admin = world.start_operator_with_admin();
    wait_for("/readyz 200", || async {
        get(admin, "/readyz")
            .await
            .filter(|(status, ..)| *status == 200)
    })
    .await;
    wait_for("one DryRun candidate in /metrics", || async {
        (sample(&scrape(admin).await, CANDIDATES) == 1.0).then_some(())
    })
    .await;
    kube::Api::<ghes_oauth_operator::api::Account>::namespaced(world.client.clone(), &ns)
        .delete("bot", &Default::default())
        .await
        .expect("delete the Account");
    // Its client, listing and counts leave the operator: the gauge no longer counts them.
    wait_for("the deleted account's candidates gone", || async {
        (sample(&scrape(admin).await, CANDIDATES) == 0.0).then_some(())
    })
    .await;
    world.cleanup().await;
}
