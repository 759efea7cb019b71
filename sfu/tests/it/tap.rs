//! The recorder tap: every packet the room lets through reaches the session's bounded channel
//! with its codec and arrival time; muted stretches arrive without payload; a full channel drops
//! and counts, and forwarding goes on.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use sfu::{MediaKind, PeerRole, TapEvent, TapPacket};
use tokio::sync::mpsc;

/// Everything the tap delivers within `window`.
async fn drain(tap: &mut mpsc::Receiver<TapEvent>, window: Duration) -> Vec<TapEvent> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, tap.recv()).await {
        events.push(event);
    }
    events
}

fn packets(events: &[TapEvent]) -> impl Iterator<Item = &TapPacket> {
    events.iter().filter_map(|e| match e {
        TapEvent::Rtp(p) => Some(p),
        TapEvent::SenderReport { .. } => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tap_receives_every_forwarded_packet_and_muted_stretches_without_payload() {
    let mut call = call().await;
    let mut tap = call.sfu.tap(SESSION, 4096).unwrap();
    let first = wait_for(
        &mut call.technician.received,
        [20, 20, 0],
        Duration::from_secs(15),
    )
    .await;
    assert!(first[0] >= 20, "technician got {first:?}");
    let first_events = drain(&mut tap, Duration::from_millis(1500)).await;

    let mut seen = [0u32; 3];
    for p in packets(&first_events) {
        assert!(!p.muted, "nothing was muted yet: {p:?}");
        // A keyframe the phone sent when asked is its packet n behind a prefix.
        let body = unkeyed(&p.payload);
        let n = u16::from_be_bytes([body[1], body[2]]);
        assert_eq!(
            body,
            payload(body[0], n).as_slice(),
            "tapped payload differs from what was sent"
        );
        let (i, from, kind, name, ssrc) = match body[0] {
            TAG_VIDEO => (0, PeerRole::Customer, MediaKind::Video, "VP8", 0x1111),
            TAG_CUSTOMER_AUDIO => (1, PeerRole::Customer, MediaKind::Audio, "opus", 0x2222),
            TAG_TECHNICIAN_AUDIO => (2, PeerRole::Technician, MediaKind::Audio, "opus", 0x3333),
            other => panic!("unexpected tag {other}"),
        };
        assert_eq!((p.from, p.kind, p.ssrc), (from, kind, ssrc), "{p:?}");
        assert_eq!(p.codec.name, name, "{p:?}");
        let rate = if kind == MediaKind::Video {
            90_000
        } else {
            48_000
        };
        assert_eq!(p.codec.clock_rate, rate, "{p:?}");
        // The sender's sequence numbers (it starts at 1000), not the SFU's rewritten ones.
        assert_eq!(p.seq & 0xffff, u64::from(n.wrapping_add(1000)), "{p:?}");
        seen[i] += 1;
    }
    assert!(seen.iter().all(|n| *n >= 20), "tapped per stream: {seen:?}");
    // Muted customer audio: still on the tap, flagged, without its content.
    call.sfu
        .set_flowing(SESSION, true, MediaKind::Audio, false)
        .unwrap();
    drain(&mut tap, Duration::from_millis(100)).await;
    let events = drain(&mut tap, Duration::from_millis(1000)).await;
    let customer_audio: Vec<&TapPacket> = packets(&events)
        .filter(|p| p.from == PeerRole::Customer && p.kind == MediaKind::Audio)
        .collect();
    assert!(customer_audio.len() >= 20, "{}", customer_audio.len());
    assert!(
        customer_audio
            .iter()
            .all(|p| p.muted && p.payload.is_empty()),
        "muted audio carried content on the tap"
    );
    assert!(
        packets(&events).any(|p| p.kind == MediaKind::Video && !p.muted),
        "video stopped on the tap while only audio was muted"
    );
    // Senders' reports, for lining streams up on one clock (webrtc-rs sends one a second).
    let reports: Vec<_> = first_events
        .iter()
        .chain(&events)
        .filter_map(|e| match e {
            TapEvent::SenderReport {
                from, kind, ssrc, ..
            } => Some((*from, *kind, *ssrc)),
            TapEvent::Rtp(_) => None,
        })
        .collect();
    for (from, kind, ssrc) in [
        (PeerRole::Customer, MediaKind::Video, 0x1111),
        (PeerRole::Customer, MediaKind::Audio, 0x2222),
        (PeerRole::Technician, MediaKind::Audio, 0x3333),
    ] {
        assert!(
            reports.contains(&(from, kind, ssrc)),
            "no sender report for {ssrc:#x}: {reports:?}"
        );
    }

    // The recorder's keyframe request reaches the phone.
    let plis = call.plis_at_customer.load(Ordering::SeqCst);
    call.sfu.request_keyframe(SESSION).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while call.plis_at_customer.load(Ordering::SeqCst) == plis
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        call.plis_at_customer.load(Ordering::SeqCst) > plis,
        "no keyframe request after request_keyframe"
    );
    assert_eq!(call.sfu.stats(SESSION).unwrap().tap_dropped, 0);

    // Stopping the session closes the tap.
    call.sfu.stop(SESSION);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while tap.recv().await.is_some() {}
    })
    .await;
    assert!(closed.is_ok(), "the tap stayed open after stop");
    call.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tap_drops_and_counts_and_never_stalls_forwarding() {
    let mut call = call().await;
    // Never read: full after four events.
    let _tap = call.sfu.tap(SESSION, 4).unwrap();
    wait_for(
        &mut call.technician.received,
        [10, 10, 0],
        Duration::from_secs(15),
    )
    .await;
    let dropped_then = call.sfu.stats(SESSION).unwrap().tap_dropped;
    assert!(dropped_then > 0, "a full tap dropped nothing");
    call.still_forwarding("the tap filled up").await;
    let stats = call.sfu.stats(SESSION).unwrap();
    assert!(stats.tap_dropped > dropped_then + 100, "{stats:?}");
    call.sfu.stop(SESSION);
    call.hang_up().await;
}
