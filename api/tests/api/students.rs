//! Listing, editing and deleting students.

use chrono::Utc;
use models::{face_embedding, student::StudentStatus, student_photo};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Db, Queue, error_code, fixture, spawn_app};

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
    assert_eq!(resp.status(), 204);
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
    // The others are untouched.
    let remaining = models::student::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
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
