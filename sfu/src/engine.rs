//! One shard of the SFU: owns a disjoint set of rooms and their `Rtc`s, and is the only code that
//! reads the clock for them (str0m takes time as input). The shard's thread (`shard.rs`) hands it
//! commands, datagrams and the time; what the peers want to send is queued in an [`Outbox`] and
//! sent together by [`Engine::flush`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite, Ssrc};
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};
use str0m::{Candidate, CandidateKind, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use crate::codecs::VideoCodec;
use crate::early::EarlyChecks;
use crate::io::Outbox;
use crate::keyframe::{KeyframeWait, starts_keyframe};
use crate::load::LoadSampler;
use crate::metrics::{EngineMetrics, Transport, add};
use crate::recovery::UplinkGaps;
use crate::shard::Router;
use crate::tap::{Tap, TapEvent};
use crate::tcp::{TcpInput, TcpLink};
use crate::{
    MediaKind, PeerCounters, PeerEvent, PeerRole, Quality, RTX_BUFFER_PACKETS, RTX_MAX_AGE,
    SessionId, SfuError,
};

/// Looked up several times per datagram: SipHash was 5.5 % of the forwarding thread's
/// instructions. foldhash is seeded per process, so remote addresses cannot aim at collisions.
pub(crate) type FastHash = foldhash::fast::RandomState;

/// Longest wait between two timeout sweeps, whatever the peers ask for.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// How often connected peers are checked for silence (`lost_after`).
const LOST_CHECK: Duration = Duration::from_millis(200);
/// The shard's timer wake-ups fall on a grid of this step: deadlines of different peers (and
/// of one peer's str0m subsystems) that are a few milliseconds apart are served by one wake-up,
/// and a datagram arriving in between serves them with no wake-up of their own (the sweep after
/// every wake-up runs whatever is due). A timer runs at most this much late; str0m's shortest
/// periodic ones are the NACK tick (33 ms) and TWCC feedback (~100 ms).
const TIMER_SLACK: Duration = Duration::from_millis(5);
/// A shard without rooms has no timers: it sleeps until a command (or this long).
const IDLE_SLEEP: Duration = Duration::from_secs(10);

pub(crate) enum Command {
    Open {
        session: SessionId,
    },
    AddPeer {
        session: SessionId,
        role: PeerRole,
        rtc: Box<Rtc>,
        counters: Arc<PeerCounters>,
        video_mid: Option<Mid>,
        audio_mid: Option<Mid>,
        /// Addresses of the peer's relay (TURN) candidates known from its SDP.
        relays: Vec<SocketAddr>,
    },
    RemoteCandidate {
        session: SessionId,
        role: PeerRole,
        candidate: Candidate,
    },
    SetFlowing {
        session: SessionId,
        from_customer: bool,
        kind: MediaKind,
        flowing: bool,
    },
    Hold {
        session: SessionId,
        held: bool,
    },
    Stop {
        session: SessionId,
    },
    Tap {
        session: SessionId,
        sender: mpsc::Sender<TapEvent>,
        dropped: Arc<AtomicU64>,
    },
    Keyframe {
        session: SessionId,
    },
    /// A new offer from the customer's live peer connection (ICE restart, renegotiation).
    Renegotiate {
        session: SessionId,
        offer: Box<SdpOffer>,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    Subscribe {
        sender: mpsc::UnboundedSender<PeerEvent>,
    },
}

/// Sequence-number continuity for one outgoing stream: packets not forwarded (mute, hold) must
/// not look like loss to the receiver, and a new receiver starts with a zero rollover counter.
#[derive(Default)]
struct SeqRewrite {
    offset: i64,
    last_out: Option<u64>,
    last_ssrc: Option<Ssrc>,
    resync: bool,
}

impl SeqRewrite {
    fn map(&mut self, seq_in: u64, ssrc: Ssrc) -> Option<u64> {
        if self.resync || self.last_ssrc != Some(ssrc) || self.last_out.is_none() {
            let next = match self.last_out {
                Some(last) => last + 1,
                None => seq_in & 0xffff,
            };
            self.offset = seq_in as i64 - next as i64;
            self.last_ssrc = Some(ssrc);
            self.resync = false;
        }
        let out = seq_in as i64 - self.offset;
        if out < 0 {
            return None;
        }
        let out = out as u64;
        self.last_out = Some(self.last_out.map_or(out, |last| last.max(out)));
        Some(out)
    }
}

struct Peer {
    rtc: Rtc,
    counters: Arc<PeerCounters>,
    metrics: Arc<EngineMetrics>,
    video_mid: Option<Mid>,
    audio_mid: Option<Mid>,
    connected: bool,
    next_timeout: Instant,
    /// Source payload type → this peer's payload type, learnt on first use.
    pt_map: Vec<(Pt, Option<Pt>)>,
    video_seq: SeqRewrite,
    audio_seq: SeqRewrite,
    /// Our byte counters at the previous stats event, for the bitrates.
    last_stats: Option<(Instant, u64, u64)>,
    /// Per outgoing mid, the NACK count of the previous stats event.
    egress_nacks: Vec<(Mid, u64)>,
    /// Per incoming mid, the latest jitter in milliseconds.
    jitter: Vec<(Mid, f64)>,
    /// The payload types this peer's RTX (resend) packets carry.
    rtx_pts: Vec<u8>,
    /// Holes in this peer's incoming video that NACK/RTX did not fill (used for the customer).
    uplink_gaps: UplinkGaps,
    /// The outgoing video stream whose resends are no longer capped (see [`Peer::forward`]).
    resends_uncapped: Option<Mid>,
    /// Remote relay (TURN) candidates: media to one of them goes through a relay.
    relays: Vec<SocketAddr>,
    /// Where the peer's DTLS/media last went (the nominated pair), and what transport that is.
    path: Option<(Protocol, SocketAddr)>,
    transport: Option<Transport>,
    /// The transport this peer is counted under in `peers_by_transport`.
    counted: Option<Transport>,
    /// When anything (STUN, DTLS, RTP, RTCP) last came from the peer.
    last_heard: Instant,
    /// Connected, but silent for `lost_after`: its media is reported down until it is heard.
    lost: bool,
    /// Media up as last reported to the room (connected and not lost).
    reported: bool,
    /// Packets were written into its send streams since its last timeout: str0m sends them
    /// only after one (its pacer's snapshot), which the end of the batch feeds.
    written: bool,
    /// A keyframe request waits in str0m for its next timeout pass; the peer's next received
    /// datagram runs one (an RTP/RTCP receive alone no longer does:
    /// `set_timeout_on_media_receive(false)`).
    keyframe_pending: bool,
    /// str0m decrypted an RTP packet from this peer: it has its SRTP keys, so our SRTCP reaches
    /// it. str0m reports `Connected` when *its* side of DTLS is done; as the DTLS server it is
    /// done a flight before the peer, whose SRTCP arriving before its keys is dropped (a
    /// keyframe request sent at connect time was lost that way). See [`Peer::request_keyframe`].
    heard_media: bool,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.set_connected(false);
        self.counters.set_transport(None);
    }
}

impl Peer {
    /// Hands str0m the clock (a timeout pass); a failure is only logged, as for any input.
    fn feed_clock(&mut self, now: Instant, session: SessionId) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(session_id = session, error = %e, "peer timeout failed");
        }
    }

    fn new(
        rtc: Rtc,
        counters: Arc<PeerCounters>,
        metrics: Arc<EngineMetrics>,
        video_mid: Option<Mid>,
        audio_mid: Option<Mid>,
    ) -> Self {
        let rtx_pts = rtc
            .codec_config()
            .params()
            .iter()
            .filter_map(|p| p.resend().map(|pt| *pt))
            .collect();
        Peer {
            rtx_pts,
            rtc,
            counters,
            metrics,
            video_mid,
            audio_mid,
            connected: false,
            next_timeout: Instant::now(),
            pt_map: Vec::new(),
            video_seq: SeqRewrite::default(),
            audio_seq: SeqRewrite::default(),
            last_stats: None,
            egress_nacks: Vec::new(),
            jitter: Vec::new(),
            uplink_gaps: UplinkGaps::default(),
            resends_uncapped: None,
            relays: Vec::new(),
            path: None,
            transport: None,
            counted: None,
            last_heard: Instant::now(),
            lost: false,
            reported: false,
            written: false,
            keyframe_pending: false,
            heard_media: false,
        }
    }

    /// A change of media path (seen on what the peer's `Rtc` sends): recounted by transport.
    fn note_path(&mut self, proto: Protocol, destination: SocketAddr) {
        if self.path == Some((proto, destination)) {
            return;
        }
        self.path = Some((proto, destination));
        self.transport = Some(if proto == Protocol::Tcp {
            Transport::Tcp
        } else if self.relays.contains(&destination) {
            Transport::Relay
        } else {
            Transport::Udp
        });
        self.recount();
    }

    /// Keeps `peers_by_transport` and the peer's visible transport in step with its state.
    fn recount(&mut self) {
        let now = if self.connected { self.transport } else { None };
        if now == self.counted {
            return;
        }
        if let Some(old) = self.counted {
            self.metrics.peers_by_transport[old.index()].fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(new) = now {
            self.metrics.peers_by_transport[new.index()].fetch_add(1, Ordering::Relaxed);
        }
        self.counted = now;
        self.counters.set_transport(now);
    }

    /// The peer's media up or down, when that changed since last reported.
    fn report(&mut self) -> Option<bool> {
        let up = self.connected && !self.lost;
        (up != self.reported).then(|| {
            self.reported = up;
            up
        })
    }

    /// Counts resends: the RTP header is in clear in SRTP, and RTX has its own payload type.
    /// (RTCP's second byte, 200-206, masks to 72-78: never a dynamic payload type.)
    fn count_resend(&self, datagram: &[u8]) {
        if datagram.len() > 12
            && datagram[0] >> 6 == 2
            && self.rtx_pts.contains(&(datagram[1] & 0x7f))
        {
            self.counters.retransmitted();
            add(&self.metrics.retransmissions, 1);
        }
    }

    /// Keeps the SFU-wide connected-peers gauge in step; a change is reported to the room as the
    /// peer's media going up or down.
    fn set_connected(&mut self, connected: bool) {
        if connected != self.connected {
            let delta = if connected { 1 } else { -1 };
            self.metrics
                .peers_connected
                .fetch_add(delta, Ordering::Relaxed);
            self.connected = connected;
            if connected {
                // Connecting is hearing from it.
                self.last_heard = Instant::now();
                self.lost = false;
            }
            self.recount();
        }
    }

    fn peer_stats(&mut self, stats: &PeerStats) {
        let (bytes_in, bytes_out) = self.counters.bytes();
        let bitrates = self.last_stats.and_then(|(at, last_in, last_out)| {
            let secs = stats.timestamp.checked_duration_since(at)?.as_secs_f64();
            (secs > 0.0).then(|| {
                let rate =
                    |now: u64, then: u64| (now.saturating_sub(then) as f64 * 8.0 / secs) as u64;
                (rate(bytes_in, last_in), rate(bytes_out, last_out))
            })
        });
        self.last_stats = Some((stats.timestamp, bytes_in, bytes_out));
        self.counters.quality(Quality {
            rtt_ms: stats.rtt.map(|d| d.as_secs_f64() * 1000.0),
            loss_in: stats.ingress_loss_fraction.map(f64::from),
            loss_out: stats.egress_loss_fraction.map(f64::from),
            jitter_ms: None,
            bitrate_in: bitrates.map(|b| b.0),
            bitrate_out: bitrates.map(|b| b.1),
        });
    }

    fn ingress_stats(&mut self, stats: &MediaIngressStats) {
        let clock_rate = if Some(stats.mid) == self.video_mid {
            90_000.0
        } else {
            48_000.0
        };
        let jitter_ms = f64::from(stats.jitter) * 1000.0 / clock_rate;
        match self.jitter.iter_mut().find(|(m, _)| *m == stats.mid) {
            Some((_, j)) => *j = jitter_ms,
            None => self.jitter.push((stats.mid, jitter_ms)),
        }
        // Each event reports one stream; the worst one is what matters.
        let worst = self.jitter.iter().map(|(_, j)| *j).fold(0.0, f64::max);
        self.counters.quality(Quality {
            jitter_ms: Some(worst),
            loss_in: stats.loss.map(f64::from),
            rtt_ms: stats.rtt.map(|d| d.as_secs_f64() * 1000.0),
            ..Quality::default()
        });
    }

    fn egress_stats(&mut self, stats: &MediaEgressStats) {
        let last = match self.egress_nacks.iter_mut().find(|(m, _)| *m == stats.mid) {
            Some((_, n)) => n,
            None => {
                self.egress_nacks.push((stats.mid, 0));
                &mut self.egress_nacks.last_mut().expect("just pushed").1
            }
        };
        let new = stats.nacks.saturating_sub(*last);
        *last = stats.nacks;
        if new > 0 {
            self.counters.nacks(new);
            add(&self.metrics.nacks_received, new);
        }
        self.counters.quality(Quality {
            loss_out: stats.loss.map(f64::from),
            rtt_ms: stats.rtt.map(|d| d.as_secs_f64() * 1000.0),
            ..Quality::default()
        });
    }

    /// Asks the peer for a keyframe; `false` when it cannot be asked yet (the room keeps a
    /// keyframe of its own wanting and asks again on a later pass).
    fn request_keyframe(&mut self, kind: KeyframeRequestKind) -> bool {
        let Some(mid) = self.video_mid else {
            return false;
        };
        // Not before the peer can read it: until its first media, our DTLS side may be done
        // while the peer still waits for our last flight (see `heard_media`).
        if !self.heard_media {
            return false;
        }
        let mut api = self.rtc.direct_api();
        match api.stream_rx_by_mid(mid, None) {
            Some(stream) => {
                stream.request_keyframe(kind);
                self.keyframe_pending = true;
                true
            }
            None => false,
        }
    }

    fn map_pt(&mut self, source: &PayloadParams) -> Option<Pt> {
        if let Some((_, pt)) = self.pt_map.iter().find(|(p, _)| *p == source.pt()) {
            return *pt;
        }
        let pt = self
            .rtc
            .codec_config()
            .match_params(*source)
            .map(|p| p.pt());
        self.pt_map.push((source.pt(), pt));
        pt
    }

    /// Writes one packet from the other peer into this peer's matching send stream.
    fn forward(&mut self, packet: &RtpPacket, source: &PayloadParams, video: bool) -> bool {
        let Some(pt) = self.map_pt(source) else {
            return false;
        };
        let (mid, seq) = if video {
            (self.video_mid, &mut self.video_seq)
        } else {
            (self.audio_mid, &mut self.audio_seq)
        };
        let Some(mid) = mid else {
            return false;
        };
        let Some(seq_out) = seq.map(*packet.seq_no, packet.header.ssrc) else {
            return false;
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        if video && self.resends_uncapped != Some(mid) {
            // str0m drops every queued resend while resends exceed 15 % of the last second's
            // bytes; at 10 % loss on the console's leg, plus its repeated NACKs, that cap is
            // reached and the console's repairs stop for up to a second: a freeze. The cache is
            // replaced (emptied), so this is done once, before the first packet is written.
            stream.set_rtx_cache(RTX_BUFFER_PACKETS, RTX_MAX_AGE, None);
            self.resends_uncapped = Some(mid);
        }
        let write = RtpWrite::new(
            pt,
            seq_out.into(),
            packet.header.timestamp,
            packet.timestamp,
            packet.payload.clone(),
        )
        .marker(packet.header.marker)
        .ext_vals(packet.header.ext_vals.clone())
        .nackable(video);
        stream.write_rtp(write);
        self.written = true;
        true
    }
}

/// What flows; `true` = forwarded. Survives peer replacement (reconnect, transfer).
struct Flow {
    customer_audio: bool,
    customer_video: bool,
    technician_audio: bool,
}

struct Room {
    customer: Option<Peer>,
    technician: Option<Peer>,
    flow: Flow,
    held: bool,
    /// A keyframe is wanted from the customer as soon as its video stream is known.
    keyframe_wanted: bool,
    /// The customer was asked for a keyframe and none has started to arrive since: asked
    /// again on [`KeyframeWait`]'s schedule (a PLI lost on the network is otherwise never
    /// repeated). `None` costs the forwarding path one check per drive.
    keyframe_wait: Option<KeyframeWait>,
    tap: Option<Tap>,
    /// Already in the engine's list of rooms the current batch touched.
    touched: bool,
    /// The earliest deadline this room has in the engine's timer heap (entries for other
    /// times are stale and skipped when they come up).
    scheduled: Option<Instant>,
}

impl Room {
    fn new() -> Self {
        Room {
            customer: None,
            technician: None,
            flow: Flow {
                customer_audio: true,
                customer_video: true,
                technician_audio: true,
            },
            held: false,
            keyframe_wanted: false,
            keyframe_wait: None,
            tap: None,
            touched: false,
            scheduled: None,
        }
    }

    fn peer_mut(&mut self, role: PeerRole) -> Option<&mut Peer> {
        match role {
            PeerRole::Customer => self.customer.as_mut(),
            PeerRole::Technician => self.technician.as_mut(),
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let c = self.customer.as_ref().map(|p| p.next_timeout);
        let t = self.technician.as_ref().map(|p| p.next_timeout);
        match (c, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What polling one peer produced that concerns the room.
#[derive(Default)]
struct Polled {
    packets: Vec<(Box<RtpPacket>, PayloadParams)>,
    connected: bool,
    keyframe_request: Option<KeyframeRequestKind>,
    /// Where the peer sent STUN: answers come from there, maybe before that address has sent
    /// anything the peer accepted, so it is routed to this peer from now on.
    stun_to: Vec<SocketAddr>,
}

pub(crate) struct Engine {
    /// The media socket (shared by every shard; each sends on it directly).
    socket: Arc<std::net::UdpSocket>,
    outbox: Outbox,
    local: SocketAddr,
    /// This shard's index (encoded in its peers' ICE username fragments).
    shard: usize,
    /// Tells the dispatcher which remote addresses are this shard's; `None` with one shard.
    router: Option<Router>,
    rooms: HashMap<SessionId, Room, FastHash>,
    /// Remote address → the peer that last accepted traffic from it (the fast path).
    routes: HashMap<SocketAddr, (SessionId, PeerRole), FastHash>,
    /// Rooms' str0m deadlines, earliest first: a sweep visits only the rooms that are due,
    /// never the idle ones. Lazily cleaned (see `Room::scheduled`).
    deadlines: BinaryHeap<Reverse<(Instant, SessionId)>>,
    /// Rooms that received input during the current batch: their peers get one timeout and are
    /// drained together when the batch ends (`end_batch`), not after every datagram.
    touched: Vec<SessionId>,
    metrics: Arc<EngineMetrics>,
    /// Arrival time and payload size of each packet forwarded by the current `drive`, observed
    /// into the latency histogram once the packets have been handed to the socket.
    forwarded: Vec<(Instant, usize)>,
    from_customer: Polled,
    from_technician: Polled,
    events: Option<mpsc::UnboundedSender<PeerEvent>>,
    /// The passive ICE-TCP candidate's address (`None`: TCP is off).
    local_tcp: Option<SocketAddr>,
    /// TCP connections by remote address, with the peer whose `Rtc` accepted traffic on them.
    /// Only this shard sends on them (see `tcp.rs`).
    tcp_routes: HashMap<SocketAddr, ((SessionId, PeerRole), TcpLink), FastHash>,
    /// A connected peer silent this long has lost its media (reported down).
    lost_after: Duration,
    next_lost_check: Instant,
    /// The origin of the timer grid ([`TIMER_SLACK`]).
    epoch: Instant,
    /// This thread's CPU use, published for room placement (`load.rs`).
    load: LoadSampler,
    /// Binding requests for this shard that came before their peer (`early.rs`).
    early: EarlyChecks,
}

impl Engine {
    pub(crate) fn new(
        socket: Arc<std::net::UdpSocket>,
        local: SocketAddr,
        shard: usize,
        router: Option<Router>,
        metrics: Arc<EngineMetrics>,
        local_tcp: Option<SocketAddr>,
        lost_after: Duration,
    ) -> Self {
        Engine {
            socket,
            outbox: Outbox::new(),
            local,
            shard,
            router,
            rooms: HashMap::default(),
            routes: HashMap::default(),
            deadlines: BinaryHeap::new(),
            touched: Vec::new(),
            metrics,
            forwarded: Vec::new(),
            from_customer: Polled::default(),
            from_technician: Polled::default(),
            events: None,
            local_tcp,
            tcp_routes: HashMap::default(),
            lost_after,
            next_lost_check: Instant::now() + LOST_CHECK,
            epoch: Instant::now(),
            load: LoadSampler::new(),
            early: EarlyChecks::default(),
        }
    }

    pub(crate) fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// When the shard must wake at the latest for its peers' timers: the earliest deadline,
    /// rounded up to the timer grid ([`TIMER_SLACK`]), so that the answer changes only when a
    /// deadline moves to another step (the shard then re-arms its timer less often, too).
    pub(crate) fn next_wake(&self) -> Instant {
        let now = Instant::now();
        if self.rooms.is_empty() {
            return now + IDLE_SLEEP;
        }
        let next_deadline = self.deadlines.peek().map(|Reverse((t, _))| *t);
        let due = next_deadline
            .map_or(self.next_lost_check, |t| t.min(self.next_lost_check))
            .min(now + MAX_SLEEP);
        on_grid(self.epoch, due, TIMER_SLACK)
    }

    /// Feeds the clock to the peers whose timers are due; looks for silent peers.
    pub(crate) fn sweep_if_due(&mut self) {
        let now = Instant::now();
        if self
            .deadlines
            .peek()
            .is_some_and(|Reverse((t, _))| *t <= now)
        {
            self.sweep(now);
        }
        if now >= self.next_lost_check {
            self.next_lost_check = now + LOST_CHECK;
            self.check_lost(now);
        }
        self.load
            .sample_if_due(now, self.rooms.len(), &self.metrics);
    }

    /// Connected peers from which nothing (STUN, DTLS, RTP, RTCP) arrived for `lost_after` have
    /// lost their media: reported down at once, not when ICE gives up on its checks (~20 s).
    /// Browsers keep sending RTCP and consent checks while video is paused and the microphone
    /// muted, so a quiet session is not lost.
    fn check_lost(&mut self, now: Instant) {
        let expired = self.early.expire(now);
        add(&self.metrics.garbage_dropped, expired as u64);
        for (session, room) in &mut self.rooms {
            for (peer, role) in [
                (room.customer.as_mut(), PeerRole::Customer),
                (room.technician.as_mut(), PeerRole::Technician),
            ] {
                let Some(peer) = peer else { continue };
                if now.saturating_duration_since(peer.last_heard) >= self.lost_after {
                    lose_media(
                        peer,
                        *session,
                        role,
                        "silent",
                        &self.metrics,
                        self.events.as_ref(),
                    );
                }
            }
        }
    }

    /// What the ICE-TCP listener hands this shard.
    pub(crate) fn tcp_input(&mut self, input: TcpInput) {
        match input {
            TcpInput::Frame {
                source,
                link,
                data,
                arrival,
            } => self.receive(&data, source, arrival, Some(link)),
            TcpInput::Closed { source, id } => {
                let Some(((session, role), _)) = self
                    .tcp_routes
                    .get(&source)
                    .filter(|(_, link)| link.id() == id)
                    .map(|(peer, link)| (*peer, link.id()))
                else {
                    return;
                };
                self.tcp_routes.remove(&source);
                // A dead connection is lost media when it was the peer's path.
                if let Some(peer) = self.rooms.get_mut(&session).and_then(|r| r.peer_mut(role))
                    && peer.path == Some((Protocol::Tcp, source))
                {
                    let events = self.events.as_ref();
                    lose_media(peer, session, role, "TCP closed", &self.metrics, events);
                }
            }
        }
    }

    /// Sends what the peers queued since the last flush, then records how long the forwarded
    /// packets among them spent inside the server.
    pub(crate) fn flush(&mut self) {
        if !self.outbox.is_empty() {
            let flushed = self.outbox.flush(&self.socket);
            if flushed.failed > 0 {
                add(&self.metrics.send_failures, flushed.failed as u64);
            }
            if flushed.segmented > 0 {
                add(&self.metrics.gso_datagrams, flushed.segmented as u64);
            }
        }
        if !self.forwarded.is_empty() {
            let now = Instant::now();
            for (arrival, bytes) in self.forwarded.drain(..) {
                self.metrics
                    .forwarded(bytes, now.saturating_duration_since(arrival));
            }
        }
    }

    /// Remembers that datagrams from `address` are for this peer (and tells the dispatcher).
    fn learn_route(&mut self, address: SocketAddr, peer: (SessionId, PeerRole)) {
        if self.routes.insert(address, peer).is_none()
            && let Some(router) = &self.router
        {
            router.learn(address, self.shard);
        }
    }

    /// Forgets the routes to peers `gone` says are gone (closing their TCP connections).
    fn forget_routes(&mut self, gone: impl Fn(&(SessionId, PeerRole)) -> bool) {
        let router = self.router.as_ref();
        let shard = self.shard;
        self.routes.retain(|address, peer| {
            let keep = !gone(peer);
            if !keep && let Some(router) = router {
                router.forget(*address, shard);
            }
            keep
        });
        self.tcp_routes.retain(|_, (peer, link)| {
            let keep = !gone(peer);
            if !keep {
                link.close();
            }
            keep
        });
    }

    pub(crate) fn command(&mut self, command: Command) {
        match command {
            Command::Open { session } => {
                self.room(session);
            }
            Command::AddPeer {
                session,
                role,
                rtc,
                counters,
                video_mid,
                audio_mid,
                relays,
            } => {
                let metrics = self.metrics.clone();
                let room = self.room(session);
                let mut peer = Peer::new(*rtc, counters, metrics, video_mid, audio_mid);
                peer.relays = relays;
                let (slot, other) = match role {
                    PeerRole::Customer => (&mut room.customer, &mut room.technician),
                    PeerRole::Technician => (&mut room.technician, &mut room.customer),
                };
                if let Some(mut old) = slot.replace(peer) {
                    old.rtc.disconnect();
                }
                if let Some(tap) = room.tap.as_mut() {
                    tap.forget(role);
                }
                // The other side's outgoing streams now carry packets from a new source.
                if let Some(other) = other {
                    other.pt_map.clear();
                    other.video_seq.resync = true;
                    other.audio_seq.resync = true;
                }
                self.forget_routes(|r| *r == (session, role));
                self.hand_early_checks(session, role);
                self.drive(session);
            }
            Command::RemoteCandidate {
                session,
                role,
                candidate,
            } => {
                if let Some(peer) = self.rooms.get_mut(&session).and_then(|r| r.peer_mut(role)) {
                    if candidate.kind() == CandidateKind::Relayed {
                        peer.relays.push(candidate.addr());
                    }
                    peer.rtc.add_remote_candidate(candidate);
                    self.drive(session);
                }
            }
            Command::SetFlowing {
                session,
                from_customer,
                kind,
                flowing,
            } => {
                let Some(room) = self.rooms.get_mut(&session) else {
                    return;
                };
                match (from_customer, kind) {
                    (true, MediaKind::Audio) => room.flow.customer_audio = flowing,
                    (true, MediaKind::Video) => {
                        if flowing && !room.flow.customer_video {
                            room.keyframe_wanted = true;
                        }
                        room.flow.customer_video = flowing;
                    }
                    (false, MediaKind::Audio) => room.flow.technician_audio = flowing,
                    // The technician sends no video.
                    (false, MediaKind::Video) => {}
                }
                self.drive(session);
            }
            Command::Hold { session, held } => {
                let Some(room) = self.rooms.get_mut(&session) else {
                    return;
                };
                if room.held && !held {
                    room.keyframe_wanted = true;
                }
                room.held = held;
                self.drive(session);
            }
            Command::Stop { session } => {
                if let Some(mut room) = self.rooms.remove(&session) {
                    self.metrics.rooms.fetch_sub(1, Ordering::Relaxed);
                    for peer in [room.customer.as_mut(), room.technician.as_mut()]
                        .into_iter()
                        .flatten()
                    {
                        peer.rtc.disconnect();
                    }
                }
                self.forget_routes(|(s, _)| *s == session);
            }
            Command::Tap {
                session,
                sender,
                dropped,
            } => {
                if let Some(room) = self.rooms.get_mut(&session) {
                    room.tap = Some(Tap::new(sender, dropped));
                }
            }
            Command::Keyframe { session } => {
                if let Some(room) = self.rooms.get_mut(&session) {
                    room.keyframe_wanted = true;
                    self.drive(session);
                }
            }
            Command::Renegotiate {
                session,
                offer,
                reply,
            } => {
                let peer = self
                    .rooms
                    .get_mut(&session)
                    .and_then(|r| r.customer.as_mut());
                let shard = self.shard;
                let answer = match peer {
                    // New ICE credentials in the offer make str0m restart ICE on this Rtc;
                    // DTLS and SRTP carry on.
                    Some(peer) => renegotiate(&mut peer.rtc, *offer, shard),
                    None => Err(SfuError::NoLivePeer(session)),
                };
                // The caller may have given up waiting.
                let _ = reply.send(answer);
                self.drive(session);
            }
            Command::Subscribe { sender } => self.events = Some(sender),
        }
    }

    /// The session's room, opened if needed.
    fn room(&mut self, session: SessionId) -> &mut Room {
        self.rooms.entry(session).or_insert_with(|| {
            self.metrics.rooms.fetch_add(1, Ordering::Relaxed);
            Room::new()
        })
    }

    /// One datagram that arrived at `arrival`. The caller flushes.
    pub(crate) fn datagram(&mut self, data: &[u8], source: SocketAddr, arrival: Instant) {
        self.receive(data, source, arrival, None);
    }

    /// One datagram, or one frame of the TCP connection `link`: the same path from here on.
    fn receive(
        &mut self,
        data: &[u8],
        source: SocketAddr,
        arrival: Instant,
        link: Option<TcpLink>,
    ) {
        let Some((kind, contents)) = crate::demux::parse(data) else {
            add(&self.metrics.garbage_dropped, 1);
            return;
        };
        let ends = (self.local, self.local_tcp);
        let Some(input) = receive_input(contents, source, arrival, link.as_ref(), ends) else {
            add(&self.metrics.garbage_dropped, 1);
            return;
        };
        let known = match &link {
            None => self.routes.get(&source).copied(),
            Some(link) => self
                .tcp_routes
                .get(&source)
                .filter(|(_, l)| l.id() == link.id())
                .map(|(peer, _)| *peer),
        };
        let mut target = known.filter(|(s, role)| {
            self.rooms
                .get_mut(s)
                .and_then(|r| r.peer_mut(*role))
                .is_some_and(|p| p.rtc.accepts(&input))
        });
        if target.is_none() {
            target = self.rooms.iter().find_map(|(s, room)| {
                [
                    (PeerRole::Customer, room.customer.as_ref()),
                    (PeerRole::Technician, room.technician.as_ref()),
                ]
                .into_iter()
                .find(|(_, p)| p.is_some_and(|p| p.rtc.accepts(&input)))
                .map(|(role, _)| (*s, role))
            });
            if let Some(found) = target {
                match &link {
                    None => self.learn_route(source, found),
                    Some(link) => {
                        link.authenticate();
                        self.tcp_routes.insert(source, (found, link.clone()));
                    }
                }
            }
        }
        let Some((session, role)) = target else {
            if crate::demux::stun_request_ufrag(data)
                .is_some_and(|ufrag| crate::shard::shard_of(ufrag) == Some(self.shard))
            {
                // Maybe a console's check that beat its answer here: held for its peer.
                let dropped = self.early.hold(data, source, link, arrival);
                add(&self.metrics.garbage_dropped, dropped as u64);
                tracing::trace!(%source, "binding request before its peer: held");
                return;
            }
            add(&self.metrics.garbage_dropped, 1);
            tracing::trace!(%source, ?kind, "datagram for no peer");
            return;
        };
        let mut drained = false;
        if let Some(peer) = self.rooms.get_mut(&session).and_then(|r| r.peer_mut(role)) {
            peer.counters.received(data.len());
            peer.last_heard = arrival;
            peer.lost = false;
            if let Err(e) = peer.rtc.handle_input(input) {
                add(&self.metrics.garbage_dropped, 1);
                tracing::debug!(session_id = session, ?role, error = %e, "peer rejected input");
            }
            if peer.keyframe_pending {
                peer.keyframe_pending = false;
                peer.feed_clock(arrival, session);
                // The keyframe request goes out now, with the rest of the peer's output (as
                // before per-datagram polls stopped at the packet).
                drained = true;
            }
        }
        // Only the peer that got the datagram is polled now (str0m holds one received RTP
        // packet at a time); what it forwarded waits in the other peer's send stream until the
        // batch ends, so a batch costs each peer one timeout and one drain, not one per packet.
        self.drive_polling(session, Some(role), !drained);
    }

    /// Hands a peer that just joined the checks that came for it before it did (`early.rs`).
    fn hand_early_checks(&mut self, session: SessionId, role: PeerRole) {
        let now = Instant::now();
        let Some(peer) = self.rooms.get_mut(&session).and_then(|r| r.peer_mut(role)) else {
            return;
        };
        let ends = (self.local, self.local_tcp);
        let taken = self.early.take(|check| {
            crate::demux::parse(&check.data)
                .and_then(|(_, contents)| {
                    receive_input(contents, check.source, now, check.link.as_ref(), ends)
                })
                .is_some_and(|input| peer.rtc.accepts(&input))
        });
        if !taken.is_empty() {
            tracing::trace!(
                session_id = session,
                ?role,
                checks = taken.len(),
                "early checks handed over"
            );
        }
        for check in taken {
            add(&self.metrics.early_checks, 1);
            self.receive(&check.data, check.source, now, check.link);
        }
    }

    /// Ends a batch of input (one `recvmmsg`, one hand-over from shard 0, one TCP frame): each
    /// peer of a room that received something gets one timeout, when packets were written to it
    /// or its deadline passed, then the room is drained. The caller flushes.
    pub(crate) fn end_batch(&mut self) {
        if self.touched.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut touched = std::mem::take(&mut self.touched);
        for session in touched.drain(..) {
            if let Some(room) = self.rooms.get_mut(&session) {
                room.touched = false;
                feed_due_timeouts(room, session, now, true);
                self.drive(session);
            }
        }
        self.touched = touched;
    }

    /// Feeds the clock to the rooms whose deadline passed (from the timer heap), then drives them.
    fn sweep(&mut self, now: Instant) {
        while let Some(Reverse((t, session))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            let Some(room) = self.rooms.get_mut(&session) else {
                continue;
            };
            if room.scheduled != Some(t) {
                // A stale entry: the room was rescheduled earlier since.
                continue;
            }
            room.scheduled = None;
            if room.next_timeout().is_some_and(|d| d <= now) {
                feed_due_timeouts(room, session, now, false);
                self.drive(session);
            } else {
                // Its peers asked for a later time since this entry was made.
                self.schedule(session);
            }
        }
    }

    /// Puts the room's earliest deadline in the timer heap, unless an earlier one is there.
    fn schedule(&mut self, session: SessionId) {
        let Some(room) = self.rooms.get_mut(&session) else {
            return;
        };
        let Some(t) = room.next_timeout() else {
            return;
        };
        if room.scheduled.is_none_or(|s| t < s) {
            room.scheduled = Some(t);
            self.deadlines.push(Reverse((t, session)));
        }
    }

    /// Polls both peers of a room until neither has anything more to send, forwarding RTP
    /// between them.
    fn drive(&mut self, session: SessionId) {
        self.drive_polling(session, None, false);
    }

    /// `drive`, polling only `only`'s peer when given (and then leaving due timeouts to the end
    /// of the batch, for which the room is marked touched here: one lookup per datagram).
    /// `until_packet` (with `only`): the peer is polled only until it hands out the received RTP
    /// packet (str0m holds one at a time); the rest of its output (its timeout, anything an RTCP
    /// packet caused) is drained once for the batch by `end_batch`. Polling on to the timeout
    /// walked every part of the `Rtc` and recomputed its deadline for every packet.
    fn drive_polling(&mut self, session: SessionId, only: Option<PeerRole>, until_packet: bool) {
        let Some(room) = self.rooms.get_mut(&session) else {
            return;
        };
        if only.is_some() && !room.touched {
            room.touched = true;
            self.touched.push(session);
        }
        let inline = if only.is_some() { 0 } else { INLINE_TIMEOUTS };
        let poll_customer = only != Some(PeerRole::Technician);
        let poll_technician = only != Some(PeerRole::Customer);
        loop {
            let mut out = Out {
                udp: &mut self.outbox,
                tcp: &self.tcp_routes,
                metrics: &self.metrics,
            };
            if let Some(peer) = room.customer.as_mut().filter(|_| poll_customer) {
                poll_peer(
                    peer,
                    &mut out,
                    &mut self.from_customer,
                    session,
                    inline,
                    until_packet,
                );
            }
            if let Some(peer) = room.technician.as_mut().filter(|_| poll_technician) {
                poll_peer(
                    peer,
                    &mut out,
                    &mut self.from_technician,
                    session,
                    inline,
                    until_packet,
                );
            }
            for (peer, role) in [
                (room.customer.as_mut(), PeerRole::Customer),
                (room.technician.as_mut(), PeerRole::Technician),
            ] {
                if let Some(up) = peer.and_then(Peer::report) {
                    emit(self.events.as_ref(), session, role, up);
                }
            }
            for (polled, role) in [
                (&mut self.from_customer, PeerRole::Customer),
                (&mut self.from_technician, PeerRole::Technician),
            ] {
                for address in polled.stun_to.drain(..) {
                    if self.routes.insert(address, (session, role)).is_none()
                        && let Some(router) = &self.router
                    {
                        router.learn(address, self.shard);
                    }
                }
            }
            if self.from_technician.connected {
                self.from_technician.connected = false;
                room.keyframe_wanted = true;
            }
            self.from_customer.connected = false;
            if let Some(kind) = self.from_technician.keyframe_request.take()
                && !room.held
                && room.flow.customer_video
                && let Some(customer) = room.customer.as_mut()
                && customer.request_keyframe(kind)
            {
                add(&self.metrics.keyframe_requests_forwarded, 1);
                room.keyframe_wait = Some(KeyframeWait::asked(Instant::now()));
            }
            self.from_customer.keyframe_request = None;
            if let Some(customer) = room.customer.as_mut()
                && !self.from_customer.packets.is_empty()
            {
                // A packet of the phone's video that was never repaired stalls the console
                // until a keyframe: ask the phone now rather than after the console's timeout.
                let now = Instant::now();
                for (packet, params) in &self.from_customer.packets {
                    if params.spec().codec.is_video() {
                        customer
                            .uplink_gaps
                            .packet(packet.header.ssrc, *packet.seq_no, now);
                    }
                }
                if customer.uplink_gaps.keyframe_needed(now) {
                    room.keyframe_wanted = true;
                }
            }
            if room.keyframe_wanted
                && !room.held
                && room.flow.customer_video
                && (room.tap.is_some() || room.technician.as_ref().is_some_and(|t| t.connected))
                && let Some(customer) = room.customer.as_mut()
                && customer.connected
                && customer.request_keyframe(KeyframeRequestKind::Pli)
            {
                add(&self.metrics.keyframe_requests_sent, 1);
                room.keyframe_wanted = false;
                room.keyframe_wait = Some(KeyframeWait::asked(Instant::now()));
            }
            if room.keyframe_wait.is_some() {
                await_keyframe(room, session, &self.from_customer.packets, &self.metrics);
            }
            if self.from_customer.packets.is_empty() && self.from_technician.packets.is_empty() {
                break;
            }
            if room.tap.as_ref().is_some_and(Tap::is_closed) {
                room.tap = None;
            }
            forward_all(
                &mut self.from_customer.packets,
                PeerRole::Customer,
                room.customer.as_ref(),
                room.technician.as_mut(),
                room.tap.as_mut(),
                &mut self.forwarded,
                |video| {
                    !room.held
                        && if video {
                            room.flow.customer_video
                        } else {
                            room.flow.customer_audio
                        }
                },
            );
            forward_all(
                &mut self.from_technician.packets,
                PeerRole::Technician,
                room.technician.as_ref(),
                room.customer.as_mut(),
                room.tap.as_mut(),
                &mut self.forwarded,
                |video| !room.held && !video && room.flow.technician_audio,
            );
            if until_packet {
                // The packet went into the other peer's send stream; both peers are drained
                // when the batch ends.
                break;
            }
        }
        let dead = [room.customer.as_ref(), room.technician.as_ref()]
            .into_iter()
            .flatten()
            .any(|p| !p.rtc.is_alive());
        if dead {
            let mut closed = Vec::new();
            for (slot, role) in [
                (&mut room.customer, PeerRole::Customer),
                (&mut room.technician, PeerRole::Technician),
            ] {
                if slot.as_ref().is_some_and(|p| !p.rtc.is_alive()) {
                    tracing::info!(session_id = session, ?role, "peer closed");
                    if slot.take().is_some_and(|p| p.reported) {
                        closed.push(role);
                    }
                }
            }
            for role in closed {
                emit(self.events.as_ref(), session, role, false);
            }
        }
        // A room polled for one datagram is touched, and `end_batch` drives and schedules it
        // once for the whole batch: scheduling it here too would be a lookup per datagram.
        if only.is_none() {
            self.schedule(session);
        }
    }
}

/// While the room waits for a keyframe it asked the customer for: a packet of the customer's
/// video about to be forwarded that starts one ends the wait; otherwise, when the wait's
/// interval has passed and the customer sent video since, the request is sent again. The wait
/// ends, too, when the keyframe would go nowhere (hold, paused video, no console and no tap):
/// each of those, when it ends, asks anew (`keyframe_wanted`).
fn await_keyframe(
    room: &mut Room,
    session: SessionId,
    from_customer: &[(Box<RtpPacket>, PayloadParams)],
    metrics: &EngineMetrics,
) {
    let watching = room.tap.is_some() || room.technician.as_ref().is_some_and(|t| t.connected);
    if room.held || !room.flow.customer_video || !watching {
        room.keyframe_wait = None;
        return;
    }
    // No packet from the customer: nothing to look at, and no video to answer with.
    let Some(wait) = room
        .keyframe_wait
        .as_mut()
        .filter(|_| !from_customer.is_empty())
    else {
        return;
    };
    for (packet, params) in from_customer {
        // Audio, and a video codec the SFU does not negotiate (cannot happen), are skipped.
        let Some(codec) = VideoCodec::of(params.spec().codec) else {
            continue;
        };
        if starts_keyframe(codec, &packet.payload) {
            room.keyframe_wait = None;
            return;
        }
        wait.video();
    }
    let now = Instant::now();
    if wait.repeat_due(now)
        && let Some(customer) = room.customer.as_mut()
        && customer.connected
        && customer.request_keyframe(KeyframeRequestKind::Pli)
    {
        add(&metrics.keyframe_requests_repeated, 1);
        wait.repeated(now);
        // The first repeat of a wait is news (a request or its answer was lost); a phone that
        // ignores requests would otherwise log every 2 s.
        if wait.repeats() == 1 {
            tracing::info!(
                session_id = session,
                "no keyframe after a request: asked again"
            );
        } else {
            tracing::debug!(
                session_id = session,
                repeats = wait.repeats(),
                "asked again"
            );
        }
    }
}

/// One timeout for each peer of the room whose deadline passed; a peer (`written`) that only had
/// packets written into its send streams since its last one gets them made sendable without
/// the full pass (str0m's `handle_media_written`): that pass walked ICE, every stream's RTCP,
/// NACK and TWCC timers and the statistics once per touched peer per batch, mostly with
/// nothing due. Whatever is due shows in the drain that follows and is fed there (`poll_peer`).
fn feed_due_timeouts(room: &mut Room, session: SessionId, now: Instant, written: bool) {
    for peer in [room.customer.as_mut(), room.technician.as_mut()]
        .into_iter()
        .flatten()
    {
        if peer.next_timeout <= now {
            peer.written = false;
            peer.feed_clock(now, session);
        } else if written && peer.written {
            peer.written = false;
            if let Err(e) = peer.rtc.handle_media_written(now) {
                tracing::debug!(session_id = session, error = %e, "peer send queue failed");
            }
        }
    }
}

/// What str0m is handed for a datagram (or a frame of the TCP connection `link`), given this
/// shard's UDP and ICE-TCP addresses; `None` for a frame when ICE-TCP is off.
fn receive_input<'a>(
    contents: str0m::net::DatagramRecv<'a>,
    source: SocketAddr,
    arrival: Instant,
    link: Option<&TcpLink>,
    (local_udp, local_tcp): (SocketAddr, Option<SocketAddr>),
) -> Option<Input<'a>> {
    let (proto, destination) = match (link, local_tcp) {
        (None, _) => (Protocol::Udp, local_udp),
        (Some(_), Some(tcp)) => (Protocol::Tcp, tcp),
        (Some(_), None) => return None,
    };
    Some(Input::Receive(
        arrival,
        Receive {
            proto,
            source,
            destination,
            contents,
        },
    ))
}

/// A connected peer's media is lost (`why`: silent, or its TCP connection closed): counted and
/// reported down until the peer is heard again.
fn lose_media(
    peer: &mut Peer,
    session: SessionId,
    role: PeerRole,
    why: &str,
    metrics: &EngineMetrics,
    events: Option<&mpsc::UnboundedSender<PeerEvent>>,
) {
    if !peer.connected || peer.lost {
        return;
    }
    tracing::info!(session_id = session, ?role, why, "peer media lost");
    add(&metrics.peers_lost, 1);
    peer.lost = true;
    if let Some(up) = peer.report() {
        emit(events, session, role, up);
    }
}

fn emit(
    events: Option<&mpsc::UnboundedSender<PeerEvent>>,
    session: SessionId,
    role: PeerRole,
    up: bool,
) {
    tracing::debug!(session_id = session, ?role, up, "peer media");
    if let Some(events) = events {
        // A subscriber that went away is not our concern.
        let _ = events.send(PeerEvent { session, role, up });
    }
}

/// Hands `from`'s packets to the other peer (when connected) and to the tap. The tap sees every
/// packet the room lets through, also while the other peer is not (yet) connected.
fn forward_all(
    packets: &mut Vec<(Box<RtpPacket>, PayloadParams)>,
    from: PeerRole,
    source: Option<&Peer>,
    target: Option<&mut Peer>,
    mut tap: Option<&mut Tap>,
    forwarded: &mut Vec<(Instant, usize)>,
    allowed: impl Fn(bool) -> bool,
) {
    let Some(source) = source else {
        packets.clear();
        return;
    };
    let mut target = target.filter(|t| t.connected);
    for (packet, params) in packets.drain(..) {
        let video = params.spec().codec.is_video();
        let flowing = allowed(video);
        if let Some(tap) = tap.as_deref_mut() {
            tap.packet(from, &packet, &params, !flowing);
        }
        if !flowing {
            source.counters.dropped_muted();
            if let Some(target) = target.as_deref_mut() {
                let seq = if video {
                    &mut target.video_seq
                } else {
                    &mut target.audio_seq
                };
                seq.resync = true;
            }
            continue;
        }
        if let Some(target) = target.as_deref_mut()
            && target.forward(&packet, &params, video)
        {
            source.counters.forwarded();
            forwarded.push((packet.timestamp, packet.payload.len()));
        }
    }
}

/// The first point of the grid (`epoch` + k × `step`) at or after `t`.
fn on_grid(epoch: Instant, t: Instant, step: Duration) -> Instant {
    let Some(since) = t.checked_duration_since(epoch) else {
        return t;
    };
    let step_ns = step.as_nanos().max(1);
    let steps = since.as_nanos().div_ceil(step_ns);
    let offset = steps.saturating_mul(step_ns);
    epoch + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

/// Timeouts already due that `poll_peer` feeds at once, before leaving the rest to the sweep.
const INLINE_TIMEOUTS: u32 = 4;

/// Where a peer's `Transmit`s go: the shared UDP batch, or the TCP connection they name.
struct Out<'a> {
    udp: &'a mut Outbox,
    tcp: &'a HashMap<SocketAddr, ((SessionId, PeerRole), TcpLink), FastHash>,
    metrics: &'a EngineMetrics,
}

/// Polls one peer until it wants the clock (or, `until_packet`, until it hands out an RTP
/// packet). Up to `inline` timeouts already due are fed at once.
fn poll_peer(
    peer: &mut Peer,
    out: &mut Out<'_>,
    polled: &mut Polled,
    session: SessionId,
    inline: u32,
    until_packet: bool,
) {
    let mut inline_timeouts = 0;
    loop {
        if !peer.rtc.is_alive() {
            peer.next_timeout = Instant::now() + MAX_SLEEP;
            return;
        }
        let output = match peer.rtc.poll_output() {
            Ok(output) => output,
            Err(e) => {
                tracing::warn!(session_id = session, error = %e, "peer failed; closing it");
                peer.rtc.disconnect();
                continue;
            }
        };
        match output {
            Output::Timeout(t) => {
                // str0m often wants the clock right after a packet (pacing, feedback): feeding
                // it here spares a sweep over every room per forwarded packet.
                let now = Instant::now();
                if t <= now && inline_timeouts < inline {
                    inline_timeouts += 1;
                    peer.written = false;
                    peer.feed_clock(now, session);
                    continue;
                }
                peer.next_timeout = t;
                return;
            }
            Output::Transmit(t) => {
                if !peer.rtx_pts.is_empty() {
                    peer.count_resend(&t.contents);
                }
                let stun = t.contents.first().is_some_and(|b| *b < 4);
                if !stun {
                    // DTLS and media go on the nominated pair only: that is the peer's path.
                    peer.note_path(t.proto, t.destination);
                }
                if t.proto == Protocol::Tcp {
                    // Checks toward a browser's active TCP candidates (port 9) have no
                    // connection: we are the passive side, so they are dropped here.
                    if let Some((_, link)) = out.tcp.get(&t.destination) {
                        let len = t.contents.len();
                        if link.send(t.contents.into()) {
                            peer.counters.sent(len);
                        } else {
                            add(&out.metrics.send_failures, 1);
                        }
                    }
                    continue;
                }
                // STUN (RFC 7983: first byte 0-3) is rare; see `Polled::stun_to`.
                if stun {
                    polled.stun_to.push(t.destination);
                }
                out.udp
                    .push(t.destination, t.contents.into(), &peer.counters);
            }
            Output::Event(event) => match event {
                Event::Connected => {
                    peer.set_connected(true);
                    polled.connected = true;
                }
                Event::IceConnectionStateChange(state) => {
                    tracing::debug!(session_id = session, ?state, "ICE state");
                    match state {
                        // Consent lost, or an ICE restart under way (new credentials, new
                        // pairs): no media path until ICE is connected again.
                        IceConnectionState::Disconnected | IceConnectionState::Checking => {
                            peer.set_connected(false)
                        }
                        IceConnectionState::Connected | IceConnectionState::Completed
                            if !peer.connected && peer.rtc.is_connected() =>
                        {
                            peer.set_connected(true);
                            polled.connected = true;
                        }
                        _ => {}
                    }
                }
                Event::MediaAdded(added) => {
                    if added.kind.is_audio() {
                        peer.audio_mid = Some(added.mid);
                    } else {
                        peer.video_mid = Some(added.mid);
                    }
                }
                Event::KeyframeRequest(request) => polled.keyframe_request = Some(request.kind),
                Event::PeerStats(stats) => peer.peer_stats(&stats),
                Event::MediaIngressStats(stats) => peer.ingress_stats(&stats),
                Event::MediaEgressStats(stats) => peer.egress_stats(&stats),
                Event::RtpPacket(packet) => {
                    peer.heard_media = true;
                    let pt = packet.header.payload_type;
                    if let Some(params) = peer.rtc.codec_config().find(|p| p.pt() == pt).copied() {
                        polled.packets.push((packet, params));
                    }
                    if until_packet {
                        return;
                    }
                }
                _ => {}
            },
        }
    }
}

/// Applies a re-offer from the customer's live peer connection to its `Rtc`. An ICE restart in it
/// makes str0m pick new random local ICE credentials; they are replaced by ones naming this
/// shard (in the `Rtc` and in the answer's text), so the dispatcher can route the checks that
/// follow, which come from a new address.
fn renegotiate(rtc: &mut Rtc, offer: SdpOffer, shard: usize) -> Result<String, SfuError> {
    let before = rtc.direct_api().local_ice_credentials();
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| SfuError::Sdp(e.to_string()))?
        .to_sdp_string();
    let after = rtc.direct_api().local_ice_credentials();
    if after.ufrag == before.ufrag {
        return Ok(answer);
    }
    let ours = crate::shard::credentials(shard);
    let answer = answer
        .replace(
            &format!("a=ice-ufrag:{}", after.ufrag),
            &format!("a=ice-ufrag:{}", ours.ufrag),
        )
        .replace(
            &format!("a=ice-pwd:{}", after.pass),
            &format!("a=ice-pwd:{}", ours.pass),
        );
    rtc.direct_api().set_local_ice_credentials(ours);
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_grid_rounds_up_by_less_than_a_step() {
        let epoch = Instant::now();
        let step = Duration::from_millis(5);
        for ms in [0u64, 1, 4, 5, 6, 9, 10, 33, 100, 1234] {
            for extra_us in [0u64, 1, 999] {
                let t = epoch + Duration::from_millis(ms) + Duration::from_micros(extra_us);
                let g = on_grid(epoch, t, step);
                assert!(
                    g >= t && g - t < step,
                    "{ms} ms + {extra_us} µs → {:?}",
                    g - epoch
                );
                assert_eq!((g - epoch).as_nanos() % step.as_nanos(), 0);
            }
        }
        // Before the epoch (cannot happen for a deadline computed later): unchanged.
        let early = epoch.checked_sub(Duration::from_millis(3)).unwrap_or(epoch);
        assert_eq!(on_grid(epoch, early, step), early);
    }
}
