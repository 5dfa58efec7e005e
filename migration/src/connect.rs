//! Opening the database, for the API and the worker alike: both link this crate, and
//! a connection is only useful once these migrations have run.

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::Migrator;

/// Connects to `url` (creating the directory of a SQLite file if needed) and applies
/// pending migrations.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection, DbErr> {
    let db = connect(url).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// Connects to `url`, creating the directory of a SQLite file if needed, without
/// touching the schema.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    if let Some(dir) = sqlite_dir(url)
        && let Err(e) = std::fs::create_dir_all(&dir)
    {
        return Err(DbErr::Custom(format!(
            "cannot create the database directory {}: {e}",
            dir.display()
        )));
    }
    let mut options = ConnectOptions::new(url.to_string());
    options.sqlx_logging(false);
    Database::connect(options).await
}

/// The directory holding a SQLite database file, when the URL names one.
fn sqlite_dir(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn finds_the_sqlite_directory() {
        assert_eq!(
            sqlite_dir("sqlite://data/attendance.db?mode=rwc"),
            Some(PathBuf::from("data"))
        );
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_dir("sqlite://x.db"), None);
        assert_eq!(sqlite_dir("postgres://u@h/db"), None);
    }

    #[tokio::test]
    async fn a_sqlite_file_gets_its_directory_and_the_schema() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("nested/dir/attendance.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let db = connect_and_migrate(&url).await.expect("connect");
        assert!(file.exists());
        let applied = Migrator::get_applied_migrations(&db).await.unwrap();
        assert_eq!(applied.len(), Migrator::migrations().len());
    }
}
