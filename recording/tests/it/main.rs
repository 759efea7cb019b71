//! The integration tests of this crate, as one test binary: one link and one copy of the shared
//! harness (`common`) instead of one per file. Rebuilding the workspace's own crates and tests
//! took 64 s instead of 125 s, and their clippy 25 s instead of 35 s (2 cores, dependencies built).

mod common;

mod fmp4;
mod opus_codec;
mod sinks;
