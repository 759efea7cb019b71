//! ICE over TCP (RFC 6544, RFC 4571 framing) on the media TCP port: a webrtc-rs customer whose
//! datagrams a relay carries as frames over one TCP connection streams both ways; garbage on the
//! port (random bytes, oversized and empty frames, binding requests for nobody, half-open and a
//! thousand idle connections) is dropped and counted and never disturbs the live session.

use crate::common;

use std::time::Duration;

use common::*;
use sfu::{PeerRole, Sfu, SfuConfig, Transport};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn sfu_with_tcp(handshake: Duration) -> sfu::SfuHandle {
    let mut config = SfuConfig::new("127.0.0.1:0".parse().unwrap(), None).with_shards(2);
    config.tcp_handshake_timeout = handshake;
    let (sfu, _threads) = Sfu::start(config).unwrap();
    sfu
}

/// Waits until `check` holds on the SFU's metrics, or panics with them after `limit`.
async fn metrics_until(
    sfu: &sfu::SfuHandle,
    limit: Duration,
    what: &str,
    check: impl Fn(&sfu::MetricsSnapshot) -> bool,
) -> sfu::MetricsSnapshot {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let m = sfu.metrics();
        if check(&m) {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}: {m:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A STUN binding request whose USERNAME names `ufrag` (ours) and a made-up remote fragment;
/// no MESSAGE-INTEGRITY, so no peer accepts it.
fn binding_request(ufrag: &str) -> Vec<u8> {
    let username = format!("{ufrag}:evil");
    let padded = username.len().div_ceil(4) * 4;
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&[0x00, 0x06]);
    m.extend_from_slice(&(username.len() as u16).to_be_bytes());
    m.extend_from_slice(username.as_bytes());
    m.resize(20 + 4 + padded, 0);
    m
}

/// CPU time (user + system) of this process's `sfu-tcp` threads so far (Linux; 0 elsewhere).
fn tcp_thread_cpu() -> Duration {
    let ticks: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "sfu-tcp")
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            // Fields after the parenthesised name: utime and stime are the 12th and 13th.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn framed(frame: &[u8]) -> Vec<u8> {
    let mut out = (frame.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(frame);
    out
}

async fn tcp_call(sfu: sfu::SfuHandle) -> (Call, Relay) {
    let server = sfu.tcp_candidate_addr().expect("ICE-TCP on");
    let relay = relay(server, true).await;
    let call = call_via(sfu, SESSION, TechnicianSide::default(), behind(relay.addr)).await;
    (call, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_over_ice_tcp_streams_both_ways_and_its_transport_is_tcp() {
    let sfu = sfu_with_tcp(Duration::from_secs(10));
    let tcp = sfu.tcp_candidate_addr().unwrap();
    // Same port number as UDP by default, and advertised in every answer and offer with a
    // lower priority than the UDP candidate.
    assert_eq!(tcp.port(), sfu.candidate_addr().port());
    sfu.start(99, true).unwrap();
    let offer = sfu.technician_offer(99).unwrap();
    let candidates: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .collect();
    let priority = |proto: &str| -> u32 {
        let line = candidates
            .iter()
            .find(|l| l.split(' ').nth(2) == Some(proto))
            .unwrap_or_else(|| panic!("no {proto} candidate in {candidates:?}"));
        line.split(' ').nth(3).unwrap().parse().unwrap()
    };
    assert!(priority("tcp") < priority("udp"), "{candidates:?}");
    assert!(
        candidates
            .iter()
            .any(|l| l.contains(" tcp ") && l.contains(" tcptype passive")),
        "{candidates:?}"
    );
    sfu.stop(99);

    let started = std::time::Instant::now();
    let (mut call, _relay) = tcp_call(sfu.clone()).await;
    call.still_forwarding("connecting over TCP").await;
    println!("TCP call set up and forwarding in {:?}", started.elapsed());
    let stats = call.sfu.stats(SESSION).unwrap();
    assert_eq!(stats.customer.transport, Some(Transport::Tcp), "{stats:?}");
    assert_eq!(
        stats.technician.transport,
        Some(Transport::Udp),
        "{stats:?}"
    );
    let m = call.sfu.metrics();
    assert!(m.tcp.connections_authenticated >= 1, "{m:?}");
    let by = |t: Transport| {
        m.peers_by_transport
            .iter()
            .find(|(x, _)| *x == t)
            .unwrap()
            .1
    };
    assert_eq!((by(Transport::Tcp), by(Transport::Udp)), (1, 1), "{m:?}");
    call.sfu.stop(SESSION);
    call.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_tcp_connection_is_lost_media_at_once() {
    let sfu = sfu_with_tcp(Duration::from_secs(10));
    let (mut call, relay) = tcp_call(sfu).await;
    call.still_forwarding("connecting over TCP").await;
    let mut events = call.sfu.peer_events().unwrap();
    let closed = std::time::Instant::now();
    relay.close.notify_one();
    let down = next_event(&mut events).await;
    assert_eq!((down.role, down.up), (PeerRole::Customer, false));
    // Well before `lost_after` (5 s): the connection's end says it.
    assert!(
        closed.elapsed() < Duration::from_secs(2),
        "{:?}",
        closed.elapsed()
    );
    println!("TCP close reported as lost media in {:?}", closed.elapsed());
    call.sfu.stop(SESSION);
    call.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_tcp_port_is_dropped_and_counted_and_the_session_keeps_forwarding() {
    let handshake = Duration::from_secs(2);
    let sfu = sfu_with_tcp(handshake);
    let server = sfu.tcp_candidate_addr().unwrap();
    let (mut call, _relay) = tcp_call(sfu.clone()).await;
    call.still_forwarding("connecting over TCP").await;
    let before = sfu.metrics();

    // Random bytes: the first frame is no binding request → closed.
    let mut junk = TcpStream::connect(server).await.unwrap();
    let noise: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = junk.write_all(&noise).await;
    // A declared length over the largest frame → closed.
    let mut oversized = TcpStream::connect(server).await.unwrap();
    oversized.write_all(&[0xff, 0xff, 1, 2, 3]).await.unwrap();
    // Empty frames, then binding requests for peers that do not exist (shard 0, shard 1, a
    // shard that does not exist): counted, then timed out unauthenticated.
    let mut empty = TcpStream::connect(server).await.unwrap();
    empty.write_all(&[0, 0, 0, 0]).await.unwrap();
    empty
        .write_all(&framed(&binding_request("00nobodyhere")))
        .await
        .unwrap();
    let mut nobody = TcpStream::connect(server).await.unwrap();
    nobody
        .write_all(&framed(&binding_request("01nobodyhere")))
        .await
        .unwrap();
    let mut no_shard = TcpStream::connect(server).await.unwrap();
    no_shard
        .write_all(&framed(&binding_request("7fnobodyhere")))
        .await
        .unwrap();
    // Half-open: half a frame header, then nothing.
    let mut half = TcpStream::connect(server).await.unwrap();
    half.write_all(&[0x00]).await.unwrap();

    // A thousand idle connections: at most TCP_MAX_UNAUTHENTICATED wait, the rest are closed
    // at once.
    let opened = std::time::Instant::now();
    let cpu_before = tcp_thread_cpu();
    let mut idle = Vec::new();
    for _ in 0..1000 {
        match TcpStream::connect(server).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {} failed: {e}", idle.len()),
        }
    }
    let m = metrics_until(&sfu, Duration::from_secs(10), "1000 accepted", |m| {
        m.tcp.connections_accepted >= before.tcp.connections_accepted + 1006
    })
    .await;
    println!("1000 idle connections accepted in {:?}", opened.elapsed());
    assert!(
        m.tcp.connections_unauthenticated <= sfu::TCP_MAX_UNAUTHENTICATED as u64,
        "{m:?}"
    );
    assert!(
        m.tcp.connections_refused >= 1000 - sfu::TCP_MAX_UNAUTHENTICATED as u64,
        "{m:?}"
    );
    // The live call forwards both ways meanwhile.
    call.still_forwarding("garbage and 1000 idle connections")
        .await;

    // Framing garbage: the noise's first frame, the oversized length, two empty frames, and
    // the binding request naming no shard.
    let m = metrics_until(&sfu, Duration::from_secs(5), "garbage counted", |m| {
        m.tcp.garbage_frames >= before.tcp.garbage_frames + 5
            // The binding requests for nobody reached their shards; no Rtc took them.
            && m.garbage_dropped >= before.garbage_dropped + 2
    })
    .await;
    println!("garbage counted: {:?}", m.tcp);
    // Everything unauthenticated times out; the call's connection stays.
    let m = metrics_until(
        &sfu,
        handshake + Duration::from_secs(5),
        "handshake timeouts",
        |m| m.tcp.connections_unauthenticated == 0,
    )
    .await;
    assert!(
        m.tcp.handshake_timeouts >= before.tcp.handshake_timeouts + 3,
        "{m:?}"
    );
    println!(
        "TCP thread CPU for 1000 idle connections (accept, refuse, {} held until the {handshake:?} \
         time-out) over {:?}: {:?}",
        sfu::TCP_MAX_UNAUTHENTICATED,
        opened.elapsed(),
        tcp_thread_cpu().saturating_sub(cpu_before)
    );
    assert_eq!(
        m.tcp.connections_open, 1,
        "only the call's connection: {m:?}"
    );
    call.still_forwarding("the handshake time-outs").await;
    let stats = call.sfu.stats(SESSION).unwrap();
    assert_eq!(stats.customer.transport, Some(Transport::Tcp));
    drop((junk, oversized, empty, nobody, no_shard, half, idle));
    call.sfu.stop(SESSION);
    call.hang_up().await;
}
