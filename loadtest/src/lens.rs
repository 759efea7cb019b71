//! The Lens server as its clients see it: the HTTP API (bootstrap administrator, technicians, PIN
//! sessions) and the WebSocket protocol of signaling/PROTOCOL.md, and one simulated session from
//! PIN to `end`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use crate::media::Media;
use crate::peer::{LOOPBACK, PeerContext, PendingCustomer, technician};
use crate::stats::Stats;
use crate::ws::Ws;

pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| path.to_owned())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, body) = self.call(method, path, token, body).await?;
        if status != want {
            bail!("{path}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// Logs in; `Ok(None)` on 401 (wrong credentials).
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Option<Value>> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        match status {
            200 => Ok(Some(body)),
            401 => Ok(None),
            _ => bail!("login {email}: HTTP {status}: {body}"),
        }
    }

    /// The id of the technician group `name`, created under the root when missing.
    pub async fn group(&self, admin: &str, name: &str) -> anyhow::Result<i64> {
        let list = self
            .expect(
                reqwest::Method::GET,
                "/api/v1/technician-groups",
                Some(admin),
                None,
                200,
            )
            .await?;
        let items = list
            .as_array()
            .or_else(|| list["items"].as_array())
            .cloned()
            .unwrap_or_default();
        if let Some(g) = items.iter().find(|g| g["name"] == name) {
            return g["id"].as_i64().context("group id");
        }
        let g = self
            .expect(
                reqwest::Method::POST,
                "/api/v1/technician-groups",
                Some(admin),
                Some(json!({"name": name, "parent_id": null})),
                201,
            )
            .await?;
        g["id"].as_i64().context("group id")
    }

    /// Sets the group's VoIP audio on or off.
    pub async fn set_audio(&self, admin: &str, group: i64, audio: bool) -> anyhow::Result<()> {
        let path = format!("/api/v1/technician-groups/{group}/settings");
        let mut doc = self
            .expect(reqwest::Method::GET, &path, Some(admin), None, 200)
            .await?;
        doc["audio"]["enabled"] = json!(audio);
        self.expect(reqwest::Method::PUT, &path, Some(admin), Some(doc), 200)
            .await?;
        Ok(())
    }

    /// The emails of the technicians the administrator manages.
    pub async fn technician_emails(&self, admin: &str) -> anyhow::Result<Vec<String>> {
        let list = self
            .expect(
                reqwest::Method::GET,
                "/api/v1/technicians",
                Some(admin),
                None,
                200,
            )
            .await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["email"].as_str().map(str::to_owned))
            .collect())
    }

    /// A technician's token. An existing technician logs in with `password`; a new one is created
    /// with a first password that is then changed to `password` (by default an administrator-made
    /// password must be changed). Logins are never tried blindly: failures count against the
    /// server's per-address limit.
    pub async fn technician_token(
        &self,
        admin: &str,
        group: i64,
        email: &str,
        password: &str,
        exists: bool,
    ) -> anyhow::Result<String> {
        if exists {
            let body = self
                .login(email, password)
                .await?
                .ok_or_else(|| anyhow!("{email} exists but does not take --tech-password"))?;
            return body["token"]
                .as_str()
                .map(str::to_owned)
                .context("token in login reply");
        }
        let first = format!("{password}-first");
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/technicians",
                Some(admin),
                Some(
                    json!({"name": email.split('@').next().unwrap_or(email), "email": email,
                            "password": first, "group_id": group}),
                ),
            )
            .await?;
        if status != 201 {
            bail!(
                "creating technician {email}: HTTP {status}: {body} (an existing user with another password?)"
            );
        }
        let body = self
            .login(email, &first)
            .await?
            .ok_or_else(|| anyhow!("{email}: the new technician cannot log in"))?;
        let token = body["token"].as_str().context("token")?.to_owned();
        if body["must_change_password"] == true {
            self.expect(
                reqwest::Method::POST,
                "/api/v1/auth/password",
                Some(&token),
                Some(json!({"old_password": first, "new_password": password})),
                204,
            )
            .await?;
        }
        Ok(token)
    }

    pub async fn create_pin(&self, token: &str) -> anyhow::Result<(i64, String)> {
        let s = self
            .expect(
                reqwest::Method::POST,
                "/api/v1/sessions",
                Some(token),
                Some(json!({"method": "pin"})),
                201,
            )
            .await?;
        Ok((
            s["id"].as_i64().context("session id")?,
            s["pin"].as_str().context("pin")?.to_owned(),
        ))
    }

    fn ws_url(&self, path: &str) -> String {
        let base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        format!("{base}{path}")
    }

    async fn ws(&self, path: &str) -> anyhow::Result<Ws> {
        Ws::connect(&self.ws_url(path), None).await
    }
}

impl Ws {
    /// Sends a Lens protocol request and returns its `ok` (an `error` reply is an error).
    pub async fn request(&mut self, mut frame: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = format!("l{}", self.next_id);
        frame["id"] = json!(id);
        self.send(&frame).await?;
        let r = self
            .until(&format!("reply to {}", frame["type"]), |v| {
                v["id"] == id.as_str() && (v["type"] == "ok" || v["type"] == "error")
            })
            .await?;
        if r["type"] != "ok" {
            bail!("{} refused: {r}", frame["type"]);
        }
        Ok(r)
    }
}

/// A technician ready to take one session at a time.
pub struct Technician {
    pub token: String,
}

/// Runs one session from PIN to end; the set-up time and media go into `stats`. The console and
/// the API calls go to `api`, the phone's socket to `phone_api` (another node: routed signaling).
pub async fn session(
    api: Arc<Api>,
    phone_api: Arc<Api>,
    tech: Arc<Technician>,
    media: Arc<Media>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut con = api.ws("/ws/console").await?;
    con.request(json!({"type": "hello", "v": 1, "token": tech.token}))
        .await?;
    let (id, pin) = api.create_pin(&tech.token).await?;

    // The customer types the PIN: the set-up clock starts.
    let t0 = Instant::now();
    let mut cus = phone_api.ws("/ws/customer").await?;
    let joined = cus
        .request(json!({"type": "join", "v": 1, "code": pin,
                        "device": {"platform": "Android 15", "model": "loadtest", "app": "lens-loadtest"}}))
        .await?;
    let audio = joined["audio"] == true;
    cus.request(json!({"type": "ready"})).await?;
    con.until("Waiting", |v| {
        v["type"] == "session" && v["session"]["id"] == id && v["session"]["status"] == "Waiting"
    })
    .await?;
    con.request(json!({"type": "pickup", "session_id": id}))
        .await?;
    cus.until("Active", |v| {
        v["type"] == "status" && v["status"] == "Active"
    })
    .await?;

    let phone = PendingCustomer::new(audio, media.codec, LOOPBACK).await?;
    let answer = cus
        .request(json!({"type": "offer", "sdp": phone.offer}))
        .await?;
    let answer = answer["sdp"].as_str().context("answer sdp")?.to_owned();
    let phone_task = phone.start(&answer, PeerContext::new(&media, &stats, &stop, None))?;
    let offer = con
        .until("offer", |v| v["type"] == "offer" && v["session_id"] == id)
        .await?;
    let (first_tx, first_rx) = oneshot::channel();
    let (answer, tech_task) = technician(
        offer["sdp"].as_str().context("offer sdp")?,
        LOOPBACK,
        PeerContext::new(&media, &stats, &stop, Some(first_tx)),
    )
    .await?;
    con.send(&json!({"type": "answer", "session_id": id, "sdp": answer}))
        .await?;
    stats
        .first_video(t0, first_rx)
        .await
        .with_context(|| format!("session {id}"))?;

    // Hold: both sockets keep reading (keep-alive) until the run says stop.
    let (mut s1, mut s2) = (stop.clone(), stop.clone());
    let held = tokio::try_join!(con.idle(&mut s1, None), cus.idle(&mut s2, None));
    stats.sessions_live.fetch_sub(1, Relaxed);
    held?;
    let ended = con.request(json!({"type": "end", "session_id": id})).await;
    let _ = tokio::join!(phone_task, tech_task);
    cus.close().await;
    con.close().await;
    ended.map(|_| ())
}
