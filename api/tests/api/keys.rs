//! `/keys`: issuing, listing and revoking keys; what a department admin may do with
//! them; a key is shown once and never listed.

use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Db, Queue, TestApp, error_code, spawn_app};

async fn send(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

/// `POST /keys` expecting 201; returns (id, key).
async fn create(app: &TestApp, by: &str, body: Value) -> (Uuid, String) {
    let resp = send(app, by, Method::POST, "/keys", Some(body.clone())).await;
    assert_eq!(resp.status(), 201, "{body}");
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["role"], body["role"]);
    assert_eq!(created["name"], body["name"]);
    assert_eq!(
        created["department"],
        body.get("department").cloned().unwrap_or(Value::Null)
    );
    assert!(created["last_used_at"].is_null());
    assert!(created["revoked_at"].is_null());
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("att_"), "{key}");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    (created["id"].as_str().unwrap().parse().unwrap(), key)
}

async fn status(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> u16 {
    send(app, key, method, path, body).await.status().as_u16()
}

/// `GET /keys` as `by`, checking that no key or hash is in it; the listed keys by id.
async fn list(app: &TestApp, by: &str, secrets: &[&str]) -> Vec<Value> {
    let resp = send(app, by, Method::GET, "/keys", None).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "a key is listed: {text}");
        assert!(
            !text.contains(&api::auth::hash_key(secret)),
            "a key hash is listed: {text}"
        );
    }
    let listed: Vec<Value> = serde_json::from_str(&text).unwrap();
    for k in &listed {
        assert!(k.get("key").is_none() && k.get("key_hash").is_none(), "{k}");
    }
    listed
}

fn listed_ids(listed: &[Value]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = listed
        .iter()
        .map(|k| k["id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

async fn key_management(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let admin = app.admin_key.clone();
    let admin_id = api::auth::find_key(&app.state.db, &admin)
        .await
        .unwrap()
        .unwrap()
        .id;

    // Invalid requests.
    for (body, expected) in [
        (json!({"role": "teacher", "name": "No Department"}), 422),
        (
            json!({"role": "department_admin", "name": "No Department"}),
            422,
        ),
        (
            json!({"role": "admin", "name": "Scoped Admin", "department": "CSE"}),
            422,
        ),
        (
            json!({"role": "teacher", "name": "  ", "department": "CSE"}),
            422,
        ),
        (
            json!({"role": "owner", "name": "Nobody", "department": "CSE"}),
            400,
        ),
    ] {
        let resp = send(&app, &admin, Method::POST, "/keys", Some(body.clone())).await;
        assert_eq!(resp.status(), expected, "{body}");
    }

    // The admin issues keys of every role; each works at once.
    let (cse_admin_id, cse_admin) = create(
        &app,
        &admin,
        json!({"role": "department_admin", "name": "CSE office", "department": "CSE"}),
    )
    .await;
    let (mech_teacher_id, mech_teacher) = create(
        &app,
        &admin,
        json!({"role": "teacher", "name": "Dr. Iyer", "department": "MECH"}),
    )
    .await;
    let (second_admin_id, second_admin) = create(
        &app,
        &admin,
        json!({"role": "admin", "name": "Backup admin"}),
    )
    .await;
    let (other_cse_admin_id, other_cse_admin) = create(
        &app,
        &admin,
        json!({"role": "department_admin", "name": "CSE deputy", "department": "CSE"}),
    )
    .await;
    assert_eq!(
        status(&app, &second_admin, Method::GET, "/keys", None).await,
        200
    );

    // A department admin issues teacher keys of its own department, nothing else.
    let (cse_teacher_id, cse_teacher) = create(
        &app,
        &cse_admin,
        json!({"role": "teacher", "name": "Dr. Rao", "department": "CSE"}),
    )
    .await;
    for body in [
        json!({"role": "teacher", "name": "x", "department": "MECH"}),
        json!({"role": "department_admin", "name": "x", "department": "CSE"}),
        json!({"role": "admin", "name": "x"}),
    ] {
        let resp = send(&app, &cse_admin, Method::POST, "/keys", Some(body.clone())).await;
        assert_eq!(resp.status(), 403, "{body}");
        assert_eq!(error_code(resp).await, "forbidden");
    }

    let secrets = [
        admin.as_str(),
        cse_admin.as_str(),
        mech_teacher.as_str(),
        second_admin.as_str(),
        other_cse_admin.as_str(),
        cse_teacher.as_str(),
    ];
    // The admin lists every key, the department admin its department's; never a key.
    let all = list(&app, &admin, &secrets).await;
    assert_eq!(
        listed_ids(&all),
        sorted(vec![
            admin_id,
            cse_admin_id,
            mech_teacher_id,
            second_admin_id,
            other_cse_admin_id,
            cse_teacher_id
        ])
    );
    let listed = list(&app, &cse_admin, &secrets).await;
    assert_eq!(
        listed_ids(&listed),
        sorted(vec![cse_admin_id, other_cse_admin_id, cse_teacher_id])
    );
    let teacher_row = listed
        .iter()
        .find(|k| k["id"] == json!(cse_teacher_id))
        .unwrap();
    assert_eq!(teacher_row["role"], "teacher");
    assert_eq!(teacher_row["department"], "CSE");
    assert_eq!(teacher_row["name"], "Dr. Rao");
    assert!(teacher_row["created_at"].is_string());

    // Use is recorded.
    assert!(teacher_row["last_used_at"].is_null());
    assert_eq!(
        status(&app, &cse_teacher, Method::GET, "/classes", None).await,
        200
    );
    let listed = list(&app, &admin, &secrets).await;
    let teacher_row = listed
        .iter()
        .find(|k| k["id"] == json!(cse_teacher_id))
        .unwrap();
    assert!(teacher_row["last_used_at"].is_string(), "{teacher_row}");

    // Teachers manage no keys, not even their own.
    for (method, path, body) in [
        (Method::GET, "/keys".to_string(), None),
        (
            Method::POST,
            "/keys".to_string(),
            Some(json!({"role": "teacher", "name": "x", "department": "CSE"})),
        ),
        (Method::DELETE, format!("/keys/{cse_teacher_id}"), None),
    ] {
        let resp = send(&app, &cse_teacher, method.clone(), &path, body).await;
        assert_eq!(resp.status(), 403, "{method} {path}");
    }

    // A department admin revokes only its department's teacher keys: another
    // department's key (or an admin's) does not exist for it, a fellow department
    // admin's is forbidden.
    for other in [mech_teacher_id, admin_id, second_admin_id, Uuid::new_v4()] {
        let resp = send(
            &app,
            &cse_admin,
            Method::DELETE,
            &format!("/keys/{other}"),
            None,
        )
        .await;
        assert_eq!(resp.status(), 404, "{other}");
        assert_eq!(error_code(resp).await, "not_found");
    }
    let resp = send(
        &app,
        &cse_admin,
        Method::DELETE,
        &format!("/keys/{other_cse_admin_id}"),
        None,
    )
    .await;
    assert_eq!(resp.status(), 403);
    for key in [&mech_teacher, &admin, &other_cse_admin] {
        assert_eq!(status(&app, key, Method::GET, "/classes", None).await, 200);
    }

    // A revoked key is refused at once; it stays listed with its revocation time.
    assert_eq!(
        status(
            &app,
            &cse_admin,
            Method::DELETE,
            &format!("/keys/{cse_teacher_id}"),
            None
        )
        .await,
        204
    );
    let resp = send(&app, &cse_teacher, Method::GET, "/classes", None).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(error_code(resp).await, "unauthorized");
    let listed = list(&app, &cse_admin, &secrets).await;
    let teacher_row = listed
        .iter()
        .find(|k| k["id"] == json!(cse_teacher_id))
        .unwrap();
    assert!(teacher_row["revoked_at"].is_string());
    // Revoking again changes nothing.
    assert_eq!(
        status(
            &app,
            &cse_admin,
            Method::DELETE,
            &format!("/keys/{cse_teacher_id}"),
            None
        )
        .await,
        204
    );
    assert_eq!(
        status(&app, &cse_teacher, Method::GET, "/classes", None).await,
        401
    );

    // The admin revokes any key, department admins included.
    assert_eq!(
        status(
            &app,
            &admin,
            Method::DELETE,
            &format!("/keys/{cse_admin_id}"),
            None
        )
        .await,
        204
    );
    assert_eq!(
        status(&app, &cse_admin, Method::GET, "/keys", None).await,
        401
    );
    assert_eq!(
        status(
            &app,
            &admin,
            Method::DELETE,
            &format!("/keys/{}", Uuid::new_v4()),
            None
        )
        .await,
        404
    );
}

#[tokio::test]
async fn key_management_sqlite() {
    key_management(Db::Sqlite).await;
}

#[tokio::test]
async fn key_management_postgres() {
    key_management(Db::Postgres).await;
}

/// Runs `attendance-api keys …` against the database at `database_url`.
fn cli(dir: &std::path::Path, database_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_attendance-api"))
        .arg("keys")
        .args(args)
        .current_dir(dir)
        .env_remove("QUEUE_URL")
        .env_remove("STORAGE_URL")
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("attendance-api runs")
}

#[tokio::test]
async fn cli_creates_lists_and_revokes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());

    let out = cli(
        dir.path(),
        &url,
        &[
            "create",
            "--role",
            "teacher",
            "--name",
            "Dr. Rao",
            "--department",
            "CSE",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("att_"), "{key}");
    // A teacher key needs a department.
    let out = cli(
        dir.path(),
        &url,
        &["create", "--role", "teacher", "--name", "x"],
    );
    assert!(!out.status.success());

    let out = cli(dir.path(), &url, &["list"]);
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(!listing.contains(&key), "{listing}");
    let line = listing
        .lines()
        .find(|l| l.contains("Dr. Rao"))
        .unwrap_or_else(|| panic!("the key is not listed:\n{listing}"));
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(&fields[1..4], ["teacher", "CSE", "Dr. Rao"]);
    let id = fields[0];

    let out = cli(dir.path(), &url, &["revoke", id]);
    assert!(out.status.success(), "{out:?}");
    let db = sea_orm::Database::connect(&url).await.unwrap();
    assert!(
        api::auth::find_key(&db, &key).await.unwrap().is_none(),
        "a revoked key is no longer found"
    );
    let out = cli(
        dir.path(),
        &url,
        &["revoke", &uuid::Uuid::new_v4().to_string()],
    );
    assert!(!out.status.success());
}
