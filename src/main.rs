//! The `ghes-oauth-operator` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use ghes_oauth_operator::cli::{self, Cli};
use ghes_oauth_operator::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = telemetry::init(cli.log_format, &cli.log_level) {
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
