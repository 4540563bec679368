//! The `ghes-oauth-operator` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use ghes_oauth_operator::cli::{self, Cli};
use ghes_oauth_operator::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's output is its table: the controllers' logs go to a file unless --verbose.
    let log_file: Option<std::path::PathBuf> = match &cli.command {
        #[cfg(feature = "demo")]
        cli::Command::Demo(args) if !args.verbose => Some(args.log_path()),
        _ => None,
    };
    if let Err(error) = telemetry::init(cli.log_format, &cli.log_level, log_file.as_deref()) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    match cli::execute(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
