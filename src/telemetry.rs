//! Logging: `tracing` to stderr (or a file), as plain text for people or JSON lines for log
//! pipelines.
//! The level comes from `--log-level` unless `RUST_LOG` gives a fuller filter.

use std::path::Path;
use std::sync::Mutex;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber, writing to stderr, or to `file` (created or truncated) when
/// given. `level` is an `EnvFilter` directive such as `info` or
/// `ghes_oauth_operator=debug,kube=warn`; `RUST_LOG`, when set, wins.
pub fn init(format: LogFormat, level: &str, file: Option<&Path>) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(directives),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|error| format!("invalid log level {level:?}: {error}"))?;
    // Colours only for a person at a terminal: container logs and files get plain text.
    let (writer, ansi) = match file {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|error| {
                format!("cannot write the log file {}: {error}", path.display())
            })?;
            (BoxMakeWriter::new(Mutex::new(file)), false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|error| format!("cannot install the logger: {error}"))
}
