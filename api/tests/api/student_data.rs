//! `GET /students/{id}/data`: a ZIP of everything held about one student, opened and
//! checked against what was uploaded and what the database holds; nothing of another
//! student; a photo missing from storage listed as missing; who may download it.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Cursor, Read},
};

use api::auth::Role;
use models::{detected_face, student, student::StudentStatus, student_photo};
use reqwest::multipart::{Form, Part};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Db, Queue, TestApp, error_code, fixture, read_blob, run_next_job, spawn_app};

fn id(v: &Value, field: &str) -> Uuid {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .parse()
        .unwrap()
}

async fn key_id(app: &TestApp, key: &str) -> Uuid {
    api::auth::find_key(&app.state.db, key)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Registers a student with consent from fixture photos and runs the registration job.
async fn registered(app: &TestApp, class: Uuid, roll: &str, photos: &[&str]) -> Uuid {
    let mut form = Form::new()
        .text("roll_no", roll.to_string())
        .text("name", format!("Student {roll}"))
        .text("class_id", class.to_string())
        .text("consent", "true")
        .text("consent_note", format!("form of {roll}"));
    for p in photos {
        form = form.part("photos", Part::bytes(fixture(p)).file_name("p.jpg"));
    }
    let resp = app
        .post("/students/register")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let student = id(&resp.json().await.unwrap(), "student_id");
    run_next_job(app).await;
    let detail: Value = app.get_json(&format!("/students/{student}")).await;
    assert_eq!(detail["status"], "active", "{detail:#}");
    student
}

async fn download(app: &TestApp, key: &str, student: Uuid) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/students/{student}/data")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// The archive's entries by name.
async fn unzip(resp: reqwest::Response) -> BTreeMap<String, Vec<u8>> {
    let bytes = resp.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).expect("a ZIP");
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        files.insert(file.name().to_string(), content);
    }
    files
}

fn json_of(files: &BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    serde_json::from_slice(&files[name]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Obama and Biden registered (with consent), attendance taken from a photo of both,
/// Obama's record corrected by a teacher: Obama's archive holds exactly his two photos
/// (the uploaded bytes), the crop of his face in the session, his record with who
/// corrected it and his consent entry, and nothing of Biden.
#[tokio::test]
async fn a_students_data_is_everything_of_theirs_and_nothing_of_anyone_else() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let class = app.create_class("CSE 2A").await;
    let obama_photos = ["people/obama/obama1.jpg", "people/obama/obama2.jpg"];
    let obama = registered(&app, class, "21CS001", &obama_photos).await;
    let biden = registered(&app, class, "21CS002", &["people/biden/biden1.jpg"]).await;

    let form = Form::new()
        .text("class_id", class.to_string())
        .text("subject", "DBMS")
        .part(
            "photos",
            Part::bytes(fixture("groups/obama_biden_side_by_side.jpg")).file_name("g.jpg"),
        );
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let session = id(&resp.json().await.unwrap(), "session_id");
    run_next_job(&app).await;
    let detail: Value = app
        .get_json(&format!("/attendance/session/{session}"))
        .await;
    assert_eq!(detail["status"], "completed", "{detail:#}");
    let faces_of = |student: Uuid| -> Vec<Uuid> {
        detail["faces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["student_id"] == json!(student))
            .map(|f| id(f, "face_id"))
            .collect()
    };
    let obama_faces = faces_of(obama);
    let biden_faces = faces_of(biden);
    assert_eq!(obama_faces.len(), 1, "{detail:#}");
    assert_eq!(biden_faces.len(), 1, "{detail:#}");

    let teacher = app.key(Role::Teacher).await;
    let teacher_id = key_id(&app, &teacher).await;
    let resp = app
        .client
        .patch(app.url(&format!("/attendance/session/{session}/records/{obama}")))
        .bearer_auth(&teacher)
        .json(&json!({"status": "present", "reason": "checked by hand"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let dept_admin = app.key(Role::DepartmentAdmin).await;
    let resp = download(&app, &dept_admin, obama).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=student-21CS001-data.zip"
    );
    let files = unzip(resp).await;

    // Exactly these files.
    let photo_rows = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(obama))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(photo_rows.len(), 2);
    let mut expected: BTreeSet<String> = [
        "README.txt",
        "profile.json",
        "photos.json",
        "matches.json",
        "records.csv",
        "consent.json",
    ]
    .map(String::from)
    .into();
    expected.extend(photo_rows.iter().map(|p| format!("photos/{}.jpg", p.id)));
    expected.insert(format!("crops/{}.jpg", obama_faces[0]));
    assert_eq!(files.keys().cloned().collect::<BTreeSet<_>>(), expected);

    // The photos are the bytes uploaded.
    let uploaded: BTreeSet<Vec<u8>> = obama_photos.iter().map(|p| fixture(p)).collect();
    let archived: BTreeSet<Vec<u8>> = photo_rows
        .iter()
        .map(|p| files[&format!("photos/{}.jpg", p.id)].clone())
        .collect();
    assert_eq!(archived, uploaded);
    let photos = json_of(&files, "photos.json");
    assert_eq!(photos.as_array().unwrap().len(), 2, "{photos:#}");
    for p in photos.as_array().unwrap() {
        assert_eq!(p["verdict"], "accepted", "{p}");
        assert_eq!(p["missing"], false);
        assert_eq!(p["enrolled_from_correction"], false);
        assert!(p["face_box"].is_object(), "{p}");
        assert_eq!(
            p["file"],
            format!("photos/{}.jpg", p["id"].as_str().unwrap())
        );
    }

    // The crop of his face in the session, as stored.
    let face = detected_face::Entity::find_by_id(obama_faces[0])
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let crop = read_blob(&app, face.crop_key.as_deref().unwrap()).await;
    assert_eq!(files[&format!("crops/{}.jpg", face.id)], crop.to_vec());
    let matches = json_of(&files, "matches.json");
    let matches = matches.as_array().unwrap();
    assert_eq!(matches.len(), 1, "{matches:#?}");
    assert_eq!(matches[0]["face_id"], face.id.to_string());
    assert_eq!(matches[0]["session_id"], session.to_string());
    assert_eq!(matches[0]["subject"], "DBMS");
    assert_eq!(matches[0]["crop"], format!("crops/{}.jpg", face.id));
    assert!(matches[0]["distance"].as_f64().is_some());
    assert!(matches[0]["taken_at"].is_string());

    // His record, corrected by the teacher.
    let csv_text = String::from_utf8(files["records.csv"].clone()).unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{csv_text}");
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} in {csv_text}"))
    };
    assert_eq!(&rows[0][col("session_id")], session.to_string());
    assert_eq!(&rows[0][col("subject")], "DBMS");
    assert_eq!(&rows[0][col("status")], "present");
    assert_eq!(&rows[0][col("source")], "manual");
    assert_eq!(&rows[0][col("corrected_by_key_id")], teacher_id.to_string());
    assert_eq!(&rows[0][col("corrected_by")], "test");
    assert!(!rows[0][col("taken_at")].is_empty());

    // His consent and profile.
    let consent = json_of(&files, "consent.json");
    let consent = consent.as_array().unwrap();
    assert_eq!(consent.len(), 1, "{consent:#?}");
    assert_eq!(consent[0]["action"], "given");
    assert_eq!(consent[0]["source"], "api");
    assert_eq!(consent[0]["note"], "form of 21CS001");
    assert_eq!(
        consent[0]["recorded_by_key_id"],
        key_id(&app, &app.admin_key).await.to_string()
    );
    let profile = json_of(&files, "profile.json");
    assert_eq!(profile["student"]["id"], obama.to_string());
    assert_eq!(profile["student"]["roll_no"], "21CS001");
    assert_eq!(profile["student"]["status"], "active");
    assert_eq!(profile["class"]["id"], class.to_string());
    assert_eq!(profile["class"]["name"], "CSE 2A");
    let readme = String::from_utf8(files["README.txt"].clone()).unwrap();
    for name in [
        "profile.json",
        "photos.json",
        "matches.json",
        "records.csv",
        "consent.json",
    ] {
        assert!(readme.contains(name), "{readme}");
    }

    // Nothing of Biden: not his id, his photos' ids, his face, his photo bytes.
    let biden_photos = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(biden))
        .all(&app.state.db)
        .await
        .unwrap();
    let mut biden_ids: Vec<String> = biden_photos.iter().map(|p| p.id.to_string()).collect();
    biden_ids.push(biden.to_string());
    biden_ids.push(biden_faces[0].to_string());
    let biden_bytes = fixture("people/biden/biden1.jpg");
    for (name, content) in &files {
        assert_ne!(content, &biden_bytes, "{name}");
        let text = String::from_utf8_lossy(content);
        for biden_id in &biden_ids {
            assert!(!name.contains(biden_id.as_str()), "{name}");
            assert!(!text.contains(biden_id.as_str()), "{name} names {biden_id}");
        }
    }

    // A photo missing from storage is listed as missing, not a 500.
    let lost = &photo_rows[0];
    app.state.blobs.delete(&lost.blob_key).await.unwrap();
    let resp = download(&app, &app.admin_key, obama).await;
    assert_eq!(resp.status(), 200);
    let files = unzip(resp).await;
    assert!(!files.contains_key(&format!("photos/{}.jpg", lost.id)));
    assert!(files.contains_key(&format!("photos/{}.jpg", photo_rows[1].id)));
    let photos = json_of(&files, "photos.json");
    let listed = photos
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == lost.id.to_string())
        .expect("the lost photo is listed");
    assert_eq!(listed["missing"], true, "{listed}");
    assert!(listed["file"].is_null(), "{listed}");
}

/// Only admins and department admins may download; other departments, unknown and
/// deleted students are 404.
#[tokio::test]
async fn only_admins_download_a_students_data() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let class = app.create_class("CSE 2A").await;
    let resp = app
        .register(
            class,
            "21CS001",
            "Asha",
            vec![("a.jpg".into(), fixture("people/obama/obama1.jpg"))],
        )
        .await;
    assert_eq!(resp.status(), 202);
    let student = id(&resp.json().await.unwrap(), "student_id");

    let teacher = app.key(Role::Teacher).await;
    let resp = download(&app, &teacher, student).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "forbidden");
    let other = app.key_in(Role::DepartmentAdmin, "ECE").await;
    assert_eq!(download(&app, &other, student).await.status(), 404);
    assert_eq!(
        download(&app, &app.admin_key, Uuid::new_v4())
            .await
            .status(),
        404
    );
    // Before any job ran: the photo, pending, and no record.
    let resp = download(&app, &app.key(Role::DepartmentAdmin).await, student).await;
    assert_eq!(resp.status(), 200);
    let files = unzip(resp).await;
    let photos = json_of(&files, "photos.json");
    assert_eq!(photos[0]["verdict"], "pending", "{photos:#}");
    assert_eq!(json_of(&files, "consent.json"), json!([]));
    assert_eq!(json_of(&files, "matches.json"), json!([]));

    let mut row: student::ActiveModel = student::Entity::find_by_id(student)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into();
    row.status = Set(StudentStatus::Deleted);
    row.update(&app.state.db).await.unwrap();
    assert_eq!(download(&app, &app.admin_key, student).await.status(), 404);
}
