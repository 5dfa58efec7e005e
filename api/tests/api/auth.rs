use api::auth::Role;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::helpers::{Db, Queue, error_code, fixture, spawn_app};

#[tokio::test]
async fn keys_and_roles() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;

    // The bootstrap admin key file is private to its owner.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.data_dir.join("admin.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Only the hash is stored.
    let rows = models::api_key::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key_hash, api::auth::hash_key(&app.admin_key));
    assert!(!rows[0].key_hash.contains(&app.admin_key));

    // No key, a wrong key: 401 with the JSON error body.
    let resp = app.client.get(app.url("/classes")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(error_code(resp).await, "unauthorized");
    let resp = app
        .client
        .get(app.url("/classes"))
        .bearer_auth("att_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(error_code(resp).await, "unauthorized");

    // A teacher reads and marks attendance, but cannot change classes or students.
    let class_id = app.create_class("MECH 3").await;
    let teacher = app.key(Role::Teacher).await;
    let resp = app
        .client
        .get(app.url("/classes"))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .client
        .post(app.url("/classes"))
        .bearer_auth(&teacher)
        .json(&json!({"name": "x", "department": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "forbidden");
    let resp = app
        .client
        .delete(app.url(&format!("/classes/{class_id}")))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let form = reqwest::multipart::Form::new()
        .text("class_id", class_id.to_string())
        .part(
            "photos",
            reqwest::multipart::Part::bytes(fixture("groups/obama_biden_side_by_side.jpg"))
                .file_name("group.jpg"),
        );
    let resp = app
        .client
        .post(app.url("/attendance/mark"))
        .bearer_auth(&teacher)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // A revoked key stops working.
    let row = api::auth::find_key(&app.state.db, &teacher)
        .await
        .unwrap()
        .unwrap();
    let mut active: models::api_key::ActiveModel = row.into();
    active.revoked_at = sea_orm::ActiveValue::Set(Some(chrono::Utc::now()));
    sea_orm::ActiveModelTrait::update(active, &app.state.db)
        .await
        .unwrap();
    let resp = app
        .client
        .get(app.url("/classes"))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
