//! Counting the operator's own Kubernetes API requests by verb and resource, from the client
//! side: a layer on the kube client's service stack, so that the figures hold against any API
//! server (`kubernetes_requests_total`, and `bench`'s calls per token).

use std::sync::Arc;

use http::{Method, Request};
use kube::client::Body;

use crate::metrics::Metrics;

/// The resources the operator uses; any other is counted as `other`, so that the label's
/// values stay a fixed set.
const RESOURCES: &[&str] = &[
    "authorizations",
    "accounts",
    "clusteraccounts",
    "secrets",
    "events",
    "leases",
    "namespaces",
    "configmaps",
    "deployments",
    "statefulsets",
    "daemonsets",
    "customresourcedefinitions",
    "selfsubjectaccessreviews",
];

/// The verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
/// `deletecollection`) and resource (with `/status` for the status subresource) of a request
/// to the Kubernetes API; `other` for a path that names no resource the operator uses.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    // `namespaces/NS/RESOURCE/...`, or a cluster-scoped `RESOURCE/...` (a Namespace itself
    // included).
    let (resource, name, sub) = match rest {
        ["namespaces", _namespace, resource, tail @ ..] => {
            (Some(*resource), tail.first().copied(), tail.get(1).copied())
        }
        [resource, tail @ ..] => (Some(*resource), tail.first().copied(), tail.get(1).copied()),
        [] => (None, None, None),
    };
    let known = resource.and_then(|r| RESOURCES.iter().find(|known| **known == r).copied());
    let resource = match (known, sub) {
        (Some(resource), Some("status")) => format!("{resource}/status"),
        (Some(resource), _) => resource.to_owned(),
        (None, _) => "other".to_owned(),
    };
    let watch = query.is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    let verb = match (method.as_str(), name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

/// The layer that counts each request the client sends into `metrics`.
pub fn layer(
    metrics: Arc<Metrics>,
) -> tower::util::MapRequestLayer<impl FnMut(Request<Body>) -> Request<Body> + Clone> {
    tower::util::MapRequestLayer::new(move |request: Request<Body>| {
        let (verb, resource) = classify(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        );
        metrics.count_kubernetes_request(verb, resource);
        request
    })
}

/// A client for `config` whose requests are counted into `metrics`.
pub fn client(config: kube::Config, metrics: Arc<Metrics>) -> kube::Result<kube::Client> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer(metrics))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        let cases = [
            (
                Method::GET,
                "/apis/oauth.ghes.io/v1alpha1/namespaces/a/authorizations/x",
                None,
                ("get", "authorizations"),
            ),
            (
                Method::PATCH,
                "/apis/oauth.ghes.io/v1alpha1/namespaces/a/authorizations/x/status",
                None,
                ("patch", "authorizations/status"),
            ),
            (
                Method::GET,
                "/apis/oauth.ghes.io/v1alpha1/authorizations",
                Some("watch=true&resourceVersion=5"),
                ("watch", "authorizations"),
            ),
            (
                Method::GET,
                "/api/v1/secrets",
                Some("limit=500"),
                ("list", "secrets"),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/a/secrets",
                None,
                ("create", "secrets"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/kube-system",
                None,
                ("get", "namespaces"),
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/a/events",
                None,
                ("create", "events"),
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/l",
                None,
                ("update", "leases"),
            ),
            (Method::GET, "/version", None, ("list", "other")),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods/p",
                None,
                ("get", "other"),
            ),
        ];
        for (method, path, query, (verb, resource)) in cases {
            assert_eq!(
                classify(&method, path, query),
                (verb, resource.to_owned()),
                "{method} {path}"
            );
        }
    }
}
