//! The attendance HTTP API: poem + poem-openapi over sea-orm, a blob store and a job
//! queue. [`build`] is the one startup path for the binary and the tests.

pub mod auth;
pub mod database;
pub mod embedded;
pub mod error;
pub mod idempotency;
pub mod import;
pub mod limits;
pub mod metrics;
pub mod nul_bytes;
pub mod outbox;
pub mod provenance;
pub mod response_headers;
pub mod retention_schedule;
pub mod routes;
pub mod services;
pub mod state;
pub mod upload;
pub mod web_ui;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use common::{BlobError, Config, QueueError, open_blob_store, open_queue};
use poem::{
    Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
};
use sea_orm::DbErr;
use tokio::task::JoinHandle;

pub use state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not open the database")]
    Database(#[from] DbErr),
    #[error("could not open the blob store")]
    Blob(#[from] BlobError),
    #[error("could not open the job queue")]
    Queue(#[from] QueueError),
    #[error("could not create the first admin key")]
    Bootstrap(#[from] auth::BootstrapError),
    #[error("could not listen on {bind}")]
    Bind {
        bind: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start the in-process worker: {0}")]
    Worker(String),
    #[error(
        "QUEUE_URL=embedded, but this build has no in-process worker; set QUEUE_URL=amqp://… \
         and run attendance-worker, or build with the embedded-worker feature"
    )]
    NoInProcessWorker,
}

/// A built, bound application that has not started serving yet.
pub struct Application {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    state: AppState,
    cors_origins: Vec<String>,
    batch_limits: services::batches::BatchLimits,
    webhook_policy: services::webhooks::WebhookPolicy,
    limits: common::config::ServerLimits,
    background: Vec<JoinHandle<()>>,
}

/// Connects and migrates the database, opens blob store and queue, creates the first
/// admin key if there is none, starts the outbox relay, the daily retention schedule
/// (and, with the embedded queue, the in-process worker), and binds `config.bind` (port 0 picks a free port).
pub async fn build(config: &Config) -> Result<Application, StartupError> {
    embedded::ensure_available(config.embedded_queue(), embedded::AVAILABLE)?;
    tracing::info!(
        face_model = %config.face_model,
        detector = %config.detector,
        licence = config.face_model.licence(),
        "face model"
    );
    let db = database::connect_and_migrate(&config.database_url).await?;
    let blobs = open_blob_store(&config.storage_url).await?;
    let queue = open_queue(&config.queue_url).await?;
    build_with(
        config,
        AppState {
            db,
            blobs,
            queue,
            exif_utc_offset: config.exif_utc_offset,
            clock: common::clock::system(),
            privacy: config.privacy,
        },
        config.embedded_queue(),
    )
    .await
}

/// [`build`] with dependencies opened by the caller (tests share a queue this way);
/// `in_process_worker` runs the job consumers inside this process.
pub async fn build_with(
    config: &Config,
    state: AppState,
    in_process_worker: bool,
) -> Result<Application, StartupError> {
    embedded::ensure_available(in_process_worker, embedded::AVAILABLE)?;
    auth::ensure_admin_key(&state.db, &config.data_dir).await?;
    if in_process_worker {
        outbox::recover_in_process_jobs(&state.db, state.queue.as_ref()).await?;
    }

    let mut background = vec![outbox::spawn_relay(
        state.db.clone(),
        Arc::clone(&state.queue),
        outbox::RelayOptions::default(),
    )];
    // Every API process checks; the day's job id makes that one job a day.
    background.extend(retention_schedule::spawn(
        state.db.clone(),
        Arc::clone(&state.queue),
        Arc::clone(&state.clock),
        config.privacy.retention_days,
        retention_schedule::CHECK_EVERY,
    ));
    if in_process_worker {
        background.push(embedded::spawn(config, &state)?);
    }

    let acceptor = TcpListener::bind(config.bind.clone())
        .into_acceptor()
        .await
        .map_err(|source| StartupError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| StartupError::Bind {
            bind: config.bind.clone(),
            source: std::io::Error::other("no local address"),
        })?;
    tracing::info!(%addr, "listening");
    Ok(Application {
        acceptor,
        addr,
        state,
        cors_origins: config.cors_origins.clone(),
        batch_limits: services::batches::BatchLimits::from_config(config),
        webhook_policy: services::webhooks::WebhookPolicy {
            allow_private: config.webhook_allow_private,
        },
        limits: config.limits,
        background,
    })
}

impl Application {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C / SIGTERM, then drains for up to 10 s.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then drains for up to 10 s and stops the
    /// background tasks (the relay, the in-process worker).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let app = routes::app(
            self.state.clone(),
            &self.cors_origins,
            self.batch_limits,
            self.webhook_policy,
            self.limits,
        );
        let acceptor = limits::LimitedAcceptor::new(self.acceptor, &self.limits);
        let result = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(10)))
            .await;
        for task in self.background {
            task.abort();
        }
        result
    }
}

async fn shutdown_signal() {
    common::shutdown::signal().await;
    tracing::info!("shutting down");
}
