//! Photo provenance on real fixture photos: the same bytes in two sessions of a class
//! warn (naming the first session), EXIF `DateTimeOriginal` written onto a committed
//! photo becomes the session's `taken_at`, and a `taken_at` far from it warns.

use chrono::{DateTime, Utc};
use img_parts::{ImageEXIF, jpeg::Jpeg};
use models::session_photo;
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::{Db, Queue, TestApp, fixture, spawn_app};

/// A committed photo without EXIF (checked below, so the tests cannot pass by accident).
const PLAIN_PHOTO: &str = "groups/six_people.jpg";

/// Marks attendance for `class_id` with `photos`; returns the session id.
async fn mark(app: &TestApp, class_id: Uuid, photos: &[Vec<u8>], taken_at: Option<&str>) -> Uuid {
    let mut form = Form::new().text("class_id", class_id.to_string());
    if let Some(t) = taken_at {
        form = form.text("taken_at", t.to_string());
    }
    for (i, bytes) in photos.iter().enumerate() {
        form = form.part(
            "photos",
            Part::bytes(bytes.clone()).file_name(format!("{i}.jpg")),
        );
    }
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    body["session_id"].as_str().unwrap().parse().unwrap()
}

async fn session(app: &TestApp, id: Uuid) -> Value {
    let resp = app
        .get(&format!("/attendance/session/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn taken_at(session: &Value) -> DateTime<Utc> {
    session["taken_at"].as_str().unwrap().parse().unwrap()
}

/// `jpeg` with an EXIF segment holding `DateTimeOriginal` (and `OffsetTimeOriginal`),
/// written with kamadak-exif's writer and put in place with img-parts.
fn with_exif(jpeg: &[u8], original: &str, offset: Option<&str>) -> Vec<u8> {
    let ascii = |tag, text: &str| exif::Field {
        tag,
        ifd_num: exif::In::PRIMARY,
        value: exif::Value::Ascii(vec![text.as_bytes().to_vec()]),
    };
    let date = ascii(exif::Tag::DateTimeOriginal, original);
    let zone = offset.map(|o| ascii(exif::Tag::OffsetTimeOriginal, o));
    let mut writer = exif::experimental::Writer::new();
    writer.push_field(&date);
    if let Some(zone) = &zone {
        writer.push_field(zone);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    let mut image = Jpeg::from_bytes(jpeg.to_vec().into()).unwrap();
    image.set_exif(Some(tiff.into_inner().into()));
    image.encoder().bytes().to_vec()
}

fn exif_original(jpeg: &[u8]) -> Option<String> {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(jpeg))
        .ok()?;
    let field = exif.get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY)?;
    Some(field.display_value().to_string())
}

async fn same_photo_in_two_sessions_of_a_class_warns(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_a = app.create_class("CSE 2A").await;
    let class_b = app.create_class("CSE 2B").await;
    let photo = fixture(PLAIN_PHOTO);
    let other = fixture("groups/rose_and_kit.jpg");

    let first = mark(&app, class_a, std::slice::from_ref(&photo), None).await;
    assert_eq!(
        session(&app, first).await["warnings"],
        serde_json::json!([])
    );

    // The same bytes again in the same class, as the second of two photos.
    let second = mark(&app, class_a, &[other.clone(), photo.clone()], None).await;
    let detail = session(&app, second).await;
    let warnings = detail["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{detail:#}");
    let w = &warnings[0];
    assert_eq!(w["code"], "duplicate_photo");
    assert_eq!(w["photo"], 2);
    assert_eq!(w["earlier_session_id"], first.to_string());
    assert_eq!(w["sha256"], hex::encode(Sha256::digest(&photo)));
    assert!(
        w["message"].as_str().unwrap().contains(&first.to_string()),
        "{w}"
    );

    // The list shows them too.
    let listed: Vec<Value> = app
        .get_json(&format!("/attendance/sessions?class_id={class_a}"))
        .await;
    let listed_second = listed
        .iter()
        .find(|s| s["id"] == second.to_string())
        .unwrap();
    assert_eq!(listed_second["warnings"], detail["warnings"]);

    // A third use names the first session still (each photo's earliest use).
    let third = mark(&app, class_a, std::slice::from_ref(&photo), None).await;
    let again = session(&app, third).await;
    let again = again["warnings"].as_array().unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["earlier_session_id"], first.to_string());
    assert_eq!(again[0]["photo"], 1);

    // Another class: the same bytes are no concern of this one.
    let elsewhere = mark(&app, class_b, std::slice::from_ref(&photo), None).await;
    assert_eq!(
        session(&app, elsewhere).await["warnings"],
        serde_json::json!([])
    );

    // The hash is kept on each photo row.
    let rows = session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(first))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        rows[0].sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&photo)).as_str())
    );
}

#[tokio::test]
async fn same_photo_in_two_sessions_of_a_class_warns_sqlite() {
    same_photo_in_two_sessions_of_a_class_warns(Db::Sqlite).await;
}

#[tokio::test]
async fn same_photo_in_two_sessions_of_a_class_warns_postgres() {
    same_photo_in_two_sessions_of_a_class_warns(Db::Postgres).await;
}

/// The photo's uses are read a page (16) at a time: its first use in a class is found
/// behind more than a page of uses in another class, and a class where it was never
/// used gets no warning however many uses the others have.
async fn first_use_in_the_class_is_found_behind_many_uses_elsewhere(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let busy = app.create_class("CSE 3A").await;
    let quiet = app.create_class("CSE 3B").await;
    let photo = fixture(PLAIN_PHOTO);
    // Two uses a session: 18 uses in the busy class.
    let pair = [photo.clone(), photo.clone()];
    let first_busy = mark(&app, busy, &pair, None).await;
    for _ in 0..8 {
        mark(&app, busy, &pair, None).await;
    }
    let first_quiet = mark(&app, quiet, std::slice::from_ref(&photo), None).await;
    assert_eq!(
        session(&app, first_quiet).await["warnings"],
        serde_json::json!([])
    );
    let second_quiet = mark(&app, quiet, std::slice::from_ref(&photo), None).await;
    let warnings = session(&app, second_quiet).await["warnings"].clone();
    assert_eq!(warnings.as_array().unwrap().len(), 1, "{warnings}");
    assert_eq!(warnings[0]["earlier_session_id"], first_quiet.to_string());
    let again_busy = mark(&app, busy, std::slice::from_ref(&photo), None).await;
    let warnings = session(&app, again_busy).await["warnings"].clone();
    assert_eq!(warnings[0]["earlier_session_id"], first_busy.to_string());
}

#[tokio::test]
async fn first_use_in_the_class_is_found_behind_many_uses_elsewhere_sqlite() {
    first_use_in_the_class_is_found_behind_many_uses_elsewhere(Db::Sqlite).await;
}

#[tokio::test]
async fn first_use_in_the_class_is_found_behind_many_uses_elsewhere_postgres() {
    first_use_in_the_class_is_found_behind_many_uses_elsewhere(Db::Postgres).await;
}

async fn taken_at_comes_from_exif_and_disagreement_warns(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let plain = fixture(PLAIN_PHOTO);
    assert_eq!(
        exif_original(&plain),
        None,
        "the fixture must have no EXIF time"
    );

    // EXIF time without a zone: the default offset, India's +05:30.
    let photo = with_exif(&plain, "2026:11:20 09:30:00", None);
    assert_eq!(
        exif_original(&photo).as_deref(),
        Some("2026-11-20 09:30:00")
    );
    let id = mark(&app, class_id, std::slice::from_ref(&photo), None).await;
    let s = session(&app, id).await;
    assert_eq!(
        taken_at(&s),
        "2026-11-20T04:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(s["warnings"], serde_json::json!([]));

    // With OffsetTimeOriginal, the photo's own zone.
    let zoned = with_exif(&plain, "2026:11:20 09:30:00", Some("-03:00"));
    let id = mark(&app, class_id, &[zoned], None).await;
    assert_eq!(
        taken_at(&session(&app, id).await),
        "2026-11-20T12:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );

    // A taken_at two days from the EXIF time: kept, with a warning. (Another class, so
    // that the reused photo is not also a duplicate.)
    let other_class = app.create_class("CSE 3A").await;
    let id = mark(&app, other_class, &[photo], Some("2026-11-22T04:00:00Z")).await;
    let s = session(&app, id).await;
    assert_eq!(
        taken_at(&s),
        "2026-11-22T04:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    let warnings = s["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{s:#}");
    assert_eq!(warnings[0]["code"], "taken_at_mismatch");
    assert_eq!(warnings[0]["photo"], 1);
    assert_eq!(
        warnings[0]["exif_taken_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        "2026-11-20T04:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );

    // No EXIF and no taken_at: the upload time.
    let before = Utc::now();
    let id = mark(&app, class_id, &[plain], None).await;
    let after = Utc::now();
    let at = taken_at(&session(&app, id).await);
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
}

#[tokio::test]
async fn taken_at_comes_from_exif_and_disagreement_warns_sqlite() {
    taken_at_comes_from_exif_and_disagreement_warns(Db::Sqlite).await;
}

#[tokio::test]
async fn taken_at_comes_from_exif_and_disagreement_warns_postgres() {
    taken_at_comes_from_exif_and_disagreement_warns(Db::Postgres).await;
}
