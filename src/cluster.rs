//! This server as one node of several on one store (issue 15, DESIGN.md §8).
//!
//! Every `lens serve` registers a row in `nodes` and writes a heartbeat every 2 s; a node whose
//! heartbeat is older than 10 s is dead. A node is `serving` or `draining`: draining (SIGTERM with
//! PostgreSQL, or `POST /api/v1/nodes/{id}/drain` on any node) means no new sessions here, and the
//! process exits once it holds no live session or after `cluster.drain_limit_seconds`. A node that
//! cannot reach its store, or whose row a later start of the same id took over (fenced), is
//! unhealthy and takes no new session either. On SQLite the store has exactly this one node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts};
use tokio::sync::watch;

use crate::config::Config;
use crate::store::nodes::{HEARTBEAT_MS, NodeRegistration};
use crate::store::{Backend, Store};

/// Why a node takes no new session (and `/healthz` answers 503), if it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Serving,
    Draining,
    StoreUnreachable,
    /// Another process started with the same node id after this one.
    Fenced,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Serving => "serving",
            Health::Draining => "draining",
            Health::StoreUnreachable => "store_unavailable",
            Health::Fenced => "fenced",
        }
    }
}

pub struct Node {
    pub id: String,
    backend: Backend,
    registration: NodeRegistration,
    /// 0 until registered.
    epoch: AtomicI64,
    draining: watch::Sender<bool>,
    store_ok: AtomicBool,
    fenced: AtomicBool,
    metrics: NodeMetrics,
}

struct NodeMetrics {
    draining: IntGauge,
    store_reachable: IntGauge,
    load: IntGauge,
    heartbeat_failures: IntCounter,
    registry: IntGaugeVec,
}

impl NodeMetrics {
    fn new(registry: &prometheus::Registry, id: &str) -> NodeMetrics {
        let gauge =
            |name: &str, help: &str| IntGauge::new(name, help).expect("static metric definition");
        let draining = gauge(
            "node_draining",
            "1 while this node drains (no new sessions)",
        );
        let store_reachable = gauge(
            "node_store_reachable",
            "1 while this node's last heartbeat reached the store",
        );
        let load = gauge("node_load", "Live sessions this node holds");
        let heartbeat_failures = IntCounter::new(
            "node_heartbeat_failures_total",
            "Heartbeats that could not be written to the store",
        )
        .expect("static metric definition");
        let registry_gauge = IntGaugeVec::new(
            Opts::new(
                "node_registry",
                "Nodes in the registry by state (serving, draining, dead), as this node last read it",
            ),
            &["state"],
        )
        .expect("static metric definition");
        let info = IntGaugeVec::new(Opts::new("node_info", "This node's id"), &["node_id"])
            .expect("static metric definition");
        info.with_label_values(&[id]).set(1);
        store_reachable.set(1);
        for c in [
            Box::new(draining.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(store_reachable.clone()),
            Box::new(load.clone()),
            Box::new(heartbeat_failures.clone()),
            Box::new(registry_gauge.clone()),
            Box::new(info),
        ] {
            let _ = registry.register(c);
        }
        NodeMetrics {
            draining,
            store_reachable,
            load,
            heartbeat_failures,
            registry: registry_gauge,
        }
    }
}

/// The default node id: the host name and the listen port, stable across restarts.
fn default_node_id(config: &Config) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    let host: String = if ok {
        String::from_utf8_lossy(&buf[..end])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .take(50)
            .collect()
    } else {
        String::new()
    };
    let host = if host.is_empty() { "lens".into() } else { host };
    format!("{host}-{}", config.listen.port())
}

impl Node {
    /// The node this process is; `media` is the address its ICE candidates carry.
    pub fn new(
        config: &Config,
        backend: Backend,
        media: std::net::SocketAddr,
        tcp_port: Option<u16>,
        registry: &prometheus::Registry,
    ) -> Arc<Node> {
        let id = if config.cluster.node_id.is_empty() {
            default_node_id(config)
        } else {
            config.cluster.node_id.clone()
        };
        let internal_url = if config.cluster.internal_url.is_empty() {
            let scheme = if config.tls_enabled() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", config.listen)
        } else {
            config
                .cluster
                .internal_url
                .trim_end_matches('/')
                .to_string()
        };
        let registration = NodeRegistration {
            id: id.clone(),
            internal_url,
            media_address: media.ip().to_string(),
            udp_port: i64::from(media.port()),
            tcp_port: tcp_port.map(i64::from),
        };
        let metrics = NodeMetrics::new(registry, &id);
        Arc::new(Node {
            id,
            backend,
            registration,
            epoch: AtomicI64::new(0),
            draining: watch::channel(false).0,
            store_ok: AtomicBool::new(true),
            fenced: AtomicBool::new(false),
            metrics,
        })
    }

    /// Several nodes may share the store (PostgreSQL); on SQLite this is the only node.
    pub fn shares_store(&self) -> bool {
        self.backend == Backend::Postgres
    }

    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Relaxed)
    }

    pub async fn register(&self, store: &Store) -> crate::store::Result<()> {
        let epoch = store.register_node(&self.registration).await?;
        self.epoch.store(epoch, Ordering::Relaxed);
        tracing::info!(node_id = %self.id, epoch, "registered as a node");
        Ok(())
    }

    pub fn health(&self) -> Health {
        if self.fenced.load(Ordering::Relaxed) {
            Health::Fenced
        } else if *self.draining.borrow() {
            Health::Draining
        } else if !self.store_ok.load(Ordering::Relaxed) {
            Health::StoreUnreachable
        } else {
            Health::Serving
        }
    }

    /// Whether this node takes a new session now.
    pub fn accepting(&self) -> bool {
        self.health() == Health::Serving
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Stops taking new sessions; the process exits once empty or at the drain limit.
    pub fn start_drain(&self, why: &str) {
        let started = self
            .draining
            .send_if_modified(|d| !std::mem::replace(d, true));
        if started {
            self.metrics.draining.set(1);
            tracing::warn!(node_id = %self.id, why, "draining: no new sessions on this node");
        }
    }

    pub async fn drain_requested(&self) {
        let mut rx = self.draining.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// A failed store call outside the heartbeat (health checks) counts too.
    pub fn store_reachable(&self, ok: bool) {
        self.store_ok.store(ok, Ordering::Relaxed);
        self.metrics.store_reachable.set(i64::from(ok));
    }

    /// Writes the heartbeat every 2 s with the node's load, and picks up a drain asked through
    /// another node.
    pub async fn run_heartbeat(self: Arc<Self>, store: Store, hub: Arc<crate::sessions::Hub>) {
        let mut tick = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS as u64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.beat(&store, &hub).await;
        }
    }

    async fn beat(&self, store: &Store, hub: &crate::sessions::Hub) {
        let load = i64::try_from(hub.live_count()).unwrap_or(i64::MAX);
        self.metrics.load.set(load);
        let beat = tokio::time::timeout(
            Duration::from_millis(HEARTBEAT_MS as u64 * 2),
            store.node_heartbeat(&self.id, self.epoch(), load, self.is_draining()),
        )
        .await;
        match beat {
            Ok(Ok(Some(state))) => {
                self.store_reachable(true);
                if state == "draining" {
                    self.start_drain("asked through the API");
                }
            }
            Ok(Ok(None)) => {
                if !self.fenced.swap(true, Ordering::Relaxed) {
                    tracing::error!(node_id = %self.id, "another process registered with this node id: \
                        this one takes no new sessions (set cluster.node_id to a unique name)");
                }
            }
            Ok(Err(e)) => {
                self.heartbeat_failed(&e.to_string());
                return;
            }
            Err(_) => {
                self.heartbeat_failed("timed out");
                return;
            }
        }
        if let Ok(nodes) = store.nodes().await {
            let (mut serving, mut draining, mut dead) = (0, 0, 0);
            for n in &nodes {
                match (n.alive(), n.state.as_str()) {
                    (false, _) => dead += 1,
                    (true, "draining") => draining += 1,
                    (true, _) => serving += 1,
                }
            }
            let g = &self.metrics.registry;
            g.with_label_values(&["serving"]).set(serving);
            g.with_label_values(&["draining"]).set(draining);
            g.with_label_values(&["dead"]).set(dead);
        }
    }

    fn heartbeat_failed(&self, error: &str) {
        self.metrics.heartbeat_failures.inc();
        if self.store_ok.load(Ordering::Relaxed) {
            tracing::error!(node_id = %self.id, error, "heartbeat failed: the store is unreachable, \
                no new sessions on this node until it answers");
        }
        self.store_reachable(false);
    }

    /// The process is about to exit: the row reads as dead at once.
    pub async fn stopped(&self, store: &Store) {
        if let Err(e) = store.node_stopped(&self.id, self.epoch()).await {
            tracing::warn!(error = %e, "could not mark this node stopped in the registry");
        }
    }
}

/// SIGTERM and SIGINT, each delivery once.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = recv(&mut self.term) => {},
                _ = recv(&mut self.int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves when the server should stop serving. With a shared store, the first SIGTERM drains
/// (as does a drain asked through the API on either store); the node then stops once it holds no
/// live session, at the drain limit, or at a second signal (which exits at once). On SQLite a
/// signal stops the server at once, as before: its sessions come back when it restarts.
pub async fn until_stopped(state: crate::app::AppState) {
    let node = state.node.clone();
    let mut signals = Signals::new();
    tokio::select! {
        _ = signals.next() => {
            if !node.shares_store() {
                tracing::info!("shutting down");
                node.stopped(&state.store).await;
                exit_on_next_signal(signals);
                return;
            }
            node.start_drain("signal");
        }
        _ = node.drain_requested() => {}
    }
    let limit = Duration::from_secs(u64::from(state.config.cluster.drain_limit_seconds));
    let empty = async {
        while state.hub.live_count() > 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        _ = empty => tracing::info!("drained: no live session left on this node"),
        _ = tokio::time::sleep(limit) => tracing::warn!(
            live = state.hub.live_count(),
            "drain limit reached (cluster.drain_limit_seconds): stopping with live sessions, \
             which come back when this node id starts again"
        ),
        _ = signals.next() => {
            tracing::warn!("second signal while draining: exiting now");
            std::process::exit(0);
        }
    }
    state.hub.flush().await;
    // Recordings of sessions that moved away finish their file here first (a few seconds at most).
    let finishing = async {
        while state.recorder.active_count() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), finishing)
        .await
        .is_err()
    {
        tracing::warn!("stopping with recordings still being written");
    }
    node.stopped(&state.store).await;
    tracing::info!("shutting down");
    exit_on_next_signal(signals);
}

/// While open connections close, another signal ends the process at once.
fn exit_on_next_signal(mut signals: Signals) {
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(0);
    });
}
