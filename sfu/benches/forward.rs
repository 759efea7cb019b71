//! Forwarded packets per CPU-second of the forwarding thread.
//!
//! - `sfu_srtp`: a str0m client (the phone) sends SRTP video through the SFU engine to a second
//!   str0m client (the console): receive, SRTP decrypt, engine, SRTP encrypt, send.
//! - `naive_udp`: a plain UDP forwarder thread (blocking recv_from/send_to, no crypto) between
//!   two plain sockets.
//!
//! Both forwarders run on threads of their own (the SFU: its engine shards, `FORWARD_SHARDS`,
//! default 1); the clients run on another. The time criterion reports is the **forwarding
//! threads' CPU time** (from /proc/<pid>/task/<tid>/schedstat, summed over the SFU's shard
//! threads), so the element rate is packets per CPU-second of the forwarder, independent of the
//! clients' cost.
//! At most `WINDOW` packets are in flight so loopback buffers never overflow.
//!
//! `session_memory` (printed once, not timed): the server's memory per **connected** session:
//! RSS growth over `SESSIONS` phone/console pairs connected through the SFU (DTLS and SRTP up,
//! `MEMORY_PACKETS` video packets forwarded each), minus the RSS growth of the same number of
//! phone/console pairs connected directly (the clients' own share), divided by `SESSIONS`.
//!
//! Run: `cargo bench -p sfu --bench forward -- --warm-up-time 2 --measurement-time 5`
//!
//! Fixed-count mode, for `valgrind --tool=callgrind --separate-threads=yes` (instructions per
//! forwarded packet, whatever the machine's load): `FORWARD_COUNT=20000 FORWARD_ONLY=sfu|naive
//! target/release/deps/forward-*` forwards that many packets through one forwarder and prints its
//! CPU time; the forwarder is the first thread the program starts (callgrind's thread 2).
//!
//! Shard scaling (wall clock, not criterion): `FORWARD_SESSIONS=8 FORWARD_SHARDS=1|2
//! FORWARD_COUNT=20000 <bench binary>` connects that many sessions, has each phone encrypt
//! `FORWARD_COUNT` packets ahead of time, then replays them from the phones' sockets (at most
//! `WINDOW` in flight per session) while the consoles only count what arrives, so the clients'
//! thread does little more than one send and one receive per packet (and sleeps in poll(2) while
//! nothing arrives). Prints forwarded packets
//! per wall-second and each shard thread's CPU time.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sfu::{Sfu, SfuConfig, SfuHandle};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A video-sized payload.
const PAYLOAD: usize = 1000;
const WINDOW: u64 = 64;
const SESSIONS: usize = 100;
const MEMORY_PACKETS: u64 = 20;

/// The calling thread's CPU time so far (ns, from the scheduler's own accounting).
fn thread_cpu(stat: &PathBuf) -> Duration {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    let ns = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// `/proc/<pid>/task/<tid>/schedstat` of the calling thread, readable from any thread.
fn own_schedstat() -> PathBuf {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    PathBuf::from("/proc").join(link).join("schedstat")
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The schedstat files of this process's SFU shard threads (named `sfu-shard-N`).
fn shard_threads() -> Vec<PathBuf> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.starts_with("sfu-shard-"))
        })
        // /proc/self/task/<tid> is only valid from this process: keep the absolute pid.
        .map(|t| {
            PathBuf::from(format!("/proc/{}/task", std::process::id()))
                .join(t.file_name())
                .join("schedstat")
        })
        .collect()
}

/// CPU time so far of a set of threads.
fn threads_cpu(stats: &[PathBuf]) -> Duration {
    stats.iter().map(thread_cpu).sum()
}

/// The number of engine shards the SFU benchmarks use (`FORWARD_SHARDS`, default 1).
fn bench_shards() -> usize {
    std::env::var("FORWARD_SHARDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Starts an SFU with `shards` engine shards (threads of their own); returns its handle and the
/// schedstat files of its threads.
fn start_sfu(shards: usize) -> (SfuHandle, Vec<PathBuf>) {
    let before = shard_threads();
    let (sfu, _threads) =
        // Spread from the first room, as the shard-scaling figures were measured.
        Sfu::start(
            SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)
                .with_shards(shards)
                .with_shard_fill(0.0),
        )
            .unwrap();
    // Threads name themselves once running.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let new: Vec<PathBuf> = shard_threads()
            .into_iter()
            .filter(|t| !before.contains(t))
            .collect();
        if new.len() == shards || Instant::now() > deadline {
            assert_eq!(new.len(), shards, "shard threads not found");
            return (sfu, new);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A str0m peer on its own non-blocking UDP socket, driven by the caller's loop.
struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
    connected: bool,
    received: u64,
    video: Option<Mid>,
    /// When set, what the peer transmits is kept here instead of sent (encrypted ahead of time).
    capture: Option<Vec<Vec<u8>>>,
}

impl Client {
    fn new() -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        Client {
            rtc,
            socket,
            local,
            buf: vec![0; 2000],
            connected: false,
            received: 0,
            video: None,
            capture: None,
        }
    }

    /// Reads what arrived, feeds the clock, and sends what the peer wants to send. str0m wants
    /// its output drained after every input (events are not queued across inputs).
    fn pump(&mut self) {
        let now = Instant::now();
        self.drain(now);
        while let Ok((n, source)) = self.socket.recv_from(&mut self.buf) {
            if let Ok(contents) = self.buf[..n].try_into() {
                let _ = self.rtc.handle_input(Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    },
                ));
                self.drain(now);
            }
        }
    }

    fn drain(&mut self, now: Instant) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    if t <= now {
                        let _ = self.rtc.handle_input(Input::Timeout(now));
                        continue;
                    }
                    break;
                }
                Ok(Output::Transmit(t)) => match &mut self.capture {
                    Some(kept) => kept.push(t.contents.into()),
                    None => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                },
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::MediaAdded(m))) => self.video = Some(m.mid),
                Ok(Output::Event(Event::RtpPacket(_))) => self.received += 1,
                Ok(Output::Event(_)) => {}
                Err(_) => break,
            }
        }
    }
}

/// A phone and a console connected through the SFU for `session`.
fn connect(sfu: &SfuHandle, session: i64) -> (Client, Client) {
    sfu.start(session, false).unwrap();
    let mut phone = Client::new();
    let mut api = phone.rtc.sdp_api();
    let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    phone.video = Some(mid);
    let sfu::CustomerAnswer::Ready(answer) =
        sfu.customer_offer(session, &offer.to_sdp_string()).unwrap()
    else {
        panic!("a new peer connection is answered at once");
    };
    phone
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let mut console = Client::new();
    let offer = SdpOffer::from_sdp_string(&sfu.technician_offer(session).unwrap()).unwrap();
    let answer = console.rtc.sdp_api().accept_offer(offer).unwrap();
    sfu.technician_answer(session, &answer.to_sdp_string())
        .unwrap();
    (phone, console)
}

/// Sends packets from the phone until the console has `count` more, at most `WINDOW` in flight.
struct Sender {
    payload: Arc<[u8]>,
    sent: u64,
    lost: u64,
}

impl Sender {
    fn write(&mut self, phone: &mut Client) {
        let pt = phone.rtc.codec_config().params()[0].pt();
        let mid = phone.video.expect("video mid");
        if let Some(stream) = phone.rtc.direct_api().stream_tx_by_mid(mid, None) {
            self.sent += 1;
            stream.write_rtp(
                RtpWrite::new(
                    pt,
                    self.sent.into(),
                    (self.sent * 3000) as u32,
                    Instant::now(),
                    self.payload.clone(),
                )
                .marker(true),
            );
        }
    }

    fn in_flight(&self, console: &Client) -> u64 {
        self.sent.saturating_sub(self.lost + console.received)
    }

    fn send(&mut self, phone: &mut Client, console: &mut Client, count: u64) {
        let target = console.received + count;
        let mut last = console.received;
        let mut last_progress = Instant::now();
        while console.received < target {
            while self.in_flight(console) < WINDOW && self.sent - self.lost < target {
                self.write(phone);
            }
            // Also when nothing new was written: the phone has RTCP and timers to handle.
            phone.pump();
            console.pump();
            if console.received != last {
                last = console.received;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > Duration::from_millis(50) {
                // Lost on loopback: give the window back.
                self.lost += self.in_flight(console);
                phone.pump();
                last_progress = Instant::now();
            }
        }
    }
}

/// A phone and a console connected through a fresh SFU on its own thread, media flowing.
struct SfuPath {
    _sfu: SfuHandle,
    cpu: Vec<PathBuf>,
    phone: Client,
    console: Client,
    sender: Sender,
}

impl SfuPath {
    fn new(shards: usize) -> SfuPath {
        let (sfu, cpu) = start_sfu(shards);
        let (mut phone, mut console) = connect(&sfu, 1);
        pump_until_connected(&mut [&mut phone, &mut console]);
        // Media flows once the SFU has seen the console connected.
        let mut sender = Sender {
            payload: vec![7u8; PAYLOAD].into(),
            sent: 0,
            lost: 0,
        };
        let warm = Instant::now() + Duration::from_secs(10);
        while console.received == 0 && Instant::now() < warm {
            sender.write(&mut phone);
            for _ in 0..10 {
                phone.pump();
                console.pump();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert!(console.received > 0, "no packet reached the console");
        sender.lost = sender.sent - console.received;
        SfuPath {
            _sfu: sfu,
            cpu,
            phone,
            console,
            sender,
        }
    }

    /// Forwards `count` packets; returns the SFU threads' CPU time for them.
    fn run(&mut self, count: u64) -> Duration {
        let before = threads_cpu(&self.cpu);
        self.sender.send(&mut self.phone, &mut self.console, count);
        threads_cpu(&self.cpu) - before
    }
}

/// Pumps the clients until every one of them is connected (10 s at most).
fn pump_until_connected(clients: &mut [&mut Client]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while clients.iter().any(|c| !c.connected) && Instant::now() < deadline {
        for c in clients.iter_mut() {
            c.pump();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let missing = clients.iter().filter(|c| !c.connected).count();
    assert_eq!(missing, 0, "{missing} peers did not connect");
}

fn sfu_srtp(c: &mut Criterion) {
    let mut path = SfuPath::new(bench_shards());
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sfu_srtp", |b| b.iter_custom(|iters| path.run(iters)));
    group.finish();
    println!(
        "sfu_srtp: {} packets lost on loopback (window returned)",
        path.sender.lost
    );
}

/// A plain UDP forwarder thread (blocking recv_from/send_to) between two plain sockets.
struct NaivePath {
    sender: UdpSocket,
    receiver: UdpSocket,
    forward_addr: SocketAddr,
    cpu: PathBuf,
    packet: Vec<u8>,
    buf: Vec<u8>,
    lost: u64,
}

impl NaivePath {
    fn new() -> NaivePath {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let forwarder = UdpSocket::bind("127.0.0.1:0").unwrap();
        let forward_to = receiver.local_addr().unwrap();
        let forward_addr = forwarder.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tx.send(own_schedstat()).unwrap();
            let mut buf = vec![0u8; 2000];
            while let Ok((n, _)) = forwarder.recv_from(&mut buf) {
                let _ = forwarder.send_to(&buf[..n], forward_to);
            }
        });
        NaivePath {
            sender,
            receiver,
            forward_addr,
            cpu: rx.recv().unwrap(),
            // Same size on the wire as the SRTP case: RTP header + payload + auth tag.
            packet: vec![7u8; 12 + PAYLOAD + 16],
            buf: vec![0u8; 2000],
            lost: 0,
        }
    }

    /// Forwards `count` packets; returns the forwarder thread's CPU time for them.
    fn run(&mut self, count: u64) -> Duration {
        let before = thread_cpu(&self.cpu);
        let (mut sent, mut received) = (0u64, 0u64);
        let mut last_progress = Instant::now();
        while received < count {
            while sent - received < WINDOW && sent < count {
                self.sender
                    .send_to(&self.packet, self.forward_addr)
                    .unwrap();
                sent += 1;
            }
            match self.receiver.recv_from(&mut self.buf) {
                Ok(_) => {
                    received += 1;
                    last_progress = Instant::now();
                }
                Err(_) if last_progress.elapsed() > Duration::from_millis(50) => {
                    let missing = sent - received;
                    self.lost += missing;
                    received += missing;
                    last_progress = Instant::now();
                }
                Err(_) => std::hint::spin_loop(),
            }
        }
        thread_cpu(&self.cpu) - before
    }
}

fn naive_udp(c: &mut Criterion) {
    let mut path = NaivePath::new();
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(1));
    group.bench_function("naive_udp", |b| b.iter_custom(|iters| path.run(iters)));
    group.finish();
    println!(
        "naive_udp: {} packets lost on loopback (counted as received)",
        path.lost
    );
}

/// Connects every pair (pumping all of them), then sends `MEMORY_PACKETS` video packets on each.
fn connect_and_send(pairs: &mut [(Client, Client)]) {
    let mut all: Vec<&mut Client> = pairs.iter_mut().flat_map(|(a, b)| [a, b]).collect();
    pump_until_connected(&mut all);
    for (phone, console) in pairs.iter_mut() {
        let mut sender = Sender {
            payload: vec![7u8; PAYLOAD].into(),
            sent: 0,
            lost: 0,
        };
        // The console's media flows once the SFU has seen it connected: a few tries.
        let deadline = Instant::now() + Duration::from_secs(5);
        while console.received == 0 && Instant::now() < deadline {
            sender.write(phone);
            phone.pump();
            std::thread::sleep(Duration::from_millis(2));
            console.pump();
        }
        sender.lost = sender.sent - console.received;
        sender.send(phone, console, MEMORY_PACKETS);
    }
}

/// A phone offering video straight to a console, no SFU between them.
fn direct_pair() -> (Client, Client) {
    let mut phone = Client::new();
    let mut api = phone.rtc.sdp_api();
    let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    phone.video = Some(mid);
    let mut console = Client::new();
    let answer = console.rtc.sdp_api().accept_offer(offer).unwrap();
    phone.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    (phone, console)
}

fn session_memory(_c: &mut Criterion) {
    let settle = || std::thread::sleep(Duration::from_millis(300));
    // One-off allocations (str0m's and the allocator's) out of the way first.
    let (sfu, _) = start_sfu(bench_shards());
    let mut warm = vec![connect(&sfu, 100_000), direct_pair()];
    connect_and_send(&mut warm);
    drop(warm);
    settle();

    let before = rss_bytes();
    let mut direct: Vec<(Client, Client)> = (0..SESSIONS).map(|_| direct_pair()).collect();
    connect_and_send(&mut direct);
    settle();
    let clients = rss_bytes().saturating_sub(before);
    drop(direct);
    settle();

    let before = rss_bytes();
    let mut through: Vec<(Client, Client)> =
        (0..SESSIONS).map(|s| connect(&sfu, s as i64)).collect();
    connect_and_send(&mut through);
    settle();
    let total = rss_bytes().saturating_sub(before);
    let per_session = total.saturating_sub(clients) / SESSIONS as u64;
    println!(
        "session_memory: {SESSIONS} connected sessions, {MEMORY_PACKETS} video packets each: \
         RSS +{} KiB through the SFU, +{} KiB for the same clients connected directly; \
         server ~{} KiB per session",
        total / 1024,
        clients / 1024,
        per_session / 1024
    );
    drop(through);
}

/// `FORWARD_COUNT` packets through one forwarder (`FORWARD_ONLY`), printed; for callgrind.
fn fixed_count(count: u64) {
    let only = std::env::var("FORWARD_ONLY").unwrap_or_else(|_| "sfu".into());
    let (cpu, lost) = match only.as_str() {
        "naive" => {
            let mut path = NaivePath::new();
            (path.run(count), path.lost)
        }
        _ => {
            let mut path = SfuPath::new(bench_shards());
            (path.run(count), path.sender.lost)
        }
    };
    println!(
        "{only}: {count} packets, forwarder CPU {:.3} s, {:.0} ns per packet, {lost} lost",
        cpu.as_secs_f64(),
        cpu.as_nanos() as f64 / count as f64
    );
}

/// Whether a datagram is RTP (not RTCP: RFC 5761 payload types 192-223).
fn is_rtp(data: &[u8]) -> bool {
    data.len() > 12 && data[0] >> 6 == 2 && !(192..=223).contains(&data[1])
}

/// See the module doc: forwarded packets per wall-second with `sessions` sessions over `shards`.
fn shard_scaling(sessions: usize, shards: usize, count: u64) {
    let (sfu, cpu) = start_sfu(shards);
    let mut pairs: Vec<(Client, Client)> =
        (0..sessions).map(|s| connect(&sfu, s as i64 + 1)).collect();
    connect_and_send(&mut pairs);
    let target = sfu.candidate_addr();
    // Each phone encrypts its packets now, on a clock of its own that runs 1 ms per 10 packets.
    let mut queued: Vec<std::collections::VecDeque<Vec<u8>>> = Vec::new();
    for (phone, _) in pairs.iter_mut() {
        // Sequence numbers after the ones `connect_and_send` used (SRTP rejects replays).
        let mut sender = Sender {
            payload: vec![7u8; PAYLOAD].into(),
            sent: 1_000,
            lost: 0,
        };
        phone.capture = Some(Vec::new());
        let mut now = Instant::now();
        let mut kept = 0;
        while kept < count as usize {
            for _ in 0..10 {
                sender.write(phone);
            }
            now += Duration::from_millis(1);
            let _ = phone.rtc.handle_input(Input::Timeout(now));
            phone.drain(now);
            kept = phone.capture.as_ref().map_or(0, |c| c.len());
        }
        let datagrams = phone.capture.take().unwrap_or_default();
        queued.push(datagrams.into_iter().filter(|d| is_rtp(d)).collect());
    }
    let total: u64 = queued.iter().map(|q| q.len() as u64).sum();
    let before: Vec<Duration> = cpu.iter().map(thread_cpu).collect();
    let clients = own_schedstat();
    let clients_before = thread_cpu(&clients);
    let started = Instant::now();
    let (mut sent, mut received, mut lost) = (vec![0u64; sessions], vec![0u64; sessions], 0u64);
    let mut last_progress = Instant::now();
    let mut buf = vec![0u8; 2000];
    let phones: Vec<&UdpSocket> = pairs.iter().map(|(p, _)| &p.socket).collect();
    let consoles: Vec<&UdpSocket> = pairs.iter().map(|(_, c)| &c.socket).collect();
    // The clients' thread sleeps in poll(2) while nothing has arrived, leaving the cores to
    // the shards.
    let mut waiting: Vec<PollFd<'_>> = consoles
        .iter()
        .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN))
        .collect();
    while received.iter().sum::<u64>() + lost < total {
        for (i, phone) in phones.iter().enumerate() {
            while sent[i] - received[i] < WINDOW
                && let Some(datagram) = queued[i].pop_front()
            {
                let _ = phone.send_to(&datagram, target);
                sent[i] += 1;
            }
        }
        let mut progress = false;
        if poll(&mut waiting, PollTimeout::from(10u8)).unwrap_or(0) > 0 {
            for (i, fd) in waiting.iter().enumerate() {
                if !fd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
                    continue;
                }
                while let Ok((n, _)) = consoles[i].recv_from(&mut buf) {
                    if is_rtp(&buf[..n]) {
                        received[i] += 1;
                        progress = true;
                    }
                }
            }
        }
        if progress {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_millis(100) {
            // Lost on the way: give the windows back.
            for i in 0..sessions {
                lost += sent[i] - received[i];
                received[i] = sent[i];
            }
            last_progress = Instant::now();
        }
    }
    let wall = started.elapsed();
    let clients_cpu = (thread_cpu(&clients) - clients_before).as_secs_f64();
    let shard_cpu: Vec<f64> = cpu
        .iter()
        .zip(&before)
        .map(|(t, b)| (thread_cpu(t) - *b).as_secs_f64())
        .collect();
    let forwarded = total - lost;
    let cpu_total: f64 = shard_cpu.iter().sum();
    println!(
        "shard_scaling: {sessions} sessions, {shards} shards: {forwarded} packets in {:.3} s wall \
         = {:.0} packets per wall-second; shard CPU {:?} s ({:.2} µs CPU per packet); clients' \
         thread CPU {clients_cpu:.3} s; {lost} lost",
        wall.as_secs_f64(),
        forwarded as f64 / wall.as_secs_f64(),
        shard_cpu
            .iter()
            .map(|c| (c * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>(),
        cpu_total * 1e6 / forwarded.max(1) as f64,
    );
}

criterion_group!(benches, sfu_srtp, naive_udp, session_memory);

fn main() {
    let env = |name: &str| std::env::var(name).ok().and_then(|n| n.parse::<u64>().ok());
    if let Some(count) = env("FORWARD_COUNT") {
        match env("FORWARD_SESSIONS") {
            Some(sessions) => shard_scaling(sessions as usize, bench_shards(), count),
            None => fixed_count(count),
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
