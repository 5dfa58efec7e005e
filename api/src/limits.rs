//! What one client, or all of them together, may take from the server
//! ([`common::config::ServerLimits`]):
//!
//! - [`LimitedAcceptor`]: at most `HTTP_MAX_CONNECTIONS` connections are served; beyond
//!   it `accept` waits, so new connections queue in the kernel's listen backlog. Each
//!   connection is a [`GuardedIo`]: a request's headers must arrive within
//!   `HTTP_HEADER_TIMEOUT_SECS` of its first byte, and a connection with nothing in
//!   flight is closed after `HTTP_IDLE_TIMEOUT_SECS`.
//! - [`Guard`] (middleware): a request body must arrive within `HTTP_BODY_TIMEOUT_SECS`
//!   (408); a multipart body may have `UPLOAD_MAX_PARTS` parts (400) of
//!   `UPLOAD_MAX_PART_BYTES` each (413 `payload_too_large`, as any size refusal), counted in the byte stream before a part is
//!   spooled; uploads that would queue a job are refused while their lane's backlog is
//!   full (503); and every 503 carries `Retry-After`.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    task::{Context, Poll, Waker, ready},
    time::Duration,
};

use bytes::Bytes;
use common::{Lane, config::ServerLimits};
use futures::StreamExt;
use models::job::{self, JobStatus};
use poem::{
    Body, Endpoint, IntoResponse, Middleware, Request, Response,
    http::{HeaderValue, Method, StatusCode, header, uri::Scheme},
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};

use crate::{
    error::{ApiError, ErrorBody},
    state::AppState,
};

/// An acceptor that serves at most `max_connections` connections at once and guards
/// each with the header and idle timeouts.
pub struct LimitedAcceptor<A> {
    inner: A,
    slots: Arc<Semaphore>,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl<A: Acceptor> LimitedAcceptor<A> {
    pub fn new(inner: A, limits: &ServerLimits) -> Self {
        LimitedAcceptor {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }
}

impl<A: Acceptor> Acceptor for LimitedAcceptor<A>
where
    A::Io: Unpin,
{
    type Io = GuardedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        // Wait for a free slot before taking the next connection off the listen queue.
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let io = GuardedIo::new(io, permit, self.header_timeout, self.idle_timeout);
        Ok((io, local, remote, scheme))
    }
}

/// Where a connection is between requests, as seen from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers: they must end (`\r\n\r\n`) by the deadline.
    Headers,
    /// Headers read; the handler (and its body timeout) has the request.
    Request,
    /// A response was written; waiting for the next request.
    Idle,
    /// HTTP/2 (prior knowledge): frames are not parsed here, only idleness counts.
    Http2,
}

/// A connection's IO with the header and idle deadlines, holding its connection slot
/// until it is dropped. The deadline is only checked while the server waits to read,
/// so a handler's own work is never cut off here.
pub struct GuardedIo<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    phase: Phase,
    /// The last three bytes read in [`Phase::Headers`], to find `\r\n\r\n` across reads.
    tail: [u8; 3],
    seen: usize,
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
    /// The reader waiting on the socket: woken when a response makes the connection
    /// idle, so that it starts waiting on the idle deadline too.
    reader: Option<Waker>,
    header_timeout: Duration,
    idle_timeout: Duration,
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl<T> GuardedIo<T> {
    fn new(
        inner: T,
        slot: OwnedSemaphorePermit,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        // A new connection must send its first request's headers promptly.
        let deadline = Instant::now() + header_timeout;
        GuardedIo {
            inner,
            _slot: slot,
            phase: Phase::Headers,
            tail: [0; 3],
            seen: 0,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            reader: None,
            header_timeout,
            idle_timeout,
        }
    }

    /// Follows the phase through the bytes just read.
    fn on_read(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.phase {
            Phase::Request => {}
            Phase::Http2 => self.deadline = Instant::now() + self.idle_timeout,
            Phase::Idle => {
                self.phase = Phase::Headers;
                self.tail = [0; 3];
                self.seen = 0;
                self.deadline = Instant::now() + self.header_timeout;
                self.scan_headers(data);
            }
            Phase::Headers => self.scan_headers(data),
        }
    }

    fn scan_headers(&mut self, data: &[u8]) {
        if self.seen == 0 && data.starts_with(HTTP2_PREFACE) {
            self.phase = Phase::Http2;
            self.deadline = Instant::now() + self.idle_timeout;
            return;
        }
        self.seen += data.len();
        // The end of the headers may straddle the previous read: look at the seam
        // (the last three bytes before and the first three now), then in this read.
        let mut seam = [0u8; 6];
        seam[..3].copy_from_slice(&self.tail);
        let lead = data.len().min(3);
        seam[3..3 + lead].copy_from_slice(&data[..lead]);
        if memchr::memmem::find(&seam[..3 + lead], b"\r\n\r\n").is_some()
            || memchr::memmem::find(data, b"\r\n\r\n").is_some()
        {
            self.phase = Phase::Request;
            return;
        }
        if data.len() >= 3 {
            self.tail.copy_from_slice(&data[data.len() - 3..]);
        } else {
            let keep = 3 - data.len();
            let mut tail = [0u8; 3];
            tail[..keep].copy_from_slice(&self.tail[3 - keep..]);
            tail[keep..].copy_from_slice(data);
            self.tail = tail;
        }
    }

    fn on_write(&mut self, data: &[u8]) {
        // `100 Continue` is no answer: the request body is still to come.
        if self.phase == Phase::Request && data.starts_with(b"HTTP/1.1 1") {
            return;
        }
        match self.phase {
            Phase::Request | Phase::Idle => {
                self.phase = Phase::Idle;
                self.deadline = Instant::now() + self.idle_timeout;
                if let Some(reader) = self.reader.take() {
                    reader.wake();
                }
            }
            Phase::Http2 => self.deadline = Instant::now() + self.idle_timeout,
            Phase::Headers => {}
        }
    }

    /// `Ready` with an error once the phase's deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.phase == Phase::Request {
            if !self
                .reader
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                self.reader = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        if self.timer.deadline() != self.deadline {
            self.timer.as_mut().reset(self.deadline);
        }
        ready!(self.timer.as_mut().poll(cx));
        let what = match self.phase {
            Phase::Headers => "the request headers did not arrive in time",
            _ => "the connection was idle too long",
        };
        tracing::debug!(phase = ?self.phase, "closing connection: {what}");
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, what))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.on_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_deadline(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, data));
        if matches!(written, Ok(n) if n > 0) {
            this.on_write(data);
        }
        Poll::Ready(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs));
        if matches!(written, Ok(n) if n > 0) {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            this.on_write(first);
        }
        Poll::Ready(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The request-level limits as middleware (see the module's note).
#[derive(Clone)]
pub struct Guard {
    state: AppState,
    limits: ServerLimits,
    /// A registration batch's own size cap, which is also its part cap.
    batch_max_bytes: u64,
}

impl Guard {
    pub fn new(state: AppState, limits: ServerLimits, batch_max_bytes: u64) -> Guard {
        Guard {
            state,
            limits,
            batch_max_bytes,
        }
    }
}

impl<E: Endpoint> Middleware<E> for Guard {
    type Output = GuardEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        GuardEndpoint {
            inner: ep,
            guard: self.clone(),
        }
    }
}

pub struct GuardEndpoint<E> {
    inner: E,
    guard: Guard,
}

/// The lane whose backlog an upload would add to, for the requests that queue a job.
fn upload_lane(req: &Request) -> Option<Lane> {
    if req.method() != Method::POST {
        return None;
    }
    let path = req.uri().path().trim_end_matches('/');
    match path {
        "/attendance/mark" | "/students/register" => Some(Lane::Interactive),
        "/students/batches" => Some(Lane::Bulk),
        // `POST /students/{id}/photos`
        p if p.starts_with("/students/") && p.ends_with("/photos") => Some(Lane::Interactive),
        _ => None,
    }
}

/// Before refusing an upload unread: a client that did not ask for `100 Continue` is
/// already sending its body, and closing the connection under that unread data resets
/// it, so the client sees a broken pipe instead of the 503. Reads and drops up to the
/// request size limit within the body timeout (nothing is stored); a client that waits
/// for `100 Continue` is never invited to send it.
async fn discard_unsent_body(req: &mut Request, within: Duration) {
    let expects_continue = req
        .headers()
        .get(poem::http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        return;
    }
    let mut body = req.take_body().into_bytes_stream();
    let _ = tokio::time::timeout(within, async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = body.next().await {
            seen += chunk.len();
            if seen > crate::upload::MAX_REQUEST_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Why the body stream was cut off, remembered for the answer.
const CUT_NONE: u8 = 0;
const CUT_TIMEOUT: u8 = 1;
const CUT_PARTS: u8 = 2;
const CUT_PART_SIZE: u8 = 3;

impl<E: Endpoint> Endpoint for GuardEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let limits = &self.guard.limits;
        let lane = upload_lane(&req);
        if let Some(lane) = lane {
            // Before a byte of the body is read: nothing is spooled or stored.
            let max = match lane {
                Lane::Interactive => limits.backlog_interactive,
                Lane::Bulk => limits.backlog_bulk,
            };
            match queued_jobs(&self.guard.state, lane).await {
                Ok(n) if n >= max => {
                    tracing::warn!(%lane, queued = n, max, "backlog full, upload refused");
                    discard_unsent_body(&mut req, limits.body_timeout).await;
                    return Ok(with_retry_after(
                        ApiError::Unavailable(ErrorBody::new(
                            "backlog_full",
                            format!("{n} jobs are waiting on the {lane} lane; try again later"),
                        ))
                        .into_response(),
                        limits.retry_after_secs,
                    ));
                }
                Ok(_) => {}
                // The handler meets the same database and answers for it.
                Err(e) => tracing::warn!(error = %e, "could not count the backlog"),
            }
        }

        let batch = lane == Some(Lane::Bulk);
        let part_cap = if batch {
            self.guard.batch_max_bytes
        } else {
            limits.max_part_bytes
        };
        let timeout = limits.body_timeout;
        let cut = Arc::new(AtomicU8::new(CUT_NONE));
        let feed = Feed {
            body: Box::pin(req.take_body().into_bytes_stream()),
            parts: multipart_boundary(&req)
                .map(|b| PartCounter::new(&b, limits.max_parts, part_cap)),
            deadline: Instant::now() + timeout,
            // A batch streams up to BATCH_MAX_BYTES: it may take long, but must not
            // stall; any other body must arrive whole within the timeout.
            stall_only: batch.then_some(timeout),
            cut: Arc::clone(&cut),
            done: false,
        };
        req.set_body(Body::from_bytes_stream(futures::stream::unfold(
            feed,
            Feed::next,
        )));

        let resp = self.inner.call(req).await.map(IntoResponse::into_response);
        let resp = match cut.load(Ordering::Relaxed) {
            CUT_TIMEOUT => ErrorBody::new(
                "request_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    timeout.as_secs()
                ),
            )
            .with_status(StatusCode::REQUEST_TIMEOUT)
            .into_response(),
            CUT_PARTS => ApiError::bad_request(
                "too_many_parts",
                format!("a form may have at most {} parts", limits.max_parts),
            )
            .into_response(),
            CUT_PART_SIZE => ApiError::PayloadTooLarge(ErrorBody::new(
                "payload_too_large",
                format!("a form part may have at most {part_cap} bytes"),
            ))
            .into_response(),
            _ => resp.unwrap_or_else(|e| e.into_response()),
        };
        Ok(with_retry_after(resp, limits.retry_after_secs))
    }
}

type BodyStream = Pin<Box<dyn futures::Stream<Item = io::Result<Bytes>> + Send>>;

/// A request body as the handler reads it: under the body deadline and the multipart
/// limits; `cut` says why it was cut off.
struct Feed {
    body: BodyStream,
    parts: Option<PartCounter>,
    deadline: Instant,
    stall_only: Option<Duration>,
    cut: Arc<AtomicU8>,
    done: bool,
}

impl Feed {
    async fn next(mut self) -> Option<(io::Result<Bytes>, Feed)> {
        if self.done {
            return None;
        }
        let chunk = match tokio::time::timeout_at(self.deadline, self.body.next()).await {
            Err(_) => return Some(self.cut_off(CUT_TIMEOUT, io::ErrorKind::TimedOut)),
            Ok(None) => return None,
            Ok(Some(Err(e))) => return Some((Err(e), self)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if let Some(stall) = self.stall_only {
            self.deadline = Instant::now() + stall;
        }
        if let Some(Err(why)) = self.parts.as_mut().map(|p| p.feed(&chunk)) {
            return Some(self.cut_off(why, io::ErrorKind::InvalidData));
        }
        Some((Ok(chunk), self))
    }

    fn cut_off(mut self, why: u8, kind: io::ErrorKind) -> (io::Result<Bytes>, Feed) {
        self.cut.store(why, Ordering::Relaxed);
        self.done = true;
        (Err(io::Error::new(kind, "request body cut off")), self)
    }
}

/// Queued jobs of a lane (the `status` index narrows the scan to queued rows).
async fn queued_jobs(state: &AppState, lane: Lane) -> Result<u64, sea_orm::DbErr> {
    job::Entity::find()
        .filter(job::Column::Status.eq(JobStatus::Queued))
        .filter(job::Column::Lane.eq(lane))
        .count(&state.db)
        .await
}

/// Every 503 tells the client when to come back.
fn with_retry_after(mut resp: Response, secs: u64) -> Response {
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE
        && !resp.headers().contains_key(header::RETRY_AFTER)
    {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn multipart_boundary(req: &Request) -> Option<String> {
    let content_type = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut params = content_type.split(';');
    let essence = params.next()?.trim();
    if !essence.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// Counts multipart delimiters (`\r\n--boundary`) in the body as it streams, so that a
/// form with too many parts, or one oversized part, is cut off before it is spooled.
struct PartCounter {
    delimiter: Vec<u8>,
    /// The last `delimiter.len() - 1` bytes, to find a delimiter split across chunks.
    carry: Vec<u8>,
    offset: u64,
    last_delimiter: u64,
    delimiters: usize,
    max_parts: usize,
    max_part_bytes: u64,
}

/// Room for a part's own headers (name, filename, content type) beside its data.
const PART_HEADER_SLACK: u64 = 16 * 1024;

impl PartCounter {
    fn new(boundary: &str, max_parts: usize, max_part_bytes: u64) -> PartCounter {
        // The body starts with the first delimiter; a leading CRLF makes it findable
        // like the others.
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        PartCounter {
            carry: b"\r\n".to_vec(),
            delimiter,
            offset: 0,
            last_delimiter: 0,
            delimiters: 0,
            max_parts,
            max_part_bytes,
        }
    }

    /// Positions count from the start of `"\r\n" + body`; only their differences matter.
    fn feed(&mut self, chunk: &Bytes) -> Result<(), u8> {
        let mut window = std::mem::take(&mut self.carry);
        let window_start = 2 + self.offset - window.len() as u64;
        window.extend_from_slice(chunk);
        for at in memchr::memmem::find_iter(&window, &self.delimiter) {
            let pos = window_start + at as u64;
            if self.delimiters > 0
                && pos - self.last_delimiter > self.max_part_bytes + PART_HEADER_SLACK
            {
                return Err(CUT_PART_SIZE);
            }
            self.delimiters += 1;
            self.last_delimiter = pos;
            // n + 1 delimiters frame n parts (the last one closes the form).
            if self.delimiters > self.max_parts + 1 {
                return Err(CUT_PARTS);
            }
        }
        self.offset += chunk.len() as u64;
        if 2 + self.offset - self.last_delimiter > self.max_part_bytes + PART_HEADER_SLACK {
            return Err(CUT_PART_SIZE);
        }
        let keep = (self.delimiter.len() - 1).min(window.len());
        self.carry = window[window.len() - keep..].to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: usize, size: usize) -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..parts {
            body.extend_from_slice(b"--XyZ\r\ncontent-disposition: form-data; name=\"f");
            body.extend_from_slice(i.to_string().as_bytes());
            body.extend_from_slice(b"\"\r\n\r\n");
            body.extend(std::iter::repeat_n(b'a', size));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    }

    fn feed_in_chunks(counter: &mut PartCounter, body: &[u8], chunk: usize) -> Result<(), u8> {
        for c in body.chunks(chunk) {
            counter.feed(&Bytes::copy_from_slice(c))?;
        }
        Ok(())
    }

    #[test]
    fn parts_are_counted_across_chunk_boundaries() {
        for chunk in [1, 3, 7, 100, 100_000] {
            let mut ok = PartCounter::new("XyZ", 4, 1000);
            assert_eq!(feed_in_chunks(&mut ok, &form(4, 10), chunk), Ok(()));
            assert_eq!(ok.delimiters, 5, "chunk {chunk}");
            let mut over = PartCounter::new("XyZ", 4, 1000);
            assert_eq!(
                feed_in_chunks(&mut over, &form(5, 10), chunk),
                Err(CUT_PARTS)
            );
        }
    }

    #[test]
    fn an_oversized_part_is_cut_off_while_it_streams() {
        let mut counter = PartCounter::new("XyZ", 4, 10);
        let body = form(1, 20 * 1024 + 100);
        let mut fed = 0;
        let result = body.chunks(1024).try_for_each(|c| {
            fed += c.len();
            counter.feed(&Bytes::copy_from_slice(c))
        });
        assert_eq!(result, Err(CUT_PART_SIZE));
        assert!(fed < body.len(), "cut off before the end");
    }

    #[test]
    fn the_boundary_is_read_from_the_content_type() {
        let req = Request::builder()
            .header(
                header::CONTENT_TYPE,
                "multipart/form-data; boundary=\"abc123\"",
            )
            .finish();
        assert_eq!(multipart_boundary(&req).as_deref(), Some("abc123"));
        let req = Request::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .finish();
        assert_eq!(multipart_boundary(&req), None);
    }
}
