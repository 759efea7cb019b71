//! A JSON-over-WebSocket client socket: send frames, wait for the frame that answers one while
//! keeping the others, idle (with keep-alives) until the run stops. The Lens protocol (`lens.rs`)
//! and the Janus API (`janus.rs`) add their request conventions on top.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long one protocol step may take before the session counts as failed.
pub const STEP: Duration = Duration::from_secs(30);

pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The last request number used (each protocol numbers its own requests).
    pub next_id: u64,
    backlog: Vec<Value>,
}

impl Ws {
    /// Connects to `url`, asking for the WebSocket subprotocol `protocol` when given.
    pub async fn connect(url: &str, protocol: Option<&str>) -> anyhow::Result<Ws> {
        let mut request = url.into_client_request()?;
        if let Some(p) = protocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", p.parse()?);
        }
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("connect {url}"))?;
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

    /// The first frame (already received or arriving within `STEP`) that satisfies `pred`.
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

    /// Reads and drops frames until `stop` turns true; sends `keepalive()` every `every` when
    /// given (servers that time out silent sessions, as Janus does).
    pub async fn idle(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        keepalive: Option<(Duration, &(dyn Fn(u64) -> Value + Sync))>,
    ) -> anyhow::Result<()> {
        self.backlog.clear();
        let every = keepalive.map_or(Duration::from_secs(3600), |(d, _)| d);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                v = self.read() => { v?; }
                _ = tick.tick() => {
                    if let Some((_, frame)) = keepalive {
                        self.next_id += 1;
                        let f = frame(self.next_id);
                        self.send(&f).await?;
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
