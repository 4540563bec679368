//! What the tests that talk to a Kubernetes API share: installing the operator's CRDs, and a
//! bounded poll.

use std::time::{Duration, Instant};

use ghes_oauth_operator::api::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
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
