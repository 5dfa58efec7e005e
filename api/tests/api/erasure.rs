//! Erasure of a student's biometric data: `DELETE /students/{id}` (a tombstone, or with
//! `purge` nothing) and `DELETE /students/{id}/consent`. After it, no row of any table
//! and no object of the store holds the student's photos, crops, embeddings or
//! descriptors; their attendance records stay unless purged; the other students are
//! untouched. Run on the embedded defaults (SQLite + filesystem) and on PostgreSQL + S3.

use std::collections::{BTreeSet, HashMap};

use api::auth::Role;
use models::{
    attendance_record::{self, RecordStatus},
    consent_entry::{self, ConsentAction, ConsentSource},
    detected_face, face_embedding,
    student::{self, StudentStatus},
    student_photo,
};
use reqwest::multipart::{Form, Part};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, Statement,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::corrections::{face_of, id, mark, process_again, registered};
use crate::helpers::{Db, Queue, Storage, TestApp, error_code, run_next_job, spawn_app_on};

/// What a student had before the erasure: every id and blob key, the bytes of every
/// photo and crop, and every embedding and face descriptor.
#[derive(Debug, Default)]
struct Traces {
    ids: BTreeSet<Uuid>,
    keys: BTreeSet<String>,
    blobs: Vec<bytes::Bytes>,
    vectors: Vec<Vec<u8>>,
}

impl Traces {
    async fn of(app: &TestApp, student: Uuid) -> Traces {
        let db = &app.state.db;
        let mut t = Traces::default();
        t.ids.insert(student);
        for p in student_photo::Entity::find()
            .filter(student_photo::Column::StudentId.eq(student))
            .all(db)
            .await
            .unwrap()
        {
            t.ids.insert(p.id);
            t.blobs
                .push(app.state.blobs.get(&p.blob_key).await.unwrap());
            t.keys.insert(p.blob_key);
        }
        for e in face_embedding::Entity::find()
            .filter(face_embedding::Column::StudentId.eq(student))
            .all(db)
            .await
            .unwrap()
        {
            t.ids.insert(e.id);
            t.vectors.push(e.vector);
        }
        for f in detected_face::Entity::find()
            .filter(detected_face::Column::StudentId.eq(student))
            .all(db)
            .await
            .unwrap()
        {
            if let Some(key) = f.crop_key {
                t.blobs.push(app.state.blobs.get(&key).await.unwrap());
                t.keys.insert(key);
            }
            t.vectors.extend(f.descriptor);
        }
        t
    }
}

/// Every row of every table of the application's database, as text (lower case):
/// PostgreSQL's row-to-text cast; SQLite's `quote()` of each column (blobs as hex).
async fn every_row(app: &TestApp) -> Vec<(String, String)> {
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let tables: Vec<String> = match backend {
        DbBackend::Postgres => {
            query_texts(
                app,
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .await
        }
        DbBackend::Sqlite => {
            query_texts(
                app,
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%'",
            )
            .await
        }
        other => panic!("unexpected backend {other:?}"),
    };
    assert!(
        tables.len() > 10,
        "the schema's tables are listed: {tables:?}"
    );
    let mut rows = Vec::new();
    for table in tables {
        let sql = match backend {
            DbBackend::Postgres => format!("SELECT t::text FROM \"{table}\" AS t"),
            _ => {
                let columns = query_texts(
                    app,
                    &format!("SELECT name FROM pragma_table_info('{table}')"),
                )
                .await;
                let quoted: Vec<String> =
                    columns.iter().map(|c| format!("quote(\"{c}\")")).collect();
                format!("SELECT {} FROM \"{table}\"", quoted.join(" || '|' || "))
            }
        };
        for row in query_texts(app, &sql).await {
            rows.push((table.clone(), row.to_lowercase()));
        }
    }
    rows
}

async fn query_texts(app: &TestApp, sql: &str) -> Vec<String> {
    let db = &app.state.db;
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tables a student's id (or the id of one of their photos, in a registration job's
/// report) may stay in: who they were and what they attended, never what they look
/// like.
const NON_BIOMETRIC: [&str; 9] = [
    "students",
    "attendance_records",
    "attendance_audit",
    "consent_entries",
    "jobs",
    "registration_batch_items",
    "webhook_deliveries",
    "idempotency_keys",
    // Checked on their own below: the row stays, its crop and descriptor do not.
    "detected_faces",
];

/// The database and the store hold nothing biometric of the student whose traces these
/// were: their ids only in non-biometric rows, none of their blob keys anywhere, none
/// of their vectors in any row, no object under one of their keys or with the bytes of
/// one of their photos or crops.
async fn assert_erased(app: &TestApp, student: Uuid, traces: &Traces) {
    let rows = every_row(app).await;
    let forms = |id: &Uuid| [id.to_string(), id.simple().to_string()];
    for (table, row) in &rows {
        for id in &traces.ids {
            if forms(id).iter().any(|f| row.contains(f.as_str())) {
                // The student's id, or a photo's in a job's report.
                assert!(
                    NON_BIOMETRIC.contains(&table.as_str()),
                    "{table} still holds {id}: {row}"
                );
            }
        }
        for key in &traces.keys {
            assert!(
                !row.contains(&key.to_lowercase()),
                "{table} still names {key}: {row}"
            );
        }
        for v in &traces.vectors {
            assert!(
                !row.contains(&hex(v)),
                "{table} still holds a face vector of the student: {row}"
            );
        }
    }
    for face in detected_face::Entity::find()
        .filter(detected_face::Column::StudentId.eq(student))
        .all(&app.state.db)
        .await
        .unwrap()
    {
        assert_eq!(face.crop_key, None, "{face:?}");
        assert_eq!(face.descriptor, None, "{face:?}");
        assert_eq!(face.landmarks, Value::Null, "{face:?}");
    }
    let objects = app.stored_objects().await;
    for key in &objects {
        assert!(!traces.keys.contains(key), "{key} is still stored");
        let bytes = app.state.blobs.get(key).await.unwrap();
        assert!(
            !traces.blobs.contains(&bytes),
            "{key} holds a copy of a photo or crop of the student"
        );
    }
}

/// A class with two students (two photos each) and a session in which both are
/// recognised; the first student's face is also enrolled from a correction.
struct Scene {
    class: Uuid,
    obama: Uuid,
    biden: Uuid,
    session: Uuid,
    job: Uuid,
}

async fn scene(app: &TestApp) -> Scene {
    let class = app.create_class("CSE 2A").await;
    let obama = registered(
        app,
        class,
        "01",
        "Barack Obama",
        &["people/obama/obama1.jpg", "people/obama/obama2.jpg"],
    )
    .await;
    let biden = registered(
        app,
        class,
        "02",
        "Joe Biden",
        &["people/biden/biden1.jpg", "people/biden/biden2.jpg"],
    )
    .await;
    let (session, job) = mark(app, class, &["groups/obama_biden_side_by_side.jpg"]).await;
    run_next_job(app).await;
    let detail: Value = app
        .get_json(&format!("/attendance/session/{session}"))
        .await;
    let face = face_of(&detail, obama);
    let resp = app
        .post(&format!(
            "/attendance/session/{session}/faces/{face}/assign?enroll=true"
        ))
        .json(&json!({"student_id": obama}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    Scene {
        class,
        obama,
        biden,
        session,
        job,
    }
}

/// What the other student has: their rows and objects, to compare after.
async fn snapshot(app: &TestApp, student: Uuid) -> (u64, u64, Vec<bytes::Bytes>) {
    let db = &app.state.db;
    let traces = Traces::of(app, student).await;
    let photos = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(student))
        .count(db)
        .await
        .unwrap();
    let embeddings = face_embedding::Entity::find()
        .filter(face_embedding::Column::StudentId.eq(student))
        .count(db)
        .await
        .unwrap();
    (photos, embeddings, traces.blobs)
}

fn counts(body: &Value) -> [u64; 6] {
    [
        "registration_photos",
        "enrolled_photos",
        "embeddings",
        "face_crops",
        "face_descriptors",
        "attendance_records",
    ]
    .map(|k| {
        body[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {body}"))
    })
}

/// The case: a student registered, recognised in a group photo and enrolled
/// from a correction, then deleted. Their records stay with a tombstone; nothing
/// biometric of them is left in any table or in the store; the other student keeps
/// everything.
async fn delete_erases_every_biometric_trace(db: Db, storage: Storage) {
    let app = spawn_app_on(db, Queue::Embedded, storage, &[]).await;
    let s = scene(&app).await;
    let traces = Traces::of(&app, s.obama).await;
    // Two uploaded photos and the enrolled crop; the session face's crop (and the
    // enrolled copy of it).
    assert_eq!(traces.keys.len(), 4, "{traces:?}");
    assert_eq!(
        traces.vectors.len(),
        4,
        "3 embeddings and the face's descriptor"
    );
    let biden_before = snapshot(&app, s.biden).await;

    let resp = app
        .delete(&format!("/students/{}", s.obama))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // registration photos, enrolled, embeddings, crops, descriptors, records removed.
    assert_eq!(counts(&body), [2, 1, 3, 1, 1, 0], "{body}");

    assert_erased(&app, s.obama, &traces).await;

    // A tombstone keeps the records (academic records), with the name and roll number.
    let tomb = student::Entity::find_by_id(s.obama)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tomb.status, StudentStatus::Deleted);
    assert!(tomb.erased_at.is_some());
    let detail: Value = app
        .get_json(&format!("/attendance/session/{}", s.session))
        .await;
    let record = detail["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["student_id"] == json!(s.obama))
        .unwrap_or_else(|| panic!("the record stays: {detail:#}"));
    assert_eq!(
        (&record["roll_no"], &record["name"], &record["status"]),
        (&json!("01"), &json!("Barack Obama"), &json!("present"))
    );
    let face = detail["faces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["student_id"] == json!(s.obama))
        .unwrap_or_else(|| panic!("the face stays the student's: {detail:#}"));
    assert!(face["crop_url"].is_null(), "{face}");

    // Processing the session again makes no new crop or descriptor of the face.
    process_again(&app, s.job).await;
    assert_erased(&app, s.obama, &traces).await;
    let detail: Value = app
        .get_json(&format!("/attendance/session/{}", s.session))
        .await;
    assert!(
        detail["faces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["student_id"] == json!(s.obama) && f["crop_url"].is_null()),
        "{detail:#}"
    );

    // The other student is intact.
    assert_eq!(snapshot(&app, s.biden).await, biden_before);
    let biden: Value = app.get_json(&format!("/students/{}", s.biden)).await;
    assert_eq!(biden["status"], "active");
    let _ = s.class;
}

#[tokio::test]
async fn delete_erases_every_biometric_trace_sqlite_fs() {
    delete_erases_every_biometric_trace(Db::Sqlite, Storage::Fs).await;
}

#[tokio::test]
async fn delete_erases_every_biometric_trace_postgres_s3() {
    delete_erases_every_biometric_trace(Db::Postgres, Storage::S3).await;
}

/// A tombstone is gone for clients (404 everywhere, not listed, no new records) while
/// its roll number is free again; `purge` removes the records and the matched faces;
/// 404 for unknown and already deleted students; only admins delete.
async fn tombstones_and_purge(db: Db) {
    let app = spawn_app_on(db, Queue::Embedded, Storage::Fs, &[]).await;
    let s = scene(&app).await;

    let teacher = app.key(Role::Teacher).await;
    let resp = app
        .client
        .delete(app.url(&format!("/students/{}", s.obama)))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = app
        .delete(&format!("/students/{}", Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let dept_admin = app.key(Role::DepartmentAdmin).await;
    let resp = app
        .client
        .delete(app.url(&format!("/students/{}", s.obama)))
        .bearer_auth(&dept_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Gone for clients.
    let path = format!("/students/{}", s.obama);
    for resp in [
        app.get(&path).send().await.unwrap(),
        app.put(&path)
            .json(&json!({"name": "Back"}))
            .send()
            .await
            .unwrap(),
        app.delete(&path).send().await.unwrap(),
        app.delete(&format!("{path}/consent")).send().await.unwrap(),
        app.post(&format!("{path}/photos"))
            .multipart(Form::new().part(
                "photos",
                Part::bytes(crate::helpers::fixture("people/obama/obama3.jpg")).file_name("p.jpg"),
            ))
            .send()
            .await
            .unwrap(),
        app.client
            .patch(app.url(&format!(
                "/attendance/session/{}/records/{}",
                s.session, s.obama
            )))
            .bearer_auth(&app.admin_key)
            .json(&json!({"status": "absent"}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(resp.status(), 404, "{}", resp.url());
        assert_eq!(error_code(resp).await, "not_found");
    }
    let listed: Value = app
        .get_json(&format!("/students?class_id={}", s.class))
        .await;
    assert_eq!(listed["total"], 1, "{listed:#}");
    assert_eq!(listed["items"][0]["id"], json!(s.biden));

    // A new session does not list the tombstone on its roll.
    let (second, _) = mark(&app, s.class, &["groups/obama_biden_side_by_side.jpg"]).await;
    run_next_job(&app).await;
    let detail: Value = app.get_json(&format!("/attendance/session/{second}")).await;
    let on_roll: Vec<&Value> = detail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["student_id"])
        .collect();
    assert_eq!(on_roll, vec![&json!(s.biden)], "{detail:#}");

    // The roll number is free: registered again, a new student.
    let resp = app
        .register(
            s.class,
            "01",
            "Barack Obama",
            vec![(
                "p.jpg".into(),
                crate::helpers::fixture("people/obama/obama1.jpg"),
            )],
        )
        .await;
    assert_eq!(resp.status(), 202);
    let again = id(&resp.json().await.unwrap(), "student_id");
    assert_ne!(again, s.obama);
    run_next_job(&app).await;

    // Purge: the records and the faces matched to the student go with the row.
    let faces_before = detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(s.session))
        .count(&app.state.db)
        .await
        .unwrap();
    let biden_records = attendance_record::Entity::find()
        .filter(attendance_record::Column::StudentId.eq(s.biden))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(biden_records, 2);
    let traces = Traces::of(&app, s.biden).await;
    let resp = app
        .delete(&format!("/students/{}?purge=true", s.biden))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(counts(&body), [2, 0, 2, 2, 2, 2], "{body}");
    assert!(
        student::Entity::find_by_id(s.biden)
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        attendance_record::Entity::find()
            .filter(attendance_record::Column::StudentId.eq(s.biden))
            .count(&app.state.db)
            .await
            .unwrap(),
        0
    );
    // Biden's face is gone from the first session, not left as an unknown face.
    let faces_after = detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(s.session))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(faces_after, faces_before - 1);
    assert_erased(&app, s.biden, &traces).await;
    let resp = app
        .delete(&format!("/students/{}?purge=true", s.biden))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The tombstone's record stays while the purged student's went.
    let detail: Value = app
        .get_json(&format!("/attendance/session/{}", s.session))
        .await;
    let remaining: Vec<&Value> = detail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["student_id"])
        .collect();
    assert_eq!(remaining, vec![&json!(s.obama)], "{detail:#}");
}

#[tokio::test]
async fn tombstones_and_purge_sqlite() {
    tombstones_and_purge(Db::Sqlite).await;
}

#[tokio::test]
async fn tombstones_and_purge_postgres() {
    tombstones_and_purge(Db::Postgres).await;
}

/// Consent withdrawn: the biometric data goes as in a delete, the student and the
/// records stay, the withdrawal is in the consent history; a new session records the
/// student unmatched and never matches their face, and their face cannot be enrolled.
async fn withdrawal(db: Db, storage: Storage) {
    let app = spawn_app_on(db, Queue::Embedded, storage, &[]).await;
    let s = scene(&app).await;
    let traces = Traces::of(&app, s.obama).await;
    let dept_admin = app.key(Role::DepartmentAdmin).await;
    let admin_id = api::auth::find_key(&app.state.db, &dept_admin)
        .await
        .unwrap()
        .unwrap()
        .id;
    let teacher = app.key(Role::Teacher).await;
    let path = format!("/students/{}/consent", s.obama);
    let resp = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let resp = app
        .client
        .delete(app.url(&format!("{path}?note=asked%20in%20writing")))
        .bearer_auth(&dept_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(counts(&body), [2, 1, 3, 1, 1, 0], "{body}");
    assert_erased(&app, s.obama, &traces).await;

    let student: Value = app.get_json(&format!("/students/{}", s.obama)).await;
    assert_eq!(student["status"], "withdrawn", "{student:#}");
    assert_eq!(student["photos"], json!([]));
    let stored = student::Entity::find_by_id(s.obama)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.erased_at.is_some());
    let entries = consent_entry::Entity::find()
        .filter(consent_entry::Column::StudentId.eq(s.obama))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (
            entries[0].action,
            entries[0].source,
            entries[0].recorded_by_key_id,
            entries[0].note.as_deref()
        ),
        (
            ConsentAction::Withdrawn,
            ConsentSource::Api,
            Some(admin_id),
            Some("asked in writing")
        )
    );
    let kept = attendance_record::Entity::find()
        .filter(attendance_record::Column::StudentId.eq(s.obama))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.status, RecordStatus::Present);
    // Withdrawn already: nothing more to withdraw.
    let resp = app.delete(&path).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(error_code(resp).await, "consent_withdrawn");

    // A new session: on the roll, unmatched, and the face is nobody's.
    let (second, _) = mark(&app, s.class, &["groups/obama_biden_side_by_side.jpg"]).await;
    run_next_job(&app).await;
    let detail: Value = app.get_json(&format!("/attendance/session/{second}")).await;
    let status: HashMap<Uuid, String> = detail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                id(r, "student_id"),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(status[&s.obama], "unmatched", "{detail:#}");
    assert_eq!(status[&s.biden], "present", "{detail:#}");
    let faces = detail["faces"].as_array().unwrap();
    assert!(
        faces.iter().all(|f| f["student_id"] != json!(s.obama)),
        "{detail:#}"
    );
    let unknown = faces
        .iter()
        .find(|f| f["student_id"].is_null())
        .unwrap_or_else(|| panic!("Obama's face is unknown: {detail:#}"));
    let face = id(unknown, "face_id");
    // Enrolling it for the withdrawn student is refused; naming it is not.
    let assign = format!("/attendance/session/{second}/faces/{face}/assign");
    let resp = app
        .post(&format!("{assign}?enroll=true"))
        .json(&json!({"student_id": s.obama}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(error_code(resp).await, "consent_withdrawn");
    assert_eq!(
        student_photo::Entity::find()
            .filter(student_photo::Column::StudentId.eq(s.obama))
            .count(&app.state.db)
            .await
            .unwrap(),
        0
    );
    let resp = app
        .post(&assign)
        .json(&json!({"student_id": s.obama, "reason": "seen in class"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    // Named as the withdrawn student, the face keeps no crop or descriptor.
    let named = detected_face::Entity::find_by_id(face)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(named.student_id, Some(s.obama));
    assert_erased(&app, s.obama, &traces).await;
    assert!(
        app.stored_objects()
            .await
            .iter()
            .all(|k| !k.contains(&face.to_string())),
        "the named face's crop is deleted"
    );
}

#[tokio::test]
async fn withdrawal_sqlite_fs() {
    withdrawal(Db::Sqlite, Storage::Fs).await;
}

#[tokio::test]
async fn withdrawal_postgres_s3() {
    withdrawal(Db::Postgres, Storage::S3).await;
}
