//! The command line: `run`, `crds`, `emulator`, `demo`, `rbac`, `status`, `rotate`, `suspend`,
//! `resume`, `check api`, `version`. Every flag of a long-running
//! command has an environment-variable twin, so the same settings work in a Deployment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::controller::config::OperatorConfig;
use crate::leader::{self, LeaseSettings};
use crate::metrics::Metrics;
use crate::operator::{Election, RunError};
use crate::telemetry::LogFormat;

/// Manages GitHub Enterprise Server OAuth authorizations declared as Kubernetes resources.
#[derive(Debug, Parser)]
#[command(name = "ghes-oauth-operator", version, about, long_about = None)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true,
          help_heading = "Logging")]
    pub log_format: LogFormat,
    /// Log level or filter directives (e.g. `info`, `ghes_oauth_operator=debug`); `RUST_LOG` wins.
    #[arg(
        long,
        env = "LOG_LEVEL",
        default_value = "info",
        global = true,
        help_heading = "Logging"
    )]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The name kubectl finds a plugin by: `kubectl ghes …` runs `kubectl-ghes …`.
pub const PLUGIN_NAME: &str = "kubectl-ghes";

/// What a person uses through kubectl; the rest (`run`, `crds`, the test doubles) belongs to
/// the Deployment and to development, and is hidden from the plugin's help.
const PLUGIN_COMMANDS: &[&str] = &[
    "status", "rotate", "suspend", "resume", "plan", "check", "version", "help",
];

impl Cli {
    /// Whether the binary was run as `program` names a kubectl plugin (a link or copy named
    /// `kubectl-ghes`).
    pub fn is_plugin(program: &std::ffi::OsStr) -> bool {
        std::path::Path::new(program)
            .file_stem()
            .is_some_and(|stem| stem == PLUGIN_NAME)
    }

    /// The command line as it is invoked: as `kubectl-ghes`, its help and errors read as the
    /// plugin's (`kubectl ghes status …`), and it shows the commands a person runs.
    pub fn command_for(program: &std::ffi::OsStr) -> clap::Command {
        use clap::CommandFactory;
        let command = Self::command();
        if !Self::is_plugin(program) {
            return command;
        }
        command
            .name(PLUGIN_NAME)
            .bin_name("kubectl ghes")
            .about(
                "kubectl plugin of ghes-oauth-operator: show, rotate, suspend and resume the \
                 GHES OAuth tokens that Authorizations declare, and plan a change",
            )
            .mut_subcommands(|sub| {
                let hidden = !PLUGIN_COMMANDS.contains(&sub.get_name());
                let sub = sub.hide(hidden);
                match sub.get_after_help().map(ToString::to_string) {
                    Some(text) => {
                        sub.after_help(text.replace("ghes-oauth-operator ", "kubectl ghes "))
                    }
                    None => sub,
                }
            })
    }

    /// Parses the process's arguments (see [`Cli::command_for`]); exits with clap's message on
    /// an error or for `--help`.
    pub fn parse_invoked() -> Self {
        use clap::FromArgMatches;
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let program = args.first().cloned().unwrap_or_default();
        let mut command = Self::command_for(&program);
        let matches = command.clone().get_matches_from(args);
        Self::from_arg_matches(&matches).unwrap_or_else(|error| error.format(&mut command).exit())
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers against the cluster of the current kubeconfig (or in-cluster).
    #[command(after_help = "Examples:\n  ghes-oauth-operator run\n  \
                            ghes-oauth-operator run --namespace team-a,team-b --leader-elect\n  \
                            ghes-oauth-operator --log-format json run --concurrency 8")]
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD with --out.
    #[command(
        after_help = "Examples:\n  ghes-oauth-operator crds | kubectl apply --server-side -f -\n  \
                            ghes-oauth-operator crds --out crds"
    )]
    Crds(CrdsArgs),
    /// Serve the GHES emulator (OAuth Authorizations API under /api/v3) for tests and demos.
    #[command(
        after_help = "Examples:\n  ghes-oauth-operator emulator --listen 127.0.0.1:8443 \
                            --user bot:s3cret --app Iv1.0123456789abcdef:app-secret:CI\n  \
                            ghes-oauth-operator emulator --user bot:s3cret:JBSWY3DPEHPK3PXP \
                            --rate-limit 5000/3600"
    )]
    #[cfg(feature = "demo")]
    Emulator(crate::demo::EmulatorArgs),
    /// Run the GHES emulator, a Kubernetes API test server and the controllers in one process,
    /// apply examples/, and print every Authorization once Ready; exits 0 on success.
    #[command(
        after_help = "Examples:\n  ghes-oauth-operator demo\n  cargo run --release -- demo\n  \
                            ghes-oauth-operator --log-level debug demo --verbose"
    )]
    #[cfg(feature = "demo")]
    Demo(crate::demo::DemoArgs),
    /// Print the RBAC rules the controller needs, as JSON (what the Helm chart grants).
    #[command(after_help = "Examples:\n  ghes-oauth-operator rbac | jq '.watchedNamespaces'")]
    Rbac,
    /// Show each Authorization: Ready and why, account, scopes, token, age, next rotation,
    /// previous token and latest Warning (through your kubeconfig).
    Status(crate::ctl::StatusArgs),
    /// Ask for a rotation of Authorizations (the oauth.ghes.io/rotate annotation), and with
    /// --wait wait until each holds its new token.
    Rotate(crate::ctl::RotateArgs),
    /// Suspend Authorizations (or, with --kind, Accounts and ClusterAccounts with all their
    /// Authorizations): spec.suspend, no GHES call and no Secret write until resumed; deleting
    /// one still revokes its token.
    #[command(
        after_help = "Examples:\n  ghes-oauth-operator suspend ci-bot -n team-a\n  \
                            ghes-oauth-operator suspend -l team=a -n team-a\n  \
                            ghes-oauth-operator suspend --kind Account bot -n team-a"
    )]
    Suspend(crate::ctl::SuspendArgs),
    /// Resume what `suspend` suspended: the operator catches up at once (scope changes,
    /// rotations asked for or due meanwhile).
    #[command(
        after_help = "Examples:\n  ghes-oauth-operator resume ci-bot -n team-a\n  \
                            ghes-oauth-operator resume --kind ClusterAccount shared-bot"
    )]
    Resume(crate::ctl::SuspendArgs),
    /// Check an installation.
    #[command(
        subcommand,
        after_help = "Examples:\n  ghes-oauth-operator check api --wait 60\n  \
                      ghes-oauth-operator check api --skip-lease"
    )]
    Check(crate::ctl::CheckCommand),
    /// Measure: N Authorizations against the GHES emulator and the test server (or a real
    /// cluster); prints convergence, GHES calls, steady-state cost, reconcile times and the
    /// operator's memory.
    #[cfg(feature = "demo")]
    Bench(crate::bench::BenchArgs),
    /// Show what the operator would do once manifests are applied — tokens created, updated,
    /// reissued, rotated or revoked, and what pruning would delete — with read-only calls
    /// (GHES sees GETs only). Exit status 0: no change, 2: changes, 1: an error.
    #[command(after_help = "Examples:\n  ghes-oauth-operator plan -f manifests/\n  \
                      ghes-oauth-operator plan -f team-a/ --prune -o markdown > plan.md\n  \
                      ghes-oauth-operator plan -f ci-bot.yaml --kubeconfig demo.kubeconfig -o json")]
    Plan(crate::plan::PlanArgs),
    /// Print the version.
    #[command(after_help = "Examples:\n  ghes-oauth-operator version\n  \
                            ghes-oauth-operator version -o json")]
    Version(VersionArgs),
}

/// `version` options.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format: `text` or `json`.
    #[arg(short = 'o', long, value_enum, default_value_t = VersionFormat::Text)]
    pub output: VersionFormat,
}

/// How `version` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VersionFormat {
    /// `ghes-oauth-operator 0.1.0`.
    Text,
    /// `{"name": …, "version": …}`.
    Json,
}

/// `run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What `run` and `plan` share: the namespaces, the installation, GHES.
    #[command(flatten)]
    pub operator: crate::options::OperatorOptions,
    /// Most reconciles running at once per controller. Within it each account runs as many as
    /// its requestsPerSecond needs at the latency measured, and accounts with work share it
    /// fairly.
    #[arg(help_heading = "Reconcile", long, env = "CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Name of this instance in Events, in the leader Lease and in the `User-Agent` of its GHES
    /// requests (the pod name in a cluster; default for the Lease: the host name with a random
    /// suffix).
    #[arg(help_heading = "Identity", long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Address of the admin server (`/livez`, `/readyz`, `/metrics`); port 0 picks a free port
    /// (the address is printed on stdout). In a pod, listen on `0.0.0.0:PORT` for the probes.
    #[arg(
        help_heading = "Admin server",
        long,
        env = "ADMIN_ADDRESS",
        default_value = "127.0.0.1:8080"
    )]
    pub admin_address: SocketAddr,
    /// Export the per-token gauges on `/metrics` (expiry, next rotation and Ready of each
    /// Authorization, labelled by namespace and name): one series per Authorization and
    /// gauge. `false` for very large fleets.
    #[arg(help_heading = "Admin server", long, env = "TOKEN_METRICS", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub token_metrics: bool,
    /// Run the controllers only while holding the leader Lease, so that replicas never both
    /// write; the others stand by.
    #[arg(help_heading = "Leader election", long, env = "LEADER_ELECT", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = false, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: `POD_NAMESPACE`, else the kubeconfig's namespace).
    #[arg(
        help_heading = "Leader election",
        long,
        env = "LEADER_ELECTION_NAMESPACE"
    )]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        help_heading = "Leader election",
        long,
        env = "LEASE_NAME",
        default_value = "ghes-oauth-operator"
    )]
    pub lease_name: String,
    /// How long the Lease stays valid after its last renewal, in seconds.
    #[arg(help_heading = "Leader election", long, env = "LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_duration: u64,
    /// How often the leader renews the Lease, in seconds.
    #[arg(help_heading = "Leader election", long, env = "LEASE_RENEW_PERIOD_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_renew_period: u64,
    /// Split the work over the replicas: K shards, one Lease each (`<lease-name>-shard-<i>`),
    /// each replica holding at most ceil(K / live replicas) of them. An account goes to shard
    /// hash(GHES server and login) mod K, its Authorizations with it. Replaces --leader-elect;
    /// the Lease flags below apply to every shard Lease. Every replica must be given the same K.
    #[arg(help_heading = "Sharding", long, env = "SHARDS", conflicts_with = "leader_elect",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::shard::MAX_SHARDS)))]
    pub shards: Option<u32>,
    /// How often a standby tries to take the Lease, and the leader retries a failed renewal,
    /// in seconds. The leader stops when no renewal succeeded for the lease duration less this.
    #[arg(help_heading = "Leader election", long, env = "LEASE_RETRY_PERIOD_SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_retry_period: u64,
}

impl RunArgs {
    /// How the replicas share the work, as these flags ask: alone, under the leader Lease,
    /// or in shards; the Leases in `--leader-election-namespace`, else `POD_NAMESPACE`, else
    /// `default_namespace`.
    pub fn election(&self, default_namespace: &str) -> Result<Election, RunError> {
        if let Some(count) = self.shards {
            return Ok(Election::Shards(crate::shard::ShardSettings {
                count,
                lease: self.lease_base(default_namespace)?,
            }));
        }
        if self.leader_elect {
            return Ok(Election::Leader(self.lease_base(default_namespace)?));
        }
        Ok(Election::Alone)
    }

    /// The Lease settings of the flags, in `--leader-election-namespace`, else `POD_NAMESPACE`,
    /// else `default_namespace`.
    fn lease_base(&self, default_namespace: &str) -> Result<LeaseSettings, RunError> {
        let namespace = self
            .operator
            .or_pod_namespace(&self.leader_election_namespace)
            .unwrap_or_else(|| default_namespace.to_owned());
        let settings = LeaseSettings {
            lease_duration: Duration::from_secs(self.lease_duration),
            renew_period: Duration::from_secs(self.lease_renew_period),
            retry_period: Duration::from_secs(self.lease_retry_period),
            ..LeaseSettings::new(
                namespace,
                self.lease_name.clone(),
                leader::default_identity(self.instance.as_deref()),
            )
        };
        settings.validate().map_err(RunError::Lease)?;
        Ok(settings)
    }
}

/// `crds` options.
#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Carries out one subcommand; the error is the message to print.
pub async fn execute(command: Command) -> anyhow::Result<u8> {
    let done = match command {
        Command::Plan(args) => return crate::plan::execute(&args, &mut std::io::stdout()).await,
        Command::Run(args) => run(args).await.map_err(anyhow::Error::from),
        Command::Crds(args) => match args.out {
            None => {
                let yaml = crate::api::crds_yaml().map_err(anyhow::Error::msg)?;
                print_out(&yaml)
            }
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
                for (name, yaml) in crate::api::crd_files().map_err(anyhow::Error::msg)? {
                    let path = dir.join(name);
                    std::fs::write(&path, yaml).map_err(|error| {
                        anyhow::anyhow!("cannot write {}: {error}", path.display())
                    })?;
                    println!("wrote {}", path.display());
                }
                Ok(())
            }
        },
        #[cfg(feature = "demo")]
        Command::Emulator(args) => {
            crate::demo::serve_emulator(&args, crate::operator::shutdown_signal())
                .await
                .map_err(anyhow::Error::msg)
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => crate::demo::execute(&args)
            .await
            .map_err(anyhow::Error::msg),
        Command::Rbac => {
            let rules = serde_json::to_string_pretty(&crate::controller::rbac::rules_json())
                .map_err(anyhow::Error::msg)?;
            print_out(&format!("{rules}\n"))
        }
        Command::Status(args) => print_out(&crate::ctl::status(&args).await?),
        Command::Rotate(args) => crate::ctl::rotate(&args, &mut std::io::stdout()).await,
        Command::Suspend(args) => {
            crate::ctl::set_suspend(&args, true, &mut std::io::stdout()).await
        }
        Command::Resume(args) => {
            crate::ctl::set_suspend(&args, false, &mut std::io::stdout()).await
        }
        Command::Check(crate::ctl::CheckCommand::Api(args)) => {
            crate::ctl::check_api(&args, &mut std::io::stdout()).await
        }
        #[cfg(feature = "demo")]
        Command::Bench(args) => {
            let figures = crate::bench::run(&args).await.map_err(anyhow::Error::msg)?;
            if args.json {
                let json = serde_json::to_string_pretty(&figures).map_err(anyhow::Error::msg)?;
                print_out(&format!("{json}\n"))
            } else {
                print_out(&crate::bench::table(&figures))
            }
        }
        Command::Version(args) => match args.output {
            VersionFormat::Text => print_out(&format!(
                "ghes-oauth-operator {}\n",
                env!("CARGO_PKG_VERSION")
            )),
            VersionFormat::Json => print_out(&format!(
                "{}\n",
                serde_json::json!({
                    "name": "ghes-oauth-operator",
                    "version": env!("CARGO_PKG_VERSION"),
                })
            )),
        },
    };
    done.map(|()| 0)
}

/// `run`: resolves the flags once (a missing installation id or inconsistent Lease flags fail
/// the start with a message), then runs the operator process ([`crate::operator::run`]).
async fn run(args: RunArgs) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let client = crate::operator::client(metrics.clone()).await?;
    let election = args.election(client.default_namespace())?;
    let config = OperatorConfig {
        concurrency: args.concurrency,
        instance: args.instance.clone(),
        token_metrics: args.token_metrics,
        ..args.operator.resolve(&client).await?
    };
    crate::operator::run(client, metrics, config, args.admin_address, election).await
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("cannot write to stdout: {error}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand's `--help`, the nested ones included, ends with examples.
    #[test]
    fn every_subcommand_has_an_example() {
        fn walk(command: &mut clap::Command, path: String, missing: &mut Vec<String>) {
            for sub in command
                .get_subcommands_mut()
                .filter(|sub| sub.get_name() != "help")
            {
                let path = format!("{path} {}", sub.get_name());
                if !sub.render_long_help().to_string().contains("Examples:") {
                    missing.push(path.clone());
                }
                walk(sub, path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &mut super::Cli::command(),
            "ghes-oauth-operator".into(),
            &mut missing,
        );
        assert!(
            missing.is_empty(),
            "no Examples: in the help of {missing:?}"
        );
    }

    #[test]
    fn as_kubectl_ghes_the_help_reads_as_a_kubectl_plugins() {
        assert!(Cli::is_plugin("/home/me/.local/bin/kubectl-ghes".as_ref()));
        assert!(Cli::is_plugin("kubectl-ghes.exe".as_ref()));
        assert!(!Cli::is_plugin("/usr/bin/ghes-oauth-operator".as_ref()));
        let mut plugin = Cli::command_for("kubectl-ghes".as_ref());
        plugin.build();
        let help = plugin.render_help().to_string();
        assert!(
            help.starts_with("kubectl plugin of ghes-oauth-operator"),
            "{help}"
        );
        assert!(
            help.contains("Usage: kubectl ghes [OPTIONS] <COMMAND>"),
            "{help}"
        );
        for shown in ["status", "rotate", "suspend", "resume", "plan", "check"] {
            assert!(
                help.contains(&format!("\n  {shown} ")),
                "{shown} missing:\n{help}"
            );
        }
        for hidden in ["run", "crds", "rbac"] {
            assert!(
                !help.contains(&format!("\n  {hidden} ")),
                "{hidden} shown:\n{help}"
            );
        }
        let rotate = plugin.find_subcommand_mut("rotate").expect("rotate");
        let help = rotate.render_long_help().to_string();
        assert!(help.contains("Usage: kubectl ghes rotate"), "{help}");
        assert!(!help.contains("ghes-oauth-operator rotate"), "{help}");
        // The operator's own name keeps its full help.
        let help = Cli::command_for("ghes-oauth-operator".as_ref())
            .render_help()
            .to_string();
        assert!(help.contains("\n  run "), "{help}");
        // A hidden command still runs.
        let matches = Cli::command_for("kubectl-ghes".as_ref())
            .try_get_matches_from(["kubectl-ghes", "crds"])
            .expect("crds parses");
        assert_eq!(matches.subcommand_name(), Some("crds"));
    }

    #[test]
    fn run_help_groups_its_flags() {
        let mut cli = Cli::command();
        cli.build();
        let run = cli.find_subcommand_mut("run").unwrap();
        let help = run.render_long_help().to_string();
        let mut at = 0;
        for heading in [
            "Watch:",
            "Reconcile:",
            "Identity:",
            "Admin server:",
            "Leader election:",
            "Logging:",
        ] {
            let found = help[at..]
                .find(heading)
                .unwrap_or_else(|| panic!("{heading} missing or out of order:\n{help}"));
            at += found;
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn leader_election_flags_and_env_twins() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args) {
            Ok(Cli {
                command: Command::Run(run),
                ..
            }) => run,
            other => panic!("{other:?}"),
        };
        let run = parse(&["op", "run"]);
        assert!(!run.leader_elect);
        assert_eq!(run.admin_address, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(run.election("ns").unwrap(), Election::Alone);
        let run = parse(&[
            "op",
            "run",
            "--leader-elect",
            "--leader-election-namespace",
            "ops",
            "--instance",
            "pod-1",
            "--admin-address",
            "0.0.0.0:9090",
        ]);
        let Election::Leader(settings) = run.election("ns").unwrap() else {
            panic!("leader election asked for");
        };
        assert_eq!(settings.namespace, "ops");
        assert_eq!(settings.name, "ghes-oauth-operator");
        assert_eq!(settings.identity, "pod-1");
        assert_eq!(settings.lease_duration, Duration::from_secs(15));
        assert_eq!(settings.renew_period, Duration::from_secs(5));
        assert_eq!(settings.retry_period, Duration::from_secs(2));
        let run = parse(&["op", "run", "--leader-elect=false"]);
        assert!(!run.leader_elect);
        let run = parse(&["op", "run", "--leader-elect", "--lease-name=ops-lease"]);
        assert!(run.leader_elect);
        assert_eq!(run.lease_name, "ops-lease");
        let run = parse(&["op", "run", "--leader-elect", "--lease-renew-period", "14"]);
        assert!(run.election("ns").is_err());
    }
}
