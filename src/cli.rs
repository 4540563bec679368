//! The command line: `run`, `crds`, `emulator`, `demo`, `version`. Every flag of a long-running
//! command has an environment-variable twin, so the same settings work in a Deployment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::emulator::{AppSpec, EmulatorConfig, RateLimit, Settings, UserSpec};
use crate::telemetry::LogFormat;

/// Manages GitHub Enterprise Server OAuth authorizations declared as Kubernetes resources.
#[derive(Debug, Parser)]
#[command(name = "ghes-oauth-operator", version, about, long_about = None)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
    /// Log level or filter directives (e.g. `info`, `ghes_oauth_operator=debug`); `RUST_LOG` wins.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers against the cluster of the current kubeconfig (or in-cluster).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD with --out.
    Crds(CrdsArgs),
    /// Serve the GHES emulator (OAuth Authorizations API under /api/v3) for tests and demos.
    Emulator(EmulatorArgs),
    /// Start the GHES emulator and take the GHES client through a token's life; exits 0 on success.
    Demo,
    /// Print the RBAC rules the controller needs, as JSON (what the Helm chart grants).
    Rbac,
    /// Print the version.
    Version,
}

/// `run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated or repeated; empty watches all namespaces.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Reconciles running at once per controller.
    #[arg(long, env = "CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Timeout of one GHES request, in seconds.
    #[arg(long, env = "GHES_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub ghes_timeout: u64,
    /// Name of this instance in Events (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
}

impl RunArgs {
    /// The controller options these flags describe.
    pub fn options(&self) -> crate::controller::RunOptions {
        crate::controller::RunOptions {
            namespaces: self
                .namespaces
                .iter()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty())
                .collect(),
            concurrency: self.concurrency,
            ghes_timeout: std::time::Duration::from_secs(self.ghes_timeout),
            instance: self.instance.clone(),
        }
    }
}

/// `crds` options.
#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
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

fn parse_rate_limit(value: &str) -> Result<RateLimit, String> {
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

/// Carries out one subcommand; the error is the message to print.
pub async fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Run(args) => {
            let client = kube::Client::try_default()
                .await
                .map_err(|error| format!("cannot reach Kubernetes: {error}"))?;
            crate::controller::run(client, args.options(), shutdown_signal()).await;
            Ok(())
        }
        Command::Crds(args) => match args.out {
            None => {
                let yaml = crate::api::crds_yaml().map_err(|error| error.to_string())?;
                print_out(&yaml)
            }
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
                for (name, yaml) in crate::api::crd_files().map_err(|error| error.to_string())? {
                    let path = dir.join(name);
                    std::fs::write(&path, yaml)
                        .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
                    println!("wrote {}", path.display());
                }
                Ok(())
            }
        },
        Command::Emulator(args) => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
            let address = listener
                .local_addr()
                .map_err(|error| format!("cannot read the listening address: {error}"))?;
            println!("GHES emulator listening on http://{address}/api/v3");
            crate::emulator::serve(args.config(), listener, shutdown_signal())
                .await
                .map_err(|error| error.to_string())
        }
        Command::Demo => {
            let mut stdout = std::io::stdout();
            crate::demo::run(&mut stdout)
                .await
                .map_err(|error| error.to_string())
        }
        Command::Rbac => {
            let rules = serde_json::to_string_pretty(&crate::controller::rbac::rules_json())
                .map_err(|error| error.to_string())?;
            print_out(&format!("{rules}\n"))
        }
        Command::Version => {
            println!("ghes-oauth-operator {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print_out(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {error}"))
        }
        _ => Ok(()),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

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
