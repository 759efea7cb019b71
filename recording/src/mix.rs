//! Both voices in one audio track: each talker's Opus frames are placed on the file's timeline,
//! decoded (libopus' concealment for lost packets), summed at 48 kHz, soft-clipped and encoded
//! again as 20 ms mono Opus frames.
//!
//! Placement: a talker's frame goes to `timestamp - base + offset` (file samples). The customer's
//! audio is anchored by the recorder (RTCP sender reports against the video, as before); a talker
//! without an anchor (the technician, whose clock is another machine's, or a restarted stream)
//! is anchored on the server's clock: the frame's arrival time after `origin`, the arrival of the
//! file's first frame. A muted talker (the SFU taps its packets without content) and a talker
//! that sends nothing contribute silence.
//!
//! A mixed frame is encoded once every talker that is still sending has reached its end, or has
//! fallen more than [`LAG`] behind the others (a talker that went away does not hold the file up).
//! A talker whose frames then come after their time was written moves forward to the written end.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use crate::Source;
use crate::depacketize::Frame;
use crate::opus::{Decoder, Encoder, MAX_FRAME, RATE, soft_clip};

/// Samples per mixed frame: 20 ms.
pub const FRAME: usize = 960;
/// How far a talker may lag behind the other before its frames are given up on.
pub const LAG: i64 = RATE as i64 / 2;
/// Losses up to this long are concealed; longer holes are silence.
pub const MAX_CONCEAL: i64 = RATE as i64 / 10;
/// A timestamp this far from where arrival time puts a frame is a jump: re-anchor.
const MAX_DRIFT: i64 = 10 * RATE as i64;
/// The encoder: voice at 32 kbit/s, complexity 5 (about half the CPU of the default).
const BITRATE: i32 = 32_000;
const COMPLEXITY: i32 = 5;

/// Counters of the mixer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixStats {
    /// Frames decoded, per talker (customer, technician).
    pub decoded: [u64; 2],
    /// Muted frames (silence, never decoded).
    pub muted: u64,
    /// 20 ms of concealment (lost packets), rounded up.
    pub concealed: u64,
    /// Packets libopus refused (played as silence).
    pub bad_packets: u64,
    /// Frames that came after their time was written: their talker was moved forward.
    pub late: u64,
}

/// One mixed, encoded frame.
#[derive(Debug, Clone)]
pub struct Mixed {
    /// File time (samples) of its start.
    pub at: i64,
    pub data: Vec<u8>,
    /// A talker covered (part of) it; false: nobody was there (silence).
    pub voiced: bool,
}

struct Lane {
    decoder: Decoder,
    /// (RTP time, file position) pair that places this talker's frames.
    anchor: Option<(i64, i64)>,
    /// Where this talker's last frame ended.
    end: Option<i64>,
    /// Samples of its last frame.
    step: i64,
}

pub struct Mixer {
    lanes: [Lane; 2],
    origin: Instant,
    encoder: Encoder,
    /// Mixed samples from `done * FRAME` on, one 20 ms frame per entry, with "voiced".
    pending: VecDeque<(Box<[f32; FRAME]>, bool)>,
    done: i64,
    clip: f32,
    scratch: Vec<f32>,
    pub stats: MixStats,
}

fn lane_index(s: Source) -> usize {
    match s {
        Source::Customer => 0,
        Source::Technician => 1,
    }
}

impl Mixer {
    /// `origin`: when the file's first frame (time 0) reached the server.
    pub fn new(origin: Instant) -> io::Result<Mixer> {
        let lane = || -> io::Result<Lane> {
            Ok(Lane {
                decoder: Decoder::new()?,
                anchor: None,
                end: None,
                step: FRAME as i64,
            })
        };
        Ok(Mixer {
            lanes: [lane()?, lane()?],
            origin,
            encoder: Encoder::new(BITRATE, COMPLEXITY)?,
            pending: VecDeque::new(),
            done: 0,
            clip: 0.0,
            scratch: vec![0.0; MAX_FRAME],
            stats: MixStats::default(),
        })
    }

    /// The encoder's delay in samples (the Opus sample entry's pre-skip).
    pub fn pre_skip(&self) -> u16 {
        self.encoder.lookahead()
    }

    /// Places `source`'s frames so that RTP time `ts` is file time `at`.
    pub fn anchor(&mut self, source: Source, ts: i64, at: i64) {
        self.lanes[lane_index(source)].anchor = Some((ts, at));
    }

    /// The talker's stream changed (new SSRC): its next frame is placed by arrival time.
    pub fn reanchor(&mut self, source: Source) {
        self.lanes[lane_index(source)].anchor = None;
    }

    /// File time of an arrival on the server's clock.
    fn arrival_position(&self, arrival: Instant) -> i64 {
        let secs = if arrival >= self.origin {
            arrival.duration_since(self.origin).as_secs_f64()
        } else {
            -self.origin.duration_since(arrival).as_secs_f64()
        };
        (secs * RATE as f64).round() as i64
    }

    /// Adds one frame of a talker.
    pub fn push(&mut self, source: Source, f: &Frame) {
        let by_arrival = self.arrival_position(f.arrival);
        let li = lane_index(source);
        let lane = &mut self.lanes[li];
        let written = self.done * FRAME as i64;
        let at = match lane.anchor.map(|(ts, pos)| f.timestamp - ts + pos) {
            // A timestamp far from where the clock puts the frame is a jump (or a bogus packet).
            Some(at) if (at - by_arrival).abs() > MAX_DRIFT => None,
            // A talker whose frames come after their time was written (it fell more than LAG
            // behind, or the other talker's clock runs ahead of arrival time) moves forward.
            Some(at) if at + lane.step <= written => {
                self.stats.late += 1;
                None
            }
            at => at,
        };
        let at = match at {
            Some(at) => at,
            None => {
                // Never before what this talker already gave, nor before what was written.
                let at = by_arrival.max(lane.end.unwrap_or(i64::MIN)).max(written);
                lane.anchor = Some((f.timestamp, at));
                at
            }
        };
        // A loss just before this frame: let the decoder conceal the hole when it is short.
        if let Some(end) = lane.end {
            let hole = at - end;
            if f.after_loss && hole > 0 && hole <= MAX_CONCEAL {
                let mut from = end;
                while from < at {
                    // Concealment comes in multiples of 2.5 ms.
                    let n = ((at - from).min(FRAME as i64) as usize).div_ceil(120) * 120;
                    let mut buf = std::mem::take(&mut self.scratch);
                    let got = self.lanes[li].decoder.conceal(&mut buf[..n]);
                    if let Ok(got) = got {
                        let take = got.min((at - from) as usize);
                        self.add(from, &buf[..take], true);
                    }
                    self.scratch = buf;
                    self.stats.concealed += 1;
                    from += n as i64;
                }
            }
        }
        let lane = &mut self.lanes[li];
        let n = if f.muted {
            // Muted: the talker is there, silent; its content was never tapped.
            self.stats.muted += 1;
            let step = lane.step;
            self.mark(at, step);
            step
        } else {
            let mut buf = std::mem::take(&mut self.scratch);
            let got = self.lanes[li].decoder.decode(&f.data, &mut buf);
            let n = match got {
                Ok(n) => {
                    self.stats.decoded[li] += 1;
                    self.add(at, &buf[..n], true);
                    n as i64
                }
                Err(_) => {
                    self.stats.bad_packets += 1;
                    self.lanes[li].step
                }
            };
            self.scratch = buf;
            n
        };
        let lane = &mut self.lanes[li];
        lane.step = n.max(1);
        lane.end = Some(lane.end.map_or(at + n, |e| e.max(at + n)));
    }

    /// Marks `[at, at + n)` as covered by a talker (muted: nothing to add).
    fn mark(&mut self, at: i64, n: i64) {
        self.add_with(at, n as usize, |_| 0.0, true);
    }

    fn add(&mut self, at: i64, samples: &[f32], voiced: bool) {
        self.add_with(at, samples.len(), |i| samples[i], voiced);
    }

    fn add_with(&mut self, at: i64, n: usize, sample: impl Fn(usize) -> f32, voiced: bool) {
        let first = self.done * FRAME as i64;
        if at + n as i64 <= first {
            self.stats.late += 1;
            return;
        }
        for i in 0..n {
            let pos = at + i as i64;
            if pos < first {
                continue;
            }
            let k = ((pos - first) / FRAME as i64) as usize;
            while self.pending.len() <= k {
                self.pending.push_back((Box::new([0.0; FRAME]), false));
            }
            let (frame, v) = &mut self.pending[k];
            frame[((pos - first) % FRAME as i64) as usize] += sample(i);
            *v |= voiced;
        }
    }

    /// Encodes the frames every talker is done with (all of them at the `end`).
    pub fn ready(&mut self, end: bool) -> io::Result<Vec<Mixed>> {
        let heads: Vec<i64> = self.lanes.iter().filter_map(|l| l.end).collect();
        let Some(&newest) = heads.iter().max() else {
            return Ok(Vec::new());
        };
        let until = if end {
            newest
        } else {
            // A talker more than LAG behind the newest is not waited for.
            heads
                .iter()
                .map(|&h| h.max(newest - LAG))
                .min()
                .unwrap_or(newest)
        };
        let mut out = Vec::new();
        loop {
            let start = self.done * FRAME as i64;
            let complete = start + FRAME as i64 <= until;
            let partial = end && start < until;
            if !(complete || partial) {
                break;
            }
            let (mut pcm, voiced) = self
                .pending
                .pop_front()
                .unwrap_or_else(|| (Box::new([0.0; FRAME]), false));
            soft_clip(&mut pcm[..], &mut self.clip);
            out.push(Mixed {
                at: start,
                data: self.encoder.encode(&pcm[..])?,
                voiced,
            });
            self.done += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tone(enc: &mut Encoder, hz: f32, k: usize) -> Vec<u8> {
        let pcm: Vec<f32> = (0..FRAME)
            .map(|i| {
                let t = (k * FRAME + i) as f32 / RATE as f32;
                0.4 * (2.0 * std::f32::consts::PI * hz * t).sin()
            })
            .collect();
        enc.encode(&pcm).unwrap()
    }

    fn frame(ts: i64, data: Vec<u8>, arrival: Instant) -> Frame {
        Frame {
            timestamp: ts,
            data,
            keyframe: true,
            after_loss: false,
            muted: false,
            arrival,
        }
    }

    #[test]
    fn two_talkers_are_waited_for_and_a_silent_one_is_not() {
        let t0 = Instant::now();
        let mut m = Mixer::new(t0).unwrap();
        let mut a = Encoder::new(32_000, 5).unwrap();
        let mut b = Encoder::new(32_000, 5).unwrap();
        m.anchor(Source::Customer, 1000, 0);
        for k in 0..10 {
            let at = t0 + Duration::from_millis(20 * k as u64);
            m.push(
                Source::Customer,
                &frame(1000 + 960 * k as i64, tone(&mut a, 440.0, k), at),
            );
            m.push(
                Source::Technician,
                &frame(7 + 960 * k as i64, tone(&mut b, 1000.0, k), at),
            );
        }
        let out = m.ready(false).unwrap();
        assert_eq!(out.len(), 10, "both talkers reached 200 ms");
        assert!(out.iter().all(|f| f.voiced));
        assert_eq!(m.stats.decoded, [10, 10]);
        // The technician stops: the customer goes on and is not held up for more than LAG.
        for k in 10..60 {
            let at = t0 + Duration::from_millis(20 * k as u64);
            m.push(
                Source::Customer,
                &frame(1000 + 960 * k as i64, tone(&mut a, 440.0, k), at),
            );
        }
        let out = m.ready(false).unwrap();
        assert_eq!(
            out.len() as i64,
            (60 * FRAME as i64 - LAG) / FRAME as i64 - 10
        );
        let out = m.ready(true).unwrap();
        assert_eq!(out.last().unwrap().at, 59 * FRAME as i64);
    }

    #[test]
    fn a_short_loss_is_concealed_and_a_long_hole_is_silence() {
        let t0 = Instant::now();
        let mut m = Mixer::new(t0).unwrap();
        let mut a = Encoder::new(32_000, 5).unwrap();
        m.anchor(Source::Customer, 0, 0);
        let lost_before = |k: usize| k == 20 || k == 40;
        for k in (0..100).filter(|k| !(17..20).contains(k) && !(25..40).contains(k)) {
            let mut f = frame(960 * k as i64, tone(&mut a, 440.0, k), t0);
            f.after_loss = lost_before(k);
            m.push(Source::Customer, &f);
        }
        let out = m.ready(true).unwrap();
        assert_eq!(out.len(), 100);
        // 60 ms concealed; 300 ms is too long to conceal: silence.
        assert_eq!(m.stats.concealed, 3);
        let silent: Vec<usize> = (0..100).filter(|&k| !out[k].voiced).collect();
        assert_eq!(silent, (25..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_muted_talker_is_silent_and_a_late_one_moves_forward() {
        let t0 = Instant::now();
        let mut m = Mixer::new(t0).unwrap();
        let mut a = Encoder::new(32_000, 5).unwrap();
        m.anchor(Source::Customer, 0, 0);
        for k in 0..10 {
            let mut f = frame(960 * k as i64, tone(&mut a, 440.0, k), t0);
            f.muted = k >= 5;
            m.push(Source::Customer, &f);
        }
        assert_eq!(m.stats.muted, 5);
        assert_eq!(m.ready(true).unwrap().len(), 10);
        // A talker 200 ms behind what was written: placed at the end, not lost.
        m.push(Source::Customer, &frame(0, tone(&mut a, 440.0, 10), t0));
        m.push(Source::Customer, &frame(960, tone(&mut a, 440.0, 11), t0));
        assert_eq!(m.stats.late, 1);
        let out = m.ready(true).unwrap();
        assert_eq!(out.iter().map(|f| f.at).collect::<Vec<_>>(), [9600, 10560]);
        assert!(out.iter().all(|f| f.voiced));
    }
}
