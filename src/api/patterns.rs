//! Regular expressions that the CRD schemas enforce on strings (the API server checks them, so a bad
//! manifest is refused at `kubectl apply`, not discovered by the controller).

/// A DNS-1123 subdomain: the names of Secrets, Accounts and most other objects.
pub const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A DNS-1123 label: the names of namespaces.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A key of a Secret's data.
pub const SECRET_KEY: &str = r"^[-._a-zA-Z0-9]+$";

/// A GitHub OAuth scope: `repo`, `read:org`, `admin:repo_hook`, `site_admin`, …
pub const SCOPE: &str = r"^[a-z_]+(:[a-z_]+)?$";

/// An OAuth app's client ID (it goes into a URL path, so only URL-safe characters).
pub const CLIENT_ID: &str = r"^[A-Za-z0-9._-]+$";

/// An `https://` URL of a host, without path, whitespace, query or fragment: a GHES server
/// (GHES always serves at the root of its host; its API at `/api/v3`, which the operator adds).
/// No user-info (`user:password@`): credentials belong in the credentials Secret, and the URL is
/// shown in a printer column.
pub const HTTPS_URL: &str = r"^https://[^\s/?#@]+/?$";

/// An `http://` or `https://` URL without whitespace.
pub const HTTP_URL: &str = r"^https?://[^\s/?#]+([/?#]\S*)?$";

/// Something that looks like a PEM certificate bundle.
pub const PEM_CERTIFICATE: &str = r"-----BEGIN CERTIFICATE-----";

/// An `https://` URL without whitespace, query or fragment: an API root override.
/// Plain `http://` only for a loopback host (`localhost`, 127.0.0.0/8, `[::1]`): elsewhere Basic
/// credentials would cross the network in clear. No user-info.
pub const API_URL: &str = r"^(https://[^\s/?#@]+|http://(localhost|127(\.[0-9]{1,3}){3}|\[::1\])(:[0-9]{1,5})?)(/[^\s?#]*)?$";
