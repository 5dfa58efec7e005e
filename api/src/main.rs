//! `attendance-api`: `serve` (default), `migrate`, `keys create|list|revoke`,
//! `import DIR --class CLASS`.

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
    /// Register a folder of students (one folder of photos per roll number, optional
    /// students.csv) as one batch, with a progress bar until every student is done.
    /// Consent: students.csv's consent and consent_note columns, or --consent for every
    /// student whose line does not say otherwise; with REQUIRE_CONSENT=true a student
    /// without it is refused.
    Import {
        /// The folder to import.
        dir: std::path::PathBuf,
        /// Default class of the students: its id, or its exact name.
        #[arg(long)]
        class: Option<String>,
        /// Record every student's consent (collected outside this system, e.g. signed
        /// forms), unless their students.csv line says consent=false.
        #[arg(long)]
        consent: bool,
        /// A note kept with the consent of --consent (e.g. where the forms are).
        #[arg(long, requires = "consent")]
        consent_note: Option<String>,
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
        Command::Import {
            dir,
            class,
            consent,
            consent_note,
        } => {
            let consent = api::services::consent::ConsentClaim::from_form(
                Some(consent),
                consent_note.as_deref(),
            )
            .map_err(|e| anyhow::anyhow!("--consent-note: {e}"))?;
            let failed = run_import(&config, &dir, class.as_deref(), consent).await?;
            if failed {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// Imports `dir` as a batch and follows it to the end; returns whether any student
/// failed or any entry was refused.
async fn run_import(
    config: &Config,
    dir: &std::path::Path,
    class: Option<&str>,
    consent: api::services::consent::ConsentClaim,
) -> anyhow::Result<bool> {
    use api::services::{batches, scope::Scope};
    use models::class;
    use models::registration_batch::BatchStatus;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
    let db = api::database::connect_and_migrate(&config.database_url)
        .await
        .context("could not open the database")?;
    let class_id = match class {
        None => None,
        Some(c) => match c.parse::<Uuid>() {
            Ok(id) => Some(id),
            Err(_) => {
                let found = class::Entity::find()
                    .filter(class::Column::Name.eq(c))
                    .all(&db)
                    .await?;
                match found.as_slice() {
                    [one] => Some(one.id),
                    [] => anyhow::bail!("no class named {c:?}"),
                    _ => anyhow::bail!("several classes are named {c:?}; give the class id"),
                }
            }
        },
    };
    let blobs = common::open_blob_store(&config.storage_url)
        .await
        .context("could not open the blob store")?;
    // With the embedded queue the running server's relay hands the job to its
    // in-process worker; a queue opened here would swallow it.
    let queue = if config.embedded_queue() {
        None
    } else {
        Some(common::open_queue(&config.queue_url).await?)
    };

    let packed = tempfile::NamedTempFile::new()?;
    let (src, out) = (dir.to_path_buf(), packed.path().to_path_buf());
    let entries = tokio::task::spawn_blocking(move || api::import::zip_folder(&src, &out))
        .await?
        .with_context(|| format!("could not pack {}", dir.display()))?;
    let mut file = tokio::fs::File::open(packed.path()).await?;
    let accepted = batches::create(
        &db,
        &Scope::All,
        &blobs,
        queue.as_ref(),
        batches::BatchLimits::from_config(config),
        class_id,
        &batches::BatchConsent {
            // Whoever runs the import has the database; no key records it.
            uploaded_by_key_id: None,
            source: models::consent_entry::ConsentSource::Cli,
            required: config.privacy.require_consent,
            for_all: consent,
        },
        &mut file,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let batch_id = accepted.subject_id;
    eprintln!("batch {batch_id}: {entries} files uploaded");
    if queue.is_none() {
        eprintln!("QUEUE_URL=embedded: the running attendance-api server registers them");
    }

    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} students {msg}",
        )
        .expect("a valid template"),
    );
    let detail = loop {
        let detail = batches::detail(&db, &Scope::All, batch_id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let c = detail.counts;
        let students = c.queued + c.active + c.failed;
        bar.set_length(students);
        bar.set_position(c.active + c.failed);
        bar.set_message(format!(
            "({} active, {} failed, {} refused)",
            c.active,
            c.failed,
            c.rejected + c.duplicates
        ));
        if matches!(
            detail.batch.status,
            BatchStatus::Completed | BatchStatus::Failed
        ) {
            break detail;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    bar.finish();
    if let Some(error) = &detail.batch.error {
        eprintln!("batch refused: {error}");
        return Ok(true);
    }
    for item in &detail.items {
        if let Some(reason) = &item.reason {
            eprintln!(
                "{} {}: {} ({reason})",
                item.roll_no.as_deref().unwrap_or("-"),
                item.entry.as_deref().unwrap_or(""),
                batches::item_status(item.status),
            );
        }
    }
    let c = detail.counts;
    println!(
        "batch {batch_id}: {} active, {} failed, {} refused, {} duplicates, {} updated; report: GET /students/batches/{batch_id}/report.csv",
        c.active, c.failed, c.rejected, c.duplicates, c.updated
    );
    Ok(c.failed + c.rejected + c.duplicates > 0)
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
