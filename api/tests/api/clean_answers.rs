//! Bad requests get clean answers: paging out of range is a 400 (it used to drop the
//! connection), a foreign-key race a 409, a NUL character a 400 on PostgreSQL; every
//! answer carries `nosniff`, and personal data `Cache-Control: no-store`.

use api::{
    auth::Role,
    error::{ApiError, ServiceError},
};
use chrono::Utc;
use models::{class, student};
use reqwest::multipart::{Form, Part};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Db, Queue, error_code, fixture, spawn_app, spawn_app_with};

#[tokio::test]
async fn paging_out_of_range_is_a_400() {
    // Private webhook addresses allowed: the subscription below points at this machine.
    let app = spawn_app_with(
        Db::Postgres,
        Queue::Embedded,
        &[("WEBHOOK_ALLOW_PRIVATE", "true")],
    )
    .await;
    for (query, code) in [
        ("page=0", "invalid_page"),
        ("page=9223372036854775809", "invalid_page"),
        ("page=18446744073709551615", "invalid_page"),
        // Fits in u64 and i64 alone, but the offset (page − 1) × 200 does not.
        ("page=92233720368547759&per_page=200", "invalid_page"),
        ("per_page=100000", "invalid_per_page"),
        ("per_page=0", "invalid_per_page"),
    ] {
        let resp = app.get(&format!("/students?{query}")).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert_eq!(error_code(resp).await, code, "{query}");
    }
    // Beyond u64 is refused by the parameter parser, also as a clean 400.
    let resp = app
        .get("/students?page=99999999999999999999999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // In range still works, including a page past the end.
    let page: Value = app.get_json("/students?page=1000000&per_page=200").await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["page"], 1000000);

    let hook: Value = app
        .post("/webhooks")
        .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["job.failed"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = hook["id"].as_str().expect("a webhook id");
    for limit in ["0", "100000"] {
        let resp = app
            .get(&format!("/webhooks/{id}/deliveries?limit={limit}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "limit={limit}");
        assert_eq!(error_code(resp).await, "invalid_limit");
    }
}

/// A class deleted while a student is created in it (or the reverse) makes the
/// database refuse a row on its foreign key; that is a 409, not a 500.
async fn a_foreign_key_race_is_a_409(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let resp = app
        .register(
            class_id,
            "21CS001",
            "Barack Obama",
            vec![("o.jpg".into(), fixture("people/obama/obama3.jpg"))],
        )
        .await;
    assert_eq!(resp.status(), 202);

    // What the losing side of each race runs, after its own checks passed.
    let delete_err = class::Entity::delete_by_id(class_id)
        .exec(&app.state.db)
        .await
        .expect_err("the class still has a student");
    let now = Utc::now();
    let insert_err = student::Entity::insert(student::ActiveModel {
        id: Set(Uuid::new_v4()),
        class_id: Set(Uuid::new_v4()),
        roll_no: Set("21CS002".into()),
        name: Set("Nobody".into()),
        status: Set(student::StudentStatus::Pending),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
    })
    .exec(&app.state.db)
    .await
    .expect_err("no such class");
    for err in [delete_err, insert_err] {
        let shown = format!("{err:?}");
        match ApiError::from(ServiceError::Database(err)) {
            ApiError::Conflict(body) => assert_eq!(body.0.error.code, "conflict"),
            other => panic!("not a 409: {other:?} ({shown})"),
        }
    }
}

#[tokio::test]
async fn a_foreign_key_race_is_a_409_postgres() {
    a_foreign_key_race_is_a_409(Db::Postgres).await;
}

#[tokio::test]
async fn a_foreign_key_race_is_a_409_sqlite() {
    a_foreign_key_race_is_a_409(Db::Sqlite).await;
}

#[tokio::test]
async fn nul_characters_are_a_400_on_postgres() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;

    for path in [
        "/students?q=a%00b",
        "/classes/a%00b",
        "/attendance/sessions?from=%00",
    ] {
        let resp = app.get(path).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(error_code(resp).await, "nul_byte", "{path}");
    }
    let resp = app
        .post("/classes")
        .json(&json!({"name": "CSE\u{0}2B", "department": "CSE", "year": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "nul_byte");

    let form = Form::new()
        .text("roll_no", "21CS\u{0}001")
        .text("name", "Barack Obama")
        .text("class_id", class_id.to_string())
        .part(
            "photos",
            Part::bytes(fixture("people/obama/obama3.jpg")).file_name("o.jpg"),
        );
    let resp = app
        .post("/students/register")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "nul_byte");

    let [students, photos, ..] = app.row_counts().await;
    assert_eq!((students, photos), (0, 0));
    let classes: Value = app.get_json("/classes").await;
    assert_eq!(classes.as_array().map(Vec::len), Some(1), "{classes}");
}

#[tokio::test]
async fn every_answer_says_nosniff_and_personal_ones_no_store() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let teacher = app.key(Role::Teacher).await;
    let personal = [
        app.get("/students"),
        app.get(&format!("/classes/{class_id}")),
        app.get("/attendance/sessions"),
        app.get(&format!(
            "/export/attendance?class_id={class_id}&format=csv"
        )),
        app.get(&format!("/faces/{}/crop", Uuid::new_v4())),
        app.get(&format!("/jobs/{}", Uuid::new_v4())),
        app.get("/no/such/route"),
        app.client.get(app.url("/students")).bearer_auth(&teacher),
        app.client.get(app.url("/students")),
    ];
    for req in personal {
        let resp = req.send().await.unwrap();
        let what = format!("{} {}", resp.url().path(), resp.status());
        assert_eq!(
            resp.headers()["x-content-type-options"],
            "nosniff",
            "{what}"
        );
        assert_eq!(resp.headers()["cache-control"], "no-store", "{what}");
    }
    for path in ["/healthz", "/openapi.json"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            resp.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert!(resp.headers().get("cache-control").is_none(), "{path}");
    }
}

/// A PostgreSQL restart closes pooled connections under the queries they carry; such a
/// failure is a 503 (retry later), like a database that cannot be reached, not a 500.
#[tokio::test]
async fn a_connection_the_database_closed_is_a_503() {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};

    let (_db, url) = crate::helpers::PgDatabase::create().await;
    let victim = Database::connect(url.clone()).await.unwrap();
    // A request's transaction holds its connection while the server goes away.
    let txn = victim.begin().await.unwrap();
    let pid = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i32>("", "pid")
        .unwrap();
    // What a restart does to each session: the server ends it (SQLSTATE 57P01).
    let admin = Database::connect(url).await.unwrap();
    admin
        .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .unwrap();
    admin.close().await.ok();

    let err = txn
        .execute_unprepared("SELECT 1")
        .await
        .expect_err("the session was ended by the server");
    let shown = format!("{err:?}");
    match ApiError::from(ServiceError::Database(err)) {
        ApiError::Unavailable(body) => assert_eq!(body.0.error.code, "unavailable", "{shown}"),
        other => panic!("not a 503: {other:?} ({shown})"),
    }
}
