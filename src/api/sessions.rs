//! `POST /api/v1/sessions` (a technician creates a session: PIN, link, SMS or email),
//! `GET /api/v1/sessions/{id}` and `GET /api/v1/sessions` — the basis of the CRM API — and the
//! outbox of SMS and email messages.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use signaling::protocol::CreateSession;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Caller, load_org, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::sessions::create::Created;
use crate::store::sessions::{SessionFilter, SessionRow};
use crate::store::{Role, StoreError};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session, list_sessions))
        .routes(routes!(get_session))
        .routes(routes!(list_outbox))
}

/// The body of `POST /api/v1/sessions` (the same as the console's `create_session`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"method": "pin", "name": "Grace Hopper", "custom_fields": ["Router X2"],
    "tracking_id": "CRM-4711"}))]
pub struct SessionCreate {
    /// `pin`, `link`, `sms` or `email`, as the technician's group allows.
    #[schema(value_type = SessionMethod)]
    pub method: String,
    /// The guide's name field (by default the customer's name), up to 128 characters.
    #[serde(default)]
    pub name: String,
    /// Values of custom fields 1–5 (index 0 = custom field 1), as the group's settings require.
    #[serde(default)]
    pub custom_fields: Vec<String>,
    /// Up to 256 characters, for mapping sessions to a CRM.
    #[serde(default)]
    pub tracking_id: Option<String>,
    /// SMS: the customer's phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Email: the customer's address.
    #[serde(default)]
    pub email: Option<String>,
    /// Email: `servers` (sent by this server) or `default_client` (a `mailto:` link is returned).
    #[serde(default)]
    #[schema(value_type = Option<EmailVia>)]
    pub email_via: Option<String>,
}

/// How the customer gets the session (schema only: the body is parsed as the protocol's
/// `create_session`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum SessionMethod {
    Pin,
    Link,
    Sms,
    Email,
}

/// Who sends an email invitation (schema only, as [`SessionMethod`]).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum EmailVia {
    Servers,
    DefaultClient,
}

/// Create a Lens session (technicians). The PIN or link is valid for the group's private code
/// validity period and can be used once.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", security(("bearer" = [])),
    request_body = SessionCreate,
    responses((status = 201, description = "Created", body = Created), (status = 403, description = "Not a technician (`forbidden`), or the group does not allow the method (`method_not_allowed`)", body = ErrorBody),
              (status = 409, description = "The technician is in no technician group (`not_allowed`)", body = ErrorBody),
              (status = 422, description = "Validation failed: a field the group makes mandatory, a phone number or email address that does not parse", body = ErrorBody)))]
async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    if caller.user.role != Role::Technician {
        return Err(ApiError::forbidden("only technicians create sessions"));
    }
    let body: CreateSession = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            e.to_string(),
        )
    })?;
    // Several nodes: the session (and its room) goes to the least-loaded serving node.
    if let Some(router) = state.hub.router()
        && let Some(node) = crate::sessions::route::placement(&state).await
    {
        let body = serde_json::to_value(&body).unwrap_or_default();
        return match router.create_on(&node, caller.user.id, &body).await {
            Ok(created) => Ok((StatusCode::CREATED, Json(created))),
            Err(e) => Err(protocol_error(e)),
        };
    }
    match state.hub.create_session(&caller.user, &body, None).await {
        Ok(created) => Ok((StatusCode::CREATED, Json(created))),
        Err(e) => Err(protocol_error(e)),
    }
}

pub fn protocol_error(e: signaling::protocol::ProtocolError) -> ApiError {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, e.code.as_str(), e.message)
}

/// A session as the API shows it, with its history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionDetail {
    pub id: i64,
    pub status: String,
    pub method: String,
    pub created_by: i64,
    pub technician_id: Option<i64>,
    pub group_id: i64,
    pub name: String,
    pub custom_fields: Vec<String>,
    pub tracking_id: String,
    pub created_at: String,
    pub status_since: String,
    pub ended_at: Option<String>,
    pub code_expires_at: String,
    pub customer_ip: String,
    pub platform: String,
    pub device_model: String,
    pub app: String,
    pub browser: String,
    pub device_id: String,
    pub transmitted_bytes: i64,
    /// Every status change, in order (only on `GET /api/v1/sessions/{id}`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventView>,
    /// The chat, unless the group omits chat from storage (only on the single-session route).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chat: Vec<ChatView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<NoteView>,
    /// Durations and times computed from the events (only on the single-session route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<TimingsView>,
    /// How often the technicians used their tools on the live picture (only on the
    /// single-session route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolsView>,
    /// How each side's media reaches the server right now (only on the single-session route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportView>,
}

/// Uses of the technician's tools on the live picture, counted (strokes are never stored).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"annotation_strokes": 12, "annotation_clears": 2, "freezes": 1, "urls_sent": 1}))]
pub struct ToolsView {
    /// Pen and arrow strokes drawn over the video and relayed to the customer.
    pub annotation_strokes: i64,
    /// Times the drawing was cleared.
    pub annotation_clears: i64,
    /// Times the picture was frozen.
    pub freezes: i64,
    /// Links sent to the customer.
    pub urls_sent: i64,
}

/// The transport of each side's media, live from the media server: `udp` (straight to the media
/// port), `tcp` (ICE-TCP to the media TCP port) or `relay` (through a TURN server); `null` while
/// that side has no connected peer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"customer": "tcp", "technician": "udp"}))]
pub struct TransportView {
    pub customer: Option<String>,
    pub technician: Option<String>,
}

/// A session's timings, as Post-to-URL sends them (WaitingTime, PickupTime, ClosingTime, WorkTime).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"waiting_seconds": 42, "pickup_time": "2026-11-28T01:02:45Z",
    "closing_time": "2026-11-28T01:20:00Z", "work_seconds": 935, "hold_seconds": 100}))]
pub struct TimingsView {
    /// From the first entry into Waiting to the first entry into Active (absent: never picked up).
    pub waiting_seconds: Option<i64>,
    /// When the session first entered Active.
    pub pickup_time: Option<String>,
    /// When the session reached its final status.
    pub closing_time: Option<String>,
    /// Time spent Active (until now for a live session).
    pub work_seconds: i64,
    /// Time spent On Hold (until now for a live session).
    pub hold_seconds: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub at: String,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub actor_id: Option<i64>,
    pub reason: String,
    pub technician_id: Option<i64>,
    pub group_id: i64,
    pub detail: Option<serde_json::Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatView {
    pub at: String,
    pub from: String,
    pub name: String,
    pub text: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NoteView {
    pub at: String,
    pub technician_id: i64,
    pub text: String,
}

fn detail(r: &SessionRow) -> SessionDetail {
    SessionDetail {
        id: r.id,
        status: r.status.clone(),
        method: r.method.clone(),
        created_by: r.created_by,
        technician_id: r.technician_id,
        group_id: r.group_id,
        name: r.name.clone(),
        custom_fields: r.custom_fields.to_vec(),
        tracking_id: r.tracking_id.clone(),
        created_at: rfc3339(r.created_at),
        status_since: rfc3339(r.status_since),
        ended_at: r.ended_at.map(rfc3339),
        code_expires_at: rfc3339(r.code_expires_at),
        customer_ip: r.customer_ip.clone(),
        platform: r.device.platform.clone(),
        device_model: r.device.model.clone(),
        app: r.device.app.clone(),
        browser: r.device.browser.clone(),
        device_id: r.device.device_id.clone(),
        transmitted_bytes: r.transmitted_bytes,
        events: vec![],
        chat: vec![],
        notes: vec![],
        timings: None,
        tools: None,
        transport: None,
    }
}

/// Who may read a session: master administrators; administrators for sessions of groups they
/// manage; technicians for sessions they created or own.
async fn may_read(state: &AppState, caller: &Caller, r: &SessionRow) -> ApiResult<bool> {
    Ok(match caller.user.role {
        Role::MasterAdministrator => true,
        Role::Administrator => caller
            .scope(&load_org(state).await?)
            .manages_group(r.group_id),
        Role::Technician => {
            r.created_by == caller.user.id || r.technician_id == Some(caller.user.id)
        }
    })
}

/// A session with its events, chat and notes.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = SessionDetail), (status = 404, description = "Not found", body = ErrorBody)))]
async fn get_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<SessionDetail>> {
    // What the hub decided is in the store before it is read back.
    state.hub.flush().await;
    let row = match state.store.session(id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("session")),
        Err(e) => return Err(e.into()),
    };
    if !may_read(&state, &caller, &row).await? {
        return Err(ApiError::not_found("session"));
    }
    let mut d = detail(&row);
    let events = state.store.session_events(id).await?;
    let t = crate::sessions::timings::timings(&events, state.hub.now());
    d.timings = Some(TimingsView {
        waiting_seconds: t.waiting_seconds,
        pickup_time: t.pickup_at.map(rfc3339),
        closing_time: t.closing_at.map(rfc3339),
        work_seconds: t.work_seconds,
        hold_seconds: t.hold_seconds,
    });
    let c = state.store.tool_counts(id).await?;
    d.tools = Some(ToolsView {
        annotation_strokes: c.annotation_strokes,
        annotation_clears: c.annotation_clears,
        freezes: c.freezes,
        urls_sent: c.urls_sent,
    });
    let [customer, technician] = state.hub.media_transports(id);
    d.transport = Some(TransportView {
        customer: customer.map(str::to_owned),
        technician: technician.map(str::to_owned),
    });
    d.events = events
        .into_iter()
        .map(|e| EventView {
            at: rfc3339(e.at),
            from: e.from_status,
            to: e.to_status,
            actor: e.actor,
            actor_id: e.actor_id,
            reason: e.reason,
            technician_id: e.technician_id,
            group_id: e.group_id,
            detail: serde_json::from_str(&e.detail).ok(),
        })
        .collect();
    d.chat = state
        .store
        .chat_of(id)
        .await?
        .into_iter()
        .map(|c| ChatView {
            at: rfc3339(c.at),
            from: c.sender,
            name: c.name,
            text: c.text,
        })
        .collect();
    d.notes = state
        .store
        .notes_of(id)
        .await?
        .into_iter()
        .map(|(technician_id, at, text)| NoteView {
            at: rfc3339(at),
            technician_id,
            text,
        })
        .collect();
    Ok(Json(d))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A status as the guide names it, e.g. `Waiting` or `Closed by technician`.
    pub status: Option<String>,
    /// RFC 3339: sessions created at or after this time.
    pub from: Option<String>,
    /// RFC 3339: sessions created before this time.
    pub to: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

fn parse_time(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| {
                crate::error::invalid_parameter("query", format!("{field}: not an RFC 3339 time"))
            }),
    }
}

/// Sessions the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "OK", body = Vec<SessionDetail>), (status = 400, description = "Bad request", body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<SessionDetail>>> {
    if let Some(s) = &q.status
        && signaling::status::Status::parse(s).is_none()
    {
        return Err(crate::error::invalid_parameter(
            "query",
            format!("status: unknown status {s:?}"),
        ));
    }
    state.hub.flush().await;
    let mut filter = SessionFilter {
        status: q.status.clone(),
        from: parse_time("from", &q.from)?,
        to: parse_time("to", &q.to)?,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        ..SessionFilter::default()
    };
    match caller.user.role {
        Role::MasterAdministrator => {}
        Role::Administrator => {
            let org = load_org(&state).await?;
            let mut groups: Vec<i64> = org.managed_groups(caller.user.id).into_iter().collect();
            groups.sort_unstable();
            filter.groups = Some(groups);
        }
        Role::Technician => filter.technicians = Some(vec![caller.user.id]),
    }
    Ok(Json(
        state
            .store
            .sessions(&filter)
            .await?
            .iter()
            .map(detail)
            .collect(),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboxView {
    pub id: i64,
    /// `sms` or `email`.
    pub kind: String,
    pub session_id: Option<i64>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub provider: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_error: String,
    pub created_at: String,
    pub sent_at: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// `sms` or `email`.
    pub kind: Option<String>,
    pub session_id: Option<i64>,
    pub limit: Option<i64>,
}

/// The SMS and email outbox, newest first (master administrators). With the `log` SMS provider
/// this is where development SMS can be read.
#[utoipa::path(get, path = "/api/v1/outbox", tag = "sessions", security(("bearer" = [])), params(OutboxQuery),
    responses((status = 200, description = "OK", body = Vec<OutboxView>), (status = 403, description = "Forbidden", body = ErrorBody)))]
async fn list_outbox(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<OutboxQuery>,
) -> ApiResult<Json<Vec<OutboxView>>> {
    caller.require_master()?;
    if let Some(kind) = q.kind.as_deref()
        && !matches!(kind, "sms" | "email")
    {
        return Err(crate::error::invalid_parameter(
            "query",
            "kind: one of sms, email",
        ));
    }
    let rows = state
        .store
        .outbox(
            q.kind.as_deref(),
            q.session_id,
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| OutboxView {
                id: r.id,
                kind: r.kind,
                session_id: r.session_id,
                recipient: r.recipient,
                subject: r.subject,
                body: r.body,
                provider: r.provider,
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
                created_at: rfc3339(r.created_at),
                sent_at: r.sent_at.map(rfc3339),
            })
            .collect(),
    ))
}
