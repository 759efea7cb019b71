//! Test helpers: a session's worth of RTP from `recording::fixtures` (ffmpeg-made frames), and
//! real servers on 127.0.0.1. A missing tool skips the test, except under `CI=true` where it fails.

#![allow(dead_code)]

use std::time::{Duration, Instant};

pub use recording::fixtures::*;
use recording::{Codec, RtpPacket};

/// A session's packets: video frames at 25 fps and 20 ms Opus, interleaved by arrival time.
pub struct Clip {
    pub packets: Vec<RtpPacket>,
    pub video_frames: usize,
    pub audio_frames: usize,
}

/// `audio_delay`: audio starts this much after video (both RTP clocks start at their `ts0`).
pub fn clip(
    video: &[Vec<u8>],
    vcodec: Codec,
    audio: &[Vec<u8>],
    start: Instant,
    audio_delay: Duration,
) -> Clip {
    // Sequence numbers and timestamps close to their wrap points.
    let mut vp = Packetizer::new(vcodec, 0x1111, 65500, u32::MAX - 90_000);
    let mut ap = Packetizer::new(Codec::Opus, 0x2222, 65530, u32::MAX - 48_000);
    let mut timed: Vec<(Duration, RtpPacket)> = Vec::new();
    for (i, f) in video.iter().enumerate() {
        let at = Duration::from_millis(i as u64 * 1000 / FPS as u64);
        for p in vp.frame(f, i as u32 * (90_000 / FPS), start + at) {
            timed.push((at, p));
        }
    }
    for (i, f) in audio.iter().enumerate() {
        let at = audio_delay + Duration::from_millis(i as u64 * 20);
        for p in ap.frame(f, i as u32 * 960, start + at) {
            timed.push((at, p));
        }
    }
    timed.sort_by_key(|(at, _)| *at);
    Clip {
        packets: timed.into_iter().map(|(_, p)| p).collect(),
        video_frames: video.len(),
        audio_frames: audio.len(),
    }
}

/// Bytes that look like nothing in particular (a stand-in recording).
pub fn some_bytes(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
