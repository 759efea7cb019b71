//! Append-only login history, the source of the Login report. Each login row keeps its end (the
//! user's next login or logout) and its covered time (migration 0024), kept here when a login or
//! logout is recorded and by `write_session_timings` when a session's live spans are written.

use std::collections::HashMap;

use sqlx::AnyConnection;

use super::{Result, Store};
use crate::reports::Timings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginEvent {
    Login,
    Logout,
}

/// A login whose end is known: (row id, user, start, end).
pub(crate) type EndedLogin = (i64, i64, i64, i64);

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
        let mut tx = self.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO logins (user_id, event, method, address, at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id",
        )
        .bind(user_id)
        .bind(event)
        .bind(method)
        .bind(address)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        // In (at, id) order the new row ends the row before it, if a login, and a new login ends
        // at the row after it (none unless recorded out of order).
        let before: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, event, at FROM logins WHERE user_id = $1 AND at <= $2 AND (at < $2 OR id < $3) \
             ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(at)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let after: Option<(i64,)> = sqlx::query_as(
            "SELECT at FROM logins WHERE user_id = $1 AND at >= $2 AND (at > $2 OR id > $3) \
             ORDER BY at, id LIMIT 1",
        )
        .bind(user_id)
        .bind(at)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut ended = Vec::new();
        if let Some((before, kind, start)) = before
            && kind == "login"
        {
            ended.push((before, user_id, start, at));
        }
        if let Some((end,)) = after
            && event == "login"
        {
            ended.push((id, user_id, at, end));
        }
        end_logins(&mut tx, &ended).await?;
        tx.commit().await?;
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

    /// The stored live spans (from, to) of ended sessions, by technician, of each
    /// (technician, from, to) in `ranges` that overlap its range: unsorted (the caller merges
    /// them with spans of its own).
    pub async fn stored_spans(
        &self,
        ranges: &[(i64, i64, i64)],
    ) -> Result<HashMap<i64, Vec<(i64, i64)>>> {
        let mut conn = self.pool().acquire().await?;
        spans_in(&mut conn, ranges).await
    }
}

/// Per user (or technician), one (user, from, to) range holding all of their (user, from, to)
/// `intervals`: what `spans_in` and `logins_in` read.
pub(crate) fn ranges_by_user(
    intervals: impl IntoIterator<Item = (i64, i64, i64)>,
) -> Vec<(i64, i64, i64)> {
    let mut ranges: HashMap<i64, (i64, i64)> = HashMap::new();
    for (user, a, b) in intervals {
        let r = ranges.entry(user).or_insert((a, b));
        *r = (r.0.min(a), r.1.max(b));
    }
    ranges.into_iter().map(|(u, (a, b))| (u, a, b)).collect()
}

/// Sets the end of `logins` and their covered time: the part of [start, end) inside the stored
/// live spans of any of the user's sessions.
pub(crate) async fn end_logins(conn: &mut AnyConnection, logins: &[EndedLogin]) -> Result<()> {
    for chunk in logins.chunks(200) {
        let ranges = ranges_by_user(chunk.iter().map(|&(_, user, a, b)| (user, a, b)));
        let spans = spans_in(conn, &ranges).await?;
        let spans: HashMap<i64, Vec<(i64, i64)>> = spans
            .into_iter()
            .map(|(u, v)| (u, Timings::merged(v)))
            .collect();
        let (mut ends, mut covered, mut ids) = (String::new(), String::new(), Vec::new());
        for &(id, user, a, b) in chunk {
            let mine = spans.get(&user).map_or(&[][..], |v| v.as_slice());
            let c = Timings::covered_within(mine, a, b);
            ends.push_str(&format!(" WHEN {id} THEN {b}"));
            covered.push_str(&format!(" WHEN {id} THEN {c}"));
            ids.push(id.to_string());
        }
        if ids.is_empty() {
            continue;
        }
        // Numbers only.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE logins SET end_at = CASE id{ends} END, covered = CASE id{covered} END \
             WHERE id IN ({})",
            ids.join(",")
        )))
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The stored spans (from, to) overlapping each (technician, from, to) of `ranges`, by
/// technician, unsorted. Each reads the index `session_spans_live` from its start: the spans
/// ending after it.
async fn spans_in(
    conn: &mut AnyConnection,
    ranges: &[(i64, i64, i64)],
) -> Result<HashMap<i64, Vec<(i64, i64)>>> {
    let mut out: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for chunk in ranges.chunks(50) {
        let parts: Vec<String> = chunk
            .iter()
            .map(|(t, a, b)| {
                format!(
                    "SELECT live_technician_id, start_at, end_at FROM session_spans \
                     WHERE live_technician_id = {t} AND end_at > {a} AND start_at < {b}"
                )
            })
            .collect();
        let rows: Vec<(i64, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(parts.join(" UNION ALL ")))
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
        for (t, a, b) in rows {
            out.entry(t).or_default().push((a, b));
        }
    }
    Ok(out)
}

/// The logins (with an end) of each (user, from, to) of `ranges` that overlap its range. A
/// user's logins do not overlap (each ends at the user's next row), so they are those starting
/// in it and the user's row just before it if that is a login ending inside: two index reads.
pub(crate) async fn logins_in(
    conn: &mut AnyConnection,
    ranges: &[(i64, i64, i64)],
) -> Result<Vec<EndedLogin>> {
    let mut out = Vec::new();
    for chunk in ranges.chunks(50) {
        let parts: Vec<String> = chunk
            .iter()
            .map(|(u, a, b)| {
                format!(
                    "SELECT id, user_id, at, end_at FROM logins WHERE user_id = {u} AND at >= {a} \
                     AND at < {b} AND event = 'login' AND end_at IS NOT NULL UNION ALL \
                     SELECT id, user_id, at, end_at FROM (SELECT id, user_id, at, end_at, event \
                     FROM logins WHERE user_id = {u} AND at < {a} ORDER BY at DESC, id DESC LIMIT 1) p \
                     WHERE p.event = 'login' AND p.end_at > {a}"
                )
            })
            .collect();
        let rows: Vec<EndedLogin> = sqlx::query_as(sqlx::AssertSqlSafe(parts.join(" UNION ALL ")))
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}
