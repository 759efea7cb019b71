//! Settings documents (technician group settings, global settings), stored as validated JSON text.

use sqlx::Row;

use super::{Result, Store, Tx, now_ms};

impl Store {
    pub async fn group_settings_json(&self, group_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT settings FROM technician_group_settings WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("settings")?),
            None => None,
        })
    }

    pub async fn global_settings_json(&self) -> Result<Option<String>> {
        let row = sqlx::query("SELECT settings FROM global_settings WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("settings")?),
            None => None,
        })
    }
}

pub async fn put_group_settings(tx: &mut Tx, group_id: i64, json: &str) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO technician_group_settings (group_id, settings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (group_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )
    .bind(group_id)
    .bind(json)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn put_global_settings(tx: &mut Tx, json: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO global_settings (id, settings, updated_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )
    .bind(json)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
