//! What the run measures, shared by every simulated peer: relaxed atomic counters, and latency
//! samples that peers batch locally and hand over in bulk (one lock per batch, not per packet).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::media::{Stream, read_stamp};

/// One direction of media: packets and bytes sent and received, and the loss seen by receivers.
#[derive(Default)]
pub struct Direction {
    pub sent_packets: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub received_packets: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Packets the receivers expected from the counters they saw (highest − first + 1).
    pub expected: AtomicU64,
    /// Sum of the receivers' RFC 3550 jitter (µs), and how many streams it sums.
    pub jitter_micros_sum: AtomicU64,
    pub jitter_streams: AtomicU64,
}

#[derive(Default)]
pub struct Stats {
    pub video: Direction,
    pub customer_audio: Direction,
    pub technician_audio: Direction,
    /// Latency samples (µs) since the sampler last took them.
    pub latency: Mutex<Vec<u32>>,
    /// Set-up times (ms): PIN entered → first video packet at the technician.
    pub setup: Mutex<Vec<f64>>,
    pub sessions_started: AtomicU64,
    pub sessions_live: AtomicU64,
    pub sessions_failed: AtomicU64,
    pub errors: Mutex<Vec<String>>,
}

impl Stats {
    pub fn direction(&self, stream: Stream) -> &Direction {
        match stream {
            Stream::Video => &self.video,
            Stream::CustomerAudio => &self.customer_audio,
            Stream::TechnicianAudio => &self.technician_audio,
        }
    }

    pub fn sent(&self, stream: Stream, bytes: usize) {
        let d = self.direction(stream);
        d.sent_packets.fetch_add(1, Relaxed);
        d.sent_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// Waits (at most `STEP`) for a session's first video packet at the technician, records the
    /// set-up time from `t0` and counts the session live.
    pub async fn first_video(
        &self,
        t0: std::time::Instant,
        first: tokio::sync::oneshot::Receiver<std::time::Instant>,
    ) -> anyhow::Result<()> {
        let step = crate::ws::STEP;
        let first = tokio::time::timeout(step, first)
            .await
            .map_err(|_| anyhow::anyhow!("no video at the technician within {step:?}"))?
            .map_err(|_| anyhow::anyhow!("the technician's peer stopped before video"))?;
        self.setup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((first - t0).as_secs_f64() * 1000.0);
        self.sessions_live.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < 100 {
            errors.push(e);
        }
    }
}

/// One received stream's loss and jitter state (RFC 3550 §6.4.1, A.8).
#[derive(Default)]
struct StreamRx {
    highest: Option<u32>,
    /// Previous (arrival µs, RTP time) for the jitter estimate.
    last: Option<(u64, u32)>,
    /// Jitter in RTP clock units, ×16 as in the RFC's integer form.
    jitter16: u64,
    clock_rate: u32,
}

/// What one receiving peer keeps between flushes.
pub struct Receiver {
    streams: [StreamRx; 3],
    latency: Vec<u32>,
}

impl Default for Receiver {
    fn default() -> Self {
        let mut streams: [StreamRx; 3] = Default::default();
        streams[0].clock_rate = 90_000;
        streams[1].clock_rate = 48_000;
        streams[2].clock_rate = 48_000;
        Receiver {
            streams,
            latency: Vec::with_capacity(512),
        }
    }
}

fn index(s: Stream) -> usize {
    match s {
        Stream::Video => 0,
        Stream::CustomerAudio => 1,
        Stream::TechnicianAudio => 2,
    }
}

impl Receiver {
    /// Accounts one received payload; returns its stream when it carried a stamp.
    pub fn on_payload(&mut self, stats: &Stats, payload: &[u8], rtp_time: u32) -> Option<Stream> {
        let (stream, counter, micros) = read_stamp(payload)?;
        let d = stats.direction(stream);
        d.received_packets.fetch_add(1, Relaxed);
        d.received_bytes.fetch_add(payload.len() as u64, Relaxed);
        let rx = &mut self.streams[index(stream)];
        match rx.highest {
            None => {
                d.expected.fetch_add(1, Relaxed);
                rx.highest = Some(counter);
            }
            Some(h) if counter > h => {
                d.expected.fetch_add(u64::from(counter - h), Relaxed);
                rx.highest = Some(counter);
            }
            _ => {}
        }
        let arrival = crate::media::now_micros();
        if let Some((a0, t0)) = rx.last {
            // Transit difference in RTP clock units.
            let da = (arrival - a0) as i64 * i64::from(rx.clock_rate) / 1_000_000;
            let dt = i64::from(rtp_time.wrapping_sub(t0) as i32);
            let d = (da - dt).unsigned_abs();
            rx.jitter16 = rx.jitter16 + d - ((rx.jitter16 + 8) >> 4);
        }
        rx.last = Some((arrival, rtp_time));
        self.latency.push(micros.min(u64::from(u32::MAX)) as u32);
        if self.latency.len() >= 256 {
            self.flush(stats);
        }
        Some(stream)
    }

    /// As `on_payload`, and tells `first_video` (once) when the first video packet arrives.
    pub fn on_packet(
        &mut self,
        stats: &Stats,
        payload: &[u8],
        rtp_time: u32,
        first_video: &mut Option<tokio::sync::oneshot::Sender<std::time::Instant>>,
    ) {
        if self.on_payload(stats, payload, rtp_time) == Some(Stream::Video)
            && let Some(tx) = first_video.take()
        {
            let _ = tx.send(std::time::Instant::now());
        }
    }

    pub fn flush(&mut self, stats: &Stats) {
        if self.latency.is_empty() {
            return;
        }
        stats
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&mut self.latency);
    }

    /// At the end: adds this receiver's final jitter per stream it received.
    pub fn finish(&mut self, stats: &Stats) {
        self.flush(stats);
        for (i, rx) in self.streams.iter().enumerate() {
            if rx.last.is_none() {
                continue;
            }
            let stream = [
                Stream::Video,
                Stream::CustomerAudio,
                Stream::TechnicianAudio,
            ][i];
            let micros = (rx.jitter16 >> 4) * 1_000_000 / u64::from(rx.clock_rate);
            let d = stats.direction(stream);
            d.jitter_micros_sum.fetch_add(micros, Relaxed);
            d.jitter_streams.fetch_add(1, Relaxed);
        }
    }
}

/// The q-quantile (0..=1) of sorted values.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}
