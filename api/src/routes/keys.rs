//! `/keys`: issue, list and revoke API keys (admins; department admins for their
//! department's teacher keys).

use chrono::{DateTime, Utc};
use models::api_key::{self, Role};
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    auth::ApiKeyAuth,
    error::ApiError,
    services::keys::{self, KeyRef, NewKey},
    state::AppState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "KeyRole", rename_all = "snake_case")]
pub enum RoleOut {
    /// Everything, in every department.
    Admin,
    /// Everything within one department, including its teacher keys.
    DepartmentAdmin,
    /// Within one department: reads, registers and edits students, takes attendance.
    Teacher,
}

impl From<Role> for RoleOut {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => Self::Admin,
            Role::DepartmentAdmin => Self::DepartmentAdmin,
            Role::Teacher => Self::Teacher,
        }
    }
}

impl From<RoleOut> for Role {
    fn from(r: RoleOut) -> Self {
        match r {
            RoleOut::Admin => Self::Admin,
            RoleOut::DepartmentAdmin => Self::DepartmentAdmin,
            RoleOut::Teacher => Self::Teacher,
        }
    }
}

#[derive(Debug, Object)]
pub struct KeyInput {
    pub role: RoleOut,
    /// What the key is for, e.g. the person or script holding it.
    pub name: String,
    /// Required unless the role is `admin`.
    pub department: Option<String>,
}

/// A key as listed: never the key itself nor its hash.
#[derive(Debug, Object)]
pub struct KeyOut {
    pub id: Uuid,
    pub name: String,
    pub role: RoleOut,
    pub department: Option<String>,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// Accurate to a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set once the key is revoked; a revoked key is refused (401).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_key::Model> for KeyOut {
    fn from(k: api_key::Model) -> Self {
        KeyOut {
            id: k.id,
            name: k.name,
            role: k.role.into(),
            department: k.department,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct CreatedKeyOut {
    #[oai(flatten)]
    pub details: KeyOut,
    /// The key: shown only in this answer, store it now. Send it as
    /// `Authorization: Bearer <key>`.
    pub key: String,
}

/// The key that did something (audit trail).
#[derive(Debug, Object)]
pub struct KeyRefOut {
    pub key_id: Uuid,
    pub name: String,
}

impl From<KeyRef> for KeyRefOut {
    fn from(k: KeyRef) -> Self {
        KeyRefOut {
            key_id: k.id,
            name: k.name,
        }
    }
}

#[derive(ApiResponse)]
pub enum CreateKeyResponse {
    #[oai(status = 201)]
    Created(Json<CreatedKeyOut>),
}

#[derive(ApiResponse)]
pub enum RevokeKeyResponse {
    #[oai(status = 204)]
    Revoked,
}

pub struct KeysApi;

#[OpenApi(tag = "ApiTags::Keys")]
impl KeysApi {
    /// Issue a key (admin; a department admin issues teacher keys of its department).
    #[oai(path = "/keys", method = "post", operation_id = "create_key")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        body: Json<KeyInput>,
    ) -> Result<CreateKeyResponse, ApiError> {
        let manager = auth.0.key_manager()?;
        let b = body.0;
        let created = keys::create(
            &state.db,
            &manager,
            NewKey {
                name: b.name,
                role: b.role.into(),
                department: b.department,
            },
        )
        .await?;
        Ok(CreateKeyResponse::Created(Json(CreatedKeyOut {
            details: created.row.into(),
            key: created.key,
        })))
    }

    /// List keys (a department admin sees its department's keys).
    #[oai(path = "/keys", method = "get", operation_id = "list_keys")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
    ) -> Result<Json<Vec<KeyOut>>, ApiError> {
        let manager = auth.0.key_manager()?;
        let all = keys::list(&state.db, &manager).await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// The key making this request: its role and department (what a client shows or
    /// hides). Any valid key may read its own.
    #[oai(path = "/keys/me", method = "get", operation_id = "get_own_key")]
    async fn me(&self, state: Data<&AppState>, auth: ApiKeyAuth) -> Result<Json<KeyOut>, ApiError> {
        Ok(Json(keys::own(&state.db, auth.0.key_id).await?.into()))
    }

    /// Revoke a key; it is refused from the next request on.
    #[oai(path = "/keys/:id", method = "delete", operation_id = "revoke_key")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<RevokeKeyResponse, ApiError> {
        let manager = auth.0.key_manager()?;
        keys::revoke(&state.db, &manager, id.0).await?;
        Ok(RevokeKeyResponse::Revoked)
    }
}
