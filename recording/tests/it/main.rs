//! This crate's integration tests as one test binary, each file a module (README "Layout").

mod common;

mod fmp4;
mod opus_codec;
mod sinks;
