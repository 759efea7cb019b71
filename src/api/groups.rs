//! Technician groups and administrator groups: create (a new technician group starts from its
//! parent's settings), read, update (rename, describe, move under another group, enable/disable)
//! and delete.
//!
//! A group is deleted only when empty (no subgroups, no members): deleting people as a side effect of
//! deleting a folder loses more than a user expects, so the API answers 409 `group_not_empty` and
//! the administrator moves or deletes the members first.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::audit_entry;
use super::{Caller, check_text, double_option, load_org, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::org::Org;
use crate::store::{self, AuditEntry, ChangeType, Group, GroupKind, NewGroup};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_technician_groups, create_technician_group))
        .routes(routes!(
            get_technician_group,
            update_technician_group,
            delete_technician_group
        ))
        .routes(routes!(
            list_administrator_groups,
            create_administrator_group
        ))
        .routes(routes!(
            get_administrator_group,
            update_administrator_group,
            delete_administrator_group
        ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub id: i64,
    pub kind: GroupKind,
    pub name: String,
    pub description: String,
    pub parent_id: Option<i64>,
    pub enabled: bool,
    pub created_at: String,
}

fn view(g: &Group) -> GroupView {
    GroupView {
        id: g.id,
        kind: g.kind,
        name: g.name.clone(),
        description: g.description.clone(),
        parent_id: g.parent_id,
        enabled: g.enabled,
        created_at: rfc3339(g.created_at),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupCreate {
    /// 1–128 characters.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A group of the same kind, or absent for the top level (administrators must give one of their
    /// technician groups).
    #[serde(default)]
    pub parent_id: Option<i64>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Every field optional; `parent_id` moves the group (`null` = top level).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub parent_id: Option<Option<i64>>,
    pub enabled: Option<bool>,
}

fn require_rights(caller: &Caller, kind: GroupKind) -> ApiResult<()> {
    caller.require_admin()?;
    if kind == GroupKind::AdministratorGroup {
        caller.require_master()?;
    }
    Ok(())
}

/// Checks that `parent` may hold a group of `kind` for this caller (and, when moving `moving`, that
/// no cycle results).
fn check_parent(
    caller: &Caller,
    org: &Org,
    kind: GroupKind,
    parent: Option<i64>,
    moving: Option<i64>,
) -> ApiResult<()> {
    let scope = caller.scope(org);
    match parent {
        None => {
            if kind == GroupKind::TechnicianGroup && !caller.is_master() {
                return Err(ApiError::not_in_scope(
                    "administrators create and move groups only under technician groups they manage",
                ));
            }
        }
        Some(p) => {
            // A group nests only under a group of the same kind: any other id names no parent.
            org.group(p)
                .filter(|parent| parent.kind == kind)
                .ok_or_else(|| {
                    ApiError::not_found(&format!("parent_id: {}", kind.entity_type()))
                })?;
            if kind == GroupKind::TechnicianGroup && !scope.manages_group(p) {
                return Err(ApiError::not_in_scope(
                    "the parent group is not one you manage",
                ));
            }
            if let Some(g) = moving
                && org.would_cycle(g, p)
            {
                return Err(ApiError::conflict(
                    "conflict",
                    "parent_id: a group cannot move under itself or its subgroups",
                ));
            }
        }
    }
    Ok(())
}

async fn create(
    state: &AppState,
    caller: &Caller,
    kind: GroupKind,
    body: GroupCreate,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    require_rights(caller, kind)?;
    check_text("name", &body.name, true, 128)?;
    check_text("description", &body.description, false, 1024)?;
    let org = load_org(state).await?;
    check_parent(caller, &org, kind, body.parent_id, None)?;
    let new = NewGroup {
        kind,
        name: body.name.trim().to_string(),
        description: body.description,
        parent_id: body.parent_id,
        enabled: body.enabled,
    };
    // A new technician group starts from its parent's settings (the guide's inheritance).
    let settings = match (kind, body.parent_id) {
        (GroupKind::TechnicianGroup, Some(p)) => {
            Some(super::settings::load_group(&state.store, p).await?)
        }
        (GroupKind::TechnicianGroup, None) => Some(Default::default()),
        _ => None,
    };
    let mut tx = state.store.begin().await?;
    let id = store::groups::insert_group(&mut tx, &new).await?;
    if let Some(settings) = settings {
        super::settings::store_group(&mut tx, id, &settings).await?;
    }
    let mut entry = audit_entry(
        &caller.user,
        kind.entity_type(),
        id,
        &new.name,
        ChangeType::Add,
    );
    entry.field = "Name".into();
    entry.new_value = Some(new.name.clone());
    entry.new_action = Some("Added".into());
    store::audit::append(&mut tx, &entry).await?;
    tx.commit().await?;
    let group = state.store.group(id).await?;
    Ok((StatusCode::CREATED, Json(view(&group))))
}

async fn fetch(
    state: &AppState,
    caller: &Caller,
    kind: GroupKind,
    id: i64,
) -> ApiResult<(Group, Org)> {
    require_rights(caller, kind)?;
    let org = load_org(state).await?;
    let group = org
        .group(id)
        .filter(|g| g.kind == kind)
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind.entity_type()))?;
    if kind == GroupKind::TechnicianGroup && !caller.scope(&org).manages_group(id) {
        return Err(ApiError::not_found(kind.entity_type()));
    }
    Ok((group, org))
}

async fn list(
    state: &AppState,
    caller: &Caller,
    kind: GroupKind,
) -> ApiResult<Json<Vec<GroupView>>> {
    require_rights(caller, kind)?;
    let org = load_org(state).await?;
    let scope = caller.scope(&org);
    Ok(Json(
        org.groups
            .iter()
            .filter(|g| g.kind == kind)
            .filter(|g| kind == GroupKind::AdministratorGroup || scope.manages_group(g.id))
            .map(view)
            .collect(),
    ))
}

async fn update(
    state: &AppState,
    caller: &Caller,
    kind: GroupKind,
    id: i64,
    body: GroupUpdate,
) -> ApiResult<Json<GroupView>> {
    let (old, org) = fetch(state, caller, kind, id).await?;
    let mut group = old.clone();
    if let Some(name) = &body.name {
        check_text("name", name, true, 128)?;
        group.name = name.trim().to_string();
    }
    if let Some(d) = &body.description {
        check_text("description", d, false, 1024)?;
        group.description = d.clone();
    }
    if let Some(enabled) = body.enabled {
        group.enabled = enabled;
    }
    if let Some(parent) = body.parent_id
        && parent != old.parent_id
    {
        check_parent(caller, &org, kind, parent, Some(id))?;
        group.parent_id = parent;
    }
    let base = audit_entry(
        &caller.user,
        kind.entity_type(),
        id,
        &group.name,
        ChangeType::Change,
    );
    let mut rows: Vec<AuditEntry> = Vec::new();
    for (field, a, b) in [
        ("Group name", &old.name, &group.name),
        ("Description", &old.description, &group.description),
    ] {
        if a != b {
            rows.push(AuditEntry {
                field: field.into(),
                old_value: Some(a.clone()),
                new_value: Some(b.clone()),
                ..base.clone()
            });
        }
    }
    if old.enabled != group.enabled {
        let word = |e: bool| if e { "Enabled" } else { "Disabled" };
        rows.push(AuditEntry {
            field: "Status".into(),
            old_action: Some(word(old.enabled).into()),
            new_action: Some(word(group.enabled).into()),
            ..base.clone()
        });
    }
    if old.parent_id != group.parent_id {
        let name = |p: Option<i64>| {
            p.and_then(|p| org.group(p))
                .map(|g| g.name.clone())
                .unwrap_or_default()
        };
        rows.push(AuditEntry {
            change_type: ChangeType::Move,
            field: "Parent group".into(),
            old_value: Some(name(old.parent_id)),
            new_value: Some(name(group.parent_id)),
            ..base.clone()
        });
    }
    let mut tx = state.store.begin().await?;
    store::groups::update_group(&mut tx, &group).await?;
    for row in &rows {
        store::audit::append(&mut tx, row).await?;
    }
    tx.commit().await?;
    Ok(Json(view(&group)))
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    kind: GroupKind,
    id: i64,
) -> ApiResult<StatusCode> {
    let (group, _) = fetch(state, caller, kind, id).await?;
    if state.store.group_has_members(id).await? {
        return Err(ApiError::conflict(
            "group_not_empty",
            "the group still has subgroups or members: move or delete them first",
        ));
    }
    let mut tx = state.store.begin().await?;
    store::groups::delete_group(&mut tx, id).await?;
    let mut entry = audit_entry(
        &caller.user,
        kind.entity_type(),
        id,
        &group.name,
        ChangeType::Delete,
    );
    entry.field = "Name".into();
    entry.old_value = Some(group.name.clone());
    entry.old_action = Some("Removed".into());
    store::audit::append(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! group_routes {
    ($kind:expr, $path:literal, $path_id:literal, $list:ident, $create:ident, $get:ident, $update:ident, $delete:ident) => {
        #[utoipa::path(get, path = $path, tag = "org", security(("bearer" = [])),
            responses((status = 200, description = "OK", body = Vec<GroupView>), (status = 401, description = "Not logged in or token invalid", body = ErrorBody), (status = 403, description = "Forbidden", body = ErrorBody)))]
        async fn $list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<GroupView>>> {
            list(&state, &caller, $kind).await
        }

        #[utoipa::path(post, path = $path, tag = "org", security(("bearer" = [])), request_body = GroupCreate,
            responses((status = 201, description = "Created", body = GroupView),
                      (status = 404, description = "`parent_id` names no group of the same kind", body = ErrorBody),
                      (status = 422, description = "Validation failed", body = ErrorBody)))]
        async fn $create(State(state): State<AppState>, caller: Caller, Json(body): Json<GroupCreate>) -> ApiResult<(StatusCode, Json<GroupView>)> {
            create(&state, &caller, $kind, body).await
        }

        #[utoipa::path(get, path = $path_id, tag = "org", security(("bearer" = [])), params(("id" = i64, Path)),
            responses((status = 200, description = "OK", body = GroupView), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
        async fn $get(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<GroupView>> {
            let (group, _) = fetch(&state, &caller, $kind, id).await?;
            Ok(Json(view(&group)))
        }

        #[utoipa::path(patch, path = $path_id, tag = "org", security(("bearer" = [])), params(("id" = i64, Path)),
            request_body = GroupUpdate,
            responses((status = 200, description = "OK", body = GroupView),
                      (status = 404, description = "No such group, or `parent_id` names no group of the same kind", body = ErrorBody),
                      (status = 409, description = "The move would put the group under itself or its subgroups (`conflict`)", body = ErrorBody),
                      (status = 422, description = "Validation failed", body = ErrorBody)))]
        async fn $update(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>, Json(body): Json<GroupUpdate>) -> ApiResult<Json<GroupView>> {
            update(&state, &caller, $kind, id, body).await
        }

        #[utoipa::path(delete, path = $path_id, tag = "org", security(("bearer" = [])), params(("id" = i64, Path)),
            responses((status = 204, description = "No Content"), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
        async fn $delete(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<StatusCode> {
            delete(&state, &caller, $kind, id).await
        }
    };
}

group_routes!(
    GroupKind::TechnicianGroup,
    "/api/v1/technician-groups",
    "/api/v1/technician-groups/{id}",
    list_technician_groups,
    create_technician_group,
    get_technician_group,
    update_technician_group,
    delete_technician_group
);
group_routes!(
    GroupKind::AdministratorGroup,
    "/api/v1/administrator-groups",
    "/api/v1/administrator-groups/{id}",
    list_administrator_groups,
    create_administrator_group,
    get_administrator_group,
    update_administrator_group,
    delete_administrator_group
);
