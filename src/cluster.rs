//! Reaching and reading the cluster: a client from a kubeconfig, the namespaces the operator
//! watches (or all of them), an `Api` for one scope, and listings read page by page.

use kube::{Api, Client};

/// A listing read page by page (500 objects each), so no single answer holds a whole fleet.
pub struct Pages<'a, K: Clone> {
    api: &'a Api<K>,
    /// The next page's parameters; `None` once the last page was read.
    next: Option<kube::api::ListParams>,
}

impl<'a, K> Pages<'a, K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    /// Objects listed per page.
    const SIZE: u32 = 500;

    /// The listing of every object of `api`.
    pub fn of(api: &'a Api<K>) -> Self {
        Self {
            api,
            next: Some(kube::api::ListParams::default().limit(Self::SIZE)),
        }
    }

    /// The next page; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<K>>, kube::Error> {
        let Some(params) = self.next.take() else {
            return Ok(None);
        };
        let list = self.api.list(&params).await?;
        self.next = list
            .metadata
            .continue_
            .filter(|token| !token.is_empty())
            .map(|token| params.continue_token(&token));
        Ok(Some(list.items))
    }

    /// Every object, all pages read.
    pub async fn all(mut self) -> Result<Vec<K>, kube::Error> {
        let mut all = Vec::new();
        while let Some(items) = self.next().await? {
            all.extend(items);
        }
        Ok(all)
    }
}

/// The scopes the watched namespaces make: each of them, or (none named) every namespace.
pub fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    }
}

/// The API of a namespaced kind in one namespace (`Some`) or in every namespace (`None`).
pub fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// A client of the cluster of `kubeconfig` (default: `KUBECONFIG`, else `~/.kube/config`,
/// else in-cluster).
pub async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|error| anyhow::anyhow!("kubeconfig {}: {error}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|error| anyhow::anyhow!("no usable kubeconfig: {error}"))?,
    };
    Client::try_from(config).map_err(|error| anyhow::anyhow!("Kubernetes client: {error}"))
}
