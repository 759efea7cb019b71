//! The technician's tools on the live picture (issue 20): strokes drawn over the video, the
//! freeze-frame and links, relayed from the console to the customer through the hub. The checks
//! on a message's shape are the protocol's (`signaling::protocol`); here are the ones that need
//! the session: its owner, its status, its budget (`signaling::tools::Budget`). Only counts are
//! stored, never the strokes.

use signaling::protocol::{ErrorCode, ServerFrame};
use signaling::session::{Command, SessionId, UserId};
use signaling::status::Status;
use signaling::tools::{Exceeded, ToolUse};

use super::{CustomerConn, Hub, Live, WriteJob, send};

/// A refused tool message: the `error` frame's code, message and `retry_after`.
pub struct Refused {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl Refused {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn frame(self, id: Option<String>) -> ServerFrame {
        ServerFrame::Error {
            id,
            code: self.code,
            message: self.message,
            retry_after: self.retry_after,
        }
    }
}

/// A new technician after a transfer starts clean: the customer drops the drawing and the still.
pub(super) fn start_clean(customer: &CustomerConn, live: Option<&mut Live>) {
    send(
        &customer.tx,
        &ServerFrame::AnnotationClear { session_id: None },
    );
    if let Some(live) = live
        && std::mem::take(&mut live.frozen)
    {
        send(
            &customer.tx,
            &ServerFrame::Freeze {
                session_id: None,
                frozen: false,
            },
        );
    }
}

impl Hub {
    /// A tool message from `technician` about session `id`: allowed only to the session's owner
    /// while it is Active, and within the session's budget. On success `frame` goes to the
    /// customer (when connected), the use is counted, and it is activity; `frozen` records a
    /// freeze-frame's new state.
    pub(crate) fn use_tool(
        &self,
        technician: UserId,
        id: SessionId,
        used: ToolUse,
        frame: &ServerFrame,
        frozen: Option<bool>,
    ) -> Result<(), Refused> {
        let now = self.now();
        {
            let mut inner = self.lock();
            let Some(session) = inner.desk.get(id) else {
                return Err(if inner.live.contains_key(&id) {
                    Refused::new(ErrorCode::SessionEnded, "the session has ended")
                } else {
                    Refused::new(ErrorCode::SessionNotFound, "no such session in your reach")
                });
            };
            if session.technician_id != Some(technician) {
                return Err(Refused::new(
                    ErrorCode::SessionNotFound,
                    "no such session in your reach",
                ));
            }
            if session.status != Status::Active {
                return Err(Refused::new(
                    ErrorCode::NotAllowed,
                    format!(
                        "the tools work on an Active session, not one that is {}",
                        session.status.as_str()
                    ),
                ));
            }
            let inner = &mut *inner;
            let Some(live) = inner.live.get_mut(&id) else {
                return Err(Refused::new(
                    ErrorCode::SessionEnded,
                    "the session has ended",
                ));
            };
            let admitted = match used {
                ToolUse::Stroke => live.tools.admit_stroke(now),
                _ => live.tools.admit_action(now),
            };
            match admitted {
                Ok(()) => {}
                Err(Exceeded::Rate { retry_after_ms }) => {
                    return Err(Refused {
                        code: ErrorCode::RateLimited,
                        message: format!(
                            "at most {} strokes, clears, freezes and links a second (bursts of {}); try again in {retry_after_ms} ms",
                            signaling::tools::ACTIONS_PER_SECOND,
                            signaling::tools::ACTION_BURST
                        ),
                        retry_after: Some(
                            u64::try_from(retry_after_ms).unwrap_or(0).div_ceil(1000),
                        ),
                    });
                }
                Err(Exceeded::SessionTotal) => {
                    return Err(Refused::new(
                        ErrorCode::AnnotationLimit,
                        format!(
                            "this session has had {} strokes, the most one session takes",
                            signaling::tools::MAX_STROKES_PER_SESSION
                        ),
                    ));
                }
            }
            if let Some(f) = frozen {
                live.frozen = f;
            }
            if let Some(c) = inner.customers.get(&id) {
                send(&c.tx, frame);
            }
            let _ = self.writer.send(WriteJob::Tool(id, used));
        }
        let _ = self.apply(id, Command::Activity);
        Ok(())
    }

    /// Back to live video: the owner may always unfreeze (also On Hold), without a budget.
    pub(crate) fn unfreeze(
        &self,
        technician: UserId,
        id: SessionId,
        frame: &ServerFrame,
    ) -> Result<(), Refused> {
        let mut inner = self.lock();
        let owner = inner.desk.get(id).map(|s| s.technician_id);
        if owner.flatten() != Some(technician) {
            return Err(Refused::new(
                ErrorCode::SessionNotFound,
                "no such session in your reach",
            ));
        }
        let inner = &mut *inner;
        if let Some(live) = inner.live.get_mut(&id) {
            live.frozen = false;
        }
        if let Some(c) = inner.customers.get(&id) {
            send(&c.tx, frame);
        }
        Ok(())
    }
}
