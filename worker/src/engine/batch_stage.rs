//! Shared batching stages: when a worker runs several jobs at once, the items each job
//! sends through a network (aligned faces for the embedder, pyramid levels and crops for
//! MTCNN on a GPU) go through it together, so that a GPU sees batches instead of one
//! photo's few. One thread owns a stage's passes. A pass waits for the other users in
//! flight (at most `EMBED_WAIT_MS`), never for users that do not exist: a lone photo is
//! not delayed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::{Duration, Instant};

use super::{EngineError, Result};

/// How a stage forms its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Items per pass (`EMBED_BATCH` faces for the embedder); one request with more
    /// still goes in one pass.
    pub max_items: usize,
    /// Longest wait, from the first request's arrival, for the other users' requests
    /// (`EMBED_WAIT_MS`).
    pub wait: Duration,
}

/// What a stage has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCounts {
    pub passes: u64,
    pub requests: u64,
    pub items: u64,
}

/// Threads currently using a group of stages (e.g. photos being detected): a pass
/// waits for as many requests as there are users, or for the wait bound.
#[derive(Debug, Default)]
pub struct Users(AtomicUsize);

impl Users {
    /// Counts the caller as a user until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> UserGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        UserGuard(Arc::clone(self))
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct UserGuard(Arc<Users>);

impl Drop for UserGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One user's items and where their results go.
struct Request<I, O> {
    items: Vec<I>,
    reply: SyncSender<Result<Vec<O>>>,
}

#[derive(Default)]
struct Counters {
    passes: AtomicU64,
    requests: AtomicU64,
    items: AtomicU64,
}

/// A handle to a stage's thread; the thread ends when the handle is dropped.
pub struct BatchStage<I, O> {
    requests: Sender<Request<I, O>>,
    counters: Arc<Counters>,
}

impl<I: Send + 'static, O: Send + 'static> BatchStage<I, O> {
    /// Starts a stage whose passes call `run` on the items of several requests at once;
    /// `run` must give one result per item, each independent of the others.
    pub fn start<F>(name: &str, options: BatchOptions, users: Arc<Users>, run: F) -> Result<Self>
    where
        F: Fn(&[I]) -> Result<Vec<O>> + Send + 'static,
    {
        let (requests, incoming) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                span.in_scope(|| serve(&run, &incoming, options, &users, &thread_counters))
            })
            .map_err(|e| EngineError::Invalid(format!("cannot start the {name} stage: {e}")))?;
        Ok(BatchStage { requests, counters })
    }

    /// Results for one user's items, in order; blocks until the pass that takes them
    /// has run.
    pub fn run(&self, items: Vec<I>) -> Result<Vec<O>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let stopped = || EngineError::Invalid("a shared batching stage has stopped".into());
        self.requests
            .send(Request { items, reply })
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    pub fn counts(&self) -> StageCounts {
        StageCounts {
            passes: self.counters.passes.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            items: self.counters.items.load(Ordering::Relaxed),
        }
    }
}

/// The stage's loop: gather requests into a batch, run it, answer each.
fn serve<I, O>(
    run: &dyn Fn(&[I]) -> Result<Vec<O>>,
    incoming: &Receiver<Request<I, O>>,
    options: BatchOptions,
    users: &Users,
    counters: &Counters,
) {
    while let Ok(first) = incoming.recv() {
        let deadline = Instant::now() + options.wait;
        let mut items = first.items.len();
        let mut batch = vec![first];
        // Requests already waiting join in any case; beyond them, wait only while
        // some user in flight has not sent its own.
        while items < options.max_items {
            let next = match incoming.try_recv() {
                Ok(request) => Some(request),
                Err(_) if batch.len() >= users.count() => None,
                Err(_) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    incoming.recv_timeout(left).ok()
                }
            };
            match next {
                Some(request) => {
                    items += request.items.len();
                    batch.push(request);
                }
                None => break,
            }
        }
        counters.passes.fetch_add(1, Ordering::Relaxed);
        counters
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        counters.items.fetch_add(items as u64, Ordering::Relaxed);
        run_batch(run, batch);
    }
}

/// Runs one pass over every request's items and hands each its share. If the pass
/// fails, each request is run alone, so that each gets its own result or error.
fn run_batch<I, O>(run: &dyn Fn(&[I]) -> Result<Vec<O>>, batch: Vec<Request<I, O>>) {
    if batch.len() == 1 {
        let Request { items, reply } = batch.into_iter().next().expect("one request");
        let _ = reply.send(run(&items));
        return;
    }
    let counts: Vec<usize> = batch.iter().map(|r| r.items.len()).collect();
    let mut items = Vec::with_capacity(counts.iter().sum());
    let mut replies = Vec::with_capacity(batch.len());
    for request in batch {
        items.extend(request.items);
        replies.push(request.reply);
    }
    match run(&items) {
        Ok(results) if results.len() == items.len() => {
            let mut results = results.into_iter();
            for (reply, n) in replies.into_iter().zip(counts) {
                // A requester that went away (its job was stopped) needs no answer.
                let _ = reply.send(Ok(results.by_ref().take(n).collect()));
            }
        }
        outcome => {
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "a shared pass failed; running its requests one by one");
            }
            let mut start = 0;
            for (reply, n) in replies.into_iter().zip(counts) {
                let _ = reply.send(run(&items[start..start + n]));
                start += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doubling(users: &Arc<Users>, wait: Duration) -> BatchStage<u32, u32> {
        let options = BatchOptions {
            max_items: 100,
            wait,
        };
        BatchStage::start("test", options, Arc::clone(users), |items: &[u32]| {
            Ok(items.iter().map(|v| v * 2).collect())
        })
        .unwrap()
    }

    #[test]
    fn a_lone_user_is_not_kept_waiting() {
        let users = Arc::new(Users::default());
        // A wait bound far beyond the test's patience: a lone user must not sit it out.
        let stage = doubling(&users, Duration::from_secs(600));
        let _me = users.enter();
        let started = Instant::now();
        assert_eq!(stage.run(vec![1, 2, 3]).unwrap(), vec![2, 4, 6]);
        assert_eq!(stage.run(vec![]).unwrap(), Vec::<u32>::new());
        assert!(started.elapsed() < Duration::from_secs(60));
        assert_eq!(stage.counts().passes, 1);
    }

    #[test]
    fn users_in_flight_share_a_pass_and_get_their_own_results() {
        let users = Arc::new(Users::default());
        let stage = doubling(&users, Duration::from_secs(600));
        let guards: Vec<_> = (0..3).map(|_| users.enter()).collect();
        let results: Vec<Vec<u32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3u32)
                .map(|k| {
                    let stage = &stage;
                    s.spawn(move || stage.run((0..=k).map(|v| 10 * k + v).collect()))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        drop(guards);
        assert_eq!(results, vec![vec![0], vec![20, 22], vec![40, 42, 44]]);
        let counts = stage.counts();
        assert_eq!((counts.passes, counts.requests, counts.items), (1, 3, 6));
    }
}
