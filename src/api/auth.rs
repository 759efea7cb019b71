//! Login (email + password → opaque bearer token), logout, password change, and "who am I".

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    ClientAddr, PendingCaller, check_access, password_change_required, password_expires_at, rfc3339,
};
use crate::app::AppState;
use crate::auth::{hash_password, new_token, password, verify_password};
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::settings::global::AllowedLoginMethod;
use crate::store::{LoginEvent, Role, StoreError, User, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(me))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    pub id: i64,
    pub role: Role,
    pub name: String,
    pub email: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub token: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    pub user: UserSummary,
    /// True after an administrator set the password (when the policy says so), on first start with a
    /// generated password, or when the password is older than the maximum password age. Until it is
    /// changed, every other route answers 403 `password_change_required`.
    pub must_change_password: bool,
    /// When the password expires under the maximum password age (absent: never).
    pub password_expires_at: Option<String>,
    /// True within the "notification before password expires" days.
    pub password_expiry_notice: bool,
}

fn summary(u: &User) -> UserSummary {
    UserSummary {
        id: u.id,
        role: u.role,
        name: u.name.clone(),
        email: u.email.clone(),
    }
}

/// Log in with email and password.
///
/// Failed attempts are limited per client address and per account (429 with Retry-After).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "OK", body = LoginResponse),
        (status = 401, description = "wrong email or password", body = ErrorBody),
        (status = 403, description = "disabled account or IP restriction", body = ErrorBody),
        (status = 429, description = "too many failed attempts", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let now = Instant::now();
    let address_key = addr.to_string();
    let account_key = req.email.trim().to_lowercase();
    for (throttle, key) in [
        (&state.logins_by_address, &address_key),
        (&state.logins_by_account, &account_key),
    ] {
        if let Err(wait) = throttle.check(key, now) {
            state
                .metrics
                .login_attempts
                .with_label_values(&["throttled"])
                .inc();
            tracing::warn!(%addr, "login throttled");
            return Err(ApiError::too_many(
                wait.as_secs() + 1,
                "too many failed login attempts; try again later",
            ));
        }
    }
    let fail = |state: &AppState| {
        state.logins_by_address.fail(&address_key, now);
        state.logins_by_account.fail(&account_key, now);
        state
            .metrics
            .login_attempts
            .with_label_values(&["failed"])
            .inc();
        tracing::info!(%addr, "login failed");
        ApiError::unauthorized("wrong email or password")
    };
    if req.email.len() > 256 || req.password.len() > 1024 {
        return Err(fail(&state));
    }
    let user = match state.store.user_by_email(&req.email).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => {
            // Spend the same time as a real check so that timing does not reveal which emails exist.
            let dummy = DUMMY_HASH
                .get_or_try_init(|| hash_password("not a real password".into()))
                .await?;
            let _ = verify_password(req.password.clone(), dummy.clone()).await;
            return Err(fail(&state));
        }
        Err(e) => return Err(e.into()),
    };
    if !verify_password(req.password.clone(), user.password_hash.clone()).await {
        return Err(fail(&state));
    }
    if !user.enabled || !group_chain_enabled(&state, &user).await? {
        state
            .metrics
            .login_attempts
            .with_label_values(&["disabled"])
            .inc();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account_disabled",
            "the account or its group is disabled",
        ));
    }
    check_access(&state, &user, addr).await?;
    // Global Settings > Single Sign-On > Allowed login method.
    let sso_only = match state.global().allowed_login_method {
        AllowedLoginMethod::StandardOrSso => false,
        AllowedLoginMethod::SsoOnly => true,
        AllowedLoginMethod::SsoOnlyWithStandardForUsersWithoutSsoId => !user.sso_id.is_empty(),
    };
    if sso_only {
        state
            .metrics
            .login_attempts
            .with_label_values(&["sso_required"])
            .inc();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sso_required",
            "this account logs in through single sign-on only",
        ));
    }
    state.logins_by_account.clear(&account_key);
    let (token, issued, expires) = issue_token(&state, &user, addr, "password").await?;
    let expires_at = password_expires_at(&state, &user);
    let notice_days = i64::from(state.global().password_policy.notify_days_before_expiry);
    Ok(Json(LoginResponse {
        token,
        expires_at: rfc3339(expires),
        must_change_password: password_change_required(&state, &user, issued),
        password_expiry_notice: notice_days > 0
            && expires_at.is_some_and(|at| at - issued <= notice_days * 86_400_000),
        password_expires_at: expires_at.map(rfc3339),
        user: summary(&user),
    }))
}

/// A new login token for a user whose credentials were checked: (token, issued, expires), with the
/// login recorded under `method` (`password` or `sso`).
pub(crate) async fn issue_token(
    state: &AppState,
    user: &User,
    addr: std::net::IpAddr,
    method: &str,
) -> ApiResult<(String, i64, i64)> {
    let address = addr.to_string();
    let (token, hash) = new_token();
    let issued = now_ms();
    let expires = issued + i64::from(state.config.auth.token_ttl_minutes) * 60_000;
    state
        .store
        .insert_token(&hash, user.id, issued, expires, &address, method)
        .await?;
    state
        .store
        .record_login(user.id, LoginEvent::Login, method, &address, issued)
        .await?;
    state
        .metrics
        .login_attempts
        .with_label_values(&["ok"])
        .inc();
    state.metrics.active_tokens_issued.inc();
    tracing::info!(user_id = user.id, %addr, method, "login");
    Ok((token, issued, expires))
}

/// A hash verified against when the email is unknown.
static DUMMY_HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// A technician in a disabled group (or under one) cannot log in.
pub(crate) async fn group_chain_enabled(state: &AppState, user: &User) -> ApiResult<bool> {
    if user.role != Role::Technician {
        return Ok(true);
    }
    let mut next = user.group_id;
    let mut hops = 0;
    while let Some(id) = next {
        let g = state.store.group(id).await?;
        if !g.enabled {
            return Ok(false);
        }
        next = g.parent_id;
        hops += 1;
        if hops > 1000 {
            break;
        }
    }
    Ok(true)
}

/// Log out: revokes the token.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "No Content"), (status = 401, description = "Not logged in or token invalid", body = ErrorBody)))]
async fn logout(State(state): State<AppState>, caller: PendingCaller) -> ApiResult<StatusCode> {
    let now = now_ms();
    if state.store.revoke_token(&caller.token_hash, now).await? {
        state
            .store
            .record_login(
                caller.login.user.id,
                LoginEvent::Logout,
                "password",
                &caller.address.to_string(),
                now,
            )
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub old_password: String,
    pub new_password: String,
}

/// Change one's own password (also the way out of a forced change). Other sessions of the user are
/// logged out.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChange,
    responses((status = 204, description = "No Content"), (status = 401, description = "Not logged in or token invalid", body = ErrorBody), (status = 422, description = "Validation failed", body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    caller: PendingCaller,
    Json(req): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    if req.old_password.len() > 1024
        || !verify_password(
            req.old_password.clone(),
            caller.login.user.password_hash.clone(),
        )
        .await
    {
        // A failed re-authentication, not a malformed body: the schema cannot know the password.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "old_password: is not the current password",
        ));
    }
    if req.new_password == req.old_password {
        return Err(ApiError::invalid(
            "new_password",
            "must differ from the old password",
        ));
    }
    let minimum = state.global().password_policy.minimum_strength;
    password::check(&req.new_password, minimum)
        .map_err(|e| ApiError::invalid("new_password", e))?;
    let mut user = caller.login.user.clone();
    user.password_hash = hash_password(req.new_password).await?;
    user.password_changed_at = now_ms();
    user.must_change_password = false;
    let mut tx = state.store.begin().await?;
    crate::store::users::update_user(&mut tx, &user).await?;
    tx.commit().await?;
    state
        .store
        .revoke_user_tokens(user.id, Some(&caller.token_hash), now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = super::users::UserView), (status = 401, description = "Not logged in or token invalid", body = ErrorBody)))]
async fn me(
    State(state): State<AppState>,
    caller: PendingCaller,
) -> ApiResult<Json<super::users::UserView>> {
    let assigned = state.store.assigned_groups(caller.login.user.id).await?;
    Ok(Json(super::users::view(
        &state,
        &caller.login.user,
        assigned,
    )))
}
