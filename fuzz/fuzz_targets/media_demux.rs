//! Arbitrary datagrams into the media port's demultiplexer (`sfu::demux::classify`): nothing may
//! panic, and the answer must agree with the first byte (RFC 7983) whenever it is not garbage.
//! The STUN USERNAME reader the shard dispatcher uses (`sfu::demux::stun_request_ufrag`) gets the
//! same bytes: no panic, and a ufrag only from a binding request, without its colon.
//! The keyframe detector the engine runs on forwarded video (`sfu::keyframe::starts_keyframe`)
//! reads the same bytes as a VP8, VP9 and H.264 payload: no panic, and an empty payload is never
//! a keyframe.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu::VideoCodec;
use sfu::demux::{DatagramKind, classify, stun_request_ufrag};
use sfu::keyframe::starts_keyframe;

fuzz_target!(|data: &[u8]| {
    let kind = classify(data);
    let first = data.first().copied();
    match kind {
        DatagramKind::Stun => assert!(matches!(first, Some(0..=3))),
        DatagramKind::Dtls => assert!(matches!(first, Some(20..=63)) && data.len() >= 13),
        DatagramKind::Rtp | DatagramKind::Rtcp => {
            assert!(matches!(first, Some(128..=191)) && data.len() >= 8)
        }
        DatagramKind::Garbage => {}
    }
    if let Some(ufrag) = stun_request_ufrag(data) {
        assert!(data.starts_with(&[0, 1]) && data.len() >= 20);
        assert!(!ufrag.contains(&b':') && ufrag.len() < data.len());
    }
    for codec in VideoCodec::ALL {
        assert!(!(starts_keyframe(codec, data) && data.is_empty()));
    }
});
