//! Loss between the SFU and the technician: a UDP proxy on 127.0.0.1 drops some of the video
//! packets the server sends; the technician's NACK interceptor (webrtc-rs) asks for them, and the
//! SFU resends them over RTX from its retransmission buffer. And a repair from the phone that comes
//! late, behind a long burst, is still forwarded.

use crate::common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use sfu::{Sfu, SfuConfig};
use tokio::net::UdpSocket;

/// The payload type the SFU gives VP8's RTX in the console's offer (the first free one).
const RTX_PT: u8 = 97;
/// Every tenth video packet is dropped, up to this many.
const MAX_DROPS: usize = 40;

/// A proxy's two sockets on 127.0.0.1 (`listen` for the peer, `upstream` towards the server) and
/// the address the peer is to use.
async fn proxy_sockets() -> (UdpSocket, UdpSocket, SocketAddr) {
    let listen = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = listen.local_addr().unwrap();
    (listen, upstream, addr)
}

/// Relays between the technician (whoever talks to `listen`) and the server; drops the server's
/// video packets whose sequence number ends in 3, each once, and records their numbers.
async fn loss_proxy(server: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u16>>>) {
    let (listen, upstream, addr) = proxy_sockets().await;
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let record = dropped.clone();
    tokio::spawn(async move {
        let mut technician: Option<SocketAddr> = None;
        let mut a = vec![0u8; 2000];
        let mut b = vec![0u8; 2000];
        loop {
            tokio::select! {
                Ok((n, from)) = listen.recv_from(&mut a) => {
                    technician = Some(from);
                    let _ = upstream.send_to(&a[..n], server).await;
                }
                Ok((n, _)) = upstream.recv_from(&mut b) => {
                    let packet = &b[..n];
                    // RTP (not RTCP: payload types 72-79 with the marker bit are RTCP), clear header.
                    let video = n > 12
                        && packet[0] >> 6 == 2
                        && packet[1] & 0x7f == VIDEO_PT;
                    if video {
                        let seq = u16::from_be_bytes([packet[2], packet[3]]);
                        let mut dropped = record.lock().unwrap();
                        if seq % 10 == 3 && dropped.len() < MAX_DROPS && !dropped.contains(&seq) {
                            dropped.push(seq);
                            continue;
                        }
                    }
                    if let Some(t) = technician {
                        let _ = listen.send_to(packet, t).await;
                    }
                }
            }
        }
    });
    (addr, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacks_from_the_technician_are_answered_from_the_retransmission_buffer() {
    let (sfu, _task) = Sfu::start(SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)).unwrap();
    let server = sfu.candidate_addr();
    let (proxy, dropped) = loss_proxy(server).await;
    let record: Recorded = Arc::default();
    let side = TechnicianSide {
        rtx_pt: Some(RTX_PT),
        record: Some(record.clone()),
        // The technician knows the server only as the proxy, and the server learns the
        // technician only from the proxy's packets (peer-reflexive): all traffic crosses it.
        offer: Some(Box::new(move |sdp: String| {
            sdp.replace(
                &format!(" {} {} typ host", server.ip(), server.port()),
                &format!(" {} {} typ host", proxy.ip(), proxy.port()),
            )
        })),
        answer: Some(Box::new(|sdp: String| {
            sdp.split_inclusive("\r\n")
                .filter(|l| !l.starts_with("a=candidate"))
                .collect()
        })),
        ..TechnicianSide::default()
    };
    let mut call = call_with(sfu, side).await;
    let got = wait_for(
        &mut call.technician.received,
        [150, 0, 0],
        Duration::from_secs(20),
    )
    .await;
    assert!(got[0] >= 150, "technician got {got:?}");
    // Let the last NACKs be answered.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let dropped: Vec<u16> = dropped.lock().unwrap().clone();
    assert!(dropped.len() >= 10, "the proxy dropped only {dropped:?}");
    // RTX payload: the original sequence number, then the original payload (RFC 4588).
    let recovered: HashSet<u16> = record
        .lock()
        .unwrap()
        .iter()
        .filter(|(pt, _, p)| *pt == RTX_PT && p.len() > 2)
        .filter(|(_, _, p)| {
            let original = unkeyed(&p[2..]);
            let n = u16::from_be_bytes([original[1], original[2]]);
            original[0] == TAG_VIDEO && original == payload(TAG_VIDEO, n).as_slice()
        })
        .map(|(_, _, p)| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    let answered = dropped.iter().filter(|s| recovered.contains(s)).count();
    assert!(
        answered * 10 >= dropped.len() * 8,
        "resent {answered} of {} dropped packets: dropped {dropped:?}, resent {recovered:?}",
        dropped.len()
    );
    // NACK counts come with str0m's stats events, once a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut stats = call.sfu.stats(SESSION).unwrap();
    while stats.technician.nacks_received == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = call.sfu.stats(SESSION).unwrap();
    }
    assert!(stats.technician.nacks_received >= 1, "{stats:?}");
    assert!(
        stats.technician.rtx_sent >= answered as u64,
        "{stats:?}, {answered} answered"
    );
    let metrics = call.sfu.metrics();
    assert!(metrics.nacks_received >= 1, "{metrics:?}");
    assert!(metrics.retransmissions >= answered as u64, "{metrics:?}");
    call.sfu.stop(SESSION);
    call.hang_up().await;
}

/// Relays between the customer (which talks to the returned address) and the server; holds back
/// the customer's video packet 200 after the first one seen, and sends it only once 150 newer
/// ones have passed, as a repair behind a large keyframe comes. Returns the held packet's
/// sequence number once it has been sent.
async fn late_proxy(server: SocketAddr) -> (SocketAddr, Arc<Mutex<Option<u16>>>) {
    let (listen, upstream, addr) = proxy_sockets().await;
    let released = Arc::new(Mutex::new(None));
    let record = released.clone();
    tokio::spawn(async move {
        let mut customer: Option<SocketAddr> = None;
        let (mut first, mut held) = (None::<u16>, None::<(u16, Vec<u8>)>);
        let mut a = vec![0u8; 2000];
        let mut b = vec![0u8; 2000];
        loop {
            tokio::select! {
                Ok((n, from)) = listen.recv_from(&mut a) => {
                    customer = Some(from);
                    let packet = &a[..n];
                    // The customer's video: clear RTP header, its payload type and SSRC.
                    let video = n > 12
                        && packet[0] >> 6 == 2
                        && packet[1] & 0x7f == VIDEO_PT
                        && packet[8..12] == 0x1111u32.to_be_bytes();
                    if video {
                        let seq = u16::from_be_bytes([packet[2], packet[3]]);
                        let target = first.get_or_insert(seq).wrapping_add(200);
                        if seq == target && held.is_none() && record.lock().unwrap().is_none() {
                            held = Some((seq, packet.to_vec()));
                            continue;
                        }
                        let _ = upstream.send_to(packet, server).await;
                        let due = |(h, _): &mut (u16, Vec<u8>)| seq.wrapping_sub(*h) >= 150;
                        if let Some((late, data)) = held.take_if(due) {
                            let _ = upstream.send_to(&data, server).await;
                            *record.lock().unwrap() = Some(late);
                        }
                        continue;
                    }
                    let _ = upstream.send_to(packet, server).await;
                }
                Ok((n, _)) = upstream.recv_from(&mut b) => {
                    if let Some(to) = customer {
                        let _ = listen.send_to(&b[..n], to).await;
                    }
                }
            }
        }
    });
    (addr, released)
}

/// str0m 0.25 forgot a hole once 100 newer packets had arrived and dropped its repair as a
/// duplicate; with the window set in `rtc_config` (vendor/str0m/PATCHES.md) the late packet is
/// forwarded to the technician.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_150_packets_late_is_still_forwarded() {
    let (sfu, _task) = Sfu::start(SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)).unwrap();
    let (proxy, released) = late_proxy(sfu.candidate_addr()).await;
    let record: Recorded = Arc::default();
    let side = TechnicianSide {
        record: Some(record.clone()),
        ..Default::default()
    };
    let mut call = call_via(sfu, SESSION, side, behind(proxy)).await;
    // 200 packets to the held one and 150 after it, one per 20 ms: about 7 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let late = loop {
        if let Some(late) = *released.lock().unwrap() {
            break late;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy never released the held packet"
        );
        collect(&mut call.technician.received, Duration::from_millis(200)).await;
    };
    // The customer's sequence numbers start at 1000 (common::send_stream_while).
    let wanted = payload(TAG_VIDEO, late.wrapping_sub(1000));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let forwarded = || {
        record
            .lock()
            .unwrap()
            .iter()
            .any(|(pt, _, p)| *pt == VIDEO_PT && unkeyed(p) == wanted.as_slice())
    };
    while !forwarded() && tokio::time::Instant::now() < deadline {
        collect(&mut call.technician.received, Duration::from_millis(100)).await;
    }
    assert!(
        forwarded(),
        "packet {late}, sent 150 packets late, never reached the technician"
    );
    call.sfu.stop(SESSION);
    call.hang_up().await;
}
