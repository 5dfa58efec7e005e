//! Department scoping: every role against every route group. A department-scoped key
//! sees its own department only; everything of another department answers 404, lists
//! leave it out; role limits answer 403.

use api::auth::Role;
use bytes::Bytes;
use chrono::Utc;
use models::{detected_face, session_photo};
use reqwest::{
    Method, Response,
    multipart::{Form, Part},
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Db, Queue, TEST_DEPARTMENT, TestApp, error_code, fixture, spawn_app};

const OTHER_DEPARTMENT: &str = "MECH";

/// Requests made with one key.
struct Caller<'a> {
    app: &'a TestApp,
    key: String,
}

impl Caller<'_> {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    async fn status(&self, method: Method, path: &str, body: Option<Value>) -> u16 {
        self.send(method, path, body).await.status().as_u16()
    }

    /// Asserts a 404 with the JSON `not_found` body (the same as for a missing id).
    async fn assert_hidden(&self, method: Method, path: &str, body: Option<Value>) {
        let resp = self.send(method.clone(), path, body).await;
        assert_eq!(resp.status(), 404, "{method} {path}");
        assert_eq!(error_code(resp).await, "not_found", "{method} {path}");
    }

    async fn assert_forbidden(&self, method: Method, path: &str, body: Option<Value>) {
        let resp = self.send(method.clone(), path, body).await;
        assert_eq!(resp.status(), 403, "{method} {path}");
        assert_eq!(error_code(resp).await, "forbidden", "{method} {path}");
    }

    async fn json(&self, path: &str) -> Value {
        let resp = self.send(Method::GET, path, None).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    async fn register(&self, class_id: Uuid, roll_no: &str) -> Response {
        let form = Form::new()
            .text("roll_no", roll_no.to_string())
            .text("name", format!("Student {roll_no}"))
            .text("class_id", class_id.to_string())
            .part(
                "photos",
                Part::bytes(fixture("people/obama/obama1.jpg")).file_name("p.jpg"),
            );
        self.app
            .client
            .post(self.app.url("/students/register"))
            .bearer_auth(&self.key)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    async fn mark(&self, class_id: Uuid) -> Response {
        let form = Form::new().text("class_id", class_id.to_string()).part(
            "photos",
            Part::bytes(fixture("groups/obama_biden_side_by_side.jpg")).file_name("g.jpg"),
        );
        self.app
            .client
            .post(self.app.url("/attendance/mark"))
            .bearer_auth(&self.key)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }
}

fn id(v: &Value, field: &str) -> Uuid {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .parse()
        .unwrap()
}

/// One department's resources, made by the admin.
struct Department {
    class: Uuid,
    student: Uuid,
    registration_job: Uuid,
    /// A re-embedding of the student, as the worker queues one after a model switch.
    reembed_job: Uuid,
    session: Uuid,
    attendance_job: Uuid,
    face: Uuid,
}

async fn department(admin: &Caller<'_>, department: &str) -> Department {
    let resp = admin
        .send(
            Method::POST,
            "/classes",
            Some(json!({"name": format!("{department} 2A"), "department": department})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let class = id(&resp.json().await.unwrap(), "id");
    let resp = admin.register(class, "01").await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let (student, registration_job) = (id(&body, "student_id"), id(&body, "job_id"));
    let resp = admin.mark(class).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let (session, attendance_job) = (id(&body, "session_id"), id(&body, "job_id"));

    // A detected face with a stored crop, as the attendance job would leave it.
    let app = admin.app;
    let photo = session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(session))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let crop_key = format!("sessions/{session}/faces/0.jpg");
    app.state
        .blobs
        .put(
            &crop_key,
            Bytes::from(fixture("people/obama/obama2.jpg")),
            "image/jpeg",
        )
        .await
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
        crop_key: Set(Some(crop_key)),
        student_id: Set(None),
        distance: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let reembed_job = Uuid::new_v4();
    api::outbox::new_job(reembed_job, common::JobKind::Reembed, student)
        .insert(&app.state.db)
        .await
        .unwrap();
    Department {
        class,
        student,
        registration_job,
        reembed_job,
        session,
        attendance_job,
        face,
    }
}

fn ids(list: &Value, field: &str) -> Vec<Uuid> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| id(v, field))
        .collect()
}

/// What every key of `own`'s department sees: its own resources, and nothing of
/// `other`'s (404 by id, left out of lists).
async fn sees_only_own_department(caller: &Caller<'_>, own: &Department, other: &Department) {
    // Classes.
    assert_eq!(ids(&caller.json("/classes").await, "id"), vec![own.class]);
    caller.json(&format!("/classes/{}", own.class)).await;
    caller
        .assert_hidden(Method::GET, &format!("/classes/{}", other.class), None)
        .await;

    // Students.
    let page = caller.json("/students").await;
    assert_eq!(ids(&page["items"], "id"), vec![own.student]);
    assert_eq!(page["total"], 1);
    let page = caller
        .json(&format!("/students?class_id={}", other.class))
        .await;
    assert_eq!(page["total"], 0);
    caller
        .assert_hidden(
            Method::PUT,
            &format!("/students/{}", other.student),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    // Moving one's own student into another department's class.
    caller
        .assert_hidden(
            Method::PUT,
            &format!("/students/{}", own.student),
            Some(json!({"class_id": other.class})),
        )
        .await;
    let resp = caller.register(other.class, "99").await;
    assert_eq!(resp.status(), 404);

    // Sessions and face crops.
    let resp = caller.mark(other.class).await;
    assert_eq!(resp.status(), 404);
    let sessions = caller.json("/attendance/sessions").await;
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .all(|s| id(s, "class_id") == own.class),
        "{sessions}"
    );
    assert!(ids(&sessions, "id").contains(&own.session));
    let sessions = caller
        .json(&format!("/attendance/sessions?class_id={}", other.class))
        .await;
    assert_eq!(sessions, json!([]));
    caller
        .json(&format!("/attendance/session/{}", own.session))
        .await;
    caller
        .assert_hidden(
            Method::GET,
            &format!("/attendance/session/{}", other.session),
            None,
        )
        .await;
    let resp = caller
        .send(Method::GET, &format!("/faces/{}/crop", own.face), None)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.bytes().await.unwrap(),
        Bytes::from(fixture("people/obama/obama2.jpg"))
    );
    caller
        .assert_hidden(Method::GET, &format!("/faces/{}/crop", other.face), None)
        .await;

    // Jobs.
    for job in [own.registration_job, own.reembed_job, own.attendance_job] {
        caller.json(&format!("/jobs/{job}")).await;
    }
    for job in [
        other.registration_job,
        other.reembed_job,
        other.attendance_job,
    ] {
        caller
            .assert_hidden(Method::GET, &format!("/jobs/{job}"), None)
            .await;
    }

    // Exports.
    let resp = caller
        .send(
            Method::GET,
            &format!("/export/attendance?class_id={}", own.class),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    caller
        .assert_hidden(
            Method::GET,
            &format!("/export/attendance?class_id={}", other.class),
            None,
        )
        .await;
}

async fn key_id(app: &TestApp, key: &str) -> Uuid {
    api::auth::find_key(&app.state.db, key)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn roles_and_departments(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let admin = Caller {
        app: &app,
        key: app.admin_key.clone(),
    };
    let cse = department(&admin, TEST_DEPARTMENT).await;
    let mech = department(&admin, OTHER_DEPARTMENT).await;
    let teacher = Caller {
        app: &app,
        key: app.key_in(Role::Teacher, TEST_DEPARTMENT).await,
    };
    let dept_admin = Caller {
        app: &app,
        key: app.key_in(Role::DepartmentAdmin, TEST_DEPARTMENT).await,
    };
    let mech_teacher = Caller {
        app: &app,
        key: app.key_in(Role::Teacher, OTHER_DEPARTMENT).await,
    };

    // The admin sees every department.
    let mut classes = ids(&admin.json("/classes").await, "id");
    classes.sort();
    let mut both = vec![cse.class, mech.class];
    both.sort();
    assert_eq!(classes, both);
    assert_eq!(admin.json("/students").await["total"], 2);
    for d in [&cse, &mech] {
        admin
            .json(&format!("/attendance/session/{}", d.session))
            .await;
        admin.json(&format!("/jobs/{}", d.registration_job)).await;
        let reembed = admin.json(&format!("/jobs/{}", d.reembed_job)).await;
        assert_eq!(reembed["kind"], "reembed");
        assert_eq!(reembed["lane"], "bulk");
        let resp = admin
            .send(Method::GET, &format!("/faces/{}/crop", d.face), None)
            .await;
        assert_eq!(resp.status(), 200);
    }

    // Department keys see their own department only, whatever their role.
    sees_only_own_department(&teacher, &cse, &mech).await;
    sees_only_own_department(&dept_admin, &cse, &mech).await;
    sees_only_own_department(&mech_teacher, &mech, &cse).await;

    // A teacher takes attendance, registers and edits students of its department; the
    // session and its job name the teacher's key.
    let resp = teacher.mark(cse.class).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let teacher_key_id = key_id(&app, &teacher.key).await;
    let detail = teacher
        .json(&format!("/attendance/session/{}", id(&body, "session_id")))
        .await;
    assert_eq!(
        detail["created_by"],
        json!({"key_id": teacher_key_id, "name": "test"})
    );
    let job = teacher
        .json(&format!("/jobs/{}", id(&body, "job_id")))
        .await;
    assert_eq!(job["created_by"]["key_id"], json!(teacher_key_id));
    // The admin's sessions name the bootstrap key.
    let detail = admin
        .json(&format!("/attendance/session/{}", cse.session))
        .await;
    assert_eq!(detail["created_by"]["name"], "bootstrap admin");
    assert_eq!(
        detail["created_by"]["key_id"],
        json!(key_id(&app, &app.admin_key).await)
    );

    let resp = teacher.register(cse.class, "02").await;
    assert_eq!(resp.status(), 202);
    let resp = teacher
        .send(
            Method::PUT,
            &format!("/students/{}", cse.student),
            Some(json!({"name": "Renamed By Teacher"})),
        )
        .await;
    assert_eq!(resp.status(), 200);

    // ... but cannot delete students or manage classes or keys (403 whatever the id).
    teacher
        .assert_forbidden(Method::DELETE, &format!("/students/{}", cse.student), None)
        .await;
    teacher
        .assert_forbidden(
            Method::POST,
            "/classes",
            Some(json!({"name": "New", "department": TEST_DEPARTMENT})),
        )
        .await;
    teacher
        .assert_forbidden(
            Method::PUT,
            &format!("/classes/{}", cse.class),
            Some(json!({"name": "New", "department": TEST_DEPARTMENT})),
        )
        .await;
    teacher
        .assert_forbidden(Method::DELETE, &format!("/classes/{}", cse.class), None)
        .await;
    teacher.assert_forbidden(Method::GET, "/keys", None).await;
    teacher
        .assert_forbidden(
            Method::POST,
            "/keys",
            Some(json!({"role": "teacher", "name": "x", "department": TEST_DEPARTMENT})),
        )
        .await;
    teacher
        .assert_forbidden(Method::DELETE, &format!("/keys/{teacher_key_id}"), None)
        .await;

    // A department admin manages classes and students of its department only.
    dept_admin
        .assert_forbidden(
            Method::POST,
            "/classes",
            Some(json!({"name": "M 1", "department": OTHER_DEPARTMENT})),
        )
        .await;
    let resp = dept_admin
        .send(
            Method::POST,
            "/classes",
            Some(json!({"name": "CSE 1B", "department": TEST_DEPARTMENT})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let new_class = id(&resp.json().await.unwrap(), "id");
    let resp = dept_admin
        .send(
            Method::PUT,
            &format!("/classes/{new_class}"),
            Some(json!({"name": "CSE 1C", "department": TEST_DEPARTMENT})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // Handing a class to another department is refused.
    dept_admin
        .assert_forbidden(
            Method::PUT,
            &format!("/classes/{new_class}"),
            Some(json!({"name": "CSE 1C", "department": OTHER_DEPARTMENT})),
        )
        .await;
    dept_admin
        .assert_hidden(
            Method::PUT,
            &format!("/classes/{}", mech.class),
            Some(json!({"name": "Taken", "department": TEST_DEPARTMENT})),
        )
        .await;
    dept_admin
        .assert_hidden(Method::DELETE, &format!("/classes/{}", mech.class), None)
        .await;
    dept_admin
        .assert_hidden(Method::DELETE, &format!("/students/{}", mech.student), None)
        .await;
    assert_eq!(
        dept_admin
            .status(Method::DELETE, &format!("/classes/{new_class}"), None)
            .await,
        204
    );
    assert_eq!(
        dept_admin
            .status(Method::DELETE, &format!("/students/{}", cse.student), None)
            .await,
        200
    );

    // Nothing of the other department changed.
    let class = admin.json(&format!("/classes/{}", mech.class)).await;
    assert_eq!(class["name"], "MECH 2A");
    let student = admin
        .json(&format!("/students?class_id={}", mech.class))
        .await;
    assert_eq!(ids(&student["items"], "id"), vec![mech.student]);
    assert_eq!(student["items"][0]["name"], "Student 01");
}

#[tokio::test]
async fn roles_and_departments_sqlite() {
    roles_and_departments(Db::Sqlite).await;
}

#[tokio::test]
async fn roles_and_departments_postgres() {
    roles_and_departments(Db::Postgres).await;
}
