//! Loss between the SFU and the technician: a UDP proxy on 127.0.0.1 drops some of the video
//! packets the server sends; the technician's NACK interceptor (webrtc-rs) asks for them, and the
//! SFU resends them over RTX from its retransmission buffer.

mod common;

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

/// Relays between the technician (whoever talks to `listen`) and the server; drops the server's
/// video packets whose sequence number ends in 3, each once, and records their numbers.
async fn loss_proxy(server: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u16>>>) {
    let listen = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = listen.local_addr().unwrap();
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
            let original = &p[2..];
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
