//! A console's connectivity checks that reach the server before its answer does (the answer
//! comes over the signalling WebSocket, the checks straight over UDP) are held for the peer and
//! answered when it joins, instead of being dropped until the console's retransmission timer
//! fires (`sfu/src/early.rs`).

use crate::common;

use std::time::Duration;

use common::*;
use sfu::{Sfu, SfuConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_beat_the_console_s_answer_are_held_and_answered_when_it_comes() {
    for shards in [1, 2] {
        let mut config = SfuConfig::new("127.0.0.1:0".parse().unwrap(), None);
        config.shards = shards;
        let (sfu, _threads) = Sfu::start(config).unwrap();
        let side = TechnicianSide {
            // Long enough for the console's ICE agent to have sent its first checks.
            answer_after: Some(Duration::from_millis(600)),
            ..TechnicianSide::default()
        };
        let mut call = call_with(sfu.clone(), side).await;
        call.still_forwarding("an answer that came after the checks")
            .await;
        let metrics = sfu.metrics();
        assert!(
            metrics.early_checks >= 1,
            "{shards} shard(s): no check was held for the console"
        );
        assert_eq!(
            metrics.garbage_dropped, 0,
            "{shards} shard(s): the console's early checks were dropped"
        );
        call.hang_up().await;
    }
}
