//! API keys: `Authorization: Bearer <key>`, stored as SHA-256 hashes.
//!
//! `admin` may do everything, in every department. `department_admin` may do
//! everything within its department, including issuing and revoking that department's
//! teacher keys. `teacher` works within its department: reads everything there,
//! registers and edits students and takes attendance, but cannot delete students,
//! manage classes or manage keys. What lies outside a key's department answers 404
//! (see [`Scope`]).

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
};

use chrono::{TimeDelta, Utc};
use models::api_key;
pub use models::api_key::Role;
use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    error::ApiError,
    services::{keys::Manager, scope::Scope},
    state::AppState,
};

/// Every key starts with this, so that a leaked key is easy to recognise in logs and
/// by secret scanners.
const KEY_PREFIX: &str = "att_";
/// How much of the key is kept in clear (`prefix` column) for telling keys apart.
const DISPLAY_PREFIX_LEN: usize = 12;

/// How often at most `last_used_at` is written for one key.
const LAST_USED_RESOLUTION: TimeDelta = TimeDelta::minutes(1);

/// The caller, as established from its key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Uuid,
    pub role: Role,
    /// What the key may see: everything for `admin`, else its department.
    pub scope: Scope,
}

/// Roles in order of power: each may do what the ones below it may.
fn rank(role: Role) -> u8 {
    match role {
        Role::Teacher => 0,
        Role::DepartmentAdmin => 1,
        Role::Admin => 2,
    }
}

impl Principal {
    /// Passes when the key's role is `role` or a more powerful one.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if rank(self.role) >= rank(role) {
            return Ok(());
        }
        Err(ApiError::forbidden(match role {
            Role::Admin => "this operation needs an admin key",
            Role::DepartmentAdmin => "this operation needs an admin or department admin key",
            Role::Teacher => "this operation needs a teacher key",
        }))
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require(Role::Admin)
    }

    /// Who this key may issue and revoke keys for; teachers manage none (403).
    pub fn key_manager(&self) -> Result<Manager, ApiError> {
        match (self.role, &self.scope) {
            (Role::Admin, _) => Ok(Manager::Admin),
            (Role::DepartmentAdmin, Scope::Department(d)) => Ok(Manager::Department(d.clone())),
            _ => Err(ApiError::forbidden(
                "this operation needs an admin or department admin key",
            )),
        }
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
    let key = match find_key(&state.db, &bearer.token).await {
        Ok(Some(key)) => key,
        Ok(None) => return Err(ApiError::unauthorized("unknown or revoked API key").into()),
        Err(e) => return Err(ApiError::from(crate::error::ServiceError::Database(e)).into()),
    };
    touch_last_used(&state.db, &key).await;
    let scope = match (key.role, key.department) {
        (Role::Admin, _) => Scope::All,
        (_, Some(department)) => Scope::Department(department),
        // Only a key made before departments existed lacks one; it must be reissued.
        (_, None) => {
            return Err(ApiError::forbidden(
                "this key has no department; ask an admin for a new key",
            )
            .into());
        }
    };
    Ok(Principal {
        key_id: key.id,
        role: key.role,
        scope,
    })
}

/// Records that the key was used, at most once per [`LAST_USED_RESOLUTION`]: the
/// conditional update makes concurrent requests write once. A failure is only logged;
/// it must not refuse a valid key.
async fn touch_last_used(db: &impl ConnectionTrait, key: &api_key::Model) {
    let now = Utc::now();
    let cutoff = now - LAST_USED_RESOLUTION;
    if key.last_used_at.is_some_and(|t| t > cutoff) {
        return;
    }
    let updated = api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(key.id))
        .filter(
            Condition::any()
                .add(api_key::Column::LastUsedAt.is_null())
                .add(api_key::Column::LastUsedAt.lte(cutoff)),
        )
        .exec(db)
        .await;
    if let Err(e) = updated {
        tracing::warn!(key_id = %key.id, error = %e, "could not record the key's last use");
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

/// Creates a random 192-bit key for `role`, confined to `department` (`None` for an
/// admin). The rules on who may create which key are in [`crate::services::keys`].
pub async fn create_key(
    db: &impl ConnectionTrait,
    name: &str,
    role: Role,
    department: Option<&str>,
) -> Result<CreatedKey, DbErr> {
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
    let row = api_key::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name.to_string()),
        role: Set(role),
        department: Set(department.map(str::to_string)),
        key_hash: Set(hash_key(&key)),
        prefix: Set(key[..DISPLAY_PREFIX_LEN].to_string()),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
        last_used_at: Set(None),
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

/// On first start (no key at all), creates an admin key and writes it to
/// `<data_dir>/admin.key` (mode 0600). The key is printed only when stdout is a
/// terminal: redirected output ends up in log files, so then only the path is logged.
/// Returns the key when it made one.
pub async fn ensure_admin_key(
    db: &impl ConnectionTrait,
    data_dir: &Path,
) -> Result<Option<String>, BootstrapError> {
    if api_key::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    let created = create_key(db, "bootstrap admin", Role::Admin, None).await?;
    let path = data_dir.join("admin.key");
    write_secret(&path, &created.key).map_err(|source| BootstrapError::Write {
        path: path.clone(),
        source,
    })?;
    if std::io::stdout().is_terminal() {
        println!(
            "Created the first admin API key (shown once, also saved to {}):\n{}",
            path.display(),
            created.key
        );
    }
    tracing::info!(
        path = %path.display(),
        prefix = %created.row.prefix,
        "created the first admin API key; it is in the file at `path`"
    );
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

    fn principal(role: Role) -> Principal {
        Principal {
            key_id: Uuid::nil(),
            role,
            scope: match role {
                Role::Admin => Scope::All,
                _ => Scope::Department("CSE".into()),
            },
        }
    }

    #[test]
    fn roles_are_ordered_teacher_department_admin_admin() {
        let teacher = principal(Role::Teacher);
        assert!(teacher.require(Role::Teacher).is_ok());
        for above in [Role::DepartmentAdmin, Role::Admin] {
            assert!(matches!(
                teacher.require(above),
                Err(ApiError::Forbidden(_))
            ));
        }
        let dept = principal(Role::DepartmentAdmin);
        assert!(dept.require(Role::Teacher).is_ok());
        assert!(dept.require(Role::DepartmentAdmin).is_ok());
        assert!(matches!(
            dept.require(Role::Admin),
            Err(ApiError::Forbidden(_))
        ));
        let admin = principal(Role::Admin);
        for any in [Role::Teacher, Role::DepartmentAdmin, Role::Admin] {
            assert!(admin.require(any).is_ok());
        }
    }

    #[test]
    fn key_managers_follow_the_role() {
        assert!(matches!(
            principal(Role::Admin).key_manager(),
            Ok(Manager::Admin)
        ));
        assert!(matches!(
            principal(Role::DepartmentAdmin).key_manager(),
            Ok(Manager::Department(d)) if d == "CSE"
        ));
        assert!(matches!(
            principal(Role::Teacher).key_manager(),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
