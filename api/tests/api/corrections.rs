//! Corrections of a session by a person: records set by hand survive processing the
//! session again, faces named by hand (and enrolled into the gallery), the audit log,
//! and who may do what.

use api::auth::Role;
use chrono::Utc;
use common::JobKind;
use models::{
    attendance_record::{self, RecordSource, RecordStatus},
    detected_face, face_embedding, job, session_photo, student_photo,
};
use reqwest::multipart::{Form, Part};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Db, Queue, TestApp, engine, error_code, fixture, run_next_job, spawn_app};

pub(crate) fn id(v: &Value, field: &str) -> Uuid {
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

/// Registers a student from fixture photos and runs the registration job.
pub(crate) async fn registered(
    app: &TestApp,
    class: Uuid,
    roll: &str,
    name: &str,
    photos: &[&str],
) -> Uuid {
    let photos = photos
        .iter()
        .map(|p| (p.rsplit('/').next().unwrap().to_string(), fixture(p)))
        .collect();
    let resp = app.register(class, roll, name, photos).await;
    assert_eq!(resp.status(), 202);
    let student = id(&resp.json().await.unwrap(), "student_id");
    run_next_job(app).await;
    let detail: Value = app.get_json(&format!("/students/{student}")).await;
    assert_eq!(detail["status"], "active", "{detail:#}");
    student
}

/// Takes attendance from fixture photos; returns the session and job ids (the job
/// not run yet).
pub(crate) async fn mark(app: &TestApp, class: Uuid, photos: &[&str]) -> (Uuid, Uuid) {
    let mut form = Form::new().text("class_id", class.to_string());
    for p in photos {
        form = form.part("photos", Part::bytes(fixture(p)).file_name("g.jpg"));
    }
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    (id(&body, "session_id"), id(&body, "job_id"))
}

/// Processes the session again: the attendance handler run once more on its job, as
/// a re-run (or a redelivery that reached the handler) does.
pub(crate) async fn process_again(app: &TestApp, job_id: Uuid) {
    // A run needs a claim on its job: queued again, then claimed, as a re-run is.
    let mut queued = job::Entity::find_by_id(job_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    queued.status = sea_orm::ActiveValue::Set(job::JobStatus::Queued);
    job::Entity::update(queued)
        .exec(&app.state.db)
        .await
        .unwrap();
    let claimed =
        worker::jobs::claim::claim(&app.state.db, job_id, std::time::Duration::from_secs(60), 5)
            .await
            .unwrap();
    let worker::jobs::claim::Claim::Won(row) = claimed else {
        panic!("the job could not be claimed again: {claimed:?}");
    };
    let ctx = worker::jobs::JobContext {
        db: app.state.db.clone(),
        blobs: app.state.blobs.clone(),
        engine: engine(),
        queue: None,
        public_url: "http://127.0.0.1:8080".into(),
        clock: common::clock::system(),
        retention_days: None,
    };
    let progress = worker::jobs::Progress::new(&app.state.db, &row);
    let outcome = worker::jobs::run(JobKind::Attendance, &ctx, &row, &progress).await;
    assert!(outcome.is_ok(), "the session is processed again");
}

/// `(status, source)` of each record, by student id.
fn records(detail: &Value) -> Vec<(Uuid, String, String)> {
    detail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                id(r, "student_id"),
                r["status"].as_str().unwrap().to_string(),
                r["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn record_of(detail: &Value, student: Uuid) -> (String, String) {
    records(detail)
        .into_iter()
        .find(|(s, _, _)| *s == student)
        .map(|(_, status, source)| (status, source))
        .unwrap_or_else(|| panic!("no record of {student} in {detail:#}"))
}

/// The one face of the session matched to `student`.
pub(crate) fn face_of(detail: &Value, student: Uuid) -> Uuid {
    let faces: Vec<Uuid> = detail["faces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["student_id"] == json!(student))
        .map(|f| id(f, "face_id"))
        .collect();
    assert_eq!(faces.len(), 1, "{detail:#}");
    faces[0]
}

/// A teacher corrects a record and renames a wrongly matched face; processing the
/// session again leaves both as the teacher set them, and the audit log says who
/// changed what, when and why.
async fn corrections_survive_processing_again(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class = app.create_class("CSE 2A").await;
    let obama = registered(
        &app,
        class,
        "01",
        "Barack Obama",
        &["people/obama/obama1.jpg"],
    )
    .await;
    let biden = registered(&app, class, "02", "Joe Biden", &["people/biden/biden1.jpg"]).await;
    let rose = registered(
        &app,
        class,
        "03",
        "Rose Leslie",
        &["people/rose_leslie/rose1.jpg"],
    )
    .await;
    let kit = registered(
        &app,
        class,
        "04",
        "Kit Harington",
        &["people/kit_harington/kit1.jpeg"],
    )
    .await;
    let (session, job_id) = mark(&app, class, &["groups/obama_biden_side_by_side.jpg"]).await;
    run_next_job(&app).await;
    let path = format!("/attendance/session/{session}");
    let before: Value = app.get_json(&path).await;
    assert_eq!(before["status"], "completed", "{before:#}");
    let auto = |s: &str| (s.to_string(), "auto".to_string());
    assert_eq!(record_of(&before, obama), auto("present"));
    assert_eq!(record_of(&before, biden), auto("present"));
    assert_eq!(record_of(&before, rose), auto("absent"));
    assert_eq!(record_of(&before, kit), auto("absent"));
    assert_eq!(before["audit"], json!([]));
    let biden_face = face_of(&before, biden);

    let teacher = app.key(Role::Teacher).await;
    let teacher_id = key_id(&app, &teacher).await;
    let started = Utc::now();
    // Rose sat outside the photo.
    let resp = app
        .client
        .patch(app.url(&format!("{path}/records/{rose}")))
        .bearer_auth(&teacher)
        .json(&json!({"status": "present", "reason": "sat outside the photo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let record: Value = resp.json().await.unwrap();
    assert_eq!(record["status"], "present");
    assert_eq!(record["source"], "manual");
    assert_eq!(record["corrected_by_key_id"], json!(teacher_id));
    // The face taken for Biden is Kit's.
    let resp = app
        .client
        .post(app.url(&format!("{path}/faces/{biden_face}/assign")))
        .bearer_auth(&teacher)
        .json(&json!({"student_id": kit, "reason": "that is Kit, Biden was away"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let assigned: Value = resp.json().await.unwrap();
    assert_eq!(assigned["face"]["student_id"], json!(kit));
    assert_eq!(assigned["face"]["assigned_by_key_id"], json!(teacher_id));
    assert!(assigned["enrolled_photo_id"].is_null());
    let set: Vec<(Uuid, &str)> = assigned["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (id(r, "student_id"), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(set, vec![(biden, "absent"), (kit, "present")]);

    // Processed again (as after a re-embedding): the automatic decision would mark
    // Biden present and Rose and Kit absent; the corrections stand.
    process_again(&app, job_id).await;
    let after: Value = app.get_json(&path).await;
    let manual = |s: &str| (s.to_string(), "manual".to_string());
    assert_eq!(record_of(&after, obama), auto("present"));
    assert_eq!(record_of(&after, biden), manual("absent"));
    assert_eq!(record_of(&after, rose), manual("present"));
    assert_eq!(record_of(&after, kit), manual("present"));
    assert_eq!(
        face_of(&after, kit),
        biden_face,
        "the named face stays Kit's"
    );
    let stored = attendance_record::Entity::find()
        .filter(attendance_record::Column::SessionId.eq(session))
        .filter(attendance_record::Column::StudentId.eq(rose))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status, stored.source, stored.corrected_by_key_id),
        (
            RecordStatus::Present,
            RecordSource::Manual,
            Some(teacher_id)
        )
    );

    // The audit log: who (the teacher's key), when, what, why.
    let audit = after["audit"].as_array().unwrap();
    let entries: Vec<(String, Option<Uuid>, Value, Value, Value)> = audit
        .iter()
        .map(|e| {
            assert_eq!(e["key_id"], json!(teacher_id), "{e}");
            let at: chrono::DateTime<Utc> = e["created_at"].as_str().unwrap().parse().unwrap();
            assert!(at >= started - chrono::Duration::seconds(1) && at <= Utc::now());
            (
                e["action"].as_str().unwrap().to_string(),
                e["student_id"].as_str().map(|s| s.parse().unwrap()),
                e["from_status"].clone(),
                e["to_status"].clone(),
                e["reason"].clone(),
            )
        })
        .collect();
    let corrected = |student, from: &str, to: &str, why: &str| {
        (
            "record_corrected".to_string(),
            Some(student),
            json!(from),
            json!(to),
            json!(why),
        )
    };
    assert_eq!(entries.len(), 4, "{audit:#?}");
    assert_eq!(
        entries[0],
        corrected(rose, "absent", "present", "sat outside the photo")
    );
    let why = "that is Kit, Biden was away";
    for expected in [
        corrected(biden, "present", "absent", why),
        corrected(kit, "absent", "present", why),
        (
            "face_assigned".to_string(),
            Some(kit),
            Value::Null,
            Value::Null,
            json!(why),
        ),
    ] {
        assert!(
            entries[1..].contains(&expected),
            "{expected:?} in {audit:#?}"
        );
    }
    let named = audit
        .iter()
        .find(|e| e["action"] == "face_assigned")
        .unwrap();
    assert_eq!(named["face_id"], json!(biden_face));
    assert_eq!(named["previous_student_id"], json!(biden));
    assert_eq!(named["enrolled"], false);
}

#[tokio::test]
async fn corrections_survive_processing_again_postgres() {
    corrections_survive_processing_again(Db::Postgres).await;
}

#[tokio::test]
async fn corrections_survive_processing_again_sqlite() {
    corrections_survive_processing_again(Db::Sqlite).await;
}

/// A session with one unknown face as the attendance job of an older version left
/// it (no descriptor), and two students of the class registered (not processed).
struct Fixture {
    session: Uuid,
    face: Uuid,
    student: Uuid,
}

async fn fixture_session(app: &TestApp) -> Fixture {
    let class = app.create_class("CSE 2A").await;
    let resp = app
        .register(
            class,
            "01",
            "Barack Obama",
            vec![("p.jpg".into(), fixture("people/obama/obama1.jpg"))],
        )
        .await;
    let student = id(&resp.json().await.unwrap(), "student_id");
    let (session, _) = mark(app, class, &["groups/obama_biden_side_by_side.jpg"]).await;
    let photo = session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(session))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let face = Uuid::new_v4();
    detected_face::ActiveModel {
        id: Set(face),
        session_id: Set(session),
        photo_id: Set(photo.id),
        face_index: Set(0),
        face_box: Set(json!({"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 140.0})),
        landmarks: Set(json!([
            [40.0, 60.0],
            [80.0, 60.0],
            [60.0, 85.0],
            [45.0, 110.0],
            [75.0, 110.0]
        ])),
        score: Set(0.99),
        crop_key: Set(None),
        student_id: Set(None),
        distance: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    Fixture {
        session,
        face,
        student,
    }
}

/// Unknown ids answer 404, another department's session 404, a student of another
/// class 422, enrolment by a teacher 403, and a face stored without its descriptor
/// cannot be enrolled (409); none of them writes anything.
async fn refusals(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let f = fixture_session(&app).await;
    let other_class = app.create_class("CSE 3B").await;
    let resp = app
        .register(
            other_class,
            "01",
            "Joe Biden",
            vec![("p.jpg".into(), fixture("people/biden/biden1.jpg"))],
        )
        .await;
    let outsider = id(&resp.json().await.unwrap(), "student_id");
    let teacher = app.key(Role::Teacher).await;
    let dept_admin = app.key(Role::DepartmentAdmin).await;
    let mech_admin = app.key_in(Role::DepartmentAdmin, "MECH").await;

    let patch = |key: &str, session: Uuid, student: Uuid, body: Value| {
        app.client
            .patch(app.url(&format!("/attendance/session/{session}/records/{student}")))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let assign = |key: &str, session: Uuid, face: Uuid, query: &str, body: Value| {
        app.client
            .post(app.url(&format!(
                "/attendance/session/{session}/faces/{face}/assign{query}"
            )))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let present = json!({"status": "present"});
    let named = json!({"student_id": f.student});
    let unknown = Uuid::new_v4();

    for (resp, status, code) in [
        (
            patch(&teacher, unknown, f.student, present.clone())
                .await
                .unwrap(),
            404,
            "not_found",
        ),
        (
            patch(&teacher, f.session, unknown, present.clone())
                .await
                .unwrap(),
            404,
            "not_found",
        ),
        (
            patch(&mech_admin, f.session, f.student, present.clone())
                .await
                .unwrap(),
            404,
            "not_found",
        ),
        (
            patch(&teacher, f.session, outsider, present.clone())
                .await
                .unwrap(),
            422,
            "student_not_in_class",
        ),
        (
            patch(
                &teacher,
                f.session,
                f.student,
                json!({"status": "unmatched"}),
            )
            .await
            .unwrap(),
            400,
            "bad_request",
        ),
        (
            assign(&teacher, unknown, f.face, "", named.clone())
                .await
                .unwrap(),
            404,
            "not_found",
        ),
        (
            assign(&teacher, f.session, unknown, "", named.clone())
                .await
                .unwrap(),
            404,
            "not_found",
        ),
        (
            assign(
                &teacher,
                f.session,
                f.face,
                "",
                json!({"student_id": unknown}),
            )
            .await
            .unwrap(),
            404,
            "not_found",
        ),
        (
            assign(&mech_admin, f.session, f.face, "", named.clone())
                .await
                .unwrap(),
            404,
            "not_found",
        ),
        (
            assign(
                &mech_admin,
                f.session,
                f.face,
                "?enroll=true",
                named.clone(),
            )
            .await
            .unwrap(),
            404,
            "not_found",
        ),
        (
            assign(
                &teacher,
                f.session,
                f.face,
                "",
                json!({"student_id": outsider}),
            )
            .await
            .unwrap(),
            422,
            "student_not_in_class",
        ),
        (
            assign(&teacher, f.session, f.face, "?enroll=true", named.clone())
                .await
                .unwrap(),
            403,
            "forbidden",
        ),
        (
            assign(
                &dept_admin,
                f.session,
                f.face,
                "?enroll=true",
                named.clone(),
            )
            .await
            .unwrap(),
            409,
            "face_not_enrollable",
        ),
    ] {
        let url = resp.url().clone();
        assert_eq!(resp.status(), status, "{url}");
        let got = error_code(resp).await;
        if status != 400 {
            assert_eq!(got, code, "{url}");
        }
    }
    // Nothing was written by any of them.
    let detail: Value = app
        .get_json(&format!("/attendance/session/{}", f.session))
        .await;
    assert_eq!(detail["audit"], json!([]));
    assert_eq!(detail["records"], json!([]));
    let face = detected_face::Entity::find_by_id(f.face)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((face.student_id, face.assigned_by_key_id), (None, None));
    assert!(
        student_photo::Entity::find()
            .filter(student_photo::Column::SourceFaceId.is_not_null())
            .all(&app.state.db)
            .await
            .unwrap()
            .is_empty()
    );

    // The same key of the right department, without enrolment, names the face: a
    // record is created for a session not processed yet.
    let resp = assign(&teacher, f.session, f.face, "", named.clone())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let detail: Value = app
        .get_json(&format!("/attendance/session/{}", f.session))
        .await;
    assert_eq!(
        record_of(&detail, f.student),
        ("present".to_string(), "manual".to_string())
    );
    assert_eq!(detail["audit"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn refusals_postgres() {
    refusals(Db::Postgres).await;
}

#[tokio::test]
async fn refusals_sqlite() {
    refusals(Db::Sqlite).await;
}

/// Enrolling a face the matcher missed makes the student recognised in a later
/// session.
///
/// The construction, from the South-Asian set with the default dlib rule
/// (`attendance-worker eval …/people --gallery 1` and `compare`): Hardik Pandya
/// registered from `hardik_pandya_01` is missed in `hardik_pandya_03` (distance 0.547)
/// and in `hardik_pandya_06` (0.500), both above the 0.475 ceiling, while 03 and 06 are
/// 0.357 apart: the same look on two days (beard, angle) that the registration photo
/// lacks. The first session (06) misses him; in the second (03) the department admin
/// names his unknown face with `enroll=true`; a later session with 06 finds him.
async fn enrolled_face_is_recognised_later(db: Db) {
    let Some(_) = worker::fixtures::south_asian("enrolled_face_is_recognised_later") else {
        return;
    };
    let app = spawn_app(db, Queue::Embedded).await;
    let class = app.create_class("CSE 2A").await;
    let photo = |name: &str| format!("south_asian/people/{}/{name}.jpg", &name[..name.len() - 3]);
    let hardik = registered(
        &app,
        class,
        "01",
        "Hardik Pandya",
        &[&photo("hardik_pandya_01")],
    )
    .await;
    registered(
        &app,
        class,
        "02",
        "Rohit Sharma",
        &[&photo("rohit_sharma_01")],
    )
    .await;
    registered(
        &app,
        class,
        "03",
        "Vijay Shankar",
        &[&photo("vijay_shankar_01")],
    )
    .await;

    // Missed twice: his face is unknown, his record absent.
    let mut missed_faces = Vec::new();
    for probe in ["hardik_pandya_06", "hardik_pandya_03"] {
        let (session, _) = mark(&app, class, &[&photo(probe)]).await;
        run_next_job(&app).await;
        let detail: Value = app
            .get_json(&format!("/attendance/session/{session}"))
            .await;
        assert_eq!(
            record_of(&detail, hardik),
            ("absent".to_string(), "auto".to_string()),
            "{probe}: {detail:#}"
        );
        let faces = detail["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "{probe}: {detail:#}");
        assert!(faces[0]["student_id"].is_null(), "{probe}: {detail:#}");
        missed_faces.push((session, id(&faces[0], "face_id")));
    }

    // The department admin names the face in the second session and enrols it.
    let (session, face) = missed_faces[1];
    let admin = app.key(Role::DepartmentAdmin).await;
    let resp = app
        .client
        .post(app.url(&format!(
            "/attendance/session/{session}/faces/{face}/assign?enroll=true"
        )))
        .bearer_auth(&admin)
        .json(&json!({"student_id": hardik, "reason": "new beard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let assigned: Value = resp.json().await.unwrap();
    let enrolled_photo = id(&assigned, "enrolled_photo_id");
    let row = detected_face::Entity::find_by_id(face)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let embedding = face_embedding::Entity::find()
        .filter(face_embedding::Column::PhotoId.eq(enrolled_photo))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the face's descriptor is in the gallery");
    assert_eq!(embedding.student_id, hardik);
    assert_eq!(Some(&embedding.vector), row.descriptor.as_ref());
    assert_eq!(Some(&embedding.model), row.model.as_ref());
    assert_eq!(embedding.model, "dlib_resnet_v1");
    let student: Value = app.get_json(&format!("/students/{hardik}")).await;
    let photos = student["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 2, "{student:#}");
    assert_eq!(photos[1]["id"], json!(enrolled_photo));
    assert_eq!(photos[1]["verdict"], "accepted");
    let detail: Value = app
        .get_json(&format!("/attendance/session/{session}"))
        .await;
    let entry = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "face_assigned")
        .unwrap()
        .clone();
    assert_eq!(entry["enrolled"], true);
    assert_eq!(entry["key_id"], json!(key_id(&app, &admin).await));

    // A later session with the photo that was missed at first: recognised now.
    let (later, _) = mark(&app, class, &[&photo("hardik_pandya_06")]).await;
    run_next_job(&app).await;
    let detail: Value = app.get_json(&format!("/attendance/session/{later}")).await;
    assert_eq!(
        record_of(&detail, hardik),
        ("present".to_string(), "auto".to_string()),
        "{detail:#}"
    );
    assert_eq!(detail["faces"][0]["student_id"], json!(hardik));
    let distance = detail["faces"][0]["distance"].as_f64().unwrap();
    assert!(distance < 0.4, "matched to the enrolled face: {distance}");

    // Adding photos later judges the uploads again but keeps the enrolled face.
    let resp = app
        .client
        .post(app.url(&format!("/students/{hardik}/photos")))
        .bearer_auth(&admin)
        .multipart(Form::new().part(
            "photos",
            Part::bytes(fixture(&photo("hardik_pandya_02"))).file_name("h.jpg"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    run_next_job(&app).await;
    assert!(
        face_embedding::Entity::find()
            .filter(face_embedding::Column::PhotoId.eq(enrolled_photo))
            .one(&app.state.db)
            .await
            .unwrap()
            .is_some(),
        "the enrolled face survives a registration job"
    );
}

#[tokio::test]
async fn enrolled_face_is_recognised_later_postgres() {
    enrolled_face_is_recognised_later(Db::Postgres).await;
}

#[tokio::test]
async fn enrolled_face_is_recognised_later_sqlite() {
    enrolled_face_is_recognised_later(Db::Sqlite).await;
}
