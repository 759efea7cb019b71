//! Lens sessions: the state machine ([`session`]), statuses ([`status`]) and the WebSocket
//! protocol's messages ([`protocol`], documented in `PROTOCOL.md`). Pure code: no I/O, no clock;
//! the `lens` binary feeds it commands and time and performs the effects it returns.

pub mod protocol;
pub mod session;
pub mod status;
pub mod tools;
