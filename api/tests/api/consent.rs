//! Consent at registration: recorded with the key and the time (single registration,
//! photos, batch lines, the command-line import), shown in the student's detail,
//! required with `REQUIRE_CONSENT=true` (a refusal leaves no row, blob or job), and
//! needed again by a student who withdrew it.

use std::{
    io::{Cursor, Write},
    time::Duration,
};

use api::auth::Role;
use chrono::{DateTime, Utc};
use models::{
    consent_entry::{self, ConsentAction, ConsentSource},
    face_embedding, student,
    student::StudentStatus,
    student_photo,
};
use reqwest::multipart::{Form, Part};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde_json::Value;
use uuid::Uuid;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

use crate::helpers::{
    Db, Queue, TestApp, error_code, fixture, run_next_job, spawn_app, spawn_app_with,
};

fn id(v: &Value, field: &str) -> Uuid {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .parse()
        .unwrap()
}

async fn key_id(app: &TestApp, key: &str) -> Uuid {
    api::auth::find_key(&app.state.db, key)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// `POST /students/register` with `key`, one fixture photo and the consent fields
/// (`(name, value)` text parts).
async fn register(
    app: &TestApp,
    key: &str,
    class: Uuid,
    roll: &str,
    photo: &str,
    consent: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = Form::new()
        .text("roll_no", roll.to_string())
        .text("name", format!("Student {roll}"))
        .text("class_id", class.to_string())
        .part("photos", Part::bytes(fixture(photo)).file_name("a.jpg"));
    for (name, value) in consent {
        form = form.text(name.to_string(), value.to_string());
    }
    app.client
        .post(app.url("/students/register"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn add_photos(
    app: &TestApp,
    student: Uuid,
    photo: &str,
    consent: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = Form::new().part("photos", Part::bytes(fixture(photo)).file_name("b.jpg"));
    for (name, value) in consent {
        form = form.text(name.to_string(), value.to_string());
    }
    app.post(&format!("/students/{student}/photos"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn entries(app: &TestApp, student: Uuid) -> Vec<consent_entry::Model> {
    consent_entry::history(&app.state.db, student)
        .await
        .unwrap()
}

async fn consent_rows(db: &impl ConnectionTrait) -> usize {
    consent_entry::Entity::find().all(db).await.unwrap().len()
}

/// Consent given at registration is a row with the key, the source and the time, and
/// the student's detail shows it; no consent (absent or `false`) writes nothing; a bad
/// note is refused before anything is stored.
#[tokio::test]
async fn consent_is_recorded_with_the_key_and_the_time() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let class = app.create_class("CSE 3A").await;
    let teacher = app.key(Role::Teacher).await;
    let teacher_id = key_id(&app, &teacher).await;

    let before = Utc::now();
    let resp = register(
        &app,
        &teacher,
        class,
        "21CS001",
        "people/obama/obama1.jpg",
        &[
            ("consent", "true"),
            ("consent_note", "signed form 2026/114"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let after = Utc::now();
    let student = id(&resp.json().await.unwrap(), "student_id");

    let rows = entries(&app, student).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.action, ConsentAction::Given);
    assert_eq!(row.recorded_by_key_id, Some(teacher_id));
    assert_eq!(row.source, ConsentSource::Api);
    assert_eq!(row.note.as_deref(), Some("signed form 2026/114"));
    assert!(
        before - chrono::TimeDelta::seconds(1) <= row.created_at && row.created_at <= after,
        "{row:?}"
    );

    let detail: Value = app.get_json(&format!("/students/{student}")).await;
    let consent = &detail["consent"];
    assert_eq!(consent["action"], "given", "{detail:#}");
    assert_eq!(consent["source"], "api");
    assert_eq!(consent["recorded_by_key_id"], teacher_id.to_string());
    assert_eq!(consent["note"], "signed form 2026/114");
    let shown: DateTime<Utc> = consent["recorded_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(shown, row.created_at);

    // Without consent, or with consent=false, no entry and nothing in the detail.
    for (roll, consent) in [
        ("21CS002", &[][..]),
        ("21CS003", &[("consent", "false")][..]),
    ] {
        let resp = register(
            &app,
            &teacher,
            class,
            roll,
            "people/biden/biden1.jpg",
            consent,
        )
        .await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        let student = id(&resp.json().await.unwrap(), "student_id");
        assert!(entries(&app, student).await.is_empty());
        let detail: Value = app.get_json(&format!("/students/{student}")).await;
        assert!(detail["consent"].is_null(), "{detail:#}");
    }

    // A note with a NUL (400), too long or without consent (422): nothing stored.
    let counts = app.row_counts().await;
    let blobs = app.blob_keys();
    let long = "x".repeat(501);
    for (consent, status, code) in [
        (
            &[("consent", "true"), ("consent_note", "a\0b")][..],
            400,
            "nul_byte",
        ),
        (
            &[("consent", "true"), ("consent_note", long.as_str())][..],
            422,
            "invalid_field",
        ),
        (&[("consent_note", "no consent")][..], 422, "invalid_field"),
    ] {
        let resp = register(
            &app,
            &teacher,
            class,
            "21CS009",
            "people/obama/obama2.jpg",
            consent,
        )
        .await;
        assert_eq!(resp.status(), status, "{consent:?}");
        assert_eq!(error_code(resp).await, code, "{consent:?}");
    }
    assert_eq!(app.row_counts().await, counts);
    assert_eq!(app.blob_keys(), blobs);
    assert_eq!(consent_rows(&app.state.db).await, 1);
}

/// With `REQUIRE_CONSENT=true` a registration or photos without consent are a 422 that
/// stores nothing; consent already in force lets photos through.
#[tokio::test]
async fn require_consent_refuses_registrations_and_photos_without_it() {
    let app = spawn_app_with(
        Db::Postgres,
        Queue::Embedded,
        &[("REQUIRE_CONSENT", "true")],
    )
    .await;
    let class = app.create_class("CSE 3A").await;
    let key = app.admin_key.clone();

    for consent in [&[][..], &[("consent", "false")][..]] {
        let resp = register(
            &app,
            &key,
            class,
            "21CS001",
            "people/obama/obama1.jpg",
            consent,
        )
        .await;
        assert_eq!(resp.status(), 422, "{consent:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "consent_required", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("consent=true"),
            "{body}"
        );
    }
    assert_eq!(app.row_counts().await, [0; 5]);
    assert!(app.blob_keys().is_empty(), "{:?}", app.blob_keys());
    assert_eq!(consent_rows(&app.state.db).await, 0);

    let resp = register(
        &app,
        &key,
        class,
        "21CS001",
        "people/obama/obama1.jpg",
        &[("consent", "true")],
    )
    .await;
    assert_eq!(resp.status(), 202);
    let with_consent = id(&resp.json().await.unwrap(), "student_id");
    // Consent in force: more photos need no new consent, and record none.
    let resp = add_photos(&app, with_consent, "people/obama/obama2.jpg", &[]).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    assert_eq!(entries(&app, with_consent).await.len(), 1);

    // A student registered before consent was required has none in force.
    let now = Utc::now();
    let earlier = student::ActiveModel {
        id: Set(Uuid::new_v4()),
        class_id: Set(class),
        roll_no: Set("21CS002".into()),
        name: Set("Joe Biden".into()),
        status: Set(StudentStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let counts = app.row_counts().await;
    let blobs = app.blob_keys();
    let resp = add_photos(&app, earlier.id, "people/biden/biden1.jpg", &[]).await;
    assert_eq!(resp.status(), 422);
    assert_eq!(error_code(resp).await, "consent_required");
    assert_eq!(app.row_counts().await, counts);
    assert_eq!(app.blob_keys(), blobs);
    let resp = add_photos(
        &app,
        earlier.id,
        "people/biden/biden1.jpg",
        &[("consent", "true"), ("consent_note", "given in class")],
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let rows = entries(&app, earlier.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].note.as_deref(), Some("given in class"));
    assert_eq!(
        rows[0].recorded_by_key_id,
        Some(key_id(&app, &app.admin_key).await)
    );
}

/// A student who withdrew consent (status and entry set here as the withdrawal does)
/// cannot get photos without giving it again, whatever `REQUIRE_CONSENT` says; with
/// it they are pending, and the registration job makes them active again.
#[tokio::test]
async fn a_student_who_withdrew_needs_consent_to_add_photos_and_is_active_again() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let class = app.create_class("CSE 3A").await;
    let admin = app.admin_key.clone();
    let resp = register(
        &app,
        &admin,
        class,
        "21CS001",
        "people/obama/obama1.jpg",
        &[("consent", "true")],
    )
    .await;
    assert_eq!(resp.status(), 202);
    let obama = id(&resp.json().await.unwrap(), "student_id");
    run_next_job(&app).await;
    let detail: Value = app.get_json(&format!("/students/{obama}")).await;
    assert_eq!(detail["status"], "active", "{detail:#}");

    // The withdrawal: face data erased, status withdrawn, a withdrawn entry.
    let db = &app.state.db;
    let photos = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(obama))
        .all(db)
        .await
        .unwrap();
    face_embedding::Entity::delete_many()
        .filter(face_embedding::Column::StudentId.eq(obama))
        .exec(db)
        .await
        .unwrap();
    student_photo::Entity::delete_many()
        .filter(student_photo::Column::StudentId.eq(obama))
        .exec(db)
        .await
        .unwrap();
    for p in &photos {
        app.state.blobs.delete(&p.blob_key).await.unwrap();
    }
    let now = Utc::now();
    let mut row: student::ActiveModel = student::Entity::find_by_id(obama)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into();
    row.status = Set(StudentStatus::Withdrawn);
    row.erased_at = Set(Some(now));
    row.update(db).await.unwrap();
    consent_entry::ActiveModel {
        id: Set(Uuid::new_v4()),
        student_id: Set(obama),
        action: Set(ConsentAction::Withdrawn),
        note: Set(Some("asked by the student".into())),
        recorded_by_key_id: Set(None),
        source: Set(ConsentSource::Api),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    let detail: Value = app.get_json(&format!("/students/{obama}")).await;
    assert_eq!(detail["consent"]["action"], "withdrawn", "{detail:#}");

    let counts = app.row_counts().await;
    let blobs = app.blob_keys();
    for consent in [&[][..], &[("consent", "false")][..]] {
        let resp = add_photos(&app, obama, "people/obama/obama2.jpg", consent).await;
        assert_eq!(resp.status(), 422, "{consent:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "consent_withdrawn", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("withdrew"),
            "{body}"
        );
    }
    assert_eq!(app.row_counts().await, counts);
    assert_eq!(app.blob_keys(), blobs);
    assert_eq!(entries(&app, obama).await.len(), 2);

    let resp = add_photos(
        &app,
        obama,
        "people/obama/obama2.jpg",
        &[("consent", "true"), ("consent_note", "changed their mind")],
    )
    .await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let actions: Vec<ConsentAction> = entries(&app, obama)
        .await
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            ConsentAction::Given,
            ConsentAction::Withdrawn,
            ConsentAction::Given
        ]
    );
    let detail: Value = app.get_json(&format!("/students/{obama}")).await;
    assert_eq!(detail["status"], "pending", "{detail:#}");
    assert_eq!(detail["consent"]["action"], "given");
    assert_eq!(detail["consent"]["note"], "changed their mind");
    run_next_job(&app).await;
    let detail: Value = app.get_json(&format!("/students/{obama}")).await;
    assert_eq!(detail["status"], "active", "{detail:#}");
    assert_eq!(detail["photos"][0]["verdict"], "accepted", "{detail:#}");
}

fn options() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

/// A batch whose `students.csv` gives one student consent with a note, says nothing
/// for a second and something unreadable for a third; each has a photo folder.
fn consent_batch() -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("students.csv", options()).unwrap();
    zip.write_all(
        b"roll_no,name,class,consent,consent_note\n\
          21CS001,Barack Obama,,yes,form 7\n\
          21CS002,Joe Biden,,,\n\
          21CS003,Kit Harington,,perhaps,\n",
    )
    .unwrap();
    for (roll, photo) in [
        ("21CS001", "people/obama/obama1.jpg"),
        ("21CS002", "people/biden/biden1.jpg"),
        ("21CS003", "people/kit_harington/kit1.jpeg"),
    ] {
        zip.start_file(format!("{roll}/0.jpg"), options()).unwrap();
        zip.write_all(&fixture(photo)).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// With `REQUIRE_CONSENT=true` a batch registers the student whose line gives consent
/// (an entry with the uploading key, source `batch`) and refuses the others with a
/// reason in the report, storing nothing of theirs.
#[tokio::test]
async fn require_consent_refuses_batch_lines_without_it_and_registers_the_rest() {
    let app = spawn_app_with(
        Db::Postgres,
        Queue::Embedded,
        &[("REQUIRE_CONSENT", "true")],
    )
    .await;
    let class = app.create_class("CSE 3A").await;
    let uploader = app.key(Role::DepartmentAdmin).await;
    let uploader_id = key_id(&app, &uploader).await;
    let resp = crate::batches::upload(&app, &uploader, consent_batch(), Some(class)).await;
    let (batch, _) = crate::batches::accepted(resp).await;
    crate::batches::work_until_done(&app, batch).await;

    let body: Value = app.get_json(&format!("/students/batches/{batch}")).await;
    assert_eq!(body["status"], "completed", "{body:#}");
    assert_eq!(body["counts"]["active"], 1, "{body:#}");
    assert_eq!(body["counts"]["rejected"], 2, "{body:#}");
    let item = |roll: &str| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["roll_no"] == roll)
            .unwrap_or_else(|| panic!("{roll} not reported: {body:#}"))
            .clone()
    };
    let biden = item("21CS002");
    assert_eq!(biden["status"], "rejected");
    assert!(
        biden["reason"]
            .as_str()
            .unwrap()
            .contains("requires the student's consent"),
        "{biden}"
    );
    let kit = item("21CS003");
    assert_eq!(kit["status"], "rejected");
    assert!(
        kit["reason"].as_str().unwrap().contains("true or false"),
        "{kit}"
    );
    let report = app
        .get(&format!("/students/batches/{batch}/report.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        report.contains("requires the student's consent"),
        "{report}"
    );

    let obama = id(&item("21CS001"), "student_id");
    let rows = entries(&app, obama).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].action, ConsentAction::Given);
    assert_eq!(rows[0].source, ConsentSource::Batch);
    assert_eq!(rows[0].recorded_by_key_id, Some(uploader_id));
    assert_eq!(rows[0].note.as_deref(), Some("form 7"));
    let detail: Value = app.get_json(&format!("/students/{obama}")).await;
    assert_eq!(detail["status"], "active", "{detail:#}");
    assert_eq!(detail["consent"]["source"], "batch");

    // Nothing of the refused students: no row, no photo.
    let students = student::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(students.len(), 1, "{students:?}");
    let photo_blobs: Vec<String> = app
        .blob_keys()
        .into_iter()
        .filter(|k| k.starts_with("students/"))
        .collect();
    assert_eq!(photo_blobs.len(), 1, "{photo_blobs:?}");
    assert!(photo_blobs[0].starts_with(&format!("students/{obama}/")));
    assert_eq!(consent_rows(&app.state.db).await, 1);
}

/// `attendance-api import` with `REQUIRE_CONSENT=true`: a student whose line gives
/// consent is registered (source `cli`, no key), one without is refused and the command
/// exits 1; imported again with `--consent` and a note, the refused one is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_command_records_consent_and_refuses_students_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_pg, url) = crate::webhooks::database(Db::Postgres, &dir).await;
    let app = crate::webhooks::Running::start(&url, dir.path(), true, "1000").await;
    let db = api::database::connect_and_migrate(&url).await.unwrap();
    let class = app.create_class("CSE 2B", "CSE").await;

    let folder = dir.path().join("import");
    for (roll, photo) in [
        ("21CS101", "people/obama/obama1.jpg"),
        ("21CS102", "people/biden/biden1.jpg"),
    ] {
        std::fs::create_dir_all(folder.join(roll)).unwrap();
        std::fs::write(folder.join(roll).join("0.jpg"), fixture(photo)).unwrap();
    }
    std::fs::write(
        folder.join("students.csv"),
        "roll_no,name,consent,consent_note\n21CS101,Barack Obama,true,paper form\n",
    )
    .unwrap();

    let import = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_attendance-api"));
        command
            .arg("import")
            .args(args)
            .args(["--class", "CSE 2B"])
            .current_dir(dir.path())
            .env("DATABASE_URL", &url)
            .env("QUEUE_URL", "embedded")
            .env("REQUIRE_CONSENT", "true")
            .env(
                "STORAGE_URL",
                format!("file://{}", dir.path().join("blobs").display()),
            )
            .env("DATA_DIR", dir.path().join("data"));
        async move {
            let output = tokio::time::timeout(Duration::from_secs(300), command.output())
                .await
                .expect("the import finishes")
                .unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).to_string(),
                String::from_utf8_lossy(&output.stderr).to_string(),
            )
        }
    };
    let folder_arg = folder.display().to_string();
    let (code, stdout, stderr) = import(&[&folder_arg]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 active"), "{stdout}\n{stderr}");
    assert!(stderr.contains("21CS102"), "{stderr}");
    assert!(
        stderr.contains("requires the student's consent"),
        "{stderr}"
    );

    let registered = |roll: &'static str| {
        let db = db.clone();
        async move {
            student::Entity::find()
                .filter(student::Column::RollNo.eq(roll))
                .one(&db)
                .await
                .unwrap()
        }
    };
    let obama = registered("21CS101").await.expect("21CS101 registered");
    assert!(registered("21CS102").await.is_none());
    let rows = consent_entry::history(&db, obama.id).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].source, ConsentSource::Cli);
    assert_eq!(rows[0].recorded_by_key_id, None);
    assert_eq!(rows[0].note.as_deref(), Some("paper form"));

    // Biden alone, with --consent: registered, the flag's note recorded.
    std::fs::remove_dir_all(folder.join("21CS101")).unwrap();
    std::fs::remove_file(folder.join("students.csv")).unwrap();
    let (code, stdout, stderr) = import(&[
        &folder_arg,
        "--consent",
        "--consent-note",
        "forms kept by the department",
    ])
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let biden = registered("21CS102").await.expect("21CS102 registered");
    assert_eq!(biden.class_id.to_string(), class);
    let rows = consent_entry::history(&db, biden.id).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].source, ConsentSource::Cli);
    assert_eq!(
        rows[0].note.as_deref(),
        Some("forms kept by the department")
    );
    app.stop().await;
}
