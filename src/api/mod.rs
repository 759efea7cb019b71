//! The REST API under `/api/v1`: one module per resource family, one error type, and the caller's
//! identity as an extractor that enforces login, account state and IP restrictions on every route.

pub mod api_keys;
pub mod api_tokens;
pub mod audit;
pub mod auth;
pub mod console;
pub mod groups;
pub mod nodes;
pub mod openapi;
pub mod org;
pub mod post_to_url;
pub mod recordings;
pub mod reports;
pub mod sessions;
pub mod settings;
pub mod sso;
pub mod surveys;
pub mod users;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::token_hash;
use crate::error::{ApiError, ApiResult, Json};
use crate::org::Org;
use crate::store::{Role, StoreError, User, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .merge(auth::routes())
        .merge(org::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(settings::routes())
        .merge(audit::routes())
        .merge(sessions::routes())
        .merge(console::routes())
        .merge(post_to_url::routes())
        .merge(api_keys::routes())
        .merge(api_tokens::routes())
        .merge(reports::routes())
        .merge(recordings::routes())
        .merge(sso::routes())
        .merge(surveys::routes())
        .merge(nodes::routes())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    status: String,
    store: String,
    /// This node's id in the registry (`GET /api/v1/nodes`).
    node: String,
}

/// Liveness, store reachability and whether this node takes new sessions. 503 when it does not:
/// `draining` (it finishes its sessions, then exits), `store_unavailable`, or `fenced` (another
/// process started with the same node id). Load balancers send new connections elsewhere.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "OK", body = Health), (status = 503, description = "Unavailable: `draining`, `store_unavailable` or `fenced`", body = crate::error::ErrorBody)))]
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> ApiResult<Json<Health>> {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(5), state.store.ping()).await;
    let reachable = matches!(ping, Ok(Ok(())));
    state.node.store_reachable(reachable);
    if !reachable {
        tracing::error!(error = ?ping, "health check: store unreachable");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store does not answer",
        ));
    }
    match state.node.health() {
        crate::cluster::Health::Serving => {}
        crate::cluster::Health::Draining => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "this node is draining: it finishes its sessions and takes no new ones",
            ));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                other.as_str(),
                "this node takes no new sessions",
            ));
        }
    }
    Ok(Json(Health {
        status: "ok".into(),
        store: match state.store.backend() {
            crate::store::Backend::Sqlite => "sqlite".into(),
            crate::store::Backend::Postgres => "postgres".into(),
        },
        node: state.node.id.clone(),
    }))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// The client's address: the TCP peer, or the last `X-Forwarded-For` hop when configured to trust it.
pub fn client_addr(parts: &Parts, state: &AppState) -> IpAddr {
    if state.config.http.trust_forwarded_for
        && let Some(ip) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip;
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The client address as an extractor.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        Ok(ClientAddr(client_addr(parts, state)))
    }
}

/// Global IP restrictions for everyone; a technician also needs its group's console restrictions
/// (the guide: console access needs global access too).
pub async fn check_access(state: &AppState, user: &User, addr: IpAddr) -> ApiResult<()> {
    if !state.global().ip_restrictions.allows(addr) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ip_restricted",
            format!("access from {addr} is not allowed (IP restrictions, global)"),
        ));
    }
    if user.role == Role::Technician
        && let Some(group) = user.group_id
    {
        let settings = settings::load_group(&state.store, group).await?;
        if !settings.console_ip_restrictions.allows(addr) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ip_restricted",
                format!("access from {addr} is not allowed (IP restrictions, Technician Console)"),
            ));
        }
    }
    Ok(())
}

/// Whether the user must set a new password before anything else: forced by an administrator's
/// change (or first start), or expired under the maximum password age.
pub fn password_change_required(state: &AppState, user: &User, now: i64) -> bool {
    user.must_change_password || password_expires_at(state, user).is_some_and(|at| at <= now)
}

pub fn password_expires_at(state: &AppState, user: &User) -> Option<i64> {
    let days = state.global().password_policy.maximum_age_days;
    (days > 0).then(|| user.password_changed_at + i64::from(days) * 86_400_000)
}

/// A logged-in caller that may still owe a password change: only the password and logout routes
/// take this.
pub struct PendingCaller {
    pub login: TokenUser,
    pub token_hash: String,
    pub address: IpAddr,
}

impl FromRequestParts<AppState> for PendingCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let address = client_addr(parts, state);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let hash = token_hash(token);
        let login = user_for_token_hash(state, &hash, address).await?;
        Ok(PendingCaller {
            login,
            token_hash: hash,
            address,
        })
    }
}

/// The user a login token belongs to, if the token is live, the account enabled and the address
/// allowed (also the console socket's `hello`).
pub async fn user_for_token(
    state: &AppState,
    token: &str,
    address: IpAddr,
) -> ApiResult<TokenUser> {
    if token.is_empty() || token.len() > 128 {
        return Err(ApiError::unauthorized("invalid token"));
    }
    user_for_token_hash(state, &token_hash(token), address).await
}

/// A live token's user.
pub struct TokenUser {
    pub user: User,
    /// Logged in through single sign-on: the password is not how this user logs in, so a forced
    /// or expired password does not hold the login back.
    pub by_sso: bool,
}

impl TokenUser {
    pub fn owes_password_change(&self, state: &AppState, now: i64) -> bool {
        !self.by_sso && password_change_required(state, &self.user, now)
    }
}

async fn user_for_token_hash(
    state: &AppState,
    hash: &str,
    address: IpAddr,
) -> ApiResult<TokenUser> {
    let now = now_ms();
    let (user_id, by_sso) = match state.store.token(hash).await {
        Ok(row) if row.revoked_at.is_some() || row.expires_at <= now => {
            return Err(ApiError::unauthorized("the token expired or was revoked"));
        }
        Ok(row) => (row.user_id, row.method == "sso"),
        // Not a login token: perhaps an integration's API token.
        Err(StoreError::NotFound) => match state.store.api_token_by_hash(hash).await {
            Ok(t) if t.revoked_at.is_some() || t.expires_at.is_some_and(|at| at <= now) => {
                return Err(ApiError::unauthorized("the token expired or was revoked"));
            }
            Ok(t) => {
                // Recorded at most once a minute: a busy integration is not a write per call.
                if t.last_used_at.is_none_or(|at| now - at >= 60_000) {
                    state.store.api_token_used(t.id, now).await?;
                }
                (t.user_id, false)
            }
            Err(StoreError::NotFound) => return Err(ApiError::unauthorized("invalid token")),
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let user = match state.store.user(user_id).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => return Err(ApiError::unauthorized("invalid token")),
        Err(e) => return Err(e.into()),
    };
    if !user.enabled {
        return Err(ApiError::unauthorized("the account is disabled"));
    }
    check_access(state, &user, address).await?;
    Ok(TokenUser { user, by_sso })
}

/// A logged-in caller with no pending password change.
pub struct Caller {
    pub user: User,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let pending = PendingCaller::from_request_parts(parts, state).await?;
        if pending.login.owes_password_change(state, now_ms()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "set a new password first: POST /api/v1/auth/password",
            ));
        }
        Ok(Caller {
            user: pending.login.user,
        })
    }
}

/// What part of the organization a caller manages.
pub enum Scope {
    Everything,
    TechnicianGroups(HashSet<i64>),
}

impl Scope {
    pub fn manages_group(&self, id: i64) -> bool {
        match self {
            Scope::Everything => true,
            Scope::TechnicianGroups(set) => set.contains(&id),
        }
    }
}

impl Caller {
    pub fn is_master(&self) -> bool {
        self.user.role == Role::MasterAdministrator
    }

    pub fn require_master(&self) -> ApiResult<()> {
        if self.is_master() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only master administrators may do this",
            ))
        }
    }

    /// Master administrators and administrators; technicians have no admin API.
    pub fn require_admin(&self) -> ApiResult<()> {
        match self.user.role {
            Role::MasterAdministrator | Role::Administrator => Ok(()),
            Role::Technician => Err(ApiError::forbidden(
                "technicians have no access to the administration API",
            )),
        }
    }

    pub fn scope(&self, org: &Org) -> Scope {
        match self.user.role {
            Role::MasterAdministrator => Scope::Everything,
            Role::Administrator => Scope::TechnicianGroups(org.managed_groups(self.user.id)),
            Role::Technician => Scope::TechnicianGroups(HashSet::new()),
        }
    }
}

pub async fn load_org(state: &AppState) -> ApiResult<Org> {
    Ok(Org {
        groups: state.store.groups().await?,
        users: state.store.users().await?,
        assignments: state.store.assignments().await?,
    })
}

/// Milliseconds to RFC 3339 UTC.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Checks a text field's length (in characters) and that it is non-empty when required.
pub fn check_text(field: &str, value: &str, required: bool, max: usize) -> ApiResult<()> {
    if required && value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// For PATCH bodies: distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
