//! Process configuration from environment variables (and a `.env` file when present).
//!
//! Every variable has an embedded default so that a newcomer runs the whole system with
//! no external services; production swaps each part by URL.

use std::path::PathBuf;

use crate::face_model::{Detector, FaceModel};

/// Default values, one per variable; kept together so the README and the code agree.
pub mod defaults {
    pub const DATABASE_URL: &str = "sqlite://data/attendance.db?mode=rwc";
    pub const QUEUE_URL: &str = "embedded";
    pub const STORAGE_URL: &str = "file://data/blobs";
    pub const MODEL_DIR: &str = "data/models";
    pub const DEVICE: &str = "auto";
    pub const BIND: &str = "127.0.0.1:8080";
    pub const CORS_ORIGINS: &str = "";
    pub const JOB_MAX_ATTEMPTS: u32 = 5;
    /// A worker's hold on a running job, renewed every third of it while it runs; a
    /// job whose worker died is run again once this has passed.
    pub const JOB_LEASE_SECS: u64 = 60;
    pub const DATA_DIR: &str = "data";
    pub const FACE_MODEL: &str = "dlib-resnet";
    pub const EXIF_UTC_OFFSET: &str = "+05:30";
    /// 2 GiB: a few thousand students with a few photos each.
    pub const BATCH_MAX_BYTES: u64 = 2 * 1024 * 1024 * 1024;
    /// 8 GiB of photos once unpacked.
    pub const BATCH_MAX_UNCOMPRESSED_BYTES: u64 = 8 * 1024 * 1024 * 1024;
    pub const WEBHOOK_ALLOW_PRIVATE: bool = false;
    /// First retry of a failed webhook delivery after about this long, doubling up to
    /// an hour between attempts, for 24 hours.
    pub const WEBHOOK_RETRY_BASE_MS: u64 = 10_000;
    // Bounded memory per photo (issue 9).
    /// 16 MP: a 12 MP classroom photo is worked on at full size, so its 20 px faces stay
    /// detectable; larger photos are decoded reduced to this many pixels.
    pub const MAX_WORKING_PIXELS: u64 = 16_000_000;
    /// Faces matched per photo; beyond it the largest are kept and the session warns.
    pub const MAX_FACES_PER_PHOTO: usize = 300;
    /// A client has this long to send a request's headers (slow-header attacks).
    pub const HTTP_HEADER_TIMEOUT_SECS: u64 = 10;
    /// A request body must arrive within this long (a stalled upload gets 408): a
    /// 60 MB request at 4 Mbit/s takes two minutes.
    pub const HTTP_BODY_TIMEOUT_SECS: u64 = 180;
    /// A keep-alive connection with no request in flight is closed after this long.
    pub const HTTP_IDLE_TIMEOUT_SECS: u64 = 60;
    /// Open connections; beyond it new ones wait in the listen backlog.
    pub const HTTP_MAX_CONNECTIONS: usize = 512;
    /// Parts of one multipart upload (fields and files together).
    pub const UPLOAD_MAX_PARTS: usize = 16;
    /// Bytes of one multipart part (a photo; batch ZIPs have `BATCH_MAX_BYTES`).
    pub const UPLOAD_MAX_PART_BYTES: u64 = 10 * 1024 * 1024;
    /// Photos validated at once: each is a reduced-size decode, but a progressive JPEG
    /// still holds its coefficients (3–6 bytes a pixel: 300–600 MB at 100 MP).
    pub const UPLOAD_VALIDATION_CONCURRENCY: usize = 2;
    /// How long an upload waits for a validation slot before a 503.
    pub const UPLOAD_VALIDATION_WAIT_MS: u64 = 5_000;
    /// Queued jobs per lane beyond which uploads are refused with 503.
    pub const BACKLOG_MAX_INTERACTIVE: u64 = 1_000;
    pub const BACKLOG_MAX_BULK: u64 = 50_000;
    /// `Retry-After` of a 503 (seconds).
    pub const RETRY_AFTER_SECS: u64 = 5;
    // Privacy (issue 10).
    /// Session photos and the crops of faces that matched nobody are deleted after
    /// about half a year: a semester, long enough for a teacher to review and correct.
    pub const RETENTION_DAYS: u32 = 180;
    /// Consent is recorded when given; requiring it is the operator's choice.
    pub const REQUIRE_CONSENT: bool = false;
    // GPU workers (issue 12).
    /// Jobs one worker runs at once: on the CPU the engine already uses every core; a
    /// GPU is kept busy by several photos in flight.
    pub const WORKER_CONCURRENCY_CPU: usize = 1;
    pub const WORKER_CONCURRENCY_CUDA: usize = 8;
    /// Faces per pass of the shared embedding stage.
    pub const EMBED_BATCH_CPU: usize = 32;
    pub const EMBED_BATCH_CUDA: usize = 64;
    /// How long the embedding stage waits for other jobs' faces before running a
    /// partial batch: short enough that a lone photo is not delayed noticeably.
    pub const EMBED_WAIT_MS: u64 = 3;
}

/// The queue URL that selects the in-process queue.
pub const EMBEDDED_QUEUE_URL: &str = "embedded";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the .env file: {0}")]
    DotEnv(#[source] dotenvy::Error),
    #[error("environment variable {var} is not valid unicode")]
    NotUnicode { var: &'static str },
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `DATABASE_URL`: sea-orm connection string (SQLite or PostgreSQL).
    pub database_url: String,
    /// `QUEUE_URL`: `embedded` or `amqp://user:pw@host:5672/%2f`.
    pub queue_url: String,
    /// `STORAGE_URL`: `file://path` or `s3://bucket?region=..&endpoint=..`.
    pub storage_url: String,
    /// `MODEL_DIR`: where face-model weights are cached.
    pub model_dir: PathBuf,
    /// `DEVICE`: `auto`, `cpu` or `cuda[:N]`.
    pub device: String,
    /// `BIND`: socket address the HTTP server listens on.
    pub bind: String,
    /// `CORS_ORIGINS`: comma-separated list of allowed origins; empty means none.
    pub cors_origins: Vec<String>,
    /// `JOB_MAX_ATTEMPTS`: deliveries of a job before it is dead-lettered (≥ 1).
    pub max_attempts: u32,
    /// `JOB_LEASE_SECS`: how long a worker holds a running job without renewing its
    /// lease; a job whose worker died is claimed again after this (≥ 1).
    pub job_lease: std::time::Duration,
    /// `DATA_DIR`: root for embedded-mode state.
    pub data_dir: PathBuf,
    /// `FACE_MODEL`: `dlib-resnet` or `arcface-mbf`.
    pub face_model: FaceModel,
    /// `DETECTOR`: `mtcnn` or `scrfd`; unset, the face model's default.
    pub detector: Detector,
    /// `EXIF_UTC_OFFSET`: the UTC offset of a photo's EXIF `DateTimeOriginal` when the
    /// photo has no `OffsetTimeOriginal` (EXIF times are local clock times). Default
    /// `+05:30` (India).
    pub exif_utc_offset: chrono::FixedOffset,
    /// `BATCH_MAX_BYTES`: largest registration batch upload (the ZIP as sent).
    pub batch_max_bytes: u64,
    /// `BATCH_MAX_UNCOMPRESSED_BYTES`: largest registration batch once unpacked,
    /// declared or actual (zip bombs are refused).
    pub batch_max_uncompressed_bytes: u64,
    /// `PUBLIC_URL`: the API's address as outside systems reach it, for links in
    /// webhook payloads; unset, `http://{BIND}`.
    pub public_url: String,
    /// `WEBHOOK_ALLOW_PRIVATE`: `true` lets webhooks reach private, loopback and
    /// link-local addresses (refused by default: a subscription must not become a way
    /// into the internal network).
    pub webhook_allow_private: bool,
    /// `WEBHOOK_RETRY_BASE_MS`: the wait before the first retry of a failed webhook
    /// delivery (doubled at each retry, with jitter).
    pub webhook_retry_base: std::time::Duration,
    // Bounded memory per photo (issue 9).
    /// `MAX_WORKING_PIXELS`: photos with more pixels are decoded reduced to about this
    /// many before detection (boxes are still reported in the photo's own pixels).
    pub max_working_pixels: u64,
    /// `MAX_FACES_PER_PHOTO`: faces matched per photo; the largest are kept.
    pub max_faces_per_photo: usize,
    /// Server limits (`HTTP_*`, `UPLOAD_*`, `BACKLOG_MAX_*`, `RETRY_AFTER_SECS`).
    pub limits: ServerLimits,
    /// `RETENTION_DAYS`, `REQUIRE_CONSENT`.
    pub privacy: PrivacySettings,
    /// `WORKER_CONCURRENCY`, `EMBED_BATCH`, `EMBED_WAIT_MS`.
    pub worker: WorkerSettings,
}

/// How a worker shares its device between jobs. Unset counts take the device's default
/// ([`WorkerSettings::concurrency_on`]), known only once the device is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// `WORKER_CONCURRENCY`: jobs run at once by one worker process.
    pub concurrency: Option<usize>,
    /// `EMBED_BATCH`: most faces embedded in one pass, across the jobs in flight.
    pub embed_batch: Option<usize>,
    /// `EMBED_WAIT_MS`: longest wait for more faces before a partial pass.
    pub embed_wait: std::time::Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: None,
            embed_batch: None,
            embed_wait: std::time::Duration::from_millis(defaults::EMBED_WAIT_MS),
        }
    }
}

impl WorkerSettings {
    /// Jobs at once on a CUDA device (`cuda`) or the CPU.
    pub fn concurrency_on(&self, cuda: bool) -> usize {
        self.concurrency.unwrap_or(if cuda {
            defaults::WORKER_CONCURRENCY_CUDA
        } else {
            defaults::WORKER_CONCURRENCY_CPU
        })
    }

    /// Faces per embedding pass on a CUDA device (`cuda`) or the CPU.
    pub fn embed_batch_on(&self, cuda: bool) -> usize {
        self.embed_batch.unwrap_or(if cuda {
            defaults::EMBED_BATCH_CUDA
        } else {
            defaults::EMBED_BATCH_CPU
        })
    }
}

/// How long biometric data is kept and whether consent is required to register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivacySettings {
    /// `RETENTION_DAYS`: session photos and the crops of faces that matched nobody are
    /// deleted this many days after they were uploaded (the session's `created_at`, see
    /// `common::retention`); `None` (`0`) keeps them.
    pub retention_days: Option<u32>,
    /// `REQUIRE_CONSENT`: a registration without `consent=true` is refused.
    pub require_consent: bool,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings {
            retention_days: Some(defaults::RETENTION_DAYS),
            require_consent: defaults::REQUIRE_CONSENT,
        }
    }
}

/// What one client, or all of them together, may take from the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `HTTP_HEADER_TIMEOUT_SECS`: from a request's first byte to the end of its headers.
    pub header_timeout: std::time::Duration,
    /// `HTTP_BODY_TIMEOUT_SECS`: from the handler's first read to the body's end (408).
    pub body_timeout: std::time::Duration,
    /// `HTTP_IDLE_TIMEOUT_SECS`: a keep-alive connection between requests.
    pub idle_timeout: std::time::Duration,
    /// `HTTP_MAX_CONNECTIONS`: connections served at once.
    pub max_connections: usize,
    /// `UPLOAD_MAX_PARTS`: parts of one multipart request (400 beyond).
    pub max_parts: usize,
    /// `UPLOAD_MAX_PART_BYTES`: bytes of one part (413 beyond).
    pub max_part_bytes: u64,
    /// `UPLOAD_VALIDATION_CONCURRENCY`: photos validated at once.
    pub validation_concurrency: usize,
    /// `UPLOAD_VALIDATION_WAIT_MS`: wait for a validation slot before a 503.
    pub validation_wait: std::time::Duration,
    /// `BACKLOG_MAX_INTERACTIVE`: queued interactive jobs before uploads get 503.
    pub backlog_interactive: u64,
    /// `BACKLOG_MAX_BULK`: queued bulk jobs before batch uploads get 503.
    pub backlog_bulk: u64,
    /// `RETRY_AFTER_SECS`: the `Retry-After` of every 503.
    pub retry_after_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_lookup(|_| Ok(None)).expect("the defaults are valid")
    }
}

impl Config {
    /// Reads `.env` (if present, without overriding variables already set) and then the
    /// process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::DotEnv(e)),
        }
        Self::from_lookup(|var| match std::env::var(var) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { var }),
        })
    }

    /// Builds a configuration from `(name, value)` pairs instead of the process
    /// environment; missing names take their defaults. Useful in tests, where mutating
    /// the process environment is unsafe.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Config, ConfigError> {
        let map: std::collections::HashMap<&str, &str> = pairs.into_iter().collect();
        Self::from_lookup(|var| Ok(map.get(var).map(|v| v.to_string())))
    }

    fn from_lookup(
        lookup: impl Fn(&'static str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Config, ConfigError> {
        // An empty value means "unset" so that `FOO=` in a .env file falls back to the default.
        let get = |var: &'static str, default: &str| -> Result<String, ConfigError> {
            Ok(lookup(var)?
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string()))
        };

        let max_attempts_raw = get("JOB_MAX_ATTEMPTS", &defaults::JOB_MAX_ATTEMPTS.to_string())?;
        let max_attempts: u32 =
            max_attempts_raw
                .parse()
                .map_err(|e: std::num::ParseIntError| ConfigError::Invalid {
                    var: "JOB_MAX_ATTEMPTS",
                    value: max_attempts_raw.clone(),
                    reason: e.to_string(),
                })?;
        if max_attempts == 0 {
            return Err(ConfigError::Invalid {
                var: "JOB_MAX_ATTEMPTS",
                value: max_attempts_raw,
                reason: "must be at least 1".into(),
            });
        }

        let lease_raw = get("JOB_LEASE_SECS", &defaults::JOB_LEASE_SECS.to_string())?;
        let job_lease = match lease_raw.parse::<u64>() {
            Ok(secs) if secs >= 1 => std::time::Duration::from_secs(secs),
            _ => {
                return Err(ConfigError::Invalid {
                    var: "JOB_LEASE_SECS",
                    value: lease_raw,
                    reason: "expected a number of seconds, at least 1".into(),
                });
            }
        };

        let bind = get("BIND", defaults::BIND)?;
        if bind.parse::<std::net::SocketAddr>().is_err() && !bind.contains(':') {
            // Host names such as `localhost:8080` are allowed; a missing port is not.
            return Err(ConfigError::Invalid {
                var: "BIND",
                value: bind,
                reason: "expected host:port, e.g. 127.0.0.1:8080".into(),
            });
        }

        let queue_url = get("QUEUE_URL", defaults::QUEUE_URL)?;
        if queue_url != EMBEDDED_QUEUE_URL
            && !(queue_url.starts_with("amqp://") || queue_url.starts_with("amqps://"))
        {
            return Err(ConfigError::Invalid {
                var: "QUEUE_URL",
                value: queue_url,
                reason: "expected `embedded` or an amqp:// / amqps:// URL".into(),
            });
        }

        let storage_url = get("STORAGE_URL", defaults::STORAGE_URL)?;
        if !(storage_url.starts_with("file://") || storage_url.starts_with("s3://")) {
            return Err(ConfigError::Invalid {
                var: "STORAGE_URL",
                value: storage_url,
                reason: "expected a file:// or s3:// URL".into(),
            });
        }

        let cors_origins = get("CORS_ORIGINS", defaults::CORS_ORIGINS)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();

        let face_model_raw = get("FACE_MODEL", defaults::FACE_MODEL)?;
        let face_model: FaceModel =
            face_model_raw
                .parse()
                .map_err(|e: crate::face_model::UnknownName| ConfigError::Invalid {
                    var: "FACE_MODEL",
                    value: face_model_raw.clone(),
                    reason: e.to_string(),
                })?;
        let detector_raw = get("DETECTOR", face_model.default_detector().name())?;
        let detector: Detector =
            detector_raw
                .parse()
                .map_err(|e: crate::face_model::UnknownName| ConfigError::Invalid {
                    var: "DETECTOR",
                    value: detector_raw.clone(),
                    reason: e.to_string(),
                })?;

        let exif_offset_raw = get("EXIF_UTC_OFFSET", defaults::EXIF_UTC_OFFSET)?;
        let exif_utc_offset: chrono::FixedOffset =
            exif_offset_raw.parse().map_err(|_| ConfigError::Invalid {
                var: "EXIF_UTC_OFFSET",
                value: exif_offset_raw.clone(),
                reason: "expected a UTC offset such as +05:30 or -03:00".into(),
            })?;
        let bytes = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            let raw = get(var, &default.to_string())?;
            match raw.parse::<u64>() {
                Ok(0) => Err(ConfigError::Invalid {
                    var,
                    value: raw,
                    reason: "must be at least 1".into(),
                }),
                Ok(n) => Ok(n),
                Err(e) => Err(ConfigError::Invalid {
                    var,
                    value: raw,
                    reason: format!("expected a number of bytes: {e}"),
                }),
            }
        };
        let batch_max_bytes = bytes("BATCH_MAX_BYTES", defaults::BATCH_MAX_BYTES)?;
        let batch_max_uncompressed_bytes = bytes(
            "BATCH_MAX_UNCOMPRESSED_BYTES",
            defaults::BATCH_MAX_UNCOMPRESSED_BYTES,
        )?;
        let public_url = get("PUBLIC_URL", &format!("http://{bind}"))?
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                var: "PUBLIC_URL",
                value: public_url,
                reason: "expected an http:// or https:// URL".into(),
            });
        }
        let allow_raw = get(
            "WEBHOOK_ALLOW_PRIVATE",
            &defaults::WEBHOOK_ALLOW_PRIVATE.to_string(),
        )?;
        let webhook_allow_private = match allow_raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    var: "WEBHOOK_ALLOW_PRIVATE",
                    value: allow_raw,
                    reason: "expected true or false".into(),
                });
            }
        };
        let base_raw = get(
            "WEBHOOK_RETRY_BASE_MS",
            &defaults::WEBHOOK_RETRY_BASE_MS.to_string(),
        )?;
        let webhook_retry_base = match base_raw.parse::<u64>() {
            Ok(ms) if ms > 0 => std::time::Duration::from_millis(ms),
            _ => {
                return Err(ConfigError::Invalid {
                    var: "WEBHOOK_RETRY_BASE_MS",
                    value: base_raw,
                    reason: "expected a number of milliseconds, at least 1".into(),
                });
            }
        };

        // Bounded memory per photo (issue 9).
        let count = |var: &'static str, default: u64, min: u64| -> Result<u64, ConfigError> {
            let raw = get(var, &default.to_string())?;
            match raw.parse::<u64>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(ConfigError::Invalid {
                    var,
                    value: raw,
                    reason: format!("expected a whole number, at least {min}"),
                }),
            }
        };
        // Below 1 MP MTCNN would miss most classroom faces.
        let max_working_pixels = count(
            "MAX_WORKING_PIXELS",
            defaults::MAX_WORKING_PIXELS,
            1_000_000,
        )?;
        let max_faces_per_photo = count(
            "MAX_FACES_PER_PHOTO",
            defaults::MAX_FACES_PER_PHOTO as u64,
            1,
        )? as usize;
        let number = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            let raw = get(var, &default.to_string())?;
            match raw.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(ConfigError::Invalid {
                    var,
                    value: raw,
                    reason: "expected a whole number, at least 1".into(),
                }),
            }
        };
        let secs = |var, default| number(var, default).map(std::time::Duration::from_secs);
        let count = |var, default: usize| {
            number(var, default as u64).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        let limits = ServerLimits {
            header_timeout: secs(
                "HTTP_HEADER_TIMEOUT_SECS",
                defaults::HTTP_HEADER_TIMEOUT_SECS,
            )?,
            body_timeout: secs("HTTP_BODY_TIMEOUT_SECS", defaults::HTTP_BODY_TIMEOUT_SECS)?,
            idle_timeout: secs("HTTP_IDLE_TIMEOUT_SECS", defaults::HTTP_IDLE_TIMEOUT_SECS)?,
            max_connections: count("HTTP_MAX_CONNECTIONS", defaults::HTTP_MAX_CONNECTIONS)?,
            max_parts: count("UPLOAD_MAX_PARTS", defaults::UPLOAD_MAX_PARTS)?,
            max_part_bytes: bytes("UPLOAD_MAX_PART_BYTES", defaults::UPLOAD_MAX_PART_BYTES)?,
            validation_concurrency: count(
                "UPLOAD_VALIDATION_CONCURRENCY",
                defaults::UPLOAD_VALIDATION_CONCURRENCY,
            )?,
            validation_wait: number(
                "UPLOAD_VALIDATION_WAIT_MS",
                defaults::UPLOAD_VALIDATION_WAIT_MS,
            )
            .map(std::time::Duration::from_millis)?,
            backlog_interactive: number(
                "BACKLOG_MAX_INTERACTIVE",
                defaults::BACKLOG_MAX_INTERACTIVE,
            )?,
            backlog_bulk: number("BACKLOG_MAX_BULK", defaults::BACKLOG_MAX_BULK)?,
            retry_after_secs: number("RETRY_AFTER_SECS", defaults::RETRY_AFTER_SECS)?,
        };

        // Privacy (issue 10).
        let retention_raw = get("RETENTION_DAYS", &defaults::RETENTION_DAYS.to_string())?;
        let retention_days = match retention_raw.parse::<u32>() {
            Ok(0) => None,
            Ok(days) => Some(days),
            Err(_) => {
                return Err(ConfigError::Invalid {
                    var: "RETENTION_DAYS",
                    value: retention_raw,
                    reason: "expected a whole number of days (0 keeps photos forever)".into(),
                });
            }
        };
        let consent_raw = get("REQUIRE_CONSENT", &defaults::REQUIRE_CONSENT.to_string())?;
        let require_consent = match consent_raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    var: "REQUIRE_CONSENT",
                    value: consent_raw,
                    reason: "expected true or false".into(),
                });
            }
        };
        let privacy = PrivacySettings {
            retention_days,
            require_consent,
        };

        // GPU workers (issue 12): unset counts are the device's defaults.
        let optional_count = |var: &'static str| -> Result<Option<usize>, ConfigError> {
            let raw = get(var, "")?;
            if raw.trim().is_empty() {
                return Ok(None);
            }
            match raw.trim().parse::<usize>() {
                Ok(n) if (1..=4096).contains(&n) => Ok(Some(n)),
                _ => Err(ConfigError::Invalid {
                    var,
                    value: raw,
                    reason: "expected a whole number from 1 to 4096".into(),
                }),
            }
        };
        let wait_raw = get("EMBED_WAIT_MS", &defaults::EMBED_WAIT_MS.to_string())?;
        let embed_wait = match wait_raw.trim().parse::<u64>() {
            Ok(ms) if ms <= 1_000 => std::time::Duration::from_millis(ms),
            _ => {
                return Err(ConfigError::Invalid {
                    var: "EMBED_WAIT_MS",
                    value: wait_raw,
                    reason: "expected milliseconds from 0 to 1000".into(),
                });
            }
        };
        let worker = WorkerSettings {
            concurrency: optional_count("WORKER_CONCURRENCY")?,
            embed_batch: optional_count("EMBED_BATCH")?,
            embed_wait,
        };

        Ok(Config {
            database_url: get("DATABASE_URL", defaults::DATABASE_URL)?,
            queue_url,
            storage_url,
            model_dir: PathBuf::from(get("MODEL_DIR", defaults::MODEL_DIR)?),
            device: get("DEVICE", defaults::DEVICE)?,
            bind,
            cors_origins,
            max_attempts,
            job_lease,
            data_dir: PathBuf::from(get("DATA_DIR", defaults::DATA_DIR)?),
            face_model,
            detector,
            exif_utc_offset,
            batch_max_bytes,
            batch_max_uncompressed_bytes,
            public_url,
            webhook_allow_private,
            webhook_retry_base,
            max_working_pixels,
            max_faces_per_photo,
            limits,
            privacy,
            worker,
        })
    }

    /// True when the queue is the in-process one (the API then runs the worker itself).
    pub fn embedded_queue(&self) -> bool {
        self.queue_url == EMBEDDED_QUEUE_URL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = Config::from_pairs([]).unwrap();
        assert_eq!(c.database_url, "sqlite://data/attendance.db?mode=rwc");
        assert_eq!(c.queue_url, "embedded");
        assert!(c.embedded_queue());
        assert_eq!(c.storage_url, "file://data/blobs");
        assert_eq!(c.model_dir, PathBuf::from("data/models"));
        assert_eq!(c.device, "auto");
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert!(c.cors_origins.is_empty());
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.job_lease, std::time::Duration::from_secs(60));
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.face_model, FaceModel::DlibResnet);
        assert_eq!(c.detector, Detector::Mtcnn);
        assert_eq!(c.exif_utc_offset.local_minus_utc(), 5 * 3600 + 30 * 60);
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert!(!c.webhook_allow_private);
        assert_eq!(c.webhook_retry_base, std::time::Duration::from_secs(10));
        assert_eq!(c.max_working_pixels, 16_000_000);
        assert_eq!(c.max_faces_per_photo, 300);
        assert_eq!(c.limits.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.limits.max_connections, 512);
        assert_eq!(c.limits.max_part_bytes, 10 * 1024 * 1024);
        assert_eq!(c.limits.backlog_interactive, 1_000);
        assert_eq!(c.privacy.retention_days, Some(180));
        assert!(!c.privacy.require_consent);
        assert_eq!(c, Config::default());
    }

    #[test]
    fn privacy_settings_are_read_and_checked() {
        let c =
            Config::from_pairs([("RETENTION_DAYS", "30"), ("REQUIRE_CONSENT", "true")]).unwrap();
        assert_eq!(c.privacy.retention_days, Some(30));
        assert!(c.privacy.require_consent);
        let forever = Config::from_pairs([("RETENTION_DAYS", "0")]).unwrap();
        assert_eq!(forever.privacy.retention_days, None);
        for (var, value) in [
            ("RETENTION_DAYS", "-1"),
            ("RETENTION_DAYS", "half a year"),
            ("REQUIRE_CONSENT", "maybe"),
        ] {
            let err = Config::from_pairs([(var, value)]).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn worker_settings_default_by_device_and_are_checked() {
        let d = Config::from_pairs([]).unwrap().worker;
        assert_eq!((d.concurrency_on(false), d.concurrency_on(true)), (1, 8));
        assert_eq!((d.embed_batch_on(false), d.embed_batch_on(true)), (32, 64));
        assert_eq!(d.embed_wait, std::time::Duration::from_millis(3));
        let c = Config::from_pairs([
            ("WORKER_CONCURRENCY", "4"),
            ("EMBED_BATCH", "256"),
            ("EMBED_WAIT_MS", "0"),
        ])
        .unwrap()
        .worker;
        assert_eq!((c.concurrency_on(false), c.concurrency_on(true)), (4, 4));
        assert_eq!(c.embed_batch_on(true), 256);
        assert_eq!(c.embed_wait, std::time::Duration::ZERO);
        for (var, value) in [
            ("WORKER_CONCURRENCY", "0"),
            ("WORKER_CONCURRENCY", "lots"),
            ("EMBED_BATCH", "100000"),
            ("EMBED_WAIT_MS", "5000"),
        ] {
            let err = Config::from_pairs([(var, value)]).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }
    #[test]
    fn photo_limits_are_read_and_checked() {
        let c = Config::from_pairs([
            ("MAX_WORKING_PIXELS", "12000000"),
            ("MAX_FACES_PER_PHOTO", "3"),
        ])
        .unwrap();
        assert_eq!(c.max_working_pixels, 12_000_000);
        assert_eq!(c.max_faces_per_photo, 3);
        for (var, value) in [
            ("MAX_WORKING_PIXELS", "999999"),
            ("MAX_WORKING_PIXELS", "big"),
            ("MAX_FACES_PER_PHOTO", "0"),
        ] {
            let err = Config::from_pairs([(var, value)]).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn server_limits_are_read_and_checked() {
        let c = Config::from_pairs([
            ("HTTP_BODY_TIMEOUT_SECS", "2"),
            ("UPLOAD_MAX_PARTS", "3"),
            ("UPLOAD_VALIDATION_WAIT_MS", "50"),
            ("BACKLOG_MAX_BULK", "7"),
        ])
        .unwrap();
        assert_eq!(c.limits.body_timeout, std::time::Duration::from_secs(2));
        assert_eq!(c.limits.max_parts, 3);
        assert_eq!(
            c.limits.validation_wait,
            std::time::Duration::from_millis(50)
        );
        assert_eq!(c.limits.backlog_bulk, 7);
        for (var, value) in [
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("HTTP_IDLE_TIMEOUT_SECS", "soon"),
            ("UPLOAD_VALIDATION_CONCURRENCY", "-1"),
        ] {
            let err = Config::from_pairs([(var, value)]).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn values_override_defaults() {
        let c = Config::from_pairs([
            ("QUEUE_URL", "amqp://u:p@rabbit:5672/%2f"),
            ("STORAGE_URL", "s3://photos?region=ap-south-1"),
            ("CORS_ORIGINS", " https://a.example , ,https://b.example"),
            ("JOB_MAX_ATTEMPTS", "3"),
            ("JOB_LEASE_SECS", "5"),
            ("DEVICE", "cuda:0"),
            ("MODEL_DIR", ""),
            ("EXIF_UTC_OFFSET", "-03:00"),
        ])
        .unwrap();
        assert_eq!(c.exif_utc_offset.local_minus_utc(), -3 * 3600);
        assert!(!c.embedded_queue());
        assert_eq!(c.storage_url, "s3://photos?region=ap-south-1");
        assert_eq!(c.cors_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.job_lease, std::time::Duration::from_secs(5));
        assert_eq!(c.device, "cuda:0");
        // Empty means unset.
        assert_eq!(c.model_dir, PathBuf::from("data/models"));
    }

    #[test]
    fn webhook_settings_and_the_public_url() {
        let c = Config::from_pairs([
            ("BIND", "0.0.0.0:9000"),
            ("WEBHOOK_ALLOW_PRIVATE", "TRUE"),
            ("WEBHOOK_RETRY_BASE_MS", "100"),
        ])
        .unwrap();
        assert_eq!(c.public_url, "http://0.0.0.0:9000");
        assert!(c.webhook_allow_private);
        assert_eq!(c.webhook_retry_base, std::time::Duration::from_millis(100));
        let c = Config::from_pairs([("PUBLIC_URL", "https://attendance.example.edu/")]).unwrap();
        assert_eq!(c.public_url, "https://attendance.example.edu");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("JOB_MAX_ATTEMPTS", "many"),
            ("JOB_MAX_ATTEMPTS", "0"),
            ("JOB_LEASE_SECS", "0"),
            ("JOB_LEASE_SECS", "a minute"),
            ("QUEUE_URL", "redis://x"),
            ("STORAGE_URL", "/var/blobs"),
            ("BIND", "8080"),
            ("FACE_MODEL", "arcface"),
            ("DETECTOR", "retinaface"),
            ("EXIF_UTC_OFFSET", "IST"),
            ("PUBLIC_URL", "attendance.example.edu"),
            ("WEBHOOK_ALLOW_PRIVATE", "sometimes"),
            ("WEBHOOK_RETRY_BASE_MS", "0"),
            ("WEBHOOK_RETRY_BASE_MS", "soon"),
        ] {
            let err = Config::from_pairs([(var, value)]).unwrap_err();
            match &err {
                ConfigError::Invalid { var: v, .. } => assert_eq!(*v, var),
                other => panic!("unexpected error {other:?}"),
            }
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn detector_defaults_to_the_face_model_s_own() {
        let c = Config::from_pairs([("FACE_MODEL", "arcface-mbf")]).unwrap();
        assert_eq!(c.face_model, FaceModel::ArcfaceMbf);
        assert_eq!(c.detector, Detector::Scrfd);
        let c = Config::from_pairs([("FACE_MODEL", "arcface-mbf"), ("DETECTOR", "mtcnn")]).unwrap();
        assert_eq!(c.detector, Detector::Mtcnn);
        let err = Config::from_pairs([("FACE_MODEL", "arcface")]).unwrap_err();
        assert!(
            err.to_string().contains("dlib-resnet, arcface-mbf"),
            "{err}"
        );
    }
}
