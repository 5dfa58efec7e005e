//! API keys: `Authorization: Bearer <key>`, stored as SHA-256 hashes.
//!
//! `admin` may do everything; `teacher` may read classes and students, mark attendance
//! and read sessions, jobs and exports.

use std::path::{Path, PathBuf};

use chrono::Utc;
use models::api_key;
pub use models::api_key::Role;
use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

/// Every key starts with this, so that a leaked key is easy to recognise in logs and
/// by secret scanners.
const KEY_PREFIX: &str = "att_";
/// How much of the key is kept in clear (`prefix` column) for telling keys apart.
const DISPLAY_PREFIX_LEN: usize = 12;

/// The caller, as established from its key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Uuid,
    pub role: Role,
}

impl Principal {
    /// `admin` passes every check; `teacher` only checks that ask for a teacher.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        match (self.role, role) {
            (Role::Admin, _) | (Role::Teacher, Role::Teacher) => Ok(()),
            (Role::Teacher, Role::Admin) => {
                Err(ApiError::forbidden("this operation needs an admin key"))
            }
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require(Role::Admin)
    }
}

/// API key sent as a bearer token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_key")]
pub struct ApiKeyAuth(pub Principal);

async fn check_key(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<AppState>()
        .expect("AppState is attached to the route");
    match find_key(&state.db, &bearer.token).await {
        Ok(Some(key)) => Ok(Principal {
            key_id: key.id,
            role: key.role,
        }),
        Ok(None) => Err(ApiError::unauthorized("unknown or revoked API key").into()),
        Err(e) => Err(ApiError::from(crate::error::ServiceError::Database(e)).into()),
    }
}

/// Lowercase hex SHA-256 of a key: what the `key_hash` column holds.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The active (not revoked) key row for a presented key.
pub async fn find_key(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<api_key::Model>, DbErr> {
    api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash_key(key)))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await
}

/// A new key and its row. The key is returned once and never stored.
pub struct CreatedKey {
    pub key: String,
    pub row: api_key::Model,
}

/// Creates a random 192-bit key for `role`.
pub async fn create_key(
    db: &impl ConnectionTrait,
    name: &str,
    role: Role,
) -> Result<CreatedKey, DbErr> {
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
    let row = api_key::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name.to_string()),
        role: Set(role),
        key_hash: Set(hash_key(&key)),
        prefix: Set(key[..DISPLAY_PREFIX_LEN].to_string()),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(CreatedKey { key, row })
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("database error while creating the first admin key")]
    Database(#[from] DbErr),
    #[error("could not write the admin key to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// On first start (no key at all), creates an admin key, prints it once on stdout and
/// writes it to `<data_dir>/admin.key` (mode 0600). Returns the key when it made one.
pub async fn ensure_admin_key(
    db: &impl ConnectionTrait,
    data_dir: &Path,
) -> Result<Option<String>, BootstrapError> {
    if api_key::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    let created = create_key(db, "bootstrap admin", Role::Admin).await?;
    let path = data_dir.join("admin.key");
    write_secret(&path, &created.key).map_err(|source| BootstrapError::Write {
        path: path.clone(),
        source,
    })?;
    println!(
        "Created the first admin API key (shown once, also saved to {}):\n{}",
        path.display(),
        created.key
    );
    tracing::info!(path = %path.display(), prefix = %created.row.prefix, "created the first admin API key");
    Ok(Some(created.key))
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{secret}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_is_refused_admin_operations() {
        let teacher = Principal {
            key_id: Uuid::nil(),
            role: Role::Teacher,
        };
        assert!(teacher.require(Role::Teacher).is_ok());
        assert!(matches!(
            teacher.require(Role::Admin),
            Err(ApiError::Forbidden(_))
        ));
        let admin = Principal {
            key_id: Uuid::nil(),
            role: Role::Admin,
        };
        assert!(admin.require(Role::Admin).is_ok());
        assert!(admin.require(Role::Teacher).is_ok());
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
