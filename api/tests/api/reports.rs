//! Exports (CSV, XLSX) and analytics of a class over several weeks and subjects. The
//! sessions and records are written through the entities (an attendance job per
//! session would take minutes), with figures computed by hand below; one test runs a
//! real attendance job from photos and checks that the reports follow it.

use std::{collections::HashMap, io::Cursor, io::Read, sync::Arc, time::Duration};

use api::auth::Role;
use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{DateTime, Utc};
use models::{
    attendance_record::{self, RecordSource, RecordStatus},
    attendance_session::{self, SessionStatus},
    student::{self, StudentStatus},
};
use reqwest::multipart::{Form, Part};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Db, Queue, TestApp, error_code, fixture, spawn_app};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn insert_student(db: &DatabaseConnection, class_id: Uuid, roll: &str, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    let now = Utc::now();
    student::ActiveModel {
        id: Set(id),
        class_id: Set(class_id),
        roll_no: Set(roll.into()),
        name: Set(name.into()),
        status: Set(StudentStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    id
}

async fn insert_session(
    db: &DatabaseConnection,
    class_id: Uuid,
    taken_at: &str,
    subject: &str,
    status: SessionStatus,
) -> Uuid {
    let id = Uuid::new_v4();
    attendance_session::ActiveModel {
        id: Set(id),
        class_id: Set(class_id),
        subject: Set(Some(subject.into())),
        taken_at: Set(utc(taken_at)),
        status: Set(status),
        created_at: Set(Utc::now()),
        created_by_key_id: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    id
}

async fn insert_record(
    db: &DatabaseConnection,
    session_id: Uuid,
    student_id: Uuid,
    status: RecordStatus,
    source: RecordSource,
) {
    attendance_record::ActiveModel {
        id: Set(Uuid::new_v4()),
        session_id: Set(session_id),
        student_id: Set(student_id),
        status: Set(status),
        distance: Set((status == RecordStatus::Present).then_some(0.3125)),
        source: Set(source),
        updated_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
}

/// Names a spreadsheet would run as formulas, and what the exports must show instead.
const NAMES: [(&str, &str, &str); 6] = [
    ("01", "Asha K", "Asha K"),
    (
        "02",
        "=HYPERLINK(\"http://evil.example/\",\"click\")",
        "'=HYPERLINK(\"http://evil.example/\",\"click\")",
    ),
    ("03", "+1", "'+1"),
    ("04", "-2", "'-2"),
    ("05", "@x", "'@x"),
    ("06", "\tx", "'\tx"),
];

/// Column order (by taken_at) and headings in India's time (+05:30). S6 is Sunday
/// 20:00 UTC, Monday 01:30 in India: ISO week 48 there, week 47 in UTC.
const HEADINGS: [&str; 5] = [
    "2026-11-16 09:30 DBMS",
    "2026-11-18 09:30 OS",
    "2026-11-23 01:30 OS",
    "2026-11-23 09:30 DBMS",
    "2026-11-25 09:30 OS",
];

/// Each student's cells in [`HEADINGS`] order (P present, A absent, U unmatched, -
/// no record), and attended, total, percentage as computed by hand.
const EXPECTED: [(&str, u32, u32, Option<f64>); 6] = [
    ("PPPPP", 5, 5, Some(100.0)),
    ("PAPPA", 3, 5, Some(60.0)),
    ("AAAAP", 1, 5, Some(20.0)),
    ("PUPPP", 4, 4, Some(100.0)),
    ("--PPA", 2, 3, Some(200.0 / 3.0)),
    ("PPPAP", 4, 5, Some(80.0)),
];

fn label(c: char) -> &'static str {
    match c {
        'P' => "present",
        'A' => "absent",
        'U' => "unmatched",
        _ => "",
    }
}

struct Fixture {
    class_id: Uuid,
    students: Vec<Uuid>,
    /// Sessions by heading index; `pending` is the one still processing.
    sessions: Vec<Uuid>,
    pending: Uuid,
}

/// Six students, five completed sessions over two ISO weeks and two subjects, and one
/// pending session whose records must not count.
async fn class_with_history(app: &TestApp) -> Fixture {
    let db = &app.state.db;
    let class_id = app.create_class("CSE 2A").await;
    let mut students = Vec::new();
    for (roll, name, _) in NAMES {
        students.push(insert_student(db, class_id, roll, name).await);
    }
    let mut sessions = Vec::new();
    for (taken_at, subject) in [
        ("2026-11-16T04:00:00Z", "DBMS"),
        ("2026-11-18T04:00:00Z", "OS"),
        ("2026-11-22T20:00:00Z", "OS"),
        ("2026-11-23T04:00:00Z", "DBMS"),
        ("2026-11-25T04:00:00Z", "OS"),
    ] {
        sessions
            .push(insert_session(db, class_id, taken_at, subject, SessionStatus::Completed).await);
    }
    for (s, (cells, ..)) in students.iter().zip(EXPECTED) {
        for (i, c) in cells.chars().enumerate() {
            let status = match c {
                'P' => RecordStatus::Present,
                'A' => RecordStatus::Absent,
                'U' => RecordStatus::Unmatched,
                _ => continue,
            };
            // A teacher's correction counts like the matcher's decision.
            let source = if i == 3 && *s == students[5] {
                RecordSource::Manual
            } else {
                RecordSource::Auto
            };
            insert_record(db, sessions[i], *s, status, source).await;
        }
    }
    let pending = insert_session(
        db,
        class_id,
        "2026-11-27T04:00:00Z",
        "DBMS",
        SessionStatus::Pending,
    )
    .await;
    for s in &students {
        insert_record(db, pending, *s, RecordStatus::Present, RecordSource::Auto).await;
    }
    Fixture {
        class_id,
        students,
        sessions,
        pending,
    }
}

async fn download(app: &TestApp, path: &str) -> (String, Vec<u8>) {
    let resp = app.get(path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=")
    );
    (content_type, resp.bytes().await.unwrap().to_vec())
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

fn xlsx_rows(bytes: &[u8], sheet: &str) -> Vec<Vec<Data>> {
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.to_vec())).unwrap();
    let range = book.worksheet_range(sheet).unwrap();
    range.rows().map(<[Data]>::to_vec).collect()
}

/// A part of the XLSX package (the reader exposes neither panes nor number formats).
fn xlsx_part(bytes: &[u8], name: &str) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).unwrap();
    let mut s = String::new();
    zip.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

async fn class_export(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let f = class_with_history(&app).await;

    // CSV, parsed back.
    let (content_type, bytes) = download(
        &app,
        &format!("/export/attendance?class_id={}&format=csv", f.class_id),
    )
    .await;
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let rows = csv_rows(&bytes);
    let mut header = vec!["roll_no", "name"];
    header.extend(HEADINGS);
    header.extend(["attended", "total", "percentage"]);
    assert_eq!(rows[0], header);
    assert_eq!(rows.len(), 1 + NAMES.len());
    for (row, ((roll, _, shown), (cells, attended, total, pct))) in
        rows[1..].iter().zip(NAMES.iter().zip(EXPECTED))
    {
        let mut want: Vec<String> = vec![roll.to_string(), shown.to_string()];
        want.extend(cells.chars().map(|c| label(c).to_string()));
        want.push(attended.to_string());
        want.push(total.to_string());
        want.push(format!("{:.1}", pct.unwrap()));
        assert_eq!(*row, want);
    }
    assert_eq!(rows[5][7..], ["2", "3", "66.7"]);

    // XLSX, read back: the same table, numbers as numbers, percentages as fractions.
    let (content_type, bytes) = download(
        &app,
        &format!("/export/attendance?class_id={}&format=xlsx", f.class_id),
    )
    .await;
    assert_eq!(
        content_type,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let rows = xlsx_rows(&bytes, "Attendance");
    assert_eq!(
        rows[0],
        header
            .iter()
            .map(|h| Data::String(h.to_string()))
            .collect::<Vec<_>>()
    );
    for (row, ((roll, _, shown), (cells, attended, total, pct))) in
        rows[1..].iter().zip(NAMES.iter().zip(EXPECTED))
    {
        assert_eq!(row[0], Data::String(roll.to_string()));
        assert_eq!(row[1], Data::String(shown.to_string()), "name neutralised");
        for (i, c) in cells.chars().enumerate() {
            let want = match label(c) {
                "" => Data::Empty,
                l => Data::String(l.into()),
            };
            assert_eq!(row[2 + i], want);
        }
        assert_eq!(row[7], Data::Float(f64::from(attended)));
        assert_eq!(row[8], Data::Float(f64::from(total)));
        let Data::Float(fraction) = row[9] else {
            panic!("percentage is not a number: {:?}", row[9]);
        };
        assert!(close(fraction * 100.0, pct.unwrap()), "{fraction}");
    }
    let sheet = xlsx_part(&bytes, "xl/worksheets/sheet1.xml");
    assert!(
        sheet.contains(r#"xSplit="2" ySplit="1" topLeftCell="C2""#)
            && sheet.contains(r#"state="frozen""#),
        "frozen panes: {sheet}"
    );
    let styles = xlsx_part(&bytes, "xl/styles.xml");
    assert!(styles.contains(r#"formatCode="0.0%""#), "{styles}");

    // A period in India's days: 23–25 November holds S6 (01:30 on the 23rd), S3, S4.
    let (_, bytes) = download(
        &app,
        &format!(
            "/export/attendance?class_id={}&from=2026-11-23&to=2026-11-25",
            f.class_id
        ),
    )
    .await;
    let rows = csv_rows(&bytes);
    assert_eq!(rows[0][2..5], HEADINGS[2..]);
    assert_eq!(rows[0].len(), 2 + 3 + 3);
    // In UTC the same dates leave S6 (22 November, 20:00) out and head columns in UTC.
    let (_, bytes) = download(
        &app,
        &format!(
            "/export/attendance?class_id={}&from=2026-11-23&to=2026-11-25&utc_offset=Z",
            f.class_id
        ),
    )
    .await;
    let rows = csv_rows(&bytes);
    assert_eq!(
        rows[0][2..4],
        ["2026-11-23 04:00 DBMS", "2026-11-25 04:00 OS"]
    );

    // One session: status, distance and source per student, in both formats.
    let (_, bytes) = download(&app, &format!("/export/sessions/{}", f.sessions[1])).await;
    let rows = csv_rows(&bytes);
    assert_eq!(rows[0], ["roll_no", "name", "status", "distance", "source"]);
    assert_eq!(rows[1], ["01", "Asha K", "present", "0.3125", "auto"]);
    assert_eq!(rows[2][1..3], [NAMES[1].2, "absent"]);
    assert_eq!(rows[4][2], "unmatched");
    assert_eq!(rows[5][1..], ["'@x", "", "", ""], "no record");
    let (_, bytes) = download(
        &app,
        &format!("/export/sessions/{}?format=xlsx", f.sessions[3]),
    )
    .await;
    let rows = xlsx_rows(&bytes, "Session");
    assert_eq!(rows[6][1], Data::String("'\tx".into()));
    assert_eq!(rows[6][2], Data::String("absent".into()));
    assert_eq!(rows[6][4], Data::String("manual".into()));
    assert_eq!(rows[1][3], Data::Float(0.3125));
}

#[tokio::test]
async fn class_export_sqlite() {
    class_export(Db::Sqlite).await;
}

#[tokio::test]
async fn class_export_postgres() {
    class_export(Db::Postgres).await;
}

async fn class_analytics(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let f = class_with_history(&app).await;

    let a: Value = app
        .get_json(&format!("/analytics/classes/{}", f.class_id))
        .await;
    assert_eq!(
        a["sessions_held"], 5,
        "the pending session is left out: {a}"
    );
    assert_eq!(a["threshold"], 75.0);
    assert_eq!(a["period"]["utc_offset"], "+05:30");
    // 19 present of 27 decided records (the unmatched and missing ones do not count).
    assert!(
        close(a["average_percentage"].as_f64().unwrap(), 1900.0 / 27.0),
        "{a}"
    );
    assert!(close(a["average_present"].as_f64().unwrap(), 19.0 / 5.0));
    let students = a["students"].as_array().unwrap();
    assert_eq!(students.len(), 6);
    for (s, ((roll, name, _), (_, attended, total, pct))) in
        students.iter().zip(NAMES.iter().zip(EXPECTED))
    {
        assert_eq!(s["roll_no"], *roll);
        assert_eq!(
            s["name"], *name,
            "JSON is not a spreadsheet: names as stored"
        );
        assert_eq!(s["attended"], attended);
        assert_eq!(s["total"], total);
        assert!(
            close(s["percentage"].as_f64().unwrap(), pct.unwrap()),
            "{s}"
        );
    }
    assert_eq!(students[3]["unmatched"], 1);
    let below: Vec<&str> = a["below_threshold"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["roll_no"].as_str().unwrap())
        .collect();
    assert_eq!(below, ["02", "03", "05"]);

    // DBMS: S1 4/5 and S3 4/6; OS: S2 2/4, S6 5/6, S4 4/6.
    let subjects = a["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 2);
    assert_eq!(subjects[0]["subject"], "DBMS");
    assert_eq!(subjects[0]["sessions"], 2);
    assert_eq!(subjects[0]["attended"], 8);
    assert_eq!(subjects[0]["total"], 11);
    assert!(close(
        subjects[0]["percentage"].as_f64().unwrap(),
        800.0 / 11.0
    ));
    assert_eq!(subjects[1]["subject"], "OS");
    assert_eq!(subjects[1]["sessions"], 3);
    assert!(close(subjects[1]["percentage"].as_f64().unwrap(), 68.75));

    // ISO weeks of India's dates: W47 = S1, S2 (6/9); W48 = S6, S3, S4 (13/18).
    let weekly = a["weekly"].as_array().unwrap();
    assert_eq!(weekly.len(), 2);
    assert_eq!(weekly[0]["week"], "2026-W47");
    assert_eq!(weekly[0]["starts"], "2026-11-16");
    assert_eq!(weekly[0]["sessions"], 2);
    assert!(close(
        weekly[0]["percentage"].as_f64().unwrap(),
        600.0 / 9.0
    ));
    assert_eq!(weekly[1]["week"], "2026-W48");
    assert_eq!(weekly[1]["sessions"], 3);
    assert_eq!(weekly[1]["attended"], 13);
    assert_eq!(weekly[1]["total"], 18);
    // In UTC, S6 (Sunday 20:00) belongs to week 47.
    let a: Value = app
        .get_json(&format!("/analytics/classes/{}?utc_offset=Z", f.class_id))
        .await;
    assert_eq!(a["weekly"][0]["sessions"], 3);
    assert_eq!(a["weekly"][0]["attended"], 11);
    assert_eq!(a["weekly"][0]["total"], 15);

    // A threshold of 85 adds roll 06 (80 %); a period of the second week alone.
    let a: Value = app
        .get_json(&format!(
            "/analytics/classes/{}?threshold=85&from=2026-11-23&to=2026-11-29",
            f.class_id
        ))
        .await;
    assert_eq!(a["sessions_held"], 3);
    assert!(close(
        a["average_percentage"].as_f64().unwrap(),
        1300.0 / 18.0
    ));
    let below: Vec<(&str, f64)> = a["below_threshold"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["roll_no"].as_str().unwrap(),
                s["percentage"].as_f64().unwrap(),
            )
        })
        .collect();
    // Week 48 (S6, S3, S4): 01 3/3, 02 2/3, 03 1/3, 04 3/3, 05 2/3, 06 2/3.
    assert_eq!(
        below.iter().map(|b| b.0).collect::<Vec<_>>(),
        ["02", "03", "05", "06"]
    );
    assert!(close(below[1].1, 100.0 / 3.0));

    // A student's history: roll 05, registered late: S6 P, S3 P, S4 A.
    let s: Value = app
        .get_json(&format!("/analytics/students/{}", f.students[4]))
        .await;
    assert_eq!(s["attended"], 2);
    assert_eq!(s["total"], 3);
    assert!(close(s["percentage"].as_f64().unwrap(), 200.0 / 3.0));
    let history = s["history"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|h| {
            (
                h["date"].as_str().unwrap(),
                h["subject"].as_str().unwrap(),
                h["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("2026-11-23", "OS", "present"),
            ("2026-11-23", "DBMS", "present"),
            ("2026-11-25", "OS", "absent")
        ]
    );
    assert_eq!(history[0]["session_id"], f.sessions[2].to_string());
    let subjects: HashMap<&str, (u64, u64)> = s["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["subject"].as_str().unwrap(),
                (
                    g["attended"].as_u64().unwrap(),
                    g["total"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(subjects, HashMap::from([("DBMS", (1, 1)), ("OS", (1, 2))]));
    // Roll 04: the unmatched session is in the history but not in the total.
    let s: Value = app
        .get_json(&format!(
            "/analytics/students/{}?from=2026-11-16&to=2026-11-22",
            f.students[3]
        ))
        .await;
    assert_eq!(s["history"].as_array().unwrap().len(), 2);
    assert_eq!(s["history"][1]["status"], "unmatched");
    assert_eq!(
        (
            s["attended"].as_u64(),
            s["total"].as_u64(),
            s["unmatched"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    // The pending session is in no history.
    assert!(
        !s["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["session_id"] == f.pending.to_string())
    );
}

#[tokio::test]
async fn class_analytics_sqlite() {
    class_analytics(Db::Sqlite).await;
}

#[tokio::test]
async fn class_analytics_postgres() {
    class_analytics(Db::Postgres).await;
}

#[tokio::test]
async fn reports_refuse_bad_parameters_and_hide_other_departments() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let f = class_with_history(&app).await;
    let class = f.class_id;
    for (path, status, code) in [
        (
            format!("/export/attendance?class_id={class}&format=pdf"),
            400,
            "unsupported_format",
        ),
        (
            format!("/export/sessions/{}?format=xls", f.sessions[0]),
            400,
            "unsupported_format",
        ),
        (
            format!("/export/attendance?class_id={class}&from=2026-13-01"),
            400,
            "invalid_timestamp",
        ),
        (
            format!("/export/attendance?class_id={class}&from=2026-11-25&to=2026-11-01"),
            400,
            "invalid_range",
        ),
        (
            format!("/export/attendance?class_id={class}&utc_offset=IST"),
            400,
            "invalid_utc_offset",
        ),
        (
            "/export/attendance?class_id=nope".to_string(),
            400,
            "bad_request",
        ),
        (
            format!("/analytics/classes/{class}?to=yesterday"),
            400,
            "invalid_timestamp",
        ),
        (
            format!("/analytics/classes/{class}?threshold=101"),
            422,
            "invalid_threshold",
        ),
        (
            format!("/analytics/classes/{class}?threshold=-1"),
            422,
            "invalid_threshold",
        ),
        (
            format!("/analytics/classes/{class}?threshold=NaN"),
            422,
            "invalid_threshold",
        ),
        (
            format!("/analytics/classes/{class}?threshold=lots"),
            400,
            "bad_request",
        ),
        (
            format!("/analytics/students/{}?from=20/11/2026", f.students[0]),
            400,
            "invalid_timestamp",
        ),
        (
            format!("/export/attendance?class_id={}", Uuid::new_v4()),
            404,
            "not_found",
        ),
        (
            format!("/analytics/students/{}", Uuid::new_v4()),
            404,
            "not_found",
        ),
    ] {
        let resp = app.get(&path).send().await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(error_code(resp).await, code, "{path}");
    }
    // Thresholds at the ends of the range are accepted.
    for t in ["0", "100"] {
        let resp = app
            .get(&format!("/analytics/classes/{class}?threshold={t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    // A teacher of another department sees none of it; one of this department does.
    let other = app.key_in(Role::Teacher, "ECE").await;
    let own = app.key(Role::Teacher).await;
    for path in [
        format!("/export/attendance?class_id={class}"),
        format!("/export/attendance?class_id={class}&format=xlsx"),
        format!("/export/sessions/{}", f.sessions[0]),
        format!("/analytics/classes/{class}"),
        format!("/analytics/students/{}", f.students[0]),
    ] {
        let resp = app
            .client
            .get(app.url(&path))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(error_code(resp).await, "not_found");
        let resp = app
            .client
            .get(app.url(&path))
            .bearer_auth(&own)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

/// Polls `GET /jobs/{id}` until it has finished.
async fn wait_job(app: &TestApp, job: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let body: Value = app.get_json(&format!("/jobs/{job}")).await;
        if body["status"] == "succeeded" || body["status"] == "failed" {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {job}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Registration and attendance jobs run by the real worker, in this process, on the
/// fixture photos: Obama and Biden are in the group photo, Rose Leslie is not.
#[tokio::test]
async fn reports_follow_a_real_attendance_job() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let model_dir = std::env::var("MODEL_DIR")
        .unwrap_or_else(|_| format!("{}/../data/models", env!("CARGO_MANIFEST_DIR")));
    let config = common::Config::from_pairs([("MODEL_DIR", model_dir.as_str())]).unwrap();
    let worker = worker::service::spawn_in_process(
        &config,
        app.state.db.clone(),
        Arc::clone(&app.state.blobs),
        Arc::clone(&app.state.queue),
        Arc::clone(&app.state.clock),
    )
    .unwrap();

    let class_id = app.create_class("CSE 3B").await;
    let mut students = Vec::new();
    let mut jobs = Vec::new();
    for (roll, name, person) in [
        ("01", "Barack Obama", "obama"),
        ("02", "Joe Biden", "biden"),
        ("03", "Rose Leslie", "rose_leslie"),
    ] {
        let photos = worker::fixtures::labels().unwrap()["people"][person]
            .as_array()
            .unwrap()
            .iter()
            .take(2)
            .map(|p| ("p.jpg".to_string(), fixture(p.as_str().unwrap())))
            .collect();
        let body: Value = app
            .register(class_id, roll, name, photos)
            .await
            .json()
            .await
            .unwrap();
        students.push(body["student_id"].as_str().unwrap().to_string());
        jobs.push(body["job_id"].as_str().unwrap().to_string());
    }
    for job in &jobs {
        let done = wait_job(&app, job).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let form = Form::new()
        .text("class_id", class_id.to_string())
        .text("subject", "DBMS")
        .text("taken_at", "2026-11-20T04:00:00Z")
        .part(
            "photos",
            Part::bytes(fixture("groups/obama_biden_side_by_side.jpg")).file_name("g.jpg"),
        );
    let body: Value = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done = wait_job(&app, body["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    worker.abort();

    let a: Value = app
        .get_json(&format!("/analytics/classes/{class_id}"))
        .await;
    assert_eq!(a["sessions_held"], 1, "{a}");
    let figures: Vec<(&str, u64, u64)> = a["students"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["attended"].as_u64().unwrap(),
                s["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        figures,
        [
            ("Barack Obama", 1, 1),
            ("Joe Biden", 1, 1),
            ("Rose Leslie", 0, 1)
        ]
    );
    assert!(close(
        a["average_percentage"].as_f64().unwrap(),
        200.0 / 3.0
    ));
    assert_eq!(a["below_threshold"][0]["student_id"], students[2]);
    assert_eq!(a["weekly"][0]["week"], "2026-W47");

    let (_, bytes) = download(&app, &format!("/export/attendance?class_id={class_id}")).await;
    let rows = csv_rows(&bytes);
    assert_eq!(rows[0][2], "2026-11-20 09:30 DBMS");
    assert_eq!(rows[1][1..], ["Barack Obama", "present", "1", "1", "100.0"]);
    assert_eq!(rows[3][1..], ["Rose Leslie", "absent", "0", "1", "0.0"]);
}
