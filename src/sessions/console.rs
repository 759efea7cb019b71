//! `/ws/console`: the technician console's socket. The first frame is `hello` with the login
//! token; then the technician's queue arrives as `session` frames and commands act on it.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;
use signaling::protocol::{
    ChatFrom, ConsoleRequest, ErrorCode, HelloOk, MediaKind, MuteTarget, PROTOCOL_VERSION,
    ServerFrame, TechnicianInfo, TechnicianStatus, parse_console,
};
use signaling::session::{Command, SessionId, TransferTarget, UserId};
use signaling::tools::ToolUse;

use super::customer::SOCKET_MAX_MESSAGE;
use super::{Hub, Outbound, Socket, chat_row, close, refusal_frame, send};
use crate::api::ClientAddr;
use crate::app::AppState;
use crate::store::{GroupKind, Role, StoreError, User};

pub async fn upgrade(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(SOCKET_MAX_MESSAGE)
        // Frames are small; the default 128 KiB buffer is cleared on every read.
        .read_buffer_size(4096)
        .on_upgrade(move |socket| run(state, addr, socket))
}

async fn run(state: AppState, addr: IpAddr, socket: WebSocket) {
    let hub = state.hub.clone();
    hub.metrics().websocket_opened("console");
    let mut socket = Socket::open(socket);
    let mut me: Option<(User, u64)> = None;
    // With several nodes: this console's connection number on the bus.
    let mut routed: Option<i64> = None;
    while let Some(request) = socket.next(parse_console, me.is_some()).await {
        let tx = &socket.tx;
        match &me {
            None => {
                me = hello(&hub, &state, addr, tx, request).await;
                if let (Some((user, _)), Some(router)) = (&me, hub.router()) {
                    routed = Some(router.open_console(user.id, tx.clone()));
                }
            }
            Some((user, _)) => {
                if let Some(conn) = routed
                    && route(&hub, &state, conn, &socket.last, &request).await
                {
                    continue;
                }
                handle(&hub, &state, user, tx, request).await
            }
        }
    }
    if let (Some(conn), Some(router)) = (routed, hub.router()) {
        router.close(conn);
    }
    if let Some((user, conn)) = me
        && hub.console_detach(user.id, conn)
        && let Err(e) = hub
            .store()
            .record_technician_status(user.id, "offline", hub.now())
            .await
    {
        tracing::warn!(error = %e, "cannot record the technician's status");
    }
    hub.metrics().websocket_closed("console");
    socket.finish().await;
}

/// Sends a console's request to the node that must decide it, when that is another node: the
/// owner of the session it names, or for `create_session` the node placement chooses. True when
/// forwarded (the answer comes back through the bus).
async fn route(
    hub: &Arc<Hub>,
    state: &AppState,
    conn: i64,
    text: &str,
    request: &ConsoleRequest,
) -> bool {
    let Some(router) = hub.router() else {
        return false;
    };
    let target = match request {
        ConsoleRequest::Status { value, .. } => {
            // Every node's desk hears it; this node answers.
            router.console_status(conn, *value);
            None
        }
        ConsoleRequest::CreateSession { .. } => super::route::placement(state).await,
        _ => match request.session_id() {
            // Read every time (a primary-key lookup): a session taken over from a dead node has
            // a new owner.
            Some(id) if !hub.holds(id) => hub.store().session_node(id).await.ok().flatten(),
            _ => None,
        },
    };
    let Some(node) = target.filter(|n| n != router.node_id()) else {
        return false;
    };
    router.ensure_mirror(conn, &node);
    router.forward(conn, &node, text, request.id())
}

/// The mirror of a console of another node: the technician present on this node, its sessions
/// here listed to it, and the requests its home forwards decided here.
pub(crate) async fn run_mirror(state: AppState, technician: UserId, mut socket: Socket) {
    let hub = state.hub.clone();
    let user = match hub.store().user(technician).await {
        Ok(u) if u.enabled && u.role == Role::Technician && u.group_id.is_some() => u,
        _ => {
            socket.finish().await;
            return;
        }
    };
    let group = user.group_id.unwrap_or_default();
    let (conn, sessions, _, _) =
        hub.console_attach(user.id, group, &user.nickname, socket.tx.clone());
    for session in sessions {
        send(&socket.tx, &ServerFrame::Session { session });
    }
    hub.reoffer_console(user.id);
    while let Some(request) = socket.next(parse_console, true).await {
        handle(&hub, &state, &user, &socket.tx, request).await;
    }
    hub.console_detach(user.id, conn);
    socket.finish().await;
}

async fn hello(
    hub: &Arc<Hub>,
    state: &AppState,
    addr: IpAddr,
    tx: &Outbound,
    request: ConsoleRequest,
) -> Option<(User, u64)> {
    let ConsoleRequest::Hello { id, v, token } = request else {
        if let ConsoleRequest::Ping { id } = request {
            send(tx, &ServerFrame::Pong { id });
        } else {
            send(
                tx,
                &ServerFrame::error(
                    request.id().map(String::from),
                    ErrorCode::NotAuthenticated,
                    "the first frame must be hello",
                ),
            );
        }
        return None;
    };
    if v != PROTOCOL_VERSION {
        send(
            tx,
            &ServerFrame::error(
                Some(id),
                ErrorCode::UnsupportedVersion,
                format!("this server speaks version {PROTOCOL_VERSION}"),
            ),
        );
        close(tx, 1008);
        return None;
    }
    let login = match crate::api::user_for_token(state, &token, addr).await {
        Ok(u) => u,
        Err(e) => {
            let code = if e.code == "ip_restricted" {
                ErrorCode::IpRestricted
            } else {
                ErrorCode::InvalidToken
            };
            send(tx, &ServerFrame::error(Some(id), code, e.message));
            close(tx, 1008);
            return None;
        }
    };
    let owes_password_change = login.owes_password_change(state, hub.now());
    let user = login.user;
    if user.role != Role::Technician || user.group_id.is_none() {
        send(
            tx,
            &ServerFrame::error(
                Some(id),
                ErrorCode::InvalidToken,
                "the console is for enabled technicians",
            ),
        );
        close(tx, 1008);
        return None;
    }
    if owes_password_change {
        send(
            tx,
            &ServerFrame::error(Some(id), ErrorCode::NotAllowed, "set a new password first"),
        );
        return None;
    }
    let group = user.group_id.unwrap_or_default();
    let (conn, mut sessions, status, first) =
        hub.console_attach(user.id, group, &user.nickname, tx.clone());
    // The whole queue: also the sessions other nodes hold.
    sessions.extend(hub.queue_elsewhere(user.id, group).await);
    sessions.sort_by_key(|v| v.id);
    if first
        && let Err(e) = hub
            .store()
            .record_technician_status(user.id, status_name(status), hub.now())
            .await
    {
        tracing::warn!(error = %e, "cannot record the technician's status");
    }
    let ok = HelloOk {
        technician: TechnicianInfo {
            id: user.id,
            name: user.name.clone(),
            nickname: user.nickname.clone(),
            group_id: group,
            status,
        },
        sessions,
        ice_servers: hub.ice_servers(&format!("u{}", user.id)),
        ice_transport_policy: hub.ice_transport_policy(),
    };
    send(tx, &ServerFrame::ok_with(id, &ok));
    hub.reoffer_console(user.id);
    Some((user, conn))
}

/// How a sent link reads in the chat log and the Chatlog report.
pub const LINK_LINE_PREFIX: &str = "Link: ";

/// `ok` (when the request had an id) or the refusal.
fn tool_reply(tx: &Outbound, id: Option<String>, result: Result<(), super::tools::Refused>) {
    match (result, id) {
        (Ok(()), Some(id)) => send(tx, &ServerFrame::ok(id, serde_json::Value::Null)),
        (Ok(()), None) => {}
        (Err(r), id) => send(tx, &r.frame(id)),
    }
}

fn status_name(s: TechnicianStatus) -> &'static str {
    match s {
        TechnicianStatus::Available => "available",
        TechnicianStatus::Busy => "busy",
        TechnicianStatus::Away => "away",
    }
}

/// Applies a command, answering `ok` before its events or the refusal as an error frame.
fn act(
    hub: &Hub,
    tx: &Outbound,
    id: String,
    session: signaling::session::SessionId,
    command: Command,
) {
    if let Err(r) = hub.apply_replying(session, command, Some((tx, &id))) {
        send(tx, &refusal_frame(Some(id), &r));
    }
}

/// A command that makes the session the technician's Active one. With several nodes the
/// one-Active rule rests on the store: the claim is taken first (a previous session's release may
/// still be on its way: a second's grace), and given back if the desk refuses the command.
async fn act_active(
    hub: &Hub,
    tx: &Outbound,
    id: String,
    session: SessionId,
    me: UserId,
    command: Command,
) {
    let Some(router) = hub.router().filter(|_| hub.holds(session)) else {
        return act(hub, tx, id, session, command);
    };
    let mut claimed = false;
    for _ in 0..10 {
        match hub
            .store()
            .claim_active(me, session, router.node_id())
            .await
        {
            Ok(true) => {
                claimed = true;
                break;
            }
            Ok(false) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim the technician's Active session");
                // The claim lives in the store: while it is down, say so (a retry may succeed).
                let frame = if e.is_unavailable() {
                    ServerFrame::error(
                        Some(id),
                        ErrorCode::NodeUnavailable,
                        "the store does not answer; try again shortly",
                    )
                } else {
                    ServerFrame::error(Some(id), ErrorCode::Internal, "internal error")
                };
                return send(tx, &frame);
            }
        }
    }
    if !claimed {
        let frame = ServerFrame::error(
            Some(id),
            ErrorCode::OneActiveSession,
            "you already have an Active session (on another node)",
        );
        return send(tx, &frame);
    }
    if let Err(r) = hub.apply_replying(session, command, Some((tx, &id))) {
        send(tx, &refusal_frame(Some(id), &r));
        if !hub.is_active_for(me, session)
            && let Err(e) = hub.store().release_active(me, session).await
        {
            tracing::warn!(error = %e, "cannot release a refused claim");
        }
    }
}

async fn handle(
    hub: &Arc<Hub>,
    state: &AppState,
    user: &User,
    tx: &Outbound,
    request: ConsoleRequest,
) {
    let me = user.id;
    match request {
        ConsoleRequest::Hello { id, .. } => {
            send(
                tx,
                &ServerFrame::error(
                    Some(id),
                    ErrorCode::AlreadyAuthenticated,
                    "hello was already sent on this socket",
                ),
            );
        }
        ConsoleRequest::Ping { id } => send(tx, &ServerFrame::Pong { id }),
        ConsoleRequest::Pickup { id, session_id } => {
            let command = Command::Pickup { technician: me };
            act_active(hub, tx, id, session_id, me, command).await
        }
        ConsoleRequest::Hold { id, session_id } => {
            act(hub, tx, id, session_id, Command::Hold { technician: me })
        }
        ConsoleRequest::Resume { id, session_id } => {
            let command = Command::Resume { technician: me };
            act_active(hub, tx, id, session_id, me, command).await
        }
        ConsoleRequest::End { id, session_id } => act(
            hub,
            tx,
            id,
            session_id,
            Command::EndByTechnician { technician: me },
        ),
        ConsoleRequest::Transfer {
            id,
            session_id,
            to_technician_id,
            to_group_id,
            comment,
        } => {
            let target = match (to_technician_id, to_group_id) {
                (Some(t), None) => match hub.store().user(t).await {
                    Ok(u) if u.role == Role::Technician && u.enabled => {
                        TransferTarget::Technician(t)
                    }
                    Ok(_) | Err(StoreError::NotFound) => {
                        send(
                            tx,
                            &ServerFrame::error(
                                Some(id),
                                ErrorCode::ValidationFailed,
                                "to_technician_id: no such enabled technician",
                            ),
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "transfer: cannot read the technician");
                        send(
                            tx,
                            &ServerFrame::error(Some(id), ErrorCode::Internal, "internal error"),
                        );
                        return;
                    }
                },
                (None, Some(g)) => match hub.store().group(g).await {
                    Ok(group) if group.kind == GroupKind::TechnicianGroup && group.enabled => {
                        TransferTarget::Group(g)
                    }
                    _ => {
                        send(
                            tx,
                            &ServerFrame::error(
                                Some(id),
                                ErrorCode::ValidationFailed,
                                "to_group_id: no such enabled technician group",
                            ),
                        );
                        return;
                    }
                },
                _ => {
                    send(
                        tx,
                        &ServerFrame::error(
                            Some(id),
                            ErrorCode::ValidationFailed,
                            "give exactly one of to_technician_id and to_group_id",
                        ),
                    );
                    return;
                }
            };
            let comment = comment.unwrap_or_default();
            if !comment.is_empty()
                && let Some((omit, nickname, _)) = hub.chat_context(session_id)
                && hub.session_visible_to(session_id, me)
            {
                // The comment is part of the session's record, as a system line of the chatlog.
                let at = hub.now();
                let text = format!("Transferred by {nickname}: {comment}");
                if !omit {
                    hub.store_chat(
                        session_id,
                        chat_row(ChatFrom::System, Some(me), "Lens", &text, at),
                    );
                }
            }
            act(
                hub,
                tx,
                id,
                session_id,
                Command::Transfer {
                    technician: me,
                    to: target,
                    comment,
                },
            )
        }
        ConsoleRequest::Answer { session_id, sdp } => {
            if !hub.session_visible_to(session_id, me) {
                send(
                    tx,
                    &ServerFrame::error(
                        None,
                        ErrorCode::SessionNotFound,
                        "no such session in your queue",
                    ),
                );
                return;
            }
            if let Err(e) = hub.media().console_answer(session_id, &sdp) {
                send(tx, &ServerFrame::error(None, ErrorCode::NotAllowed, e.0));
            }
        }
        ConsoleRequest::Candidate {
            session_id,
            candidate,
            ..
        } => {
            if hub.session_visible_to(session_id, me) {
                hub.media()
                    .candidate(session_id, false, candidate.as_deref());
            }
        }
        ConsoleRequest::Mute {
            id,
            session_id,
            target,
            kind,
            muted,
        } => {
            if !hub.session_visible_to(session_id, me) {
                send(
                    tx,
                    &ServerFrame::error(
                        Some(id),
                        ErrorCode::SessionNotFound,
                        "no such session in your queue",
                    ),
                );
                return;
            }
            if kind == MediaKind::Video {
                send(
                    tx,
                    &ServerFrame::error(
                        Some(id),
                        ErrorCode::NotAllowed,
                        "only the customer pauses its video",
                    ),
                );
                return;
            }
            hub.mute_request(tx, id, session_id, |m| match target {
                MuteTarget::OwnMicrophone => m.technician_audio = !muted,
                MuteTarget::Customer => m.customer_audio = !muted,
            });
        }
        ConsoleRequest::Chat {
            id,
            session_id,
            text,
        } => {
            let context = hub
                .chat_context(session_id)
                .filter(|_| hub.session_visible_to(session_id, me));
            let Some(_) = context else {
                if let Some(id) = id {
                    send(
                        tx,
                        &ServerFrame::error(
                            Some(id),
                            ErrorCode::SessionNotFound,
                            "no such session in your queue",
                        ),
                    );
                }
                return;
            };
            // The reply first, then the line to both sides (PROTOCOL.md §1).
            if let Some(id) = id {
                send(tx, &ServerFrame::ok(id, serde_json::Value::Null));
            }
            hub.say(
                session_id,
                ChatFrom::Technician,
                Some(me),
                &user.nickname,
                &text,
            );
        }
        ConsoleRequest::Note {
            id,
            session_id,
            text,
        } => {
            if !hub.session_visible_to(session_id, me) {
                send(
                    tx,
                    &ServerFrame::error(
                        Some(id),
                        ErrorCode::SessionNotFound,
                        "no such session in your queue",
                    ),
                );
                return;
            }
            match hub.store().insert_note(session_id, me, &text).await {
                Ok(()) => send(tx, &ServerFrame::ok(id, serde_json::Value::Null)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a note");
                    send(
                        tx,
                        &ServerFrame::error(Some(id), ErrorCode::Internal, "cannot store the note"),
                    );
                }
            }
        }
        ConsoleRequest::Status { id, value } => {
            hub.set_console_status(me, value);
            if let Err(e) = hub
                .store()
                .record_technician_status(me, status_name(value), hub.now())
                .await
            {
                tracing::warn!(error = %e, "cannot record the technician's status");
            }
            send(tx, &ServerFrame::ok(id, serde_json::Value::Null));
        }
        ConsoleRequest::Annotate {
            id,
            session_id,
            tool,
            color,
            points,
        } => {
            let frame = ServerFrame::Annotation {
                session_id: None,
                tool,
                color,
                points,
            };
            tool_reply(
                tx,
                id,
                hub.use_tool(me, session_id, ToolUse::Stroke, &frame, None),
            );
        }
        ConsoleRequest::AnnotationClear { id, session_id } => {
            let frame = ServerFrame::AnnotationClear { session_id: None };
            let used = hub.use_tool(me, session_id, ToolUse::Clear, &frame, None);
            tool_reply(tx, Some(id), used);
        }
        ConsoleRequest::Freeze {
            id,
            session_id,
            frozen,
        } => {
            let frame = ServerFrame::Freeze {
                session_id: None,
                frozen,
            };
            // Freezing is counted and budgeted; returning to live video always works at once.
            let result = if frozen {
                hub.use_tool(me, session_id, ToolUse::Freeze, &frame, Some(true))
            } else {
                hub.unfreeze(me, session_id, &frame)
            };
            tool_reply(tx, Some(id), result);
        }
        ConsoleRequest::SendUrl {
            id,
            session_id,
            url,
        } => {
            // The protocol checked it; this is the host the customer is shown.
            let host = signaling::tools::url_host(&url).unwrap_or_default();
            let frame = ServerFrame::Url {
                session_id: None,
                url: url.clone(),
                host,
                at: crate::api::rfc3339(hub.now()),
            };
            match hub.use_tool(me, session_id, ToolUse::Url, &frame, None) {
                Ok(()) => {
                    send(tx, &ServerFrame::ok(id, serde_json::Value::Null));
                    // The link line of the chat log (both sides, and the Chatlog report).
                    hub.say(
                        session_id,
                        ChatFrom::Technician,
                        Some(me),
                        &user.nickname,
                        &format!("{LINK_LINE_PREFIX}{url}"),
                    );
                }
                Err(r) => send(tx, &r.frame(Some(id))),
            }
        }
        request @ ConsoleRequest::CreateSession { .. } => {
            let id = request.id().unwrap_or_default().to_string();
            let Some(body) = request.create_session() else {
                return;
            };
            if let Err(e) = hub.taking_sessions() {
                return send(tx, &e.with_id(id).frame());
            }
            // The technician's current record: group moves and disables apply at once.
            let current = match hub.store().user(me).await {
                Ok(u) => u,
                Err(e) if e.is_unavailable() => {
                    let frame = ServerFrame::error(
                        Some(id),
                        ErrorCode::NodeUnavailable,
                        "the store does not answer; try again shortly",
                    );
                    return send(tx, &frame);
                }
                Err(_) => {
                    send(
                        tx,
                        &ServerFrame::error(
                            Some(id),
                            ErrorCode::InvalidToken,
                            "your account no longer exists",
                        ),
                    );
                    return;
                }
            };
            let _ = state;
            if let Err(e) = hub.create_session(&current, body, Some((tx, &id))).await {
                send(tx, &e.with_id(id).frame());
            }
        }
    }
}
