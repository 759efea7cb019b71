//! The append-only audit log: one row per changed field, in the guide's Audit report columns.

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum ChangeType {
    Add,
    Delete,
    Move,
    Copy,
    Assign,
    Unassign,
    Change,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Add => "Add",
            ChangeType::Delete => "Delete",
            ChangeType::Move => "Move",
            ChangeType::Copy => "Copy",
            ChangeType::Assign => "Assign",
            ChangeType::Unassign => "Unassign",
            ChangeType::Change => "Change",
        }
    }
}

/// One audit row to write. `requested_by_*` come from the caller's identity.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: i64,
    pub requested_by_id: i64,
    pub requested_by_name: String,
    pub entity_type: &'static str,
    pub entity_id: i64,
    pub entity_name: String,
    pub change_type: ChangeType,
    pub section: String,
    pub field: String,
    pub old_value: Option<String>,
    pub old_action: Option<String>,
    pub new_value: Option<String>,
    pub new_action: Option<String>,
}

/// An audit row as read back (the Audit report's columns).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub requested_by_id: i64,
    pub requested_by: String,
    pub entity_type: String,
    pub entity_id: i64,
    pub entity_name: String,
    pub change_type: String,
    pub section: String,
    pub field: String,
    pub old_value: Option<String>,
    pub old_action: Option<String>,
    pub new_value: Option<String>,
    pub new_action: Option<String>,
}

pub async fn append(tx: &mut Tx, e: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, requested_by_id, requested_by_name, entity_type, entity_id, entity_name, \
         change_type, section, field, old_value, old_action, new_value, new_action) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(e.at)
    .bind(e.requested_by_id)
    .bind(&e.requested_by_name)
    .bind(e.entity_type)
    .bind(e.entity_id)
    .bind(&e.entity_name)
    .bind(e.change_type.as_str())
    .bind(&e.section)
    .bind(&e.field)
    .bind(&e.old_value)
    .bind(&e.old_action)
    .bind(&e.new_value)
    .bind(&e.new_action)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Audit rows, newest first, optionally for one entity or one requester.
    pub async fn audit(
        &self,
        entity: Option<(&str, i64)>,
        requested_by: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, at, requested_by_id, requested_by_name, entity_type, entity_id, entity_name, \
             change_type, section, field, old_value, old_action, new_value, new_action FROM audit_log \
             WHERE ($1 = '' OR (entity_type = $1 AND entity_id = $2)) AND ($3 = 0 OR requested_by_id = $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(entity.map(|e| e.0).unwrap_or(""))
        .bind(entity.map(|e| e.1).unwrap_or(0))
        .bind(requested_by.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_from).collect()
    }
}

/// One audit row as read back (shared with the Audit report).
pub(super) fn row_from(r: &sqlx::any::AnyRow) -> Result<AuditRow> {
    Ok(AuditRow {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        requested_by_id: r.try_get("requested_by_id")?,
        requested_by: r.try_get("requested_by_name")?,
        entity_type: r.try_get("entity_type")?,
        entity_id: r.try_get("entity_id")?,
        entity_name: r.try_get("entity_name")?,
        change_type: r.try_get("change_type")?,
        section: r.try_get("section")?,
        field: r.try_get("field")?,
        old_value: r.try_get("old_value")?,
        old_action: r.try_get("old_action")?,
        new_value: r.try_get("new_value")?,
        new_action: r.try_get("new_action")?,
    })
}
