//! The in-process worker (`QUEUE_URL=embedded`), present when the API is built with the
//! `embedded-worker` feature (the default). Without it the API links no face engine and
//! refuses the embedded queue at startup, since nothing would ever consume its jobs.

use common::Config;
use tokio::task::JoinHandle;

use crate::{AppState, StartupError};

/// Whether this build can run the job consumers inside the API process.
pub const AVAILABLE: bool = cfg!(feature = "embedded-worker");

/// Refuses an in-process worker that this build does not have, before anything is
/// opened. `available` is [`AVAILABLE`], a parameter so that both builds' answers are
/// tested in one.
pub fn ensure_available(wanted: bool, available: bool) -> Result<(), StartupError> {
    if wanted && !available {
        return Err(StartupError::NoInProcessWorker);
    }
    Ok(())
}

/// Starts the job consumers on this process's runtime.
#[cfg(feature = "embedded-worker")]
pub fn spawn(config: &Config, state: &AppState) -> Result<JoinHandle<()>, StartupError> {
    worker::service::spawn_in_process(
        config,
        state.db.clone(),
        std::sync::Arc::clone(&state.blobs),
        std::sync::Arc::clone(&state.queue),
        std::sync::Arc::clone(&state.clock),
    )
    .map_err(|e| StartupError::Worker(e.to_string()))
}

#[cfg(not(feature = "embedded-worker"))]
pub fn spawn(_config: &Config, _state: &AppState) -> Result<JoinHandle<()>, StartupError> {
    Err(StartupError::NoInProcessWorker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_the_worker_refuses_the_embedded_queue_and_says_what_to_do() {
        let refused = ensure_available(true, false).unwrap_err();
        let message = refused.to_string();
        assert!(message.contains("no in-process worker"), "{message}");
        assert!(message.contains("QUEUE_URL=amqp://"), "{message}");
        assert!(message.contains("attendance-worker"), "{message}");
        assert!(message.contains("embedded-worker feature"), "{message}");
        assert!(ensure_available(true, true).is_ok());
        assert!(ensure_available(false, false).is_ok());
    }
}
