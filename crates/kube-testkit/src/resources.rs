//! The resources the server knows: the built-in ones it serves, the custom resources of the CRDs
//! registered with it, and how an object is converted between its stored form and the version a
//! request speaks (custom resources: `apiVersion` only, like the `None` conversion strategy;
//! `events.k8s.io/v1` Events: field renames onto the core `v1` Events they are stored as).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::errors::GroupResource;

/// Which rules of the API server an object follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Namespace,
    Secret,
    ConfigMap,
    /// Core `v1` Events.
    CoreEvent,
    /// `events.k8s.io/v1` Events (stored as core Events).
    Event,
    Lease,
    /// `apps/v1` Deployments, StatefulSets and DaemonSets: stored and served, never run.
    Deployment,
    StatefulSet,
    DaemonSet,
    Crd,
    Custom,
}

/// Where objects are stored: one per group and resource, whatever version they are served in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StorageKey {
    pub group: String,
    pub plural: String,
}

/// One served resource in one group version.
#[derive(Clone, Debug)]
pub(crate) struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    /// The schema (`openAPIV3Schema`) of a custom resource's version.
    pub schema: Option<Arc<Value>>,
    /// Extra field selectors a CRD declares (`.spec.x` JSON paths).
    pub selectable_fields: Vec<String>,
    pub rules: Kind,
    pub storage: StorageKey,
    /// The version objects are stored in (custom resources).
    pub storage_version: String,
    /// The CRD this resource comes from.
    pub crd_name: Option<String>,
}

impl ResourceInfo {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    /// The group and resource, as errors name them.
    pub fn gr(&self) -> GroupResource<'_> {
        GroupResource {
            group: &self.group,
            resource: &self.plural,
        }
    }

    /// Whether `metadata.generation` is maintained (CRDs, custom resources and the apps
    /// workloads here: a change of anything but metadata and status bumps it).
    pub fn has_generation(&self) -> bool {
        matches!(
            self.rules,
            Kind::Crd | Kind::Custom | Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet
        )
    }

    /// Whether an update without `metadata.resourceVersion` is allowed.
    pub fn allow_unconditional_update(&self) -> bool {
        !matches!(self.rules, Kind::Crd | Kind::Custom)
    }

    /// Whether an update of a missing object creates it.
    pub fn allow_create_on_update(&self) -> bool {
        matches!(self.rules, Kind::CoreEvent | Kind::Event)
    }

    /// Whether a delete that removes the object answers with it (else with a `Status`).
    pub fn returns_deleted_object(&self) -> bool {
        self.rules == Kind::Custom
    }

    /// The subresources served besides the main resource.
    pub fn subresources(&self) -> Vec<&'static str> {
        let mut subs = Vec::new();
        if self.status_subresource {
            subs.push("status");
        }
        if self.rules == Kind::Namespace {
            subs.push("finalize");
        }
        subs
    }

    /// The object as this version serves it, from its stored form.
    pub fn served(&self, stored: &Value) -> Value {
        match self.rules {
            Kind::Custom => {
                let mut obj = stored.clone();
                obj["apiVersion"] = Value::String(self.api_version());
                obj
            }
            Kind::Event => core_event_to_v1(stored),
            _ => stored.clone(),
        }
    }

    /// The stored form of an object written in this version.
    pub fn stored(&self, obj: Value) -> Value {
        match self.rules {
            Kind::Custom => {
                let mut obj = obj;
                obj["apiVersion"] = Value::String(api_version(&self.group, &self.storage_version));
                obj
            }
            Kind::Event => v1_event_to_core(&obj),
            _ => obj,
        }
    }
}

/// `v1` or `group/version`.
pub(crate) fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// Field renames between core Events and `events.k8s.io/v1` Events: (core, v1).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn core_event_to_v1(core: &Value) -> Value {
    rename_fields(core, "events.k8s.io/v1", |name| {
        EVENT_FIELDS
            .iter()
            .find(|(c, _)| *c == name)
            .map(|(_, v)| *v)
    })
}

fn v1_event_to_core(v1: &Value) -> Value {
    rename_fields(v1, "v1", |name| {
        EVENT_FIELDS
            .iter()
            .find(|(_, v)| *v == name)
            .map(|(c, _)| *c)
    })
}

fn rename_fields(
    obj: &Value,
    api_version: &str,
    rename: impl Fn(&str) -> Option<&'static str>,
) -> Value {
    let Some(fields) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let key = rename(key).map_or_else(|| key.clone(), str::to_owned);
        out.insert(key, value.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.to_owned()));
    out.insert("kind".into(), Value::String("Event".to_owned()));
    Value::Object(out)
}

/// The resources served, by group, version and plural.
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    resources: BTreeMap<(String, String, String), ResourceInfo>,
}

impl Registry {
    /// The built-in resources.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        let builtin = |group: &str,
                       version: &str,
                       plural: &str,
                       kind: &str,
                       namespaced: bool,
                       rules: Kind,
                       short: &[&str]| {
            ResourceInfo {
                group: group.to_owned(),
                version: version.to_owned(),
                plural: plural.to_owned(),
                singular: kind.to_lowercase(),
                kind: kind.to_owned(),
                namespaced,
                short_names: short.iter().map(|s| (*s).to_owned()).collect(),
                categories: Vec::new(),
                status_subresource: matches!(
                    rules,
                    Kind::Namespace
                        | Kind::Crd
                        | Kind::Deployment
                        | Kind::StatefulSet
                        | Kind::DaemonSet
                ),
                schema: None,
                selectable_fields: Vec::new(),
                rules,
                storage: StorageKey {
                    group: if rules == Kind::Event {
                        String::new()
                    } else {
                        group.to_owned()
                    },
                    plural: plural.to_owned(),
                },
                storage_version: version.to_owned(),
                crd_name: None,
            }
        };
        let all = [
            builtin(
                "",
                "v1",
                "namespaces",
                "Namespace",
                false,
                Kind::Namespace,
                &["ns"],
            ),
            builtin("", "v1", "secrets", "Secret", true, Kind::Secret, &[]),
            builtin(
                "",
                "v1",
                "configmaps",
                "ConfigMap",
                true,
                Kind::ConfigMap,
                &["cm"],
            ),
            builtin("", "v1", "events", "Event", true, Kind::CoreEvent, &["ev"]),
            builtin(
                "events.k8s.io",
                "v1",
                "events",
                "Event",
                true,
                Kind::Event,
                &["ev"],
            ),
            builtin(
                "coordination.k8s.io",
                "v1",
                "leases",
                "Lease",
                true,
                Kind::Lease,
                &[],
            ),
            builtin(
                "apps",
                "v1",
                "deployments",
                "Deployment",
                true,
                Kind::Deployment,
                &["deploy"],
            ),
            builtin(
                "apps",
                "v1",
                "statefulsets",
                "StatefulSet",
                true,
                Kind::StatefulSet,
                &["sts"],
            ),
            builtin(
                "apps",
                "v1",
                "daemonsets",
                "DaemonSet",
                true,
                Kind::DaemonSet,
                &["ds"],
            ),
            builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                Kind::Crd,
                &["crd", "crds"],
            ),
        ];
        for info in all {
            registry.insert(info);
        }
        registry
    }

    fn insert(&mut self, info: ResourceInfo) {
        self.resources.insert(
            (
                info.group.clone(),
                info.version.clone(),
                info.plural.clone(),
            ),
            info,
        );
    }

    /// The resource served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
    }

    /// Whether a group version is served at all.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.resources
            .keys()
            .any(|(g, v, _)| g == group && v == version)
    }

    /// Every served resource.
    pub fn all(&self) -> impl Iterator<Item = &ResourceInfo> {
        self.resources.values()
    }

    /// One served version of the resources stored under `storage` (the storage version when
    /// served), used to read stored objects.
    pub fn any_for_storage(&self, storage: &StorageKey) -> Option<&ResourceInfo> {
        let mut candidates = self.resources.values().filter(|r| &r.storage == storage);
        let first = candidates.next()?;
        if first.rules == Kind::Custom {
            return self
                .resources
                .values()
                .filter(|r| &r.storage == storage)
                .find(|r| r.version == r.storage_version)
                .or(Some(first));
        }
        // Core Events are read as core Events.
        Some(
            self.resources
                .values()
                .filter(|r| &r.storage == storage)
                .find(|r| r.group == storage.group)
                .unwrap_or(first),
        )
    }

    /// Replaces the resources a CRD defines with `infos`.
    pub fn register_crd(&mut self, crd_name: &str, infos: Vec<ResourceInfo>) {
        self.unregister_crd(crd_name);
        for info in infos {
            self.insert(info);
        }
    }

    /// Removes the resources a CRD defines.
    pub fn unregister_crd(&mut self, crd_name: &str) {
        self.resources
            .retain(|_, info| info.crd_name.as_deref() != Some(crd_name));
    }

    /// The groups served, each with its versions sorted as Kubernetes prefers them.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (group, version, _) in self.resources.keys() {
            let versions = groups.entry(group.clone()).or_default();
            if !versions.contains(version) {
                versions.push(version.clone());
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by number; other names last.
fn version_priority(version: &str) -> (u8, u64, u64) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match num.parse::<u64>() {
        Ok(n) => (level, major, n),
        Err(_) => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_sort_ga_first() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1alpha1"]);
    }

    #[test]
    fn events_convert_both_ways() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "hi",
            "regarding": {"name": "x"}, "reportingController": "c"});
        let core = v1_event_to_core(&v1);
        assert_eq!(core["message"], "hi");
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["reportingComponent"], "c");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core_event_to_v1(&core), v1);
    }
}
