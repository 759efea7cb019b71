//! The node registry (issue 15): which `lens serve` processes share the store, and draining one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{Caller, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::store::StoreError;
use crate::store::nodes::NodeRow;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_nodes))
        .routes(routes!(drain_node))
}

/// One node: a `lens serve` on the store.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "relay-1-8080", "epoch": 3, "internal_url": "http://10.0.0.11:8080",
    "media_address": "203.0.113.11", "udp_port": 3478, "tcp_port": 3478, "state": "serving",
    "load": 12, "started_at": "2026-12-06T08:00:00Z", "heartbeat_at": "2026-12-06T09:30:02Z",
    "this_node": true}))]
pub struct NodeView {
    pub id: String,
    /// Starts of this node id so far; a later start fences off an earlier process.
    pub epoch: i64,
    /// Where the other nodes reach its HTTP API.
    pub internal_url: String,
    /// The address its ICE candidates carry, and its media ports.
    pub media_address: String,
    pub udp_port: i64,
    pub tcp_port: Option<i64>,
    /// `serving`, `draining` (no new sessions; exits once empty), or `dead` (no heartbeat for
    /// 10 s: stopped or unreachable).
    pub state: String,
    /// Live sessions it holds.
    pub load: i64,
    pub started_at: String,
    pub heartbeat_at: String,
    /// The node that answered this request.
    pub this_node: bool,
}

fn view(state: &AppState, n: NodeRow) -> NodeView {
    NodeView {
        state: if n.alive() {
            n.state.clone()
        } else {
            "dead".into()
        },
        this_node: n.id == state.node.id,
        epoch: n.epoch,
        internal_url: n.internal_url,
        media_address: n.media_address,
        udp_port: n.udp_port,
        tcp_port: n.tcp_port,
        load: n.load,
        started_at: rfc3339(n.started_at),
        heartbeat_at: rfc3339(n.heartbeat_at),
        id: n.id,
    }
}

/// The nodes sharing the store (master administrators). With SQLite there is one.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "ops", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = Vec<NodeView>), (status = 403, description = "Forbidden", body = ErrorBody)))]
async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<NodeView>>> {
    caller.require_master()?;
    let nodes = state.store.nodes().await?;
    Ok(Json(nodes.into_iter().map(|n| view(&state, n)).collect()))
}

/// Drains a node (master administrators): it takes no new sessions, `/healthz` answers 503
/// `draining` (load balancers stop sending it new connections), and the process exits once it
/// holds no live session or after `cluster.drain_limit_seconds`. Any node may be asked; the
/// target sees the request at its next heartbeat (2 s).
#[utoipa::path(post, path = "/api/v1/nodes/{id}/drain", tag = "ops", security(("bearer" = [])),
    params(("id" = String, Path, description = "The node id")),
    responses((status = 202, description = "Draining", body = NodeView),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "`node_dead`: the node has no heartbeat; there is nothing to drain", body = ErrorBody)))]
async fn drain_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<NodeView>)> {
    caller.require_master()?;
    match state.store.request_drain(&id).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(ApiError::not_found("node")),
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "node_dead",
                format!("node {id} has no heartbeat: it is stopped or unreachable"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if id == state.node.id {
        state.node.start_drain("asked through the API");
    }
    tracing::warn!(node_id = %id, by = caller.user.id, "drain requested");
    let node = state.store.node(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&state, node))))
}
