//! The second comparison target: Janus (Debian's `janus` package) with its VideoRoom plugin,
//! started by this tool as a child process with a generated minimal configuration and driven
//! through Janus' own WebSocket API, with the same str0m peers and media as the Lens sessions.
//!
//! One loadtest session = one VideoRoom room: the phone is its publisher (VP8, and Opus when audio
//! is on) and the technician its one subscriber, each with its own Janus session on its own
//! WebSocket, as two separate clients would be. The VideoRoom has no path back from a subscriber,
//! so the technician's audio (Lens' second audio direction) is not sent to Janus.
//!
//! Janus 1.1 never gathers ICE candidates on a loopback interface (its ICE set-up skips them, and
//! libnice then gathers every other interface), so Janus and its peers use this machine's own
//! non-loopback IPv4 address instead of 127.0.0.1. Datagrams between two local addresses still
//! go through the kernel's loopback device (`ip route get <own address>` says `local ... dev lo`),
//! never a network card: the same kernel path as the other targets.

use std::net::{IpAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use crate::media::{Media, VideoCodec};
use crate::peer::{PeerContext, PendingCustomer, technician};
use crate::stats::Stats;
use crate::ws::Ws;

/// Janus' WebSocket transport serves only clients that ask for this subprotocol.
const PROTOCOL: &str = "janus-protocol";
/// Janus ends sessions silent for its `session_timeout` (60 s here).
const KEEPALIVE: Duration = Duration::from_secs(20);

/// Where Debian (and a source install) put Janus' plugins and transports.
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/janus",
    "/usr/lib/aarch64-linux-gnu/janus",
    "/usr/lib/janus",
    "/usr/local/lib/janus",
    "/opt/janus/lib/janus",
];

/// A running Janus child process.
pub struct Janus {
    pub child: Child,
    /// The WebSocket API's URL.
    pub url: String,
    pub log: PathBuf,
    /// The address Janus gathers its candidates on; the peers bind to it too.
    pub ip: IpAddr,
}

/// This machine's source address for outside traffic (a UDP `connect` sends nothing; it asks
/// the routing table).
fn own_address() -> anyhow::Result<IpAddr> {
    let probe = UdpSocket::bind("0.0.0.0:0")?;
    probe
        .connect("192.0.2.1:9")
        .or_else(|_| probe.connect("203.0.113.1:9"))
        .context("no route off this machine: pass --janus-ip")?;
    let ip = probe.local_addr()?.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        bail!("no non-loopback IPv4 address for Janus: pass --janus-ip");
    }
    Ok(ip)
}

/// Writes a minimal configuration into `dir` (only the VideoRoom plugin and the WebSocket
/// transport, on 127.0.0.1; ICE on `ip` only, default: this machine's own address; no STUN or
/// TURN) and starts `janus` with it. Returns once the WebSocket port accepts connections.
pub fn spawn(
    dir: &Path,
    ip: Option<IpAddr>,
    cpus: Option<&crate::sys::CpuList>,
) -> anyhow::Result<Janus> {
    let ip = match ip {
        Some(ip) => ip,
        None => own_address()?,
    };
    let lib = LIB_DIRS
        .iter()
        .map(Path::new)
        .find(|d| d.join("plugins/libjanus_videoroom.so").exists())
        .context("Janus' VideoRoom plugin not found (install Janus: apt-get install janus)")?;
    let dir = std::path::absolute(dir)?;
    for sub in ["plugins", "transports", "events", "loggers"] {
        let d = dir.join(sub);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
    }
    // Janus loads every library in its folders: link only the two it needs.
    for (sub, so) in [
        ("plugins", "libjanus_videoroom.so"),
        ("transports", "libjanus_websockets.so"),
    ] {
        let from = lib.join(sub).join(so);
        if !from.exists() {
            bail!("{} not found (apt-get install janus)", from.display());
        }
        std::os::unix::fs::symlink(&from, dir.join(sub).join(so))?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    std::fs::write(dir.join("janus.jcfg"), core_config(&dir, ip))?;
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
    std::fs::write(
        dir.join("janus.transport.websockets.jcfg"),
        format!(
            "general: {{\n\tjson = \"compact\"\n\tws = true\n\tws_port = {port}\n\
             \tws_ip = \"127.0.0.1\"\n\twss = false\n}}\n\
             admin: {{\n\tadmin_ws = false\n\tadmin_wss = false\n}}\n"
        ),
    )?;
    let log = dir.join("janus.log");
    let config = dir.join("janus.jcfg");
    let mut command = Command::new("janus");
    if let Some(cpus) = cpus {
        cpus.pin_command(&mut command);
    }
    let mut child = command
        .arg(format!("--configs-folder={}", dir.display()))
        .arg(format!("--config={}", config.display()))
        .arg(format!("--log-file={}", log.display()))
        .arg(format!("--interface={ip}"))
        .args(["--disable-stdout", "--disable-colors"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running janus (install it: apt-get install janus)")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "janus exited at start ({status}); its log ({}):\n{}",
                log.display(),
                tail(&log)
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "janus did not listen on port {port} within 20 s:\n{}",
                tail(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Janus {
        child,
        url: format!("ws://127.0.0.1:{port}"),
        log,
        ip,
    })
}

/// The core configuration: host candidates on `ip` only (`ice_enforce_list`); warnings and
/// errors only in the log (logging costs CPU).
fn core_config(dir: &Path, ip: IpAddr) -> String {
    let d = dir.display();
    format!(
        "general: {{\n\
         \tconfigs_folder = \"{d}\"\n\
         \tplugins_folder = \"{d}/plugins\"\n\
         \ttransports_folder = \"{d}/transports\"\n\
         \tevents_folder = \"{d}/events\"\n\
         \tloggers_folder = \"{d}/loggers\"\n\
         \tdebug_level = 3\n\
         \tserver_name = \"lens-loadtest\"\n\
         \tsession_timeout = 60\n\
         }}\n\
         certificates: {{\n}}\n\
         media: {{\n\trtp_port_range = \"20000-60000\"\n}}\n\
         nat: {{\n\tnice_debug = false\n\tice_enforce_list = \"{ip}\"\n\tignore_mdns = true\n}}\n\
         plugins: {{\n}}\n\
         transports: {{\n}}\n\
         events: {{\n}}\n\
         loggers: {{\n}}\n"
    )
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Ws {
    /// Sends a Janus API request (a `transaction` is added, and `session_id`/`handle_id` when
    /// given) and returns its answer: `success`, or the plugin's `event` after an `ack`. A Janus
    /// `error`, or a plugin `error` in the answer's data, is an error.
    async fn janus(
        &mut self,
        mut frame: Value,
        session: Option<u64>,
        handle: Option<u64>,
    ) -> anyhow::Result<Value> {
        self.next_id += 1;
        let tx = format!("j{}", self.next_id);
        frame["transaction"] = json!(tx);
        if let Some(s) = session {
            frame["session_id"] = json!(s);
        }
        if let Some(h) = handle {
            frame["handle_id"] = json!(h);
        }
        self.send(&frame).await?;
        let what = format!("Janus reply to {}", frame["janus"]);
        let r = self
            .until(&what, |v| {
                v["transaction"] == tx.as_str() && v["janus"] != "ack"
            })
            .await?;
        if r["janus"] == "error" {
            bail!("Janus refused {}: {}", frame["janus"], r["error"]);
        }
        let data = &r["plugindata"]["data"];
        if !data["error"].is_null() {
            bail!("VideoRoom refused {}: {}", frame["body"]["request"], data);
        }
        Ok(r)
    }

    /// A Janus session with a handle on the VideoRoom plugin: (session, handle).
    async fn videoroom_handle(&mut self) -> anyhow::Result<(u64, u64)> {
        let s = self.janus(json!({"janus": "create"}), None, None).await?;
        let session = s["data"]["id"].as_u64().context("session id")?;
        let h = self
            .janus(
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
                Some(session),
                None,
            )
            .await?;
        Ok((session, h["data"]["id"].as_u64().context("handle id")?))
    }

    async fn message(
        &mut self,
        (session, handle): (u64, u64),
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut frame = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            frame["jsep"] = j;
        }
        self.janus(frame, Some(session), Some(handle)).await
    }

    /// Our SDP carries all our candidates: tells Janus there are none to trickle.
    async fn end_of_candidates(&mut self, (session, handle): (u64, u64)) -> anyhow::Result<()> {
        self.next_id += 1;
        self.send(
            &json!({"janus": "trickle", "candidate": {"completed": true},
                         "transaction": format!("j{}", self.next_id),
                         "session_id": session, "handle_id": handle}),
        )
        .await
    }
}

/// Runs one session (room `room`) from the phone's connect to the end; set-up time and media go
/// into `stats`. The set-up clock starts when the phone opens its WebSocket (where a Lens phone
/// sends the PIN) and stops at the first video packet at the technician.
pub async fn session(
    url: &str,
    ip: IpAddr,
    room: u64,
    audio: bool,
    media: Arc<Media>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut phone_ws = Ws::connect(url, Some(PROTOCOL)).await?;
    let ph = phone_ws.videoroom_handle().await?;
    phone_ws
        .message(
            ph,
            json!({"request": "create", "room": room, "publishers": 1, "bitrate": 0,
                   "fir_freq": 0, "audiocodec": "opus", "videocodec": janus_codec(media.codec),
                   "notify_joining": false, "is_private": true}),
            None,
        )
        .await?;
    let joined = phone_ws
        .message(
            ph,
            json!({"request": "join", "room": room, "ptype": "publisher", "display": "phone"}),
            None,
        )
        .await?;
    let feed = joined["plugindata"]["data"]["id"]
        .as_u64()
        .context("publisher id")?;
    let phone = PendingCustomer::new(audio, media.codec, ip).await?;
    let published = phone_ws
        .message(
            ph,
            json!({"request": "publish"}),
            Some(json!({"type": "offer", "sdp": phone.offer})),
        )
        .await?;
    phone_ws.end_of_candidates(ph).await?;
    let answer = published["jsep"]["sdp"]
        .as_str()
        .context("no answer to the publisher's offer")?;
    let phone_task = phone.start(answer, PeerContext::new(&media, &stats, &stop, None))?;

    // The VideoRoom offers a feed to subscribers only once its publisher's PeerConnection is up.
    phone_ws
        .until("the publisher's webrtcup", |v| {
            v["janus"] == "webrtcup" && v["sender"] == ph.1
        })
        .await?;

    let mut tech_ws = Ws::connect(url, Some(PROTOCOL)).await?;
    let th = tech_ws.videoroom_handle().await?;
    let attached = tech_ws
        .message(
            th,
            json!({"request": "join", "room": room, "ptype": "subscriber",
                   "streams": [{"feed": feed}]}),
            None,
        )
        .await?;
    let offer = attached["jsep"]["sdp"]
        .as_str()
        .context("no offer for the subscriber")?;
    let (first_tx, first_rx) = oneshot::channel();
    let (answer, tech_task) = technician(
        offer,
        ip,
        PeerContext::new(&media, &stats, &stop, Some(first_tx)),
    )
    .await?;
    tech_ws
        .message(
            th,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
        )
        .await?;
    tech_ws.end_of_candidates(th).await?;
    stats
        .first_video(t0, first_rx)
        .await
        .with_context(|| format!("room {room}"))?;

    let keepalive = |session: u64| move |n: u64| json!({"janus": "keepalive", "session_id": session, "transaction": format!("k{n}")});
    let (ka1, ka2) = (keepalive(ph.0), keepalive(th.0));
    let (mut s1, mut s2) = (stop.clone(), stop.clone());
    let held = tokio::try_join!(
        phone_ws.idle(&mut s1, Some((KEEPALIVE, &ka1))),
        tech_ws.idle(&mut s2, Some((KEEPALIVE, &ka2)))
    );
    stats.sessions_live.fetch_sub(1, Relaxed);
    held?;
    for (ws, (session, _)) in [(&mut tech_ws, th), (&mut phone_ws, ph)] {
        let _ = ws
            .janus(json!({"janus": "destroy"}), Some(session), None)
            .await;
    }
    let _ = tokio::join!(phone_task, tech_task);
    phone_ws.close().await;
    tech_ws.close().await;
    Ok(())
}

/// The VideoRoom's name for the camera's codec.
fn janus_codec(video: VideoCodec) -> &'static str {
    match video {
        VideoCodec::Vp8 => "vp8",
        VideoCodec::H264 => "h264",
    }
}
