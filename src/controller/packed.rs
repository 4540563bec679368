//! An Authorization as the watch cache keeps it: its JSON in one buffer, beside the few
//! fields read without a reconcile (the object's reference and what the gauges count).
//!
//! A typed `Authorization` is about forty allocations (each string of its metadata, spec and
//! conditions), and every one of them costs the allocator its overhead; at 10,000 objects the
//! cache was the largest holder of the operator's memory. A reconcile unpacks its object once,
//! which costs microseconds beside the API calls it makes. The JSON is compressed against a
//! dictionary of a typical Authorization ([`super::compact`]): what is left is mostly the names,
//! ids, hashes and times that differ from one object to the next.

use std::borrow::Cow;
use std::sync::LazyLock;

use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::api::ObjectMeta;
use serde::{Deserialize, Deserializer};

use super::compact::Dictionary;
use crate::api::{Authorization, AuthorizationStatus, conditions};

/// What an Authorization usually says: a Ready personal token, as this operator writes its
/// status, and the optional parts some set. The values that differ per object are left empty.
static DICTIONARY: LazyLock<Dictionary> =
    LazyLock::new(|| Dictionary::of::<Authorization>(&samples()));

fn samples() -> [serde_json::Value; 2] {
    let ready = |at: &str| {
        serde_json::json!([
            {"lastTransitionTime": at, "message": "Secret  holds token \u{2026}",
             "observedGeneration": 1, "reason": "TokenReady", "status": "True", "type": "Ready"},
            {"lastTransitionTime": at, "message": "GHES authorization  matches the spec",
             "observedGeneration": 1, "reason": "Synced", "status": "True", "type": "Synced"},
        ])
    };
    let at = "2026-01-01T00:00:00Z";
    [
        serde_json::json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": "", "labels": {"app.kubernetes.io/name": ""}},
            "spec": {
                "accountRef": {"kind": "ClusterAccount", "name": ""},
                "app": {"clientId": "", "clientSecretRef": {"name": "", "key": "clientSecret"}},
                "rotation": {"period": "720h", "gracePeriod": "1h"},
                "scopes": ["repo", "read:org", "admin:org"],
                "secret": {"name": "", "key": "token"},
            },
            "status": {
                "conditions": ready(at), "expiresAt": at, "nextRotationAt": at,
                "previous": {"authorizationId": 1, "tokenLastEight": "", "revokeAfter": at},
            },
        }),
        serde_json::json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {
                "name": "", "creationTimestamp": at, "generation": 1,
                "finalizers": ["oauth.ghes.io/cleanup"],
            },
            "spec": {
                "accountRef": {"kind": "Account", "name": ""}, "scopes": ["read:user"],
                "secret": {"key": "token"},
            },
            "status": {
                "authorizationId": 1, "conditions": ready(at),
                "fingerprint": "k8s-00000000-0000-0000-0000-000000000000.",
                "hashedToken": "", "identity": " at https:///api/v3", "issuedAt": at,
                "note": "/", "observedGeneration": 1, "requestedScopes": ["read:user"],
                "scopes": ["read:user"], "secretName": "", "tokenLastEight": "",
            },
        }),
    ]
}

/// One Authorization of the watch cache.
#[derive(Clone, Debug)]
pub struct PackedAuthorization {
    /// Name, namespace, uid and resourceVersion: what references and memory read. They are
    /// taken out of the JSON, not copied.
    metadata: ObjectMeta,
    /// The rest of the object, as compressed JSON.
    packed: Box<[u8]>,
    /// What the gauges count, without unpacking.
    pub summary: Summary,
}

/// What the gauges read of an Authorization's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Its Ready condition is True.
    pub ready: bool,
    /// Its Ready condition says `Suspended` (its own `spec.suspend`, or its account's).
    pub suspended: bool,
    /// `status.nextRotationAt`.
    pub next_rotation_at: Option<Timestamp>,
    /// `status.expiresAt`.
    pub expires_at: Option<Timestamp>,
}

impl Summary {
    /// The summary of `status` (none: nothing is ready or due).
    pub fn of(status: Option<&AuthorizationStatus>) -> Self {
        match status {
            None => Self::default(),
            Some(status) => Self {
                ready: conditions::is_true(&status.conditions, conditions::READY),
                suspended: conditions::has_reason(
                    &status.conditions,
                    conditions::READY,
                    conditions::SUSPENDED,
                ),
                next_rotation_at: status.next_rotation_at.as_ref().map(|at| at.0),
                expires_at: status.expires_at.as_ref().map(|at| at.0),
            },
        }
    }

    /// Whether the token is past its scheduled rotation at `now` (the rotation is late).
    pub fn rotation_overdue(&self, now: Timestamp) -> bool {
        self.next_rotation_at.is_some_and(|at| at < now)
    }

    /// Whether the token GHES issued has expired at `now`.
    pub fn token_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at < now)
    }
}

impl PackedAuthorization {
    /// Packs `authorization`.
    pub fn pack(mut authorization: Authorization) -> Result<Self, serde_json::Error> {
        let summary = Summary::of(authorization.status.as_ref());
        let source = &mut authorization.metadata;
        let metadata = ObjectMeta {
            name: source.name.take(),
            namespace: source.namespace.take(),
            uid: source.uid.take(),
            resource_version: source.resource_version.take(),
            ..ObjectMeta::default()
        };
        let packed = DICTIONARY.pack(&authorization)?;
        Ok(Self {
            metadata,
            packed,
            summary,
        })
    }

    /// The Authorization, as it was packed.
    pub fn unpack(&self) -> Result<Authorization, serde_json::Error> {
        let mut authorization: Authorization = DICTIONARY.unpack(&self.packed)?;
        let target = &mut authorization.metadata;
        target.name.clone_from(&self.metadata.name);
        target.namespace.clone_from(&self.metadata.namespace);
        target.uid.clone_from(&self.metadata.uid);
        target
            .resource_version
            .clone_from(&self.metadata.resource_version);
        Ok(authorization)
    }
}

impl<'de> Deserialize<'de> for PackedAuthorization {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let authorization = Authorization::deserialize(deserializer)?;
        Self::pack(authorization).map_err(serde::de::Error::custom)
    }
}

/// Implements [`Resource`] for a type that stands for an Authorization: the same kind, group,
/// version and plural (so owner references and object references map), its metadata from
/// `$meta`.
macro_rules! authorization_resource {
    ($type:ty, $($meta:tt)+) => {
        impl Resource for $type {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(dt: &()) -> Cow<'_, str> {
                Authorization::kind(dt)
            }

            fn group(dt: &()) -> Cow<'_, str> {
                Authorization::group(dt)
            }

            fn version(dt: &()) -> Cow<'_, str> {
                Authorization::version(dt)
            }

            fn api_version(dt: &()) -> Cow<'_, str> {
                Authorization::api_version(dt)
            }

            fn plural(dt: &()) -> Cow<'_, str> {
                Authorization::plural(dt)
            }

            fn meta(&self) -> &ObjectMeta {
                &self.$($meta)+
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.$($meta)+
            }
        }
    };
}

authorization_resource!(PackedAuthorization, metadata);
authorization_resource!(Listed, 0.metadata);

/// An Authorization as a listing reads it for what it claims or holds: its spec, its status,
/// and of its metadata only name, namespace, uid, resourceVersion, generation, finalizers and
/// deletion. Its managed fields, labels, annotations and owners are skipped as they are read,
/// never allocated: managed fields are most of a listed object's size, and a page holds
/// hundreds.
#[derive(Clone, Debug)]
pub struct Listed(pub Authorization);

impl<'de> Deserialize<'de> for Listed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Metadata {
            name: Option<String>,
            namespace: Option<String>,
            uid: Option<String>,
            resource_version: Option<String>,
            generation: Option<i64>,
            finalizers: Option<Vec<String>>,
            deletion_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
        }
        #[derive(Deserialize)]
        struct Object {
            metadata: Metadata,
            spec: crate::api::AuthorizationSpec,
            #[serde(default)]
            status: Option<crate::api::AuthorizationStatus>,
        }
        let Object {
            metadata,
            spec,
            status,
        } = Object::deserialize(deserializer)?;
        let mut authorization =
            Authorization::new(metadata.name.as_deref().unwrap_or_default(), spec);
        authorization.metadata = ObjectMeta {
            name: metadata.name,
            namespace: metadata.namespace,
            uid: metadata.uid,
            resource_version: metadata.resource_version,
            generation: metadata.generation,
            finalizers: metadata.finalizers,
            deletion_timestamp: metadata.deletion_timestamp,
            ..ObjectMeta::default()
        };
        authorization.status = status;
        Ok(Self(authorization))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use kube::runtime::reflector::ObjectRef;

    fn ready_authorization() -> Authorization {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {
                "name": "ci", "namespace": "team-a", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "finalizers": ["oauth.ghes.io/revoke"],
                "deletionTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"team": "a"},
            },
            "spec": {"accountRef": {"name": "bot"}, "scopes": ["repo", "read:org"]},
            "status": {
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Issued", "message": "ok",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }],
                "fingerprint": "fp", "hashedToken": "ab", "tokenLastEight": "12345678",
                "nextRotationAt": "2026-02-01T00:00:00Z",
                "expiresAt": "2026-03-01T00:00:00Z",
            },
        }))
        .expect("an Authorization")
    }

    #[test]
    fn an_authorization_unpacks_as_it_was_packed() {
        let authorization = ready_authorization();
        let packed = PackedAuthorization::pack(authorization.clone()).expect("packs");
        let unpacked = packed.unpack().expect("unpacks");
        assert_eq!(
            serde_json::to_value(&unpacked).expect("json"),
            serde_json::to_value(&authorization).expect("json")
        );
        // The metadata kept outside is not in the JSON a second time.
        let json: serde_json::Value = DICTIONARY.unpack(&packed.packed).expect("json");
        let json = json.to_string();
        assert!(!json.contains("u-1") && !json.contains("team-a"), "{json}");
    }

    #[test]
    fn the_dictionary_samples_are_authorizations_and_shrink_one_to_a_third() {
        for sample in samples() {
            serde_json::from_value::<Authorization>(sample).expect("a sample reads");
        }
        let mut authorization = ready_authorization();
        authorization.metadata = Default::default();
        let json = serde_json::to_vec(&authorization).expect("json");
        let packed = DICTIONARY.pack(&authorization).expect("packs");
        assert!(
            packed.len() * 3 < json.len(),
            "{} of {}",
            packed.len(),
            json.len()
        );
    }

    #[test]
    fn a_listed_authorization_keeps_what_claims_and_holders_read() {
        let mut full = ready_authorization();
        full.spec.observe = Some(Box::new(
            serde_json::from_value(serde_json::json!({"id": 9, "fingerprint": "f"}))
                .expect("observe"),
        ));
        let mut json = serde_json::to_value(&full).expect("json");
        json["metadata"]["managedFields"] = serde_json::json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "oauth.ghes.io/v1alpha1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:scopes": {}}},
        }]);
        json["metadata"]["annotations"] = serde_json::json!({"a": "1"});
        json["metadata"]["ownerReferences"] = serde_json::json!([{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-9",
        }]);
        let Listed(listed) = serde_json::from_value(json).expect("reads");
        // Everything but labels (and what was added) is as it was.
        let mut expected = full.clone();
        expected.metadata.labels = None;
        assert_eq!(
            serde_json::to_value(&listed).expect("json"),
            serde_json::to_value(&expected).expect("json")
        );
        assert!(listed.metadata.managed_fields.is_none());
        assert_eq!(
            crate::controller::prune::Claims::of([&listed]),
            crate::controller::prune::Claims::of([&full])
        );
        let bare = serde_json::json!({
            "metadata": {"name": "x", "namespace": "n"},
            "spec": {"accountRef": {"name": "bot"}, "scopes": ["repo"]},
        });
        let Listed(bare) = serde_json::from_value(bare).expect("reads");
        assert!(bare.status.is_none());
    }

    #[test]
    fn deadlines_pass_only_once_their_time_is_behind() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let at = |text: &str| Some(Time(text.parse::<Timestamp>().unwrap()));
        let status = Summary::of(Some(&AuthorizationStatus {
            next_rotation_at: at("2026-01-01T00:00:00Z"),
            expires_at: at("2026-01-02T00:00:00Z"),
            ..Default::default()
        }));
        let between: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        assert!(status.rotation_overdue(between) && !status.token_expired(between));
        let after: Timestamp = "2026-01-03T00:00:00Z".parse().unwrap();
        assert!(status.rotation_overdue(after) && status.token_expired(after));
        let before: Timestamp = "2025-12-31T00:00:00Z".parse().unwrap();
        assert!(!status.rotation_overdue(before) && !status.token_expired(before));
        let none = Summary::of(Some(&AuthorizationStatus::default()));
        assert!(!none.rotation_overdue(after) && !none.token_expired(after));
    }

    #[test]
    fn references_and_the_summary_read_without_unpacking() {
        let packed = PackedAuthorization::pack(ready_authorization()).expect("packs");
        assert_eq!(
            ObjectRef::from_obj(&packed).erase(),
            ObjectRef::from_obj(&ready_authorization()).erase()
        );
        assert_eq!(packed.resource_version().as_deref(), Some("42"));
        assert_eq!(packed.uid().as_deref(), Some("u-1"));
        assert!(packed.summary.ready);
        let at = |text: &str| text.parse::<Timestamp>().expect("a time");
        assert!(!packed.summary.rotation_overdue(at("2026-01-15T00:00:00Z")));
        assert!(packed.summary.rotation_overdue(at("2026-02-15T00:00:00Z")));
        assert!(!packed.summary.token_expired(at("2026-02-15T00:00:00Z")));
        assert!(packed.summary.token_expired(at("2026-03-15T00:00:00Z")));
    }

    #[test]
    fn an_authorization_without_status_is_not_ready() {
        let mut authorization = ready_authorization();
        authorization.status = None;
        let packed = PackedAuthorization::pack(authorization).expect("packs");
        assert_eq!(packed.summary, Summary::default());
        let json = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": "x", "namespace": "n"},
            "spec": {"accountRef": {"name": "bot"}, "scopes": ["repo"]},
        }))
        .expect("json");
        let read: PackedAuthorization = serde_json::from_slice(&json).expect("deserializes");
        assert_eq!(
            read.unpack().expect("unpacks").metadata.name.as_deref(),
            Some("x")
        );
    }
}
