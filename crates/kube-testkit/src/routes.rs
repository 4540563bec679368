//! The HTTP surface: authentication (any bearer token, which is the user; no credentials is
//! `system:anonymous`; any other `Authorization` scheme is 401), the request log,
//! fault injection, path parsing (`/api/v1/…`, `/apis/{group}/{version}/…`, namespaced and
//! cluster-scoped paths, subresources, the deprecated `/watch/` prefix) and dispatch to reads,
//! watches and writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::admission::Permissions;
use super::crud::{self, FieldValidation, Outcome, WriteRequest};
use super::delete::{self, DeleteOptions};
use super::discovery;
use super::errors::{ApiError, ApiResult};
use super::hooks::Endpoint;
use super::journal::{Journal, RequestRecord};
use super::openapi;
use super::patch::PatchType;
use super::read::{self, ListQuery, Output};
use super::resources::ResourceInfo;
use super::selector::{FieldSelector, LabelSelector};
use super::store::Store;
use super::watch::{self, WatchQuery};

/// The user of requests without credentials.
const ANONYMOUS: &str = "system:anonymous";

/// The largest request body accepted (the API server's limit).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The shared state of the HTTP handlers.
pub(crate) struct App {
    pub store: Arc<Store>,
    journal: Mutex<Journal>,
    seq: AtomicU64,
    /// `http://host:port`, for `/api`'s server address.
    pub server_address: String,
    /// Callers restricted to some permissions (see `admission`); others may do anything.
    pub restricted: HashMap<String, Arc<Permissions>>,
}

impl App {
    pub fn new(
        store: Arc<Store>,
        server_address: String,
        restricted: HashMap<String, Arc<Permissions>>,
    ) -> Self {
        Self {
            store,
            journal: Mutex::new(Journal::default()),
            seq: AtomicU64::new(0),
            server_address,
            restricted,
        }
    }

    /// The request log and faults (a poisoned lock is used as it is: records are plain data).
    pub fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The router: every path goes to one handler.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// What a path names.
#[derive(Clone, Debug)]
enum Target {
    Version,
    Health,
    Root,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Resource(ResourcePath),
    OpenApiRoot,
    OpenApi(String, String),
    NotFound,
}

#[derive(Clone, Debug)]
struct ResourcePath {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    watch_prefix: bool,
}

fn parse_resource_path(group: &str, version: &str, rest: &[&str]) -> Target {
    let (watch_prefix, rest) = match rest.first() {
        Some(&"watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let owned = |s: Option<&&str>| s.map(|s| (*s).to_owned());
    let path = match rest {
        [] => return Target::NotFound,
        ["namespaces", ns, sub] if matches!(*sub, "status" | "finalize") => ResourcePath {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: "namespaces".into(),
            namespace: None,
            name: Some((*ns).to_owned()),
            subresource: Some((*sub).to_owned()),
            watch_prefix,
        },
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => ResourcePath {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: (*plural).to_owned(),
            namespace: Some((*ns).to_owned()),
            name: owned(tail.first()),
            subresource: owned(tail.get(1)),
            watch_prefix,
        },
        [plural, tail @ ..] if tail.len() <= 2 => ResourcePath {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: (*plural).to_owned(),
            namespace: None,
            name: owned(tail.first()),
            subresource: owned(tail.get(1)),
            watch_prefix,
        },
        _ => return Target::NotFound,
    };
    if path.name.as_deref() == Some("") || path.namespace.as_deref() == Some("") {
        return Target::NotFound;
    }
    Target::Resource(path)
}

fn parse_path(path: &str) -> Target {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => Target::Root,
        ["version"] => Target::Version,
        ["healthz" | "livez" | "readyz", ..] => Target::Health,
        ["api"] => Target::CoreVersions,
        ["api", version] => Target::Resources(String::new(), (*version).to_owned()),
        ["api", version, rest @ ..] => parse_resource_path("", version, rest),
        ["apis"] => Target::Groups,
        ["apis", group] => Target::Group((*group).to_owned()),
        ["apis", group, version] => Target::Resources((*group).to_owned(), (*version).to_owned()),
        ["apis", group, version, rest @ ..] => parse_resource_path(group, version, rest),
        ["openapi", "v3"] => Target::OpenApiRoot,
        ["openapi", "v3", "api", version] => Target::OpenApi(String::new(), (*version).to_owned()),
        ["openapi", "v3", "apis", group, version] => {
            Target::OpenApi((*group).to_owned(), (*version).to_owned())
        }
        _ => Target::NotFound,
    }
}

/// The verb of a request, as RBAC and the request log name it.
fn verb(method: &Method, target: &Target, watch_param: bool) -> &'static str {
    let Target::Resource(path) = target else {
        return "get";
    };
    match *method {
        Method::GET if watch_param || path.watch_prefix => "watch",
        Method::GET if path.name.is_some() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if path.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

fn json_response(status: u16, body: &Value, warnings: &[String]) -> Response {
    let code = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    for warning in warnings {
        let text = format!("299 - {}", super::errors::go_quote(warning));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The handler of every request.
async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let seq = app.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let query: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let target = parse_path(&path);
    let watch_param = matches!(param("watch").as_deref(), Some("true" | "1"));
    let verb = verb(&parts.method, &target, watch_param);
    let (resource, namespace, name) = match &target {
        Target::Resource(p) => (
            match &p.subresource {
                Some(sub) => format!("{}/{sub}", p.plural),
                None => p.plural.clone(),
            },
            p.namespace.clone(),
            p.name.clone(),
        ),
        _ => (String::new(), None, None),
    };
    let content_type = header_text(&parts.headers, header::CONTENT_TYPE);
    let authorization = header_text(&parts.headers, header::AUTHORIZATION);
    let user = match authorization.as_deref().map(str::trim) {
        // kubectl (client-go) never sends credentials over plain HTTP: such requests are
        // anonymous, as on a server with anonymous authentication and no authorization.
        None => Some(ANONYMOUS.to_owned()),
        Some(value) => value
            .strip_prefix("Bearer ")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty()),
    };

    // RBAC for restricted users: a resource request their permission table lacks is refused
    // before anything else happens (discovery and other non-resource paths stay open, as the
    // system:discovery role keeps them).
    let denied = match (&target, &user) {
        (Target::Resource(p), Some(user)) => app.restricted.get(user).and_then(|permissions| {
            (!permissions.allow(&p.group, &resource, verb)).then(|| {
                ApiError::rbac_forbidden(
                    &super::errors::GroupResource {
                        group: &p.group,
                        resource: &resource,
                    },
                    name.as_deref(),
                    verb,
                    user,
                    namespace.as_deref(),
                )
                .into_response()
            })
        }),
        _ => None,
    };
    let response = match (&user, denied) {
        (None, _) => ApiError::unauthorized().into_response(),
        (Some(_), Some(denied)) => denied,
        (Some(_), None) => {
            let fault = app.journal().take_fault(
                verb,
                &resource,
                namespace.as_deref(),
                name.as_deref(),
                user.as_deref(),
            );
            let faulted = match fault {
                Some(fault) => {
                    if let Some(delay) = fault.delay_ms {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    fault
                        .status
                        .map(|code| ApiError::injected(code).into_response())
                }
                None => None,
            };
            match faulted {
                Some(response) => response,
                None => {
                    let ctx = Ctx {
                        app: &app,
                        method: parts.method.clone(),
                        headers: &parts.headers,
                        query: &query,
                        verb,
                        user: user.as_deref().unwrap_or_default(),
                    };
                    match dispatch(&ctx, &target, body).await {
                        Ok(response) => response,
                        Err(error) => error.into_response(),
                    }
                }
            }
        }
    };
    let status = response.status().as_u16();
    tracing::debug!(seq, verb, %path, status, "test API server request");
    app.journal().record(RequestRecord {
        seq,
        verb: verb.to_owned(),
        method: parts.method.to_string(),
        path,
        query: raw_query,
        status,
        user: user.unwrap_or_default(),
        resource,
        namespace,
        name,
        field_manager: param("fieldManager"),
        content_type,
    });
    response
}

struct Ctx<'a> {
    app: &'a Arc<App>,
    method: Method,
    headers: &'a HeaderMap,
    query: &'a [(String, String)],
    verb: &'static str,
    user: &'a str,
}

impl Ctx<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn output(&self) -> Output {
        Output::from_accept(&header_text(self.headers, header::ACCEPT).unwrap_or_default())
    }
}

async fn dispatch(ctx: &Ctx<'_>, target: &Target, body: Body) -> ApiResult<Response> {
    let ok = |doc: Value| Ok(json_response(200, &doc, &[]));
    let store = &ctx.app.store;
    match target {
        Target::Version => ok(discovery::version()),
        Target::Health => Ok((axum::http::StatusCode::OK, "ok").into_response()),
        Target::Root => ok(
            json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]}),
        ),
        Target::CoreVersions => ok(discovery::core_versions(&ctx.app.server_address)),
        Target::Groups => ok(discovery::group_list(&store.lock().registry)),
        Target::Group(group) => discovery::group(&store.lock().registry, group)
            .map_or_else(|| Err(ApiError::no_such_path()), ok),
        Target::Resources(group, version) => {
            discovery::resource_list(&store.lock().registry, group, version)
                .map_or_else(|| Err(ApiError::no_such_path()), ok)
        }
        Target::OpenApiRoot => {
            let st = store.lock();
            ok(openapi::root(&st.registry, st.rv))
        }
        Target::OpenApi(group, version) => {
            openapi::group_version(&store.lock().registry, group, version)
                .map_or_else(|| Err(ApiError::no_such_path()), ok)
        }
        Target::NotFound => Err(ApiError::no_such_path()),
        Target::Resource(path) => resource(ctx, path, body).await,
    }
}

fn endpoint(info: &ResourceInfo, path: &ResourcePath) -> ApiResult<Endpoint> {
    match path.subresource.as_deref() {
        None => Ok(Endpoint::Main),
        Some(sub) if info.subresources().contains(&sub) => Ok(match sub {
            "status" => Endpoint::Status,
            _ => Endpoint::Finalize,
        }),
        Some(_) => Err(ApiError::no_such_path()),
    }
}

fn selectors(
    ctx: &Ctx<'_>,
    info: &ResourceInfo,
    name: Option<&str>,
) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(ctx.param("labelSelector").unwrap_or_default())?;
    let fields = match name {
        Some(name) => FieldSelector::name(name),
        None => FieldSelector::parse(ctx.param("fieldSelector").unwrap_or_default(), info)?,
    };
    Ok((labels, fields))
}

/// How long a watch without `timeoutSeconds` (or with 0) lasts (the API server picks 30 to 60
/// minutes).
fn default_watch_timeout() -> Duration {
    use rand::Rng;
    Duration::from_secs(rand::rng().random_range(1800..3600))
}

async fn resource(ctx: &Ctx<'_>, path: &ResourcePath, body: Body) -> ApiResult<Response> {
    let store = ctx.app.store.clone();
    let info = store
        .lock()
        .registry
        .get(&path.group, &path.version, &path.plural)
        .cloned()
        .ok_or_else(ApiError::no_such_path)?;
    // A namespaced resource by name needs a namespace; a cluster-scoped one must not have one.
    if (info.namespaced && path.namespace.is_none() && path.name.is_some())
        || (!info.namespaced && path.namespace.is_some())
    {
        return Err(ApiError::no_such_path());
    }
    let endpoint = endpoint(&info, path)?;
    let namespace = path.namespace.clone().unwrap_or_default();
    let output = ctx.output();

    match ctx.verb {
        "watch" => {
            let (labels, fields) = selectors(ctx, &info, path.name.as_deref())?;
            let timeout = ctx
                .param("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|t| *t > 0)
                .map_or_else(default_watch_timeout, Duration::from_secs);
            let query = WatchQuery {
                labels,
                fields,
                resource_version: ctx.param("resourceVersion").map(str::to_owned),
                version_match: ctx.param("resourceVersionMatch").map(str::to_owned),
                allow_bookmarks: matches!(ctx.param("allowWatchBookmarks"), Some("true" | "1")),
                timeout,
                send_initial_events: ctx
                    .param("sendInitialEvents")
                    .map(|v| v == "true" || v == "1"),
            };
            watch::watch(&store, info, path.namespace.clone(), query, output)
        }
        "get" => {
            let doc = read::get(
                &store.lock(),
                &info,
                &namespace,
                path.name.as_deref().unwrap_or_default(),
                output,
            )?;
            Ok(json_response(200, &doc, &[]))
        }
        "list" => {
            let (labels, fields) = selectors(ctx, &info, None)?;
            let query = ListQuery {
                labels,
                fields,
                limit: ctx.param("limit").and_then(|l| l.parse().ok()),
                continue_token: ctx
                    .param("continue")
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
                resource_version: ctx.param("resourceVersion").map(str::to_owned),
                version_match: ctx
                    .param("resourceVersionMatch")
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned),
            };
            let doc = read::list(
                &store.lock(),
                &info,
                path.namespace.as_deref(),
                &query,
                output,
            )?;
            Ok(json_response(200, &doc, &[]))
        }
        "create" | "update" | "patch" | "delete" | "deletecollection" => {
            let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
                ApiError::new(
                    413,
                    "RequestEntityTooLarge",
                    format!("Request entity too large: limit is {MAX_BODY}"),
                )
            })?;
            let outcome = write(ctx, &info, endpoint, path, &namespace, &bytes)?;
            store.gc_wake.notify_one();
            let body = match output {
                Output::Metadata if outcome.body.get("kind") != Some(&json!("Status")) => {
                    read::partial(&outcome.body)
                }
                _ => outcome.body,
            };
            Ok(json_response(outcome.status, &body, &outcome.warnings))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({})",
                ctx.method
            ),
        )),
    }
}

fn parse_body(ctx: &Ctx<'_>, bytes: &[u8]) -> ApiResult<Value> {
    let content_type = header_text(ctx.headers, header::CONTENT_TYPE).unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/json" | "" => serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" => serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}"))),
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ])),
    }
}

/// The field manager of a request: `fieldManager`, else the `User-Agent` up to its first `/`
/// (as the API server derives it).
fn manager(ctx: &Ctx<'_>) -> (String, bool) {
    match ctx.param("fieldManager") {
        Some(m) => (m.to_owned(), true),
        None => {
            // kube-rs sends no User-Agent, so its writes without a field manager are recorded
            // under the empty manager name, as on a real API server.
            let agent = header_text(ctx.headers, header::USER_AGENT).unwrap_or_default();
            let prefix: String = agent
                .split('/')
                .next()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(128)
                .collect();
            (prefix, false)
        }
    }
}

fn write(
    ctx: &Ctx<'_>,
    info: &ResourceInfo,
    endpoint: Endpoint,
    path: &ResourcePath,
    namespace: &str,
    bytes: &[u8],
) -> ApiResult<Outcome> {
    let (manager, explicit_manager) = manager(ctx);
    if manager.len() > 128 {
        return Err(ApiError::bad_request(
            "fieldManager: Too long: may not be more than 128 bytes",
        ));
    }
    let field_validation = match ctx.param("fieldValidation") {
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Warn") | None => FieldValidation::Warn,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other}"
            )));
        }
    };
    let rq = WriteRequest {
        info: info.clone(),
        namespace: namespace.to_owned(),
        manager,
        explicit_manager,
        dry_run: ctx.param("dryRun") == Some("All"),
        endpoint,
        field_validation,
        user: ctx.user.to_owned(),
        permissions: ctx.app.restricted.get(ctx.user).cloned(),
    };
    if info.namespaced && path.namespace.is_none() && ctx.verb != "deletecollection" {
        return Err(ApiError::no_such_path());
    }
    let name = path.name.as_deref().unwrap_or_default();
    let store = &ctx.app.store;
    match ctx.verb {
        "create" => {
            if path.name.is_some() {
                return Err(ApiError::method_not_supported(&info.gr(), "create"));
            }
            let body = parse_body(ctx, bytes)?;
            crud::create(&mut store.lock(), &rq, body)
        }
        "update" => {
            let body = parse_body(ctx, bytes)?;
            crud::update(&mut store.lock(), &rq, name, body)
        }
        "patch" => {
            let content_type = header_text(ctx.headers, header::CONTENT_TYPE).unwrap_or_default();
            let force = matches!(ctx.param("force"), Some("true" | "1"));
            crud::patch(
                &mut store.lock(),
                &rq,
                name,
                PatchType::from_content_type(&content_type),
                bytes,
                force,
            )
        }
        "delete" => {
            if endpoint != Endpoint::Main {
                return Err(ApiError::method_not_supported(&info.gr(), "delete"));
            }
            let (options, dry_run) = DeleteOptions::parse(ctx.query, bytes)?;
            let rq = WriteRequest {
                dry_run: rq.dry_run || dry_run,
                ..rq
            };
            delete::delete(&mut store.lock(), &rq, name, &options)
        }
        _ => delete_collection(ctx, &rq, path, bytes),
    }
}

fn delete_collection(
    ctx: &Ctx<'_>,
    rq: &WriteRequest,
    path: &ResourcePath,
    bytes: &[u8],
) -> ApiResult<Outcome> {
    let (options, dry_run) = DeleteOptions::parse(ctx.query, bytes)?;
    let (labels, fields) = selectors(ctx, &rq.info, None)?;
    let mut st = ctx.app.store.lock();
    let targets: Vec<(String, String)> = st
        .list(&rq.info.storage, path.namespace.as_deref())
        .into_iter()
        .filter(|(_, stored)| {
            let obj = rq.info.served(stored);
            labels.matches(&obj) && fields.matches(&rq.info, &obj)
        })
        .map(|(key, _)| key)
        .collect();
    let mut items = Vec::new();
    for (ns, name) in targets {
        let one = WriteRequest {
            namespace: ns,
            dry_run: rq.dry_run || dry_run,
            ..rq.clone()
        };
        let outcome = delete::delete(&mut st, &one, &name, &options)?;
        if outcome.body.get("kind") != Some(&json!("Status")) {
            items.push(outcome.body);
        }
    }
    Ok(Outcome {
        status: 200,
        body: json!({
            "kind": format!("{}List", rq.info.kind),
            "apiVersion": rq.info.api_version(),
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items,
        }),
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource_path(path: &str) -> ResourcePath {
        match parse_path(path) {
            Target::Resource(p) => p,
            other => panic!("{path} parsed as {other:?}"),
        }
    }

    #[test]
    fn paths_parse_like_the_api_server_routes() {
        let p = resource_path("/api/v1/namespaces/ns/secrets/s");
        assert_eq!(
            (p.namespace.as_deref(), p.plural.as_str(), p.name.as_deref()),
            (Some("ns"), "secrets", Some("s"))
        );
        let p = resource_path("/apis/oauth.ghes.io/v1alpha1/namespaces/ns/authorizations/a/status");
        assert_eq!(p.subresource.as_deref(), Some("status"));
        let p = resource_path("/api/v1/namespaces/ns/status");
        assert_eq!(
            (
                p.plural.as_str(),
                p.name.as_deref(),
                p.subresource.as_deref()
            ),
            ("namespaces", Some("ns"), Some("status"))
        );
        let p = resource_path("/api/v1/namespaces/ns");
        assert_eq!(
            (p.plural.as_str(), p.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        let p = resource_path("/api/v1/watch/namespaces/ns/secrets");
        assert!(p.watch_prefix);
        let p = resource_path("/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
        assert_eq!(p.namespace, None);
        assert!(matches!(parse_path("/apis/g/v/a/b/c/d"), Target::NotFound));
    }
}
