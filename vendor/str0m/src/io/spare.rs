//! lens: send buffers handed back by the caller, reused for the next SRTP packets.
//!
//! Every outgoing RTP packet is sealed into a new `Vec` that the caller drops once the datagram
//! is sent: an allocation and a free per packet, and a datagram-sized one is beyond glibc's
//! per-thread cache, so each took a trip through the main allocator. A caller that gives the
//! buffers back ([`recycle_datagram`]) has them reused by the next packets sealed on the same
//! thread. The pool is per thread (no lock, no sharing between threads) and bounded; a caller
//! that never gives anything back sees 0.25's behaviour.

use std::cell::RefCell;

/// Buffers kept per thread at most: beyond this, a handed-back buffer is freed.
const MAX_SPARE: usize = 256;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Hands a sent datagram's buffer (from [`Transmit::contents`][crate::net::Transmit]) back for
/// reuse by the SRTP packets this thread seals next. Optional: a dropped buffer is simply freed.
pub fn recycle_datagram(mut buf: Vec<u8>) {
    buf.clear();
    // A thread being torn down has no pool left: the buffer is freed.
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < MAX_SPARE {
            spare.push(buf);
        }
    });
}

/// An empty buffer with room for `capacity` bytes, reused when one was handed back.
pub(crate) fn datagram_buffer(capacity: usize) -> Vec<u8> {
    let reused = SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten();
    match reused {
        Some(mut buf) => {
            buf.reserve(capacity);
            buf
        }
        None => Vec::with_capacity(capacity),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_handed_back_buffer_is_reused_empty() {
        let mut buf = datagram_buffer(1200);
        buf.extend_from_slice(&[7; 1100]);
        let ptr = buf.as_ptr();
        recycle_datagram(buf);
        let again = datagram_buffer(1000);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());
        assert!(again.capacity() >= 1200);
        // A smaller buffer handed back grows to what is asked for.
        recycle_datagram(Vec::with_capacity(10));
        assert!(datagram_buffer(1500).capacity() >= 1500);
    }

    #[test]
    fn the_pool_is_bounded() {
        for _ in 0..MAX_SPARE + 10 {
            recycle_datagram(Vec::with_capacity(16));
        }
        assert_eq!(SPARE.with(|s| s.borrow().len()), MAX_SPARE);
        SPARE.with(|s| s.borrow_mut().clear());
    }
}
