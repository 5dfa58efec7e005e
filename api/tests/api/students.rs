//! Listing, editing and deleting students.

use chrono::Utc;
use models::{face_embedding, student::StudentStatus, student_photo};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Db, Queue, empty_photo, error_code, fixture, run_next_job, spawn_app};

async fn list_edit_delete(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_a = app.create_class("A").await;
    let class_b = app.create_class("B").await;
    let mut ids = Vec::new();
    for (class, roll, name, photo) in [
        (class_a, "01", "Barack Obama", "people/obama/obama1.jpg"),
        (class_a, "02", "Joe Biden", "people/biden/biden1.jpg"),
        (class_b, "01", "Rose Leslie", "people/rose_leslie/rose1.jpg"),
    ] {
        let resp = app
            .register(class, roll, name, vec![("p.jpg".into(), fixture(photo))])
            .await;
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        ids.push(
            body["student_id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap(),
        );
    }

    let page: Value = app.get_json(&format!("/students?class_id={class_a}")).await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["roll_no"], "01");
    assert_eq!(page["items"][0]["status"], "pending");

    // Search is case-insensitive on name and roll number, on both databases.
    let page: Value = app.get_json("/students?q=OBAMA").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "Barack Obama");
    let page: Value = app.get_json("/students?per_page=2&page=2").await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Moving Rose into class A under a taken roll number conflicts.
    let resp = app
        .put(&format!("/students/{}", ids[2]))
        .json(&json!({"class_id": class_a, "roll_no": "02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let resp = app
        .put(&format!("/students/{}", ids[2]))
        .json(&json!({"class_id": class_a, "roll_no": "03", "status": "inactive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let moved: Value = resp.json().await.unwrap();
    assert_eq!(moved["class_id"], class_a.to_string());
    assert_eq!(moved["status"], "inactive");
    let resp = app
        .put(&format!("/students/{}", ids[2]))
        .json(&json!({"status": "pending"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);

    // Deleting a student removes photos (rows and blobs) and embeddings.
    let obama = ids[0];
    let photo = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(obama))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    // What the registration job would have written.
    face_embedding::ActiveModel {
        id: Set(Uuid::new_v4()),
        photo_id: Set(photo.id),
        student_id: Set(obama),
        model: Set("dlib_resnet_v1".into()),
        vector: Set(models::vector::encode(&[0.25f32; 128])),
        created_at: Set(Utc::now()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let stored = face_embedding::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        models::vector::decode(&stored.vector).unwrap(),
        vec![0.25f32; 128]
    );
    assert!(
        app.blob_keys()
            .iter()
            .any(|k| k.contains(&obama.to_string()))
    );

    let resp = app
        .delete(&format!("/students/{obama}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let erased: Value = resp.json().await.unwrap();
    assert_eq!(
        erased,
        json!({"registration_photos": 1, "enrolled_photos": 0, "embeddings": 1,
               "face_crops": 0, "face_descriptors": 0, "attendance_records": 0})
    );
    assert_eq!(
        face_embedding::Entity::find()
            .count(&app.state.db)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        student_photo::Entity::find()
            .filter(student_photo::Column::StudentId.eq(obama))
            .count(&app.state.db)
            .await
            .unwrap(),
        0
    );
    assert!(
        !app.blob_keys()
            .iter()
            .any(|k| k.contains(&obama.to_string()))
    );
    let resp = app
        .delete(&format!("/students/{obama}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");
    // A tombstone stays (for attendance records) but is no longer listed; the others
    // are untouched.
    let page: Value = app.get_json(&format!("/students?class_id={class_a}")).await;
    assert_eq!(page["total"], 2, "{page:#}");
    let remaining: Vec<_> = models::student::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.status != StudentStatus::Deleted)
        .collect();
    assert_eq!(remaining.len(), 2);
    assert!(
        remaining
            .iter()
            .any(|s| s.status == StudentStatus::Inactive)
    );
}

#[tokio::test]
async fn list_edit_delete_sqlite() {
    list_edit_delete(Db::Sqlite).await;
}

#[tokio::test]
async fn list_edit_delete_postgres() {
    list_edit_delete(Db::Postgres).await;
}

async fn registered(resp: reqwest::Response) -> (Uuid, Uuid) {
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let id = |key: &str| body[key].as_str().unwrap().parse::<Uuid>().unwrap();
    (id("student_id"), id("job_id"))
}

async fn registration_verdicts_are_readable(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class = app.create_class("A").await;
    let (obama, _) = registered(
        app.register(
            class,
            "CS01",
            "Barack Obama",
            vec![
                ("1.jpg".into(), fixture("people/obama/obama1.jpg")),
                ("2.jpg".into(), fixture("people/obama/obama2.jpg")),
            ],
        )
        .await,
    )
    .await;

    // Before the job runs: photos pending, the job queued.
    let student: Value = app.get_json(&format!("/students/{obama}")).await;
    assert_eq!(student["roll_no"], "CS01");
    assert_eq!(student["status"], "pending");
    assert_eq!(student["registration_job"]["status"], "queued");
    let photos = student["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 2);
    assert!(
        photos
            .iter()
            .all(|p| p["verdict"] == "pending" && p["note"].is_null())
    );

    run_next_job(&app).await;
    let student: Value = app.get_json(&format!("/students/{obama}")).await;
    assert_eq!(student["status"], "active", "{student:#}");
    assert_eq!(student["registration_job"]["status"], "succeeded");
    for p in student["photos"].as_array().unwrap() {
        assert_eq!(p["verdict"], "accepted", "{student:#}");
        assert!(p["note"].is_null(), "{student:#}");
        assert_eq!(p["faces"], 1);
    }

    // Someone registers with an empty photo, a photo of two people, and Obama's face.
    let (other, job) = registered(
        app.register(
            class,
            "21CS005",
            "Not Obama",
            vec![
                ("empty.png".into(), empty_photo()),
                (
                    "pair.jpg".into(),
                    fixture("groups/obama_biden_side_by_side.jpg"),
                ),
                ("face.jpg".into(), fixture("people/obama/obama3.jpg")),
            ],
        )
        .await,
    )
    .await;
    run_next_job(&app).await;
    let student: Value = app.get_json(&format!("/students/{other}")).await;
    assert_eq!(student["status"], "active", "{student:#}");
    assert_eq!(student["registration_job"]["job_id"], job.to_string());
    let mut verdicts: Vec<(String, String, String)> = student["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().unwrap_or("-").to_string();
            (text("verdict"), text("reason"), text("note"))
        })
        .collect();
    verdicts.sort();
    let expected = [
        ("accepted", "-", "same person as roll CS01 (Barack Obama)"),
        ("rejected", "no_face", "no face found"),
        (
            "rejected",
            "several_faces",
            "2 faces — use a photo with only the student",
        ),
    ];
    assert_eq!(
        verdicts,
        expected
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .to_vec(),
        "{student:#}"
    );
    let twin = student["photos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["verdict"] == "accepted")
        .unwrap();
    assert_eq!(twin["same_as"]["student_id"], obama.to_string());
    assert!(twin["same_as"]["distance"].as_f64().unwrap() <= 0.4);

    // The job's result is typed: a registration with its counts and verdicts.
    let done: Value = app.get_json(&format!("/jobs/{job}")).await;
    assert_eq!(done["kind"], "registration");
    assert_eq!(done["lane"], "interactive");
    let result = &done["result"];
    assert_eq!(result["type"], "registration", "{done:#}");
    assert_eq!(
        (result["accepted"].as_u64(), result["rejected"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(result["possible_duplicates"][0]["roll_no"], "CS01");

    let resp = app
        .get(&format!("/students/{}", Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_verdicts_are_readable_sqlite() {
    registration_verdicts_are_readable(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_verdicts_are_readable_postgres() {
    registration_verdicts_are_readable(Db::Postgres).await;
}
