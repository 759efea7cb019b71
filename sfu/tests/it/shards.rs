//! The SFU split over two engine shards (threads) on one UDP port: sessions on different shards
//! forward at the same time; a session on the second shard (which never reads the socket itself)
//! survives a transfer and an ICE restart from a new address; the counters add up over shards.

use crate::common;

use std::time::Duration;

use common::*;
use sfu::{Sfu, SfuConfig, SfuHandle};
use webrtc::runtime::default_runtime;

fn two_shards() -> SfuHandle {
    // Rooms spread from the first (shard 0 keeps none to itself): these tests need shard 1.
    let config = SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)
        .with_shards(2)
        .with_shard_fill(0.0);
    let (sfu, threads) = Sfu::start(config).unwrap();
    assert_eq!(threads.shards(), 2);
    sfu
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_two_shards_forward_at_the_same_time() {
    let sfu = two_shards();
    let mut first = call_in(sfu.clone(), 1, TechnicianSide::default()).await;
    let mut second = call_in(sfu.clone(), 2, TechnicianSide::default()).await;
    // The least-loaded shard takes each new room.
    assert_eq!(sfu.shard_of(1), Some(0));
    assert_eq!(sfu.shard_of(2), Some(1));

    tokio::join!(
        first.still_forwarding("session 1 started"),
        second.still_forwarding("session 2 started")
    );

    let metrics = sfu.metrics();
    assert_eq!(metrics.shards, 2);
    assert_eq!(metrics.rooms, 2);
    assert_eq!(metrics.peers_connected, 4, "{metrics:?}");
    for session in [1, 2] {
        let stats = sfu.stats(session).unwrap();
        assert!(stats.customer.rtp_forwarded > 0 && stats.technician.rtp_forwarded > 0);
        assert!(stats.customer.bytes_in > 0 && stats.technician.bytes_out > 0);
    }
    assert!(metrics.rtp_forwarded_packets > 0);

    sfu.stop(1);
    sfu.stop(2);
    first.hang_up().await;
    second.hang_up().await;
    // `stop` only sends each shard a command: under load a shard may take a moment to run it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut metrics = sfu.metrics();
    while (metrics.rooms, metrics.peers_connected) != (0, 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        metrics = sfu.metrics();
    }
    assert_eq!((metrics.rooms, metrics.peers_connected), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_on_the_second_shard_survives_a_transfer_and_an_ice_restart() {
    let sfu = two_shards();
    // A room on shard 0 first, so the call's room goes to shard 1.
    sfu.start(100, true).unwrap();
    let mut call = call_in(sfu.clone(), 2, TechnicianSide::default()).await;
    assert_eq!(sfu.shard_of(2), Some(1));
    call.still_forwarding("the call started").await;

    // Transfer: a new console answers a new offer and replaces the technician's peer.
    let runtime = default_runtime().unwrap();
    let old = std::mem::replace(
        &mut call.technician,
        technician(&runtime, &sfu, 2, TechnicianSide::default()).await,
    );
    old.pc.close().await.ok();
    call.still_forwarding("the transfer").await;

    // ICE restart from a new socket: the checks from the new address carry the new local ufrag,
    // which must still name shard 1.
    call.restart_customer_ice().await;
    let stats = sfu.stats(2).unwrap();
    assert!(stats.customer.rtp_forwarded > 0);
    assert_eq!(sfu.metrics().peers_connected, 2);

    sfu.stop(2);
    sfu.stop(100);
    call.hang_up().await;
    // Nothing waits on the shards: a while later they are idle, not gone.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sfu.metrics().rooms, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reading_shard_takes_rooms_until_it_is_busy() {
    let config = SfuConfig::new("127.0.0.1:0".parse().unwrap(), None).with_shards(2);
    assert_eq!(config.shard_fill, sfu::DEFAULT_SHARD_FILL);
    // Half a core at an assumed 5 per mille per room not yet measured: 99 rooms fit on shard 0.
    let (sfu, _threads) = Sfu::start(config).unwrap();
    for session in 1..=120 {
        sfu.start(session, true).unwrap();
    }
    let on_zero = (1..=120).filter(|s| sfu.shard_of(*s) == Some(0)).count();
    assert!(
        (90..=100).contains(&on_zero),
        "{on_zero} of 120 idle rooms on shard 0"
    );
    assert_eq!(sfu.shard_of(1), Some(0));
    assert_eq!(sfu.shard_of(120), Some(1));
    // Each shard publishes what its thread used; idle rooms cost next to nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cpu = sfu.metrics().shard_cpu;
    assert_eq!(cpu.len(), 2);
    assert!(cpu.iter().all(|c| (0.0..=1.0).contains(c)), "{cpu:?}");
    let wait = sfu.metrics().shard_wait;
    assert_eq!(wait.len(), 2);
    assert!(wait.iter().all(|w| *w >= 0.0), "{wait:?}");
    // Measured idle, shard 0 takes new rooms again.
    sfu.start(121, true).unwrap();
    assert_eq!(sfu.shard_of(121), Some(0));
}
