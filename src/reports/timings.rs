//! A session's times, computed from its append-only events (DESIGN.md §3: never stored twice).
//!
//! Each event starts its `to_status`, which lasts until the next event (or `now` for a live
//! session). Lens transfers are instantaneous (`Transferring` → `Waiting` at once), so the waiting
//! that follows a transfer, until the next pickup, is counted as Time in Transfer: the guide's
//! Total Time includes Time in Transfer and excludes Waiting, and the customer of a transferred
//! session is being transferred, not waiting for a first pickup.

use signaling::status::Status;

use crate::store::sessions::EventRow;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Entered Connecting (the customer used the code).
    pub connecting_start: Option<i64>,
    /// First entered Waiting.
    pub waiting_start: Option<i64>,
    /// First entered Active (the guide's Start Time).
    pub start: Option<i64>,
    /// Entered a final status (the guide's End Time).
    pub end: Option<i64>,
    /// Last time the session left Active (the guide's Last Action Time).
    pub last_action: Option<i64>,
    pub final_status: String,
    pub connecting: i64,
    /// Waiting before the first pickup (pick-up time).
    pub waiting: i64,
    pub active: i64,
    pub hold: i64,
    pub transfer: i64,
    pub reconnecting: i64,
    /// Number of transfers (Transferring events).
    pub transfers: i64,
}

impl Timings {
    pub fn of(events: &[EventRow], now: i64) -> Timings {
        let mut t = Timings::default();
        for (i, e) in events.iter().enumerate() {
            let status = Status::parse(&e.to_status);
            let until = events.get(i + 1).map_or(now, |n| n.at).max(e.at);
            let span = until - e.at;
            t.final_status.clone_from(&e.to_status);
            // Leaving Active ends the technician's "in action" state (read from the previous event,
            // as Summary reports do not load `from_status`).
            if i > 0 && events[i - 1].to_status == Status::Active.as_str() {
                t.last_action = Some(e.at);
            }
            match status {
                Some(Status::Connecting) => {
                    t.connecting_start.get_or_insert(e.at);
                    t.connecting += span;
                }
                Some(Status::Waiting) => {
                    t.waiting_start.get_or_insert(e.at);
                    if t.start.is_some() {
                        t.transfer += span;
                    } else {
                        t.waiting += span;
                    }
                }
                Some(Status::Active) => {
                    t.start.get_or_insert(e.at);
                    t.active += span;
                }
                Some(Status::OnHold) => t.hold += span,
                Some(Status::Transferring) => {
                    t.transfers += 1;
                    t.transfer += span;
                }
                Some(Status::Reconnecting) => t.reconnecting += span,
                Some(s) if s.is_final() => {
                    t.end = Some(e.at);
                    break;
                }
                _ => {}
            }
        }
        t
    }

    /// The intervals (technician, from, to) in which a technician had the session in the console
    /// in a live status (not idle, for the Login report's Idle Time): each event with a technician
    /// and a live status lasts until the next event (or `now`); consecutive ones of the same
    /// technician are joined.
    pub fn live_spans(events: &[EventRow], now: i64) -> Vec<(i64, i64, i64)> {
        let mut spans: Vec<(i64, i64, i64)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let until = events.get(i + 1).map_or(now, |n| n.at);
            let live =
                Status::parse(&e.to_status).is_some_and(|s| !s.is_final() && s != Status::Pending);
            let Some(t) = e.technician_id.filter(|_| live) else {
                continue;
            };
            match spans.last_mut() {
                Some(last) if last.0 == t && last.2 == e.at => last.2 = until,
                _ => spans.push((t, e.at, until)),
            }
        }
        spans
    }

    /// `intervals` (from, to) sorted and merged into disjoint ones (touching ones joined).
    pub fn merged(mut intervals: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
        intervals.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(intervals.len());
        for (a, b) in intervals {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }

    /// How much of `[a, b)` the disjoint, sorted `merged` intervals cover.
    pub fn covered_within(merged: &[(i64, i64)], a: i64, b: i64) -> i64 {
        merged[merged.partition_point(|c| c.1 <= a)..]
            .iter()
            .take_while(|c| c.0 < b)
            .map(|c| c.1.min(b) - c.0.max(a))
            .filter(|d| *d > 0)
            .sum()
    }

    /// The guide's Total Time: Active + Hold + Transfer + Rebooting (never in Lens) + Reconnecting.
    pub fn total(&self) -> i64 {
        self.active + self.hold + self.transfer + self.reconnecting
    }

    /// Work Time. Lens does not watch the console's focus or tab selection, so Work Time is the
    /// Active time: the session was the technician's one Active session, connected to the phone.
    pub fn work(&self) -> i64 {
        self.active
    }

    /// Handled: picked up at least once.
    pub fn handled(&self) -> bool {
        self.start.is_some()
    }

    /// Joined: the customer used the code (entered Connecting), or the session was picked up.
    /// The Session report lists these.
    pub fn joined(&self) -> bool {
        self.connecting_start.is_some() || self.handled()
    }

    /// Missed: entered the queue, never Active, ended.
    pub fn missed(&self) -> bool {
        self.waiting_start.is_some() && self.start.is_none() && self.end.is_some()
    }

    /// A missed session's time in the queue, from entering Waiting to its end.
    pub fn missed_wait(&self) -> i64 {
        self.end.unwrap_or(0) - self.waiting_start.unwrap_or(0)
    }

    /// Failed: entered Connecting, never reached Waiting or Active, ended.
    pub fn failed(&self) -> bool {
        self.connecting_start.is_some()
            && self.waiting_start.is_none()
            && self.start.is_none()
            && self.end.is_some()
    }
}
