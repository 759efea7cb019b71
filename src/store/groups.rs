//! Technician groups and administrator groups (both nest), and administrators' assignments to
//! technician groups.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, Tx, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    TechnicianGroup,
    AdministratorGroup,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::TechnicianGroup => "technician_group",
            GroupKind::AdministratorGroup => "administrator_group",
        }
    }

    fn parse(s: &str) -> Option<GroupKind> {
        match s {
            "technician_group" => Some(GroupKind::TechnicianGroup),
            "administrator_group" => Some(GroupKind::AdministratorGroup),
            _ => None,
        }
    }

    /// The guide's entity type name (Audit report).
    pub fn entity_type(self) -> &'static str {
        match self {
            GroupKind::TechnicianGroup => "Technician Group",
            GroupKind::AdministratorGroup => "Administrator Group",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: i64,
    pub kind: GroupKind,
    pub name: String,
    pub description: String,
    pub parent_id: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewGroup {
    pub kind: GroupKind,
    pub name: String,
    pub description: String,
    pub parent_id: Option<i64>,
    pub enabled: bool,
}

macro_rules! group_columns {
    () => {
        "id, kind, name, description, parent_id, enabled, created_at"
    };
}

fn from_row(row: &AnyRow) -> Result<Group> {
    let kind: String = row.try_get("kind")?;
    Ok(Group {
        id: row.try_get("id")?,
        kind: GroupKind::parse(&kind).ok_or(StoreError::Conflict("unknown group kind in store"))?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        parent_id: row.try_get("parent_id")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn group(&self, id: i64) -> Result<Group> {
        let row = sqlx::query(concat!(
            "SELECT ",
            group_columns!(),
            " FROM org_groups WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    pub async fn groups(&self) -> Result<Vec<Group>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            group_columns!(),
            " FROM org_groups WHERE deleted_at IS NULL ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// (administrator id, technician group id) pairs.
    pub async fn assignments(&self) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT administrator_id, technician_group_id FROM administrator_assignments \
             ORDER BY administrator_id, technician_group_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn assigned_groups(&self, administrator_id: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT technician_group_id FROM administrator_assignments WHERE administrator_id = $1",
        )
        .bind(administrator_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Live child groups of a group plus live users in it: a group with members is not deleted.
    pub async fn group_has_members(&self, id: i64) -> Result<bool> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM org_groups WHERE parent_id = $1 AND deleted_at IS NULL) \
             + (SELECT COUNT(*) FROM users WHERE group_id = $1 AND deleted_at IS NULL) AS n",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n > 0)
    }
}

pub async fn insert_group(tx: &mut Tx, new: &NewGroup) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO org_groups (kind, name, description, parent_id, enabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(new.kind.as_str())
    .bind(&new.name)
    .bind(&new.description)
    .bind(new.parent_id)
    .bind(i64::from(new.enabled))
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("id")?)
}

pub async fn update_group(tx: &mut Tx, group: &Group) -> Result<()> {
    let done = sqlx::query(
        "UPDATE org_groups SET name = $1, description = $2, parent_id = $3, enabled = $4 \
         WHERE id = $5 AND deleted_at IS NULL",
    )
    .bind(&group.name)
    .bind(&group.description)
    .bind(group.parent_id)
    .bind(i64::from(group.enabled))
    .bind(group.id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn delete_group(tx: &mut Tx, id: i64) -> Result<()> {
    let done =
        sqlx::query("UPDATE org_groups SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&mut **tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM administrator_assignments WHERE technician_group_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Returns false when the assignment already existed.
pub async fn assign(tx: &mut Tx, administrator_id: i64, group_id: i64) -> Result<bool> {
    let exists = sqlx::query(
        "SELECT 1 AS one FROM administrator_assignments \
         WHERE administrator_id = $1 AND technician_group_id = $2",
    )
    .bind(administrator_id)
    .bind(group_id)
    .fetch_optional(&mut **tx)
    .await?;
    if exists.is_some() {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO administrator_assignments (administrator_id, technician_group_id) VALUES ($1, $2)",
    )
    .bind(administrator_id)
    .bind(group_id)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// Returns false when there was no such assignment.
pub async fn unassign(tx: &mut Tx, administrator_id: i64, group_id: i64) -> Result<bool> {
    let done = sqlx::query(
        "DELETE FROM administrator_assignments WHERE administrator_id = $1 AND technician_group_id = $2",
    )
    .bind(administrator_id)
    .bind(group_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}
