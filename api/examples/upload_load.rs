//! The soak's load generator (`scripts/soak.sh`): `--clients` independent clients, each
//! a teacher's browser with its own keep-alive connection, upload a classroom photo to
//! `POST /attendance/mark`, wait for the answer, then pause a random time (exponential,
//! mean `--think` seconds, so that clients do not fall into step and arrive in waves),
//! until `--seconds` have passed. One JSON line per request is appended to `--out`
//! (`phase`, `sent`, `photo`, `status`, `ms`, `session_id`, `job_id`, `error`), which
//! `scripts/soak_load.py check` reads.
//!
//! Written in Rust rather than Python so that the client's own scheduling (50 threads
//! under one interpreter lock) is not counted as the server's accept latency.

use std::{
    io::Write,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_distr_free::exponential;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    base: String,
    #[arg(long)]
    key: String,
    #[arg(long = "class")]
    class_id: String,
    #[arg(long)]
    clients: usize,
    #[arg(long)]
    seconds: f64,
    /// Mean pause between a client's answer and its next upload.
    #[arg(long, default_value_t = 0.0)]
    think: f64,
    #[arg(long)]
    phase: String,
    #[arg(long)]
    out: PathBuf,
    photos: Vec<PathBuf>,
}

/// Exponentially distributed pauses without another dependency: inverse transform.
mod rand_distr_free {
    use rand::Rng;

    pub fn exponential(rng: &mut impl Rng, mean: f64) -> f64 {
        if mean <= 0.0 {
            return 0.0;
        }
        // 1 - u lies in (0, 1]: its logarithm is finite.
        let u: f64 = rng.random();
        -mean * (1.0 - u).ln()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(!args.photos.is_empty(), "name at least one photo");
    let mut photos = Vec::new();
    for path in &args.photos {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "photo.jpg".into());
        photos.push((name, bytes::Bytes::from(bytes)));
    }
    let photos = Arc::new(photos);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("open {}", args.out.display()))?;
    let out = Arc::new(Mutex::new(out));
    let args = Arc::new(args);
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);

    let mut tasks = Vec::new();
    for n in 0..args.clients {
        let (args, photos, out) = (args.clone(), photos.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            // Each client its own connection, as each teacher has their own browser.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(1)
                .build()
                .expect("an HTTP client");
            let mut rng = rand::rngs::StdRng::from_os_rng();
            // Clients start spread over one mean pause, not all at once.
            let start = rng.random_range(0.0..=args.think.max(0.0));
            tokio::time::sleep(Duration::from_secs_f64(start)).await;
            let mut i = n;
            while Instant::now() < deadline {
                let (name, data) = &photos[i % photos.len()];
                i += 1;
                let form = reqwest::multipart::Form::new()
                    .text("class_id", args.class_id.clone())
                    .part(
                        "photos",
                        reqwest::multipart::Part::stream(data.clone())
                            .file_name(name.clone())
                            .mime_str("image/jpeg")
                            .expect("a valid mime type"),
                    );
                let sent_unix = unix_now();
                let sent = Instant::now();
                let mut rec = serde_json::json!({
                    "phase": args.phase, "sent": sent_unix, "photo": name,
                });
                let answer = client
                    .post(format!("{}/attendance/mark", args.base))
                    .bearer_auth(&args.key)
                    .multipart(form)
                    .send()
                    .await;
                match answer {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        rec["status"] = status.into();
                        match resp.json::<serde_json::Value>().await {
                            Ok(body) if status == 202 => {
                                rec["session_id"] = body["session_id"].clone();
                                rec["job_id"] = body["job_id"].clone();
                            }
                            Ok(_) => {}
                            Err(e) if status == 202 => {
                                rec["status"] = 0.into();
                                rec["error"] = format!("unreadable answer: {e}").into();
                            }
                            Err(_) => {}
                        }
                    }
                    Err(e) => {
                        // Refused or reset: no answer at all.
                        rec["status"] = 0.into();
                        let text = format!("{e:?}");
                        rec["error"] = text.chars().take(200).collect::<String>().into();
                    }
                }
                rec["ms"] = (sent.elapsed().as_secs_f64() * 1000.0).into();
                {
                    let mut out = out.lock().expect("the output lock");
                    let _ = writeln!(out, "{rec}");
                    let _ = out.flush();
                }
                let pause = Duration::from_secs_f64(exponential(&mut rng, args.think));
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(pause.min(left)).await;
            }
        }));
    }
    for task in tasks {
        task.await.context("a client task")?;
    }
    Ok(())
}
