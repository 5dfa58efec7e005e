//! Database connection and migrations.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Connects to `url` (creating the directory of a SQLite file if needed) and applies
/// pending migrations.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection, DbErr> {
    let db = connect(url).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

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
    use super::sqlite_dir;
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
}
