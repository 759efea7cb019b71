//! What leaves the forwarding path, checked on the wire after decryption: the console's RTP
//! payloads are the phone's, bit for bit, once each, with sequence numbers that move with the
//! phone's (one jump at a hold, where the SFU closes the gap), across a hold, an ICE restart and a
//! transfer; and SRTP/SRTCP from the phone's address that is replayed, reordered, truncated,
//! corrupted or random is dropped or forwarded once, never twice, and never stops the call.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use sfu::{Sfu, SfuConfig};
use webrtc::runtime::default_runtime;

/// Checks what one console recorded (payload type, its sequence number, payload) against what
/// the phone sent: every video and audio payload is the phone's packet `n` (the payload names
/// its stream and `n`) byte for byte, no packet of the phone arrives twice, and per stream the
/// console's sequence number minus the phone's changes at most `jumps` times (a hold closes the
/// gap it left; nothing else may shift, reorder or renumber). Returns the phone packets seen.
fn check_console(recorded: &Recorded, jumps: usize, what: &str) -> HashSet<(u8, u16)> {
    let recorded = recorded.lock().unwrap();
    let mut seen = HashSet::new();
    let mut offsets: HashMap<u8, Vec<u16>> = HashMap::new();
    for (pt, seq, p) in recorded.iter() {
        let tag = match *pt {
            VIDEO_PT => TAG_VIDEO,
            OPUS_PT => TAG_CUSTOMER_AUDIO,
            // RTX or anything else is not a first delivery.
            _ => continue,
        };
        // A keyframe the phone sent when asked is its packet n behind a prefix.
        let p = unkeyed(p);
        assert!(p.len() >= 3, "{what}: a {}-byte payload", p.len());
        assert_eq!(
            p[0], tag,
            "{what}: payload type {pt} carried another stream"
        );
        let n = u16::from_be_bytes([p[1], p[2]]);
        assert_eq!(p, payload(tag, n), "{what}: payload {n} changed on the way");
        assert!(
            seen.insert((tag, n)),
            "{what}: phone packet {n} of {tag} arrived twice"
        );
        // The phone numbers packet n as n + 1000.
        let offset = seq.wrapping_sub(n.wrapping_add(1000));
        let stream = offsets.entry(tag).or_default();
        if stream.last() != Some(&offset) {
            stream.push(offset);
        }
    }
    for (tag, stream) in offsets {
        assert!(
            stream.len() <= jumps + 1,
            "{what}: stream {tag}'s sequence numbers shifted {} times: {stream:?}",
            stream.len() - 1
        );
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_receives_the_phone_s_payloads_bit_for_bit_across_hold_ice_restart_and_transfer()
 {
    let (sfu, _threads) = Sfu::start(SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)).unwrap();
    let first: Recorded = Arc::default();
    let side = TechnicianSide {
        record: Some(first.clone()),
        ..Default::default()
    };
    let mut call = call_with(sfu.clone(), side).await;
    call.still_forwarding("the call started").await;

    sfu.hold(SESSION).unwrap();
    collect(&mut call.technician.received, Duration::from_millis(600)).await;
    sfu.resume(SESSION).unwrap();
    call.still_forwarding("the resume").await;

    call.restart_customer_ice().await;
    call.still_forwarding("the ICE restart").await;
    // One jump per stream (the hold), none at the ICE restart.
    let before = check_console(&first, 1, "first console").len();
    assert!(before >= 200, "first console saw {before} packets");

    // Transfer: a new console replaces the first.
    let second: Recorded = Arc::default();
    let runtime = default_runtime().unwrap();
    let side = TechnicianSide {
        record: Some(second.clone()),
        ..Default::default()
    };
    let old = std::mem::replace(
        &mut call.technician,
        technician(&runtime, &sfu, SESSION, side).await,
    );
    old.pc.close().await.ok();
    call.still_forwarding("the transfer").await;
    let after = check_console(&second, 0, "second console").len();
    assert!(after >= 100, "second console saw {after} packets");

    sfu.stop(SESSION);
    call.hang_up().await;
}

/// RTP, not RTCP (RFC 5761: RTCP's packet types 200-206 mask to 72-78).
fn is_rtp(d: &[u8]) -> bool {
    d.len() >= 12 && d[0] >> 6 == 2 && !(72..=78).contains(&(d[1] & 0x7f))
}

/// The phone packet an RTP datagram from the test's phone carries: (stream tag, n).
fn phone_packet(d: &[u8]) -> Option<(u8, u16)> {
    if !is_rtp(d) {
        return None;
    }
    let n = u16::from_be_bytes([d[2], d[3]]).wrapping_sub(1000);
    match u32::from_be_bytes([d[8], d[9], d[10], d[11]]) {
        0x1111 => Some((TAG_VIDEO, n)),
        0x2222 => Some((TAG_CUSTOMER_AUDIO, n)),
        _ => None,
    }
}

/// A UDP relay between the phone and the server that keeps copies of the phone's SRTP and SRTCP
/// (while `capture` is set) and, while `reorder` is set, sends every fifth RTP packet after the
/// one that follows it (remembering which). The server sees everything from the relay's
/// upstream socket, the phone's address as far as it knows.
struct Injector {
    addr: SocketAddr,
    upstream: Arc<tokio::net::UdpSocket>,
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    capture: Arc<AtomicBool>,
    reorder: Arc<AtomicBool>,
    reordered: Arc<Mutex<Vec<(u8, u16)>>>,
}

async fn injector(server: SocketAddr) -> Injector {
    let listen = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let injector = Injector {
        addr: listen.local_addr().unwrap(),
        upstream: upstream.clone(),
        captured: Arc::default(),
        capture: Arc::new(AtomicBool::new(true)),
        reorder: Arc::default(),
        reordered: Arc::default(),
    };
    let (captured, capture) = (injector.captured.clone(), injector.capture.clone());
    let (reorder, reordered) = (injector.reorder.clone(), injector.reordered.clone());
    tokio::spawn(async move {
        let mut phone: Option<SocketAddr> = None;
        let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
        let mut held: Option<Vec<u8>> = None;
        let mut count = 0u64;
        loop {
            tokio::select! {
                Ok((n, from)) = listen.recv_from(&mut a) => {
                    phone = Some(from);
                    let d = &a[..n];
                    let srtp = d.first().is_some_and(|b| (128..=191).contains(b));
                    if srtp && capture.load(Ordering::Relaxed) {
                        let mut captured = captured.lock().unwrap();
                        if captured.len() < 2000 {
                            captured.push(d.to_vec());
                        }
                    }
                    if is_rtp(d) && reorder.load(Ordering::Relaxed) {
                        count += 1;
                        if count.is_multiple_of(5) && held.is_none() {
                            held = Some(d.to_vec());
                            continue;
                        }
                    }
                    let _ = upstream.send_to(d, server).await;
                    if let Some(late) = held.take() {
                        if let Some(p) = phone_packet(&late) {
                            reordered.lock().unwrap().push(p);
                        }
                        let _ = upstream.send_to(&late, server).await;
                    }
                }
                Ok((n, _)) = upstream.recv_from(&mut b) => {
                    if let Some(to) = phone {
                        let _ = listen.send_to(&b[..n], to).await;
                    }
                }
            }
        }
    });
    injector
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_reordered_truncated_and_corrupted_srtp_and_srtcp_are_dropped_or_forwarded_once() {
    let (sfu, _threads) = Sfu::start(SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)).unwrap();
    let server = sfu.candidate_addr();
    let injector = injector(server).await;
    let recorded: Recorded = Arc::default();
    let side = TechnicianSide {
        record: Some(recorded.clone()),
        ..Default::default()
    };
    let mut call = call_via(sfu.clone(), SESSION, side, behind(injector.addr)).await;
    call.still_forwarding("the call started").await;
    injector.capture.store(false, Ordering::Relaxed);
    let captured = injector.captured.lock().unwrap().clone();
    let rtcp = captured.iter().filter(|d| !is_rtp(d)).count();
    assert!(
        captured.len() - rtcp >= 50 && rtcp >= 1,
        "captured {} RTP and {rtcp} RTCP datagrams",
        captured.len() - rtcp
    );
    let garbage_before = sfu.metrics().garbage_dropped;

    // Fresh packets out of order from now on, and 4,000 forged datagrams from the phone's
    // address in bursts, while the call goes on.
    injector.reorder.store(true, Ordering::Relaxed);
    let mut rng = Noise(0x5eed_1e55_f00d_cafe);
    let mut corrupted = 0u64;
    for burst in 0..125 {
        for _ in 0..32 {
            let original = &captured[rng.below(captured.len())];
            let mut d = original.clone();
            match rng.below(5) {
                // Replayed as it was: must not be forwarded again.
                0 => {}
                // Truncated anywhere, header included.
                1 => {
                    d.truncate(rng.below(d.len()));
                    corrupted += 1;
                }
                // One to four bytes changed past the first (still looks like RTP/RTCP).
                2 => {
                    for _ in 0..1 + rng.below(4) {
                        let i = 1 + rng.below(d.len() - 1);
                        d[i] ^= 1 + rng.below(255) as u8;
                    }
                    corrupted += 1;
                }
                // A valid header with a random body and tag.
                3 => {
                    let keep = if is_rtp(&d) { 12 } else { 8 };
                    for byte in d.iter_mut().skip(keep) {
                        *byte = rng.next() as u8;
                    }
                    corrupted += 1;
                }
                // Random bytes of any length with an RTP/RTCP first byte.
                _ => {
                    let len = rng.below(1200);
                    d = rng.bytes(len);
                    if let Some(first) = d.first_mut() {
                        *first = 0x80 | (*first & 0x3f);
                    }
                    corrupted += 1;
                }
            }
            // An empty datagram is not sent by the kernel's rules; skip it.
            if !d.is_empty() {
                let _ = injector.upstream.send_to(&d, server).await;
            }
        }
        if burst % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // The call carries on, also with fresh packets reordered.
    call.still_forwarding("the forged datagrams").await;
    injector.reorder.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let seen = check_console(&recorded, 0, "console");
    let reordered = injector.reordered.lock().unwrap().clone();
    let arrived = reordered.iter().filter(|p| seen.contains(p)).count();
    assert!(
        reordered.len() >= 10 && arrived * 10 >= reordered.len() * 9,
        "{arrived} of {} reordered packets arrived",
        reordered.len()
    );
    // Corrupted ones fail to parse or to authenticate; replays may be dropped either way.
    let garbage = sfu.metrics().garbage_dropped - garbage_before;
    assert!(
        garbage > 0 && garbage <= 4000,
        "{garbage} datagrams counted as garbage for {corrupted} corrupted ones"
    );
    assert_eq!(sfu.metrics().peers_connected, 2);

    sfu.stop(SESSION);
    call.hang_up().await;
}
