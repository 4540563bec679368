//! The Grafana dashboard and the alerting rules the chart ships: every query parses as PromQL,
//! names only metrics the operator exports (from its own registry), and together they cover what
//! an operator of the operator watches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use ghes_oauth_operator::ghes::{Operation, RequestObserver};
use ghes_oauth_operator::metrics::{
    ControllerKind, Metrics, PruneKind, ReconcileResult, TokenChange, TokenSample, TokenSource,
};
use promql_parser::parser::{self, Expr};
use serde_json::Value;

/// Series Prometheus itself makes for every target, which the rules may use.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// What `__SELECTOR__` becomes in the chart's alerts (as the chart's default selector).
const SELECTOR: &str = r#"job="ghes-oauth-operator-metrics", namespace="ghes-system""#;

fn chart_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("charts/ghes-oauth-operator")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// One Authorization for the per-token gauges.
struct OneToken;

impl TokenSource for OneToken {
    fn for_each(&self, each: &mut dyn FnMut(TokenSample<'_>)) {
        each(TokenSample {
            namespace: "team-a",
            name: "ci",
            ready: true,
            expires_at: Some(1_800_000_000),
            next_rotation_at: Some(1_790_000_000),
        });
    }
}

/// The metric families of the registry, by name, with their type. A labelled family shows in
/// the encoding once it has a series, so every recording method is called once first.
fn families() -> BTreeMap<String, String> {
    let metrics = Metrics::new();
    metrics.reconciled(
        ControllerKind::Authorization,
        ReconcileResult::Success,
        "",
        Duration::from_millis(5),
    );
    metrics.on_response(Operation::ListAuthorizations, Some(200));
    metrics.on_rate_limit_wait(Operation::ListAuthorizations, Duration::from_secs(1));
    metrics.count_token(TokenChange::Issued);
    metrics.prune_deleted(PruneKind::Grant);
    metrics.count_abandoned("RevokeTimeout", 1);
    metrics.set_leader(true);
    metrics.set_shard_held(0, true);
    metrics.report_sample(Some(0), Default::default());
    metrics.set_token_source(Some(0), std::sync::Arc::new(OneToken));
    let text = metrics.encode().expect("encode the registry");
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// The sample names a family exports, as queries name them.
fn sample_names(family: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!("{family}_total")],
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{family}{suffix}"))
            .collect(),
        _ => vec![family.to_owned()],
    }
}

/// Every sample name the operator exports, mapped to its family.
fn exported() -> BTreeMap<String, String> {
    families()
        .iter()
        .flat_map(|(family, kind)| {
            sample_names(family, kind)
                .into_iter()
                .map(move |name| (name, family.clone()))
        })
        .collect()
}

/// The metric names an expression selects.
fn metric_names(expr: &Expr, names: &mut BTreeSet<String>) {
    match expr {
        Expr::Aggregate(e) => {
            metric_names(&e.expr, names);
            if let Some(param) = &e.param {
                metric_names(param, names);
            }
        }
        Expr::Unary(e) => metric_names(&e.expr, names),
        Expr::Binary(e) => {
            metric_names(&e.lhs, names);
            metric_names(&e.rhs, names);
        }
        Expr::Paren(e) => metric_names(&e.expr, names),
        Expr::Subquery(e) => metric_names(&e.expr, names),
        Expr::VectorSelector(vs) => {
            names.insert(
                vs.name
                    .clone()
                    .expect("selectors name their metric (no {__name__=~...})"),
            );
        }
        Expr::MatrixSelector(ms) => {
            names.insert(ms.vs.name.clone().expect("selectors name their metric"));
        }
        Expr::Call(call) => call
            .args
            .args
            .iter()
            .for_each(|arg| metric_names(arg, names)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Parses `query` and returns the metrics it names, failing with `what` on a parse error.
fn parse(what: &str, query: &str) -> BTreeSet<String> {
    let expr = parser::parse(query).unwrap_or_else(|e| panic!("{what}: {e}\n{query}"));
    let mut names = BTreeSet::new();
    metric_names(&expr, &mut names);
    assert!(!names.is_empty(), "{what} selects no metric: {query}");
    names
}

/// Names in `used` that neither the operator nor Prometheus exports.
fn unknown(used: &BTreeSet<String>, exported: &BTreeMap<String, String>) -> Vec<String> {
    used.iter()
        .filter(|name| !exported.contains_key(*name) && !PROMETHEUS_SERIES.contains(&name.as_str()))
        .cloned()
        .collect()
}

/// Every `expr` of the dashboard's panels (rows included) with Grafana's variables replaced.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        if let Some(children) = panel["panels"].as_array() {
            stack.extend(children);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target's expr");
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$namespace", "ghes-system")
                .replace("$job", "ghes-oauth-operator-metrics");
            assert!(!expr.contains('$'), "an unknown Grafana variable: {expr}");
            queries.push((panel["title"].as_str().unwrap_or("").to_owned(), expr));
        }
    }
    queries
}

#[test]
fn the_dashboard_queries_parse_and_name_only_exported_metrics() {
    let dashboard: Value =
        serde_json::from_str(&chart_file("dashboards/ghes-oauth-operator.json")).unwrap();
    let exported = exported();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "{} queries", queries.len());
    let mut shown = BTreeSet::new();
    for (title, query) in &queries {
        let names = parse(&format!("panel {title:?}"), query);
        let unknown = unknown(&names, &exported);
        assert!(
            unknown.is_empty(),
            "panel {title:?} names metrics the operator does not export: {unknown:?}\n{query}"
        );
        shown.extend(names.iter().filter_map(|name| exported.get(name)).cloned());
    }
    // Every family the operator exports is on the dashboard: reconciles by result, GHES
    // requests by status, rate-limit waits, tokens, pruning, Ready ratio, leader, ...
    let missing: Vec<_> = families()
        .into_keys()
        .filter(|family| !shown.contains(family))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard does not show {missing:?}"
    );
    // Its variables are the ones the queries use.
    let variables: BTreeSet<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        variables,
        BTreeSet::from(["datasource", "job", "namespace"])
    );
    // Panel ids are unique, as Grafana requires.
    let ids: Vec<_> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), ids.iter().collect::<BTreeSet<_>>().len());
}

#[test]
fn the_example_dashboard_is_the_charts() {
    let example = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("examples/monitoring/grafana-dashboard.json"),
    )
    .unwrap();
    assert!(
        example == chart_file("dashboards/ghes-oauth-operator.json"),
        "cp charts/ghes-oauth-operator/dashboards/ghes-oauth-operator.json \
         examples/monitoring/grafana-dashboard.json"
    );
}

#[test]
fn the_alerts_parse_name_only_exported_metrics_and_cover_the_failures() {
    let text = chart_file("files/alerts.yaml");
    assert!(text.contains("__SELECTOR__"));
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&text.replace("__SELECTOR__", SELECTOR)).unwrap();
    let exported = exported();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            let expr = rule["expr"].as_str().unwrap();
            let names = parse(&format!("alert {name}"), expr);
            let unknown = unknown(&names, &exported);
            assert!(
                unknown.is_empty(),
                "{name} names metrics the operator does not export: {unknown:?}"
            );
            // Each selects the release's series, not every job's.
            assert!(
                expr.contains(SELECTOR),
                "{name} ignores the selector: {expr}"
            );
            let severity = rule["labels"]["severity"].as_str().unwrap_or("");
            assert!(
                ["critical", "warning"].contains(&severity),
                "{name}: severity {severity:?}"
            );
            let r#for = rule["for"].as_str().unwrap_or("");
            assert!(
                promql_parser::util::parse_duration(r#for).is_ok(),
                "{name}: for {for:?}"
            );
            for key in ["summary", "description"] {
                assert!(
                    rule["annotations"][key]
                        .as_str()
                        .is_some_and(|t| !t.is_empty()),
                    "{name} lacks {key}"
                );
            }
            assert!(alerts.insert(name.clone()), "{name} twice");
        }
    }
    // Operator down, no leader, Ready ratio below 1, GHES errors, rate limits, prune
    // refusals, tokens expiring before their rotation, tokens a deletion left on GHES.
    let expected = [
        "GhesOAuthOperatorDown",
        "GhesOAuthOperatorNoLeader",
        "GhesOAuthOperatorAuthorizationsNotReady",
        "GhesOAuthOperatorGhesErrors",
        "GhesOAuthOperatorRateLimited",
        "GhesOAuthOperatorPruneRefused",
        "GhesOAuthOperatorTokenRotationOverdue",
        "GhesOAuthOperatorTokenExpired",
        "GhesOAuthOperatorTokensAbandoned",
    ];
    assert_eq!(alerts, expected.iter().map(|s| s.to_string()).collect());
}

#[test]
fn an_unknown_metric_or_a_broken_query_is_caught() {
    // The checks above would fail on these.
    let exported = exported();
    let names = parse("typo", "sum(rate(ghes_oauth_operator_reconcile_total[5m]))");
    assert_eq!(
        unknown(&names, &exported),
        ["ghes_oauth_operator_reconcile_total"]
    );
    assert!(parser::parse("sum(rate(ghes_oauth_operator_reconciles_total[5m])").is_err());
    assert!(exported.contains_key("ghes_oauth_operator_reconciles_total"));
    assert!(exported.contains_key("ghes_oauth_operator_reconcile_duration_seconds_bucket"));
}
