//! Per-user API tokens for integrations (the CRM API): a user creates named, long-lived bearer
//! tokens for its scripts, lists and revokes them. A token acts as its user on every route; only
//! its SHA-256 is stored, as for login tokens.

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::audit_entry;
use super::{Caller, check_text, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::store::integrations::ApiToken;
use crate::store::{AuditEntry, ChangeType, StoreError, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// API tokens start with this, so that they can be told from login tokens at a glance.
pub const PREFIX: &str = "lt_";

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 5, "name": "CRM sync", "token_prefix": "lt_Xb91kQ", "user_id": 7,
    "created_at": "2026-11-28T01:00:00Z", "expires_at": null, "last_used_at": "2026-11-28T02:00:00Z",
    "revoked_at": null}))]
pub struct ApiTokenView {
    pub id: i64,
    pub name: String,
    /// The first characters of the token, to tell tokens apart.
    pub token_prefix: String,
    pub user_id: i64,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

fn view(t: &ApiToken) -> ApiTokenView {
    ApiTokenView {
        id: t.id,
        name: t.name.clone(),
        token_prefix: t.token_prefix.clone(),
        user_id: t.user_id,
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        last_used_at: t.last_used_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CRM sync", "expires_at": "2027-11-28T00:00:00Z"}))]
pub struct ApiTokenCreate {
    /// What the token is for, up to 128 characters.
    pub name: String,
    /// RFC 3339; absent: the token lives until it is revoked.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The new token: `token` is shown this once. Use it as `Authorization: Bearer <token>`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiTokenCreated {
    pub token: String,
    #[serde(flatten)]
    pub api_token: ApiTokenView,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Master administrators: the tokens of this user (default: one's own).
    pub user_id: Option<i64>,
}

/// The caller's API tokens (master administrators: any user's, with `user_id`), newest first.
#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "integrations", security(("bearer" = [])),
    params(TokenQuery),
    responses((status = 200, description = "OK", body = Vec<ApiTokenView>), (status = 403, description = "Forbidden", body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Json<Vec<ApiTokenView>>> {
    let user = match q.user_id {
        Some(u) if u != caller.user.id => {
            caller.require_master()?;
            u
        }
        _ => caller.user.id,
    };
    let tokens = state.store.api_tokens(Some(user)).await?;
    Ok(Json(tokens.iter().map(view).collect()))
}

fn audit(caller: &Caller, t: &ApiToken, change: ChangeType, added: bool) -> AuditEntry {
    let action = if added { "Added" } else { "Removed" };
    AuditEntry {
        section: "API tokens".into(),
        field: format!("API token of user {}", t.user_id),
        old_value: (!added).then(|| t.name.clone()),
        old_action: (!added).then(|| "Set".to_string()),
        new_value: added.then(|| t.name.clone()),
        new_action: Some(action.to_string()),
        ..audit_entry(&caller.user, "API Token", t.id, &t.name, change)
    }
}

/// Create an API token for oneself.
#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "integrations", security(("bearer" = [])),
    request_body = ApiTokenCreate,
    responses((status = 201, description = "Created", body = ApiTokenCreated),
              (status = 409, description = "`expires_at` has passed (`already_expired`)", body = ErrorBody),
              (status = 422, description = "Validation failed", body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ApiTokenCreate>,
) -> ApiResult<(StatusCode, Json<ApiTokenCreated>)> {
    check_text("name", &body.name, true, 128)?;
    let now = now_ms();
    let expires_at = match &body.expires_at {
        None => None,
        Some(s) => {
            let at = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| ApiError::invalid("expires_at", "not an RFC 3339 time"))?
                .timestamp_millis();
            // A well-formed time that has passed: a conflict with the clock, not a bad body.
            if at <= now {
                return Err(ApiError::conflict(
                    "already_expired",
                    "expires_at: must be in the future",
                ));
            }
            Some(at)
        }
    };
    let bytes: [u8; 32] = rand::random();
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let prefix: String = token.chars().take(10).collect();
    let name = body.name.trim().to_string();
    let id = state
        .store
        .insert_api_token(
            &crate::auth::token_hash(&token),
            &prefix,
            caller.user.id,
            &name,
            now,
            expires_at,
        )
        .await?;
    let created = state.store.api_token(id).await?;
    let mut tx = state.store.begin().await?;
    crate::store::audit::append(&mut tx, &audit(&caller, &created, ChangeType::Add, true)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiTokenCreated {
            token,
            api_token: view(&created),
        }),
    ))
}

/// Revoke an API token: one's own, or anyone's for master administrators.
#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "integrations", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204, description = "No Content"), (status = 404, description = "Not found", body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let token = match state.store.api_token(id).await {
        Ok(t) if t.user_id == caller.user.id || caller.is_master() => t,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::not_found("API token")),
        Err(e) => return Err(e.into()),
    };
    if state.store.revoke_api_token(id, now_ms()).await? {
        let mut tx = state.store.begin().await?;
        crate::store::audit::append(&mut tx, &audit(&caller, &token, ChangeType::Delete, false))
            .await?;
        tx.commit().await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
