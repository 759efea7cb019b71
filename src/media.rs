//! The seam between signaling and media: what the session state machine decides ("start media for
//! session S with audio on", "hold", "resume", "stop") and what the phone and console send about
//! their WebRTC peers. [`SfuMediaPlan`] carries it out with our SFU.

use futures_util::future::BoxFuture;
use signaling::protocol::MediaKind;
use signaling::session::{SessionId, UserId};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaError(pub String);

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer to the phone's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerAnswer {
    pub sdp: String,
    /// The phone's live peer connection offered again (an ICE restart after a network change):
    /// its media session goes on, and the console keeps its own.
    pub renegotiated: bool,
}

/// Calls are made while the session hub holds its lock: implementations must not block (hand work
/// to their own tasks through channels).
pub trait MediaPlan: Send + Sync {
    fn start(&self, session: SessionId, technician: UserId, audio: bool);
    fn hold(&self, session: SessionId);
    fn resume(&self, session: SessionId);
    /// Ends the session's media; returns the bytes it transmitted (both peers, both ways).
    fn stop(&self, session: SessionId) -> Option<u64>;
    /// The phone's SDP offer; the answer goes back in the `ok` reply. The offer is taken before
    /// this returns (candidates that follow apply to it); the answer may take a moment when the
    /// phone's live peer is renegotiated (ICE restart).
    fn customer_offer(
        &self,
        session: SessionId,
        sdp: &str,
    ) -> BoxFuture<'static, Result<CustomerAnswer, MediaError>>;
    /// The server's offer to the technician's console (after the phone's media is up).
    fn technician_offer(&self, session: SessionId) -> Result<String, MediaError>;
    /// The console's answer to the server's offer.
    fn console_answer(&self, session: SessionId, sdp: &str) -> Result<(), MediaError>;
    fn candidate(&self, session: SessionId, from_customer: bool, candidate: Option<&str>);
    /// `flowing = false` stops forwarding that media.
    fn set_flowing(&self, session: SessionId, from_customer: bool, kind: MediaKind, flowing: bool);
    /// The phone's and the console's media paths going down (`false`: nothing heard from the
    /// peer for `media.lost_after`, ICE lost, or restarting after a network change) and coming
    /// back, per session. Taken once, by the session hub.
    fn media_events(&self) -> Option<mpsc::UnboundedReceiver<(SessionId, MediaSide, bool)>>;
    /// How each side's media reaches the server now (`udp`, `tcp`, `relay`), customer first;
    /// `None` for a side without a connected peer.
    fn transports(&self, session: SessionId) -> [Option<&'static str>; 2];
}

/// Which peer of a session a media event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaSide {
    Customer,
    Technician,
}

/// The media plan of a real server: our SFU (`sfu/`, str0m), one UDP port for every peer.
pub struct SfuMediaPlan {
    sfu: sfu::SfuHandle,
    started: std::sync::Mutex<std::collections::HashSet<SessionId>>,
    /// Set once the store is open (the recorder needs it); sessions started before are not recorded.
    recorder: std::sync::OnceLock<std::sync::Arc<crate::recorder::RecorderService>>,
}

impl SfuMediaPlan {
    /// Binds the media socket: `media.udp_port` on the listen address's IP, advertising
    /// `media.public_ip` when set.
    pub fn start(config: &crate::config::Config) -> anyhow::Result<SfuMediaPlan> {
        let bind = std::net::SocketAddr::new(config.listen.ip(), config.media.udp_port);
        let public_ip = if config.media.public_ip.is_empty() {
            None
        } else {
            Some(
                config
                    .media
                    .public_ip
                    .parse()
                    .map_err(|_| anyhow::anyhow!("media.public_ip: not an IP address"))?,
            )
        };
        let (sfu, _task) = sfu::Sfu::start(sfu::SfuConfig {
            bind,
            public_ip,
            recv_buffer_bytes: config.media.udp_recv_buffer_bytes,
            send_buffer_bytes: config.media.udp_send_buffer_bytes,
            shards: config.media.shards,
            shard_fill: config.media.shard_fill,
            tcp_port: config.media.tcp_port(),
            tcp_handshake_timeout: sfu::TCP_HANDSHAKE_TIMEOUT,
            lost_after: std::time::Duration::from_secs_f64(config.media.lost_after),
            video_codecs: config
                .media
                .video_codec_preference()
                .map_err(|e| anyhow::anyhow!("media.video_codecs: {e}"))?,
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "media (media.udp_port {}, media.tcp_port {}, media.public_ip): {e}",
                config.media.udp_port,
                config.media.tcp_port
            )
        })?;
        tracing::info!(addr = %sfu.candidate_addr(), "media: listening (UDP)");
        if let Some(tcp) = sfu.tcp_candidate_addr() {
            tracing::info!(addr = %tcp, "media: listening (ICE-TCP)");
        }
        Ok(SfuMediaPlan {
            sfu,
            started: Default::default(),
            recorder: Default::default(),
        })
    }

    /// The SFU itself (metrics, the recorder tap).
    pub fn sfu(&self) -> &sfu::SfuHandle {
        &self.sfu
    }

    pub fn set_recorder(&self, recorder: std::sync::Arc<crate::recorder::RecorderService>) {
        let _ = self.recorder.set(recorder);
    }

    pub fn candidate_addr(&self) -> std::net::SocketAddr {
        self.sfu.candidate_addr()
    }
}

fn kind(k: MediaKind) -> sfu::MediaKind {
    match k {
        MediaKind::Audio => sfu::MediaKind::Audio,
        MediaKind::Video => sfu::MediaKind::Video,
    }
}

fn media_error(e: sfu::SfuError) -> MediaError {
    MediaError(e.to_string())
}

impl MediaPlan for SfuMediaPlan {
    fn start(&self, session: SessionId, technician: UserId, audio: bool) {
        // A transfer starts media again for the new technician: the room stays, the console
        // peer is replaced by the new console's answer.
        let first = self
            .started
            .lock()
            .map(|mut s| s.insert(session))
            .unwrap_or(false);
        if !first {
            // The transfer held the media; the new technician's pickup lifts the hold (and asks
            // the phone for a keyframe).
            let _ = self.sfu.resume(session);
        } else if let Err(e) = self.sfu.start(session, audio) {
            tracing::warn!(session_id = session, technician, error = %e, "media: cannot start");
        } else if let Some(r) = self.recorder.get() {
            // One recording per session: a transfer (not first) keeps the file going.
            r.session_started(session, technician);
        }
    }
    fn hold(&self, session: SessionId) {
        let _ = self.sfu.hold(session);
    }
    fn resume(&self, session: SessionId) {
        let _ = self.sfu.resume(session);
    }
    fn stop(&self, session: SessionId) -> Option<u64> {
        if let Ok(mut s) = self.started.lock() {
            s.remove(&session);
        }
        if let Some(r) = self.recorder.get() {
            r.session_stopped(session);
        }
        self.sfu.stop(session).map(|st| {
            st.customer.bytes_in
                + st.customer.bytes_out
                + st.technician.bytes_in
                + st.technician.bytes_out
        })
    }
    fn customer_offer(
        &self,
        session: SessionId,
        sdp: &str,
    ) -> BoxFuture<'static, Result<CustomerAnswer, MediaError>> {
        let answer = self.sfu.customer_offer(session, sdp);
        Box::pin(async move {
            let answer = answer.map_err(media_error)?;
            let renegotiated = matches!(answer, sfu::CustomerAnswer::Pending(_));
            let sdp = answer.sdp().await.map_err(media_error)?;
            Ok(CustomerAnswer { sdp, renegotiated })
        })
    }
    fn technician_offer(&self, session: SessionId) -> Result<String, MediaError> {
        self.sfu.technician_offer(session).map_err(media_error)
    }
    fn console_answer(&self, session: SessionId, sdp: &str) -> Result<(), MediaError> {
        self.sfu
            .technician_answer(session, sdp)
            .map_err(media_error)
    }
    fn candidate(&self, session: SessionId, from_customer: bool, candidate: Option<&str>) {
        let _ = self.sfu.candidate(session, from_customer, candidate);
    }
    fn set_flowing(&self, session: SessionId, from_customer: bool, k: MediaKind, flowing: bool) {
        let _ = self
            .sfu
            .set_flowing(session, from_customer, kind(k), flowing);
    }
    fn transports(&self, session: SessionId) -> [Option<&'static str>; 2] {
        let Some(stats) = self.sfu.stats(session) else {
            return [None, None];
        };
        [stats.customer, stats.technician].map(|p| p.transport.map(sfu::Transport::as_str))
    }
    fn media_events(&self) -> Option<mpsc::UnboundedReceiver<(SessionId, MediaSide, bool)>> {
        let mut peers = self.sfu.peer_events().ok()?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = peers.recv().await {
                let side = match event.role {
                    sfu::PeerRole::Customer => MediaSide::Customer,
                    sfu::PeerRole::Technician => MediaSide::Technician,
                };
                if tx.send((event.session, side, event.up)).is_err() {
                    break;
                }
            }
        });
        Some(rx)
    }
}
