//! `attendance-api`: `serve` (default), `migrate`, `keys create`.

use anyhow::Context;
use api::auth::{self, Role};
use clap::{Parser, Subcommand, ValueEnum};
use common::Config;

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
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
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
        Command::Keys {
            command: KeysCommand::Create { role, name },
        } => {
            let db = api::database::connect_and_migrate(&config.database_url)
                .await
                .context("could not open the database")?;
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Teacher => Role::Teacher,
            };
            let created = auth::create_key(&db, &name, role)
                .await
                .context("could not create the key")?;
            println!("{}", created.key);
            eprintln!(
                "created {role:?} key {:?} ({}…); it is shown only this once",
                created.row.name, created.row.prefix
            );
        }
    }
    Ok(())
}
