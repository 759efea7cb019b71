//! Login tokens: only their SHA-256 is stored, so a copy of the store cannot be used to log in.

use sqlx::Row;

use super::{Result, Store, StoreError};

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub user_id: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// How the login was made: `password` or `sso`.
    pub method: String,
}

impl Store {
    pub async fn insert_token(
        &self,
        token_hash: &str,
        user_id: i64,
        created_at: i64,
        expires_at: i64,
        address: &str,
        method: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at, address, method) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(created_at)
        .bind(expires_at)
        .bind(address)
        .bind(method)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn token(&self, token_hash: &str) -> Result<TokenRow> {
        let row = sqlx::query(
            "SELECT user_id, expires_at, revoked_at, method FROM auth_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(TokenRow {
            user_id: row.try_get("user_id")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            method: row.try_get("method")?,
        })
    }

    pub async fn revoke_token(&self, token_hash: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE auth_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(token_hash)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes every live token of a user except `keep` (after a password change or a disable).
    pub async fn revoke_user_tokens(
        &self,
        user_id: i64,
        keep: Option<&str>,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE auth_tokens SET revoked_at = $1 \
             WHERE user_id = $2 AND revoked_at IS NULL AND token_hash <> $3",
        )
        .bind(at)
        .bind(user_id)
        .bind(keep.unwrap_or(""))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
