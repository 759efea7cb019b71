//! The node registry (issue 15): one row per `lens serve` on the store, with a heartbeat. Times
//! come from the database's clock, so that nodes whose clocks disagree still agree on who is dead.

use sqlx::Row;

use super::{Backend, Result, Store, StoreError};

/// A node writes its heartbeat this often, in milliseconds.
pub const HEARTBEAT_MS: i64 = 2_000;
/// A node whose heartbeat is older than this is dead.
pub const DEAD_AFTER_MS: i64 = 10_000;

/// What a node tells the registry about itself when it starts.
#[derive(Debug, Clone)]
pub struct NodeRegistration {
    pub id: String,
    pub internal_url: String,
    pub media_address: String,
    pub udp_port: i64,
    pub tcp_port: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub epoch: i64,
    pub internal_url: String,
    pub media_address: String,
    pub udp_port: i64,
    pub tcp_port: Option<i64>,
    pub state: String,
    pub load: i64,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// The database's clock when the row was read.
    pub read_at: i64,
    /// When the database server last started (0 on SQLite).
    pub store_up_since: i64,
}

impl NodeRow {
    /// A node is dead when it has not beaten for [`DEAD_AFTER_MS`] *while the store was up*: in
    /// the first 10 s after PostgreSQL (re)started no node could have beaten, so none is dead yet.
    pub fn alive(&self) -> bool {
        self.heartbeat_at >= self.read_at - DEAD_AFTER_MS
            || self.store_up_since >= self.read_at - DEAD_AFTER_MS
    }
}

/// When the database server started, in Unix milliseconds, as SQL.
pub(crate) fn db_up_since(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "CAST(EXTRACT(EPOCH FROM pg_postmaster_start_time()) * 1000 AS BIGINT)"
        }
        Backend::Sqlite => "0",
    }
}

/// The database's clock in Unix milliseconds, as SQL (the same expression on every node).
pub(crate) fn db_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

impl Store {
    /// Registers a starting node and returns its epoch: one more than the last start of the same
    /// id, so that anything the previous incarnation still writes with its epoch is refused. On
    /// SQLite the store has one node: rows of other ids (another host name) are dropped.
    pub async fn register_node(&self, n: &NodeRegistration) -> Result<i64> {
        let now = db_now(self.backend());
        let mut tx = self.begin().await?;
        if self.backend() == Backend::Sqlite {
            sqlx::query("DELETE FROM nodes WHERE id <> $1")
                .bind(&n.id)
                .execute(&mut *tx)
                .await?;
        }
        let sql = format!(
            "INSERT INTO nodes (id, epoch, internal_url, media_address, udp_port, tcp_port, state, load, \
             started_at, heartbeat_at) VALUES ($1, 1, $2, $3, $4, $5, 'serving', 0, {now}, {now}) \
             ON CONFLICT (id) DO UPDATE SET epoch = nodes.epoch + 1, internal_url = excluded.internal_url, \
             media_address = excluded.media_address, udp_port = excluded.udp_port, \
             tcp_port = excluded.tcp_port, state = 'serving', load = 0, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at RETURNING epoch"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&n.id)
            .bind(&n.internal_url)
            .bind(&n.media_address)
            .bind(n.udp_port)
            .bind(n.tcp_port)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.try_get("epoch")?)
    }

    /// A node's heartbeat: its load, and `draining` once it drains (never back). Answers the row's
    /// state (a drain asked through another node shows here), or `None` when the row belongs to a
    /// later incarnation of the id: this process is fenced off.
    pub async fn node_heartbeat(
        &self,
        id: &str,
        epoch: i64,
        load: i64,
        draining: bool,
    ) -> Result<Option<String>> {
        let sql = format!(
            "UPDATE nodes SET heartbeat_at = {}, load = $3, \
             state = CASE WHEN $4 = 1 THEN 'draining' ELSE state END \
             WHERE id = $1 AND epoch = $2 RETURNING state",
            db_now(self.backend())
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(epoch)
            .bind(load)
            .bind(i64::from(draining))
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("state")?),
            None => None,
        })
    }

    /// A node that stops cleanly: its row reads as dead at once.
    pub async fn node_stopped(&self, id: &str, epoch: i64) -> Result<()> {
        sqlx::query("UPDATE nodes SET heartbeat_at = 0, load = 0 WHERE id = $1 AND epoch = $2")
            .bind(id)
            .bind(epoch)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let sql = format!(
            "SELECT id, epoch, internal_url, media_address, udp_port, tcp_port, state, load, started_at, \
             heartbeat_at, {} AS read_at, {} AS store_up_since FROM nodes ORDER BY id",
            db_now(self.backend()),
            db_up_since(self.backend())
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow {
                    id: r.try_get("id")?,
                    epoch: r.try_get("epoch")?,
                    internal_url: r.try_get("internal_url")?,
                    media_address: r.try_get("media_address")?,
                    udp_port: r.try_get("udp_port")?,
                    tcp_port: r.try_get("tcp_port")?,
                    state: r.try_get("state")?,
                    load: r.try_get("load")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    read_at: r.try_get("read_at")?,
                    store_up_since: r.try_get("store_up_since")?,
                })
            })
            .collect()
    }

    pub async fn node(&self, id: &str) -> Result<NodeRow> {
        self.nodes()
            .await?
            .into_iter()
            .find(|n| n.id == id)
            .ok_or(StoreError::NotFound)
    }

    /// Marks a live node draining; it sees the state at its next heartbeat. A dead node is a
    /// conflict (`node_dead`): nothing would act on the request.
    pub async fn request_drain(&self, id: &str) -> Result<()> {
        let sql = format!(
            "UPDATE nodes SET state = 'draining' WHERE id = $1 AND heartbeat_at >= {} - $2",
            db_now(self.backend())
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(DEAD_AFTER_MS)
            .execute(self.pool())
            .await?
            .rows_affected();
        if done == 0 {
            self.node(id).await?;
            return Err(StoreError::Conflict("node_dead"));
        }
        Ok(())
    }
}
