//! What the technician console needs to draw its forms: the create-session form of the
//! technician's group (allowed connection methods, the name field and custom fields as Global
//! Settings name them and the group configures them) and the transfer targets.

use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::settings::{load_global, load_group};
use super::{Caller, load_org};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::settings::group::CustomFieldKind;
use crate::store::{GroupKind, Role};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session_form))
        .routes(routes!(transfer_targets))
}

/// One custom field of the create-session form.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FormField {
    /// 1–5: the value goes to `custom_fields[index - 1]`.
    pub index: usize,
    /// The field's name from Global Settings.
    pub label: String,
    pub mandatory: bool,
    pub kind: CustomFieldKind,
    /// Drop-down fields: the allowed values.
    pub choices: Vec<String>,
}

/// The create-session form of the caller's technician group.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionForm {
    pub group_id: i64,
    /// Allowed connection methods, in the guide's order: `pin`, `link`, `sms`, `email`.
    pub methods: Vec<String>,
    /// For `email`: `servers` and/or `default_client`.
    pub email_via: Vec<String>,
    /// The name field's label (Global Settings).
    pub name_label: String,
    /// The enabled custom fields only.
    pub custom_fields: Vec<FormField>,
    /// Whether the group's sessions carry VoIP audio.
    pub audio: bool,
}

/// The create-session form of the caller's group (technicians).
#[utoipa::path(get, path = "/api/v1/console/session-form", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = SessionForm), (status = 403, description = "Not a technician", body = ErrorBody)))]
async fn session_form(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SessionForm>> {
    let group_id = technician_group(&caller)?;
    let group = load_group(&state.store, group_id).await?;
    let names = load_global(&state.store).await?.custom_field_names;
    let m = &group.connection_methods;
    let methods = [
        ("pin", m.pin_code),
        ("link", m.link),
        ("sms", m.sms),
        ("email", m.email_via_servers || m.email_via_default_client),
    ];
    let via = [
        ("servers", m.email_via_servers),
        ("default_client", m.email_via_default_client),
    ];
    let custom_fields = group
        .custom_fields
        .iter()
        .zip(names.custom_fields.iter())
        .enumerate()
        .filter(|(_, (field, _))| field.enabled)
        .map(|(i, (field, label))| FormField {
            index: i + 1,
            label: label.clone(),
            mandatory: field.mandatory,
            kind: field.kind,
            choices: field.choices.clone(),
        })
        .collect();
    Ok(Json(SessionForm {
        group_id,
        methods: allowed(&methods),
        email_via: allowed(&via),
        name_label: names.name_field,
        custom_fields,
        audio: group.audio.enabled,
    }))
}

fn allowed(options: &[(&str, bool)]) -> Vec<String> {
    options
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

fn technician_group(caller: &Caller) -> ApiResult<i64> {
    match (caller.user.role, caller.user.group_id) {
        (Role::Technician, Some(group)) => Ok(group),
        _ => Err(ApiError::forbidden("only technicians use the console")),
    }
}

/// A technician or technician group a session can be transferred to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TransferTarget {
    pub id: i64,
    pub name: String,
    /// Technicians: their technician group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TransferTargets {
    /// Enabled technicians other than the caller, by name.
    pub technicians: Vec<TransferTarget>,
    /// Enabled technician groups, by name.
    pub groups: Vec<TransferTarget>,
}

/// Where the caller may transfer a session: every enabled technician and technician group.
#[utoipa::path(get, path = "/api/v1/console/transfer-targets", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = TransferTargets), (status = 403, description = "Not a technician", body = ErrorBody)))]
async fn transfer_targets(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<TransferTargets>> {
    technician_group(&caller)?;
    let org = load_org(&state).await?;
    let mut technicians: Vec<TransferTarget> = org
        .users
        .iter()
        .filter(|u| {
            u.role == Role::Technician
                && u.enabled
                && u.deleted_at.is_none()
                && u.id != caller.user.id
        })
        .map(|u| TransferTarget {
            id: u.id,
            name: if u.nickname.is_empty() || u.nickname == u.name {
                u.name.clone()
            } else {
                format!("{} ({})", u.name, u.nickname)
            },
            group_id: u.group_id,
        })
        .collect();
    let mut groups: Vec<TransferTarget> = org
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::TechnicianGroup && g.enabled)
        .map(|g| TransferTarget {
            id: g.id,
            name: g.name.clone(),
            group_id: None,
        })
        .collect();
    technicians.sort_by_key(|a| a.name.to_lowercase());
    groups.sort_by_key(|a| a.name.to_lowercase());
    Ok(Json(TransferTargets {
        technicians,
        groups,
    }))
}
