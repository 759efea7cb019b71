//! The Lens server as its clients see it: the HTTP API (bootstrap administrator, technicians, PIN
//! sessions) and the WebSocket protocol of signaling/PROTOCOL.md, and one simulated session from
//! PIN to `end`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::media::Media;
use crate::peer::{PeerContext, PendingCustomer, technician};
use crate::stats::Stats;

/// How long one protocol step may take before the session counts as failed.
const STEP: Duration = Duration::from_secs(30);

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
}

/// A protocol socket: requests with ids, waiting for frames while keeping the others.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    backlog: Vec<Value>,
}

impl Ws {
    pub async fn connect(api: &Api, path: &str) -> anyhow::Result<Ws> {
        let (stream, _) = tokio_tungstenite::connect_async(api.ws_url(path))
            .await
            .with_context(|| format!("connect {path}"))?;
        Ok(Ws {
            stream,
            next_id: 0,
            backlog: Vec::new(),
        })
    }

    pub async fn send(&mut self, frame: &Value) -> anyhow::Result<()> {
        self.stream
            .send(Message::Text(frame.to_string().into()))
            .await?;
        Ok(())
    }

    /// The next text frame as JSON (pings are answered by tungstenite while reading).
    async fn read(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(Message::Close(f))) => bail!("socket closed: {f:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("socket closed"),
            }
        }
    }

    pub async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let v = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| anyhow!("no {what} within {STEP:?}"))??;
            if pred(&v) {
                return Ok(v);
            }
            if self.backlog.len() < 256 {
                self.backlog.push(v);
            }
        }
    }

    /// Sends a request and returns its `ok` (an `error` reply is an error).
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

    /// Reads and drops frames (keeps the socket alive) until `stop` turns true.
    pub async fn idle(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        self.backlog.clear();
        loop {
            tokio::select! {
                v = self.read() => { v?; }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// A technician ready to take one session at a time.
pub struct Technician {
    pub token: String,
}

/// Runs one session from PIN to end; the set-up time and media go into `stats`.
pub async fn session(
    api: Arc<Api>,
    tech: Arc<Technician>,
    media: Arc<Media>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut con = Ws::connect(&api, "/ws/console").await?;
    con.request(json!({"type": "hello", "v": 1, "token": tech.token}))
        .await?;
    let (id, pin) = api.create_pin(&tech.token).await?;

    // The customer types the PIN: the set-up clock starts.
    let t0 = Instant::now();
    let mut cus = Ws::connect(&api, "/ws/customer").await?;
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

    let phone = PendingCustomer::new(audio).await?;
    let answer = cus
        .request(json!({"type": "offer", "sdp": phone.offer}))
        .await?;
    let answer = answer["sdp"].as_str().context("answer sdp")?.to_owned();
    let phone_task = phone.start(
        &answer,
        PeerContext {
            media: media.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            first_video: None,
        },
    )?;
    let offer = con
        .until("offer", |v| v["type"] == "offer" && v["session_id"] == id)
        .await?;
    let (first_tx, first_rx) = oneshot::channel();
    let (answer, tech_task) = technician(
        offer["sdp"].as_str().context("offer sdp")?,
        PeerContext {
            media,
            stats: stats.clone(),
            stop: stop.clone(),
            first_video: Some(first_tx),
        },
    )
    .await?;
    con.send(&json!({"type": "answer", "session_id": id, "sdp": answer}))
        .await?;
    let first = tokio::time::timeout(STEP, first_rx)
        .await
        .map_err(|_| anyhow!("session {id}: no video at the technician within {STEP:?}"))?
        .map_err(|_| anyhow!("session {id}: the technician's peer stopped before video"))?;
    stats
        .setup
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((first - t0).as_secs_f64() * 1000.0);
    stats.sessions_live.fetch_add(1, Relaxed);

    // Hold: both sockets keep reading (keep-alive) until the run says stop.
    let (mut s1, mut s2) = (stop.clone(), stop.clone());
    let held = tokio::try_join!(con.idle(&mut s1), cus.idle(&mut s2));
    stats.sessions_live.fetch_sub(1, Relaxed);
    held?;
    let ended = con.request(json!({"type": "end", "session_id": id})).await;
    let _ = tokio::join!(phone_task, tech_task);
    cus.close().await;
    con.close().await;
    ended.map(|_| ())
}
