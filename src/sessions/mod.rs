//! The session hub: the live side of Lens sessions.
//!
//! It owns the pure state machine ([`signaling::session::Desk`]) behind one short lock, the codes
//! of live sessions, and the open WebSockets of customers and technician consoles. Every input goes
//! through [`Hub::apply`]: the desk decides, and the hub appends the transitions to the store (in
//! order, through one writer task), tells every party what changed, and hands effects to the media
//! plan and the outbox. One scheduler task sleeps until the desk's next deadline.

mod attempts;
pub mod console;
pub mod create;
pub mod customer;
pub mod outbox;
mod queue;
pub mod route;
pub mod timings;
pub mod tools;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use signaling::protocol::{
    ChatFrom, CodeMethod, DeviceInfo, ReofferReason, ServerFrame, SessionView, TechnicianRef,
    TechnicianStatus,
};
use signaling::session::{
    Actor, Command, Desk, Effect, Millis, NoTechnicianAvailable, Output, Policy, Reason, Refusal,
    Session, SessionId, Timeouts, TransferTarget, UserId,
};
use signaling::status::Status;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::api::rfc3339;
use crate::auth::throttle::Throttle;
use crate::config::Config;
use crate::integrations::post_to_url::{PostTrigger, Trigger};
use crate::media::MediaPlan;
use crate::metrics::Metrics;
use crate::store::sessions::{ChatRow, EventRow, SessionRow, SessionState};
use crate::store::{Store, now_ms};

/// What a socket's writer task sends: a frame, or a close with its code (PROTOCOL.md §1).
#[derive(Debug, Clone)]
pub enum Outgoing {
    Frame(Arc<str>),
    Close(u16),
}

/// Frames to one socket. Bounded: a client that does not read is cut off rather than allowed to
/// hold memory or slow anyone else.
pub type Outbound = mpsc::Sender<Outgoing>;
pub const OUTBOUND_QUEUE: usize = 256;

/// What a session carries besides its lifecycle: fixed at creation, stored as JSON in
/// `sessions.policy`, restored after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionPolicy {
    pub audio: bool,
    pub auto_start: bool,
    pub code_validity_ms: i64,
    pub connecting_ms: i64,
    pub waiting_ms: i64,
    pub active_idle_ms: i64,
    pub reconnect_grace_ms: i64,
    pub no_technician: String,
    pub no_technician_url: Option<String>,
    /// (kind, after seconds, colour) of the group's time-out alarms.
    pub alarms: Vec<(String, u32, String)>,
    pub omit_chat_from_storage: bool,
    pub customer_survey: Option<serde_json::Value>,
    pub technician_survey: Option<serde_json::Value>,
}

impl SessionPolicy {
    fn to_policy(&self) -> Policy {
        Policy {
            audio: self.audio,
            auto_start: self.auto_start,
            timeouts: Timeouts {
                code_validity_ms: self.code_validity_ms,
                connecting_ms: self.connecting_ms,
                waiting_ms: self.waiting_ms,
                active_idle_ms: self.active_idle_ms,
                reconnect_grace_ms: self.reconnect_grace_ms,
            },
            no_technician_available: match (self.no_technician.as_str(), &self.no_technician_url) {
                ("notify_by_email", _) => NoTechnicianAvailable::NotifyByEmail,
                ("abort_and_show_url", Some(url)) => {
                    NoTechnicianAvailable::AbortAndShowUrl(url.clone())
                }
                _ => NoTechnicianAvailable::KeepAlive,
            },
        }
    }

    /// The colour of the highest alarm threshold passed by a session in `status` for `secs`.
    fn alarm(&self, status: Status, secs: u64) -> Option<String> {
        let kind = match status {
            Status::Connecting => "connecting",
            Status::Waiting => "waiting",
            _ => return None,
        };
        self.alarms
            .iter()
            .filter(|(k, after, _)| k == kind && u64::from(*after) <= secs)
            .max_by_key(|(_, after, _)| *after)
            .map(|(_, _, colour)| colour.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteState {
    pub customer_audio: bool,
    pub customer_video: bool,
    pub technician_audio: bool,
}

/// How stored live sessions come onto this node's desk ([`Hub::restore_rows`]).
pub enum Restored {
    /// This node restarted: sockets are gone, the clients resume.
    Restart,
    /// Taken over from a dead node: as after a restart, and a phone whose socket another node
    /// carries is told to offer again.
    TakenOver,
    /// Moved here by a draining node, which handed over what the store does not hold.
    Moved(Vec<MovedSession>),
}

/// What a draining node hands over with a live session besides its stored row (issue 15).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MovedSession {
    pub session_id: SessionId,
    pub customer_connected: bool,
    pub technician_connected: bool,
    pub mute: MuteState,
    pub frozen: bool,
    pub transfer_comment: Option<String>,
    /// The plain link of a Pending link session (shown to its technician until it is used).
    pub link: Option<String>,
    /// The phone had offered on the old node: it must offer again here (`reoffer`).
    #[serde(default)]
    pub customer_media: bool,
}

/// A live session's details beyond the state machine.
struct Live {
    method: CodeMethod,
    name: String,
    custom_fields: [String; 5],
    tracking_id: String,
    policy: SessionPolicy,
    pin: Option<String>,
    link: Option<String>,
    link_hash: Option<String>,
    resume_hash: Option<String>,
    device: Option<DeviceInfo>,
    customer_ip: Option<String>,
    /// Sequence number of the last event appended.
    seq: i64,
    ever_active: bool,
    transfer_comment: Option<String>,
    /// The alarm colour the consoles were last shown.
    shown_alarm: Option<String>,
    /// The phone's WebRTC offer was answered: the console can be offered the same codecs.
    customer_media: bool,
    mute: MuteState,
    /// Consoles that list this session now.
    audience: HashSet<UserId>,
    /// Chat lines handed to the store so far: a Post-to-URL trigger covers exactly these.
    chat_lines: i64,
    /// How fast and how much the technician may draw (issue 20).
    tools: signaling::tools::Budget,
    /// The technician froze the picture (the customer shows a still).
    frozen: bool,
    /// The session came from another node (a drain moved it, or a dead node's session was taken
    /// over): its phone must offer again from a new peer connection, told by `reoffer` once its
    /// socket is here and the room takes an offer.
    reoffer: Option<ReofferReason>,
}

struct ConsoleConn {
    id: u64,
    tx: Outbound,
}

struct Console {
    group_id: i64,
    status: TechnicianStatus,
    conns: Vec<ConsoleConn>,
}

struct CustomerConn {
    id: u64,
    tx: Outbound,
    /// A socket of another node run here (its home re-homes it when the session moves).
    hosted: bool,
}

#[derive(Default)]
struct Inner {
    desk: Desk,
    live: HashMap<SessionId, Live>,
    pins: HashMap<String, SessionId>,
    links: HashMap<String, SessionId>,
    resumes: HashMap<String, SessionId>,
    /// Codes of sessions that expired unused, to tell "expired" from "unknown" (bounded).
    expired: HashMap<String, Millis>,
    /// Resume tokens of ended sessions whose customer may still submit the built-in survey
    /// (bounded; lost on restart).
    ended_resumes: HashMap<String, SessionId>,
    consoles: HashMap<UserId, Console>,
    customers: HashMap<SessionId, CustomerConn>,
    /// Nicknames of technicians seen (for the customer's `status` frames).
    nicknames: HashMap<UserId, String>,
    next_conn: u64,
}

enum WriteJob {
    Transitions(SessionId, SessionState, Vec<EventRow>),
    Touch(SessionId, Millis),
    Chat(SessionId, ChatRow),
    Transmitted(SessionId, u64),
    Tool(SessionId, signaling::tools::ToolUse),
    Bus(crate::store::bus::BusMessage),
    /// Claims on this session as a technician's one Active session, but the one kept (if any).
    Release(SessionId, Option<UserId>),
    Flush(oneshot::Sender<()>),
}

/// The hub's clock: real time plus an offset that tests move forward to reach time-outs without
/// waiting for them (the state machine itself never reads a clock).
#[derive(Default)]
pub struct Clock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn now(&self) -> Millis {
        now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn advance(&self, ms: Millis) {
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

pub struct Hub {
    clock: Clock,
    store: Store,
    config: Arc<Config>,
    metrics: Metrics,
    media: Arc<dyn MediaPlan>,
    /// This server in the node registry: whether it takes new sessions, which ones it restores.
    node: Arc<crate::cluster::Node>,
    inner: Mutex<Inner>,
    wake: Notify,
    writer: mpsc::UnboundedSender<WriteJob>,
    pub code_attempts: Throttle,
    pub outbox_wake: Arc<Notify>,
    /// Moments that may post session data (Post-to-URL); never awaited by the hub.
    post_triggers: mpsc::UnboundedSender<PostTrigger>,
    post_trigger_rx: Mutex<Option<mpsc::UnboundedReceiver<PostTrigger>>>,
    pub post_wake: Arc<Notify>,
    /// Routed signaling between nodes (PostgreSQL only; set once the node starts).
    router: std::sync::OnceLock<Arc<route::Router>>,
}

/// Refusals, as protocol error codes.
pub fn refusal_frame(id: Option<String>, r: &Refusal) -> ServerFrame {
    use signaling::protocol::ErrorCode;
    use signaling::session::RefusalCode;
    let code = match r.code {
        RefusalCode::NotAllowed => ErrorCode::NotAllowed,
        RefusalCode::OneActiveSession => ErrorCode::OneActiveSession,
        RefusalCode::NotYours | RefusalCode::UnknownSession => ErrorCode::SessionNotFound,
    };
    ServerFrame::error(id, code, r.reason.clone())
}

impl Hub {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        metrics: Metrics,
        media: Arc<dyn MediaPlan>,
        node: Arc<crate::cluster::Node>,
    ) -> Arc<Hub> {
        let (writer, jobs) = mpsc::unbounded_channel();
        let (post_triggers, post_trigger_rx) = mpsc::unbounded_channel();
        let attempts = config
            .sessions
            .max_failed_code_attempts_per_address_per_minute;
        let hub = Arc::new(Hub {
            clock: Clock::default(),
            store: store.clone(),
            config,
            metrics,
            media,
            node,
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
            writer,
            code_attempts: Throttle::new(attempts, attempts::WINDOW),
            outbox_wake: Arc::new(Notify::new()),
            post_triggers,
            post_trigger_rx: Mutex::new(Some(post_trigger_rx)),
            post_wake: Arc::new(Notify::new()),
            router: std::sync::OnceLock::new(),
        });
        let owner = hub.node.shares_store().then(|| hub.node.id.clone());
        tokio::spawn(write_loop(store, jobs, owner));
        hub
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Routes signaling through the store from now on (several nodes on PostgreSQL).
    pub fn set_router(&self, router: Arc<route::Router>) {
        let _ = self.router.set(router);
    }

    pub(crate) fn router(&self) -> Option<&Arc<route::Router>> {
        self.router.get()
    }

    pub fn node(&self) -> &crate::cluster::Node {
        &self.node
    }

    /// Whether this node holds a live session.
    pub fn holds(&self, id: SessionId) -> bool {
        self.lock().desk.get(id).is_some()
    }

    /// A bus message committed after everything the hub handed to the writer so far.
    pub(crate) fn bus_out(&self, m: crate::store::bus::BusMessage) {
        let _ = self.writer.send(WriteJob::Bus(m));
    }

    /// The Post-to-URL triggers, for the one task that turns them into deliveries.
    pub fn take_post_triggers(&self) -> Option<mpsc::UnboundedReceiver<PostTrigger>> {
        self.post_trigger_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn post(&self, trigger: PostTrigger) {
        let _ = self.post_triggers.send(trigger);
    }

    /// Moves the hub's time forward (tests) and lets the scheduler act on it.
    pub fn advance_clock(&self, ms: Millis) {
        self.clock.advance(ms);
        self.wake.notify_one();
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn media(&self) -> &dyn MediaPlan {
        self.media.as_ref()
    }

    pub fn is_status(&self, id: SessionId, status: Status) -> bool {
        self.lock().desk.get(id).is_some_and(|s| s.status == status)
    }

    /// The technician as the customer sees it, once the session is in a technician's hands.
    pub fn technician_ref(&self, id: SessionId) -> Option<TechnicianRef> {
        let inner = self.lock();
        let s = inner.desk.get(id)?;
        if !matches!(s.status, Status::Active | Status::OnHold) {
            return None;
        }
        let nickname = inner.nicknames.get(&s.technician_id?)?.clone();
        Some(TechnicianRef { nickname })
    }

    /// Stores a chat line without delaying the sender, in order with the session's events.
    pub fn store_chat(&self, id: SessionId, row: ChatRow) {
        // Counted and queued under the lock, in the same order as the triggers that count them.
        let mut inner = self.lock();
        if let Some(live) = inner.live.get_mut(&id) {
            live.chat_lines += 1;
        }
        let _ = self.writer.send(WriteJob::Chat(id, row));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `ice_servers` for a client, TURN credentials minted now: `subject` is `s<session id>` for a
    /// customer, `u<user id>` for a console (it shows in the TURN server's logs and quotas).
    pub fn ice_servers(&self, subject: &str) -> Vec<signaling::protocol::IceServer> {
        let m = &self.config.media;
        crate::turn::mint(
            &m.ice_servers,
            &m.turn_secret,
            m.turn_credential_ttl_seconds,
            subject,
            crate::turn::now_unix(),
        )
    }

    /// `ice_transport_policy` for clients (absent: all).
    pub fn ice_transport_policy(&self) -> Option<String> {
        self.config.media.ice_transport_policy.for_clients()
    }

    /// Waits until everything handed to the writer so far is in the store.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(WriteJob::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Runs the scheduler: ends sessions whose deadline passed. One task for every session.
    pub async fn run_scheduler(self: Arc<Self>) {
        loop {
            let next = self.lock().desk.next_deadline();
            let now = self.now();
            match next {
                Some(at) if at <= now => {
                    let mut inner = self.lock();
                    let out = inner.desk.poll_timeouts(now);
                    self.after(&mut inner, out, now);
                }
                Some(at) => {
                    // At most a second, so that alarm colours change on the consoles on time.
                    let wait = std::time::Duration::from_millis((at - now).clamp(1, 1000) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.wake.notified() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = self.wake.notified() => {}
                    }
                }
            }
            self.refresh_alarms();
        }
    }

    /// Sends the owner's consoles the server's WebRTC offer for an Active or On Hold session whose
    /// phone media is up (after the phone's offer, a pickup, a transfer or a console reconnect).
    fn offer_console(&self, inner: &Inner, id: SessionId) {
        let Some(s) = inner.desk.get(id) else { return };
        let Some(technician) = s.technician_id else {
            return;
        };
        let phone_up = inner.live.get(&id).is_some_and(|l| l.customer_media);
        // Also while Reconnecting from Active or On Hold: nothing offers the console again when
        // the status comes back, so a console that said `hello`, or a phone that offered from a
        // new peer connection, during a socket's reconnect (a drain, a phone's new network)
        // would otherwise stay without the phone's video.
        if !phone_up || !offer_status(s) {
            return;
        }
        if let Ok(sdp) = self.media.technician_offer(id) {
            send_console(
                inner,
                technician,
                &ServerFrame::Offer {
                    session_id: Some(id),
                    sdp,
                    // Fresh credentials with every offer: the console's new peer connection may
                    // come hours after its `hello`.
                    ice_servers: Some(self.ice_servers(&format!("u{technician}")))
                        .filter(|servers| !servers.is_empty()),
                    ice_transport_policy: self.ice_transport_policy(),
                },
            );
        }
    }

    /// The phone may offer (or re-offer, e.g. an ICE restart after a network change) while the
    /// session is Active or On Hold, or Reconnecting from one of them.
    pub(crate) fn takes_customer_offer(&self, id: SessionId) -> bool {
        self.lock().desk.get(id).is_some_and(offer_status)
    }

    /// Sends a moved session's phone `reoffer` (PROTOCOL.md §3.4) when it is due: the session
    /// came from another node, its customer socket is here and its room takes an offer.
    fn send_reoffer(&self, inner: &mut Inner, id: SessionId) {
        let due = inner.desk.get(id).is_some_and(offer_status);
        let (Some(live), Some(c)) = (inner.live.get_mut(&id), inner.customers.get(&id)) else {
            return;
        };
        if !due {
            return;
        }
        if let Some(reason) = live.reoffer.take() {
            tracing::info!(session_id = id, ?reason, "asking the phone to offer again");
            send(&c.tx, &ServerFrame::Reoffer { reason });
        }
    }

    /// The phone's media path went down or came back (ICE): `Reconnecting` and back.
    pub(crate) fn customer_media(&self, id: SessionId, up: bool) {
        let now = self.now();
        let mut inner = self.lock();
        // A session that has ended meanwhile has nothing to change.
        if let Ok(out) = inner
            .desk
            .handle(id, Command::CustomerMedia { connected: up }, now)
        {
            self.after(&mut inner, out, now);
        }
    }

    /// How each side's media reaches the server now (customer, technician), from the SFU.
    pub fn media_transports(&self, id: SessionId) -> [Option<&'static str>; 2] {
        self.media.transports(id)
    }

    /// The console's media path went down (silent for `media.lost_after`, or ICE lost) or came
    /// back: an Active session goes to `Reconnecting` and back.
    pub(crate) fn technician_media(&self, id: SessionId, up: bool) {
        let now = self.now();
        let mut inner = self.lock();
        if let Ok(out) = inner
            .desk
            .handle(id, Command::TechnicianMedia { connected: up }, now)
        {
            self.after(&mut inner, out, now);
        }
    }

    /// Feeds the media server's reports on the phone's and the console's media paths to the
    /// state machine.
    pub async fn run_media_events(self: Arc<Self>) {
        let Some(mut events) = self.media.media_events() else {
            return;
        };
        while let Some((id, side, up)) = events.recv().await {
            match side {
                crate::media::MediaSide::Customer => self.customer_media(id, up),
                crate::media::MediaSide::Technician => self.technician_media(id, up),
            }
        }
    }

    /// The phone's media just came up: offer the console.
    pub(crate) fn customer_media_up(&self, id: SessionId) {
        let mut inner = self.lock();
        if let Some(live) = inner.live.get_mut(&id) {
            live.customer_media = true;
            // The phone offered here: whatever moved it, its media is on this node's room now.
            live.reoffer = None;
        }
        self.offer_console(&inner, id);
    }

    /// Re-sends sessions whose time-out alarm colour changed since the consoles last saw them.
    fn refresh_alarms(&self) {
        let now = self.now();
        let mut inner = self.lock();
        let due: Vec<SessionId> = inner
            .desk
            .sessions()
            .filter(|s| matches!(s.status, Status::Connecting | Status::Waiting))
            .filter_map(|s| {
                let live = inner.live.get(&s.id)?;
                let secs = u64::try_from((now - s.status_since).max(0) / 1000).unwrap_or(0);
                (live.policy.alarm(s.status, secs) != live.shown_alarm).then_some(s.id)
            })
            .collect();
        for id in due {
            self.publish(&mut inner, id, now, None);
        }
    }

    /// Applies one command to one session.
    pub fn apply(&self, id: SessionId, command: Command) -> Result<(), Refusal> {
        self.apply_replying(id, command, None)
    }

    /// Applies a command; on success the `ok` reply goes to `reply` before the events the command
    /// causes (PROTOCOL.md §1).
    pub fn apply_replying(
        &self,
        id: SessionId,
        command: Command,
        reply: Option<(&Outbound, &str)>,
    ) -> Result<(), Refusal> {
        let now = self.now();
        let mut inner = self.lock();
        let activity = command == Command::Activity;
        let out = inner.desk.handle(id, command, now)?;
        if let Some((tx, request)) = reply {
            send(tx, &ServerFrame::ok(request, serde_json::Value::Null));
        }
        if activity {
            let _ = self.writer.send(WriteJob::Touch(id, now));
        }
        self.after(&mut inner, out, now);
        Ok(())
    }

    /// Everything that follows a decision of the desk: events to the writer, frames to the
    /// parties, effects to media and the outbox.
    fn after(&self, inner: &mut Inner, out: Output, now: Millis) {
        let mut touched: Vec<SessionId> = Vec::new();
        let mut events: HashMap<SessionId, Vec<EventRow>> = HashMap::new();
        for t in &out.transitions {
            self.metrics
                .session_transition(t.from.as_str(), t.to.as_str());
            let Some(live) = inner.live.get_mut(&t.session_id) else {
                continue;
            };
            live.seq += 1;
            let first_active = t.to == Status::Active && !live.ever_active;
            live.ever_active |= t.to == Status::Active;
            let was_picked_up = live.ever_active;
            if let Reason::Transfer { comment, .. } = &t.reason {
                live.transfer_comment = (!comment.is_empty()).then(|| comment.clone());
            }
            let (actor, actor_id) = match t.actor {
                Actor::Customer => ("customer", None),
                Actor::Technician(id) => ("technician", Some(id)),
                Actor::System => ("system", None),
            };
            let detail = match &t.reason {
                Reason::Transfer { to, comment } => serde_json::json!({
                    "to_technician_id": match to { TransferTarget::Technician(id) => Some(*id), _ => None },
                    "to_group_id": match to { TransferTarget::Group(id) => Some(*id), _ => None },
                    "comment": comment,
                })
                .to_string(),
                _ => String::new(),
            };
            events.entry(t.session_id).or_default().push(EventRow {
                seq: live.seq,
                at: t.at,
                from_status: t.from.as_str().into(),
                to_status: t.to.as_str().into(),
                actor: actor.into(),
                actor_id,
                reason: t.reason.as_str().into(),
                technician_id: t.technician_id,
                group_id: t.group_id,
                detail,
            });
            if !touched.contains(&t.session_id) {
                touched.push(t.session_id);
            }
            // Post-to-URL: a return from Reconnecting is the same start, not a new one.
            let chat_lines = live.chat_lines;
            let post = |trigger| {
                self.post(PostTrigger {
                    session_id: t.session_id,
                    trigger,
                    technician_id: t.technician_id,
                    group_id: t.group_id,
                    at: t.at,
                    chat_lines,
                })
            };
            match t.to {
                Status::Active if t.from != Status::Reconnecting => {
                    post(Trigger::EachActive);
                    if first_active {
                        post(Trigger::FirstActive);
                    }
                }
                Status::OnHold | Status::Transferring if t.from != Status::Reconnecting => {
                    post(Trigger::Suspended)
                }
                s if s.is_final() && was_picked_up => post(Trigger::Ended),
                _ => {}
            }
            // The customer hears of every status change.
            let nickname = t
                .technician_id
                .and_then(|tech| inner.nicknames.get(&tech).cloned());
            // Named from the first pickup on, as long as a technician owns the session.
            let technician = live_ever_active(&inner.live, t.session_id)
                .then_some(nickname)
                .flatten()
                .map(|nickname| TechnicianRef { nickname });
            if let Some(c) = inner.customers.get(&t.session_id) {
                send(
                    &c.tx,
                    &ServerFrame::Status {
                        session_id: None,
                        status: t.to.as_str().into(),
                        technician,
                    },
                );
                if t.to == Status::Transferring {
                    tools::start_clean(c, inner.live.get_mut(&t.session_id));
                }
            }
        }
        let mut finals: HashMap<SessionId, Status> = HashMap::new();
        for id in &touched {
            let state = match inner.desk.get(*id) {
                Some(s) => state_of(s, None),
                None => {
                    // Final: the session left the desk; its last transition says how it ended.
                    let Some(last) = out.transitions.iter().rev().find(|t| t.session_id == *id)
                    else {
                        continue;
                    };
                    finals.insert(*id, last.to);
                    SessionState {
                        status: last.to.as_str().into(),
                        status_since: last.at,
                        before_reconnecting: None,
                        last_activity: last.at,
                        ever_active: inner.live.get(id).is_some_and(|l| l.ever_active),
                        technician_id: last.technician_id,
                        group_id: last.group_id,
                        ended_at: Some(last.at),
                    }
                }
            };
            let rows = events.remove(id).unwrap_or_default();
            let _ = self.writer.send(WriteJob::Transitions(*id, state, rows));
            if self.router.get().is_some() {
                // The one-Active rule across nodes: claims on this session go with the state
                // that ends them (same transaction), but that of a technician it is Active for.
                let keep = inner
                    .desk
                    .get(*id)
                    .and_then(|s| s.technician_id)
                    .filter(|t| inner.desk.active_session_of(*t) == Some(*id));
                let _ = self.writer.send(WriteJob::Release(*id, keep));
            }
        }
        let mut redirects: HashMap<SessionId, String> = HashMap::new();
        for e in &out.effects {
            if let Effect::RedirectCustomer { session_id, url } = e {
                redirects.insert(*session_id, url.clone());
            }
        }
        for id in touched {
            let ended = finals.get(&id).map(|st| (*st, redirects.remove(&id)));
            self.publish(inner, id, now, ended);
            // A moved session whose phone waited (e.g. Transferring) takes an offer now.
            self.send_reoffer(inner, id);
        }
        for e in &out.effects {
            match e {
                Effect::StartMedia {
                    session_id,
                    technician_id,
                    audio,
                } => {
                    self.media.start(*session_id, *technician_id, *audio);
                    self.offer_console(inner, *session_id);
                    if let Some(live) = inner.live.get(session_id) {
                        send_console(
                            inner,
                            *technician_id,
                            &mute_frame(Some(*session_id), live.mute),
                        );
                    }
                }
                Effect::HoldMedia { session_id } => self.media.hold(*session_id),
                Effect::ResumeMedia { session_id } => self.media.resume(*session_id),
                Effect::StopMedia { session_id } => {
                    if let Some(bytes) = self.media.stop(*session_id) {
                        let _ = self.writer.send(WriteJob::Transmitted(*session_id, bytes));
                    }
                }
                Effect::NotifyTechniciansByEmail {
                    session_id,
                    technician_id,
                    group_id,
                } => {
                    self.notify_technicians(*session_id, *technician_id, *group_id);
                }
                Effect::RedirectCustomer { .. } => {}
            }
        }
        self.wake.notify_one();
    }

    /// Tells the consoles about a session's new state; for a final one, sends `ended` and forgets it.
    /// `ended`: the final status and, for "no technician available", the page for the customer.
    fn publish(
        &self,
        inner: &mut Inner,
        id: SessionId,
        now: Millis,
        ended: Option<(Status, Option<String>)>,
    ) {
        let session = inner.desk.get(id).cloned();
        let audience: HashSet<UserId> = match &session {
            Some(s) => audience_of(inner, s),
            None => HashSet::new(),
        };
        let previous = inner
            .live
            .get_mut(&id)
            .map(|l| std::mem::replace(&mut l.audience, audience.clone()))
            .unwrap_or_default();
        match (session, ended) {
            (Some(s), _) => {
                if let Some(view) = view_of(inner, &s, now) {
                    if let Some(live) = inner.live.get_mut(&id) {
                        live.shown_alarm = view.alarm_color.clone();
                    }
                    let frame = ServerFrame::Session { session: view };
                    for tech in &audience {
                        send_console(inner, *tech, &frame);
                    }
                }
                for tech in previous.difference(&audience) {
                    send_console(
                        inner,
                        *tech,
                        &ServerFrame::SessionRemoved { session_id: id },
                    );
                }
            }
            (None, None) => {}
            (None, Some((final_status, redirect))) => {
                // The session ended: the customer and the consoles that listed it are told, with
                // the surveys of the group.
                let Some(live) = inner.live.remove(&id) else {
                    return;
                };
                let status = final_status.as_str().to_string();
                if let Some(c) = inner.customers.remove(&id) {
                    send(
                        &c.tx,
                        &ServerFrame::Ended {
                            session_id: None,
                            status: status.clone(),
                            survey: live.policy.customer_survey.clone(),
                            redirect_url: redirect,
                        },
                    );
                    close(&c.tx, 1000);
                }
                for tech in &previous {
                    send_console(
                        inner,
                        *tech,
                        &ServerFrame::Ended {
                            session_id: Some(id),
                            status: status.clone(),
                            survey: live.policy.technician_survey.clone(),
                            redirect_url: None,
                        },
                    );
                    send_console(
                        inner,
                        *tech,
                        &ServerFrame::SessionRemoved { session_id: id },
                    );
                }
                if let Some(pin) = &live.pin {
                    inner.pins.remove(pin);
                }
                if let Some(h) = &live.link_hash {
                    inner.links.remove(h);
                }
                if let Some(h) = &live.resume_hash {
                    inner.resumes.remove(h);
                    // A late `resume` learns that the session ended (`session_ended`).
                    inner.expired.insert(h.clone(), now);
                    if live.policy.customer_survey.is_some() {
                        if inner.ended_resumes.len() > 100_000 {
                            inner.ended_resumes.clear();
                        }
                        inner.ended_resumes.insert(h.clone(), id);
                    }
                }
                if status == Status::Expired.as_str() {
                    if inner.expired.len() > 100_000 {
                        inner.expired.clear();
                    }
                    for code in live.pin.iter().chain(live.link_hash.iter()) {
                        inner.expired.insert(code.clone(), now);
                    }
                }
            }
        }
    }

    fn notify_technicians(&self, session_id: SessionId, technician: Option<UserId>, group: i64) {
        let store = self.store.clone();
        let hub_link = self.config.public_url();
        let wake = self.outbox_wake.clone();
        tokio::spawn(async move {
            let users = match store.users().await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(error = %e, "no-technician-available email: cannot list technicians");
                    return;
                }
            };
            let recipients: Vec<String> = users
                .iter()
                .filter(|u| u.enabled && u.role == crate::store::Role::Technician)
                .filter(|u| match technician {
                    Some(t) => u.id == t,
                    None => u.group_id == Some(group),
                })
                .map(|u| u.email.clone())
                .collect();
            for to in recipients {
                let body = format!(
                    "A customer is waiting in Lens session {session_id} and no technician is available.\n\
                     Open the technician console: {hub_link}/console\n"
                );
                if let Err(e) = store
                    .enqueue_outbox(
                        "email",
                        Some(session_id),
                        &to,
                        "A Lens session is waiting",
                        &body,
                        "smtp",
                    )
                    .await
                {
                    tracing::warn!(error = %e, "cannot queue the no-technician-available email");
                }
            }
            wake.notify_one();
        });
    }
}

impl Hub {
    /// Puts a freshly stored session on the desk (`Pending`, code issued).
    pub(crate) fn register(&self, row: &SessionRow, policy: SessionPolicy, link: Option<String>) {
        let now = row.created_at;
        let session = Session::new(
            row.id,
            row.created_by,
            row.group_id,
            policy.to_policy(),
            now,
        );
        let mut inner = self.lock();
        if let Some(pin) = &row.pin {
            inner.pins.insert(pin.clone(), row.id);
        }
        if let Some(h) = &row.link_token_hash {
            inner.links.insert(h.clone(), row.id);
        }
        let online = inner.consoles.contains_key(&row.created_by);
        let mut session = session;
        session.technician_connected = online;
        inner.desk.insert(session);
        inner.live.insert(
            row.id,
            Live {
                method: method_of(&row.method),
                name: row.name.clone(),
                custom_fields: row.custom_fields.clone(),
                tracking_id: row.tracking_id.clone(),
                policy,
                pin: row.pin.clone(),
                link,
                link_hash: row.link_token_hash.clone(),
                resume_hash: None,
                device: None,
                customer_ip: None,
                seq: 0,
                ever_active: false,
                transfer_comment: None,
                shown_alarm: None,
                customer_media: false,
                mute: MuteState {
                    customer_audio: true,
                    customer_video: true,
                    technician_audio: true,
                },
                audience: HashSet::new(),
                chat_lines: 0,
                tools: signaling::tools::Budget::new(now),
                frozen: false,
                reoffer: None,
            },
        );
        self.metrics
            .session_transition("", Status::Pending.as_str());
        self.publish(&mut inner, row.id, now, None);
        self.wake.notify_one();
    }

    /// Which live session a customer's code (PIN or link token) opens. `Err(true)`: expired.
    pub(crate) fn find_code(&self, code: &str) -> Result<SessionId, bool> {
        let inner = self.lock();
        let code = code.trim();
        if let Some(id) = inner.pins.get(code) {
            return Ok(*id);
        }
        let hash = crate::auth::token_hash(code);
        if let Some(id) = inner.links.get(&hash) {
            return Ok(*id);
        }
        Err(inner.expired.contains_key(code) || inner.expired.contains_key(&hash))
    }

    /// The customer presented a valid code: `Pending` → `Connecting`; the code is used up.
    pub(crate) fn join(
        &self,
        id: SessionId,
        tx: Outbound,
        customer_ip: Option<String>,
        device: Option<DeviceInfo>,
        resume_hash: String,
        hosted: bool,
    ) -> Result<(u64, bool), Refusal> {
        let now = self.now();
        let mut inner = self.lock();
        let out = inner.desk.handle(id, Command::CustomerJoin, now)?;
        let conn = inner.next_conn;
        inner.next_conn += 1;
        inner.resumes.insert(resume_hash.clone(), id);
        let mut audio = false;
        if let Some(live) = inner.live.get_mut(&id) {
            live.device = device;
            live.customer_ip = customer_ip;
            live.resume_hash = Some(resume_hash);
            audio = live.policy.audio;
            let (pin, link_hash) = (live.pin.take(), live.link_hash.take());
            if let Some(p) = pin {
                inner.pins.remove(&p);
            }
            if let Some(h) = link_hash {
                inner.links.remove(&h);
            }
        }
        self.after(&mut inner, out, now);
        // Registered after the Connecting transition went out: the join reply, which the caller
        // sends next, carries that status (PROTOCOL.md §1: the reply comes first).
        inner.customers.insert(
            id,
            CustomerConn {
                id: conn,
                tx,
                hosted,
            },
        );
        Ok((conn, audio))
    }

    /// Whether a resume token (its hash) opens a live session of this node.
    pub(crate) fn knows_resume(&self, resume_hash: &str) -> bool {
        self.lock().resumes.contains_key(resume_hash)
    }

    /// Whether `id` is the technician's Active session on this node.
    pub(crate) fn is_active_for(&self, technician: UserId, id: SessionId) -> bool {
        self.lock().desk.active_session_of(technician) == Some(id)
    }

    /// Whether a resume token belonged to a session that has ended.
    pub(crate) fn resume_ended(&self, resume_hash: &str) -> bool {
        self.lock().expired.contains_key(resume_hash)
    }

    /// The ended session a customer's resume token (its hash) belonged to, while it may still
    /// submit the customer survey.
    pub(crate) fn ended_session_of(&self, resume_hash: &str) -> Option<SessionId> {
        self.lock().ended_resumes.get(resume_hash).copied()
    }

    /// A customer's new socket after a drop, or (`rehomed`) the socket a home node carried here
    /// after the session moved. Returns the connection id, the status and audio flag.
    pub(crate) fn resume_customer(
        &self,
        resume_hash: &str,
        tx: Outbound,
        hosted: bool,
        rehomed: bool,
    ) -> Option<(SessionId, u64, String, bool)> {
        let now = self.now();
        let mut inner = self.lock();
        let id = *inner.resumes.get(resume_hash)?;
        let conn = inner.next_conn;
        inner.next_conn += 1;
        // The old socket, if it still looks open, is replaced (PROTOCOL.md §3.3).
        if let Some(old) = inner.customers.insert(
            id,
            CustomerConn {
                id: conn,
                tx,
                hosted,
            },
        ) {
            close(&old.tx, 4000);
        }
        // A phone that resumes on a new socket offers again anyway (§3.3): no `reoffer`.
        if !rehomed && let Some(live) = inner.live.get_mut(&id) {
            live.reoffer = None;
        }
        if let Ok(out) = inner
            .desk
            .handle(id, Command::CustomerConnection { connected: true }, now)
        {
            self.after(&mut inner, out, now);
        }
        self.send_reoffer(&mut inner, id);
        let status = inner.desk.get(id)?.status.as_str().to_string();
        let audio = inner.live.get(&id).is_some_and(|l| l.policy.audio);
        Some((id, conn, status, audio))
    }

    /// The customer's socket closed.
    pub(crate) fn customer_gone(&self, id: SessionId, conn: u64) {
        let now = self.now();
        let mut inner = self.lock();
        if inner.customers.get(&id).is_none_or(|c| c.id != conn) {
            return;
        }
        inner.customers.remove(&id);
        if let Ok(out) =
            inner
                .desk
                .handle(id, Command::CustomerConnection { connected: false }, now)
        {
            self.after(&mut inner, out, now);
        }
    }

    /// A technician console connected; returns its connection id and its live sessions.
    pub(crate) fn console_attach(
        &self,
        technician: UserId,
        group_id: i64,
        nickname: &str,
        tx: Outbound,
    ) -> (u64, Vec<SessionView>, TechnicianStatus, bool) {
        let now = self.now();
        let mut inner = self.lock();
        let conn = inner.next_conn;
        inner.next_conn += 1;
        inner.nicknames.insert(technician, nickname.to_string());
        let first = !inner.consoles.contains_key(&technician);
        let console = inner.consoles.entry(technician).or_insert(Console {
            group_id,
            status: TechnicianStatus::Available,
            conns: Vec::new(),
        });
        console.group_id = group_id;
        console.conns.push(ConsoleConn { id: conn, tx });
        let status = console.status;
        let out = inner
            .desk
            .technician_presence(technician, group_id, true, now);
        inner.desk.set_technician_status(technician, status);
        self.after(&mut inner, out, now);
        // Group-queued sessions now have one more watcher.
        let ids: Vec<SessionId> = inner
            .desk
            .sessions()
            .filter(|s| {
                s.technician_id == Some(technician)
                    || (s.technician_id.is_none() && s.group_id == group_id)
            })
            .map(|s| s.id)
            .collect();
        let mut views = Vec::new();
        for id in ids {
            if let Some(s) = inner.desk.get(id).cloned() {
                if let Some(live) = inner.live.get_mut(&id) {
                    live.audience.insert(technician);
                }
                if let Some(v) = view_of(&inner, &s, now) {
                    views.push(v);
                }
            }
        }
        views.sort_by_key(|v| v.id);
        (conn, views, status, first)
    }

    /// After `hello`'s reply: a console that comes back gets a fresh offer for each of its Active
    /// or On Hold sessions (PROTOCOL.md §4.2).
    pub(crate) fn reoffer_console(&self, technician: UserId) {
        let inner = self.lock();
        let mine: Vec<SessionId> = inner
            .desk
            .sessions()
            .filter(|s| s.technician_id == Some(technician))
            .map(|s| s.id)
            .collect();
        for id in mine {
            self.offer_console(&inner, id);
        }
    }

    /// A console socket closed. Returns true when it was the technician's last one.
    pub(crate) fn console_detach(&self, technician: UserId, conn: u64) -> bool {
        let now = self.now();
        let mut inner = self.lock();
        let Some(console) = inner.consoles.get_mut(&technician) else {
            return false;
        };
        console.conns.retain(|c| c.id != conn);
        let group = console.group_id;
        // Post-to-URL: the console was refreshed or closed during these sessions.
        let during = inner
            .desk
            .sessions()
            .filter(|s| s.technician_id == Some(technician))
            .filter(|s| matches!(s.status, Status::Active | Status::OnHold));
        for s in during {
            self.post(PostTrigger {
                session_id: s.id,
                trigger: Trigger::ConsoleRefreshedOrClosed,
                technician_id: Some(technician),
                group_id: s.group_id,
                at: now,
                chat_lines: inner.live.get(&s.id).map_or(0, |l| l.chat_lines),
            });
        }
        let Some(console) = inner.consoles.get_mut(&technician) else {
            return false;
        };
        if !console.conns.is_empty() {
            return false;
        }
        inner.consoles.remove(&technician);
        let out = inner
            .desk
            .technician_presence(technician, group, false, now);
        self.after(&mut inner, out, now);
        true
    }

    /// A connected technician's status here.
    pub(crate) fn console_status(&self, technician: UserId) -> Option<TechnicianStatus> {
        self.lock().consoles.get(&technician).map(|c| c.status)
    }

    pub(crate) fn set_console_status(&self, technician: UserId, status: TechnicianStatus) {
        let mut inner = self.lock();
        if let Some(c) = inner.consoles.get_mut(&technician) {
            c.status = status;
        }
        inner.desk.set_technician_status(technician, status);
    }

    /// Whether a technician may act on a session (it owns it, or it is queued for its group).
    pub(crate) fn session_visible_to(&self, id: SessionId, technician: UserId) -> bool {
        let inner = self.lock();
        inner
            .desk
            .get(id)
            .is_some_and(|s| audience_of(&inner, s).contains(&technician))
    }

    /// The session's chat rules and the names to show: (omit chat from storage, technician
    /// nickname, customer name — the session's name field, or "Customer").
    pub(crate) fn chat_context(&self, id: SessionId) -> Option<(bool, String, String)> {
        let inner = self.lock();
        let s = inner.desk.get(id)?;
        let live = inner.live.get(&id)?;
        let nickname = s
            .technician_id
            .and_then(|t| inner.nicknames.get(&t).cloned())
            .unwrap_or_default();
        let customer = if live.name.is_empty() {
            "Customer".to_string()
        } else {
            live.name.clone()
        };
        Some((live.policy.omit_chat_from_storage, nickname, customer))
    }

    /// A chat line from one side: sent to both sides, counted as activity, and stored unless the
    /// group omits chat from storage.
    pub(crate) fn say(
        &self,
        id: SessionId,
        from: ChatFrom,
        sender_id: Option<UserId>,
        name: &str,
        text: &str,
    ) {
        let at = self.now();
        self.broadcast_chat(id, from, name, text, at);
        let _ = self.apply(id, Command::Activity);
        let omit = self
            .lock()
            .live
            .get(&id)
            .is_none_or(|l| l.policy.omit_chat_from_storage);
        if !omit {
            self.store_chat(id, chat_row(from, sender_id, name, text, at));
        }
    }

    /// A chat line to both sides of the session (the sender gets its own line back).
    pub(crate) fn broadcast_chat(
        &self,
        id: SessionId,
        from: ChatFrom,
        name: &str,
        text: &str,
        at: Millis,
    ) {
        let inner = self.lock();
        let Some(s) = inner.desk.get(id) else { return };
        if let Some(c) = inner.customers.get(&id) {
            send(
                &c.tx,
                &ServerFrame::Chat {
                    session_id: None,
                    from,
                    name: name.into(),
                    text: text.into(),
                    at: rfc3339(at),
                },
            );
        }
        let frame = ServerFrame::Chat {
            session_id: Some(id),
            from,
            name: name.into(),
            text: text.into(),
            at: rfc3339(at),
        };
        for tech in audience_of(&inner, s) {
            send_console(&inner, tech, &frame);
        }
    }

    /// Answers a `mute` request from either side: `ok` first, then the new state to both sides
    /// (PROTOCOL.md §1); a mute is activity.
    pub(crate) fn mute_request(
        &self,
        tx: &Outbound,
        request: String,
        id: SessionId,
        change: impl FnOnce(&mut MuteState),
    ) {
        if self.mute_state(id).is_none() {
            let ended = signaling::protocol::ErrorCode::SessionEnded;
            send(
                tx,
                &ServerFrame::error(Some(request), ended, "the session has ended"),
            );
            return;
        }
        send(tx, &ServerFrame::ok(request, serde_json::Value::Null));
        self.set_mute(id, change);
        let _ = self.apply(id, Command::Activity);
    }

    /// Applies a mute change and tells both sides. `None` when the session is not live.
    pub(crate) fn set_mute(
        &self,
        id: SessionId,
        change: impl FnOnce(&mut MuteState),
    ) -> Option<MuteState> {
        let mut inner = self.lock();
        let owner = inner.desk.get(id)?.technician_id;
        let live = inner.live.get_mut(&id)?;
        let before = live.mute;
        change(&mut live.mute);
        let after = live.mute;
        use signaling::protocol::MediaKind;
        if before.customer_audio != after.customer_audio {
            self.media
                .set_flowing(id, true, MediaKind::Audio, after.customer_audio);
        }
        if before.customer_video != after.customer_video {
            self.media
                .set_flowing(id, true, MediaKind::Video, after.customer_video);
        }
        if before.technician_audio != after.technician_audio {
            self.media
                .set_flowing(id, false, MediaKind::Audio, after.technician_audio);
        }
        let frame = |session_id| mute_frame(session_id, after);
        if let Some(c) = inner.customers.get(&id) {
            send(&c.tx, &frame(None));
        }
        if let Some(t) = owner {
            send_console(&inner, t, &frame(Some(id)));
        }
        Some(after)
    }

    pub(crate) fn mute_state(&self, id: SessionId) -> Option<MuteState> {
        self.lock().live.get(&id).map(|l| l.mute)
    }

    /// The current view of a live session.
    pub fn view(&self, id: SessionId) -> Option<SessionView> {
        let inner = self.lock();
        let s = inner.desk.get(id)?;
        view_of(&inner, s, self.now())
    }

    /// The technician was deleted or disabled: its sessions end as the guide says.
    pub fn technician_removed(&self, technician: UserId) {
        let now = self.now();
        let mut inner = self.lock();
        let out = inner.desk.technician_removed(technician, now);
        if let Some(console) = inner.consoles.remove(&technician) {
            for c in console.conns {
                send(
                    &c.tx,
                    &ServerFrame::error(
                        None,
                        signaling::protocol::ErrorCode::InvalidToken,
                        "your account was deleted or disabled",
                    ),
                );
            }
        }
        self.after(&mut inner, out, now);
    }

    /// The live sessions on this node's desk.
    pub fn held(&self) -> Vec<SessionId> {
        self.lock().desk.sessions().map(|s| s.id).collect()
    }

    /// Fencing (several nodes): another node took this session over while this one could not
    /// reach the store. This node lets it go without writing anything: its room closes, its
    /// customer socket here closes (the client resumes and reaches the new owner), and consoles
    /// attached here stop listing it (the new owner's events reach them).
    pub fn relinquish(&self, id: SessionId) {
        let mut inner = self.lock();
        if inner.desk.remove(id).is_none() {
            return;
        }
        self.media.stop(id);
        if let Some(live) = inner.live.remove(&id) {
            for tech in &live.audience {
                send_console(
                    &inner,
                    *tech,
                    &ServerFrame::SessionRemoved { session_id: id },
                );
            }
            if let Some(pin) = &live.pin {
                inner.pins.remove(pin);
            }
            if let Some(h) = &live.link_hash {
                inner.links.remove(h);
            }
            if let Some(h) = &live.resume_hash {
                inner.resumes.remove(h);
            }
        }
        if let Some(c) = inner.customers.remove(&id) {
            close(&c.tx, 1012);
        }
    }

    /// Drain (several nodes): takes a live session off this node's desk, without writing
    /// anything, to hand it to another node. Its room closes (the recording's file ends here; the
    /// new owner starts the next one); consoles keep listing it (the new owner's events follow);
    /// a customer socket carried here from another node stays open until its home re-homes it.
    /// Returns what the store does not hold, and this node's own customer socket, which the
    /// caller closes (1012) once the store names the new owner.
    pub fn hand_over(&self, id: SessionId) -> Option<(MovedSession, Option<Outbound>)> {
        let mut inner = self.lock();
        let s = inner.desk.remove(id)?;
        if let Some(bytes) = self.media.stop(id) {
            let _ = self.writer.send(WriteJob::Transmitted(id, bytes));
        }
        let live = inner.live.remove(&id);
        if let Some(live) = &live {
            if let Some(pin) = &live.pin {
                inner.pins.remove(pin);
            }
            if let Some(h) = &live.link_hash {
                inner.links.remove(h);
            }
            if let Some(h) = &live.resume_hash {
                inner.resumes.remove(h);
            }
        }
        let customer = inner.customers.remove(&id);
        let moved = MovedSession {
            session_id: id,
            customer_connected: s.customer_connected,
            technician_connected: s.technician_connected,
            mute: live.as_ref().map_or(
                MuteState {
                    customer_audio: true,
                    customer_video: true,
                    technician_audio: true,
                },
                |l| l.mute,
            ),
            frozen: live.as_ref().is_some_and(|l| l.frozen),
            transfer_comment: live.as_ref().and_then(|l| l.transfer_comment.clone()),
            customer_media: live.as_ref().is_some_and(|l| l.customer_media),
            link: live.and_then(|l| l.link),
        };
        Some((moved, customer.filter(|c| !c.hosted).map(|c| c.tx)))
    }

    /// A moved session whose customer did not come back (its home node died with the move):
    /// the session treats the customer as gone, as for a dropped socket.
    pub fn customer_missing(&self, id: SessionId) {
        let now = self.now();
        let mut inner = self.lock();
        if inner.customers.contains_key(&id) {
            return;
        }
        if let Ok(out) =
            inner
                .desk
                .handle(id, Command::CustomerConnection { connected: false }, now)
        {
            self.after(&mut inner, out, now);
        }
    }

    pub fn live_count(&self) -> usize {
        self.lock().desk.len()
    }

    /// After a restart: every session that had not ended comes back with its time-outs. Sockets
    /// are gone, so sessions with a customer go to Reconnecting and their clients resume with their
    /// resume tokens inside the grace period.
    pub async fn restore(&self) -> anyhow::Result<usize> {
        // With several nodes on the store, each takes back only the sessions it held.
        let rows = if self.node.shares_store() {
            self.store.live_sessions_of(&self.node.id).await?
        } else {
            self.store.live_sessions().await?
        };
        self.restore_rows(rows, &Restored::Restart).await
    }

    /// Puts stored live sessions on this node's desk: after a restart, taken over from a dead
    /// node (issue 15: failover), or moved here by a draining node. Their clients come back with
    /// their resume tokens, or (a socket carried by another node) are re-homed here.
    pub async fn restore_rows(
        &self,
        rows: Vec<SessionRow>,
        how: &Restored,
    ) -> anyhow::Result<usize> {
        let now = self.now();
        let mut count = 0;
        for row in rows {
            let moved = match how {
                Restored::Moved(m) => m.iter().find(|m| m.session_id == row.id),
                _ => None,
            };
            let Some(status) = Status::parse(&row.status) else {
                continue;
            };
            let policy: SessionPolicy = match serde_json::from_str(&row.policy) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(session_id = row.id, error = %e, "cannot restore a session: bad policy");
                    continue;
                }
            };
            let seq = self.store.last_event_seq(row.id).await?;
            let chat_lines = self.store.chat_count(row.id).await?;
            let session = Session {
                id: row.id,
                status,
                technician_id: row.technician_id,
                group_id: row.group_id,
                policy: policy.to_policy(),
                created_at: row.created_at,
                status_since: row.status_since,
                last_activity: row.last_activity,
                before_reconnecting: row.before_reconnecting.as_deref().and_then(Status::parse),
                // A moved session keeps its status: its customer and console are still there
                // (re-homed, or resuming within the grace period).
                customer_connected: moved
                    .map_or(status == Status::Connecting, |m| m.customer_connected),
                technician_connected: moved.is_some_and(|m| m.technician_connected),
                // Media does not survive a restart; the phone offers again.
                customer_media_lost: false,
                technician_media_lost: false,
                ever_active: row.ever_active,
            };
            let mut inner = self.lock();
            if let Some(pin) = &row.pin {
                inner.pins.insert(pin.clone(), row.id);
            }
            if let Some(h) = &row.link_token_hash {
                inner.links.insert(h.clone(), row.id);
            }
            if let Some(h) = &row.resume_token_hash {
                inner.resumes.insert(h.clone(), row.id);
            }
            // Its room comes back (empty) for a session in a technician's hands, so that the
            // phone's new offer and the console's new answer have somewhere to go.
            let in_hands = match status {
                Status::Reconnecting => session.before_reconnecting,
                s => Some(s),
            };
            if let (Some(t), Some(st @ (Status::Active | Status::OnHold))) =
                (row.technician_id, in_hands)
            {
                self.media.start(row.id, t, policy.audio);
                if st == Status::OnHold {
                    self.media.hold(row.id);
                }
                if let Some(m) = moved {
                    use signaling::protocol::MediaKind;
                    let plan = [
                        (true, MediaKind::Audio, m.mute.customer_audio),
                        (true, MediaKind::Video, m.mute.customer_video),
                        (false, MediaKind::Audio, m.mute.technician_audio),
                    ];
                    for (customer, kind, flowing) in plan {
                        if !flowing {
                            self.media.set_flowing(row.id, customer, kind, false);
                        }
                    }
                }
            }
            let (mute, frozen, transfer_comment, link) = match moved {
                Some(m) => (m.mute, m.frozen, m.transfer_comment.clone(), m.link.clone()),
                None => (
                    MuteState {
                        customer_audio: true,
                        customer_video: true,
                        technician_audio: true,
                    },
                    false,
                    None,
                    None,
                ),
            };
            // Only a phone that has a peer connection to the old node is asked to offer again: one
            // still Waiting offers after its pickup anyway.
            let had_media = matches!(
                in_hands,
                Some(Status::Active | Status::OnHold | Status::Transferring)
            );
            let reoffer = match (how, moved) {
                (Restored::Restart, _) => None,
                (Restored::TakenOver, _) => had_media.then_some(ReofferReason::NodeFailed),
                (Restored::Moved(_), m) => m
                    .is_some_and(|m| m.customer_media)
                    .then_some(ReofferReason::NodeMoved),
            };
            inner.desk.insert(session);
            inner.live.insert(
                row.id,
                Live {
                    method: method_of(&row.method),
                    name: row.name.clone(),
                    custom_fields: row.custom_fields.clone(),
                    tracking_id: row.tracking_id.clone(),
                    policy,
                    pin: row.pin.clone(),
                    link,
                    link_hash: row.link_token_hash.clone(),
                    resume_hash: row.resume_token_hash.clone(),
                    device: device_of(&row),
                    customer_ip: (!row.customer_ip.is_empty()).then(|| row.customer_ip.clone()),
                    seq,
                    ever_active: row.ever_active,
                    transfer_comment,
                    shown_alarm: None,
                    customer_media: false,
                    mute,
                    audience: HashSet::new(),
                    chat_lines,
                    tools: signaling::tools::Budget::new(now),
                    frozen,
                    reoffer,
                },
            );
            if moved.is_none()
                && matches!(
                    status,
                    Status::Waiting | Status::Active | Status::OnHold | Status::Transferring
                )
                && let Ok(out) = inner.desk.handle(
                    row.id,
                    Command::CustomerConnection { connected: false },
                    now,
                )
            {
                self.after(&mut inner, out, now);
            }
            // Taken over from a dead node: its technician's console may be attached here already
            // (a console is mirrored on every node), and stays so.
            if let Some(t) = row.technician_id
                && let Some(group) = inner.consoles.get(&t).map(|c| c.group_id)
            {
                let out = inner.desk.technician_presence(t, group, true, now);
                self.after(&mut inner, out, now);
            }
            // Its consoles here are its audience from now on: a moved session makes no
            // transition that would publish it, and its end would otherwise reach no console.
            self.publish(&mut inner, row.id, now, None);
            count += 1;
        }
        self.wake.notify_one();
        Ok(count)
    }
}

fn method_of(s: &str) -> CodeMethod {
    match s {
        "link" => CodeMethod::Link,
        "sms" => CodeMethod::Sms,
        "email" => CodeMethod::Email,
        _ => CodeMethod::Pin,
    }
}

fn device_of(row: &SessionRow) -> Option<DeviceInfo> {
    let d = &row.device;
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let info = DeviceInfo {
        platform: some(&d.platform),
        model: some(&d.model),
        app: some(&d.app),
        locale: some(&d.locale),
        device_id: some(&d.device_id),
        browser: some(&d.browser),
    };
    (info != DeviceInfo::default()).then_some(info)
}

fn mute_frame(session_id: Option<SessionId>, m: MuteState) -> ServerFrame {
    ServerFrame::MuteState {
        session_id,
        customer_audio: m.customer_audio,
        customer_video: m.customer_video,
        technician_audio: m.technician_audio,
    }
}

/// A status in which the phone offers: Active or On Hold, or Reconnecting from one of them.
fn offer_status(s: &Session) -> bool {
    let media = |s: Option<Status>| matches!(s, Some(Status::Active | Status::OnHold));
    media(Some(s.status)) || (s.status == Status::Reconnecting && media(s.before_reconnecting))
}

fn live_ever_active(live: &HashMap<SessionId, Live>, id: SessionId) -> bool {
    live.get(&id).is_some_and(|l| l.ever_active)
}

fn state_of(s: &Session, ended_at: Option<Millis>) -> SessionState {
    SessionState {
        status: s.status.as_str().into(),
        status_since: s.status_since,
        before_reconnecting: s.before_reconnecting.map(|b| b.as_str().to_string()),
        last_activity: s.last_activity,
        ever_active: s.ever_active,
        technician_id: s.technician_id,
        group_id: s.group_id,
        ended_at,
    }
}

/// Consoles that list a session: its owner, or every technician of its group while it is queued
/// for the group.
fn audience_of(inner: &Inner, s: &Session) -> HashSet<UserId> {
    match s.technician_id {
        Some(t) => HashSet::from([t]),
        None => inner
            .consoles
            .iter()
            .filter(|(_, c)| c.group_id == s.group_id)
            .map(|(id, _)| *id)
            .collect(),
    }
}

fn view_of(inner: &Inner, s: &Session, now: Millis) -> Option<SessionView> {
    let live = inner.live.get(&s.id)?;
    let secs = u64::try_from((now - s.status_since).max(0) / 1000).unwrap_or(0);
    Some(SessionView {
        id: s.id,
        status: s.status.as_str().into(),
        method: live.method,
        name: live.name.clone(),
        custom_fields: live.custom_fields.to_vec(),
        tracking_id: live.tracking_id.clone(),
        technician_id: s.technician_id,
        group_id: s.group_id,
        created_at: rfc3339(s.created_at),
        status_since: rfc3339(s.status_since),
        waiting_seconds: (s.status == Status::Waiting).then_some(secs),
        alarm_color: live.policy.alarm(s.status, secs),
        device: live.device.clone(),
        customer_ip: live.customer_ip.clone(),
        pin: (s.status == Status::Pending)
            .then(|| live.pin.clone())
            .flatten(),
        link: (s.status == Status::Pending)
            .then(|| live.link.clone())
            .flatten(),
        audio: live.policy.audio,
        transfer_comment: live.transfer_comment.clone(),
    })
}

pub fn send(tx: &Outbound, frame: &ServerFrame) {
    let text: Arc<str> = Arc::from(frame.to_text());
    // A full queue means the client stopped reading; dropping the frame is better than blocking
    // the hub. The socket task notices the closed channel soon after.
    let _ = tx.try_send(Outgoing::Frame(text));
}

pub fn close(tx: &Outbound, code: u16) {
    let _ = tx.try_send(Outgoing::Close(code));
}

/// The writer half of a socket: frames from the hub, a WebSocket ping every 20 s, and the close.
pub async fn write_socket(
    mut sink: futures_util::stream::SplitSink<
        axum::extract::ws::WebSocket,
        axum::extract::ws::Message,
    >,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    use axum::extract::ws::{CloseFrame, Message};
    use futures_util::SinkExt;
    let mut ping = tokio::time::interval(std::time::Duration::from_secs(20));
    ping.tick().await;
    let code = loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(Outgoing::Frame(text)) => {
                    if sink.send(Message::Text(text.as_ref().into())).await.is_err() {
                        return;
                    }
                }
                Some(Outgoing::Close(code)) => break code,
                None => break 1000,
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    };
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Default::default(),
        })))
        .await;
    let _ = sink.close().await;
}

/// A socket is dead when nothing at all arrived for this long (PROTOCOL.md §1).
pub const SILENCE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One protocol socket (customer or console): frames in, parsed; frames out through a bounded
/// queue and a writer task that also pings.
pub struct Socket {
    inbound: Inbound,
    pub tx: Outbound,
    writer: tokio::task::JoinHandle<()>,
    /// The text of the last frame [`Socket::next`] returned (what a home forwards to an owner).
    pub last: String,
}

/// Where a socket's frames come from: the client's WebSocket, or (a hosted socket) the bus.
enum Inbound {
    Ws(futures_util::stream::SplitStream<axum::extract::ws::WebSocket>),
    Bus(mpsc::UnboundedReceiver<String>),
}

impl Socket {
    pub fn open(socket: axum::extract::ws::WebSocket) -> Socket {
        use futures_util::StreamExt;
        let (sink, stream) = socket.split();
        let (tx, rx) = mpsc::channel::<Outgoing>(OUTBOUND_QUEUE);
        let writer = tokio::spawn(write_socket(sink, rx));
        Socket {
            inbound: Inbound::Ws(stream),
            tx,
            writer,
            last: String::new(),
        }
    }

    /// A socket of another node run here: frames from the bus, `tx` drained by `writer`. Its
    /// liveness is the home's business (the home pings the client and says when it left).
    pub(crate) fn hosted(
        frames: mpsc::UnboundedReceiver<String>,
        tx: Outbound,
        writer: tokio::task::JoinHandle<()>,
    ) -> Socket {
        Socket {
            inbound: Inbound::Bus(frames),
            tx,
            writer,
            last: String::new(),
        }
    }

    /// The next request; malformed frames are answered with error frames here. `None` when the
    /// socket closed or stayed silent for [`SILENCE_LIMIT`].
    pub async fn next<R>(
        &mut self,
        parse: fn(&str) -> Result<R, signaling::protocol::ProtocolError>,
        authenticated: bool,
    ) -> Option<R> {
        use axum::extract::ws::Message;
        use futures_util::StreamExt;
        use signaling::protocol::ErrorCode;
        loop {
            let stream = match &mut self.inbound {
                Inbound::Ws(stream) => stream,
                Inbound::Bus(frames) => {
                    let text = frames.recv().await?;
                    match parse(&text) {
                        Ok(request) => {
                            self.last = text;
                            return Some(request);
                        }
                        Err(e) => {
                            send(&self.tx, &e.frame());
                            continue;
                        }
                    }
                }
            };
            let Ok(Some(Ok(message))) = tokio::time::timeout(SILENCE_LIMIT, stream.next()).await
            else {
                return None;
            };
            let text = match message {
                Message::Text(t) => t,
                Message::Binary(_) => {
                    send(
                        &self.tx,
                        &ServerFrame::error(None, ErrorCode::MalformedJson, "frames are JSON text"),
                    );
                    continue;
                }
                Message::Close(_) => return None,
                _ => continue,
            };
            match parse(text.as_str()) {
                Ok(request) => {
                    self.last.clear();
                    self.last.push_str(text.as_str());
                    return Some(request);
                }
                Err(e) => {
                    send(&self.tx, &e.frame());
                    if e.code == ErrorCode::UnsupportedVersion && !authenticated {
                        // A first frame of another protocol version is fatal (PROTOCOL.md §1).
                        close(&self.tx, 1008);
                    }
                }
            }
        }
    }

    /// Lets the writer send what is queued and close the socket.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.writer.await;
    }
}

fn send_console(inner: &Inner, technician: UserId, frame: &ServerFrame) {
    if let Some(c) = inner.consoles.get(&technician) {
        let text: Arc<str> = Arc::from(frame.to_text());
        for conn in &c.conns {
            let _ = conn.tx.try_send(Outgoing::Frame(text.clone()));
        }
    }
}

/// Appends to the store in the order decisions were made, a batch of queued jobs per
/// transaction so that the store keeps up with a busy hub.
async fn write_loop(
    store: Store,
    mut jobs: mpsc::UnboundedReceiver<WriteJob>,
    owner: Option<String>,
) {
    use crate::store::sessions::SessionWrite;
    let mut batch = Vec::with_capacity(256);
    while jobs.recv_many(&mut batch, 256).await > 0 {
        let mut writes = Vec::with_capacity(batch.len());
        let mut flushed = Vec::new();
        for job in batch.drain(..) {
            match job {
                WriteJob::Transitions(id, state, events) => {
                    writes.push(SessionWrite::Transitions(id, state, events))
                }
                WriteJob::Touch(id, at) => writes.push(SessionWrite::Touch(id, at)),
                WriteJob::Chat(id, row) => writes.push(SessionWrite::Chat(id, row)),
                WriteJob::Transmitted(id, bytes) => writes.push(SessionWrite::Transmitted(
                    id,
                    i64::try_from(bytes).unwrap_or(i64::MAX),
                )),
                WriteJob::Tool(id, used) => writes.push(SessionWrite::Tool(id, used)),
                WriteJob::Bus(m) => writes.push(SessionWrite::Bus(m)),
                WriteJob::Release(id, keep) => writes.push(SessionWrite::Release(id, keep)),
                WriteJob::Flush(done) => flushed.push(done),
            }
        }
        if !writes.is_empty() {
            write_until_stored(&store, &writes, owner.as_deref()).await;
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Writes one batch, retrying while the store is unavailable (PostgreSQL restarting, the network
/// to it down): what the hub decided meanwhile waits here in order, behind this batch, and is
/// stored once the store answers. A batch the store refuses for another reason is logged and
/// dropped, as retrying it would fail the same way and hold up everything after it.
async fn write_until_stored(
    store: &Store,
    writes: &[crate::store::sessions::SessionWrite],
    owner: Option<&str>,
) {
    let mut wait = std::time::Duration::from_millis(100);
    let mut failed_since: Option<std::time::Instant> = None;
    loop {
        match store.write_sessions(writes, owner).await {
            Ok(()) => {
                if let Some(since) = failed_since {
                    tracing::warn!(jobs = writes.len(), after = ?since.elapsed(),
                        "the store answers again: session events stored");
                }
                return;
            }
            Err(e) if e.is_unavailable() => {
                if failed_since.is_none() {
                    tracing::error!(error = %e, jobs = writes.len(),
                        "the store is unavailable: session events wait and are retried");
                    failed_since = Some(std::time::Instant::now());
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = writes.len(), "could not append session events");
                return;
            }
        }
    }
}

/// A chat line as stored and as sent.
pub fn chat_row(
    from: ChatFrom,
    sender_id: Option<UserId>,
    name: &str,
    text: &str,
    at: Millis,
) -> ChatRow {
    ChatRow {
        at,
        sender: match from {
            ChatFrom::Technician => "technician",
            ChatFrom::Customer => "customer",
            ChatFrom::System => "system",
        }
        .into(),
        sender_id,
        name: name.into(),
        text: text.into(),
    }
}
