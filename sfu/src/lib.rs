//! WebRTC transport and RTP forwarding for Lens Relay: one room per session, two peers per room.
//!
//! ```text
//!   caller (signaling, any thread)           the session's shard (owns its Rtcs; one UDP port)
//!   ──────────────────────────────           ─────────────────────────────────────────────────
//!   SfuHandle::customer_offer ── build Rtc, accept offer ──► Command::AddPeer ─┐
//!     (same peer connection re-offering, e.g. ICE restart) ─► Command::Renegotiate ─┤
//!   SfuHandle::technician_offer ─ build Rtc, make offer (kept pending)          │
//!   SfuHandle::technician_answer ─ accept answer ─────────► Command::AddPeer ─┤
//!   set_flowing / hold / resume / stop / candidate ───────► Command::… ───────┤
//!                                                                             ▼
//!          UDP datagram ─► demultiplex (address map, then Rtc::accepts) ─► Rtc::handle_input
//!          Rtc::poll_output ─► Transmit (socket) | Event::RtpPacket ─► other peer's StreamTx
//!                              └─► PeerEvent (media up / down) ─► SfuHandle::peer_events
//! ```
//!
//! SDP work is CPU-only, so it is done on the caller's thread and never waits on a shard: every
//! call on [`SfuHandle`] returns at once. The work is split over [`SfuConfig::shards`] engine
//! shards, one thread each; a session's room (both peers) lives in one shard, chosen when the
//! room opens (the one with the fewest rooms), and every command about it goes to that shard.
//! All shards share the one UDP socket: shard 0 reads it in batches and hands each datagram to
//! its shard, every shard sends on it directly (see `shard.rs` for the routing and why). Forwarding is in str0m's RTP mode: packets keep their payload,
//! marker bit, RTP timestamp and header extension values; str0m re-serialises the extensions with
//! the receiving peer's negotiated ids. See README.md for what is built and what is not.

mod codecs;
pub mod demux;
mod early;
mod engine;
pub mod framing;
mod io;
pub mod keyframe;
mod load;
mod metrics;
mod recovery;
mod shard;
mod socket;
mod tap;
mod tcp;

pub use codecs::VideoCodec;
pub use metrics::{
    FORWARD_LATENCY_BOUNDS, LatencyHistogram, MetricsSnapshot, TcpSnapshot, Transport,
};
pub use shard::{MAX_SHARDS, default_shards};
pub use socket::{DEFAULT_SOCKET_BUFFER_BYTES, SocketBuffers};
pub use tap::{TapCodec, TapEvent, TapPacket};
pub use tcp::{
    HANDSHAKE_TIMEOUT as TCP_HANDSHAKE_TIMEOUT, MAX_UNAUTHENTICATED as TCP_MAX_UNAUTHENTICATED,
};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, MediaKind as StrKind, Mid};
use str0m::net::TcpType;
use str0m::rtp::NackConfig;
use str0m::{Candidate, CandidateKind, Rtc, RtcConfig};
use tokio::sync::{mpsc, oneshot};

use engine::Command;

/// The session id used by signaling (`signaling::session::SessionId`).
pub type SessionId = i64;

/// The two sides of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// The phone: sends video, sends and receives audio.
    Customer,
    /// The console: receives video, sends and receives audio.
    Technician,
}

/// Which media a mute (flowing) change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

/// A peer's media path came up (ICE and DTLS connected) or went down (ICE disconnected, or an
/// ICE restart under way). Closing or replacing a peer on request reports nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerEvent {
    pub session: SessionId,
    pub role: PeerRole,
    pub up: bool,
}

/// The answer to a customer's offer. A new peer connection is answered at once (SDP work on the
/// caller's thread); a re-offer from the live one (ICE restart, renegotiation) is answered by the
/// session's shard, which owns that `Rtc`.
#[derive(Debug)]
pub enum CustomerAnswer {
    Ready(String),
    Pending(oneshot::Receiver<Result<String, SfuError>>),
}

impl CustomerAnswer {
    /// The answer's SDP.
    pub async fn sdp(self) -> Result<String, SfuError> {
        match self {
            CustomerAnswer::Ready(sdp) => Ok(sdp),
            CustomerAnswer::Pending(reply) => reply.await.map_err(|_| SfuError::Stopped)?,
        }
    }
}

/// Where the SFU listens and what it advertises.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The one UDP socket for every peer (port 0 picks a free port).
    pub bind: SocketAddr,
    /// The address put in host candidates (for NAT); `None` = the bound address, which must
    /// then not be unspecified (0.0.0.0).
    pub public_ip: Option<IpAddr>,
    /// Kernel receive and send buffer sizes asked for on the media socket (0 = the kernel's
    /// default); see [`SocketBuffers`] for what was granted.
    pub recv_buffer_bytes: usize,
    pub send_buffer_bytes: usize,
    /// Engine shards (threads), at most [`MAX_SHARDS`]; 0 = one per available core
    /// ([`default_shards`]). 1 = a single thread reads, forwards and sends.
    pub shards: usize,
    /// How busy a shard may be, as a share of one core, and still take new rooms
    /// ([`DEFAULT_SHARD_FILL`]). A new room goes to the first shard (shard 0, the one reading the
    /// socket, first) whose CPU use measured over the last half second, plus an estimate for
    /// the rooms it was given since, stays within this; when none does, to the least busy. Shard
    /// 0 forwards its own rooms' datagrams inline; another shard's cost a hand-off and a wake-up
    /// of that thread per batch, which costs more than the parallelism gains until a core is
    /// busy. 0 = spread from the first room (the least busy shard, then the fewest rooms).
    pub shard_fill: f64,
    /// ICE-TCP (RFC 6544): the TCP port of the passive candidate advertised next to the UDP one
    /// (on the bind IP). `None` = off; `Some(0)` = the same number as the bound UDP port.
    pub tcp_port: Option<u16>,
    /// A TCP connection not authenticated by a peer's ICE credentials within this is closed
    /// ([`TCP_HANDSHAKE_TIMEOUT`] by default).
    pub tcp_handshake_timeout: Duration,
    /// A connected peer from which nothing at all (STUN, DTLS, RTP, RTCP) arrives for this long
    /// is reported down ([`PeerEvent`] `up: false`), and up again when it is heard.
    pub lost_after: Duration,
    /// The server's video codec preference, most wanted first; empty = the phone's order. The
    /// phone is answered with one video codec: the first it offers by this order (codecs not
    /// listed come after, in the phone's order).
    pub video_codecs: Vec<VideoCodec>,
}

/// The default of [`SfuConfig::shard_fill`]: half a core, which leaves the shard headroom for
/// rooms whose load grows after they were placed (video starting, a keyframe burst). Measured
/// with 720p VP8 + Opus on two shards (README "Performance"): at 3 sessions a room handed to
/// shard 1 cost more in hand-offs and wake-ups than forwarding it on shard 0, and at 100
/// sessions (0.4 of a core in all) one shard forwarded ~15 % more packets per CPU-second than
/// two.
pub const DEFAULT_SHARD_FILL: f64 = 0.5;

/// The default of [`SfuConfig::lost_after`].
pub const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(5);

impl SfuConfig {
    /// `bind` and `public_ip` with the default socket buffer sizes and one shard per core.
    pub fn new(bind: SocketAddr, public_ip: Option<IpAddr>) -> Self {
        SfuConfig {
            bind,
            public_ip,
            recv_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
            send_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
            shards: 0,
            shard_fill: DEFAULT_SHARD_FILL,
            tcp_port: Some(0),
            tcp_handshake_timeout: TCP_HANDSHAKE_TIMEOUT,
            lost_after: DEFAULT_LOST_AFTER,
            video_codecs: Vec::new(),
        }
    }

    /// The same with `shards` engine shards.
    pub fn with_shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// The same with another [`SfuConfig::shard_fill`] (0 = spread from the first room).
    pub fn with_shard_fill(mut self, fill: f64) -> Self {
        self.shard_fill = fill;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("cannot bind the media socket: {0}")]
    Bind(#[from] std::io::Error),
    #[error("bind address {0} is unspecified: set public_ip")]
    NoAdvertisedAddress(SocketAddr),
    #[error("session {0} has no media (start it first)")]
    UnknownSession(SessionId),
    #[error("session {0} has no pending offer to the technician")]
    NoPendingOffer(SessionId),
    #[error("session {0}: this answer is for an earlier offer to the technician (ignored)")]
    StaleAnswer(SessionId),
    #[error(
        "session {0}: the peer connection this offer renegotiates is gone; offer from a new one"
    )]
    NoLivePeer(SessionId),
    #[error("bad SDP: {0}")]
    Sdp(String),
    #[error("bad ICE candidate: {0}")]
    Candidate(String),
    #[error("the SFU has stopped")]
    Stopped,
}

/// Counters of one peer, as seen on the media socket (all datagrams: STUN, DTLS, SRTP, SRTCP)
/// and on the forwarding path.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    bytes_in: AtomicU64,
    packets_in: AtomicU64,
    bytes_out: AtomicU64,
    packets_out: AtomicU64,
    rtp_forwarded: AtomicU64,
    rtp_dropped_muted: AtomicU64,
    nacks_received: AtomicU64,
    rtx_sent: AtomicU64,
    /// Last measured values (f64 bits), from str0m's periodic stats.
    rtt_ms: AtomicU64,
    loss_in: AtomicU64,
    loss_out: AtomicU64,
    jitter_ms: AtomicU64,
    bitrate_in: AtomicU64,
    bitrate_out: AtomicU64,
    /// The connected peer's [`Transport`] (0: none; see `Transport::from_index`).
    transport: AtomicU8,
}

/// The latest quality figures of one peer (see [`PeerStats`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Quality {
    pub(crate) rtt_ms: Option<f64>,
    pub(crate) loss_in: Option<f64>,
    pub(crate) loss_out: Option<f64>,
    pub(crate) jitter_ms: Option<f64>,
    pub(crate) bitrate_in: Option<u64>,
    pub(crate) bitrate_out: Option<u64>,
}

fn store_f64(cell: &AtomicU64, value: Option<f64>) {
    if let Some(v) = value {
        cell.store(v.to_bits(), Ordering::Relaxed);
    }
}

fn load_f64(cell: &AtomicU64) -> f64 {
    f64::from_bits(cell.load(Ordering::Relaxed))
}

impl PeerCounters {
    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.packets_in.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn sent(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        self.packets_out.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn forwarded(&self) {
        self.rtp_forwarded.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dropped_muted(&self) {
        self.rtp_dropped_muted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retransmitted(&self) {
        self.rtx_sent.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn nacks(&self, n: u64) {
        self.nacks_received.fetch_add(n, Ordering::Relaxed);
    }
    /// Figures not measured this time keep their last value.
    pub(crate) fn quality(&self, q: Quality) {
        store_f64(&self.rtt_ms, q.rtt_ms);
        store_f64(&self.loss_in, q.loss_in);
        store_f64(&self.loss_out, q.loss_out);
        store_f64(&self.jitter_ms, q.jitter_ms);
        if let Some(b) = q.bitrate_in {
            self.bitrate_in.store(b, Ordering::Relaxed);
        }
        if let Some(b) = q.bitrate_out {
            self.bitrate_out.store(b, Ordering::Relaxed);
        }
    }
    pub(crate) fn set_transport(&self, transport: Option<Transport>) {
        let i = transport.map_or(0, |t| t.index() as u8 + 1);
        self.transport.store(i, Ordering::Relaxed);
    }
    pub(crate) fn bytes(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }
    fn snapshot(&self) -> PeerStats {
        PeerStats {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            packets_in: self.packets_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            packets_out: self.packets_out.load(Ordering::Relaxed),
            rtp_forwarded: self.rtp_forwarded.load(Ordering::Relaxed),
            rtp_dropped_muted: self.rtp_dropped_muted.load(Ordering::Relaxed),
            nacks_received: self.nacks_received.load(Ordering::Relaxed),
            rtx_sent: self.rtx_sent.load(Ordering::Relaxed),
            rtt_ms: load_f64(&self.rtt_ms),
            loss_in: load_f64(&self.loss_in),
            loss_out: load_f64(&self.loss_out),
            jitter_ms: load_f64(&self.jitter_ms),
            bitrate_in: self.bitrate_in.load(Ordering::Relaxed),
            bitrate_out: self.bitrate_out.load(Ordering::Relaxed),
            transport: Transport::from_index(self.transport.load(Ordering::Relaxed)),
        }
    }
}

/// One peer's totals since the session's media started (they survive peer replacement), and its
/// latest quality figures (0 until first measured; str0m reports every second).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeerStats {
    /// Datagrams and bytes received from this peer.
    pub bytes_in: u64,
    pub packets_in: u64,
    /// Datagrams and bytes sent to this peer.
    pub bytes_out: u64,
    pub packets_out: u64,
    /// RTP packets from this peer handed to the other peer.
    pub rtp_forwarded: u64,
    /// RTP packets from this peer not forwarded because the media was muted or on hold.
    pub rtp_dropped_muted: u64,
    /// RTCP NACKs this peer sent (it lost packets we sent).
    pub nacks_received: u64,
    /// RTP packets resent to this peer (RTX) in answer to its NACKs.
    pub rtx_sent: u64,
    /// Round-trip time between the server and this peer, in milliseconds.
    pub rtt_ms: f64,
    /// Fraction (0..1) of this peer's RTP packets lost on the way to the server.
    pub loss_in: f64,
    /// Fraction (0..1) of the server's RTP packets lost on the way to this peer (its reports).
    pub loss_out: f64,
    /// Interarrival jitter of this peer's worst incoming stream, in milliseconds.
    pub jitter_ms: f64,
    /// Bits per second received from / sent to this peer over the last stats interval.
    pub bitrate_in: u64,
    pub bitrate_out: u64,
    /// How the peer's media reaches the server now; `None` while no peer is connected.
    pub transport: Option<Transport>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionStats {
    pub customer: PeerStats,
    pub technician: PeerStats,
    /// Tap events dropped because the recorder's channel was full.
    pub tap_dropped: u64,
}

/// What the handle keeps per session: negotiation state only, never touched by forwarding.
struct SessionRecord {
    /// The shard that owns the session's room.
    shard: usize,
    audio: bool,
    /// Codecs the customer's peer negotiated (Opus and the one video codec the phone sends),
    /// offered as-is (same payload types) to the console.
    customer_codecs: Vec<PayloadParams>,
    /// The DTLS fingerprint of the customer's peer connection: an offer carrying the same one
    /// comes from the same connection (ICE restart, renegotiation) and goes to the same `Rtc`.
    customer_fingerprint: Option<String>,
    pending_technician: Option<PendingTechnician>,
    customer: Arc<PeerCounters>,
    technician: Arc<PeerCounters>,
    tap_dropped: Arc<AtomicU64>,
}

impl SessionRecord {
    fn stats(&self) -> SessionStats {
        SessionStats {
            customer: self.customer.snapshot(),
            technician: self.technician.snapshot(),
            tap_dropped: self.tap_dropped.load(Ordering::Relaxed),
        }
    }
}

struct PendingTechnician {
    rtc: Rtc,
    offer: SdpPendingOffer,
    video_mid: Mid,
    audio_mid: Option<Mid>,
}

/// The handle's sessions and how many rooms each shard owns.
#[derive(Default)]
struct Sessions {
    records: HashMap<SessionId, SessionRecord>,
    rooms_per_shard: Vec<usize>,
    /// [`SfuConfig::shard_fill`] in thousandths of a core.
    fill_permille: u64,
}

struct Inner {
    /// Per shard.
    commands: Vec<mpsc::UnboundedSender<Command>>,
    metrics: Vec<Arc<metrics::EngineMetrics>>,
    candidate_addr: SocketAddr,
    /// The passive ICE-TCP candidate's address, when TCP is on.
    tcp_candidate_addr: Option<SocketAddr>,
    tcp_metrics: Option<Arc<tcp::TcpMetrics>>,
    sessions: Mutex<Sessions>,
    buffers: SocketBuffers,
    /// A second handle on the media socket, only to look up its kernel drop count.
    socket: std::net::UdpSocket,
    /// [`SfuConfig::video_codecs`].
    video_codecs: Vec<VideoCodec>,
}

/// Starts the SFU.
pub struct Sfu;

/// The shard threads. They stop when the last [`SfuHandle`] is dropped.
pub struct SfuThreads {
    threads: Vec<std::thread::JoinHandle<()>>,
    tcp: Option<std::thread::JoinHandle<()>>,
}

impl SfuThreads {
    /// How many shards run.
    pub fn shards(&self) -> usize {
        self.threads.len()
    }

    /// Waits until every shard has stopped.
    pub fn join(self) {
        for thread in self.threads.into_iter().chain(self.tcp) {
            // A shard that panicked has already logged it.
            let _ = thread.join();
        }
    }
}

/// How often [`bind_media`] tries another ephemeral UDP port whose number is taken over TCP.
const EPHEMERAL_BIND_ATTEMPTS: usize = 32;

/// Binds the media UDP socket and, when ICE-TCP is on, its TCP listener. With an ephemeral UDP
/// port (`bind` port 0) and the TCP port "the same number", the kernel's pick for UDP may be taken
/// over TCP by another process; that pick is let go and another one tried, so that a server (or a
/// test) asking for any port never fails on a collision it did not choose.
fn bind_media(
    config: &SfuConfig,
) -> Result<
    (
        std::net::UdpSocket,
        SocketBuffers,
        Option<std::net::TcpListener>,
    ),
    SfuError,
> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (udp, buffers) = socket::bind(
            config.bind,
            config.recv_buffer_bytes,
            config.send_buffer_bytes,
        )?;
        let Some(port) = config.tcp_port else {
            return Ok((udp, buffers, None));
        };
        let bound = udp.local_addr()?;
        let same_number = port == 0;
        let port = if same_number { bound.port() } else { port };
        match std::net::TcpListener::bind(SocketAddr::new(bound.ip(), port)) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                return Ok((udp, buffers, Some(listener)));
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && same_number
                    && config.bind.port() == 0
                    && attempt < EPHEMERAL_BIND_ATTEMPTS =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Sfu {
    /// Binds the media socket and starts the shard threads (no tokio runtime needed: each shard
    /// runs its own).
    pub fn start(config: SfuConfig) -> Result<(SfuHandle, SfuThreads), SfuError> {
        let (std_socket, buffers, listener) = bind_media(&config)?;
        let watched = std_socket.try_clone()?;
        let bound = std_socket.local_addr()?;
        let ip = match config.public_ip {
            Some(ip) => ip,
            None if bound.ip().is_unspecified() => {
                return Err(SfuError::NoAdvertisedAddress(bound));
            }
            None => bound.ip(),
        };
        let candidate_addr = SocketAddr::new(ip, bound.port());
        let count = match config.shards {
            0 => default_shards(),
            n => n,
        };
        let tcp_candidate_addr = listener
            .as_ref()
            .map(|l| l.local_addr().map(|a| SocketAddr::new(ip, a.port())))
            .transpose()?;
        let setup = shard::EngineSetup {
            local: candidate_addr,
            local_tcp: tcp_candidate_addr,
            lost_after: config.lost_after,
        };
        let shards = shard::spawn(std_socket, setup, count)?;
        let (tcp_thread, tcp_metrics) = match listener {
            Some(listener) => {
                let metrics = Arc::new(tcp::TcpMetrics::default());
                let thread = tcp::spawn(
                    listener,
                    shards.tcp.clone(),
                    metrics.clone(),
                    config.tcp_handshake_timeout,
                )?;
                (Some(thread), Some(metrics))
            }
            None => (None, None),
        };
        drop(shards.tcp);
        tracing::info!(
            shards = shards.commands.len(),
            "media: engine shards started"
        );
        let handle = SfuHandle {
            inner: Arc::new(Inner {
                sessions: Mutex::new(Sessions {
                    records: HashMap::new(),
                    rooms_per_shard: vec![0; shards.commands.len()],
                    fill_permille: load::fill_permille(config.shard_fill),
                }),
                commands: shards.commands,
                metrics: shards.metrics,
                candidate_addr,
                tcp_candidate_addr,
                tcp_metrics,
                buffers,
                socket: watched,
                video_codecs: config.video_codecs,
            }),
        };
        Ok((
            handle,
            SfuThreads {
                threads: shards.threads,
                tcp: tcp_thread,
            },
        ))
    }
}

/// The cheap, cloneable way to tell the shards what to do. No call waits on a shard.
#[derive(Clone)]
pub struct SfuHandle {
    inner: Arc<Inner>,
}

/// How often str0m reports loss, jitter, RTT and byte counts per peer.
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Per outgoing video stream, the packets kept for answering NACKs (str0m's RTX cache, which
/// also keeps them at most 3 s). Payloads are shared with the received packet, not copied.
pub const RTX_BUFFER_PACKETS: usize = 1000;
/// How long a sent video packet can still be resent (str0m's default).
pub(crate) const RTX_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3);

/// How many packets behind the newest one a hole in a peer's stream is still NACKed and its
/// repair forwarded (str0m's default: 100). A 720p keyframe is often more than 100 packets sent
/// at once, so with 100 a hole early in one was forgotten within tens of milliseconds and cost a
/// keyframe round trip; 1024 is over a second of 720p/1080p video.
pub(crate) const NACK_WINDOW: u16 = 1024;
/// NACK rounds for a lost packet (one per RTT + 5 ms, at least str0m's 33 ms tick) go on until
/// its first NACK is this old (str0m's default: 5 rounds, ~150 ms on a short RTT): a repair is
/// still worth having while the console's jitter buffer (200 ms under loss) and the keyframe
/// `recovery.rs` asks for after 300 ms have not yet made it moot.
pub(crate) const NACK_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// A peer of `shard`: its local ICE ufrag names the shard (see `shard.rs`). Codecs: Opus, and
/// the video codecs the recorder can write too (VP8, VP9 profile 0, H.264).
fn rtc_config(shard: usize) -> RtcConfig {
    let mut config = Rtc::builder()
        .set_local_ice_credentials(shard::credentials(shard))
        .set_rtp_mode(true)
        // The engine feeds each peer's timeouts itself (at its deadline, once per batch for the
        // peers a batch touched): a receive need not run str0m's full timeout pass as well.
        .set_timeout_on_media_receive(false)
        .set_send_buffer_video(RTX_BUFFER_PACKETS)
        .set_stats_interval(Some(STATS_INTERVAL))
        .set_nack_config(
            NackConfig::new()
                .with_window(NACK_WINDOW)
                .with_max_nacks(u8::MAX)
                .with_max_age(Some(NACK_MAX_AGE))
                // No 33 ms NACK tick while nothing is missing: most of what a quiet peer's
                // timers cost (issue 16); a hole is still NACKed at the tick's usual phase.
                .with_tick_only_for_holes(true),
        )
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_vp9(true)
        .enable_h264(true);
    codecs::vp9_profile_0_only(config.codec_config());
    config
}

impl SfuHandle {
    /// The address put in the server's host candidates.
    pub fn candidate_addr(&self) -> SocketAddr {
        self.inner.candidate_addr
    }

    fn send_to(&self, shard: usize, command: Command) -> Result<(), SfuError> {
        self.inner.commands[shard]
            .send(command)
            .map_err(|_| SfuError::Stopped)
    }

    /// Sends a command to the session's shard; nothing to do for a session without media.
    fn send(&self, session: SessionId, command: Command) -> Result<(), SfuError> {
        let shard = self.sessions().records.get(&session).map(|r| r.shard);
        match shard {
            Some(shard) => self.send_to(shard, command),
            None => Ok(()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // A panic while holding this lock leaves only negotiation bookkeeping behind.
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The passive ICE-TCP candidate's address, when TCP is on.
    pub fn tcp_candidate_addr(&self) -> Option<SocketAddr> {
        self.inner.tcp_candidate_addr
    }

    /// Our candidates: the UDP host one, and the passive TCP one when TCP is on (str0m gives
    /// TCP host candidates a lower type preference, 90 against UDP's 126, so UDP wins when
    /// both work).
    fn add_host_candidates(&self, rtc: &mut Rtc) -> Result<(), SfuError> {
        let bad = |e: str0m::error::IceError| SfuError::Candidate(e.to_string());
        rtc.add_local_candidate(Candidate::host(self.inner.candidate_addr, "udp").map_err(bad)?);
        if let Some(addr) = self.inner.tcp_candidate_addr {
            let tcp = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(bad)?;
            rtc.add_local_candidate(tcp);
        }
        Ok(())
    }

    /// Opens the session's room. `audio` = the technician group has audio on. Idempotent: a
    /// second call keeps the room (and its mute state) and updates `audio`.
    pub fn start(&self, session: SessionId, audio: bool) -> Result<(), SfuError> {
        let shard = {
            let mut guard = self.sessions();
            let sessions = &mut *guard;
            let rooms = &mut sessions.rooms_per_shard;
            let fill = sessions.fill_permille;
            let metrics = &self.inner.metrics;
            let record = sessions.records.entry(session).or_insert_with(|| {
                let loads: Vec<_> = rooms
                    .iter()
                    .zip(metrics)
                    .map(|(n, m)| load::ShardLoad::read(m, *n))
                    .collect();
                let shard = load::place(&loads, fill);
                rooms[shard] += 1;
                SessionRecord {
                    shard,
                    audio,
                    customer_codecs: Vec::new(),
                    customer_fingerprint: None,
                    pending_technician: None,
                    customer: Arc::default(),
                    technician: Arc::default(),
                    tap_dropped: Arc::default(),
                }
            });
            record.audio = audio;
            record.shard
        };
        self.send_to(shard, Command::Open { session })
    }

    /// The customer's SDP offer. From a new peer connection it replaces an earlier customer
    /// peer and is answered at once; from the live one (same DTLS fingerprint: an ICE restart
    /// after a network change, or a renegotiation) it is applied to that peer's `Rtc`, which
    /// keeps its DTLS and SRTP state, and answered by the session's shard. Either way the work is
    /// queued before this returns, so candidates sent after it apply to the right peer.
    pub fn customer_offer(
        &self,
        session: SessionId,
        sdp: &str,
    ) -> Result<CustomerAnswer, SfuError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        let fingerprint = fingerprint(sdp);
        let (counters, shard) = {
            let mut sessions = self.sessions();
            let record = sessions
                .records
                .get_mut(&session)
                .ok_or(SfuError::UnknownSession(session))?;
            if fingerprint.is_some() && record.customer_fingerprint == fingerprint {
                let (reply, answer) = oneshot::channel();
                self.send_to(
                    record.shard,
                    Command::Renegotiate {
                        session,
                        offer: Box::new(offer),
                        reply,
                    },
                )?;
                return Ok(CustomerAnswer::Pending(answer));
            }
            (record.customer.clone(), record.shard)
        };
        let mut config = rtc_config(shard);
        // One video codec in the answer: the phone's first choice (see `codecs.rs`).
        if let Some(video) = codecs::choose_video(
            config.codec_config(),
            &codecs::offered_video(sdp),
            &self.inner.video_codecs,
        ) {
            let one = codecs::only_video(config.codec_config(), video);
            *config.codec_config() = one;
        }
        let mut rtc = config.build(Instant::now());
        self.add_host_candidates(&mut rtc)?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::Sdp(e.to_string()))?;
        let codecs = negotiated_codecs(&rtc, &answer);
        if let Some(record) = self.sessions().records.get_mut(&session) {
            record.customer_codecs = codecs;
            record.customer_fingerprint = fingerprint;
        }
        self.send_to(
            shard,
            Command::AddPeer {
                session,
                role: PeerRole::Customer,
                rtc: Box::new(rtc),
                counters,
                video_mid: None,
                audio_mid: None,
                relays: relay_addrs(sdp),
            },
        )?;
        Ok(CustomerAnswer::Ready(answer.to_sdp_string()))
    }

    /// The server's offer to the technician's console: video sendonly, audio sendrecv when the
    /// session has audio. Offers exactly the codecs the customer's peer negotiated (Opus and the
    /// one video codec the phone sends, with RTX; same payload types) when the customer has
    /// already offered; otherwise Opus, VP8, VP9 and H.264.
    pub fn technician_offer(&self, session: SessionId) -> Result<String, SfuError> {
        let mut sessions = self.sessions();
        let record = sessions
            .records
            .get_mut(&session)
            .ok_or(SfuError::UnknownSession(session))?;
        let mut config = rtc_config(record.shard).set_rtp_mode(true);
        if !record.customer_codecs.is_empty() {
            *config.codec_config() = str0m::format::CodecConfig::new_from_payload_params(with_rtx(
                &record.customer_codecs,
            ));
        }
        let mut rtc = config.build(Instant::now());
        self.add_host_candidates(&mut rtc)?;
        let mut changes = rtc.sdp_api();
        let video_mid = changes.add_media(StrKind::Video, Direction::SendOnly, None, None, None);
        let audio_mid = record
            .audio
            .then(|| changes.add_media(StrKind::Audio, Direction::SendRecv, None, None, None));
        let Some((offer, pending)) = changes.apply() else {
            return Err(SfuError::Sdp("no media to offer".into()));
        };
        record.pending_technician = Some(PendingTechnician {
            rtc,
            offer: pending,
            video_mid,
            audio_mid,
        });
        Ok(offer.to_sdp_string())
    }

    /// The console's answer to [`SfuHandle::technician_offer`]. Replaces an earlier technician
    /// peer (reconnect, transfer); the customer is asked for a keyframe once it connects.
    pub fn technician_answer(&self, session: SessionId, sdp: &str) -> Result<(), SfuError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        let (pending, counters, shard) = {
            let mut sessions = self.sessions();
            let record = sessions
                .records
                .get_mut(&session)
                .ok_or(SfuError::UnknownSession(session))?;
            let wanted = record
                .pending_technician
                .as_ref()
                .ok_or(SfuError::NoPendingOffer(session))?
                .video_mid;
            // Two offers in a row (a console's `hello` and the phone's new peer connection, say)
            // may cross the console's answer to the first: that answer names the first offer's
            // mids. It is refused, and the pending (newer) offer stays for its own answer.
            let mid = format!("a=mid:{wanted}");
            if !sdp.lines().any(|l| l.trim_end() == mid) {
                return Err(SfuError::StaleAnswer(session));
            }
            let pending = record
                .pending_technician
                .take()
                .ok_or(SfuError::NoPendingOffer(session))?;
            (pending, record.technician.clone(), record.shard)
        };
        let PendingTechnician {
            mut rtc,
            offer,
            video_mid,
            audio_mid,
        } = pending;
        rtc.sdp_api()
            .accept_answer(offer, answer)
            .map_err(|e| SfuError::Sdp(e.to_string()))?;
        self.send_to(
            shard,
            Command::AddPeer {
                session,
                role: PeerRole::Technician,
                rtc: Box::new(rtc),
                counters,
                video_mid: Some(video_mid),
                audio_mid,
                relays: relay_addrs(sdp),
            },
        )
    }

    /// A trickled ICE candidate (`a=candidate:` value, with or without the `a=` prefix);
    /// `None` = end of candidates, which needs no action.
    pub fn candidate(
        &self,
        session: SessionId,
        from_customer: bool,
        candidate: Option<&str>,
    ) -> Result<(), SfuError> {
        let Some(text) = candidate else {
            return Ok(());
        };
        let text = text.trim();
        let text = text.strip_prefix("a=").unwrap_or(text);
        let candidate =
            Candidate::from_sdp_string(text).map_err(|e| SfuError::Candidate(e.to_string()))?;
        if !from_customer {
            let mut sessions = self.sessions();
            let record = sessions
                .records
                .get_mut(&session)
                .ok_or(SfuError::UnknownSession(session))?;
            if let Some(pending) = record.pending_technician.as_mut() {
                pending.rtc.add_remote_candidate(candidate);
                return Ok(());
            }
        }
        let role = if from_customer {
            PeerRole::Customer
        } else {
            PeerRole::Technician
        };
        self.send(
            session,
            Command::RemoteCandidate {
                session,
                role,
                candidate,
            },
        )
    }

    /// `flowing = false` stops forwarding that media from that side (mute, video pause).
    pub fn set_flowing(
        &self,
        session: SessionId,
        from_customer: bool,
        kind: MediaKind,
        flowing: bool,
    ) -> Result<(), SfuError> {
        self.send(
            session,
            Command::SetFlowing {
                session,
                from_customer,
                kind,
                flowing,
            },
        )
    }

    /// Stops forwarding both ways; the peers stay connected.
    pub fn hold(&self, session: SessionId) -> Result<(), SfuError> {
        self.send(
            session,
            Command::Hold {
                session,
                held: true,
            },
        )
    }

    /// Forwards again and asks the customer for a keyframe.
    pub fn resume(&self, session: SessionId) -> Result<(), SfuError> {
        self.send(
            session,
            Command::Hold {
                session,
                held: false,
            },
        )
    }

    /// Closes both peers and forgets the session. Returns its final totals.
    pub fn stop(&self, session: SessionId) -> Option<SessionStats> {
        let record = {
            let mut sessions = self.sessions();
            let record = sessions.records.remove(&session);
            if let Some(r) = &record {
                sessions.rooms_per_shard[r.shard] -= 1;
            }
            record
        };
        let record = record?;
        // A stopped shard has nothing left to close.
        let _ = self.send_to(record.shard, Command::Stop { session });
        Some(record.stats())
    }

    /// Media up / down of every peer from now on (one subscriber: a new call replaces the
    /// previous one). `lens` turns the customer's into `Reconnecting` and back.
    pub fn peer_events(&self) -> Result<mpsc::UnboundedReceiver<PeerEvent>, SfuError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        for shard in 0..self.inner.commands.len() {
            self.send_to(
                shard,
                Command::Subscribe {
                    sender: sender.clone(),
                },
            )?;
        }
        Ok(receiver)
    }

    /// The SFU-wide counters (for Prometheus).
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = metrics::EngineMetrics::snapshot(&self.inner.metrics);
        snapshot.recv_buffer_bytes = self.inner.buffers.recv_granted as u64;
        snapshot.send_buffer_bytes = self.inner.buffers.send_granted as u64;
        snapshot.kernel_drops = socket::kernel_drops(&self.inner.socket);
        if let Some(tcp) = &self.inner.tcp_metrics {
            snapshot.tcp = tcp.snapshot();
        }
        snapshot
    }

    /// The media socket's buffer sizes: asked for and granted.
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.inner.buffers
    }

    /// The shard that owns the session's room (for logs and tests).
    pub fn shard_of(&self, session: SessionId) -> Option<usize> {
        self.sessions().records.get(&session).map(|r| r.shard)
    }

    /// Totals so far, per peer.
    pub fn stats(&self, session: SessionId) -> Option<SessionStats> {
        self.sessions()
            .records
            .get(&session)
            .map(SessionRecord::stats)
    }

    /// Opens the session's recorder tap: a bounded channel of `capacity` events receiving every
    /// RTP packet the room lets through, from both peers, and the senders' reports (see
    /// [`TapEvent`]). The shard only ever `try_send`s: when the channel is full the event is
    /// dropped and counted in [`SessionStats::tap_dropped`], so a slow recorder never stalls
    /// forwarding. A new tap replaces the previous one; dropping the receiver closes it.
    pub fn tap(
        &self,
        session: SessionId,
        capacity: usize,
    ) -> Result<mpsc::Receiver<TapEvent>, SfuError> {
        let (dropped, shard) = {
            let sessions = self.sessions();
            let record = sessions
                .records
                .get(&session)
                .ok_or(SfuError::UnknownSession(session))?;
            (record.tap_dropped.clone(), record.shard)
        };
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        self.send_to(
            shard,
            Command::Tap {
                session,
                sender,
                dropped,
            },
        )?;
        Ok(receiver)
    }

    /// Asks the customer for a keyframe (the recorder wants one when it starts). Sent as soon as
    /// the customer's video is up and not paused or on hold.
    pub fn request_keyframe(&self, session: SessionId) -> Result<(), SfuError> {
        self.send(session, Command::Keyframe { session })
    }
}

/// Gives every video codec a retransmission (RTX) payload type where the phone did not negotiate
/// one: NACKs from the console are answered over RTX (str0m resends only that way), and that must
/// not depend on what the phone supports.
fn with_rtx(params: &[PayloadParams]) -> Vec<PayloadParams> {
    let mut used: Vec<u8> = params
        .iter()
        .flat_map(|p| [Some(*p.pt()), p.resend().map(|r| *r)])
        .flatten()
        .collect();
    params
        .iter()
        .map(|p| {
            if p.resend().is_some() || !p.spec().codec.is_video() {
                return *p;
            }
            let Some(free) = (96..=127u8).find(|pt| !used.contains(pt)) else {
                return *p;
            };
            used.push(free);
            let mut q = PayloadParams::new(p.pt(), Some(free.into()), p.spec());
            q.set_fb_transport_cc(p.fb_transport_cc());
            q.set_fb_nack(p.fb_nack());
            q.set_fb_pli(p.fb_pli());
            q.set_fb_remb(p.fb_remb());
            q.set_fb_fir(p.fb_fir());
            q
        })
        .collect()
}

/// The addresses of the relay (TURN) candidates in an SDP: media to them is relayed.
fn relay_addrs(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a="))
        .filter(|line| line.starts_with("candidate:"))
        .filter_map(|line| Candidate::from_sdp_string(line).ok())
        .filter(|c| c.kind() == CandidateKind::Relayed)
        .map(|c| c.addr())
        .collect()
}

/// The `a=fingerprint` value of an SDP (the first; every m-line of a bundled connection has the
/// same certificate).
fn fingerprint(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim().strip_prefix("a=fingerprint:"))
        .map(|v| v.trim().to_ascii_uppercase())
}

/// The payload parameters the answer kept, with the customer's payload types.
fn negotiated_codecs(rtc: &Rtc, answer: &SdpAnswer) -> Vec<PayloadParams> {
    // The answer's text is the simplest complete view of what was kept: one `a=rtpmap:PT` per
    // accepted codec in the m-lines that were not rejected.
    let text = answer.to_sdp_string();
    let mut kept: Vec<u8> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("a=rtpmap:")
            && let Some(pt) = rest.split(' ').next().and_then(|p| p.parse::<u8>().ok())
        {
            kept.push(pt);
        }
    }
    rtc.codec_config()
        .params()
        .iter()
        .filter(|p| kept.contains(&*p.pt()))
        .copied()
        .collect()
}
