//! Forwarded packets per CPU-second of the forwarding thread.
//!
//! - `sfu_srtp`: a str0m client (the phone) sends SRTP video through the SFU engine to a second
//!   str0m client (the console): receive, SRTP decrypt, engine, SRTP encrypt, send.
//! - `naive_udp`: a plain UDP forwarder thread (blocking recv_from/send_to, no crypto) between
//!   two plain sockets.
//!
//! Both forwarders run alone on their own thread; the clients run on another. The time criterion
//! reports is the **forwarding thread's CPU time** (from /proc/thread-self/schedstat), so the
//! element rate is packets per CPU-second of the forwarder, independent of the clients' cost.
//! At most `WINDOW` packets are in flight so loopback buffers never overflow.
//!
//! `session_memory` (printed once, not timed): RSS growth over `SESSIONS` sessions whose two peers
//! have negotiated (SDP) but not connected.
//!
//! Run: `cargo bench -p sfu --bench forward -- --warm-up-time 2 --measurement-time 5`

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sfu::{Sfu, SfuConfig, SfuHandle};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A video-sized payload.
const PAYLOAD: usize = 1000;
const WINDOW: u64 = 64;
const SESSIONS: i64 = 300;

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

/// Starts the SFU on a thread of its own (a current-thread runtime); returns its handle and the
/// thread's schedstat path.
fn start_sfu() -> (SfuHandle, PathBuf) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (sfu, task) =
                Sfu::start(SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)).unwrap();
            tx.send((sfu, own_schedstat())).unwrap();
            let _ = task.await;
        });
    });
    rx.recv().unwrap()
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
        }
    }

    /// Reads what arrived, feeds the clock, and sends what the peer wants to send.
    fn pump(&mut self) {
        let now = Instant::now();
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
            }
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    if t <= now {
                        let _ = self.rtc.handle_input(Input::Timeout(now));
                        continue;
                    }
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
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
            let mut wrote = false;
            while self.in_flight(console) < WINDOW && self.sent - self.lost < target {
                self.write(phone);
                wrote = true;
            }
            if wrote {
                phone.pump();
            }
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

fn sfu_srtp(c: &mut Criterion) {
    let (sfu, server_cpu) = start_sfu();
    let (mut phone, mut console) = connect(&sfu, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(phone.connected && console.connected) && Instant::now() < deadline {
        phone.pump();
        console.pump();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        phone.connected && console.connected,
        "peers did not connect"
    );
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
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sfu_srtp", |b| {
        b.iter_custom(|iters| {
            let before = thread_cpu(&server_cpu);
            sender.send(&mut phone, &mut console, iters);
            thread_cpu(&server_cpu) - before
        })
    });
    group.finish();
    println!(
        "sfu_srtp: {} packets lost on loopback (window returned)",
        sender.lost
    );
    let rss = rss_bytes();
    println!("process RSS with one connected session: {} KiB", rss / 1024);
}

fn naive_udp(c: &mut Criterion) {
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
    let forwarder_cpu = rx.recv().unwrap();
    // Same size on the wire as the SRTP case: RTP header + payload + auth tag.
    let packet = vec![7u8; 12 + PAYLOAD + 16];
    let mut buf = vec![0u8; 2000];
    let mut lost = 0u64;
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(1));
    group.bench_function("naive_udp", |b| {
        b.iter_custom(|iters| {
            let before = thread_cpu(&forwarder_cpu);
            let (mut sent, mut received) = (0u64, 0u64);
            let mut last_progress = Instant::now();
            while received < iters {
                while sent - received < WINDOW && sent < iters {
                    sender.send_to(&packet, forward_addr).unwrap();
                    sent += 1;
                }
                match receiver.recv_from(&mut buf) {
                    Ok(_) => {
                        received += 1;
                        last_progress = Instant::now();
                    }
                    Err(_) if last_progress.elapsed() > Duration::from_millis(50) => {
                        let missing = sent - received;
                        lost += missing;
                        received += missing;
                        last_progress = Instant::now();
                    }
                    Err(_) => std::hint::spin_loop(),
                }
            }
            thread_cpu(&forwarder_cpu) - before
        })
    });
    group.finish();
    println!("naive_udp: {lost} packets lost on loopback (counted as received)");
}

fn session_memory(_c: &mut Criterion) {
    let (sfu, _) = start_sfu();
    // Let the first sessions' one-off allocations settle before measuring.
    for s in 0..10 {
        drop(connect(&sfu, 10_000 + s));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();
    for s in 0..SESSIONS {
        drop(connect(&sfu, s));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_bytes();
    println!(
        "session_memory: {} sessions (two negotiated, unconnected peers each): RSS +{} KiB, {} KiB per session",
        SESSIONS,
        after.saturating_sub(before) / 1024,
        after.saturating_sub(before) / 1024 / SESSIONS as u64
    );
}

criterion_group!(benches, sfu_srtp, naive_udp, session_memory);
criterion_main!(benches);
