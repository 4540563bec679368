//! A namespace being deleted, over HTTP: the answers are those a real kube-apiserver 1.26 with
//! its kube-controller-manager gave to the same requests.

use std::time::{Duration, Instant};

use http::{Method, Request};
use kube::client::Body;
use kube_testkit::TestApiServer;
use serde_json::{Value, json};

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

async fn call(
    client: &kube::Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .header("Accept", JSON)
        .body(Body::from(body))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn post(client: &kube::Client, path: &str, body: Value) -> (u16, Value) {
    call(client, Method::POST, path, JSON, Some(body)).await
}

async fn get(client: &kube::Client, path: &str) -> (u16, Value) {
    call(client, Method::GET, path, JSON, None).await
}

/// Polls `path` until `done` holds of its answer (at most 5 s).
async fn until(client: &kube::Client, path: &str, done: impl Fn(u16, &Value) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let (code, body) = get(client, path).await;
        if done(code, &body) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path} still answers {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn configmap(metadata: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"a": "b"}})
}

fn core_event(name: &str, ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns, "name": "held"},
        "reason": "Test", "message": "m", "type": "Normal", "count": 1,
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z",
        "source": {"component": "test"}})
}

fn event(name: &str, ns: &str) -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": name},
        "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "example.com/test",
        "reportingInstance": "test-1", "action": "Testing", "reason": "Test", "note": "m",
        "type": "Normal",
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns, "name": "held"}})
}

/// The Status of a create refused in the terminating namespace `t1`.
fn refused(kind: &str, group: Option<&str>, name: &str) -> Value {
    let resource = match group {
        Some(group) => format!("{kind}.{group}"),
        None => kind.to_owned(),
    };
    let mut details = json!({"name": name, "kind": kind, "causes": [{"reason": "NamespaceTerminating",
        "message": "namespace t1 is being terminated", "field": "metadata.namespace"}]});
    if let Some(group) = group {
        details["group"] = json!(group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{resource} \"{name}\" is forbidden: unable to create new content in namespace t1 because it is being terminated"),
        "reason": "Forbidden", "details": details, "code": 403})
}

fn conditions(namespace: &Value) -> Vec<Value> {
    namespace["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut c| {
            assert!(c["lastTransitionTime"].is_string(), "{c}");
            c.as_object_mut().unwrap().remove("lastTransitionTime");
            c
        })
        .collect()
}

#[tokio::test]
async fn a_terminating_namespace_answers_like_a_real_one() {
    let server = TestApiServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = server.client("admin").unwrap();
    let cms = "/api/v1/namespaces/t1/configmaps";
    assert_eq!(
        post(&client, "/api/v1/namespaces", namespace("t1")).await.0,
        201
    );
    let held = configmap(json!({"name": "held", "finalizers": ["example.com/hold"]}));
    assert_eq!(post(&client, cms, held).await.0, 201);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "stringData": {"k": "v"}});
    assert_eq!(
        post(&client, "/api/v1/namespaces/t1/secrets", secret)
            .await
            .0,
        201
    );
    let (code, deleted) = call(&client, Method::DELETE, "/api/v1/namespaces/t1", JSON, None).await;
    assert_eq!(
        (code, &deleted["status"]),
        (200, &json!({"phase": "Terminating"}))
    );

    // (a) (b) (c): creates are refused, Events included, whatever their name.
    let answer = post(&client, cms, configmap(json!({"name": "new"}))).await;
    assert_eq!(answer, (403, refused("configmaps", None, "new")));
    let answer = post(&client, cms, configmap(json!({"generateName": "gen-"}))).await;
    assert_eq!(answer, (403, refused("configmaps", None, "gen-")));
    let answer = post(
        &client,
        "/api/v1/namespaces/t1/events",
        core_event("ev1", "t1"),
    )
    .await;
    assert_eq!(answer, (403, refused("events", None, "ev1")));
    let path = "/apis/events.k8s.io/v1/namespaces/t1/events";
    let answer = post(&client, path, event("ev2", "t1")).await;
    assert_eq!(
        answer,
        (403, refused("events", Some("events.k8s.io"), "ev2"))
    );
    // A server-side apply that would create the object is a create.
    let path = format!("{cms}/applied?fieldManager=test");
    let applied = configmap(json!({"name": "applied"}));
    let answer = call(&client, Method::PATCH, &path, APPLY, Some(applied)).await;
    assert_eq!(answer, (403, refused("configmaps", None, "applied")));
    // The namespace cannot be created again while it goes.
    let (code, status) = post(&client, "/api/v1/namespaces", namespace("t1")).await;
    assert_eq!(
        (code, status["reason"].as_str(), status["message"].as_str()),
        (
            409,
            Some("AlreadyExists"),
            Some("object is being deleted: namespaces \"t1\" already exists")
        )
    );

    // (d) Existing objects can still change.
    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    let (code, patched) = call(
        &client,
        Method::PATCH,
        &format!("{cms}/held"),
        MERGE,
        Some(labels),
    )
    .await;
    assert_eq!(
        (code, &patched["metadata"]["labels"]),
        (200, &json!({"x": "y"}))
    );

    // (f) The Secret goes; the ConfigMap waits on its finalizer, and the namespace on it.
    until(&client, "/api/v1/namespaces/t1/secrets/s", |code, _| {
        code == 404
    })
    .await;
    until(&client, &format!("{cms}/held"), |_, held| {
        held["metadata"]["deletionTimestamp"].is_string()
    })
    .await;
    // (e)
    until(&client, "/api/v1/namespaces/t1", |_, ns| {
        conditions(ns).len() == 5
    })
    .await;
    let (code, ns) = get(&client, "/api/v1/namespaces/t1").await;
    assert_eq!((code, &ns["status"]["phase"]), (200, &json!("Terminating")));
    assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_eq!(
        conditions(&ns),
        [
            json!({"type": "NamespaceDeletionDiscoveryFailure", "status": "False",
                "reason": "ResourcesDiscovered", "message": "All resources successfully discovered"}),
            json!({"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False",
                "reason": "ParsedGroupVersions", "message": "All legacy kube types successfully parsed"}),
            json!({"type": "NamespaceDeletionContentFailure", "status": "False",
                "reason": "ContentDeleted",
                "message": "All content successfully deleted, may be waiting on finalization"}),
            json!({"type": "NamespaceContentRemaining", "status": "True",
                "reason": "SomeResourcesRemain",
                "message": "Some resources are remaining: configmaps. has 1 resource instances"}),
            json!({"type": "NamespaceFinalizersRemaining", "status": "True",
                "reason": "SomeFinalizersRemain",
                "message": "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"}),
        ]
    );

    // (g) Its last finalizer gone, the ConfigMap goes, then the namespace.
    let release = json!({"metadata": {"finalizers": null}});
    let path = format!("{cms}/held");
    let (code, released) = call(&client, Method::PATCH, &path, MERGE, Some(release)).await;
    // The answer is the update that emptied the finalizers, of an object now gone.
    assert_eq!(code, 200);
    assert_eq!(released["metadata"].get("finalizers"), None);
    assert!(released["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(get(&client, &path).await.0, 404);
    until(&client, "/api/v1/namespaces/t1", |code, _| code == 404).await;
}

#[tokio::test]
async fn a_namespace_of_a_few_hundred_objects_empties_within_a_second() {
    let server = TestApiServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = server.client("admin").unwrap();
    assert_eq!(
        post(&client, "/api/v1/namespaces", namespace("big"))
            .await
            .0,
        201
    );
    for i in 0..100 {
        let name = format!("o{i}");
        let cm = configmap(json!({"name": name}));
        assert_eq!(
            post(&client, "/api/v1/namespaces/big/configmaps", cm)
                .await
                .0,
            201
        );
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}});
        assert_eq!(
            post(&client, "/api/v1/namespaces/big/secrets", secret)
                .await
                .0,
            201
        );
        let ev = core_event(&name, "big");
        assert_eq!(
            post(&client, "/api/v1/namespaces/big/events", ev).await.0,
            201
        );
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name}});
        let path = "/apis/coordination.k8s.io/v1/namespaces/big/leases";
        assert_eq!(post(&client, path, lease).await.0, 201);
    }
    let (code, _) = call(
        &client,
        Method::DELETE,
        "/api/v1/namespaces/big",
        JSON,
        None,
    )
    .await;
    assert_eq!(code, 200);
    let took = until(&client, "/api/v1/namespaces/big", |code, _| code == 404).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
