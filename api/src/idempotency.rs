//! `Idempotency-Key` on uploads (`POST /attendance/mark`, `/students/register`,
//! `/students/batches`): the first answer for a key and key holder is stored and sent
//! again for 24 hours, so a retried upload never makes a second session, student or
//! batch. The same key with a different request is a 422; while the first request with
//! a key is still running, a second one waits briefly, then gets a 409 with
//! `Retry-After`. What is stored and for how long: `services::idempotency`.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use poem::{
    Body, Endpoint, IntoResponse, Request, Response,
    http::{
        HeaderValue, Method, StatusCode,
        header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER},
    },
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use crate::{
    auth,
    error::{ApiError, ErrorBody, error_response},
    services::idempotency::{self, Reservation, StoredResponse},
    state::AppState,
};

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// Set on an answer that is a replay of the first one.
pub const REPLAYED_HEADER: &str = "Idempotency-Replayed";
/// The routes that honour the header (all `POST`).
pub const ROUTES: [&str; 3] = [
    "/attendance/mark",
    "/students/register",
    "/students/batches",
];
/// How long a request waits for a concurrent one with the same key before the 409.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// Middleware: see the module documentation. It must run inside the request-size
/// limit, which bounds what it spools.
pub async fn idempotent_uploads<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    if req.method() != Method::POST || !ROUTES.contains(&req.uri().path()) {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    let Some(key) = valid_key(&key) else {
        return Ok(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )
        .into_response());
    };
    let state = req
        .data::<AppState>()
        .expect("AppState is attached to the route")
        .clone();
    // An unknown key or a database outage: the handler answers it (401, 503).
    let Some(holder) = key_holder(&state, &req).await else {
        return next.call(req).await.map(IntoResponse::into_response);
    };

    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let head = format!(
        "{} {}",
        req.method(),
        req.uri().path_and_query().map_or("", |p| p.as_str())
    );
    let spooled = match spool(req.take_body(), &head).await {
        Ok(s) => s,
        // Over the size limit (the limit middleware answers 413) or the client went away.
        Err(e) => {
            return Err(poem::Error::from_string(
                e.to_string(),
                StatusCode::BAD_REQUEST,
            ));
        }
    };
    let (file, fingerprint) = match fingerprint(spooled, content_type.as_deref(), &head).await {
        Ok(f) => f,
        Err(e) => {
            return Err(poem::Error::from_string(
                e.to_string(),
                StatusCode::BAD_REQUEST,
            ));
        }
    };

    let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    loop {
        let reservation =
            idempotency::reserve(&state.db, holder, &key, &fingerprint, chrono::Utc::now()).await;
        match reservation {
            Ok(Reservation::Reserved) => break,
            Ok(Reservation::Replay(stored)) => return Ok(replay(stored)),
            Ok(Reservation::Mismatch) => {
                return Ok(ApiError::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used for a different request; \
                     use a new key for a new upload",
                )
                .into_response());
            }
            Ok(Reservation::InProgress) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Ok(Reservation::InProgress) => return Ok(in_progress()),
            Err(e) => {
                return Ok(ApiError::from(crate::error::ServiceError::Database(e)).into_response());
            }
        }
    }

    req.set_body(Body::from_async_read(file));
    let mut guard = Held {
        db: state.db.clone(),
        holder,
        key: key.clone(),
        done: false,
    };
    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => error_response(err),
    };
    let status = resp.status();
    if status.is_server_error() {
        if let Err(e) = idempotency::release(&state.db, holder, &key).await {
            tracing::warn!(error = %e, "could not release an Idempotency-Key after a 5xx");
        }
        guard.done = true;
        return Ok(resp);
    }
    let body = resp.take_body().into_bytes().await.unwrap_or_default();
    let stored = StoredResponse {
        status: status.as_u16(),
        content_type: resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    match idempotency::complete(&state.db, holder, &key, &stored).await {
        Ok(()) => guard.done = true,
        // The upload itself succeeded; the key is released (by the guard) rather than
        // left pending, so a retry is not refused for the lease's length.
        Err(e) => tracing::warn!(error = %e, "could not store the answer for an Idempotency-Key"),
    }
    resp.set_body(body);
    Ok(resp)
}

/// A reserved key whose answer is not stored yet: released when dropped, i.e. when the
/// request was abandoned (the client went away and the handler was cancelled) or its
/// answer could not be stored, so a retry runs instead of waiting for
/// [`idempotency::PENDING_LEASE`].
struct Held {
    db: sea_orm::DatabaseConnection,
    holder: Uuid,
    key: String,
    done: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (db, holder, key) = (self.db.clone(), self.holder, std::mem::take(&mut self.key));
        tokio::spawn(async move {
            if let Err(e) = idempotency::release(&db, holder, &key).await {
                tracing::warn!(%holder, error = %e, "could not release an Idempotency-Key");
            }
        });
    }
}

/// 1..=255 printable ASCII characters.
fn valid_key(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let ok = (1..=255).contains(&bytes.len()) && bytes.iter().all(|b| (0x20..=0x7e).contains(b));
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// The id of the (valid) API key that sent the request.
async fn key_holder(state: &AppState, req: &Request) -> Option<Uuid> {
    let header = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    match auth::find_key(&state.db, token.trim()).await {
        Ok(key) => key.map(|k| k.id),
        Err(e) => {
            tracing::warn!(error = %e, "could not look up the key for an Idempotency-Key");
            None
        }
    }
}

/// The body in an anonymous temporary file (a batch may be gigabytes), with the
/// SHA-256 of `head` and the raw bytes.
struct Spooled {
    file: tokio::fs::File,
    raw_hash: Sha256,
}

async fn spool(body: Body, head: &str) -> std::io::Result<Spooled> {
    let mut file = tokio::fs::File::from_std(tempfile::tempfile()?);
    let mut raw_hash = Sha256::new();
    raw_hash.update(head.as_bytes());
    raw_hash.update([0]);
    let mut stream = body.into_bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        raw_hash.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.rewind().await?;
    Ok(Spooled { file, raw_hash })
}

/// The request's fingerprint. A multipart body is hashed part by part (name, file
/// name, type, bytes), not as sent: clients pick a new random boundary for every
/// retry. Returns the file rewound, to be the handler's body.
async fn fingerprint(
    spooled: Spooled,
    content_type: Option<&str>,
    head: &str,
) -> std::io::Result<(tokio::fs::File, String)> {
    let Spooled { mut file, raw_hash } = spooled;
    let boundary = content_type.and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        return Ok((file, hex::encode(raw_hash.finalize())));
    };
    let reader = file.try_clone().await?;
    let parts = Body::from_async_read(reader).into_bytes_stream();
    let mut multipart = multer::Multipart::new(parts, boundary);
    let mut hash = Sha256::new();
    hash.update(head.as_bytes());
    hash.update([0]);
    let mut parsed = true;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                // Malformed: the handler refuses it; hash the bytes as sent.
                parsed = false;
                break;
            }
        };
        for text in [
            field.name().unwrap_or(""),
            field.file_name().unwrap_or(""),
            field.content_type().map_or("", |m| m.essence_str()),
        ] {
            update_framed(&mut hash, text.as_bytes());
        }
        let mut len = 0u64;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    len += chunk.len() as u64;
                    hash.update(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    parsed = false;
                    break;
                }
            }
        }
        hash.update(len.to_le_bytes());
        if !parsed {
            break;
        }
    }
    drop(multipart);
    file.rewind().await?;
    let digest = if parsed {
        hash.finalize()
    } else {
        raw_hash.finalize()
    };
    Ok((file, hex::encode(digest)))
}

/// Length-prefixed, so that ("ab", "c") and ("a", "bc") hash differently.
fn update_framed(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut builder = Response::builder()
        .status(status)
        .header(REPLAYED_HEADER, "true");
    if let Some(ct) = stored.content_type {
        builder = builder.header(CONTENT_TYPE, ct);
    }
    builder.body(Bytes::from(stored.body))
}

fn in_progress() -> Response {
    let mut resp = ErrorBody::new(
        "idempotency_key_in_progress",
        "a request with this Idempotency-Key is in progress; retry shortly",
    )
    .with_status(StatusCode::CONFLICT)
    .into_response();
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_printable_ascii() {
        assert_eq!(
            valid_key(&HeaderValue::from_static("retry-42 a")).as_deref(),
            Some("retry-42 a")
        );
        assert!(valid_key(&HeaderValue::from_static("")).is_none());
        assert!(valid_key(&HeaderValue::from_str(&"k".repeat(256)).unwrap()).is_none());
        assert!(valid_key(&HeaderValue::from_str(&"k".repeat(255)).unwrap()).is_some());
        assert!(valid_key(&HeaderValue::from_bytes(b"tab\there").unwrap()).is_none());
        assert!(valid_key(&HeaderValue::from_bytes("clé".as_bytes()).unwrap()).is_none());
    }

    async fn print(body: &'static [u8], content_type: &str) -> String {
        let spooled = spool(
            Body::from_bytes(Bytes::from_static(body)),
            "POST /attendance/mark",
        )
        .await
        .unwrap();
        fingerprint(spooled, Some(content_type), "POST /attendance/mark")
            .await
            .unwrap()
            .1
    }

    #[tokio::test]
    async fn a_multipart_fingerprint_ignores_the_boundary_but_not_the_parts() {
        let a = print(
            b"--AAA\r\nContent-Disposition: form-data; name=\"class_id\"\r\n\r\n42\r\n--AAA--\r\n",
            "multipart/form-data; boundary=AAA",
        )
        .await;
        let b = print(
            b"--BBBB\r\nContent-Disposition: form-data; name=\"class_id\"\r\n\r\n42\r\n--BBBB--\r\n",
            "multipart/form-data; boundary=BBBB",
        )
        .await;
        let c = print(
            b"--AAA\r\nContent-Disposition: form-data; name=\"class_id\"\r\n\r\n43\r\n--AAA--\r\n",
            "multipart/form-data; boundary=AAA",
        )
        .await;
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
