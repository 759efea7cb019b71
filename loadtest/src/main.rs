//! `loadtest`: simulated phones and technician consoles against a running Lens server (and, for
//! comparison, against a bare UDP forwarder with the same traffic). See README.md.

mod janus;
mod lens;
mod media;
mod peer;
mod report;
mod stack;
mod stats;
mod sys;
mod udp;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use crate::media::{Media, Profile, VideoCodec};
use crate::report::{Run, Sampler};
use crate::stats::Stats;

#[derive(Parser)]
#[command(name = "loadtest", about = "Load generator for Lens Relay")]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Sub {
    /// The bare UDP forwarder (started by the tool itself for `--target udp`).
    UdpForwarder {
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
    },
    /// Measures the generator's CPU per session on each client stack (str0m, webrtc-rs): the same
    /// sessions between two peers in this process, no server.
    ClientStack {
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "str0m,webrtc"
        )]
        stack: Vec<stack::Stack>,
        #[arg(long, default_value_t = 20)]
        sessions: usize,
        /// The measured window once all sessions are up.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, value_enum, default_value = "720p")]
        profile: Profile,
        #[arg(long)]
        audio: bool,
        #[arg(long, default_value = "loadtest-out")]
        out: PathBuf,
        #[arg(long, default_value = "loadtest-out/media")]
        media_dir: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Target {
    /// The Lens server at --server.
    Lens,
    /// A bare UDP forwarder the tool starts (plain RTP, no WebRTC).
    Udp,
    /// Janus' VideoRoom (Debian's `janus`), started by the tool with a generated configuration.
    Janus,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Lens => "lens",
            Target::Udp => "udp-forwarder",
            Target::Janus => "janus",
        }
    }
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// The Lens server's base URL; several nodes on one PostgreSQL as a comma-separated list
    /// (session i: its technician's console on node i mod n, its phone's socket on the next node,
    /// so that the phone's signaling is routed; the session goes where the nodes place it).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The server's pid, for CPU and memory from /proc (default: whoever listens on the URL's port).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Concurrent sessions (the most, in --capacity mode).
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// How long all sessions are held once the ramp is done (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Sessions started per second.
    #[arg(long, default_value = "10/s", value_parser = parse_rate)]
    ramp: f64,
    #[arg(long, value_enum, default_value = "720p")]
    profile: Profile,
    /// The phones' camera codec.
    #[arg(long, value_enum, default_value = "vp8")]
    codec: VideoCodec,
    /// Opus both ways (sets the technicians' group's audio on; off otherwise).
    #[arg(long)]
    audio: bool,
    /// Targets to run one after the other with the same traffic; ratios are reported to `lens`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "lens")]
    target: Vec<Target>,
    /// Capacity search: add --step sessions every --step-duration until loss > 0.5 % or
    /// p99 latency > 50 ms (or --sessions is reached).
    #[arg(long)]
    capacity: bool,
    #[arg(long, default_value_t = 20)]
    step: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    step_duration: Duration,
    /// The bootstrap (master) administrator, who creates the technicians.
    #[arg(
        long,
        env = "LENS_BOOTSTRAP_EMAIL",
        default_value = "admin@example.com"
    )]
    admin_email: String,
    #[arg(long, env = "LENS_BOOTSTRAP_PASSWORD", default_value = "")]
    admin_password: String,
    /// The simulated technicians' password (they are lt-tech-<n>@loadtest.invalid).
    #[arg(long, default_value = "Loadtest-Tech-Pass7")]
    tech_password: String,
    /// Where the JSON report and the SVG chart go.
    #[arg(long, default_value = "loadtest-out")]
    out: PathBuf,
    /// Cache of the ffmpeg-made media.
    #[arg(long, default_value = "loadtest-out/media")]
    media_dir: PathBuf,
    /// The address Janus and its peers use for ICE (`--target janus`; default: this machine's
    /// own IPv4 address, as Janus gathers no candidates on loopback interfaces).
    #[arg(long)]
    janus_ip: Option<std::net::IpAddr>,
    /// CPUs the servers this binary starts run on (the UDP forwarder and Janus), e.g. `0`. A Lens
    /// server you start yourself: start it on the same CPUs (`taskset -c 0 lens serve`); a
    /// warning says when its CPUs differ. With --generator-cpus on the others, the generator's
    /// own work does not make the server wait for a CPU. Each run's summary names both sets.
    #[arg(long, value_parser = sys::parse_cpus)]
    server_cpus: Option<sys::CpuList>,
    /// CPUs this generator runs on, e.g. `1` (set before any of its threads start).
    #[arg(long, value_parser = sys::parse_cpus)]
    generator_cpus: Option<sys::CpuList>,
    /// No progress bar (for tests and logs).
    #[arg(long)]
    quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("bad duration `{s}`"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in `{s}` (use ms, s or m)")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim_end_matches("/s")
        .parse()
        .map_err(|_| format!("bad rate `{s}` (e.g. 10/s)"))?;
    if n > 0.0 {
        Ok(n)
    } else {
        Err("the ramp must be positive".into())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        // No runtime: the forwarder is one plain thread.
        Some(Sub::UdpForwarder { bind }) => udp::forwarder(&bind),
        Some(Sub::ClientStack {
            stack,
            sessions,
            duration,
            profile,
            audio,
            out,
            media_dir,
        }) => runtime()?.block_on(async move {
            std::fs::create_dir_all(&out)?;
            // webrtc-rs' side of the comparison is set up for VP8 only.
            let media = Arc::new(Media::make(&media_dir, profile, VideoCodec::Vp8)?);
            let mut runs = Vec::new();
            for s in stack {
                eprintln!("client stack {s:?}: {sessions} sessions, {duration:?} measured");
                runs.push(stack::measure(s, sessions, duration, audio, media.clone()).await?);
            }
            stack::print(&runs);
            let path = out.join("client-stack.json");
            std::fs::write(&path, serde_json::to_vec_pretty(&runs)?)?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }),
        None => {
            let mut run = cli.run;
            if let Some(cpus) = &run.generator_cpus {
                // The servers this binary starts would inherit the generator's CPUs: without
                // --server-cpus they keep the ones this binary was given.
                if run.server_cpus.is_none() {
                    run.server_cpus =
                        sys::cpus_allowed(None).and_then(|list| sys::parse_cpus(&list).ok());
                }
                // Before the runtime exists, so that its threads inherit the set.
                cpus.pin_this_thread()?;
            }
            runtime()?.block_on(run_all(run))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn run_all(args: RunArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let media = Arc::new(Media::make(&args.media_dir, args.profile, args.codec)?);
    eprintln!(
        "media: {} {} frames ({:.2} Mbit/s, {:.0} packets/s), {} Opus packets (ffmpeg {}/libopus)",
        media.video.len(),
        args.codec.name(),
        media.video_bits_per_second() / 1e6,
        media.video_packets_per_second(),
        media.audio.len(),
        args.codec.encoder()
    );
    let mut runs = Vec::new();
    for target in args.target.clone() {
        let run = run_target(&args, target, media.clone()).await?;
        report::print(&run);
        runs.push(run);
    }
    let path = report::write(&args.out, &runs)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Where sessions go.
enum Backend {
    Lens {
        /// One per node; the first also sets up the administrator's group and technicians.
        apis: Vec<Arc<lens::Api>>,
        admin: String,
        group: i64,
        existing: Vec<String>,
    },
    Udp {
        addr: SocketAddr,
        child: std::process::Child,
    },
    Janus(janus::Janus),
}

async fn run_target(args: &RunArgs, target: Target, media: Arc<Media>) -> anyhow::Result<Run> {
    let (backend, pid) = match target {
        Target::Lens => {
            let apis: Vec<Arc<lens::Api>> = args
                .server
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| Arc::new(lens::Api::new(u)))
                .collect();
            let api = apis.first().context("--server: no URL")?.clone();
            let admin = api
                .login(&args.admin_email, &args.admin_password)
                .await?
                .context("the administrator cannot log in: pass --admin-email/--admin-password")?;
            let admin = admin["token"].as_str().context("token")?.to_owned();
            let group = api.group(&admin, "Load test").await?;
            api.set_audio(&admin, group, args.audio).await?;
            let existing = api.technician_emails(&admin).await?;
            let port = url_port(&api.base);
            let pid = args
                .server_pid
                .or_else(|| port.and_then(sys::pid_listening_on));
            if pid.is_none() {
                eprintln!("warning: server pid unknown: no server CPU/RSS (pass --server-pid)");
            } else if apis.len() > 1 {
                eprintln!("note: server CPU/RSS are those of the first node only");
            }
            (
                Backend::Lens {
                    apis,
                    admin,
                    group,
                    existing,
                },
                pid,
            )
        }
        Target::Udp => {
            let (child, addr) = udp::spawn_forwarder(args.server_cpus.as_ref())?;
            let pid = child.id();
            (Backend::Udp { addr, child }, Some(pid))
        }
        Target::Janus => {
            let j = janus::spawn(
                &args.out.join("janus"),
                args.janus_ip,
                args.server_cpus.as_ref(),
            )?;
            let pid = j.child.id();
            eprintln!("janus: pid {pid}, {}, log {}", j.url, j.log.display());
            (Backend::Janus(j), Some(pid))
        }
    };
    // Read while the server runs: a child's /proc entry is gone once the run has stopped it.
    let server_cpus = pid.and_then(|p| sys::cpus_allowed(Some(p)));
    // This binary starts the other targets on --server-cpus; a Lens server was started by the user.
    if let (Target::Lens, Some(want), Some(allowed)) = (target, &args.server_cpus, &server_cpus)
        && sys::parse_cpus(allowed).ok().as_ref() != Some(want)
    {
        eprintln!(
            "warning: --server-cpus {want}, but the Lens server runs on CPUs {allowed} \
             (start it with taskset -c {want})"
        );
    }
    let backend = Arc::new(tokio::sync::Mutex::new(backend));
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sampler = Sampler::new(stats.clone(), pid);
    let name = target.name();
    let bar = report::bar(args, name);

    let mut launched = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    let gap = Duration::from_secs_f64(1.0 / args.ramp);
    let launch_to = |n: usize, launched: &mut usize, tasks: &mut tokio::task::JoinSet<()>| {
        let from = *launched;
        for i in from..n {
            let backend = backend.clone();
            let media = media.clone();
            let stats = stats.clone();
            let stop = stop_rx.clone();
            let audio = args.audio;
            let password = args.tech_password.clone();
            tasks.spawn(async move {
                tokio::time::sleep(gap * (i - from) as u32).await;
                stats.sessions_started.fetch_add(1, Relaxed);
                let r = one_session(backend, i, audio, &password, media, stats.clone(), stop).await;
                if let Err(e) = r {
                    stats.sessions_failed.fetch_add(1, Relaxed);
                    stats.error(format!("session {i}: {e:#}"));
                }
            });
        }
        *launched = n;
    };

    let started = Instant::now();
    let mut held = 0usize;
    let mut window = None;
    if args.capacity {
        let mut target_n = args.step.min(args.sessions);
        loop {
            launch_to(target_n, &mut launched, &mut tasks);
            settle(&stats, target_n, &mut sampler, &bar).await;
            let at = sampler.mark();
            tick_for(args.step_duration, &mut sampler, &bar).await;
            let verdict = sampler.window_since(at);
            let ok = verdict.loss_pct <= 0.5
                && verdict.p99_ms.is_some_and(|p| p <= 50.0)
                && stats.sessions_live.load(Relaxed) as usize >= target_n;
            sampler.steps.push(report::Step {
                sessions: target_n,
                live: stats.sessions_live.load(Relaxed) as usize,
                ok,
                window: verdict.clone(),
            });
            if !ok {
                break;
            }
            held = target_n;
            window = Some(verdict);
            if target_n >= args.sessions {
                break;
            }
            target_n = (target_n + args.step).min(args.sessions);
        }
    } else {
        launch_to(args.sessions, &mut launched, &mut tasks);
        settle(&stats, args.sessions, &mut sampler, &bar).await;
        let at = sampler.mark();
        tick_for(args.duration, &mut sampler, &bar).await;
        let w = sampler.window_since(at);
        held = stats.sessions_live.load(Relaxed) as usize;
        window = Some(w);
    }
    let _ = stop_tx.send(true);
    let drain = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drain.is_err() {
        stats.error("some sessions did not end within 30 s".into());
        tasks.abort_all();
    }
    bar.finish_and_clear();
    match &mut *backend.lock().await {
        Backend::Udp { child, .. } | Backend::Janus(janus::Janus { child, .. }) => {
            let _ = child.kill();
            let _ = child.wait();
        }
        Backend::Lens { .. } => {}
    }
    Ok(sampler.finish(report::Setup {
        target: name.to_owned(),
        server: match target {
            Target::Lens => args.server.clone(),
            Target::Udp => "bare UDP forwarder (child process)".to_owned(),
            Target::Janus => "Janus VideoRoom (child process)".to_owned(),
        },
        server_pid: pid,
        server_cpus,
        generator_cpus: sys::cpus_allowed(None),
        load_average: sys::load_average(),
        machine: sys::machine(),
        profile: args.profile.name().to_owned(),
        codec: args.codec.name().to_owned(),
        audio: args.audio,
        sessions: args.sessions,
        ramp_per_second: args.ramp,
        hold_seconds: args.duration.as_secs_f64(),
        capacity_search: args.capacity,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        most_sessions_held: held,
        window,
        video_kbps: media.video_bits_per_second() / 1000.0,
    }))
}

/// Waits until `n` sessions are live (or every launched one has failed), sampling meanwhile; gives
/// up after a minute past the ramp.
async fn settle(stats: &Stats, n: usize, sampler: &mut Sampler, bar: &indicatif::ProgressBar) {
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_secs(n as u64);
    while Instant::now() < deadline {
        let live = stats.sessions_live.load(Relaxed) as usize;
        let failed = stats.sessions_failed.load(Relaxed) as usize;
        if live + failed >= n {
            break;
        }
        tick_for(Duration::from_millis(500), sampler, bar).await;
    }
}

/// Samples once a second for `d`.
async fn tick_for(d: Duration, sampler: &mut Sampler, bar: &indicatif::ProgressBar) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let next = sampler.next_due().min(end);
        tokio::time::sleep_until(next.into()).await;
        if Instant::now() >= sampler.next_due() {
            sampler.sample();
            report::update_bar(bar, sampler);
        }
    }
}

async fn one_session(
    backend: Arc<tokio::sync::Mutex<Backend>>,
    i: usize,
    audio: bool,
    password: &str,
    media: Arc<Media>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let email = format!("lt-tech-{i}@loadtest.invalid");
    let (api, phone_api, token) = {
        let b = backend.lock().await;
        match &*b {
            Backend::Udp { addr, .. } => {
                let addr = *addr;
                drop(b);
                return udp::session(addr, i as u32, audio, media, stats, stop).await;
            }
            Backend::Janus(j) => {
                let (url, ip) = (j.url.clone(), j.ip);
                drop(b);
                return janus::session(&url, ip, i as u64 + 1, audio, media, stats, stop).await;
            }
            Backend::Lens {
                apis,
                admin,
                group,
                existing,
            } => {
                let exists = existing.contains(&email);
                let api = apis[i % apis.len()].clone();
                let phone_api = apis[(i + 1) % apis.len()].clone();
                let (admin, group) = (admin.clone(), *group);
                drop(b);
                let token = api
                    .technician_token(&admin, group, &email, password, exists)
                    .await?;
                (api, phone_api, token)
            }
        }
    };
    lens::session(
        api,
        phone_api,
        Arc::new(lens::Technician { token }),
        media,
        stats,
        stop,
    )
    .await
}

fn url_port(url: &str) -> Option<u16> {
    let rest = url.split("://").nth(1)?;
    let host = rest.split('/').next()?;
    match host.rsplit_once(':') {
        Some((_, p)) => p.parse().ok(),
        None if url.starts_with("https") => Some(443),
        None => Some(80),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_parse() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("1h").is_err());
        assert_eq!(parse_rate("20/s").unwrap(), 20.0);
        assert!(parse_rate("0/s").is_err());
        assert_eq!(url_port("http://127.0.0.1:9000"), Some(9000));
    }
}
