//! `migration up|down|status|fresh|...` — sea-orm-migration's CLI over [`migration::Migrator`].
//! Reads `DATABASE_URL` (or `-u`).

#[tokio::main]
async fn main() {
    sea_orm_migration::cli::run_cli(migration::Migrator).await;
}
