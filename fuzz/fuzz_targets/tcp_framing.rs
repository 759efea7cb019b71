//! Arbitrary bytes on an ICE-TCP connection (`sfu::framing`, RFC 4571), cut into reads of a size
//! the first byte picks: nothing may panic, the decoder's buffer always has room for the next
//! read, every frame is at most `MAX_FRAME` long, and the frames put back together with their
//! length headers are exactly the start of the stream (nothing invented, lost or reordered).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu::framing::{FrameDecoder, MAX_FRAME, Oversized, encode};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1) * 17;
    let mut decoder = FrameDecoder::new();
    let mut rebuilt = Vec::new();
    let mut rest = stream;
    'stream: while !rest.is_empty() {
        let spare = decoder.spare();
        assert!(!spare.is_empty(), "no room to read");
        let n = chunk.min(spare.len()).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        decoder.filled(n);
        rest = &rest[n..];
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX_FRAME);
                    assert!(encode(frame, &mut rebuilt));
                }
                Ok(None) => break,
                Err(Oversized(len)) => {
                    assert!(len > MAX_FRAME);
                    break 'stream;
                }
            }
        }
    }
    assert!(stream.starts_with(&rebuilt));
    assert!(decoder.pending() <= stream.len() - rebuilt.len());
});
