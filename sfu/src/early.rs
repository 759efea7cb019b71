//! Connectivity checks that arrive before their peer does.
//!
//! The server offers to the console, and the console starts its ICE checks as soon as it has
//! made its answer. The answer comes back over the signalling WebSocket and joins the shard with
//! the peer's `Rtc` ([`crate::engine::Command::AddPeer`]); the checks come straight over UDP (or
//! ICE-TCP) and often win that race. With no `Rtc` to accept them they were dropped, and the
//! console's ICE agent tried again only when its retransmission timer fired (250 ms in str0m's
//! agent, the loadtest's console): set-up at light load took ~280 ms where ~30 ms would do.
//! Held here for a moment, such checks are handed to the peer as soon as it joins, and the
//! console's first check is answered.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::tcp::TcpLink;

/// How long an early check waits for its peer. An answer that takes longer than this is met by
/// the console's retransmissions anyway.
const HOLD_FOR: Duration = Duration::from_secs(2);
/// Checks held at most; when full, the oldest goes (counted as garbage, as it was before).
const MOST: usize = 64;
/// A binding request is ~100–200 bytes; anything longer is not held.
const LONGEST: usize = 512;

pub(crate) struct EarlyCheck {
    pub(crate) data: Vec<u8>,
    pub(crate) source: SocketAddr,
    pub(crate) link: Option<TcpLink>,
    arrival: Instant,
}

/// The checks a shard holds for peers it does not have yet.
#[derive(Default)]
pub(crate) struct EarlyChecks {
    held: VecDeque<EarlyCheck>,
}

impl EarlyChecks {
    /// Holds a binding request that no peer accepted; answers how many older ones were let go
    /// (expired or pushed out), which the caller counts as garbage. A request too long to be a
    /// real check is not held and counts as one let go.
    pub(crate) fn hold(
        &mut self,
        data: &[u8],
        source: SocketAddr,
        link: Option<TcpLink>,
        arrival: Instant,
    ) -> usize {
        if data.len() > LONGEST {
            return 1;
        }
        let mut dropped = self.expire(arrival);
        if self.held.len() == MOST {
            self.held.pop_front();
            dropped += 1;
        }
        self.held.push_back(EarlyCheck {
            data: data.to_vec(),
            source,
            link,
            arrival,
        });
        dropped
    }

    /// Lets go of the checks held longer than [`HOLD_FOR`]; answers how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let before = self.held.len();
        while self
            .held
            .front()
            .is_some_and(|c| now.saturating_duration_since(c.arrival) > HOLD_FOR)
        {
            self.held.pop_front();
        }
        before - self.held.len()
    }

    /// Takes out the checks `wanted` claims, in arrival order.
    pub(crate) fn take(&mut self, mut wanted: impl FnMut(&EarlyCheck) -> bool) -> Vec<EarlyCheck> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.held.len());
        for check in self.held.drain(..) {
            if wanted(&check) {
                taken.push(check);
            } else {
                kept.push_back(check);
            }
        }
        self.held = kept;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn held_checks_are_taken_by_their_peer_in_order_and_others_stay() {
        let mut early = EarlyChecks::default();
        let t0 = Instant::now();
        for (i, port) in [1000, 2000, 1000].into_iter().enumerate() {
            assert_eq!(early.hold(&[i as u8; 20], from(port), None, t0), 0);
        }
        let taken = early.take(|c| c.source == from(1000));
        let firsts: Vec<u8> = taken.iter().map(|c| c.data[0]).collect();
        assert_eq!(firsts, [0, 2]);
        let rest = early.take(|_| true);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].source, from(2000));
        assert!(early.take(|_| true).is_empty());
    }

    #[test]
    fn checks_expire_are_bounded_and_long_ones_are_not_held() {
        let mut early = EarlyChecks::default();
        let t0 = Instant::now();
        assert_eq!(early.hold(&[0; 20], from(1), None, t0), 0);
        // Past the hold time, the first is let go when the next arrives.
        let later = t0 + HOLD_FOR + Duration::from_millis(1);
        assert_eq!(early.hold(&[0; 20], from(2), None, later), 1);
        for port in 3..(3 + MOST as u16 - 1) {
            assert_eq!(early.hold(&[0; 20], from(port), None, later), 0);
        }
        // Full: the oldest goes.
        assert_eq!(early.hold(&[0; 20], from(9999), None, later), 1);
        let held = early.take(|_| true);
        assert_eq!(held.len(), MOST);
        assert_eq!(held[0].source, from(3));
        assert_eq!(early.hold(&[0; LONGEST + 1], from(1), None, later), 1);
        assert!(early.take(|_| true).is_empty());
        assert_eq!(early.expire(later + HOLD_FOR * 2), 0);
    }
}
