//! Logging setup shared by every binary.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global `tracing` subscriber: level filter from `RUST_LOG` (default
/// `info`), human-readable output, or one JSON object per line when `LOG_FORMAT=json`.
///
/// Logs go to stderr: stdout belongs to the CLIs' JSON output.
///
/// Calling it again (e.g. from several tests in one process) is a no-op.
pub fn init(service_name: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    if installed.is_ok() {
        tracing::info!(
            service = service_name,
            version = env!("CARGO_PKG_VERSION"),
            "telemetry initialised"
        );
    }
}
