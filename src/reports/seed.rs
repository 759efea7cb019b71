//! `lens dev seed`: fills a store with a realistic organization and a year of sessions, events,
//! chat, notes, logins and console statuses, for measuring reports (benches/reports.rs). Rows are
//! generated numbers and fixed words (no input reaches the SQL), written in multi-row INSERTs
//! (SQLite) or COPY (PostgreSQL); the shapes are those the hub writes.

use crate::store::reports::{ReportSession, write_session_timings};
use crate::store::sessions::EventRow;
use crate::store::{Store, StoreError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub sessions: u64,
    pub technicians: u32,
    /// Top-level technician groups; each has two subgroups.
    pub groups: u32,
    pub days: u32,
    /// The end of the seeded year (UTC ms).
    pub now: i64,
    /// Password of every seeded user, already hashed.
    pub password_hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct SeedSummary {
    pub groups: u64,
    pub technicians: u64,
    pub sessions: u64,
    pub events: u64,
    pub chat: u64,
    pub logins: u64,
}

/// xorshift64*: deterministic, dependency-free, plenty for test data.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `[0, n)` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }
}

const NAMES: [&str; 8] = [
    "Grace", "Linus", "Ken", "Barbara", "Margaret", "Dennis", "Frances", "Alan",
];
const PLATFORMS: [&str; 2] = ["Android", "iOS"];
const CHAT: [&str; 4] = [
    "Hello, I can see the camera",
    "Please show me the back of the router",
    "The light is blinking red",
    "Thank you, it works now",
];

/// Buffers rows of one table and writes them as multi-row INSERTs of 400 rows in the store's
/// transaction or, on PostgreSQL, collects them for one COPY per table and slice (`copy`): COPY
/// costs the server a fraction of parsing and planning the same rows as INSERTs.
///
/// A row is SQL literals in parentheses: numbers, `NULL` and `'…'` strings with `''` for a
/// quote. COPY's CSV format with `'` as its quote and `NULL` as its null string reads the same
/// text (without the parentheses) as the same values.
struct Batch {
    head: &'static str,
    sql: String,
    rows: usize,
    written: u64,
    copy: bool,
}

impl Batch {
    fn new(head: &'static str, copy: bool) -> Batch {
        Batch {
            head,
            sql: String::new(),
            rows: 0,
            written: 0,
            copy,
        }
    }

    async fn push(&mut self, tx: &mut crate::store::Tx, row: &str) -> Result<(), StoreError> {
        if self.copy {
            let values = row
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or(row);
            self.sql.push_str(values);
            self.sql.push('\n');
            self.rows += 1;
            return Ok(());
        }
        if self.rows == 0 {
            self.sql.push_str(self.head);
            self.sql.push_str(" VALUES ");
        } else {
            self.sql.push(',');
        }
        self.sql.push_str(row);
        self.rows += 1;
        if self.rows >= 400 {
            self.flush(tx).await?;
        }
        Ok(())
    }

    /// Writes the INSERT rows still buffered (COPY rows wait for `copy_to`).
    async fn flush(&mut self, tx: &mut crate::store::Tx) -> Result<(), StoreError> {
        if self.rows == 0 || self.copy {
            return Ok(());
        }
        // Generated numbers and constant words only.
        sqlx::query(sqlx::AssertSqlSafe(std::mem::take(&mut self.sql)))
            .execute(&mut **tx)
            .await?;
        self.written += self.rows as u64;
        self.rows = 0;
        Ok(())
    }

    /// Sends the collected rows with one COPY (PostgreSQL).
    async fn copy_to(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.rows == 0 {
            return Ok(());
        }
        let target = self.head.trim_start_matches("INSERT INTO ");
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {target} FROM STDIN WITH (FORMAT csv, QUOTE '''', NULL 'NULL')"
            ))
            .await?;
        for part in self.sql.as_bytes().chunks(1 << 20) {
            copy.send(part).await?;
        }
        copy.finish().await?;
        self.sql.clear();
        self.written += self.rows as u64;
        self.rows = 0;
        Ok(())
    }
}

/// On PostgreSQL, a connection of the seeder's own for COPY (sqlx's Any driver, which the store
/// uses, has none). Its commits need not wait for the WAL to reach the disk
/// (`synchronous_commit`): a seed cut short by a crash is seeded again.
async fn copy_connection(store: &Store) -> Result<Option<PgConnection>, StoreError> {
    if store.backend() != crate::store::Backend::Postgres {
        return Ok(None);
    }
    let options = PgConnectOptions::from_url(&store.pool().connect_options().database_url)?;
    let mut conn = PgConnection::connect_with(&options).await?;
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    Ok(Some(conn))
}

/// Sends the COPY batches of a slice in one transaction of `conn`, before the store's
/// transaction that references their rows commits.
async fn copy_all(
    conn: &mut Option<PgConnection>,
    batches: &mut [&mut Batch],
) -> Result<(), StoreError> {
    let Some(conn) = conn else {
        return Ok(());
    };
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    for batch in batches {
        batch.copy_to(conn).await?;
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

/// The tables the seeder loads with COPY whose foreign keys and non-unique indexes wait for
/// the end of the load (`defer_checks`).
const BULK_TABLES: &str = "'sessions'::regclass, 'session_events'::regclass, 'chat_messages'::regclass, 'session_notes'::regclass";

/// PostgreSQL, a store without sessions: drops the foreign keys and non-unique indexes of
/// `BULK_TABLES` and returns the statements that make them again, from their definitions in the
/// catalog (so the migrations stay their one source). Checking each loaded row's key and
/// adding it to each index one at a time cost the server twice the load itself; one pass over
/// the loaded rows at the end costs a fraction of that. Primary keys and unique indexes stay,
/// and so do the keys and indexes of the tables `write_session_timings` reads and writes, and
/// the partial indexes (a few rows each): that write reads a slice's transfers through
/// `session_events_transfers`, without which each slice scanned every event loaded so far
/// (a 10 M seed slowed down as it grew, to hours).
async fn defer_checks(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let (sessions,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM (SELECT 1 FROM sessions LIMIT 1) s")
            .fetch_one(&mut *conn)
            .await?;
    if sessions > 0 {
        // Perhaps a server's store: its keys and indexes stay in place.
        return Ok(Vec::new());
    }
    // Names come from the catalog, quoted by the server.
    let keys: Vec<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT conrelid::regclass::text, format('%I', conname), pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE contype = 'f' AND conrelid IN ({BULK_TABLES}) ORDER BY 1, 2"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT format('%I', i.relname), pg_get_indexdef(i.oid) FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE x.indrelid IN ({BULK_TABLES}) AND NOT x.indisunique AND x.indpred IS NULL \
         ORDER BY 1"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let mut drop = Vec::new();
    let mut restore = Vec::new();
    for (table, name, definition) in keys {
        drop.push(format!("ALTER TABLE {table} DROP CONSTRAINT {name}"));
        restore.push(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
        ));
    }
    for (name, definition) in indexes {
        drop.push(format!("DROP INDEX {name}"));
        // Indexes first: a foreign key made again is checked in one join of the tables.
        restore.insert(0, definition);
    }
    // All or nothing.
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    for statement in &drop {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(restore)
}

/// Seeds the store; `progress` is called after each committed slice with the sessions so far.
pub async fn seed(
    store: &Store,
    o: &SeedOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<SeedSummary, StoreError> {
    let mut copy = copy_connection(store).await?;
    let restore = match copy.as_mut() {
        Some(conn) => defer_checks(conn).await?,
        None => Vec::new(),
    };
    let seeded = seed_rows(store, o, progress, &mut copy).await;
    if let Some(conn) = copy.as_mut() {
        // Made again even when the seed failed part way: the store keeps its keys and indexes.
        for statement in restore {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *conn)
                .await?;
        }
        // Fresh statistics for the reports run next, and the visibility map their index-only
        // scans need (autovacuum would get there later; until then PostgreSQL reads the table
        // beside the index).
        sqlx::query(
            "VACUUM (ANALYZE) sessions, session_events, chat_messages, session_notes, session_timings, \
             session_spans, session_buckets, handled_buckets, logins, technician_status_events",
        )
        .execute(&mut *conn)
        .await?;
    }
    seeded
}

async fn seed_rows(
    store: &Store,
    o: &SeedOptions,
    progress: &mut dyn FnMut(u64),
    copy: &mut Option<PgConnection>,
) -> Result<SeedSummary, StoreError> {
    let copying = copy.is_some();
    let batch = |head: &'static str| Batch::new(head, copying);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = o.now - i64::from(o.days) * 86_400_000;
    let mut summary = SeedSummary::default();

    // The organization: groups with two subgroups each, technicians spread over them.
    let mut tx = store.begin().await?;
    let mut groups = Vec::new();
    for g in 0..o.groups {
        let id = insert_group(&mut tx, &format!("Seed group {g}"), None, start).await?;
        groups.push(id);
        for sub in 0..2 {
            groups.push(
                insert_group(&mut tx, &format!("Seed group {g}.{sub}"), Some(id), start).await?,
            );
        }
    }
    let mut technicians = Vec::new();
    for t in 0..o.technicians {
        let group = groups[t as usize % groups.len()];
        let row: (i64,) = sqlx::query_as(
            "INSERT INTO users (role, name, nickname, email, email_lower, sso_id, description, password_hash, \
             password_changed_at, must_change_password, enabled, group_id, language, created_at) \
             VALUES ('technician', $1, $2, $3, $3, '', '', $4, $5, 0, 1, $6, 'en', $5) RETURNING id",
        )
        .bind(format!("Seed technician {t}"))
        .bind(format!("tech{t}"))
        .bind(format!("tech{t}@seed.invalid"))
        .bind(&o.password_hash)
        .bind(start)
        .bind(group)
        .fetch_one(&mut *tx)
        .await?;
        technicians.push((row.0, group));
    }
    tx.commit().await?;
    summary.groups = groups.len() as u64;
    summary.technicians = technicians.len() as u64;

    // Logins: each technician works weekdays, 8 hours, busy an hour and away half an hour.
    // Sessions arrive around the clock, so the technicians work in shifts: each starts work at
    // the same time of day every day (UTC midnight, not the seeder's clock, plus the shift),
    // the shifts spread over the day, and each login falls at random within three hours of
    // its shift's start. Any daily time range then finds the logins of its hours.
    let mut tx = store.begin().await?;
    // Each login's end is written with it (migration 0024); its covered time is kept as the
    // sessions' spans are written.
    let mut logins = batch("INSERT INTO logins (user_id, event, method, address, at, end_at)");
    let mut statuses = batch("INSERT INTO technician_status_events (user_id, at, status)");
    let first_midnight = start.div_euclid(86_400_000) * 86_400_000;
    for day in 0..i64::from(o.days) {
        let midnight = first_midnight + day * 86_400_000;
        if (day + 3) % 7 >= 5 {
            continue;
        }
        for (k, (tech, _)) in technicians.iter().enumerate() {
            let shift = login_shift(k);
            let login = midnight + shift + rng.range(0, 3 * 3_600_000);
            let logout = login + 8 * 3_600_000;
            // The last day's late shifts would end after the seeded year.
            if logout > o.now {
                continue;
            }
            logins
                .push(
                    &mut tx,
                    &format!("({tech},'login','password','10.0.0.1',{login},{logout})"),
                )
                .await?;
            logins
                .push(
                    &mut tx,
                    &format!("({tech},'logout','password','10.0.0.1',{logout},NULL)"),
                )
                .await?;
            for (at, status) in [
                (login, "available"),
                (login + 3_600_000, "busy"),
                (login + 2 * 3_600_000, "available"),
                (login + 4 * 3_600_000, "away"),
                (login + 4 * 3_600_000 + 1_800_000, "available"),
                (logout, "offline"),
            ] {
                statuses
                    .push(&mut tx, &format!("({tech},{at},'{status}')"))
                    .await?;
            }
        }
    }
    logins.flush(&mut tx).await?;
    statuses.flush(&mut tx).await?;
    copy_all(copy, &mut [&mut logins, &mut statuses]).await?;
    tx.commit().await?;
    summary.logins = logins.written;

    // Sessions, in creation order so ids grow with time, as the hub writes them.
    let first_id: i64 = sqlx::query_as::<_, (i64,)>("SELECT COALESCE(MAX(id), 0) FROM sessions")
        .fetch_one(store.pool())
        .await?
        .0
        + 1;
    let step = (i64::from(o.days) * 86_400_000) / o.sessions.max(1) as i64;
    let slice = 20_000u64;
    let mut n = 0u64;
    while n < o.sessions {
        let mut tx = store.begin().await?;
        let mut sessions = batch(
            "INSERT INTO sessions (id, created_by, technician_id, group_id, method, code_expires_at, name, \
             cfield1, cfield2, cfield3, cfield4, cfield5, tracking_id, phone, email, status, status_since, \
             last_activity, ever_active, policy, customer_ip, platform, device_model, app, browser, locale, \
             device_id, transmitted_bytes, created_at, ended_at)",
        );
        let mut events = batch(
            "INSERT INTO session_events (session_id, seq, at, from_status, to_status, actor, actor_id, reason, \
             technician_id, group_id, detail)",
        );
        let mut chat =
            batch("INSERT INTO chat_messages (session_id, at, sender, sender_id, name, text)");
        let mut notes = batch("INSERT INTO session_notes (session_id, technician_id, at, text)");
        let end = (n + slice).min(o.sessions);
        // Events, chat and notes of the slice, written after their sessions.
        let mut later: (Vec<String>, Vec<String>, Vec<String>) = Default::default();
        // The reports' stored times, computed from the same events as the hub's are.
        let mut timed: Vec<(ReportSession, i64)> = Vec::new();
        for i in n..end {
            let id = first_id + i as i64;
            let (tech, group) = technicians[rng.range(0, technicians.len() as i64) as usize];
            let created = start + i as i64 * step + rng.range(0, step.max(1));
            let name = NAMES[rng.range(0, NAMES.len() as i64) as usize];
            let kind = rng.range(0, 100);
            // (to status, seconds after the previous event, technician, group)
            let mut steps: Vec<(&str, i64, i64, i64)> =
                vec![("Connecting", rng.range(20, 180), tech, group)];
            let mut other = technicians[rng.range(0, technicians.len() as i64) as usize];
            if other.0 == tech {
                other = technicians[(technicians.iter().position(|t| t.0 == tech).unwrap_or(0)
                    + 1)
                    % technicians.len()];
            }
            match kind {
                0..=1 => steps.push(("Closed by customer", rng.range(10, 300), tech, group)),
                2..=6 => {
                    steps.push(("Waiting", rng.range(5, 40), tech, group));
                    steps.push((
                        "Closed by waiting customer",
                        rng.range(60, 900),
                        tech,
                        group,
                    ));
                }
                _ => {
                    steps.push(("Waiting", rng.range(5, 40), tech, group));
                    steps.push(("Active", rng.range(10, 600), tech, group));
                    if kind < 20 {
                        steps.push(("On Hold", rng.range(60, 900), tech, group));
                        steps.push(("Active", rng.range(30, 300), tech, group));
                    }
                    if kind >= 94 {
                        steps.push(("Transferring", rng.range(60, 900), tech, group));
                        steps.push(("Waiting", 0, other.0, other.1));
                        steps.push(("Active", rng.range(10, 300), other.0, other.1));
                    }
                    let owner = steps.last().map_or((tech, group), |s| (s.2, s.3));
                    steps.push((
                        "Closed by technician",
                        rng.range(120, 2400),
                        owner.0,
                        owner.1,
                    ));
                }
            }
            let mut at = created;
            let mut from = "Pending";
            let mut first_active = None;
            let mut events = Vec::new();
            for (seq, (to, secs, t, g)) in steps.iter().enumerate() {
                at += secs * 1000;
                if *to == "Active" && first_active.is_none() {
                    first_active = Some(at);
                }
                let detail = if *to == "Transferring" {
                    format!(
                        "{{\"to_technician_id\":{},\"to_group_id\":null,\"comment\":\"second line\"}}",
                        other.0
                    )
                } else {
                    String::new()
                };
                later.0.push(format!(
                    "({id},{},{at},'{from}','{to}','technician',{t},'seeded',{t},{g},'{detail}')",
                    seq + 1
                ));
                events.push(EventRow {
                    seq: seq as i64 + 1,
                    at,
                    from_status: from.into(),
                    to_status: (*to).into(),
                    actor: "technician".into(),
                    actor_id: Some(*t),
                    reason: "seeded".into(),
                    technician_id: Some(*t),
                    group_id: *g,
                    detail: detail.clone(),
                });
                from = to;
            }
            let (last_tech, last_group) = steps.last().map_or((tech, group), |s| (s.2, s.3));
            let ever_active = i64::from(first_active.is_some());
            timed.push((
                ReportSession {
                    id,
                    created_by: tech,
                    technician_id: Some(last_tech),
                    group_id: last_group,
                    created_at: created,
                    ended_at: Some(at),
                    events,
                    ..ReportSession::default()
                },
                at,
            ));
            let platform = PLATFORMS[(i % 2) as usize];
            sessions
                .push(
                    &mut tx,
                    &format!(
                        "({id},{tech},{last_tech},{last_group},'pin',{},'{name}','','','','','','S-{id}','','',\
                         '{from}',{at},{at},{ever_active},'{{}}','10.1.{}.{}','{platform}','Phone','Lens web','Chrome','en','dev-{id}',0,{created},{at})",
                        created + 20 * 60_000,
                        i % 250,
                        i % 200,
                    ),
                )
                .await?;
            if let Some(active) = first_active {
                for (k, text) in CHAT.iter().enumerate().take(3) {
                    let (sender, who, sender_id) = if k % 2 == 0 {
                        ("customer", name, "NULL".to_owned())
                    } else {
                        ("technician", "tech", tech.to_string())
                    };
                    later.1.push(format!(
                        "({id},{},'{sender}',{sender_id},'{who}','{text}')",
                        active + k as i64 * 20_000
                    ));
                }
                if kind % 10 == 7 {
                    later
                        .2
                        .push(format!("({id},{tech},{active},'Router model X')"));
                }
            }
        }
        // Sessions first: the other rows reference them.
        sessions.flush(&mut tx).await?;
        for (batch, rows) in [
            (&mut events, later.0),
            (&mut chat, later.1),
            (&mut notes, later.2),
        ] {
            for row in rows {
                batch.push(&mut tx, &row).await?;
            }
        }
        events.flush(&mut tx).await?;
        chat.flush(&mut tx).await?;
        notes.flush(&mut tx).await?;
        // With COPY the slice's rows are committed first, then their stored times in the
        // store's transaction (a seed cut short between the two leaves ended sessions without
        // times, which the server's startup job fills in).
        copy_all(
            copy,
            &mut [&mut sessions, &mut events, &mut chat, &mut notes],
        )
        .await?;
        write_session_timings(&mut tx, &timed).await?;
        tx.commit().await?;
        summary.sessions += sessions.written;
        summary.events += events.written;
        summary.chat += chat.written;
        n = end;
        progress(n);
    }
    if store.backend() == crate::store::Backend::Postgres {
        // Ids were given explicitly: move the sequence past them.
        sqlx::query("SELECT setval(pg_get_serial_sequence('sessions', 'id'), (SELECT MAX(id) FROM sessions))")
            .execute(store.pool())
            .await?;
    }
    Ok(summary)
}

/// When the shift of the `k`th technician starts, ms after UTC midnight: eight shifts three
/// hours apart, the technicians dealt to them in turn.
fn login_shift(k: usize) -> i64 {
    (k % 8) as i64 * 3 * 3_600_000
}

async fn insert_group(
    tx: &mut crate::store::Tx,
    name: &str,
    parent: Option<i64>,
    at: i64,
) -> Result<i64, StoreError> {
    let row: (i64,) = sqlx::query_as(
        "INSERT INTO org_groups (kind, name, description, parent_id, enabled, created_at) \
         VALUES ('technician_group', $1, '', $2, 1, $3) RETURNING id",
    )
    .bind(name)
    .bind(parent)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per table, the row count and a sum over its columns: equal on two stores when the same
    /// rows were written (COPY on PostgreSQL, INSERTs on SQLite).
    async fn shape(store: &Store) -> Vec<(&'static str, i64, i64)> {
        let tables = [
            (
                "sessions",
                "id + created_by + technician_id + group_id + code_expires_at + LENGTH(name) + LENGTH(cfield1) \
                 + LENGTH(tracking_id) + LENGTH(status) + status_since + ever_active + LENGTH(policy) \
                 + LENGTH(customer_ip) + LENGTH(platform) + LENGTH(device_id) + created_at + ended_at",
            ),
            (
                "session_events",
                "session_id + seq + at + LENGTH(from_status) + LENGTH(to_status) + actor_id + technician_id \
                 + group_id + LENGTH(detail)",
            ),
            (
                "chat_messages",
                "session_id + at + LENGTH(sender) + COALESCE(sender_id, 7) + LENGTH(name) + LENGTH(text)",
            ),
            (
                "session_notes",
                "session_id + technician_id + at + LENGTH(text)",
            ),
            (
                "logins",
                "user_id + LENGTH(event) + LENGTH(address) + at + COALESCE(end_at, 5) + covered",
            ),
            ("technician_status_events", "user_id + at + LENGTH(status)"),
            (
                "session_timings",
                "session_id + COALESCE(start_at, 3) + total + work + missed + failed + transfers",
            ),
            (
                "session_spans",
                "session_id + live_technician_id + start_at + end_at",
            ),
            (
                "session_buckets",
                "span + at + group_id + technician_id + sessions + total",
            ),
            (
                "handled_buckets",
                "span + at + technician_id + sessions + total + longest",
            ),
        ];
        let mut out = Vec::new();
        for (table, sum) in tables {
            let (n, s): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*), CAST(COALESCE(SUM({sum}), 0) AS BIGINT) FROM {table}"
            )))
            .fetch_one(store.pool())
            .await
            .unwrap();
            out.push((table, n, s));
        }
        out
    }

    async fn seed_small(store: &Store) -> SeedSummary {
        let options = SeedOptions {
            sessions: 3_000,
            technicians: 12,
            groups: 2,
            days: 30,
            now: 1_790_000_000_000,
            password_hash: "not-a-login".into(),
        };
        seed(store, &options, &mut |_| {}).await.unwrap()
    }

    /// The seeder writes the same rows on both stores (COPY on PostgreSQL, INSERTs on SQLite).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeds_the_same_rows_on_both_stores() {
        let Some(pg) = crate::reports::sums_tests::postgres_test_store().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("lens.db").display());
        let sqlite = Store::open(&url).await.unwrap();
        let definitions = || async {
            // The keys and indexes the PostgreSQL seed drops for its load and makes again.
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid IN ({BULK_TABLES}) \
                 UNION ALL SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid IN ({BULK_TABLES}) \
                 ORDER BY 1"
            )))
            .fetch_all(pg.pool())
            .await
            .unwrap();
            rows
        };
        let before = definitions().await;
        let (a, b) = (seed_small(&sqlite).await, seed_small(&pg).await);
        assert_eq!(before, definitions().await);
        assert!(before.len() > 10, "{before:?}");
        assert_eq!(
            (a.sessions, a.events, a.chat, a.logins),
            (b.sessions, b.events, b.chat, b.logins)
        );
        assert_eq!(a.sessions, 3_000);
        let shape_sqlite = shape(&sqlite).await;
        assert!(
            shape_sqlite.iter().all(|(_, n, _)| *n > 0),
            "{shape_sqlite:?}"
        );
        assert_eq!(shape_sqlite, shape(&pg).await);
    }
}
