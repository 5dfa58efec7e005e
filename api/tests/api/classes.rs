use serde_json::{Value, json};

use crate::helpers::{Db, Queue, error_code, spawn_app};

async fn class_crud(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;

    let resp = app
        .post("/classes")
        .json(
            &json!({"name": "CSE 2A", "department": "Computer Science", "year": 2, "section": "A"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "CSE 2A");
    assert_eq!(created["department"], "Computer Science");
    assert_eq!(created["year"], 2);
    assert_eq!(created["section"], "A");

    let got: Value = app.get_json(&format!("/classes/{id}")).await;
    assert_eq!(got, created);

    let resp = app
        .put(&format!("/classes/{id}"))
        .json(&json!({"name": "CSE 2B", "department": "Computer Science", "match_threshold": 0.45}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["name"], "CSE 2B");
    assert_eq!(updated["match_threshold"], 0.45);
    assert!(updated.get("year").is_none_or(Value::is_null));

    let list: Vec<Value> = app.get_json("/classes").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());

    // Invalid content is 422, a malformed id 400, an unknown one 404.
    let resp = app
        .post("/classes")
        .json(&json!({"name": "  ", "department": "CS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(error_code(resp).await, "invalid_field");
    let resp = app.get("/classes/not-a-uuid").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "bad_request");

    let resp = app.delete(&format!("/classes/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app.get(&format!("/classes/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");
}

#[tokio::test]
async fn class_crud_sqlite() {
    class_crud(Db::Sqlite).await;
}

#[tokio::test]
async fn class_crud_postgres() {
    class_crud(Db::Postgres).await;
}

#[tokio::test]
async fn class_with_students_cannot_be_deleted() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let class_id = app.create_class("ECE 1").await;
    let resp = app
        .register(
            class_id,
            "1",
            "Barack Obama",
            vec![(
                "o.jpg".into(),
                crate::helpers::fixture("people/obama/obama1.jpg"),
            )],
        )
        .await;
    assert_eq!(resp.status(), 202);
    let resp = app
        .delete(&format!("/classes/{class_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(error_code(resp).await, "class_not_empty");
}
