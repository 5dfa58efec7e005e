//! The shared embedding stage: when a worker runs several jobs at once, their photos'
//! aligned faces go through the embedder together, so that a GPU sees batches of up to
//! `EMBED_BATCH` faces instead of one photo's few. One thread owns the passes; a photo
//! waits at most `EMBED_WAIT_MS` for company before a partial pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use image::RgbImage;

use super::embedder::Embedder;
use super::matching::Descriptor;
use super::{EngineError, Result};

/// How the stage forms its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Faces per pass (`EMBED_BATCH`); one photo with more still goes in one request.
    pub max_faces: usize,
    /// Longest wait, from the first face's arrival, for more faces (`EMBED_WAIT_MS`).
    pub wait: Duration,
}

/// What the stage has done: passes run and faces embedded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCounts {
    pub passes: u64,
    pub requests: u64,
    pub faces: u64,
}

/// One photo's aligned faces and where their descriptors go.
struct Request {
    crops: Vec<RgbImage>,
    reply: SyncSender<Result<Vec<Descriptor>>>,
}

#[derive(Default)]
struct Counters {
    passes: AtomicU64,
    requests: AtomicU64,
    faces: AtomicU64,
}

/// A handle to the stage's thread; the thread ends when the handle is dropped.
pub struct EmbedStage {
    requests: Sender<Request>,
    counters: Arc<Counters>,
}

impl EmbedStage {
    /// Starts the stage's thread around `embedder`.
    pub fn start(embedder: Arc<dyn Embedder>, options: BatchOptions) -> Result<EmbedStage> {
        let (requests, incoming) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("embed-stage".into())
            .spawn(move || {
                span.in_scope(|| serve(embedder.as_ref(), &incoming, options, &thread_counters))
            })
            .map_err(|e| EngineError::Invalid(format!("cannot start the embedding stage: {e}")))?;
        Ok(EmbedStage { requests, counters })
    }

    /// Descriptors of one photo's aligned faces, in order; blocks until the pass that
    /// takes them has run.
    pub fn embed(&self, crops: Vec<RgbImage>) -> Result<Vec<Descriptor>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let stopped = || EngineError::Invalid("the embedding stage has stopped".into());
        self.requests
            .send(Request { crops, reply })
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    pub fn counts(&self) -> StageCounts {
        StageCounts {
            passes: self.counters.passes.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            faces: self.counters.faces.load(Ordering::Relaxed),
        }
    }
}

/// The stage's loop: gather requests into a batch, run it, answer each.
fn serve(
    embedder: &dyn Embedder,
    incoming: &Receiver<Request>,
    options: BatchOptions,
    counters: &Counters,
) {
    while let Ok(first) = incoming.recv() {
        let deadline = Instant::now() + options.wait;
        let mut faces = first.crops.len();
        let mut batch = vec![first];
        while faces < options.max_faces {
            let left = deadline.saturating_duration_since(Instant::now());
            match incoming.recv_timeout(left) {
                Ok(request) => {
                    faces += request.crops.len();
                    batch.push(request);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        counters.passes.fetch_add(1, Ordering::Relaxed);
        counters
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        counters.faces.fetch_add(faces as u64, Ordering::Relaxed);
        run_batch(embedder, batch);
    }
}

/// Runs one pass over every request's crops and hands each its share. If the pass
/// fails, each request is run alone, so that each gets its own result or error.
fn run_batch(embedder: &dyn Embedder, batch: Vec<Request>) {
    if batch.len() == 1 {
        let Request { crops, reply } = batch.into_iter().next().expect("one request");
        let _ = reply.send(embedder.embed_aligned(&crops));
        return;
    }
    let counts: Vec<usize> = batch.iter().map(|r| r.crops.len()).collect();
    let mut crops = Vec::with_capacity(counts.iter().sum());
    let mut replies = Vec::with_capacity(batch.len());
    for request in batch {
        crops.extend(request.crops);
        replies.push(request.reply);
    }
    match embedder.embed_aligned(&crops) {
        Ok(descriptors) if descriptors.len() == crops.len() => {
            let mut descriptors = descriptors.into_iter();
            for (reply, n) in replies.into_iter().zip(counts) {
                // A requester that went away (its job was stopped) needs no answer.
                let _ = reply.send(Ok(descriptors.by_ref().take(n).collect()));
            }
        }
        outcome => {
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "a shared embedding pass failed; running its photos one by one");
            }
            let mut start = 0;
            for (reply, n) in replies.into_iter().zip(counts) {
                let _ = reply.send(embedder.embed_aligned(&crops[start..start + n]));
                start += n;
            }
        }
    }
}
