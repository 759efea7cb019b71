//! Users of every role: master administrators, administrators and technicians.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, Tx, now_ms, unique_violation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    MasterAdministrator,
    Administrator,
    Technician,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::MasterAdministrator => "master_administrator",
            Role::Administrator => "administrator",
            Role::Technician => "technician",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "master_administrator" => Some(Role::MasterAdministrator),
            "administrator" => Some(Role::Administrator),
            "technician" => Some(Role::Technician),
            _ => None,
        }
    }

    /// The guide's name for the entity type, as the Audit report shows it.
    pub fn entity_type(self) -> &'static str {
        match self {
            Role::MasterAdministrator => "Master Administrator",
            Role::Administrator => "Administrator",
            Role::Technician => "Technician",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub role: Role,
    pub name: String,
    pub nickname: String,
    pub email: String,
    pub sso_id: String,
    pub description: String,
    pub password_hash: String,
    pub password_changed_at: i64,
    pub must_change_password: bool,
    pub enabled: bool,
    /// Administrator group (administrators) or technician group (technicians).
    pub group_id: Option<i64>,
    pub language: String,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub role: Role,
    pub name: String,
    pub nickname: String,
    pub email: String,
    pub sso_id: String,
    pub description: String,
    pub password_hash: String,
    pub must_change_password: bool,
    pub enabled: bool,
    pub group_id: Option<i64>,
}

macro_rules! user_columns {
    () => {
        "id, role, name, nickname, email, sso_id, description, password_hash, \
    password_changed_at, must_change_password, enabled, group_id, language, created_at, deleted_at"
    };
}

fn from_row(row: &AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        role: Role::parse(&role).ok_or(StoreError::Conflict("unknown role in store"))?,
        name: row.try_get("name")?,
        nickname: row.try_get("nickname")?,
        email: row.try_get("email")?,
        sso_id: row.try_get("sso_id")?,
        description: row.try_get("description")?,
        password_hash: row.try_get("password_hash")?,
        password_changed_at: row.try_get("password_changed_at")?,
        must_change_password: row.try_get::<i64, _>("must_change_password")? != 0,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        group_id: row.try_get("group_id")?,
        language: row.try_get("language")?,
        created_at: row.try_get("created_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

impl Store {
    pub async fn user(&self, id: i64) -> Result<User> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    /// Any user, deleted ones included (reports and audit show their names).
    pub async fn user_any(&self, id: i64) -> Result<User> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<User> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email_lower = $1 AND deleted_at IS NULL"
        ))
        .bind(email.trim().to_lowercase())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE deleted_at IS NULL ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Technicians of the given group (not of its subgroups).
    pub async fn group_member_count(&self, group_id: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM users WHERE group_id = $1 AND deleted_at IS NULL",
        )
        .bind(group_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }
}

pub async fn insert_user(tx: &mut Tx, new: &NewUser) -> Result<i64> {
    let now = now_ms();
    let row = sqlx::query(
        "INSERT INTO users (role, name, nickname, email, email_lower, sso_id, description, password_hash, \
         password_changed_at, must_change_password, enabled, group_id, language, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '', $13) RETURNING id",
    )
    .bind(new.role.as_str())
    .bind(&new.name)
    .bind(&new.nickname)
    .bind(new.email.trim())
    .bind(new.email.trim().to_lowercase())
    .bind(&new.sso_id)
    .bind(&new.description)
    .bind(&new.password_hash)
    .bind(now)
    .bind(i64::from(new.must_change_password))
    .bind(i64::from(new.enabled))
    .bind(new.group_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| unique_violation(e, "email_taken"))?;
    Ok(row.try_get("id")?)
}

/// Writes every mutable field of `user` back.
pub async fn update_user(tx: &mut Tx, user: &User) -> Result<()> {
    let done = sqlx::query(
        "UPDATE users SET name = $1, nickname = $2, email = $3, email_lower = $4, sso_id = $5, \
         description = $6, password_hash = $7, password_changed_at = $8, must_change_password = $9, \
         enabled = $10, group_id = $11, language = $12 WHERE id = $13 AND deleted_at IS NULL",
    )
    .bind(&user.name)
    .bind(&user.nickname)
    .bind(user.email.trim())
    .bind(user.email.trim().to_lowercase())
    .bind(&user.sso_id)
    .bind(&user.description)
    .bind(&user.password_hash)
    .bind(user.password_changed_at)
    .bind(i64::from(user.must_change_password))
    .bind(i64::from(user.enabled))
    .bind(user.group_id)
    .bind(&user.language)
    .bind(user.id)
    .execute(&mut **tx)
    .await
    .map_err(|e| unique_violation(e, "email_taken"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Deleted users keep their row (reports and the audit log name them) but lose their login,
/// their tokens and their group assignments.
pub async fn delete_user(tx: &mut Tx, id: i64) -> Result<()> {
    let now = now_ms();
    let done = sqlx::query("UPDATE users SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("UPDATE auth_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM administrator_assignments WHERE administrator_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
