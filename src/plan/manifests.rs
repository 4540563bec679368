//! Reading the manifests a change would apply: files or directories of YAML (or JSON)
//! documents, as `kubectl apply -f` takes them.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{Account, Authorization, ClusterAccount};

/// The objects of the manifests that bear on a plan; other kinds are counted, not read.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Authorizations.
    pub authorizations: Vec<Authorization>,
    /// Accounts.
    pub accounts: Vec<Account>,
    /// ClusterAccounts.
    pub cluster_accounts: Vec<ClusterAccount>,
    /// Secrets (credentials and client secrets a change may add).
    pub secrets: Vec<Secret>,
    /// Namespaces (a change may add one, with the labels a ClusterAccount allows).
    pub namespaces: Vec<Namespace>,
    /// Documents of other kinds, which a plan leaves aside.
    pub other: usize,
}

/// A manifest that cannot be read: the file, the document (from 1) and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", .document.map(|d| format!(" (document {d})")).unwrap_or_default())]
pub struct ManifestError {
    /// The file.
    pub file: String,
    /// The document in the file, if the error is in one.
    pub document: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// The API group of the operator's resources.
const GROUP: &str = "oauth.ghes.io/";

/// Reads every manifest under `paths` (files, or directories read recursively for `.yaml`,
/// `.yml` and `.json` files, in name order). Namespaced objects without a namespace get
/// `default_namespace`, as `kubectl apply` gives them.
pub fn load(paths: &[PathBuf], default_namespace: &str) -> Result<Manifests, ManifestError> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files)?;
    }
    let mut manifests = Manifests::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|error| ManifestError {
            file: file.display().to_string(),
            document: None,
            message: error.to_string(),
        })?;
        read_documents(&file, &text, default_namespace, &mut manifests)?;
    }
    Ok(manifests)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let error = |message: String| ManifestError {
        file: path.display().to_string(),
        document: None,
        message,
    };
    let metadata = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
    if metadata.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| error(e.to_string()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, files)?;
        } else if entry
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| matches!(ext, "yaml" | "yml" | "json"))
        {
            files.push(entry);
        }
    }
    Ok(())
}

fn read_documents(
    file: &Path,
    text: &str,
    default_namespace: &str,
    manifests: &mut Manifests,
) -> Result<(), ManifestError> {
    let error = |document: usize, message: String| ManifestError {
        file: file.display().to_string(),
        document: Some(document),
        message,
    };
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value: Value = serde::Deserialize::deserialize(document)
            .map_err(|e| error(number, format!("not YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        // A List (as `kubectl get -o yaml` prints) holds its objects under items.
        let objects = match value.get("kind").and_then(Value::as_str) {
            Some("List") => value
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            _ => vec![value],
        };
        for object in objects {
            add(object, default_namespace, manifests).map_err(|message| error(number, message))?;
        }
    }
    Ok(())
}

fn add(
    mut object: Value,
    default_namespace: &str,
    manifests: &mut Manifests,
) -> Result<(), String> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("no kind")?
        .to_owned();
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("no apiVersion")?
        .to_owned();
    if object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(format!("{kind} without metadata.name"));
    }
    let ours = api_version.starts_with(GROUP);
    let namespaced = (ours && matches!(kind.as_str(), "Authorization" | "Account"))
        || (api_version == "v1" && kind == "Secret");
    if namespaced
        && object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        && let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
    {
        metadata.insert("namespace".into(), Value::from(default_namespace));
    }
    match (kind.as_str(), ours, api_version.as_str()) {
        ("Authorization", true, _) => manifests.authorizations.push(typed(object, &kind)?),
        ("Account", true, _) => manifests.accounts.push(typed(object, &kind)?),
        ("ClusterAccount", true, _) => manifests.cluster_accounts.push(typed(object, &kind)?),
        ("Secret", false, "v1") => manifests.secrets.push(typed(object, &kind)?),
        ("Namespace", false, "v1") => manifests.namespaces.push(typed(object, &kind)?),
        _ => manifests.other += 1,
    }
    Ok(())
}

/// The object as its type, or the error with the path of the field at fault.
fn typed<K: DeserializeOwned>(object: Value, kind: &str) -> Result<K, String> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut object = object;
    // A Secret's stringData is what kubectl turns into data.
    if kind == "Secret"
        && let Some(string_data) = object
            .as_object_mut()
            .and_then(|o| o.remove("stringData"))
            .and_then(|v| v.as_object().cloned())
    {
        let data = object.as_object_mut().map(|o| {
            o.entry("data")
                .or_insert_with(|| Value::Object(Default::default()))
        });
        if let Some(Value::Object(data)) = data {
            for (key, value) in string_data {
                let text = value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string());
                data.insert(
                    key,
                    Value::from(data_encoding::BASE64.encode(text.as_bytes())),
                );
            }
        }
    }
    serde_json::from_value(object).map_err(|error| format!("{kind} {name:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_sorted_by_kind_and_get_the_default_namespace() {
        let mut manifests = Manifests::default();
        let text = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {username: bot, password: pw}
---
apiVersion: oauth.ghes.io/v1alpha1
kind: Authorization
metadata: {name: ci, namespace: team-a}
spec:
  accountRef: {kind: Account, name: bot}
  scopes: [repo]
  secret: {name: ci-token}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-c, labels: {tokens: allowed}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
---
"#;
        read_documents(Path::new("x.yaml"), text, "team-b", &mut manifests).unwrap();
        assert_eq!(manifests.secrets.len(), 1);
        assert_eq!(
            manifests.secrets[0].metadata.namespace.as_deref(),
            Some("team-b")
        );
        let data = manifests.secrets[0].data.as_ref().unwrap();
        assert_eq!(data["password"].0, b"pw");
        assert_eq!(manifests.authorizations.len(), 1);
        assert_eq!(manifests.namespaces.len(), 1);
        assert_eq!(manifests.namespaces[0].metadata.namespace, None);
        assert_eq!(manifests.other, 1);
    }

    #[test]
    fn a_bad_document_names_its_file_document_and_field() {
        let mut manifests = Manifests::default();
        let text = "apiVersion: oauth.ghes.io/v1alpha1\nkind: Authorization\nmetadata: {name: ci}\n\
                    spec:\n  accountRef: {kind: Bogus, name: bot}\n  scopes: [repo]\n";
        let error =
            read_documents(Path::new("pr/ci.yaml"), text, "default", &mut manifests).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("pr/ci.yaml (document 1): Authorization \"ci\""),
            "{message}"
        );
        assert!(message.contains("Bogus"), "{message}");
        let error =
            read_documents(Path::new("a.yaml"), "kind: Secret\n", "d", &mut manifests).unwrap_err();
        assert_eq!(error.to_string(), "a.yaml (document 1): no apiVersion");
    }
}
