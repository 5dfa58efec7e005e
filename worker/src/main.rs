//! `attendance-worker`: the job consumer and the operator's face-engine CLI.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use common::{Detector, FaceModel};
use worker::engine::matching::distance;
use worker::engine::pipeline::{PhotoLimits, load_image};
use worker::engine::{EngineError, FaceEngine, model_files};
use worker::evaluation::{Split, embed_people, scan_people};
use worker::schema::SchemaWait;

#[derive(Parser)]
#[command(
    name = "attendance-worker",
    version,
    about = "Attendance worker and face-engine tools"
)]
struct Cli {
    /// Where the model weights are cached.
    #[arg(long, env = "MODEL_DIR", default_value = "data/models", global = true)]
    model_dir: PathBuf,
    /// auto, cpu or cuda:N.
    #[arg(long, env = "DEVICE", default_value = "auto", global = true)]
    device: String,
    #[command(subcommand)]
    command: Command,
}

/// Which pipeline a face-engine command runs.
#[derive(clap::Args, Clone, Copy)]
struct PipelineArgs {
    /// dlib-resnet or arcface-mbf.
    #[arg(long, env = "FACE_MODEL", default_value = "dlib-resnet")]
    model: FaceModel,
    /// mtcnn or scrfd (default: the model's own: mtcnn for dlib-resnet, scrfd for
    /// arcface-mbf).
    #[arg(long, env = "DETECTOR")]
    detector: Option<Detector>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume jobs from the queue (the worker service).
    Run {
        /// Seconds to wait for the API to have migrated the database before giving up
        /// (the worker never migrates it).
        #[arg(long, env = "SCHEMA_WAIT_SECS", default_value_t = 300)]
        schema_wait_secs: u64,
    },
    /// Queue the re-embedding of every student registered with another face model than
    /// FACE_MODEL (on the bulk lane), then show its progress until it is done. Exits
    /// non-zero if any job failed.
    Reembed {
        /// Seconds to wait for the API to have migrated the database.
        #[arg(long, env = "SCHEMA_WAIT_SECS", default_value_t = 300)]
        schema_wait_secs: u64,
        /// Only queue the jobs; do not wait for them.
        #[arg(long)]
        no_wait: bool,
    },
    /// Download and verify the model weights into MODEL_DIR.
    FetchModels {
        /// Whose files: dlib-resnet, arcface-mbf or all (default: FACE_MODEL's).
        #[arg(long, env = "FACE_MODEL", default_value = "dlib-resnet", value_parser = parse_model_choice)]
        model: ModelChoice,
    },
    /// Detect faces: JSON with boxes, scores and landmarks.
    Detect {
        #[command(flatten)]
        pipeline: PipelineArgs,
        image: PathBuf,
        /// Also write a copy of the photo with the boxes and landmarks drawn.
        #[arg(long)]
        draw: Option<PathBuf>,
    },
    /// What an attendance job does with one photo, without a database: decode (reduced
    /// above MAX_WORKING_PIXELS), detect, keep the largest MAX_FACES_PER_PHOTO faces,
    /// embed and crop them. JSON with the sizes and the boxes in the photo's pixels.
    ProcessPhoto {
        #[command(flatten)]
        pipeline: PipelineArgs,
        image: PathBuf,
        #[arg(long, env = "MAX_WORKING_PIXELS", default_value_t = common::config::defaults::MAX_WORKING_PIXELS)]
        max_working_pixels: u64,
        #[arg(long, env = "MAX_FACES_PER_PHOTO", default_value_t = common::config::defaults::MAX_FACES_PER_PHOTO)]
        max_faces: usize,
    },
    /// One descriptor per face (128-D dlib, 512-D ArcFace), as JSON.
    Embed {
        #[command(flatten)]
        pipeline: PipelineArgs,
        image: PathBuf,
    },
    /// Distance between the largest faces of two photos, and the default rule's verdict.
    Compare {
        #[command(flatten)]
        pipeline: PipelineArgs,
        image_a: PathBuf,
        image_b: PathBuf,
    },
    /// End-to-end throughput of the real worker on synthesised 30-face classroom photos:
    /// seeds a class (its people registered by registration jobs), runs one attendance
    /// job per photo, prints JSON (photos/s from the first claim to the last finish,
    /// faces found, recall). In-process by default (temporary SQLite, filesystem blobs,
    /// the in-process queue); --processes P runs P `attendance-worker run` processes.
    Throughput(ThroughputArgs),
    /// Write synthesised classroom photos and their manifest.json (who sits where, the
    /// registration portraits) into DIR.
    SynthClassroom {
        dir: PathBuf,
        #[arg(long, default_value_t = 12)]
        photos: usize,
        #[arg(long, default_value_t = 30)]
        faces: usize,
    },
    /// The device check: parity against the CPU goldens, embedder faces/s, detection
    /// ms, end-to-end photos/s; PASS/FAIL lines, then a JSON summary. Exits non-zero on
    /// any FAIL.
    DeviceCheck {
        /// A reduced form (few photos, small batches) for the CPU test.
        #[arg(long)]
        quick: bool,
        /// Classroom photos per end-to-end run.
        #[arg(long)]
        photos: Option<usize>,
        /// WORKER_CONCURRENCY values of the end-to-end runs (comma-separated).
        #[arg(long, value_delimiter = ',')]
        concurrency: Option<Vec<usize>>,
        /// Check only these face models' pipelines (comma-separated; default: both).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<FaceModel>>,
    },
    /// Measure the decision rule on DIR/<person>/<photos>.
    Eval {
        #[command(flatten)]
        pipeline: PipelineArgs,
        dir: PathBuf,
        /// Photos per person used to register them (the first N by name).
        #[arg(long, default_value_t = 3)]
        gallery: usize,
        /// Also print the metrics of a grid of rules (how the default was chosen).
        #[arg(long)]
        sweep: bool,
    },
}

/// `attendance-worker throughput`'s settings.
#[derive(clap::Args)]
struct ThroughputArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Classroom photos (one attendance session each).
    #[arg(long, default_value_t = 12)]
    photos: usize,
    /// Faces per photo.
    #[arg(long, default_value_t = 30)]
    faces: usize,
    /// Jobs each worker runs at once.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 1)]
    concurrency: usize,
    /// Run P worker processes (`attendance-worker run`) against --database-url and
    /// --queue-url instead of the in-process worker.
    #[arg(long)]
    processes: Option<usize>,
    /// A PostgreSQL server (`postgres://…`): the run creates a database of its own there
    /// and drops it afterwards. Process mode only.
    #[arg(long)]
    database_url: Option<String>,
    /// RabbitMQ (`amqp://…`): a queue prefix of its own is added. Process mode only.
    #[arg(long)]
    queue_url: Option<String>,
    /// Also write the photos and their manifest.json here.
    #[arg(long)]
    write_photos: Option<PathBuf>,
    /// Longest wait for the registration jobs, and for the attendance jobs.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
}

/// The models whose files `fetch-models` gets.
#[derive(Debug, Clone, Copy)]
enum ModelChoice {
    One(FaceModel),
    All,
}

fn parse_model_choice(s: &str) -> Result<ModelChoice, common::face_model::UnknownName> {
    if s == "all" {
        return Ok(ModelChoice::All);
    }
    s.parse()
        .map(ModelChoice::One)
        .map_err(
            |e: common::face_model::UnknownName| common::face_model::UnknownName {
                expected: "dlib-resnet, arcface-mbf, all",
                ..e
            },
        )
}

/// Exit codes a shell user can branch on.
const EXIT_ERROR: u8 = 1;
const EXIT_UNREADABLE: u8 = 3;
const EXIT_NO_FACE: u8 = 4;

/// A command's failure with the exit code it should produce.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = match error.downcast_ref::<EngineError>() {
            Some(EngineError::Io { .. } | EngineError::BadPhoto { .. }) => EXIT_UNREADABLE,
            _ => EXIT_ERROR,
        };
        Self { code, error }
    }
}

fn no_face(path: &Path) -> Failure {
    Failure {
        code: EXIT_NO_FACE,
        error: anyhow::anyhow!("no face found in {}", path.display()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::telemetry::init("attendance-worker");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn engine(cli: &Cli, pipeline: &PipelineArgs) -> Result<FaceEngine, Failure> {
    let detector = pipeline
        .detector
        .unwrap_or(pipeline.model.default_detector());
    Ok(FaceEngine::open(
        &cli.model_dir,
        pipeline.model,
        detector,
        &cli.device,
        true,
    )?)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", serde_json::to_string_pretty(value)?) {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Run { schema_wait_secs } => {
            let config = common::config::Config::from_env().context("reading configuration")?;
            let wait = SchemaWait::new(Duration::from_secs(*schema_wait_secs));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(worker::service::run(config, wait))?;
            Ok(())
        }
        Command::Reembed {
            schema_wait_secs,
            no_wait,
        } => {
            let config = common::config::Config::from_env().context("reading configuration")?;
            let wait = SchemaWait::new(Duration::from_secs(*schema_wait_secs));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(reembed(config, wait, *no_wait))
        }
        Command::FetchModels { model } => {
            let files = match model {
                ModelChoice::One(m) => model_files::files_for(*m).to_vec(),
                ModelChoice::All => model_files::all_files(),
            };
            let paths = model_files::ensure_files(
                &cli.model_dir,
                &model_files::index_url_from_env(),
                &files,
            )?;
            eprintln!("models ready in {}", cli.model_dir.display());
            let by_name: serde_json::Map<String, serde_json::Value> = files
                .iter()
                .zip(paths)
                .map(|(f, p)| (f.name().to_owned(), serde_json::json!(p)))
                .collect();
            print_json(&by_name)
        }
        Command::Detect {
            pipeline,
            image,
            draw,
        } => {
            let img = load_image(image)?;
            let engine = engine(&cli, pipeline)?;
            let faces = engine.detect(&img)?;
            if let Some(out) = draw {
                worker::drawing::draw_detections(&img, &faces)
                    .save(out)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            print_json(&serde_json::json!({
                "image": image, "width": img.width(), "height": img.height(), "faces": faces,
            }))?;
            if faces.is_empty() {
                return Err(no_face(image));
            }
            Ok(())
        }
        Command::ProcessPhoto {
            pipeline,
            image,
            max_working_pixels,
            max_faces,
        } => {
            let engine = engine(&cli, pipeline)?.with_limits(PhotoLimits {
                max_working_pixels: *max_working_pixels,
                max_faces: *max_faces,
            });
            let bytes = std::fs::read(image).map_err(|source| EngineError::Io {
                path: image.clone(),
                source,
            })?;
            let photo = engine.decode(&bytes, &image.display().to_string())?;
            drop(bytes);
            let (found, crops) =
                engine.analyze_photo(&photo, worker::jobs::crops::face_crop_jpeg)?;
            let faces: Vec<_> = found.faces.iter().map(|f| &f.detection).collect();
            print_json(&serde_json::json!({
                "image": image,
                "width": photo.original.0,
                "height": photo.original.1,
                "working_width": photo.image.width(),
                "working_height": photo.image.height(),
                "detected": found.detected,
                "crops": crops.iter().flatten().count(),
                "faces": faces,
            }))?;
            if faces.is_empty() {
                return Err(no_face(image));
            }
            Ok(())
        }
        Command::Embed { pipeline, image } => {
            let img = load_image(image)?;
            let faces = engine(&cli, pipeline)?.analyze(&img)?;
            print_json(&serde_json::json!({ "image": image, "faces": faces }))?;
            if faces.is_empty() {
                return Err(no_face(image));
            }
            Ok(())
        }
        Command::Compare {
            pipeline,
            image_a,
            image_b,
        } => {
            let engine = engine(&cli, pipeline)?;
            let mut largest = Vec::new();
            for path in [image_a, image_b] {
                let faces = engine.analyze_portrait(&load_image(path)?)?;
                let face = faces
                    .into_iter()
                    .max_by(|a, b| a.area().total_cmp(&b.area()))
                    .ok_or_else(|| no_face(path))?;
                largest.push(face.descriptor);
            }
            let d = distance(&largest[0], &largest[1]);
            let rule = engine.default_rule();
            // Without a class to calibrate against, the pair is judged by the ceiling.
            let same = d <= rule.max_distance;
            print_json(&serde_json::json!({
                "distance": d,
                "verdict": if same { "same" } else { "different" },
                "threshold": rule.max_distance,
            }))
        }
        Command::Throughput(args) => throughput(&cli, args),
        Command::SynthClassroom { dir, photos, faces } => {
            let manifest = worker::classroom::synthesise(*photos, *faces)?;
            worker::classroom::write(&manifest, dir)?;
            eprintln!(
                "{} photos written to {}",
                manifest.photos.len(),
                dir.display()
            );
            Ok(())
        }
        Command::DeviceCheck {
            quick,
            photos,
            concurrency,
            models,
        } => {
            use worker::device_check;
            let mut options =
                device_check::Options::new(cli.model_dir.clone(), cli.device.clone(), *quick);
            if let Some(p) = photos {
                options.photos = *p;
            }
            if let Some(c) = concurrency {
                options.concurrency = c.clone();
            }
            if let Some(m) = models {
                options = options.only(m);
            }
            let rt = tokio::runtime::Runtime::new()?;
            let summary = rt.block_on(device_check::run(&options, |line| println!("{line}")));
            print_json(&summary)?;
            if !summary.passed {
                return Err(anyhow::anyhow!("device check failed").into());
            }
            Ok(())
        }
        Command::Eval {
            pipeline,
            dir,
            gallery,
            sweep,
        } => {
            if *gallery == 0 {
                return Err(anyhow::anyhow!("--gallery must be at least 1").into());
            }
            let people = scan_people(dir)?;
            let engine = engine(&cli, pipeline)?;
            let embedded = embed_people(&engine, &people)?;
            let split = Split::new(pipeline.model, &embedded, *gallery);
            let mut report = serde_json::to_value(split.report(people.len(), *gallery))?;
            if *sweep {
                report["sweep"] = serde_json::to_value(split.sweep())?;
            }
            print_json(&report)
        }
    }
}

/// `attendance-worker reembed`: schedule, then a progress bar over the job rows.
async fn reembed(
    config: common::config::Config,
    wait: SchemaWait,
    no_wait: bool,
) -> Result<(), Failure> {
    use indicatif::{ProgressBar, ProgressStyle};
    use worker::reembedding;

    let model = config.face_model.embedding_model();
    let db = worker::service::connect_database(&config.database_url).await?;
    worker::schema::wait_until_current(&db, wait).await?;
    // The API's in-process queue cannot be reached from here: the rows are enough, its
    // outbox relay publishes them.
    let queue = if config.embedded_queue() {
        None
    } else {
        Some(common::open_queue(&config.queue_url).await?)
    };
    let scheduled = reembedding::schedule(&db, queue.as_deref(), model).await?;
    eprintln!(
        "{} re-embedding job(s) queued for {model}, {} already pending",
        scheduled.created.len(),
        scheduled.pending.len()
    );
    if queue.is_none() && !scheduled.created.is_empty() {
        eprintln!("QUEUE_URL=embedded: the running API's worker picks them up");
    }
    let jobs = scheduled.all();
    if no_wait || jobs.is_empty() {
        return Ok(());
    }
    const SCALE: f64 = 100.0;
    let bar = ProgressBar::new((jobs.len() as f64 * SCALE) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let tally = reembedding::wait_for(&db, &jobs, Duration::from_millis(500), |t| {
        bar.set_position((t.progress * SCALE) as u64);
        bar.set_message(format!(
            "{}/{} students ({} failed)",
            t.finished(),
            t.total,
            t.failed.len()
        ));
    })
    .await?;
    bar.finish();
    for (id, error) in &tally.failed {
        eprintln!("job {id} failed: {error}");
    }
    if !tally.failed.is_empty() {
        return Err(anyhow::anyhow!(
            "{} of {} re-embedding jobs failed (GET /jobs/{{id}} shows each)",
            tally.failed.len(),
            tally.total
        )
        .into());
    }
    eprintln!("{} students re-embedded with {model}", tally.succeeded);
    Ok(())
}

/// `attendance-worker throughput`.
fn throughput(cli: &Cli, args: &ThroughputArgs) -> Result<(), Failure> {
    use worker::throughput::{self, Mode};
    let mode = match args.processes {
        None => Mode::InProcess,
        Some(count) => Mode::Processes {
            count: count.max(1),
            database_url: args
                .database_url
                .clone()
                .context("--processes needs --database-url postgres://…")?,
            queue_url: args
                .queue_url
                .clone()
                .context("--processes needs --queue-url amqp://…")?,
            exe: std::env::current_exe().context("finding this executable")?,
        },
    };
    let options = throughput::Options {
        photos: args.photos,
        faces: args.faces,
        concurrency: args.concurrency.max(1),
        model: args.pipeline.model,
        detector: args.pipeline.detector,
        device: cli.device.clone(),
        model_dir: std::path::absolute(&cli.model_dir)?,
        mode,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let manifest = worker::classroom::synthesise(args.photos, args.faces)?;
    if let Some(dir) = &args.write_photos {
        worker::classroom::write(&manifest, dir)?;
    }
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(throughput::run_on(&options, &manifest))?;
    print_json(&report)
}
