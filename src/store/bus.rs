//! The bus between nodes on one PostgreSQL (issue 15, DESIGN.md §8): messages are rows addressed
//! to a node, and `NOTIFY lens_bus` (payload: the addressee's id) only wakes it. The addressee
//! deletes its rows in id order and handles them, so a missed notification delays a message until
//! the next poll but never loses it. Also the one-Active-session claims, which must hold across
//! nodes and therefore live in the database rather than in any node's memory.

use sqlx::Row;

use super::nodes::DEAD_AFTER_MS;
use super::{Backend, Result, Store, Tx};

/// The channel every node listens on; the payload names the node a message waits for.
pub const BUS_CHANNEL: &str = "lens_bus";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub to_node: String,
    pub from_node: String,
    /// The client socket the message is about, numbered by the node that holds the socket.
    pub conn: i64,
    pub kind: String,
    pub body: String,
}

/// Inserts messages and wakes their addressees, inside the caller's transaction: the
/// notification goes out when (and only if) the transaction commits.
pub(crate) async fn send_in(tx: &mut Tx, backend: Backend, msgs: &[BusMessage]) -> Result<()> {
    let mut woken: Vec<&str> = Vec::new();
    for m in msgs {
        sqlx::query(
            "INSERT INTO node_messages (to_node, from_node, conn, kind, body) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&m.to_node)
        .bind(&m.from_node)
        .bind(m.conn)
        .bind(&m.kind)
        .bind(&m.body)
        .execute(&mut **tx)
        .await?;
        if !woken.contains(&m.to_node.as_str()) {
            woken.push(&m.to_node);
        }
    }
    if backend == Backend::Postgres {
        for node in woken {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(BUS_CHANNEL)
                .bind(node)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The SQL of "this claim's node is alive", by the database's clock.
fn claim_node_alive() -> String {
    format!(
        "EXISTS (SELECT 1 FROM nodes n WHERE n.id = technician_active.node_id AND n.heartbeat_at >= \
         CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) - {DEAD_AFTER_MS})"
    )
}

impl Store {
    /// Sends messages (their own transaction).
    pub async fn bus_send(&self, msgs: &[BusMessage]) -> Result<()> {
        let mut tx = self.begin().await?;
        send_in(&mut tx, self.backend(), msgs).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes (deletes and returns) up to `limit` messages waiting for `node`, oldest first.
    pub async fn bus_take(&self, node: &str, limit: i64) -> Result<Vec<(i64, BusMessage)>> {
        let rows = sqlx::query(
            "DELETE FROM node_messages WHERE id IN \
             (SELECT id FROM node_messages WHERE to_node = $1 ORDER BY id LIMIT $2) \
             RETURNING id, to_node, from_node, conn, kind, body",
        )
        .bind(node)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("id")?,
                    BusMessage {
                        to_node: r.try_get("to_node")?,
                        from_node: r.try_get("from_node")?,
                        conn: r.try_get("conn")?,
                        kind: r.try_get("kind")?,
                        body: r.try_get("body")?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// The node that holds a live session, if it is live and has one.
    pub async fn session_node(&self, session: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT node_id FROM sessions WHERE id = $1 AND ended_at IS NULL")
            .bind(session)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get("node_id")?,
            None => None,
        })
    }

    /// The node that holds the live session a customer's code opens: a PIN, or the hash of a link
    /// or resume token.
    pub async fn code_node(&self, pin: &str, hash: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT node_id FROM sessions WHERE ended_at IS NULL AND \
             (pin = $1 OR link_token_hash = $2 OR resume_token_hash = $2) LIMIT 1",
        )
        .bind(pin)
        .bind(hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => r.try_get("node_id")?,
            None => None,
        })
    }

    /// Of the sessions `held` by node `me`, those the store says another node holds now.
    pub async fn sessions_moved(&self, me: &str, held: &[i64]) -> Result<Vec<i64>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        // Numbers only, never text: inlined.
        let ids: Vec<String> = held.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT id FROM sessions WHERE id IN ({}) AND node_id IS NOT NULL AND node_id <> $1",
            ids.join(",")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("id")?))
            .collect()
    }

    /// Claims `session` as the technician's one Active session. False when another session
    /// holds the claim on a live node: the technician already has an Active session elsewhere.
    pub async fn claim_active(&self, technician: i64, session: i64, node: &str) -> Result<bool> {
        let sql = format!(
            "INSERT INTO technician_active (technician_id, session_id, node_id) VALUES ($1, $2, $3) \
             ON CONFLICT (technician_id) DO UPDATE SET session_id = excluded.session_id, \
             node_id = excluded.node_id WHERE technician_active.session_id = excluded.session_id \
             OR NOT {} RETURNING session_id",
            claim_node_alive()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(technician)
            .bind(session)
            .bind(node)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Gives up a claim (a refused pickup; the session left Active).
    pub async fn release_active(&self, technician: i64, session: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        release_in(&mut tx, technician, session).await?;
        tx.commit().await?;
        Ok(())
    }
}

pub(crate) async fn release_in(tx: &mut Tx, technician: i64, session: i64) -> Result<()> {
    sqlx::query("DELETE FROM technician_active WHERE technician_id = $1 AND session_id = $2")
        .bind(technician)
        .bind(session)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Drops the claims on `session`, but that of `keep` (the technician it is Active for, if any).
pub(crate) async fn release_others_in(tx: &mut Tx, session: i64, keep: Option<i64>) -> Result<()> {
    sqlx::query("DELETE FROM technician_active WHERE session_id = $1 AND technician_id <> $2")
        .bind(session)
        .bind(keep.unwrap_or(-1))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
