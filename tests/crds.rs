//! The generated CRDs: the committed files in `crds/` are exactly the generator's output, and the
//! schemas are complete (names, subresources, printer columns, descriptions, defaults, validation).

use std::collections::BTreeSet;
use std::path::PathBuf;

use ghes_oauth_operator::api::{
    self, Account, AccountKind, Authorization, ClusterAccount, DeletionPolicy, PruneMode,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::{Value, json};

const REGENERATE: &str = "regenerate them with `cargo run -- crds --out crds/` \
     (or `cargo test --test crds -- --ignored regenerate_crd_files`) and commit the result";

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds")
}

fn crd(kind: &str) -> CustomResourceDefinition {
    api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD of kind {kind}"))
}

fn root_schema(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
    crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every CRD has an openAPIV3Schema")
}

/// The schema at a path of property names; `[]` steps into array items.
fn schema_at<'a>(crd: &'a CustomResourceDefinition, path: &str) -> &'a JSONSchemaProps {
    let mut schema = root_schema(crd);
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        schema = if segment == "[]" {
            match &schema.items {
                Some(JSONSchemaPropsOrArray::Schema(items)) => items,
                _ => panic!("{path}: no array items at {segment}"),
            }
        } else {
            schema
                .properties
                .as_ref()
                .and_then(|p| p.get(segment))
                .unwrap_or_else(|| panic!("{}: no property {path}", crd.spec.names.kind))
        };
    }
    schema
}

// (a) The committed files are the generator's output, byte for byte.

#[test]
fn committed_crd_files_match_the_generator() {
    let files = api::crd_files().expect("CRDs serialize to YAML");
    let mut stale = Vec::new();
    for (name, generated) in &files {
        let path = crds_dir().join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != *generated {
            let line = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .map_or_else(
                    || committed.lines().count().min(generated.lines().count()) + 1,
                    |i| i + 1,
                );
            stale.push(format!("crds/{name} (first difference at line {line})"));
        }
    }
    assert!(
        stale.is_empty(),
        "generated CRDs differ from the committed files: {}; {REGENERATE}",
        stale.join(", ")
    );

    let expected: BTreeSet<String> = files.into_iter().map(|(name, _)| name).collect();
    let present: BTreeSet<String> = std::fs::read_dir(crds_dir())
        .expect("crds/ exists")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    assert_eq!(
        present, expected,
        "crds/ holds files the generator does not produce (or lacks some); {REGENERATE}"
    );
}

#[test]
fn crds_yaml_holds_every_crd_file() {
    let yaml = api::crds_yaml().unwrap();
    for (_, file) in api::crd_files().unwrap() {
        assert!(yaml.contains(&file));
    }
    for document in yaml.split("\n---\n") {
        let crd: CustomResourceDefinition = serde_yaml::from_str(document).unwrap();
        assert_eq!(crd.spec.group, "oauth.ghes.io");
    }
}

/// Rewrites `crds/` from the types. Run it after changing anything in `src/api`.
#[test]
#[ignore = "writes crds/; run explicitly to regenerate the committed CRDs"]
fn regenerate_crd_files() {
    std::fs::create_dir_all(crds_dir()).unwrap();
    for (name, yaml) in api::crd_files().unwrap() {
        std::fs::write(crds_dir().join(name), yaml).unwrap();
    }
}

// (b) Names, scope, subresources and printer columns.

#[test]
fn each_crd_has_its_names_scope_status_subresource_and_category() {
    for (kind, plural, short, scope) in [
        ("Authorization", "authorizations", "ghauth", "Namespaced"),
        ("Account", "accounts", "ghacct", "Namespaced"),
        ("ClusterAccount", "clusteraccounts", "ghcacct", "Cluster"),
    ] {
        let crd = crd(kind);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(&*format!("{plural}.oauth.ghes.io"))
        );
        assert_eq!(crd.spec.group, "oauth.ghes.io");
        assert_eq!(crd.spec.scope, scope, "{kind}");
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec![short.to_owned()]),
            "{kind}"
        );
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["ghes".to_owned()]),
            "{kind}"
        );
        assert_eq!(crd.spec.versions.len(), 1);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            "{kind} has the status subresource"
        );
    }
}

#[test]
fn printer_columns_are_the_documented_ones() {
    let columns = |kind: &str| -> Vec<(String, String, i32)> {
        crd(kind).spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.json_path, c.priority.unwrap_or(0)))
            .collect()
    };
    let ready = ".status.conditions[?(@.type==\"Ready\")].status";
    let reason = ".status.conditions[?(@.type==\"Ready\")].reason";
    let owned = |v: &[(&str, &str, i32)]| -> Vec<(String, String, i32)> {
        v.iter()
            .map(|(n, p, prio)| (n.to_string(), p.to_string(), *prio))
            .collect()
    };
    assert_eq!(
        columns("Authorization"),
        owned(&[
            ("Ready", ready, 0),
            ("Reason", reason, 1),
            ("Account", ".spec.accountRef.name", 0),
            ("Scopes", ".spec.scopes", 0),
            ("Last-8", ".status.tokenLastEight", 0),
            ("Next-Rotation", ".status.nextRotationAt", 0),
            ("Expires", ".status.expiresAt", 1),
            ("Suspended", ".spec.suspend", 1),
            ("Age", ".metadata.creationTimestamp", 0),
        ])
    );
    let account_columns = owned(&[
        ("Ready", ready, 0),
        ("Reason", reason, 1),
        ("Server", ".spec.server", 0),
        ("Login", ".status.login", 0),
        ("Authorizations", ".status.authorizationCount", 0),
        ("Prune-Mode", ".spec.prune.mode", 0),
        ("Suspended", ".spec.suspend", 1),
        ("Served-By", ".status.servedBy", 1),
        ("Age", ".metadata.creationTimestamp", 0),
    ]);
    assert_eq!(columns("Account"), account_columns);
    assert_eq!(columns("ClusterAccount"), account_columns);
}

#[test]
fn printer_columns_point_at_fields_of_the_schema() {
    for crd in api::crds() {
        for column in crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
        {
            if column.json_path.starts_with(".metadata.") {
                continue;
            }
            // `.status.conditions[?(@.type=="Ready")].status` → status.conditions.[].status
            let path = column
                .json_path
                .split('.')
                .filter(|s| !s.is_empty() && !s.starts_with("type==") && !s.starts_with('"'))
                .map(|s| match s.split_once('[') {
                    Some((name, _)) => format!("{name}.[]"),
                    None => s.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(".");
            schema_at(&crd, &path);
        }
    }
}

// (c) Every property has a description, so `kubectl explain` reads well.

fn undescribed(schema: &JSONSchemaProps, path: &str, missing: &mut Vec<String>) {
    for (name, property) in schema.properties.iter().flatten() {
        let here = format!("{path}.{name}");
        if property
            .description
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
        {
            missing.push(here.clone());
        }
        undescribed(property, &here, missing);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
        let here = format!("{path}[]");
        if items.type_.as_deref() == Some("object")
            && items
                .description
                .as_deref()
                .is_none_or(|d| d.trim().is_empty())
        {
            missing.push(here.clone());
        }
        undescribed(items, &here, missing);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &schema.additional_properties {
        undescribed(values, &format!("{path}{{}}"), missing);
    }
}

#[test]
fn every_property_has_a_description() {
    for crd in api::crds() {
        let root = root_schema(&crd);
        assert!(root.description.as_deref().is_some_and(|d| !d.is_empty()));
        assert!(
            !root
                .description
                .as_deref()
                .unwrap_or("")
                .contains("Auto-generated"),
            "{} has a written description",
            crd.spec.names.kind
        );
        let mut missing = Vec::new();
        undescribed(root, "", &mut missing);
        assert!(
            missing.is_empty(),
            "{} properties without a description: {missing:?}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn descriptions_are_reflowed_into_paragraphs() {
    for crd in api::crds() {
        let yaml = serde_json::to_string(root_schema(&crd)).unwrap();
        let value: Value = serde_json::from_str(&yaml).unwrap();
        let mut stack = vec![&value];
        while let Some(v) = stack.pop() {
            if let Some(Value::String(d)) = v.get("description") {
                assert!(!d.contains(" \n") && !d.contains("\n "), "{d:?}");
            }
            match v {
                Value::Object(map) => stack.extend(map.values()),
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
    }
}

// (d) Defaults appear in the schema, and agree with the serde defaults.

fn default_at(kind: &str, path: &str) -> Value {
    let crd = crd(kind);
    schema_at(&crd, path)
        .default
        .as_ref()
        .map(|d| d.0.clone())
        .unwrap_or_else(|| panic!("{kind}: no default at {path}"))
}

#[test]
fn defaults_appear_in_the_schemas() {
    for (path, value) in [
        ("spec.accountRef.kind", json!("Account")),
        ("spec.app.clientSecretRef.key", json!("clientSecret")),
        ("spec.scopes", json!([])),
        ("spec.secret.key", json!("token")),
        ("spec.secret", json!({"key": "token"})),
        ("spec.deletionPolicy", json!("Delete")),
    ] {
        assert_eq!(
            default_at("Authorization", path),
            value,
            "Authorization {path}"
        );
    }
    for kind in ["Account", "ClusterAccount"] {
        for (path, value) in [
            ("spec.requestsPerSecond", json!(5.0)),
            ("spec.burst", json!(10)),
            ("spec.syncInterval", json!("5m")),
            ("spec.credentialsSecretRef.usernameKey", json!("username")),
            ("spec.credentialsSecretRef.passwordKey", json!("password")),
            ("spec.prune.mode", json!("DryRun")),
            ("spec.prune.authorizations", json!(true)),
            ("spec.prune.grants", json!(true)),
            ("spec.prune.minAge", json!("10m")),
            ("spec.prune.maxDeletionsPerRun", json!(10)),
            ("spec.prune.keep.ids", json!([])),
        ] {
            assert_eq!(default_at(kind, path), value, "{kind} {path}");
        }
        let prune = default_at(kind, "spec.prune");
        assert_eq!(prune["mode"], "DryRun");
        assert_eq!(prune["minAge"], "10m");
        let crd = crd(kind);
        assert!(
            schema_at(&crd, "spec.credentialsSecretRef.totpSecretKey")
                .default
                .is_none(),
            "totpSecretKey has no default"
        );
    }
}

/// Applies the schema's defaults to a manifest the way the API server does (structural defaulting:
/// a missing property with a default gets it; then recurse into what is present).
fn apply_schema_defaults(value: &mut Value, schema: &JSONSchemaProps) {
    match value {
        Value::Object(object) => {
            for (name, property) in schema.properties.iter().flatten() {
                if !object.contains_key(name)
                    && let Some(default) = &property.default
                {
                    object.insert(name.clone(), default.0.clone());
                }
                if let Some(child) = object.get_mut(name) {
                    apply_schema_defaults(child, property);
                }
            }
        }
        Value::Array(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item_schema)) = &schema.items {
                items
                    .iter_mut()
                    .for_each(|item| apply_schema_defaults(item, item_schema));
            }
        }
        _ => {}
    }
}

fn assert_schema_and_serde_defaults_agree<K>(kind: &str, manifest: &str)
where
    K: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let minimal: Value = serde_yaml::from_str(manifest).unwrap();
    let mut server_defaulted = minimal.clone();
    apply_schema_defaults(&mut server_defaulted, root_schema(&crd(kind)));
    assert_ne!(
        minimal, server_defaulted,
        "{kind}: the schema defaults something"
    );

    let by_serde: K = serde_json::from_value(minimal).unwrap();
    let by_schema: K = serde_json::from_value(server_defaulted.clone()).unwrap();
    assert_eq!(
        by_serde, by_schema,
        "{kind}: schema and serde defaults differ"
    );
    // And what the operator would write back is what the API server stores.
    assert_eq!(
        serde_json::to_value(&by_serde).unwrap(),
        server_defaulted,
        "{kind}"
    );
}

#[test]
fn schema_defaults_and_serde_defaults_agree() {
    assert_schema_and_serde_defaults_agree::<Authorization>(
        "Authorization",
        r#"
apiVersion: oauth.ghes.io/v1alpha1
kind: Authorization
metadata: {name: ci-bot, namespace: team-a}
spec:
  accountRef: {name: ghes-bot}
  app: {clientId: 0123abcd, clientSecretRef: {name: oauth-app}}
"#,
    );
    assert_schema_and_serde_defaults_agree::<Account>(
        "Account",
        r#"
apiVersion: oauth.ghes.io/v1alpha1
kind: Account
metadata: {name: ghes-bot, namespace: team-a}
spec:
  server: https://ghes.example.com
  credentialsSecretRef: {name: ghes-bot}
"#,
    );
    assert_schema_and_serde_defaults_agree::<ClusterAccount>(
        "ClusterAccount",
        r#"
apiVersion: oauth.ghes.io/v1alpha1
kind: ClusterAccount
metadata: {name: shared}
spec:
  server: https://ghes.example.com
  credentialsSecretRef: {namespace: ops, name: ghes-bot}
  prune: {mode: Enabled, keep: {ids: [7]}}
"#,
    );
}

// (e) Example manifests deserialize with defaults applied, and pass the schema.

const EXAMPLE_AUTHORIZATION: &str = r#"
apiVersion: oauth.ghes.io/v1alpha1
kind: Authorization
metadata:
  name: ci-bot
  namespace: team-a
spec:
  accountRef: {name: ghes-bot}
  scopes: [repo, "read:org"]
  noteUrl: https://git.example.com/team-a
  rotation: {period: 720h, gracePeriod: 1h}
"#;

const EXAMPLE_ACCOUNT: &str = r#"
apiVersion: oauth.ghes.io/v1alpha1
kind: Account
metadata:
  name: ghes-bot
  namespace: team-a
spec:
  server: https://ghes.example.com
  credentialsSecretRef:
    name: ghes-bot
    totpSecretKey: totpSecret
  prune:
    mode: Enabled
"#;

const EXAMPLE_CLUSTER_ACCOUNT: &str = r#"
apiVersion: oauth.ghes.io/v1alpha1
kind: ClusterAccount
metadata:
  name: shared-bot
spec:
  server: https://ghes.example.com
  apiUrl: https://ghes-api.example.com/api/v3
  credentialsSecretRef: {namespace: ghes-system, name: shared-bot}
  requestsPerSecond: 2.5
  allowedNamespaces: {matchLabels: {ghes.example.com/tokens: allowed}}
"#;

#[test]
fn example_authorization_deserializes_with_defaults() {
    let auth: Authorization = serde_yaml::from_str(EXAMPLE_AUTHORIZATION).unwrap();
    assert_eq!(auth.spec.account_ref.kind, AccountKind::Account);
    assert_eq!(auth.spec.scopes, ["repo", "read:org"]);
    assert_eq!(auth.secret_name(), "ci-bot");
    assert_eq!(auth.spec.secret.key, "token");
    assert_eq!(auth.note(), "team-a/ci-bot");
    assert_eq!(auth.spec.deletion_policy, DeletionPolicy::Delete);
    assert_eq!(
        auth.spec.rotation_period(),
        Some(std::time::Duration::from_secs(720 * 3600))
    );
    assert_eq!(
        auth.spec.grace_period(),
        std::time::Duration::from_secs(3600)
    );
    assert!(auth.status.is_none());
}

#[test]
fn example_accounts_deserialize_with_defaults() {
    let account: Account = serde_yaml::from_str(EXAMPLE_ACCOUNT).unwrap();
    let settings = &account.spec.settings;
    assert_eq!(settings.requests_per_second, 5.0);
    assert_eq!(settings.burst, 10);
    assert_eq!(settings.sync_interval.as_str(), "5m");
    assert_eq!(settings.prune.mode, PruneMode::Enabled);
    assert_eq!(settings.prune.min_age.as_str(), "10m");
    assert_eq!(settings.prune.max_deletions_per_run, 10);
    assert_eq!(account.spec.credentials_secret_ref.username_key, "username");
    assert_eq!(
        account
            .spec
            .credentials_secret_ref
            .totp_secret_key
            .as_deref(),
        Some("totpSecret")
    );

    let cluster: ClusterAccount = serde_yaml::from_str(EXAMPLE_CLUSTER_ACCOUNT).unwrap();
    assert_eq!(cluster.spec.settings.requests_per_second, 2.5);
    assert_eq!(cluster.spec.credentials_secret_ref.namespace, "ghes-system");
    assert_eq!(
        cluster.spec.settings.api_root(),
        "https://ghes-api.example.com/api/v3"
    );
}

fn validator(kind: &str) -> jsonschema::Validator {
    let schema = serde_json::to_value(root_schema(&crd(kind))).unwrap();
    jsonschema::validator_for(&schema).expect("the CRD schema is a valid JSON schema")
}

fn yaml_value(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn examples_pass_the_schema() {
    for (kind, example) in [
        ("Authorization", EXAMPLE_AUTHORIZATION),
        ("Account", EXAMPLE_ACCOUNT),
        ("ClusterAccount", EXAMPLE_CLUSTER_ACCOUNT),
    ] {
        let validator = validator(kind);
        let errors: Vec<String> = validator
            .iter_errors(&yaml_value(example))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{kind}: {errors:?}");
    }
}

#[test]
fn bad_manifests_are_refused_by_the_schema() {
    let refused = |kind: &str, patch: Value, base: &str| {
        let mut manifest = yaml_value(base);
        merge(&mut manifest, patch.clone());
        assert!(
            !validator(kind).is_valid(&manifest),
            "{kind} with {patch} should be refused"
        );
    };
    let auth = EXAMPLE_AUTHORIZATION;
    refused("Authorization", json!({"spec": {"scopes": ["Repo"]}}), auth);
    refused(
        "Authorization",
        json!({"spec": {"scopes": ["repo:"]}}),
        auth,
    );
    refused(
        "Authorization",
        json!({"spec": {"deletionPolicy": "Retain"}}),
        auth,
    );
    refused(
        "Authorization",
        json!({"spec": {"accountRef": {"kind": "Team"}}}),
        auth,
    );
    refused(
        "Authorization",
        json!({"spec": {"noteUrl": "ftp://x"}}),
        auth,
    );
    refused(
        "Authorization",
        json!({"spec": {"note": "x".repeat(256)}}),
        auth,
    );
    refused(
        "Authorization",
        json!({"spec": {"rotation": {"period": "30d"}}}),
        auth,
    );
    refused(
        "Authorization",
        json!({"spec": {"secret": {"name": "Not_A_Name"}}}),
        auth,
    );
    refused(
        "Authorization",
        json!({"spec": {"app": {"clientId": "has/slash", "clientSecretRef": {"name": "a"}}}}),
        auth,
    );

    let account = EXAMPLE_ACCOUNT;
    refused(
        "Account",
        json!({"spec": {"server": "http://ghes.example.com"}}),
        account,
    );
    refused(
        "Account",
        json!({"spec": {"requestsPerSecond": 0.01}}),
        account,
    );
    refused("Account", json!({"spec": {"burst": 0}}), account);
    refused(
        "Account",
        json!({"spec": {"syncInterval": "5 minutes"}}),
        account,
    );
    refused(
        "Account",
        json!({"spec": {"prune": {"mode": "Always"}}}),
        account,
    );
    refused(
        "Account",
        json!({"spec": {"prune": {"maxDeletionsPerRun": 1001}}}),
        account,
    );
    refused(
        "Account",
        json!({"spec": {"caBundle": "not a certificate"}}),
        account,
    );

    refused(
        "ClusterAccount",
        json!({"spec": {"credentialsSecretRef": {"namespace": null}}}),
        EXAMPLE_CLUSTER_ACCOUNT,
    );
}

/// JSON merge patch (RFC 7386): `null` removes a key.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

#[test]
fn account_credentials_namespace_exists_only_on_cluster_accounts() {
    let namespaced = crd("Account");
    let refs = schema_at(&namespaced, "spec.credentialsSecretRef");
    assert!(!refs.properties.as_ref().unwrap().contains_key("namespace"));
    assert!(
        !root_schema(&namespaced)
            .properties
            .as_ref()
            .and_then(|p| p["spec"].properties.as_ref())
            .unwrap()
            .contains_key("allowedNamespaces")
    );

    let cluster = crd("ClusterAccount");
    let refs = schema_at(&cluster, "spec.credentialsSecretRef");
    assert!(refs.required.iter().flatten().any(|r| r == "namespace"));
}

// CEL rules the API server enforces (the test server evaluates them: tests/bad_input.rs).

fn rules_at(kind: &str, path: &str) -> Vec<String> {
    let crd = crd(kind);
    schema_at(&crd, path)
        .x_kubernetes_validations
        .iter()
        .flatten()
        .map(|r| r.rule.clone())
        .collect()
}

#[test]
fn cel_rules_guard_immutability_and_durations() {
    assert_eq!(
        rules_at("Authorization", "spec.accountRef"),
        ["self == oldSelf"]
    );
    assert_eq!(
        rules_at("Authorization", "spec.app.clientId"),
        ["self == oldSelf"]
    );
    assert_eq!(
        rules_at("Authorization", "spec"),
        [
            "has(self.app) == has(oldSelf.app)",
            "(has(self.managementPolicy) && self.managementPolicy == 'Observe') == has(self.observe)"
        ]
    );
    assert!(
        rules_at("Authorization", "spec.rotation")[0]
            .contains("duration(self.gracePeriod) < duration(self.period)")
    );
    for kind in ["Account", "ClusterAccount"] {
        assert_eq!(
            rules_at(kind, "spec.syncInterval"),
            ["duration(self) >= duration('30s')"]
        );
    }
    // Every rule has a message that tells the user what to do.
    for crd in api::crds() {
        let json = serde_json::to_value(root_schema(&crd)).unwrap();
        let mut stack = vec![&json];
        while let Some(v) = stack.pop() {
            if let Some(Value::Array(rules)) = v.get("x-kubernetes-validations") {
                for rule in rules {
                    assert!(
                        rule["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{rule}"
                    );
                }
            }
            match v {
                Value::Object(map) => stack.extend(map.values()),
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
    }
}

#[test]
fn condition_lists_are_maps_keyed_by_type() {
    for kind in ["Authorization", "Account", "ClusterAccount"] {
        let crd = crd(kind);
        let conditions = schema_at(&crd, "status.conditions");
        assert_eq!(conditions.x_kubernetes_list_type.as_deref(), Some("map"));
        assert_eq!(
            conditions.x_kubernetes_list_map_keys,
            Some(vec!["type".to_owned()])
        );
    }
    let crd = crd("Authorization");
    assert_eq!(
        schema_at(&crd, "spec.scopes")
            .x_kubernetes_list_type
            .as_deref(),
        Some("set")
    );
    assert_eq!(
        schema_at(&crd, "status.issuedAt").format.as_deref(),
        Some("date-time")
    );
}
