//! The web UI as the API serves it (`/` and `/assets/…`, without a key, in any build),
//! and the two reads it needs beyond the rest of the API: the caller's own key
//! (`GET /keys/me`) and a session's photos to draw the face boxes on.

use api::auth::Role;
use chrono::Utc;
use models::attendance_session;
use reqwest::multipart::{Form, Part};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Db, Queue, fixture, spawn_app};

#[tokio::test]
async fn the_app_is_served_at_the_root_and_its_assets_are_cacheable() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let resp = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"<div id="root">"#), "{html}");

    let script = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .unwrap_or_else(|| panic!("no script under /assets/ in {html}"));
    let resp = app.client.get(app.url(script)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(
        h["content-type"].to_str().unwrap().contains("javascript"),
        "{:?}",
        h["content-type"]
    );
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let js = resp.bytes().await.unwrap();
    assert!(js.len() > 10_000, "the bundle is {} bytes", js.len());

    let resp = app
        .client
        .get(app.url("/assets/no-such-file.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The API's own routes are unchanged beside it.
    let resp = app.client.get(app.url("/classes")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_key_reads_its_own_role_and_department() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let me: Value = app.get_json("/keys/me").await;
    assert_eq!(me["role"], "admin");
    assert!(me["department"].is_null());
    assert!(me.get("key").is_none(), "{me}");

    let teacher = app.key_in(Role::Teacher, "ECE").await;
    let resp = app
        .client
        .get(app.url("/keys/me"))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["role"], "teacher");
    assert_eq!(me["department"], "ECE");
    assert_eq!(me["name"], "test");
    assert!(teacher.starts_with(me["prefix"].as_str().unwrap()));

    let resp = app.client.get(app.url("/keys/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

async fn session_photos(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let first = fixture("groups/obama_biden_side_by_side.jpg");
    let second = fixture("groups/rose_and_kit.jpg");
    let form = Form::new()
        .text("class_id", class_id.to_string())
        .part("photos", Part::bytes(first.clone()).file_name("a.jpg"))
        .part("photos", Part::bytes(second.clone()).file_name("b.jpg"));
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let session_id: Uuid = body["session_id"].as_str().unwrap().parse().unwrap();

    let detail: Value = app
        .get_json(&format!("/attendance/session/{session_id}"))
        .await;
    let photos = detail["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 2, "{detail}");
    for (i, (photo, bytes)) in photos.iter().zip([&first, &second]).enumerate() {
        assert_eq!(photo["number"], i + 1);
        let url = photo["url"].as_str().unwrap();
        assert_eq!(
            url,
            format!(
                "/attendance/session/{session_id}/photos/{}",
                photo["id"].as_str().unwrap()
            )
        );
        let resp = app.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            &bytes[..],
            "photo {}",
            i + 1
        );
    }
    let url = photos[0]["url"].as_str().unwrap().to_string();

    // Another department's key, an unknown photo, another session's path: 404.
    let other = app.key_in(Role::Teacher, "ECE").await;
    let resp = app
        .client
        .get(app.url(&url))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let own = app.key(Role::Teacher).await;
    let resp = app
        .client
        .get(app.url(&url))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .get(&format!(
            "/attendance/session/{session_id}/photos/{}",
            Uuid::new_v4()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .get(&url.replace(&session_id.to_string(), &Uuid::new_v4().to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Once retention has removed the session's photos, they are gone (410), saying why.
    let session = attendance_session::Entity::find_by_id(session_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut active: attendance_session::ActiveModel = session.into();
    active.photos_deleted_at = Set(Some(Utc::now()));
    active.update(&app.state.db).await.unwrap();
    let resp = app.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 410);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "deleted_by_retention", "{body}");
}

#[tokio::test]
async fn session_photos_sqlite() {
    session_photos(Db::Sqlite).await;
}

#[tokio::test]
async fn session_photos_postgres() {
    session_photos(Db::Postgres).await;
}
