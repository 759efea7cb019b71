//! Mixing CPU per recorded session: both talkers' 20 ms Opus frames decoded, mixed, soft-clipped
//! and encoded again, as the recorder's task does it. Prints CPU time of this thread (not wall
//! time: the machine may be busy) per second of session.
//!
//! `cargo bench -p recording --bench mix` (release build).

use std::time::{Duration, Instant};

use recording::Source;
use recording::depacketize::Frame;
use recording::mix::{FRAME, Mixer};
use recording::opus::Encoder;

/// Seconds of session per run.
const SESSION: usize = 60;

/// CPU time of the calling thread (Linux: /proc/thread-self/schedstat, nanoseconds on CPU).
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = s
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// A talker: a voice-like signal (a gliding tone with a little noise) as WebRTC-sized packets.
fn talker(hz: f32, frames: usize) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(32_000, 9).expect("encoder");
    let mut noise = 0x1234_5678u32;
    (0..frames)
        .map(|k| {
            let pcm: Vec<f32> = (0..FRAME)
                .map(|i| {
                    let t = (k * FRAME + i) as f32 / 48_000.0;
                    noise ^= noise << 13;
                    noise ^= noise >> 17;
                    noise ^= noise << 5;
                    let f = hz * (1.0 + 0.2 * (t * 0.7).sin());
                    0.3 * (2.0 * std::f32::consts::PI * f * t).sin()
                        + 0.02 * (noise as f32 / u32::MAX as f32 - 0.5)
                })
                .collect();
            enc.encode(&pcm).expect("encode")
        })
        .collect()
}

fn main() {
    let frames = SESSION * 50;
    let customer = talker(220.0, frames);
    let technician = talker(330.0, frames);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let cpu0 = thread_cpu();
        let mut mixer = Mixer::new(t0).expect("mixer");
        mixer.anchor(Source::Customer, 0, 0);
        let mut bytes = 0;
        for k in 0..frames {
            let arrival = t0 + Duration::from_millis(20 * k as u64);
            for (source, packets) in [
                (Source::Customer, &customer),
                (Source::Technician, &technician),
            ] {
                let f = Frame {
                    timestamp: (k * FRAME) as i64,
                    data: packets[k].clone(),
                    keyframe: true,
                    after_loss: false,
                    muted: false,
                    arrival,
                };
                mixer.push(source, &f);
            }
            for m in mixer.ready(false).expect("mix") {
                bytes += m.data.len();
            }
        }
        bytes += mixer
            .ready(true)
            .expect("mix")
            .iter()
            .map(|m| m.data.len())
            .sum::<usize>();
        let cpu = thread_cpu() - cpu0;
        runs.push(cpu);
        eprintln!(
            "run: {:.0} ms CPU for {SESSION} s of two voices ({bytes} bytes of Opus out)",
            cpu.as_secs_f64() * 1000.0
        );
    }
    runs.sort();
    let median = runs[1].as_secs_f64();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "mixing both voices: {:.1} ms CPU per second of session ({:.2} % of one core), median of 3 runs of {SESSION} s; load average {}",
        median * 1000.0 / SESSION as f64,
        median * 100.0 / SESSION as f64,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
