//! `/students/{id}/photos`: a registered student's photos over time.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Multipart, Object, OpenApi, param::Path, payload::Json, types::multipart::Upload,
};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    auth::{ApiKeyAuth, Role},
    error::ApiError,
    services::{
        consent::{Consent, ConsentClaim},
        student_photos, students,
    },
    state::AppState,
};

#[derive(Debug, Multipart)]
pub struct AddPhotosForm {
    /// 1–10 photos of the student's face (JPEG, PNG or WebP; ≤ 10 MB each).
    pub photos: Vec<Upload>,
    /// `true` records the student's consent, with this key and the time. Needed by a
    /// student who withdrew consent (422 `consent_withdrawn`), and with
    /// `REQUIRE_CONSENT=true` unless their consent is already in force (422
    /// `consent_required`).
    pub consent: Option<bool>,
    /// A note kept with the consent, up to 500 characters; only with `consent=true`.
    pub consent_note: Option<String>,
}

#[derive(Debug, Object)]
pub struct PhotosAccepted {
    pub student_id: Uuid,
    /// The registration job judging the photos; poll `GET /jobs/{job_id}`, then see
    /// each photo's verdict in `GET /students/{id}`.
    pub job_id: Uuid,
    /// The new photos, in upload order.
    pub photo_ids: Vec<Uuid>,
}

#[derive(ApiResponse)]
pub enum AddPhotosResponse {
    /// Photos stored; a registration job judges them (and the older photos again).
    #[oai(status = 202)]
    Accepted(Json<PhotosAccepted>),
}

#[derive(ApiResponse)]
pub enum DeletePhotoResponse {
    #[oai(status = 204)]
    Deleted,
}

pub struct StudentPhotosApi;

#[OpenApi(tag = "ApiTags::Students")]
impl StudentPhotosApi {
    /// Add 1–10 photos to a registered student. Answers 202; a registration job gives
    /// each photo its verdict as at registration, and the student stays matched with
    /// the photos accepted so far meanwhile. A student who withdrew consent registers
    /// again this way, with `consent=true`.
    #[oai(
        path = "/students/:id/photos",
        method = "post",
        operation_id = "add_student_photos"
    )]
    async fn add(
        &self,
        state: Data<&AppState>,
        gate: Data<&crate::upload::ValidationGate>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        form: AddPhotosForm,
    ) -> Result<AddPhotosResponse, ApiError> {
        let consent = Consent {
            claim: ConsentClaim::from_form(form.consent, form.consent_note.as_deref())?,
            recorded_by_key_id: Some(auth.0.key_id),
            source: models::consent_entry::ConsentSource::Api,
            required: state.privacy.require_consent,
        };
        let photos = crate::upload::validate_uploads(
            &gate,
            form.photos,
            students::MIN_PHOTOS,
            students::MAX_PHOTOS,
        )
        .await?;
        let added = student_photos::add(
            &state.db,
            &auth.0.scope,
            &state.blobs,
            &state.queue,
            id.0,
            photos,
            &consent,
        )
        .await?;
        Ok(AddPhotosResponse::Accepted(Json(PhotosAccepted {
            student_id: added.student_id,
            job_id: added.job_id,
            photo_ids: added.photo_ids,
        })))
    }

    /// Delete one of a student's photos with its embeddings (admin or department
    /// admin). A student left without an accepted or pending photo is no longer
    /// matched (`failed`) and shows `needs_photos`.
    #[oai(
        path = "/students/:id/photos/:photo_id",
        method = "delete",
        operation_id = "delete_student_photo"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        photo_id: Path<Uuid>,
    ) -> Result<DeletePhotoResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        student_photos::delete(&state.db, &auth.0.scope, &state.blobs, id.0, photo_id.0).await?;
        Ok(DeletePhotoResponse::Deleted)
    }
}
