//! A minimal OpenAPI v3 document, enough for kubectl: `/openapi/v3` lists the group versions,
//! and each group version's document has the paths of its resources, whose PATCH operations
//! carry `x-kubernetes-group-version-kind` and the `fieldValidation` parameter (so kubectl
//! leaves validation to the server), plus the schemas of custom resources (for `kubectl
//! explain`). Built-in types have no schemas here.

use serde_json::{Map, Value, json};

use super::resources::{Kind, Registry, ResourceInfo, api_version};

/// The path of a group version in the OpenAPI v3 root: `api/v1`, `apis/{group}/{version}`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`.
pub(crate) fn root(registry: &Registry, rv: u64) -> Value {
    let mut paths = Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let path = gv_path(&group, &version);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={rv:016X}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// The schema name of a kind: `io.ghes.oauth.v1alpha1.Authorization`.
fn schema_name(info: &ResourceInfo) -> String {
    let mut reversed: Vec<&str> = info.group.split('.').collect();
    reversed.reverse();
    let prefix = if info.group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else {
        reversed.join(".")
    };
    format!("{prefix}.{}.{}", info.version, info.kind)
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
pub(crate) fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    if !registry.serves_group_version(group, version) {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for info in registry
        .all()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": group, "version": version, "kind": info.kind});
        let base = format!("/{}", gv_path(group, version));
        let collection = if info.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", info.plural)
        } else {
            format!("{base}/{}", info.plural)
        };
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}});
        let patch = json!({
            "x-kubernetes-group-version-kind": gvk,
            "x-kubernetes-action": "patch",
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
            "responses": {"200": {"description": "OK"}},
        });
        let write = json!({
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation")],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(collection.clone(), json!({"post": write}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"patch": patch, "put": write}),
        );
        if info.status_subresource {
            paths.insert(
                format!("{collection}/{{name}}/status"),
                json!({"patch": patch, "put": write}),
            );
        }
        if info.rules == Kind::Custom
            && let Some(schema) = &info.schema
        {
            let mut schema = (**schema).clone();
            schema["x-kubernetes-group-version-kind"] = json!([gvk]);
            schemas.insert(schema_name(info), schema);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", super::discovery::MAJOR, super::discovery::MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
        "x-testkit-group-version": api_version(group, version),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_paths_declare_field_validation() {
        let doc = group_version(&Registry::builtin(), "", "v1").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Secret");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let root = root(&Registry::builtin(), 7);
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
    }
}
