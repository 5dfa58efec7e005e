//! Consent to the processing of a student's face data, as registrations record it:
//! what a request says, whether the policy (`REQUIRE_CONSENT`, a withdrawal) lets the
//! registration through, and the `consent_entries` row written in the same transaction
//! as the student's rows.

use chrono::{DateTime, Utc};
use models::consent_entry::{self, ConsentAction, ConsentSource, NOTE_MAX_CHARS};
use models::student::StudentStatus;
use sea_orm::ActiveValue::Set;
use uuid::Uuid;

use super::optional_text;
use crate::error::ServiceError;

/// What a registration request says about consent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentClaim {
    /// `consent=true`; absent or `false` is no consent.
    pub given: bool,
    pub note: Option<String>,
}

impl ConsentClaim {
    /// The `consent` and `consent_note` fields of a form: a note with a NUL is a 400,
    /// one longer than [`NOTE_MAX_CHARS`] or without `consent=true` (it would be lost)
    /// a 422.
    pub fn from_form(consent: Option<bool>, note: Option<&str>) -> Result<Self, ServiceError> {
        let given = consent.unwrap_or(false);
        let note = optional_text("consent_note", note, NOTE_MAX_CHARS)?;
        if note.is_some() && !given {
            return Err(ServiceError::invalid(
                "invalid_field",
                "consent_note is recorded only with consent=true",
            ));
        }
        Ok(ConsentClaim { given, note })
    }
}

/// A registration's consent: what the request says, who records it, and whether the
/// server requires it (`REQUIRE_CONSENT`).
#[derive(Debug, Clone)]
pub struct Consent {
    pub claim: ConsentClaim,
    /// The API key of the request; `None` from the command line.
    pub recorded_by_key_id: Option<Uuid>,
    pub source: ConsentSource,
    pub required: bool,
}

impl Consent {
    /// A new student: without consent, refused when it is required.
    pub fn check_new(&self) -> Result<(), ServiceError> {
        if self.required && !self.claim.given {
            return Err(ServiceError::invalid(
                "consent_required",
                "the student's consent must be recorded to register them (this server \
                 requires it): send consent=true, with an optional consent_note",
            ));
        }
        Ok(())
    }

    /// A registered student getting new photos, given their status and the consent in
    /// force. A student who withdrew consent must give it again in this request,
    /// whatever the server requires; otherwise, when consent is required, it must be
    /// given now or already be in force.
    pub fn check_existing(
        &self,
        status: StudentStatus,
        in_force: Option<&consent_entry::Model>,
    ) -> Result<(), ServiceError> {
        if self.claim.given {
            return Ok(());
        }
        let latest = in_force.map(|e| e.action);
        if status == StudentStatus::Withdrawn || latest == Some(ConsentAction::Withdrawn) {
            return Err(ServiceError::invalid(
                "consent_withdrawn",
                "this student withdrew their consent; new photos register them again and \
                 need their consent again: send consent=true",
            ));
        }
        if self.required && latest != Some(ConsentAction::Given) {
            return Err(ServiceError::invalid(
                "consent_required",
                "the student's consent must be recorded to add photos (this server \
                 requires it): send consent=true, with an optional consent_note",
            ));
        }
        Ok(())
    }

    /// The `given` entry to write with the student's rows; `None` without consent.
    pub fn entry(
        &self,
        student_id: Uuid,
        now: DateTime<Utc>,
    ) -> Option<consent_entry::ActiveModel> {
        self.claim.given.then(|| consent_entry::ActiveModel {
            id: Set(Uuid::new_v4()),
            student_id: Set(student_id),
            action: Set(ConsentAction::Given),
            note: Set(self.claim.note.clone()),
            recorded_by_key_id: Set(self.recorded_by_key_id),
            source: Set(self.source),
            created_at: Set(now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(given: bool, required: bool) -> Consent {
        Consent {
            claim: ConsentClaim { given, note: None },
            recorded_by_key_id: Some(Uuid::from_u128(7)),
            source: ConsentSource::Api,
            required,
        }
    }

    fn entry(action: ConsentAction) -> consent_entry::Model {
        consent_entry::Model {
            id: Uuid::from_u128(1),
            student_id: Uuid::from_u128(2),
            action,
            note: None,
            recorded_by_key_id: None,
            source: ConsentSource::Api,
            created_at: Utc::now(),
        }
    }

    fn code(result: Result<(), ServiceError>) -> Option<&'static str> {
        match result {
            Ok(()) => None,
            Err(ServiceError::Invalid { code, .. }) => Some(code),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn form_fields_are_checked() {
        assert_eq!(
            ConsentClaim::from_form(Some(true), Some("  form 114 ")).unwrap(),
            ConsentClaim {
                given: true,
                note: Some("form 114".into())
            }
        );
        assert_eq!(
            ConsentClaim::from_form(None, Some("  ")).unwrap(),
            ConsentClaim::default()
        );
        let nul = ConsentClaim::from_form(Some(true), Some("a\0b")).unwrap_err();
        assert!(matches!(
            nul,
            ServiceError::BadRequest {
                code: "nul_byte",
                ..
            }
        ));
        let long = "x".repeat(NOTE_MAX_CHARS + 1);
        assert!(matches!(
            ConsentClaim::from_form(Some(true), Some(&long)).unwrap_err(),
            ServiceError::Invalid { .. }
        ));
        assert!(matches!(
            ConsentClaim::from_form(Some(false), Some("a note")).unwrap_err(),
            ServiceError::Invalid { .. }
        ));
    }

    #[test]
    fn new_students_need_consent_only_when_required() {
        assert_eq!(code(consent(false, false).check_new()), None);
        assert_eq!(code(consent(true, true).check_new()), None);
        assert_eq!(
            code(consent(false, true).check_new()),
            Some("consent_required")
        );
    }

    #[test]
    fn a_withdrawal_needs_consent_again_whatever_is_required() {
        let given = entry(ConsentAction::Given);
        let withdrawn = entry(ConsentAction::Withdrawn);
        let active = StudentStatus::Active;
        // Consent in force stands in for consent in the request.
        assert_eq!(
            code(consent(false, true).check_existing(active, Some(&given))),
            None
        );
        assert_eq!(
            code(consent(false, true).check_existing(active, None)),
            Some("consent_required")
        );
        assert_eq!(
            code(consent(false, false).check_existing(active, None)),
            None
        );
        for required in [false, true] {
            assert_eq!(
                code(consent(false, required).check_existing(active, Some(&withdrawn))),
                Some("consent_withdrawn")
            );
            assert_eq!(
                code(consent(false, required).check_existing(StudentStatus::Withdrawn, None)),
                Some("consent_withdrawn")
            );
            assert_eq!(
                code(
                    consent(true, required)
                        .check_existing(StudentStatus::Withdrawn, Some(&withdrawn))
                ),
                None
            );
        }
    }

    #[test]
    fn only_given_consent_is_written() {
        let now = Utc::now();
        assert!(consent(false, false).entry(Uuid::nil(), now).is_none());
        let row = consent(true, false).entry(Uuid::nil(), now).unwrap();
        assert_eq!(row.action, Set(ConsentAction::Given));
        assert_eq!(row.recorded_by_key_id, Set(Some(Uuid::from_u128(7))));
        assert_eq!(row.source, Set(ConsentSource::Api));
        assert_eq!(row.created_at, Set(now));
    }
}
