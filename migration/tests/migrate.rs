//! The migrations apply, revert and re-apply on SQLite and PostgreSQL, and the entities
//! in `models` read and write the resulting tables (constraints included).
//! PostgreSQL must be running at TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432).

use chrono::{SubsecRound, Utc};
use migration::{Migrator, MigratorTrait};
use models::{
    class, face_embedding, student,
    student::StudentStatus,
    student_photo::{self, PhotoVerdict},
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    PaginatorTrait, SqlErr,
};
use uuid::Uuid;

async fn exercise(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("migrations apply");
    assert!(
        Migrator::get_pending_migrations(db)
            .await
            .unwrap()
            .is_empty()
    );
    Migrator::reset(db).await.expect("migrations revert");
    Migrator::up(db, None).await.expect("migrations re-apply");

    // PostgreSQL keeps microseconds.
    let now = Utc::now().trunc_subsecs(6);
    let class = class::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set("CSE 2A".into()),
        department: Set("CSE".into()),
        year: Set(Some(2)),
        section: Set(None),
        match_threshold: Set(Some(0.45)),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    let new_student = |roll: &str| student::ActiveModel {
        id: Set(Uuid::new_v4()),
        class_id: Set(class.id),
        roll_no: Set(roll.into()),
        name: Set("A Student".into()),
        status: Set(StudentStatus::Pending),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
    };
    let s = new_student("1").insert(db).await.unwrap();
    assert_eq!(s.status, StudentStatus::Pending);
    assert_eq!(s.created_at, now);
    let dup = new_student("1").insert(db).await.unwrap_err();
    assert!(
        matches!(dup.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))),
        "{dup}"
    );
    // A deleted student (a tombstone kept for its records) frees its roll number.
    let tombstone = new_student("7").insert(db).await.unwrap();
    let mut deleted: student::ActiveModel = tombstone.into();
    deleted.status = Set(StudentStatus::Deleted);
    deleted.erased_at = Set(Some(now));
    deleted.update(db).await.unwrap();
    let again = new_student("7").insert(db).await.unwrap();
    assert_eq!(again.status, StudentStatus::Pending);

    let photo = student_photo::ActiveModel {
        id: Set(Uuid::new_v4()),
        student_id: Set(s.id),
        blob_key: Set("students/x/y.jpg".into()),
        content_type: Set("image/jpeg".into()),
        verdict: Set(PhotoVerdict::Accepted),
        reason: Set(None),
        face_box: Set(Some(
            serde_json::json!({"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0}),
        )),
        detector_score: Set(Some(0.99)),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    let vector = models::vector::encode(&[0.5f32, -1.0, 2.0]);
    let embedding = |id| face_embedding::ActiveModel {
        id: Set(id),
        photo_id: Set(photo.id),
        student_id: Set(s.id),
        model: Set("dlib_resnet_v1".into()),
        vector: Set(vector.clone()),
        created_at: Set(now),
    };
    embedding(Uuid::new_v4()).insert(db).await.unwrap();
    // One embedding per photo and model.
    assert!(embedding(Uuid::new_v4()).insert(db).await.is_err());
    let stored = face_embedding::Entity::find()
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        models::vector::decode(&stored.vector).unwrap(),
        [0.5, -1.0, 2.0]
    );

    // A class with students cannot be deleted; deleting a student cascades.
    assert!(
        class::Entity::delete_by_id(class.id)
            .exec(db)
            .await
            .is_err()
    );
    student::Entity::delete_by_id(s.id).exec(db).await.unwrap();
    assert_eq!(student_photo::Entity::find().count(db).await.unwrap(), 0);
    assert_eq!(face_embedding::Entity::find().count(db).await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::connect(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("m.db").display()
    ))
    .await
    .unwrap();
    exercise(&db).await;
}

#[tokio::test]
async fn postgres() {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let base = base.trim_end_matches('/');
    let name = format!("test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(format!("{base}/postgres"))
        .await
        .expect("PostgreSQL at TEST_DATABASE_URL must be running");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let db = Database::connect(format!("{base}/{name}")).await.unwrap();
    let outcome = tokio::spawn({
        let db = db.clone();
        async move { exercise(&db).await }
    })
    .await;
    db.close().await.ok();
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
