//! The worker never changes the database schema: only the API applies migrations (at
//! its start, or `attendance-api migrate`), so that several workers and an API starting
//! together never race to migrate. A worker that finds migrations pending waits for
//! them, saying so, up to a limit, then exits with what to do.

use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, DbErr};

/// How long a starting worker waits for the schema, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchemaWait {
    pub limit: Duration,
    pub poll: Duration,
}

impl SchemaWait {
    /// Long enough for an API started at the same time to migrate.
    pub const DEFAULT_LIMIT: Duration = Duration::from_secs(300);
    pub const POLL: Duration = Duration::from_secs(2);

    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            poll: Self::POLL.min(limit.max(Duration::from_millis(100))),
        }
    }
}

impl Default for SchemaWait {
    fn default() -> Self {
        Self::new(Self::DEFAULT_LIMIT)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("could not read the database's migration status")]
    Check(#[source] DbErr),
    #[error(
        "the database schema is not current after waiting {waited_s} s ({pending} \
         migrations pending, the first {first}); the worker does not migrate: run \
         `attendance-api migrate` (or start attendance-api, which migrates at start), \
         then start the worker again"
    )]
    Pending {
        pending: usize,
        first: String,
        waited_s: u64,
    },
}

/// Returns once every migration this build knows has been applied. Reads only: a
/// database without the migrations table is left without it.
pub async fn wait_until_current(
    db: &DatabaseConnection,
    wait: SchemaWait,
) -> Result<(), SchemaError> {
    let start = Instant::now();
    loop {
        let pending = Migrator::get_pending_migrations_read_only(db)
            .await
            .map_err(SchemaError::Check)?;
        let Some(first) = pending.first() else {
            tracing::info!("database schema is current");
            return Ok(());
        };
        let first = first.name().to_string();
        let waited = start.elapsed();
        if waited >= wait.limit {
            return Err(SchemaError::Pending {
                pending: pending.len(),
                first,
                waited_s: waited.as_secs(),
            });
        }
        tracing::warn!(
            pending = pending.len(),
            first = %first,
            waited_s = waited.as_secs(),
            limit_s = wait.limit.as_secs(),
            "waiting for the database schema: migrations are pending, and the API applies \
             them (at its start, or `attendance-api migrate`)"
        );
        tokio::time::sleep(wait.poll).await;
    }
}
