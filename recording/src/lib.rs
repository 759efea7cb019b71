//! Turns forwarded RTP into playable files and gets them to their storage location.
//!
//! ```text
//!  RtpPacket ─► ReorderBuffer (per stream) ─► depacketizer (VP8 | VP9 | H.264 | Opus) ─► frames
//!            ─► Timeline (RTP time → file time, A/V aligned by sender reports) ─► Fmp4Writer
//!  file ─► Sink (local / mounted network folder, or spool ─► Uploader ─► FTP | HTTP(S) PUT)
//! ```
//!
//! Knows nothing of sessions or the store (DESIGN.md §2): the `lens` binary feeds it packets and
//! records what it reports. See README.md for what is built and what is not.

pub mod depacketize;
#[cfg(feature = "fixtures")]
#[doc(hidden)]
pub mod fixtures;
pub mod location;
pub mod mix;
pub mod mp4;
pub mod opus;
pub mod probe;
pub mod recorder;
pub mod reorder;
pub mod sink;
pub mod spool;

use std::time::Instant;

use bytes::Bytes;

pub use location::{Location, LocationError};
pub use recorder::{Recorder, RecorderStats, RecordingSummary};

/// Who sent a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Customer,
    Technician,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

/// The codecs the recorder can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Vp8,
    /// Profile 0 (what WebRTC negotiates).
    Vp9,
    H264,
    Opus,
}

impl Codec {
    /// From an SDP encoding name (`VP8`, `VP9`, `H264`, `opus`); `None` for codecs we do not
    /// record.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name.to_ascii_lowercase().as_str() {
            "vp8" => Some(Codec::Vp8),
            "vp9" => Some(Codec::Vp9),
            "h264" => Some(Codec::H264),
            "opus" => Some(Codec::Opus),
            _ => None,
        }
    }

    /// The name ffprobe and the recordings table use.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::H264 => "h264",
            Codec::Opus => "opus",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => Kind::Video,
            Codec::Opus => Kind::Audio,
        }
    }
}

/// One RTP packet as the SFU forwarded it.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    pub source: Source,
    pub codec: Codec,
    pub clock_rate: u32,
    pub ssrc: u32,
    /// The sequence number; only its low 16 bits are used (the reorder buffer extends them).
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
    pub arrival: Instant,
    /// The media was muted (not forwarded to the other party): it is recorded as silence / a
    /// frozen frame, never as what was sent.
    pub muted: bool,
    /// The video-orientation byte (`urn:3gpp:video-orientation`, CVO) when the packet carries
    /// one: its low two bits say how far to turn the picture clockwise (× 90°) to show it
    /// upright. Senders put it on a keyframe's last packet and when it changes.
    pub video_orientation: Option<u8>,
}

/// An RTCP sender report: the sender's wall clock (NTP) at an RTP time of one stream.
#[derive(Debug, Clone, Copy)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low ones).
    pub ntp_time: u64,
    pub rtp_time: u32,
}

impl SenderReport {
    pub(crate) fn ntp_seconds(&self) -> f64 {
        (self.ntp_time >> 32) as f64 + (self.ntp_time & 0xFFFF_FFFF) as f64 / 4_294_967_296.0
    }
}

/// Extends a wrapping 32-bit RTP timestamp to 64 bits, relative to the previous value seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimestampUnwrapper {
    last: Option<i64>,
}

impl TimestampUnwrapper {
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let v = match self.last {
            None => ts as i64,
            Some(last) => {
                // The signed distance from the last value's low 32 bits picks the nearest lap.
                let diff = ts.wrapping_sub(last as u32) as i32 as i64;
                last + diff
            }
        };
        self.last = Some(v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_unwrap_across_the_32_bit_boundary_both_ways() {
        let mut u = TimestampUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), (u32::MAX - 10) as i64);
        assert_eq!(u.unwrap(5), u32::MAX as i64 + 6);
        // A slightly older (reordered) timestamp from before the wrap stays on the old lap.
        assert_eq!(u.unwrap(u32::MAX - 2), (u32::MAX - 2) as i64);
        assert_eq!(u.unwrap(100), u32::MAX as i64 + 101);
    }

    #[test]
    fn codec_names() {
        assert_eq!(Codec::from_name("VP8"), Some(Codec::Vp8));
        assert_eq!(Codec::from_name("opus"), Some(Codec::Opus));
        assert_eq!(Codec::from_name("VP9"), Some(Codec::Vp9));
        assert_eq!(Codec::from_name("AV1"), None);
        assert_eq!(Codec::H264.kind(), Kind::Video);
    }
}
