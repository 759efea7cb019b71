//! Routed signaling between nodes on one PostgreSQL (issue 15, DESIGN.md §8).
//!
//! A live session has one owner node (`sessions.node_id`), which holds its state machine and its
//! room. A client socket that reached another node (its *home*) is carried to the owner through the
//! bus (`store::bus`): the home forwards the client's frames as they came, the owner runs them
//! through the very same socket code as a local socket (a *hosted* socket whose frames arrive from
//! the bus and whose replies and events go back through it), and the home relays those to the
//! client. So every rule, event and report row is decided on one node, exactly as with one node.
//!
//! - A customer socket is carried whole to the node that holds its code (or resume token).
//! - A console is mirrored on every other live node (a hosted console of the same technician
//!   there), so that each node's queue and events reach it and each node's desk knows the
//!   technician is online; its commands go to the owner of the session they name, and
//!   `create_session` goes to the least-loaded serving node (placement).
//!
//! A forwarded request that the owner does not answer within [`ROUTE_TIMEOUT`] is answered by the
//! home with a `node_unavailable` error: a socket never hangs on a dead or draining owner. Every 2 s
//! each node takes over the live sessions of dead nodes (failover: one atomic update of their owner,
//! then restored as after a restart) and lets go of sessions another node took over from it while
//! it was cut off (fencing). With SQLite there is no router and everything stays in-process.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use signaling::protocol::{ErrorCode, ServerFrame, TechnicianStatus};
use signaling::session::UserId;
use tokio::sync::{Notify, mpsc};

use super::{Outbound, Outgoing, Socket, close, send};

mod moves;
use crate::app::AppState;
use crate::store::bus::{BUS_CHANNEL, BusMessage};

/// How long a home waits for the owner's answer to a forwarded request.
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(4);
/// The safety net under NOTIFY: the bus is read this often even when nothing woke the node.
const POLL: Duration = Duration::from_secs(1);
/// How often a console's mirrors are checked against the live nodes.
const MIRROR_REFRESH: Duration = Duration::from_secs(2);

/// Message kinds, home → owner.
const OPEN_CUSTOMER: &str = "c_open";
const OPEN_CONSOLE: &str = "k_open";
const FRAME_IN: &str = "in";
const CONSOLE_STATUS: &str = "k_status";
const BYE: &str = "bye";
/// `POST /api/v1/sessions` placed on another node: body `{"user", "body"}`.
const CREATE: &str = "create";
/// Its answer: `{"ok": Created}` or `{"error": {"code", "message"}}`.
const CREATED: &str = "created";
/// Owner → home.
const FRAME_OUT: &str = "out";
const CLOSE: &str = "close";
/// Drain and failover (`moves`): a home carries a customer socket to its session's new owner;
/// a draining node hands a session to another; a new owner tells every node which sessions it
/// holds now.
const REHOME_CUSTOMER: &str = "c_rehome";
const TAKE: &str = "take";
const MOVED: &str = "moved";

/// A client socket of this node whose session (or part of whose queue) lives elsewhere.
struct Proxy {
    tx: Outbound,
    /// Forwarded requests waiting for their answer: request id → (when sent, to which node).
    pending: HashMap<String, (Instant, String)>,
    /// Nodes this socket is carried to (a console: one mirror per node; a customer: the owner).
    nodes: HashSet<String>,
    /// A console's technician (for its mirrors).
    technician: Option<UserId>,
    /// A customer socket: the client's address, and the session and resume token its owner's
    /// `join`/`resume` reply named (to re-home the socket when the session moves).
    addr: Option<IpAddr>,
    session: Option<i64>,
    resume_token: Option<String>,
    /// The id of the `resume` a re-home sent on the client's behalf: its reply is not the
    /// client's.
    own_request: Option<String>,
}

/// A socket of another node run here.
struct Hosted {
    frames: mpsc::UnboundedSender<String>,
    technician: Option<UserId>,
}

pub struct Router {
    state: AppState,
    me: String,
    proxies: Mutex<HashMap<i64, Proxy>>,
    hosted: Mutex<HashMap<(String, i64), Hosted>>,
    outgoing: mpsc::UnboundedSender<BusMessage>,
    /// Creations placed on other nodes, waiting for their answer.
    calls: Mutex<HashMap<i64, tokio::sync::oneshot::Sender<String>>>,
    next_conn: std::sync::atomic::AtomicI64,
    /// Routed round trips, for the `lens_routed_request_seconds` histogram.
    latency: prometheus::Histogram,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Router {
    /// Starts the bus: the listener, the sender and the time-out watch.
    pub fn start(state: &AppState) -> Arc<Router> {
        let (outgoing, queue) = mpsc::unbounded_channel();
        let latency = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "routed_request_seconds",
                "Round trip of a client request forwarded to the session's owner node",
            )
            .buckets(vec![
                0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
        )
        .expect("static metric definition");
        let _ = state.metrics.registry.register(Box::new(latency.clone()));
        let router = Arc::new(Router {
            state: state.clone(),
            me: state.node.id.clone(),
            proxies: Mutex::new(HashMap::new()),
            hosted: Mutex::new(HashMap::new()),
            outgoing,
            calls: Mutex::new(HashMap::new()),
            next_conn: std::sync::atomic::AtomicI64::new(1),
            latency,
        });
        tokio::spawn(send_loop(state.store.clone(), queue));
        tokio::spawn(router.clone().listen());
        tokio::spawn(router.clone().watch());
        // A drain (SIGTERM, or asked through any node) moves this node's live sessions away.
        let mover = router.clone();
        tokio::spawn(async move {
            mover.state.node.drain_requested().await;
            mover.move_out().await;
        });
        router
    }

    pub fn node_id(&self) -> &str {
        &self.me
    }

    fn send(&self, to: &str, conn: i64, kind: &str, body: String) {
        let _ = self.outgoing.send(BusMessage {
            to_node: to.to_string(),
            from_node: self.me.clone(),
            conn,
            kind: kind.into(),
            body,
        });
    }

    fn new_conn(&self) -> i64 {
        self.next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    // ---- the home side ----

    /// Carries a customer socket to `owner`; `first` is the client's first frame (join/resume).
    pub fn open_customer(&self, owner: &str, addr: IpAddr, tx: Outbound) -> i64 {
        let conn = self.new_conn();
        lock(&self.proxies).insert(
            conn,
            Proxy {
                tx,
                pending: HashMap::new(),
                nodes: HashSet::from([owner.to_string()]),
                technician: None,
                addr: Some(addr),
                session: None,
                resume_token: None,
                own_request: None,
            },
        );
        self.send(owner, conn, OPEN_CUSTOMER, addr.to_string());
        conn
    }

    /// Registers a console that said hello here; its mirrors open on the live nodes now and as
    /// nodes come.
    pub fn open_console(self: &Arc<Self>, technician: UserId, tx: Outbound) -> i64 {
        let conn = self.new_conn();
        lock(&self.proxies).insert(
            conn,
            Proxy {
                tx,
                pending: HashMap::new(),
                nodes: HashSet::new(),
                technician: Some(technician),
                addr: None,
                session: None,
                resume_token: None,
                own_request: None,
            },
        );
        let router = self.clone();
        tokio::spawn(async move {
            loop {
                if !router.refresh_mirrors(conn).await {
                    return;
                }
                tokio::time::sleep(MIRROR_REFRESH).await;
            }
        });
        conn
    }

    /// Opens mirrors of a console on live nodes that lack one. False once the console is gone.
    async fn refresh_mirrors(&self, conn: i64) -> bool {
        let nodes = match self.state.store.nodes().await {
            Ok(n) => n,
            Err(_) => return lock(&self.proxies).contains_key(&conn),
        };
        let mut proxies = lock(&self.proxies);
        let Some(p) = proxies.get_mut(&conn) else {
            return false;
        };
        let alive: HashSet<String> = nodes
            .iter()
            .filter(|n| n.alive() && n.id != self.me)
            .map(|n| n.id.clone())
            .collect();
        // A node that died loses its mirror here; if it comes back, it gets a new one.
        p.nodes.retain(|n| alive.contains(n));
        let technician = p.technician.unwrap_or_default();
        for node in alive {
            if p.nodes.insert(node.clone()) {
                self.open_mirror(&node, conn, technician);
            }
        }
        true
    }

    /// Forwards a client frame to `node`; a request (with an id) is timed until its answer.
    /// False when the socket is no longer carried (its owner did not answer in time): the caller
    /// handles the frame itself.
    pub fn forward(&self, conn: i64, node: &str, text: &str, request_id: Option<&str>) -> bool {
        let mut node = node.to_string();
        {
            let mut proxies = lock(&self.proxies);
            let Some(p) = proxies.get_mut(&conn) else {
                return false;
            };
            // A customer socket goes to its session's owner now (it may have been re-homed).
            if p.technician.is_none()
                && let Some(owner) = p.nodes.iter().next()
            {
                node = owner.clone();
            }
            if let Some(id) = request_id {
                p.pending
                    .insert(id.to_string(), (Instant::now(), node.clone()));
            }
        }
        self.send(&node, conn, FRAME_IN, text.to_string());
        true
    }

    /// Whether a console's mirror on `node` is open (or opens it now).
    pub fn ensure_mirror(&self, conn: i64, node: &str) {
        let mut proxies = lock(&self.proxies);
        if let Some(p) = proxies.get_mut(&conn)
            && p.nodes.insert(node.to_string())
        {
            let technician = p.technician.unwrap_or_default();
            self.open_mirror(node, conn, technician);
        }
    }

    /// Opens a console's mirror on `node`, with the technician's current status there.
    fn open_mirror(&self, node: &str, conn: i64, technician: UserId) {
        self.send(node, conn, OPEN_CONSOLE, technician.to_string());
        if let Some(status) = self.state.hub.console_status(technician) {
            self.send(node, conn, CONSOLE_STATUS, status_name(status));
        }
    }

    /// A console's status change reaches its mirrors (they answer nothing).
    pub fn console_status(&self, conn: i64, status: TechnicianStatus) {
        let nodes: Vec<String> = lock(&self.proxies)
            .get(&conn)
            .map(|p| p.nodes.iter().cloned().collect())
            .unwrap_or_default();
        for node in nodes {
            self.send(&node, conn, CONSOLE_STATUS, status_name(status));
        }
    }

    /// The client socket closed: its hosted sockets elsewhere close too.
    pub fn close(&self, conn: i64) {
        if let Some(p) = lock(&self.proxies).remove(&conn) {
            for node in p.nodes {
                self.send(&node, conn, BYE, String::new());
            }
        }
    }

    /// Frames from the owner to one of this node's client sockets.
    fn deliver(&self, conn: i64, kind: &str, body: String) {
        let mut proxies = lock(&self.proxies);
        let Some(p) = proxies.get_mut(&conn) else {
            return;
        };
        if kind == CLOSE {
            close(&p.tx, body.parse().unwrap_or(1000));
            return;
        }
        let id = answered(&body);
        if let Some(id) = &id
            && let Some((sent, _)) = p.pending.remove(id)
        {
            self.latency.observe(sent.elapsed().as_secs_f64());
        }
        if p.technician.is_none() && moves::own_reply(p, id.as_deref(), &body) {
            return;
        }
        let _ = p.tx.try_send(Outgoing::Frame(Arc::from(body)));
    }

    /// Answers forwarded requests that waited too long with `node_unavailable`.
    async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_sweep = Instant::now();
        loop {
            tick.tick().await;
            let mut dropped = Vec::new();
            {
                let mut proxies = lock(&self.proxies);
                for (conn, p) in proxies.iter_mut() {
                    let late: Vec<(String, String)> = p
                        .pending
                        .iter()
                        .filter(|(_, (at, _))| at.elapsed() >= ROUTE_TIMEOUT)
                        .map(|(id, (_, node))| (id.clone(), node.clone()))
                        .collect();
                    // A customer socket whose owner went silent is no longer carried: its next
                    // frame (a new join or resume) looks for the session's owner again. (Not
                    // when the silent node is one it was re-homed away from.)
                    if p.technician.is_none() && late.iter().any(|(_, n)| p.nodes.contains(n)) {
                        dropped.push(*conn);
                    }
                    for (id, node) in late {
                        p.pending.remove(&id);
                        tracing::warn!(node_id = %node, "a routed request got no answer from its owner node");
                        send(
                            &p.tx,
                            &ServerFrame::error(
                                Some(id),
                                ErrorCode::NodeUnavailable,
                                format!(
                                    "the node that holds this session ({node}) did not answer; try again"
                                ),
                            ),
                        );
                    }
                }
            }
            for conn in dropped {
                self.close(conn);
            }
            if last_sweep.elapsed() >= Duration::from_secs(2) {
                last_sweep = Instant::now();
                self.sweep_hosted().await;
            }
        }
    }

    /// Hosted sockets whose home node died are closed (their clients are gone with it), and the
    /// live sessions of dead nodes are taken over here (failover).
    async fn sweep_hosted(&self) {
        let Ok(nodes) = self.state.store.nodes().await else {
            return;
        };
        if self.state.node.accepting() {
            for dead in nodes.iter().filter(|n| !n.alive() && n.id != self.me) {
                self.adopt(&dead.id).await;
            }
        }
        // Fencing: sessions another node took over while this one was cut off are let go.
        let hub = &self.state.hub;
        match self.state.store.sessions_moved(&self.me, &hub.held()).await {
            Ok(moved) => {
                for id in moved {
                    tracing::warn!(
                        session_id = id,
                        "another node took this session over: letting it go"
                    );
                    hub.relinquish(id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the sessions' owners"),
        }
        let alive: HashSet<&str> = nodes
            .iter()
            .filter(|n| n.alive())
            .map(|n| n.id.as_str())
            .collect();
        lock(&self.hosted).retain(|(home, _), _| alive.contains(home.as_str()));
    }

    /// Creates a session on `node` for `technician` (the API's `POST /api/v1/sessions` placed
    /// there). `node_unavailable` when the node does not answer in time.
    pub async fn create_on(
        &self,
        node: &str,
        technician: UserId,
        body: &serde_json::Value,
    ) -> Result<super::create::Created, signaling::protocol::ProtocolError> {
        use signaling::protocol::ProtocolError;
        let conn = self.new_conn();
        let (done, answer) = tokio::sync::oneshot::channel();
        lock(&self.calls).insert(conn, done);
        let request = serde_json::json!({"user": technician, "body": body});
        self.send(node, conn, CREATE, request.to_string());
        let answer = tokio::time::timeout(ROUTE_TIMEOUT, answer).await;
        lock(&self.calls).remove(&conn);
        let unavailable = || {
            ProtocolError::new(
                ErrorCode::NodeUnavailable,
                format!("the node chosen for the session ({node}) did not answer; try again"),
            )
        };
        let text = answer
            .map_err(|_| unavailable())?
            .map_err(|_| unavailable())?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| unavailable())?;
        if let Ok(created) = serde_json::from_value(v["ok"].clone()) {
            return Ok(created);
        }
        let code =
            serde_json::from_value(v["error"]["code"].clone()).unwrap_or(ErrorCode::Internal);
        let message = v["error"]["message"].as_str().unwrap_or_default();
        Err(ProtocolError::new(code, message))
    }

    /// Runs a creation placed here by another node and answers it.
    async fn create_here(&self, m: BusMessage) {
        let request: serde_json::Value = serde_json::from_str(&m.body).unwrap_or_default();
        let hub = &self.state.hub;
        let result = async {
            let id = request["user"].as_i64().unwrap_or_default();
            // The technician's current record, as a local creation reads it.
            let user = hub.store().user(id).await.map_err(|_| {
                signaling::protocol::ProtocolError::new(
                    ErrorCode::InvalidToken,
                    "your account no longer exists",
                )
            })?;
            let body: signaling::protocol::CreateSession =
                serde_json::from_value(request["body"].clone()).map_err(|e| {
                    signaling::protocol::ProtocolError::new(
                        ErrorCode::ValidationFailed,
                        e.to_string(),
                    )
                })?;
            hub.create_session(&user, &body, None).await
        }
        .await;
        let answer = match result {
            Ok(created) => serde_json::json!({"ok": created}),
            Err(e) => serde_json::json!({"error": {"code": e.code, "message": e.message}}),
        };
        self.send(&m.from_node, m.conn, CREATED, answer.to_string());
    }

    /// Takes over the live sessions of a dead node: they come back here as after a restart
    /// (Reconnecting; their clients resume, routed here now, and offer again).
    async fn adopt(&self, dead: &str) {
        match self.state.store.adopt_sessions(dead, &self.me).await {
            Ok(rows) if rows.is_empty() => {}
            Ok(rows) => {
                let n = rows.len();
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                match self
                    .state
                    .hub
                    .restore_rows(rows, &super::Restored::TakenOver)
                    .await
                {
                    Ok(_) => {
                        tracing::warn!(dead_node = %dead, sessions = n, "took over the sessions of a dead node");
                        // Customer sockets carried to the dead node come here now.
                        self.announce(&ids).await;
                    }
                    Err(e) => {
                        tracing::error!(dead_node = %dead, error = %e, "cannot restore sessions taken over")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(dead_node = %dead, error = %e, "cannot take over a dead node's sessions")
            }
        }
    }

    // ---- the owner side ----

    fn host(&self, m: BusMessage) {
        let key = (m.from_node.clone(), m.conn);
        match m.kind.as_str() {
            OPEN_CUSTOMER | OPEN_CONSOLE | REHOME_CUSTOMER => {
                let technician = if m.kind == OPEN_CONSOLE {
                    match m.body.parse::<UserId>() {
                        Ok(t) => Some(t),
                        Err(_) => return,
                    }
                } else {
                    None
                };
                let (frames, inbound) = mpsc::unbounded_channel();
                let (tx, outbound) = mpsc::channel::<Outgoing>(super::OUTBOUND_QUEUE);
                let writer = tokio::spawn(relay_out(
                    self.state.hub.clone(),
                    self.me.clone(),
                    m.from_node.clone(),
                    m.conn,
                    outbound,
                ));
                let socket = Socket::hosted(inbound, tx, writer);
                // A second open of the same connection replaces (and so closes) the first.
                lock(&self.hosted).insert(key, Hosted { frames, technician });
                let state = self.state.clone();
                match technician {
                    Some(t) => {
                        tokio::spawn(super::console::run_mirror(state, t, socket));
                    }
                    None => {
                        let addr = m
                            .body
                            .parse()
                            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                        let how = if m.kind == REHOME_CUSTOMER {
                            super::customer::Carried::Rehomed
                        } else {
                            super::customer::Carried::Hosted
                        };
                        tokio::spawn(super::customer::run_socket(state, addr, socket, how));
                    }
                }
            }
            FRAME_IN => {
                if let Some(h) = lock(&self.hosted).get(&key) {
                    let _ = h.frames.send(m.body);
                }
            }
            CONSOLE_STATUS => {
                let technician = lock(&self.hosted).get(&key).and_then(|h| h.technician);
                let status: Option<TechnicianStatus> =
                    serde_json::from_value(serde_json::Value::String(m.body)).ok();
                if let (Some(t), Some(s)) = (technician, status) {
                    self.state.hub.set_console_status(t, s);
                }
            }
            BYE => {
                lock(&self.hosted).remove(&key);
            }
            _ => tracing::warn!(kind = %m.kind, "unknown bus message"),
        }
    }

    fn dispatch(self: &Arc<Self>, m: BusMessage) {
        match m.kind.as_str() {
            FRAME_OUT | CLOSE => self.deliver(m.conn, &m.kind, m.body),
            CREATED => {
                if let Some(done) = lock(&self.calls).remove(&m.conn) {
                    let _ = done.send(m.body);
                }
            }
            CREATE => {
                let router = self.clone();
                tokio::spawn(async move { router.create_here(m).await });
            }
            TAKE => {
                let router = self.clone();
                tokio::spawn(async move { router.take(m).await });
            }
            MOVED => self.moved(&m),
            _ => self.host(m),
        }
    }

    /// Reads the bus whenever NOTIFY wakes this node, and every [`POLL`] in case a notification
    /// was missed (the listener's connection dropped, PostgreSQL restarted).
    async fn listen(self: Arc<Self>) {
        let woken = Arc::new(Notify::new());
        tokio::spawn(notifications(
            self.state.config.database_url.clone(),
            self.me.clone(),
            woken.clone(),
        ));
        loop {
            loop {
                match self.state.store.bus_take(&self.me, 500).await {
                    Ok(msgs) => {
                        let n = msgs.len();
                        for (_, m) in msgs {
                            self.dispatch(m);
                        }
                        if n < 500 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the bus");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = woken.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

fn status_name(status: TechnicianStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The request id a server frame answers (`ok`, `error` or `pong` with an id).
fn answered(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "type")]
        kind: String,
        id: Option<String>,
    }
    let a: Answer = serde_json::from_str(text).ok()?;
    matches!(a.kind.as_str(), "ok" | "error" | "pong")
        .then_some(a.id)
        .flatten()
}

/// Home → owner messages, in order, a batch per transaction.
async fn send_loop(store: crate::store::Store, mut queue: mpsc::UnboundedReceiver<BusMessage>) {
    let mut batch = Vec::with_capacity(256);
    while queue.recv_many(&mut batch, 256).await > 0 {
        // A store that is down for a moment: retry a few times rather than lose client frames.
        let mut tries = 0;
        while let Err(e) = store.bus_send(&batch).await {
            tries += 1;
            if tries >= 10 {
                tracing::error!(error = %e, messages = batch.len(), "cannot send on the bus");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * tries)).await;
        }
        batch.clear();
    }
}

/// A hosted socket's outgoing frames go back to its home through the hub's writer, after the
/// state they report (the writer keeps the hub's order).
async fn relay_out(
    hub: Arc<super::Hub>,
    me: String,
    home: String,
    conn: i64,
    mut outbound: mpsc::Receiver<Outgoing>,
) {
    while let Some(item) = outbound.recv().await {
        let (kind, body) = match item {
            Outgoing::Frame(text) => (FRAME_OUT, text.to_string()),
            Outgoing::Close(code) => (CLOSE, code.to_string()),
        };
        hub.bus_out(BusMessage {
            to_node: home.clone(),
            from_node: me.clone(),
            conn,
            kind: kind.into(),
            body,
        });
    }
}

/// LISTEN on the bus channel; wakes the reader when a notification names this node.
async fn notifications(url: String, me: String, woken: Arc<Notify>) {
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(BUS_CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN on the bus");
                } else {
                    // Anything sent while not listening is read now.
                    woken.notify_one();
                    loop {
                        match listener.recv().await {
                            Ok(n) if n.payload() == me => woken.notify_one(),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the bus listener lost PostgreSQL");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the bus listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The live node with the least load that takes new sessions; ties go to this node.
pub async fn placement(state: &AppState) -> Option<String> {
    if state.config.cluster.placement == crate::config::Placement::Local {
        return None;
    }
    let nodes = state.store.nodes().await.ok()?;
    let me = &state.node.id;
    let best = nodes
        .iter()
        .filter(|n| n.alive() && n.state == "serving")
        .min_by_key(|n| (n.load, &n.id != me))?;
    // The registry may know of a drain (asked through another node) before this node does.
    let stay = nodes
        .iter()
        .find(|n| &n.id == me)
        .is_some_and(|n| n.state == "serving" && n.load <= best.load)
        && state.node.accepting();
    (!stay && &best.id != me).then(|| best.id.clone())
}
