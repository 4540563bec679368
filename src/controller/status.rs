//! Writing status: server-side apply of the whole status under the operator's field manager,
//! so fields the operator stops setting disappear, and nothing else is touched.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::Result;
use super::secret::FIELD_MANAGER;

/// A time as the API server keeps it in a status: whole seconds. A status computed with it
/// reads back equal, so a reconcile with nothing new writes nothing.
pub(crate) fn as_stored(
    at: jiff::Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(at.as_second()).unwrap_or(at),
    )
}

/// Applies `status` to the status subresource of `object`; returns the object as written.
pub async fn apply_status<K, S>(api: &Api<K>, object: &K, status: &S) -> Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    Ok(api
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?)
}
