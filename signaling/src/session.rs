//! The session state machine and the desk that holds every live session.
//!
//! Pure code in the manner of str0m: nothing here reads a clock or does I/O. The caller passes the
//! time (`now`, UTC milliseconds) with every input and gets back the transitions to append to the
//! store and the effects to perform (media, notifications). One `Desk` holds all live sessions, the
//! technicians' presence, the one-Active-session-per-technician rule and a single ordered set of
//! deadlines, so one scheduler serves every session: call [`Desk::poll_timeouts`] at
//! [`Desk::next_deadline`].
//!
//! ```text
//!  Pending ──join──▶ Connecting ──ready──▶ Waiting ──pickup──▶ Active ⇄ On Hold
//!     │ code expires     │ time-out            │ time-out        │  │ transfer
//!     ▼                  ▼                     ▼                 │  ▼
//!  Expired           Timed out            Timed out              │ Transferring ──▶ Waiting (new owner)
//!                                                                │ idle time-out ──▶ Timed out: closed by technician
//!  Waiting / Active / On Hold / Transferring ──connection lost──▶ Reconnecting ──back──▶ (prior status)
//!                        (a socket, or the phone's media path)                └─grace over─▶ Disconnected
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;

pub use crate::protocol::TechnicianStatus;
use crate::status::Status;

pub type SessionId = i64;
pub type UserId = i64;
pub type GroupId = i64;
/// UTC milliseconds since the Unix epoch.
pub type Millis = i64;

/// Per-group time-outs, in milliseconds; 0 means "never" where the guide allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub code_validity_ms: Millis,
    pub connecting_ms: Millis,
    /// 0 = never.
    pub waiting_ms: Millis,
    /// 0 = never. On Hold never times out.
    pub active_idle_ms: Millis,
    /// How long a dropped side may take to come back before the session ends as Disconnected.
    pub reconnect_grace_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoTechnicianAvailable {
    KeepAlive,
    NotifyByEmail,
    /// End the session and send the customer to this page.
    AbortAndShowUrl(String),
}

/// What the technician group decided for its sessions, fixed when the session is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub audio: bool,
    pub auto_start: bool,
    pub timeouts: Timeouts,
    pub no_technician_available: NoTechnicianAvailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    Customer,
    Technician(UserId),
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    Technician(UserId),
    Group(GroupId),
}

/// Why a transition happened; stored with the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    CodeEntered,
    Ready,
    AutoStart,
    Pickup,
    Hold,
    Resume,
    Transfer {
        to: TransferTarget,
        comment: String,
    },
    TransferArrived,
    EndedByCustomer,
    EndedByTechnician,
    Declined,
    CodeExpired,
    ConnectingTimedOut,
    WaitingTimedOut,
    IdleTimedOut,
    CustomerConnectionLost,
    /// The phone's media path broke (ICE disconnected, or the phone restarted ICE after a
    /// network change) while its socket may still be up.
    CustomerMediaLost,
    TechnicianConnectionLost,
    /// The console's media path broke (nothing heard from its peer for `lost_after`, or ICE
    /// disconnected) while its socket may still be up.
    TechnicianMediaLost,
    Reconnected,
    GracePeriodOver,
    TechnicianRemoved,
    NoTechnicianAvailable,
}

impl Reason {
    /// A short stable name for storage and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::CodeEntered => "code_entered",
            Reason::Ready => "ready",
            Reason::AutoStart => "auto_start",
            Reason::Pickup => "pickup",
            Reason::Hold => "hold",
            Reason::Resume => "resume",
            Reason::Transfer { .. } => "transfer",
            Reason::TransferArrived => "transfer_arrived",
            Reason::EndedByCustomer => "ended_by_customer",
            Reason::EndedByTechnician => "ended_by_technician",
            Reason::Declined => "declined",
            Reason::CodeExpired => "code_expired",
            Reason::ConnectingTimedOut => "connecting_timed_out",
            Reason::WaitingTimedOut => "waiting_timed_out",
            Reason::IdleTimedOut => "idle_timed_out",
            Reason::CustomerConnectionLost => "customer_connection_lost",
            Reason::CustomerMediaLost => "customer_media_lost",
            Reason::TechnicianConnectionLost => "technician_connection_lost",
            Reason::TechnicianMediaLost => "technician_media_lost",
            Reason::Reconnected => "reconnected",
            Reason::GracePeriodOver => "grace_period_over",
            Reason::TechnicianRemoved => "technician_removed",
            Reason::NoTechnicianAvailable => "no_technician_available",
        }
    }
}

/// One appended event: the session moved from one status to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub session_id: SessionId,
    pub at: Millis,
    pub from: Status,
    pub to: Status,
    pub actor: Actor,
    pub reason: Reason,
    /// The technician who owns the session after the transition (None: queued for a group).
    pub technician_id: Option<UserId>,
    pub group_id: GroupId,
}

/// Work for the media server and the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The session became Active with this technician: connect customer and technician media.
    StartMedia {
        session_id: SessionId,
        technician_id: UserId,
        audio: bool,
    },
    /// Stop forwarding both ways (hold, transfer, reconnecting).
    HoldMedia { session_id: SessionId },
    /// Forward again, asking the phone for a keyframe.
    ResumeMedia { session_id: SessionId },
    /// The session is over: tear its media down.
    StopMedia { session_id: SessionId },
    /// No technician is available for a waiting session: email the technicians who could take it.
    NotifyTechniciansByEmail {
        session_id: SessionId,
        technician_id: Option<UserId>,
        group_id: GroupId,
    },
    /// Send the customer to this page (no technician available).
    RedirectCustomer { session_id: SessionId, url: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub transitions: Vec<Transition>,
    pub effects: Vec<Effect>,
}

impl Output {
    fn merge(&mut self, other: Output) {
        self.transitions.extend(other.transitions);
        self.effects.extend(other.effects);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// The command is not legal in the session's current status.
    NotAllowed,
    /// The technician already has an Active session.
    OneActiveSession,
    /// The session belongs to another technician or group.
    NotYours,
    UnknownSession,
}

/// A refused command; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

fn refuse(code: RefusalCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

fn not_allowed(what: &str, status: Status) -> Refusal {
    refuse(
        RefusalCode::NotAllowed,
        format!("cannot {what} a session that is {status}"),
    )
}

/// Inputs about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The customer presented the session's code.
    CustomerJoin,
    /// The customer's app is up (camera granted).
    CustomerReady,
    Pickup {
        technician: UserId,
    },
    Hold {
        technician: UserId,
    },
    Resume {
        technician: UserId,
    },
    Transfer {
        technician: UserId,
        to: TransferTarget,
        comment: String,
    },
    EndByTechnician {
        technician: UserId,
    },
    EndByCustomer,
    Decline,
    /// The customer's socket dropped (`false`) or came back (`true`).
    CustomerConnection {
        connected: bool,
    },
    /// The phone's media path (its WebRTC peer's ICE connection) broke (`false`) or is back
    /// (`true`). While it is broken the session is `Reconnecting`, even with the socket up.
    CustomerMedia {
        connected: bool,
    },
    /// The console's media path broke (`false`) or is back (`true`). While it is broken an
    /// Active session is `Reconnecting`.
    TechnicianMedia {
        connected: bool,
    },
    /// Chat, commands or media from either side: resets the active idle time-out.
    Activity,
}

/// Why a deadline is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    CodeValidity,
    Connecting,
    Waiting,
    ActiveIdle,
    ReconnectGrace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub status: Status,
    /// The technician who owns the session; None while queued for a group after a transfer.
    pub technician_id: Option<UserId>,
    /// The technician group whose settings apply and whose queue holds it when unowned.
    pub group_id: GroupId,
    pub policy: Policy,
    pub created_at: Millis,
    pub status_since: Millis,
    pub last_activity: Millis,
    /// The status to return to when Reconnecting ends well.
    pub before_reconnecting: Option<Status>,
    pub customer_connected: bool,
    pub technician_connected: bool,
    /// The phone's media path broke and has not come back yet.
    pub customer_media_lost: bool,
    /// The console's media path broke and has not come back yet.
    pub technician_media_lost: bool,
    pub ever_active: bool,
}

impl Session {
    /// A new session whose code was just issued (`Pending`).
    pub fn new(
        id: SessionId,
        technician_id: UserId,
        group_id: GroupId,
        policy: Policy,
        now: Millis,
    ) -> Session {
        Session {
            id,
            status: Status::Pending,
            technician_id: Some(technician_id),
            group_id,
            policy,
            created_at: now,
            status_since: now,
            last_activity: now,
            before_reconnecting: None,
            customer_connected: false,
            technician_connected: true,
            customer_media_lost: false,
            technician_media_lost: false,
            ever_active: false,
        }
    }

    /// When the session next times out on its own, and why.
    pub fn deadline(&self) -> Option<(Millis, Deadline)> {
        let t = &self.policy.timeouts;
        match self.status {
            Status::Pending => Some((self.created_at + t.code_validity_ms, Deadline::CodeValidity)),
            Status::Connecting => Some((self.status_since + t.connecting_ms, Deadline::Connecting)),
            Status::Waiting if t.waiting_ms > 0 => {
                Some((self.status_since + t.waiting_ms, Deadline::Waiting))
            }
            Status::Active if t.active_idle_ms > 0 => {
                Some((self.last_activity + t.active_idle_ms, Deadline::ActiveIdle))
            }
            Status::Reconnecting => Some((
                self.status_since + t.reconnect_grace_ms,
                Deadline::ReconnectGrace,
            )),
            _ => None,
        }
    }

    /// Can a technician act on this session?
    fn owned_by(&self, technician: UserId) -> bool {
        self.technician_id == Some(technician)
    }
}

/// Presence of a technician at the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub group_id: GroupId,
    pub online: bool,
    pub status: TechnicianStatus,
}

/// All live sessions and the technicians' presence.
#[derive(Debug, Default)]
pub struct Desk {
    sessions: HashMap<SessionId, Session>,
    deadlines: BTreeSet<(Millis, SessionId)>,
    active: HashMap<UserId, SessionId>,
    technicians: HashMap<UserId, Presence>,
}

impl Desk {
    pub fn new() -> Desk {
        Desk::default()
    }

    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The technician's Active session, if any.
    pub fn active_session_of(&self, technician: UserId) -> Option<SessionId> {
        self.active.get(&technician).copied()
    }

    pub fn presence(&self, technician: UserId) -> Option<&Presence> {
        self.technicians.get(&technician)
    }

    /// Lets go of a session without deciding anything about it (another server took it over):
    /// no transition, no effect.
    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        let s = self.sessions.get(&id).cloned();
        self.forget(id);
        s
    }

    /// Adds a new session, or one restored from the store after a restart. Final sessions are
    /// not kept.
    pub fn insert(&mut self, session: Session) {
        if session.status.is_final() {
            return;
        }
        self.forget(session.id);
        if session.status == Status::Active
            && let Some(t) = session.technician_id
        {
            self.active.insert(t, session.id);
        }
        if let Some((at, _)) = session.deadline() {
            self.deadlines.insert((at, session.id));
        }
        self.sessions.insert(session.id, session);
    }

    fn forget(&mut self, id: SessionId) {
        if let Some(old) = self.sessions.remove(&id) {
            if let Some((at, _)) = old.deadline() {
                self.deadlines.remove(&(at, id));
            }
            if let Some(t) = old.technician_id
                && self.active.get(&t) == Some(&id)
            {
                self.active.remove(&t);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Applies a command to a session. On refusal nothing changes.
    pub fn handle(
        &mut self,
        id: SessionId,
        command: Command,
        now: Millis,
    ) -> Result<Output, Refusal> {
        let Some(session) = self.sessions.get(&id) else {
            return Err(refuse(RefusalCode::UnknownSession, "no such live session"));
        };
        let mut next = session.clone();
        let mut out = Output::default();
        self.apply(&mut next, command, now, &mut out)?;
        self.commit(next);
        Ok(out)
    }

    /// Ends every session whose deadline has passed.
    pub fn poll_timeouts(&mut self, now: Millis) -> Output {
        let mut out = Output::default();
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id));
            let Some(session) = self.sessions.get(&id) else {
                continue;
            };
            // The index may hold an outdated deadline (activity moved it): re-check.
            let Some((due, kind)) = session.deadline() else {
                continue;
            };
            if due > now {
                self.deadlines.insert((due, id));
                continue;
            }
            let mut next = session.clone();
            let mut step = Output::default();
            let (to, reason) = match kind {
                Deadline::CodeValidity => (Status::Expired, Reason::CodeExpired),
                Deadline::Connecting => (Status::TimedOut, Reason::ConnectingTimedOut),
                Deadline::Waiting => (Status::TimedOut, Reason::WaitingTimedOut),
                Deadline::ActiveIdle => (Status::TimedOutClosedByTechnician, Reason::IdleTimedOut),
                Deadline::ReconnectGrace => (Status::Disconnected, Reason::GracePeriodOver),
            };
            move_to(&mut next, to, Actor::System, reason, due, &mut step);
            self.commit(next);
            out.merge(step);
        }
        out
    }

    /// A technician's console connected or disconnected (all its sockets: `online` is the result).
    /// Its Active session goes to Reconnecting when it drops and back when it returns.
    pub fn technician_presence(
        &mut self,
        technician: UserId,
        group_id: GroupId,
        online: bool,
        now: Millis,
    ) -> Output {
        let entry = self.technicians.entry(technician).or_insert(Presence {
            group_id,
            online,
            status: TechnicianStatus::Available,
        });
        entry.group_id = group_id;
        entry.online = online;
        let mut out = Output::default();
        let mine: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|s| s.owned_by(technician))
            .map(|s| s.id)
            .collect();
        for id in mine {
            let Some(session) = self.sessions.get(&id) else {
                continue;
            };
            let mut next = session.clone();
            next.technician_connected = online;
            let mut step = Output::default();
            if !online && next.status == Status::Active {
                enter_reconnecting(&mut next, Reason::TechnicianConnectionLost, now, &mut step);
            } else if online && next.status == Status::Reconnecting {
                leave_reconnecting_if_whole(&mut next, now, &mut step);
            }
            self.commit(next);
            out.merge(step);
        }
        out
    }

    pub fn set_technician_status(&mut self, technician: UserId, status: TechnicianStatus) {
        if let Some(p) = self.technicians.get_mut(&technician) {
            p.status = status;
        }
    }

    /// The technician was deleted or disabled: its sessions are aborted.
    pub fn technician_removed(&mut self, technician: UserId, now: Millis) -> Output {
        let mut out = Output::default();
        let mine: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|s| s.owned_by(technician))
            .map(|s| s.id)
            .collect();
        for id in mine {
            if let Some(session) = self.sessions.get(&id) {
                let mut next = session.clone();
                let mut step = Output::default();
                move_to(
                    &mut next,
                    Status::AbortedTechnicianDeletedOrDisabled,
                    Actor::System,
                    Reason::TechnicianRemoved,
                    now,
                    &mut step,
                );
                self.commit(next);
                out.merge(step);
            }
        }
        self.technicians.remove(&technician);
        out
    }

    /// Is anyone there to take this session: its owner online and not Away, or (for a group
    /// queue) any technician of the group online and not Away?
    fn someone_available(&self, session: &Session) -> bool {
        let here = |p: &Presence| p.online && p.status != TechnicianStatus::Away;
        match session.technician_id {
            Some(t) => self.technicians.get(&t).is_some_and(here),
            None => self
                .technicians
                .values()
                .any(|p| p.group_id == session.group_id && here(p)),
        }
    }

    fn apply(
        &self,
        s: &mut Session,
        command: Command,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), Refusal> {
        match command {
            Command::CustomerJoin => {
                if s.status != Status::Pending {
                    return Err(not_allowed("join", s.status));
                }
                s.customer_connected = true;
                move_to(
                    s,
                    Status::Connecting,
                    Actor::Customer,
                    Reason::CodeEntered,
                    now,
                    out,
                );
            }
            Command::CustomerReady => {
                if s.status != Status::Connecting {
                    return Err(not_allowed("ready", s.status));
                }
                let owner_free = s
                    .technician_id
                    .is_some_and(|t| !self.active.contains_key(&t));
                if s.policy.auto_start && owner_free && s.technician_connected {
                    move_to(
                        s,
                        Status::Active,
                        Actor::Customer,
                        Reason::AutoStart,
                        now,
                        out,
                    );
                } else {
                    move_to(s, Status::Waiting, Actor::Customer, Reason::Ready, now, out);
                    self.no_technician_check(s, now, out);
                }
            }
            Command::Pickup { technician } => {
                if s.status != Status::Waiting {
                    return Err(not_allowed("pick up", s.status));
                }
                let may = match s.technician_id {
                    Some(owner) => owner == technician,
                    None => self
                        .technicians
                        .get(&technician)
                        .is_some_and(|p| p.group_id == s.group_id),
                };
                if !may {
                    return Err(refuse(
                        RefusalCode::NotYours,
                        "the session is in another technician's or group's queue",
                    ));
                }
                if let Some(other) = self.active.get(&technician) {
                    return Err(refuse(
                        RefusalCode::OneActiveSession,
                        format!(
                            "you already have an Active session ({other}); put it on hold or end it first"
                        ),
                    ));
                }
                s.technician_id = Some(technician);
                s.technician_connected = true;
                // Its console's peer comes with the pickup.
                s.technician_media_lost = false;
                move_to(
                    s,
                    Status::Active,
                    Actor::Technician(technician),
                    Reason::Pickup,
                    now,
                    out,
                );
            }
            Command::Hold { technician } => {
                owned(s, technician)?;
                if s.status != Status::Active {
                    return Err(not_allowed("hold", s.status));
                }
                move_to(
                    s,
                    Status::OnHold,
                    Actor::Technician(technician),
                    Reason::Hold,
                    now,
                    out,
                );
            }
            Command::Resume { technician } => {
                owned(s, technician)?;
                if s.status != Status::OnHold {
                    return Err(not_allowed("resume", s.status));
                }
                if let Some(other) = self.active.get(&technician) {
                    return Err(refuse(
                        RefusalCode::OneActiveSession,
                        format!("you already have an Active session ({other})"),
                    ));
                }
                move_to(
                    s,
                    Status::Active,
                    Actor::Technician(technician),
                    Reason::Resume,
                    now,
                    out,
                );
            }
            Command::Transfer {
                technician,
                to,
                comment,
            } => {
                owned(s, technician)?;
                if !matches!(s.status, Status::Waiting | Status::Active | Status::OnHold) {
                    return Err(not_allowed("transfer", s.status));
                }
                if to == TransferTarget::Technician(technician) {
                    return Err(refuse(
                        RefusalCode::NotAllowed,
                        "cannot transfer a session to yourself",
                    ));
                }
                let actor = Actor::Technician(technician);
                move_to(
                    s,
                    Status::Transferring,
                    actor,
                    Reason::Transfer {
                        to: to.clone(),
                        comment,
                    },
                    now,
                    out,
                );
                s.technician_media_lost = false;
                match to {
                    TransferTarget::Technician(t) => {
                        s.technician_id = Some(t);
                        if let Some(p) = self.technicians.get(&t) {
                            s.group_id = p.group_id;
                            s.technician_connected = p.online;
                        } else {
                            s.technician_connected = false;
                        }
                    }
                    TransferTarget::Group(g) => {
                        s.technician_id = None;
                        s.group_id = g;
                    }
                }
                move_to(s, Status::Waiting, actor, Reason::TransferArrived, now, out);
                self.no_technician_check(s, now, out);
            }
            Command::EndByTechnician { technician } => {
                owned(s, technician)?;
                move_to(
                    s,
                    Status::ClosedByTechnician,
                    Actor::Technician(technician),
                    Reason::EndedByTechnician,
                    now,
                    out,
                );
            }
            Command::EndByCustomer => {
                let to = match s.status {
                    Status::Pending => return Err(not_allowed("end", s.status)),
                    Status::Connecting | Status::Waiting => Status::ClosedByWaitingCustomer,
                    Status::Reconnecting if !s.ever_active => Status::ClosedByWaitingCustomer,
                    _ => Status::ClosedByCustomer,
                };
                move_to(s, to, Actor::Customer, Reason::EndedByCustomer, now, out);
            }
            Command::Decline => {
                if !matches!(s.status, Status::Connecting | Status::Waiting) {
                    return Err(not_allowed("decline", s.status));
                }
                move_to(
                    s,
                    Status::DeclinedByCustomer,
                    Actor::Customer,
                    Reason::Declined,
                    now,
                    out,
                );
            }
            Command::CustomerConnection { connected } => {
                s.customer_connected = connected;
                customer_link(s, connected, Reason::CustomerConnectionLost, now, out);
            }
            Command::CustomerMedia { connected } => {
                if s.status.is_final() {
                    return Err(not_allowed("reconnect media of", s.status));
                }
                s.customer_media_lost = !connected;
                customer_link(s, connected, Reason::CustomerMediaLost, now, out);
            }
            Command::TechnicianMedia { connected } => {
                if s.status.is_final() {
                    return Err(not_allowed("reconnect media of", s.status));
                }
                s.technician_media_lost = !connected;
                if !connected && s.status == Status::Active {
                    enter_reconnecting(s, Reason::TechnicianMediaLost, now, out);
                } else if connected && s.status == Status::Reconnecting {
                    leave_reconnecting_if_whole(s, now, out);
                }
            }
            Command::Activity => {
                if s.status.is_final() {
                    return Err(not_allowed("act on", s.status));
                }
                s.last_activity = now;
            }
        }
        Ok(())
    }

    fn no_technician_check(&self, s: &mut Session, now: Millis, out: &mut Output) {
        if s.status != Status::Waiting || self.someone_available(s) {
            return;
        }
        match &s.policy.no_technician_available {
            NoTechnicianAvailable::KeepAlive => {}
            NoTechnicianAvailable::NotifyByEmail => {
                out.effects.push(Effect::NotifyTechniciansByEmail {
                    session_id: s.id,
                    technician_id: s.technician_id,
                    group_id: s.group_id,
                });
            }
            NoTechnicianAvailable::AbortAndShowUrl(url) => {
                let url = url.clone();
                move_to(
                    s,
                    Status::AbortedNoTechnicianAvailable,
                    Actor::System,
                    Reason::NoTechnicianAvailable,
                    now,
                    out,
                );
                out.effects.push(Effect::RedirectCustomer {
                    session_id: s.id,
                    url,
                });
            }
        }
    }

    /// Stores the new state of a session, keeping the indexes right.
    fn commit(&mut self, next: Session) {
        let id = next.id;
        self.forget(id);
        self.insert(next);
    }
}

fn owned(s: &Session, technician: UserId) -> Result<(), Refusal> {
    if s.owned_by(technician) {
        Ok(())
    } else {
        Err(refuse(
            RefusalCode::NotYours,
            "the session belongs to another technician",
        ))
    }
}

/// One of the customer's links (its socket, its media path) went down or came back.
fn customer_link(s: &mut Session, up: bool, lost: Reason, now: Millis, out: &mut Output) {
    if !up
        && matches!(
            s.status,
            Status::Waiting | Status::Active | Status::OnHold | Status::Transferring
        )
    {
        enter_reconnecting(s, lost, now, out);
    } else if up && s.status == Status::Reconnecting {
        leave_reconnecting_if_whole(s, now, out);
    }
}

fn enter_reconnecting(s: &mut Session, reason: Reason, now: Millis, out: &mut Output) {
    if s.status == Status::Reconnecting {
        return;
    }
    s.before_reconnecting = Some(s.status);
    let actor = match reason {
        Reason::TechnicianConnectionLost | Reason::TechnicianMediaLost => {
            s.technician_id.map_or(Actor::System, Actor::Technician)
        }
        _ => Actor::Customer,
    };
    move_to(s, Status::Reconnecting, actor, reason, now, out);
}

/// Back to the prior status once every side that status needs is connected again.
fn leave_reconnecting_if_whole(s: &mut Session, now: Millis, out: &mut Output) {
    let prior = s.before_reconnecting.unwrap_or(Status::Waiting);
    let needs_technician = prior == Status::Active;
    if !s.customer_connected
        || s.customer_media_lost
        || (needs_technician && (!s.technician_connected || s.technician_media_lost))
    {
        return;
    }
    // A transfer interrupted by the drop has already re-queued the session.
    let back = if prior == Status::Transferring {
        Status::Waiting
    } else {
        prior
    };
    move_to(s, back, Actor::System, Reason::Reconnected, now, out);
    s.before_reconnecting = None;
}

/// Records the transition and the media effects that belong to it.
fn move_to(
    s: &mut Session,
    to: Status,
    actor: Actor,
    reason: Reason,
    now: Millis,
    out: &mut Output,
) {
    let from = s.status;
    s.status = to;
    s.status_since = now;
    if to == Status::Active {
        s.last_activity = now;
        let first = !s.ever_active;
        s.ever_active = true;
        match (from, s.technician_id) {
            (Status::OnHold, _) | (Status::Reconnecting, _) if !first => {
                out.effects.push(Effect::ResumeMedia { session_id: s.id })
            }
            (_, Some(technician)) => out.effects.push(Effect::StartMedia {
                session_id: s.id,
                technician_id: technician,
                audio: s.policy.audio,
            }),
            (_, None) => {}
        }
    }
    if from == Status::Active
        && matches!(
            to,
            Status::OnHold | Status::Transferring | Status::Reconnecting
        )
    {
        out.effects.push(Effect::HoldMedia { session_id: s.id });
    }
    if to.is_final() && s.ever_active {
        out.effects.push(Effect::StopMedia { session_id: s.id });
    }
    out.transitions.push(Transition {
        session_id: s.id,
        at: now,
        from,
        to,
        actor,
        reason,
        technician_id: s.technician_id,
        group_id: s.group_id,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: UserId = 1;
    const T2: UserId = 2;
    const G: GroupId = 10;
    const G2: GroupId = 20;
    const MIN: Millis = 60_000;

    fn policy() -> Policy {
        Policy {
            audio: true,
            auto_start: false,
            timeouts: Timeouts {
                code_validity_ms: 20 * MIN,
                connecting_ms: 5 * MIN,
                waiting_ms: 10 * MIN,
                active_idle_ms: 30 * MIN,
                reconnect_grace_ms: 30_000,
            },
            no_technician_available: NoTechnicianAvailable::KeepAlive,
        }
    }

    fn desk_with(policy: Policy) -> Desk {
        let mut d = Desk::new();
        d.technician_presence(T1, G, true, 0);
        d.technician_presence(T2, G, true, 0);
        d.insert(Session::new(1, T1, G, policy, 0));
        d
    }

    fn status(d: &Desk, id: SessionId) -> Option<Status> {
        d.get(id).map(|s| s.status)
    }

    /// Drives session 1 to `target` through the normal path.
    fn reach(d: &mut Desk, target: Status) {
        let path: &[Command] = match target {
            Status::Pending => &[],
            Status::Connecting => &[Command::CustomerJoin],
            Status::Waiting => &[Command::CustomerJoin, Command::CustomerReady],
            Status::Active => &[
                Command::CustomerJoin,
                Command::CustomerReady,
                Command::Pickup { technician: T1 },
            ],
            Status::OnHold => &[
                Command::CustomerJoin,
                Command::CustomerReady,
                Command::Pickup { technician: T1 },
                Command::Hold { technician: T1 },
            ],
            Status::Reconnecting => &[
                Command::CustomerJoin,
                Command::CustomerReady,
                Command::Pickup { technician: T1 },
                Command::CustomerConnection { connected: false },
            ],
            _ => unreachable!("not a live status reached by commands"),
        };
        for c in path {
            d.handle(1, c.clone(), 1).unwrap();
        }
        assert_eq!(status(d, 1), Some(target));
    }

    #[test]
    fn the_normal_path_appends_every_transition() {
        let mut d = desk_with(policy());
        let mut all = Vec::new();
        for c in [
            Command::CustomerJoin,
            Command::CustomerReady,
            Command::Pickup { technician: T1 },
            Command::Hold { technician: T1 },
            Command::Resume { technician: T1 },
            Command::EndByTechnician { technician: T1 },
        ] {
            all.extend(d.handle(1, c, 5).unwrap().transitions);
        }
        let path: Vec<(Status, Status)> = all.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(
            path,
            vec![
                (Status::Pending, Status::Connecting),
                (Status::Connecting, Status::Waiting),
                (Status::Waiting, Status::Active),
                (Status::Active, Status::OnHold),
                (Status::OnHold, Status::Active),
                (Status::Active, Status::ClosedByTechnician),
            ]
        );
        assert!(d.get(1).is_none(), "final sessions leave the desk");
        assert_eq!(d.active_session_of(T1), None);
    }

    #[test]
    fn media_effects_follow_the_status() {
        let mut d = desk_with(policy());
        reach(&mut d, Status::Waiting);
        let out = d.handle(1, Command::Pickup { technician: T1 }, 2).unwrap();
        assert_eq!(
            out.effects,
            vec![Effect::StartMedia {
                session_id: 1,
                technician_id: T1,
                audio: true
            }]
        );
        let out = d.handle(1, Command::Hold { technician: T1 }, 3).unwrap();
        assert_eq!(out.effects, vec![Effect::HoldMedia { session_id: 1 }]);
        let out = d.handle(1, Command::Resume { technician: T1 }, 4).unwrap();
        assert_eq!(out.effects, vec![Effect::ResumeMedia { session_id: 1 }]);
        let out = d.handle(1, Command::EndByCustomer, 5).unwrap();
        assert_eq!(out.effects, vec![Effect::StopMedia { session_id: 1 }]);
        assert_eq!(out.transitions[0].to, Status::ClosedByCustomer);
    }

    /// Every live status × every command: legal ones move or stay, illegal ones are refused and
    /// change nothing.
    #[test]
    fn every_command_in_every_live_status() {
        use Status::*;
        let commands = |t: UserId| {
            vec![
                Command::CustomerJoin,
                Command::CustomerReady,
                Command::Pickup { technician: t },
                Command::Hold { technician: t },
                Command::Resume { technician: t },
                Command::Transfer {
                    technician: t,
                    to: TransferTarget::Technician(T2),
                    comment: String::new(),
                },
                Command::EndByTechnician { technician: t },
                Command::EndByCustomer,
                Command::Decline,
                Command::CustomerConnection { connected: false },
                Command::CustomerConnection { connected: true },
                Command::Activity,
                Command::CustomerMedia { connected: false },
                Command::CustomerMedia { connected: true },
            ]
        };
        // (status, command index) → expected status after, None = refused.
        let expect = |st: Status, i: usize| -> Option<Status> {
            match (st, i) {
                (Pending, 0) => Some(Connecting),
                (Connecting, 1) => Some(Waiting),
                (Waiting, 2) => Some(Active),
                (Active, 3) => Some(OnHold),
                (OnHold, 4) => Some(Active),
                (Waiting | Active | OnHold, 5) => Some(Waiting),
                (_, 6) => Some(ClosedByTechnician),
                (Pending, 7) => None,
                (Connecting | Waiting, 7) => Some(ClosedByWaitingCustomer),
                (_, 7) => Some(ClosedByCustomer),
                (Connecting | Waiting, 8) => Some(DeclinedByCustomer),
                (Waiting | Active | OnHold, 9 | 12) => Some(Reconnecting),
                (Reconnecting, 10) => Some(Active),
                (_, 9..=13) => Some(st),
                _ => None,
            }
        };
        for st in [Pending, Connecting, Waiting, Active, OnHold, Reconnecting] {
            for (i, c) in commands(T1).into_iter().enumerate() {
                let mut d = desk_with(policy());
                reach(&mut d, st);
                let before = d.get(1).cloned();
                match (d.handle(1, c.clone(), 100), expect(st, i)) {
                    (Ok(_), Some(after)) => {
                        let now = status(&d, 1).unwrap_or_else(|| {
                            assert!(after.is_final(), "{st} {c:?}: session vanished");
                            after
                        });
                        assert_eq!(now, after, "{st} {c:?}");
                    }
                    (Err(r), None) => {
                        assert_eq!(
                            d.get(1).cloned(),
                            before,
                            "{st} {c:?} refused but changed: {r}"
                        );
                    }
                    (got, want) => panic!("{st} {c:?}: got {got:?}, want {want:?}"),
                }
            }
            // Another technician may not act on T1's session.
            for c in commands(T2).into_iter().skip(2).take(5) {
                let mut d = desk_with(policy());
                reach(&mut d, st);
                let r = d.handle(1, c.clone(), 100);
                assert!(r.is_err(), "{st} {c:?} by another technician");
            }
        }
    }

    #[test]
    fn a_technician_holds_at_most_one_active_session() {
        let mut d = desk_with(policy());
        d.insert(Session::new(2, T1, G, policy(), 0));
        reach(&mut d, Status::Active);
        d.handle(2, Command::CustomerJoin, 1).unwrap();
        d.handle(2, Command::CustomerReady, 1).unwrap();
        let r = d
            .handle(2, Command::Pickup { technician: T1 }, 2)
            .unwrap_err();
        assert_eq!(r.code, RefusalCode::OneActiveSession);
        assert_eq!(status(&d, 2), Some(Status::Waiting));
        // Putting the first on hold frees the slot...
        d.handle(1, Command::Hold { technician: T1 }, 3).unwrap();
        d.handle(2, Command::Pickup { technician: T1 }, 4).unwrap();
        // ...and then the first cannot resume while the second is Active.
        let r = d
            .handle(1, Command::Resume { technician: T1 }, 5)
            .unwrap_err();
        assert_eq!(r.code, RefusalCode::OneActiveSession);
        assert_eq!(d.active_session_of(T1), Some(2));
    }

    #[test]
    fn auto_start_goes_straight_to_active_unless_the_technician_is_busy() {
        let mut d = desk_with(Policy {
            auto_start: true,
            ..policy()
        });
        d.handle(1, Command::CustomerJoin, 1).unwrap();
        let out = d.handle(1, Command::CustomerReady, 2).unwrap();
        assert_eq!(out.transitions[0].to, Status::Active);
        assert_eq!(out.transitions[0].reason, Reason::AutoStart);
        d.insert(Session::new(
            2,
            T1,
            G,
            Policy {
                auto_start: true,
                ..policy()
            },
            0,
        ));
        d.handle(2, Command::CustomerJoin, 1).unwrap();
        d.handle(2, Command::CustomerReady, 2).unwrap();
        assert_eq!(status(&d, 2), Some(Status::Waiting));
    }

    #[test]
    fn each_timeout_ends_with_its_status() {
        let p = policy();
        let cases = [
            (
                Status::Pending,
                p.timeouts.code_validity_ms,
                Status::Expired,
            ),
            (
                Status::Connecting,
                p.timeouts.connecting_ms,
                Status::TimedOut,
            ),
            (Status::Waiting, p.timeouts.waiting_ms, Status::TimedOut),
            (
                Status::Active,
                p.timeouts.active_idle_ms,
                Status::TimedOutClosedByTechnician,
            ),
            (
                Status::Reconnecting,
                p.timeouts.reconnect_grace_ms,
                Status::Disconnected,
            ),
        ];
        for (st, after, want) in cases {
            let mut d = desk_with(p.clone());
            reach(&mut d, st);
            let since = d
                .get(1)
                .unwrap()
                .status_since
                .max(d.get(1).unwrap().created_at);
            assert!(
                d.poll_timeouts(since + after - 1).transitions.is_empty(),
                "{st}: too early"
            );
            assert_eq!(d.next_deadline(), Some(since + after), "{st}");
            let out = d.poll_timeouts(since + after);
            assert_eq!(out.transitions.len(), 1, "{st}");
            assert_eq!(out.transitions[0].to, want, "{st}");
            assert_eq!(out.transitions[0].actor, Actor::System);
            assert!(d.is_empty());
            assert_eq!(d.next_deadline(), None);
        }
    }

    #[test]
    fn on_hold_and_zero_timeouts_never_time_out() {
        let mut d = desk_with(policy());
        reach(&mut d, Status::OnHold);
        assert_eq!(d.next_deadline(), None);
        assert!(d.poll_timeouts(Millis::MAX / 2).transitions.is_empty());
        let mut p = policy();
        p.timeouts.waiting_ms = 0;
        p.timeouts.active_idle_ms = 0;
        let mut d = desk_with(p);
        reach(&mut d, Status::Waiting);
        assert_eq!(d.next_deadline(), None);
        d.handle(1, Command::Pickup { technician: T1 }, 2).unwrap();
        assert_eq!(d.next_deadline(), None);
    }

    #[test]
    fn activity_moves_the_idle_deadline() {
        let mut d = desk_with(policy());
        reach(&mut d, Status::Active);
        d.handle(1, Command::Activity, 20 * MIN).unwrap();
        assert!(
            d.poll_timeouts(31 * MIN).transitions.is_empty(),
            "activity at 20 min keeps it alive"
        );
        assert_eq!(d.next_deadline(), Some(50 * MIN));
        let out = d.poll_timeouts(50 * MIN);
        assert_eq!(out.transitions[0].to, Status::TimedOutClosedByTechnician);
    }

    #[test]
    fn reconnecting_returns_to_the_prior_status_or_disconnects() {
        let mut d = desk_with(policy());
        reach(&mut d, Status::Active);
        let out = d
            .handle(1, Command::CustomerConnection { connected: false }, 10)
            .unwrap();
        assert_eq!(out.effects, vec![Effect::HoldMedia { session_id: 1 }]);
        let out = d
            .handle(1, Command::CustomerConnection { connected: true }, 20)
            .unwrap();
        assert_eq!(out.transitions[0].to, Status::Active);
        assert_eq!(out.effects, vec![Effect::ResumeMedia { session_id: 1 }]);
        // The technician's console drops: Reconnecting until it is back.
        let out = d.technician_presence(T1, G, false, 30);
        assert_eq!(out.transitions[0].to, Status::Reconnecting);
        // The customer dropping too changes nothing more; the customer back alone is not enough.
        d.handle(1, Command::CustomerConnection { connected: false }, 31)
            .unwrap();
        d.handle(1, Command::CustomerConnection { connected: true }, 32)
            .unwrap();
        assert_eq!(status(&d, 1), Some(Status::Reconnecting));
        let out = d.technician_presence(T1, G, true, 40);
        assert_eq!(out.transitions[0].to, Status::Active);
        // A waiting customer who drops comes back to Waiting.
        let mut d = desk_with(policy());
        reach(&mut d, Status::Waiting);
        d.handle(1, Command::CustomerConnection { connected: false }, 10)
            .unwrap();
        d.handle(1, Command::CustomerConnection { connected: true }, 11)
            .unwrap();
        assert_eq!(status(&d, 1), Some(Status::Waiting));
        // A technician dropping does not touch a Waiting session.
        assert!(
            d.technician_presence(T1, G, false, 12)
                .transitions
                .is_empty()
        );
    }

    #[test]
    fn a_broken_media_path_is_reconnecting_until_it_is_back() {
        let mut d = desk_with(policy());
        reach(&mut d, Status::Active);
        // ICE on the phone's peer fails while its socket stays up.
        let out = d
            .handle(1, Command::CustomerMedia { connected: false }, 10)
            .unwrap();
        assert_eq!(out.transitions[0].to, Status::Reconnecting);
        assert_eq!(out.transitions[0].reason, Reason::CustomerMediaLost);
        assert_eq!(out.effects, vec![Effect::HoldMedia { session_id: 1 }]);
        // Its socket dropping and coming back is not enough: the media is still down.
        d.handle(1, Command::CustomerConnection { connected: false }, 11)
            .unwrap();
        d.handle(1, Command::CustomerConnection { connected: true }, 12)
            .unwrap();
        assert_eq!(status(&d, 1), Some(Status::Reconnecting));
        // Media back (ICE restart done): Active again, forwarding resumed with a keyframe.
        let out = d
            .handle(1, Command::CustomerMedia { connected: true }, 20)
            .unwrap();
        assert_eq!(out.transitions[0].to, Status::Active);
        assert_eq!(out.transitions[0].reason, Reason::Reconnected);
        assert_eq!(out.effects, vec![Effect::ResumeMedia { session_id: 1 }]);
        // On Hold comes back to On Hold; the grace period applies as for a socket.
        d.handle(1, Command::Hold { technician: T1 }, 30).unwrap();
        d.handle(1, Command::CustomerMedia { connected: false }, 31)
            .unwrap();
        assert_eq!(status(&d, 1), Some(Status::Reconnecting));
        d.handle(1, Command::CustomerMedia { connected: true }, 32)
            .unwrap();
        assert_eq!(status(&d, 1), Some(Status::OnHold));
        d.handle(1, Command::CustomerMedia { connected: false }, 40)
            .unwrap();
        let out = d.poll_timeouts(40 + policy().timeouts.reconnect_grace_ms);
        assert_eq!(out.transitions[0].to, Status::Disconnected);
    }

    #[test]
    fn a_broken_console_media_path_is_reconnecting_until_it_is_back() {
        let mut d = desk_with(policy());
        reach(&mut d, Status::Active);
        let out = d
            .handle(1, Command::TechnicianMedia { connected: false }, 10)
            .unwrap();
        assert_eq!(out.transitions[0].to, Status::Reconnecting);
        assert_eq!(out.transitions[0].reason, Reason::TechnicianMediaLost);
        assert_eq!(out.transitions[0].actor, Actor::Technician(T1));
        let out = d
            .handle(1, Command::TechnicianMedia { connected: true }, 20)
            .unwrap();
        assert_eq!(out.transitions[0].to, Status::Active);
        assert_eq!(out.transitions[0].reason, Reason::Reconnected);
        // On Hold the console's media is not needed: nothing changes.
        d.handle(1, Command::Hold { technician: T1 }, 30).unwrap();
        let out = d
            .handle(1, Command::TechnicianMedia { connected: false }, 31)
            .unwrap();
        assert!(out.transitions.is_empty());
        assert_eq!(status(&d, 1), Some(Status::OnHold));
    }

    #[test]
    fn transfer_to_a_technician_and_to_a_group() {
        let mut d = desk_with(policy());
        reach(&mut d, Status::Active);
        let out = d
            .handle(
                1,
                Command::Transfer {
                    technician: T1,
                    to: TransferTarget::Technician(T2),
                    comment: "over to you".into(),
                },
                5,
            )
            .unwrap();
        let steps: Vec<Status> = out.transitions.iter().map(|t| t.to).collect();
        assert_eq!(steps, vec![Status::Transferring, Status::Waiting]);
        assert_eq!(out.effects, vec![Effect::HoldMedia { session_id: 1 }]);
        assert_eq!(d.active_session_of(T1), None, "the slot is free");
        assert_eq!(d.get(1).unwrap().technician_id, Some(T2));
        assert!(
            d.handle(1, Command::Pickup { technician: T1 }, 6).is_err(),
            "no longer T1's"
        );
        let out = d.handle(1, Command::Pickup { technician: T2 }, 7).unwrap();
        assert_eq!(
            out.effects,
            vec![Effect::StartMedia {
                session_id: 1,
                technician_id: T2,
                audio: true
            }]
        );
        // To a group: any technician of that group may pick it up.
        d.technician_presence(3, G2, true, 8);
        d.handle(
            1,
            Command::Transfer {
                technician: T2,
                to: TransferTarget::Group(G2),
                comment: String::new(),
            },
            9,
        )
        .unwrap();
        assert_eq!(d.get(1).unwrap().technician_id, None);
        assert_eq!(d.get(1).unwrap().group_id, G2);
        assert_eq!(
            d.handle(1, Command::Pickup { technician: T1 }, 10)
                .unwrap_err()
                .code,
            RefusalCode::NotYours
        );
        d.handle(1, Command::Pickup { technician: 3 }, 11).unwrap();
        assert_eq!(d.active_session_of(3), Some(1));
    }

    #[test]
    fn no_technician_available_behaviours() {
        // Keep alive: stays Waiting.
        let mut d = desk_with(policy());
        d.technician_presence(T1, G, false, 0);
        reach(&mut d, Status::Waiting);
        // Notify by email.
        let mut d = desk_with(Policy {
            no_technician_available: NoTechnicianAvailable::NotifyByEmail,
            ..policy()
        });
        d.set_technician_status(T1, TechnicianStatus::Away);
        d.handle(1, Command::CustomerJoin, 1).unwrap();
        let out = d.handle(1, Command::CustomerReady, 2).unwrap();
        assert_eq!(status(&d, 1), Some(Status::Waiting));
        assert_eq!(
            out.effects,
            vec![Effect::NotifyTechniciansByEmail {
                session_id: 1,
                technician_id: Some(T1),
                group_id: G
            }]
        );
        // Abort and show a URL.
        let url = "https://example.com/closed".to_string();
        let mut d = desk_with(Policy {
            no_technician_available: NoTechnicianAvailable::AbortAndShowUrl(url.clone()),
            ..policy()
        });
        d.technician_presence(T1, G, false, 0);
        d.handle(1, Command::CustomerJoin, 1).unwrap();
        let out = d.handle(1, Command::CustomerReady, 2).unwrap();
        assert_eq!(
            out.transitions.last().unwrap().to,
            Status::AbortedNoTechnicianAvailable
        );
        assert!(
            out.effects
                .contains(&Effect::RedirectCustomer { session_id: 1, url })
        );
        // Someone available: nothing happens.
        let mut d = desk_with(Policy {
            no_technician_available: NoTechnicianAvailable::NotifyByEmail,
            ..policy()
        });
        d.handle(1, Command::CustomerJoin, 1).unwrap();
        assert!(
            d.handle(1, Command::CustomerReady, 2)
                .unwrap()
                .effects
                .is_empty()
        );
    }

    #[test]
    fn a_removed_technicians_sessions_are_aborted() {
        let mut d = desk_with(policy());
        reach(&mut d, Status::Active);
        d.insert(Session::new(2, T1, G, policy(), 0));
        let out = d.technician_removed(T1, 9);
        assert_eq!(out.transitions.len(), 2);
        assert!(
            out.transitions
                .iter()
                .all(|t| t.to == Status::AbortedTechnicianDeletedOrDisabled)
        );
        assert!(d.is_empty());
    }

    /// Random command sequences over several sessions keep the desk's invariants.
    #[test]
    fn random_walks_keep_the_invariants() {
        let mut seed: u64 = 0x5eed;
        let mut rand = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for round in 0..300 {
            let mut d = Desk::new();
            d.technician_presence(T1, G, true, 0);
            d.technician_presence(T2, G, true, 0);
            let mut last: HashMap<SessionId, Status> = HashMap::new();
            for id in 1..=4 {
                let owner = if id % 2 == 0 { T1 } else { T2 };
                d.insert(Session::new(id, owner, G, policy(), 0));
                last.insert(id, Status::Pending);
            }
            let mut now = 0;
            for _ in 0..60 {
                now += rand(4 * MIN as u64) as Millis;
                let id = 1 + rand(4) as SessionId;
                let t = if rand(2) == 0 { T1 } else { T2 };
                let command = match rand(13) {
                    0 => Command::CustomerJoin,
                    1 => Command::CustomerReady,
                    2 => Command::Pickup { technician: t },
                    3 => Command::Hold { technician: t },
                    4 => Command::Resume { technician: t },
                    5 => Command::Transfer {
                        technician: t,
                        to: TransferTarget::Technician(if t == T1 { T2 } else { T1 }),
                        comment: String::new(),
                    },
                    6 => Command::EndByTechnician { technician: t },
                    7 => Command::EndByCustomer,
                    8 => Command::Decline,
                    9 => Command::CustomerConnection {
                        connected: rand(2) == 0,
                    },
                    10 => Command::Activity,
                    11 => {
                        let out = d.technician_presence(t, G, rand(2) == 0, now);
                        check_chain(&mut last, &out);
                        continue;
                    }
                    _ => {
                        let out = d.poll_timeouts(now);
                        check_chain(&mut last, &out);
                        continue;
                    }
                };
                if let Ok(out) = d.handle(id, command, now) {
                    check_chain(&mut last, &out);
                }
                // At most one Active session per technician, and the index agrees.
                for tech in [T1, T2] {
                    let active: Vec<SessionId> = d
                        .sessions()
                        .filter(|s| s.status == Status::Active && s.technician_id == Some(tech))
                        .map(|s| s.id)
                        .collect();
                    assert!(active.len() <= 1, "round {round}: {tech} has {active:?}");
                    assert_eq!(
                        d.active_session_of(tech),
                        active.first().copied(),
                        "round {round}"
                    );
                }
                // Every live session with a deadline is in the schedule; no final session is kept.
                for s in d.sessions() {
                    assert!(!s.status.is_final());
                    if let Some((at, _)) = s.deadline() {
                        assert!(d.deadlines.contains(&(at, s.id)), "round {round}: {s:?}");
                    }
                }
            }
        }
    }

    /// Transitions chain: each starts where the previous one of its session ended.
    fn check_chain(last: &mut HashMap<SessionId, Status>, out: &Output) {
        for t in &out.transitions {
            let prev = last.insert(t.session_id, t.to).unwrap_or(Status::Pending);
            assert_eq!(t.from, prev, "{t:?}");
            assert!(!prev.is_final(), "left a final status: {t:?}");
        }
    }
}
