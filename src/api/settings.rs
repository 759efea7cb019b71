//! Technician group settings (the guide's Settings tab) and Global Settings (master administrators).
//!
//! Group settings: *save changes* (`apply=group`), *save changes to subgroups* (`apply=subgroups`:
//! this group and every group below it) and *save settings to all groups* (`apply=all`: every
//! technician group the caller manages — for a master administrator, every group). Each group that
//! changes gets its own audit rows. Secrets (credentials in URLs) are never returned in clear: the
//! API shows them masked, and a masked value sent back keeps the stored secret.

use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::audit_entry;
use super::{Caller, ClientAddr, load_org};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::settings::FieldChange;
use crate::settings::global::{
    ApiSection, GlobalSettings, GlobalSettingsUpdate, GlobalSettingsView,
};
use crate::settings::group::TechnicianGroupSettings;
use crate::store::{self, AuditEntry, ChangeType, GroupKind, Store, StoreError, Tx};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_group_settings, put_group_settings))
        .routes(routes!(get_global_settings, put_global_settings))
}

/// A group's settings; a group without a stored document (none, normally) has the defaults.
pub async fn load_group(store: &Store, group_id: i64) -> ApiResult<TechnicianGroupSettings> {
    match store.group_settings_json(group_id).await? {
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            ApiError::internal(format!(
                "stored settings of group {group_id} do not parse: {e}"
            ))
        }),
        None => Ok(TechnicianGroupSettings::default()),
    }
}

pub async fn store_group(
    tx: &mut Tx,
    group_id: i64,
    settings: &TechnicianGroupSettings,
) -> ApiResult<()> {
    let json = serde_json::to_string(settings).map_err(ApiError::internal)?;
    store::settings::put_group_settings(tx, group_id, &json).await?;
    Ok(())
}

pub async fn load_global(store: &Store) -> Result<GlobalSettings, StoreError> {
    match store.global_settings_json().await? {
        Some(json) => serde_json::from_str(&json)
            .and_then(GlobalSettings::from_storage_json)
            .map_err(|_| StoreError::Conflict("stored global settings do not parse")),
        None => Ok(GlobalSettings::default()),
    }
}

fn audit_rows(base: &AuditEntry, changes: Vec<FieldChange>) -> Vec<AuditEntry> {
    changes
        .into_iter()
        .map(|c| AuditEntry {
            section: c.section,
            field: c.field,
            old_value: c.old_value,
            old_action: c.old_action,
            new_value: c.new_value,
            new_action: c.new_action,
            ..base.clone()
        })
        .collect()
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplyTo {
    /// Save changes: this group only.
    #[default]
    Group,
    /// Save changes to subgroups: this group and all groups below it.
    Subgroups,
    /// Save settings to all groups (that the caller manages).
    All,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    #[param(inline)]
    pub apply: Option<ApplyTo>,
}

/// A technician group's settings, secrets masked.
#[utoipa::path(get, path = "/api/v1/technician-groups/{id}/settings", tag = "settings",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = TechnicianGroupSettings), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn get_group_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<TechnicianGroupSettings>> {
    caller.require_admin()?;
    let org = load_org(&state).await?;
    let managed = org
        .group(id)
        .is_some_and(|g| g.kind == GroupKind::TechnicianGroup)
        && caller.scope(&org).manages_group(id);
    if !managed {
        return Err(ApiError::not_found("technician group"));
    }
    Ok(Json(load_group(&state.store, id).await?.masked()))
}

/// Replace a technician group's settings (the whole document), optionally for its subgroups or for
/// all groups. Returns the saved settings of the addressed group, secrets masked.
#[utoipa::path(put, path = "/api/v1/technician-groups/{id}/settings", tag = "settings",
    security(("bearer" = [])), params(("id" = i64, Path), ApplyQuery), request_body = TechnicianGroupSettings,
    responses((status = 200, description = "OK", body = TechnicianGroupSettings), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
              (status = 422, description = "Validation failed", body = ErrorBody)))]
async fn put_group_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<ApplyQuery>,
    Json(mut incoming): Json<TechnicianGroupSettings>,
) -> ApiResult<Json<TechnicianGroupSettings>> {
    caller.require_admin()?;
    let org = load_org(&state).await?;
    let scope = caller.scope(&org);
    let group = org
        .group(id)
        .filter(|g| g.kind == GroupKind::TechnicianGroup && scope.manages_group(g.id))
        .ok_or_else(|| ApiError::not_found("technician group"))?
        .clone();
    // Secrets sent back masked mean "keep what is stored" for the addressed group.
    let current = load_group(&state.store, id).await?;
    incoming.merge_secrets(&current);
    incoming
        .validate()
        .map_err(|e| ApiError::invalid(&e.field, &e.message))?;
    // The form is checked above; here, whether this server can record there (a network path
    // needs the folder where shares are mounted).
    if let Some(loc) = incoming.screen_recording.location.as_deref() {
        crate::recorder::parse_location(&state.config, loc)
            .map_err(|e| ApiError::invalid("screen_recording.location", e))?;
    }
    let targets: Vec<i64> = match q.apply.unwrap_or_default() {
        ApplyTo::Group => vec![id],
        ApplyTo::Subgroups => {
            let mut ids: Vec<i64> = org.subtree(id).into_iter().collect();
            ids.sort_unstable();
            ids
        }
        ApplyTo::All => org
            .groups
            .iter()
            .filter(|g| g.kind == GroupKind::TechnicianGroup && scope.manages_group(g.id))
            .map(|g| g.id)
            .collect(),
    };
    let mut tx = state.store.begin().await?;
    for target in targets {
        let Some(g) = org.group(target) else { continue };
        let old = load_group(&state.store, target).await?;
        let changes = old.diff(&incoming);
        if changes.is_empty() {
            continue;
        }
        store_group(&mut tx, target, &incoming).await?;
        let base = audit_entry(
            &caller.user,
            "Technician Group",
            target,
            &g.name,
            ChangeType::Change,
        );
        for row in audit_rows(&base, changes) {
            store::audit::append(&mut tx, &row).await?;
        }
    }
    tx.commit().await?;
    tracing::info!(group_id = group.id, by = caller.user.id, apply = ?q.apply, "group settings saved");
    Ok(Json(load_group(&state.store, id).await?.masked()))
}

/// Global Settings (master administrators only). The master SSO password is never returned.
#[utoipa::path(get, path = "/api/v1/global-settings", tag = "settings", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = GlobalSettingsView), (status = 403, description = "Forbidden", body = ErrorBody)))]
async fn get_global_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<GlobalSettingsView>> {
    caller.require_master()?;
    let mut view = load_global(&state.store).await?.view();
    view.api = Some(api_section(&state).await?);
    Ok(Json(view))
}

/// The company ID and a sample SSO request, as Global Settings shows them.
async fn api_section(state: &AppState) -> ApiResult<ApiSection> {
    let company_id = state.store.company_id().await?;
    let sso_url = format!("{}/SSO/GetLoginTicket.aspx", state.config.public_url());
    Ok(ApiSection {
        company_id,
        sample_request: format!(
            "{sso_url}?ssoid=123456&Password=secretPassword&CompanyID={company_id}"
        ),
        sso_url,
    })
}

/// Replace Global Settings (master administrators only). A change that would lock the caller out
/// (its own address denied by the global IP restrictions) is refused with 409 `would_lock_out`.
#[utoipa::path(put, path = "/api/v1/global-settings", tag = "settings", security(("bearer" = [])),
    request_body = GlobalSettingsUpdate,
    responses((status = 200, description = "OK", body = GlobalSettingsView), (status = 403, description = "Forbidden", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody),
              (status = 422, description = "Validation failed", body = ErrorBody)))]
async fn put_global_settings(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(addr): ClientAddr,
    Json(update): Json<GlobalSettingsUpdate>,
) -> ApiResult<Json<GlobalSettingsView>> {
    caller.require_master()?;
    let old = load_global(&state.store).await?;
    // Argon2 runs on the blocking pool before `apply`, which takes a synchronous hasher.
    let new_hash = match update.single_sign_on.new_password() {
        Some(pw) => Some(crate::auth::hash_password(pw.to_string()).await?),
        None => None,
    };
    let new = update
        .apply(&old, |_| new_hash.unwrap_or_default())
        .map_err(|e| ApiError::invalid(&e.field, &e.message))?;
    if !new.ip_restrictions.allows(addr) {
        return Err(ApiError::conflict(
            "would_lock_out",
            format!(
                "these IP restrictions would deny your own address {addr}; add an exception for it first"
            ),
        ));
    }
    let changes = old.diff(&new);
    if !changes.is_empty() {
        let json = new.to_storage_json().to_string();
        let mut tx = state.store.begin().await?;
        store::settings::put_global_settings(&mut tx, &json).await?;
        // Company-level changes: the entity is the company (id 0), as the guide's note describes.
        let base = audit_entry(
            &caller.user,
            "Company",
            0,
            "Global Settings",
            ChangeType::Change,
        );
        for row in audit_rows(&base, changes) {
            store::audit::append(&mut tx, &row).await?;
        }
        tx.commit().await?;
        state.reload_global().await?;
    }
    let mut view = new.view();
    view.api = Some(api_section(&state).await?);
    Ok(Json(view))
}
