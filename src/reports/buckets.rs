//! Which parts of a report's window the Summaries read from the pre-aggregated
//! `session_buckets` (migration 0019: per UTC hour and per UTC day, the count, sums and maxima of
//! the ended sessions created then) and which they scan in `session_timings`.
//!
//! A bucket is read only when every instant of it belongs to the report: inside the window and,
//! with a daily time range, inside that range in the report's zone. That holds for an hour whose
//! UTC offset does not change within it and whose local hour lies wholly inside the range; in
//! whole-hour zones every hour of a daily range does. The rest (the window's edges, hours a
//! half-hour zone or a DST change splits, hours a daily range starts or ends within) is scanned
//! with the report's exact filter, so the answer equals a scan of the whole window.

use std::collections::BTreeSet;

use chrono_tz::Tz;

use super::params::{self, Daily};

pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;
/// The coarser level of the per-technician handled buckets (migration 0026): 16 UTC days, the
/// blocks counted from the Unix epoch.
pub const BLOCK: i64 = 16 * DAY;
/// The span code of those buckets' other level: one UTC hour of the day over the 16 days of a
/// block (`at`: the block's start plus the hour of the day). No bucket is that long: a code.
pub const BLOCK_HOURS: i64 = BLOCK + HOUR;

/// The parts of a window, each a list of `[a, b)` ranges in UTC ms, merged and in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cover {
    /// Whole UTC days: read from the day buckets.
    pub days: Vec<(i64, i64)>,
    /// Whole UTC hours not in `days`: read from the hour buckets.
    pub hours: Vec<(i64, i64)>,
    /// Scanned in `session_timings` with the report's filter (window and daily range included).
    pub scan: Vec<(i64, i64)>,
}

/// A cover's whole days and hours regrouped for the buckets with the block levels (migration
/// 0026): bucket starts, one list per span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocked {
    /// Whole blocks (`BLOCK`).
    pub blocks: Vec<i64>,
    /// One hour of the day on each of a block's days (`BLOCK_HOURS`: block start plus the hour).
    pub block_hours: Vec<i64>,
    pub days: Vec<i64>,
    pub hours: Vec<i64>,
}

/// Regroups the whole days and hours of `c` (its scan stays): a block whose every hour is
/// whole is read as one bucket; otherwise each hour of the day that is whole on all the
/// block's days (a daily range in a whole-hour zone without a DST change in the block) as one;
/// the hours left as days and hours. Every hour is read exactly once, as in `c`.
pub fn blocked(c: &Cover) -> Blocked {
    let mut whole: BTreeSet<i64> = starts(&c.days, HOUR).into_iter().collect();
    whole.extend(starts(&c.hours, HOUR));
    let mut b = Blocked::default();
    let (Some(&lo), Some(&hi)) = (whole.first(), whole.last()) else {
        return b;
    };
    let mut block = lo.div_euclid(BLOCK) * BLOCK;
    while block <= hi {
        let of_day = |h: i64| (0..BLOCK / DAY).map(move |d| block + d * DAY + h * HOUR);
        let full: Vec<i64> = (0..DAY / HOUR)
            .filter(|&h| of_day(h).all(|at| whole.contains(&at)))
            .collect();
        if full.len() as i64 == DAY / HOUR {
            b.blocks.push(block);
        } else {
            b.block_hours.extend(full.iter().map(|h| block + h * HOUR));
        }
        for h in full {
            for at in of_day(h) {
                whole.remove(&at);
            }
        }
        block += BLOCK;
    }
    // The rest: days all of whose hours are left, and hours.
    let hours: Vec<i64> = whole.into_iter().collect();
    let mut i = 0;
    while i < hours.len() {
        let at = hours[i];
        let n = (DAY / HOUR) as usize;
        if at.rem_euclid(DAY) == 0 && hours.get(i + n - 1) == Some(&(at + DAY - HOUR)) {
            b.days.push(at);
            i += n;
        } else {
            b.hours.push(at);
            i += 1;
        }
    }
    b
}

/// How much of an hour a daily range keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Whole,
    Partly,
    Nothing,
}

/// The cover of `[from, to)` with the daily range `daily` in `tz`.
pub fn cover(from: i64, to: i64, daily: Option<Daily>, tz: Tz) -> Cover {
    let mut c = Cover::default();
    if from >= to {
        return c;
    }
    let first = from.div_euclid(HOUR) * HOUR + if from.rem_euclid(HOUR) == 0 { 0 } else { HOUR };
    let last = to.div_euclid(HOUR) * HOUR;
    if first >= last {
        c.scan.push((from, to));
        return c;
    }
    push(&mut c.scan, (from, first));
    // The offset changes within the whole hours, to tell each hour's offset.
    let (mut offset, changes) = match daily {
        Some(_) => params::offsets(tz, first, last),
        None => (0, Vec::new()),
    };
    let mut next_change = changes.iter().peekable();
    let mut whole: Vec<(i64, i64)> = Vec::new();
    let mut h = first;
    while h < last {
        let part = match daily {
            None => Part::Whole,
            Some(d) => {
                while let Some(&&(at, o)) = next_change.peek() {
                    if at > h {
                        break;
                    }
                    offset = o;
                    next_change.next();
                }
                match next_change.peek() {
                    // The offset changes within the hour: scanned.
                    Some(&&(at, _)) if at < h + HOUR => Part::Partly,
                    _ => part_of_day((h + offset).rem_euclid(DAY), d),
                }
            }
        };
        match part {
            Part::Whole => push(&mut whole, (h, h + HOUR)),
            Part::Partly => push(&mut c.scan, (h, h + HOUR)),
            Part::Nothing => {}
        }
        h += HOUR;
    }
    push(&mut c.scan, (last, to));
    // Whole days out of the runs of whole hours.
    for (a, b) in whole {
        let d0 = a.div_euclid(DAY) * DAY + if a.rem_euclid(DAY) == 0 { 0 } else { DAY };
        let d1 = b.div_euclid(DAY) * DAY;
        if d0 < d1 {
            push(&mut c.hours, (a, d0));
            push(&mut c.days, (d0, d1));
            push(&mut c.hours, (d1, b));
        } else {
            push(&mut c.hours, (a, b));
        }
    }
    c
}

/// The starts of the buckets of `span` making up `ranges` (each a multiple of `span` long).
pub fn starts(ranges: &[(i64, i64)], span: i64) -> Vec<i64> {
    ranges
        .iter()
        .flat_map(|&(a, b)| (a..b).step_by(usize::try_from(span).unwrap_or(1)))
        .collect()
}

/// Appends `[a, b)` (if not empty), joined to the last range when they touch.
fn push(ranges: &mut Vec<(i64, i64)>, (a, b): (i64, i64)) {
    if a >= b {
        return;
    }
    match ranges.last_mut() {
        Some(last) if last.1 == a => last.1 = b,
        _ => ranges.push((a, b)),
    }
}

/// How much of the local hour starting `start` ms after midnight `d` keeps. `Daily::contains`
/// compares the local minute of the day, so a time `x` ms after local midnight is kept when
/// `from_min * 60000 <= x < to_min * 60000` (the range wraps past midnight when from > to, and
/// is the whole day when from == to, as in `daily_sql`).
fn part_of_day(start: i64, d: Daily) -> Part {
    let (a, b) = (i64::from(d.from_min) * 60_000, i64::from(d.to_min) * 60_000);
    let range: Vec<(i64, i64)> = if a < b {
        vec![(a, b)]
    } else if a == b {
        vec![(0, DAY)]
    } else {
        vec![(a, DAY), (0, b)]
    };
    let hour: Vec<(i64, i64)> = if start + HOUR <= DAY {
        vec![(start, start + HOUR)]
    } else {
        vec![(start, DAY), (0, start + HOUR - DAY)]
    };
    let inside = hour
        .iter()
        .all(|&(x, y)| range.iter().any(|&(p, q)| p <= x && y <= q));
    let outside = hour
        .iter()
        .all(|&(x, y)| range.iter().all(|&(p, q)| y <= p || q <= x));
    if inside {
        Part::Whole
    } else if outside {
        Part::Nothing
    } else {
        Part::Partly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    /// Every instant the cover keeps is one the daily range keeps, checked minute by minute
    /// (and at each range's last millisecond) over whole days in zones with odd offsets and DST.
    #[test]
    fn whole_buckets_hold_only_kept_times() {
        let zones = [
            "UTC",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Australia/Sydney",
            "Australia/Lord_Howe",
            "America/New_York",
            "America/St_Johns",
        ];
        let dailies = [
            (540, 1020),
            (570, 1035),
            (1320, 120),
            (0, 1440),
            (600, 600),
            (61, 62),
        ];
        for zone in zones {
            let tz: Tz = zone.parse().unwrap();
            for (f, t) in dailies {
                let d = Daily {
                    from_min: f,
                    to_min: t % 1440,
                };
                // Around the DST changes of 2026 in the northern and southern hemispheres.
                for (from, to) in [
                    (ms("2026-03-07T13:17:00Z"), ms("2026-03-10T02:00:00Z")),
                    (ms("2026-04-03T00:00:00Z"), ms("2026-04-06T05:30:00Z")),
                    (ms("2026-10-02T22:00:00Z"), ms("2026-10-05T09:00:00Z")),
                    (ms("2026-10-31T00:00:00Z"), ms("2026-11-03T00:00:00Z")),
                ] {
                    let c = cover(from, to, Some(d), tz);
                    let covered = |at: i64| {
                        c.days
                            .iter()
                            .chain(&c.hours)
                            .chain(&c.scan)
                            .any(|&(a, b)| a <= at && at < b)
                    };
                    let whole = |at: i64| {
                        c.days
                            .iter()
                            .chain(&c.hours)
                            .any(|&(a, b)| a <= at && at < b)
                    };
                    let mut at = from;
                    while at < to {
                        for x in [at, at + 59_999] {
                            if x >= to {
                                continue;
                            }
                            if d.contains(x, tz) {
                                assert!(covered(x), "{zone} {d:?} {x} kept but not covered");
                            }
                            if whole(x) {
                                assert!(
                                    d.contains(x, tz),
                                    "{zone} {d:?} {x} read whole but not kept"
                                );
                            }
                        }
                        at += 60_000;
                    }
                    // The parts do not overlap.
                    let mut all: Vec<(i64, i64)> = c
                        .days
                        .iter()
                        .chain(&c.hours)
                        .chain(&c.scan)
                        .copied()
                        .collect();
                    all.sort_unstable();
                    for w in all.windows(2) {
                        assert!(w[0].1 <= w[1].0, "{zone} overlapping parts {all:?}");
                    }
                }
            }
        }
    }

    /// The hours a regrouped cover reads, each as often as it is read.
    fn hours_read(b: &Blocked) -> Vec<i64> {
        let mut hours = Vec::new();
        for &at in &b.blocks {
            hours.extend((0..BLOCK / HOUR).map(|h| at + h * HOUR));
        }
        for &at in &b.block_hours {
            let block = at - at.rem_euclid(BLOCK);
            hours.extend((0..BLOCK / DAY).map(|d| at + d * DAY));
            assert!(at - block < DAY, "{at}");
        }
        for &at in &b.days {
            hours.extend((0..DAY / HOUR).map(|h| at + h * HOUR));
        }
        hours.extend(&b.hours);
        hours.sort_unstable();
        hours
    }

    /// The blocks and blocks' hours of the day read the whole hours of the cover, each once,
    /// and a year's report reads mostly them: in UTC blocks, with a daily range in Sydney (DST)
    /// blocks' hours, in Kathmandu (+05:45) neither where a range's edges split its hours.
    #[test]
    fn blocks_read_each_whole_hour_once() {
        let (from, to) = (ms("2025-12-06T23:49:23Z"), ms("2026-12-06T23:49:23Z"));
        let cases = [
            ("UTC", None, true, false),
            ("UTC", Some((540, 1020)), false, true),
            ("Australia/Sydney", Some((540, 1020)), false, true),
            ("Australia/Sydney", None, true, false),
            ("America/New_York", Some((1320, 120)), false, true),
            ("Asia/Kathmandu", Some((540, 1020)), false, true),
            ("Asia/Kolkata", Some((0, 0)), true, false),
        ];
        for (zone, daily, blocks, block_hours) in cases {
            let tz: Tz = zone.parse().unwrap();
            let daily = daily.map(|(f, t)| Daily {
                from_min: f,
                to_min: t,
            });
            let c = cover(from, to, daily, tz);
            let b = blocked(&c);
            let mut whole = starts(&c.days, HOUR);
            whole.extend(starts(&c.hours, HOUR));
            whole.sort_unstable();
            assert_eq!(hours_read(&b), whole, "{zone} {daily:?}");
            assert_eq!(!b.blocks.is_empty(), blocks, "{zone} {daily:?} {b:?}");
            assert_eq!(
                !b.block_hours.is_empty(),
                block_hours,
                "{zone} {daily:?} {b:?}"
            );
            // Most of the year in the coarse levels: at most a block's worth of days at
            // each edge (and the blocks a DST change splits).
            let coarse = b.blocks.len() * 384 + b.block_hours.len() * 16;
            assert!(coarse * 10 >= whole.len() * 7, "{zone} {daily:?} {b:?}");
        }
    }

    #[test]
    fn a_year_in_utc_is_days_and_edges() {
        let from = ms("2025-12-06T23:49:23Z");
        let to = ms("2026-12-06T23:49:23Z");
        let c = cover(from, to, None, Tz::UTC);
        let (d0, d1) = (ms("2025-12-07T00:00:00Z"), ms("2026-12-06T00:00:00Z"));
        assert_eq!(c.days, vec![(d0, d1)]);
        assert_eq!(c.hours, vec![(d1, d1 + 23 * HOUR)]);
        assert_eq!(c.scan, vec![(from, d0), (d1 + 23 * HOUR, to)]);
    }

    #[test]
    fn a_daily_range_in_a_whole_hour_zone_needs_no_scan() {
        let d = Daily {
            from_min: 540,
            to_min: 1020,
        };
        let tz: Tz = "Australia/Sydney".parse().unwrap();
        let c = cover(
            ms("2025-12-06T13:00:00Z"),
            ms("2026-12-06T13:00:00Z"),
            Some(d),
            tz,
        );
        assert!(c.scan.is_empty(), "{:?}", c.scan);
        assert!(c.days.is_empty());
        assert_eq!(c.hours.len(), 365);
        assert!(c.hours.iter().all(|&(a, b)| b - a == 8 * HOUR));
        // Kolkata (+05:30): each day's first and last half hour are scanned.
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let c = cover(
            ms("2025-12-06T18:30:00Z"),
            ms("2026-12-06T18:30:00Z"),
            Some(d),
            tz,
        );
        // And the window's half-hour edges.
        assert_eq!(c.scan.len(), 2 * 365 + 2);
        assert!(c.hours.iter().all(|&(a, b)| b - a == 7 * HOUR));
    }
}
