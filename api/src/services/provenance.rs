//! A session's provenance, decided when its photos are accepted: when it was taken
//! (the teacher's `taken_at`, else the first photo's EXIF `DateTimeOriginal`, else the
//! upload time) and what looks wrong (a photo already used in another session of the
//! class; a `taken_at` far from the photo's own time). Warnings never refuse a
//! session: a teacher may have a good reason, a reviewer decides.

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use common::{SessionWarning, SessionWarningCode};
use models::{attendance_session, session_photo};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::upload::ValidatedPhoto;

/// How far the given `taken_at` may be from a photo's EXIF time before it is flagged.
pub const MAX_TIME_DISAGREEMENT: TimeDelta = TimeDelta::hours(12);

/// Where `taken_at` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakenAtSource {
    Given,
    Exif,
    Upload,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    pub taken_at: DateTime<Utc>,
    pub source: TakenAtSource,
    pub warnings: Vec<SessionWarning>,
}

/// Decides `taken_at` and the warnings of a new session of `class_id`.
/// `exif_utc_offset` is the offset of EXIF times that carry none (`EXIF_UTC_OFFSET`).
pub async fn assess(
    db: &impl ConnectionTrait,
    class_id: Uuid,
    photos: &[ValidatedPhoto],
    given: Option<DateTime<Utc>>,
    uploaded_at: DateTime<Utc>,
    exif_utc_offset: FixedOffset,
) -> Result<Provenance, DbErr> {
    let exif_times: Vec<Option<DateTime<Utc>>> = photos
        .iter()
        .map(|p| p.facts.taken.map(|t| t.to_utc(exif_utc_offset)))
        .collect();
    let (taken_at, source, mut warnings) = decide_taken_at(&exif_times, given, uploaded_at);
    warnings.extend(duplicates(db, class_id, photos).await?);
    Ok(Provenance {
        taken_at,
        source,
        warnings,
    })
}

/// The session time and a warning for each photo whose EXIF time is more than
/// [`MAX_TIME_DISAGREEMENT`] from the given `taken_at`.
pub fn decide_taken_at(
    exif_times: &[Option<DateTime<Utc>>],
    given: Option<DateTime<Utc>>,
    uploaded_at: DateTime<Utc>,
) -> (DateTime<Utc>, TakenAtSource, Vec<SessionWarning>) {
    let Some(given) = given else {
        return match exif_times.iter().flatten().next() {
            Some(&exif) => (exif, TakenAtSource::Exif, Vec::new()),
            None => (uploaded_at, TakenAtSource::Upload, Vec::new()),
        };
    };
    let warnings = exif_times
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (i, t)))
        .filter(|(_, exif)| (*exif - given).abs() > MAX_TIME_DISAGREEMENT)
        .map(|(i, exif)| {
            let hours = (exif - given).num_minutes().abs() as f64 / 60.0;
            SessionWarning {
                code: SessionWarningCode::TakenAtMismatch,
                message: format!(
                    "photo {} was taken at {} (EXIF), {hours:.1} hours from the given taken_at {}",
                    i + 1,
                    exif.to_rfc3339(),
                    given.to_rfc3339()
                ),
                photo: Some(i as u32 + 1),
                earlier_session_id: None,
                sha256: None,
                exif_taken_at: Some(exif),
                given_taken_at: Some(given),
            }
        })
        .collect();
    (given, TakenAtSource::Given, warnings)
}

/// Uses of the photo `hash` read per query by [`first_use`].
const USES_PER_PAGE: u64 = 16;

/// The first photo row with `hash` in a session of `class_id`, with its session. The
/// uses are read oldest first, a page at a time, and their sessions by primary key:
/// each query reads one index. (As one join, a planner without statistics yet, on a
/// fresh database filling fast as in the soak, scanned the class's sessions for every
/// earlier use: 169,000 index scans in one minute.) A photo row's `created_at` is its
/// session's plus its position in microseconds, so the `(sha256, created_at)` index
/// gives the uses in session order.
async fn first_use(
    db: &impl ConnectionTrait,
    class_id: Uuid,
    hash: &str,
) -> Result<Option<(session_photo::Model, attendance_session::Model)>, DbErr> {
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    loop {
        let mut uses = session_photo::Entity::find().filter(session_photo::Column::Sha256.eq(hash));
        if let Some((at, id)) = after {
            uses = uses.filter(
                Condition::any()
                    .add(session_photo::Column::CreatedAt.gt(at))
                    .add(
                        Condition::all()
                            .add(session_photo::Column::CreatedAt.eq(at))
                            .add(session_photo::Column::Id.gt(id)),
                    ),
            );
        }
        let uses = uses
            .order_by_asc(session_photo::Column::CreatedAt)
            .order_by_asc(session_photo::Column::Id)
            .limit(USES_PER_PAGE)
            .all(db)
            .await?;
        let Some(last) = uses.last() else {
            return Ok(None);
        };
        after = Some((last.created_at, last.id));
        let sessions = attendance_session::Entity::find()
            .filter(attendance_session::Column::Id.is_in(uses.iter().map(|u| u.session_id)))
            .filter(attendance_session::Column::ClassId.eq(class_id))
            .all(db)
            .await?;
        let page_was_full = uses.len() as u64 == USES_PER_PAGE;
        let found = uses.into_iter().find_map(|u| {
            let session = sessions.iter().find(|s| s.id == u.session_id)?.clone();
            Some((u, session))
        });
        if found.is_some() || !page_was_full {
            return Ok(found);
        }
    }
}

/// A warning for each photo whose bytes an earlier session of the same class already
/// used, naming the earliest such session. (Two uploads of the same bytes at the same
/// moment may miss each other; the check is advisory.)
async fn duplicates(
    db: &impl ConnectionTrait,
    class_id: Uuid,
    photos: &[ValidatedPhoto],
) -> Result<Vec<SessionWarning>, DbErr> {
    // Only the first session that used each photo is named, however often the photo
    // was uploaded before (reading every use made each upload of a much-reused photo
    // slower than the last).
    let mut earlier = Vec::with_capacity(photos.len());
    for p in photos {
        let hash = p.facts.sha256.as_str();
        if earlier.iter().any(
            |(photo, _): &(session_photo::Model, attendance_session::Model)| {
                photo.sha256.as_deref() == Some(hash)
            },
        ) {
            continue;
        }
        let first = first_use(db, class_id, hash).await?;
        earlier.extend(first);
    }
    Ok(photos
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let (_, session) = earlier
                .iter()
                .find(|(photo, _)| photo.sha256.as_deref() == Some(p.facts.sha256.as_str()))?;
            Some(SessionWarning {
                code: SessionWarningCode::DuplicatePhoto,
                message: format!(
                    "photo {} was already used in session {} of this class (taken at {})",
                    i + 1,
                    session.id,
                    session.taken_at.to_rfc3339()
                ),
                photo: Some(i as u32 + 1),
                earlier_session_id: Some(session.id),
                sha256: Some(p.facts.sha256.clone()),
                exif_taken_at: None,
                given_taken_at: None,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn taken_at_is_given_else_the_first_exif_time_else_the_upload_time() {
        let upload = t("2026-11-30T10:00:00Z");
        let exif = t("2026-11-20T04:00:00Z");
        assert_eq!(
            decide_taken_at(&[None, Some(exif)], None, upload),
            (exif, TakenAtSource::Exif, vec![])
        );
        assert_eq!(
            decide_taken_at(&[None], None, upload),
            (upload, TakenAtSource::Upload, vec![])
        );
        let given = t("2026-11-20T15:59:00Z");
        let (at, source, warnings) = decide_taken_at(&[Some(exif)], Some(given), upload);
        assert_eq!((at, source), (given, TakenAtSource::Given));
        assert!(warnings.is_empty(), "11 h 59 min apart is within the limit");
    }

    #[test]
    fn a_given_time_more_than_twelve_hours_from_a_photo_s_exif_time_is_flagged() {
        let exif = t("2026-11-20T04:00:00Z");
        let given = t("2026-11-22T04:00:00Z");
        let (at, _, warnings) = decide_taken_at(&[None, Some(exif)], Some(given), given);
        assert_eq!(at, given);
        assert_eq!(warnings.len(), 1);
        let w = &warnings[0];
        assert_eq!(w.code, SessionWarningCode::TakenAtMismatch);
        assert_eq!(w.photo, Some(2));
        assert_eq!(w.exif_taken_at, Some(exif));
        assert_eq!(w.given_taken_at, Some(given));
        assert!(w.message.contains("48.0 hours"), "{}", w.message);
    }
}
