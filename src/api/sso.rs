//! Single sign-on as the guide describes it: the company's own script asks
//! `/SSO/GetLoginTicket.aspx?ssoid=&Password=&CompanyID=` (GET or POST; alias
//! `/api/v1/sso/login-ticket`) and gets a plain-text `OK: <url>` or `ERROR: <CODE>`. The URL carries a
//! single-use, short-lived ticket; opening it (`/api/v1/sso/login?ticket=`, alias
//! `/SSO/Login.aspx?Ticket=`) logs the user in and redirects the browser to
//! `/console#token=<login token>`, where the console page takes the token from the fragment.
//! The desktop console variant (`GetDTCLoginTicket.aspx`) does not apply: there is no desktop console.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{group_chain_enabled, issue_token};
use super::{ClientAddr, check_access};
use crate::app::AppState;
use crate::auth::{token_hash, verify_password};
use crate::error::{ApiError, ApiResult, ErrorBody, Query};
use crate::store::{StoreError, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login_ticket_get, login_ticket_post))
        .routes(routes!(login_with_ticket))
        // The guide's URLs, for scripts written against it (same handlers, not repeated in the
        // OpenAPI document).
        .route(
            "/SSO/GetLoginTicket.aspx",
            get(login_ticket_get).post(login_ticket_post),
        )
        .route("/SSO/Login.aspx", get(login_legacy))
}

/// Where a ticket is exchanged.
pub const LOGIN_PATH: &str = "/api/v1/sso/login";

/// The answer codes after `ERROR: `.
pub mod codes {
    /// `ssoid`, `Password` or `CompanyID` is missing.
    pub const INVALID_PARAMETERS: &str = "INVALIDPARAMETERS";
    pub const INVALID_COMPANY_ID: &str = "INVALIDCOMPANYID";
    /// The master SSO password is wrong.
    pub const INVALID_PASSWORD: &str = "INVALIDPASSWORD";
    /// No user has this SSO ID.
    pub const INVALID_SSO_ID: &str = "INVALIDSSOID";
    /// More than one user has this SSO ID (SSO IDs should be unique; fix it on the Organization tab).
    pub const AMBIGUOUS_SSO_ID: &str = "AMBIGUOUSSSOID";
    /// The user, or its technician group, is disabled.
    pub const USER_DISABLED: &str = "USERDISABLED";
    /// No master SSO password is set: single sign-on is not set up.
    pub const SSO_DISABLED: &str = "SSODISABLED";
    /// Too many failed requests from this address; try again in a minute.
    pub const TOO_MANY_ATTEMPTS: &str = "TOOMANYATTEMPTS";
    /// A server fault.
    pub const INTERNAL: &str = "INTERNAL";
}

fn text(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Query and form parameters, names case-insensitive (the guide writes `ssoid`, `Password`,
/// `CompanyID`; ASP.NET did not care about case either). The body wins over the query.
fn parameters(query: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for source in [query.unwrap_or("").as_bytes(), body] {
        for (k, v) in url::form_urlencoded::parse(source) {
            out.insert(k.to_ascii_lowercase(), v.into_owned());
        }
    }
    out
}

/// Request a login ticket (GET): `ssoid`, `Password`, `CompanyID` in the query.
///
/// Answers `200 text/plain`: `OK: <url>` (open the URL in the user's browser, once, within the
/// ticket's lifetime) or `ERROR: <CODE>` — `INVALIDPARAMETERS`, `INVALIDCOMPANYID`,
/// `INVALIDPASSWORD`, `INVALIDSSOID`, `AMBIGUOUSSSOID`, `USERDISABLED`, `SSODISABLED`,
/// `TOOMANYATTEMPTS`, `INTERNAL`. Also at the guide's `/SSO/GetLoginTicket.aspx`.
#[utoipa::path(get, path = "/api/v1/sso/login-ticket", tag = "integrations",
    params(("ssoid" = String, Query, description = "the user's Single Sign-On ID"),
           ("Password" = String, Query, description = "the master SSO password"),
           ("CompanyID" = String, Query, description = "the company ID shown in Global Settings")),
    responses((status = 200, description = "`OK: <url>` or `ERROR: <CODE>`", body = String, content_type = "text/plain",
        example = "OK: https://lens.example.com/api/v1/sso/login?ticket=6ab9a0f6-d3ce-4f49-8ea7-b9a76a67a0c8")))]
async fn login_ticket_get(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RawQuery(query): RawQuery,
) -> Response {
    text(ticket_answer(&state, addr, &parameters(query.as_deref(), b"")).await)
}

/// Request a login ticket (POST): the same parameters as an HTML form body
/// (`application/x-www-form-urlencoded`) or in the query.
#[utoipa::path(post, path = "/api/v1/sso/login-ticket", tag = "integrations",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`ssoid=123456&Password=secretPassword&CompanyID=654321`"),
    responses((status = 200, description = "`OK: <url>` or `ERROR: <CODE>`", body = String, content_type = "text/plain")))]
async fn login_ticket_post(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    text(ticket_answer(&state, addr, &parameters(query.as_deref(), &body)).await)
}

async fn ticket_answer(state: &AppState, addr: IpAddr, p: &HashMap<String, String>) -> String {
    match issue_ticket(state, addr, p).await {
        Ok(url) => format!("OK: {url}"),
        Err(code) => format!("ERROR: {code}"),
    }
}

async fn issue_ticket(
    state: &AppState,
    addr: IpAddr,
    p: &HashMap<String, String>,
) -> Result<String, &'static str> {
    let get = |k: &str| p.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (Some(sso_id), Some(password), Some(company)) =
        (get("ssoid"), get("password"), get("companyid"))
    else {
        return Err(codes::INVALID_PARAMETERS);
    };
    let key = addr.to_string();
    let now = Instant::now();
    if state.logins_by_address.check(&key, now).is_err() {
        return Err(codes::TOO_MANY_ATTEMPTS);
    }
    // Wrong company IDs, passwords and SSO IDs count like failed logins from this address.
    let fail = |code: &'static str| {
        state.logins_by_address.fail(&key, now);
        state
            .metrics
            .login_attempts
            .with_label_values(&["failed"])
            .inc();
        tracing::info!(%addr, code, "SSO login ticket refused");
        code
    };
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "SSO login ticket");
        codes::INTERNAL
    };
    let company_id = state.store.company_id().await.map_err(|e| internal(&e))?;
    if company.parse::<i64>().ok() != Some(company_id) {
        return Err(fail(codes::INVALID_COMPANY_ID));
    }
    let global = state.global();
    let Some(hash) = global.master_sso_password_hash() else {
        return Err(codes::SSO_DISABLED);
    };
    if password.len() > 1024 || !verify_password(password.to_string(), hash.to_string()).await {
        return Err(fail(codes::INVALID_PASSWORD));
    }
    let ids = state
        .store
        .users_by_sso_id(sso_id)
        .await
        .map_err(|e| internal(&e))?;
    let user_id = match ids.as_slice() {
        [] => return Err(fail(codes::INVALID_SSO_ID)),
        [one] => *one,
        _ => return Err(codes::AMBIGUOUS_SSO_ID),
    };
    let user = state.store.user(user_id).await.map_err(|e| internal(&e))?;
    let chain = group_chain_enabled(state, &user)
        .await
        .map_err(|e| internal(&e.message))?;
    if !user.enabled || !chain {
        return Err(codes::USER_DISABLED);
    }
    let ticket = new_ticket();
    let at = now_ms();
    let ttl = i64::from(state.config.integrations.sso_ticket_ttl_seconds) * 1000;
    state
        .store
        .insert_sso_ticket(&token_hash(&ticket), user.id, &key, at, at + ttl)
        .await
        .map_err(|e| internal(&e))?;
    tracing::info!(user_id = user.id, %addr, "SSO login ticket issued");
    Ok(format!(
        "{}{LOGIN_PATH}?ticket={ticket}",
        state.config.public_url()
    ))
}

/// A ticket in the guide's shape (a GUID): 122 random bits.
fn new_ticket() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TicketQuery {
    /// The ticket from `OK: <url>`.
    pub ticket: String,
}

/// Exchange a login ticket (once, before it expires) for a login: redirects (303) to
/// `/console#token=<token>`. The token is in the fragment, so it reaches neither server logs nor
/// `Referer` headers; the console page reads it from `location.hash`, stores it as its login token
/// and removes the fragment. Also at the guide's `/SSO/Login.aspx?Ticket=`.
#[utoipa::path(get, path = "/api/v1/sso/login", tag = "integrations", params(TicketQuery),
    responses((status = 303, description = "Logged in: `Location: /console#token=...`"),
              (status = 403, description = "Disabled account or IP restriction", body = ErrorBody),
              (status = 404, description = "Unknown ticket", body = ErrorBody),
              (status = 410, description = "The ticket was used already or expired", body = ErrorBody)))]
async fn login_with_ticket(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Query(q): Query<TicketQuery>,
) -> ApiResult<Response> {
    exchange(&state, addr, &q.ticket).await
}

async fn login_legacy(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let p = parameters(query.as_deref(), b"");
    let ticket = p
        .get("ticket")
        .ok_or_else(|| crate::error::invalid_parameter("query", "ticket: missing"))?;
    exchange(&state, addr, ticket).await
}

async fn exchange(state: &AppState, addr: IpAddr, ticket: &str) -> ApiResult<Response> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(ApiError::not_found("ticket"));
    }
    let user_id = match state
        .store
        .use_sso_ticket(&token_hash(ticket), now_ms())
        .await
    {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "ticket_expired",
                "this login ticket was used already or has expired; request a new one",
            ));
        }
        Err(StoreError::NotFound) => return Err(ApiError::not_found("ticket")),
        Err(e) => return Err(e.into()),
    };
    let user = match state.store.user(user_id).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("ticket")),
        Err(e) => return Err(e.into()),
    };
    if !user.enabled || !group_chain_enabled(state, &user).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account_disabled",
            "the account or its group is disabled",
        ));
    }
    check_access(state, &user, addr).await?;
    let (token, _, _) = issue_token(state, &user, addr, "sso").await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, format!("/console#token={token}")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_are_case_insensitive_and_the_body_wins() {
        let p = parameters(
            Some("SSOID=1&password=x&CompanyID=9"),
            b"Password=y%20z&companyid=7",
        );
        assert_eq!(p["ssoid"], "1");
        assert_eq!(p["password"], "y z");
        assert_eq!(p["companyid"], "7");
    }

    #[test]
    fn tickets_look_like_guids() {
        let t = new_ticket();
        assert_eq!(t.len(), 36);
        assert_eq!(t.matches('-').count(), 4);
        assert_ne!(t, new_ticket());
    }
}
