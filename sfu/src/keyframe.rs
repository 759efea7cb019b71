//! Whether a forwarded video packet starts a keyframe, and how long the SFU waits for one it
//! asked for before asking again.
//!
//! A keyframe request (PLI) is one SRTCP datagram; lost on the network, nothing repeats it, and
//! the console shows nothing (or a frozen picture) until the phone's next keyframe of its own or
//! until the console's decoder asks by itself. So the engine remembers a request it sent and
//! watches the phone's video for the keyframe's first packet ([`starts_keyframe`]); while none
//! came it asks again on the schedule of [`KeyframeWait`].
//!
//! Only the first packet of a frame is recognised (it carries the codec's key frame flag): the
//! answer to a request is seen as soon as it starts to arrive. Nothing here panics, whatever the
//! payload (fuzzed in `fuzz/fuzz_targets/media_demux.rs`).
//!
//! The recorder (`recording/src/depacketize.rs`) reads the same descriptors to assemble frames;
//! the two crates know nothing of each other (DESIGN.md), so the few lines are not shared.

use std::time::{Duration, Instant};

use crate::VideoCodec;

/// Whether an RTP payload of `codec` is the first packet of a key frame (an IDR or a sequence
/// parameter set for H.264).
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8(payload),
        VideoCodec::Vp9 => vp9(payload),
        VideoCodec::H264 => h264(payload),
    }
}

/// RFC 7741 §4.2: the payload descriptor (its extension fields as the X byte announces them);
/// the start of partition 0 (S = 1, PID = 0) is followed by the VP8 payload header, whose P bit
/// is 0 on a key frame (RFC 7741 §4.3, RFC 6386 §9.1).
fn vp8(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let (extended, start, partition) = (b0 & 0x80 != 0, b0 & 0x10 != 0, b0 & 0x07);
    if !start || partition != 0 {
        return false;
    }
    let mut at = 1;
    if extended {
        let Some(&x) = p.get(at) else { return false };
        at += 1;
        let (i, l, t, k) = (x & 0x80 != 0, x & 0x40 != 0, x & 0x20 != 0, x & 0x10 != 0);
        if i {
            // PictureID: 7 bits, or 15 when its first bit (M) is set.
            let Some(&m) = p.get(at) else { return false };
            at += if m & 0x80 != 0 { 2 } else { 1 };
        }
        at += usize::from(l); // TL0PICIDX
        at += usize::from(t || k); // TID | Y | KEYIDX share one byte
    }
    p.get(at).is_some_and(|header| header & 0x01 == 0)
}

/// RFC 9628 §4.2: a key frame's first packet has B = 1 (start of a frame) and P = 0 (not
/// predicted from an earlier picture); with spatial layers (L = 1) only the base layer's
/// (SID 0) counts, since an upper layer of a key frame has P = 0 too but cannot be decoded
/// alone. The layer index sits after the picture id (1 or 2 bytes); the descriptor must hold
/// what its flags announce.
fn vp9(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let (i, predicted, l, begins) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x08 != 0,
    );
    if !begins || predicted {
        return false;
    }
    let mut at = 1;
    if i {
        let Some(&m) = p.get(at) else { return false };
        at += if m & 0x80 != 0 { 2 } else { 1 };
    }
    if !l {
        // Something (the frame's header) must follow the descriptor.
        return at < p.len();
    }
    // Layer index: TID (3) U (1) SID (3) D (1); non-flexible mode (F = 0) adds TL0PICIDX. With
    // P = 0 there are no reference indices (P_DIFF) even in flexible mode.
    let Some(&layer) = p.get(at) else {
        return false;
    };
    let flexible = b0 & 0x10 != 0;
    at += 1 + usize::from(!flexible);
    (layer >> 1) & 0x07 == 0 && at < p.len()
}

/// RFC 6184: an IDR slice (type 5) or a sequence parameter set (type 7, which a browser sends
/// just ahead of each IDR) as a single NAL unit (types 1-23), inside a STAP-A (24), or as the
/// first fragment (S = 1) of an FU-A (28). STAP-B, MTAP and FU-B are not used by WebRTC.
fn h264(p: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let key = |nal_header: u8| matches!(nal_header & 0x1F, IDR | SPS);
    let Some(&header) = p.first() else {
        return false;
    };
    match header & 0x1F {
        1..=23 => key(header),
        24 => {
            // Aggregated units: 16-bit size, then the unit; a malformed tail ends the walk.
            let mut rest = &p[1..];
            while let [hi, lo, units @ ..] = rest {
                let size = usize::from(u16::from_be_bytes([*hi, *lo]));
                let Some(unit) = units.get(..size).filter(|u| !u.is_empty()) else {
                    return false;
                };
                if key(unit[0]) {
                    return true;
                }
                rest = &units[size..];
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1F == IDR),
        _ => false,
    }
}

/// The wait for a keyframe the phone was asked for. The repeat is due once a back-off interval
/// ([`KeyframeWait::repeat_after`]) has passed since the last request **and** the phone has sent
/// video since: a phone sending no video cannot answer, and the first packet it sends after
/// the interval triggers the repeat. So the room needs no timer of its own: every packet from
/// the phone drives the room at once, and the repeat leaves with the first one after the
/// deadline (at 30 frames per second, at most ~33 ms late).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyframeWait {
    /// When the phone was last asked.
    asked: Instant,
    /// Requests repeated so far in this wait.
    repeats: u32,
    /// The phone sent video since it was last asked.
    video_since: bool,
}

impl KeyframeWait {
    /// A request was sent at `now` (a new wait, or a new reason to ask within one).
    pub(crate) fn asked(now: Instant) -> Self {
        KeyframeWait {
            asked: now,
            repeats: 0,
            video_since: false,
        }
    }

    /// How long after the last request the next one goes when no keyframe came: 0.5 s, 1 s,
    /// then every 2 s. The answer to a request starts arriving one round trip plus one frame
    /// interval later (the phone's encoder makes the next frame a key frame, ≤ 33 ms at 30 fps,
    /// up to ~100 ms when Chromium lowers the frame rate, and a key frame's first packet leaves
    /// ahead of the rest), so 0.5 s leaves room for a mobile RTT of ~300 ms before a repeat
    /// could cross an answer in flight; a repeat that crosses one costs a second key frame
    /// (tens of kB at 720p), which the back-off keeps to at most one a second — the pace of
    /// `recovery.rs`' `MIN_INTERVAL` — and then one every 2 s, well inside the ~3 s after which
    /// Chromium's decoder asks on its own.
    pub(crate) fn repeat_after(repeats: u32) -> Duration {
        match repeats {
            0 => Duration::from_millis(500),
            1 => Duration::from_millis(1000),
            _ => Duration::from_millis(2000),
        }
    }

    /// The phone sent a video packet (that did not start a keyframe).
    pub(crate) fn video(&mut self) {
        self.video_since = true;
    }

    /// Whether the request should be repeated now.
    pub(crate) fn repeat_due(&self, now: Instant) -> bool {
        self.video_since
            && now.saturating_duration_since(self.asked) >= Self::repeat_after(self.repeats)
    }

    /// Requests repeated so far in this wait.
    pub(crate) fn repeats(&self) -> u32 {
        self.repeats
    }

    /// The request was repeated at `now`.
    pub(crate) fn repeated(&mut self, now: Instant) {
        self.asked = now;
        self.repeats = self.repeats.saturating_add(1);
        self.video_since = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_key_frame_only_at_the_start_of_partition_0_with_p_clear() {
        // Minimal descriptor: S = 1, PID = 0; payload header 0x10 (P = 0) or 0x11 (P = 1).
        assert!(vp8(&[0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]));
        assert!(!vp8(&[0x10, 0x11, 0x02]), "P = 1: inter frame");
        assert!(!vp8(&[0x00, 0x10]), "S = 0: a continuation");
        assert!(!vp8(&[0x11, 0x10]), "PID 1: not partition 0");
        assert!(!vp8(&[0x10]), "no payload header");
        // X: I with a 15-bit picture id, L, T and K (one byte for TID/Y/KEYIDX).
        let extended = [0x90, 0xF0, 0x80 | 0x12, 0x34, 0x07, 0x40, 0x10];
        assert!(vp8(&extended));
        let mut inter = extended;
        inter[6] = 0x11;
        assert!(!vp8(&inter));
        // A 7-bit picture id, K only.
        assert!(vp8(&[0x90, 0x90, 0x12, 0x20, 0x30]));
        // The picture id's first byte looked like a P = 0 header if the fields were not skipped.
        assert!(!vp8(&[0x90, 0x80, 0x12, 0x01]));
        assert!(
            !vp8(&[0x90, 0xF0, 0x80, 0x34, 0x07]),
            "descriptor cut short"
        );
    }

    #[test]
    fn vp9_key_frame_is_b_and_not_p_on_the_base_layer() {
        // I (15-bit id), B, E, V: Chromium's first packet of a key frame.
        assert!(vp9(&[0x8E, 0x80 | 0x01, 0x02, 0x18, 0x82, 0x49]));
        assert!(!vp9(&[0xCE, 0x81, 0x02, 0x82]), "P = 1");
        assert!(
            !vp9(&[0x84, 0x81, 0x02, 0x82]),
            "B = 0: not the frame's start"
        );
        // Layer index, non-flexible: TID/U/SID/D then TL0PICIDX.
        assert!(vp9(&[0xA8, 0x05, 0x00, 0x07, 0x82]), "SID 0");
        assert!(
            !vp9(&[0xA8, 0x05, 0x02, 0x07, 0x82]),
            "SID 1 of a key frame"
        );
        assert!(!vp9(&[0xA8, 0x05, 0x00]), "TL0PICIDX missing");
        // Flexible mode: no TL0PICIDX.
        assert!(vp9(&[0xB8, 0x05, 0x00, 0x82]));
        assert!(!vp9(&[0xB8, 0x05, 0x00]), "nothing after the descriptor");
        assert!(!vp9(&[0xB8, 0x05, 0x06, 0x82]), "SID 3");
        assert!(vp9(&[0x08, 0x82]), "no optional fields");
        assert!(!vp9(&[0x08]), "nothing after the descriptor");
        assert!(!vp9(&[0x88]), "picture id missing");
    }

    #[test]
    fn h264_idr_or_sps_alone_aggregated_or_as_a_first_fragment() {
        assert!(h264(&[0x65, 0x88]), "IDR");
        assert!(h264(&[0x67, 0x42]), "SPS");
        assert!(!h264(&[0x41, 0x9a]), "non-IDR slice");
        assert!(!h264(&[0x68, 0xce]), "PPS alone");
        // STAP-A: SPS, PPS, IDR, and one with only non-IDR units.
        let stap = [
            0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce, 0x00, 0x01, 0x65,
        ];
        assert!(h264(&stap));
        assert!(!h264(&[0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x01, 0x06]));
        assert!(
            !h264(&[0x78, 0x00, 0x05, 0x67]),
            "unit longer than the packet"
        );
        assert!(!h264(&[0x78, 0x00, 0x00, 0x67]), "empty unit");
        // FU-A: start of an IDR; its middle; the start of a non-IDR slice.
        assert!(h264(&[0x7C, 0x85, 0x88]));
        assert!(!h264(&[0x7C, 0x05, 0x88]));
        assert!(!h264(&[0x7C, 0x81, 0x9a]));
        assert!(!h264(&[0x7C]));
        assert!(!h264(&[]));
    }

    #[test]
    fn no_input_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..40 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                for codec in VideoCodec::ALL {
                    starts_keyframe(codec, &bytes);
                }
            }
        }
    }

    #[test]
    fn repeats_back_off_and_need_video_since_the_last_request() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut wait = KeyframeWait::asked(t0);
        assert!(
            !wait.repeat_due(t0 + ms(600)),
            "no video since: nothing to answer"
        );
        wait.video();
        assert!(!wait.repeat_due(t0 + ms(499)));
        assert!(wait.repeat_due(t0 + ms(500)));
        let mut at = t0 + ms(520);
        wait.repeated(at);
        assert_eq!(wait.repeats(), 1);
        assert!(!wait.repeat_due(at + ms(1500)), "video not seen again yet");
        wait.video();
        assert!(!wait.repeat_due(at + ms(999)));
        assert!(wait.repeat_due(at + ms(1000)));
        for _ in 0..5 {
            at += ms(1000);
            wait.repeated(at);
            wait.video();
            assert!(!wait.repeat_due(at + ms(1999)));
            assert!(wait.repeat_due(at + ms(2000)), "then every 2 s");
        }
        assert_eq!(
            [0, 1, 2, 100].map(KeyframeWait::repeat_after),
            [ms(500), ms(1000), ms(2000), ms(2000)]
        );
    }
}
