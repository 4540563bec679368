//! What the tests that talk to a Kubernetes API share: installing the operator's CRDs,
//! applying any object, and a bounded poll.

use std::time::{Duration, Instant};

use ghes_oauth_operator::api::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};

/// How long CRDs may take to be established.
const CRD_WAIT: Duration = Duration::from_secs(60);

/// Installs the operator's CRDs by server-side apply as `manager`, and waits until each is
/// established (served), as a real API server reports it.
pub async fn install_crds(client: &Client, manager: &str) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in crds() {
        let name = crd.metadata.name.clone().expect("crd name");
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|error| panic!("install CRD {name}: {error}"));
        wait_for(&format!("CRD {name} established"), CRD_WAIT, || async {
            let crd = api.get(&name).await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }
}

/// Applies any object (server-side apply as `manager`) in `namespace`; Namespaces and
/// ClusterAccounts are cluster-scoped.
#[allow(dead_code)] // not every test that includes this module applies objects
pub async fn apply(client: &Client, manager: &str, namespace: &str, object: serde_json::Value) {
    let api_version = object["apiVersion"]
        .as_str()
        .expect("apiVersion")
        .to_owned();
    let kind = object["kind"].as_str().expect("kind").to_owned();
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
    let api: Api<DynamicObject> = if matches!(kind.as_str(), "ClusterAccount" | "Namespace") {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    };
    api.patch(
        &name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|error| panic!("apply {kind} {name}: {error}"));
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
