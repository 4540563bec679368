//! `ghes-oauth-operator demo`: the newcomer's first command, on a machine with no cluster and no
//! GHES. One process runs the GHES emulator, the Kubernetes API test server and the
//! controllers; the manifests of `examples/` are applied as a user would `kubectl apply` them
//! (with each account pointed at the emulator); the demo waits until every Authorization is
//! Ready, prints what a user would check, and exits 0.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use clap::Args;
use ghes_emulator::{RateLimit, Settings};

use crate::api::{Authorization, crds};
use crate::controller::{self, config::OperatorConfig};
use ghes_emulator::{AppSpec, Emulator, EmulatorConfig, UserSpec};
use kube_testkit::TestApiServer;

/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the controllers' logs on stderr as they happen, instead of into --log-file.
    #[arg(long, short)]
    pub verbose: bool,
    /// Where the controllers' logs go without --verbose (default: ghes-oauth-operator-demo.log
    /// in the temporary directory).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// After the report, keep the GHES emulator, the test server and the controllers running
    /// until Ctrl-C, and write the test server's kubeconfig to --kubeconfig-out: for `status`,
    /// `rotate` and `plan` against the demo.
    #[arg(long)]
    pub serve: bool,
    /// Where --serve writes the test server's kubeconfig (default:
    /// ghes-oauth-operator-demo.kubeconfig in the temporary directory).
    #[arg(long, requires = "serve", value_name = "PATH")]
    pub kubeconfig_out: Option<PathBuf>,
    /// With --serve: stop the demo's own controllers after the report, and keep only the test
    /// doubles running, for operators you start yourself (`run --shards 3`, say).
    #[arg(long, requires = "serve")]
    pub stop_controllers: bool,
}

impl DemoArgs {
    /// The file the logs go to, unless --verbose.
    pub fn log_path(&self) -> PathBuf {
        self.log_file
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ghes-oauth-operator-demo.log"))
    }

    /// Where --serve writes the kubeconfig.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.kubeconfig_out
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ghes-oauth-operator-demo.kubeconfig"))
    }
}

/// `emulator` options.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on. Keep it on loopback: the emulator has no TLS and test hooks
    /// under /_emulator/ need no authentication.
    #[arg(long, env = "EMULATOR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A user as LOGIN:PASSWORD or LOGIN:PASSWORD:TOTP_BASE32 (two-factor on). Repeatable.
    #[arg(long = "user", value_name = "LOGIN:PASSWORD[:TOTP_BASE32]", value_parser = parse_user)]
    pub users: Vec<UserSpec>,
    /// An OAuth app as CLIENT_ID:CLIENT_SECRET or CLIENT_ID:CLIENT_SECRET:NAME. Repeatable.
    #[arg(long = "app", value_name = "CLIENT_ID:CLIENT_SECRET[:NAME]", value_parser = parse_app)]
    pub apps: Vec<AppSpec>,
    /// Enable GHES-style rate limiting: LIMIT requests per WINDOW seconds per user.
    #[arg(long, value_name = "LIMIT/WINDOW_SECS", value_parser = parse_rate_limit)]
    pub rate_limit: Option<RateLimit>,
    /// Give new tokens this lifetime in seconds (default: they never expire).
    #[arg(long, value_name = "SECONDS")]
    pub token_ttl: Option<u64>,
    /// Consecutive failed logins after which a user is locked out (403).
    #[arg(long, default_value_t = 5)]
    pub max_login_attempts: u32,
}

impl EmulatorArgs {
    /// The emulator configuration these flags describe.
    pub fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            users: self.users.clone(),
            apps: self.apps.clone(),
            settings: Settings {
                rate_limit: self.rate_limit,
                token_ttl_secs: self.token_ttl,
                max_login_attempts: self.max_login_attempts,
                ..Settings::default()
            },
        }
    }
}

fn parse_user(value: &str) -> Result<UserSpec, String> {
    UserSpec::parse(value).map_err(|error| error.to_string())
}

fn parse_app(value: &str) -> Result<AppSpec, String> {
    AppSpec::parse(value).map_err(|error| error.to_string())
}

/// Parses LIMIT/WINDOW_SECS.
pub(crate) fn parse_rate_limit(value: &str) -> Result<RateLimit, String> {
    let (limit, window) = value
        .split_once('/')
        .ok_or("expected LIMIT/WINDOW_SECS, e.g. 5000/3600")?;
    let limit = limit
        .trim()
        .parse()
        .map_err(|_| format!("LIMIT {limit:?} is not a whole number"))?;
    let window_secs = window
        .trim()
        .parse()
        .map_err(|_| format!("WINDOW_SECS {window:?} is not a whole number"))?;
    if window_secs == 0 {
        return Err("WINDOW_SECS must be at least 1".into());
    }
    Ok(RateLimit { limit, window_secs })
}

/// `emulator`: serves the GHES emulator until `shutdown` resolves.
pub async fn serve_emulator(
    args: &EmulatorArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the listening address: {error}"))?;
    println!("GHES emulator listening on http://{address}/api/v3");
    ghes_emulator::serve(args.config(), listener, shutdown)
        .await
        .map_err(|error| error.to_string())
}

/// `demo`: runs it with the report on stdout; the error names the log file.
pub async fn execute(args: &DemoArgs) -> Result<(), String> {
    let mut stdout = std::io::stdout();
    let logs = (!args.verbose).then(|| args.log_path());
    let serve = args.serve.then(|| Serve {
        kubeconfig: args.kubeconfig_path(),
        stop_controllers: args.stop_controllers,
    });
    run(&mut stdout, logs.as_deref(), serve.as_ref())
        .await
        .map_err(|error| match &logs {
            Some(path) => format!("{error}\n(the controllers' logs: {})", path.display()),
            None => error.to_string(),
        })
}

/// What `demo --serve` keeps running.
#[derive(Debug, Clone)]
pub struct Serve {
    /// Where the test server's kubeconfig is written.
    pub kubeconfig: PathBuf,
    /// Whether the demo's own controllers stop after the report.
    pub stop_controllers: bool,
}

/// The example manifests, in the order a user would apply them.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "00-namespaces.yaml",
        include_str!("../examples/00-namespaces.yaml"),
    ),
    (
        "10-account.yaml",
        include_str!("../examples/10-account.yaml"),
    ),
    (
        "20-app-token.yaml",
        include_str!("../examples/20-app-token.yaml"),
    ),
    (
        "30-personal-token.yaml",
        include_str!("../examples/30-personal-token.yaml"),
    ),
    (
        "40-cluster-account.yaml",
        include_str!("../examples/40-cluster-account.yaml"),
    ),
    (
        "50-rotated-token.yaml",
        include_str!("../examples/50-rotated-token.yaml"),
    ),
    (
        "60-repo-creds-basic-auth.yaml",
        include_str!("../examples/60-repo-creds-basic-auth.yaml"),
    ),
    (
        "61-registry-dockerconfigjson.yaml",
        include_str!("../examples/61-registry-dockerconfigjson.yaml"),
    ),
    (
        "62-git-credentials-opaque.yaml",
        include_str!("../examples/62-git-credentials-opaque.yaml"),
    ),
];

/// Longest wait for every Authorization to become Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An example manifest could not be read.
    #[error("examples/{file}: {message}")]
    Example {
        /// The file.
        file: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A test double did not start.
    #[error("cannot start {what}: {message}")]
    Start {
        /// Which one.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The Kubernetes API refused something.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Not every Authorization became Ready in time.
    #[error("not Ready after {}s: {}", READY_TIMEOUT.as_secs(), .0.join("; "))]
    NotReady(Vec<String>),
    /// Writing the report failed.
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs the demo, writing its report to `out`: where the test doubles listen, what was applied,
/// the table of Authorizations and a summary. `logs` is the file the controllers' logs went to,
/// if not stderr. With `serve`, the test server's kubeconfig is written and the test doubles
/// (and the controllers, unless stopped) keep running until Ctrl-C.
pub async fn run(
    out: &mut (dyn Write + Send),
    logs: Option<&Path>,
    serve: Option<&Serve>,
) -> Result<(), DemoError> {
    let started = Instant::now();
    let documents = load_examples()?;
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();

    let ghes = Emulator::start(emulator_config(&documents)?, loopback)
        .await
        .map_err(|error| DemoError::Start {
            what: "the GHES emulator",
            message: error.to_string(),
        })?;
    let kubernetes = TestApiServer::start(loopback)
        .await
        .map_err(|error| DemoError::Start {
            what: "the Kubernetes API test server",
            message: error.to_string(),
        })?;
    writeln!(out, "GHES emulator               {}", ghes.api_url())?;
    writeln!(out, "Kubernetes API test server  {}", kubernetes.url())?;

    let client = kubernetes
        .client("demo")
        .map_err(|error| DemoError::Start {
            what: "a Kubernetes client",
            message: error.to_string(),
        })?;
    install_crds(&client).await?;
    let operator_client = kubernetes
        .client("operator")
        .map_err(|error| DemoError::Start {
            what: "the operator's Kubernetes client",
            message: error.to_string(),
        })?;
    let (stop, stopped) = oneshot::channel::<()>();
    // examples/ keep ClusterAccount credentials where the chart installs the operator.
    let config = OperatorConfig::resolve(&operator_client, None, Some("ghes-system".into()))
        .await
        .map_err(|error| DemoError::Start {
            what: "the operator's configuration",
            message: error.to_string(),
        })?;
    let operator = tokio::spawn(controller::run(operator_client, config, async move {
        let _ = stopped.await;
    }));

    let mut applied: Vec<(String, usize)> = Vec::new();
    for (_, object) in &documents {
        let object = point_at(object, &ghes.api_url());
        apply(&client, &object).await?;
        let kind = object["kind"].as_str().unwrap_or("?");
        match applied.iter_mut().find(|(seen, _)| seen == kind) {
            Some((_, count)) => *count += 1,
            None => applied.push((kind.to_owned(), 1)),
        }
    }
    let applied: Vec<String> = applied
        .iter()
        .map(|(kind, count)| format!("{count} {kind}{}", if *count == 1 { "" } else { "s" }))
        .collect();
    writeln!(
        out,
        "applied examples/           {} (accounts pointed at the emulator)",
        applied.join(", ")
    )?;

    let authorizations = wait_until_ready(&client).await;
    let mut stop = Some((stop, operator));
    if (serve.is_none_or(|serve| serve.stop_controllers) || authorizations.is_err())
        && let Some((stop, operator)) = stop.take()
    {
        let _ = stop.send(());
        let _ = operator.await;
    }
    let authorizations = authorizations?;

    writeln!(out)?;
    print_table(out, &authorizations)?;
    let requests = ghes.requests();
    let mut by_method: BTreeMap<&str, usize> = BTreeMap::new();
    for request in &requests {
        *by_method.entry(request.method.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = by_method
        .iter()
        .map(|(method, count)| format!("{count} {method}"))
        .collect();
    writeln!(
        out,
        "\n{} Authorizations Ready in {:.1} s; {} GHES calls ({}).",
        authorizations.len(),
        started.elapsed().as_secs_f64(),
        requests.len(),
        summary.join(", ")
    )?;
    if let Some(path) = logs {
        writeln!(
            out,
            "The controllers' logs: {} (`demo --verbose` prints them instead).",
            path.display()
        )?;
    }
    writeln!(
        out,
        "Next: README.md, \"Run it against a cluster\"; the manifests are in examples/."
    )?;
    if let Some(serve) = serve {
        let path = &serve.kubeconfig;
        kubernetes
            .write_kubeconfig(path, "demo")
            .map_err(|error| DemoError::Start {
                what: "the kubeconfig",
                message: format!("{}: {error}", path.display()),
            })?;
        let path = path.display();
        let controllers = if stop.is_some() {
            "the controllers keep running"
        } else {
            "the demo's controllers stopped: start your own, e.g. \
             KUBECONFIG=<kubeconfig> ghes-oauth-operator run --shards 3 \
             --cluster-resource-namespace ghes-system --admin-address 127.0.0.1:0"
        };
        writeln!(
            out,
            "\nServing until Ctrl-C ({controllers}). The test server's kubeconfig: {path}\n  \
             ghes-oauth-operator status -A --kubeconfig {path}\n  \
             ghes-oauth-operator plan -f examples/30-personal-token.yaml --kubeconfig {path}"
        )?;
        out.flush()?;
        let _ = tokio::signal::ctrl_c().await;
        if let Some((stop, operator)) = stop {
            let _ = stop.send(());
            let _ = operator.await;
        }
    }
    ghes.shutdown().await;
    Ok(())
}

/// Every document of the examples, with the file it came from.
fn load_examples() -> Result<Vec<(&'static str, Value)>, DemoError> {
    let mut documents = Vec::new();
    for (file, text) in EXAMPLES {
        for document in serde_yaml::Deserializer::from_str(text) {
            let value: Value =
                serde::Deserialize::deserialize(document).map_err(|error| DemoError::Example {
                    file,
                    message: error.to_string(),
                })?;
            if !value.is_null() {
                documents.push((*file, value));
            }
        }
    }
    Ok(documents)
}

/// Emulator users from the accounts' credentials Secrets, apps from the Authorizations.
fn emulator_config(documents: &[(&'static str, Value)]) -> Result<EmulatorConfig, DemoError> {
    let secret_value = |namespace: &str, name: &str, key: &str| -> Option<String> {
        documents.iter().find_map(|(_, object)| {
            let metadata = &object["metadata"];
            (object["kind"] == "Secret"
                && metadata["name"] == name
                && metadata["namespace"] == namespace)
                .then(|| object["stringData"][key].as_str().map(str::to_owned))
                .flatten()
        })
    };
    let mut config = EmulatorConfig::default();
    for (file, object) in documents {
        let spec = &object["spec"];
        let credentials = match object["kind"].as_str() {
            Some("Account") => Some((
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default"),
                &spec["credentialsSecretRef"],
            )),
            Some("ClusterAccount") => Some((
                spec["credentialsSecretRef"]["namespace"]
                    .as_str()
                    .unwrap_or("default"),
                &spec["credentialsSecretRef"],
            )),
            _ => None,
        };
        if let Some((namespace, reference)) = credentials {
            let name = reference["name"].as_str().unwrap_or_default();
            let key = |field: &str, default: &str| {
                reference[field].as_str().unwrap_or(default).to_owned()
            };
            let login = secret_value(namespace, name, &key("usernameKey", "username"));
            let password = secret_value(namespace, name, &key("passwordKey", "password"));
            let (Some(login), Some(password)) = (login, password) else {
                return Err(DemoError::Example {
                    file,
                    message: format!("credentials Secret {namespace}/{name} is not in examples/"),
                });
            };
            if !config.users.iter().any(|user| user.login == login) {
                config.users.push(UserSpec {
                    login,
                    password,
                    totp_seed: None,
                });
            }
        }
        if object["kind"] == "Authorization"
            && let Some(client_id) = spec["app"]["clientId"].as_str()
        {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            let reference = &spec["app"]["clientSecretRef"];
            let secret = secret_value(
                namespace,
                reference["name"].as_str().unwrap_or_default(),
                reference["key"].as_str().unwrap_or("clientSecret"),
            )
            .ok_or_else(|| DemoError::Example {
                file,
                message: format!("the client secret of app {client_id} is not in examples/"),
            })?;
            if !config.apps.iter().any(|app| app.client_id == client_id) {
                config.apps.push(AppSpec {
                    client_id: client_id.to_owned(),
                    client_secret: secret,
                    name: format!("{client_id} (demo)"),
                });
            }
        }
    }
    Ok(config)
}

/// An account manifest with `spec.apiUrl` pointed at the emulator; other objects unchanged.
fn point_at(object: &Value, api_url: &str) -> Value {
    let mut object = object.clone();
    if matches!(object["kind"].as_str(), Some("Account" | "ClusterAccount")) {
        object["spec"]["apiUrl"] = json!(api_url);
    }
    object
}

/// Installs the CRDs by server-side apply.
pub(crate) async fn install_crds(client: &Client) -> Result<(), kube::Error> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("demo").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    Ok(())
}

/// Applies one manifest by server-side apply, as `kubectl apply --server-side` would.
pub(crate) async fn apply(client: &Client, object: &Value) -> Result<(), kube::Error> {
    let (group, version) = match object["apiVersion"]
        .as_str()
        .unwrap_or("v1")
        .split_once('/')
    {
        Some((group, version)) => (group.to_owned(), version.to_owned()),
        None => (
            String::new(),
            object["apiVersion"].as_str().unwrap_or("v1").to_owned(),
        ),
    };
    let kind = object["kind"].as_str().unwrap_or_default();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, kind));
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply("demo").force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// Waits until every Authorization is Ready=True for its current generation.
async fn wait_until_ready(client: &Client) -> Result<Vec<Authorization>, DemoError> {
    let api = Api::<Authorization>::all(client.clone());
    let started = Instant::now();
    loop {
        let list = api.list(&Default::default()).await?.items;
        let waiting: Vec<String> = list
            .iter()
            .filter(|authorization| !is_ready(authorization))
            .map(|authorization| {
                let reason = authorization
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| format!("{}: {}", c.reason, c.message))
                    .unwrap_or_else(|| "no status yet".into());
                format!(
                    "{}/{} ({reason})",
                    authorization.metadata.namespace.as_deref().unwrap_or(""),
                    authorization.metadata.name.as_deref().unwrap_or("")
                )
            })
            .collect();
        if !list.is_empty() && waiting.is_empty() {
            return Ok(list);
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(DemoError::NotReady(waiting));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the Authorization is Ready=True for its current generation.
pub(crate) fn is_ready(authorization: &Authorization) -> bool {
    authorization.status.as_ref().is_some_and(|status| {
        status.observed_generation == authorization.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn print_table(out: &mut (dyn Write + Send), rows: &[Authorization]) -> std::io::Result<()> {
    let header = ["AUTHORIZATION", "SECRET", "LAST-8", "SCOPES", "GHES-ID"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|authorization| {
            let status = authorization.status.clone().unwrap_or_default();
            vec![
                format!(
                    "{}/{}",
                    authorization.metadata.namespace.as_deref().unwrap_or(""),
                    authorization.metadata.name.as_deref().unwrap_or("")
                ),
                status.secret_name.unwrap_or_default(),
                status.token_last_eight.unwrap_or_default(),
                status.scopes.join(","),
                status
                    .authorization_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    out.write_all(crate::table::render(&header, &cells).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_flag() {
        assert_eq!(
            parse_rate_limit("10/60"),
            Ok(RateLimit {
                limit: 10,
                window_secs: 60
            })
        );
        assert!(parse_rate_limit("10").is_err());
        assert!(parse_rate_limit("10/0").is_err());
    }
}
