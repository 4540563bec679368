//! The GHES OAuth Authorizations API: the [`GhesApi`] trait the controller talks to, its reqwest
//! implementation [`HttpGhesClient`], wire types, typed errors, two-factor codes, paging, retries
//! and the client-side rate limit. Nothing outside this module knows the API is HTTP.

pub mod availability;
pub mod client;
pub mod error;
pub mod otp;
pub mod paging;
pub mod rate_limit;
pub mod redacted;
pub mod retry;
pub mod types;
pub mod usage;

use std::time::Duration;

use async_trait::async_trait;

pub use availability::{Availability, Outage};
pub use client::{ClientConfig, Credentials, HttpGhesClient, api_root};
pub use error::{FieldError, GhesError};
pub use otp::TotpSeed;
pub use redacted::{SecretValue, Token};
pub use retry::RetryPolicy;
pub use types::{
    AppAuthorizationRequest, AppCredentials, AppRef, Authorization, AuthorizationUpdate,
    GetOrCreated, Grant, NewAuthorization, ScopeChange,
};

/// The ten operations of the OAuth Authorizations API (`GHES-API.md`), as the operator uses them.
#[async_trait]
pub trait GhesApi: Send + Sync {
    /// One `GET /authorizations?per_page=1`, never retried and sent even while the server is
    /// marked unavailable: whether GHES answers. Any answer (an error status included) makes the
    /// server available again; a failure about the server moves the next probe one step on.
    async fn probe(&self) -> Result<(), GhesError>;

    /// The error GHES's refusal of this client's credentials left it with, when it refused
    /// them: every later call fails with it, without a request.
    fn refused(&self) -> Option<GhesError> {
        None
    }

    /// How far GHES's clock is ahead of ours (negative: behind), as its last answer's `Date`
    /// showed; `None` before any answer said.
    fn clock_offset(&self) -> Option<jiff::SignedDuration> {
        None
    }
    /// `GET /applications/grants`, every page.
    async fn list_grants(&self, client_id: Option<&str>) -> Result<Vec<Grant>, GhesError>;
    /// `GET /applications/grants/{grant_id}`.
    async fn get_grant(&self, grant_id: u64) -> Result<Grant, GhesError>;
    /// `DELETE /applications/grants/{grant_id}`: revokes the grant and all the app's tokens.
    async fn delete_grant(&self, grant_id: u64) -> Result<(), GhesError>;
    /// `GET /authorizations`, every page, each handed to `each` as it arrives: a listing of
    /// many authorizations is never held whole (the ledger keeps a smaller copy of each).
    async fn list_authorization_pages(
        &self,
        client_id: Option<&str>,
        each: &mut (dyn FnMut(Vec<Authorization>) + Send),
    ) -> Result<(), GhesError>;
    /// `GET /authorizations`, every page, collected.
    async fn list_authorizations(
        &self,
        client_id: Option<&str>,
    ) -> Result<Vec<Authorization>, GhesError> {
        let mut listed = Vec::new();
        self.list_authorization_pages(client_id, &mut |page| listed.extend(page))
            .await?;
        Ok(listed)
    }
    /// `POST /authorizations`: not idempotent; the result carries the token.
    async fn create_authorization(
        &self,
        request: &NewAuthorization,
    ) -> Result<Authorization, GhesError>;
    /// `PUT /authorizations/clients/{client_id}` with an optional fingerprint in the body.
    async fn get_or_create_for_app(
        &self,
        client_id: &str,
        fingerprint: Option<&str>,
        request: &AppAuthorizationRequest,
    ) -> Result<GetOrCreated, GhesError>;
    /// `PUT /authorizations/clients/{client_id}/{fingerprint}`: a true get-or-create.
    async fn get_or_create_for_app_and_fingerprint(
        &self,
        client_id: &str,
        fingerprint: &str,
        request: &AppAuthorizationRequest,
    ) -> Result<GetOrCreated, GhesError>;
    /// `GET /authorizations/{authorization_id}`.
    async fn get_authorization(&self, id: u64) -> Result<Authorization, GhesError>;
    /// `PATCH /authorizations/{authorization_id}`.
    async fn update_authorization(
        &self,
        id: u64,
        update: &AuthorizationUpdate,
    ) -> Result<Authorization, GhesError>;
    /// `DELETE /authorizations/{authorization_id}`.
    async fn delete_authorization(&self, id: u64) -> Result<(), GhesError>;
}

/// The API operations, for logs and metric labels (a bounded set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GET /applications/grants`
    ListGrants,
    /// `GET /applications/grants/{id}`
    GetGrant,
    /// `DELETE /applications/grants/{id}`
    DeleteGrant,
    /// `GET /authorizations`
    ListAuthorizations,
    /// `POST /authorizations`
    CreateAuthorization,
    /// `PUT /authorizations/clients/{client_id}`
    GetOrCreateForApp,
    /// `PUT /authorizations/clients/{client_id}/{fingerprint}`
    GetOrCreateForAppAndFingerprint,
    /// `GET /authorizations/{id}`
    GetAuthorization,
    /// `PATCH /authorizations/{id}`
    UpdateAuthorization,
    /// `DELETE /authorizations/{id}`
    DeleteAuthorization,
}

impl Operation {
    /// The operation id of the official description, without its tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListGrants => "list-grants",
            Self::GetGrant => "get-grant",
            Self::DeleteGrant => "delete-grant",
            Self::ListAuthorizations => "list-authorizations",
            Self::CreateAuthorization => "create-authorization",
            Self::GetOrCreateForApp => "get-or-create-authorization-for-app",
            Self::GetOrCreateForAppAndFingerprint => {
                "get-or-create-authorization-for-app-and-fingerprint"
            }
            Self::GetAuthorization => "get-authorization",
            Self::UpdateAuthorization => "update-authorization",
            Self::DeleteAuthorization => "delete-authorization",
        }
    }

    /// Whether sending the request twice has the same effect as once. Only `POST` is not.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Self::CreateAuthorization)
    }
}

/// Told about each GHES response and each rate-limit wait, for metrics.
pub trait RequestObserver: Send + Sync {
    /// A response arrived (`Some(status)`) or the request failed without one (`None`).
    fn on_response(&self, operation: Operation, status: Option<u16>);
    /// The client waited before sending because of a rate limit.
    fn on_rate_limit_wait(&self, operation: Operation, waited: Duration);
}
