//! This crate's integration tests as one test binary, each file a module (README "Layout").

mod common;

mod early;
mod forwarding;
mod garbage;
mod lost;
mod nack;
mod sdp;
mod shards;
mod tap;
mod tcp;
mod wire;
