//! Custom resources of the `oauth.ghes.io` group and the CRDs generated from them.
//!
//! - [`authorization`]: `Authorization`, one desired token and the Secret it goes to.
//! - [`account`]: `Account` and `ClusterAccount`, who the operator acts as and how it prunes.
//! - [`conditions`]: the status conditions and how they are merged.
//! - [`duration`]: Go-style durations (`5m`, `1h30m`) as the specs spell them.
//! - [`patterns`]: the string patterns the schemas enforce.
//! - [`windows`]: rotation windows, when scheduled rotations may happen.
//!
//! The CRD YAML in `crds/` is generated from these types ([`crd_files`]) and must not be edited by
//! hand. Status types skip absent fields when serialized, so write status with server-side apply:
//! a field the operator stops sending is then removed.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

pub mod account;
pub mod authorization;
pub mod conditions;
pub mod duration;
pub mod patterns;
pub mod scopes;
pub mod windows;

pub use account::{
    Account, AccountKey, AccountResource, AccountSettings, AccountSpec, AccountStatus,
    CaBundleKind, CaBundleRef, ClusterAccount, ClusterAccountSpec, ClusterCredentialsSecretRef,
    CredentialsSecretRef, GhesUser, PruneCandidate, PruneKeep, PruneMode, PruneSkip, PruneSpec,
    PruneStatus, PruneTarget, RefusedCredentials,
};
pub use authorization::{
    AccountKind, AccountRef, Authorization, AuthorizationSpec, AuthorizationStatus,
    ClientSecretRef, DeletionPolicy, MAX_STRANDED_TOKENS, ManagementPolicy, OAuthApp,
    ObserveTarget, PreviousAuthorization, RestartKind, RestartTarget, Rotation, SecretTemplate,
    SecretType, StrandedToken, TokenSecret,
};
pub use duration::Duration;

/// The API group of every custom resource here.
pub const GROUP: &str = "oauth.ghes.io";

/// The API version of every custom resource here.
pub const VERSION: &str = "v1alpha1";

/// The finalizer that holds an Authorization until its token is revoked on GHES (or orphaned).
pub const FINALIZER: &str = "oauth.ghes.io/cleanup";

/// The finalizer that holds an Account or ClusterAccount, and the credentials Secret it names,
/// while an Authorization that uses it may still hold a token on GHES.
pub const IN_USE_FINALIZER: &str = "oauth.ghes.io/in-use";

/// The annotation whose change asks for an immediate rotation of an Authorization's token.
pub const ROTATE_ANNOTATION: &str = "oauth.ghes.io/rotate";

/// The pod template annotation a rotation sets on its restart targets: when it restarted them.
pub const RESTARTED_AT_ANNOTATION: &str = "oauth.ghes.io/restartedAt";

/// The first line of every generated CRD file.
const GENERATED_HEADER: &str =
    "# Generated from the Rust types in src/api by `ghes-oauth-operator crds`. Do not edit.\n";

/// Labels the operator puts on the objects it creates.
pub mod labels {
    use std::collections::BTreeMap;

    /// The standard label naming the tool that manages an object.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

    /// The value of [`MANAGED_BY`] on every Secret the operator creates.
    pub const MANAGED_BY_VALUE: &str = "ghes-oauth-operator";

    /// The label selector (`app.kubernetes.io/managed-by=ghes-oauth-operator`) that finds the
    /// operator's own Secrets, so its watch never sees anyone else's.
    pub fn managed_by_selector() -> String {
        format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
    }

    /// The labels every object the operator creates carries.
    pub fn managed_by_labels() -> BTreeMap<String, String> {
        BTreeMap::from([(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned())])
    }
}

/// The CRDs of `Authorization`, `Account` and `ClusterAccount`, in that order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let with_account_columns = |mut crd: CustomResourceDefinition| {
        for version in &mut crd.spec.versions {
            version.additional_printer_columns = Some(account::printer_columns());
        }
        crd
    };
    let mut crds = vec![
        Authorization::crd(),
        with_account_columns(Account::crd()),
        with_account_columns(ClusterAccount::crd()),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                reflow_descriptions(schema);
            }
        }
    }
    crds
}

/// The generated CRD files: `(file name, YAML)` pairs such as
/// `("oauth.ghes.io_authorizations.yaml", …)`, in the order of [`crds`].
pub fn crd_files() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            // The CRD's name is `<plural>.<group>`; file names follow the kubebuilder convention.
            let file_name = match name.split_once('.') {
                Some((plural, group)) => format!("{group}_{plural}.yaml"),
                None => format!("{name}.yaml"),
            };
            Ok((
                file_name,
                format!("{GENERATED_HEADER}{}", serde_yaml::to_string(&crd)?),
            ))
        })
        .collect()
}

/// Every CRD as one multi-document YAML stream (the files of [`crd_files`] joined by `---`).
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    Ok(crd_files()?
        .into_iter()
        .map(|(_, yaml)| yaml)
        .collect::<Vec<_>>()
        .join("---\n"))
}

/// Joins the lines of each paragraph of every description: doc comments wrap at 100 columns, but
/// `kubectl explain` wraps text itself and would otherwise show the hard line breaks.
fn reflow_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(description) = &mut schema.description {
        *description = reflow(description);
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten())
        .chain(schema.not.as_deref_mut());
    for child in children {
        reflow_descriptions(child);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(items)) => reflow_descriptions(items),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(reflow_descriptions)
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(additional)) = &mut schema.additional_properties {
        reflow_descriptions(additional);
    }
}

fn reflow(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .split('\n')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflow_joins_lines_but_keeps_paragraphs() {
        assert_eq!(reflow("one\ntwo\n\nthree\nfour"), "one two\n\nthree four");
        assert_eq!(reflow("single line"), "single line");
    }

    #[test]
    fn crd_files_are_named_group_underscore_plural() {
        let names: Vec<String> = crd_files().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "oauth.ghes.io_authorizations.yaml",
                "oauth.ghes.io_accounts.yaml",
                "oauth.ghes.io_clusteraccounts.yaml",
            ]
        );
    }

    #[test]
    fn crds_yaml_is_the_files_joined() {
        let yaml = crds_yaml().unwrap();
        assert_eq!(yaml.matches("\n---\n").count(), 2);
        assert_eq!(yaml.matches("kind: CustomResourceDefinition").count(), 3);
    }

    #[test]
    fn managed_by_selector_matches_the_labels() {
        assert_eq!(
            labels::managed_by_selector(),
            "app.kubernetes.io/managed-by=ghes-oauth-operator"
        );
        assert_eq!(labels::managed_by_labels().len(), 1);
    }
}
