//! Single sign-on as the guide describes it: GetLoginTicket answers `OK: <url>` or `ERROR: <CODE>`;
//! the URL's ticket logs the user in once, briefly; the three allowed login methods hold on both
//! login paths.

use crate::common;

use common::*;
use serde_json::{Value, json};

const SSO_PASSWORD: &str = "Sso-Secret-77";

async fn set_sso(s: &TestServer, m: &str, method: &str, password: Option<&str>) -> Value {
    let mut sso = json!({"allowed_login_method": method});
    if let Some(p) = password {
        sso["master_sso_password"] = json!(p);
    }
    s.change_global_settings(m, |g| g["single_sign_on"] = sso)
        .await
}

/// A client that does not follow redirects, to see where the ticket URL sends the browser.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn ticket(s: &TestServer, sso_id: &str, password: &str, company: &str) -> String {
    let url = format!(
        "{}/SSO/GetLoginTicket.aspx?ssoid={sso_id}&Password={password}&CompanyID={company}",
        s.base
    );
    let resp = browser().get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    resp.text().await.unwrap()
}

/// Opens the ticket URL; returns the status and, on success, the login token from the redirect.
async fn open(url: &str) -> (u16, Option<String>, Value) {
    let resp = browser().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let token = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.strip_prefix("/console#token="))
        .map(str::to_string);
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, token, body)
}

/// The URL of an `OK: <url>` answer. The test server's public URL names its configured listen
/// address (port 0), so the path is opened on the address it really listens on.
fn url_of(s: &TestServer, answer: &str) -> String {
    let url = answer
        .strip_prefix("OK: ")
        .unwrap_or_else(|| panic!("not OK: {answer}"));
    assert!(url.starts_with(&s.state.config.public_url()), "{url}");
    let path = &url[s.state.config.public_url().len()..];
    format!("{}{path}", s.base)
}

#[tokio::test]
async fn sso_on_sqlite() {
    sso(start().await).await;
}

#[tokio::test]
async fn sso_on_postgres() {
    if let Some(s) = start_on(Backend::Postgres, |_| {}).await {
        sso(s).await;
    }
}

async fn sso(s: TestServer) {
    let m = s.master().await;
    let g = s.create_group(&m, "Support", None).await;
    let sam = s
        .create_user(&m, "technicians", "sam@example.com", Some(g))
        .await;
    s.patch(
        &format!("/api/v1/technicians/{sam}"),
        &m,
        json!({"sso_id": "S-1"}),
    )
    .await
    .expect(200);
    s.create_user(&m, "technicians", "nora@example.com", Some(g))
        .await;

    // Global Settings show the company ID and a sample request.
    let v = s.get("/api/v1/global-settings", &m).await.expect(200);
    let company = v["api"]["company_id"].as_i64().unwrap().to_string();
    assert_eq!(
        v["api"]["sample_request"],
        format!(
            "{}?ssoid=123456&Password=secretPassword&CompanyID={company}",
            v["api"]["sso_url"].as_str().unwrap()
        )
    );
    assert!(
        v["api"]["sso_url"]
            .as_str()
            .unwrap()
            .ends_with("/SSO/GetLoginTicket.aspx")
    );

    // Without a master SSO password, SSO is not set up.
    assert_eq!(
        ticket(&s, "S-1", SSO_PASSWORD, &company).await,
        "ERROR: SSODISABLED"
    );
    let v = set_sso(&s, &m, "standard_or_sso", Some(SSO_PASSWORD)).await;
    assert_eq!(
        v["api"]["company_id"].as_i64().unwrap().to_string(),
        company
    );

    // Option one, standard or SSO: both work.
    s.login("sam@example.com", USER_PASSWORD).await.expect(200);
    let answer = ticket(&s, "S-1", SSO_PASSWORD, &company).await;
    let url = url_of(&s, &answer);
    assert!(url.contains("/api/v1/sso/login?ticket="), "{url}");
    let (status, token, _) = open(&url).await;
    assert_eq!(status, 303);
    let token = token.expect("a login token in the redirect");
    let me = s.get("/api/v1/auth/me", &token).await.expect(200);
    assert_eq!(me["id"], sam);
    // A ticket works once.
    let (status, token, body) = open(&url).await;
    assert_eq!((status, token), (410, None));
    assert_eq!(body["error"]["code"], "ticket_expired");
    // An unknown ticket.
    let (status, _, _) = open(&format!("{}/api/v1/sso/login?ticket=nope", s.base)).await;
    assert_eq!(status, 404);

    // The POST alias with a form body, and the guide's Login.aspx form of the URL.
    let resp = browser()
        .post(format!("{}/api/v1/sso/login-ticket", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "ssoid=S-1&Password={SSO_PASSWORD}&CompanyID={company}"
        ))
        .send()
        .await
        .unwrap();
    let answer = resp.text().await.unwrap();
    let ticket_value = url_of(&s, &answer)
        .split("ticket=")
        .nth(1)
        .unwrap()
        .to_string();
    let (status, token, _) =
        open(&format!("{}/SSO/Login.aspx?Ticket={ticket_value}", s.base)).await;
    assert_eq!(status, 303);
    assert!(token.is_some());

    // A password the administrator set, still owed its forced change, holds back a password login
    // but not a single sign-on login: the password is not how an SSO user logs in.
    s.change_global_settings(&m, |g| {
        g["password_policy"]["admin_change_forces_password_change"] = json!(true);
    })
    .await;
    s.patch(
        &format!("/api/v1/technicians/{sam}"),
        &m,
        json!({"password": "Admin-Set9"}),
    )
    .await
    .expect(200);
    let by_password = s.login("sam@example.com", "Admin-Set9").await.expect(200);
    assert_eq!(by_password["must_change_password"], true);
    let r = s
        .get("/api/v1/sessions", by_password["token"].as_str().unwrap())
        .await;
    assert_eq!(r.error_code(), "password_change_required");
    let (status, token, _) = open(&url_of(
        &s,
        &ticket(&s, "S-1", SSO_PASSWORD, &company).await,
    ))
    .await;
    assert_eq!(status, 303);
    s.get("/api/v1/sessions", &token.unwrap()).await.expect(200);
    s.patch(
        &format!("/api/v1/technicians/{sam}"),
        &m,
        json!({"password": USER_PASSWORD}),
    )
    .await
    .expect(200);

    // Errors.
    assert_eq!(
        ticket(&s, "S-1", "wrong-password", &company).await,
        "ERROR: INVALIDPASSWORD"
    );
    assert_eq!(
        ticket(&s, "nobody", SSO_PASSWORD, &company).await,
        "ERROR: INVALIDSSOID"
    );
    assert_eq!(
        ticket(&s, "S-1", SSO_PASSWORD, "1").await,
        "ERROR: INVALIDCOMPANYID"
    );
    assert_eq!(
        ticket(&s, "S-1", "", &company).await,
        "ERROR: INVALIDPARAMETERS"
    );

    // An expired ticket.
    let url = url_of(&s, &ticket(&s, "S-1", SSO_PASSWORD, &company).await);
    sqlx::query("UPDATE sso_tickets SET expires_at = 0 WHERE used_at IS NULL")
        .execute(s.state.store.pool())
        .await
        .unwrap();
    let (status, _, body) = open(&url).await;
    assert_eq!(status, 410);
    assert_eq!(body["error"]["code"], "ticket_expired");

    // A disabled user gets no ticket, and a ticket issued before the disable does not log in.
    let url = url_of(&s, &ticket(&s, "S-1", SSO_PASSWORD, &company).await);
    s.patch(
        &format!("/api/v1/technicians/{sam}"),
        &m,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(
        ticket(&s, "S-1", SSO_PASSWORD, &company).await,
        "ERROR: USERDISABLED"
    );
    let (status, token, _) = open(&url).await;
    assert_eq!((status, token), (403, None));
    s.patch(
        &format!("/api/v1/technicians/{sam}"),
        &m,
        json!({"enabled": true}),
    )
    .await
    .expect(200);

    // Option two, SSO only: nobody logs in with a password.
    set_sso(&s, &m, "sso_only", None).await;
    for email in ["sam@example.com", "nora@example.com"] {
        let r = s.login(email, USER_PASSWORD).await;
        assert_eq!(r.status.as_u16(), 403, "{email}");
        assert_eq!(r.error_code(), "sso_required");
    }
    let (status, token, _) = open(&url_of(
        &s,
        &ticket(&s, "S-1", SSO_PASSWORD, &company).await,
    ))
    .await;
    assert_eq!(status, 303);
    assert!(token.is_some());
    // A wrong password is still a wrong password (no hint that SSO would be required).
    let r = s.login("nora@example.com", "Wrong-Pass1").await;
    assert_eq!(r.status.as_u16(), 401);

    // Option three: SSO for users with an SSO ID, standard login for those without.
    set_sso(
        &s,
        &m,
        "sso_only_with_standard_for_users_without_sso_id",
        None,
    )
    .await;
    let r = s.login("sam@example.com", USER_PASSWORD).await;
    assert_eq!(r.error_code(), "sso_required");
    s.login("nora@example.com", USER_PASSWORD).await.expect(200);
    let (status, _, _) = open(&url_of(
        &s,
        &ticket(&s, "S-1", SSO_PASSWORD, &company).await,
    ))
    .await;
    assert_eq!(status, 303);

    // SSO logins are recorded as such.
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT method FROM logins WHERE user_id = $1 AND method = 'sso'")
            .bind(sam)
            .fetch_all(s.state.store.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 5);
}
