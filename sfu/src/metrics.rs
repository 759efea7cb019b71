//! SFU-wide counters for monitoring: plain relaxed atomics, one set per shard (written by that
//! shard's thread only, so shards never contend for a cache line), summed by
//! [`crate::SfuHandle::metrics`] at scrape time. The sfu crate knows nothing of Prometheus; the
//! `lens` crate turns a [`MetricsSnapshot`] into metrics.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the receive→send latency histogram's buckets.
pub const FORWARD_LATENCY_BOUNDS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05,
];

#[derive(Default)]
pub(crate) struct EngineMetrics {
    pub(crate) rooms: AtomicI64,
    pub(crate) peers_connected: AtomicI64,
    /// Connected peers by the transport of their nominated path (index: [`Transport::index`]).
    pub(crate) peers_by_transport: [AtomicI64; 3],
    pub(crate) rtp_forwarded_packets: AtomicU64,
    pub(crate) rtp_forwarded_bytes: AtomicU64,
    pub(crate) nacks_received: AtomicU64,
    pub(crate) retransmissions: AtomicU64,
    pub(crate) keyframe_requests_forwarded: AtomicU64,
    pub(crate) keyframe_requests_sent: AtomicU64,
    pub(crate) keyframe_requests_repeated: AtomicU64,
    pub(crate) garbage_dropped: AtomicU64,
    /// Connectivity checks held until their peer joined, then handed to it (`early.rs`).
    pub(crate) early_checks: AtomicU64,
    pub(crate) send_failures: AtomicU64,
    pub(crate) shard_queue_drops: AtomicU64,
    pub(crate) peers_lost: AtomicU64,
    /// Datagrams sent inside UDP GSO sends (several datagrams, one system call).
    pub(crate) gso_datagrams: AtomicU64,
    /// Datagrams received coalesced by UDP GRO (split again before use).
    pub(crate) gro_datagrams: AtomicU64,
    /// This shard thread's CPU use over its last load period, in thousandths of one core, the
    /// time it waited for a CPU then (run-queue delay), and the rooms it had (`load.rs`): what
    /// room placement reads.
    pub(crate) cpu_permille: AtomicU64,
    pub(crate) wait_permille: AtomicU64,
    pub(crate) rooms_at_sample: AtomicU64,
    /// Per bucket (not cumulative); the last one is +Inf.
    latency_buckets: [AtomicU64; FORWARD_LATENCY_BOUNDS.len() + 1],
    latency_sum_ns: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl EngineMetrics {
    pub(crate) fn forwarded(&self, bytes: usize, latency: Duration) {
        add(&self.rtp_forwarded_packets, 1);
        add(&self.rtp_forwarded_bytes, bytes as u64);
        let seconds = latency.as_secs_f64();
        let bucket = FORWARD_LATENCY_BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(FORWARD_LATENCY_BOUNDS.len());
        add(&self.latency_buckets[bucket], 1);
        add(
            &self.latency_sum_ns,
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
        );
    }

    /// The sum over every shard's counters.
    pub(crate) fn snapshot(shards: &[std::sync::Arc<EngineMetrics>]) -> MetricsSnapshot {
        let sum = |f: fn(&EngineMetrics) -> &AtomicU64| -> u64 {
            shards.iter().map(|m| f(m).load(Ordering::Relaxed)).sum()
        };
        let gauge = |f: fn(&EngineMetrics) -> &AtomicI64| -> u64 {
            let total: i64 = shards.iter().map(|m| f(m).load(Ordering::Relaxed)).sum();
            u64::try_from(total).unwrap_or(0)
        };
        let mut cumulative = Vec::with_capacity(FORWARD_LATENCY_BOUNDS.len() + 1);
        let mut total = 0;
        for bucket in 0..=FORWARD_LATENCY_BOUNDS.len() {
            total += shards
                .iter()
                .map(|m| m.latency_buckets[bucket].load(Ordering::Relaxed))
                .sum::<u64>();
            cumulative.push(total);
        }
        MetricsSnapshot {
            rooms: gauge(|m| &m.rooms),
            peers_connected: gauge(|m| &m.peers_connected),
            peers_by_transport: [Transport::Udp, Transport::Tcp, Transport::Relay].map(|t| {
                let total: i64 = shards
                    .iter()
                    .map(|m| m.peers_by_transport[t.index()].load(Ordering::Relaxed))
                    .sum();
                (t, u64::try_from(total).unwrap_or(0))
            }),
            tcp: TcpSnapshot::default(),
            rtp_forwarded_packets: sum(|m| &m.rtp_forwarded_packets),
            rtp_forwarded_bytes: sum(|m| &m.rtp_forwarded_bytes),
            nacks_received: sum(|m| &m.nacks_received),
            retransmissions: sum(|m| &m.retransmissions),
            keyframe_requests_forwarded: sum(|m| &m.keyframe_requests_forwarded),
            keyframe_requests_sent: sum(|m| &m.keyframe_requests_sent),
            keyframe_requests_repeated: sum(|m| &m.keyframe_requests_repeated),
            garbage_dropped: sum(|m| &m.garbage_dropped),
            early_checks: sum(|m| &m.early_checks),
            send_failures: sum(|m| &m.send_failures),
            shard_queue_drops: sum(|m| &m.shard_queue_drops),
            peers_lost: sum(|m| &m.peers_lost),
            gso_datagrams: sum(|m| &m.gso_datagrams),
            gro_datagrams: sum(|m| &m.gro_datagrams),
            shards: shards.len() as u64,
            shard_cpu: shards
                .iter()
                .map(|m| m.cpu_permille.load(Ordering::Relaxed) as f64 / 1000.0)
                .collect(),
            shard_rooms: shards
                .iter()
                .map(|m| u64::try_from(m.rooms.load(Ordering::Relaxed)).unwrap_or(0))
                .collect(),
            shard_wait: shards
                .iter()
                .map(|m| m.wait_permille.load(Ordering::Relaxed) as f64 / 1000.0)
                .collect(),
            recv_buffer_bytes: 0,
            send_buffer_bytes: 0,
            kernel_drops: None,
            forward_latency: LatencyHistogram {
                bounds: &FORWARD_LATENCY_BOUNDS,
                count: total,
                cumulative,
                sum_seconds: sum(|m| &m.latency_sum_ns) as f64 / 1e9,
            },
        }
    }
}

/// The SFU's counters at one moment. Counters only grow; `rooms` and `peers_connected` are gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Sessions with media (rooms).
    pub rooms: u64,
    /// Peers whose ICE and DTLS are up.
    pub peers_connected: u64,
    /// Connected peers by the transport their media takes (once it has been used).
    pub peers_by_transport: [(Transport, u64); 3],
    /// The ICE-TCP listener's counters (all 0 when it is off).
    pub tcp: TcpSnapshot,
    /// RTP packets handed from one peer to the other, and their payload bytes.
    pub rtp_forwarded_packets: u64,
    pub rtp_forwarded_bytes: u64,
    /// RTCP NACK packets received from peers (answered from the retransmission buffer).
    pub nacks_received: u64,
    /// RTP packets resent (RTX) from the retransmission buffers.
    pub retransmissions: u64,
    /// Keyframe requests (PLI/FIR) from the technician passed on to the customer.
    pub keyframe_requests_forwarded: u64,
    /// Keyframe requests (PLI) the SFU sent of its own accord: technician connected, resume,
    /// video unpaused, recorder start.
    pub keyframe_requests_sent: u64,
    /// Keyframe requests (PLI) sent again because no keyframe followed one of the above (or a
    /// forwarded one) in time: a request or its answer lost on the way (`keyframe.rs`).
    pub keyframe_requests_repeated: u64,
    /// Datagrams on the media port that no peer accepted or that could not be parsed.
    pub garbage_dropped: u64,
    /// Connectivity checks that came before their peer (a console's checks racing its answer),
    /// held, and handed to the peer when it joined.
    pub early_checks: u64,
    /// Datagrams the kernel would not take at once (full send buffer): dropped, never waited on.
    pub send_failures: u64,
    /// Datagrams dropped because the shard they were for had a full queue (it fell behind).
    pub shard_queue_drops: u64,
    /// Times a connected peer's media was reported lost: silent for `lost_after`, or its TCP
    /// connection closed.
    pub peers_lost: u64,
    /// Datagrams sent in UDP GSO sends (one `sendmsg` for a run of datagrams of one size to one
    /// destination), and datagrams received coalesced by UDP GRO.
    pub gso_datagrams: u64,
    pub gro_datagrams: u64,
    /// Engine shards (threads) forwarding media.
    pub shards: u64,
    /// Each shard's CPU use over its last load period (about half a second), as a share of one
    /// core; new rooms are placed by it ([`crate::SfuConfig::shard_fill`]).
    pub shard_cpu: Vec<f64>,
    /// Each shard thread's run-queue delay over the same period (ready to run, waiting for a
    /// CPU), as a share of the period: high when the machine's cores are busy with other work.
    /// Counted in a shard's load for placement. 0 where the kernel does not report it.
    pub shard_wait: Vec<f64>,
    /// Rooms on each shard.
    pub shard_rooms: Vec<u64>,
    /// The media socket's kernel buffers as granted (Linux reports twice the usable size).
    pub recv_buffer_bytes: u64,
    pub send_buffer_bytes: u64,
    /// Datagrams the kernel dropped on the media socket because its receive buffer was full
    /// (Linux only: `/proc/net/udp`).
    pub kernel_drops: Option<u64>,
    pub forward_latency: LatencyHistogram,
}

/// How a peer's media reaches the server: its nominated ICE pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Straight to the UDP media port.
    Udp,
    /// ICE-TCP: a connection to the media TCP port.
    Tcp,
    /// Through a TURN server (the remote candidate is a relay candidate).
    Relay,
}

impl Transport {
    pub(crate) fn index(self) -> usize {
        match self {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Relay => 2,
        }
    }

    pub(crate) fn from_index(i: u8) -> Option<Transport> {
        match i {
            1 => Some(Transport::Udp),
            2 => Some(Transport::Tcp),
            3 => Some(Transport::Relay),
            _ => None,
        }
    }

    /// `udp`, `tcp` or `relay`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Relay => "relay",
        }
    }
}

/// The ICE-TCP listener's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpSnapshot {
    /// Connections accepted, and those a peer's ICE credentials then authenticated.
    pub connections_accepted: u64,
    pub connections_authenticated: u64,
    /// Closed at once: too many unauthenticated connections were open.
    pub connections_refused: u64,
    /// Closed because they sent no valid binding request for a known peer in time.
    pub handshake_timeouts: u64,
    /// Frames dropped as garbage (empty, too long, or a first frame that is no binding request
    /// naming a shard); a frame no peer accepts is counted in `garbage_dropped` like a datagram.
    pub garbage_frames: u64,
    /// Frames dropped because their shard's queue was full.
    pub queue_drops: u64,
    /// Connections open now, and how many of them are not authenticated yet.
    pub connections_open: u64,
    pub connections_unauthenticated: u64,
}

impl crate::tcp::TcpMetrics {
    pub(crate) fn snapshot(&self) -> TcpSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TcpSnapshot {
            connections_accepted: get(&self.accepted),
            connections_authenticated: get(&self.authenticated),
            connections_refused: get(&self.refused),
            handshake_timeouts: get(&self.handshake_timeouts),
            garbage_frames: get(&self.garbage_frames),
            queue_drops: get(&self.queue_drops),
            connections_open: self.open.load(Ordering::Relaxed) as u64,
            connections_unauthenticated: self.unauthenticated.load(Ordering::Relaxed) as u64,
        }
    }
}

/// Time from a datagram's arrival to the forwarded packet being handed to the socket.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    /// Bucket upper bounds in seconds; `cumulative` has one more entry (+Inf).
    pub bounds: &'static [f64],
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}
