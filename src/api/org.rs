//! `GET /api/v1/org`: the organization tree, fit to draw, with optional search.

use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Caller, load_org};
use crate::app::AppState;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::org::OrgTree;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(tree))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TreeQuery {
    /// Keep only nodes whose name or email contains this text (case-insensitive), with their
    /// ancestors.
    pub q: Option<String>,
}

/// The organization tree: Master Administrators, Administrators (groups nest) and Technicians
/// (groups nest). Administrators see only the technician groups they manage.
#[utoipa::path(get, path = "/api/v1/org", tag = "org", security(("bearer" = [])), params(TreeQuery),
    responses((status = 200, description = "OK", body = OrgTree), (status = 401, description = "Not logged in or token invalid", body = ErrorBody), (status = 403, description = "Forbidden", body = ErrorBody)))]
async fn tree(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TreeQuery>,
) -> ApiResult<Json<OrgTree>> {
    caller.require_admin()?;
    let org = load_org(&state).await?;
    Ok(Json(org.tree(&caller.user, q.q.as_deref())))
}
