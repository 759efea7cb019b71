//! Append-only login history, the source of the Login report.

use super::{Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginEvent {
    Login,
    Logout,
}

impl Store {
    pub async fn record_login(
        &self,
        user_id: i64,
        event: LoginEvent,
        method: &str,
        address: &str,
        at: i64,
    ) -> Result<()> {
        let event = match event {
            LoginEvent::Login => "login",
            LoginEvent::Logout => "logout",
        };
        sqlx::query(
            "INSERT INTO logins (user_id, event, method, address, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id)
        .bind(event)
        .bind(method)
        .bind(address)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// (event, method, address, at) of a user's logins, oldest first.
    pub async fn logins_of(&self, user_id: i64) -> Result<Vec<(String, String, String, i64)>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT event, method, address, at FROM logins WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}
