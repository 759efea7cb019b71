//! A session's timings, computed from its events (never stored twice): what Post-to-URL sends as
//! WaitingTime, PickupTime, ClosingTime and WorkTime, and what the CRM API shows.

use signaling::status::Status;

use crate::store::sessions::EventRow;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// From the first entry into Waiting until the first entry into Active, in seconds (None until
    /// the session is picked up).
    pub waiting_seconds: Option<i64>,
    /// When the session first entered Active (UTC ms).
    pub pickup_at: Option<i64>,
    /// When the session reached its final status (UTC ms).
    pub closing_at: Option<i64>,
    /// Time spent Active up to `until` (or the end), in seconds: the guide's "work time".
    pub work_seconds: i64,
    /// Time spent On Hold up to `until` (or the end), in seconds.
    pub hold_seconds: i64,
}

/// Timings of a session from its events in order, counting open intervals up to `until`.
pub fn timings(events: &[EventRow], until: i64) -> Timings {
    let mut t = Timings::default();
    let mut first_waiting: Option<i64> = None;
    let mut current: Option<(Status, i64)> = None;
    let (mut active_ms, mut hold_ms) = (0i64, 0i64);
    let mut close = |status: Option<(Status, i64)>, at: i64| match status {
        Some((Status::Active, since)) => active_ms += (at - since).max(0),
        Some((Status::OnHold, since)) => hold_ms += (at - since).max(0),
        _ => {}
    };
    for e in events {
        let Some(to) = Status::parse(&e.to_status) else {
            continue;
        };
        close(current, e.at);
        current = Some((to, e.at));
        match to {
            Status::Waiting if first_waiting.is_none() => first_waiting = Some(e.at),
            Status::Active if t.pickup_at.is_none() => t.pickup_at = Some(e.at),
            s if s.is_final() => t.closing_at = Some(e.at),
            _ => {}
        }
    }
    if t.closing_at.is_none() {
        close(current, until);
    }
    if let Some(pickup) = t.pickup_at {
        t.waiting_seconds = Some(first_waiting.map_or(0, |w| (pickup - w).max(0) / 1000));
    }
    t.work_seconds = active_ms / 1000;
    t.hold_seconds = hold_ms / 1000;
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: i64, to: Status) -> EventRow {
        EventRow {
            seq: 0,
            at,
            from_status: String::new(),
            to_status: to.as_str().into(),
            actor: "system".into(),
            actor_id: None,
            reason: String::new(),
            technician_id: None,
            group_id: 1,
            detail: String::new(),
        }
    }

    #[test]
    fn waiting_work_and_hold_come_from_the_events() {
        let events = [
            ev(0, Status::Connecting),
            ev(1_000, Status::Waiting),
            ev(31_000, Status::Active),
            ev(91_000, Status::OnHold),
            ev(101_000, Status::Active),
            ev(111_000, Status::ClosedByTechnician),
        ];
        let t = timings(&events, 500_000);
        assert_eq!(t.waiting_seconds, Some(30));
        assert_eq!(t.pickup_at, Some(31_000));
        assert_eq!(t.closing_at, Some(111_000));
        assert_eq!(t.work_seconds, 70);
        assert_eq!(t.hold_seconds, 10);
        // A live session counts up to the given time.
        let live = timings(&events[..3], 41_000);
        assert_eq!(live.work_seconds, 10);
        assert_eq!(live.closing_at, None);
        assert_eq!(timings(&events[..2], 41_000).waiting_seconds, None);
    }
}
