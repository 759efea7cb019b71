//! RTP payloads back into codec frames: VP8 (RFC 7741), VP9 (RFC 9628), H.264 (RFC 6184:
//! single NAL unit, STAP-A, FU-A) and Opus (RFC 7587). A frame is complete on the marker bit or when the RTP
//! timestamp changes; a frame that lost a packet is dropped and the next one says so.

use std::time::Instant;

use crate::reorder::Ordered;
use crate::{Codec, TimestampUnwrapper};

/// One encoded frame, ready for the container.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Extended RTP timestamp.
    pub timestamp: i64,
    /// VP8, VP9: the frame as is. H.264: NAL units with 4-byte big-endian lengths (what `avc1`
    /// wants), parameter sets removed (they go into the sample entry). Opus: one packet.
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// At least one frame before this one was lost (a video decoder needs a keyframe now).
    pub after_loss: bool,
    pub muted: bool,
    pub arrival: Instant,
}

/// 20 ms of silence at any Opus configuration (TOC 0xF8: CELT fullband 20 ms, mono, one frame;
/// the empty frame body decodes as silence). Used for muted stretches and gaps.
pub const OPUS_SILENCE_20MS: [u8; 3] = [0xF8, 0xFF, 0xFE];
pub const OPUS_FRAME_20MS: i64 = 960;

pub struct Depacketizer {
    codec: Codec,
    unwrap: TimestampUnwrapper,
    current: Option<Partial>,
    /// A packet was lost since the last frame handed out.
    lost: bool,
    /// Latest H.264 parameter sets (without start codes).
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
    /// Frames dropped because a packet of theirs was lost or their payload was malformed.
    pub dropped_frames: u64,
}

struct Partial {
    timestamp: i64,
    data: Vec<u8>,
    keyframe: bool,
    muted: bool,
    arrival: Instant,
    /// Lost a packet, or did not begin at a frame start: dropped when complete.
    broken: bool,
    /// H.264: inside a fragmented (FU-A) NAL unit; index of its length prefix in `data`.
    fu_start: Option<usize>,
}

impl Depacketizer {
    pub fn new(codec: Codec) -> Depacketizer {
        Depacketizer {
            codec,
            unwrap: TimestampUnwrapper::default(),
            current: None,
            lost: false,
            sps: None,
            pps: None,
            dropped_frames: 0,
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Feeds one in-order packet; returns the frames it completed.
    pub fn push(&mut self, o: Ordered) -> Vec<Frame> {
        let mut out = Vec::new();
        let p = o.packet;
        let ts = self.unwrap.unwrap(p.timestamp);
        if o.after_loss {
            self.lost = true;
            if let Some(cur) = self.current.as_mut() {
                cur.broken = true;
            }
        }
        if self.codec == Codec::Opus {
            self.finish_current(&mut out);
            let data = if p.muted {
                OPUS_SILENCE_20MS.to_vec()
            } else {
                p.payload.to_vec()
            };
            if data.is_empty() {
                self.dropped_frames += 1;
                return out;
            }
            out.push(Frame {
                timestamp: ts,
                data,
                keyframe: true,
                after_loss: std::mem::take(&mut self.lost),
                muted: p.muted,
                arrival: p.arrival,
            });
            return out;
        }
        if p.muted {
            // Video the room did not forward (paused, hold): no content, so the picture stays
            // frozen and the first frame after it must be a keyframe.
            if self.current.take().is_some() {
                self.dropped_frames += 1;
            }
            self.lost = true;
            return out;
        }
        if self.current.as_ref().is_some_and(|c| c.timestamp != ts) {
            // The marker of the previous frame was lost: it is incomplete.
            if let Some(c) = self.current.as_mut() {
                c.broken = true;
            }
            self.finish_current(&mut out);
        }
        let payload = &p.payload[..];
        let ok = match self.codec {
            Codec::Vp8 => self.push_vp8(ts, payload, p.muted, p.arrival),
            Codec::Vp9 => self.push_vp9(ts, payload, p.muted, p.arrival),
            Codec::H264 => self.push_h264(ts, payload, p.muted, p.arrival),
            // Handled above.
            Codec::Opus => false,
        };
        if !ok && let Some(c) = self.current.as_mut() {
            c.broken = true;
        }
        if p.marker {
            self.finish_current(&mut out);
        }
        out
    }

    /// End of stream: the frame being assembled is handed out if it is whole.
    pub fn flush(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        self.finish_current(&mut out);
        out
    }

    fn partial(&mut self, ts: i64, muted: bool, arrival: Instant, starts: bool) -> &mut Partial {
        self.current.get_or_insert_with(|| Partial {
            timestamp: ts,
            data: Vec::new(),
            keyframe: false,
            muted,
            arrival,
            broken: !starts,
            fu_start: None,
        })
    }

    fn finish_current(&mut self, out: &mut Vec<Frame>) {
        let Some(c) = self.current.take() else { return };
        if c.broken || c.data.is_empty() || c.fu_start.is_some() {
            self.dropped_frames += 1;
            self.lost = true;
            return;
        }
        out.push(Frame {
            timestamp: c.timestamp,
            data: c.data,
            keyframe: c.keyframe,
            after_loss: std::mem::take(&mut self.lost),
            muted: c.muted,
            arrival: c.arrival,
        });
    }

    /// RFC 7741 §4.2 payload descriptor, then the VP8 payload.
    fn push_vp8(&mut self, ts: i64, p: &[u8], muted: bool, arrival: Instant) -> bool {
        let Some(skip) = vp8_descriptor_len(p) else {
            return false;
        };
        let (b0, body) = (p[0], &p[skip..]);
        let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
        let starts_new = self.current.is_none();
        let cur = self.partial(ts, muted, arrival, start);
        if start {
            if !starts_new && !cur.data.is_empty() {
                // A second frame start under one timestamp: keep going, but it is suspect.
                cur.broken = true;
            }
            // P bit (inverse key frame flag) of the VP8 frame tag.
            cur.keyframe = body.first().is_some_and(|b| b & 0x01 == 0);
        }
        cur.data.extend_from_slice(body);
        true
    }

    /// RFC 9628 §4.2 payload descriptor, then the VP9 payload. Only the base spatial layer is
    /// kept: a browser sends one unless the page asks for SVC, and the base layer decodes alone.
    fn push_vp9(&mut self, ts: i64, p: &[u8], muted: bool, arrival: Instant) -> bool {
        let Some(d) = vp9_descriptor(p) else {
            return false;
        };
        if d.spatial_id > 0 {
            return true;
        }
        let body = &p[d.len..];
        let starts_new = self.current.is_none();
        let cur = self.partial(ts, muted, arrival, d.begin);
        if d.begin {
            if !starts_new && !cur.data.is_empty() {
                cur.broken = true;
            }
            // P = 0: not predicted from an earlier picture. The recorder confirms a key frame
            // from the frame header before writing the sample entry.
            cur.keyframe = !d.inter_picture;
        }
        cur.data.extend_from_slice(body);
        true
    }

    fn push_h264(&mut self, ts: i64, p: &[u8], muted: bool, arrival: Instant) -> bool {
        let Some(&header) = p.first() else {
            return false;
        };
        let nal_type = header & 0x1F;
        match nal_type {
            1..=23 => {
                self.partial(ts, muted, arrival, true);
                self.h264_nal(p)
            }
            24 => {
                // STAP-A: 16-bit size, NAL unit, repeated.
                self.partial(ts, muted, arrival, true);
                let mut rest = &p[1..];
                while rest.len() >= 2 {
                    let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                    if n == 0 || rest.len() < 2 + n {
                        return false;
                    }
                    if !self.h264_nal(&rest[2..2 + n]) {
                        return false;
                    }
                    rest = &rest[2 + n..];
                }
                rest.is_empty()
            }
            28 => {
                if p.len() < 2 {
                    return false;
                }
                let (fu, start, end) = (p[1], p[1] & 0x80 != 0, p[1] & 0x40 != 0);
                let cur = self.partial(ts, muted, arrival, start);
                if start {
                    if cur.fu_start.is_some() {
                        return false;
                    }
                    let nal_header = (header & 0xE0) | (fu & 0x1F);
                    cur.fu_start = Some(cur.data.len());
                    cur.data.extend_from_slice(&[0, 0, 0, 0, nal_header]);
                    if fu & 0x1F == 5 {
                        cur.keyframe = true;
                    }
                } else if cur.fu_start.is_none() {
                    return false;
                }
                cur.data.extend_from_slice(&p[2..]);
                if end && let Some(at) = cur.fu_start.take() {
                    let len = (cur.data.len() - at - 4) as u32;
                    cur.data[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
                true
            }
            // STAP-B, MTAP, FU-B: not used by WebRTC (packetization-mode 0/1).
            _ => false,
        }
    }

    /// One complete NAL unit: parameter sets are kept aside, the rest is length-prefixed.
    fn h264_nal(&mut self, nal: &[u8]) -> bool {
        let Some(&h) = nal.first() else { return false };
        match h & 0x1F {
            7 => self.sps = Some(nal.to_vec()),
            8 => self.pps = Some(nal.to_vec()),
            // Access unit delimiters carry nothing the container needs.
            9 => {}
            t => {
                let Some(cur) = self.current.as_mut() else {
                    return false;
                };
                if t == 5 {
                    cur.keyframe = true;
                }
                cur.data
                    .extend_from_slice(&(nal.len() as u32).to_be_bytes());
                cur.data.extend_from_slice(nal);
            }
        }
        true
    }
}

/// What the recorder needs of a VP9 payload descriptor.
struct Vp9Descriptor {
    len: usize,
    begin: bool,
    inter_picture: bool,
    spatial_id: u8,
}

/// Parses a VP9 payload descriptor (RFC 9628 §4.2), flexible or not, with its scalability
/// structure; `None` when the packet is too short for what its flags announce.
fn vp9_descriptor(p: &[u8]) -> Option<Vp9Descriptor> {
    let b0 = *p.first()?;
    let (i_bit, p_bit, l_bit, f_bit, b_bit, v_bit) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x10 != 0,
        b0 & 0x08 != 0,
        b0 & 0x02 != 0,
    );
    let mut i = 1;
    if i_bit {
        // Picture id: 7 or 15 bits (M bit).
        i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
    }
    let mut spatial_id = 0;
    if l_bit {
        spatial_id = (*p.get(i)? >> 1) & 0x07;
        i += 1;
        if !f_bit {
            i += 1; // TL0PICIDX
        }
    }
    if f_bit && p_bit {
        // Up to three reference indices; N (the low bit) says another follows.
        for _ in 0..3 {
            let diff = *p.get(i)?;
            i += 1;
            if diff & 0x01 == 0 {
                break;
            }
        }
    }
    if v_bit {
        let ss = *p.get(i)?;
        i += 1;
        let layers = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            i += 4 * layers; // width and height per spatial layer
        }
        if ss & 0x08 != 0 {
            let groups = *p.get(i)?;
            i += 1;
            for _ in 0..groups {
                let g = *p.get(i)?;
                i += 1 + usize::from((g >> 2) & 0x03);
            }
        }
    }
    (i <= p.len()).then_some(Vp9Descriptor {
        len: i,
        begin: b_bit,
        inter_picture: p_bit,
        spatial_id,
    })
}

/// Length of the VP8 payload descriptor, or `None` when the packet is too short.
fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits (M bit).
            let m = *p.get(i)?;
            i += if m & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID / Y / KEYIDX
        }
    }
    (i <= p.len()).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RtpPacket, Source};

    fn ordered(codec: Codec, seq: u64, ts: u32, marker: bool, payload: Vec<u8>) -> Ordered {
        Ordered {
            packet: RtpPacket {
                source: Source::Customer,
                codec,
                clock_rate: 90000,
                ssrc: 7,
                seq,
                timestamp: ts,
                marker,
                payload: payload.into(),
                arrival: Instant::now(),
                muted: false,
                video_orientation: None,
            },
            after_loss: false,
        }
    }

    #[test]
    fn vp8_frame_from_two_packets_with_extended_descriptor() {
        let mut d = Depacketizer::new(Codec::Vp8);
        // X=1, S=1, PID=0; I=1 with a 15-bit picture id.
        let first = vec![0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00];
        let second = vec![0x80, 0x80, 0x81, 0x23, 0xAA, 0xBB];
        assert!(
            d.push(ordered(Codec::Vp8, 1, 3000, false, first))
                .is_empty()
        );
        let f = d.push(ordered(Codec::Vp8, 2, 3000, true, second));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, vec![0x10, 0x02, 0x00, 0xAA, 0xBB]);
        assert!(f[0].keyframe, "P bit 0 = key frame");
        assert!(!f[0].after_loss);
    }

    #[test]
    fn vp8_frame_missing_its_start_is_dropped_and_the_next_frame_flagged() {
        let mut d = Depacketizer::new(Codec::Vp8);
        assert!(
            d.push(ordered(Codec::Vp8, 2, 3000, true, vec![0x00, 0x01]))
                .is_empty()
        );
        let f = d.push(ordered(Codec::Vp8, 3, 6000, true, vec![0x10, 0x01]));
        assert_eq!(f.len(), 1);
        assert!(!f[0].keyframe);
        assert!(f[0].after_loss);
        assert_eq!(d.dropped_frames, 1);
    }

    #[test]
    fn vp9_frame_from_two_packets_with_scalability_structure() {
        let mut d = Depacketizer::new(Codec::Vp9);
        // I=1 (15-bit picture id), P=0, L=0, F=0, B=1, E=0, V=1; SS: one layer with its size
        // (640x480) and one picture group of one frame (TID 0, U 0, R 1: one P_DIFF byte).
        let first = vec![
            0x8A, 0x80, 0x05, 0x18, 0x02, 0x80, 0x01, 0xE0, 0x01, 0x04, 0x01, 0x82, 0x49, 0x83,
        ];
        let second = vec![0x84, 0x80, 0x05, 0x42, 0x00];
        assert!(
            d.push(ordered(Codec::Vp9, 1, 3000, false, first))
                .is_empty()
        );
        let f = d.push(ordered(Codec::Vp9, 2, 3000, true, second));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, vec![0x82, 0x49, 0x83, 0x42, 0x00]);
        assert!(f[0].keyframe, "P = 0 on the first packet");
        // Flexible mode, inter picture with two reference indices; a later spatial layer is
        // left out.
        let inter = vec![0xDC, 0x06, 0x03, 0x04, 0x86, 0x11];
        let f = d.push(ordered(Codec::Vp9, 3, 6000, true, inter));
        assert_eq!(f[0].data, vec![0x86, 0x11]);
        assert!(!f[0].keyframe);
        let upper = vec![0xBC, 0x06, 0x02, 0x99];
        assert!(d.push(ordered(Codec::Vp9, 4, 9000, true, upper)).is_empty());
    }

    #[test]
    fn vp9_descriptor_longer_than_its_packet_is_refused() {
        for p in [
            vec![0x80],
            vec![0xA8, 0x01],
            vec![0x0A, 0xF0, 0x00],
            vec![0x5C, 0x01],
        ] {
            assert!(vp9_descriptor(&p).is_none(), "{p:02x?}");
        }
    }

    #[test]
    fn h264_stap_a_fu_a_and_single_nal() {
        let mut d = Depacketizer::new(Codec::H264);
        let sps = vec![0x67, 0x42, 0xC0, 0x1E];
        let pps = vec![0x68, 0xCE, 0x38, 0x80];
        let mut stap = vec![0x18];
        for n in [&sps, &pps] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        assert!(d.push(ordered(Codec::H264, 1, 0, false, stap)).is_empty());
        // IDR (type 5, NRI 3) split in two FU-A packets.
        assert!(
            d.push(ordered(Codec::H264, 2, 0, false, vec![0x7C, 0x85, 1, 2]))
                .is_empty()
        );
        let f = d.push(ordered(Codec::H264, 3, 0, true, vec![0x7C, 0x45, 3]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, vec![0, 0, 0, 4, 0x65, 1, 2, 3]);
        assert!(f[0].keyframe);
        assert_eq!(d.sps.as_deref(), Some(&sps[..]));
        assert_eq!(d.pps.as_deref(), Some(&pps[..]));
        let f = d.push(ordered(Codec::H264, 4, 3000, true, vec![0x41, 9, 9]));
        assert_eq!(f[0].data, vec![0, 0, 0, 3, 0x41, 9, 9]);
        assert!(!f[0].keyframe);
    }

    #[test]
    fn h264_fu_a_without_its_end_is_dropped() {
        let mut d = Depacketizer::new(Codec::H264);
        d.push(ordered(Codec::H264, 1, 0, false, vec![0x7C, 0x85, 1]));
        let f = d.push(ordered(Codec::H264, 2, 3000, true, vec![0x41, 1]));
        assert_eq!(f.len(), 1);
        assert!(f[0].after_loss);
        assert_eq!(d.dropped_frames, 1);
    }

    #[test]
    fn malformed_payloads_do_not_panic() {
        for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Opus] {
            let mut d = Depacketizer::new(codec);
            for (i, p) in [
                vec![],
                vec![0x80],
                vec![0x18, 0, 9, 1],
                vec![0x1C],
                vec![0x7C, 0x45],
                vec![0xFF; 3],
            ]
            .into_iter()
            .enumerate()
            {
                d.push(ordered(codec, i as u64, i as u32, i % 2 == 0, p));
            }
            d.flush();
        }
    }

    #[test]
    fn muted_opus_becomes_silence() {
        let mut d = Depacketizer::new(Codec::Opus);
        let mut o = ordered(Codec::Opus, 1, 960, true, vec![0x78, 1, 2, 3]);
        o.packet.muted = true;
        let f = d.push(o);
        assert_eq!(f[0].data, OPUS_SILENCE_20MS.to_vec());
        assert!(f[0].muted);
    }
}
