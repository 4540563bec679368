//! What the unit tests of the write paths share: a fresh store and an internal write request.

use crate::crud::WriteRequest;
use crate::store::{State, Store, StoreConfig};

/// An empty store with the built-in resources registered.
pub(crate) fn store() -> Store {
    Store::new(StoreConfig::default(), tokio::sync::watch::channel(false).1)
}

/// A write to `group/v1 plural` in `namespace` as the test's own internal user.
pub(crate) fn write_request(
    st: &State,
    group: &str,
    plural: &str,
    namespace: &str,
) -> WriteRequest {
    let info = st.registry.get(group, "v1", plural).cloned().unwrap();
    WriteRequest::internal(info, namespace, "test")
}
