//! API keys for apps that embed the customer side (Global Settings → API Key → Manage API keys):
//! master administrators create, edit and disable them; every change is audited.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::audit_entry;
use super::{Caller, check_text, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::integrations::api_keys::{new_key, valid_app_id};
use crate::store::integrations::{ApiKey, insert_api_key, update_api_key};
use crate::store::{AuditEntry, ChangeType, StoreError, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, update_key))
}

const ENTITY: &str = "API Key";

/// An API key as listed (the key itself is shown only when it is created).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 3, "key_prefix": "lk_Qm9vVG", "app_id": "com.example.lens",
    "description": "Android app", "enabled": true, "use_count": 42,
    "last_used_at": "2026-11-28T01:02:03Z", "created_by": 1, "created_at": "2026-11-01T09:00:00Z",
    "updated_at": "2026-11-01T09:00:00Z"}))]
pub struct ApiKeyView {
    pub id: i64,
    /// The first characters of the key, to tell keys apart.
    pub key_prefix: String,
    /// The app's unique identifier: Android package name or iOS bundle ID.
    pub app_id: String,
    pub description: String,
    pub enabled: bool,
    /// Customer joins that presented this key.
    pub use_count: i64,
    pub last_used_at: Option<String>,
    pub created_by: i64,
    pub created_at: String,
    pub updated_at: String,
}

fn view(k: &ApiKey) -> ApiKeyView {
    ApiKeyView {
        id: k.id,
        key_prefix: k.key_prefix.clone(),
        app_id: k.app_id.clone(),
        description: k.description.clone(),
        enabled: k.enabled,
        use_count: k.use_count,
        last_used_at: k.last_used_at.map(rfc3339),
        created_by: k.created_by,
        created_at: rfc3339(k.created_at),
        updated_at: rfc3339(k.updated_at),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"app_id": "com.example.lens", "description": "Android app"}))]
pub struct ApiKeyCreate {
    /// Android package name or iOS bundle ID (letters, digits, `.`, `_`, `-`; up to 128).
    pub app_id: String,
    #[serde(default)]
    pub description: String,
}

/// The created key: `key` is shown this once (only its hash is stored).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyCreated {
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKeyView,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub struct ApiKeyUpdate {
    pub app_id: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

fn check_app_id(app_id: &str) -> ApiResult<()> {
    if valid_app_id(app_id) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "app_id",
            "an Android package name or iOS bundle ID: 1 to 128 letters, digits, `.`, `_` or `-`",
        ))
    }
}

/// Every API key (master administrators).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = Vec<ApiKeyView>), (status = 403, description = "Forbidden", body = ErrorBody)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApiKeyView>>> {
    caller.require_master()?;
    Ok(Json(
        state.store.api_keys().await?.iter().map(view).collect(),
    ))
}

/// One API key (master administrators).
#[utoipa::path(get, path = "/api/v1/api-keys/{id}", tag = "integrations", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = ApiKeyView), (status = 404, description = "Not found", body = ErrorBody)))]
async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<ApiKeyView>> {
    caller.require_master()?;
    Ok(Json(view(&find(&state, id).await?)))
}

async fn find(state: &AppState, id: i64) -> ApiResult<ApiKey> {
    match state.store.api_key(id).await {
        Ok(k) => Ok(k),
        Err(StoreError::NotFound) => Err(ApiError::not_found("API key")),
        Err(e) => Err(e.into()),
    }
}

fn audit(caller: &Caller, k: &ApiKey, change: ChangeType) -> AuditEntry {
    AuditEntry {
        section: "API Key".into(),
        ..audit_entry(&caller.user, ENTITY, k.id, &k.app_id, change)
    }
}

/// Create an API key for an app (master administrators). The answer is the only time the key is
/// shown.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "integrations", security(("bearer" = [])),
    request_body = ApiKeyCreate,
    responses((status = 201, description = "Created", body = ApiKeyCreated), (status = 403, description = "Forbidden", body = ErrorBody),
              (status = 422, description = "Validation failed", body = ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ApiKeyCreate>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    caller.require_master()?;
    let app_id = body.app_id.trim().to_string();
    check_app_id(&app_id)?;
    check_text("description", &body.description, false, 256)?;
    let (key, hash, prefix) = new_key();
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    let id = insert_api_key(
        &mut tx,
        &hash,
        &prefix,
        &app_id,
        body.description.trim(),
        caller.user.id,
        now,
    )
    .await?;
    let created = ApiKey {
        id,
        key_prefix: prefix,
        app_id: app_id.clone(),
        description: body.description.trim().to_string(),
        enabled: true,
        use_count: 0,
        last_used_at: None,
        created_by: caller.user.id,
        created_at: now,
        updated_at: now,
    };
    let rows = [
        ("App identifier", None, Some(app_id)),
        ("Description", None, Some(created.description.clone())),
    ];
    for (field, old, new) in rows {
        crate::store::audit::append(
            &mut tx,
            &AuditEntry {
                field: field.into(),
                old_value: old,
                new_value: new,
                new_action: Some("Added".into()),
                ..audit(&caller, &created, ChangeType::Add)
            },
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(api_key = id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key,
            api_key: view(&created),
        }),
    ))
}

/// Edit or disable an API key (master administrators); takes effect at the next join.
#[utoipa::path(patch, path = "/api/v1/api-keys/{id}", tag = "integrations", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ApiKeyUpdate,
    responses((status = 200, description = "OK", body = ApiKeyView), (status = 404, description = "Not found", body = ErrorBody),
              (status = 422, description = "Validation failed", body = ErrorBody)))]
async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<ApiKeyUpdate>,
) -> ApiResult<Json<ApiKeyView>> {
    caller.require_master()?;
    let old = find(&state, id).await?;
    let mut new = old.clone();
    if let Some(a) = &body.app_id {
        new.app_id = a.trim().to_string();
        check_app_id(&new.app_id)?;
    }
    if let Some(d) = &body.description {
        check_text("description", d, false, 256)?;
        new.description = d.trim().to_string();
    }
    if let Some(e) = body.enabled {
        new.enabled = e;
    }
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    update_api_key(&mut tx, &new, now).await?;
    let enabled = |b: bool| Some(if b { "Enabled" } else { "Disabled" }.to_string());
    let mut changes: Vec<AuditEntry> = Vec::new();
    for (field, o, n) in [
        ("App identifier", &old.app_id, &new.app_id),
        ("Description", &old.description, &new.description),
    ] {
        if o != n {
            changes.push(AuditEntry {
                field: field.into(),
                old_value: Some(o.clone()),
                new_value: Some(n.clone()),
                ..audit(&caller, &new, ChangeType::Change)
            });
        }
    }
    if old.enabled != new.enabled {
        changes.push(AuditEntry {
            field: "Enabled".into(),
            old_action: enabled(old.enabled),
            new_action: enabled(new.enabled),
            ..audit(&caller, &new, ChangeType::Change)
        });
    }
    for c in &changes {
        crate::store::audit::append(&mut tx, c).await?;
    }
    tx.commit().await?;
    new.updated_at = now;
    Ok(Json(view(&new)))
}
