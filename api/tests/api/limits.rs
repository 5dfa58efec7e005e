//! Server limits against the running application: slow headers, stalled bodies,
//! the connection cap, multipart part caps, a full backlog and saturated validation.

use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use uuid::Uuid;

use crate::helpers::{Db, Queue, TestApp, error_code, fixture, spawn_app_with};

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// The start of a raw `POST /attendance/mark` form (boundary `B0UND`): the class part,
/// then the headers of one photo part, whose bytes the caller sends.
fn raw_mark_form_start(class_id: Uuid) -> String {
    format!(
        "--B0UND\r\ncontent-disposition: form-data; name=\"class_id\"\r\n\r\n{class_id}\r\n\
         --B0UND\r\ncontent-disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n\
         content-type: image/jpeg\r\n\r\n"
    )
}

/// Reads until the peer closes the connection or `limit` passes; the bytes read and
/// whether the peer closed it.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends a complete `GET /healthz` and reads its answer's status line.
async fn healthz_on(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&out).lines().next()?.to_string())
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[("HTTP_HEADER_TIMEOUT_SECS", "1")],
    )
    .await;
    // A prompt client is served.
    let mut prompt = connect(&app).await;
    let status = healthz_on(&mut prompt, Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));

    // A slow one: a header line every 300 ms, never the blank line that ends them.
    let mut slow = connect(&app).await;
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut closed = false;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow
            .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => panic!(
                "answered instead of cut off: {}",
                String::from_utf8_lossy(&probe[..n])
            ),
            Err(_) => {}
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "the slow client was still connected after 6 s");
    assert!(
        elapsed < Duration::from_secs(4),
        "cut off after {elapsed:?}, the header timeout is 1 s"
    );

    // An idle keep-alive connection is closed too, after the idle timeout.
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[("HTTP_IDLE_TIMEOUT_SECS", "1")],
    )
    .await;
    let mut idle = connect(&app).await;
    let status = healthz_on(&mut idle, Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection outlived the 1 s idle timeout");
}

#[tokio::test]
async fn a_stalled_upload_is_answered_408() {
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[("HTTP_BODY_TIMEOUT_SECS", "1")],
    )
    .await;
    let class_id = app.create_class("CSE 2A").await;
    let before = app.row_counts().await;
    let mut stream = connect(&app).await;
    let part = raw_mark_form_start(class_id);
    let head = format!(
        "POST /attendance/mark HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-type: multipart/form-data; boundary=B0UND\r\ncontent-length: 100000\r\n\r\n",
        app.admin_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(part.as_bytes()).await.unwrap();
    stream.write_all(&[0xFF, 0xD8, 0xFF]).await.unwrap();
    // ... and then nothing more.
    let started = Instant::now();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "expected a 408, got {answer:?}"
    );
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(app.row_counts().await, before, "nothing stored");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[("HTTP_MAX_CONNECTIONS", "2")],
    )
    .await;
    let mut first = connect(&app).await;
    let mut second = connect(&app).await;
    for c in [&mut first, &mut second] {
        let status = healthz_on(c, Duration::from_secs(5)).await;
        assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    }
    // Both kept alive: a third is not served...
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(1500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were open"
    );
    // ... until one of the first two closes.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn too_many_parts_or_an_oversized_part_are_refused_before_anything_is_stored() {
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[
            ("UPLOAD_MAX_PARTS", "3"),
            ("UPLOAD_MAX_PART_BYTES", "1000000"),
        ],
    )
    .await;
    let class_id = app.create_class("CSE 2A").await;
    let jpeg = fixture("people/biden/biden1.jpg");
    assert!(jpeg.len() < 1_000_000);
    let before = (app.row_counts().await, app.blob_keys());

    // class_id + 3 photos = 4 parts.
    let mut form = Form::new().text("class_id", class_id.to_string());
    for i in 0..3 {
        form = form.part(
            "photos",
            Part::bytes(jpeg.clone()).file_name(format!("{i}.jpg")),
        );
    }
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "too_many_parts");
    assert_eq!((app.row_counts().await, app.blob_keys()), before);

    // One part of 2 MB.
    let mut big = jpeg.clone();
    big.resize(2 * 1024 * 1024, 0);
    let form = Form::new()
        .text("class_id", class_id.to_string())
        .part("photos", Part::bytes(big).file_name("big.jpg"));
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(error_code(resp).await, "payload_too_large");
    assert_eq!((app.row_counts().await, app.blob_keys()), before);

    // Within both caps: accepted.
    let form = Form::new()
        .text("class_id", class_id.to_string())
        .part("photos", Part::bytes(jpeg).file_name("a.jpg"));
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
}

fn mark_form(class_id: uuid::Uuid, photos: &[&[u8]]) -> Form {
    let mut form = Form::new().text("class_id", class_id.to_string());
    for (i, p) in photos.iter().enumerate() {
        form = form.part(
            "photos",
            Part::bytes(p.to_vec()).file_name(format!("{i}.jpg")),
        );
    }
    form
}

#[tokio::test]
async fn a_full_backlog_answers_503_with_retry_after_and_stores_nothing() {
    let app = spawn_app_with(
        Db::Postgres,
        Queue::Embedded,
        &[("BACKLOG_MAX_INTERACTIVE", "2"), ("RETRY_AFTER_SECS", "7")],
    )
    .await;
    let class_id = app.create_class("CSE 2A").await;
    let jpeg = fixture("groups/obama_biden_side_by_side.jpg");
    // No worker runs in this app: both jobs stay queued.
    for _ in 0..2 {
        let resp = app
            .post("/attendance/mark")
            .multipart(mark_form(class_id, &[&jpeg]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    let before = (app.row_counts().await, app.blob_keys());
    for path in ["/attendance/mark", "/students/register"] {
        let form = mark_form(class_id, &[&jpeg])
            .text("roll_no", "9")
            .text("name", "Nine");
        let resp = app.post(path).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), 503, "{path}");
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        assert_eq!(error_code(resp).await, "backlog_full");
    }
    assert_eq!(
        (app.row_counts().await, app.blob_keys()),
        before,
        "no session, job or blob"
    );
    // Only uploads that queue a job are refused: reading is served.
    let resp = app.get("/attendance/sessions").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
}

/// A client that sends its whole upload without waiting for `100 Continue` (most
/// scripts do) still reads the backlog's 503, rather than a connection reset under its
/// unread body (what the soak's clients saw as a broken pipe).
#[tokio::test]
async fn a_refused_upload_sent_whole_still_gets_its_503() {
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[("BACKLOG_MAX_INTERACTIVE", "1")],
    )
    .await;
    let class_id = app.create_class("CSE 2A").await;
    let jpeg = fixture("groups/obama_biden_side_by_side.jpg");
    let resp = app
        .post("/attendance/mark")
        .multipart(mark_form(class_id, &[&jpeg]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // Eight megabytes: far more than the sockets buffer.
    let mut body = raw_mark_form_start(class_id).into_bytes();
    body.extend(std::iter::repeat_n(0x5Au8, 8 * 1024 * 1024));
    body.extend_from_slice(b"\r\n--B0UND--\r\n");
    let head = format!(
        "POST /attendance/mark HTTP/1.1\r\nhost: test\r\nconnection: close\r\nauthorization: Bearer {}\r\n\
         content-type: multipart/form-data; boundary=B0UND\r\ncontent-length: {}\r\n\r\n",
        app.admin_key,
        body.len()
    );
    let mut stream = connect(&app).await;
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body)
        .await
        .expect("the whole body is taken, not reset");
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("backlog_full"), "{answer}");
}

#[tokio::test]
async fn saturated_validation_answers_503_with_retry_after() {
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[
            ("UPLOAD_VALIDATION_CONCURRENCY", "1"),
            ("UPLOAD_VALIDATION_WAIT_MS", "1"),
        ],
    )
    .await;
    let class_id = app.create_class("CSE 2A").await;
    let jpeg = fixture("groups/obama_biden_side_by_side.jpg");
    let photos = [jpeg.as_slice(); 5];
    // Eight clients at once, five photos each, one validation slot and no patience.
    let answers = futures::future::join_all((0..8).map(|_| {
        app.post("/attendance/mark")
            .multipart(mark_form(class_id, &photos))
            .send()
    }))
    .await;
    let mut busy = 0;
    for resp in answers {
        let resp = resp.unwrap();
        match resp.status().as_u16() {
            202 => {}
            503 => {
                assert!(resp.headers().contains_key("retry-after"));
                assert_eq!(error_code(resp).await, "busy");
                busy += 1;
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert!(busy > 0, "no upload waited for the single validation slot");
}

#[tokio::test]
async fn an_upload_after_100_continue_is_not_held_to_the_header_timeout() {
    // curl sends `Expect: 100-continue` for bodies over 1 MB; the interim answer must
    // not count as the response (which would put the body under the header timeout).
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[("HTTP_HEADER_TIMEOUT_SECS", "1")],
    )
    .await;
    let class_id = app.create_class("CSE 2A").await;
    let jpeg = fixture("groups/obama_biden_side_by_side.jpg");
    let mut body = raw_mark_form_start(class_id).into_bytes();
    body.extend_from_slice(&jpeg);
    body.extend_from_slice(b"\r\n--B0UND--\r\n");
    let head = format!(
        "POST /attendance/mark HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         expect: 100-continue\r\ncontent-type: multipart/form-data; boundary=B0UND\r\n\
         content-length: {}\r\n\r\n",
        app.admin_key,
        body.len()
    );
    let mut stream = connect(&app).await;
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an interim answer")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The first 40 bytes of the body over 1.5 s (the first blank line, ending the
    // first part's headers, is after them), then the rest.
    let (start, rest) = body.split_at(40);
    for piece in start.chunks(8) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(piece).await.expect("still connected");
    }
    stream.write_all(rest).await.expect("still connected");
    let mut answer = Vec::new();
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
}
