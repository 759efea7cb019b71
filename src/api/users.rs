//! Master administrators, administrators and technicians: create, read, update (incl. move and
//! enable/disable), delete, and administrators' assignment to technician groups.
//!
//! Deleting a user keeps its row for reports and the audit log, frees its email, revokes its tokens
//! and removes its group assignments. The last enabled master administrator cannot be deleted or
//! disabled, and nobody deletes themselves.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Caller, Scope, check_text, double_option, load_org, rfc3339};
use crate::app::AppState;
use crate::auth::{hash_password, password};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::org::Org;
use crate::store::{self, AuditEntry, ChangeType, GroupKind, NewUser, Role, User, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_masters, create_master))
        .routes(routes!(get_master, update_master, delete_master))
        .routes(routes!(list_administrators, create_administrator))
        .routes(routes!(
            get_administrator,
            update_administrator,
            delete_administrator
        ))
        .routes(routes!(assign_group, unassign_group))
        .routes(routes!(list_technicians, create_technician))
        .routes(routes!(
            get_technician,
            update_technician,
            delete_technician
        ))
}

/// A user as the API shows it. The password is never returned.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: i64,
    pub role: Role,
    pub name: String,
    /// Technicians: the name customers see.
    pub nickname: String,
    pub email: String,
    pub sso_id: String,
    pub description: String,
    pub enabled: bool,
    /// Technicians: their technician group. Administrators: their administrator group (null = root).
    pub group_id: Option<i64>,
    /// Administrators: the technician groups assigned to them.
    pub technician_group_ids: Vec<i64>,
    pub must_change_password: bool,
    pub password_changed_at: String,
    pub password_expires_at: Option<String>,
    pub created_at: String,
}

pub fn view(state: &AppState, u: &User, technician_group_ids: Vec<i64>) -> UserView {
    UserView {
        id: u.id,
        role: u.role,
        name: u.name.clone(),
        nickname: u.nickname.clone(),
        email: u.email.clone(),
        sso_id: u.sso_id.clone(),
        description: u.description.clone(),
        enabled: u.enabled,
        group_id: u.group_id,
        technician_group_ids,
        must_change_password: u.must_change_password,
        password_changed_at: rfc3339(u.password_changed_at),
        password_expires_at: super::password_expires_at(state, u).map(rfc3339),
        created_at: rfc3339(u.created_at),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// 1–128 characters.
    pub name: String,
    /// Technicians only; defaults to the name. Up to 128 characters.
    #[serde(default)]
    pub nickname: Option<String>,
    /// The login; unique, case-insensitive.
    pub email: String,
    /// Must meet the minimum password strength of Global Settings.
    pub password: String,
    #[serde(default)]
    pub sso_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Technicians: required, a technician group. Administrators: an administrator group, or
    /// absent for the root. Master administrators: must be absent.
    #[serde(default)]
    pub group_id: Option<i64>,
}

fn yes() -> bool {
    true
}

/// Every field optional. `group_id` moves the user (administrators: `null` = the root). Setting
/// `password` sets a new password; the user must change it at next login when the password policy's
/// "admin password changes force user to change password" is on.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub sso_id: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub group_id: Option<Option<i64>>,
}

/// `POST /api/v1/master-administrators`: no nickname, no group.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MasterCreate {
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub sso_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Only `null` (or absent): master administrators are in no group.
    #[serde(default)]
    pub group_id: Option<i64>,
}

/// `POST /api/v1/administrators`: no nickname; `group_id` an administrator group (absent or
/// null: the root).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdministratorCreate {
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub sso_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub group_id: Option<i64>,
}

/// `POST /api/v1/technicians`: `group_id` (a technician group the caller manages) is required;
/// the nickname defaults to the name.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TechnicianCreate {
    pub name: String,
    #[serde(default)]
    pub nickname: Option<String>,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub sso_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub group_id: i64,
}

impl From<MasterCreate> for UserCreate {
    fn from(b: MasterCreate) -> UserCreate {
        UserCreate {
            name: b.name,
            nickname: None,
            email: b.email,
            password: b.password,
            sso_id: b.sso_id,
            description: b.description,
            enabled: b.enabled,
            // Refused by the placement check when not null.
            group_id: b.group_id,
        }
    }
}

impl From<AdministratorCreate> for UserCreate {
    fn from(b: AdministratorCreate) -> UserCreate {
        UserCreate {
            name: b.name,
            nickname: None,
            email: b.email,
            password: b.password,
            sso_id: b.sso_id,
            description: b.description,
            enabled: b.enabled,
            group_id: b.group_id,
        }
    }
}

impl From<TechnicianCreate> for UserCreate {
    fn from(b: TechnicianCreate) -> UserCreate {
        UserCreate {
            name: b.name,
            nickname: b.nickname,
            email: b.email,
            password: b.password,
            sso_id: b.sso_id,
            description: b.description,
            enabled: b.enabled,
            group_id: Some(b.group_id),
        }
    }
}

/// `PATCH /api/v1/master-administrators/{id}`: every field optional.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MasterUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub sso_id: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// `PATCH /api/v1/administrators/{id}`: every field optional; `group_id` moves the
/// administrator (`null` = the root).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdministratorUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub sso_id: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub group_id: Option<Option<i64>>,
}

/// `PATCH /api/v1/technicians/{id}`: every field optional; `group_id` moves the technician to
/// another technician group (never `null`: a technician is always in one).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TechnicianUpdate {
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub sso_id: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = i64)]
    pub group_id: Option<Option<i64>>,
}

impl From<MasterUpdate> for UserUpdate {
    fn from(b: MasterUpdate) -> UserUpdate {
        UserUpdate {
            name: b.name,
            email: b.email,
            password: b.password,
            sso_id: b.sso_id,
            description: b.description,
            enabled: b.enabled,
            ..UserUpdate::default()
        }
    }
}

impl From<AdministratorUpdate> for UserUpdate {
    fn from(b: AdministratorUpdate) -> UserUpdate {
        UserUpdate {
            name: b.name,
            email: b.email,
            password: b.password,
            sso_id: b.sso_id,
            description: b.description,
            enabled: b.enabled,
            group_id: b.group_id,
            ..UserUpdate::default()
        }
    }
}

impl From<TechnicianUpdate> for UserUpdate {
    fn from(b: TechnicianUpdate) -> UserUpdate {
        UserUpdate {
            name: b.name,
            nickname: b.nickname,
            email: b.email,
            password: b.password,
            sso_id: b.sso_id,
            description: b.description,
            enabled: b.enabled,
            group_id: b.group_id,
        }
    }
}

/// An email address: one `@` with something on both sides, no whitespace or control characters,
/// at most 128 characters (the same rule as the document's pattern, so nothing is trimmed).
pub fn check_email(email: &str) -> ApiResult<()> {
    if email.is_empty() {
        return Err(ApiError::invalid("email", "must not be empty"));
    }
    if email.chars().count() > 128 {
        return Err(ApiError::invalid("email", "longer than 128 characters"));
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !valid {
        return Err(ApiError::invalid("email", "is not an email address"));
    }
    Ok(())
}

fn check_fields(name: &str, nickname: &str, sso_id: &str, description: &str) -> ApiResult<()> {
    check_text("name", name, true, 128)?;
    check_text("nickname", nickname, false, 128)?;
    check_text("sso_id", sso_id, false, 128)?;
    check_text("description", description, false, 1024)
}

fn check_password(state: &AppState, pw: &str) -> ApiResult<()> {
    let minimum = state.global().password_policy.minimum_strength;
    password::check(pw, minimum)
        .map(|_| ())
        .map_err(|e| ApiError::invalid("password", e))
}

/// May the caller manage this user? Master administrators: anyone. Administrators: technicians in
/// groups they manage. Technicians never reach here.
fn manages_user(scope: &Scope, user: &User) -> bool {
    match scope {
        Scope::Everything => true,
        Scope::TechnicianGroups(_) => {
            user.role == Role::Technician && user.group_id.is_some_and(|g| scope.manages_group(g))
        }
    }
}

/// Where a user of `role` may be placed.
fn check_placement(org: &Org, scope: &Scope, role: Role, group_id: Option<i64>) -> ApiResult<()> {
    match (role, group_id) {
        (Role::MasterAdministrator, None) => Ok(()),
        (Role::MasterAdministrator, Some(_)) => Err(ApiError::invalid(
            "group_id",
            "master administrators are not in a group",
        )),
        (Role::Administrator, None) => Ok(()),
        (Role::Administrator, Some(g)) => match org.group(g) {
            Some(group) if group.kind == GroupKind::AdministratorGroup => Ok(()),
            Some(_) => Err(ApiError::not_found("group_id: administrator group")),
            None => Err(ApiError::not_found("group_id: administrator group")),
        },
        (Role::Technician, None) => Err(ApiError::invalid(
            "group_id",
            "a technician belongs to exactly one technician group",
        )),
        (Role::Technician, Some(g)) => match org.group(g) {
            Some(group) if group.kind == GroupKind::TechnicianGroup => {
                if scope.manages_group(g) {
                    Ok(())
                } else {
                    Err(ApiError::not_in_scope(
                        "the technician group is not one you manage",
                    ))
                }
            }
            Some(_) | None => Err(ApiError::not_found("group_id: technician group")),
        },
    }
}

fn group_name(org: &Org, id: Option<i64>) -> String {
    id.and_then(|g| org.group(g))
        .map(|g| g.name.clone())
        .unwrap_or_default()
}

pub fn audit_entry(
    caller: &User,
    entity_type: &'static str,
    entity_id: i64,
    entity_name: &str,
    change: ChangeType,
) -> AuditEntry {
    AuditEntry {
        at: now_ms(),
        requested_by_id: caller.id,
        requested_by_name: caller.name.clone(),
        entity_type,
        entity_id,
        entity_name: entity_name.to_string(),
        change_type: change,
        section: "Organization".into(),
        field: String::new(),
        old_value: None,
        old_action: None,
        new_value: None,
        new_action: None,
    }
}

async fn create(
    state: &AppState,
    caller: &Caller,
    role: Role,
    body: UserCreate,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    caller.require_admin()?;
    if role != Role::Technician {
        caller.require_master()?;
    }
    let org = load_org(state).await?;
    let scope = caller.scope(&org);
    let nickname = match role {
        Role::Technician => body.nickname.clone().unwrap_or_else(|| body.name.clone()),
        _ if body.nickname.as_deref().is_some_and(|n| !n.is_empty()) => {
            return Err(ApiError::invalid(
                "nickname",
                "only technicians have a nickname",
            ));
        }
        _ => String::new(),
    };
    check_fields(&body.name, &nickname, &body.sso_id, &body.description)?;
    check_email(&body.email)?;
    check_password(state, &body.password)?;
    check_placement(&org, &scope, role, body.group_id)?;
    let must_change = state
        .global()
        .password_policy
        .admin_change_forces_password_change;
    let new = NewUser {
        role,
        name: body.name.trim().to_string(),
        nickname: nickname.trim().to_string(),
        email: body.email.trim().to_string(),
        sso_id: body.sso_id.trim().to_string(),
        description: body.description,
        password_hash: hash_password(body.password).await?,
        must_change_password: must_change,
        enabled: body.enabled,
        group_id: body.group_id,
    };
    let mut tx = state.store.begin().await?;
    let id = store::users::insert_user(&mut tx, &new).await?;
    let mut entry = audit_entry(
        &caller.user,
        role.entity_type(),
        id,
        &new.name,
        ChangeType::Add,
    );
    entry.field = "Name".into();
    entry.new_value = Some(new.name.clone());
    entry.new_action = Some("Added".into());
    store::audit::append(&mut tx, &entry).await?;
    tx.commit().await?;
    let user = state.store.user(id).await?;
    tracing::info!(
        user_id = id,
        role = role.as_str(),
        by = caller.user.id,
        "user created"
    );
    Ok((StatusCode::CREATED, Json(view(state, &user, vec![]))))
}

async fn fetch(state: &AppState, caller: &Caller, role: Role, id: i64) -> ApiResult<(User, Org)> {
    caller.require_admin()?;
    if role != Role::Technician {
        caller.require_master()?;
    }
    let org = load_org(state).await?;
    let user = org
        .users
        .iter()
        .find(|u| u.id == id && u.role == role)
        .cloned()
        .ok_or_else(|| ApiError::not_found(role.entity_type()))?;
    if !manages_user(&caller.scope(&org), &user) {
        // Another administrator's technician is reported as absent, not as forbidden, so that ids
        // outside one's scope reveal nothing.
        return Err(ApiError::not_found(role.entity_type()));
    }
    Ok((user, org))
}

fn assigned_of(org: &Org, id: i64) -> Vec<i64> {
    org.assignments
        .iter()
        .filter(|(a, _)| *a == id)
        .map(|(_, g)| *g)
        .collect()
}

async fn get(state: &AppState, caller: &Caller, role: Role, id: i64) -> ApiResult<Json<UserView>> {
    let (user, org) = fetch(state, caller, role, id).await?;
    Ok(Json(view(state, &user, assigned_of(&org, id))))
}

async fn list(state: &AppState, caller: &Caller, role: Role) -> ApiResult<Json<Vec<UserView>>> {
    caller.require_admin()?;
    if role != Role::Technician {
        caller.require_master()?;
    }
    let org = load_org(state).await?;
    let scope = caller.scope(&org);
    Ok(Json(
        org.users
            .iter()
            .filter(|u| u.role == role && manages_user(&scope, u))
            .map(|u| view(state, u, assigned_of(&org, u.id)))
            .collect(),
    ))
}

fn change_row(
    base: &AuditEntry,
    field: &str,
    old: Option<String>,
    new: Option<String>,
) -> AuditEntry {
    AuditEntry {
        change_type: ChangeType::Change,
        field: field.into(),
        old_value: old,
        new_value: new,
        ..base.clone()
    }
}

async fn update(
    state: &AppState,
    caller: &Caller,
    role: Role,
    id: i64,
    body: UserUpdate,
) -> ApiResult<Json<UserView>> {
    let (old, org) = fetch(state, caller, role, id).await?;
    let scope = caller.scope(&org);
    let mut user = old.clone();
    if let Some(name) = &body.name {
        check_text("name", name, true, 128)?;
        user.name = name.trim().to_string();
    }
    if let Some(nick) = &body.nickname {
        if role != Role::Technician && !nick.is_empty() {
            return Err(ApiError::invalid(
                "nickname",
                "only technicians have a nickname",
            ));
        }
        check_text("nickname", nick, false, 128)?;
        user.nickname = nick.trim().to_string();
    }
    if let Some(email) = &body.email {
        check_email(email)?;
        user.email = email.trim().to_string();
    }
    if let Some(sso) = &body.sso_id {
        check_text("sso_id", sso, false, 128)?;
        user.sso_id = sso.trim().to_string();
    }
    if let Some(d) = &body.description {
        check_text("description", d, false, 1024)?;
        user.description = d.clone();
    }
    if let Some(enabled) = body.enabled {
        if !enabled && user.id == caller.user.id {
            return Err(ApiError::conflict(
                "conflict",
                "you cannot disable yourself",
            ));
        }
        user.enabled = enabled;
    }
    if let Some(group) = body.group_id {
        check_placement(&org, &scope, role, group)?;
        user.group_id = group;
    }
    if role == Role::MasterAdministrator
        && old.enabled
        && !user.enabled
        && enabled_masters(&org) <= 1
    {
        return Err(ApiError::conflict(
            "conflict",
            "the last enabled master administrator cannot be disabled",
        ));
    }
    let password_set = if let Some(pw) = body.password {
        check_password(state, &pw)?;
        user.password_hash = hash_password(pw).await?;
        user.password_changed_at = now_ms();
        // An administrator setting someone else's password may force a change at next login.
        user.must_change_password = user.id != caller.user.id
            && state
                .global()
                .password_policy
                .admin_change_forces_password_change;
        true
    } else {
        false
    };
    let base = audit_entry(
        &caller.user,
        role.entity_type(),
        id,
        &user.name,
        ChangeType::Change,
    );
    let mut rows = Vec::new();
    for (field, a, b) in [
        ("Name", &old.name, &user.name),
        ("Nickname", &old.nickname, &user.nickname),
        ("Email", &old.email, &user.email),
        ("Single Sign-On ID", &old.sso_id, &user.sso_id),
        ("Description", &old.description, &user.description),
    ] {
        if a != b {
            rows.push(change_row(&base, field, Some(a.clone()), Some(b.clone())));
        }
    }
    if password_set {
        rows.push(AuditEntry {
            field: "Password".into(),
            old_action: Some("Set".into()),
            new_action: Some("Set".into()),
            change_type: ChangeType::Change,
            ..base.clone()
        });
    }
    if old.enabled != user.enabled {
        let word = |e: bool| if e { "Enabled" } else { "Disabled" };
        rows.push(AuditEntry {
            field: "Status".into(),
            old_action: Some(word(old.enabled).into()),
            new_action: Some(word(user.enabled).into()),
            change_type: ChangeType::Change,
            ..base.clone()
        });
    }
    if old.group_id != user.group_id {
        rows.push(AuditEntry {
            change_type: ChangeType::Move,
            field: "Group".into(),
            old_value: Some(group_name(&org, old.group_id)),
            new_value: Some(group_name(&org, user.group_id)),
            ..base.clone()
        });
    }
    let mut tx = state.store.begin().await?;
    store::users::update_user(&mut tx, &user).await?;
    for row in &rows {
        store::audit::append(&mut tx, row).await?;
    }
    tx.commit().await?;
    if password_set || !user.enabled {
        // A new password or a disabled account ends the user's other logins.
        state
            .store
            .revoke_user_tokens(user.id, None, now_ms())
            .await?;
    }
    if role == Role::Technician && old.enabled && !user.enabled {
        // The guide: "Aborted: technician was deleted or disabled".
        state.hub.technician_removed(user.id);
    }
    let assigned = assigned_of(&org, id);
    Ok(Json(view(state, &user, assigned)))
}

fn enabled_masters(org: &Org) -> usize {
    org.users
        .iter()
        .filter(|u| u.role == Role::MasterAdministrator && u.enabled)
        .count()
}

async fn delete(state: &AppState, caller: &Caller, role: Role, id: i64) -> ApiResult<StatusCode> {
    let (user, org) = fetch(state, caller, role, id).await?;
    if user.id == caller.user.id {
        return Err(ApiError::conflict("conflict", "you cannot delete yourself"));
    }
    if role == Role::MasterAdministrator && user.enabled && enabled_masters(&org) <= 1 {
        return Err(ApiError::conflict(
            "conflict",
            "the last enabled master administrator cannot be deleted",
        ));
    }
    let mut tx = state.store.begin().await?;
    store::users::delete_user(&mut tx, id).await?;
    let mut entry = audit_entry(
        &caller.user,
        role.entity_type(),
        id,
        &user.name,
        ChangeType::Delete,
    );
    entry.field = "Name".into();
    entry.old_value = Some(user.name.clone());
    entry.old_action = Some("Removed".into());
    store::audit::append(&mut tx, &entry).await?;
    tx.commit().await?;
    if role == Role::Technician {
        state.hub.technician_removed(id);
    }
    tracing::info!(user_id = id, by = caller.user.id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! user_routes {
    ($role:expr, $path:literal, $path_id:literal, $list:ident, $create:ident, $get:ident, $update:ident, $delete:ident, $create_body:ty, $update_body:ty) => {
        #[utoipa::path(get, path = $path, tag = "org", security(("bearer" = [])),
            responses((status = 200, description = "OK", body = Vec<UserView>), (status = 401, description = "Not logged in or token invalid", body = ErrorBody), (status = 403, description = "Forbidden", body = ErrorBody)))]
        async fn $list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<UserView>>> {
            list(&state, &caller, $role).await
        }

        #[utoipa::path(post, path = $path, tag = "org", security(("bearer" = [])),
            request_body = $create_body,
            responses((status = 201, description = "Created", body = UserView),
                      (status = 404, description = "`group_id` names no group of the right kind", body = ErrorBody),
                      (status = 409, description = "The email is taken (`email_taken`)", body = ErrorBody),
                      (status = 422, description = "Validation failed; also a password weaker than the Global Settings minimum", body = ErrorBody)))]
        async fn $create(State(state): State<AppState>, caller: Caller, Json(body): Json<$create_body>) -> ApiResult<(StatusCode, Json<UserView>)> {
            create(&state, &caller, $role, body.into()).await
        }

        #[utoipa::path(get, path = $path_id, tag = "org", security(("bearer" = [])),
            params(("id" = i64, Path)),
            responses((status = 200, description = "OK", body = UserView), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
        async fn $get(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<UserView>> {
            get(&state, &caller, $role, id).await
        }

        #[utoipa::path(patch, path = $path_id, tag = "org", security(("bearer" = [])),
            params(("id" = i64, Path)), request_body = $update_body,
            responses((status = 200, description = "OK", body = UserView), (status = 404, description = "No such user, or `group_id` names no group of the right kind", body = ErrorBody),
                      (status = 409, description = "The email is taken (`email_taken`), or the change would disable yourself or the last enabled master administrator (`conflict`)", body = ErrorBody),
                      (status = 422, description = "Validation failed; also a password weaker than the Global Settings minimum", body = ErrorBody)))]
        async fn $update(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>, Json(body): Json<$update_body>) -> ApiResult<Json<UserView>> {
            update(&state, &caller, $role, id, body.into()).await
        }

        #[utoipa::path(delete, path = $path_id, tag = "org", security(("bearer" = [])),
            params(("id" = i64, Path)),
            responses((status = 204, description = "No Content"), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
        async fn $delete(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<StatusCode> {
            delete(&state, &caller, $role, id).await
        }
    };
}

user_routes!(
    Role::MasterAdministrator,
    "/api/v1/master-administrators",
    "/api/v1/master-administrators/{id}",
    list_masters,
    create_master,
    get_master,
    update_master,
    delete_master,
    MasterCreate,
    MasterUpdate
);
user_routes!(
    Role::Administrator,
    "/api/v1/administrators",
    "/api/v1/administrators/{id}",
    list_administrators,
    create_administrator,
    get_administrator,
    update_administrator,
    delete_administrator,
    AdministratorCreate,
    AdministratorUpdate
);
user_routes!(
    Role::Technician,
    "/api/v1/technicians",
    "/api/v1/technicians/{id}",
    list_technicians,
    create_technician,
    get_technician,
    update_technician,
    delete_technician,
    TechnicianCreate,
    TechnicianUpdate
);

/// Assign an administrator to a technician group (master administrators only).
#[utoipa::path(put, path = "/api/v1/administrators/{id}/technician-groups/{group_id}", tag = "org",
    security(("bearer" = [])), params(("id" = i64, Path), ("group_id" = i64, Path)),
    responses((status = 204, description = "No Content"), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn assign_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, group_id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    assignment(&state, &caller, id, group_id, true).await
}

/// Unassign an administrator from a technician group (master administrators only).
#[utoipa::path(delete, path = "/api/v1/administrators/{id}/technician-groups/{group_id}", tag = "org",
    security(("bearer" = [])), params(("id" = i64, Path), ("group_id" = i64, Path)),
    responses((status = 204, description = "No Content"), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn unassign_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, group_id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    assignment(&state, &caller, id, group_id, false).await
}

async fn assignment(
    state: &AppState,
    caller: &Caller,
    id: i64,
    group_id: i64,
    assign: bool,
) -> ApiResult<StatusCode> {
    let (admin, org) = fetch(state, caller, Role::Administrator, id).await?;
    let group = org
        .group(group_id)
        .filter(|g| g.kind == GroupKind::TechnicianGroup)
        .ok_or_else(|| ApiError::not_found("technician group"))?;
    let mut tx = state.store.begin().await?;
    let changed = if assign {
        store::groups::assign(&mut tx, id, group_id).await?
    } else {
        store::groups::unassign(&mut tx, id, group_id).await?
    };
    if !assign && !changed {
        return Err(ApiError::not_found("assignment"));
    }
    if changed {
        let change = if assign {
            ChangeType::Assign
        } else {
            ChangeType::Unassign
        };
        let mut entry = audit_entry(&caller.user, "Administrator link", id, &admin.name, change);
        entry.field = "Technician Group".into();
        if assign {
            entry.new_value = Some(group.name.clone());
            entry.new_action = Some("Assigned".into());
        } else {
            entry.old_value = Some(group.name.clone());
            entry.old_action = Some("Assigned".into());
            entry.new_action = Some("Unassigned".into());
        }
        store::audit::append(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
