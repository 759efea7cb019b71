//! Sampling once a second, and the outputs: the summary table, the JSON file, the SVG chart and
//! the progress bar.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::{Direction, Stats, quantile};
use crate::sys;

/// One second of the run.
#[derive(Clone, Serialize)]
pub struct Point {
    pub t: f64,
    pub sessions: u64,
    pub server_cpu_pct: Option<f64>,
    pub generator_cpu_pct: f64,
    pub server_rss_mb: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub loss_pct: f64,
    pub forwarded_packets_per_s: f64,
    pub received_bytes_per_s: f64,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    at: Option<Instant>,
    server_cpu: f64,
    generator_cpu: f64,
    received: u64,
    expected: u64,
    received_bytes: u64,
    latency_len: usize,
    live_sum: u64,
    points: usize,
}

/// A measuring window: the hold phase of a run, or one capacity-search step.
#[derive(Clone, Serialize)]
pub struct Window {
    pub seconds: f64,
    pub sessions_avg: f64,
    pub forwarded_packets: u64,
    pub forwarded_packets_per_s: f64,
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_pct: Option<f64>,
    /// Forwarded packets (received by the simulated peers) per second of server CPU.
    pub packets_per_cpu_second: Option<f64>,
    pub generator_cpu_pct: f64,
    pub loss_pct: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub received_bytes_per_s: f64,
}

#[derive(Clone, Serialize)]
pub struct Step {
    pub sessions: usize,
    pub live: usize,
    pub ok: bool,
    pub window: Window,
}

pub struct Sampler {
    stats: Arc<Stats>,
    pid: Option<u32>,
    start: Instant,
    next: Instant,
    last: Totals,
    latency: Vec<u32>,
    rss_max: u64,
    pub timeline: Vec<Point>,
    pub steps: Vec<Step>,
}

fn received(stats: &Stats) -> (u64, u64, u64) {
    let ds: [&Direction; 3] = [&stats.video, &stats.customer_audio, &stats.technician_audio];
    ds.iter().fold((0, 0, 0), |(r, e, b), d| {
        (
            r + d.received_packets.load(Relaxed),
            e + d.expected.load(Relaxed),
            b + d.received_bytes.load(Relaxed),
        )
    })
}

fn loss_pct(received: u64, expected: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        100.0 * expected.saturating_sub(received) as f64 / expected as f64
    }
}

fn ms(micros: Option<u32>) -> Option<f64> {
    micros.map(|m| f64::from(m) / 1000.0)
}

impl Sampler {
    pub fn new(stats: Arc<Stats>, pid: Option<u32>) -> Sampler {
        let now = Instant::now();
        let mut s = Sampler {
            stats,
            pid,
            start: now,
            next: now + Duration::from_secs(1),
            last: Totals::default(),
            latency: Vec::new(),
            rss_max: 0,
            timeline: Vec::new(),
            steps: Vec::new(),
        };
        s.last = s.totals();
        s
    }

    fn totals(&self) -> Totals {
        let (received, expected, received_bytes) = received(&self.stats);
        Totals {
            at: Some(Instant::now()),
            server_cpu: sys::sample(self.pid).map_or(0.0, |s| s.cpu_seconds),
            generator_cpu: sys::sample(None).map_or(0.0, |s| s.cpu_seconds),
            received,
            expected,
            received_bytes,
            latency_len: self.latency.len(),
            live_sum: self.timeline.iter().map(|p| p.sessions).sum(),
            points: self.timeline.len(),
        }
    }

    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Takes one point of the timeline.
    pub fn sample(&mut self) {
        self.next += Duration::from_secs(1);
        let mut fresh =
            std::mem::take(&mut *self.stats.latency.lock().unwrap_or_else(|p| p.into_inner()));
        self.latency.extend_from_slice(&fresh);
        fresh.sort_unstable();
        let now = self.totals();
        let dt = now
            .at
            .zip(self.last.at)
            .map_or(1.0, |(a, b)| (a - b).as_secs_f64().max(1e-3));
        let server = sys::sample(self.pid);
        if let Some(s) = server {
            self.rss_max = self.rss_max.max(s.rss_bytes);
        }
        self.timeline.push(Point {
            t: (Instant::now() - self.start).as_secs_f64(),
            sessions: self.stats.sessions_live.load(Relaxed),
            server_cpu_pct: server.map(|_| 100.0 * (now.server_cpu - self.last.server_cpu) / dt),
            generator_cpu_pct: 100.0 * (now.generator_cpu - self.last.generator_cpu) / dt,
            server_rss_mb: server.map(|s| s.rss_bytes as f64 / 1e6),
            latency_p50_ms: ms(quantile(&fresh, 0.5)),
            latency_p99_ms: ms(quantile(&fresh, 0.99)),
            loss_pct: loss_pct(
                now.received - self.last.received,
                now.expected - self.last.expected,
            ),
            forwarded_packets_per_s: (now.received - self.last.received) as f64 / dt,
            received_bytes_per_s: (now.received_bytes - self.last.received_bytes) as f64 / dt,
        });
        self.last = self.totals();
    }

    /// The start of a measuring window.
    pub fn mark(&mut self) -> MarkAt {
        MarkAt(self.totals())
    }

    pub fn window_since(&mut self, mark: MarkAt) -> Window {
        let a = mark.0;
        let b = self.totals();
        let seconds =
            b.at.zip(a.at)
                .map_or(0.0, |(b, a)| (b - a).as_secs_f64().max(1e-3));
        let mut lat = self.latency[a.latency_len.min(self.latency.len())..].to_vec();
        lat.sort_unstable();
        let forwarded = b.received - a.received;
        let server_cpu = self.pid.map(|_| b.server_cpu - a.server_cpu);
        let points = (b.points - a.points).max(1);
        Window {
            seconds,
            sessions_avg: (b.live_sum - a.live_sum) as f64 / points as f64,
            forwarded_packets: forwarded,
            forwarded_packets_per_s: forwarded as f64 / seconds,
            server_cpu_seconds: server_cpu,
            server_cpu_pct: server_cpu.map(|c| 100.0 * c / seconds),
            packets_per_cpu_second: server_cpu
                .filter(|c| *c > 0.0)
                .map(|c| forwarded as f64 / c),
            generator_cpu_pct: 100.0 * (b.generator_cpu - a.generator_cpu) / seconds,
            loss_pct: loss_pct(forwarded, b.expected - a.expected),
            p50_ms: ms(quantile(&lat, 0.5)),
            p99_ms: ms(quantile(&lat, 0.99)),
            max_ms: ms(lat.last().copied()),
            received_bytes_per_s: (b.received_bytes - a.received_bytes) as f64 / seconds,
        }
    }

    pub fn finish(mut self, setup: Setup) -> Run {
        let stats = self.stats.clone();
        let mut setup_ms = stats
            .setup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        setup_ms.sort_by(f64::total_cmp);
        self.latency.extend(
            stats
                .latency
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..),
        );
        self.latency.sort_unstable();
        let direction = |name: &str, d: &Direction| DirectionReport {
            direction: name.to_owned(),
            sent_packets: d.sent_packets.load(Relaxed),
            received_packets: d.received_packets.load(Relaxed),
            loss_pct: loss_pct(d.received_packets.load(Relaxed), d.expected.load(Relaxed)),
            jitter_ms: {
                let n = d.jitter_streams.load(Relaxed);
                (n > 0).then(|| d.jitter_micros_sum.load(Relaxed) as f64 / n as f64 / 1000.0)
            },
            sent_bytes: d.sent_bytes.load(Relaxed),
            received_bytes: d.received_bytes.load(Relaxed),
        };
        Run {
            setup,
            sessions_started: stats.sessions_started.load(Relaxed),
            sessions_failed: stats.sessions_failed.load(Relaxed),
            sessions_sustained_max: self.timeline.iter().map(|p| p.sessions).max().unwrap_or(0),
            setup_ms: Percentiles {
                n: setup_ms.len(),
                p50: quantile(&setup_ms, 0.5),
                p95: quantile(&setup_ms, 0.95),
                p99: quantile(&setup_ms, 0.99),
                max: setup_ms.last().copied(),
            },
            latency_ms: Percentiles {
                n: self.latency.len(),
                p50: ms(quantile(&self.latency, 0.5)),
                p95: ms(quantile(&self.latency, 0.95)),
                p99: ms(quantile(&self.latency, 0.99)),
                max: ms(self.latency.last().copied()),
            },
            directions: vec![
                direction("phone video → technician", &stats.video),
                direction("phone audio → technician", &stats.customer_audio),
                direction("technician audio → phone", &stats.technician_audio),
            ],
            server_rss_max_mb: (self.rss_max > 0).then(|| self.rss_max as f64 / 1e6),
            steps: self.steps,
            timeline: self.timeline,
            errors: stats
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

pub struct MarkAt(Totals);

#[derive(Serialize)]
pub struct Setup {
    pub target: String,
    pub server: String,
    pub server_pid: Option<u32>,
    /// The CPUs the server and this generator were allowed (`Cpus_allowed_list`).
    pub server_cpus: Option<String>,
    pub generator_cpus: Option<String>,
    /// The machine's 1-, 5- and 15-minute load averages when the run ended.
    pub load_average: Option<[f64; 3]>,
    /// The processor model and CPU count (`/proc/cpuinfo`).
    pub machine: Option<String>,
    pub profile: String,
    /// The camera's codec: "vp8" or "h264".
    pub codec: String,
    pub audio: bool,
    pub sessions: usize,
    pub ramp_per_second: f64,
    pub hold_seconds: f64,
    pub capacity_search: bool,
    pub elapsed_seconds: f64,
    /// The most sessions held: all live through the hold (or, in capacity mode, the last step that
    /// kept loss ≤ 0.5 % and p99 ≤ 50 ms).
    pub most_sessions_held: usize,
    /// The hold window (or the last passing capacity step).
    pub window: Option<Window>,
    pub video_kbps: f64,
}

#[derive(Serialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Serialize)]
pub struct DirectionReport {
    pub direction: String,
    pub sent_packets: u64,
    pub received_packets: u64,
    pub loss_pct: f64,
    pub jitter_ms: Option<f64>,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

#[derive(Serialize)]
pub struct Run {
    pub setup: Setup,
    pub sessions_started: u64,
    pub sessions_failed: u64,
    pub sessions_sustained_max: u64,
    pub setup_ms: Percentiles,
    pub latency_ms: Percentiles,
    pub directions: Vec<DirectionReport>,
    pub server_rss_max_mb: Option<f64>,
    pub steps: Vec<Step>,
    pub timeline: Vec<Point>,
    pub errors: Vec<String>,
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// The summary table on stdout.
pub fn print(run: &Run) {
    let s = &run.setup;
    println!();
    println!(
        "== {} ({}) — {} sessions requested, {} {}{}, ramp {}/s, hold {:.0} s{}",
        s.target,
        s.server,
        s.sessions,
        s.profile,
        s.codec,
        if s.audio { " + Opus both ways" } else { "" },
        s.ramp_per_second,
        s.hold_seconds,
        if s.capacity_search {
            " (capacity search)"
        } else {
            ""
        }
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| machine | {} |", s.machine.as_deref().unwrap_or("-"));
    println!(
        "| CPUs: server / generator; load average at the end (1, 5, 15 min) | {} / {}; {} |",
        s.server_cpus.as_deref().unwrap_or("-"),
        s.generator_cpus.as_deref().unwrap_or("-"),
        s.load_average.map_or("-".into(), |l| format!(
            "{:.2}, {:.2}, {:.2}",
            l[0], l[1], l[2]
        ))
    );
    println!(
        "| sessions started / failed / most held | {} / {} / {} |",
        run.sessions_started, run.sessions_failed, s.most_sessions_held
    );
    println!(
        "| set-up, PIN → first video packet (ms) p50 / p95 / p99 (n) | {} / {} / {} ({}) |",
        f(run.setup_ms.p50, 0),
        f(run.setup_ms.p95, 0),
        f(run.setup_ms.p99, 0),
        run.setup_ms.n
    );
    println!(
        "| forwarding latency, whole run (ms) p50 / p99 / max | {} / {} / {} |",
        f(run.latency_ms.p50, 2),
        f(run.latency_ms.p99, 2),
        f(run.latency_ms.max, 1)
    );
    if let Some(w) = &s.window {
        println!(
            "| measured window | {:.0} s, {:.0} sessions on average |",
            w.seconds, w.sessions_avg
        );
        println!(
            "| window latency (ms) p50 / p99 / max | {} / {} / {} |",
            f(w.p50_ms, 2),
            f(w.p99_ms, 2),
            f(w.max_ms, 1)
        );
        println!(
            "| forwarded packets/s, received Mbit/s | {:.0}, {:.1} |",
            w.forwarded_packets_per_s,
            w.received_bytes_per_s * 8.0 / 1e6
        );
        println!(
            "| server CPU (% of one core), forwarded packets per CPU-second | {}, {} |",
            f(w.server_cpu_pct, 0),
            f(w.packets_per_cpu_second, 0)
        );
        println!(
            "| generator CPU (% of one core) | {:.0} |",
            w.generator_cpu_pct
        );
        println!("| window loss | {:.3} % |", w.loss_pct);
    }
    println!("| server RSS max (MB) | {} |", f(run.server_rss_max_mb, 1));
    for d in &run.directions {
        if d.sent_packets == 0 {
            continue;
        }
        println!(
            "| {}: sent / received, loss, jitter | {} / {}, {:.3} %, {} ms |",
            d.direction,
            d.sent_packets,
            d.received_packets,
            d.loss_pct,
            f(d.jitter_ms, 2)
        );
    }
    for st in &run.steps {
        println!(
            "| capacity step {} sessions ({} live) | {}: loss {:.3} %, p99 {} ms, {} packets/CPU-s |",
            st.sessions,
            st.live,
            if st.ok { "held" } else { "FAILED" },
            st.window.loss_pct,
            f(st.window.p99_ms, 2),
            f(st.window.packets_per_cpu_second, 0)
        );
    }
    if !run.errors.is_empty() {
        println!("errors ({}):", run.errors.len());
        for e in run.errors.iter().take(5) {
            println!("  {e}");
        }
    }
}

#[derive(Serialize)]
struct Comparison {
    target: String,
    packets_per_cpu_second: Option<f64>,
    most_sessions_held: usize,
    /// This target's figure divided by the Lens server's.
    packets_per_cpu_second_ratio_to_lens: Option<f64>,
    most_sessions_held_ratio_to_lens: Option<f64>,
    /// This target's figure divided by the bare UDP forwarder's.
    packets_per_cpu_second_ratio_to_udp_forwarder: Option<f64>,
    most_sessions_held_ratio_to_udp_forwarder: Option<f64>,
}

fn packets_per_cpu_second(r: &Run) -> Option<f64> {
    r.setup
        .window
        .as_ref()
        .and_then(|w| w.packets_per_cpu_second)
}

/// `r`'s packets per CPU-second and most sessions held, each divided by `base`'s.
fn ratios(r: &Run, base: Option<&Run>) -> (Option<f64>, Option<f64>) {
    let Some(base) = base else {
        return (None, None);
    };
    (
        packets_per_cpu_second(base)
            .zip(packets_per_cpu_second(r))
            .map(|(b, x)| x / b),
        (base.setup.most_sessions_held > 0)
            .then(|| r.setup.most_sessions_held as f64 / base.setup.most_sessions_held as f64),
    )
}

fn comparisons(runs: &[Run]) -> Vec<Comparison> {
    let find = |name: &str| runs.iter().find(|r| r.setup.target == name);
    let (lens, udp) = (find("lens"), find("udp-forwarder"));
    runs.iter()
        .map(|r| {
            let (ppcs_lens, held_lens) = ratios(r, lens);
            let (ppcs_udp, held_udp) = ratios(r, udp);
            Comparison {
                target: r.setup.target.clone(),
                packets_per_cpu_second: packets_per_cpu_second(r),
                most_sessions_held: r.setup.most_sessions_held,
                packets_per_cpu_second_ratio_to_lens: ppcs_lens,
                most_sessions_held_ratio_to_lens: held_lens,
                packets_per_cpu_second_ratio_to_udp_forwarder: ppcs_udp,
                most_sessions_held_ratio_to_udp_forwarder: held_udp,
            }
        })
        .collect()
}

/// Writes `report.json` and `report.svg` into `dir`; returns the JSON path.
pub fn write(dir: &Path, runs: &[Run]) -> anyhow::Result<PathBuf> {
    let cmp = comparisons(runs);
    if runs.len() > 1 {
        println!();
        println!(
            "| target | packets per CPU-second | ÷ lens | ÷ UDP forwarder | most sessions held | ÷ lens | ÷ UDP forwarder |"
        );
        println!("|---|---|---|---|---|---|---|");
        for c in &cmp {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                c.target,
                f(c.packets_per_cpu_second, 0),
                f(c.packets_per_cpu_second_ratio_to_lens, 2),
                f(c.packets_per_cpu_second_ratio_to_udp_forwarder, 2),
                c.most_sessions_held,
                f(c.most_sessions_held_ratio_to_lens, 2),
                f(c.most_sessions_held_ratio_to_udp_forwarder, 2)
            );
        }
    }
    let json = dir.join("report.json");
    std::fs::write(
        &json,
        serde_json::to_vec_pretty(&serde_json::json!({"runs": runs, "comparison": cmp}))?,
    )?;
    let svg = dir.join("report.svg");
    chart(&svg, runs)?;
    eprintln!("wrote {}", svg.display());
    Ok(json)
}

/// Sessions, CPU and latency over time, one column per target.
fn chart(path: &Path, runs: &[Run]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let width = 640 * runs.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let columns = root.split_evenly((1, runs.len().max(1)));
    for (run, area) in runs.iter().zip(columns) {
        let rows = area.split_evenly((3, 1));
        let tl = &run.timeline;
        let t_max = tl.last().map_or(1.0, |p| p.t).max(1.0);
        let title = |what: &str| format!("{} — {what}", run.setup.target);

        let s_max = tl.iter().map(|p| p.sessions).max().unwrap_or(1).max(1) as f64;
        let mut c = ChartBuilder::on(&rows[0])
            .caption(title("live sessions"), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..t_max, 0.0..s_max * 1.1)?;
        c.configure_mesh().x_desc("s").draw()?;
        c.draw_series(LineSeries::new(
            tl.iter().map(|p| (p.t, p.sessions as f64)),
            &BLUE,
        ))?;

        let cpu_max = tl
            .iter()
            .flat_map(|p| [p.server_cpu_pct.unwrap_or(0.0), p.generator_cpu_pct])
            .fold(10.0, f64::max);
        let mut c = ChartBuilder::on(&rows[1])
            .caption(title("CPU, % of one core"), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..t_max, 0.0..cpu_max * 1.1)?;
        c.configure_mesh().x_desc("s").draw()?;
        c.draw_series(LineSeries::new(
            tl.iter().filter_map(|p| Some((p.t, p.server_cpu_pct?))),
            &RED,
        ))?
        .label("server")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
        c.draw_series(LineSeries::new(
            tl.iter().map(|p| (p.t, p.generator_cpu_pct)),
            &GREEN,
        ))?
        .label("generator")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREEN));
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;

        let l_max = tl
            .iter()
            .filter_map(|p| p.latency_p99_ms)
            .fold(1.0, f64::max);
        let mut c = ChartBuilder::on(&rows[2])
            .caption(title("forwarding latency, ms"), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..t_max, 0.0..l_max * 1.1)?;
        c.configure_mesh().x_desc("s").draw()?;
        c.draw_series(LineSeries::new(
            tl.iter().filter_map(|p| Some((p.t, p.latency_p50_ms?))),
            &BLUE,
        ))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        c.draw_series(LineSeries::new(
            tl.iter().filter_map(|p| Some((p.t, p.latency_p99_ms?))),
            &MAGENTA,
        ))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], MAGENTA));
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

pub fn bar(args: &crate::RunArgs, target: &str) -> indicatif::ProgressBar {
    if args.quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix}: {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix(target.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

pub fn update_bar(bar: &indicatif::ProgressBar, s: &Sampler) {
    if let Some(p) = s.timeline.last() {
        bar.set_message(format!(
            "{} sessions live, {:.0} pkt/s forwarded, server CPU {}%, generator CPU {:.0}%, p99 {} ms, loss {:.2}%",
            p.sessions,
            p.forwarded_packets_per_s,
            f(p.server_cpu_pct, 0),
            p.generator_cpu_pct,
            f(p.latency_p99_ms, 1),
            p.loss_pct
        ));
    }
}
