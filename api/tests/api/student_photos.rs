//! A registered student's photos over time: photos added later are judged like a
//! registration's, a photo deleted takes its blob and embeddings along, and a student
//! with no usable photo is shown as needing photos.

use api::auth::Role;
use models::{face_embedding, student_photo};
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Db, Queue, TestApp, empty_photo, error_code, fixture, run_next_job, spawn_app,
};

fn id(v: &Value, field: &str) -> Uuid {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .parse()
        .unwrap()
}

fn photos_form(photos: Vec<(&str, Vec<u8>)>) -> Form {
    photos.into_iter().fold(Form::new(), |form, (name, bytes)| {
        form.part("photos", Part::bytes(bytes).file_name(name.to_string()))
    })
}

async fn add_photos(
    app: &TestApp,
    key: &str,
    student: Uuid,
    photos: Vec<(&str, Vec<u8>)>,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/students/{student}/photos")))
        .bearer_auth(key)
        .multipart(photos_form(photos))
        .send()
        .await
        .unwrap()
}

async fn delete_photo(app: &TestApp, key: &str, student: Uuid, photo: Uuid) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/students/{student}/photos/{photo}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// `(roll_no, needs_photos)` of a students listing.
async fn listed(app: &TestApp, query: &str) -> Vec<(String, bool)> {
    let page: Value = app.get_json(&format!("/students{query}")).await;
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|s| {
            (
                s["roll_no"].as_str().unwrap().to_string(),
                s["needs_photos"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// `(verdict, reason)` of each photo of the student, oldest first, by photo id.
async fn verdicts(app: &TestApp, student: Uuid) -> (Value, Vec<(Uuid, String, String)>) {
    let detail: Value = app.get_json(&format!("/students/{student}")).await;
    let photos = detail["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                id(p, "id"),
                p["verdict"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    (detail, photos)
}

async fn photos_over_time(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class = app.create_class("CSE 2A").await;
    // 01 registers with an empty photo only (rejected), 02 with a good one.
    let resp = app
        .register(
            class,
            "01",
            "Joe Biden",
            vec![("empty.png".into(), empty_photo())],
        )
        .await;
    assert_eq!(resp.status(), 202);
    let biden = id(&resp.json().await.unwrap(), "student_id");
    run_next_job(&app).await;
    let resp = app
        .register(
            class,
            "02",
            "Barack Obama",
            vec![("o.jpg".into(), fixture("people/obama/obama1.jpg"))],
        )
        .await;
    assert_eq!(resp.status(), 202);
    run_next_job(&app).await;
    let (detail, _) = verdicts(&app, biden).await;
    assert_eq!(detail["status"], "failed");
    assert_eq!(detail["needs_photos"], true);
    let both = vec![("01".to_string(), true), ("02".to_string(), false)];
    assert_eq!(listed(&app, "").await, both);
    assert_eq!(listed(&app, "?needs_photos=true").await, both[..1]);
    assert_eq!(listed(&app, "?needs_photos=false").await, both[1..]);

    // Better photos arrive: one of Biden alone, one with someone else.
    let resp = add_photos(
        &app,
        &app.key(Role::Teacher).await,
        biden,
        vec![
            ("b.jpg", fixture("people/biden/biden1.jpg")),
            ("pair.jpg", fixture("groups/obama_biden_side_by_side.jpg")),
        ],
    )
    .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(id(&body, "student_id"), biden);
    let job = id(&body, "job_id");
    let added: Vec<Uuid> = body["photo_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(added.len(), 2);
    // Pending photos: not "needs photos" while the job runs.
    let (_, photos) = verdicts(&app, biden).await;
    assert_eq!(photos.len(), 3);
    assert!(photos.iter().filter(|p| p.1 == "pending").count() == 2);
    assert_eq!(listed(&app, "?needs_photos=true").await, vec![]);

    run_next_job(&app).await;
    let (detail, photos) = verdicts(&app, biden).await;
    assert_eq!(detail["status"], "active", "{detail:#}");
    assert_eq!(detail["needs_photos"], false);
    assert_eq!(detail["registration_job"]["job_id"], json!(job));
    assert_eq!(detail["registration_job"]["status"], "succeeded");
    let verdict_of = |photo: Uuid| {
        photos
            .iter()
            .find(|p| p.0 == photo)
            .map(|p| (p.1.as_str(), p.2.as_str()))
            .unwrap()
    };
    assert_eq!(verdict_of(added[0]), ("accepted", "-"));
    assert_eq!(verdict_of(added[1]), ("rejected", "several_faces"));
    assert_eq!(
        photos
            .iter()
            .filter(|p| p.1 == "rejected" && p.2 == "no_face")
            .count(),
        1,
        "the first photo is judged again, still rejected: {photos:?}"
    );
    let embeddings = face_embedding::Entity::find()
        .filter(face_embedding::Column::StudentId.eq(biden))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(embeddings.len(), 1);
    assert_eq!(embeddings[0].photo_id, added[0]);
    assert_eq!(listed(&app, "?needs_photos=true").await, vec![]);

    // Deleting: a teacher may not (403), another department sees nothing (404), an
    // unknown photo or another student's is 404.
    let accepted = student_photo::Entity::find_by_id(added[0])
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(app.blob_keys().contains(&accepted.blob_key));
    let teacher = app.key(Role::Teacher).await;
    let resp = delete_photo(&app, &teacher, biden, added[0]).await;
    assert_eq!(resp.status(), 403);
    let mech = app.key_in(Role::DepartmentAdmin, "MECH").await;
    let resp = delete_photo(&app, &mech, biden, added[0]).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");
    let admin = app.key(Role::DepartmentAdmin).await;
    let resp = delete_photo(&app, &admin, biden, Uuid::new_v4()).await;
    assert_eq!(resp.status(), 404);
    let page: Value = app.get_json("/students?q=Obama").await;
    let obama = id(&page["items"][0], "id");
    let resp = delete_photo(&app, &admin, obama, added[0]).await;
    assert_eq!(resp.status(), 404, "a photo of another student");
    assert!(app.blob_keys().contains(&accepted.blob_key));

    let resp = delete_photo(&app, &admin, biden, added[0]).await;
    assert_eq!(resp.status(), 204);
    assert!(
        student_photo::Entity::find_by_id(added[0])
            .one(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!app.blob_keys().contains(&accepted.blob_key));
    assert_eq!(
        face_embedding::Entity::find()
            .filter(face_embedding::Column::StudentId.eq(biden))
            .count(&app.state.db)
            .await
            .unwrap(),
        0
    );
    // Only rejected photos are left: no longer matched, and shown as needing photos.
    let (detail, photos) = verdicts(&app, biden).await;
    assert_eq!(photos.len(), 2);
    assert!(photos.iter().all(|p| p.1 == "rejected"), "{photos:?}");
    assert_eq!(detail["status"], "failed");
    assert_eq!(detail["needs_photos"], true);
    assert_eq!(listed(&app, "?needs_photos=true").await, both[..1]);
    let resp = delete_photo(&app, &admin, biden, added[0]).await;
    assert_eq!(resp.status(), 404, "already deleted");

    // Adding: another department's student is 404, no photo or 11 photos 422; none
    // of them stores anything.
    let blobs = app.blob_keys();
    let counts = app.row_counts().await;
    let resp = add_photos(
        &app,
        &mech,
        biden,
        vec![("b.jpg", fixture("people/biden/biden2.jpg"))],
    )
    .await;
    assert_eq!(resp.status(), 404);
    let resp = add_photos(
        &app,
        &admin,
        Uuid::new_v4(),
        vec![("b.jpg", fixture("people/biden/biden2.jpg"))],
    )
    .await;
    assert_eq!(resp.status(), 404);
    let eleven = (0..11)
        .map(|_| ("b.jpg", fixture("people/biden/biden2.jpg")))
        .collect();
    let resp = add_photos(&app, &admin, biden, eleven).await;
    assert_eq!(resp.status(), 422);
    assert_eq!(error_code(resp).await, "photo_count");
    assert_eq!(app.blob_keys(), blobs);
    assert_eq!(app.row_counts().await, counts);
}

#[tokio::test]
async fn photos_over_time_postgres() {
    photos_over_time(Db::Postgres).await;
}

#[tokio::test]
async fn photos_over_time_sqlite() {
    photos_over_time(Db::Sqlite).await;
}
