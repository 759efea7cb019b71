//! Lost media noticed in seconds: a connected peer from which nothing (RTP, RTCP, STUN) arrives
//! for `lost_after` is reported down, and up again as soon as it is heard; a peer that only
//! stops its RTP (video paused, microphone muted) keeps sending RTCP and consent checks and is
//! never reported lost.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use sfu::{PeerEvent, PeerRole, Sfu, SfuConfig};

const LOST_AFTER: Duration = Duration::from_millis(1500);

fn sfu() -> sfu::SfuHandle {
    let mut config = SfuConfig::new("127.0.0.1:0".parse().unwrap(), None);
    config.lost_after = LOST_AFTER;
    let (sfu, _threads) = Sfu::start(config).unwrap();
    sfu
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_goes_silent_is_lost_within_lost_after_and_back_when_heard() {
    let sfu = sfu();
    let relay = relay(sfu.candidate_addr(), false).await;
    let mut call = call_via(
        sfu.clone(),
        SESSION,
        TechnicianSide::default(),
        behind(relay.addr),
    )
    .await;
    call.still_forwarding("connecting through the relay").await;
    let mut events = sfu.peer_events().unwrap();

    // The path goes dead without anything being closed.
    relay.quiet.store(true, Ordering::Relaxed);
    let silent = Instant::now();
    let down = next_event(&mut events).await;
    let took = silent.elapsed();
    assert_eq!(
        down,
        PeerEvent {
            session: SESSION,
            role: PeerRole::Customer,
            up: false
        }
    );
    assert!(
        took <= LOST_AFTER + Duration::from_secs(1),
        "reported lost after {took:?}"
    );
    println!("silent phone reported lost after {took:?} (lost_after {LOST_AFTER:?})");
    assert!(sfu.metrics().peers_lost >= 1);

    // Packets flow again: up, and forwarding goes on.
    relay.quiet.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let up = next_event(&mut events).await;
    assert_eq!(up, PeerEvent { up: true, ..down });
    println!("reported back {:?} after the path returned", back.elapsed());
    collect(&mut call.technician.received, Duration::from_millis(200)).await;
    call.still_forwarding("the path came back").await;
    sfu.stop(SESSION);
    call.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_and_muted_phone_is_not_lost() {
    let sfu = sfu();
    let mut call = call_via(
        sfu.clone(),
        SESSION,
        TechnicianSide::default(),
        CustomerSide::default(),
    )
    .await;
    call.still_forwarding("connecting").await;
    let mut events = sfu.peer_events().unwrap();
    // No more RTP from the phone; its RTCP and ICE consent checks go on, as a browser's do.
    call.customer_sending.store(false, Ordering::Relaxed);
    let quiet = LOST_AFTER * 6;
    match tokio::time::timeout(quiet, events.recv()).await {
        Err(_) => {}
        Ok(event) => panic!("a quiet phone was reported: {event:?}"),
    }
    let stats = sfu.stats(SESSION).unwrap();
    assert!(stats.customer.transport.is_some(), "{stats:?}");
    assert_eq!(sfu.metrics().peers_lost, 0);
    // And its media resumes at once.
    call.customer_sending.store(true, Ordering::Relaxed);
    call.still_forwarding("unpausing").await;
    sfu.stop(SESSION);
    call.hang_up().await;
}
