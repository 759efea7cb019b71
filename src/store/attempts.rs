//! Wrong customer codes per client address, counted in the store so that the limit holds across
//! nodes (issue 15). Times come from the database's clock, as the node registry's do.

use sqlx::Row;

use super::nodes::db_now;
use super::{Result, Store};

impl Store {
    /// `Some(retry_after_ms)` when `address` had `limit` or more wrong codes in the last
    /// `window_ms`: the wait until the oldest of them leaves the window.
    pub async fn code_failures_exceeded(
        &self,
        address: &str,
        limit: u32,
        window_ms: i64,
    ) -> Result<Option<i64>> {
        let now = db_now(self.backend());
        let sql = format!(
            "SELECT COUNT(*) AS n, COALESCE(MIN(at), 0) AS oldest, {now} AS now \
             FROM code_failures WHERE address = $1 AND at > {now} - $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(address)
            .bind(window_ms)
            .fetch_one(self.pool())
            .await?;
        let n: i64 = row.try_get("n")?;
        if n < i64::from(limit) {
            return Ok(None);
        }
        let (oldest, now): (i64, i64) = (row.try_get("oldest")?, row.try_get("now")?);
        Ok(Some((window_ms - (now - oldest)).max(0)))
    }

    /// Counts one wrong code of `address`, and forgets those older than the window.
    pub async fn code_failed(&self, address: &str, window_ms: i64) -> Result<()> {
        let now = db_now(self.backend());
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO code_failures (address, at) VALUES ($1, {now})"
        )))
        .bind(address)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM code_failures WHERE at <= {now} - $1"
        )))
        .bind(window_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
