//! Unauthenticated endpoints and the OpenAPI snapshot.

use std::path::Path;

use serde_json::Value;

use crate::helpers::{Db, Queue, spawn_app};

#[tokio::test]
async fn health_ready_metrics_docs() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ready: Value = resp.json().await.unwrap();
    assert_eq!(ready["ready"], true);

    // Some traffic, then the metrics show it by route pattern and status.
    let class_id = app.create_class("X").await;
    app.get(&format!("/classes/{class_id}"))
        .send()
        .await
        .unwrap();
    let resp = app
        .register(
            class_id,
            "1",
            "Barack Obama",
            vec![(
                "o.jpg".into(),
                crate::helpers::fixture("people/obama/obama4.jpg"),
            )],
        )
        .await;
    assert_eq!(resp.status(), 202);
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    // Labelled by route pattern, never by the concrete id.
    assert!(
        text.lines().any(|l| l
            .starts_with(r#"attendance_api_http_requests_total{method="GET",route="/classes/:"#)
            && l.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(!text.contains(&class_id.to_string()));
    assert!(text.contains("attendance_api_http_request_duration_seconds_bucket"));
    assert!(
        text.contains(r#"attendance_api_jobs_published_total{kind="registration",via="request"}"#)
    );

    let resp = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("swagger"));

    // Unknown paths get the JSON error body too.
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(crate::helpers::error_code(resp).await, "not_found");
}

/// The OpenAPI document is committed; an API change shows up as a diff in review.
/// Regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p api --test api openapi`.
#[tokio::test]
async fn openapi_snapshot() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let resp = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let served: Value = resp.json().await.unwrap();
    let generated: Value = serde_json::from_str(&api::routes::openapi_service().spec()).unwrap();
    assert_eq!(served, generated);

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_SNAPSHOTS=1", path.display()));
    assert!(
        committed == pretty,
        "the OpenAPI document changed; review and run with UPDATE_SNAPSHOTS=1"
    );
    // Field names clients rely on.
    for needle in [
        "\"/students/register\"",
        "\"/attendance/mark\"",
        "\"/attendance/session/{id}\"",
        "\"/export/attendance\"",
        "\"/jobs/{id}\"",
        "\"student_id\"",
        "\"session_id\"",
        "\"job_id\"",
        "\"roll_no\"",
        "\"photos\"",
    ] {
        assert!(
            committed.contains(needle),
            "{needle} missing from the OpenAPI document"
        );
    }
}
