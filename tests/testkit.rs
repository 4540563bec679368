//! The Kubernetes API test server against a real `kube::Client`: what the operator relies on
//! behaves as on a real API server (status codes, messages, resourceVersions, generations,
//! finalizers, garbage collection, server-side apply, watches, events, leases).

use std::time::Duration;

use futures::{Stream, StreamExt};
use ghes_oauth_operator::api::{self, Authorization, AuthorizationStatus};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Secret};
use k8s_openapi::api::events::v1::Event as EventsV1Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::{PartialObjectMeta, Status};
use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use kube_testkit::{FaultSpec, RunningApiServer, TestApiServer};
use serde_json::{Value, json};

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn start() -> (RunningApiServer, Client) {
    start_with(TestApiServer::new()).await
}

async fn start_with(builder: TestApiServer) -> (RunningApiServer, Client) {
    let server = builder.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = server.client("tester").unwrap();
    (server, client)
}

/// Registers the operator's CRDs by POSTing them, and waits until they are established.
async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
        let name = crd.name_any();
        within(
            "the CRD to be established",
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap();
    }
}

async fn namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// A ready server with the CRDs and a namespace.
async fn cluster(ns: &str) -> (RunningApiServer, Client) {
    let (server, client) = start().await;
    install_crds(&client).await;
    namespace(&client, ns).await;
    (server, client)
}

fn authorization(name: &str, spec: Value) -> Authorization {
    serde_json::from_value(json!({
        "apiVersion": "oauth.ghes.io/v1alpha1",
        "kind": "Authorization",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn dynamic(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::erase::<Authorization>(&()),
    )
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Waits until `get` returns 404.
async fn gone<K>(api: &Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    within("the object to be gone", async {
        loop {
            match api.get_opt(name).await.unwrap() {
                None => return,
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
}

/// The next item of a stream, bounded.
async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    within("the next stream item", stream.next())
        .await
        .expect("the stream ended")
}

#[tokio::test]
async fn authorization_crud_after_registering_the_crds() {
    let (server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");

    let created = auths
        .create(
            &PostParams::default(),
            &authorization(
                "ci-bot",
                json!({"accountRef": {"name": "bot"}, "scopes": ["repo"]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let fetched = auths.get("ci-bot").await.unwrap();
    assert_eq!(fetched.spec.scopes, vec!["repo".to_owned()]);
    assert_eq!(
        auths
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let mut changed = fetched.clone();
    changed.spec.note = Some("CI bot".into());
    let replaced = auths
        .replace("ci-bot", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.spec.note.as_deref(), Some("CI bot"));
    assert_ne!(replaced.resource_version(), fetched.resource_version());

    let duplicate = auths
        .create(
            &PostParams::default(),
            &authorization("ci-bot", json!({"accountRef": {"name": "bot"}})),
        )
        .await;
    let status = api_error(duplicate);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(
        status.message,
        "authorizations.oauth.ghes.io \"ci-bot\" already exists"
    );

    let deleted = auths
        .delete("ci-bot", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        deleted.is_left(),
        "custom resources answer a delete with the object"
    );
    let status = api_error(auths.get("ci-bot").await);
    assert_eq!(status.code, 404);
    assert_eq!(
        status.message,
        "authorizations.oauth.ghes.io \"ci-bot\" not found"
    );

    let verbs: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.resource == "authorizations")
        .map(|r| r.verb.clone())
        .collect();
    assert_eq!(
        verbs,
        ["create", "get", "list", "update", "create", "delete", "get"]
    );
    assert!(server.requests().iter().all(|r| r.user == "tester"));
}

#[tokio::test]
async fn schema_rejects_a_bad_enum_and_pattern_naming_the_field() {
    let (_server, client) = cluster("team-a").await;
    let auths = dynamic(&client, "team-a");
    let ar = ApiResource::erase::<Authorization>(&());

    let bad_policy = DynamicObject::new("x", &ar).data(json!({
        "spec": {"accountRef": {"name": "bot"}, "deletionPolicy": "Later"}
    }));
    let status = api_error(auths.create(&PostParams::default(), &bad_policy).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "Authorization.oauth.ghes.io \"x\" is invalid: spec.deletionPolicy: Unsupported value: \"Later\": supported values: \"Delete\", \"Orphan\""
    );

    let bad_scope = DynamicObject::new("y", &ar).data(json!({
        "spec": {"accountRef": {"name": "bot"}, "scopes": ["BAD SCOPE"]}
    }));
    let status = api_error(auths.create(&PostParams::default(), &bad_scope).await);
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("spec.scopes[0]: Invalid value: \"BAD SCOPE\": spec.scopes[0] in body should match '^[a-z_]+(:[a-z_]+)?$'"),
        "{}",
        status.message
    );
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    assert_eq!(causes[0].field, "spec.scopes[0]");
    assert_eq!(causes[0].reason, "FieldValueInvalid");

    let missing = DynamicObject::new("z", &ar).data(json!({"spec": {}}));
    let status = api_error(auths.create(&PostParams::default(), &missing).await);
    assert!(
        status.message.ends_with("spec.accountRef: Required value"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn defaults_are_applied_and_unknown_fields_pruned() {
    let (_server, client) = cluster("team-a").await;
    let auths = dynamic(&client, "team-a");
    let ar = ApiResource::erase::<Authorization>(&());
    let obj = DynamicObject::new("minimal", &ar).data(json!({
        "spec": {"accountRef": {"name": "bot"}, "bogus": true},
        "extra": {"whatever": 1}
    }));
    let created = auths.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.data["spec"]["deletionPolicy"], "Delete");
    assert_eq!(created.data["spec"]["accountRef"]["kind"], "Account");
    assert_eq!(created.data["spec"]["secret"]["key"], "token");
    assert!(created.data["spec"].get("bogus").is_none());
    assert!(created.data.get("extra").is_none());

    // Strict field validation refuses what Warn (the default) prunes.
    let strict_create = client
        .request::<Value>(
            http::Request::post("/apis/oauth.ghes.io/v1alpha1/namespaces/team-a/authorizations?fieldValidation=Strict")
                .header("Content-Type", "application/json")
                .body(
                    serde_json::to_vec(&json!({"apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
                        "metadata": {"name": "strict"}, "spec": {"accountRef": {"name": "bot"}, "bogus": 1}}))
                    .unwrap(),
                )
                .unwrap(),
        )
        .await;
    let status = api_error(strict_create);
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "strict decoding error: unknown field \"spec.bogus\""
    );
}

#[tokio::test]
async fn status_is_a_subresource_and_generation_follows_the_spec() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");

    let mut with_status = authorization("a", json!({"accountRef": {"name": "bot"}}));
    with_status.status = Some(AuthorizationStatus {
        authorization_id: Some(7),
        ..AuthorizationStatus::default()
    });
    let created = auths
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(
        created.status.is_none(),
        "create ignores status when it is a subresource"
    );
    assert_eq!(created.metadata.generation, Some(1));

    let status_patch = json!({"status": {"authorizationId": 42, "observedGeneration": 1}});
    let patched = auths
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .unwrap();
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.authorization_id),
        Some(42)
    );
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );

    // The status endpoint changes nothing but status.
    let sneaky = json!({"spec": {"note": "via status"}, "status": {"authorizationId": 43}});
    let patched = auths
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    assert_eq!(patched.spec.note, None);
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.authorization_id),
        Some(43)
    );

    // The main endpoint cannot change status; labels do not bump the generation.
    let main = json!({"metadata": {"labels": {"team": "a"}}, "status": {"authorizationId": 1}});
    let patched = auths
        .patch("a", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.authorization_id),
        Some(43)
    );
    assert_eq!(patched.metadata.generation, Some(1));

    let spec = json!({"spec": {"note": "changed"}});
    let patched = auths
        .patch("a", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));

    // A write that changes nothing is no write at all.
    let again = auths
        .patch("a", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), patched.resource_version());

    // Status is validated against the schema too.
    let bad = json!({"status": {"authorizationId": "not a number"}});
    let status = api_error(
        auths
            .patch_status("a", &PatchParams::default(), &Patch::Merge(&bad))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("status.authorizationId"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn server_side_apply_removes_dropped_fields_and_reports_conflicts() {
    let (_server, client) = cluster("team-a").await;
    let auths = dynamic(&client, "team-a");
    let apply = |manager: &str| PatchParams::apply(manager);
    let config = |spec: Value| {
        json!({"apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": "ssa"}, "spec": spec})
    };

    let first = config(
        json!({"accountRef": {"name": "bot"}, "note": "one", "noteUrl": "https://x.example"}),
    );
    let created = auths
        .patch("ssa", &apply("alice"), &Patch::Apply(&first))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["noteUrl"], "https://x.example");
    let managed = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("alice"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));

    // alice stops applying noteUrl: it is removed.
    let second = config(json!({"accountRef": {"name": "bot"}, "note": "one"}));
    let applied = auths
        .patch("ssa", &apply("alice"), &Patch::Apply(&second))
        .await
        .unwrap();
    assert!(
        applied.data["spec"].get("noteUrl").is_none(),
        "{:?}",
        applied.data
    );

    // bob changing alice's note conflicts.
    let bobs = config(json!({"accountRef": {"name": "bot"}, "note": "two"}));
    let status = api_error(
        auths
            .patch("ssa", &apply("bob"), &Patch::Apply(&bobs))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.note"
    );

    // With force, bob takes the field over; alice's next apply then conflicts.
    let forced = auths
        .patch("ssa", &apply("bob").force(), &Patch::Apply(&bobs))
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["note"], "two");
    let status = api_error(
        auths
            .patch("ssa", &apply("alice"), &Patch::Apply(&second))
            .await,
    );
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"bob\": .spec.note"
    );

    // An apply without a field manager is refused.
    let status = api_error(
        auths
            .patch("ssa", &PatchParams::default(), &Patch::Apply(&second))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("fieldManager: Required value"),
        "{}",
        status.message
    );

    // YAML bodies work too (kubectl sends YAML).
    let yaml = "apiVersion: oauth.ghes.io/v1alpha1\nkind: Authorization\nmetadata:\n  name: from-yaml\nspec:\n  accountRef:\n    name: bot\n";
    let created = client
        .request::<Value>(
            http::Request::patch(
                "/apis/oauth.ghes.io/v1alpha1/namespaces/team-a/authorizations/from-yaml?fieldManager=kubectl",
            )
            .header("Content-Type", "application/apply-patch+yaml")
            .body(yaml.as_bytes().to_vec())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created["spec"]["deletionPolicy"], "Delete");
}

#[tokio::test]
async fn status_apply_updates_only_status() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    auths
        .create(
            &PostParams::default(),
            &authorization("s", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    let apply = PatchParams::apply("operator").force();
    let status = json!({"apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
        "status": {"authorizationId": 5, "fingerprint": "fp"}});
    let patched = auths
        .patch_status("s", &apply, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(
        patched
            .status
            .as_ref()
            .and_then(|s| s.fingerprint.as_deref()),
        Some("fp")
    );
    // The operator stops sending the fingerprint: server-side apply removes it.
    let status = json!({"apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
        "status": {"authorizationId": 5}});
    let patched = auths
        .patch_status("s", &apply, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.fingerprint.clone()),
        None
    );
    assert_eq!(patched.metadata.generation, Some(1));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    auths
        .create(
            &PostParams::default(),
            &authorization("f", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();

    // The finalizer is added the way kube::runtime::finalizer adds it.
    let add: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": [api::FINALIZER]}
    ]))
    .unwrap();
    auths
        .patch("f", &PatchParams::default(), &Patch::Json::<()>(add))
        .await
        .unwrap();

    let deleted = auths.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = deleted
        .left()
        .expect("a pending deletion answers with the object");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(
        marked.metadata.generation,
        Some(2),
        "marking for deletion bumps the generation"
    );
    let still_there = auths.get("f").await.unwrap();
    assert!(still_there.metadata.deletion_timestamp.is_some());

    // No new finalizers on a deleting object.
    let more = json!({"metadata": {"finalizers": [api::FINALIZER, "example.com/other"]}});
    let status = api_error(
        auths
            .patch("f", &PatchParams::default(), &Patch::Merge(&more))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted"),
        "{}",
        status.message
    );

    // A stale test fails like on the real server.
    let wrong: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "someone.else/finalizer"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))
    .unwrap();
    let status = api_error(
        auths
            .patch("f", &PatchParams::default(), &Patch::Json::<()>(wrong))
            .await,
    );
    assert_eq!(status.code, 422);

    let remove: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": api::FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))
    .unwrap();
    auths
        .patch("f", &PatchParams::default(), &Patch::Json::<()>(remove))
        .await
        .unwrap();
    assert!(auths.get_opt("f").await.unwrap().is_none());
}

fn owned_secret(name: &str, owner: &Authorization) -> Secret {
    let mut secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "ghes-oauth-operator"}},
        "stringData": {"token": "gho_secret"},
    }))
    .unwrap();
    let mut reference: OwnerReference = owner.controller_owner_ref(&()).unwrap();
    reference.block_owner_deletion = Some(true);
    secret.metadata.owner_references = Some(vec![reference]);
    secret
}

#[tokio::test]
async fn owned_secret_is_garbage_collected_with_its_owner() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");

    let owner = auths
        .create(
            &PostParams::default(),
            &authorization("gc", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    let secret = secrets
        .create(&PostParams::default(), &owned_secret("gc", &owner))
        .await
        .unwrap();
    assert_eq!(
        secret
            .data
            .as_ref()
            .and_then(|d| d.get("token"))
            .map(|b| b.0.clone()),
        Some(b"gho_secret".to_vec()),
        "stringData is folded into data"
    );
    assert!(secret.string_data.is_none());

    auths.delete("gc", &DeleteParams::default()).await.unwrap();
    gone(&secrets, "gc").await;

    // Orphan propagation keeps the dependent and drops its owner reference.
    let owner = auths
        .create(
            &PostParams::default(),
            &authorization("orphan", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &owned_secret("orphan", &owner))
        .await
        .unwrap();
    auths
        .delete("orphan", &DeleteParams::orphan())
        .await
        .unwrap();
    gone(&auths, "orphan").await;
    let kept = secrets.get("orphan").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn a_stale_resource_version_conflicts() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    let created = auths
        .create(
            &PostParams::default(),
            &authorization("rv", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    let mut first = created.clone();
    first.spec.note = Some("first".into());
    auths
        .replace("rv", &PostParams::default(), &first)
        .await
        .unwrap();

    let mut stale = created.clone();
    stale.spec.note = Some("stale".into());
    let status = api_error(auths.replace("rv", &PostParams::default(), &stale).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on authorizations.oauth.ghes.io \"rv\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Custom resources need a resourceVersion on update.
    let mut unconditional = created;
    unconditional.metadata.resource_version = None;
    let status = api_error(
        auths
            .replace("rv", &PostParams::default(), &unconditional)
            .await,
    );
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn lists_select_by_label_and_paginate() {
    let (_server, client) = start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, labels) in [
        ("a", json!({"app": "x", "tier": "web"})),
        ("b", json!({"app": "x", "tier": "db"})),
        ("c", json!({"app": "y"})),
        ("d", json!({})),
    ] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        maps.create(&PostParams::default(), &cm).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items.iter().map(ResourceExt::name_any).collect()
    };
    let select = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(maps.list(&select("app=x")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        names(maps.list(&select("app!=x")).await.unwrap()),
        ["c", "d"]
    );
    assert_eq!(
        names(maps.list(&select("tier in (web,db),app==x")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        names(maps.list(&select("tier notin (web)")).await.unwrap()),
        ["b", "c", "d"]
    );
    assert_eq!(names(maps.list(&select("tier")).await.unwrap()), ["a", "b"]);
    assert_eq!(
        names(maps.list(&select("!tier")).await.unwrap()),
        ["c", "d"]
    );
    assert_eq!(
        names(
            maps.list(&ListParams::default().fields("metadata.name=c"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    let status = api_error(maps.list(&ListParams::default().fields("data.x=1")).await);
    assert_eq!(status.code, 400);

    let page = maps.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.metadata.remaining_item_count, Some(1));
    let token = page.metadata.continue_.clone().unwrap();
    // A change after the first page does not show up in the next (a consistent snapshot).
    maps.delete("d", &DeleteParams::default()).await.unwrap();
    let rest = maps
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(rest), ["d"]);
    // With a selector: a continue token while more match, no count.
    let page = maps.list(&select("tier").limit(1)).await.unwrap();
    assert_eq!(page.metadata.remaining_item_count, None);
    let token = page.metadata.continue_.clone().expect("more match");
    assert_eq!(names(page), ["a"]);
    let rest = maps
        .list(&select("tier").limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.metadata.continue_, None, "nothing more matches");
    assert_eq!(names(rest), ["b"]);
}

#[tokio::test]
async fn a_watcher_sees_added_modified_and_deleted() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    let mut stream = Box::pin(watcher(auths.clone(), watcher::Config::default()));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::Init
    ));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::InitDone
    ));

    auths
        .create(
            &PostParams::default(),
            &authorization("w", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    let patch = json!({"spec": {"note": "changed"}});
    auths
        .patch("w", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    auths.delete("w", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut stream).await.unwrap() {
            watcher::Event::Apply(a) => {
                seen.push(format!("apply:{}", a.spec.note.unwrap_or_default()))
            }
            watcher::Event::Delete(a) => seen.push(format!("delete:{}", a.name_any())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["apply:", "apply:changed", "delete:w"]);
}

#[tokio::test]
async fn a_watch_from_an_expired_version_gets_410_and_the_watcher_relists() {
    let (server, client) = start_with(TestApiServer::new().history_limit(5)).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let churn = |prefix: &'static str| {
        let maps = maps.clone();
        async move {
            for i in 0..10 {
                let cm: ConfigMap =
                    serde_json::from_value(json!({"metadata": {"name": format!("{prefix}-{i}")}}))
                        .unwrap();
                maps.create(&PostParams::default(), &cm).await.unwrap();
            }
        }
    };
    churn("early").await;

    // A raw watch from a version older than the kept history: 200, then an ERROR event.
    let mut events = maps
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    match next(&mut events).await.unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version: 1 ("),
                "{}",
                status.message
            );
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }

    // A watcher whose version expires while it reconnects relists.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let config = watcher::Config::default().timeout(1).disable_bookmarks();
    let mut stream = Box::pin(watcher(secrets.clone(), config));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::Init
    ));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::InitDone
    ));
    server.clear_requests();
    churn("late").await;
    // The watcher's next watch starts from the version of its list, which the churn pushed out
    // of the kept history: 410, and the watcher starts over with a new list.
    let mut saw_expired = false;
    within("the watcher to relist", async {
        loop {
            match stream.next().await {
                Some(Err(watcher::Error::WatchError(status))) if status.code == 410 => {
                    saw_expired = true
                }
                Some(Ok(watcher::Event::InitDone)) if saw_expired => return,
                Some(_) => {}
                None => panic!("the watcher ended"),
            }
        }
    })
    .await;
    let lists = server
        .requests()
        .iter()
        .filter(|r| r.resource == "secrets" && r.verb == "list")
        .count();
    assert!(lists >= 1, "the watcher relisted");
}

#[tokio::test]
async fn the_event_recorder_publishes_events_k8s_io_events() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    let owner = auths
        .create(
            &PostParams::default(),
            &authorization("ev", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ghes-oauth-operator".into(),
            instance: None,
        },
    );
    let event = RecorderEvent {
        type_: EventType::Normal,
        reason: "Created".into(),
        note: Some("created the authorization on GHES".into()),
        action: "Create".into(),
        secondary: None,
    };
    let reference = owner.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let events: Api<EventsV1Event> = Api::namespaced(client.clone(), "team-a");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.len(),
        1,
        "the repeat is a series on the same event"
    );
    let stored = &list.items[0];
    assert_eq!(stored.reason.as_deref(), Some("Created"));
    assert_eq!(stored.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        stored.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("ev")
    );

    // The same event through the core API, as `kubectl get events` shows it.
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "team-a");
    let core_list = core.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        core_list.items[0].message.as_deref(),
        Some("created the authorization on GHES")
    );
    assert_eq!(
        core_list.items[0].involved_object.name.as_deref(),
        Some("ev")
    );

    // events.k8s.io validation: an event needs a reporting controller, action and time.
    let bad: EventsV1Event = serde_json::from_value(
        json!({"metadata": {"name": "bad"}, "reason": "X", "type": "Normal"}),
    )
    .unwrap();
    let status = api_error(events.create(&PostParams::default(), &bad).await);
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("eventTime: Required value"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn a_lease_update_needs_the_current_resource_version() {
    let (_server, client) = start().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("ghes-oauth-operator".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-a".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime::from(jiff::Timestamp::now())),
            renew_time: Some(MicroTime::from(jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    assert!(
        created.metadata.generation.is_none(),
        "built-in kinds here have no generation"
    );

    let mut renewed = created.clone();
    if let Some(spec) = renewed.spec.as_mut() {
        spec.renew_time = Some(MicroTime::from(jiff::Timestamp::now()));
        spec.lease_transitions = Some(1);
    }
    let updated = leases
        .replace("ghes-oauth-operator", &PostParams::default(), &renewed)
        .await
        .unwrap();
    assert_eq!(
        updated.spec.as_ref().and_then(|s| s.lease_transitions),
        Some(1)
    );

    // Another replica still holding the old version loses.
    let mut rival = created;
    if let Some(spec) = rival.spec.as_mut() {
        spec.holder_identity = Some("pod-b".into());
    }
    let status = api_error(
        leases
            .replace("ghes-oauth-operator", &PostParams::default(), &rival)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"ghes-oauth-operator\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let bad = json!({"spec": {"leaseDurationSeconds": 0}});
    let status = api_error(
        leases
            .patch(
                "ghes-oauth-operator",
                &PatchParams::default(),
                &Patch::Merge(&bad),
            )
            .await,
    );
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn a_metadata_watch_of_labelled_secrets() {
    let (server, client) = start().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let selector = api::labels::managed_by_selector();
    // kube 5's metadata watch: an `Api<PartialObjectMeta<K>>` makes metadata-only requests.
    let metadata: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), "default");
    let mut stream = Box::pin(watcher(
        metadata,
        watcher::Config::default().labels(&selector),
    ));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::Init
    ));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::InitDone
    ));

    let make = |name: &str, labelled: bool| -> Secret {
        let labels = if labelled {
            api::labels::managed_by_labels()
        } else {
            Default::default()
        };
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": labels}, "stringData": {"token": "t"}}),
        )
        .unwrap()
    };
    secrets
        .create(&PostParams::default(), &make("other", false))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &make("ours", true))
        .await
        .unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(meta) => {
            assert_eq!(meta.name_any(), "ours");
            assert_eq!(
                meta.types.as_ref().map(|t| t.kind.as_str()),
                Some("PartialObjectMetadata")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // Losing the label is a deletion for this watch.
    let unlabel = json!({"metadata": {"labels": null}});
    secrets
        .patch("ours", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Delete(meta) => assert_eq!(meta.name_any(), "ours"),
        other => panic!("unexpected {other:?}"),
    }
    let watches = server
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch" && r.resource == "secrets")
        .collect::<Vec<_>>();
    assert!(
        watches[0]
            .query
            .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dghes-oauth-operator")
    );
    assert!(watches[0].query.contains("allowWatchBookmarks=true"));
}

#[tokio::test]
async fn namespaces_gate_creation_and_terminate_with_their_contents() {
    let (_server, client) = start().await;
    let maps_in = |ns: &str| -> Api<ConfigMap> { Api::namespaced(client.clone(), ns) };
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();

    let status = api_error(maps_in("missing").create(&PostParams::default(), &cm).await);
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "namespaces \"missing\" not found")
    );

    namespace(&client, "doomed").await;
    maps_in("doomed")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    let held = maps_in("doomed")
        .create(&PostParams::default(), &held)
        .await
        .unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let terminating = namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = terminating
        .left()
        .expect("a namespace deletion answers with the namespace");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );

    let other: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "new"}})).unwrap();
    let status = api_error(
        maps_in("doomed")
            .create(&PostParams::default(), &other)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "configmaps \"new\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );

    gone(&maps_in("doomed"), "c").await;
    // The namespace controller has deleted the held object too (it waits on its finalizer),
    // and the namespace waits for it.
    within("the held object marked for deletion", async {
        while maps_in("doomed")
            .get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(namespaces.get_opt("doomed").await.unwrap().is_some());
    // Objects in a terminating namespace can still be updated (here: released).
    let release =
        json!({"metadata": {"finalizers": null, "resourceVersion": held.resource_version()}});
    let released = maps_in("doomed")
        .patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await;
    let stale = api_error(released);
    assert_eq!(
        stale.code, 409,
        "held was modified when the namespace controller marked it"
    );
    let release = json!({"metadata": {"finalizers": null}});
    maps_in("doomed")
        .patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    gone(&namespaces, "doomed").await;
}

#[tokio::test]
async fn discovery_and_a_kubeconfig_file_work_like_a_cluster() {
    let (server, client) = start().await;
    install_crds(&client).await;

    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "oauth.ghes.io",
            "v1alpha1",
            "Authorization",
        ))
        .expect("Authorization is discoverable");
    assert_eq!(resource.plural, "authorizations");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(
        discovery
            .resolve_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Secret"))
            .is_some()
    );
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");

    // An ordinary kubeconfig file, loaded the way the operator binary loads one.
    let dir = std::env::temp_dir().join(format!("testkit-kubeconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    server.write_kubeconfig(&path, "operator").unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let from_file = Client::try_from(config).unwrap();
    let namespaces: Api<Namespace> = Api::all(from_file);
    assert!(namespaces.get("default").await.is_ok());
    assert_eq!(
        server.requests().last().map(|r| r.user.as_str()),
        Some("operator")
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Unknown resources are a 404 Status.
    let unknown = ApiResource {
        group: "nope.example.com".into(),
        version: "v1".into(),
        api_version: "nope.example.com/v1".into(),
        kind: "Nope".into(),
        plural: "nopes".into(),
    };
    let nopes: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &unknown);
    let status = api_error(nopes.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        Api::<CustomResourceDefinition>::all(client)
            .get("authorizations.oauth.ghes.io")
            .await
            .unwrap()
            .spec
            .names
            .kind,
        "Authorization"
    );
}

#[tokio::test]
async fn injected_faults_answer_with_a_status_and_are_logged() {
    let (server, client) = start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    server.inject(FaultSpec {
        verb: "get".into(),
        resource: "configmaps".into(),
        name: Some("x".into()),
        user: None,
        status: Some(500),
        count: 1,
        ..FaultSpec::default()
    });
    let status = api_error(maps.get("x").await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    let status = api_error(maps.get("x").await);
    assert_eq!(status.code, 404, "the fault was used up");
    let records = server.requests();
    let gets: Vec<u16> = records
        .iter()
        .filter(|r| r.verb == "get" && r.resource == "configmaps")
        .map(|r| r.status)
        .collect();
    assert_eq!(gets, [500, 404]);
    server.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_of_an_owned_secret_like_the_operator() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    let owner = auths
        .create(
            &PostParams::default(),
            &authorization("op", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let params = PatchParams::apply("ghes-oauth-operator").force();
    let reference = owner.controller_owner_ref(&()).unwrap();
    let desired = |token: &str, extra: bool| {
        let mut data = serde_json::Map::new();
        data.insert(
            "token".into(),
            json!(data_encoding::BASE64.encode(token.as_bytes())),
        );
        if extra {
            data.insert("extra".into(), json!("eA=="));
        }
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "op", "labels": api::labels::managed_by_labels(), "ownerReferences": [reference]},
            "type": "Opaque", "data": data})
    };
    let created = secrets
        .patch("op", &params, &Patch::Apply(desired("one", true)))
        .await
        .unwrap();
    assert!(
        created
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key("extra"))
    );
    let updated = secrets
        .patch("op", &params, &Patch::Apply(desired("two", false)))
        .await
        .unwrap();
    let data = updated.data.clone().unwrap_or_default();
    assert_eq!(
        data.get("token").map(|b| b.0.clone()),
        Some(b"two".to_vec())
    );
    assert!(
        !data.contains_key("extra"),
        "a key the operator stopped applying is removed"
    );
    // Applying the same again changes nothing.
    let again = secrets
        .patch("op", &params, &Patch::Apply(desired("two", false)))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), updated.resource_version());
}

#[tokio::test]
async fn streaming_lists_and_bookmarks() {
    let (_server, client) =
        start_with(TestApiServer::new().bookmark_interval(Duration::from_millis(100))).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "before"}})).unwrap();
    maps.create(&PostParams::default(), &cm).await.unwrap();

    // kube's streaming-list watcher: initial events, then the initial-events-end bookmark.
    let mut stream = Box::pin(watcher(
        maps.clone(),
        watcher::Config::default().streaming_lists(),
    ));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::Init
    ));
    match next(&mut stream).await.unwrap() {
        watcher::Event::InitApply(cm) => assert_eq!(cm.name_any(), "before"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::InitDone
    ));

    // A raw watch with bookmarks gets them while the resourceVersion moves on.
    let list = maps.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = maps
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "elsewhere"}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    match next(&mut events).await.unwrap() {
        WatchEvent::Bookmark(bookmark) => {
            assert_eq!(bookmark.types.kind, "ConfigMap");
            let bookmarked: u64 = bookmark.metadata.resource_version.parse().unwrap();
            assert!(bookmarked > rv.parse::<u64>().unwrap());
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
#[allow(deprecated)] // kube 5 deprecates metadata_watcher for Api<PartialObjectMeta<K>>; both must work
async fn the_deprecated_metadata_watcher_makes_the_same_requests() {
    let (_server, client) = start().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let mut stream = Box::pin(kube::runtime::metadata_watcher(
        secrets.clone(),
        watcher::Config::default().labels("app=x"),
    ));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::Init
    ));
    assert!(matches!(
        next(&mut stream).await.unwrap(),
        watcher::Event::InitDone
    ));
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "m", "labels": {"app": "x"}}})).unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(meta) => {
            assert_eq!(meta.name_any(), "m");
            assert!(meta.metadata.labels.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn dry_runs_change_nothing() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    let dry = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let would_be = auths
        .create(
            &dry,
            &authorization("dry", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    assert_eq!(would_be.spec.deletion_policy, api::DeletionPolicy::Delete);
    assert!(auths.get_opt("dry").await.unwrap().is_none());
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let (server, client) = start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut events = maps
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    within("the shutdown", server.shutdown()).await;
    within("the watch to end", async {
        while let Some(event) = events.next().await {
            if event.is_err() {
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_custom_resources_first() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    auths
        .create(
            &PostParams::default(),
            &authorization("x", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deleting = crds
        .delete("authorizations.oauth.ghes.io", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the CRD waits for its custom resources");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    gone(&crds, "authorizations.oauth.ghes.io").await;
    let status = api_error(auths.list(&ListParams::default()).await);
    assert_eq!(status.code, 404, "the resource is no longer served");
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let (_server, client) = cluster("team-a").await;
    let auths: Api<Authorization> = Api::namespaced(client.clone(), "team-a");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let owner = auths
        .create(
            &PostParams::default(),
            &authorization("fg", json!({"accountRef": {"name": "bot"}})),
        )
        .await
        .unwrap();
    let mut dependent = owned_secret("fg", &owner);
    dependent.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    secrets
        .create(&PostParams::default(), &dependent)
        .await
        .unwrap();

    let marked = auths
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(
        marked
            .finalizers()
            .contains(&"foregroundDeletion".to_owned())
    );
    // The dependent is being deleted, and its owner waits for it.
    within("the dependent to be marked", async {
        while secrets
            .get("fg")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(auths.get_opt("fg").await.unwrap().is_some());
    let release = json!({"metadata": {"finalizers": null}});
    secrets
        .patch("fg", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    gone(&auths, "fg").await;

    let namespaces: Api<Namespace> = Api::all(client);
    let status = api_error(namespaces.delete("default", &DeleteParams::default()).await);
    assert_eq!(
        status.message,
        "namespaces \"default\" is forbidden: this namespace may not be deleted"
    );
}

#[tokio::test]
async fn expiring_watches_ends_open_streams_with_410_and_forbids_resuming() {
    let (server, client) = start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
    let created = maps.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.resource_version().unwrap();
    let mut events = maps
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let b: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap();
    maps.create(&PostParams::default(), &b).await.unwrap();
    assert!(matches!(
        next(&mut events).await.unwrap(),
        WatchEvent::Added(_)
    ));
    server.expire_watches();
    match next(&mut events).await.unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    assert!(
        within("the stream's end", events.next()).await.is_none(),
        "the stream ends"
    );
    // Resuming from a version before the compaction is refused the same way: only a new list
    // helps.
    let mut resumed = maps
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        next(&mut resumed).await.unwrap(),
        WatchEvent::Error(status) if status.code == 410
    ));
    let listed = maps.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
}

#[tokio::test]
async fn a_restricted_user_gets_rbacs_403_and_its_used_permissions_are_recorded() {
    use kube_testkit::Permission;
    let (server, _) = start_with(
        TestApiServer::new().restrict("bot", vec![Permission::new("", "configmaps", "get")]),
    )
    .await;
    let bot = server.client("bot").unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(bot.clone(), "default");
    let status = api_error(maps.list(&Default::default()).await);
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            403,
            "configmaps is forbidden: User \"bot\" cannot list resource \"configmaps\" in API \
             group \"\" in the namespace \"default\""
        )
    );
    let status = api_error(maps.get("x").await);
    assert_eq!(status.code, 404, "allowed, and not there");
    let secrets: Api<Secret> = Api::namespaced(bot, "default");
    assert_eq!(api_error(secrets.get("x").await).code, 403);
    assert_eq!(
        server.permissions_used("bot"),
        [Permission::new("", "configmaps", "get")]
    );
}
