//! The worker never migrates: started against a database the API has not migrated yet,
//! it waits (saying what for) and gives up with what to do, leaving the database as it
//! found it; once the migrations are applied, it starts. Runs the real binary against a
//! fresh PostgreSQL database (`TEST_DATABASE_URL`).

mod jobs_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobs_support::TestDb;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement};

fn worker_command(database_url: &str, dir: &Path, wait_secs: u64) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_attendance-worker"));
    cmd.arg("run")
        .env_remove("LOG_FORMAT")
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", database_url)
        .env(
            "QUEUE_URL",
            std::env::var("TEST_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        )
        .env(
            "STORAGE_URL",
            format!("file://{}", dir.join("blobs").display()),
        )
        .env("MODEL_DIR", jobs_support::model_dir())
        .env("DEVICE", "cpu")
        .env("SCHEMA_WAIT_SECS", wait_secs.to_string());
    cmd
}

async fn tables(db: &TestDb) -> i64 {
    let row = db
        .db
        .query_one_raw(Statement::from_string(
            db.db.get_database_backend(),
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// Waits until the log file holds `needle`, failing with the log if the process exits
/// or `timeout` passes first.
async fn wait_for_log(child: &mut Child, log: &Path, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the worker exited ({status}) before logging {needle:?}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the worker's log within {timeout:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_worker_waits_for_the_api_to_migrate_and_never_migrates_itself() {
    let db = TestDb::postgres_empty().await;
    let url = db.postgres_url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(tables(&db).await, 0, "a fresh database");

    // A short limit: it waits, then exits with what to do; the database is untouched.
    let started = Instant::now();
    let out = worker_command(&url, dir.path(), 3).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "gave up before its limit:\n{stderr}"
    );
    assert!(
        stderr.contains("waiting for the database schema"),
        "{stderr}"
    );
    assert!(stderr.contains("attendance-api migrate"), "{stderr}");
    assert_eq!(tables(&db).await, 0, "the worker created tables:\n{stderr}");

    // A long limit: it waits; the migrations are applied meanwhile (what
    // `attendance-api migrate` does); it starts.
    let log = dir.path().join("worker.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = worker_command(&url, dir.path(), 120)
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    wait_for_log(
        &mut child,
        &log,
        "waiting for the database schema",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(tables(&db).await, 0);
    Migrator::up(&db.db, None).await.expect("migrations apply");
    wait_for_log(
        &mut child,
        &log,
        "database schema is current",
        Duration::from_secs(30),
    )
    .await;
    child.kill().ok();
    child.wait().ok();
    db.cleanup().await;
}
