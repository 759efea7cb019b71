//! The recordings table: one row per session recording, its storage status and upload attempts.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError};

/// Where a recording is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    /// Being written (straight into its location, or into the spool).
    Recording,
    /// Complete in the spool, waiting for its upload.
    Spooled,
    Uploading,
    /// In its location (written there directly, or uploaded and confirmed).
    Uploaded,
    /// Recording or upload failed: see `last_error`. A spooled file is kept for a retry.
    Failed,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Spooled => "spooled",
            RecordingStatus::Uploading => "uploading",
            RecordingStatus::Uploaded => "uploaded",
            RecordingStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> RecordingStatus {
        match s {
            "recording" => RecordingStatus::Recording,
            "spooled" => RecordingStatus::Spooled,
            "uploading" => RecordingStatus::Uploading,
            "uploaded" => RecordingStatus::Uploaded,
            _ => RecordingStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRow {
    pub id: i64,
    pub session_id: i64,
    pub group_id: i64,
    /// Redacted (never a password).
    pub location: String,
    pub file_name: String,
    pub deferred: bool,
    pub size_bytes: i64,
    pub duration_ms: i64,
    pub codecs: String,
    pub status: RecordingStatus,
    pub last_error: Option<String>,
    pub attempts: i64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub updated_at: i64,
}

macro_rules! recording_columns {
    () => {
        "id, session_id, group_id, location, file_name, deferred, size_bytes, duration_ms, codecs, \
         status, last_error, attempts, started_at, ended_at, updated_at"
    };
}

fn from_row(r: &AnyRow) -> Result<RecordingRow> {
    Ok(RecordingRow {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        group_id: r.try_get("group_id")?,
        location: r.try_get("location")?,
        file_name: r.try_get("file_name")?,
        deferred: r.try_get::<i64, _>("deferred")? != 0,
        size_bytes: r.try_get("size_bytes")?,
        duration_ms: r.try_get("duration_ms")?,
        codecs: r.try_get("codecs")?,
        status: RecordingStatus::parse(&r.try_get::<String, _>("status")?),
        last_error: r.try_get("last_error")?,
        attempts: r.try_get("attempts")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What changes as a recording progresses (`None` = keep).
#[derive(Debug, Clone, Default)]
pub struct RecordingUpdate {
    pub status: Option<RecordingStatus>,
    pub size_bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    pub codecs: Option<String>,
    /// `Some(None)` clears it.
    pub last_error: Option<Option<String>>,
    pub attempts: Option<i64>,
    pub ended_at: Option<i64>,
}

impl Store {
    /// Stores a new recording written by `node`'s recorder.
    pub async fn insert_recording(&self, r: &RecordingRow, node: &str) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO recordings (session_id, group_id, location, file_name, deferred, size_bytes, \
             duration_ms, codecs, status, last_error, attempts, started_at, ended_at, updated_at, \
             node_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(r.session_id)
        .bind(r.group_id)
        .bind(&r.location)
        .bind(&r.file_name)
        .bind(i64::from(r.deferred))
        .bind(r.size_bytes)
        .bind(r.duration_ms)
        .bind(&r.codecs)
        .bind(r.status.as_str())
        .bind(&r.last_error)
        .bind(r.attempts)
        .bind(r.started_at)
        .bind(r.ended_at)
        .bind(r.updated_at)
        .bind(node)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("id")?)
    }

    pub async fn recording(&self, id: i64) -> Result<RecordingRow> {
        let row = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    pub async fn recordings_of_session(&self, session_id: i64) -> Result<Vec<RecordingRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE session_id = $1 ORDER BY id"
        ))
        .bind(session_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn update_recording(&self, id: i64, u: &RecordingUpdate, now: i64) -> Result<()> {
        let current = self.recording(id).await?;
        let error = match &u.last_error {
            Some(e) => e.clone(),
            None => current.last_error,
        };
        sqlx::query(
            "UPDATE recordings SET status = $1, size_bytes = $2, duration_ms = $3, codecs = $4, \
             last_error = $5, attempts = $6, ended_at = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(u.status.unwrap_or(current.status).as_str())
        .bind(u.size_bytes.unwrap_or(current.size_bytes))
        .bind(u.duration_ms.unwrap_or(current.duration_ms))
        .bind(u.codecs.clone().unwrap_or(current.codecs))
        .bind(error)
        .bind(u.attempts.unwrap_or(current.attempts))
        .bind(u.ended_at.or(current.ended_at))
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A retry to a corrected location (already redacted).
    pub async fn set_recording_location(&self, id: i64, location: &str) -> Result<()> {
        sqlx::query("UPDATE recordings SET location = $1 WHERE id = $2")
            .bind(location)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Recordings still `recording`: at start, the ones a stopped server left behind.
    /// The recordings of `from` not uploaded yet now belong to `to`, which took over its spool.
    pub async fn recordings_to_node(&self, from: &str, to: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE recordings SET node_id = $1 WHERE node_id = $2 AND status <> 'uploaded'",
        )
        .bind(to)
        .bind(from)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Recordings still marked as being written: all of them (`node` None: one node, whatever
    /// its id was), or those of `node` and of no node (several nodes: others may be writing theirs).
    pub async fn recordings_in_progress(&self, node: Option<&str>) -> Result<Vec<RecordingRow>> {
        let rows = match node {
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    recording_columns!(),
                    " FROM recordings WHERE status = 'recording' ORDER BY id"
                ))
                .fetch_all(self.pool())
                .await?
            }
            Some(node) => {
                sqlx::query(concat!(
                    "SELECT ",
                    recording_columns!(),
                    " FROM recordings WHERE status = 'recording' \
                     AND (node_id = $1 OR node_id IS NULL) ORDER BY id"
                ))
                .bind(node)
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }
}

/// A recording with the technician of its session, for the Recordings view.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingListRow {
    pub recording: RecordingRow,
    pub technician_id: Option<i64>,
}

impl Store {
    /// Recordings of the newest sessions first, the files of one session together in the order
    /// they were written (a session moved to another node goes on in a second file), optionally
    /// of one group, of one technician's sessions, of one session.
    pub async fn recordings(
        &self,
        group_id: Option<i64>,
        technician_id: Option<i64>,
        session_id: Option<i64>,
    ) -> Result<Vec<RecordingListRow>> {
        let mut sql = String::from(concat!(
            "SELECT ",
            recording_columns!(),
            ", (SELECT technician_id FROM sessions WHERE sessions.id = recordings.session_id) \
             AS technician_id FROM recordings WHERE 1 = 1"
        ));
        let mut n = 0;
        if group_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND group_id = ${n}"));
        }
        if technician_id.is_some() {
            n += 1;
            sql.push_str(&format!(
                " AND session_id IN (SELECT id FROM sessions WHERE technician_id = ${n})"
            ));
        }
        if session_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND session_id = ${n}"));
        }
        sql.push_str(" ORDER BY session_id DESC, id");
        // Only placeholders are added to the text; the values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(g) = group_id {
            q = q.bind(g);
        }
        if let Some(t) = technician_id {
            q = q.bind(t);
        }
        if let Some(s) = session_id {
            q = q.bind(s);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(RecordingListRow {
                    recording: from_row(r)?,
                    technician_id: r.try_get("technician_id")?,
                })
            })
            .collect()
    }

    /// The key recording links are signed with; made at random on first use.
    pub async fn recording_link_key(&self) -> Result<String> {
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        sqlx::query(
            "INSERT INTO recording_link_keys (id, secret, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&fresh)
        .bind(super::now_ms())
        .execute(self.pool())
        .await?;
        let row = sqlx::query("SELECT secret FROM recording_link_keys WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("secret")?)
    }

    /// A new key: every link signed with the old one stops working. Returns when it was made.
    pub async fn rotate_recording_link_key(&self) -> Result<i64> {
        let now = super::now_ms();
        sqlx::query(
            "INSERT INTO recording_link_keys (id, secret, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at",
        )
        .bind(hex::encode(rand::random::<[u8; 32]>()))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(now)
    }
}
