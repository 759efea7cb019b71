//! Reports: sessions driven through the real hub on its fake clock (and, where exact wall-clock
//! times matter, written through the store's own write path with fixed times), then every report's
//! rows checked against hand-computed values, in UTC and in zones with daylight saving time, with
//! and without a daily range, in every format, on SQLite and PostgreSQL.

use crate::common;

use std::collections::HashMap;

use common::*;
use lens::reports::Timings;
use lens::store::LoginEvent::{Login, Logout};
use lens::store::reports::SurveyRow;
use lens::store::sessions::{EventRow, SessionRow, SessionState};
use serde_json::{Value, json};

const MIN: i64 = 60_000;

/// A report as column name → cell, one map per row.
fn rows(report: &Value) -> Vec<HashMap<String, Value>> {
    let cols: Vec<String> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            cols.iter()
                .cloned()
                .zip(r.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

fn columns(report: &Value) -> Vec<&str> {
    report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect()
}

async fn report(s: &TestServer, token: &str, area: &str, query: &str) -> Value {
    s.get(&format!("/api/v1/reports/{area}?{query}"), token)
        .await
        .expect(200)
}

fn row_of(report: &Value, session: i64) -> HashMap<String, Value> {
    rows(report)
        .into_iter()
        .find(|r| r["Session ID"] == session)
        .unwrap_or_else(|| panic!("no row for session {session}: {report}"))
}

async fn pin_session(s: &TestServer, token: &str, name: &str) -> (i64, String) {
    let c = s
        .post(
            "/api/v1/sessions",
            token,
            json!({"method": "pin", "name": name, "tracking_id": format!("T-{name}")}),
        )
        .await
        .expect(201);
    (
        c["id"].as_i64().unwrap(),
        c["pin"].as_str().unwrap().to_owned(),
    )
}

struct Scripted {
    s: TestServer,
    master: String,
    group: i64,
    subgroup: i64,
    ada: i64,
    bob: i64,
    /// 30 s connecting, 5 min waiting, 10 min active, 2 min hold.
    plain: i64,
    /// ada 3 min active → transfer to bob → 4 min waiting → bob 6 min active.
    transferred: i64,
    /// 7 min waiting, then the customer leaves.
    missed: i64,
    /// 45 s connecting, then the customer leaves.
    failed: i64,
}

/// The scripted sessions, through real consoles and customers, on the hub's clock.
async fn scripted(backend: Backend) -> Option<Scripted> {
    let s = start_on(backend, |_| {}).await?;
    let m = s.master().await;
    let group = s.create_group(&m, "Support", None).await;
    let subgroup = s.create_group(&m, "Paris desk", Some(group)).await;
    let ada = s
        .create_user(&m, "technicians", "ada@example.com", Some(group))
        .await;
    let bob = s
        .create_user(&m, "technicians", "bob@example.com", Some(subgroup))
        .await;
    let ta = s.token("ada@example.com", USER_PASSWORD).await;
    let tb = s.token("bob@example.com", USER_PASSWORD).await;
    let (mut ca, _) = console(&s, &ta).await;
    let (mut cb, _) = console(&s, &tb).await;
    let hub = s.state.hub.clone();

    let (plain, pin) = pin_session(&s, &ta, "Grace").await;
    let (mut cus, _) = customer(&s, &pin).await;
    hub.advance_clock(30_000);
    cus.request(json!({"type": "ready"})).await;
    cus.status("Waiting").await;
    hub.advance_clock(5 * MIN);
    ca.request(json!({"type": "pickup", "session_id": plain}))
        .await;
    cus.status("Active").await;
    cus.request(json!({"type": "chat", "text": "My router\tblinks\nred"}))
        .await;
    ca.request(json!({"type": "note", "session_id": plain, "text": "Router model X"}))
        .await;
    hub.advance_clock(10 * MIN);
    ca.request(json!({"type": "hold", "session_id": plain}))
        .await;
    cus.status("On Hold").await;
    hub.advance_clock(2 * MIN);
    ca.request(json!({"type": "resume", "session_id": plain}))
        .await;
    cus.status("Active").await;
    ca.request(json!({"type": "end", "session_id": plain}))
        .await;
    cus.frame("ended", None).await;

    let (transferred, pin) = pin_session(&s, &ta, "Linus").await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    cus.status("Waiting").await;
    hub.advance_clock(MIN);
    ca.request(json!({"type": "pickup", "session_id": transferred}))
        .await;
    cus.status("Active").await;
    hub.advance_clock(3 * MIN);
    let r = ca.request(json!({"type": "transfer", "session_id": transferred, "to_technician_id": bob, "comment": "Paris please"})).await;
    assert_eq!(r["type"], "ok", "{r}");
    cb.session_status(transferred, "Waiting").await;
    hub.advance_clock(4 * MIN);
    cb.request(json!({"type": "pickup", "session_id": transferred}))
        .await;
    cus.status("Active").await;
    hub.advance_clock(6 * MIN);
    cb.request(json!({"type": "end", "session_id": transferred}))
        .await;
    cus.frame("ended", None).await;

    let (missed, pin) = pin_session(&s, &ta, "Ken").await;
    let (mut cus, _) = customer(&s, &pin).await;
    cus.request(json!({"type": "ready"})).await;
    cus.status("Waiting").await;
    hub.advance_clock(7 * MIN);
    cus.request(json!({"type": "end"})).await;
    cus.frame("ended", None).await;

    let (failed, pin) = pin_session(&s, &ta, "Barbara").await;
    let (mut cus, _) = customer(&s, &pin).await;
    hub.advance_clock(45_000);
    cus.request(json!({"type": "end"})).await;
    cus.frame("ended", None).await;

    hub.flush().await;
    Some(Scripted {
        s,
        master: m,
        group,
        subgroup,
        ada,
        bob,
        plain,
        transferred,
        missed,
        failed,
    })
}

/// Today and tomorrow in UTC on the hub's clock: the window of the scripted sessions.
fn last_week() -> &'static str {
    "range=last_7_days"
}

async fn check_session_reports(x: &Scripted) {
    let (s, m) = (&x.s, &x.master);
    let list = report(s, m, "session", last_week()).await;
    assert_eq!(
        columns(&list),
        [
            "Start Time",
            "End Time",
            "Last Action Time",
            "Technician Name",
            "Technician ID",
            "Technician Email",
            "Session ID",
            "Session Type",
            "Status",
            "Name",
            "Custom Field 1",
            "Custom Field 2",
            "Custom Field 3",
            "Custom Field 4",
            "Custom Field 5",
            "Tracking ID",
            "Customer IP",
            "Device ID",
            "Incident Tool Used",
            "Resolved/Unresolved",
            "Channel ID",
            "Channel Name",
            "Calling Card",
            "Connecting Time",
            "Waiting Time",
            "Total Time",
            "Active Time",
            "Work Time",
            "Hold Time",
            "Time in Transfer",
            "Rebooting Time",
            "Reconnecting Time",
            "Platform",
            "Browser Type",
        ]
    );
    let r = row_of(&list, x.plain);
    assert_eq!(r["Technician Name"], "ada");
    assert_eq!(r["Technician ID"], x.ada);
    assert_eq!(r["Technician Email"], "ada@example.com");
    assert_eq!(r["Session Type"], "Mobile Applet");
    assert_eq!(r["Status"], "Closed by technician");
    assert_eq!(r["Name"], "Grace");
    assert_eq!(r["Tracking ID"], "T-Grace");
    assert_eq!(r["Customer IP"], "127.0.0.1");
    assert_eq!(r["Platform"], "Android");
    assert_eq!(r["Browser Type"], "Chrome");
    assert_eq!(r["Connecting Time"], "0:00:30");
    assert_eq!(r["Waiting Time"], "0:05:00");
    assert_eq!(r["Active Time"], "0:10:00");
    assert_eq!(r["Work Time"], "0:10:00");
    assert_eq!(r["Hold Time"], "0:02:00");
    assert_eq!(r["Time in Transfer"], "0:00:00");
    assert_eq!(r["Rebooting Time"], "0:00:00");
    assert_eq!(r["Reconnecting Time"], "0:00:00");
    assert_eq!(r["Total Time"], "0:12:00");
    assert_eq!(r["Calling Card"], "");
    let t = row_of(&list, x.transferred);
    assert_eq!(t["Technician Name"], "bob");
    assert_eq!(t["Waiting Time"], "0:01:00");
    assert_eq!(t["Active Time"], "0:09:00");
    assert_eq!(t["Time in Transfer"], "0:04:00");
    assert_eq!(t["Total Time"], "0:13:00");
    // Missed and failed sessions are listed with their final status and no Start Time.
    let f = row_of(&list, x.failed);
    assert_eq!(f["Status"], "Closed by waiting customer");
    assert_eq!(f["Start Time"], "");
    assert_eq!(f["Connecting Time"], "0:00:45");

    let sum = report(s, m, "session", &format!("{}&list=summary", last_week())).await;
    let r = &rows(&sum)[0];
    assert_eq!(r["Number of Sessions"], 2);
    assert_eq!(r["Total Session Time"], "0:25:00");
    assert_eq!(r["Average Session Time"], "0:12:30");
    assert_eq!(r["Total Pick-up Time"], "0:06:00");
    assert_eq!(r["Average Pick-up Time"], "0:03:00");
    assert_eq!(r["Total Active Time"], "0:19:00");
    assert_eq!(r["Total Hold Time"], "0:02:00");
    assert_eq!(r["Total Transfer Time"], "0:04:00");
    assert_eq!(r["Average Transfer Time"], "0:02:00");
    assert_eq!(r["Total Rebooting Time"], "0:00:00");
    assert_eq!(r["Longest Session Time"], "0:13:00");
    assert_eq!(r["Number of Missed Sessions"], 1);
    assert_eq!(columns(&sum).len(), 19);

    let missed = report(s, m, "missed-sessions", last_week()).await;
    assert_eq!(rows(&missed).len(), 1);
    let r = row_of(&missed, x.missed);
    assert_eq!(r["Waiting Time"], "0:07:00");
    assert_eq!(r["Status"], "Closed by waiting customer");
    assert_eq!(r["Private Session"], "ada");
    assert_eq!(r["Technician Group"], "Support");
    assert_eq!(r["Channel"], "");
    let ms = report(
        s,
        m,
        "missed-sessions",
        &format!("{}&list=summary", last_week()),
    )
    .await;
    assert_eq!(rows(&ms)[0]["Number of Missed Sessions"], 1, "{ms}");
    assert_eq!(rows(&ms)[0]["Longest Session"], "0:07:00");

    let failed = report(s, m, "failed-sessions", last_week()).await;
    assert_eq!(rows(&failed).len(), 1);
    assert_eq!(row_of(&failed, x.failed)["Private Session"], "ada");
    let fs = report(
        s,
        m,
        "failed-sessions",
        &format!("{}&list=summary", last_week()),
    )
    .await;
    assert_eq!(rows(&fs)[0]["Number of Failed Sessions"], 1);
    assert_eq!(rows(&fs)[0]["Total Connecting Time"], "0:00:45");
    let fx = report(s, m, "failed-sessions-extended", last_week()).await;
    let r = row_of(&fx, x.failed);
    assert_eq!(r["Private Session Technician Name"], "ada");
    assert_eq!(r["Technician Email"], "ada@example.com");
    assert_eq!(r["Technician Group ID"], x.group);

    let tr = report(s, m, "transferred-sessions", last_week()).await;
    assert_eq!(
        columns(&tr),
        [
            "Session ID",
            "Time of Transfer",
            "Waiting Time",
            "Name",
            "Transferred by",
            "Transferred from",
            "Transferred to",
            "Transfer Comment",
            "Time in Transfer"
        ]
    );
    let r = row_of(&tr, x.transferred);
    assert_eq!(r["Transferred by"], "ada");
    assert_eq!(r["Transferred from"], "ada");
    assert_eq!(r["Transferred to"], "bob");
    assert_eq!(r["Transfer Comment"], "Paris please");
    assert_eq!(r["Waiting Time"], "0:04:00");
    assert_eq!(r["Time in Transfer"], "0:04:00");
    let tx = report(s, m, "transferred-sessions-extended", last_week()).await;
    let r = row_of(&tx, x.transferred);
    assert_eq!(r["Transferred by - Technician ID"], x.ada);
    assert_eq!(r["Transferred to - Technician/Channel ID"], x.bob);
    assert_eq!(r["Transferred from - Technician Group"], "Support");
    assert_eq!(r["Transferred to - Technician Group ID"], x.subgroup);
    assert_eq!(r["Transferred to - Technician Group"], "Paris desk");

    let cf = report(s, m, "custom-fields", last_week()).await;
    let r = row_of(&cf, x.plain);
    assert_eq!(r["Total Time"], "0:12:00");
    assert_eq!(r["Tracking ID"], "T-Grace");

    let chat = report(s, m, "chatlog", last_week()).await;
    let r = row_of(&chat, x.plain);
    let log = r["Chat Log"].as_str().unwrap();
    assert!(
        log.ends_with("Customer: My router\tblinks\nred")
            || log.contains(": My router\tblinks\nred"),
        "{log}"
    );
    assert!(r["Notes"].as_str().unwrap().ends_with("Router model X"));
    assert_eq!(r["Delete"], "");

    let perf = report(s, m, "performance", last_week()).await;
    let r = rows(&perf)
        .into_iter()
        .find(|r| r["Technician ID"] == x.ada)
        .unwrap();
    assert_eq!(r["Number of Sessions"], 1);
    assert_eq!(r["Average Pick-up Speed"], "0:05:00");
    assert_eq!(r["Longest Session"], "0:12:00");
    assert_eq!(r["Total Active Time"], "0:10:00");
    let ps = report(
        s,
        m,
        "performance",
        &format!("{}&list=summary", last_week()),
    )
    .await;
    let r = &rows(&ps)[0];
    assert_eq!(r["Number of Sessions"], 2);
    assert_eq!(r["Total Session Time"], "0:25:00");

    // A group includes its subgroups; the subgroup alone has bob's session only.
    let sub = report(
        s,
        m,
        "session",
        &format!("{}&unit=technician_group:{}", last_week(), x.subgroup),
    )
    .await;
    let ids: Vec<Value> = rows(&sub).iter().map(|r| r["Session ID"].clone()).collect();
    assert_eq!(ids, [json!(x.transferred)]);
    let whole = report(
        s,
        m,
        "session",
        &format!("{}&unit=technician_group:{}", last_week(), x.group),
    )
    .await;
    assert_eq!(rows(&whole).len(), 4);
    let one = report(
        s,
        m,
        "session",
        &format!("{}&unit=technician:{}", last_week(), x.bob),
    )
    .await;
    assert_eq!(rows(&one).len(), 1);

    // Login: ada and bob logged in once each (the tokens above), still logged in.
    let login = report(s, m, "login", last_week()).await;
    assert!(
        rows(&login)
            .iter()
            .any(|r| r["User ID"] == x.ada && r["End Time"] == ""),
        "{login}"
    );
    let ls = report(s, m, "login", &format!("{}&list=summary", last_week())).await;
    let r = rows(&ls)
        .into_iter()
        .find(|r| r["User ID"] == x.bob)
        .unwrap();
    assert_eq!(r["Number of Logins"], 1);
    assert_eq!(r["Group"], "Paris desk");

    // Audit: the master's changes (groups, users) are there.
    let audit = report(s, m, "audit", last_week()).await;
    assert!(
        rows(&audit)
            .iter()
            .any(|r| r["Entity type"] == "Technician Group" && r["Entity name"] == "Paris desk")
    );
}

#[tokio::test]
async fn session_reports_on_sqlite() {
    let x = scripted(Backend::Sqlite).await.unwrap();
    check_session_reports(&x).await;
}

#[tokio::test]
async fn session_reports_on_postgres() {
    let Some(x) = scripted(Backend::Postgres).await else {
        return;
    };
    check_session_reports(&x).await;
}

/// The reports' stored times (`session_timings`, written as each session ended) are what
/// `Timings::of` computes from the session's events; the startup backfill writes the same rows.
async fn check_stored_times(x: &Scripted) {
    let store = &x.s.state.store;
    let now = x.s.state.hub.now();
    let expected: Vec<(i64, Timings)> = store
        .report_sessions(0, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, Timings::of(&s.events, now)))
        .collect();
    assert_eq!(expected.len(), 4);
    let mut spans: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for s in store.report_sessions(0, i64::MAX).await.unwrap() {
        for (t, a, b) in Timings::live_spans(&s.events, now) {
            spans.entry(t).or_default().push((a, b));
        }
    }
    spans.values_mut().for_each(|v| v.sort_unstable());
    assert_eq!(spans.len(), 2, "ada's and bob's");
    let stored = || async {
        let rows: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT live_technician_id, start_at, end_at FROM session_spans")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let mut by_technician: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for (t, a, b) in rows {
            by_technician.entry(t).or_default().push((a, b));
        }
        by_technician.values_mut().for_each(|v| v.sort_unstable());
        let times = store
            .report_timed_sessions("1 = 1")
            .await
            .unwrap()
            .into_iter()
            .map(|(s, t)| (s.id, t))
            .collect::<Vec<_>>();
        (times, by_technician)
    };
    assert_eq!(stored().await, (expected.clone(), spans.clone()));
    let plain = &expected.iter().find(|e| e.0 == x.plain).unwrap().1;
    // Whole seconds: the hub's clock also moves with real time between the scripted steps.
    let secs = |ms: i64| ms / 1000;
    assert_eq!(
        (secs(plain.active), secs(plain.hold), secs(plain.waiting)),
        (600, 120, 300)
    );
    let transferred = &expected.iter().find(|e| e.0 == x.transferred).unwrap().1;
    assert_eq!(
        (transferred.transfers, secs(transferred.transfer)),
        (1, 240)
    );
    sqlx::query("DELETE FROM session_timings")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM session_spans")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(store.backfill_session_timings().await.unwrap(), 4);
    assert_eq!(stored().await, (expected, spans));
    assert_eq!(store.backfill_session_timings().await.unwrap(), 0);
}

#[tokio::test]
async fn stored_times_on_sqlite() {
    check_stored_times(&scripted(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn stored_times_on_postgres() {
    let Some(x) = scripted(Backend::Postgres).await else {
        return;
    };
    check_stored_times(&x).await;
}

/// Administrators see only their units; technicians have no reports.
#[tokio::test]
async fn permissions() {
    let x = scripted(Backend::Sqlite).await.unwrap();
    let s = &x.s;
    let m = &x.master;
    let other = s.create_group(m, "Elsewhere", None).await;
    let admin = s
        .create_user(m, "administrators", "boss@example.com", None)
        .await;
    s.put(
        &format!("/api/v1/administrators/{admin}/technician-groups/{other}"),
        m,
        json!({}),
    )
    .await;
    let t = s.token("boss@example.com", USER_PASSWORD).await;
    let r = s
        .get(
            &format!("/api/v1/reports/session?unit=technician_group:{}", x.group),
            &t,
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = s
        .get(
            &format!("/api/v1/reports/session?unit=technician:{}", x.ada),
            &t,
        )
        .await;
    assert_eq!(r.status, 404);
    // Without a unit: only what it manages, which has no sessions.
    let mine = report(s, &t, "session", last_week()).await;
    assert!(rows(&mine).is_empty());
    let mine = report(
        s,
        &t,
        "session",
        &format!("{}&unit=technician_group:{other}", last_week()),
    )
    .await;
    assert!(rows(&mine).is_empty());
    // Assigned the group, it sees the sessions.
    s.put(
        &format!(
            "/api/v1/administrators/{admin}/technician-groups/{}",
            x.group
        ),
        m,
        json!({}),
    )
    .await;
    let now = report(
        s,
        &t,
        "session",
        &format!("{}&unit=technician_group:{}", last_week(), x.group),
    )
    .await;
    assert_eq!(rows(&now).len(), 4);
    let tech = s.token("ada@example.com", USER_PASSWORD).await;
    assert_eq!(s.get("/api/v1/reports/session", &tech).await.status, 403);
    // Bad input: errors, not panics; a query parameter is 400 `invalid_parameter` as everywhere.
    for (q, status) in [
        ("/api/v1/reports/nope", 404),
        ("/api/v1/reports/session?tz=Mars/Olympus", 400),
        ("/api/v1/reports/session?range=fortnight", 400),
        ("/api/v1/reports/session?from=2026-02-30&to=2026-03-01", 400),
        (
            "/api/v1/reports/session?daily_from=25:00&daily_to=10:00",
            400,
        ),
        ("/api/v1/reports/chatlog?list=summary", 400),
        ("/api/v1/reports/session?format=pdf", 400),
        ("/api/v1/reports/session?unit=technician:abc", 400),
        ("/api/v1/reports/session?per_page=0", 400),
    ] {
        assert_eq!(s.get(q, m).await.status, status, "{q}");
    }
}

/// The guide's time-zone example: a New York viewer, technicians in San Francisco and Paris, and
/// the daily time range read in the viewer's zone, across daylight saving time.
/// A session of `tech` written through the store's own path with fixed times: created, then
/// Connecting a minute later and Waiting a minute after that (the technician's live span starts
/// at Connecting), Active at `active`, closed by the technician at `ended`.
async fn fixed_session(
    s: &TestServer,
    tech: i64,
    g: i64,
    created: i64,
    active: i64,
    ended: i64,
) -> i64 {
    let id = s
        .state
        .store
        .insert_session(&SessionRow {
            created_by: tech,
            technician_id: Some(tech),
            group_id: g,
            method: "pin".into(),
            name: "Customer".into(),
            status: "Pending".into(),
            status_since: created,
            last_activity: created,
            policy: "{}".into(),
            created_at: created,
            code_expires_at: created + 20 * MIN,
            ..SessionRow::default()
        })
        .await
        .unwrap();
    let steps = [
        ("Pending", "Connecting", created + MIN),
        ("Connecting", "Waiting", created + 2 * MIN),
        ("Waiting", "Active", active),
        ("Active", "Closed by technician", ended),
    ];
    let events: Vec<EventRow> = steps
        .iter()
        .enumerate()
        .map(|(i, (from, to, t))| EventRow {
            seq: i as i64 + 1,
            at: *t,
            from_status: (*from).into(),
            to_status: (*to).into(),
            actor: "technician".into(),
            actor_id: Some(tech),
            reason: "scripted".into(),
            technician_id: Some(tech),
            group_id: g,
            detail: String::new(),
        })
        .collect();
    s.state
        .store
        .record_transitions(
            id,
            &SessionState {
                status: "Closed by technician".into(),
                status_since: ended,
                before_reconnecting: None,
                last_activity: ended,
                ever_active: true,
                technician_id: Some(tech),
                group_id: g,
                ended_at: Some(ended),
            },
            &events,
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn time_zones_and_daily_range() {
    let s = start().await;
    let m = s.master().await;
    let g = s.create_group(&m, "World", None).await;
    let sf = s
        .create_user(&m, "technicians", "sf@example.com", Some(g))
        .await;
    let paris = s
        .create_user(&m, "technicians", "paris@example.com", Some(g))
        .await;
    let at = |iso: &str| {
        chrono::DateTime::parse_from_rfc3339(iso)
            .unwrap()
            .timestamp_millis()
    };
    // Written through the store's own path with fixed times: 2:00 PM in San Francisco
    // (22:00 UTC in January), 2:00 PM in Paris (13:00 UTC), and 2:00 PM in San Francisco in July
    // (21:00 UTC, both zones on summer time).
    let sessions = [
        (sf, "2026-01-15T22:00:00Z"),
        (paris, "2026-01-15T13:00:00Z"),
        (sf, "2026-07-15T21:00:00Z"),
    ];
    let mut ids = Vec::new();
    for (tech, active) in sessions {
        let active = at(active);
        ids.push(fixed_session(&s, tech, g, active - 6 * MIN, active, active + 15 * MIN).await);
    }
    let start = |report: &Value, id: i64| row_of(report, id)["Start Time"].clone();
    let jan = "from=2026-01-01&to=2026-01-31";
    let ny = report(&s, &m, "session", &format!("{jan}&tz=America/New_York")).await;
    assert_eq!(ny["time_zone"], "America/New_York");
    assert_eq!(start(&ny, ids[0]), "2026-01-15 17:00:00");
    assert_eq!(start(&ny, ids[1]), "2026-01-15 08:00:00");
    assert_eq!(row_of(&ny, ids[0])["Total Time"], "0:15:00");
    let utc = report(&s, &m, "session", jan).await;
    assert_eq!(start(&utc, ids[0]), "2026-01-15 22:00:00");
    assert_eq!(start(&utc, ids[1]), "2026-01-15 13:00:00");
    let jul = report(
        &s,
        &m,
        "session",
        "from=2026-07-01&to=2026-07-31&tz=America/New_York",
    )
    .await;
    assert_eq!(start(&jul, ids[2]), "2026-07-15 17:00:00");
    let paris_view = report(
        &s,
        &m,
        "session",
        "from=2026-07-01&to=2026-07-31&tz=Europe/Paris",
    )
    .await;
    assert_eq!(start(&paris_view, ids[2]), "2026-07-15 23:00:00");
    // The daily range 09:00–17:00 of each day, read in the chosen zone, on the session's creation:
    // 16:54 and 07:54 in New York; 21:54 and 12:54 in UTC.
    let ny_day = report(
        &s,
        &m,
        "session",
        &format!("{jan}&tz=America/New_York&daily_from=09:00&daily_to=17:00"),
    )
    .await;
    let only: Vec<Value> = rows(&ny_day)
        .iter()
        .map(|r| r["Session ID"].clone())
        .collect();
    assert_eq!(only, [json!(ids[0])]);
    let utc_day = report(
        &s,
        &m,
        "session",
        &format!("{jan}&daily_from=09:00&daily_to=17:00"),
    )
    .await;
    let only: Vec<Value> = rows(&utc_day)
        .iter()
        .map(|r| r["Session ID"].clone())
        .collect();
    assert_eq!(only, [json!(ids[1])]);
    // Over midnight: 21:00–08:00 UTC keeps the 21:54 one.
    let night = report(
        &s,
        &m,
        "session",
        &format!("{jan}&daily_from=21:00&daily_to=08:00"),
    )
    .await;
    let only: Vec<Value> = rows(&night)
        .iter()
        .map(|r| r["Session ID"].clone())
        .collect();
    assert_eq!(only, [json!(ids[0])]);
    // The end date is included: a window ending the 14th misses them, one ending the 15th has them.
    let before = report(&s, &m, "session", "from=2026-01-01&to=2026-01-14").await;
    assert!(rows(&before).is_empty());
    let through = report(&s, &m, "session", "from=2026-01-15&to=2026-01-15").await;
    assert_eq!(rows(&through).len(), 2);

    // Surveys, written through the store's survey path.
    for (tech, id, answer, closing) in [
        (sf, ids[0], "Excellent", true),
        (paris, ids[1], "Good", false),
    ] {
        s.state
            .store
            .insert_survey(&SurveyRow {
                session_id: id,
                kind: "customer".into(),
                technician_id: tech,
                group_id: g,
                issued_by_closing: closing,
                submitted_at: at("2026-01-15T23:30:00Z"),
                answers: vec![
                    ("How was it?".into(), answer.into()),
                    ("Comments".into(), String::new()),
                ],
                session_name: String::new(),
                session_ended_at: None,
            })
            .await
            .unwrap();
    }
    s.state
        .store
        .insert_survey(&SurveyRow {
            session_id: ids[0],
            kind: "technician".into(),
            technician_id: sf,
            group_id: g,
            issued_by_closing: false,
            submitted_at: at("2026-01-15T22:20:00Z"),
            answers: vec![("Resolved?".into(), "Yes".into())],
            session_name: String::new(),
            session_ended_at: None,
        })
        .await
        .unwrap();
    let cs = report(&s, &m, "customer-survey", jan).await;
    assert_eq!(
        columns(&cs),
        [
            "Source",
            "Session ID",
            "Date",
            "Name",
            "How was it?",
            "Comments",
            "Technician Name",
            "Technician ID",
            "Technician Email"
        ]
    );
    let r = row_of(&cs, ids[0]);
    assert_eq!(r["Source"], "World");
    assert_eq!(r["How was it?"], "Excellent");
    assert_eq!(r["Date"], "2026-01-15 22:15:00", "the session's end");
    let sum = report(&s, &m, "customer-survey", &format!("{jan}&list=summary")).await;
    let r = &rows(&sum)[0];
    assert_eq!(r["Number of Surveys"], 2);
    assert_eq!(r["How was it?"], 2);
    assert_eq!(r["Comments"], 0);
    let iss = report(&s, &m, "customer-survey-issuance", jan).await;
    assert_eq!(
        row_of(&iss, ids[0])["Survey issued by closing technician"],
        "Yes"
    );
    assert_eq!(
        row_of(&iss, ids[1])["Survey issued by closing technician"],
        "No"
    );
    let iss_sum = report(
        &s,
        &m,
        "customer-survey-issuance",
        &format!("{jan}&list=summary"),
    )
    .await;
    assert_eq!(rows(&iss_sum).len(), 2);
    let ts = report(&s, &m, "technician-survey", jan).await;
    let r = row_of(&ts, ids[0]);
    assert_eq!(r["Resolved?"], "Yes");
    assert_eq!(r["Date"], "2026-01-15 22:20:00");
    assert_eq!(r["Technician Name"], "sf");
}

/// Every format carries the same cells; TSV escapes tabs and newlines in chat text.
#[tokio::test]
async fn formats() {
    let x = scripted(Backend::Sqlite).await.unwrap();
    let (s, m) = (&x.s, &x.master);
    let json = report(s, m, "chatlog", last_week()).await;
    let mut expected: Vec<Vec<String>> =
        vec![columns(&json).iter().map(|c| c.to_string()).collect()];
    for r in json["rows"].as_array().unwrap() {
        expected.push(
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    let get = |fmt: &'static str| {
        let url = format!(
            "{}/api/v1/reports/chatlog?{}&format={fmt}",
            s.base,
            last_week()
        );
        let http = s.http.clone();
        let m = m.clone();
        async move {
            let r = http.get(url).bearer_auth(m).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (ct, r.bytes().await.unwrap().to_vec())
        }
    };

    // HTML: a page with the table.
    let (ct, html) = get("html").await;
    assert!(ct.starts_with("text/html"));
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("<th>Chat Log</th>") && html.contains("Router model X"));

    // TSV: one line per row; the chat's tab and newline escaped.
    let (_, tsv) = get("tsv").await;
    let tsv = String::from_utf8(tsv).unwrap();
    let lines: Vec<&str> = tsv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), expected.len());
    let unescape = |s: &str| {
        s.replace("\\t", "\t")
            .replace("\\n", "\n")
            .replace("\\r", "\r")
            .replace("\\\\", "\\")
    };
    for (line, want) in lines.iter().zip(&expected) {
        let cells: Vec<String> = line.split('\t').map(unescape).collect();
        assert_eq!(&cells, want);
    }
    assert!(tsv.contains("My router\\tblinks\\nred"));

    // SpreadsheetML 2003: well-formed XML whose cells are the JSON's.
    let (_, xml) = get("xml").await;
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let mut cells: Vec<Vec<String>> = Vec::new();
    let mut buf = Vec::new();
    let mut in_data = false;
    loop {
        match reader.read_event_into(&mut buf).expect("well-formed XML") {
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"Row" => cells.push(vec![]),
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"Data" => {
                in_data = true;
                cells.last_mut().unwrap().push(String::new());
            }
            quick_xml::events::Event::Text(t) if in_data => {
                let text = t.xml_content().unwrap();
                cells
                    .last_mut()
                    .unwrap()
                    .last_mut()
                    .unwrap()
                    .push_str(&text);
            }
            quick_xml::events::Event::GeneralRef(r) if in_data => {
                let name = String::from_utf8(r.to_vec()).unwrap();
                let c = match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                };
                cells.last_mut().unwrap().last_mut().unwrap().push_str(c);
            }
            quick_xml::events::Event::End(e) if e.name().as_ref() == b"Data" => in_data = false,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    assert_eq!(cells, expected);

    // XLSX: opened by openpyxl, the same cells.
    let (_, xlsx) = get("xlsx").await;
    let path = s.dir.path().join("chatlog.xlsx");
    std::fs::write(&path, &xlsx).unwrap();
    // scripts/test points LENS_TEST_PYTHON at its venv, which has openpyxl.
    let python = std::env::var("LENS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys, openpyxl\n\
             ws = openpyxl.load_workbook(sys.argv[1]).active\n\
             print(json.dumps([[('' if c is None else (str(int(c)) if isinstance(c, (int, float)) else c)) for c in r] for r in ws.iter_rows(values_only=True)]))",
        )
        .arg(&path)
        .output()
        .expect("python3 (scripts/test installs it with openpyxl)");
    assert!(
        out.status.success(),
        "openpyxl could not read the workbook: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read, expected);
}

/// Chatlog deletion: queued by a master administrator, revocable for 24 h, then purged; the
/// Chatlog report shows the pending deletion and omits the deleted log; both actions audited.
#[tokio::test]
async fn chatlog_deletion() {
    let x = scripted(Backend::Sqlite).await.unwrap();
    let (s, m) = (&x.s, &x.master);
    let path = format!("/api/v1/chatlog-deletions/{}", x.plain);
    let tech = s.token("ada@example.com", USER_PASSWORD).await;
    assert_eq!(s.post(&path, &tech, json!({})).await.status, 403);
    assert_eq!(
        s.post("/api/v1/chatlog-deletions/999999", m, json!({}))
            .await
            .status,
        404
    );
    s.post(&path, m, json!({})).await.expect(201);
    assert_eq!(s.post(&path, m, json!({})).await.status, 409);
    let chat = report(s, m, "chatlog", last_week()).await;
    let r = row_of(&chat, x.plain);
    assert!(
        r["Delete"]
            .as_str()
            .unwrap()
            .starts_with("Pending deletion"),
        "{r:?}"
    );
    assert!(r["Chat Log"].as_str().unwrap().contains("My router"));
    // Revoked within 24 h: nothing pending.
    s.delete(&path, m).await.expect(204);
    assert_eq!(s.delete(&path, m).await.status, 404);
    let chat = report(s, m, "chatlog", last_week()).await;
    assert_eq!(row_of(&chat, x.plain)["Delete"], "");
    // Queued again; 23 h later still there, after 24 h purged.
    s.post(&path, m, json!({})).await.expect(201);
    let hub = &s.state.hub;
    hub.advance_clock(23 * 60 * MIN);
    assert!(
        s.state
            .store
            .purge_due_chatlogs(hub.now())
            .await
            .unwrap()
            .is_empty()
    );
    hub.advance_clock(60 * MIN + 1000);
    assert_eq!(
        s.state.store.purge_due_chatlogs(hub.now()).await.unwrap(),
        [x.plain]
    );
    assert_eq!(s.delete(&path, m).await.status, 404, "too late to revoke");
    let chat = report(s, m, "chatlog", "range=last_7_days").await;
    let r = row_of(&chat, x.plain);
    assert_eq!(r["Chat Log"], "");
    assert_eq!(r["Delete"], "Deleted");
    assert!(s.state.store.chat_of(x.plain).await.unwrap().is_empty());
    // Both actions in the audit log.
    let audit = report(s, m, "audit", "range=last_7_days").await;
    let actions: Vec<Value> = rows(&audit)
        .into_iter()
        .filter(|r| r["Entity type"] == "Session" && r["Entity ID"] == x.plain)
        .map(|r| r["New Action"].clone())
        .collect();
    assert_eq!(
        actions,
        [
            json!("Queued for deletion"),
            json!("Deletion revoked"),
            json!("Queued for deletion")
        ]
    );
}

/// JSON List All is paged.
#[tokio::test]
async fn paging() {
    let x = scripted(Backend::Sqlite).await.unwrap();
    let (s, m) = (&x.s, &x.master);
    let p1 = report(s, m, "session", &format!("{}&per_page=3", last_week())).await;
    assert_eq!(p1["total_rows"], 4);
    assert_eq!(rows(&p1).len(), 3);
    let p2 = report(
        s,
        m,
        "session",
        &format!("{}&per_page=3&page=2", last_week()),
    )
    .await;
    assert_eq!(rows(&p2).len(), 1);
    assert_ne!(rows(&p1)[0]["Session ID"], rows(&p2)[0]["Session ID"]);
}

/// The Login and Performance reports over logins written with fixed times (UTC, March 2026): a
/// login ends at the user's next login or logout (also one after the window, or at the same
/// instant); Busy and Away come from the console statuses in force, the one before the window
/// included; Idle is login time outside the technician's live sessions. List All pages are cut
/// in the database, so every page is checked against the whole list, across a page edge.
async fn check_login_and_performance(backend: Backend) {
    let Some(s) = start_on(backend, |_| {}).await else {
        return;
    };
    let m = s.master().await;
    let g = s.create_group(&m, "Desk", None).await;
    let a = s
        .create_user(&m, "technicians", "a@example.com", Some(g))
        .await;
    let b = s
        .create_user(&m, "technicians", "b@example.com", Some(g))
        .await;
    let c = s
        .create_user(&m, "technicians", "c@example.com", Some(g))
        .await;
    let at = |iso: &str| {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-03-{iso}:00Z"))
            .unwrap()
            .timestamp_millis()
    };
    let store = &s.state.store;
    // In id order; an event at the same instant as a login ends it only if written after it.
    let logins = [
        (a, Login, "01T23:00"), // before the window; its logout inside ends nothing listed
        (a, Logout, "02T01:00"),
        (a, Login, "02T08:00"), // A1
        (b, Login, "02T09:00"), // B0, ended at the same instant
        (b, Logout, "02T09:00"),
        (c, Logout, "02T10:00"), // written before C1: does not end it
        (c, Login, "02T10:00"),  // C1
        (c, Logout, "02T11:00"),
        (a, Logout, "02T12:00"),
        (a, Login, "02T13:00"), // A2, ended by the next login
        (a, Login, "02T15:00"), // A3
        (a, Logout, "02T17:00"),
        (a, Login, "03T20:00"), // A4, ended after the window
        (b, Login, "03T23:00"), // B2
        (a, Logout, "04T01:00"),
        (b, Logout, "04T02:00"),
    ];
    for (i, (user, event, t)) in logins.into_iter().enumerate() {
        let address = format!("10.0.0.{i}");
        store
            .record_login(user, event, "password", &address, at(t))
            .await
            .unwrap();
    }
    for (status, t) in [
        ("away", "01T22:00"),
        ("busy", "02T09:00"),
        ("available", "02T11:00"),
        ("away", "02T14:30"),
        ("busy", "02T16:00"),
    ] {
        store
            .record_technician_status(a, status, at(t))
            .await
            .unwrap();
    }
    // a live 09:20–09:45 (created 09:19, Active 09:30); b live 23:30–00:30 (Active 23:40).
    fixed_session(&s, a, g, at("02T09:19"), at("02T09:30"), at("02T09:45")).await;
    fixed_session(&s, b, g, at("03T23:29"), at("03T23:40"), at("04T00:30")).await;

    let window = "from=2026-03-02&to=2026-03-03";
    let all = report(&s, &m, "login", &format!("{window}&per_page=1000")).await;
    let cells = |r: &HashMap<String, Value>, names: &[&str]| -> Vec<Value> {
        names.iter().map(|n| r[*n].clone()).collect()
    };
    let columns = [
        "Login Date",
        "User ID",
        "Start Time",
        "End Time",
        "Total Login Time",
        "IP Address",
        "Busy Time",
        "Away Time",
        "Idle Time",
    ];
    let got: Vec<Vec<Value>> = rows(&all).iter().map(|r| cells(r, &columns)).collect();
    let row = |day: &str, user: i64, times: [&str; 2], ip: &str, hms: [&str; 4]| {
        vec![
            json!(day),
            json!(user),
            json!(times[0]),
            json!(times[1]),
            json!(hms[0]),
            json!(ip),
            json!(hms[1]),
            json!(hms[2]),
            json!(hms[3]),
        ]
    };
    let d2 = "2026-03-02";
    let expected = vec![
        row(
            d2,
            a,
            ["2026-03-02 08:00:00", "2026-03-02 12:00:00"],
            "10.0.0.2",
            ["4:00:00", "2:00:00", "1:00:00", "3:35:00"],
        ),
        row(
            d2,
            b,
            ["2026-03-02 09:00:00", "2026-03-02 09:00:00"],
            "10.0.0.3",
            ["0:00:00", "0:00:00", "0:00:00", "0:00:00"],
        ),
        row(
            d2,
            c,
            ["2026-03-02 10:00:00", "2026-03-02 11:00:00"],
            "10.0.0.6",
            ["1:00:00", "0:00:00", "0:00:00", "1:00:00"],
        ),
        row(
            d2,
            a,
            ["2026-03-02 13:00:00", "2026-03-02 15:00:00"],
            "10.0.0.9",
            ["2:00:00", "0:00:00", "0:30:00", "2:00:00"],
        ),
        row(
            d2,
            a,
            ["2026-03-02 15:00:00", "2026-03-02 17:00:00"],
            "10.0.0.10",
            ["2:00:00", "1:00:00", "1:00:00", "2:00:00"],
        ),
        row(
            "2026-03-03",
            a,
            ["2026-03-03 20:00:00", "2026-03-04 01:00:00"],
            "10.0.0.12",
            ["5:00:00", "5:00:00", "0:00:00", "5:00:00"],
        ),
        row(
            "2026-03-03",
            b,
            ["2026-03-03 23:00:00", "2026-03-04 02:00:00"],
            "10.0.0.13",
            ["3:00:00", "0:00:00", "0:00:00", "2:00:00"],
        ),
    ];
    assert_eq!(got, expected, "{all}");
    assert_eq!(all["total_rows"], 7);
    // Pages of 4: A2 ends at A3's login, on the next page.
    let mut paged = Vec::new();
    for page in 1..=2 {
        let p = report(&s, &m, "login", &format!("{window}&per_page=4&page={page}")).await;
        assert_eq!(p["total_rows"], 7);
        paged.extend(rows(&p).iter().map(|r| cells(r, &columns)));
    }
    assert_eq!(paged, expected);
    // One technician's unit: b's logins only.
    let mine = report(&s, &m, "login", &format!("{window}&unit=technician:{b}")).await;
    let got: Vec<Vec<Value>> = rows(&mine).iter().map(|r| cells(r, &columns)).collect();
    assert_eq!(got, [expected[1].clone(), expected[6].clone()]);
    assert_eq!(mine["total_rows"], 2);
    // Daily 12:00–14:00 keeps A2, still ended by A3 (outside the range); in New York (UTC-5 in
    // early March) the same logins are 07:00–09:00.
    for (zone, times) in [
        ("", ["2026-03-02 13:00:00", "2026-03-02 15:00:00"]),
        (
            "&tz=America/New_York",
            ["2026-03-02 08:00:00", "2026-03-02 10:00:00"],
        ),
    ] {
        let hours = if zone.is_empty() {
            ["12:00", "14:00"]
        } else {
            ["07:00", "09:00"]
        };
        let day = report(
            &s,
            &m,
            "login",
            &format!(
                "{window}{zone}&daily_from={}&daily_to={}&per_page=1",
                hours[0], hours[1]
            ),
        )
        .await;
        let got: Vec<Vec<Value>> = rows(&day).iter().map(|r| cells(r, &columns)).collect();
        let mut a2 = expected[3].clone();
        (a2[2], a2[3]) = (json!(times[0]), json!(times[1]));
        assert_eq!(got, [a2], "{day}");
        assert_eq!(day["total_rows"], 1);
    }

    let summary = report(&s, &m, "login", &format!("{window}&list=summary")).await;
    let totals = [
        "Number of Logins",
        "Average Login Time",
        "Total Login Time",
        "Total Busy Time",
        "Total Away Time",
        "Total Idle Time",
    ];
    let of = |user: i64| {
        let r = rows(&summary)
            .into_iter()
            .find(|r| r["User ID"] == user)
            .unwrap();
        cells(&r, &totals)
    };
    assert_eq!(
        of(a),
        [
            json!(4),
            json!("3:15:00"),
            json!("13:00:00"),
            json!("8:00:00"),
            json!("2:30:00"),
            json!("12:35:00")
        ]
    );
    assert_eq!(
        of(b),
        [
            json!(2),
            json!("1:30:00"),
            json!("3:00:00"),
            json!("0:00:00"),
            json!("0:00:00"),
            json!("2:00:00")
        ]
    );
    assert_eq!(
        of(c),
        [
            json!(1),
            json!("1:00:00"),
            json!("1:00:00"),
            json!("0:00:00"),
            json!("0:00:00"),
            json!("1:00:00")
        ]
    );

    // Performance: the technicians in id order, paged; login time and sessions of each.
    let perf_columns = [
        "Technician ID",
        "Total Login Time",
        "Number of Sessions",
        "Average Pick-up Speed",
        "Total Active Time",
    ];
    let perf_rows = |r: &Value| -> Vec<Vec<Value>> {
        rows(r).iter().map(|r| cells(r, &perf_columns)).collect()
    };
    let perf = report(&s, &m, "performance", window).await;
    let expected = vec![
        vec![
            json!(a),
            json!("13:00:00"),
            json!(1),
            json!("0:09:00"),
            json!("0:15:00"),
        ],
        vec![
            json!(b),
            json!("3:00:00"),
            json!(1),
            json!("0:09:00"),
            json!("0:50:00"),
        ],
        vec![
            json!(c),
            json!("1:00:00"),
            json!(0),
            json!("0:00:00"),
            json!("0:00:00"),
        ],
    ];
    assert_eq!(perf_rows(&perf), expected, "{perf}");
    assert_eq!(perf["total_rows"], 3);
    let p1 = report(&s, &m, "performance", &format!("{window}&per_page=2")).await;
    let p2 = report(
        &s,
        &m,
        "performance",
        &format!("{window}&per_page=2&page=2"),
    )
    .await;
    assert_eq!(
        (&p1["total_rows"], &p2["total_rows"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(perf_rows(&p1), expected[..2]);
    assert_eq!(perf_rows(&p2), expected[2..]);
    // Daily 12:00–14:00: A2's login time, no session created in the range.
    let day = report(
        &s,
        &m,
        "performance",
        &format!("{window}&daily_from=12:00&daily_to=14:00&per_page=1"),
    )
    .await;
    assert_eq!(day["total_rows"], 3);
    assert_eq!(
        perf_rows(&day),
        [vec![
            json!(a),
            json!("2:00:00"),
            json!(0),
            json!("0:00:00"),
            json!("0:00:00")
        ]]
    );
    let ps = report(&s, &m, "performance", &format!("{window}&list=summary")).await;
    let r = &rows(&ps)[0];
    assert_eq!(
        (&r["Number of Sessions"], &r["Total Login Time"]),
        (&json!(2), &json!("17:00:00"))
    );
}

#[tokio::test]
async fn login_and_performance_on_sqlite() {
    check_login_and_performance(Backend::Sqlite).await;
}

#[tokio::test]
async fn login_and_performance_on_postgres() {
    check_login_and_performance(Backend::Postgres).await;
}

/// Survey and Audit files are read in keyed chunks like the others: a report longer than a
/// chunk arrives whole and in order, every line with the same columns, and a survey question
/// first asked in the last chunk is a column from the header on (the questions are read before
/// the first row is written).
#[tokio::test]
async fn survey_and_audit_files_span_many_chunks() {
    const N: i64 = 4_500; // more than two chunks (`export::CHUNK_ROWS`)
    assert!(N as u64 > 2 * lens::reports::export::CHUNK_ROWS);
    let s = start().await;
    let m = s.master().await;
    let g = s.create_group(&m, "World", None).await;
    let tech = s
        .create_user(&m, "technicians", "t@example.com", Some(g))
        .await;
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let session = fixed_session(&s, tech, g, base, base + MIN, base + 2 * MIN).await;
    for i in 0..N {
        let mut answers = vec![("How was it?".to_owned(), format!("answer {i}"))];
        if i == N - 10 {
            answers.push(("Asked late".into(), "late".into()));
        }
        s.state
            .store
            .insert_survey(&SurveyRow {
                session_id: session,
                kind: "customer".into(),
                technician_id: tech,
                group_id: g,
                issued_by_closing: false,
                // Pairs share a time: the key's id breaks the tie.
                submitted_at: base + 3 * MIN + i / 2 * 1000,
                answers,
                session_name: String::new(),
                session_ended_at: None,
            })
            .await
            .unwrap();
    }
    let mut tx = s.state.store.begin().await.unwrap();
    for i in 0..N {
        lens::store::audit::append(
            &mut tx,
            &lens::store::AuditEntry {
                at: base + i / 2 * 1000,
                requested_by_id: tech,
                requested_by_name: "t".into(),
                entity_type: "Technician",
                entity_id: tech,
                entity_name: format!("entry {i}"),
                change_type: lens::store::ChangeType::Change,
                section: "Profile".into(),
                field: "Nickname".into(),
                old_value: None,
                old_action: None,
                new_value: Some(i.to_string()),
                new_action: None,
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let tsv = |area: &'static str| {
        let url = format!(
            "{}/api/v1/reports/{area}?from=2026-01-01&to=2026-01-31&format=tsv",
            s.base
        );
        let (http, m) = (s.http.clone(), m.clone());
        async move {
            let r = http.get(url).bearer_auth(m).send().await.unwrap();
            assert_eq!(r.status(), 200, "{area}");
            r.text().await.unwrap()
        }
    };
    let file = tsv("customer-survey").await;
    let lines: Vec<Vec<&str>> = file.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len() as i64, N + 1, "the header and every survey");
    assert!(lines[0].contains(&"Asked late"), "{:?}", lines[0]);
    assert!(lines.iter().all(|l| l.len() == lines[0].len()));
    let answer = lines[0].iter().position(|c| *c == "How was it?").unwrap();
    let late = lines[0].iter().position(|c| *c == "Asked late").unwrap();
    for (i, l) in lines[1..].iter().enumerate() {
        assert_eq!(l[answer], format!("answer {i}"), "in order");
        assert_eq!(l[late], if i as i64 == N - 10 { "late" } else { "" });
    }
    // A JSON page has the same columns, and counts every survey.
    let page = report(
        &s,
        &m,
        "customer-survey",
        "from=2026-01-01&to=2026-01-31&page=3&per_page=1000",
    )
    .await;
    assert_eq!(page["total_rows"], N);
    assert!(columns(&page).contains(&"Asked late"));
    assert_eq!(rows(&page)[0]["How was it?"], "answer 2000");
    let summary = report(
        &s,
        &m,
        "customer-survey",
        "from=2026-01-01&to=2026-01-31&list=summary",
    )
    .await;
    assert_eq!(rows(&summary)[0]["Number of Surveys"], N);
    assert_eq!(rows(&summary)[0]["Asked late"], 1);

    let file = tsv("audit").await;
    let entries: Vec<&str> = file
        .lines()
        .filter_map(|l| l.split('\t').nth(3))
        .filter(|name| name.starts_with("entry "))
        .collect();
    let expected: Vec<String> = (0..N).map(|i| format!("entry {i}")).collect();
    assert_eq!(entries, expected, "every audit row once, in order");
}
