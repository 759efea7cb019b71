//! The Summaries' sums read from the buckets (`stored_sums`) against a scan of the whole window
//! (`report_timed_sums` without ranges, the reports' answer before migration 0019), and the
//! Transferred reports' count from the transfer buckets (`transfer_count`, migration 0021)
//! against the transfers listed one by one, on a seeded store with rewritten sessions, for
//! random windows, zones, daily ranges, units, picks and groupings, on SQLite and (with
//! `LENS_TEST_POSTGRES_URL`) PostgreSQL.

use std::collections::HashMap;

use chrono_tz::Tz;

use super::seed::Rng;
use super::*;
use crate::store::LoginEvent;
use crate::store::reports::write_session_timings;
use crate::store::sessions::EventRow;

const ZONES: [&str; 8] = [
    "UTC",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/New_York",
    "America/St_Johns",
    "Europe/London",
];

/// The sums without empty groups (a scan of nothing gives one row of zeros).
fn nonzero(sums: HashMap<i64, TimingSums>) -> HashMap<i64, TimingSums> {
    sums.into_iter().filter(|(_, t)| t.sessions > 0).collect()
}

async fn check(store: &Store) {
    // Ten weeks of sessions ending at an instant that is no whole minute, ~5 an hour.
    let now = 1_790_000_000_000 + 1_234_567;
    let days = 70;
    seed::seed(
        store,
        &seed::SeedOptions {
            sessions: 8_000,
            technicians: 12,
            groups: 2,
            days,
            now,
            password_hash: "not a hash".into(),
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    let start = now - i64::from(days) * 86_400_000;
    let (first, last): (i64, i64) = sqlx::query_as("SELECT MIN(id), MAX(id) FROM sessions")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let people = store.report_people().await.unwrap();
    let technicians: Vec<i64> = people
        .iter()
        .filter(|p| p.role == "technician")
        .map(|p| p.id)
        .collect();
    // Rewritten sessions (their buckets rebuilt): some without an owner, some moved in time
    // (to the other end of the window, to odd minutes) and to another creator; some with
    // other live spans (the logins they covered and now cover are covered again): given to
    // another technician, or cut short.
    let mut rng = Rng(0x5EED);
    let mut rewritten = Vec::new();
    // Every session's events and the instant its last event lasts to: the raw Idle Time's.
    let mut events_of: HashMap<i64, (Vec<EventRow>, i64)> = HashMap::new();
    for mut s in store.report_sessions_between(first, last).await.unwrap() {
        let ended = s.ended_at.unwrap_or(now);
        match rng.below(40) {
            0 => s.technician_id = None,
            1 => s.created_at = start + rng.below(days as u64 * 86_400_000) as i64,
            2 => s.created_by = s.technician_id.unwrap_or(s.created_by) + 1,
            3 => {
                let other = technicians[rng.below(technicians.len() as u64) as usize];
                for e in s.events.iter_mut().filter(|e| e.technician_id.is_some()) {
                    e.technician_id = Some(other);
                }
            }
            4 => {
                let keep = s.events.len() / 2;
                s.events.truncate(keep);
            }
            _ => {
                events_of.insert(s.id, (s.events, ended));
                continue;
            }
        }
        events_of.insert(s.id, (s.events.clone(), ended));
        rewritten.push((s, ended));
    }
    assert!(rewritten.len() > 300, "{}", rewritten.len());
    // One at a time, as the hub writes them (a chunk's logins are covered again per
    // technician over the chunk's whole range, which would hide a span left out).
    for one in rewritten.chunks(1) {
        let mut tx = store.begin().await.unwrap();
        write_session_timings(&mut tx, one).await.unwrap();
        tx.commit().await.unwrap();
    }
    let live = live_sessions(store, &technicians, start, now, &mut rng).await;
    events_of.extend(live);
    // Logins recorded last: open ones (some before a seeded row: out of order) and some in
    // the middle of the history, ending a seeded login early or ending at the next row.
    for k in 0..8 {
        let user = technicians[rng.below(technicians.len() as u64) as usize];
        let (event, at) = match k % 4 {
            0 | 1 => (LoginEvent::Login, now - rng.below(20 * 3_600_000) as i64),
            2 => (
                LoginEvent::Logout,
                start + rng.below(days as u64 * 86_400_000) as i64,
            ),
            _ => (
                LoginEvent::Login,
                start + rng.below(days as u64 * 86_400_000) as i64,
            ),
        };
        store
            .record_login(user, event, "password", "10.0.0.9", at)
            .await
            .unwrap();
    }
    let raw = RawLogins::read(store, &events_of).await;
    let groups: Vec<i64> = store
        .report_group_names()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.0)
        .collect();
    let picks = [
        Pick::Any,
        Pick::Joined,
        Pick::Handled,
        Pick::Missed,
        Pick::Failed,
    ];
    let keys = [SumKey::One, SumKey::Technician, SumKey::Owner];
    let (mut nonempty, mut with_transfers) = (0, 0);
    let (mut kept, mut covered_raw, mut busy_logins) = (0usize, 0usize, 0usize);
    for case in 0..160u64 {
        let mut rng = Rng(0x9E37_79B9 ^ (case + 1).wrapping_mul(0x1000_0001));
        let tz: Tz = ZONES[rng.below(ZONES.len() as u64) as usize]
            .parse()
            .unwrap();
        // Windows from minutes to the whole store and beyond, at odd instants.
        let from = start - 86_400_000 + rng.below(72 * 86_400_000) as i64;
        let to = from
            + match rng.below(4) {
                0 => rng.below(3 * 3_600_000) as i64,
                1 => rng.below(3 * 86_400_000) as i64,
                _ => rng.below(90 * 86_400_000) as i64,
            };
        let daily = match rng.below(3) {
            0 => None,
            _ => Some(Daily {
                from_min: rng.below(1440) as u32,
                to_min: rng.below(1440) as u32,
            }),
        };
        let mut scope = Scope {
            all: rng.below(2) == 0,
            ..Scope::default()
        };
        if !scope.all {
            for g in &groups {
                if rng.below(3) == 0 {
                    scope.groups.insert(*g);
                }
            }
            for t in &technicians {
                if rng.below(4) == 0 {
                    scope.users.insert(*t);
                }
            }
        }
        let pick = picks[rng.below(picks.len() as u64) as usize];
        let key = keys[rng.below(keys.len() as u64) as usize];
        let only: Option<String> = (rng.below(4) == 0).then(|| {
            id_list(
                technicians
                    .iter()
                    .filter(|_| rng.below(3) == 0)
                    .collect::<Vec<_>>(),
            )
        });
        let req = Request {
            area: Area::Session,
            list: ListType::Summary,
            from,
            to,
            tz,
            daily,
            now,
            scope,
            field_names: Default::default(),
            page: None,
            survey_questions: None,
        };
        let stored = stored_sums(store, &req, pick, key, only.as_deref())
            .await
            .unwrap();
        let mut filter = picked_filter(&req, pick);
        if let Some(ids) = &only {
            filter.push_str(&format!(" AND {TECHNICIAN} IN ({ids})"));
        }
        let scanned: HashMap<i64, TimingSums> = store
            .report_timed_sums(&filter, key.scan(), None)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let (stored, scanned) = (nonzero(stored), nonzero(scanned));
        if !scanned.is_empty() {
            nonempty += 1;
        }
        assert_eq!(
            stored, scanned,
            "case {case}: {tz} {from}..{to} daily {daily:?} all {} {pick:?} {key:?} only {only:?}",
            req.scope.all
        );
        // Performance's sums of the whole organization, from the handled buckets (migration
        // 0026: blocks of days, blocks' hours of the day) in every case.
        let whole = Request {
            scope: Scope {
                all: true,
                ..Scope::default()
            },
            ..req.clone()
        };
        let stored = stored_sums(
            store,
            &whole,
            Pick::Handled,
            SumKey::Technician,
            only.as_deref(),
        )
        .await
        .unwrap();
        let mut filter = picked_filter(&whole, Pick::Handled);
        if let Some(ids) = &only {
            filter.push_str(&format!(" AND {TECHNICIAN} IN ({ids})"));
        }
        let scanned = store
            .report_timed_sums(&filter, SumKey::Technician.scan(), None)
            .await
            .unwrap();
        assert_eq!(
            nonzero(stored),
            nonzero(scanned.into_iter().collect()),
            "case {case}: handled by technician, {tz} {from}..{to} daily {daily:?} only {only:?}"
        );
        // The Transferred reports' count from the transfer buckets (migration 0021) against
        // the transfers listed one by one.
        let (filter, event) = transfer_filters(&req);
        let counted = transfer_count(store, &req, &filter, &event).await.unwrap();
        let listed = store.report_transfers(&filter, &event, None).await.unwrap();
        if !listed.is_empty() {
            with_transfers += 1;
        }
        assert_eq!(
            counted,
            listed.len() as u64,
            "case {case}: transfers, {tz} {from}..{to} daily {daily:?} all {}",
            req.scope.all
        );
        // The Login report's ends and Idle Times (the stored ends and covered times, migration
        // 0024) against the raw ones: each login ends at its user's next row and is idle
        // outside the live spans of every session of its user. Performance's Total Login Time
        // sums the same ends.
        let mut spans = login_spans(store, &req, &login_filter(&req), None)
            .await
            .unwrap();
        console_times(store, &req, &mut spans).await.unwrap();
        let until = now.max(to);
        let mut raw_login_time: HashMap<i64, i64> = HashMap::new();
        for l in &spans {
            let end = raw.end.get(&l.id).copied().flatten().filter(|e| *e < until);
            let b = end.unwrap_or(now);
            let mine = raw.spans.get(&l.user).map_or(&[][..], |v| v.as_slice());
            let idle = (b - l.start) - Timings::covered_within(mine, l.start, b);
            assert_eq!(
                (l.end, l.idle),
                (end, idle),
                "case {case}: login {} of {} at {}, {tz} {from}..{to} daily {daily:?}",
                l.id,
                l.user,
                l.start
            );
            *raw_login_time.entry(l.user).or_default() += b - l.start;
            kept += usize::from(l.covered.is_some());
            covered_raw += usize::from(l.covered.is_none());
            busy_logins += usize::from(idle < b - l.start);
        }
        // Performance's Total Login Time, summed by the database.
        let summed = store
            .report_login_time(&login_filter(&req), until, now)
            .await
            .unwrap();
        assert_eq!(summed, raw_login_time, "case {case}: login time by user");
    }
    // Migration 0026's fill of existing stores (from the session buckets) gives the handled
    // buckets kept since, blocks and blocks' hours of the day included.
    let handled_rows = || async {
        let rows: Vec<HandledRow> = sqlx::query_as(
            "SELECT span, at, technician_id, sessions, active + work + hold + transfer, \
             connecting + waiting + reconnecting + total + missed_wait, longest + longest_missed_wait, \
             transfers FROM handled_buckets ORDER BY span, at, technician_id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        rows
    };
    let before = handled_rows().await;
    let migration = match store.backend() {
        crate::store::Backend::Sqlite => {
            include_str!("../../migrations/sqlite/0026_handled_buckets.sql")
        }
        crate::store::Backend::Postgres => {
            include_str!("../../migrations/postgres/0026_handled_buckets.sql")
        }
    };
    let mut tx = store.begin().await.unwrap();
    sqlx::query("DELETE FROM handled_buckets")
        .execute(&mut *tx)
        .await
        .unwrap();
    run_fill(&mut tx, migration).await;
    tx.commit().await.unwrap();
    assert_eq!(handled_rows().await, before);
    let spans: std::collections::HashSet<i64> = before.iter().map(|r| r.0).collect();
    assert_eq!(spans.len(), 4, "{spans:?}");
    // Migration 0024's fill of existing stores gives the ends and covered times kept since.
    let kept_rows = || async {
        let rows: Vec<(i64, Option<i64>, i64)> =
            sqlx::query_as("SELECT id, end_at, covered FROM logins ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        rows
    };
    let before = kept_rows().await;
    let migration = match store.backend() {
        crate::store::Backend::Sqlite => {
            include_str!("../../migrations/sqlite/0024_login_coverage.sql")
        }
        crate::store::Backend::Postgres => {
            include_str!("../../migrations/postgres/0024_login_coverage.sql")
        }
    };
    let mut tx = store.begin().await.unwrap();
    sqlx::query("UPDATE logins SET end_at = NULL, covered = 0")
        .execute(&mut *tx)
        .await
        .unwrap();
    run_fill(&mut tx, migration).await;
    tx.commit().await.unwrap();
    assert_eq!(kept_rows().await, before);
    assert!(before.iter().filter(|r| r.2 > 0).count() > 500);
    // The cases are not vacuous.
    assert!(nonempty > 100, "{nonempty} cases with sessions");
    assert!(with_transfers > 80, "{with_transfers} cases with transfers");
    assert!(
        kept > 1000 && covered_raw > 5 && busy_logins > 1000,
        "{kept} logins read as stored, {covered_raw} covered from the spans, {busy_logins} with sessions"
    );
}

/// A handled bucket's key and sums (some added up), as the fill check compares them.
type HandledRow = (i64, i64, i64, i64, i64, i64, i64, i64);

/// Runs the statements of a migration's fill of existing stores: from the line after its
/// comment "-- Existing stores" on.
async fn run_fill(tx: &mut crate::store::Tx, migration: &str) {
    let fill = migration.split_once("-- Existing stores").unwrap().1;
    let fill = fill.split_once('\n').unwrap().1;
    for statement in fill.split(';').filter(|s| {
        s.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
    }) {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut **tx)
            .await
            .unwrap();
    }
}

/// The raw truth of the Login report: each login row's end (the user's next row, in (at, id)
/// order) and each technician's live spans merged, from every session's events.
struct RawLogins {
    end: HashMap<i64, Option<i64>>,
    spans: HashMap<i64, Vec<(i64, i64)>>,
}

impl RawLogins {
    async fn read(store: &Store, events_of: &HashMap<i64, (Vec<EventRow>, i64)>) -> Self {
        let rows: Vec<(i64, i64, String, i64)> =
            sqlx::query_as("SELECT id, user_id, event, at FROM logins ORDER BY user_id, at, id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let mut end = HashMap::new();
        for (i, (id, user, event, _)) in rows.iter().enumerate() {
            if event == "login" {
                let next = rows.get(i + 1).filter(|n| n.1 == *user).map(|n| n.3);
                end.insert(*id, next);
            }
        }
        let mut spans: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for (events, last) in events_of.values() {
            for (t, a, b) in Timings::live_spans(events, *last) {
                spans.entry(t).or_default().push((a, b));
            }
        }
        let spans = spans
            .into_iter()
            .map(|(t, v)| (t, Timings::merged(v)))
            .collect();
        RawLogins { end, spans }
    }
}

/// Six sessions still live (no final status), of random technicians, created from five days
/// to minutes before `now`: their events, lasting to `now`.
async fn live_sessions(
    store: &Store,
    technicians: &[i64],
    start: i64,
    now: i64,
    rng: &mut Rng,
) -> HashMap<i64, (Vec<EventRow>, i64)> {
    let group: (i64,) = sqlx::query_as("SELECT MIN(id) FROM org_groups")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let mut out = HashMap::new();
    for k in 0..6 {
        let tech = technicians[rng.below(technicians.len() as u64) as usize];
        let created = (now - rng.below(if k == 0 { 5 } else { 1 } * 86_400_000) as i64).max(start);
        let id = store
            .insert_session(&crate::store::sessions::SessionRow {
                created_by: tech,
                technician_id: Some(tech),
                group_id: group.0,
                method: "pin".into(),
                status: "Active".into(),
                created_at: created,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut events = Vec::new();
        let mut at = created;
        for (seq, to) in ["Waiting", "Active", "On Hold", "Active"]
            .iter()
            .enumerate()
        {
            let event = EventRow {
                seq: seq as i64 + 1,
                at,
                from_status: String::new(),
                to_status: (*to).into(),
                actor: "technician".into(),
                actor_id: Some(tech),
                reason: "test".into(),
                technician_id: Some(tech),
                group_id: group.0,
                detail: String::new(),
            };
            sqlx::query(
                "INSERT INTO session_events (session_id, seq, at, from_status, to_status, actor, actor_id, \
                 reason, technician_id, group_id, detail) VALUES ($1, $2, $3, '', $4, 'technician', $5, 'test', $5, $6, '')",
            )
            .bind(id)
            .bind(event.seq)
            .bind(at)
            .bind(&event.to_status)
            .bind(tech)
            .bind(group.0)
            .execute(store.pool())
            .await
            .unwrap();
            events.push(event);
            at += rng.below(((now - at) / 3).max(1) as u64) as i64;
        }
        out.insert(id, (events, now));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_sums_equal_a_scan_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("lens.db").display());
    check(&Store::open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_sums_equal_a_scan_on_postgres() {
    if let Some(store) = postgres_test_store().await {
        check(&store).await;
    }
}

/// A store in a fresh database of `LENS_TEST_POSTGRES_URL`'s server; None (the test skips)
/// without it, outside CI.
pub(crate) async fn postgres_test_store() -> Option<Store> {
    use sqlx::Connection;
    let base = match std::env::var("LENS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("LENS_TEST_POSTGRES_URL is not set but CI=true: run ./scripts/test");
            }
            eprintln!("LENS_TEST_POSTGRES_URL not set: skipping the PostgreSQL variant");
            return None;
        }
    };
    let name = format!("lens_t_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    // The name is ours (hex digits).
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    Some(Store::open(url.as_str()).await.unwrap())
}
