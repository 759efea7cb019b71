//! Holes in the phone's video that NACK/RTX did not fill. str0m (RTP mode) NACKs the phone for
//! every gap and hands over the repaired packets under their own sequence numbers. A packet never
//! repaired is never forwarded, and the console's decoder then waits for its own keyframe request
//! (Chromium: after ~3 s). Measured under 10 % loss each way (tests/browser/quality.mjs): about
//! one 3 s stall per 30 s in one run in three. So the SFU asks the phone for a keyframe itself
//! once a hole is unlikely to be repaired in time: the stall lasts a few hundred milliseconds.
//!
//! str0m NACKs a hole (our vendored patch, `NackConfig` set in `rtc_config`) one RTT + 5 ms apart,
//! at least its 33 ms tick, until the first NACK is [`crate::NACK_MAX_AGE`] old, and accepts the
//! repair while fewer than [`crate::NACK_WINDOW`] newer packets have arrived. By [`GIVE_UP`] a
//! hole has had several rounds at a short RTT (each lost with ~19 % at 10 % loss each way), and
//! the console's 200 ms jitter buffer is spent: a keyframe is asked for then, while the NACKs go
//! on (whichever comes first helps). A hole that leaves the window (more than a second of video
//! behind) is past repair and asks for one at once. (With str0m's defaults — five NACKs, a
//! 100-packet window — a hole early in a 720p keyframe, itself over 100 packets, was forgotten
//! within tens of milliseconds and cost a keyframe round trip of 0.3–0.7 s.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::rtp::Ssrc;

/// A hole this old is no longer worth waiting for alone: on a short RTT it has had about nine
/// NACK rounds, and the console's jitter buffer (200 ms under loss) has run dry.
const GIVE_UP: Duration = Duration::from_millis(300);
/// At most one keyframe request per this long for lost packets: a keyframe is large, and under
/// heavy loss it would otherwise be requested all the time.
const MIN_INTERVAL: Duration = Duration::from_millis(1000);
/// str0m's NACK window as we configure it: a packet this far behind the newest is no longer
/// NACKed, and its repair is dropped as a duplicate if it comes.
const WINDOW: u64 = crate::NACK_WINDOW as u64;
/// Holes tracked at most, one window's worth (a jump beyond it is a new sequence, not loss).
const MAX_MISSING: u64 = WINDOW;

#[derive(Default)]
pub(crate) struct UplinkGaps {
    ssrc: Option<Ssrc>,
    highest: Option<u64>,
    /// Missing sequence numbers, ascending, with when the gap was seen (so also ascending).
    missing: VecDeque<(u64, Instant)>,
    last_request: Option<Instant>,
    /// A hole was given up on and no keyframe asked for since.
    owed: bool,
}

impl UplinkGaps {
    /// One video packet from the phone (first sent or repaired), `seq` extended by str0m.
    pub(crate) fn packet(&mut self, ssrc: Ssrc, seq: u64, now: Instant) {
        if self.ssrc != Some(ssrc) {
            self.ssrc = Some(ssrc);
            self.highest = None;
            self.missing.clear();
        }
        match self.highest {
            Some(high) if seq > high => {
                if seq - high > MAX_MISSING {
                    self.missing.clear();
                } else {
                    self.missing.extend((high + 1..seq).map(|s| (s, now)));
                    while self.missing.len() as u64 > MAX_MISSING {
                        self.missing.pop_front();
                        // No longer tracked, so no longer vouched for.
                        self.owed = true;
                    }
                }
                self.highest = Some(seq);
            }
            Some(_) => {
                if let Ok(i) = self.missing.binary_search_by_key(&seq, |(s, _)| *s) {
                    self.missing.remove(i);
                }
            }
            None => self.highest = Some(seq),
        }
    }

    /// Whether a hole has outlived any repair (it is then forgotten) and no keyframe was asked
    /// for lost packets in the last [`MIN_INTERVAL`]; one held back by that pacing is asked for
    /// once the interval is over (the console stalls until a keyframe comes).
    pub(crate) fn keyframe_needed(&mut self, now: Instant) -> bool {
        let window_start = self.highest.map_or(0, |h| h.saturating_sub(WINDOW));
        while let Some(&(seq, seen)) = self.missing.front() {
            if seq >= window_start && now.saturating_duration_since(seen) < GIVE_UP {
                break;
            }
            self.missing.pop_front();
            self.owed = true;
        }
        if !self.owed
            || self
                .last_request
                .is_some_and(|t| now.saturating_duration_since(t) < MIN_INTERVAL)
        {
            return false;
        }
        self.owed = false;
        self.last_request = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_repaired_hole_asks_for_nothing() {
        let (mut g, t0, ssrc) = (UplinkGaps::default(), Instant::now(), Ssrc::from(7));
        g.packet(ssrc, 10, t0);
        g.packet(ssrc, 12, t0 + ms(1));
        g.packet(ssrc, 11, t0 + ms(40));
        g.packet(ssrc, 13, t0 + ms(50));
        assert!(!g.keyframe_needed(t0 + ms(1000)));
    }

    #[test]
    fn a_hole_older_than_any_repair_asks_for_one_keyframe_then_paces() {
        let (mut g, t0, ssrc) = (UplinkGaps::default(), Instant::now(), Ssrc::from(7));
        g.packet(ssrc, 10, t0);
        g.packet(ssrc, 12, t0 + ms(1));
        assert!(!g.keyframe_needed(t0 + ms(200)), "still repairable");
        assert!(g.keyframe_needed(t0 + ms(302)));
        assert!(!g.keyframe_needed(t0 + ms(303)), "forgotten once asked");
        g.packet(ssrc, 14, t0 + ms(400));
        assert!(!g.keyframe_needed(t0 + ms(800)), "paced: one per second");
        assert!(g.keyframe_needed(t0 + ms(1310)), "the held-back request");
        assert!(!g.keyframe_needed(t0 + ms(2400)));
    }

    #[test]
    fn a_hole_out_of_str0ms_window_asks_at_once() {
        let (mut g, t0, ssrc) = (UplinkGaps::default(), Instant::now(), Ssrc::from(7));
        g.packet(ssrc, 10, t0);
        g.packet(ssrc, 12, t0 + ms(1));
        g.packet(ssrc, 200, t0 + ms(20));
        assert!(
            !g.keyframe_needed(t0 + ms(20)),
            "a large keyframe later: still repairable (str0m's default window was 100)"
        );
        g.packet(ssrc, 11 + WINDOW, t0 + ms(40));
        assert!(
            !g.keyframe_needed(t0 + ms(40)),
            "a window behind: still in it"
        );
        g.packet(ssrc, 12 + WINDOW, t0 + ms(41));
        assert!(
            g.keyframe_needed(t0 + ms(41)),
            "past the window: str0m has given up on it"
        );
    }

    #[test]
    fn a_new_ssrc_or_a_jump_is_not_loss() {
        let (mut g, t0) = (UplinkGaps::default(), Instant::now());
        g.packet(Ssrc::from(7), 10, t0);
        g.packet(Ssrc::from(8), 5000, t0);
        g.packet(Ssrc::from(8), 5001, t0);
        g.packet(Ssrc::from(8), 9000, t0);
        assert!(!g.keyframe_needed(t0 + ms(1000)));
    }
}
