//! Batched datagram I/O on the media socket: what one wake-up of a shard receives is read with
//! one `recvmmsg`, and what driving the affected sessions produced is sent with one `sendmmsg`
//! (Linux, through `nix`). Consecutive datagrams to the same destination with the same size (a
//! video frame's packets to one console) go out as one UDP GSO send (`UDP_SEGMENT`) when the
//! kernel takes it; the first refusal turns GSO off for the shard. On receive, a socket with
//! `UDP_GRO` on may be handed several datagrams of one source coalesced into one (a NIC's GRO
//! merging a burst, or a sender's GSO send over loopback, which arrives whole): they are split
//! back into datagrams here, so nothing above this module sees the difference. Elsewhere: one
//! `recv_from` / `send_to` per datagram, same interface.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use crate::PeerCounters;

/// Datagrams read per wake-up at most.
pub(crate) const RECV_BATCH: usize = 32;
/// Largest datagram accepted; WebRTC keeps under the path MTU (str0m: 1150 bytes by default).
pub(crate) const MAX_DATAGRAM: usize = 2048;
/// Segments in one GSO send at most (the kernel's limit is 64, and 64 KiB in all).
const MAX_GSO_SEGMENTS: usize = 32;
/// A receive slot when GRO is on: the kernel coalesces up to 64 KiB of one flow into one
/// datagram, and would cut a longer one short at the slot's end (the rest lost).
const GRO_SLOT: usize = 65_536;

/// Buffers for one `recvmmsg`: `RECV_BATCH` slots of `MAX_DATAGRAM` bytes (of `GRO_SLOT` with
/// GRO on: the pages a slot does not fill are never touched, so the larger buffer costs address
/// space, not memory).
pub(crate) struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    /// Start, length and source of each datagram received by the last `recv` (a coalesced
    /// datagram counts as the datagrams it holds).
    received: Vec<(usize, usize, SocketAddr)>,
    /// Datagrams that arrived coalesced (GRO), since the counter was last taken.
    coalesced: usize,
    /// The last `recv` took fewer datagrams than it had room for: the socket's queue was empty
    /// then (`recvmmsg` with `MSG_DONTWAIT` stops at the first `EAGAIN`).
    drained: bool,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl RecvBatch {
    /// `gro`: the socket has `UDP_GRO` on ([`crate::socket::enable_gro`]).
    pub(crate) fn new(gro: bool) -> Self {
        let slot = if gro { GRO_SLOT } else { MAX_DATAGRAM };
        RecvBatch {
            buf: vec![0; RECV_BATCH * slot],
            slot,
            received: Vec::with_capacity(RECV_BATCH),
            coalesced: 0,
            drained: false,
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(
                RECV_BATCH,
                gro.then(|| nix::cmsg_space!(i32)),
            ),
        }
    }

    /// Whether the last `recv` emptied the socket's queue (see the field).
    pub(crate) fn drained(&self) -> bool {
        self.drained
    }

    /// How many datagrams arrived coalesced since the last call (for the metrics).
    pub(crate) fn take_coalesced(&mut self) -> usize {
        std::mem::take(&mut self.coalesced)
    }

    /// The datagrams of the last `recv`.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        (0..self.received.len()).map(|i| self.datagram(i))
    }

    /// The `i`-th datagram of the last `recv`.
    pub(crate) fn datagram(&self, i: usize) -> (&[u8], SocketAddr) {
        let (start, len, source) = self.received[i];
        (&self.buf[start..][..len], source)
    }

    /// Reads what is waiting (up to `RECV_BATCH` datagrams) without blocking; `WouldBlock` when
    /// nothing is.
    #[cfg(target_os = "linux")]
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmmsg};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        self.received.clear();
        let slot = self.slot;
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buf
            .chunks_exact_mut(slot)
            .map(|chunk| [IoSliceMut::new(chunk)])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(std::io::Error::from)?;
        let mut taken = 0;
        for (i, msg) in results.enumerate() {
            taken += 1;
            // A datagram without a usable source address cannot be answered: skipped.
            let Some(source) = msg.address.as_ref().and_then(to_socket_addr) else {
                continue;
            };
            let start = i * slot;
            // Truncated datagrams (over the slot) are left for the demultiplexer to reject.
            let len = msg.bytes.min(slot);
            // GRO: datagrams of one size from one source, the last maybe shorter.
            let segment = msg
                .cmsgs()
                .into_iter()
                .flatten()
                .find_map(|c| match c {
                    ControlMessageOwned::UdpGroSegments(size) => usize::try_from(size).ok(),
                    _ => None,
                })
                .filter(|size| *size > 0 && *size < len);
            match segment {
                Some(size) => {
                    let mut offset = 0;
                    while offset < len {
                        let n = size.min(len - offset);
                        self.received.push((start + offset, n, source));
                        self.coalesced += 1;
                        offset += n;
                    }
                }
                None => self.received.push((start, len, source)),
            }
        }
        self.drained = taken < RECV_BATCH;
        if self.received.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(self.received.len())
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        self.received.clear();
        while self.received.len() < RECV_BATCH {
            let start = self.received.len() * self.slot;
            let slot = &mut self.buf[start..][..self.slot];
            match socket.recv_from(slot) {
                Ok((n, source)) => self.received.push((start, n, source)),
                Err(e) if self.received.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        self.drained = self.received.len() < RECV_BATCH;
        Ok(self.received.len())
    }
}

#[cfg(target_os = "linux")]
fn to_socket_addr(addr: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// One datagram waiting to be sent, with the peer it is counted for.
struct Queued {
    destination: SocketAddr,
    contents: Vec<u8>,
    counters: Arc<PeerCounters>,
}

/// The datagrams one wake-up of a shard produced, sent together by [`Outbox::flush`].
pub(crate) struct Outbox {
    queue: Vec<Queued>,
    /// Cleared when the kernel refuses a GSO send (no UDP_SEGMENT, or a device without
    /// checksum offload): the shard then sends one datagram per message.
    gso: bool,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

/// What one flush did, for the caller's metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Flushed {
    pub(crate) datagrams: usize,
    pub(crate) failed: usize,
    /// Of `datagrams`, those sent inside GSO sends.
    pub(crate) segmented: usize,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Outbox {
            queue: Vec::with_capacity(RECV_BATCH * 2),
            gso: cfg!(target_os = "linux"),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(RECV_BATCH * 2, None),
        }
    }

    pub(crate) fn push(
        &mut self,
        destination: SocketAddr,
        contents: Vec<u8>,
        counters: &Arc<PeerCounters>,
    ) {
        self.queue.push(Queued {
            destination,
            contents,
            counters: counters.clone(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sends everything queued, never blocking: a datagram the kernel will not take now (full
    /// send buffer) is dropped, as a router would. Each peer's `sent` counters count what the
    /// kernel took.
    pub(crate) fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut flushed = Flushed::default();
        let mut start = 0;
        while start < self.queue.len() {
            let run = self.gso_run(start);
            let sent = if run > 1 {
                self.send_gso(socket, start, run)
            } else {
                None
            };
            let (taken, ok) = match sent {
                Some(ok) => {
                    if ok {
                        flushed.segmented += run;
                    }
                    (run, ok)
                }
                None => self.send_many(socket, start),
            };
            for q in &self.queue[start..start + taken] {
                if ok {
                    q.counters.sent(q.contents.len());
                }
            }
            flushed.datagrams += taken;
            if !ok {
                flushed.failed += taken;
            }
            start += taken;
        }
        // The buffers go back to str0m, which seals this shard's next SRTP packets into them
        // (a pool per thread: no allocation and free per forwarded packet).
        for q in self.queue.drain(..) {
            str0m::net::recycle_datagram(q.contents);
        }
        flushed
    }

    /// How many datagrams from `start` can go as one GSO send: same destination, same size
    /// (only the last may be shorter).
    fn gso_run(&self, start: usize) -> usize {
        if !self.gso {
            return 1;
        }
        let first = &self.queue[start];
        let size = first.contents.len();
        let mut n = 1;
        let mut total = size;
        for q in &self.queue[start + 1..] {
            let len = q.contents.len();
            if q.destination != first.destination
                || len > size
                || n == MAX_GSO_SEGMENTS
                || total + len > 65_000
            {
                break;
            }
            n += 1;
            total += len;
            if len < size {
                break;
            }
        }
        n
    }

    /// One GSO send of `run` datagrams; `None` when GSO is unavailable (then turned off and the
    /// datagrams are sent one by one).
    #[cfg(target_os = "linux")]
    fn send_gso(&mut self, socket: &UdpSocket, start: usize, run: usize) -> Option<bool> {
        use nix::errno::Errno;
        use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;

        let queued = &self.queue[start..start + run];
        let slices: Vec<IoSlice<'_>> = queued.iter().map(|q| IoSlice::new(&q.contents)).collect();
        let segment = u16::try_from(queued[0].contents.len()).ok()?;
        let address = SockaddrStorage::from(queued[0].destination);
        match sendmsg(
            socket.as_raw_fd(),
            &slices,
            &[ControlMessage::UdpGsoSegments(&segment)],
            MsgFlags::MSG_DONTWAIT,
            Some(&address),
        ) {
            Ok(_) => Some(true),
            Err(Errno::EIO | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOPROTOOPT) => {
                tracing::info!("media socket: UDP GSO refused by the kernel; sending unsegmented");
                self.gso = false;
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "send dropped");
                Some(false)
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_gso(&mut self, _socket: &UdpSocket, _start: usize, _run: usize) -> Option<bool> {
        self.gso = false;
        None
    }

    /// One `sendmmsg` of the datagrams from `start` up to the next GSO run (at least one).
    /// Returns how many it covered and whether they were sent.
    #[cfg(target_os = "linux")]
    fn send_many(&mut self, socket: &UdpSocket, start: usize) -> (usize, bool) {
        use nix::sys::socket::{MsgFlags, SockaddrStorage, sendmmsg};
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;

        let mut end = start + 1;
        while end < self.queue.len() && end - start < RECV_BATCH * 2 && self.gso_run(end) == 1 {
            end += 1;
        }
        let queued = &self.queue[start..end];
        let slices: Vec<[IoSlice<'_>; 1]> =
            queued.iter().map(|q| [IoSlice::new(&q.contents)]).collect();
        let addresses: Vec<Option<SockaddrStorage>> = queued
            .iter()
            .map(|q| Some(SockaddrStorage::from(q.destination)))
            .collect();
        match sendmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            &slices,
            &addresses,
            [],
            MsgFlags::MSG_DONTWAIT,
        ) {
            // The kernel stops at the first datagram it cannot take: that one is dropped, the
            // rest is tried again by the caller's loop.
            Ok(results) => {
                let sent = results.count();
                if sent == 0 { (1, false) } else { (sent, true) }
            }
            Err(e) => {
                tracing::debug!(error = %e, "send dropped");
                (1, false)
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_many(&mut self, socket: &UdpSocket, start: usize) -> (usize, bool) {
        let q = &self.queue[start];
        match socket.send_to(&q.contents, q.destination) {
            Ok(_) => (1, true),
            Err(e) => {
                tracing::debug!(error = %e, "send dropped");
                (1, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(datagrams: &[(SocketAddr, usize, u8)]) -> Outbox {
        let counters = Arc::new(PeerCounters::default());
        let mut outbox = Outbox::new();
        for (to, len, fill) in datagrams {
            outbox.push(*to, vec![*fill; *len], &counters);
        }
        outbox
    }

    #[test]
    fn gso_runs_are_same_destination_same_size_with_a_shorter_last() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let mut out = outbox(&[
            (a, 100, 1),
            (a, 100, 2),
            (a, 60, 3),
            (a, 100, 4),
            (b, 100, 5),
            (a, 100, 6),
            (a, 120, 7),
        ]);
        // Grouping is the same whatever the platform; only sending differs.
        out.gso = true;
        // Three to a (the last shorter), then one to a (b differs), b alone, then a size rise.
        assert_eq!(out.gso_run(0), 3);
        assert_eq!(out.gso_run(3), 1);
        assert_eq!(out.gso_run(4), 1);
        assert_eq!(out.gso_run(5), 1);
        out.gso = false;
        assert_eq!(out.gso_run(0), 1);
    }

    /// Real sockets on 127.0.0.1: what one flush sends (GSO runs and a `sendmmsg` of the rest)
    /// arrives whole and in order, and one `recv` reads it back as separate datagrams.
    #[test]
    fn a_flush_delivers_every_datagram_whole_and_in_order() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let sent = [
            (to_a, 1000, 1),
            (to_a, 1000, 2),
            (to_a, 1000, 3),
            (to_a, 400, 4),
            (to_b, 200, 5),
            (to_a, 50, 6),
            (to_b, 200, 7),
        ];
        let mut out = outbox(&sent);
        let counters = out.queue[0].counters.clone();
        let flushed = out.flush(&socket);
        assert_eq!((flushed.datagrams, flushed.failed), (sent.len(), 0));
        assert!(out.is_empty());
        assert_eq!(counters.bytes().1, sent.iter().map(|s| s.1 as u64).sum());

        for (receiver, to) in [(&a, to_a), (&b, to_b)] {
            receiver.set_nonblocking(true).unwrap();
            let mut batch = RecvBatch::new(false);
            let mut got = Vec::new();
            // Loopback delivers within the send call; a few reads in case of a split.
            for _ in 0..10 {
                if batch.recv(receiver).is_ok() {
                    got.extend(batch.datagrams().map(|(d, from)| (d.to_vec(), from)));
                }
            }
            let want: Vec<(Vec<u8>, SocketAddr)> = sent
                .iter()
                .filter(|s| s.0 == to)
                .map(|s| (vec![s.2; s.1], socket.local_addr().unwrap()))
                .collect();
            assert_eq!(got, want, "to {to}");
        }
    }

    /// On loopback a GSO send reaches a `UDP_GRO` socket whole (one datagram with the segment
    /// size attached; checked on this project's kernel 6.x): the batch splits it back into the
    /// datagrams that were sent, in order, next to ones that arrived alone.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_coalesced_datagram_is_split_back_into_the_datagrams_sent() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(crate::socket::enable_gro(&receiver));
        receiver.set_nonblocking(true).unwrap();
        let to = receiver.local_addr().unwrap();
        let sent = [
            (to, 1100, 1),
            (to, 1100, 2),
            (to, 1100, 3),
            (to, 700, 4),
            (to, 90, 5),
            (to, 1100, 6),
            (to, 1100, 7),
        ];
        let mut out = outbox(&sent);
        let flushed = out.flush(&socket);
        assert_eq!((flushed.datagrams, flushed.failed), (sent.len(), 0));
        assert_eq!(
            flushed.segmented, 6,
            "two GSO runs: 4 + 2, the 90 bytes alone"
        );

        let mut batch = RecvBatch::new(true);
        let mut got = Vec::new();
        let mut coalesced = 0;
        for _ in 0..10 {
            if batch.recv(&receiver).is_ok() {
                coalesced += batch.take_coalesced();
                got.extend(batch.datagrams().map(|(d, _)| d.to_vec()));
            }
        }
        let want: Vec<Vec<u8>> = sent.iter().map(|s| vec![s.2; s.1]).collect();
        assert_eq!(got, want);
        assert_eq!(coalesced, 6, "the GSO runs arrived coalesced");
    }
}
