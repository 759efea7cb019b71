//! The guide's reports ("Generating Reports"): every area, List All and Summary, over a unit of the
//! organization, a date range, a time zone and a daily time range. Columns are named and ordered as
//! the guide lists them; docs/reports.md says which are always zero or empty in Lens and why.
//!
//! A report is built as a [`Table`] of display-ready cells (times in the chosen zone, durations
//! h:mm:ss); `format` renders a table as JSON, HTML, SpreadsheetML 2003, TSV or XLSX.

pub mod buckets;
pub mod export;
pub mod format;
pub mod params;
pub mod seed;
pub mod timings;

#[cfg(test)]
mod sums_tests;

use std::collections::{HashMap, HashSet};

use chrono::TimeZone;
use chrono_tz::Tz;
use serde::Serialize;
use signaling::status::Status;

pub use params::{Area, Daily, ListType, ParamError};
pub use timings::Timings;

pub use crate::store::reports::{Key, Page};
use crate::store::reports::{PersonRow, ReportSession, SurveyRow, TimingSums, after_key, id_list};
use crate::store::{AuditRow, Store, StoreError};

/// Lens sessions are phone-camera sessions started from the Lens app or page: the guide's
/// "Mobile Applet" session type.
pub const SESSION_TYPE: &str = "Mobile Applet";

/// One cell, ready to show. Numbers stay numbers in the spreadsheet formats.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn text(&self) -> String {
        match self {
            Cell::Int(n) => n.to_string(),
            Cell::Text(s) => s.clone(),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Int(n)
    }
}

/// A finished report.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    /// The requested page's rows (every row without a page).
    pub rows: Vec<Vec<Cell>>,
    /// How many rows the report has in all (with a keyed page: the rows of this chunk).
    pub total_rows: u64,
    /// With a keyed page (`Page::after`): the key the next chunk follows, None after the last.
    pub next: Option<Key>,
}

/// Whose data a report covers: everything, or technician groups and people of the chosen unit.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub all: bool,
    /// Technician groups (a group includes its subgroups).
    pub groups: HashSet<i64>,
    /// People: the unit's members, or the one person chosen.
    pub users: HashSet<i64>,
}

impl Scope {
    /// The SQL condition keeping the rows of the unit, given a row's group, technician and
    /// user (creator or actor) columns, as `session` does in Rust; None for everything. Only
    /// numbers are written into it.
    fn sql(&self, group: &str, technician: &str, user: &str) -> Option<String> {
        (!self.all).then(|| {
            let groups = id_list(&self.groups);
            let users = id_list(&self.users);
            format!("({group} IN ({groups}) OR {technician} IN ({users}) OR {user} IN ({users}))")
        })
    }

    fn session(&self, s: &ReportSession) -> bool {
        self.all
            || self.groups.contains(&s.group_id)
            || s.technician_id.is_some_and(|t| self.users.contains(&t))
            || self.users.contains(&s.created_by)
    }

    fn user(&self, id: i64) -> bool {
        self.all || self.users.contains(&id)
    }

    fn audit(&self, r: &AuditRow) -> bool {
        self.all
            || self.users.contains(&r.requested_by_id)
            || (r.entity_type == "Technician Group" && self.groups.contains(&r.entity_id))
            || (r.entity_type != "Technician Group"
                && !r.entity_type.ends_with("Group")
                && self.users.contains(&r.entity_id))
    }
}

/// Everything a report needs besides the store.
#[derive(Debug, Clone)]
pub struct Request {
    pub area: Area,
    pub list: ListType,
    /// UTC milliseconds, `[from, to)`.
    pub from: i64,
    pub to: i64,
    pub tz: Tz,
    pub daily: Option<Daily>,
    /// The time live sessions and open logins are measured up to.
    pub now: i64,
    pub scope: Scope,
    /// Global Settings > Custom Fields: the name field, then custom fields 1–5.
    pub field_names: [String; 6],
    /// List All: the rows wanted (None: every row).
    pub page: Option<Page>,
    /// Survey reports' question columns when already known (a streamed export reads them once,
    /// before its first chunk: `survey_questions`); None: read with the report.
    pub survey_questions: Option<Vec<String>>,
}

/// A key before every row's (not i64::MIN: PostgreSQL reads that literal as NUMERIC, and a
/// NUMERIC comparison would not use a BIGINT index).
pub const FIRST_KEY: Key = (i64::MIN + 1, i64::MIN + 1);

impl Request {
    fn in_day(&self, at: i64) -> bool {
        self.daily.is_none_or(|d| d.contains(at, self.tz))
    }

    fn time(&self, at: Option<i64>) -> Cell {
        match at.and_then(chrono::DateTime::from_timestamp_millis) {
            Some(t) => Cell::Text(
                self.tz
                    .from_utc_datetime(&t.naive_utc())
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
            ),
            None => Cell::Text(String::new()),
        }
    }

    fn date(&self, at: i64) -> Cell {
        match chrono::DateTime::from_timestamp_millis(at) {
            Some(t) => Cell::Text(
                self.tz
                    .from_utc_datetime(&t.naive_utc())
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            None => Cell::Text(String::new()),
        }
    }

    fn clock(&self, at: i64) -> String {
        chrono::DateTime::from_timestamp_millis(at)
            .map(|t| {
                self.tz
                    .from_utc_datetime(&t.naive_utc())
                    .format("%-I:%M %p")
                    .to_string()
            })
            .unwrap_or_default()
    }

    fn name_column(&self) -> String {
        self.field_names[0].clone()
    }

    fn custom_columns(&self) -> Vec<String> {
        self.field_names[1..].to_vec()
    }
}

/// h:mm:ss, hours unbounded.
pub fn hms(ms: i64) -> Cell {
    let s = ms.max(0) / 1000;
    Cell::Text(format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60))
}

fn avg(total: i64, n: i64) -> i64 {
    if n == 0 { 0 } else { total / n }
}

fn per_hour(sessions: i64, login_ms: i64) -> Cell {
    if login_ms <= 0 {
        return Cell::Text(String::new());
    }
    Cell::Text(format!(
        "{:.2}",
        sessions as f64 * 3_600_000.0 / login_ms as f64
    ))
}

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// People and groups by id, for names.
struct Directory {
    people: HashMap<i64, PersonRow>,
    groups: HashMap<i64, String>,
}

impl Directory {
    async fn load(store: &Store) -> Result<Directory, StoreError> {
        Ok(Directory {
            people: store
                .report_people()
                .await?
                .into_iter()
                .map(|p| (p.id, p))
                .collect(),
            groups: store.report_group_names().await?.into_iter().collect(),
        })
    }

    fn name(&self, id: Option<i64>) -> String {
        id.and_then(|i| self.people.get(&i))
            .map(|p| p.name.clone())
            .unwrap_or_default()
    }

    fn email(&self, id: Option<i64>) -> String {
        id.and_then(|i| self.people.get(&i))
            .map(|p| p.email.clone())
            .unwrap_or_default()
    }

    fn group(&self, id: Option<i64>) -> String {
        id.and_then(|i| self.groups.get(&i))
            .cloned()
            .unwrap_or_default()
    }

    /// Technician Name, Technician ID, Technician Email.
    fn technician(&self, id: Option<i64>) -> [Cell; 3] {
        [
            self.name(id).into(),
            id.map_or(Cell::Text(String::new()), Cell::Int),
            self.email(id).into(),
        ]
    }
}

/// A session with its computed times.
struct Timed {
    s: ReportSession,
    t: Timings,
}

impl Timed {
    /// The technician a session's rows name: its owner, else the one who created it.
    fn technician(&self) -> i64 {
        self.s.technician_id.unwrap_or(self.s.created_by)
    }
}

/// Builds a report: the rows of `req.page` (every row without one) and the number of rows in all.
/// Reports over sessions read the ended sessions' stored times (`session_timings`): Summaries are
/// sums computed by the database, List All pages are selected by it, so only the page's sessions
/// are read; live sessions (no stored times yet) are computed from their events here.
pub async fn build(store: &Store, req: &Request) -> Result<Table, StoreError> {
    // A keyed chunk of a report that is not read by key is the whole report, in one chunk.
    let whole_req;
    let req = match req.page {
        Some(Page { after: Some(_), .. }) if !reads_by_key(req.area, req.list) => {
            whole_req = Request {
                page: None,
                ..req.clone()
            };
            &whole_req
        }
        _ => req,
    };
    let dir = Directory::load(store).await?;
    let mut next = None;
    let summary = req.list == ListType::Summary;
    let title = title(req.area, req.list);
    let listed = |pick| async move { timed(store, req, pick).await };
    let (columns, rows, total_rows) = match (req.area, summary) {
        (Area::Session, false) => {
            let l = listed(Pick::Joined).await?;
            next = l.next;
            with_total(session_list(req, &dir, &l.sessions), l.total)
        }
        (Area::Session, true) => {
            let handled = sums(store, req, Pick::Handled, SumKey::One).await?;
            let missed = count(store, req, Pick::Missed).await?;
            whole(session_summary(&first(&handled), missed))
        }
        (Area::Performance, _) => {
            let owners = if dir.people.values().any(|p| p.deleted_at.is_some()) {
                sums(store, req, Pick::Any, SumKey::Owner).await?
            } else {
                HashMap::new()
            };
            let mut technicians = performance_technicians(req, &dir, &owners);
            let total = technicians.len() as u64;
            let mut logins = login_filter(req);
            // List All: the page's technicians, and the sums of theirs only.
            let page = req.page.filter(|_| !summary);
            if let Some(p) = page {
                let skip = usize::try_from(p.offset).unwrap_or(usize::MAX);
                let take = usize::try_from(p.limit).unwrap_or(usize::MAX);
                technicians = technicians.into_iter().skip(skip).take(take).collect();
                let ids = id_list(technicians.iter().map(|p| &p.id));
                logins.push_str(&format!(" AND l.user_id IN ({ids})"));
            }
            // Each user's Total Login Time, summed by the database (the logins' stored ends).
            let login_time = store
                .report_login_time(&logins, req.now.max(req.to), req.now)
                .await?;
            let handled = technician_sums(store, req, page.map(|_| &technicians[..])).await?;
            let rows = performance(&dir, &technicians, &handled, &login_time, summary);
            if summary {
                whole(rows)
            } else {
                with_total(rows, total)
            }
        }
        (Area::MissedSessions, false) => {
            let l = listed(Pick::Missed).await?;
            next = l.next;
            with_total(missed_list(req, &dir, &l.sessions), l.total)
        }
        (Area::MissedSessions, true) => whole(missed_summary(&first(
            &sums(store, req, Pick::Missed, SumKey::One).await?,
        ))),
        (Area::FailedSessions, false) | (Area::FailedSessionsExtended, _) => {
            let l = listed(Pick::Failed).await?;
            next = l.next;
            let extended = req.area == Area::FailedSessionsExtended;
            with_total(failed_list(req, &dir, &l.sessions, extended), l.total)
        }
        (Area::FailedSessions, true) => whole(failed_summary(&first(
            &sums(store, req, Pick::Failed, SumKey::One).await?,
        ))),
        (Area::CustomFields, _) => {
            let l = listed(Pick::Handled).await?;
            next = l.next;
            with_total(custom_fields(req, &dir, &l.sessions), l.total)
        }
        (Area::TransferredSessions | Area::TransferredSessionsExtended, _) => {
            let (paged, key) = transfers(store, req, &dir).await?;
            next = key;
            paged
        }
        (Area::Login, _) => {
            // List All: the page's logins only, and their console times.
            let mut filter = login_filter(req);
            let page = req.page.filter(|_| !summary);
            if let Some(Page {
                after: Some(key), ..
            }) = page
            {
                filter.push_str(&format!(" AND {}", after_key("l.at", "l.id", key)));
            }
            let mut spans = login_spans(store, req, &filter, page).await?;
            let total = match page {
                Some(Page { after: Some(_), .. }) | None => spans.len() as u64,
                Some(_) => store.report_login_count(&filter).await?,
            };
            if let Some(Page {
                after: Some(_),
                limit,
                ..
            }) = page
                && spans.len() as u64 >= limit
            {
                next = spans.last().map(|s| (s.start, s.id));
            }
            console_times(store, req, &mut spans).await?;
            let (columns, rows) = login(req, &dir, &spans, summary);
            let total = if summary { rows.len() as u64 } else { total };
            (columns, rows, total)
        }
        (Area::Chatlog, _) => {
            let (paged, key) = chatlog(store, req, &dir).await?;
            next = key;
            paged
        }
        (Area::CustomerSurvey | Area::CustomerSurveyIssuance | Area::TechnicianSurvey, _) => {
            let (paged, key) = surveys(store, req, &dir, summary).await?;
            next = key;
            paged
        }
        (Area::Audit, _) => {
            let (paged, key) = audit(store, req).await?;
            next = key;
            paged
        }
    };
    Ok(Table {
        title,
        columns,
        rows,
        total_rows,
        next,
    })
}

/// A report's title, as the guide names it.
pub fn title(area: Area, list: ListType) -> String {
    format!(
        "{} Report ({})",
        area.title(),
        if list == ListType::Summary {
            "Summary"
        } else {
            "List All"
        }
    )
}

/// Whether a report is read in keyed chunks (`Page::after`) by a streamed export: the List Alls
/// that can have a row per session, transfer, login, survey or audit entry. The others
/// (Summaries, Performance's technicians) are read whole, in one chunk.
pub fn reads_by_key(area: Area, list: ListType) -> bool {
    list == ListType::All
        && matches!(
            area,
            Area::Session
                | Area::MissedSessions
                | Area::FailedSessions
                | Area::FailedSessionsExtended
                | Area::CustomFields
                | Area::Chatlog
                | Area::TransferredSessions
                | Area::TransferredSessionsExtended
                | Area::Login
                | Area::CustomerSurvey
                | Area::CustomerSurveyIssuance
                | Area::TechnicianSurvey
                | Area::Audit
        )
}

/// A report's columns, the rows of the page, and the number of rows in all.
type Paged = (Vec<String>, Vec<Vec<Cell>>, u64);

fn with_total((columns, rows): Rows, total: u64) -> Paged {
    (columns, rows, total)
}

/// A report of a few rows, not paged (Summaries).
fn whole((columns, rows): Rows) -> Paged {
    let n = rows.len() as u64;
    (columns, rows, n)
}

/// The sessions a report over sessions counts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pick {
    Any,
    Joined,
    Handled,
    Missed,
    Failed,
}

impl Pick {
    /// The stored flag (`session_timings`).
    fn column(self) -> Option<&'static str> {
        match self {
            Pick::Any => None,
            Pick::Joined => Some("joined"),
            Pick::Handled => Some("handled"),
            Pick::Missed => Some("missed"),
            Pick::Failed => Some("failed"),
        }
    }

    /// The same, for a live session's computed times.
    fn keep(self, t: &Timings) -> bool {
        match self {
            Pick::Any => true,
            Pick::Joined => t.joined(),
            Pick::Handled => t.handled(),
            Pick::Missed => t.missed(),
            Pick::Failed => t.failed(),
        }
    }
}

/// The technician a session's rows name (`Timed::technician`), as SQL over `session_timings t`
/// (as indexed by `session_timings_technician`).
const TECHNICIAN: &str = "COALESCE(t.technician_id, t.created_by)";
/// The same over `session_buckets b` (whose technician_id is 0 for none).
const BUCKET_TECHNICIAN: &str =
    "CASE WHEN b.technician_id = 0 THEN b.created_by ELSE b.technician_id END";

/// How stored sums are grouped.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SumKey {
    /// One group (key 0).
    One,
    /// By the technician a session's rows name.
    Technician,
    /// By the session's owner (0: none).
    Owner,
}

impl SumKey {
    fn scan(self) -> Option<&'static str> {
        match self {
            SumKey::One => None,
            SumKey::Technician => Some(TECHNICIAN),
            SumKey::Owner => Some("COALESCE(t.technician_id, 0)"),
        }
    }

    fn bucket(self) -> Option<&'static str> {
        match self {
            SumKey::One => None,
            SumKey::Technician => Some(BUCKET_TECHNICIAN),
            SumKey::Owner => Some("b.technician_id"),
        }
    }

    /// The same for a live session.
    fn of(self, x: &Timed) -> i64 {
        match self {
            SumKey::One => 0,
            SumKey::Technician => x.technician(),
            SumKey::Owner => x.s.technician_id.unwrap_or(0),
        }
    }
}

/// The SQL condition selecting the sessions of the window, the scope and the daily range, over a
/// table aliased `t` with the session columns `created_at`, `created_by`, `technician_id` and
/// `group_id` (`session_timings` or `sessions`). Only numbers are written into it.
fn session_filter(req: &Request) -> String {
    let mut w = format!("t.created_at >= {} AND t.created_at < {}", req.from, req.to);
    if let Some(unit) = req
        .scope
        .sql("t.group_id", "t.technician_id", "t.created_by")
    {
        w.push_str(&format!(" AND {unit}"));
    }
    if let Some(d) = req.daily {
        w.push_str(&format!(
            " AND {}",
            daily_sql(d, req.tz, "t.created_at", req.from, req.to)
        ));
    }
    w
}

/// `session_filter` and the stored flag of `pick`.
fn picked_filter(req: &Request, pick: Pick) -> String {
    let mut filter = session_filter(req);
    if let Some(c) = pick.column() {
        filter.push_str(&format!(" AND t.{c} = 1"));
    }
    filter
}

/// `Daily::contains` as SQL, for times of `column` in `[from, to)`: the local time is the UTC time
/// plus the zone's offset, which changes at the zone's transitions in the window (read from the
/// time zone database), then the time of day is compared by minute.
fn daily_sql(d: Daily, tz: Tz, column: &str, from: i64, to: i64) -> String {
    let (first, changes) = params::offsets(tz, from, to);
    let local = if changes.is_empty() {
        format!("({column} + {first})")
    } else {
        let mut case = String::from("CASE");
        let mut offset = first;
        for (at, next) in changes {
            case.push_str(&format!(" WHEN {column} < {at} THEN {offset}"));
            offset = next;
        }
        format!("({column} + {case} ELSE {offset} END)")
    };
    let day = 86_400_000i64;
    let of_day = format!("((({local} % {day}) + {day}) % {day})");
    let (a, b) = (i64::from(d.from_min) * 60_000, i64::from(d.to_min) * 60_000);
    // One comparison: the time since the range's start (0 to a day) is under its length (which
    // wraps past midnight when it ends before it starts). PostgreSQL estimates a pair of bounds
    // on one expression at 0.5 % of the rows, a single one at a third (about the real share
    // of a working day): with the pair it chose to sort every session of the window for a
    // first page (200 ms at 1 M sessions) over walking the index in order and stopping (5 ms).
    let length = if d.from_min < d.to_min {
        b - a
    } else {
        day - a + b
    };
    format!("((({of_day} + {}) % {day}) < {length})", day - a)
}

/// Live sessions of the window, the scope and the daily range, with their times computed now.
async fn live(store: &Store, req: &Request) -> Result<Vec<Timed>, StoreError> {
    Ok(with_times(
        req,
        store.report_live_sessions(req.from, req.to).await?,
    ))
}

/// The sessions of the scope and the daily range, with their times computed from their events.
fn with_times(req: &Request, sessions: Vec<ReportSession>) -> Vec<Timed> {
    sessions
        .into_iter()
        .filter(|s| req.scope.session(s) && req.in_day(s.created_at))
        .map(|s| {
            let t = Timings::of(&s.events, req.now);
            Timed { s, t }
        })
        .collect()
}

/// The sessions of a List All over sessions: the page's (every one without a page), how many there
/// are in all, and (keyed pages) the key the next chunk follows.
struct Listed {
    total: u64,
    sessions: Vec<Timed>,
    next: Option<Key>,
}

async fn timed(store: &Store, req: &Request, pick: Pick) -> Result<Listed, StoreError> {
    let live: Vec<Timed> = live(store, req)
        .await?
        .into_iter()
        .filter(|x| pick.keep(&x.t))
        .collect();
    let filter = picked_filter(req, pick);
    if let Some(Page {
        after: Some(after),
        limit,
        ..
    }) = req.page
    {
        // The chunk after `after`: the database's ended sessions merged with the live ones (a
        // session that ends meanwhile moves from one to the other at the same key, so it is
        // listed once).
        let ended = store.report_timed_after(&filter, after, limit).await?;
        let mut all: Vec<Timed> = ended.into_iter().map(|(s, t)| Timed { s, t }).collect();
        all.extend(
            live.into_iter()
                .filter(|x| (x.s.created_at, x.s.id) > after),
        );
        all.sort_by_key(|x| (x.s.created_at, x.s.id));
        all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = match all.last() {
            Some(x) if all.len() as u64 >= limit => Some((x.s.created_at, x.s.id)),
            _ => None,
        };
        return Ok(Listed {
            total: all.len() as u64,
            sessions: all,
            next,
        });
    }
    let live_ids: Vec<i64> = live.iter().map(|x| x.s.id).collect();
    let (total, ended, live) = match req.page {
        Some(page) => {
            // Counted from the buckets (exact, as a scan of the window would count).
            let total = stored_sums(store, req, pick, SumKey::One, None)
                .await?
                .get(&0)
                .map_or(0, |t| t.sessions) as u64
                + live.len() as u64;
            // The database merges the live ids into the page, in id order.
            let ids = store.report_timed_page(&filter, &live_ids, page).await?;
            let ended: Vec<String> = ids
                .iter()
                .filter(|i| !live_ids.contains(i))
                .map(i64::to_string)
                .collect();
            let rows = if ended.is_empty() {
                Vec::new()
            } else {
                store
                    .report_timed_sessions(&format!("t.session_id IN ({})", ended.join(",")))
                    .await?
            };
            let live: Vec<Timed> = live.into_iter().filter(|x| ids.contains(&x.s.id)).collect();
            (total, rows, live)
        }
        None => {
            let rows = store.report_timed_sessions(&filter).await?;
            (rows.len() as u64 + live.len() as u64, rows, live)
        }
    };
    let mut all: Vec<Timed> = ended.into_iter().map(|(s, t)| Timed { s, t }).collect();
    all.extend(live);
    all.sort_by_key(|x| (x.s.created_at, x.s.id));
    Ok(Listed {
        total,
        sessions: all,
        next: None,
    })
}

/// Sums of the ended sessions of `pick` by `key`, of the technicians `only` (ids) if given:
/// read from the buckets wholly inside the window and the daily range, the rest of the window
/// scanned (`buckets::cover`), which adds up to a scan of the whole window.
async fn stored_sums(
    store: &Store,
    req: &Request,
    pick: Pick,
    key: SumKey,
    only: Option<&str>,
) -> Result<HashMap<i64, TimingSums>, StoreError> {
    let mut sums: HashMap<i64, TimingSums> = HashMap::new();
    // Every ended session lies within the buckets' bounds: the window is cut to them, so that
    // a window of centuries walks the hours of the data only.
    let Some((lo, hi)) = store.report_bucket_bounds().await? else {
        return Ok(sums);
    };
    let cover = buckets::cover(
        req.from.max(lo),
        req.to.min(hi + buckets::HOUR),
        req.daily,
        req.tz,
    );
    let mut add = |rows: Vec<(i64, TimingSums)>| {
        for (k, t) in rows {
            sums.entry(k).or_default().merge(&t);
        }
    };
    let mut bucket_filter = req
        .scope
        .sql("b.group_id", "b.technician_id", "b.created_by")
        .unwrap_or_else(|| String::from("1 = 1"));
    let mut scan_filter = picked_filter(req, pick);
    if let Some(c) = pick.column() {
        bucket_filter.push_str(&format!(" AND b.{c} = 1"));
    }
    if let Some(ids) = only {
        bucket_filter.push_str(&format!(" AND {BUCKET_TECHNICIAN} IN ({ids})"));
        scan_filter.push_str(&format!(" AND {TECHNICIAN} IN ({ids})"));
    }
    // Performance's sums of the whole organization: from the handled buckets (migration 0026),
    // a row per technician, with blocks of days and a block's hours of the day.
    if req.scope.all && pick == Pick::Handled && key == SumKey::Technician {
        // `+ 0`: the page's technicians are picked from each bucket's rows, not looked up one
        // by one in the key (a lookup per bucket and technician made PostgreSQL scan the whole
        // table instead: 130 ms against 4 ms at 300,000 sessions).
        let filter = only.map_or_else(
            || String::from("1 = 1"),
            |ids| format!("b.technician_id + 0 IN ({ids})"),
        );
        let b = buckets::blocked(&cover);
        for (span, starts) in [
            (buckets::BLOCK, &b.blocks),
            (buckets::BLOCK_HOURS, &b.block_hours),
            (buckets::DAY, &b.days),
            (buckets::HOUR, &b.hours),
        ] {
            if !starts.is_empty() {
                add(store
                    .report_bucket_sums(
                        "handled_buckets",
                        span,
                        starts,
                        &filter,
                        Some("b.technician_id"),
                    )
                    .await?);
            }
        }
    } else {
        // One sum of the whole organization: from the totals (migration 0022), a few rows per
        // bucket rather than one per unit and creator.
        let table = if req.scope.all && key == SumKey::One && only.is_none() {
            "session_totals"
        } else {
            "session_buckets"
        };
        for (span, ranges) in [(buckets::DAY, &cover.days), (buckets::HOUR, &cover.hours)] {
            if !ranges.is_empty() {
                add(store
                    .report_bucket_sums(
                        table,
                        span,
                        &buckets::starts(ranges, span),
                        &bucket_filter,
                        key.bucket(),
                    )
                    .await?);
            }
        }
    }
    if !cover.scan.is_empty() {
        add(store
            .report_timed_sums(&scan_filter, key.scan(), Some(&cover.scan))
            .await?);
    }
    Ok(sums)
}

/// Sums of the sessions of `pick`, by `key`, live sessions included.
async fn sums(
    store: &Store,
    req: &Request,
    pick: Pick,
    key: SumKey,
) -> Result<HashMap<i64, TimingSums>, StoreError> {
    let mut sums = stored_sums(store, req, pick, key, None).await?;
    for x in live(store, req).await? {
        if pick.keep(&x.t) {
            sums.entry(key.of(&x)).or_default().add(&x.t);
        }
    }
    Ok(sums)
}

/// The handled sessions' sums by technician (Performance), live sessions included: of every
/// technician, or of `only`.
async fn technician_sums(
    store: &Store,
    req: &Request,
    only: Option<&[&PersonRow]>,
) -> Result<HashMap<i64, TimingSums>, StoreError> {
    let ids = only.map(|people| id_list(people.iter().map(|p| &p.id)));
    let mut sums = stored_sums(
        store,
        req,
        Pick::Handled,
        SumKey::Technician,
        ids.as_deref(),
    )
    .await?;
    for x in live(store, req).await? {
        if x.t.handled() && only.is_none_or(|people| people.iter().any(|p| p.id == x.technician()))
        {
            sums.entry(x.technician()).or_default().add(&x.t);
        }
    }
    Ok(sums)
}

/// The number of sessions of `pick`, live sessions included.
async fn count(store: &Store, req: &Request, pick: Pick) -> Result<i64, StoreError> {
    Ok(sums(store, req, pick, SumKey::One)
        .await?
        .get(&0)
        .map_or(0, |t| t.sessions))
}

/// The one group of ungrouped sums.
fn first(sums: &HashMap<i64, TimingSums>) -> TimingSums {
    sums.get(&0).copied().unwrap_or_default()
}

type Rows = (Vec<String>, Vec<Vec<Cell>>);

fn session_list(req: &Request, dir: &Directory, sessions: &[Timed]) -> Rows {
    let mut columns = cols(&[
        "Start Time",
        "End Time",
        "Last Action Time",
        "Technician Name",
        "Technician ID",
        "Technician Email",
        "Session ID",
        "Session Type",
        "Status",
    ]);
    columns.push(req.name_column());
    columns.extend(req.custom_columns());
    columns.extend(cols(&[
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
    ]));
    let rows = sessions
        .iter()
        .map(|x| {
            let (s, t) = (&x.s, &x.t);
            let mut row = vec![req.time(t.start), req.time(t.end), req.time(t.last_action)];
            row.extend(dir.technician(Some(x.technician())));
            row.extend([
                Cell::Int(s.id),
                SESSION_TYPE.into(),
                t.final_status.clone().into(),
                s.name.clone().into(),
            ]);
            row.extend(s.custom_fields.iter().map(|c| Cell::from(c.clone())));
            row.extend([
                s.tracking_id.clone().into(),
                s.customer_ip.clone().into(),
                s.device_id.clone().into(),
                // Incident tools, Resolved/Unresolved, channels and calling cards are Rescue's.
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                hms(t.connecting),
                hms(t.waiting),
                hms(t.total()),
                hms(t.active),
                hms(t.work()),
                hms(t.hold),
                hms(t.transfer),
                hms(0),
                hms(t.reconnecting),
                s.platform.clone().into(),
                s.browser.clone().into(),
            ]);
            row
        })
        .collect();
    (columns, rows)
}

/// `handled`: the sums of the handled sessions; `missed`: the number of missed ones.
fn session_summary(handled: &TimingSums, missed: i64) -> Rows {
    let n = handled.sessions;
    let mut columns = cols(&[
        "Number of Sessions",
        "Average Session Time",
        "Total Session Time",
        "Average Pick-up Time",
        "Total Pick-up Time",
    ]);
    let mut row = vec![
        Cell::Int(n),
        hms(avg(handled.total, n)),
        hms(handled.total),
        hms(avg(handled.waiting, n)),
        hms(handled.waiting),
    ];
    for (what, total) in [
        ("Active", handled.active),
        ("Work", handled.work),
        ("Hold", handled.hold),
        ("Transfer", handled.transfer),
        ("Rebooting", 0),
        ("Reconnecting", handled.reconnecting),
    ] {
        columns.push(format!("Average {what} Time"));
        columns.push(format!("Total {what} Time"));
        row.push(hms(avg(total, n)));
        row.push(hms(total));
    }
    columns.extend(cols(&["Longest Session Time", "Number of Missed Sessions"]));
    row.push(hms(handled.longest));
    row.push(Cell::Int(missed));
    (columns, vec![row])
}

/// One login: its user, start, end (None while logged in), address and the console times.
struct LoginSpan {
    /// The login's row id (with `start`, its key).
    id: i64,
    user: i64,
    start: i64,
    end: Option<i64>,
    address: String,
    /// The stored covered time of [start, end) (migration 0024), when the end is stored.
    covered: Option<i64>,
    busy: i64,
    away: i64,
    idle: i64,
}

impl LoginSpan {
    fn length(&self, now: i64) -> i64 {
        self.end.unwrap_or(now) - self.start
    }
}

/// The SQL condition selecting the logins of the window, the scope and the daily range, over
/// `logins l`. Only numbers are written into it.
fn login_filter(req: &Request) -> String {
    let mut w = format!("l.at >= {} AND l.at < {}", req.from, req.to);
    if !req.scope.all {
        w.push_str(&format!(
            " AND l.user_id IN ({})",
            id_list(&req.scope.users)
        ));
    }
    if let Some(d) = req.daily {
        w.push_str(&format!(
            " AND {}",
            daily_sql(d, req.tz, "l.at", req.from, req.to)
        ));
    }
    w
}

/// The logins matching `filter` (`login_filter`, perhaps narrowed), the page's only with a page,
/// each ending at the user's next login or logout (or still open). Busy, Away and Idle are filled
/// in by `console_times`.
async fn login_spans(
    store: &Store,
    req: &Request,
    filter: &str,
    page: Option<Page>,
) -> Result<Vec<LoginSpan>, StoreError> {
    // Logouts after the window still end logins inside it: up to now.
    let rows = store
        .report_logins(filter, req.now.max(req.to), page)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| LoginSpan {
            id: r.id,
            user: r.user_id,
            start: r.at,
            end: r.end,
            address: r.address,
            covered: r.covered,
            busy: 0,
            away: 0,
            idle: 0,
        })
        .collect())
}

/// Busy, Away (console statuses) and Idle time of `spans`. Idle is login time in which the
/// technician had no session at all in a live status (the guide: "no sessions"; whatever the
/// report's window, scope or daily range select), so a login's time in sessions is its own: kept
/// on its row for the ended sessions (migration 0024). Live sessions' spans are computed from
/// their events, and a login they overlap, or without a stored end, is covered here from the
/// stored spans instead.
async fn console_times(
    store: &Store,
    req: &Request,
    spans: &mut [LoginSpan],
) -> Result<(), StoreError> {
    let (Some(lo), Some(hi)) = (
        spans.iter().map(|s| s.start).min(),
        spans.iter().map(|s| s.end.unwrap_or(req.now)).max(),
    ) else {
        return Ok(());
    };
    let mut users: Vec<i64> = spans.iter().map(|s| s.user).collect();
    users.sort_unstable();
    users.dedup();
    let statuses = store.report_console_statuses(&users, lo, hi).await?;
    // Every live session (few), whatever the report selects.
    let mut live: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for s in store.report_live_sessions(i64::MIN, i64::MAX).await? {
        for (t, a, b) in Timings::live_spans(&s.events, req.now) {
            live.entry(t).or_default().push((a, b));
        }
    }
    let live: HashMap<i64, Vec<(i64, i64)>> = live
        .into_iter()
        .map(|(t, v)| (t, Timings::merged(v)))
        .collect();
    let no_spans: &[(i64, i64)] = &[];
    // Logins covered here (per user, one range over them): live sessions overlap them, or
    // their end is not stored yet.
    let mut uncovered = Vec::new();
    for span in spans.iter_mut() {
        let (a, b) = (span.start, span.end.unwrap_or(req.now));
        let live_here = Timings::covered_within(live.get(&span.user).map_or(no_spans, |v| v), a, b);
        match span.covered {
            Some(covered) if live_here == 0 => span.idle = (b - a) - covered,
            _ => {
                span.covered = None;
                uncovered.push((span.user, a, b));
            }
        }
    }
    if !uncovered.is_empty() {
        let ranges = crate::store::logins::ranges_by_user(uncovered);
        let mut stored = store.stored_spans(&ranges).await?;
        let mut covered: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for (u, _, _) in &ranges {
            let mut v = stored.remove(u).unwrap_or_default();
            v.extend(live.get(u).map_or(no_spans, |v| v));
            covered.insert(*u, Timings::merged(v));
        }
        for span in spans.iter_mut().filter(|s| s.covered.is_none()) {
            let (a, b) = (span.start, span.end.unwrap_or(req.now));
            let mine = covered.get(&span.user).map_or(no_spans, |v| v);
            span.idle = (b - a) - Timings::covered_within(mine, a, b);
        }
    }
    let empty = Vec::new();
    for span in spans.iter_mut() {
        let (a, b) = (span.start, span.end.unwrap_or(req.now));
        let history = statuses.get(&span.user).unwrap_or(&empty);
        // From the status in force at the login.
        let first = history.partition_point(|h| h.0 <= a).saturating_sub(1);
        for (i, (at, status)) in history.iter().enumerate().skip(first) {
            if *at >= b {
                break;
            }
            let until = history.get(i + 1).map_or(b, |n| n.0);
            let overlap = until.min(b) - (*at).max(a);
            if overlap > 0 {
                match status.as_str() {
                    "busy" => span.busy += overlap,
                    "away" => span.away += overlap,
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn login(req: &Request, dir: &Directory, spans: &[LoginSpan], summary: bool) -> Rows {
    let technician = |id: i64| dir.people.get(&id).is_some_and(|p| p.role == "technician");
    // Busy, Away and Idle are reported for technicians only.
    let tech_time = |id: i64, ms: i64| {
        if technician(id) {
            hms(ms)
        } else {
            Cell::Text(String::new())
        }
    };
    if !summary {
        let columns = cols(&[
            "Login Date",
            "Name",
            "User ID",
            "Email",
            "Start Time",
            "End Time",
            "Total Login Time",
            "IP Address",
            "Busy Time",
            "Away Time",
            "Idle Time",
        ]);
        let rows = spans
            .iter()
            .map(|s| {
                vec![
                    req.date(s.start),
                    dir.name(Some(s.user)).into(),
                    Cell::Int(s.user),
                    dir.email(Some(s.user)).into(),
                    req.time(Some(s.start)),
                    req.time(s.end),
                    hms(s.length(req.now)),
                    s.address.clone().into(),
                    tech_time(s.user, s.busy),
                    tech_time(s.user, s.away),
                    tech_time(s.user, s.idle),
                ]
            })
            .collect();
        return (columns, rows);
    }
    let columns = cols(&[
        "Name",
        "User ID",
        "Email",
        "Nickname",
        "Group",
        "User Created On",
        "Number of Logins",
        "Average Login Time",
        "Total Login Time",
        "Total Busy Time",
        "Total Away Time",
        "Total Idle Time",
    ]);
    let mut by_user: HashMap<i64, Vec<&LoginSpan>> = HashMap::new();
    for s in spans {
        by_user.entry(s.user).or_default().push(s);
    }
    let rows = dir
        .people
        .values()
        .filter(|p| req.scope.user(p.id))
        .filter(|p| p.deleted_at.is_none() || by_user.contains_key(&p.id))
        .map(|p| {
            let mine: &[&LoginSpan] = by_user.get(&p.id).map_or(&[], |v| v.as_slice());
            let n = mine.len() as i64;
            let total: i64 = mine.iter().map(|s| s.length(req.now)).sum();
            let sum = |f: fn(&LoginSpan) -> i64| mine.iter().map(|s| f(s)).sum::<i64>();
            (
                p.id,
                vec![
                    p.name.clone().into(),
                    Cell::Int(p.id),
                    p.email.clone().into(),
                    p.nickname.clone().into(),
                    dir.group(p.group_id).into(),
                    req.time(Some(p.created_at)),
                    Cell::Int(n),
                    hms(avg(total, n)),
                    hms(total),
                    tech_time(p.id, sum(|s| s.busy)),
                    tech_time(p.id, sum(|s| s.away)),
                    tech_time(p.id, sum(|s| s.idle)),
                ],
            )
        });
    let mut rows: Vec<(i64, Vec<Cell>)> = rows.collect();
    rows.sort_by_key(|r| r.0);
    (columns, rows.into_iter().map(|r| r.1).collect())
}

/// The technicians Performance lists, in id order. `owners`: every session's count by owner (a
/// deleted technician is listed only if they own a session of the report).
fn performance_technicians<'a>(
    req: &Request,
    dir: &'a Directory,
    owners: &HashMap<i64, TimingSums>,
) -> Vec<&'a PersonRow> {
    let mut technicians: Vec<&PersonRow> = dir
        .people
        .values()
        .filter(|p| p.role == "technician" && req.scope.user(p.id))
        .filter(|p| p.deleted_at.is_none() || owners.contains_key(&p.id))
        .collect();
    technicians.sort_by_key(|p| p.id);
    technicians
}

/// `technicians`: those listed (`performance_technicians`, the page's in a List All);
/// `handled`: the handled sessions' sums by technician.
fn performance(
    dir: &Directory,
    technicians: &[&PersonRow],
    handled: &HashMap<i64, TimingSums>,
    login_time: &HashMap<i64, i64>,
    summary: bool,
) -> Rows {
    let login_of = |id: i64| -> i64 { login_time.get(&id).copied().unwrap_or(0) };
    if summary {
        let mut all = TimingSums::default();
        for t in handled.values() {
            all.sessions += t.sessions;
            all.waiting += t.waiting;
            all.total += t.total;
            all.work += t.work;
            all.active += t.active;
            all.longest = all.longest.max(t.longest);
        }
        let n = all.sessions;
        let login: i64 = technicians.iter().map(|p| login_of(p.id)).sum();
        let columns = cols(&[
            "Number of Sessions",
            "Total Login Time",
            "Average Number of Sessions per Hour",
            "Average Pick-up Speed",
            "Average Session Duration",
            "Average Work Time",
            "Total Session Time",
            "Longest Session",
            "Total Active Time",
            "Total Work Time",
        ]);
        let row = vec![
            Cell::Int(n),
            hms(login),
            per_hour(n, login),
            hms(avg(all.waiting, n)),
            hms(avg(all.total, n)),
            hms(avg(all.work, n)),
            hms(all.total),
            hms(all.longest),
            hms(all.active),
            hms(all.work),
        ];
        return (columns, vec![row]);
    }
    let columns = cols(&[
        "Technician Name",
        "Technician ID",
        "Technician Email",
        "Total Login Time",
        "Number of Sessions",
        "Number of Sessions per Hour",
        "Average Pick-up Speed",
        "Average Duration",
        "Average Work Time",
        "Longest Session",
        "Total Active Time",
        "Total Work Time",
    ]);
    let rows = technicians
        .iter()
        .map(|p| {
            let t = handled.get(&p.id).copied().unwrap_or_default();
            let n = t.sessions;
            let login = login_of(p.id);
            let mut row = Vec::from(dir.technician(Some(p.id)));
            row.extend([
                hms(login),
                Cell::Int(n),
                per_hour(n, login),
                hms(avg(t.waiting, n)),
                hms(avg(t.total, n)),
                hms(avg(t.work, n)),
                hms(t.longest),
                hms(t.active),
                hms(t.work),
            ]);
            row
        })
        .collect();
    (columns, rows)
}

/// [Name] and the five [Custom Fields] of a session.
fn fields(s: &ReportSession) -> Vec<Cell> {
    std::iter::once(Cell::from(s.name.clone()))
        .chain(s.custom_fields.iter().map(|c| Cell::from(c.clone())))
        .collect()
}

fn field_columns(req: &Request) -> Vec<String> {
    std::iter::once(req.name_column())
        .chain(req.custom_columns())
        .collect()
}

fn missed_list(req: &Request, dir: &Directory, sessions: &[Timed]) -> Rows {
    let mut columns = cols(&[
        "Start Time",
        "End Time",
        "Waiting Time",
        "Session ID",
        "Session Type",
        "Status",
    ]);
    columns.extend(field_columns(req));
    columns.extend(cols(&[
        "Tracking ID",
        "Customer IP",
        "Private Session",
        "Channel",
        "Technician Group",
    ]));
    let rows = sessions
        .iter()
        .map(|x| {
            let (s, t) = (&x.s, &x.t);
            let mut row = vec![
                req.time(t.waiting_start),
                req.time(t.end),
                hms(t.missed_wait()),
                Cell::Int(s.id),
                SESSION_TYPE.into(),
                t.final_status.clone().into(),
            ];
            row.extend(fields(s));
            row.extend([
                s.tracking_id.clone().into(),
                s.customer_ip.clone().into(),
                dir.name(Some(s.created_by)).into(),
                // Lens has no channels: every session is a private session.
                "".into(),
                dir.group(Some(s.group_id)).into(),
            ]);
            row
        })
        .collect();
    (columns, rows)
}

fn missed_summary(missed: &TimingSums) -> Rows {
    let n = missed.sessions;
    (
        cols(&[
            "Number of Missed Sessions",
            "Average Waiting Time",
            "Total Waiting Time",
            "Longest Session",
        ]),
        vec![vec![
            Cell::Int(n),
            hms(avg(missed.missed_wait, n)),
            hms(missed.missed_wait),
            hms(missed.longest_missed_wait),
        ]],
    )
}

fn failed_list(req: &Request, dir: &Directory, sessions: &[Timed], extended: bool) -> Rows {
    let mut columns = cols(&["Start Time", "Session ID", "Session Type", "Status"]);
    columns.extend(field_columns(req));
    columns.push("Customer IP".into());
    columns.push(if extended {
        "Private Session Technician Name".into()
    } else {
        "Private Session".into()
    });
    columns.push("Channel".into());
    if extended {
        columns.extend(cols(&[
            "Technician Email",
            "Technician Group ID",
            "Technician Group",
        ]));
    }
    let rows = sessions
        .iter()
        .map(|x| {
            let (s, t) = (&x.s, &x.t);
            let mut row = vec![
                req.time(t.connecting_start),
                Cell::Int(s.id),
                SESSION_TYPE.into(),
                t.final_status.clone().into(),
            ];
            row.extend(fields(s));
            row.extend([
                s.customer_ip.clone().into(),
                dir.name(Some(s.created_by)).into(),
                "".into(),
            ]);
            if extended {
                // "The Technician Group to which the technician belonged at the time of generating
                // the report."
                let group = dir.people.get(&s.created_by).and_then(|p| p.group_id);
                row.extend([
                    dir.email(Some(s.created_by)).into(),
                    group.map_or(Cell::Text(String::new()), Cell::Int),
                    dir.group(group).into(),
                ]);
            }
            row
        })
        .collect();
    (columns, rows)
}

fn failed_summary(failed: &TimingSums) -> Rows {
    let (n, total) = (failed.sessions, failed.connecting);
    (
        cols(&[
            "Number of Failed Sessions",
            "Average Connecting Time",
            "Total Connecting Time",
        ]),
        vec![vec![Cell::Int(n), hms(avg(total, n)), hms(total)]],
    )
}

fn custom_fields(req: &Request, dir: &Directory, sessions: &[Timed]) -> Rows {
    let mut columns = cols(&["Start Time", "End Time", "Total Time", "Session ID"]);
    columns.extend(field_columns(req));
    columns.extend(cols(&[
        "Tracking ID",
        "Technician Name",
        "Technician ID",
        "Technician Email",
    ]));
    let rows = sessions
        .iter()
        .map(|x| {
            let (s, t) = (&x.s, &x.t);
            let mut row = vec![
                req.time(t.start),
                req.time(t.end),
                hms(t.total()),
                Cell::Int(s.id),
            ];
            row.extend(fields(s));
            row.push(s.tracking_id.clone().into());
            row.extend(dir.technician(Some(x.technician())));
            row
        })
        .collect();
    (columns, rows)
}

fn transferred(
    req: &Request,
    dir: &Directory,
    sessions: &[Timed],
    extended: bool,
    with_chat: &HashSet<i64>,
    only: &HashSet<(i64, i64)>,
) -> Rows {
    let mut columns = cols(&["Session ID", "Time of Transfer", "Waiting Time"]);
    columns.push(req.name_column());
    if extended {
        columns.extend(cols(&[
            "Transferred by - Technician ID",
            "Transferred by",
            "Transferred from - Technician/Channel ID",
            "Transferred from",
            "Transferred to - Technician/Channel ID",
            "Transferred to",
            "Transfer Comment",
            "Time in Transfer",
            "Transferred from - Technician Group ID",
            "Transferred from - Technician Group",
            "Transferred to - Technician Group ID",
            "Transferred to - Technician Group",
            "Chatlog",
        ]));
    } else {
        columns.extend(cols(&[
            "Transferred by",
            "Transferred from",
            "Transferred to",
            "Transfer Comment",
            "Time in Transfer",
        ]));
    }
    let id_cell = |id: Option<i64>| id.map_or(Cell::Text(String::new()), Cell::Int);
    let mut rows = Vec::new();
    for x in sessions {
        let ev = &x.s.events;
        for (i, e) in ev.iter().enumerate() {
            if e.to_status != Status::Transferring.as_str() {
                continue;
            }
            let from_tech = e.technician_id;
            let in_scope = req.scope.all
                || req.scope.groups.contains(&e.group_id)
                || from_tech.is_some_and(|t| req.scope.users.contains(&t))
                || e.actor_id.is_some_and(|t| req.scope.users.contains(&t));
            if !in_scope || !req.in_day(e.at) || !only.contains(&(x.s.id, e.seq)) {
                continue;
            }
            let arrival = ev.get(i + 1);
            let (to_tech, to_group) =
                arrival.map_or((None, None), |a| (a.technician_id, Some(a.group_id)));
            // The transfer ends at the next pickup, end, or transfer.
            let done = ev[i + 1..]
                .iter()
                .skip(1)
                .find(|n| {
                    n.to_status == Status::Active.as_str()
                        || n.to_status == Status::Transferring.as_str()
                        || Status::parse(&n.to_status).is_some_and(Status::is_final)
                })
                .map_or(req.now, |n| n.at);
            let waiting = done - arrival.map_or(e.at, |a| a.at);
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
            let comment = detail["comment"].as_str().unwrap_or_default().to_owned();
            let by = match (e.actor.as_str(), e.actor_id) {
                ("technician", Some(id)) => dir.name(Some(id)),
                _ => "System".to_owned(),
            };
            // A transfer to a technician names the technician; to a group, the group.
            let to_name = match to_tech {
                Some(t) => dir.name(Some(t)),
                None => dir.group(to_group),
            };
            let mut row = vec![
                Cell::Int(x.s.id),
                req.time(Some(e.at)),
                hms(waiting),
                x.s.name.clone().into(),
            ];
            if extended {
                row.extend([
                    id_cell(e.actor_id),
                    by.into(),
                    id_cell(from_tech),
                    dir.name(from_tech).into(),
                    id_cell(to_tech.or(to_group)),
                    to_name.into(),
                    comment.into(),
                    hms(done - e.at),
                    Cell::Int(e.group_id),
                    dir.group(Some(e.group_id)).into(),
                    id_cell(to_group),
                    dir.group(to_group).into(),
                    // "An icon is displayed if a Chatlog is available."
                    if with_chat.contains(&x.s.id) {
                        "Yes"
                    } else {
                        ""
                    }
                    .into(),
                ]);
            } else {
                row.extend([
                    by.into(),
                    dir.name(from_tech).into(),
                    to_name.into(),
                    comment.into(),
                    hms(done - e.at),
                ]);
            }
            rows.push(row);
        }
    }
    (columns, rows)
}

/// The conditions selecting a Transferred report's transfers: on the session (`t`, as
/// `session_filter`) and on its transfer event (`e`: of the unit, in the daily range). Only
/// numbers are written into them.
fn transfer_filters(req: &Request) -> (String, String) {
    let mut event = req
        .scope
        .sql("e.group_id", "e.technician_id", "e.actor_id")
        .unwrap_or_else(|| String::from("1 = 1"));
    if let Some(d) = req.daily {
        // Transfers happen after their session's creation, up to now.
        let until = req.to.max(req.now) + 86_400_000;
        event.push_str(&format!(
            " AND {}",
            daily_sql(d, req.tz, "e.at", req.from, until)
        ));
    }
    (session_filter(req), event)
}

/// The Transferred Sessions reports: the database selects the page's transfers (the window,
/// scope and daily range of the session, then of the transfer event); their sessions are read
/// with their events to describe them.
async fn transfers(
    store: &Store,
    req: &Request,
    dir: &Directory,
) -> Result<(Paged, Option<Key>), StoreError> {
    let extended = req.area == Area::TransferredSessionsExtended;
    let (filter, mut event) = transfer_filters(req);
    let keyed = req.page.and_then(|p| p.after);
    if let Some(key) = keyed {
        event.push_str(&format!(" AND {}", after_key("e.session_id", "e.seq", key)));
    }
    let keys = store.report_transfers(&filter, &event, req.page).await?;
    // Over every transfer of the window (the whole organization, no daily range: a transfer
    // counts as its session does), the total is the stored sessions' transfers, from the
    // session buckets; otherwise from the transfer buckets.
    let total = match keyed {
        Some(_) => 0,
        None if req.scope.all && req.daily.is_none() => sums(store, req, Pick::Any, SumKey::One)
            .await?
            .get(&0)
            .map_or(0, |t| t.transfers)
            as u64,
        None => transfer_count(store, req, &filter, &event).await?,
    };
    let next = match (keyed, req.page, keys.last()) {
        (Some(_), Some(p), Some(last)) if keys.len() as u64 >= p.limit => Some(*last),
        _ => None,
    };
    let total = if keyed.is_some() {
        keys.len() as u64
    } else {
        total
    };
    let only: HashSet<(i64, i64)> = keys.iter().copied().collect();
    // The page's sessions only (with a daily range they lie far apart).
    let mut ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
    ids.dedup();
    let sessions: Vec<Timed> = store
        .report_sessions_in(&ids)
        .await?
        .into_iter()
        .map(|s| {
            let t = Timings::of(&s.events, req.now);
            Timed { s, t }
        })
        .collect();
    let with_chat: HashSet<i64> = if extended {
        store
            .report_sessions_with_chat(&ids)
            .await?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    Ok((
        with_total(
            transferred(req, dir, &sessions, extended, &with_chat, &only),
            total,
        ),
        next,
    ))
}

/// How many transfers the Transferred reports list (`filter` on the session, `event` on its
/// transfer event, from `transfer_filters`): the transfer buckets (migration 0021) whose
/// creation hour (or day) the window and daily range keep wholly and, with a daily range, whose
/// event hour it keeps wholly; the rest counted one by one. The live sessions' are counted too.
async fn transfer_count(
    store: &Store,
    req: &Request,
    filter: &str,
    event: &str,
) -> Result<u64, StoreError> {
    let mut n = store.report_live_transfer_count(filter, event).await?;
    // Every ended session's transfers lie in buckets within the session buckets' bounds.
    let Some((lo, hi)) = store.report_bucket_bounds().await? else {
        return Ok(n);
    };
    // A daily range of the whole day keeps every time (as `daily_sql` reads it).
    let daily = req.daily.filter(|d| d.from_min != d.to_min);
    let cover = buckets::cover(
        req.from.max(lo),
        req.to.min(hi + buckets::HOUR),
        daily,
        req.tz,
    );
    // Of the unit twice: the session (as `session_filter`) and its transfer event (as
    // `transfer_filters`).
    let bucket_filter = match (
        req.scope
            .sql("b.group_id", "b.technician_id", "b.created_by"),
        req.scope.sql(
            "b.event_group_id",
            "b.event_technician_id",
            "b.event_actor_id",
        ),
    ) {
        (Some(session), Some(event)) => format!("{session} AND {event}"),
        _ => String::from("1 = 1"),
    };
    let mut scan = cover.scan.clone();
    match daily {
        None => {
            for (span, ranges) in [(buckets::DAY, &cover.days), (buckets::HOUR, &cover.hours)] {
                n += store
                    .report_transfer_bucket_sum(
                        span,
                        &buckets::starts(ranges, span),
                        None,
                        &bucket_filter,
                    )
                    .await?;
            }
        }
        Some(d) => {
            let mut hours = buckets::starts(&cover.days, buckets::HOUR);
            hours.extend(buckets::starts(&cover.hours, buckets::HOUR));
            hours.sort_unstable();
            // The event hours from the window's first hour to where `transfer_filters` stops
            // reading the zone's offsets (events come after their session's creation, before now).
            let until = req.to.max(req.now) + buckets::DAY;
            let (ev_lo, ev_hi) = (
                req.from.div_euclid(buckets::HOUR) * buckets::HOUR,
                until.div_euclid(buckets::HOUR) * buckets::HOUR,
            );
            let events = buckets::cover(ev_lo, ev_hi, Some(d), req.tz);
            let mut whole = buckets::starts(&events.days, buckets::HOUR);
            whole.extend(buckets::starts(&events.hours, buckets::HOUR));
            // Creation hours with a transfer in an hour the range keeps partly, or outside the
            // hours classified: counted one by one.
            let mut mixed = store
                .report_transfer_hours_with_events(
                    &hours,
                    &buckets::starts(&events.scan, buckets::HOUR),
                    (ev_lo, ev_hi),
                )
                .await?;
            mixed.sort_unstable();
            hours.retain(|h| mixed.binary_search(h).is_err());
            n += store
                .report_transfer_bucket_sum(buckets::HOUR, &hours, Some(&whole), &bucket_filter)
                .await?;
            scan.extend(mixed.iter().map(|&h| (h, h + buckets::HOUR)));
            scan.sort_unstable();
        }
    }
    n += store.report_transfer_count(filter, event, &scan).await?;
    Ok(n)
}

async fn chatlog(
    store: &Store,
    req: &Request,
    dir: &Directory,
) -> Result<(Paged, Option<Key>), StoreError> {
    let Listed {
        total,
        sessions,
        next,
    } = timed(store, req, Pick::Handled).await?;
    let deletions: HashMap<i64, _> = store
        .chatlog_deletions(None)
        .await?
        .into_iter()
        .map(|d| (d.session_id, d))
        .collect();
    let (mut chat, mut notes) = (HashMap::new(), HashMap::new());
    if let (Some(a), Some(b)) = (sessions.first(), sessions.last()) {
        for (sid, c) in store.report_chat(a.s.id, b.s.id).await? {
            let line = if c.sender == "system" {
                format!("{} {}", req.clock(c.at), c.text)
            } else {
                format!("{} {}: {}", req.clock(c.at), c.name, c.text)
            };
            chat.entry(sid).or_insert_with(Vec::new).push(line);
        }
        for (sid, at, text) in store.report_notes(a.s.id, b.s.id).await? {
            notes
                .entry(sid)
                .or_insert_with(Vec::new)
                .push(format!("{} {}", req.clock(at), text));
        }
    }
    let mut columns = cols(&["Start Time", "End Time", "Total Time", "Session ID"]);
    columns.push(req.name_column());
    columns.extend(cols(&[
        "Technician Name",
        "Technician ID",
        "Technician Email",
        "Chat Log",
        "Notes",
        "Delete",
    ]));
    let rows = sessions
        .iter()
        .map(|x| {
            let (s, t) = (&x.s, &x.t);
            let deletion = deletions.get(&s.id);
            let purged = deletion.is_some_and(|d| d.purged_at.is_some());
            let mut row = vec![
                req.time(t.start),
                req.time(t.end),
                hms(t.total()),
                Cell::Int(s.id),
                s.name.clone().into(),
            ];
            row.extend(dir.technician(Some(x.technician())));
            row.push(if purged {
                Cell::Text(String::new())
            } else {
                chat.get(&s.id)
                    .map(|l| l.join("\n"))
                    .unwrap_or_default()
                    .into()
            });
            row.push(
                notes
                    .get(&s.id)
                    .map(|l| l.join("\n"))
                    .unwrap_or_default()
                    .into(),
            );
            row.push(match deletion {
                Some(d) if d.purged_at.is_some() => "Deleted".into(),
                Some(d) => format!(
                    "Pending deletion (revocable until {})",
                    req.time(Some(d.purge_at)).text()
                )
                .into(),
                None => "".into(),
            });
            row
        })
        .collect();
    Ok(((columns, rows, total), next))
}

/// One chunk of the surveys of `kind` submitted in the window after `after` (at most `limit` read):
/// those of the scope and the daily range, and the key the next chunk follows (None after the
/// last).
async fn survey_chunk(
    store: &Store,
    req: &Request,
    kind: &str,
    after: Key,
    limit: u64,
) -> Result<(Vec<SurveyRow>, Option<Key>), StoreError> {
    let read = store
        .report_surveys_after(kind, req.from, req.to, after, limit)
        .await?;
    let next = match read.last() {
        Some((id, s)) if read.len() as u64 >= limit => Some((s.submitted_at, *id)),
        _ => None,
    };
    let kept = read
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| {
            (req.scope.all
                || req.scope.groups.contains(&s.group_id)
                || req.scope.users.contains(&s.technician_id))
                && req.in_day(s.submitted_at)
        })
        .collect();
    Ok((kept, next))
}

/// The survey reports' kind of survey.
fn survey_kind(area: Area) -> &'static str {
    if area == Area::TechnicianSurvey {
        "technician"
    } else {
        "customer"
    }
}

/// Adds the questions of `s` not yet in `questions`, in the order asked.
fn note_questions(questions: &mut Vec<String>, s: &SurveyRow) {
    for (q, _) in &s.answers {
        if !questions.contains(q) {
            questions.push(q.clone());
        }
    }
}

/// A survey report's [Survey Columns]: the questions of its surveys, in the order they were
/// first asked (read through in chunks, keeping only the questions).
pub async fn survey_questions(store: &Store, req: &Request) -> Result<Vec<String>, StoreError> {
    let kind = survey_kind(req.area);
    let mut questions = Vec::new();
    each_chunk(
        |after, limit| survey_chunk(store, req, kind, after, limit),
        |s| note_questions(&mut questions, &s),
    )
    .await?;
    Ok(questions)
}

async fn surveys(
    store: &Store,
    req: &Request,
    dir: &Directory,
    summary: bool,
) -> Result<(Paged, Option<Key>), StoreError> {
    let kind = survey_kind(req.area);
    let issuance = req.area == Area::CustomerSurveyIssuance;
    let yes_no = |b: bool| Cell::from(if b { "Yes" } else { "No" });
    let chunk = |after, limit| survey_chunk(store, req, kind, after, limit);
    if summary {
        // By source (and issuer): the surveys, and the answered questions ("the total number of
        // responses to the survey questions").
        let mut questions: Vec<String> = Vec::new();
        let mut sources: std::collections::BTreeMap<(i64, bool), (i64, HashMap<String, i64>)> =
            std::collections::BTreeMap::new();
        each_chunk(chunk, |s| {
            note_questions(&mut questions, &s);
            let source = sources
                .entry((s.group_id, issuance && s.issued_by_closing))
                .or_default();
            source.0 += 1;
            let mut seen: Vec<&str> = Vec::new();
            // A question's first answer counts (as it is shown).
            for (q, a) in &s.answers {
                if !seen.contains(&q.as_str()) {
                    seen.push(q);
                    if !a.is_empty() {
                        *source.1.entry(q.clone()).or_default() += 1;
                    }
                }
            }
        })
        .await?;
        let mut columns = cols(&["Source", "Number of Surveys"]);
        columns.extend(questions.iter().cloned());
        if issuance {
            columns.push("Survey issued by closing technician".into());
        }
        let rows = sources
            .into_iter()
            .map(|((group, closing), (n, answered))| {
                let mut row = vec![Cell::from(dir.group(Some(group))), Cell::Int(n)];
                row.extend(
                    questions
                        .iter()
                        .map(|q| Cell::Int(answered.get(q).copied().unwrap_or(0))),
                );
                if issuance {
                    row.push(yes_no(closing));
                }
                row
            })
            .collect();
        return Ok((whole((columns, rows)), None));
    }
    // A streamed export reads the questions once, before its first chunk.
    let questions = match &req.survey_questions {
        Some(q) => q.clone(),
        None => survey_questions(store, req).await?,
    };
    let answer = |s: &SurveyRow, q: &str| {
        s.answers
            .iter()
            .find(|(question, _)| question == q)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    };
    let mut columns = cols(&["Source", "Session ID", "Date"]);
    columns.push(req.name_column());
    let technician_survey = kind == "technician";
    if technician_survey || !issuance {
        columns.extend(questions.iter().cloned());
    }
    columns.extend(cols(&[
        "Technician Name",
        "Technician ID",
        "Technician Email",
    ]));
    if issuance {
        columns.push("Survey issued by closing technician".into());
    }
    let (surveys, total, next) = read_paged(req.page, chunk).await?;
    let rows = surveys
        .iter()
        .map(|s| {
            // Customer surveys: "when the technician ended the session"; technician surveys: when
            // submitted.
            let date = if technician_survey {
                Some(s.submitted_at)
            } else {
                s.session_ended_at.or(Some(s.submitted_at))
            };
            let mut row = vec![
                Cell::from(dir.group(Some(s.group_id))),
                Cell::Int(s.session_id),
                req.time(date),
                s.session_name.clone().into(),
            ];
            if technician_survey || !issuance {
                row.extend(questions.iter().map(|q| Cell::from(answer(s, q))));
            }
            row.extend(dir.technician(Some(s.technician_id)));
            if issuance {
                row.push(yes_no(s.issued_by_closing));
            }
            row
        })
        .collect();
    Ok(((columns, rows, total), next))
}

/// Reads a report through in keyed chunks from its first row: `chunk(after, limit)` gives a
/// chunk's rows (those the report keeps of at most `limit` read) and the key the next follows.
async fn each_chunk<T, F: Future<Output = Result<(Vec<T>, Option<Key>), StoreError>>>(
    mut chunk: impl FnMut(Key, u64) -> F,
    mut each: impl FnMut(T),
) -> Result<(), StoreError> {
    let mut after = FIRST_KEY;
    loop {
        let (rows, next) = chunk(after, export::CHUNK_ROWS).await?;
        rows.into_iter().for_each(&mut each);
        match next {
            Some(key) => after = key,
            None => return Ok(()),
        }
    }
}

/// The rows of `page` of a report read in keyed chunks (`each_chunk`), the number of rows, and
/// the key the next chunk follows: with a keyed page, the one chunk after its key; else every
/// chunk is read, counting the rows and keeping the page's (every row without a page), so
/// memory holds a chunk and the page whatever the report's length.
async fn read_paged<T, F: Future<Output = Result<(Vec<T>, Option<Key>), StoreError>>>(
    page: Option<Page>,
    mut chunk: impl FnMut(Key, u64) -> F,
) -> Result<(Vec<T>, u64, Option<Key>), StoreError> {
    if let Some(Page {
        after: Some(after),
        limit,
        ..
    }) = page
    {
        let (rows, next) = chunk(after, limit).await?;
        let n = rows.len() as u64;
        return Ok((rows, n, next));
    }
    let (skip, take) = page.map_or((0, u64::MAX), |p| (p.offset, p.limit));
    let (mut total, mut rows) = (0u64, Vec::new());
    each_chunk(chunk, |row| {
        if total >= skip && total - skip < take {
            rows.push(row);
        }
        total += 1;
    })
    .await?;
    Ok((rows, total, None))
}

async fn audit(store: &Store, req: &Request) -> Result<(Paged, Option<Key>), StoreError> {
    let columns = cols(&[
        "Requested by",
        "Entity type",
        "Entity ID",
        "Entity name",
        "Change type",
        "Last changed",
        "Section",
        "Field",
        "Old Value",
        "Old Action",
        "New Value",
        "New Action",
    ]);
    let chunk = |after: Key, limit: u64| async move {
        let read = store
            .report_audit_after(req.from, req.to, after, limit)
            .await?;
        let next = match read.last() {
            Some(r) if read.len() as u64 >= limit => Some((r.at, r.id)),
            _ => None,
        };
        let kept: Vec<AuditRow> = read
            .into_iter()
            .filter(|r| req.scope.audit(r) && req.in_day(r.at))
            .collect();
        Ok((kept, next))
    };
    let (read, total, next) =
        read_paged(req.page.filter(|_| req.list == ListType::All), chunk).await?;
    let opt = |v: &Option<String>| Cell::from(v.clone().unwrap_or_default());
    let rows = read
        .into_iter()
        .map(|r| {
            vec![
                r.requested_by.clone().into(),
                r.entity_type.clone().into(),
                Cell::Int(r.entity_id),
                r.entity_name.clone().into(),
                r.change_type.clone().into(),
                req.time(Some(r.at)),
                r.section.clone().into(),
                r.field.clone().into(),
                opt(&r.old_value),
                opt(&r.old_action),
                opt(&r.new_value),
                opt(&r.new_action),
            ]
        })
        .collect();
    Ok(((columns, rows, total), next))
}
