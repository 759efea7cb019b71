//! Puts one stream's packets back in sequence order. A missing packet is waited for at most
//! `max_wait` (measured on arrival times, so the buffer is deterministic) or until `capacity`
//! packets are queued behind it; then it is declared lost and the stream moves on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::RtpPacket;

/// What comes out: a packet, and whether packets were lost just before it.
#[derive(Debug)]
pub struct Ordered {
    pub packet: RtpPacket,
    /// True when at least one packet before this one was declared lost.
    pub after_loss: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReorderStats {
    pub duplicates: u64,
    /// Arrived after their place had been given up (or after the stream moved past them).
    pub late: u64,
    pub lost: u64,
}

pub struct ReorderBuffer {
    max_wait: Duration,
    capacity: usize,
    /// Next extended sequence number to hand out.
    next: Option<u64>,
    /// Highest extended sequence number seen, for extending 16-bit numbers.
    highest: Option<u64>,
    queue: BTreeMap<u64, RtpPacket>,
    lost_pending: bool,
    pub stats: ReorderStats,
}

impl ReorderBuffer {
    pub fn new(max_wait: Duration, capacity: usize) -> ReorderBuffer {
        ReorderBuffer {
            max_wait,
            capacity: capacity.max(2),
            next: None,
            highest: None,
            queue: BTreeMap::new(),
            lost_pending: false,
            stats: ReorderStats::default(),
        }
    }

    /// Extends a 16-bit sequence number to the lap nearest the highest one seen.
    fn extend(&mut self, seq: u16) -> u64 {
        let Some(h) = self.highest else {
            // Start well above zero so an older packet of the first lap stays representable.
            let v = (1u64 << 16) + seq as u64;
            self.highest = Some(v);
            return v;
        };
        let diff = seq.wrapping_sub(h as u16) as i16 as i64;
        let v = (h as i64 + diff).max(0) as u64;
        if v > h {
            self.highest = Some(v);
        }
        v
    }

    /// Adds a packet; returns the packets now ready, in order.
    pub fn push(&mut self, packet: RtpPacket) -> Vec<Ordered> {
        let seq = self.extend(packet.seq as u16);
        let now = packet.arrival;
        match self.next {
            Some(next) if seq < next => {
                self.stats.late += 1;
                return self.drain(now);
            }
            None => self.next = Some(seq),
            _ => {}
        }
        match self.queue.entry(seq) {
            std::collections::btree_map::Entry::Occupied(_) => self.stats.duplicates += 1,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(packet);
            }
        }
        self.drain(now)
    }

    /// Gives up on missing packets that have been waited for long enough (call on a timer too).
    pub fn poll(&mut self, now: Instant) -> Vec<Ordered> {
        self.drain(now)
    }

    /// Everything still queued, in order, giving up on every gap (end of stream).
    pub fn flush(&mut self) -> Vec<Ordered> {
        let mut out = Vec::new();
        while let Some((seq, p)) = self.queue.pop_first() {
            let next = self.next.unwrap_or(seq);
            let after_loss = self.lost_pending || seq > next;
            self.stats.lost += seq.saturating_sub(next);
            self.lost_pending = false;
            self.next = Some(seq + 1);
            out.push(Ordered {
                packet: p,
                after_loss,
            });
        }
        out
    }

    fn drain(&mut self, now: Instant) -> Vec<Ordered> {
        let mut out = Vec::new();
        while let Some(next) = self.next {
            if let Some(p) = self.queue.remove(&next) {
                out.push(Ordered {
                    packet: p,
                    after_loss: std::mem::take(&mut self.lost_pending),
                });
                self.next = Some(next + 1);
                continue;
            }
            // `next` is missing: skip to the first queued packet when it waited too long.
            let Some((&first, oldest)) = self.queue.first_key_value() else {
                break;
            };
            let waited = now.saturating_duration_since(oldest.arrival);
            if waited >= self.max_wait || self.queue.len() >= self.capacity {
                self.stats.lost += first - next;
                self.lost_pending = true;
                self.next = Some(first);
            } else {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Source};

    fn pkt(seq: u16, at: Instant) -> RtpPacket {
        RtpPacket {
            source: Source::Customer,
            codec: Codec::Opus,
            clock_rate: 48000,
            ssrc: 1,
            seq: seq as u64,
            timestamp: seq as u32 * 960,
            marker: false,
            payload: bytes::Bytes::from_static(&[1]),
            arrival: at,
            muted: false,
            video_orientation: None,
        }
    }

    fn seqs(v: &[Ordered]) -> Vec<u16> {
        v.iter().map(|o| o.packet.seq as u16).collect()
    }

    #[test]
    fn reorders_across_the_16_bit_wrap_and_counts_duplicates_and_late_packets() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::from_millis(100), 64);
        let mut out = Vec::new();
        for s in [65533u16, 65535, 65534, 0, 65535, 2, 1] {
            out.extend(b.push(pkt(s, t)));
        }
        assert_eq!(seqs(&out), vec![65533, 65534, 65535, 0, 1, 2]);
        assert_eq!(
            b.stats.duplicates, 0,
            "65535 was handed out before its copy came"
        );
        assert_eq!(b.stats.late, 1);
        assert!(b.push(pkt(2, t)).is_empty());
        assert_eq!(b.stats.late, 2);
        assert!(out.iter().all(|o| !o.after_loss));
        b.push(pkt(4, t));
        b.push(pkt(4, t));
        assert_eq!(b.stats.duplicates, 1);
    }

    #[test]
    fn a_gap_is_given_up_after_max_wait_and_the_packet_after_it_is_flagged() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::from_millis(100), 64);
        assert_eq!(seqs(&b.push(pkt(10, t))), vec![10]);
        assert!(b.push(pkt(12, t)).is_empty());
        assert!(b.poll(t + Duration::from_millis(50)).is_empty());
        let out = b.poll(t + Duration::from_millis(100));
        assert_eq!(seqs(&out), vec![12]);
        assert!(out[0].after_loss);
        assert_eq!(b.stats.lost, 1);
        // The lost one turning up later is late, not reordered.
        assert!(b.push(pkt(11, t + Duration::from_millis(120))).is_empty());
        assert_eq!(b.stats.late, 1);
    }

    #[test]
    fn a_full_buffer_gives_up_on_the_gap_without_waiting() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::from_secs(10), 4);
        b.push(pkt(0, t));
        let mut out = Vec::new();
        for s in 2..6 {
            out.extend(b.push(pkt(s, t)));
        }
        assert_eq!(seqs(&out), vec![2, 3, 4, 5]);
        assert_eq!(b.stats.lost, 1);
    }
}
