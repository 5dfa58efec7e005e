//! Filesystem blob store against a real temporary directory.

use bytes::Bytes;
use common::blob::{BlobError, BlobStore, FsBlobStore, open_blob_store};

#[tokio::test]
async fn put_get_overwrite_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_blob_store(&format!("file://{}", dir.path().display()))
        .await
        .unwrap();
    store.check().await.unwrap();

    let photo = Bytes::from_static(b"\xff\xd8\xff\xe0 not really a jpeg, but bytes");
    store
        .put("photos/2026/class-7/a.jpg", photo.clone(), "image/jpeg")
        .await
        .unwrap();
    assert_eq!(store.get("photos/2026/class-7/a.jpg").await.unwrap(), photo);
    assert_eq!(
        std::fs::read(dir.path().join("photos/2026/class-7/a.jpg")).unwrap(),
        photo
    );

    let replaced = Bytes::from(vec![7u8; 300_000]);
    store
        .put("photos/2026/class-7/a.jpg", replaced.clone(), "image/jpeg")
        .await
        .unwrap();
    assert_eq!(
        store.get("photos/2026/class-7/a.jpg").await.unwrap(),
        replaced
    );
    // The temporary file of the atomic write does not stay behind.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("photos/2026/class-7"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["a.jpg"]);

    store.delete("photos/2026/class-7/a.jpg").await.unwrap();
    assert!(matches!(
        store.get("photos/2026/class-7/a.jpg").await,
        Err(BlobError::NotFound(k)) if k == "photos/2026/class-7/a.jpg"
    ));
    // Deleting again is fine.
    store.delete("photos/2026/class-7/a.jpg").await.unwrap();
}

#[tokio::test]
async fn missing_keys_and_directories_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    assert!(matches!(
        store.get("nope.jpg").await,
        Err(BlobError::NotFound(_))
    ));
    store
        .put("crops/x/face.png", Bytes::from_static(b"png"), "image/png")
        .await
        .unwrap();
    assert!(matches!(
        store.get("crops/x").await,
        Err(BlobError::NotFound(_))
    ));
}

#[tokio::test]
async fn invalid_keys_never_touch_the_filesystem() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("blobs");
    let store = FsBlobStore::open(&root).await.unwrap();
    for key in [
        "../escape.jpg",
        "/etc/passwd",
        "a/../../b",
        "a b.jpg",
        "",
        "a//b",
    ] {
        assert!(
            matches!(
                store.put(key, Bytes::from_static(b"x"), "text/plain").await,
                Err(BlobError::InvalidKey { .. })
            ),
            "put {key:?}"
        );
        assert!(
            matches!(store.get(key).await, Err(BlobError::InvalidKey { .. })),
            "get {key:?}"
        );
        assert!(
            matches!(store.delete(key).await, Err(BlobError::InvalidKey { .. })),
            "delete {key:?}"
        );
    }
    assert!(!outer.path().join("escape.jpg").exists());
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
}

#[tokio::test]
async fn relative_roots_and_failing_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path().join("nested/root"))
        .await
        .unwrap();
    store.check().await.unwrap();
    // The root disappearing (volume unmounted) makes the readiness probe fail.
    std::fs::remove_dir_all(dir.path().join("nested")).unwrap();
    assert!(matches!(
        store.check().await,
        Err(BlobError::Unavailable { .. })
    ));

    assert!(matches!(
        open_blob_store("ftp://x").await,
        Err(BlobError::InvalidUrl { .. })
    ));
}

#[tokio::test]
async fn streamed_puts_write_atomically_and_copy_back_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path().join("blobs")).await.unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut reader = &data[..];
    let n = store
        .put_stream("batches/a.zip", &mut reader, "application/zip")
        .await
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert!(store.get("batches/a.zip").await.unwrap() == data);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/batches"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["a.zip"]);

    let copy = dir.path().join("copy.zip");
    assert_eq!(
        store.get_to_file("batches/a.zip", &copy).await.unwrap(),
        data.len() as u64
    );
    assert!(std::fs::read(&copy).unwrap() == data);
    assert!(matches!(
        store.get_to_file("batches/none.zip", &copy).await,
        Err(BlobError::NotFound(_))
    ));
}
