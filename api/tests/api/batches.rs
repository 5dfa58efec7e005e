//! Bulk registration batches: a ZIP built from the fixture photos with one bad entry of
//! each kind; the good students are registered by the real worker and engine on the
//! bulk lane, the bad entries reported with reasons (JSON and CSV), re-uploads update,
//! other departments see nothing, and the upload is not held to the 60 MB request limit.

use std::{
    collections::BTreeMap,
    io::{Cursor, Write},
    sync::Arc,
    time::{Duration, Instant},
};

use api::auth::Role;
use common::{JobKind, JobQueue, Lane};
use models::job;
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

use crate::helpers::{Db, Queue, TestApp, fixture, spawn_app, spawn_app_with};

/// Roll number → (name in students.csv, fixture photos).
const STUDENTS: [(&str, &str, &[&str]); 3] = [
    (
        "21CS001",
        "Barack Obama",
        &["people/obama/obama1.jpg", "people/obama/obama2.jpg"],
    ),
    (
        "21CS002",
        "Joe Biden",
        &["people/biden/biden1.jpg", "people/biden/biden2.jpg"],
    ),
    (
        "21CS003",
        "Kit Harington",
        &[
            "people/kit_harington/kit1.jpeg",
            "people/kit_harington/kit2.jpeg",
        ],
    ),
];

/// The bad entries, each with a word its reason must contain.
const BAD: [(&str, &str); 8] = [
    ("/abs/evil.jpg", "absolute path"),
    ("../escape.jpg", "path traversal"),
    ("21CS003/link.jpg", "symbolic link"),
    ("21CS003/inner.zip", "nested archive"),
    ("21CS003/disguised.jpg", "nested archive"),
    ("21CS003/notes.jpg", "not an image"),
    ("21CS003/bomb.jpg", "zip bomb"),
    ("21CS003/liar.jpg", "zip bomb"),
];

fn options() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

/// The batch: three good students, every bad entry, a manifest with names, a repeated
/// roll number and a student without photos.
fn batch_zip() -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut csv = String::from("roll_no,name,class\n");
    for (roll, name, photos) in STUDENTS {
        csv.push_str(&format!("{roll},{name},\n"));
        for (i, photo) in photos.iter().enumerate() {
            zip.start_file(format!("{roll}/{i}.jpg"), options())
                .unwrap();
            zip.write_all(&fixture(photo)).unwrap();
        }
    }
    csv.push_str("21CS001,Someone Else,\n21CS009,Nobody,\n");
    zip.start_file("students.csv", options()).unwrap();
    zip.write_all(csv.as_bytes()).unwrap();

    zip.start_file("/abs/evil.jpg", options()).unwrap();
    zip.write_all(&fixture("people/obama/obama3.jpg")).unwrap();
    zip.start_file("../escape.jpg", options()).unwrap();
    zip.write_all(&fixture("people/obama/obama3.jpg")).unwrap();
    zip.add_symlink("21CS003/link.jpg", "/etc/passwd", options())
        .unwrap();
    let inner = {
        let mut inner = ZipWriter::new(Cursor::new(Vec::new()));
        inner.start_file("x.jpg", options()).unwrap();
        inner
            .write_all(&fixture("people/obama/obama3.jpg"))
            .unwrap();
        inner.finish().unwrap().into_inner()
    };
    zip.start_file("21CS003/inner.zip", options()).unwrap();
    zip.write_all(&inner).unwrap();
    zip.start_file("21CS003/disguised.jpg", options()).unwrap();
    zip.write_all(&inner).unwrap();
    zip.start_file("21CS003/notes.jpg", options()).unwrap();
    zip.write_all(b"remember to bring the register").unwrap();
    // 11 MB of zeros: a few KB compressed, over the 10 MB a photo may be.
    zip.start_file("21CS003/bomb.jpg", options()).unwrap();
    zip.write_all(&vec![0u8; 11 << 20]).unwrap();
    // 12 MB of zeros that will claim to be 100 bytes (sizes forged below).
    zip.start_file("21CS003/liar.jpg", options()).unwrap();
    zip.write_all(&vec![0u8; 12 << 20]).unwrap();
    let mut bytes = zip.finish().unwrap().into_inner();
    forge_size(&mut bytes, "21CS003/liar.jpg", 100);
    bytes
}

/// Rewrites an entry's declared uncompressed size in its local header and central
/// directory record, as a zip bomb that lies about its size would.
fn forge_size(zip: &mut [u8], name: &str, size: u32) {
    let name = name.as_bytes();
    let mut forged = 0;
    for at in 0..zip.len().saturating_sub(46) {
        let (size_at, name_len_at, name_at) = match &zip[at..at + 4] {
            b"PK\x03\x04" => (at + 22, at + 26, at + 30),
            b"PK\x01\x02" => (at + 24, at + 28, at + 46),
            _ => continue,
        };
        let len = u16::from_le_bytes([zip[name_len_at], zip[name_len_at + 1]]) as usize;
        if len == name.len() && zip.get(name_at..name_at + len) == Some(name) {
            zip[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
            forged += 1;
        }
    }
    assert_eq!(forged, 2, "local header and central directory record");
}

pub(crate) async fn upload(
    app: &TestApp,
    key: &str,
    zip: Vec<u8>,
    class: Option<Uuid>,
) -> reqwest::Response {
    let mut form = Form::new().part("file", Part::bytes(zip).file_name("batch.zip"));
    if let Some(class) = class {
        form = form.text("class_id", class.to_string());
    }
    app.client
        .post(app.url("/students/batches"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn accepted(resp: reqwest::Response) -> (Uuid, Uuid) {
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    let id = |k: &str| body[k].as_str().unwrap().parse::<Uuid>().unwrap();
    (id("batch_id"), id("job_id"))
}

/// Runs the real worker over the app's queue until the batch is finished; returns the
/// (kind, lane) of every delivery it handled.
pub(crate) async fn work_until_done(app: &TestApp, batch: Uuid) -> Vec<(JobKind, Lane)> {
    let queue: Arc<dyn JobQueue> = match (&app.embedded, &app.rabbit) {
        (Some(q), _) => Arc::new(q.clone()),
        (_, Some(r)) => r.queue.clone(),
        _ => panic!("no queue to consume"),
    };
    let worker = worker::service::Worker::new(
        worker::jobs::JobContext {
            db: app.state.db.clone(),
            blobs: app.state.blobs.clone(),
            engine: crate::helpers::engine(),
            queue: Some(queue.clone()),
            public_url: "http://127.0.0.1:8080".into(),
            clock: common::clock::system(),
            retention_days: None,
        },
        worker::service::WorkerOptions::from_config(&common::Config::default()),
    );
    let mut consumer = queue.consume(4).await.unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let body: Value = app.get_json(&format!("/students/batches/{batch}")).await;
        if matches!(body["status"].as_str(), Some("completed" | "failed")) {
            return seen;
        }
        assert!(Instant::now() < deadline, "batch not finished: {body:#}");
        let Ok(delivery) = tokio::time::timeout(Duration::from_secs(20), consumer.next()).await
        else {
            panic!("no job arrived while the batch is {body:#}");
        };
        let delivery = delivery.unwrap();
        let kind = delivery.message.as_ref().unwrap().kind;
        seen.push((kind, delivery.lane));
        worker.handle(delivery).await;
    }
}

fn items_by_entry(body: &Value) -> BTreeMap<String, Value> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| Some((i["entry"].as_str()?.to_string(), i.clone())))
        .collect()
}

async fn batch_registers_good_students_and_reports_bad_entries(db: Db, queue: Queue) {
    let app = spawn_app(db, queue).await;
    let class = app.create_class("CSE 3A").await;
    let teacher = app.key(Role::Teacher).await;
    let (batch, job_id) = accepted(upload(&app, &teacher, batch_zip(), Some(class)).await).await;

    // Until a worker runs, nothing is registered and the batch waits.
    let body: Value = app.get_json(&format!("/students/batches/{batch}")).await;
    assert_eq!(body["status"], "queued", "{body:#}");
    assert_eq!(body["job_id"], job_id.to_string());

    let deliveries = work_until_done(&app, batch).await;
    // The unpacking and every fanned-out registration travelled on the bulk lane.
    let bulk: Vec<_> = deliveries
        .iter()
        .filter(|(k, _)| *k == JobKind::BulkRegistration)
        .collect();
    assert_eq!(bulk.len(), STUDENTS.len(), "{deliveries:?}");
    assert!(
        deliveries.iter().all(|(_, lane)| *lane == Lane::Bulk),
        "a batch job reached the interactive lane: {deliveries:?}"
    );
    assert!(deliveries.contains(&(JobKind::RegistrationBatch, Lane::Bulk)));

    let body: Value = app.get_json(&format!("/students/batches/{batch}")).await;
    assert_eq!(body["status"], "completed", "{body:#}");
    let counts = &body["counts"];
    assert_eq!(counts["active"], 3, "{body:#}");
    assert_eq!(counts["queued"], 0);
    assert_eq!(counts["failed"], 0);
    assert_eq!(counts["duplicates"], 1, "{body:#}");
    assert_eq!(counts["updated"], 0);
    // The eight bad entries and the roll number without photos.
    assert_eq!(counts["rejected"], BAD.len() + 1, "{body:#}");

    let refused = items_by_entry(&body);
    for (entry, why) in BAD {
        let item = refused
            .get(entry)
            .unwrap_or_else(|| panic!("{entry} not reported: {body:#}"));
        assert_eq!(item["status"], "rejected", "{item}");
        let reason = item["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{entry}: {reason}");
    }
    let nobody = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["roll_no"] == "21CS009")
        .expect("21CS009 reported");
    assert_eq!(nobody["status"], "rejected");
    assert!(
        nobody["reason"]
            .as_str()
            .unwrap()
            .contains("no usable photo")
    );

    // The students are really registered, with the manifest's names, from the good photos.
    let listed: Value = app.get_json(&format!("/students?class_id={class}")).await;
    let students: BTreeMap<String, (String, String)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["roll_no"].as_str().unwrap().to_string(),
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, String)> = STUDENTS
        .iter()
        .map(|(roll, name, _)| (roll.to_string(), (name.to_string(), "active".to_string())))
        .collect();
    assert_eq!(students, expected);
    for item in body["items"].as_array().unwrap() {
        let Some(student) = item["student_id"].as_str() else {
            continue;
        };
        let detail: Value = app.get_json(&format!("/students/{student}")).await;
        let photos = detail["photos"].as_array().unwrap();
        assert_eq!(photos.len(), 2, "{detail:#}");
        assert!(
            photos.iter().all(|p| p["verdict"] == "accepted"),
            "{detail:#}"
        );
        assert_eq!(detail["registration_job"]["status"], "succeeded");
    }
    // The jobs rows say the same: bulk kind, bulk lane, succeeded.
    let rows = job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::BulkRegistration))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.lane == Lane::Bulk));
    assert!(
        rows.iter()
            .all(|r| r.status == models::job::JobStatus::Succeeded)
    );
    let unpack: Value = app.get_json(&format!("/jobs/{job_id}")).await;
    assert_eq!(unpack["status"], "succeeded", "{unpack:#}");

    // The CSV report says the same as the JSON.
    let resp = app
        .client
        .get(app.url(&format!("/students/batches/{batch}/report.csv")))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u64, body["counts"]["total"].as_u64().unwrap());
    for (roll, name, _) in STUDENTS {
        let row = rows
            .iter()
            .find(|r| &r[col("roll_no")] == roll && &r[col("status")] == "active")
            .unwrap_or_else(|| panic!("{roll} not active in the report:\n{text}"));
        assert_eq!(&row[col("name")], name);
    }
    for (entry, why) in BAD {
        let row = rows
            .iter()
            .find(|r| &r[col("entry")] == entry)
            .unwrap_or_else(|| panic!("{entry} not in the report:\n{text}"));
        assert_eq!(&row[col("status")], "rejected");
        assert!(row[col("reason")].contains(why), "{text}");
    }

    // A teacher of another department sees neither the batch nor its report.
    let other = app.key_in(Role::Teacher, "ECE").await;
    for path in [
        format!("/students/batches/{batch}"),
        format!("/students/batches/{batch}/report.csv"),
        format!("/jobs/{job_id}"),
    ] {
        let resp = app
            .client
            .get(app.url(&path))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }

    // Re-uploading roll numbers updates those students instead of duplicating them.
    let ids: BTreeMap<String, String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["student_id"].is_string())
        .map(|i| {
            (
                i["roll_no"].as_str().unwrap().to_string(),
                i["student_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let (second, _) = accepted(upload(&app, &teacher, again_zip(), Some(class)).await).await;
    work_until_done(&app, second).await;
    let body: Value = app.get_json(&format!("/students/batches/{second}")).await;
    assert_eq!(body["status"], "completed", "{body:#}");
    assert_eq!(body["counts"]["active"], 1, "{body:#}");
    assert_eq!(body["counts"]["updated"], 1, "{body:#}");
    let item = &body["items"][0];
    assert_eq!(item["updated"], true);
    assert_eq!(
        item["student_id"].as_str(),
        ids.get("21CS001").map(String::as_str)
    );
    let listed: Value = app.get_json(&format!("/students?class_id={class}")).await;
    assert_eq!(listed["total"], 3, "{listed:#}");
    let obama: Value = app.get_json(&format!("/students/{}", ids["21CS001"])).await;
    assert_eq!(obama["name"], "Barack H. Obama");
    assert_eq!(obama["status"], "active");
    assert_eq!(obama["photos"].as_array().unwrap().len(), 2, "{obama:#}");

    // A deleted student's roll number in a batch registers a new student; the
    // tombstone keeps its records and is not updated.
    let resp = app
        .delete(&format!("/students/{}", ids["21CS001"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (third, _) = accepted(upload(&app, &teacher, again_zip(), Some(class)).await).await;
    work_until_done(&app, third).await;
    let body: Value = app.get_json(&format!("/students/batches/{third}")).await;
    assert_eq!(body["counts"]["active"], 1, "{body:#}");
    assert_eq!(body["counts"]["updated"], 0, "{body:#}");
    let new_id = body["items"][0]["student_id"].as_str().unwrap();
    assert_ne!(new_id, ids["21CS001"]);
    let listed: Value = app.get_json(&format!("/students?class_id={class}")).await;
    assert_eq!(listed["total"], 3, "{listed:#}");

    // Each archive is deleted once unpacked: the students' photos were copied out, and
    // no copy of them outlives a student's erasure.
    let archives: Vec<String> = app
        .blob_keys()
        .into_iter()
        .filter(|k| k.starts_with("batches/"))
        .collect();
    assert_eq!(archives, Vec::<String>::new());
}

/// One student, 21CS001, with two photos.
fn again_zip() -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("students.csv", options()).unwrap();
    zip.write_all(b"roll_no,name,class\n21CS001,Barack H. Obama,\n")
        .unwrap();
    for (i, photo) in ["people/obama/obama3.jpg", "people/obama/obama4.jpg"]
        .iter()
        .enumerate()
    {
        zip.start_file(format!("21CS001/{i}.jpg"), options())
            .unwrap();
        zip.write_all(&fixture(photo)).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[tokio::test]
async fn batch_embedded_sqlite() {
    batch_registers_good_students_and_reports_bad_entries(Db::Sqlite, Queue::Embedded).await;
}

#[tokio::test]
async fn batch_rabbitmq_postgres() {
    batch_registers_good_students_and_reports_bad_entries(Db::Postgres, Queue::RabbitMq).await;
}

/// One stored entry of `size` zero bytes: a ZIP about as large as its content.
fn stored_zip(size: usize) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(true);
    zip.start_file("21CS001/huge.jpg", stored).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..size / chunk.len() {
        zip.write_all(&chunk).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[tokio::test]
async fn batches_have_their_own_size_limit_not_the_60_mb_request_limit() {
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[("BATCH_MAX_BYTES", "70000000")],
    )
    .await;
    let class = app.create_class("CSE 3A").await;
    // 64 MB: over the request limit of every other route, under this batch limit.
    let big = stored_zip(64 << 20);
    assert!(big.len() > api::upload::MAX_REQUEST_BYTES);
    let size = big.len() as u64;
    let (batch, _) = accepted(upload(&app, &app.admin_key, big, Some(class)).await).await;
    let body: Value = app.get_json(&format!("/students/batches/{batch}")).await;
    assert_eq!(body["size_bytes"].as_u64(), Some(size));
    // Stored whole in the blob store, by the streaming put (temporary file + rename).
    let stored = std::fs::metadata(app.blob_dir.join(format!("batches/{batch}.zip"))).unwrap();
    assert_eq!(stored.len(), size);

    // Over the batch limit: 413, and nothing stored or queued.
    let before = app.row_counts().await;
    let resp = upload(&app, &app.admin_key, stored_zip(72 << 20), Some(class)).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(crate::helpers::error_code(resp).await, "payload_too_large");
    assert_eq!(app.row_counts().await, before);

    // Not a ZIP: 415. Another department's class: 404.
    let resp = upload(&app, &app.admin_key, b"just text".to_vec(), Some(class)).await;
    assert_eq!(resp.status(), 415);
    let other = app.key_in(Role::Teacher, "ECE").await;
    let resp = upload(&app, &other, stored_zip(1 << 20), Some(class)).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn an_archive_declaring_more_than_the_uncompressed_limit_is_refused_whole() {
    let app = spawn_app_with(
        Db::Sqlite,
        Queue::Embedded,
        &[("BATCH_MAX_UNCOMPRESSED_BYTES", "1000000")],
    )
    .await;
    let class = app.create_class("CSE 3A").await;
    let (batch, _) = accepted(upload(&app, &app.admin_key, batch_zip(), Some(class)).await).await;
    work_until_done(&app, batch).await;
    let body: Value = app.get_json(&format!("/students/batches/{batch}")).await;
    assert_eq!(body["status"], "failed", "{body:#}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("more than the batch limit"),
        "{body:#}"
    );
    let listed: Value = app.get_json(&format!("/students?class_id={class}")).await;
    assert_eq!(listed["total"], 0);
    // A refused archive is deleted too.
    assert!(
        !app.blob_keys().contains(&format!("batches/{batch}.zip")),
        "{:?}",
        app.blob_keys()
    );
}

/// `attendance-api import DIR --class NAME`, the real binary, beside a running server
/// (embedded queue: the server's relay picks the batch up and its in-process worker
/// registers the students): two students' folders and a symbolic link. The command
/// follows the batch to its end, reports the refused link and exits 1; the students are
/// really registered with the folder's roll numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_command_registers_a_folder_and_reports_what_it_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_pg, url) = crate::webhooks::database(Db::Sqlite, &dir).await;
    let app = crate::webhooks::Running::start(&url, dir.path(), true, "1000").await;
    let class = app.create_class("CSE 2B", "CSE").await;

    let folder = dir.path().join("import");
    for (roll, photos) in [
        (
            "21CS101",
            ["people/obama/obama1.jpg", "people/obama/obama2.jpg"],
        ),
        (
            "21CS102",
            ["people/biden/biden1.jpg", "people/biden/biden2.jpg"],
        ),
    ] {
        std::fs::create_dir_all(folder.join(roll)).unwrap();
        for (i, photo) in photos.iter().enumerate() {
            std::fs::write(folder.join(roll).join(format!("{i}.jpg")), fixture(photo)).unwrap();
        }
    }
    std::os::unix::fs::symlink("/etc/passwd", folder.join("21CS102").join("link.jpg")).unwrap();

    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_attendance-api"))
            .arg("import")
            .arg(&folder)
            .args(["--class", "CSE 2B"])
            .current_dir(dir.path())
            .env("DATABASE_URL", &url)
            .env("QUEUE_URL", "embedded")
            .env(
                "STORAGE_URL",
                format!("file://{}", dir.path().join("blobs").display()),
            )
            .env("DATA_DIR", dir.path().join("data"))
            .output(),
    )
    .await
    .expect("the import finishes")
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 active"), "{stdout}\n{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");

    let listed = app
        .get(&app.admin_key, &format!("/students?class_id={class}"))
        .await;
    let mut students: Vec<(String, String)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["roll_no"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    students.sort();
    assert_eq!(
        students,
        [
            ("21CS101".to_string(), "active".to_string()),
            ("21CS102".to_string(), "active".to_string())
        ]
    );
    app.stop().await;
}
