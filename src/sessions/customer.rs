//! `/ws/customer`: the phone's socket. The first frame is `join` (a PIN code or link token) or
//! `resume` (after a drop); then ready, offer/candidates, mute, chat, end or decline.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;
use signaling::protocol::{
    ChatFrom, CustomerRequest, ErrorCode, JoinOk, MediaKind, PROTOCOL_VERSION, ServerFrame,
    parse_customer,
};
use signaling::session::{Command, SessionId};

use super::{Hub, Outbound, Socket, close, refusal_frame, send};
use crate::api::ClientAddr;
use crate::app::AppState;

/// Frames above this size are cut by the WebSocket layer itself; up to it, the protocol answers
/// `frame_too_large` and keeps the socket. 4 MiB: a runaway annotation client (a 100,000-point
/// stroke is 1–3 MB of JSON) still gets its error frame rather than a dropped socket.
pub const SOCKET_MAX_MESSAGE: usize = 4 * 1024 * 1024;

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

struct Joined {
    session: SessionId,
    conn: u64,
}

async fn run(state: AppState, addr: IpAddr, socket: WebSocket) {
    state.hub.metrics().websocket_opened("customer");
    run_socket(state.clone(), addr, Socket::open(socket), Carried::Own).await;
    state.hub.metrics().websocket_closed("customer");
}

/// Whose a customer socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carried {
    /// The client's own socket here: carried to the session's owner node when that is another.
    Own,
    /// A socket of another node run here.
    Hosted,
    /// A socket of another node run here because its session moved here: its first frame is the
    /// home's `resume` on the client's behalf, and the phone is told to offer again.
    Rehomed,
}

/// A customer socket: a client's own, or one hosted here for a client of another node.
pub(crate) async fn run_socket(state: AppState, addr: IpAddr, mut socket: Socket, how: Carried) {
    let routable = how == Carried::Own;
    let hub = state.hub.clone();
    let mut joined: Option<Joined> = None;
    // (connection, owner node) once this socket is carried to another node.
    let mut routed: Option<(i64, String)> = None;
    while let Some(request) = socket
        .next(parse_customer, joined.is_some() || routed.is_some())
        .await
    {
        let tx = &socket.tx;
        if let (Some((conn, owner)), Some(router)) = (&routed, hub.router()) {
            if router.forward(*conn, owner, &socket.last, request.id()) {
                continue;
            }
            routed = None;
        }
        match &joined {
            None => {
                if routable
                    && let Some(router) = hub.router()
                    && let Some(owner) = owner_elsewhere(&hub, router, &request).await
                {
                    let conn = router.open_customer(&owner, addr, tx.clone());
                    if router.forward(conn, &owner, &socket.last, request.id()) {
                        routed = Some((conn, owner));
                    }
                    continue;
                }
                joined = first_frame(&hub, &state, addr, tx, request, how).await
            }
            Some(j) => handle(&hub, j.session, tx, request).await,
        }
    }
    if let Some(j) = joined {
        hub.customer_gone(j.session, j.conn);
    }
    if let (Some((conn, _)), Some(router)) = (routed, hub.router()) {
        router.close(conn);
    }
    socket.finish().await;
}

/// The other node that holds the session a `join` code or `resume` token opens, if any.
async fn owner_elsewhere(
    hub: &Hub,
    router: &super::route::Router,
    request: &CustomerRequest,
) -> Option<String> {
    let (pin, hash) = match request {
        CustomerRequest::Join { code, .. } => {
            if hub.find_code(code).is_ok() {
                return None;
            }
            let code = code.trim();
            (code.to_string(), crate::auth::token_hash(code))
        }
        CustomerRequest::Resume { resume_token, .. } => {
            let hash = crate::auth::token_hash(resume_token);
            if hub.knows_resume(&hash) {
                return None;
            }
            (String::new(), hash)
        }
        _ => return None,
    };
    let node = hub.store().code_node(&pin, &hash).await.ok()??;
    if node == router.node_id() {
        // Being taken over by this node: the store says so before the hub holds it.
        for _ in 0..20 {
            if hub.find_code(&pin).is_ok() || hub.knows_resume(&hash) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        return None;
    }
    Some(node)
}

/// `join` or `resume`; anything else first is `not_authenticated`.
async fn first_frame(
    hub: &Arc<Hub>,
    state: &AppState,
    addr: IpAddr,
    tx: &Outbound,
    request: CustomerRequest,
    how: Carried,
) -> Option<Joined> {
    let hosted = how != Carried::Own;
    match request {
        CustomerRequest::Join {
            id,
            v,
            code,
            device,
            api_key,
            app_id,
        } => {
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
            if !state.global().ip_restrictions.allows(addr) {
                send(
                    tx,
                    &ServerFrame::error(
                        Some(id),
                        ErrorCode::IpRestricted,
                        "access from this address is not allowed",
                    ),
                );
                close(tx, 1008);
                return None;
            }
            let key = addr.to_string();
            if let Err(wait) = hub.code_attempts.check(&key, Instant::now()) {
                hub.metrics().code_attempt("throttled");
                let mut frame = ServerFrame::error(
                    Some(id),
                    ErrorCode::TooManyAttempts,
                    "too many wrong codes; wait and try again",
                );
                if let ServerFrame::Error { retry_after, .. } = &mut frame {
                    *retry_after = Some(wait.as_secs() + 1);
                }
                send(tx, &frame);
                return None;
            }
            // An app's API key is checked before the code, so a refused app does not use it up.
            let api_key_id = match &api_key {
                None => None,
                Some(k) => {
                    match crate::integrations::api_keys::check(hub.store(), k, app_id.as_deref())
                        .await
                    {
                        Ok(key_id) => Some(key_id),
                        Err(why) => {
                            hub.code_attempts.fail(&key, Instant::now());
                            tracing::info!(%addr, why, "customer API key refused");
                            send(
                                tx,
                                &ServerFrame::error(Some(id), ErrorCode::ApiKeyInvalid, why),
                            );
                            return None;
                        }
                    }
                }
            };
            let session = match hub.find_code(&code) {
                Ok(s) => s,
                Err(expired) => {
                    hub.code_attempts.fail(&key, Instant::now());
                    hub.metrics()
                        .code_attempt(if expired { "expired" } else { "invalid" });
                    // The code itself is never logged.
                    tracing::info!(%addr, expired, "customer code refused");
                    let (code, msg) = if expired {
                        (
                            ErrorCode::CodeExpired,
                            "this code has expired: ask the technician for a new one",
                        )
                    } else {
                        (ErrorCode::CodeInvalid, "unknown or already used code")
                    };
                    send(tx, &ServerFrame::error(Some(id), code, msg));
                    return None;
                }
            };
            let (resume_token, resume_hash) = crate::auth::new_token();
            let ip = (!state.global().do_not_store_customer_ip).then(|| addr.to_string());
            let device_row = device.clone().map(|d| crate::store::sessions::DeviceRow {
                platform: d.platform.unwrap_or_default(),
                model: d.model.unwrap_or_default(),
                app: d.app.unwrap_or_default(),
                browser: d.browser.unwrap_or_default(),
                locale: d.locale.unwrap_or_default(),
                device_id: d.device_id.unwrap_or_default(),
            });
            match hub.join(
                session,
                tx.clone(),
                ip.clone(),
                device,
                resume_hash.clone(),
                hosted,
            ) {
                Ok((conn, audio)) => {
                    hub.metrics().code_attempt("ok");
                    if let Some(key_id) = api_key_id
                        && let Err(e) = hub.store().api_key_used(key_id, hub.now()).await
                    {
                        tracing::warn!(error = %e, "cannot count an API key's use");
                    }
                    if let Err(e) = hub
                        .store()
                        .session_joined(
                            session,
                            ip.as_deref().unwrap_or(""),
                            &device_row.unwrap_or_default(),
                            &resume_hash,
                        )
                        .await
                    {
                        tracing::error!(session_id = session, error = %e, "cannot store the customer's join");
                    }
                    let ok = JoinOk {
                        session_id: session,
                        resume_token,
                        audio,
                        ice_servers: hub.ice_servers(&format!("s{session}")),
                        ice_transport_policy: hub.ice_transport_policy(),
                        status: signaling::status::Status::Connecting.as_str().into(),
                    };
                    send(tx, &ServerFrame::ok_with(id, &ok));
                    send_mute_state(hub, session, tx);
                    Some(Joined { session, conn })
                }
                Err(r) => {
                    // A session that is no longer Pending: its code is used.
                    hub.code_attempts.fail(&key, Instant::now());
                    hub.metrics().code_attempt("invalid");
                    let _ = r;
                    send(
                        tx,
                        &ServerFrame::error(
                            Some(id),
                            ErrorCode::CodeInvalid,
                            "unknown or already used code",
                        ),
                    );
                    None
                }
            }
        }
        CustomerRequest::Resume { id, resume_token } => {
            let key = addr.to_string();
            if let Err(wait) = hub.code_attempts.check(&key, Instant::now()) {
                let mut frame = ServerFrame::error(
                    Some(id),
                    ErrorCode::TooManyAttempts,
                    "too many failed attempts; wait and try again",
                );
                if let ServerFrame::Error { retry_after, .. } = &mut frame {
                    *retry_after = Some(wait.as_secs() + 1);
                }
                send(tx, &frame);
                return None;
            }
            let hash = crate::auth::token_hash(&resume_token);
            match hub.resume_customer(&hash, tx.clone(), hosted, how == Carried::Rehomed) {
                Some((session, conn, status, audio)) => {
                    let ok = JoinOk {
                        session_id: session,
                        resume_token,
                        audio,
                        ice_servers: hub.ice_servers(&format!("s{session}")),
                        ice_transport_policy: hub.ice_transport_policy(),
                        status: status.clone(),
                    };
                    send(tx, &ServerFrame::ok_with(id, &ok));
                    send(
                        tx,
                        &ServerFrame::Status {
                            session_id: None,
                            status,
                            technician: hub.technician_ref(session),
                        },
                    );
                    send_mute_state(hub, session, tx);
                    Some(Joined { session, conn })
                }
                None if hub.resume_ended(&hash) => {
                    send(
                        tx,
                        &ServerFrame::error(
                            Some(id),
                            ErrorCode::SessionEnded,
                            "the session has ended",
                        ),
                    );
                    None
                }
                None => {
                    // Resume tokens are guessed like codes: failures count toward the same limit.
                    hub.code_attempts.fail(&key, Instant::now());
                    send(
                        tx,
                        &ServerFrame::error(
                            Some(id),
                            ErrorCode::ResumeInvalid,
                            "unknown resume token",
                        ),
                    );
                    None
                }
            }
        }
        CustomerRequest::Ping { id } => {
            send(tx, &ServerFrame::Pong { id });
            None
        }
        other => {
            send(
                tx,
                &ServerFrame::error(
                    other.id().map(String::from),
                    ErrorCode::NotAuthenticated,
                    "the first frame must be join or resume",
                ),
            );
            None
        }
    }
}

fn send_mute_state(hub: &Hub, session: SessionId, tx: &Outbound) {
    if let Some(m) = hub.mute_state(session) {
        send(
            tx,
            &ServerFrame::MuteState {
                session_id: None,
                customer_audio: m.customer_audio,
                customer_video: m.customer_video,
                technician_audio: m.technician_audio,
            },
        );
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

async fn handle(hub: &Arc<Hub>, session: SessionId, tx: &Outbound, request: CustomerRequest) {
    match request {
        CustomerRequest::Join { id, .. } | CustomerRequest::Resume { id, .. } => {
            send(
                tx,
                &ServerFrame::error(
                    Some(id),
                    ErrorCode::AlreadyAuthenticated,
                    "this socket already joined a session",
                ),
            );
        }
        CustomerRequest::Ready { id } => act(hub, tx, id, session, Command::CustomerReady),
        CustomerRequest::End { id } => act(hub, tx, id, session, Command::EndByCustomer),
        CustomerRequest::Decline { id } => act(hub, tx, id, session, Command::Decline),
        CustomerRequest::Ping { id } => send(tx, &ServerFrame::Pong { id }),
        CustomerRequest::Offer { id, sdp } => {
            if !hub.takes_customer_offer(session) {
                send(
                    tx,
                    &ServerFrame::error(
                        Some(id),
                        ErrorCode::NotAllowed,
                        "offer only when the session is Active or On Hold (or Reconnecting from them)",
                    ),
                );
                return;
            }
            // Awaited here, so the candidates that follow on this socket come after it.
            match hub.media().customer_offer(session, &sdp).await {
                Ok(answer) => {
                    send(
                        tx,
                        &ServerFrame::ok(id, serde_json::json!({ "sdp": answer.sdp })),
                    );
                    if !answer.renegotiated {
                        hub.customer_media_up(session);
                    }
                }
                Err(e) => send(
                    tx,
                    &ServerFrame::error(Some(id), ErrorCode::NotAllowed, e.0),
                ),
            }
        }
        CustomerRequest::Candidate { candidate, .. } => {
            hub.media().candidate(session, true, candidate.as_deref());
        }
        CustomerRequest::Mute { id, kind, muted } => {
            hub.mute_request(tx, id, session, |m| match kind {
                MediaKind::Audio => m.customer_audio = !muted,
                MediaKind::Video => m.customer_video = !muted,
            });
        }
        CustomerRequest::Chat { id, text } => {
            let Some((_, _, name)) = hub.chat_context(session) else {
                if let Some(id) = id {
                    send(
                        tx,
                        &ServerFrame::error(
                            Some(id),
                            ErrorCode::SessionEnded,
                            "the session has ended",
                        ),
                    );
                }
                return;
            };
            // The reply first, then the line to both sides (PROTOCOL.md §1).
            if let Some(id) = id {
                send(tx, &ServerFrame::ok(id, serde_json::Value::Null));
            }
            hub.say(session, ChatFrom::Customer, None, &name, &text);
        }
    }
}
