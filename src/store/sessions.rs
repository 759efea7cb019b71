//! Lens sessions: the session row (its current state and what the customer told us), the
//! append-only events, chat, notes, technician status history and the outbox.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, now_ms, unique_violation};

/// A session as stored. `status` uses the guide's names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionRow {
    pub id: i64,
    pub created_by: i64,
    pub technician_id: Option<i64>,
    pub group_id: i64,
    pub method: String,
    pub pin: Option<String>,
    pub link_token_hash: Option<String>,
    pub code_expires_at: i64,
    pub resume_token_hash: Option<String>,
    pub name: String,
    pub custom_fields: [String; 5],
    pub tracking_id: String,
    pub phone: String,
    pub email: String,
    pub status: String,
    pub status_since: i64,
    pub before_reconnecting: Option<String>,
    pub last_activity: i64,
    pub ever_active: bool,
    pub policy: String,
    pub customer_ip: String,
    pub device: DeviceRow,
    pub transmitted_bytes: i64,
    pub created_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceRow {
    pub platform: String,
    pub model: String,
    pub app: String,
    pub browser: String,
    pub locale: String,
    pub device_id: String,
}

/// The mutable lifecycle part of a session, written with each batch of events.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionState {
    pub status: String,
    pub status_since: i64,
    pub before_reconnecting: Option<String>,
    pub last_activity: i64,
    pub ever_active: bool,
    pub technician_id: Option<i64>,
    pub group_id: i64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub at: i64,
    pub from_status: String,
    pub to_status: String,
    pub actor: String,
    pub actor_id: Option<i64>,
    pub reason: String,
    pub technician_id: Option<i64>,
    pub group_id: i64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRow {
    pub at: i64,
    pub sender: String,
    pub sender_id: Option<i64>,
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub session_id: Option<i64>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub provider: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

macro_rules! session_columns {
    () => {
        "id, created_by, technician_id, group_id, method, pin, link_token_hash, code_expires_at, \
         resume_token_hash, name, cfield1, cfield2, cfield3, cfield4, cfield5, tracking_id, phone, email, \
         status, status_since, before_reconnecting, last_activity, ever_active, policy, customer_ip, \
         platform, device_model, app, browser, locale, device_id, transmitted_bytes, created_at, ended_at"
    };
}

fn session_from(r: &AnyRow) -> Result<SessionRow> {
    Ok(SessionRow {
        id: r.try_get("id")?,
        created_by: r.try_get("created_by")?,
        technician_id: r.try_get("technician_id")?,
        group_id: r.try_get("group_id")?,
        method: r.try_get("method")?,
        pin: r.try_get("pin")?,
        link_token_hash: r.try_get("link_token_hash")?,
        code_expires_at: r.try_get("code_expires_at")?,
        resume_token_hash: r.try_get("resume_token_hash")?,
        name: r.try_get("name")?,
        custom_fields: [
            r.try_get("cfield1")?,
            r.try_get("cfield2")?,
            r.try_get("cfield3")?,
            r.try_get("cfield4")?,
            r.try_get("cfield5")?,
        ],
        tracking_id: r.try_get("tracking_id")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        status: r.try_get("status")?,
        status_since: r.try_get("status_since")?,
        before_reconnecting: r.try_get("before_reconnecting")?,
        last_activity: r.try_get("last_activity")?,
        ever_active: r.try_get::<i64, _>("ever_active")? != 0,
        policy: r.try_get("policy")?,
        customer_ip: r.try_get("customer_ip")?,
        device: DeviceRow {
            platform: r.try_get("platform")?,
            model: r.try_get("device_model")?,
            app: r.try_get("app")?,
            browser: r.try_get("browser")?,
            locale: r.try_get("locale")?,
            device_id: r.try_get("device_id")?,
        },
        transmitted_bytes: r.try_get("transmitted_bytes")?,
        created_at: r.try_get("created_at")?,
        ended_at: r.try_get("ended_at")?,
    })
}

/// Filter for listing sessions.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub status: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Only sessions created by or owned by one of these technicians, or in one of these groups.
    pub technicians: Option<Vec<i64>>,
    pub groups: Option<Vec<i64>>,
    pub limit: i64,
}

/// One write of the session hub; a batch of them is one transaction.
#[derive(Debug, Clone)]
pub enum SessionWrite {
    Transitions(i64, SessionState, Vec<EventRow>),
    Touch(i64, i64),
    Chat(i64, ChatRow),
    Transmitted(i64, i64),
    /// One use of a technician's tool on the live picture, counted on the session.
    Tool(i64, signaling::tools::ToolUse),
    /// Frames for a client socket on another node (routed signaling): committed with the state
    /// they report, the addressee woken at the commit.
    Bus(super::bus::BusMessage),
    /// Claims on a session as a technician's one Active session go, but the kept technician's.
    Release(i64, Option<i64>),
}

impl Store {
    /// Writes a batch of the hub's writes in one transaction, in order.
    pub async fn write_sessions(&self, writes: &[SessionWrite]) -> Result<()> {
        let mut tx = self.begin().await?;
        for w in writes {
            match w {
                SessionWrite::Transitions(id, state, events) => {
                    transitions_in(&mut tx, *id, state, events).await?
                }
                SessionWrite::Touch(id, at) => {
                    sqlx::query("UPDATE sessions SET last_activity = $1 WHERE id = $2")
                        .bind(*at)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                SessionWrite::Chat(id, c) => {
                    sqlx::query(
                        "INSERT INTO chat_messages (session_id, at, sender, sender_id, name, text) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(*id)
                    .bind(c.at)
                    .bind(&c.sender)
                    .bind(c.sender_id)
                    .bind(&c.name)
                    .bind(&c.text)
                    .execute(&mut *tx)
                    .await?;
                }
                SessionWrite::Transmitted(id, bytes) => {
                    sqlx::query("UPDATE sessions SET transmitted_bytes = $1 WHERE id = $2")
                        .bind(*bytes)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                SessionWrite::Tool(id, used) => {
                    use signaling::tools::ToolUse;
                    // A fixed column per use: never a name taken from input.
                    let sql = match used {
                        ToolUse::Stroke => {
                            "UPDATE sessions SET annotation_strokes = annotation_strokes + 1 WHERE id = $1"
                        }
                        ToolUse::Clear => {
                            "UPDATE sessions SET annotation_clears = annotation_clears + 1 WHERE id = $1"
                        }
                        ToolUse::Freeze => {
                            "UPDATE sessions SET freezes = freezes + 1 WHERE id = $1"
                        }
                        ToolUse::Url => {
                            "UPDATE sessions SET urls_sent = urls_sent + 1 WHERE id = $1"
                        }
                    };
                    sqlx::query(sql).bind(*id).execute(&mut *tx).await?;
                }
                SessionWrite::Bus(m) => {
                    super::bus::send_in(&mut tx, self.backend(), std::slice::from_ref(m)).await?
                }
                SessionWrite::Release(session, keep) => {
                    super::bus::release_others_in(&mut tx, *session, *keep).await?
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inserts a new session; a PIN that is already live elsewhere is a conflict (`pin_taken`).
    pub async fn insert_session(&self, s: &SessionRow) -> Result<i64> {
        self.insert_session_on(s, None).await
    }

    /// Inserts a new session held by a node (issue 15: a restarted node takes back its own).
    pub async fn insert_session_on(&self, s: &SessionRow, node_id: Option<&str>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO sessions (created_by, technician_id, group_id, method, pin, link_token_hash, \
             code_expires_at, resume_token_hash, name, cfield1, cfield2, cfield3, cfield4, cfield5, tracking_id, \
             phone, email, status, status_since, before_reconnecting, last_activity, ever_active, policy, \
             customer_ip, platform, device_model, app, browser, locale, device_id, transmitted_bytes, created_at, ended_at, \
             node_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34) RETURNING id",
        )
        .bind(s.created_by)
        .bind(s.technician_id)
        .bind(s.group_id)
        .bind(&s.method)
        .bind(&s.pin)
        .bind(&s.link_token_hash)
        .bind(s.code_expires_at)
        .bind(&s.resume_token_hash)
        .bind(&s.name)
        .bind(&s.custom_fields[0])
        .bind(&s.custom_fields[1])
        .bind(&s.custom_fields[2])
        .bind(&s.custom_fields[3])
        .bind(&s.custom_fields[4])
        .bind(&s.tracking_id)
        .bind(&s.phone)
        .bind(&s.email)
        .bind(&s.status)
        .bind(s.status_since)
        .bind(&s.before_reconnecting)
        .bind(s.last_activity)
        .bind(i64::from(s.ever_active))
        .bind(&s.policy)
        .bind(&s.customer_ip)
        .bind(&s.device.platform)
        .bind(&s.device.model)
        .bind(&s.device.app)
        .bind(&s.device.browser)
        .bind(&s.device.locale)
        .bind(&s.device.device_id)
        .bind(s.transmitted_bytes)
        .bind(s.created_at)
        .bind(s.ended_at)
        .bind(node_id)
        .fetch_one(self.pool())
        .await
        .map_err(|e| unique_violation(e, "pin_taken"))?;
        Ok(row.try_get("id")?)
    }

    /// Replaces a session's stored policy: its surveys (self-hosted URLs carry the session id) are
    /// known only once the row has its id.
    pub async fn set_session_policy(&self, id: i64, policy: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET policy = $1 WHERE id = $2")
            .bind(policy)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn session(&self, id: i64) -> Result<SessionRow> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        session_from(&row)
    }

    /// Sessions not yet in a final status (restored after a restart).
    pub async fn live_sessions(&self) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE ended_at IS NULL ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(session_from).collect()
    }

    /// The live sessions a node held (and those stored before nodes existed): what it restores
    /// when several nodes share the store.
    pub async fn live_sessions_of(&self, node_id: &str) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE ended_at IS NULL AND (node_id = $1 OR node_id IS NULL) ORDER BY id"
        ))
        .bind(node_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(session_from).collect()
    }

    /// A live session if node `node` owns it.
    pub async fn live_session_on(&self, id: i64, node: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1 AND node_id = $2 AND ended_at IS NULL"
        ))
        .bind(id)
        .bind(node)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_from).transpose()
    }

    /// Drain: gives a live session of node `from` to the node `take` is addressed to, in one
    /// transaction with `take` (which tells that node) and the technician's Active claim. False
    /// when `from` no longer owns it (ended, or taken over meanwhile): nothing changes.
    pub async fn move_session(
        &self,
        id: i64,
        from: &str,
        take: &super::bus::BusMessage,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let moved = sqlx::query(
            "UPDATE sessions SET node_id = $3 WHERE id = $1 AND node_id = $2 AND ended_at IS NULL",
        )
        .bind(id)
        .bind(from)
        .bind(&take.to_node)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            return Ok(false);
        }
        sqlx::query("UPDATE technician_active SET node_id = $2 WHERE session_id = $1")
            .bind(id)
            .bind(&take.to_node)
            .execute(&mut *tx)
            .await?;
        super::bus::send_in(&mut tx, self.backend(), std::slice::from_ref(take)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes over the live sessions of node `dead` for node `me`, if `dead` is dead by the
    /// database's clock (no heartbeat for 10 s). Row by row the update is atomic: when several
    /// nodes try at once, each session goes to exactly one of them.
    pub async fn adopt_sessions(&self, dead: &str, me: &str) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE sessions SET node_id = $2 WHERE ended_at IS NULL AND node_id = $1 AND EXISTS \
             (SELECT 1 FROM nodes n WHERE n.id = $1 AND n.heartbeat_at < \
             CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) - {}) RETURNING {}",
            super::nodes::DEAD_AFTER_MS,
            session_columns!()
        )))
        .bind(dead)
        .bind(me)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows.iter().map(session_from).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    pub async fn sessions(&self, f: &SessionFilter) -> Result<Vec<SessionRow>> {
        // Scope lists are short (a technician's groups); they are inlined as numbers, never text.
        let list = |ids: &[i64]| {
            if ids.is_empty() {
                "NULL".to_string()
            } else {
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        let mut scope = Vec::new();
        if let Some(t) = &f.technicians {
            let l = list(t);
            scope.push(format!("technician_id IN ({l}) OR created_by IN ({l})"));
        }
        if let Some(g) = &f.groups {
            scope.push(format!("group_id IN ({})", list(g)));
        }
        let scope = if scope.is_empty() {
            String::new()
        } else {
            format!(" AND ({})", scope.join(" OR "))
        };
        let sql = format!(
            "SELECT {} FROM sessions WHERE ($1 = '' OR status = $1) AND created_at >= $2 AND created_at < $3{scope} \
             ORDER BY id DESC LIMIT $4",
            session_columns!()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.status.clone().unwrap_or_default())
            .bind(f.from.unwrap_or(0))
            .bind(f.to.unwrap_or(i64::MAX))
            .bind(f.limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(session_from).collect()
    }

    /// A live session by its PIN.
    pub async fn session_by_pin(&self, pin: &str) -> Result<SessionRow> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE pin = $1"
        ))
        .bind(pin)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        session_from(&row)
    }

    pub async fn session_by_link(&self, token_hash: &str) -> Result<SessionRow> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE link_token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        session_from(&row)
    }

    /// Writes the session's new state and appends its events in one transaction.
    pub async fn record_transitions(
        &self,
        id: i64,
        state: &SessionState,
        events: &[EventRow],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        transitions_in(&mut tx, id, state, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How often the technicians of a session used their tools on the live picture.
    pub async fn tool_counts(&self, id: i64) -> Result<signaling::tools::ToolCounts> {
        let r = sqlx::query(
            "SELECT annotation_strokes, annotation_clears, freezes, urls_sent FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(signaling::tools::ToolCounts {
            annotation_strokes: r.try_get("annotation_strokes")?,
            annotation_clears: r.try_get("annotation_clears")?,
            freezes: r.try_get("freezes")?,
            urls_sent: r.try_get("urls_sent")?,
        })
    }

    /// What the session's media transmitted, both peers and both ways (reports, Post-to-URL).
    pub async fn set_transmitted_bytes(&self, id: i64, bytes: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET transmitted_bytes = $1 WHERE id = $2")
            .bind(bytes)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Only the last-activity time (activity without a transition).
    pub async fn touch_session(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_activity = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The code was used: it cannot be used again. Stores the customer's address and device.
    pub async fn session_joined(
        &self,
        id: i64,
        customer_ip: &str,
        device: &DeviceRow,
        resume_token_hash: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET pin = NULL, link_token_hash = NULL, customer_ip = $1, platform = $2, \
             device_model = $3, app = $4, browser = $5, locale = $6, device_id = $7, resume_token_hash = $8 \
             WHERE id = $9",
        )
        .bind(customer_ip)
        .bind(&device.platform)
        .bind(&device.model)
        .bind(&device.app)
        .bind(&device.browser)
        .bind(&device.locale)
        .bind(&device.device_id)
        .bind(resume_token_hash)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session_events(&self, id: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT seq, at, from_status, to_status, actor, actor_id, reason, technician_id, group_id, detail \
             FROM session_events WHERE session_id = $1 ORDER BY seq, id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    from_status: r.try_get("from_status")?,
                    to_status: r.try_get("to_status")?,
                    actor: r.try_get("actor")?,
                    actor_id: r.try_get("actor_id")?,
                    reason: r.try_get("reason")?,
                    technician_id: r.try_get("technician_id")?,
                    group_id: r.try_get("group_id")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// The highest event sequence number of a session (to continue after a restart).
    pub async fn last_event_seq(&self, id: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) AS n FROM session_events WHERE session_id = $1",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn insert_chat(&self, session_id: i64, c: &ChatRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_messages (session_id, at, sender, sender_id, name, text) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session_id)
        .bind(c.at)
        .bind(&c.sender)
        .bind(c.sender_id)
        .bind(&c.name)
        .bind(&c.text)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn chat_of(&self, session_id: i64) -> Result<Vec<ChatRow>> {
        let rows = sqlx::query(
            "SELECT at, sender, sender_id, name, text FROM chat_messages WHERE session_id = $1 ORDER BY id",
        )
        .bind(session_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ChatRow {
                    at: r.try_get("at")?,
                    sender: r.try_get("sender")?,
                    sender_id: r.try_get("sender_id")?,
                    name: r.try_get("name")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }

    pub async fn insert_note(&self, session_id: i64, technician_id: i64, text: &str) -> Result<()> {
        sqlx::query("INSERT INTO session_notes (session_id, technician_id, at, text) VALUES ($1, $2, $3, $4)")
            .bind(session_id)
            .bind(technician_id)
            .bind(now_ms())
            .bind(text)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// (technician id, at, text) of a session's notes, oldest first.
    pub async fn notes_of(&self, session_id: i64) -> Result<Vec<(i64, i64, String)>> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT technician_id, at, text FROM session_notes WHERE session_id = $1 ORDER BY id",
        )
        .bind(session_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    pub async fn record_technician_status(
        &self,
        user_id: i64,
        status: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO technician_status_events (user_id, at, status) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(at)
        .bind(status)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// (at, status) of a technician's console status history, oldest first.
    pub async fn technician_statuses(&self, user_id: i64) -> Result<Vec<(i64, String)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT at, status FROM technician_status_events WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    pub async fn enqueue_outbox(
        &self,
        kind: &str,
        session_id: Option<i64>,
        recipient: &str,
        subject: &str,
        body: &str,
        provider: &str,
    ) -> Result<i64> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO outbox (kind, session_id, recipient, subject, body, provider, status, attempts, \
             next_attempt_at, last_error, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, '', $8) RETURNING id",
        )
        .bind(kind)
        .bind(session_id)
        .bind(recipient)
        .bind(subject)
        .bind(body)
        .bind(provider)
        .bind(now)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Pending outbox items due now, oldest first.
    pub async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, session_id, recipient, subject, body, provider, status, attempts, next_attempt_at, \
             last_error, created_at, sent_at FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_from).collect()
    }

    pub async fn outbox(
        &self,
        kind: Option<&str>,
        session_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, session_id, recipient, subject, body, provider, status, attempts, next_attempt_at, \
             last_error, created_at, sent_at FROM outbox WHERE ($1 = '' OR kind = $1) AND ($2 = 0 OR session_id = $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(kind.unwrap_or(""))
        .bind(session_id.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_from).collect()
    }

    pub async fn outbox_sent(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A failed attempt: retried at `retry_at`, or given up (`failed`) when `retry_at` is None.
    pub async fn outbox_failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        let status = if retry_at.is_some() {
            "pending"
        } else {
            "failed"
        };
        sqlx::query(
            "UPDATE outbox SET status = $1, last_error = $2, attempts = attempts + 1, next_attempt_at = $3 WHERE id = $4",
        )
        .bind(status)
        .bind(error)
        .bind(retry_at.unwrap_or(0))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

async fn transitions_in(
    tx: &mut super::Tx,
    id: i64,
    state: &SessionState,
    events: &[EventRow],
) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET status = $1, status_since = $2, before_reconnecting = $3, last_activity = $4, \
         ever_active = $5, technician_id = $6, group_id = $7, ended_at = $8 WHERE id = $9",
    )
    .bind(&state.status)
    .bind(state.status_since)
    .bind(&state.before_reconnecting)
    .bind(state.last_activity)
    .bind(i64::from(state.ever_active))
    .bind(state.technician_id)
    .bind(state.group_id)
    .bind(state.ended_at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if state.ended_at.is_some() {
        // A dead session's codes are free for reuse.
        sqlx::query("UPDATE sessions SET pin = NULL, link_token_hash = NULL, resume_token_hash = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    for e in events {
        sqlx::query(
            "INSERT INTO session_events (session_id, seq, at, from_status, to_status, actor, actor_id, reason, \
             technician_id, group_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(e.seq)
        .bind(e.at)
        .bind(&e.from_status)
        .bind(&e.to_status)
        .bind(&e.actor)
        .bind(e.actor_id)
        .bind(&e.reason)
        .bind(e.technician_id)
        .bind(e.group_id)
        .bind(&e.detail)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(ended_at) = state.ended_at {
        // The reports' computed times, written once with the final event.
        super::reports::session_ended(tx, id, ended_at).await?;
    }
    Ok(())
}

fn outbox_from(r: &AnyRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        session_id: r.try_get("session_id")?,
        recipient: r.try_get("recipient")?,
        subject: r.try_get("subject")?,
        body: r.try_get("body")?,
        provider: r.try_get("provider")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        sent_at: r.try_get("sent_at")?,
    })
}
