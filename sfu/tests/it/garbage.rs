//! Garbage on the media port during a live session: random bytes, truncated STUN, DTLS and RTP,
//! and well-formed-looking packets from addresses no peer uses. Every one is dropped and counted;
//! the session keeps forwarding both ways. With one engine shard and with two (the session on the
//! second, so every datagram for it crosses the dispatcher).

use crate::common;

use std::time::Duration;

use common::*;
use sfu::{Sfu, SfuConfig};
use tokio::net::UdpSocket;

/// The datagrams to throw at the port: (what, bytes).
fn garbage() -> Vec<(&'static str, Vec<u8>)> {
    let mut noise = Noise(0x5eed_1e55_0dd5_eed5);
    let mut out = Vec::new();
    for _ in 0..100 {
        let len = 1 + (noise.next() % 1400) as usize;
        out.push(("random bytes", noise.bytes(len)));
    }
    // A STUN binding request cut inside its header, and one whose length runs past the end.
    out.push((
        "truncated STUN",
        vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4],
    ));
    let mut stun = vec![0x00, 0x01, 0x00, 0x30, 0x21, 0x12, 0xa4, 0x42];
    stun.extend(noise.bytes(12));
    stun.extend([0x00, 0x06, 0x00, 0x20]);
    out.push(("STUN with a short attribute", stun));
    // A DTLS ClientHello record header alone, and one claiming more than it carries.
    out.push(("truncated DTLS", vec![22, 0xfe, 0xfd, 0, 0]));
    let mut dtls = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0x00];
    dtls.extend(noise.bytes(30));
    out.push(("DTLS record cut short", dtls));
    // RTP: a bare start, a header whose extension runs off the end, and a whole packet (SRTP
    // would fail authentication) from an address no peer has.
    out.push(("truncated RTP", vec![0x80, 0x60, 0x00]));
    out.push((
        "RTP extension past the end",
        vec![0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 40],
    ));
    let mut rtp = vec![0x80, 0x60, 0x12, 0x34, 0, 0, 0x10, 0, 0, 0, 0x11, 0x11];
    rtp.extend(noise.bytes(200));
    out.push(("RTP from an unknown address", rtp));
    let mut rtcp = vec![0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0x11, 0x11];
    rtcp.extend(noise.bytes(10));
    out.push(("RTCP from an unknown address", rtcp));
    // Binding requests whose USERNAME names shard 0, shard 1 and a shard that does not exist
    // (the dispatcher routes them by that name), with credentials no peer has.
    for ufrag in ["00nosuchpeer", "01nosuchpeer", "ffnosuchpeer"] {
        let username = format!("{ufrag}:remote");
        let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        stun.extend(noise.bytes(12));
        stun.extend([0x00, 0x06, 0x00, username.len() as u8]);
        stun.extend(username.as_bytes());
        while stun.len() % 4 != 0 {
            stun.push(0);
        }
        let length = (stun.len() - 20) as u16;
        stun[2..4].copy_from_slice(&length.to_be_bytes());
        out.push(("STUN for an unknown peer", stun));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_media_port_is_dropped_and_counted_and_the_session_keeps_forwarding() {
    garbage_is_dropped_and_counted(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_dropped_and_counted_with_two_shards() {
    garbage_is_dropped_and_counted(2).await;
}

async fn garbage_is_dropped_and_counted(shards: usize) {
    let config = SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)
        .with_shards(shards)
        .with_shard_fill(0.0);
    let (sfu, _threads) = Sfu::start(config).unwrap();
    // With two shards, a room on shard 0 first puts the call on shard 1.
    sfu.start(100, true).unwrap();
    let mut call = call_with(sfu, TechnicianSide::default()).await;
    assert_eq!(call.sfu.shard_of(SESSION), Some(shards - 1));
    let first = wait_for(
        &mut call.technician.received,
        [20, 20, 0],
        Duration::from_secs(15),
    )
    .await;
    assert!(first[0] >= 20 && first[1] >= 20, "technician got {first:?}");

    let target = call.sfu.candidate_addr();
    let before = call.sfu.metrics().garbage_dropped;
    let datagrams = garbage();
    // Several unknown sources, several rounds, interleaved with the live media.
    let sources = [
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    ];
    let rounds = 5;
    for round in 0..rounds {
        for (i, (_, bytes)) in datagrams.iter().enumerate() {
            sources[(i + round) % sources.len()]
                .send_to(bytes, target)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = (datagrams.len() * rounds) as u64;

    call.still_forwarding("garbage").await;

    // Every garbage datagram was counted (loopback UDP does not lose them).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut dropped = call.sfu.metrics().garbage_dropped - before;
    while dropped < sent && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        dropped = call.sfu.metrics().garbage_dropped - before;
    }
    assert!(
        dropped >= sent,
        "{dropped} of {sent} garbage datagrams counted"
    );
    let metrics = call.sfu.metrics();
    assert_eq!(metrics.peers_connected, 2, "{metrics:?}");
    call.sfu.stop(SESSION);
    call.hang_up().await;
}
