//! The `ghes-oauth-operator` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use ghes_oauth_operator::cli::{self, Cli};
use ghes_oauth_operator::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_invoked();
    // The demo's output is its table: the controllers' logs go to a file unless --verbose.
    let log_file: Option<std::path::PathBuf> = match &cli.command {
        #[cfg(feature = "demo")]
        cli::Command::Demo(args) if !args.verbose => Some(args.log_path()),
        _ => None,
    };
    // `plan` prints a report for a review: only warnings on stderr, unless asked otherwise.
    let log_level = match &cli.command {
        cli::Command::Plan(_)
            if std::env::var_os("LOG_LEVEL").is_none() && cli.log_level == "info" =>
        {
            "warn"
        }
        _ => cli.log_level.as_str(),
    };
    if let Err(error) = telemetry::init(cli.log_format, log_level, log_file.as_deref()) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    match cli::execute(cli.command).await {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
