//! ICE over TCP (RFC 6544): the passive side. Browsers that cannot reach the UDP port connect to
//! the media TCP port and send RFC 4571 frames (`framing.rs`); each frame is what a datagram
//! would have been and enters the same path as one.
//!
//! ```text
//!   sfu-tcp thread (own current-thread runtime)
//!     accept ── per connection: reader task ── first frame: a STUN binding request whose
//!               │                               USERNAME names a shard (as the UDP dispatcher
//!               │                               routes) → the connection belongs to that shard
//!               │   frames ──► that shard's bounded queue ──► Engine::tcp_input
//!               │                                             (demux, Rtc::accepts, as UDP)
//!               └ writer task ◄── the connection's own bounded queue ◄── the shard's Transmits
//! ```
//!
//! Nothing is shared between sessions on the way: a connection has its own queue to its writer,
//! which only its shard writes to (`try_send`: a full queue drops, a shard never waits). A
//! connection is *authenticated* once its shard's `Rtc` accepted a frame from it (a binding
//! request with the right credentials). Until then it is bounded in time
//! ([`HANDSHAKE_TIMEOUT`]), in number ([`MAX_UNAUTHENTICATED`]: further connections are closed
//! at once) and, like every connection, in memory (one [`crate::framing::BUFFER`], one queue of
//! [`LINK_QUEUE`] frames). Garbage (a first frame that is not such a binding request, a length
//! over the largest frame, empty frames) is counted; framing errors close the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use crate::framing::{FrameDecoder, encode};
use crate::metrics::add;

/// A connection that has not been authenticated by then is closed (counted); the default of
/// `SfuConfig::tcp_handshake_timeout`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Unauthenticated connections open at once at most; more are closed as soon as accepted.
pub const MAX_UNAUTHENTICATED: usize = 256;
/// An authenticated connection silent this long is closed (its peer's media was reported lost
/// long before; browsers send consent checks every few seconds).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued for one connection's writer; more are dropped (counted as send failures).
pub(crate) const LINK_QUEUE: usize = 256;
/// Frames queued from the TCP thread to one shard.
pub(crate) const SHARD_TCP_QUEUE: usize = 1024;

/// Counters of the TCP listener (relaxed atomics, written by its thread).
#[derive(Default)]
pub(crate) struct TcpMetrics {
    pub(crate) accepted: AtomicU64,
    pub(crate) authenticated: AtomicU64,
    /// Closed at once: too many unauthenticated connections open.
    pub(crate) refused: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    /// Frames dropped: empty, oversized, a first frame that is no binding request for a shard.
    pub(crate) garbage_frames: AtomicU64,
    /// Frames dropped because their shard's queue was full.
    pub(crate) queue_drops: AtomicU64,
    pub(crate) open: AtomicUsize,
    pub(crate) unauthenticated: AtomicUsize,
}

struct LinkShared {
    id: u64,
    outgoing: mpsc::Sender<Vec<u8>>,
    authenticated: AtomicBool,
    closed: AtomicBool,
    close: Notify,
}

/// One TCP connection as its shard sees it: where to send, and the switches it may flip.
#[derive(Clone)]
pub(crate) struct TcpLink(Arc<LinkShared>);

impl TcpLink {
    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }

    /// Queues one frame for the connection's writer; `false` when it is full or closed.
    pub(crate) fn send(&self, frame: Vec<u8>) -> bool {
        !self.0.closed.load(Ordering::Relaxed) && self.0.outgoing.try_send(frame).is_ok()
    }

    /// A peer's `Rtc` accepted traffic from this connection.
    pub(crate) fn authenticate(&self) {
        self.0.authenticated.store(true, Ordering::Relaxed);
    }

    fn is_authenticated(&self) -> bool {
        self.0.authenticated.load(Ordering::Relaxed)
    }

    /// Closes the connection (its peer is gone).
    pub(crate) fn close(&self) {
        self.0.closed.store(true, Ordering::Relaxed);
        self.0.close.notify_waiters();
        self.0.close.notify_one();
    }
}

/// What the TCP thread hands a shard.
pub(crate) enum TcpInput {
    Frame {
        source: SocketAddr,
        link: TcpLink,
        data: Vec<u8>,
        arrival: Instant,
    },
    /// The connection ended (closed by the peer, reset, timed out).
    Closed { source: SocketAddr, id: u64 },
}

/// Starts the listener thread on `listener` (non-blocking); frames go to `shards`. The thread
/// stops once every shard has.
pub(crate) fn spawn(
    listener: std::net::TcpListener,
    shards: Vec<mpsc::Sender<TcpInput>>,
    metrics: Arc<TcpMetrics>,
    handshake_timeout: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sfu-tcp".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime needs only an epoll instance and a timer");
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        accept_loop(listener, Arc::new(shards), metrics, handshake_timeout).await
                    }
                    Err(e) => tracing::error!(error = %e, "media TCP socket: cannot watch it"),
                }
            });
        })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shards: Arc<Vec<mpsc::Sender<TcpInput>>>,
    metrics: Arc<TcpMetrics>,
    handshake_timeout: Duration,
) {
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    add(&metrics.accepted, 1);
                    if metrics.unauthenticated.load(Ordering::Relaxed) >= MAX_UNAUTHENTICATED {
                        add(&metrics.refused, 1);
                        tracing::debug!(%peer, "media TCP: too many unauthenticated connections");
                        continue;
                    }
                    next_id += 1;
                    metrics.unauthenticated.fetch_add(1, Ordering::Relaxed);
                    metrics.open.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection(
                        stream,
                        peer,
                        next_id,
                        shards.clone(),
                        metrics.clone(),
                        handshake_timeout,
                    ));
                }
                Err(e) => {
                    // Out of file descriptors, usually: wait instead of spinning.
                    tracing::warn!(error = %e, "media TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = check.tick() => {
                if shards.iter().all(|s| s.is_closed()) {
                    break;
                }
            }
        }
    }
    tracing::debug!("media TCP listener stopped");
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    shards: Arc<Vec<mpsc::Sender<TcpInput>>>,
    metrics: Arc<TcpMetrics>,
    handshake_timeout: Duration,
) {
    // Media is latency-bound: no Nagle.
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (outgoing, mut queued) = mpsc::channel::<Vec<u8>>(LINK_QUEUE);
    let link = TcpLink(Arc::new(LinkShared {
        id,
        outgoing,
        authenticated: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        close: Notify::new(),
    }));
    let write_link = link.clone();
    let write = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(2 + crate::framing::MAX_FRAME);
        loop {
            let frame = tokio::select! {
                frame = queued.recv() => frame,
                _ = write_link.0.close.notified() => None,
            };
            let Some(frame) = frame else { break };
            buf.clear();
            if !encode(&frame, &mut buf) || writer.write_all(&buf).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let deadline = tokio::time::Instant::now() + handshake_timeout;
    let mut decoder = FrameDecoder::new();
    let mut shard: Option<usize> = None;
    let mut unauthenticated = true;
    'connection: loop {
        if link.0.closed.load(Ordering::Relaxed) {
            break;
        }
        if unauthenticated && link.is_authenticated() {
            unauthenticated = false;
            metrics.unauthenticated.fetch_sub(1, Ordering::Relaxed);
            add(&metrics.authenticated, 1);
        }
        let limit = if unauthenticated {
            deadline
        } else {
            tokio::time::Instant::now() + IDLE_TIMEOUT
        };
        let read = tokio::select! {
            read = reader.read(decoder.spare()) => read,
            _ = tokio::time::sleep_until(limit) => {
                if unauthenticated {
                    add(&metrics.handshake_timeouts, 1);
                }
                break;
            }
            _ = link.0.close.notified() => break,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => decoder.filled(n),
        }
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(oversized) => {
                    add(&metrics.garbage_frames, 1);
                    tracing::debug!(%peer, len = oversized.0, "media TCP: frame too long");
                    break 'connection;
                }
            };
            if frame.is_empty() {
                add(&metrics.garbage_frames, 1);
                continue;
            }
            let target = match shard {
                Some(s) => s,
                // The active side's first frame is its connectivity check (RFC 6544 §7.1),
                // which names the peer's shard as on UDP.
                None => match crate::demux::stun_request_ufrag(frame)
                    .and_then(crate::shard::shard_of)
                    .filter(|s| *s < shards.len())
                {
                    Some(s) => *shard.insert(s),
                    None => {
                        add(&metrics.garbage_frames, 1);
                        break 'connection;
                    }
                },
            };
            let input = TcpInput::Frame {
                source: peer,
                link: link.clone(),
                data: frame.to_vec(),
                arrival: Instant::now(),
            };
            match shards[target].try_send(input) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => add(&metrics.queue_drops, 1),
                Err(mpsc::error::TrySendError::Closed(_)) => break 'connection,
            }
        }
    }
    if unauthenticated {
        metrics.unauthenticated.fetch_sub(1, Ordering::Relaxed);
    }
    metrics.open.fetch_sub(1, Ordering::Relaxed);
    link.close();
    let _ = write.await;
    if let Some(s) = shard {
        // Tells the shard the path is gone (its peer's media is lost now, not after
        // `lost_after`). Waiting here holds only this connection's task.
        let _ = shards[s].send(TcpInput::Closed { source: peer, id }).await;
    }
}
