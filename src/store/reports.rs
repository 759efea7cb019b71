//! What the reports read: sessions with their events in a time window, logins, console statuses,
//! chat, notes, surveys, audit rows; and the two writes that belong to reports (survey answers,
//! chatlog deletion). Everything is read in bulk, ordered, and computed in `crate::reports`.
//!
//! Statements built for one call (numbers written into their text: a window, ids, a chunk's key)
//! are run with `persistent(false)`: their text is not seen again, and sqlx would otherwise keep
//! each prepared, up to 100 per connection (with SQLite, tens of MB held by a streamed export).

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError};
use crate::reports::Timings;
use crate::store::sessions::{ChatRow, EventRow};

/// The columns of a `SurveyRow` (a macro, so queries stay `&'static str`).
macro_rules! survey_select {
    () => {
        "SELECT a.id AS survey_id, a.session_id, a.kind, a.technician_id, a.group_id, a.issued_by_closing, \
         a.submitted_at, a.answers, s.name, s.ended_at FROM survey_answers a \
         JOIN sessions s ON s.id = a.session_id"
    };
}

/// A user as reports name it, deleted users included (their sessions stay in the reports).
#[derive(Debug, Clone)]
pub struct PersonRow {
    pub id: i64,
    pub role: String,
    pub name: String,
    pub nickname: String,
    pub email: String,
    pub group_id: Option<i64>,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

/// The session columns reports show, and its events in order.
#[derive(Debug, Clone, Default)]
pub struct ReportSession {
    pub id: i64,
    pub created_by: i64,
    pub technician_id: Option<i64>,
    pub group_id: i64,
    pub name: String,
    pub custom_fields: [String; 5],
    pub tracking_id: String,
    pub status: String,
    pub customer_ip: String,
    pub platform: String,
    pub browser: String,
    pub device_id: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub events: Vec<EventRow>,
}

/// A login and its end: the user's next login or logout (None: still logged in).
#[derive(Debug, Clone)]
pub struct LoginRow {
    /// The login's row id: with `at`, the key a streamed export continues after.
    pub id: i64,
    pub user_id: i64,
    pub address: String,
    pub at: i64,
    pub end: Option<i64>,
    /// The stored covered time of [at, end) (migration 0024), when the end is the stored one.
    pub covered: Option<i64>,
}

/// A submitted survey.
#[derive(Debug, Clone)]
pub struct SurveyRow {
    pub session_id: i64,
    pub kind: String,
    pub technician_id: i64,
    pub group_id: i64,
    pub issued_by_closing: bool,
    pub submitted_at: i64,
    /// (question, answer) in the survey's order.
    pub answers: Vec<(String, String)>,
    /// Read back only: the session's name field and end.
    pub session_name: String,
    pub session_ended_at: Option<i64>,
}

/// A queued chatlog deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatlogDeletion {
    pub session_id: i64,
    pub queued_at: i64,
    pub queued_by: i64,
    pub purge_at: i64,
    pub purged_at: Option<i64>,
}

impl Store {
    pub async fn report_people(&self) -> Result<Vec<PersonRow>> {
        let rows = sqlx::query(
            "SELECT id, role, name, nickname, email, group_id, created_at, deleted_at FROM users ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PersonRow {
                    id: r.try_get("id")?,
                    role: r.try_get("role")?,
                    name: r.try_get("name")?,
                    nickname: r.try_get("nickname")?,
                    email: r.try_get("email")?,
                    group_id: r.try_get("group_id")?,
                    created_at: r.try_get("created_at")?,
                    deleted_at: r.try_get("deleted_at")?,
                })
            })
            .collect()
    }

    /// Group names by id, deleted groups included.
    pub async fn report_group_names(&self) -> Result<Vec<(i64, String)>> {
        Ok(
            sqlx::query_as("SELECT id, name FROM org_groups ORDER BY id")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Sessions created in `[from, to)` with their events, in id order.
    pub async fn report_sessions(&self, from: i64, to: i64) -> Result<Vec<ReportSession>> {
        self.report_sessions_where("s.created_at >= $1 AND s.created_at < $2", from, to)
            .await
    }

    /// Sessions with the ids `ids` (in order), with their events, in id order: a few are looked
    /// up by id, many are read as the id range they span.
    pub async fn report_sessions_in(&self, ids: &[i64]) -> Result<Vec<ReportSession>> {
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return Ok(Vec::new());
        };
        if ids.len() > 1000 {
            let mut sessions = self.report_sessions_between(first, last).await?;
            sessions.retain(|s| ids.binary_search(&s.id).is_ok());
            return Ok(sessions);
        }
        let condition = format!("s.id IN ({}) AND $1 <= $2", id_list(ids));
        self.report_sessions_where(&condition, first, last).await
    }

    /// Sessions matching `condition` (on `s`, with two bound numbers; anything else in it is
    /// numbers only) with their events, in id order. Two ordered scans merged here rather than a
    /// join per session.
    async fn report_sessions_where(
        &self,
        condition: &str,
        a: i64,
        b: i64,
    ) -> Result<Vec<ReportSession>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE {condition} ORDER BY s.id"
        )))
        .persistent(false)
        .bind(a)
        .bind(b)
        .fetch_all(self.pool())
        .await?;
        let mut sessions = rows
            .iter()
            .map(report_session)
            .collect::<Result<Vec<_>>>()?;
        let (Some(first), Some(last)) = (sessions.first(), sessions.last()) else {
            return Ok(sessions);
        };
        let columns = "session_id, seq, at, from_status, to_status, actor, actor_id, reason, technician_id, \
             group_id, detail";
        // Session ids grow with creation time, so many sessions are an id range of the events'
        // index; a few (the live ones, perhaps far apart) are looked up one by one.
        let which = if sessions.len() <= 1000 {
            let ids: Vec<String> = sessions.iter().map(|s| s.id.to_string()).collect();
            format!("session_id IN ({}) AND $1 <= $2", ids.join(","))
        } else {
            "session_id >= $1 AND session_id <= $2".to_owned()
        };
        let events = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {columns} FROM session_events WHERE {which} ORDER BY session_id, seq"
        )))
        .persistent(false)
        .bind(first.id)
        .bind(last.id)
        .fetch_all(self.pool())
        .await?;
        let mut i = 0;
        for r in &events {
            let sid: i64 = r.try_get("session_id")?;
            while i < sessions.len() && sessions[i].id < sid {
                i += 1;
            }
            if i == sessions.len() {
                break;
            }
            if sessions[i].id != sid {
                continue;
            }
            sessions[i].events.push(EventRow {
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
            });
        }
        Ok(sessions)
    }

    /// The logins (not logouts) matching `filter` (on `l`, built from numbers only), oldest first
    /// (the page's only, with a page), each paired with its end: the user's next login or logout
    /// before `until`. The end is looked up per login in `logins_user_at_id`, so the database reads
    /// a page's logins and their ends, not every login of the window.
    pub async fn report_logins(
        &self,
        filter: &str,
        until: i64,
        page: Option<Page>,
    ) -> Result<Vec<LoginRow>> {
        let limit = page.map_or_else(String::new, |p| {
            format!(" LIMIT {} OFFSET {}", p.limit, p.offset)
        });
        // A login's end is kept on its row (migration 0024); only a login without one (still
        // open, or written before its end was kept) looks for the user's next row. There
        // `n.at >= l.at` alone bounds the index range (the tie on `at` is broken by id). The
        // next row is taken first and kept only if before `until` (the same answer): with that
        // bound in the index range, PostgreSQL guessed 3 later rows per user instead of 261 and,
        // unless the table had just been vacuumed, fetched and sorted all of them for each login.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT l.id, l.user_id, l.address, l.at, l.end_at, l.covered, CASE WHEN l.end_at IS NULL \
             THEN {NEXT_LOGIN_ROW} END AS next_at \
             FROM logins l WHERE l.event = 'login' AND {filter} ORDER BY l.at, l.id{limit}"
        )))
        .persistent(false)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kept: Option<i64> = r.try_get("end_at")?;
                let next: Option<i64> = r.try_get("next_at")?;
                let end = kept.or(next).filter(|e| *e < until);
                Ok(LoginRow {
                    id: r.try_get("id")?,
                    user_id: r.try_get("user_id")?,
                    address: r.try_get("address")?,
                    at: r.try_get("at")?,
                    end,
                    covered: match (kept, end) {
                        (Some(_), Some(_)) => Some(r.try_get("covered")?),
                        _ => None,
                    },
                })
            })
            .collect()
    }

    /// Each user's Total Login Time over the logins matching `filter` (as in `report_logins`):
    /// a login lasts to its end if before `until`, else to `now`.
    pub async fn report_login_time(
        &self,
        filter: &str,
        until: i64,
        now: i64,
    ) -> Result<HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT x.user_id, CAST(SUM(CASE WHEN x.e < {until} THEN x.e ELSE {now} END - x.at) AS BIGINT) \
             FROM (SELECT l.user_id, l.at, CASE WHEN l.end_at IS NULL THEN {NEXT_LOGIN_ROW} \
             ELSE l.end_at END AS e FROM logins l WHERE l.event = 'login' AND {filter}) x \
             GROUP BY x.user_id"
        )))
        .persistent(false)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// The one number a counting statement (built from numbers only) answers.
    async fn count_of(&self, sql: String) -> Result<u64> {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    /// How many logins match `filter` (as in `report_logins`).
    pub async fn report_login_count(&self, filter: &str) -> Result<u64> {
        self.count_of(format!(
            "SELECT COUNT(*) FROM logins l WHERE l.event = 'login' AND {filter}"
        ))
        .await
    }

    /// The console statuses (at, status) of `users` in force in `[from, to)`, by user, oldest
    /// first: those in it and the last before it (the status at `from`). Folded per user by the
    /// database.
    pub async fn report_console_statuses(
        &self,
        users: &[i64],
        from: i64,
        to: i64,
    ) -> Result<HashMap<i64, Vec<(i64, String)>>> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        // CROSS JOIN: per user, from the last status before `from` (index range on user, at);
        // grouped by `u.id`, the order users are read in, so without a sort.
        let rows: Vec<(i64, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT u.id, string_agg(CAST(s.at AS TEXT) || ',' || s.status, ';' ORDER BY s.at, s.id) \
             FROM users u CROSS JOIN technician_status_events s WHERE u.id IN ({}) AND s.user_id = u.id \
             AND s.at >= COALESCE((SELECT MAX(p.at) FROM technician_status_events p \
             WHERE p.user_id = u.id AND p.at < {from}), {from}) AND s.at < {to} GROUP BY u.id",
            id_list(users)
        )))
        .persistent(false)
        .fetch_all(self.pool())
        .await?;
        unfold(rows, |at, status| {
            Some((at.parse().ok()?, status.to_owned()))
        })
    }

    /// Chat of the sessions with ids in `[first, last]`, by session then order.
    pub async fn report_chat(&self, first: i64, last: i64) -> Result<Vec<(i64, ChatRow)>> {
        let rows = sqlx::query(
            "SELECT session_id, at, sender, sender_id, name, text FROM chat_messages \
             WHERE session_id >= $1 AND session_id <= $2 ORDER BY session_id, id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("session_id")?,
                    ChatRow {
                        at: r.try_get("at")?,
                        sender: r.try_get("sender")?,
                        sender_id: r.try_get("sender_id")?,
                        name: r.try_get("name")?,
                        text: r.try_get("text")?,
                    },
                ))
            })
            .collect()
    }

    /// Which of the sessions `ids` have chat (kept, not purged).
    pub async fn report_sessions_with_chat(&self, ids: &[i64]) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT session_id FROM chat_messages WHERE session_id IN ({})",
            id_list(ids)
        )))
        .persistent(false)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// (session, at, text) of notes of the sessions with ids in `[first, last]`.
    pub async fn report_notes(&self, first: i64, last: i64) -> Result<Vec<(i64, i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT session_id, at, text FROM session_notes WHERE session_id >= $1 AND session_id <= $2 \
             ORDER BY session_id, id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn insert_survey(&self, s: &SurveyRow) -> Result<()> {
        let answers = serde_json::Value::Array(
            s.answers
                .iter()
                .map(|(q, a)| serde_json::json!({"question": q, "answer": a}))
                .collect(),
        );
        sqlx::query(
            "INSERT INTO survey_answers (session_id, kind, technician_id, group_id, issued_by_closing, \
             submitted_at, answers) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.session_id)
        .bind(&s.kind)
        .bind(s.technician_id)
        .bind(s.group_id)
        .bind(i64::from(s.issued_by_closing))
        .bind(s.submitted_at)
        .bind(answers.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The first `limit` surveys of `kind` submitted in `[from, to)` after `after` in (submission
    /// time, id) order, each with its id: a chunk of a report read in pieces (through
    /// `survey_answers_kind_at`, from the key on).
    pub async fn report_surveys_after(
        &self,
        kind: &str,
        from: i64,
        to: i64,
        after: Key,
        limit: u64,
    ) -> Result<Vec<(i64, SurveyRow)>> {
        let rows = sqlx::query(concat!(
            survey_select!(),
            " WHERE a.kind = $1 AND a.submitted_at >= $2 AND a.submitted_at < $3 \
             AND a.submitted_at >= $4 AND (a.submitted_at > $4 OR a.id > $5) \
             ORDER BY a.submitted_at, a.id LIMIT $6"
        ))
        .bind(kind)
        .bind(from)
        .bind(to)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("survey_id")?, survey_row(r)?)))
            .collect()
    }

    /// The survey of `kind` submitted for a session, if any (each is submitted at most once).
    pub async fn session_survey(&self, session_id: i64, kind: &str) -> Result<Option<SurveyRow>> {
        let row = sqlx::query(concat!(
            survey_select!(),
            " WHERE a.session_id = $1 AND a.kind = $2 ORDER BY a.id LIMIT 1"
        ))
        .bind(session_id)
        .bind(kind)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(survey_row).transpose()
    }

    /// Every queued or done chatlog deletion (`session` = one session's only).
    pub async fn chatlog_deletions(&self, session: Option<i64>) -> Result<Vec<ChatlogDeletion>> {
        let rows: Vec<(i64, i64, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT session_id, queued_at, queued_by, purge_at, purged_at FROM chatlog_deletions \
             WHERE $1 = 0 OR session_id = $1",
        )
        .bind(session.unwrap_or(0))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(session_id, queued_at, queued_by, purge_at, purged_at)| ChatlogDeletion {
                    session_id,
                    queued_at,
                    queued_by,
                    purge_at,
                    purged_at,
                },
            )
            .collect())
    }

    /// Queues a deletion with its audit row in one transaction; `Conflict` if one is queued or done.
    pub async fn queue_chatlog_deletion(
        &self,
        d: &ChatlogDeletion,
        audit: &super::AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO chatlog_deletions (session_id, queued_at, queued_by, purge_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(d.session_id)
        .bind(d.queued_at)
        .bind(d.queued_by)
        .bind(d.purge_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| super::unique_violation(e, "deletion_queued"))?;
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a pending deletion (before `now` reaches its purge time) with its audit row.
    pub async fn revoke_chatlog_deletion(
        &self,
        session_id: i64,
        now: i64,
        audit: &super::AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "DELETE FROM chatlog_deletions WHERE session_id = $1 AND purged_at IS NULL AND purge_at > $2",
        )
        .bind(session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Purges the chat of every deletion due at `now`; returns the sessions purged.
    pub async fn purge_due_chatlogs(&self, now: i64) -> Result<Vec<i64>> {
        let due: Vec<(i64,)> = sqlx::query_as(
            "SELECT session_id FROM chatlog_deletions WHERE purged_at IS NULL AND purge_at <= $1",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut purged = Vec::new();
        for (session_id,) in due {
            let mut tx = self.begin().await?;
            sqlx::query("DELETE FROM chat_messages WHERE session_id = $1")
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE chatlog_deletions SET purged_at = $1 WHERE session_id = $2")
                .bind(now)
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            purged.push(session_id);
        }
        Ok(purged)
    }

    /// The first `limit` audit rows in `[from, to)` after `after` in (time, id) order: a chunk of
    /// the Audit report (through `audit_log_at`, from the key on).
    pub async fn report_audit_after(
        &self,
        from: i64,
        to: i64,
        after: Key,
        limit: u64,
    ) -> Result<Vec<super::AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, at, requested_by_id, requested_by_name, entity_type, entity_id, entity_name, \
             change_type, section, field, old_value, old_action, new_value, new_action FROM audit_log \
             WHERE at >= $1 AND at < $2 AND at >= $3 AND (at > $3 OR id > $4) ORDER BY at, id LIMIT $5",
        )
        .bind(from)
        .bind(to)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(super::audit::row_from).collect()
    }
}

/// A SQL list of ids, for `IN (...)` (`NULL` for none: matches nothing).
pub(crate) fn id_list<'a>(ids: impl IntoIterator<Item = &'a i64>) -> String {
    let mut v: Vec<i64> = ids.into_iter().copied().collect();
    if v.is_empty() {
        return "NULL".into();
    }
    v.sort_unstable();
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn survey_row(r: &AnyRow) -> Result<SurveyRow> {
    let answers: String = r.try_get("answers")?;
    let answers: Vec<serde_json::Value> = serde_json::from_str(&answers).unwrap_or_default();
    Ok(SurveyRow {
        session_id: r.try_get("session_id")?,
        kind: r.try_get("kind")?,
        technician_id: r.try_get("technician_id")?,
        group_id: r.try_get("group_id")?,
        issued_by_closing: r.try_get::<i64, _>("issued_by_closing")? != 0,
        submitted_at: r.try_get("submitted_at")?,
        answers: answers
            .iter()
            .map(|a| {
                let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                (s("question"), s("answer"))
            })
            .collect(),
        session_name: r.try_get("name")?,
        session_ended_at: r.try_get("ended_at")?,
    })
}

/// Reads back rows of (key, "a,b;a,b;...") folded by the database with `string_agg` (the values
/// are numbers and status names: neither separator occurs in them).
fn unfold<T>(
    rows: Vec<(i64, Option<String>)>,
    item: impl Fn(&str, &str) -> Option<T>,
) -> Result<HashMap<i64, Vec<T>>> {
    rows.into_iter()
        .map(|(key, folded)| {
            let folded = folded.unwrap_or_default();
            let list = folded
                .split(';')
                .filter(|e| !e.is_empty())
                .map(|e| {
                    e.split_once(',')
                        .and_then(|(a, b)| item(a, b))
                        .ok_or_else(|| bad_fold(&folded))
                })
                .collect::<Result<Vec<T>>>()?;
            Ok((key, list))
        })
        .collect()
}

/// A sum as BIGINT, 0 when nothing matches (PostgreSQL sums BIGINT as NUMERIC).
fn sum_of(column: &str) -> String {
    format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT)")
}

/// A value folded by the database that does not read back.
fn bad_fold(folded: &str) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(
        format!("folded rows: {folded:.80}").into(),
    ))
}

/// The columns of `session_timings`, in the order `timing_values` writes them.
const TIMING_COLUMNS: &str = "session_id, created_at, created_by, technician_id, group_id, \
     connecting_start, waiting_start, start_at, end_at, last_action, final_status, connecting, waiting, \
     active, hold, transfer, reconnecting, total, work, joined, handled, missed, failed, transfers";

/// One `session_timings` row as SQL values: numbers, and the final status (a status name, quoted).
fn timing_values(s: &ReportSession, t: &Timings) -> String {
    let opt = |v: Option<i64>| v.map_or_else(|| "NULL".to_owned(), |v| v.to_string());
    let flag = |b: bool| i64::from(b);
    format!(
        "({},{},{},{},{},{},{},{},{},{},'{}',{},{},{},{},{},{},{},{},{},{},{},{},{})",
        s.id,
        s.created_at,
        s.created_by,
        opt(s.technician_id),
        s.group_id,
        opt(t.connecting_start),
        opt(t.waiting_start),
        opt(t.start),
        opt(t.end),
        opt(t.last_action),
        t.final_status.replace('\'', "''"),
        t.connecting,
        t.waiting,
        t.active,
        t.hold,
        t.transfer,
        t.reconnecting,
        t.total(),
        t.work(),
        flag(t.joined()),
        flag(t.handled()),
        flag(t.missed()),
        flag(t.failed()),
        t.transfers,
    )
}

/// Writes the timing rows of ended sessions (replacing any), computed by `Timings::of` from
/// their events. `now` only matters for a session whose events do not end in a final status.
pub(crate) async fn write_session_timings(
    tx: &mut super::Tx,
    sessions: &[(ReportSession, i64)],
) -> Result<()> {
    for chunk in sessions.chunks(400) {
        let ids: Vec<String> = chunk.iter().map(|(s, _)| s.id.to_string()).collect();
        let values: Vec<String> = chunk
            .iter()
            .map(|(s, now)| timing_values(s, &Timings::of(&s.events, *now)))
            .collect();
        // Ids and computed numbers only.
        // Rows being replaced (never on the hub's path, where a session ends once, nor in the
        // backfill, which writes missing rows only): their buckets are rebuilt from the rows
        // that stay, before the new rows are added to them.
        let replaced: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT created_at FROM session_timings WHERE session_id IN ({})",
            ids.join(",")
        )))
        .persistent(false)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM session_timings WHERE session_id IN ({})",
            ids.join(",")
        )))
        .persistent(false)
        .execute(&mut **tx)
        .await?;
        if !replaced.is_empty() {
            rebuild_buckets(tx, replaced.iter().map(|r| r.0)).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO session_timings ({TIMING_COLUMNS}) VALUES {}",
            values.join(",")
        )))
        .persistent(false)
        .execute(&mut **tx)
        .await?;
        let added = format!("t.session_id IN ({})", ids.join(","));
        add_to_all_buckets(tx, &added).await?;
        // The spans replaced (a rewrite) and written change the covered time of the logins
        // they overlap (migration 0024).
        let mut changed: Vec<(i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT live_technician_id, start_at, end_at FROM session_spans WHERE session_id IN ({})",
            ids.join(",")
        )))
        .persistent(false)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM session_spans WHERE session_id IN ({})",
            ids.join(",")
        )))
        .persistent(false)
        .execute(&mut **tx)
        .await?;
        let mut spans: Vec<String> = Vec::new();
        for (s, now) in chunk {
            for (t, a, b) in Timings::live_spans(&s.events, *now) {
                spans.push(format!(
                    "({},{},{},{},{},{t},{a},{b})",
                    s.id,
                    s.created_at,
                    s.created_by,
                    s.technician_id
                        .map_or_else(|| "NULL".to_owned(), |v| v.to_string()),
                    s.group_id
                ));
                changed.push((t, a, b));
            }
        }
        for part in spans.chunks(400) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO session_spans (session_id, created_at, created_by, technician_id, group_id, \
                 live_technician_id, start_at, end_at) VALUES {}",
                part.join(",")
            )))
            .persistent(false)
            .execute(&mut **tx)
            .await?;
        }
        // Per technician, one range holding their changed spans: its logins are covered again.
        let ranges = super::logins::ranges_by_user(changed);
        let logins = super::logins::logins_in(tx, &ranges).await?;
        super::logins::end_logins(tx, &logins).await?;
    }
    Ok(())
}

/// Adds the timing rows matching `filter` (on `t`, numbers only) to every bucket table: the
/// session buckets (0019), the totals (0022), the transfer buckets (0021) and the handled
/// buckets (0026) of every span.
async fn add_to_all_buckets(tx: &mut super::Tx, filter: &str) -> Result<()> {
    add_to_tables(tx, filter, HANDLED_SPANS).await
}

/// `add_to_all_buckets` with the handled buckets of `handled_spans` only.
async fn add_to_tables(tx: &mut super::Tx, filter: &str, handled_spans: &str) -> Result<()> {
    for sql in [
        add_to_buckets("session_buckets", filter),
        add_to_buckets("session_totals", filter),
        add_to_transfer_buckets(filter),
        add_to_handled_buckets(filter, handled_spans),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The bucket spans (migration 0019): a UTC hour and a UTC day.
const SPANS: &str =
    "(SELECT CAST(3600000 AS BIGINT) AS span UNION ALL SELECT CAST(86400000 AS BIGINT)) p";

/// Adds the timing rows matching `filter` (on `t`, numbers only) to their buckets of both spans
/// (creating them): sums are added, maxima kept. In PostgreSQL two transactions adding to one
/// bucket serialize on its row. `table`: `session_buckets` (keyed by the unit columns too) or
/// `session_totals` (migration 0022: by time and flags only).
fn add_to_buckets(table: &str, filter: &str) -> String {
    let (unit, unit_select, groups) = if table == "session_totals" {
        ("", "", "1, 2, 3, 4, 5, 6")
    } else {
        (
            "group_id, technician_id, created_by, ",
            "t.group_id, COALESCE(t.technician_id, 0), t.created_by, ",
            "1, 2, 3, 4, 5, 6, 7, 8, 9",
        )
    };
    format!(
        "INSERT INTO {table} (span, at, {unit}joined, handled, \
         missed, failed, sessions, connecting, waiting, active, work, hold, transfer, reconnecting, total, \
         longest, missed_wait, longest_missed_wait, transfers) \
         SELECT p.span, {start}, {unit_select}t.joined, t.handled, t.missed, t.failed, {TIMING_SUMS} \
         FROM session_timings t CROSS JOIN {SPANS} WHERE {filter} GROUP BY {groups} \
         ON CONFLICT (span, at, {unit}joined, handled, missed, failed) \
         DO UPDATE SET {}",
        upsert(table),
        start = bucket_start("t.created_at", "p.span"),
    )
}

/// The start of the bucket of span `span` holding the time `at` (SQL expressions).
fn bucket_start(at: &str, span: &str) -> String {
    format!("{at} - {}", modulo(at, span))
}

/// The columns of a bucket row from the timing rows `t` it holds, in the bucket tables' order
/// (`sessions` … `transfers`).
const TIMING_SUMS: &str = "COUNT(*), SUM(t.connecting), SUM(t.waiting), SUM(t.active), SUM(t.work), \
     SUM(t.hold), SUM(t.transfer), SUM(t.reconnecting), SUM(t.total), MAX(t.total), \
     COALESCE(SUM(t.end_at - t.waiting_start), 0), COALESCE(MAX(t.end_at - t.waiting_start), 0), \
     SUM(t.transfers)";

/// The `DO UPDATE SET` of a bucket upsert into `table`: sums added, maxima kept.
fn upsert(table: &str) -> String {
    let bigger = |c: &str| {
        format!("{c} = CASE WHEN excluded.{c} > {table}.{c} THEN excluded.{c} ELSE {table}.{c} END")
    };
    let added: Vec<String> = [
        "sessions",
        "connecting",
        "waiting",
        "active",
        "work",
        "hold",
        "transfer",
        "reconnecting",
        "total",
        "missed_wait",
        "transfers",
    ]
    .iter()
    .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
    .chain([bigger("longest"), bigger("longest_missed_wait")])
    .collect();
    added.join(", ")
}

/// The spans of the handled buckets (migration 0026): an hour, a day, a block of 16 days and
/// the code of a block's hour of the day.
const HANDLED_SPANS: &str = "(SELECT CAST(3600000 AS BIGINT) AS span UNION ALL SELECT CAST(86400000 AS BIGINT) \
     UNION ALL SELECT CAST(1382400000 AS BIGINT) UNION ALL SELECT CAST(1386000000 AS BIGINT)) p";

/// `x` modulo `m`, never negative (SQL's `%` keeps the sign of `x`).
fn modulo(x: &str, m: &str) -> String {
    format!("((({x} % {m}) + {m}) % {m})")
}

/// The sum and maximum columns of the handled buckets (migration 0026).
const HANDLED_COLUMNS: &str = "sessions, connecting, waiting, active, work, hold, transfer, \
     reconnecting, total, longest, missed_wait, longest_missed_wait, transfers";

/// Adds the handled timing rows matching `filter` (on `t` and `p`, numbers only) to their
/// handled buckets (migration 0026) of the spans `spans` (a table `p` of `span`), keyed by the
/// technician their rows name. A block's hour of the day: the block's start plus the creation
/// time's hour of the day.
fn add_to_handled_buckets(filter: &str, spans: &str) -> String {
    let c = "t.created_at";
    let at = format!(
        "CASE WHEN p.span = {bh} THEN {c} - {block} + {day} - {hour} ELSE {own} END",
        bh = crate::reports::buckets::BLOCK_HOURS,
        block = modulo(c, &crate::reports::buckets::BLOCK.to_string()),
        day = modulo(c, &crate::reports::buckets::DAY.to_string()),
        hour = modulo(c, &crate::reports::buckets::HOUR.to_string()),
        own = bucket_start(c, "p.span"),
    );
    format!(
        "INSERT INTO handled_buckets (span, at, technician_id, {HANDLED_COLUMNS}) \
         SELECT p.span, {at}, COALESCE(t.technician_id, t.created_by), {TIMING_SUMS} \
         FROM session_timings t CROSS JOIN {spans} WHERE t.handled = 1 AND {filter} \
         GROUP BY 1, 2, 3 ON CONFLICT (span, at, technician_id) DO UPDATE SET {}",
        upsert("handled_buckets")
    )
}

/// Makes the handled buckets (migration 0026) of `span` at `at` (a block, or a block's hour of
/// the day) from this table's own buckets of `part` at `starts` (its days, or that hour of
/// each of its days), after they were deleted.
fn handled_from_parts(span: i64, at: i64, part: i64, starts: &[i64]) -> String {
    format!(
        "INSERT INTO handled_buckets (span, at, technician_id, {HANDLED_COLUMNS}) \
         SELECT {span}, {at}, technician_id, SUM(sessions), SUM(connecting), SUM(waiting), \
         SUM(active), SUM(work), SUM(hold), SUM(transfer), SUM(reconnecting), SUM(total), MAX(longest), \
         SUM(missed_wait), MAX(longest_missed_wait), SUM(transfers) FROM handled_buckets \
         WHERE span = {part} AND at IN ({}) GROUP BY technician_id",
        id_list(starts)
    )
}

/// Adds the transfers of the timing rows matching `filter` (on `t`, numbers only; their
/// sessions' Transferring events) to their transfer buckets of both spans (migration 0021).
fn add_to_transfer_buckets(filter: &str) -> String {
    format!(
        "INSERT INTO transfer_buckets (span, at, event_at, group_id, technician_id, created_by, \
         event_group_id, event_technician_id, event_actor_id, transfers) \
         SELECT p.span, {start}, CASE WHEN p.span = 3600000 THEN {event_hour} ELSE 0 END, \
         t.group_id, COALESCE(t.technician_id, 0), t.created_by, e.group_id, \
         COALESCE(e.technician_id, 0), COALESCE(e.actor_id, 0), COUNT(*) \
         FROM session_timings t JOIN session_events e ON e.session_id = t.session_id \
         CROSS JOIN {SPANS} WHERE e.to_status = 'Transferring' AND {filter} \
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 \
         ON CONFLICT (span, at, event_at, group_id, technician_id, created_by, event_group_id, \
         event_technician_id, event_actor_id) \
         DO UPDATE SET transfers = transfer_buckets.transfers + excluded.transfers",
        start = bucket_start("t.created_at", "p.span"),
        event_hour = bucket_start("e.at", "3600000"),
    )
}

/// Rebuilds, from the timing rows, every bucket holding one of the creation times `created`.
async fn rebuild_buckets(tx: &mut super::Tx, created: impl Iterator<Item = i64>) -> Result<()> {
    use crate::reports::buckets::{BLOCK, BLOCK_HOURS, DAY, HOUR};
    let mut hours: Vec<i64> = created.map(|at| at - at.rem_euclid(HOUR)).collect();
    hours.sort_unstable();
    hours.dedup();
    for hour in hours {
        let day = hour - hour.rem_euclid(DAY);
        // The handled buckets' block and the block's hour of the day (migration 0026) that
        // hold the hour.
        let block = hour - hour.rem_euclid(BLOCK);
        let block_hour = block + hour.rem_euclid(DAY);
        // The day's buckets hold the hour's: both rebuilt, the day's from the whole day.
        for table in [
            "session_buckets",
            "session_totals",
            "transfer_buckets",
            "handled_buckets",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE (span = 3600000 AND at = {hour}) \
                 OR (span = 86400000 AND at = {day}) OR (span = {BLOCK} AND at = {block}) \
                 OR (span = {BLOCK_HOURS} AND at = {block_hour})"
            )))
            .persistent(false)
            .execute(&mut **tx)
            .await?;
        }
        let day_end = day + DAY;
        let kept = format!(
            "t.created_at >= {day} AND t.created_at < {day_end} AND (p.span = 86400000 \
             OR {} = {hour})",
            bucket_start("t.created_at", "p.span")
        );
        add_to_tables(tx, &kept, SPANS).await?;
        // The block and its hour of the day from the handled buckets' days and hours (all
        // but the rebuilt ones untouched): a scan of 16 days' timing rows would cost more.
        let days: Vec<i64> = (0..BLOCK / DAY).map(|d| block + d * DAY).collect();
        let of_day: Vec<i64> = days.iter().map(|d| d + hour.rem_euclid(DAY)).collect();
        for sql in [
            handled_from_parts(BLOCK, block, DAY, &days),
            handled_from_parts(BLOCK_HOURS, block_hour, HOUR, &of_day),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The timing row of a session that has just ended, in the transaction that ends it.
pub(crate) async fn session_ended(tx: &mut super::Tx, id: i64, ended_at: i64) -> Result<()> {
    let (created_by, technician_id, group_id, created_at): (i64, Option<i64>, i64, i64) =
        sqlx::query_as(
            "SELECT created_by, technician_id, group_id, created_at FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    let events: Vec<(i64, i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT seq, at, to_status, technician_id FROM session_events WHERE session_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let s = ReportSession {
        id,
        created_by,
        technician_id,
        group_id,
        created_at,
        ended_at: Some(ended_at),
        events: events
            .into_iter()
            .map(|(seq, at, to_status, technician_id)| {
                slim_event(seq, at, to_status, technician_id)
            })
            .collect(),
        ..ReportSession::default()
    };
    write_session_timings(tx, &[(s, ended_at)]).await
}

/// A page of a List All: `limit` rows from `offset`, or, with `after`, the `limit` rows that
/// follow that key (a streamed export reads a report in such chunks: each continues where the
/// last stopped, through the index, instead of skipping `offset` rows again, and nothing is
/// counted).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
    pub after: Option<Key>,
}

/// Where a report's rows are ordered: (creation time, session id) for sessions, (session id,
/// event seq) for transfers, (time, id) for logins.
pub type Key = (i64, i64);

/// The SQL row-value condition "`(a, b)` after `key`" (numbers only); both databases read it as
/// a range of an index on `(a, b, ...)`.
pub(crate) fn after_key(a: &str, b: &str, key: Key) -> String {
    format!("({a}, {b}) > ({}, {})", key.0, key.1)
}

/// Sums over timing rows (durations in ms), grouped by a key.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimingSums {
    pub sessions: i64,
    pub connecting: i64,
    pub waiting: i64,
    pub active: i64,
    pub work: i64,
    pub hold: i64,
    pub transfer: i64,
    pub reconnecting: i64,
    pub total: i64,
    pub longest: i64,
    pub missed_wait: i64,
    pub longest_missed_wait: i64,
    /// Transfers (the sessions' Transferring events).
    pub transfers: i64,
}

impl TimingSums {
    /// Adds one session's times (for live sessions, computed in Rust). `wait` is for missed
    /// sessions: their waiting until the end.
    pub fn add(&mut self, t: &Timings) {
        self.sessions += 1;
        self.connecting += t.connecting;
        self.waiting += t.waiting;
        self.active += t.active;
        self.work += t.work();
        self.hold += t.hold;
        self.transfer += t.transfer;
        self.reconnecting += t.reconnecting;
        self.total += t.total();
        self.longest = self.longest.max(t.total());
        self.missed_wait += t.missed_wait();
        self.longest_missed_wait = self.longest_missed_wait.max(t.missed_wait());
        self.transfers += t.transfers;
    }

    /// Adds sums of other sessions (maxima: the larger).
    pub fn merge(&mut self, o: &TimingSums) {
        self.sessions += o.sessions;
        self.connecting += o.connecting;
        self.waiting += o.waiting;
        self.active += o.active;
        self.work += o.work;
        self.hold += o.hold;
        self.transfer += o.transfer;
        self.reconnecting += o.reconnecting;
        self.total += o.total;
        self.longest = self.longest.max(o.longest);
        self.missed_wait += o.missed_wait;
        self.longest_missed_wait = self.longest_missed_wait.max(o.longest_missed_wait);
        self.transfers += o.transfers;
    }
}

impl Store {
    /// Fills `session_timings` for ended sessions that have none (sessions that ended before
    /// migration 0007), in batches from the oldest; returns how many rows were written.
    pub async fn backfill_session_timings(&self) -> Result<u64> {
        let (mut after, mut written) = (0i64, 0u64);
        loop {
            let ids: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT s.id, s.ended_at FROM sessions s WHERE s.id > $1 AND s.ended_at IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM session_timings t WHERE t.session_id = s.id) \
                 ORDER BY s.id LIMIT 2000",
            )
            .bind(after)
            .fetch_all(self.pool())
            .await?;
            let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
                return Ok(written);
            };
            let ended: HashMap<i64, i64> = ids.iter().copied().collect();
            let sessions = self
                .report_sessions_where("s.id >= $1 AND s.id <= $2", first.0, last.0)
                .await?;
            let batch: Vec<(ReportSession, i64)> = sessions
                .into_iter()
                .filter_map(|s| ended.get(&s.id).map(|at| (*at, s)))
                .map(|(at, s)| (s, at))
                .collect();
            let mut tx = self.begin().await?;
            write_session_timings(&mut tx, &batch).await?;
            tx.commit().await?;
            written += batch.len() as u64;
            after = last.0;
        }
    }

    /// Sessions with ids in `[first, last]`, with their events, in id order.
    pub async fn report_sessions_between(
        &self,
        first: i64,
        last: i64,
    ) -> Result<Vec<ReportSession>> {
        self.report_sessions_where("s.id >= $1 AND s.id <= $2", first, last)
            .await
    }

    /// The transfers (session id, event seq) of the sessions matching `filter` (on `t`: their
    /// stored times, or the live sessions) whose transfer event matches `event` (on `e`), in
    /// order: the page's (`report_transfer_count` counts them). Both conditions are built from
    /// numbers only.
    pub async fn report_transfers(
        &self,
        filter: &str,
        event: &str,
        page: Option<Page>,
    ) -> Result<Vec<(i64, i64)>> {
        // CROSS JOIN: SQLite walks the transfers' partial index (few rows, in page order) and
        // looks each session up, rather than every session of the window.
        let ended = format!(
            "SELECT e.session_id, e.seq FROM session_events e CROSS JOIN session_timings t \
             WHERE t.session_id = e.session_id AND e.to_status = 'Transferring' AND {filter} AND {event}"
        );
        let live = format!(
            "SELECT e.session_id, e.seq FROM session_events e CROSS JOIN sessions t \
             WHERE t.id = e.session_id AND t.id IN ({LIVE_IDS}) AND e.to_status = 'Transferring' \
             AND {filter} AND {event}"
        );
        // A page: each side ordered and cut to the page's end first. PostgreSQL does not carry
        // the order into the sides of a UNION ALL: it joined every transfer of the window to
        // its session and sorted them (440 ms at 1 M sessions) where each side alone walks
        // the transfers' index in order and stops (1 ms). The same rows on both stores.
        let query = match page {
            Some(p) => format!(
                "SELECT * FROM ({ended} ORDER BY 1, 2 LIMIT {end}) a UNION ALL \
                 SELECT * FROM ({live} ORDER BY 1, 2 LIMIT {end}) b ORDER BY 1, 2 LIMIT {} OFFSET {}",
                p.limit,
                p.offset,
                end = p.offset + p.limit
            ),
            None => format!("{ended} UNION ALL {live} ORDER BY 1, 2"),
        };
        let keys: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(query))
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        Ok(keys)
    }

    /// How many transfers of ended sessions `report_transfers` would list for `filter` and
    /// `event`, of the sessions created in `ranges` (`[a, b)`, UTC ms: the parts of a window
    /// the transfer buckets do not answer for).
    pub async fn report_transfer_count(
        &self,
        filter: &str,
        event: &str,
        ranges: &[(i64, i64)],
    ) -> Result<u64> {
        if ranges.is_empty() {
            return Ok(0);
        }
        // As in `report_timed_sums`: SQLite reads a table of the ranges in order, PostgreSQL
        // one bitmap of OR-ed index ranges.
        let (with, within) = match self.backend() {
            super::Backend::Sqlite => (
                ranges_cte(ranges),
                "r CROSS JOIN session_timings t CROSS JOIN session_events e \
                 WHERE t.created_at >= r.a AND t.created_at < r.b"
                    .to_owned(),
            ),
            super::Backend::Postgres => {
                let any: Vec<String> = ranges
                    .iter()
                    .map(|(a, b)| format!("(t.created_at >= {a} AND t.created_at < {b})"))
                    .collect();
                (
                    String::new(),
                    format!(
                        "session_timings t CROSS JOIN session_events e WHERE ({})",
                        any.join(" OR ")
                    ),
                )
            }
        };
        self.count_of(format!(
            "{with}SELECT COUNT(*) FROM {within} AND e.session_id = t.session_id \
             AND e.to_status = 'Transferring' AND {filter} AND {event}"
        ))
        .await
    }

    /// How many transfers of live sessions `report_transfers` would list.
    pub async fn report_live_transfer_count(&self, filter: &str, event: &str) -> Result<u64> {
        self.count_of(format!(
            "SELECT COUNT(*) FROM session_events e CROSS JOIN sessions t \
             WHERE t.id = e.session_id AND t.id IN ({LIVE_IDS}) AND e.to_status = 'Transferring' \
             AND {filter} AND {event}"
        ))
        .await
    }

    /// The transfers counted in the transfer buckets (migration 0021) of `span` whose creation
    /// bucket starts at one of `starts` and (with `events`) whose event hour is one of
    /// `events`, of the buckets matching `filter` (on `b`).
    pub async fn report_transfer_bucket_sum(
        &self,
        span: i64,
        starts: &[i64],
        events: Option<&[i64]>,
        filter: &str,
    ) -> Result<u64> {
        if starts.is_empty() || events.is_some_and(<[i64]>::is_empty) {
            return Ok(0);
        }
        // `+`: the event hours are checked on each bucket, not looked up in the primary key
        // (SQLite would seek every creation hour with every event hour: 3 s at a million).
        let events = events.map_or_else(String::new, |e| {
            format!(" AND +b.event_at IN ({})", id_list(e))
        });
        self.count_of(format!(
            "SELECT {} FROM transfer_buckets b WHERE b.span = {span} AND b.at IN ({}){events} \
             AND {filter}",
            sum_of("b.transfers"),
            id_list(starts)
        ))
        .await
    }

    /// The creation hours among `starts` with a transfer (any, of the hour buckets) in one of
    /// the event hours `events` or outside `[lo, hi)`.
    pub async fn report_transfer_hours_with_events(
        &self,
        starts: &[i64],
        events: &[i64],
        (lo, hi): (i64, i64),
    ) -> Result<Vec<i64>> {
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT b.at FROM transfer_buckets b WHERE b.span = 3600000 \
             AND b.at IN ({}) AND (b.event_at IN ({}) OR b.event_at < {lo} OR b.event_at >= {hi})",
            id_list(starts),
            id_list(events)
        )))
        .persistent(false)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Live sessions (no end yet) created in `[from, to)`, with their events, in id order.
    pub async fn report_live_sessions(&self, from: i64, to: i64) -> Result<Vec<ReportSession>> {
        self.report_sessions_where(LIVE_WINDOW, from, to).await
    }

    /// Ended sessions matching `filter` (a condition on `t`, from numbers only), with their
    /// timing rows (no events), in id order.
    pub async fn report_timed_sessions(
        &self,
        filter: &str,
    ) -> Result<Vec<(ReportSession, Timings)>> {
        self.report_timed_sessions_limit(filter, None).await
    }

    /// The first `limit` ended sessions matching `filter` after `after` in (creation time, id)
    /// order, with their timing rows: the database walks `session_timings_report` from the key
    /// and stops after `limit` rows (a streamed export's chunk).
    pub async fn report_timed_after(
        &self,
        filter: &str,
        after: Key,
        limit: u64,
    ) -> Result<Vec<(ReportSession, Timings)>> {
        let filter = format!(
            "{filter} AND {}",
            after_key("t.created_at", "t.session_id", after)
        );
        self.report_timed_sessions_limit(&filter, Some(limit)).await
    }

    async fn report_timed_sessions_limit(
        &self,
        filter: &str,
        limit: Option<u64>,
    ) -> Result<Vec<(ReportSession, Timings)>> {
        let limit = limit.map_or_else(String::new, |n| format!(" LIMIT {n}"));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS}, t.connecting_start, t.waiting_start, t.start_at, t.end_at, \
             t.last_action, t.final_status, t.connecting, t.waiting, t.active, t.hold, t.transfer, \
             t.reconnecting, t.transfers FROM session_timings t JOIN sessions s ON s.id = t.session_id \
             WHERE {filter} ORDER BY t.created_at, t.session_id{limit}"
        )))
        .persistent(false)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    report_session(r)?,
                    Timings {
                        connecting_start: r.try_get("connecting_start")?,
                        waiting_start: r.try_get("waiting_start")?,
                        start: r.try_get("start_at")?,
                        end: r.try_get("end_at")?,
                        last_action: r.try_get("last_action")?,
                        final_status: r.try_get("final_status")?,
                        connecting: r.try_get("connecting")?,
                        waiting: r.try_get("waiting")?,
                        active: r.try_get("active")?,
                        hold: r.try_get("hold")?,
                        transfer: r.try_get("transfer")?,
                        reconnecting: r.try_get("reconnecting")?,
                        transfers: r.try_get("transfers")?,
                    },
                ))
            })
            .collect()
    }

    /// The ids of one page: ended sessions matching `filter` merged with `live`, in creation
    /// order (then id). Without live sessions the database walks `session_timings_report` in
    /// that order and stops at the page's end.
    pub async fn report_timed_page(
        &self,
        filter: &str,
        live: &[i64],
        page: Page,
    ) -> Result<Vec<i64>> {
        let limit = format!("LIMIT {} OFFSET {}", page.limit, page.offset);
        let sql = if live.is_empty() {
            format!(
                "SELECT t.session_id FROM session_timings t WHERE {filter} \
                 ORDER BY t.created_at, t.session_id {limit}"
            )
        } else {
            format!(
                "SELECT id FROM (SELECT t.created_at AS c, t.session_id AS id FROM session_timings t \
                 WHERE {filter} UNION ALL SELECT created_at, id FROM sessions WHERE id IN ({})) p \
                 ORDER BY c, id {limit}",
                id_list(live)
            )
        };
        let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Sums of the ended sessions matching `filter`, grouped by `key` (an expression on `t`, or
    /// a constant for one group); with `ranges`, only of those created in them (`[a, b)`, UTC
    /// ms: the parts of a window its buckets do not cover).
    pub async fn report_timed_sums(
        &self,
        filter: &str,
        key: Option<&str>,
        ranges: Option<&[(i64, i64)]>,
    ) -> Result<Vec<(i64, TimingSums)>> {
        let wait = "t.end_at - t.waiting_start";
        let columns = [
            "COUNT(*)".to_owned(),
            sum_of("t.connecting"),
            sum_of("t.waiting"),
            sum_of("t.active"),
            sum_of("t.work"),
            sum_of("t.hold"),
            sum_of("t.transfer"),
            sum_of("t.reconnecting"),
            sum_of("t.total"),
            max_of("t.total"),
            sum_of(wait),
            max_of(wait),
            sum_of("t.transfers"),
        ];
        // The ranges: SQLite reads a table of them in order (CROSS JOIN), each from the index on
        // `created_at`. PostgreSQL would join such a table to every row of the window (a nested
        // loop over a sequential scan, seconds for a year's daily ranges): there the ranges are
        // OR-ed, which it reads as one bitmap of index ranges.
        let (with, from) = match (ranges, self.backend()) {
            (Some(r), super::Backend::Sqlite) => (
                ranges_cte(r),
                "r CROSS JOIN session_timings t WHERE t.created_at >= r.a AND t.created_at < r.b AND"
                    .to_owned(),
            ),
            (Some(r), super::Backend::Postgres) => {
                let any: Vec<String> = r
                    .iter()
                    .map(|(a, b)| format!("(t.created_at >= {a} AND t.created_at < {b})"))
                    .collect();
                (
                    String::new(),
                    format!("session_timings t WHERE ({}) AND", any.join(" OR ")),
                )
            }
            (None, _) => (String::new(), "session_timings t WHERE".to_owned()),
        };
        self.sums_query(
            &format!(
                "{with}SELECT {{select}} AS k, {} FROM {from} {filter}",
                columns.join(", ")
            ),
            key,
        )
        .await
    }

    /// The same sums read from the buckets of `span` in `table` (`session_buckets`, migration
    /// 0019, `session_totals`, 0022, or `handled_buckets`, 0026) starting at `starts`, for
    /// buckets matching `filter` (on `b`), grouped by `key` (on `b`).
    pub async fn report_bucket_sums(
        &self,
        table: &str,
        span: i64,
        starts: &[i64],
        filter: &str,
        key: Option<&str>,
    ) -> Result<Vec<(i64, TimingSums)>> {
        let columns = [
            sum_of("b.sessions"),
            sum_of("b.connecting"),
            sum_of("b.waiting"),
            sum_of("b.active"),
            sum_of("b.work"),
            sum_of("b.hold"),
            sum_of("b.transfer"),
            sum_of("b.reconnecting"),
            sum_of("b.total"),
            max_of("b.longest"),
            sum_of("b.missed_wait"),
            max_of("b.longest_missed_wait"),
            sum_of("b.transfers"),
        ];
        // Every bucket start listed: both stores look each one up in the primary key (a join
        // with a table of ranges made PostgreSQL scan every bucket once per range).
        self.sums_query(
            &format!(
                "SELECT {{select}} AS k, {} FROM {table} b WHERE b.span = {span} \
                 AND b.at IN ({}) AND {filter}",
                columns.join(", "),
                id_list(starts)
            ),
            key,
        )
        .await
    }

    /// The first and the last hour bucket's start (None: no ended session): every timing row
    /// was created within them.
    pub async fn report_bucket_bounds(&self) -> Result<Option<(i64, i64)>> {
        let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MIN(at) FROM session_buckets WHERE span = 3600000), \
             (SELECT MAX(at) FROM session_buckets WHERE span = 3600000)",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(lo.zip(hi))
    }

    /// Runs a sums query whose `{select}` is the key; without a key, one row (all zero when
    /// nothing matches).
    async fn sums_query(&self, sql: &str, key: Option<&str>) -> Result<Vec<(i64, TimingSums)>> {
        let sql = match key {
            Some(k) => format!("{} GROUP BY {k}", sql.replace("{select}", k)),
            None => sql.replace("{select}", "CAST(0 AS BIGINT)"),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let v = |i: usize| r.try_get::<i64, _>(i + 1);
                Ok((
                    r.try_get("k")?,
                    TimingSums {
                        sessions: v(0)?,
                        connecting: v(1)?,
                        waiting: v(2)?,
                        active: v(3)?,
                        work: v(4)?,
                        hold: v(5)?,
                        transfer: v(6)?,
                        reconnecting: v(7)?,
                        total: v(8)?,
                        longest: v(9)?,
                        missed_wait: v(10)?,
                        longest_missed_wait: v(11)?,
                        transfers: v(12)?,
                    },
                ))
            })
            .collect()
    }
}

/// `WITH r(a, b) AS (VALUES ...)`: ranges as a table (numbers only).
fn ranges_cte(ranges: &[(i64, i64)]) -> String {
    let rows: Vec<String> = ranges.iter().map(|(a, b)| format!("({a}, {b})")).collect();
    format!("WITH r(a, b) AS (VALUES {}) ", rows.join(", "))
}

/// A maximum as BIGINT, 0 when nothing matches.
fn max_of(column: &str) -> String {
    format!("CAST(COALESCE(MAX({column}), 0) AS BIGINT)")
}

/// An event with only what durations need (the rest empty).
fn slim_event(seq: i64, at: i64, to_status: String, technician_id: Option<i64>) -> EventRow {
    EventRow {
        seq,
        at,
        to_status,
        technician_id,
        from_status: String::new(),
        actor: String::new(),
        actor_id: None,
        reason: String::new(),
        group_id: 0,
        detail: String::new(),
    }
}

/// The live sessions' ids, through the partial index `sessions_live` (a condition on
/// `ended_at` would make the planners scan the window's sessions instead).
const LIVE_IDS: &str = "SELECT id FROM sessions WHERE ended_at IS NULL";
/// A login's end when its row has none (still open, or written before migration 0024): the
/// user's next row in (at, id) order. `n.at >= l.at` alone bounds the index range (the tie on
/// `at` is broken by id).
const NEXT_LOGIN_ROW: &str = "(SELECT n.at FROM logins n WHERE n.user_id = l.user_id AND n.at >= l.at \
     AND (n.at > l.at OR n.id > l.id) ORDER BY n.at, n.id LIMIT 1)";

const LIVE_WINDOW: &str = "s.id IN (SELECT id FROM sessions WHERE ended_at IS NULL) \
     AND s.created_at >= $1 AND s.created_at < $2";

/// The session columns reports show (alias `s`).
const SESSION_COLUMNS: &str = "s.id, s.created_by, s.technician_id, s.group_id, s.name, s.cfield1, \
     s.cfield2, s.cfield3, s.cfield4, s.cfield5, s.tracking_id, s.status, s.customer_ip, s.platform, \
     s.browser, s.device_id, s.created_at, s.ended_at";

fn report_session(r: &AnyRow) -> Result<ReportSession> {
    Ok(ReportSession {
        id: r.try_get("id")?,
        created_by: r.try_get("created_by")?,
        technician_id: r.try_get("technician_id")?,
        group_id: r.try_get("group_id")?,
        name: r.try_get("name")?,
        custom_fields: [
            r.try_get("cfield1")?,
            r.try_get("cfield2")?,
            r.try_get("cfield3")?,
            r.try_get("cfield4")?,
            r.try_get("cfield5")?,
        ],
        tracking_id: r.try_get("tracking_id")?,
        status: r.try_get("status")?,
        customer_ip: r.try_get("customer_ip")?,
        platform: r.try_get("platform")?,
        browser: r.try_get("browser")?,
        device_id: r.try_get("device_id")?,
        created_at: r.try_get("created_at")?,
        ended_at: r.try_get("ended_at")?,
        events: Vec::new(),
    })
}
