//! Holes in the phone's video that NACK/RTX did not fill. str0m (RTP mode) NACKs the phone for
//! every gap and hands over the repaired packets under their own sequence numbers, but it gives
//! up on a packet after five NACKs one RTT + 5 ms apart; on a short RTT that is ~30 ms, less than a
//! busy phone may take to answer the first. A packet given up on is never forwarded, and the
//! console's decoder then waits for its own keyframe request (Chromium: after ~3 s). Measured
//! under 10 % loss each way (tests/browser/quality.mjs): about one 3 s stall per 30 s in one run
//! in three. So the SFU asks the phone for a keyframe itself once a hole is older than any
//! repair can be: the stall lasts a few hundred milliseconds instead.
//!
//! str0m also forgets a hole once 100 newer packets have arrived (its NACK window) and then drops
//! the repair when it comes: at 720p a keyframe is more than 100 packets, so a hole early in one
//! is unrepairable within a few tens of milliseconds. Such a hole asks for a keyframe at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::rtp::Ssrc;

/// A hole this old is not going to be repaired (str0m's NACK rounds are over by then even with
/// its default 100 ms RTT after the first: the first NACK goes at once, retries are spaced).
const GIVE_UP: Duration = Duration::from_millis(300);
/// At most one keyframe request per this long for lost packets: a keyframe is large, and under
/// heavy loss it would otherwise be requested all the time.
const MIN_INTERVAL: Duration = Duration::from_millis(1000);
/// Holes tracked at most (a jump beyond this is a new sequence, not loss).
const MAX_MISSING: u64 = 512;
/// str0m's NACK window (`MAX_MISORDER` in its `register_nack.rs`, 0.25): a packet this far behind
/// the newest is no longer NACKed, and its repair is dropped as a duplicate if it comes.
const STR0M_WINDOW: u64 = 100;

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
        let window_start = self.highest.map_or(0, |h| h.saturating_sub(STR0M_WINDOW));
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
        g.packet(ssrc, 111, t0 + ms(20));
        assert!(
            !g.keyframe_needed(t0 + ms(20)),
            "100 behind: still in the window"
        );
        g.packet(ssrc, 112, t0 + ms(21));
        assert!(
            g.keyframe_needed(t0 + ms(21)),
            "101 behind: str0m has given up on it"
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
