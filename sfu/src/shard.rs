//! Engine shards: N threads, each owning a disjoint set of rooms, all on the one media port.
//!
//! ```text
//!            media socket (one UDP port)
//!                 │ recvmmsg (≤ 32 datagrams per wake-up)
//!   shard 0 ── dispatcher: STUN binding request → shard named by its USERNAME's local ufrag
//!   thread      │           anything else        → route table (remote address → shard)
//!               │           unknown source       → garbage (counted)
//!               ├── own datagrams: Engine::datagram, inline
//!               └── others: one Batch per shard per wake-up ──► shard k thread: Engine::datagram
//!   every shard: Engine::flush → sendmmsg / GSO on the shared socket (no hop back)
//!   every shard: route learnt / forgotten ──► dispatcher's table (channel, drained per wake-up)
//! ```
//!
//! Why one reader and not `SO_REUSEPORT` sockets, one per shard: the kernel spreads datagrams
//! over reuseport sockets by a hash of the 4-tuple, so a session's customer and technician land on
//! sockets of their own choosing; every shard would then need hand-offs for most of its peers (and
//! steering them with a BPF program is more machinery than a table). One reader that knows where
//! each address belongs hands a datagram over at most once, and with one shard (`shards = 1`)
//! there is no hand-off at all: shard 0 reads and forwards inline, as the single task did before.
//! Reading costs little next to forwarding (SRTP, str0m), so shard 0's extra share is small.
//!
//! How the dispatcher knows a datagram's shard without a lock shared with the shards:
//! - Every local ICE username fragment starts with its shard's index in two hex digits
//!   ([`credentials`]; str0m lets the initial credentials be set, and the ones it picks on an
//!   ICE restart are replaced, see `engine::renegotiate`). A peer's connectivity checks carry
//!   that ufrag, so a new address (first contact, ICE restart after a network change) is routed
//!   by what it sends, not by guessing.
//! - Everything else (DTLS, SRTP, SRTCP, STUN answers) goes by the source address, which the
//!   shard that owns the peer reported once its `Rtc` accepted traffic from it (or once it sent
//!   a check there), and withdraws when the peer goes. The table is the dispatcher's own; the
//!   shards only send it updates.
//! - A datagram from an address nobody claimed that is not a binding request for an existing
//!   shard is garbage (`garbage_dropped`).
//!
//! Each shard is a thread with its own current-thread tokio runtime (timers, channels, socket
//! readiness): one core's work stays on one thread, and the OS spreads the threads over cores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::IceCreds;
use tokio::io::Interest;
use tokio::sync::mpsc;

use crate::engine::{Command, Engine};
use crate::io::RecvBatch;
use crate::metrics::{EngineMetrics, add};
use crate::tcp::TcpInput;

/// Most shards: the index must fit the ufrag's two hex digits.
pub const MAX_SHARDS: usize = 256;
/// Batches queued for one shard before the dispatcher drops (and counts) what it cannot hand
/// over: a shard that far behind is overloaded, and waiting would stall every other shard.
const SHARD_QUEUE: usize = 256;
/// `recvmmsg` rounds per wake-up before commands and timers get a look in.
const RECV_ROUNDS: usize = 4;

/// The number of shards when none is configured: one per core the process may use.
pub fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Local ICE credentials for a peer of `shard`: random, with the shard's index in front.
pub(crate) fn credentials(shard: usize) -> IceCreds {
    let mut creds = IceCreds::new();
    creds.ufrag = format!("{:02x}{}", shard % MAX_SHARDS, creds.ufrag);
    creds
}

/// The shard a local ufrag names (see [`credentials`]).
pub(crate) fn shard_of(ufrag: &[u8]) -> Option<usize> {
    let digits = ufrag.get(..2)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    usize::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

enum RouteUpdate {
    Learn(SocketAddr, usize),
    Forget(SocketAddr, usize),
}

/// A shard's way to tell the dispatcher which remote addresses are its own.
pub(crate) struct Router {
    updates: std::sync::mpsc::Sender<RouteUpdate>,
}

impl Router {
    pub(crate) fn learn(&self, address: SocketAddr, shard: usize) {
        // The dispatcher stops only when the SFU does.
        let _ = self.updates.send(RouteUpdate::Learn(address, shard));
    }

    pub(crate) fn forget(&self, address: SocketAddr, shard: usize) {
        let _ = self.updates.send(RouteUpdate::Forget(address, shard));
    }
}

/// Datagrams for one shard from one wake-up of the dispatcher, in one buffer.
struct Batch {
    arrival: Instant,
    data: Vec<u8>,
    /// Source, start and end in `data`.
    items: Vec<(SocketAddr, usize, usize)>,
}

/// Shard 0's routing of what it reads to the other shards (only when there are several).
struct Dispatcher {
    routes: HashMap<SocketAddr, usize, crate::engine::FastHash>,
    updates: std::sync::mpsc::Receiver<RouteUpdate>,
    /// Per shard (index 0 unused: shard 0 handles its own inline).
    queues: Vec<Option<mpsc::Sender<Batch>>>,
    filling: Vec<Option<Batch>>,
    /// Spent batches back from the shards, reused so buffers are not allocated per wake-up.
    spares: std::sync::mpsc::Receiver<Batch>,
    /// Indexes (in the receive batch) of shard 0's own datagrams.
    own: Vec<usize>,
}

impl Dispatcher {
    fn take_updates(&mut self) {
        while let Ok(update) = self.updates.try_recv() {
            match update {
                RouteUpdate::Learn(address, shard) => {
                    self.routes.insert(address, shard);
                }
                RouteUpdate::Forget(address, shard) => {
                    // Another shard may have claimed the address since.
                    if self.routes.get(&address) == Some(&shard) {
                        self.routes.remove(&address);
                    }
                }
            }
        }
    }

    fn route(&self, data: &[u8], source: SocketAddr) -> Option<usize> {
        if let Some(ufrag) = crate::demux::stun_request_ufrag(data) {
            return shard_of(ufrag).filter(|s| *s < self.queues.len());
        }
        self.routes.get(&source).copied()
    }

    fn push(&mut self, shard: usize, data: &[u8], source: SocketAddr, arrival: Instant) {
        let spares = &self.spares;
        let batch = self.filling[shard].get_or_insert_with(|| {
            let mut batch = spares.try_recv().unwrap_or_else(|_| Batch {
                arrival,
                data: Vec::new(),
                items: Vec::new(),
            });
            batch.arrival = arrival;
            batch.data.clear();
            batch.items.clear();
            batch
        });
        let start = batch.data.len();
        batch.data.extend_from_slice(data);
        batch.items.push((source, start, batch.data.len()));
    }

    /// Hands every shard its batch; a full queue drops the batch (counted).
    fn send_all(&mut self, metrics: &EngineMetrics) {
        for (shard, filling) in self.filling.iter_mut().enumerate() {
            let Some(batch) = filling.take() else {
                continue;
            };
            let Some(queue) = &self.queues[shard] else {
                continue;
            };
            if let Err(e) = queue.try_send(batch) {
                let lost = match &e {
                    mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => {
                        b.items.len()
                    }
                };
                add(&metrics.shard_queue_drops, lost as u64);
            }
        }
    }
}

/// The running shards, as the handle sees them.
pub(crate) struct Shards {
    pub(crate) commands: Vec<mpsc::UnboundedSender<Command>>,
    /// Per shard, where the ICE-TCP listener hands frames.
    pub(crate) tcp: Vec<mpsc::Sender<TcpInput>>,
    pub(crate) metrics: Vec<Arc<EngineMetrics>>,
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
}

/// Starts `count` shard threads on `socket` (non-blocking). Shard 0 reads the socket.
/// What every shard's engine is set up with.
#[derive(Clone, Copy)]
pub(crate) struct EngineSetup {
    /// The UDP host candidate's address.
    pub(crate) local: SocketAddr,
    /// The passive TCP candidate's address, when ICE-TCP is on.
    pub(crate) local_tcp: Option<SocketAddr>,
    pub(crate) lost_after: std::time::Duration,
}

pub(crate) fn spawn(
    socket: std::net::UdpSocket,
    setup: EngineSetup,
    count: usize,
) -> std::io::Result<Shards> {
    let EngineSetup {
        local,
        local_tcp,
        lost_after,
    } = setup;
    let count = count.clamp(1, MAX_SHARDS);
    let sender = Arc::new(socket.try_clone()?);
    let (updates_tx, updates_rx) = std::sync::mpsc::channel();
    let (spares_tx, spares_rx) = std::sync::mpsc::channel();
    let mut commands = Vec::with_capacity(count);
    let mut tcp = Vec::with_capacity(count);
    let mut metrics = Vec::with_capacity(count);
    let mut threads = Vec::with_capacity(count);
    let mut queues = vec![None];
    let mut zero = None;
    for shard in 0..count {
        let (command_tx, command_rx) = mpsc::unbounded_channel();
        commands.push(command_tx);
        let (tcp_tx, tcp_rx) = mpsc::channel(crate::tcp::SHARD_TCP_QUEUE);
        tcp.push(tcp_tx);
        let shard_metrics = Arc::new(EngineMetrics::default());
        metrics.push(shard_metrics.clone());
        let router = (count > 1).then(|| Router {
            updates: updates_tx.clone(),
        });
        let sender = sender.clone();
        if shard == 0 {
            zero = Some((command_rx, tcp_rx, router, shard_metrics, sender));
            continue;
        }
        let (batch_tx, batch_rx) = mpsc::channel(SHARD_QUEUE);
        queues.push(Some(batch_tx));
        let spares = spares_tx.clone();
        let thread = std::thread::Builder::new().name(format!("sfu-shard-{shard}"));
        threads.push(thread.spawn(move || {
            let engine = Engine::new(
                sender,
                local,
                shard,
                router,
                shard_metrics,
                local_tcp,
                lost_after,
            );
            let source = Source::Queue {
                batches: batch_rx,
                spares,
            };
            runtime().block_on(run(engine, command_rx, tcp_rx, source));
        })?);
    }
    // Shard 0 last: its dispatcher needs every other shard's queue.
    let (command_rx, tcp_rx, router, shard_metrics, sender) = zero.expect("count >= 1");
    let dispatcher = (count > 1).then(|| Dispatcher {
        routes: HashMap::default(),
        updates: updates_rx,
        filling: (0..count).map(|_| None).collect(),
        queues,
        spares: spares_rx,
        own: Vec::with_capacity(crate::io::RECV_BATCH),
    });
    let reader = sender.clone();
    let gro = crate::socket::enable_gro(&socket);
    let thread = std::thread::Builder::new().name("sfu-shard-0".into());
    threads.insert(
        0,
        thread.spawn(move || {
            let engine = Engine::new(
                sender,
                local,
                0,
                router,
                shard_metrics,
                local_tcp,
                lost_after,
            );
            runtime().block_on(async move {
                // Registered for reading only: tokio's `UdpSocket` also asks for write readiness,
                // and every `sendmmsg` that frees send-buffer space then woke the shard for
                // nothing (an `EPOLLOUT` edge; 37 % of shard 0's wake-ups with 3 sessions).
                // SAFETY: the `UdpSocket` owns its descriptor for as long as the `AsyncFd`
                // holds it, and `as_raw_fd` always answers that descriptor.
                let registered = unsafe {
                    tokio::io::unix::AsyncFd::register_with_interest(socket, Interest::READABLE)
                };
                match registered {
                    Ok(socket) => {
                        let source = Source::Socket {
                            socket,
                            reader,
                            batch: RecvBatch::new(gro),
                            dispatcher,
                        };
                        run(engine, command_rx, tcp_rx, source).await
                    }
                    Err(e) => tracing::error!(error = %e, "media socket: cannot watch it"),
                }
            });
        })?,
    );
    Ok(Shards {
        commands,
        tcp,
        metrics,
        threads,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs only an epoll instance and a timer")
}

/// Where a shard's datagrams come from.
// One per shard, for the thread's life: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Source {
    /// Shard 0: the media socket (readiness from the registered socket, reads on its clone).
    Socket {
        socket: tokio::io::unix::AsyncFd<std::net::UdpSocket>,
        reader: Arc<std::net::UdpSocket>,
        batch: RecvBatch,
        dispatcher: Option<Dispatcher>,
    },
    /// Shards 1..N: the dispatcher's batches, handed back once spent.
    Queue {
        batches: mpsc::Receiver<Batch>,
        spares: std::sync::mpsc::Sender<Batch>,
    },
}

enum Ready {
    Socket(std::io::Result<()>),
    Batch(Option<Batch>),
}

impl Source {
    async fn ready(&mut self) -> Ready {
        match self {
            // The guard is dropped at once: readiness stays set until a read meets `WouldBlock`.
            Source::Socket { socket, .. } => Ready::Socket(socket.readable().await.map(drop)),
            Source::Queue { batches, .. } => Ready::Batch(batches.recv().await),
        }
    }

    /// Hands what is ready to the engine; `false` when the source has ended.
    fn take(&mut self, ready: Ready, engine: &mut Engine) -> bool {
        match (self, ready) {
            (
                Source::Socket {
                    socket,
                    reader,
                    batch,
                    dispatcher,
                },
                Ready::Socket(ready),
            ) => {
                if let Err(e) = ready {
                    tracing::warn!(error = %e, "media socket receive failed");
                }
                for _ in 0..RECV_ROUNDS {
                    // `try_io` allows reading through the clone (the same socket): `WouldBlock`
                    // clears the registered socket's readiness. A read that emptied the queue
                    // answers `WouldBlock` too (its datagrams are handled below): the next
                    // `recvmmsg` would only meet `EAGAIN`, one wasted call per wake-up at light
                    // load. Readiness from a datagram that arrived since is kept (tokio compares
                    // the event's tick), so nothing is left unread.
                    let mut drained = false;
                    let read = socket.try_io(Interest::READABLE, |_| {
                        let n = batch.recv(reader)?;
                        drained = batch.drained();
                        if drained {
                            Err(std::io::ErrorKind::WouldBlock.into())
                        } else {
                            Ok(n)
                        }
                    });
                    let handle = |batch: &mut RecvBatch, engine: &mut Engine, dispatcher| {
                        let coalesced = batch.take_coalesced();
                        if coalesced > 0 {
                            add(&engine.metrics().gro_datagrams, coalesced as u64);
                        }
                        dispatch(engine, dispatcher, batch);
                        engine.end_batch();
                        engine.flush();
                    };
                    match read {
                        Ok(_) => handle(batch, engine, dispatcher.as_mut()),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if drained {
                                handle(batch, engine, dispatcher.as_mut());
                            }
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "media socket receive failed");
                            break;
                        }
                    }
                }
                true
            }
            (Source::Queue { spares, .. }, Ready::Batch(Some(batch))) => {
                for (source, start, end) in &batch.items {
                    engine.datagram(&batch.data[*start..*end], *source, batch.arrival);
                }
                // Reused by the dispatcher; gone only when it has stopped.
                let _ = spares.send(batch);
                true
            }
            // The dispatcher (shard 0) has stopped: so has the SFU.
            _ => false,
        }
    }
}

/// A shard's loop: commands first, then datagrams, then timers; what they produce is flushed
/// (one `sendmmsg`) before the next wait.
async fn run(
    mut engine: Engine,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut tcp: mpsc::Receiver<TcpInput>,
    mut source: Source,
) {
    // Closed once the TCP listener is gone (or off): then no longer watched.
    let mut tcp_open = true;
    // One timer for the thread's life, re-armed only when the wake-up time changes: a new
    // `Sleep` per turn registered a timer each time, and one earlier than the driver's last
    // park made tokio write its own eventfd (an extra `epoll_wait` per turn).
    let mut armed = engine.next_wake();
    let sleep = tokio::time::sleep_until(armed.into());
    tokio::pin!(sleep);
    loop {
        let wake = engine.next_wake();
        if wake != armed || sleep.is_elapsed() {
            sleep.as_mut().reset(wake.into());
            armed = wake;
        }
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(command) => engine.command(command),
                None => break,
            },
            input = tcp.recv(), if tcp_open => match input {
                Some(input) => engine.tcp_input(input),
                None => tcp_open = false,
            },
            ready = source.ready() => {
                if !source.take(ready, &mut engine) {
                    break;
                }
            },
            _ = &mut sleep => {}
        }
        // Whatever the wake-up brought (a hand-over from shard 0, a TCP frame) is one batch.
        engine.end_batch();
        engine.sweep_if_due();
        engine.flush();
    }
    tracing::debug!(
        garbage_dropped = engine
            .metrics()
            .garbage_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        "SFU shard stopped"
    );
}

/// Hands each datagram of `batch` to its shard: the others' first (they work meanwhile), then
/// shard 0's own, inline.
fn dispatch(engine: &mut Engine, dispatcher: Option<&mut Dispatcher>, batch: &RecvBatch) {
    let arrival = Instant::now();
    let Some(dispatcher) = dispatcher else {
        for (data, source) in batch.datagrams() {
            engine.datagram(data, source, arrival);
        }
        return;
    };
    dispatcher.take_updates();
    dispatcher.own.clear();
    for (i, (data, source)) in batch.datagrams().enumerate() {
        match dispatcher.route(data, source) {
            Some(0) => dispatcher.own.push(i),
            Some(shard) => dispatcher.push(shard, data, source, arrival),
            None => {
                add(&engine.metrics().garbage_dropped, 1);
                tracing::trace!(%source, "datagram for no shard");
            }
        }
    }
    dispatcher.send_all(engine.metrics());
    for &i in &dispatcher.own {
        let (data, source) = batch.datagram(i);
        engine.datagram(data, source, arrival);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_s_credentials_name_it() {
        for shard in [0, 1, 9, 10, 255] {
            let creds = credentials(shard);
            assert_eq!(shard_of(creds.ufrag.as_bytes()), Some(shard));
            // RFC 8445 §5.3: at least 24 bits of randomness; str0m's is 16 characters.
            assert!(creds.ufrag.len() >= 6 && creds.pass.len() >= 22);
        }
        assert_eq!(shard_of(b"+1abc"), None);
        assert_eq!(shard_of(b"x"), None);
    }
}
