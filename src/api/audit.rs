//! `GET /api/v1/audit`: the raw audit log (the Audit report with its formats comes with reports).

use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Caller;
use crate::app::AppState;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::store::AuditRow;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The guide's entity type, e.g. `Technician Group`; with `entity_id`.
    pub entity_type: Option<String>,
    pub entity_id: Option<i64>,
    /// Only changes made by this administrator.
    pub requested_by: Option<i64>,
    /// At most this many rows, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Audit log rows, newest first (master administrators).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "OK", body = Vec<AuditRow>), (status = 401, description = "Not logged in or token invalid", body = ErrorBody), (status = 403, description = "Forbidden", body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditRow>>> {
    caller.require_master()?;
    let entity = match (&q.entity_type, q.entity_id) {
        (Some(t), Some(id)) => Some((t.as_str(), id)),
        _ => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        state.store.audit(entity, q.requested_by, limit).await?,
    ))
}
