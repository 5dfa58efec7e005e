//! `/classes`

use chrono::{DateTime, Utc};
use models::class;
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    auth::{ApiKeyAuth, Role},
    error::ApiError,
    services::classes::{self, ClassFields},
    state::AppState,
};

#[derive(Debug, Object)]
pub struct ClassInput {
    pub name: String,
    pub department: String,
    /// Year of study (1–10).
    pub year: Option<i32>,
    pub section: Option<String>,
    /// Match distance threshold for this class; absent = the engine's calibrated default.
    pub match_threshold: Option<f64>,
}

impl From<ClassInput> for ClassFields {
    fn from(c: ClassInput) -> ClassFields {
        ClassFields {
            name: c.name,
            department: c.department,
            year: c.year,
            section: c.section,
            match_threshold: c.match_threshold,
        }
    }
}

#[derive(Debug, Object)]
pub struct ClassOut {
    pub id: Uuid,
    pub name: String,
    pub department: String,
    pub year: Option<i32>,
    pub section: Option<String>,
    pub match_threshold: Option<f64>,
    pub created_at: DateTime<Utc>,
}

impl From<class::Model> for ClassOut {
    fn from(m: class::Model) -> ClassOut {
        ClassOut {
            id: m.id,
            name: m.name,
            department: m.department,
            year: m.year,
            section: m.section,
            match_threshold: m.match_threshold,
            created_at: m.created_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum CreateClassResponse {
    #[oai(status = 201)]
    Created(Json<ClassOut>),
}

#[derive(ApiResponse)]
pub enum DeleteClassResponse {
    #[oai(status = 204)]
    Deleted,
}

pub struct ClassesApi;

#[OpenApi(tag = "ApiTags::Classes")]
impl ClassesApi {
    /// Create a class (admin, or department admin within its department; another
    /// department is 403).
    #[oai(path = "/classes", method = "post", operation_id = "create_class")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        body: Json<ClassInput>,
    ) -> Result<CreateClassResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        let class = classes::create(&state.db, &auth.0.scope, body.0.into()).await?;
        Ok(CreateClassResponse::Created(Json(class.into())))
    }

    /// List the classes the key may see (its department's, or all for an admin).
    #[oai(path = "/classes", method = "get", operation_id = "list_classes")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
    ) -> Result<Json<Vec<ClassOut>>, ApiError> {
        let all = classes::list(&state.db, &auth.0.scope).await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// One class.
    #[oai(path = "/classes/:id", method = "get", operation_id = "get_class")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<Json<ClassOut>, ApiError> {
        Ok(Json(
            classes::get(&state.db, &auth.0.scope, id.0).await?.into(),
        ))
    }

    /// Replace a class's fields (admin or department admin).
    #[oai(path = "/classes/:id", method = "put", operation_id = "update_class")]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        body: Json<ClassInput>,
    ) -> Result<Json<ClassOut>, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        Ok(Json(
            classes::replace(&state.db, &auth.0.scope, id.0, body.0.into())
                .await?
                .into(),
        ))
    }

    /// Delete an empty class (admin or department admin); 409 while it has students or
    /// sessions.
    #[oai(
        path = "/classes/:id",
        method = "delete",
        operation_id = "delete_class"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<DeleteClassResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        classes::delete(&state.db, &auth.0.scope, id.0).await?;
        Ok(DeleteClassResponse::Deleted)
    }
}
