//! `GET /api/v1/reports/{area}`: the guide's Reports tab, and the chatlog deletion a master
//! administrator queues (revocable for 24 h, then purged by a background job).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Caller, Scope as ManagedScope, load_org, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::org::Org;
use crate::reports::export::Export;
use crate::reports::format::Format;
use crate::reports::params::{self, Area, Daily, ListType, ParamError};
use crate::reports::{Page, Request, Scope};
use crate::store::reports::ChatlogDeletion;
use crate::store::{AuditEntry, ChangeType, GroupKind, Role, StoreError};

/// What a refused export (all `reports.max_concurrent_exports` busy) is told to wait, in seconds.
pub const EXPORT_RETRY_AFTER_SECONDS: u64 = 10;

/// How long a queued chatlog deletion can be revoked (the guide: 24 hours).
pub const CHATLOG_DELETION_DELAY_MS: i64 = 24 * 3_600_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report))
        .routes(routes!(queue_chatlog_deletion, revoke_chatlog_deletion))
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> ApiError {
        crate::error::invalid_parameter("query", format!("{}: {}", e.field, e.message))
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `all` (List All, the default) or `summary`.
    pub list: Option<String>,
    /// The organizational unit: `technician_group:ID` (with its subgroups), `technician:ID`,
    /// `administrator:ID`, `master_administrator:ID`, `administrator_group:ID`, or the roots
    /// `master_administrators`, `administrators`, `technicians`. Default: everything the caller
    /// manages.
    pub unit: Option<String>,
    /// Start date, YYYY-MM-DD, in `tz` (with `to`).
    pub from: Option<String>,
    /// End date, YYYY-MM-DD, included.
    pub to: Option<String>,
    /// `today`, `yesterday`, `last_7_days`, `this_month` (the default) or `last_month`.
    pub range: Option<String>,
    /// `UTC` (default) or an IANA time zone (the guide's "Local").
    pub tz: Option<String>,
    /// Daily time range start, HH:MM in `tz` (with `daily_to`).
    pub daily_from: Option<String>,
    /// Daily time range end, HH:MM, excluded; before `daily_from` spans midnight.
    pub daily_to: Option<String>,
    /// `json` (default), `html`, `xml` (Excel SpreadsheetML 2003), `tsv` or `xlsx`.
    pub format: Option<String>,
    /// JSON List All: page number from 1.
    pub page: Option<u32>,
    /// JSON List All: rows per page (default 100, at most 1000).
    pub per_page: Option<u32>,
}

/// A report as JSON: the columns, in the guide's order, and the rows' cells (numbers for ids and
/// counts, text for everything else: times in the chosen zone, durations as h:mm:ss).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReportBody {
    pub area: String,
    pub title: String,
    pub list: String,
    pub time_zone: String,
    pub from: String,
    pub to: String,
    pub columns: Vec<String>,
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<crate::reports::Cell>>,
    pub page: u32,
    pub per_page: u32,
    pub total_rows: u64,
}

/// A report of the guide's Reports tab in one of five formats. JSON answers a page; the files
/// (HTML, SpreadsheetML, TSV, XLSX) hold every row of the report, streamed as the rows are read
/// (no length limit; a sheet holds at most 1,048,576 rows, longer reports continue on further
/// sheets). At most `reports.max_concurrent_exports` files are written at once: further ones
/// answer 429 `too_many_exports` with `Retry-After`. An error after the first rows were sent
/// ends the download early (the connection closes without the end of the chunked body).
#[utoipa::path(get, path = "/api/v1/reports/{area}", tag = "reports", security(("bearer" = [])),
    params(("area" = String, Path, description = "session, performance, login, missed-sessions, failed-sessions, failed-sessions-extended, transferred-sessions, transferred-sessions-extended, chatlog, custom-fields, customer-survey, customer-survey-issuance, technician-survey, audit"), ReportQuery),
    responses((status = 200, description = "The report (JSON; or HTML, SpreadsheetML, TSV, XLSX per `format`, streamed)", body = ReportBody),
              (status = 401, description = "Not logged in or token invalid", body = ErrorBody),
              (status = 403, description = "Technicians have no reports", body = ErrorBody),
              (status = 404, description = "Unknown area, or a unit the caller does not manage", body = ErrorBody),
              (status = 409, description = "Customer Survey Issuance while surveys are issued by the starting technician (`report_unavailable`)", body = ErrorBody),
              (status = 422, description = "Bad parameter", body = ErrorBody),
              (status = 429, description = "`reports.max_concurrent_exports` files are being written (`too_many_exports`); try again after `Retry-After` seconds", body = ErrorBody,
               headers(("Retry-After" = u64, description = "Seconds to wait")))))]
async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Path(area): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let area = Area::parse(&area).ok_or_else(|| ApiError::not_found("report area"))?;
    if area == Area::CustomerSurveyIssuance
        && state.global().customer_survey_issuance.survey_issued_by
            != crate::settings::global::SurveyIssuer::ClosingTechnician
    {
        // As in the guide: the report exists only when the closing technician issues surveys.
        return Err(ApiError::conflict(
            "report_unavailable",
            "the Customer Survey Issuance report needs Global Settings > Customer Survey Issuance > \
             Survey issued by: Closing technician",
        ));
    }
    let list = ListType::parse(q.list.as_deref(), area)?;
    let format = Format::parse(q.format.as_deref()).ok_or_else(|| {
        crate::error::invalid_parameter("query", "format: must be json, html, xml, tsv or xlsx")
    })?;
    let tz = params::time_zone(q.tz.as_deref())?;
    let now = state.hub.now();
    let (from, to) = params::window(
        q.range.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
        tz,
        now,
    )?;
    let daily = Daily::parse(q.daily_from.as_deref(), q.daily_to.as_deref())?;
    let per_page = q.per_page.unwrap_or(100);
    if !(1..=1000).contains(&per_page) {
        return Err(crate::error::invalid_parameter(
            "query",
            "per_page: must be 1 to 1000",
        ));
    }
    let page = q.page.unwrap_or(1).max(1);
    let org = load_org(&state).await?;
    let scope = unit_scope(&caller, &org, q.unit.as_deref())?;
    let names = state.global().custom_field_names.clone();
    let field_names: [String; 6] = names.all().map(str::to_owned);
    let file = format!(
        "{}-{}",
        area.as_str(),
        rfc3339(from).get(..10).unwrap_or("")
    );
    let json_page = Page {
        offset: u64::from(page - 1) * u64::from(per_page),
        limit: u64::from(per_page),
        after: None,
    };
    let req = Request {
        area,
        list,
        from,
        to,
        tz,
        daily,
        now,
        scope,
        field_names,
        // JSON pages; a file is read in chunks by `Export`.
        page: Some(json_page),
        survey_questions: None,
    };
    if format != Format::Json {
        return export(&state, req, format, &file).await;
    }
    let table = crate::reports::build(&state.store, &req).await?;
    let total_rows = table.total_rows;
    let body = ReportBody {
        area: area.as_str().into(),
        title: table.title,
        list: if list == ListType::All {
            "all"
        } else {
            "summary"
        }
        .into(),
        time_zone: tz.name().into(),
        from: rfc3339(from),
        to: rfc3339(to),
        columns: table.columns,
        rows: table.rows,
        page,
        per_page,
        total_rows,
    };
    Ok(Json(body).into_response())
}

/// A report file, streamed: the first chunk is read before answering (so a failing report still
/// answers with an error status), the rest as the client takes it. The export's slot
/// (`reports.max_concurrent_exports`) is held until the last chunk is written, the client goes
/// away (it drops the body, and with it the chunk being read) or it stops reading for
/// `reports.export_stall_seconds`.
async fn export(state: &AppState, req: Request, format: Format, file: &str) -> ApiResult<Response> {
    let Ok(permit) = state.exports.clone().try_acquire_owned() else {
        state.metrics.report_export(format.as_str(), "refused");
        return Err(ApiError {
            code: "too_many_exports",
            ..ApiError::too_many(
                EXPORT_RETRY_AFTER_SECONDS,
                format!(
                    "{} report files are being written; try again in a few seconds",
                    state.config.reports.max_concurrent_exports
                ),
            )
        });
    };
    let mut subtitle = format!(
        "{} to {} ({})",
        rfc3339(req.from),
        rfc3339(req.to),
        req.tz.name()
    );
    if let Some(d) = req.daily {
        subtitle.push_str(&format!(
            ", daily {:02}:{:02}–{:02}:{:02}",
            d.from_min / 60,
            d.from_min % 60,
            d.to_min / 60,
            d.to_min % 60
        ));
    }
    let title = crate::reports::title(req.area, req.list);
    let mut export = Export::new(req, format, &title, subtitle)
        .ok_or_else(|| ApiError::internal("not a file format"))?;
    let mut running = Running::new(state.metrics.clone(), format, permit);
    let first = match export.next_chunk(&state.store).await {
        Ok(chunk) => chunk.unwrap_or_default(),
        Err(e) => {
            running.finish("failed", 0);
            return Err(ApiError::internal(e));
        }
    };
    running.rows(export.rows());
    // The file is written by a task of its own into a one-chunk channel that the body drains:
    // a client that stops reading leaves the channel full, and after `export_stall_seconds` the
    // task gives up, freeing the slot (no database connection is held between chunks).
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let completed = Arc::new(AtomicBool::new(false));
    let stall = Duration::from_secs(state.config.reports.export_stall_seconds);
    tokio::spawn(write_export(
        export,
        running,
        state.store.clone(),
        first,
        Sink {
            tx,
            stall,
            completed: completed.clone(),
        },
    ));
    let body = futures_util::stream::unfold(Some(rx), move |rx| {
        let completed = completed.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                // The writer ended without finishing the file (it stalled): the body ends in an
                // error, so the client sees a broken download rather than a short file.
                None if !completed.load(Ordering::Acquire) => Some((
                    Err(std::io::Error::other("the report export stopped")),
                    None,
                )),
                None => None,
            }
        }
    });
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        axum::body::Body::from_stream(body),
    )
        .into_response();
    if let Some(ext) = format.download_extension()
        && let Ok(v) = format!("attachment; filename=\"{file}.{ext}\"").parse()
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Where an export's task sends the file: the body's channel, given up on after `stall` without
/// room (the client stopped reading); `completed` tells the body the file ended as it should.
struct Sink {
    tx: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>,
    stall: Duration,
    completed: Arc<AtomicBool>,
}

/// Writes an export's chunks after the `first` into `sink` until the file ends, the client goes
/// away (the query being read is dropped with it), or the client stops reading for
/// `sink.stall`. `running` (the slot) is dropped when this returns.
async fn write_export(
    mut export: Export,
    mut running: Running,
    store: crate::store::Store,
    first: Vec<u8>,
    sink: Sink,
) {
    let mut pending = Some(first);
    loop {
        if let Some(bytes) = pending.take().filter(|b| !b.is_empty()) {
            match tokio::time::timeout(sink.stall, sink.tx.send(Ok(bytes.into()))).await {
                Ok(Ok(())) => {}
                // The body was dropped: the client went away (`Running` counts it cancelled).
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::warn!(
                        rows = export.rows(),
                        stall_seconds = sink.stall.as_secs(),
                        "report export stopped: the client stopped reading"
                    );
                    running.finish("stalled", export.rows());
                    return;
                }
            }
        }
        let next = tokio::select! {
            next = export.next_chunk(&store) => next,
            () = sink.tx.closed() => return,
        };
        match next {
            Ok(Some(bytes)) => {
                running.rows(export.rows());
                pending = Some(bytes);
            }
            Ok(None) => {
                running.finish("completed", export.rows());
                sink.completed.store(true, Ordering::Release);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = export.rows(), "report export failed after its first rows; the download ends early");
                running.finish("failed", export.rows());
                // Room or not, the body ends in an error (`completed` stays false).
                let _ = sink.tx.try_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        }
    }
}

/// A running export: its slot, and the metrics (`lens_report_exports_running`, and on its end
/// `lens_report_exports_total{outcome}`: completed, failed, or cancelled when the body was dropped
/// before the end, i.e. the client went away).
struct Running {
    metrics: crate::metrics::Metrics,
    format: &'static str,
    outcome: Option<&'static str>,
    rows: u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Running {
    fn new(
        metrics: crate::metrics::Metrics,
        format: Format,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Running {
        metrics.report_exports_running.inc();
        Running {
            metrics,
            format: format.as_str(),
            outcome: None,
            rows: 0,
            _permit: permit,
        }
    }

    /// Counts the rows written since the last call.
    fn rows(&mut self, total: u64) {
        self.metrics
            .report_export_rows
            .inc_by(total.saturating_sub(self.rows));
        self.rows = total;
    }

    fn finish(&mut self, outcome: &'static str, rows: u64) {
        self.rows(rows);
        self.outcome = Some(outcome);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or("cancelled");
        if outcome == "cancelled" {
            tracing::info!(
                rows = self.rows,
                "report export stopped: the client went away"
            );
        }
        self.metrics.report_exports_running.dec();
        self.metrics.report_export(self.format, outcome);
    }
}

/// The people and groups of the chosen unit, within what the caller manages. A unit the caller
/// does not manage is "not found", as elsewhere in the API.
fn unit_scope(caller: &Caller, org: &Org, unit: Option<&str>) -> ApiResult<Scope> {
    let managed = caller.scope(org);
    let technicians_in = |groups: &HashSet<i64>| -> HashSet<i64> {
        org.users
            .iter()
            .filter(|u| {
                u.role == Role::Technician && u.group_id.is_some_and(|g| groups.contains(&g))
            })
            .map(|u| u.id)
            .collect()
    };
    let not_found = || ApiError::not_found("unit");
    let master_only = || {
        if caller.is_master() {
            Ok(())
        } else {
            Err(not_found())
        }
    };
    let role_ids = |role: Role| -> HashSet<i64> {
        org.users
            .iter()
            .filter(|u| u.role == role)
            .map(|u| u.id)
            .collect()
    };
    let (kind, id) = match unit {
        None | Some("") => (None, None),
        Some(u) => match u.split_once(':') {
            Some((k, id)) => (
                Some(k),
                Some(id.parse::<i64>().map_err(|_| {
                    crate::error::invalid_parameter("query", "unit: the id must be a number")
                })?),
            ),
            None => (Some(u), None),
        },
    };
    let scope = match (kind, id) {
        (None, _) | (Some("technicians"), None) => match &managed {
            ManagedScope::Everything if kind.is_none() => Scope {
                all: true,
                ..Scope::default()
            },
            ManagedScope::Everything => {
                let groups: HashSet<i64> = org
                    .groups
                    .iter()
                    .filter(|g| g.kind == GroupKind::TechnicianGroup)
                    .map(|g| g.id)
                    .collect();
                Scope {
                    users: technicians_in(&groups),
                    groups,
                    all: false,
                }
            }
            ManagedScope::TechnicianGroups(groups) => {
                let mut users = technicians_in(groups);
                users.insert(caller.user.id);
                Scope {
                    all: false,
                    groups: groups.clone(),
                    users,
                }
            }
        },
        (Some("technician_group"), Some(id)) => {
            let g = org.group(id).ok_or_else(not_found)?;
            if g.kind != GroupKind::TechnicianGroup || !managed.manages_group(id) {
                return Err(not_found());
            }
            let groups = org.subtree(id);
            Scope {
                users: technicians_in(&groups),
                groups,
                all: false,
            }
        }
        (Some("technician"), Some(id)) => {
            let u = org
                .users
                .iter()
                .find(|u| u.id == id && u.role == Role::Technician)
                .ok_or_else(not_found)?;
            if !u.group_id.is_some_and(|g| managed.manages_group(g)) {
                return Err(not_found());
            }
            Scope {
                users: HashSet::from([id]),
                ..Scope::default()
            }
        }
        (Some(k @ ("administrator" | "master_administrator")), Some(id)) => {
            let role = if k == "administrator" {
                Role::Administrator
            } else {
                Role::MasterAdministrator
            };
            org.users
                .iter()
                .find(|u| u.id == id && u.role == role)
                .ok_or_else(not_found)?;
            // An administrator may report on itself; only masters on other administrators.
            if id != caller.user.id {
                master_only()?;
            }
            Scope {
                users: HashSet::from([id]),
                ..Scope::default()
            }
        }
        (Some("administrator_group"), Some(id)) => {
            master_only()?;
            let g = org.group(id).ok_or_else(not_found)?;
            if g.kind != GroupKind::AdministratorGroup {
                return Err(not_found());
            }
            let groups = org.subtree(id);
            Scope {
                users: org
                    .users
                    .iter()
                    .filter(|u| u.role == Role::Administrator)
                    .filter(|u| u.group_id.is_some_and(|g| groups.contains(&g)))
                    .map(|u| u.id)
                    .collect(),
                ..Scope::default()
            }
        }
        (Some("master_administrators"), None) => {
            master_only()?;
            Scope {
                users: role_ids(Role::MasterAdministrator),
                ..Scope::default()
            }
        }
        (Some("administrators"), None) => {
            master_only()?;
            Scope {
                users: role_ids(Role::Administrator),
                ..Scope::default()
            }
        }
        _ => {
            return Err(crate::error::invalid_parameter(
                "query",
                "unit: must be technician_group:ID, technician:ID, administrator:ID, \
                 master_administrator:ID, administrator_group:ID, master_administrators, \
                 administrators or technicians",
            ));
        }
    };
    Ok(scope)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatlogDeletionView {
    pub session_id: i64,
    pub queued_at: String,
    /// When the chatlog is purged; until then the deletion can be revoked.
    pub purge_at: String,
}

fn chatlog_audit(caller: &Caller, session_id: i64, now: i64) -> AuditEntry {
    AuditEntry {
        at: now,
        requested_by_id: caller.user.id,
        requested_by_name: caller.user.name.clone(),
        entity_type: "Session",
        entity_id: session_id,
        entity_name: format!("Session {session_id}"),
        change_type: ChangeType::Delete,
        section: "Reports".into(),
        field: "Chatlog".into(),
        old_value: None,
        old_action: None,
        new_value: None,
        new_action: None,
    }
}

/// Queue a session's chatlog for deletion (master administrators). It is purged 24 hours later;
/// until then the Chatlog report shows it as pending and the deletion can be revoked.
#[utoipa::path(post, path = "/api/v1/chatlog-deletions/{session_id}", tag = "reports", security(("bearer" = [])),
    params(("session_id" = i64, Path, description = "Session ID")),
    responses((status = 201, description = "Queued", body = ChatlogDeletionView),
              (status = 403, description = "Not a master administrator", body = ErrorBody),
              (status = 404, description = "No such session", body = ErrorBody),
              (status = 409, description = "Already queued or deleted", body = ErrorBody)))]
async fn queue_chatlog_deletion(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<i64>,
) -> ApiResult<(StatusCode, Json<ChatlogDeletionView>)> {
    caller.require_master()?;
    match state.store.session(session_id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(ApiError::not_found("session")),
        Err(e) => return Err(e.into()),
    }
    let now = state.hub.now();
    let d = ChatlogDeletion {
        session_id,
        queued_at: now,
        queued_by: caller.user.id,
        purge_at: now + CHATLOG_DELETION_DELAY_MS,
        purged_at: None,
    };
    let audit = AuditEntry {
        new_action: Some("Queued for deletion".into()),
        ..chatlog_audit(&caller, session_id, now)
    };
    match state.store.queue_chatlog_deletion(&d, &audit).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "deletion_queued",
                "this chatlog is already queued for deletion or deleted",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok((
        StatusCode::CREATED,
        Json(ChatlogDeletionView {
            session_id,
            queued_at: rfc3339(d.queued_at),
            purge_at: rfc3339(d.purge_at),
        }),
    ))
}

/// Revoke a queued chatlog deletion before it is purged (master administrators).
#[utoipa::path(delete, path = "/api/v1/chatlog-deletions/{session_id}", tag = "reports", security(("bearer" = [])),
    params(("session_id" = i64, Path, description = "Session ID")),
    responses((status = 204, description = "Revoked"),
              (status = 403, description = "Not a master administrator", body = ErrorBody),
              (status = 404, description = "Nothing pending for this session (never queued, or already purged)", body = ErrorBody)))]
async fn revoke_chatlog_deletion(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<i64>,
) -> ApiResult<StatusCode> {
    caller.require_master()?;
    let now = state.hub.now();
    let audit = AuditEntry {
        change_type: ChangeType::Change,
        old_action: Some("Queued for deletion".into()),
        new_action: Some("Deletion revoked".into()),
        ..chatlog_audit(&caller, session_id, now)
    };
    match state
        .store
        .revoke_chatlog_deletion(session_id, now, &audit)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(ApiError::not_found("pending chatlog deletion")),
        Err(e) => Err(e.into()),
    }
}

/// The background job: purges due chatlogs once a minute, on the hub's clock.
pub async fn run_chatlog_purge(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        match state.store.purge_due_chatlogs(state.hub.now()).await {
            Ok(purged) if !purged.is_empty() => {
                tracing::info!(sessions = ?purged, "chatlogs purged");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "chatlog purge failed; retrying in a minute"),
        }
    }
}
