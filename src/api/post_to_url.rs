//! Post-to-URL through the API: the deliveries with their outcome, and each technician group's
//! signing secret (the URL, triggers and format are part of the group's settings).

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::audit_entry;
use super::{Caller, Scope, load_org, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::settings::mask_url_credentials;
use crate::store::integrations::{DeliveryFilter, delete_post_secret, put_post_secret};
use crate::store::{AuditEntry, ChangeType, GroupKind, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_secret, rotate_secret, delete_secret))
}

/// One Post-to-URL delivery and how it went.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 12, "session_id": 1042, "group_id": 3, "technician_id": 7,
    "trigger": "ended", "url": "https://crm:********@crm.example.com/lens", "format": "xml",
    "status": "sent", "attempts": 2, "last_status_code": 200, "last_error": "",
    "idempotency_key": "5f0c6f1f8e0a4d6c9b3e2a1d0c9b8a7f", "signed": true,
    "created_at": "2026-11-28T01:02:03Z", "sent_at": "2026-11-28T01:02:09Z", "next_attempt_at": null,
    "body": "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<session><sessionid>1042</sessionid>…</session>\n"}))]
pub struct DeliveryView {
    pub id: i64,
    pub session_id: i64,
    pub group_id: i64,
    pub technician_id: Option<i64>,
    /// `each_active`, `first_active`, `ended`, `suspended` or `console_refreshed_or_closed`.
    pub trigger: String,
    /// The URL, its password masked.
    pub url: String,
    /// `html_form` or `xml`.
    pub format: String,
    /// `pending` (not yet delivered; retried with back-off), `sent` (the receiver answered 2xx) or
    /// `failed` (given up after the configured number of attempts).
    pub status: String,
    pub attempts: i64,
    /// The HTTP status of the last answer (none: no answer, e.g. refused or timed out).
    pub last_status_code: Option<i64>,
    pub last_error: String,
    /// Sent as `Idempotency-Key`; the same on every attempt of this delivery.
    pub idempotency_key: String,
    /// Whether the delivery carries `X-Lens-Signature` (the group had a secret).
    pub signed: bool,
    pub created_at: String,
    pub sent_at: Option<String>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<String>,
    /// The posted body (form-encoded or XML).
    pub body: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    pub session_id: Option<i64>,
    /// `pending`, `sent` or `failed`.
    pub status: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Post-to-URL deliveries, newest first: master administrators see all, administrators those of
/// the technician groups they manage.
#[utoipa::path(get, path = "/api/v1/post-deliveries", tag = "integrations", security(("bearer" = [])),
    params(DeliveryQuery),
    responses((status = 200, description = "OK", body = Vec<DeliveryView>), (status = 400, description = "Bad request", body = ErrorBody),
              (status = 403, description = "Forbidden", body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    caller.require_admin()?;
    if let Some(s) = &q.status
        && !matches!(s.as_str(), "pending" | "sent" | "failed")
    {
        return Err(crate::error::invalid_parameter(
            "query",
            "status: one of pending, sent, failed",
        ));
    }
    let groups = match caller.scope(&load_org(&state).await?) {
        Scope::Everything => None,
        Scope::TechnicianGroups(set) => {
            let mut ids: Vec<i64> = set.into_iter().collect();
            ids.sort_unstable();
            Some(ids)
        }
    };
    let rows = state
        .store
        .post_deliveries(&DeliveryFilter {
            session_id: q.session_id,
            status: q.status.clone(),
            groups,
            limit: q.limit.unwrap_or(100).clamp(1, 1000),
        })
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                session_id: d.session_id,
                group_id: d.group_id,
                technician_id: d.technician_id,
                trigger: d.trigger,
                url: mask_url_credentials(&d.url),
                format: d.format,
                next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
                status: d.status,
                attempts: d.attempts,
                last_status_code: d.last_status_code,
                last_error: d.last_error,
                idempotency_key: d.idempotency_key,
                signed: !d.signature.is_empty(),
                created_at: rfc3339(d.created_at),
                sent_at: d.sent_at.map(rfc3339),
                body: d.body,
            })
            .collect(),
    ))
}

/// Whether a group signs its deliveries.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecretState {
    pub set: bool,
    pub created_at: Option<String>,
}

/// A new signing secret: shown once, here.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"secret": "q3Jm0c1V9y8n2b7x6Lk5Hs4Td3Fa2We1Zr0Pq9Oi8Uy", "created_at": "2026-11-28T01:00:00Z"}))]
pub struct NewSecret {
    /// The receiver checks `X-Lens-Signature: sha256=<hex HMAC-SHA256 of the body with this secret>`.
    pub secret: String,
    pub created_at: String,
}

/// A technician group the caller manages, by id (its name, for the audit log).
async fn managed_group(state: &AppState, caller: &Caller, id: i64) -> ApiResult<String> {
    caller.require_admin()?;
    let org = load_org(state).await?;
    org.group(id)
        .filter(|g| g.kind == GroupKind::TechnicianGroup && caller.scope(&org).manages_group(g.id))
        .map(|g| g.name.clone())
        .ok_or_else(|| ApiError::not_found("technician group"))
}

/// Whether the group's Post-to-URL deliveries are signed (the secret itself is never shown again).
#[utoipa::path(get, path = "/api/v1/technician-groups/{id}/post-to-url/secret", tag = "integrations",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = SecretState), (status = 404, description = "Not found", body = ErrorBody)))]
async fn get_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<SecretState>> {
    managed_group(&state, &caller, id).await?;
    let secret = state.store.post_secret(id).await?;
    Ok(Json(SecretState {
        set: secret.is_some(),
        created_at: secret.map(|(_, at)| rfc3339(at)),
    }))
}

fn secret_audit(caller: &Caller, id: i64, name: &str, old: bool, new: bool) -> AuditEntry {
    let set = |b: bool| Some(if b { "Set" } else { "Not set" }.to_string());
    AuditEntry {
        section: "Exporting session data".into(),
        field: "Post to URL signing secret".into(),
        old_action: set(old),
        new_action: set(new),
        ..audit_entry(
            &caller.user,
            "Technician Group",
            id,
            name,
            ChangeType::Change,
        )
    }
}

/// Create or replace the group's signing secret; the answer is the only time it is shown.
#[utoipa::path(post, path = "/api/v1/technician-groups/{id}/post-to-url/secret", tag = "integrations",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 201, description = "Created", body = NewSecret), (status = 404, description = "Not found", body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<NewSecret>)> {
    let name = managed_group(&state, &caller, id).await?;
    let had = state.store.post_secret(id).await?.is_some();
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    put_post_secret(&mut tx, id, &secret, now).await?;
    crate::store::audit::append(&mut tx, &secret_audit(&caller, id, &name, had, true)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(NewSecret {
            secret,
            created_at: rfc3339(now),
        }),
    ))
}

/// Remove the group's signing secret: deliveries are no longer signed.
#[utoipa::path(delete, path = "/api/v1/technician-groups/{id}/post-to-url/secret", tag = "integrations",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204, description = "No Content"), (status = 404, description = "Not found", body = ErrorBody)))]
async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let name = managed_group(&state, &caller, id).await?;
    let mut tx = state.store.begin().await?;
    if delete_post_secret(&mut tx, id).await? {
        crate::store::audit::append(&mut tx, &secret_audit(&caller, id, &name, true, false))
            .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
