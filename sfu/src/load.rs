//! How busy each shard is, and where a new room goes.
//!
//! Every shard measures the CPU time its own thread used over each [`LOAD_PERIOD`], and the time
//! it was ready to run but waited for a CPU, and publishes both (with its room count then) in
//! its [`EngineMetrics`]; their sum is the shard's load. A new room goes to the first shard, in
//! index order, whose projected load stays under [`crate::SfuConfig::shard_fill`]; when none
//! does, to the least loaded. Shard 0 comes first because it reads the media socket: its own
//! rooms are forwarded inline, while every other shard's datagrams are handed over and wake that
//! thread, one batch per shard per read. Measured at 100 sessions of 720p VP8 + Opus on two
//! shards (README "Performance"): splitting the rooms cost ~15 % more CPU per forwarded packet
//! than keeping them on shard 0, which used under half a core for all of them; the batches get
//! smaller and a second thread wakes for each. So rooms spread only once a shard is busy enough
//! for the second core to matter.
//!
//! The measurement lags (a room starts without media, and the load is read twice a second), so
//! rooms opened since the last sample count at the shard's average cost per room, at least
//! [`ROOM_COST_PERMILLE`]: a burst of new rooms (a ramp, a failover) spreads instead of piling
//! onto the shard whose last sample looked idle.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::metrics::EngineMetrics;

/// How often a shard measures its CPU use.
pub(crate) const LOAD_PERIOD: Duration = Duration::from_millis(500);
/// What a room is assumed to cost until measured, in thousandths of a core: 720p VP8 + Opus
/// both ways took 0.4–0.46 % of a core per session at 100 sessions on the project's machine.
pub(crate) const ROOM_COST_PERMILLE: u64 = 5;

/// What the calling thread has had from the scheduler so far: time on a CPU, and time ready to
/// run but waiting for one (run-queue delay). One read of `/proc/thread-self/schedstat` (its
/// first two fields, in nanoseconds); `None` where the kernel does not offer it.
#[derive(Debug, Clone, Copy)]
struct ThreadTimes {
    ran: Duration,
    waited: Duration,
}

fn thread_times() -> Option<ThreadTimes> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = stat.split_whitespace().map(|f| f.parse().ok());
    Some(ThreadTimes {
        ran: Duration::from_nanos(fields.next()??),
        waited: Duration::from_nanos(fields.next()??),
    })
}

/// A shard's own measurement of its thread's CPU use (lives in its engine).
pub(crate) struct LoadSampler {
    next: Instant,
    since: Instant,
    times_since: Option<ThreadTimes>,
}

/// `part` of `wall` in thousandths.
fn permille(part: Duration, wall: Duration) -> u64 {
    (part.as_secs_f64() / wall.as_secs_f64() * 1000.0).round() as u64
}

impl LoadSampler {
    /// Made on the shard's own thread: the figures are per thread.
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        LoadSampler {
            next: now + LOAD_PERIOD,
            since: now,
            times_since: thread_times(),
        }
    }

    /// Publishes the shares of the time since the last sample that the thread ran and waited
    /// to run, once a period has passed. Called on the thread that made the sampler.
    pub(crate) fn sample_if_due(&mut self, now: Instant, rooms: usize, metrics: &EngineMetrics) {
        if now < self.next {
            return;
        }
        let times = thread_times();
        let wall = now.saturating_duration_since(self.since);
        if let (Some(t), Some(before)) = (times, self.times_since)
            && !wall.is_zero()
        {
            let ran = permille(t.ran.saturating_sub(before.ran), wall);
            let waited = permille(t.waited.saturating_sub(before.waited), wall);
            metrics.cpu_permille.store(ran, Ordering::Relaxed);
            metrics.wait_permille.store(waited, Ordering::Relaxed);
            metrics
                .rooms_at_sample
                .store(rooms as u64, Ordering::Relaxed);
        }
        self.times_since = times;
        self.since = now;
        self.next = now + LOAD_PERIOD;
    }
}

/// What placement knows of one shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ShardLoad {
    /// Rooms placed on it now (the handle's count, which runs ahead of the shard's).
    pub(crate) rooms: usize,
    /// Its last sample: the CPU it asked for (ran, plus waited to run) in thousandths of a
    /// core, and its rooms then.
    pub(crate) demand_permille: u64,
    pub(crate) rooms_at_sample: usize,
}

impl ShardLoad {
    /// A shard's demand counts the time its thread waited for a CPU as well as the time it ran:
    /// on a machine whose cores are busy with other work a thread gets its fair share and no
    /// more, and one shard taking every room then falls behind (measured: 100 sessions on one
    /// shard beside two compilers and the load generator waited 19 ms per packet at the median
    /// and lost 1–2 %, where two shards kept 2–3 ms). Waiting pushes the shard over the fill
    /// and rooms spread, which gives the SFU a second thread's share of the machine.
    pub(crate) fn read(metrics: &EngineMetrics, rooms: usize) -> Self {
        ShardLoad {
            rooms,
            demand_permille: metrics.cpu_permille.load(Ordering::Relaxed)
                + metrics.wait_permille.load(Ordering::Relaxed),
            rooms_at_sample: metrics.rooms_at_sample.load(Ordering::Relaxed) as usize,
        }
    }

    /// What one more room is expected to cost on this shard.
    fn room_cost(&self) -> u64 {
        if self.rooms_at_sample == 0 {
            return ROOM_COST_PERMILLE;
        }
        (self.demand_permille / self.rooms_at_sample as u64).max(ROOM_COST_PERMILLE)
    }

    /// The measured load plus the rooms placed since the sample.
    fn projected(&self) -> u64 {
        let unmeasured = self.rooms.saturating_sub(self.rooms_at_sample) as u64;
        self.demand_permille + unmeasured * self.room_cost()
    }
}

/// [`crate::SfuConfig::shard_fill`] in thousandths of a core: within 0..=1 (a thread uses at
/// most one core); anything else (NaN) is the default.
pub(crate) fn fill_permille(fill: f64) -> u64 {
    let fill = if fill.is_nan() {
        crate::DEFAULT_SHARD_FILL
    } else {
        fill.clamp(0.0, 1.0)
    };
    (fill * 1000.0).round() as u64
}

/// The shard for a new room: the first whose projected load with the room stays within
/// `fill_permille`, else the least loaded (fewest rooms on a tie, then the lowest index).
pub(crate) fn place(shards: &[ShardLoad], fill_permille: u64) -> usize {
    if let Some(first) = shards
        .iter()
        .position(|s| s.projected() + s.room_cost() <= fill_permille)
    {
        return first;
    }
    (0..shards.len())
        .min_by_key(|&i| (shards[i].projected(), shards[i].rooms))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(rooms: usize, demand_permille: u64, rooms_at_sample: usize) -> ShardLoad {
        ShardLoad {
            rooms,
            demand_permille,
            rooms_at_sample,
        }
    }

    #[test]
    fn rooms_fill_the_reading_shard_until_it_is_busy() {
        // 100 rooms using 0.4 of a core: shard 0 still takes the next one.
        assert_eq!(place(&[shard(100, 400, 100), shard(0, 1, 0)], 500), 0);
        // Near the limit it does not.
        assert_eq!(place(&[shard(124, 496, 124), shard(0, 1, 0)], 500), 1);
        // Both full: the least loaded.
        assert_eq!(place(&[shard(150, 700, 150), shard(140, 650, 140)], 500), 1);
    }

    #[test]
    fn rooms_opened_since_the_sample_count_before_they_are_measured() {
        // The sample saw 10 rooms using 6 per mille each; 90 more were placed since (a burst):
        // counted at that cost they fill shard 0, so the next room goes to shard 1.
        let burst = shard(100, 60, 10);
        assert_eq!(burst.projected(), 60 + 90 * 6);
        assert_eq!(place(&[burst, shard(0, 0, 0)], 500), 1);
        // Rooms that looked idle when sampled count at least the assumed cost.
        assert_eq!(shard(100, 20, 10).projected(), 20 + 90 * ROOM_COST_PERMILLE);
        // Rooms that went since the sample do not count below the measurement.
        assert_eq!(shard(3, 60, 10).projected(), 60);
    }

    #[test]
    fn a_fill_of_zero_spreads_from_the_first_room() {
        let mut shards = [shard(0, 0, 0), shard(0, 0, 0)];
        let mut placed = Vec::new();
        for _ in 0..4 {
            let s = place(&shards, 0);
            shards[s].rooms += 1;
            placed.push(s);
        }
        assert_eq!(placed, [0, 1, 0, 1]);
    }

    #[test]
    fn waiting_for_a_cpu_counts_as_load() {
        let metrics = EngineMetrics::default();
        metrics.cpu_permille.store(300, Ordering::Relaxed);
        metrics.rooms_at_sample.store(60, Ordering::Relaxed);
        metrics.wait_permille.store(10, Ordering::Relaxed);
        let quiet = ShardLoad::read(&metrics, 60);
        assert_eq!(quiet.demand_permille, 310);
        assert_eq!(place(&[quiet, shard(0, 0, 0)], 500), 0);
        // The same work on a machine whose cores are taken: the shard waits, rooms spread.
        metrics.wait_permille.store(250, Ordering::Relaxed);
        assert_eq!(
            place(&[ShardLoad::read(&metrics, 60), shard(0, 0, 0)], 500),
            1
        );
    }

    #[test]
    fn the_thread_clock_counts_this_thread_s_work() {
        let metrics = EngineMetrics::default();
        let mut sampler = LoadSampler::new();
        // Busy for a while, then a sample over the busy stretch.
        let busy = Instant::now();
        let mut x = 0u64;
        while busy.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let end = Instant::now();
        sampler.next = end;
        sampler.sample_if_due(end, 3, &metrics);
        if cfg!(target_os = "linux") {
            // One thread uses at most one core (rounding aside).
            let permille = metrics.cpu_permille.load(Ordering::Relaxed);
            assert!((1..=1001).contains(&permille), "{permille}");
            assert_eq!(metrics.rooms_at_sample.load(Ordering::Relaxed), 3);
        }
    }
}
