//! The recorder tap: what a room lets through, copied to a bounded channel per session.
//!
//! The SFU knows nothing of recording. It hands out the RTP packets as they were received (payload
//! untouched, the sender's sequence numbers and timestamps) plus the senders' RTCP sender reports,
//! which a recorder needs to line audio and video up on one clock.
//!
//! Mute and hold: a packet the room does not forward (muted audio, paused video, hold) is still
//! delivered, with `muted = true` and an **empty payload**: the recorder learns the stretch's
//! timing (so it can write silence or freeze the picture) but never the muted content.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use str0m::format::PayloadParams;
use str0m::media::Pt;
use str0m::rtp::{RtpPacket, Ssrc};
use tokio::sync::mpsc;

use crate::{MediaKind, PeerRole};

/// One event on a session's tap.
#[derive(Debug, Clone)]
pub enum TapEvent {
    Rtp(TapPacket),
    /// An RTCP sender report seen for a stream: `ntp_time` (sender's wall clock) corresponds to
    /// `rtp_time` (that stream's RTP clock). Sent once per new report, before the packet that
    /// carried the news.
    SenderReport {
        from: PeerRole,
        kind: MediaKind,
        ssrc: u32,
        ntp_time: SystemTime,
        rtp_time: u32,
    },
}

/// The codec of a tapped packet, as negotiated with the sending peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapCodec {
    /// "VP8", "H264" or "opus" (str0m's names).
    pub name: String,
    pub clock_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u8,
    /// The `a=fmtp` parameters, e.g. `profile-level-id=42e01f;packetization-mode=1`.
    pub fmtp: String,
}

/// One RTP packet received from a peer.
#[derive(Debug, Clone)]
pub struct TapPacket {
    pub from: PeerRole,
    pub kind: MediaKind,
    /// Shared per stream: cloning a packet does not copy it.
    pub codec: Arc<TapCodec>,
    pub ssrc: u32,
    /// The sender's sequence number, extended past 16 bits (never rewritten by the SFU).
    pub seq: u64,
    /// The sender's RTP timestamp.
    pub rtp_time: u32,
    pub marker: bool,
    /// The RTP payload (no header); empty when `muted`.
    pub payload: bytes::Bytes,
    /// When the datagram reached the server.
    pub arrival: Instant,
    /// Not forwarded: muted audio, paused video, or the session is on hold.
    pub muted: bool,
    /// The video-orientation (CVO, `urn:3gpp:video-orientation`) bits when the packet carries
    /// the extension: 0–3, how many quarter turns clockwise show the picture upright.
    pub video_orientation: Option<u8>,
}

/// The engine's side of a tap: the sender and what it caches to keep the hot path cheap.
pub(crate) struct Tap {
    sender: mpsc::Sender<TapEvent>,
    dropped: Arc<AtomicU64>,
    codecs: Vec<(PeerRole, Pt, Arc<TapCodec>)>,
    /// Per source SSRC, the NTP time of the last sender report passed on.
    reports: Vec<(Ssrc, SystemTime)>,
}

impl Tap {
    pub(crate) fn new(sender: mpsc::Sender<TapEvent>, dropped: Arc<AtomicU64>) -> Self {
        Tap {
            sender,
            dropped,
            codecs: Vec::new(),
            reports: Vec::new(),
        }
    }

    /// The recorder went away.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    fn codec(&mut self, from: PeerRole, params: &PayloadParams) -> Arc<TapCodec> {
        let pt = params.pt();
        if let Some((_, _, codec)) = self
            .codecs
            .iter()
            .find(|(role, p, _)| *role == from && *p == pt)
        {
            return codec.clone();
        }
        let spec = params.spec();
        let codec = Arc::new(TapCodec {
            name: spec.codec.to_string(),
            clock_rate: spec.clock_rate.get(),
            channels: spec.channels.unwrap_or(0),
            fmtp: spec.format.to_string(),
        });
        self.codecs.push((from, pt, codec.clone()));
        codec
    }

    /// Peer replacement: payload types may mean something else now.
    pub(crate) fn forget(&mut self, from: PeerRole) {
        self.codecs.retain(|(role, _, _)| *role != from);
    }

    fn send(&self, event: TapEvent) {
        if self.sender.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Copies one received packet to the tap (without its payload when `muted`).
    pub(crate) fn packet(
        &mut self,
        from: PeerRole,
        packet: &RtpPacket,
        params: &PayloadParams,
        muted: bool,
    ) {
        let kind = if params.spec().codec.is_video() {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let ssrc = packet.header.ssrc;
        if let Some(info) = packet.last_sender_info {
            let known = self.reports.iter_mut().find(|(s, _)| *s == ssrc);
            let new = match known {
                Some((_, last)) if *last == info.ntp_time => false,
                Some((_, last)) => {
                    *last = info.ntp_time;
                    true
                }
                None => {
                    self.reports.push((ssrc, info.ntp_time));
                    true
                }
            };
            if new {
                self.send(TapEvent::SenderReport {
                    from,
                    kind,
                    ssrc: *ssrc,
                    ntp_time: info.ntp_time,
                    // The 32-bit RTP timestamp of the report, as on the wire.
                    rtp_time: info.rtp_time.numer() as u32,
                });
            }
        }
        let payload = if muted {
            bytes::Bytes::new()
        } else {
            bytes::Bytes::from_owner(packet.payload.clone())
        };
        let event = TapEvent::Rtp(TapPacket {
            from,
            kind,
            codec: self.codec(from, params),
            ssrc: *ssrc,
            seq: *packet.seq_no,
            rtp_time: packet.header.timestamp,
            marker: packet.header.marker,
            payload,
            arrival: packet.timestamp,
            muted,
            // str0m's enum carries the CVO bits as its discriminant (Deg90 = 3, Deg270 = 1).
            video_orientation: packet.header.ext_vals.video_orientation.map(|o| o as u8),
        });
        self.send(event);
    }
}
