//! A processed session as clients see it: records, faces, crops, export. The rows the
//! attendance job would write are written here directly through the entities.

use bytes::Bytes;
use chrono::Utc;
use models::{
    attendance_record::{self, RecordSource, RecordStatus},
    attendance_session::{self, SessionStatus},
    detected_face::{self, FaceBox},
    session_photo,
};
use reqwest::multipart::{Form, Part};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Db, Queue, fixture, spawn_app};

async fn processed_session(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let mut students = Vec::new();
    for (roll, name, photo) in [
        ("01", "Barack Obama", "people/obama/obama1.jpg"),
        ("02", "Joe Biden", "people/biden/biden1.jpg"),
        ("03", "Rose Leslie", "people/rose_leslie/rose1.jpg"),
    ] {
        let body: Value = app
            .register(class_id, roll, name, vec![("p.jpg".into(), fixture(photo))])
            .await
            .json()
            .await
            .unwrap();
        students.push(
            body["student_id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap(),
        );
    }
    let form = Form::new()
        .text("class_id", class_id.to_string())
        .text("taken_at", "2026-11-20T10:00:00Z")
        .part(
            "photos",
            Part::bytes(fixture("groups/obama_biden_side_by_side.jpg")).file_name("g.jpg"),
        );
    let body: Value = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session_id: Uuid = body["session_id"].as_str().unwrap().parse().unwrap();
    let photo = session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(session_id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();

    // Two faces (Obama matched, one unknown) with a crop, three records.
    let now = Utc::now();
    let crop_key = format!("sessions/{session_id}/faces/0.jpg");
    let crop = Bytes::from(fixture("people/obama/obama2.jpg"));
    app.state
        .blobs
        .put(&crop_key, crop.clone(), "image/jpeg")
        .await
        .unwrap();
    let mut face_ids = Vec::new();
    for (i, student) in [(0, Some(students[0])), (1, None)] {
        let id = Uuid::new_v4();
        face_ids.push(id);
        detected_face::ActiveModel {
            id: Set(id),
            session_id: Set(session_id),
            photo_id: Set(photo.id),
            face_index: Set(i),
            face_box: Set(serde_json::to_value(FaceBox {
                x1: 10.0,
                y1: 20.0,
                x2: 110.0,
                y2: 140.0,
            })
            .unwrap()),
            landmarks: Set(serde_json::json!([
                [40.0, 60.0],
                [80.0, 60.0],
                [60.0, 85.0],
                [45.0, 110.0],
                [75.0, 110.0]
            ])),
            score: Set(0.99),
            crop_key: Set((i == 0).then(|| crop_key.clone())),
            student_id: Set(student),
            distance: Set(student.map(|_| 0.31)),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&app.state.db)
        .await
        .unwrap();
    }
    for (student, status, distance) in [
        (students[0], RecordStatus::Present, Some(0.31)),
        (students[1], RecordStatus::Absent, None),
        (students[2], RecordStatus::Absent, None),
    ] {
        attendance_record::ActiveModel {
            id: Set(Uuid::new_v4()),
            session_id: Set(session_id),
            student_id: Set(student),
            status: Set(status),
            distance: Set(distance),
            source: Set(RecordSource::Auto),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&app.state.db)
        .await
        .unwrap();
    }
    let mut session: attendance_session::ActiveModel =
        attendance_session::Entity::find_by_id(session_id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .into();
    session.status = Set(SessionStatus::Completed);
    session.update(&app.state.db).await.unwrap();

    let detail: Value = app
        .get_json(&format!("/attendance/session/{session_id}"))
        .await;
    assert_eq!(detail["status"], "completed");
    let records = detail["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["roll_no"], "01");
    assert_eq!(records[0]["name"], "Barack Obama");
    assert_eq!(records[0]["status"], "present");
    assert_eq!(records[0]["distance"], 0.31);
    assert_eq!(records[0]["source"], "auto");
    assert_eq!(records[1]["status"], "absent");
    let faces = detail["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2);
    assert_eq!(faces[0]["face_id"], face_ids[0].to_string());
    assert_eq!(faces[0]["box"]["x2"], 110.0);
    assert_eq!(faces[0]["student_id"], students[0].to_string());
    assert!(faces[1]["student_id"].is_null(), "unknown face");
    let crop_url = faces[0]["crop_url"].as_str().unwrap();
    assert_eq!(crop_url, format!("/faces/{}/crop", face_ids[0]));
    assert!(faces[1]["crop_url"].is_null());

    let resp = app.get(crop_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.bytes().await.unwrap(), crop);

    // Sessions list with a date range.
    let list: Vec<Value> = app
        .get_json(&format!(
            "/attendance/sessions?class_id={class_id}&from=2026-11-20&to=2026-11-20"
        ))
        .await;
    assert_eq!(list.len(), 1);
    let list: Vec<Value> = app
        .get_json(&format!(
            "/attendance/sessions?class_id={class_id}&from=2026-11-21"
        ))
        .await;
    assert!(list.is_empty());

    // Export: one row per student, one column per session (its date and time in
    // India, +05:30), then attended, total and percentage.
    let resp = app
        .get(&format!(
            "/export/attendance?class_id={class_id}&from=2026-11-01&to=2026-11-30&format=csv"
        ))
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
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 3, "{csv}");
    assert_eq!(
        lines[0],
        "roll_no,name,2026-11-20 15:30,attended,total,percentage"
    );
    assert_eq!(lines[1], "01,Barack Obama,present,1,1,100.0");
    assert_eq!(lines[2], "02,Joe Biden,absent,0,1,0.0");
    let resp = app
        .get(&format!(
            "/export/attendance?class_id={class_id}&format=pdf"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Deleting a student keeps their detected face as theirs (the tombstone's), with
    // its crop and descriptor erased.
    let resp = app
        .delete(&format!("/students/{}", students[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let face = detected_face::Entity::find_by_id(face_ids[0])
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(face.student_id, Some(students[0]));
    assert_eq!((face.crop_key, face.descriptor), (None, None));
    assert!(!app.blob_keys().contains(&crop_key), "the crop is deleted");
    // The record stays, an academic record with the name and roll number.
    let detail: Value = app
        .get_json(&format!("/attendance/session/{session_id}"))
        .await;
    assert_eq!(detail["records"][0]["roll_no"], "01", "{detail:#}");
    assert_eq!(detail["records"][0]["name"], "Barack Obama");
    assert_eq!(detail["records"][0]["status"], "present");
    let csv = app
        .get(&format!(
            "/export/attendance?class_id={class_id}&format=csv"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.lines()
            .any(|l| l == "01,Barack Obama,present,1,1,100.0"),
        "{csv}"
    );
}

#[tokio::test]
async fn processed_session_sqlite() {
    processed_session(Db::Sqlite).await;
}

#[tokio::test]
async fn processed_session_postgres() {
    processed_session(Db::Postgres).await;
}
