//! `attendance-api`: `serve` (default), `migrate`, `keys create|list|revoke`.

use anyhow::Context;
use api::{
    auth::Role,
    services::keys::{self, Manager, NewKey},
};
use clap::{Parser, Subcommand, ValueEnum};
use common::Config;
use sea_orm::ActiveEnum;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "attendance-api",
    version,
    about = "Face-recognition attendance HTTP API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (shown once; only its hash is stored).
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        name: String,
        /// The department a department_admin or teacher key is confined to.
        #[arg(long)]
        department: Option<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id; it is refused from the next request on.
    Revoke { id: Uuid },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    #[value(name = "department_admin", alias = "department-admin")]
    DepartmentAdmin,
    Teacher,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env().context("invalid configuration")?;
    common::telemetry::init("attendance-api");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = api::build(&config).await.context("startup failed")?;
            // On stdout, beside the first admin key: what a person starting it needs.
            println!(
                "attendance-api listening on http://{addr} (API docs: http://{addr}/docs)",
                addr = app.addr()
            );
            app.run_until_stopped().await.context("server failed")?;
        }
        Command::Migrate => {
            api::database::connect_and_migrate(&config.database_url)
                .await
                .context("migration failed")?;
            println!("database is up to date");
        }
        Command::Keys { command } => {
            let db = api::database::connect_and_migrate(&config.database_url)
                .await
                .context("could not open the database")?;
            // Whoever runs the CLI has the database: the operator manages every key.
            run_keys(&db, command).await?;
        }
    }
    Ok(())
}

async fn run_keys(db: &sea_orm::DatabaseConnection, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            role,
            name,
            department,
        } => {
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::DepartmentAdmin => Role::DepartmentAdmin,
                RoleArg::Teacher => Role::Teacher,
            };
            let created = keys::create(
                db,
                &Manager::Admin,
                NewKey {
                    name,
                    role,
                    department,
                },
            )
            .await
            .context("could not create the key")?;
            println!("{}", created.key);
            eprintln!(
                "created {} key {} {:?} ({}…); it is shown only this once",
                role.to_value(),
                created.row.id,
                created.row.name,
                created.row.prefix
            );
        }
        KeysCommand::List => {
            let all = keys::list(db, &Manager::Admin)
                .await
                .context("could not list the keys")?;
            println!("id\trole\tdepartment\tname\tprefix\tcreated_at\tlast_used_at\trevoked_at");
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
            };
            for k in all {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.role.to_value(),
                    k.department.as_deref().unwrap_or("-"),
                    k.name,
                    k.prefix,
                    k.created_at.to_rfc3339(),
                    time(k.last_used_at),
                    time(k.revoked_at),
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let key = keys::revoke(db, &Manager::Admin, id)
                .await
                .with_context(|| format!("could not revoke key {id}"))?;
            eprintln!("revoked key {} {:?}", key.id, key.name);
        }
    }
    Ok(())
}
