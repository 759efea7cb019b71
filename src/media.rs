//! The seam between signaling and media: what the session state machine decides ("start media for
//! session S with audio on", "hold", "resume", "stop") and what the phone and console send about
//! their WebRTC peers. The SFU implements [`MediaPlan`]; until it lands, [`LoggingMediaPlan`] only
//! logs the decisions and refuses SDP, and is named so.

use signaling::protocol::MediaKind;
use signaling::session::{SessionId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaError(pub String);

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Calls are made while the session hub holds its lock: implementations must not block (hand work
/// to their own tasks through channels).
pub trait MediaPlan: Send + Sync {
    fn start(&self, session: SessionId, technician: UserId, audio: bool);
    fn hold(&self, session: SessionId);
    fn resume(&self, session: SessionId);
    fn stop(&self, session: SessionId);
    /// The phone's SDP offer; the answer goes back in the `ok` reply.
    fn customer_offer(&self, session: SessionId, sdp: &str) -> Result<String, MediaError>;
    /// The console's answer to the server's offer.
    fn console_answer(&self, session: SessionId, sdp: &str) -> Result<(), MediaError>;
    fn candidate(&self, session: SessionId, from_customer: bool, candidate: Option<&str>);
    /// `flowing = false` stops forwarding that media.
    fn set_flowing(&self, session: SessionId, from_customer: bool, kind: MediaKind, flowing: bool);
}

/// Logs what media should do. There is no media server in this build, so SDP is refused.
pub struct LoggingMediaPlan;

const NO_MEDIA: &str = "this server has no media path yet (the SFU is not built in)";

impl MediaPlan for LoggingMediaPlan {
    fn start(&self, session: SessionId, technician: UserId, audio: bool) {
        tracing::info!(session_id = session, technician, audio, "media: start");
    }
    fn hold(&self, session: SessionId) {
        tracing::info!(session_id = session, "media: hold");
    }
    fn resume(&self, session: SessionId) {
        tracing::info!(session_id = session, "media: resume");
    }
    fn stop(&self, session: SessionId) {
        tracing::info!(session_id = session, "media: stop");
    }
    fn customer_offer(&self, _session: SessionId, _sdp: &str) -> Result<String, MediaError> {
        Err(MediaError(NO_MEDIA.into()))
    }
    fn console_answer(&self, _session: SessionId, _sdp: &str) -> Result<(), MediaError> {
        Err(MediaError(NO_MEDIA.into()))
    }
    fn candidate(&self, _session: SessionId, _from_customer: bool, _candidate: Option<&str>) {}
    fn set_flowing(&self, session: SessionId, from_customer: bool, kind: MediaKind, flowing: bool) {
        tracing::info!(
            session_id = session,
            from_customer,
            ?kind,
            flowing,
            "media: mute state"
        );
    }
}
