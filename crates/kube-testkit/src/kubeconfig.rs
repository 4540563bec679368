//! An ordinary kubeconfig for the server: one cluster (`http://127.0.0.1:PORT`), one user whose
//! bearer token is the user's name, one context with the `default` namespace.

use serde_json::json;

use super::errors::Error;

/// The kubeconfig YAML for `server` and `user`.
pub(crate) fn kubeconfig_yaml(server: &str, user: &str) -> Result<String, Error> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testkit", "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": user}}],
        "contexts": [{"name": "testkit", "context": {"cluster": "testkit", "user": user, "namespace": "default"}}],
        "current-context": "testkit",
        "preferences": {},
    });
    serde_yaml::to_string(&config).map_err(|e| Error::Kubeconfig(e.to_string()))
}

/// A `kube::Client` for `server` whose user authenticates with the bearer token `user`: the same
/// configuration `kube::Config::from_custom_kubeconfig` makes of [`kubeconfig_yaml`] (building it
/// needs a Tokio runtime, not an `.await`).
pub(crate) fn client(server: &str, user: &str) -> Result<kube::Client, Error> {
    let url: http::Uri = server
        .parse()
        .map_err(|e: http::uri::InvalidUri| Error::Kubeconfig(e.to_string()))?;
    let mut config = kube::Config::new(url);
    config.default_namespace = "default".to_owned();
    config.auth_info = serde_json::from_value(json!({"token": user}))
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_quoted_safely() {
        let yaml = kubeconfig_yaml("http://127.0.0.1:1", "alice: {evil}").unwrap();
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["users"][0]["user"]["token"], "alice: {evil}");
        assert_eq!(
            parsed["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:1"
        );
    }
}
