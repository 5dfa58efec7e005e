//! S3 blob store against a real S3-compatible server (s3s-fs, started by
//! `scripts/s3-server.sh`). Fails, rather than skips, when the server is missing.

use bytes::Bytes;
use common::blob::{BlobError, BlobStore, S3BlobStore, S3Options, open_blob_store};

fn endpoint() -> String {
    std::env::var("TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

fn credentials() -> (String, String) {
    (
        std::env::var("TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "attendance".into()),
        std::env::var("TEST_S3_SECRET_KEY").unwrap_or_else(|_| "attendance-secret".into()),
    )
}

fn url_for(bucket: &str, endpoint: &str) -> String {
    let (access, secret) = credentials();
    format!(
        "s3://{bucket}?region=us-east-1&endpoint={endpoint}&access_key={access}&secret_key={secret}"
    )
}

/// A store on a fresh bucket of its own, created through `ensure_bucket`.
async fn fresh_store() -> S3BlobStore {
    let bucket = format!("test-{}", uuid::Uuid::new_v4().simple());
    let store = S3BlobStore::connect(S3Options::from_url(&url_for(&bucket, &endpoint())).unwrap())
        .await
        .unwrap();
    store.ensure_bucket().await.unwrap_or_else(|e| {
        panic!(
            "S3 server at {} not usable (run scripts/s3-server.sh): {e:?}",
            endpoint()
        )
    });
    store
}

/// Empties and removes the bucket.
async fn remove_bucket(store: &S3BlobStore) {
    let client = store.client();
    let listed = client
        .list_objects_v2()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    for object in listed.contents() {
        client
            .delete_object()
            .bucket(store.bucket())
            .key(object.key().unwrap())
            .send()
            .await
            .unwrap();
    }
    client
        .delete_bucket()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn put_get_delete_round_trip() {
    let store = fresh_store().await;
    store.check().await.unwrap();
    // ensure_bucket is idempotent.
    store.ensure_bucket().await.unwrap();

    let photo = Bytes::from((0..=255u8).cycle().take(1_500_000).collect::<Vec<_>>());
    store
        .put("photos/2026/s1/a.jpg", photo.clone(), "image/jpeg")
        .await
        .unwrap();
    assert_eq!(store.get("photos/2026/s1/a.jpg").await.unwrap(), photo);

    let head = store
        .client()
        .head_object()
        .bucket(store.bucket())
        .key("photos/2026/s1/a.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(1_500_000));
    assert_eq!(head.content_type(), Some("image/jpeg"));

    // Overwrite replaces.
    store
        .put(
            "photos/2026/s1/a.jpg",
            Bytes::from_static(b"v2"),
            "image/jpeg",
        )
        .await
        .unwrap();
    assert_eq!(&store.get("photos/2026/s1/a.jpg").await.unwrap()[..], b"v2");

    store.delete("photos/2026/s1/a.jpg").await.unwrap();
    assert!(matches!(
        store.get("photos/2026/s1/a.jpg").await,
        Err(BlobError::NotFound(k)) if k == "photos/2026/s1/a.jpg"
    ));
    // Deleting a missing key succeeds.
    store.delete("photos/2026/s1/a.jpg").await.unwrap();
    store.delete("never-existed.jpg").await.unwrap();

    remove_bucket(&store).await;
}

#[tokio::test]
async fn missing_key_is_not_found() {
    let store = fresh_store().await;
    assert!(matches!(
        store.get("nope/x.png").await,
        Err(BlobError::NotFound(_))
    ));
    remove_bucket(&store).await;
}

#[tokio::test]
async fn key_prefix_from_the_url_path_and_open_blob_store() {
    let store = fresh_store().await;
    let url = url_for(&format!("{}/tenant-a", store.bucket()), &endpoint());
    let prefixed = open_blob_store(&url).await.unwrap();
    prefixed
        .put("x/y.png", Bytes::from_static(b"png"), "image/png")
        .await
        .unwrap();
    // Stored under the prefix in the same bucket.
    assert_eq!(&store.get("tenant-a/x/y.png").await.unwrap()[..], b"png");
    assert_eq!(&prefixed.get("x/y.png").await.unwrap()[..], b"png");
    prefixed.delete("x/y.png").await.unwrap();
    remove_bucket(&store).await;
}

#[tokio::test]
async fn invalid_keys_are_rejected_before_any_request() {
    let store = fresh_store().await;
    for key in ["../x", "/abs", "a b", "a?b", "a/./b", ""] {
        assert!(
            matches!(
                store.put(key, Bytes::from_static(b"x"), "text/plain").await,
                Err(BlobError::InvalidKey { .. })
            ),
            "{key:?}"
        );
        assert!(matches!(
            store.get(key).await,
            Err(BlobError::InvalidKey { .. })
        ));
        assert!(matches!(
            store.delete(key).await,
            Err(BlobError::InvalidKey { .. })
        ));
    }
    let listed = store
        .client()
        .list_objects_v2()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty());
    remove_bucket(&store).await;
}

#[tokio::test]
async fn check_fails_for_a_missing_bucket_and_a_closed_port() {
    let store = fresh_store().await;
    let missing = open_blob_store(&url_for("no-such-bucket-attendance-test", &endpoint()))
        .await
        .unwrap();
    assert!(matches!(
        missing.check().await,
        Err(BlobError::Unavailable { .. })
    ));
    remove_bucket(&store).await;

    // Bind and drop a listener to get a port that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = open_blob_store(&url_for("some-bucket", &format!("http://127.0.0.1:{port}")))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = closed.check().await.unwrap_err();
    assert!(matches!(err, BlobError::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        closed
            .put("a.jpg", Bytes::from_static(b"x"), "image/jpeg")
            .await,
        Err(BlobError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let store = fresh_store().await;
    let url = format!(
        "s3://{}?endpoint={}&access_key={}&secret_key=wrong-secret",
        store.bucket(),
        endpoint(),
        credentials().0
    );
    let wrong = open_blob_store(&url).await.unwrap();
    assert!(matches!(
        wrong.check().await,
        Err(BlobError::Unavailable { .. })
    ));
    assert!(matches!(
        wrong
            .put("a.jpg", Bytes::from_static(b"x"), "image/jpeg")
            .await,
        Err(BlobError::Unavailable { .. })
    ));
    remove_bucket(&store).await;
}

/// `len` bytes of a repeating pattern, read in small chunks and failing after
/// `fail_after` bytes when set: what an HTTP upload looks like to the store.
struct Pattern {
    sent: usize,
    len: usize,
    fail_after: Option<usize>,
}

impl tokio::io::AsyncRead for Pattern {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.fail_after.is_some_and(|n| self.sent >= n) {
            return std::task::Poll::Ready(Err(std::io::Error::other("client went away")));
        }
        let n = (self.len - self.sent).min(buf.remaining()).min(64 * 1024);
        let start = self.sent;
        buf.put_slice(
            &(start..start + n)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>(),
        );
        self.sent += n;
        std::task::Poll::Ready(Ok(()))
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn streamed_uploads_are_multipart_and_stream_back_to_a_file() {
    let store = fresh_store().await;
    // Three parts: two full ones and a short last one.
    let len = 2 * common::blob::MULTIPART_PART_BYTES + 12_345;
    let mut body = Pattern {
        sent: 0,
        len,
        fail_after: None,
    };
    let stored = store
        .put_stream("batches/big.zip", &mut body, "application/zip")
        .await
        .unwrap();
    assert_eq!(stored, len as u64);
    let head = store
        .client()
        .head_object()
        .bucket(store.bucket())
        .key("batches/big.zip")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(len as i64));
    assert_eq!(head.content_type(), Some("application/zip"));
    // A multipart object's ETag ends with its part count.
    let etag = head.e_tag().unwrap().trim_matches('"').to_string();
    assert!(etag.ends_with("-3"), "not a 3-part upload: {etag}");

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("big.zip");
    assert_eq!(
        store.get_to_file("batches/big.zip", &local).await.unwrap(),
        len as u64
    );
    assert!(std::fs::read(&local).unwrap() == pattern(len));
    assert!(matches!(
        store.get_to_file("batches/missing.zip", &local).await,
        Err(BlobError::NotFound(_))
    ));

    // A small upload is one plain put.
    let mut small = Pattern {
        sent: 0,
        len: 1000,
        fail_after: None,
    };
    store
        .put_stream("batches/small.zip", &mut small, "application/zip")
        .await
        .unwrap();
    assert_eq!(store.get("batches/small.zip").await.unwrap(), pattern(1000));

    // An upload that breaks off leaves no object (the multipart upload is aborted;
    // s3s-fs does not list multipart uploads, so that part is not checked here).
    let mut broken = Pattern {
        sent: 0,
        len,
        fail_after: Some(common::blob::MULTIPART_PART_BYTES + 5),
    };
    assert!(
        store
            .put_stream("batches/broken.zip", &mut broken, "application/zip")
            .await
            .is_err()
    );
    assert!(matches!(
        store.get("batches/broken.zip").await,
        Err(BlobError::NotFound(_))
    ));

    remove_bucket(&store).await;
}
