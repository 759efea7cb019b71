//! Integrations in the store: Post-to-URL deliveries (a durable outbox) and their per-group signing
//! secrets, API keys of apps, per-user API tokens, single sign-on tickets and the company ID.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, Tx, unique_violation};

/// One Post-to-URL delivery, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PostDelivery {
    pub id: i64,
    pub session_id: i64,
    pub group_id: i64,
    pub technician_id: Option<i64>,
    pub trigger: String,
    pub url: String,
    pub format: String,
    pub content_type: String,
    pub body: String,
    pub signature: String,
    pub idempotency_key: String,
    pub chat_upto: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status_code: Option<i64>,
    pub last_error: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// What a new delivery carries; the store adds status, attempts and times.
#[derive(Debug, Clone)]
pub struct NewPostDelivery {
    pub session_id: i64,
    pub group_id: i64,
    pub technician_id: Option<i64>,
    pub trigger: String,
    pub url: String,
    pub format: String,
    pub content_type: String,
    pub body: String,
    pub signature: String,
    pub idempotency_key: String,
    pub chat_upto: i64,
}

const DELIVERY_COLUMNS: &str = "id, session_id, group_id, technician_id, trigger_kind, url, format, content_type, \
     body, signature, idempotency_key, chat_upto, status, attempts, next_attempt_at, last_status_code, \
     last_error, created_at, sent_at";

fn delivery_from(r: &AnyRow) -> Result<PostDelivery> {
    Ok(PostDelivery {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        group_id: r.try_get("group_id")?,
        technician_id: r.try_get("technician_id")?,
        trigger: r.try_get("trigger_kind")?,
        url: r.try_get("url")?,
        format: r.try_get("format")?,
        content_type: r.try_get("content_type")?,
        body: r.try_get("body")?,
        signature: r.try_get("signature")?,
        idempotency_key: r.try_get("idempotency_key")?,
        chat_upto: r.try_get("chat_upto")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_status_code: r.try_get("last_status_code")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        sent_at: r.try_get("sent_at")?,
    })
}

/// Filter for listing deliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub session_id: Option<i64>,
    pub status: Option<String>,
    /// Only deliveries of these groups (administrators).
    pub groups: Option<Vec<i64>>,
    pub limit: i64,
}

/// An API key of an app that embeds the customer side.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: i64,
    pub key_prefix: String,
    pub app_id: String,
    pub description: String,
    pub enabled: bool,
    pub use_count: i64,
    pub last_used_at: Option<i64>,
    pub created_by: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const KEY_COLUMNS: &str = "id, key_prefix, app_id, description, enabled, use_count, last_used_at, created_by, \
     created_at, updated_at";

fn key_from(r: &AnyRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        key_prefix: r.try_get("key_prefix")?,
        app_id: r.try_get("app_id")?,
        description: r.try_get("description")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        use_count: r.try_get("use_count")?,
        last_used_at: r.try_get("last_used_at")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A per-user API token (its hash is never read back out of the store).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: i64,
    pub token_prefix: String,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const API_TOKEN_COLUMNS: &str =
    "id, token_prefix, user_id, name, created_at, expires_at, last_used_at, revoked_at";

fn api_token_from(r: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.try_get("id")?,
        token_prefix: r.try_get("token_prefix")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Store {
    pub async fn insert_post_delivery(&self, d: &NewPostDelivery, now: i64) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO post_deliveries (session_id, group_id, technician_id, trigger_kind, url, format, \
             content_type, body, signature, idempotency_key, chat_upto, status, attempts, next_attempt_at, \
             last_status_code, last_error, created_at, sent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, 'pending', 0, $12, NULL, '', $13, NULL) RETURNING id",
        )
        .bind(d.session_id)
        .bind(d.group_id)
        .bind(d.technician_id)
        .bind(&d.trigger)
        .bind(&d.url)
        .bind(&d.format)
        .bind(&d.content_type)
        .bind(&d.body)
        .bind(&d.signature)
        .bind(&d.idempotency_key)
        .bind(d.chat_upto)
        .bind(now)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Pending deliveries due now, oldest first, at most one per session: a session's deliveries
    /// go out in the order they were made.
    pub async fn due_post_deliveries(&self, now: i64, limit: i64) -> Result<Vec<PostDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM post_deliveries p WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM post_deliveries q WHERE q.session_id = p.session_id \
             AND q.status = 'pending' AND q.id < p.id) ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(delivery_from).collect()
    }

    /// Claims a due delivery until `lease_until` (so no other worker or node sends it meanwhile).
    /// False when someone else claimed it first.
    pub async fn claim_post_delivery(
        &self,
        id: i64,
        seen_next_attempt_at: i64,
        lease_until: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE post_deliveries SET next_attempt_at = $1 WHERE id = $2 AND status = 'pending' \
             AND next_attempt_at = $3",
        )
        .bind(lease_until)
        .bind(id)
        .bind(seen_next_attempt_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn post_delivery_sent(&self, id: i64, status_code: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE post_deliveries SET status = 'sent', sent_at = $1, attempts = attempts + 1, \
             last_status_code = $2, last_error = '' WHERE id = $3",
        )
        .bind(at)
        .bind(status_code)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A failed attempt: retried at `retry_at`, or given up (`failed`) when it is None.
    pub async fn post_delivery_failed(
        &self,
        id: i64,
        status_code: Option<i64>,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<()> {
        let status = if retry_at.is_some() {
            "pending"
        } else {
            "failed"
        };
        sqlx::query(
            "UPDATE post_deliveries SET status = $1, attempts = attempts + 1, last_status_code = $2, \
             last_error = $3, next_attempt_at = $4 WHERE id = $5",
        )
        .bind(status)
        .bind(status_code)
        .bind(error)
        .bind(retry_at.unwrap_or(0))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn post_deliveries(&self, f: &DeliveryFilter) -> Result<Vec<PostDelivery>> {
        let groups = match &f.groups {
            None => String::new(),
            Some(ids) if ids.is_empty() => " AND 1 = 0".to_string(),
            // Numbers only, never text.
            Some(ids) => format!(
                " AND group_id IN ({})",
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM post_deliveries WHERE ($1 = 0 OR session_id = $1) \
             AND ($2 = '' OR status = $2){groups} ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.session_id.unwrap_or(0))
            .bind(f.status.clone().unwrap_or_default())
            .bind(f.limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(delivery_from).collect()
    }

    /// How many chat lines a session has.
    pub async fn chat_count(&self, session_id: i64) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM chat_messages WHERE session_id = $1")
            .bind(session_id)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// How many of a session's chat lines its earlier deliveries covered.
    pub async fn post_chat_upto(&self, session_id: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(chat_upto), 0) AS n FROM post_deliveries WHERE session_id = $1",
        )
        .bind(session_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// (id, at, sender, name, text) of a session's chat lines after `after_id`, oldest first.
    pub async fn chat_after(
        &self,
        session_id: i64,
        after_id: i64,
    ) -> Result<Vec<(i64, i64, String, String, String)>> {
        let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, at, sender, name, text FROM chat_messages WHERE session_id = $1 AND id > $2 ORDER BY id",
        )
        .bind(session_id)
        .bind(after_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    pub async fn post_secret(&self, group_id: i64) -> Result<Option<(String, i64)>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT secret, created_at FROM post_secrets WHERE group_id = $1")
                .bind(group_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row)
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(key_from).collect()
    }

    pub async fn api_key(&self, id: i64) -> Result<ApiKey> {
        key_from(&self.one_row("api_keys", KEY_COLUMNS, "id", id).await?)
    }

    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<ApiKey> {
        key_from(
            &self
                .one_row("api_keys", KEY_COLUMNS, "key_hash", key_hash.to_string())
                .await?,
        )
    }

    /// The row of `table` whose `column` equals `value` (names are ours, never input).
    async fn one_row<T>(&self, table: &str, columns: &str, column: &str, value: T) -> Result<AnyRow>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
    {
        let sql = format!("SELECT {columns} FROM {table} WHERE {column} = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Counts one use of a key (a customer joined with it).
    pub async fn api_key_used(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE api_keys SET use_count = use_count + 1, last_used_at = $1 WHERE id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn insert_api_token(
        &self,
        token_hash: &str,
        prefix: &str,
        user_id: i64,
        name: &str,
        created_at: i64,
        expires_at: Option<i64>,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (token_hash, token_prefix, user_id, name, created_at, expires_at, \
             last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL) RETURNING id",
        )
        .bind(token_hash)
        .bind(prefix)
        .bind(user_id)
        .bind(name)
        .bind(created_at)
        .bind(expires_at)
        .fetch_one(self.pool())
        .await
        .map_err(|e| unique_violation(e, "token_taken"))?;
        Ok(row.try_get("id")?)
    }

    /// Tokens of one user, or of everyone (`None`), newest first.
    pub async fn api_tokens(&self, user_id: Option<i64>) -> Result<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE ($1 = 0 OR user_id = $1) ORDER BY id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id.unwrap_or(0))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(api_token_from).collect()
    }

    pub async fn api_token(&self, id: i64) -> Result<ApiToken> {
        api_token_from(
            &self
                .one_row("api_tokens", API_TOKEN_COLUMNS, "id", id)
                .await?,
        )
    }

    pub async fn api_token_by_hash(&self, token_hash: &str) -> Result<ApiToken> {
        let value = token_hash.to_string();
        api_token_from(
            &self
                .one_row("api_tokens", API_TOKEN_COLUMNS, "token_hash", value)
                .await?,
        )
    }

    pub async fn api_token_used(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn revoke_api_token(&self, id: i64, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn insert_sso_ticket(
        &self,
        ticket_hash: &str,
        user_id: i64,
        address: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sso_tickets (ticket_hash, user_id, address, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(ticket_hash)
        .bind(user_id)
        .bind(address)
        .bind(created_at)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Uses a ticket up: the user it logs in, if it exists, is unused and has not expired.
    /// `Err(NotFound)` for unknown; `Ok(None)` for used or expired.
    pub async fn use_sso_ticket(&self, ticket_hash: &str, now: i64) -> Result<Option<i64>> {
        // One UPDATE decides, so two racing uses of one ticket cannot both win.
        let done = sqlx::query(
            "UPDATE sso_tickets SET used_at = $1 WHERE ticket_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(ticket_hash)
        .execute(self.pool())
        .await?;
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT user_id FROM sso_tickets WHERE ticket_hash = $1")
                .bind(ticket_hash)
                .fetch_optional(self.pool())
                .await?;
        match row {
            None => Err(StoreError::NotFound),
            Some((user,)) => Ok((done.rows_affected() > 0).then_some(user)),
        }
    }

    /// The company ID, chosen at random the first time it is asked for.
    pub async fn company_id(&self) -> Result<i64> {
        let candidate: i64 = rand::random_range(100_000..1_000_000_000);
        sqlx::query(
            "INSERT INTO company (id, company_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(candidate)
        .execute(self.pool())
        .await?;
        let row: (i64,) = sqlx::query_as("SELECT company_id FROM company WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(row.0)
    }

    /// Live users with this single sign-on ID.
    pub async fn users_by_sso_id(&self, sso_id: &str) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM users WHERE sso_id = $1 AND deleted_at IS NULL ORDER BY id",
        )
        .bind(sso_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

pub async fn put_post_secret(tx: &mut Tx, group_id: i64, secret: &str, at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO post_secrets (group_id, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (group_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at",
    )
    .bind(group_id)
    .bind(secret)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn delete_post_secret(tx: &mut Tx, group_id: i64) -> Result<bool> {
    let done = sqlx::query("DELETE FROM post_secrets WHERE group_id = $1")
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn insert_api_key(
    tx: &mut Tx,
    key_hash: &str,
    prefix: &str,
    app_id: &str,
    description: &str,
    created_by: i64,
    at: i64,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO api_keys (key_hash, key_prefix, app_id, description, enabled, use_count, last_used_at, \
         created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, 1, 0, NULL, $5, $6, $6) RETURNING id",
    )
    .bind(key_hash)
    .bind(prefix)
    .bind(app_id)
    .bind(description)
    .bind(created_by)
    .bind(at)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| unique_violation(e, "key_taken"))?;
    Ok(row.try_get("id")?)
}

pub async fn update_api_key(tx: &mut Tx, key: &ApiKey, at: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE api_keys SET app_id = $1, description = $2, enabled = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(&key.app_id)
    .bind(&key.description)
    .bind(i64::from(key.enabled))
    .bind(at)
    .bind(key.id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
