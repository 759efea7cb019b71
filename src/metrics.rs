//! Prometheus metrics on `/metrics`: HTTP requests by route and status, and their latency; sessions;
//! and the media path (the SFU's counters, read at scrape time).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::app::AppState;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    pub login_attempts: IntCounterVec,
    pub active_tokens_issued: IntGauge,
    sessions: prometheus::IntGaugeVec,
    transitions: IntCounterVec,
    code_attempts: IntCounterVec,
    websockets: prometheus::IntGaugeVec,
    /// Report files being written now (`reports.max_concurrent_exports` at most).
    pub report_exports_running: IntGauge,
    report_exports: IntCounterVec,
    /// Rows written into report files.
    pub report_export_rows: prometheus::IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("lens".into()), None).unwrap_or_default();
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .expect("static metric definition");
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )
        .expect("static metric definition");
        let login_attempts = IntCounterVec::new(
            Opts::new("login_attempts_total", "Login attempts by outcome"),
            &["outcome"],
        )
        .expect("static metric definition");
        let active_tokens_issued =
            IntGauge::new("auth_tokens_issued", "Login tokens issued since start")
                .expect("static metric definition");
        let sessions = prometheus::IntGaugeVec::new(
            Opts::new("sessions", "Live sessions by status"),
            &["status"],
        )
        .expect("static metric definition");
        let transitions = IntCounterVec::new(
            Opts::new("session_transitions_total", "Session status transitions"),
            &["from", "to"],
        )
        .expect("static metric definition");
        let code_attempts = IntCounterVec::new(
            Opts::new(
                "code_attempts_total",
                "Customer code (PIN or link) attempts by outcome",
            ),
            &["outcome"],
        )
        .expect("static metric definition");
        let websockets = prometheus::IntGaugeVec::new(
            Opts::new("websockets_open", "Open WebSockets by side"),
            &["side"],
        )
        .expect("static metric definition");
        let report_exports_running =
            IntGauge::new("report_exports_running", "Report files being written now")
                .expect("static metric definition");
        let report_exports = IntCounterVec::new(
            Opts::new(
                "report_exports_total",
                "Report files by format and outcome: completed, failed, cancelled (the client \
                 went away), stalled (the client stopped reading), refused (429: too many at once)",
            ),
            &["format", "outcome"],
        )
        .expect("static metric definition");
        let report_export_rows = prometheus::IntCounter::new(
            "report_export_rows_total",
            "Rows written into report files",
        )
        .expect("static metric definition");
        for c in [
            Box::new(report_exports_running.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(report_exports.clone()),
            Box::new(report_export_rows.clone()),
            Box::new(sessions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(transitions.clone()),
            Box::new(code_attempts.clone()),
            Box::new(websockets.clone()),
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_latency.clone()),
            Box::new(login_attempts.clone()),
            Box::new(active_tokens_issued.clone()),
        ] {
            let _ = registry.register(c);
        }
        Metrics {
            registry,
            http_requests,
            http_latency,
            login_attempts,
            active_tokens_issued,
            sessions,
            transitions,
            code_attempts,
            websockets,
            report_exports_running,
            report_exports,
            report_export_rows,
        }
    }

    /// A report file ended (or was refused) with `outcome`.
    pub fn report_export(&self, format: &str, outcome: &str) {
        self.report_exports
            .with_label_values(&[format, outcome])
            .inc();
    }

    /// A session moved; `from` is empty for a new session. Final statuses are not gauged.
    pub fn session_transition(&self, from: &str, to: &str) {
        let live = |s: &str| signaling::status::Status::parse(s).is_some_and(|st| !st.is_final());
        if live(from) {
            self.sessions.with_label_values(&[from]).dec();
        }
        if live(to) {
            self.sessions.with_label_values(&[to]).inc();
        }
        if !from.is_empty() {
            self.transitions.with_label_values(&[from, to]).inc();
        }
    }

    pub fn code_attempt(&self, outcome: &str) {
        self.code_attempts.with_label_values(&[outcome]).inc();
    }

    pub fn websocket_opened(&self, side: &str) {
        self.websockets.with_label_values(&[side]).inc();
    }

    pub fn websocket_closed(&self, side: &str) {
        self.websockets.with_label_values(&[side]).dec();
    }

    /// Exports the SFU's counters (`lens_media_*`), read from its atomics at each scrape.
    pub fn register_media(&self, sfu: sfu::SfuHandle) {
        if let Err(e) = self.registry.register(Box::new(MediaCollector::new(sfu))) {
            tracing::warn!(error = %e, "media metrics not registered");
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Records every request under its route template (not the raw path, which would explode the
/// label set with ids).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics;
    m.http_latency
        .with_label_values(&[&method, &route])
        .observe(start.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}

pub async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}

/// The media metrics: (name, help, type). Names get the registry's `lens_` prefix.
const MEDIA_METRICS: [(&str, &str, MetricType); 24] = [
    (
        "media_rooms",
        "Sessions with media in the SFU",
        MetricType::GAUGE,
    ),
    (
        "media_peers_connected",
        "WebRTC peers with ICE and DTLS up",
        MetricType::GAUGE,
    ),
    (
        "media_rtp_forwarded_packets_total",
        "RTP packets forwarded from one peer to the other",
        MetricType::COUNTER,
    ),
    (
        "media_rtp_forwarded_bytes_total",
        "RTP payload bytes forwarded from one peer to the other",
        MetricType::COUNTER,
    ),
    (
        "media_nacks_received_total",
        "RTCP NACKs received from peers",
        MetricType::COUNTER,
    ),
    (
        "media_rtp_retransmitted_packets_total",
        "RTP packets resent (RTX) from the retransmission buffers",
        MetricType::COUNTER,
    ),
    (
        "media_keyframe_requests_total",
        "Keyframe requests sent to the phone: forwarded from the technician, the server's own, or repeated when no keyframe followed",
        MetricType::COUNTER,
    ),
    (
        "media_garbage_datagrams_total",
        "Datagrams on the media port dropped: unparseable or for no peer",
        MetricType::COUNTER,
    ),
    (
        "media_ice_early_checks_total",
        "Connectivity checks that arrived before their peer's answer, held and handed to the peer when it joined",
        MetricType::COUNTER,
    ),
    (
        "media_send_failures_total",
        "Datagrams the kernel would not take at once (full send buffer), dropped",
        MetricType::COUNTER,
    ),
    (
        "media_shard_queue_drops_total",
        "Datagrams dropped because the engine shard they were for had fallen behind",
        MetricType::COUNTER,
    ),
    (
        "media_shards",
        "Media engine shards (threads) sharing the media port",
        MetricType::GAUGE,
    ),
    (
        "media_socket_buffer_bytes",
        "Kernel buffer of the media socket as granted (Linux reports twice the usable size)",
        MetricType::GAUGE,
    ),
    (
        "media_socket_kernel_drops_total",
        "Datagrams the kernel dropped on the media socket because its receive buffer was full",
        MetricType::COUNTER,
    ),
    (
        "media_forward_latency_seconds",
        "Time from a packet's arrival to its forwarded copy being handed to the socket",
        MetricType::HISTOGRAM,
    ),
    (
        "media_peers_by_transport",
        "Connected WebRTC peers by the transport of their media: udp, tcp (ICE-TCP), relay (TURN)",
        MetricType::GAUGE,
    ),
    (
        "media_peers_lost_total",
        "Connected peers whose media was reported lost (silent for media.lost_after, or TCP closed)",
        MetricType::COUNTER,
    ),
    (
        "media_tcp_connections_total",
        "Connections to the ICE-TCP port: accepted, authenticated by a peer's ICE credentials, refused (too many unauthenticated), timed out unauthenticated",
        MetricType::COUNTER,
    ),
    (
        "media_tcp_connections_open",
        "Open connections to the ICE-TCP port, authenticated or not",
        MetricType::GAUGE,
    ),
    (
        "media_tcp_frames_dropped_total",
        "Frames on the ICE-TCP port dropped: garbage (empty, too long, no binding request first) or their shard's queue full",
        MetricType::COUNTER,
    ),
    (
        "media_udp_batched_datagrams_total",
        "Datagrams on the media port sent in UDP GSO sends (way=gso_sent) or received coalesced by UDP GRO (way=gro_received)",
        MetricType::COUNTER,
    ),
    (
        "media_shard_cpu_ratio",
        "CPU used by each media engine shard's thread over its last half second, as a share of one core (new sessions are placed by it and the wait: media.shard_fill)",
        MetricType::GAUGE,
    ),
    (
        "media_shard_wait_ratio",
        "Time each media engine shard's thread was ready to run but waited for a CPU over its last half second (run-queue delay), as a share of it: the machine's cores are busy with other work",
        MetricType::GAUGE,
    ),
    (
        "media_shard_rooms",
        "Sessions with media on each media engine shard",
        MetricType::GAUGE,
    ),
];

struct MediaCollector {
    sfu: sfu::SfuHandle,
    descs: Vec<prometheus::core::Desc>,
}

impl MediaCollector {
    fn new(sfu: sfu::SfuHandle) -> Self {
        let descs = MEDIA_METRICS
            .iter()
            .filter_map(|(name, help, _)| {
                let labels = match *name {
                    "media_keyframe_requests_total" => vec!["origin".to_owned()],
                    "media_socket_buffer_bytes" => vec!["direction".to_owned()],
                    "media_peers_by_transport" => vec!["transport".to_owned()],
                    "media_tcp_connections_total" => vec!["outcome".to_owned()],
                    "media_tcp_connections_open" => vec!["state".to_owned()],
                    "media_tcp_frames_dropped_total" => vec!["reason".to_owned()],
                    "media_udp_batched_datagrams_total" => vec!["way".to_owned()],
                    "media_shard_cpu_ratio" | "media_shard_wait_ratio" | "media_shard_rooms" => {
                        vec!["shard".to_owned()]
                    }
                    _ => vec![],
                };
                prometheus::core::Desc::new(
                    (*name).to_owned(),
                    (*help).to_owned(),
                    labels,
                    Default::default(),
                )
                .ok()
            })
            .collect();
        MediaCollector { sfu, descs }
    }
}

fn number(kind: MetricType, value: u64, labels: &[(&str, &str)]) -> Metric {
    let mut metric = Metric::from_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect(),
    );
    if kind == MetricType::GAUGE {
        let mut gauge = prometheus::proto::Gauge::default();
        gauge.set_value(value as f64);
        metric.set_gauge(gauge);
    } else {
        let mut counter = prometheus::proto::Counter::default();
        counter.set_value(value as f64);
        metric.set_counter(counter);
    }
    metric
}

/// A gauge per engine shard (label `shard`).
fn per_shard(values: &[f64]) -> Vec<Metric> {
    values
        .iter()
        .enumerate()
        .map(|(shard, value)| {
            let mut metric = number(MetricType::GAUGE, 0, &[("shard", &shard.to_string())]);
            let mut gauge = prometheus::proto::Gauge::default();
            gauge.set_value(*value);
            metric.set_gauge(gauge);
            metric
        })
        .collect()
}

impl prometheus::core::Collector for MediaCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let m = self.sfu.metrics();
        let mut latency = prometheus::proto::Histogram::default();
        latency.set_sample_count(m.forward_latency.count);
        latency.set_sample_sum(m.forward_latency.sum_seconds);
        latency.set_bucket(
            m.forward_latency
                .bounds
                .iter()
                .zip(&m.forward_latency.cumulative)
                .map(|(bound, count)| {
                    let mut bucket = prometheus::proto::Bucket::default();
                    bucket.set_upper_bound(*bound);
                    bucket.set_cumulative_count(*count);
                    bucket
                })
                .collect(),
        );
        let mut latency_metric = Metric::default();
        latency_metric.set_histogram(latency);
        let tcp = &m.tcp;
        let values: [Vec<Metric>; 24] = [
            vec![number(MetricType::GAUGE, m.rooms, &[])],
            vec![number(MetricType::GAUGE, m.peers_connected, &[])],
            vec![number(MetricType::COUNTER, m.rtp_forwarded_packets, &[])],
            vec![number(MetricType::COUNTER, m.rtp_forwarded_bytes, &[])],
            vec![number(MetricType::COUNTER, m.nacks_received, &[])],
            vec![number(MetricType::COUNTER, m.retransmissions, &[])],
            vec![
                number(
                    MetricType::COUNTER,
                    m.keyframe_requests_forwarded,
                    &[("origin", "technician")],
                ),
                number(
                    MetricType::COUNTER,
                    m.keyframe_requests_sent,
                    &[("origin", "server")],
                ),
                number(
                    MetricType::COUNTER,
                    m.keyframe_requests_repeated,
                    &[("origin", "repeat")],
                ),
            ],
            vec![number(MetricType::COUNTER, m.garbage_dropped, &[])],
            vec![number(MetricType::COUNTER, m.early_checks, &[])],
            vec![number(MetricType::COUNTER, m.send_failures, &[])],
            vec![number(MetricType::COUNTER, m.shard_queue_drops, &[])],
            vec![number(MetricType::GAUGE, m.shards, &[])],
            vec![
                number(
                    MetricType::GAUGE,
                    m.recv_buffer_bytes,
                    &[("direction", "receive")],
                ),
                number(
                    MetricType::GAUGE,
                    m.send_buffer_bytes,
                    &[("direction", "send")],
                ),
            ],
            m.kernel_drops
                .map(|d| vec![number(MetricType::COUNTER, d, &[])])
                .unwrap_or_default(),
            vec![latency_metric],
            m.peers_by_transport
                .iter()
                .map(|(t, n)| number(MetricType::GAUGE, *n, &[("transport", t.as_str())]))
                .collect(),
            vec![number(MetricType::COUNTER, m.peers_lost, &[])],
            [
                ("accepted", tcp.connections_accepted),
                ("authenticated", tcp.connections_authenticated),
                ("refused", tcp.connections_refused),
                ("handshake_timeout", tcp.handshake_timeouts),
            ]
            .iter()
            .map(|(o, n)| number(MetricType::COUNTER, *n, &[("outcome", o)]))
            .collect(),
            vec![
                number(
                    MetricType::GAUGE,
                    tcp.connections_open
                        - tcp.connections_unauthenticated.min(tcp.connections_open),
                    &[("state", "authenticated")],
                ),
                number(
                    MetricType::GAUGE,
                    tcp.connections_unauthenticated,
                    &[("state", "unauthenticated")],
                ),
            ],
            vec![
                number(
                    MetricType::COUNTER,
                    tcp.garbage_frames,
                    &[("reason", "garbage")],
                ),
                number(
                    MetricType::COUNTER,
                    tcp.queue_drops,
                    &[("reason", "queue_full")],
                ),
            ],
            vec![
                number(MetricType::COUNTER, m.gso_datagrams, &[("way", "gso_sent")]),
                number(
                    MetricType::COUNTER,
                    m.gro_datagrams,
                    &[("way", "gro_received")],
                ),
            ],
            per_shard(&m.shard_cpu),
            per_shard(&m.shard_wait),
            per_shard(&m.shard_rooms.iter().map(|n| *n as f64).collect::<Vec<_>>()),
        ];
        MEDIA_METRICS
            .iter()
            .zip(values)
            .map(|((name, help, kind), metrics)| {
                let mut family = MetricFamily::default();
                family.set_name((*name).to_owned());
                family.set_help((*help).to_owned());
                family.set_field_type(*kind);
                family.set_metric(metrics);
                family
            })
            .collect()
    }
}
