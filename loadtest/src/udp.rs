//! The baseline: a bare UDP forwarder (no ICE, no DTLS, no SRTP, no RTCP; one `recv_from` and one
//! `send_to` per packet on one thread) and plain-RTP peers that send it the same media as the
//! WebRTC peers. What it forwards per CPU-second is the limit of this machine's kernel path.
//!
//! Pairing: each peer first sends `LTREG` + session (u32) + role (0 customer, 1 technician) until
//! it gets `LTACK`; afterwards every datagram from that address goes to the other role's address.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

use crate::media::{Media, Pacer, Stream};
use crate::peer::PeerContext;
use crate::stats::{Receiver, Stats};

const REG: &[u8] = b"LTREG";
const ACK: &[u8] = b"LTACK";

/// The forwarder's loop (the `udp-forwarder` subcommand); prints its address, then runs forever.
pub fn forwarder(bind: &str) -> anyhow::Result<()> {
    let socket = StdSocket::bind(bind)?;
    println!("{}", socket.local_addr()?);
    let mut by_addr: HashMap<SocketAddr, (u32, u8)> = HashMap::new();
    let mut rooms: HashMap<u32, [Option<SocketAddr>; 2]> = HashMap::new();
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let packet = &buf[..n];
        if packet.len() == REG.len() + 5 && packet.starts_with(REG) {
            let session = u32::from_be_bytes(packet[5..9].try_into()?);
            let role = packet[9] & 1;
            by_addr.insert(from, (session, role));
            rooms.entry(session).or_default()[usize::from(role)] = Some(from);
            let _ = socket.send_to(ACK, from);
            continue;
        }
        let Some((session, role)) = by_addr.get(&from) else {
            continue;
        };
        if let Some(to) = rooms.get(session).and_then(|r| r[usize::from(1 - role)]) {
            let _ = socket.send_to(packet, to);
        }
    }
}

/// Starts the forwarder as a child process (so its CPU is measured apart from the generator's).
pub fn spawn_forwarder(
    cpus: Option<&crate::sys::CpuList>,
) -> anyhow::Result<(std::process::Child, SocketAddr)> {
    use std::io::BufRead;
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .args(["udp-forwarder", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped());
    if let Some(cpus) = cpus {
        cpus.pin_command(&mut command);
    }
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().context("forwarder stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().parse().context("forwarder address")?;
    Ok((child, addr))
}

async fn register(
    socket: &UdpSocket,
    to: SocketAddr,
    session: u32,
    role: u8,
) -> anyhow::Result<()> {
    let mut msg = REG.to_vec();
    msg.extend_from_slice(&session.to_be_bytes());
    msg.push(role);
    let mut buf = [0u8; 64];
    for _ in 0..50 {
        socket.send_to(&msg, to).await?;
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await
            && &buf[..n] == ACK
        {
            return Ok(());
        }
    }
    bail!("the UDP forwarder did not acknowledge session {session}")
}

/// One plain-RTP session through the forwarder; mirrors `lens::session`'s media.
pub async fn session(
    forwarder: SocketAddr,
    index: u32,
    audio: bool,
    media: Arc<Media>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let phone = UdpSocket::bind("127.0.0.1:0").await?;
    let tech = UdpSocket::bind("127.0.0.1:0").await?;
    register(&tech, forwarder, index, 1).await?;
    register(&phone, forwarder, index, 0).await?;
    let mut phone_sends = vec![PlainSender::new(Stream::Video, 0x1000_0000 | index)];
    let mut tech_sends = Vec::new();
    if audio {
        phone_sends.push(PlainSender::new(Stream::CustomerAudio, 0x2000_0000 | index));
        tech_sends.push(PlainSender::new(
            Stream::TechnicianAudio,
            0x3000_0000 | index,
        ));
    }
    let (first_tx, first_rx) = oneshot::channel();
    let ctx = |first| PeerContext::new(&media, &stats, &stop, first);
    let a = tokio::spawn(drive(phone, forwarder, phone_sends, ctx(None)));
    let b = tokio::spawn(drive(tech, forwarder, tech_sends, ctx(Some(first_tx))));
    stats.first_video(t0, first_rx).await?;
    let _ = tokio::join!(a, b);
    stats
        .sessions_live
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

struct PlainSender {
    ssrc: u32,
    seq: u16,
    pacer: Pacer,
}

impl PlainSender {
    fn new(stream: Stream, ssrc: u32) -> PlainSender {
        PlainSender {
            ssrc,
            seq: 0,
            pacer: Pacer::new(stream, 0),
        }
    }

    fn send(&mut self, socket: &UdpSocket, to: SocketAddr, media: &Media, stats: &Stats) {
        let pt = if self.pacer.stream == Stream::Video {
            96
        } else {
            111
        };
        let (rtp_time, due) = self.pacer.take_due(media, stats, Instant::now());
        for (payload, marker) in due {
            let mut packet = Vec::with_capacity(12 + payload.len());
            packet.push(0x80);
            packet.push(pt | if marker { 0x80 } else { 0 });
            packet.extend_from_slice(&self.seq.to_be_bytes());
            packet.extend_from_slice(&rtp_time.to_be_bytes());
            packet.extend_from_slice(&self.ssrc.to_be_bytes());
            packet.extend_from_slice(&payload);
            crate::peer::send_now(socket, &packet, to);
            self.seq = self.seq.wrapping_add(1);
        }
    }
}

async fn drive(
    socket: UdpSocket,
    to: SocketAddr,
    mut sends: Vec<PlainSender>,
    mut ctx: PeerContext,
) {
    let mut rx = Receiver::default();
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    for s in &mut sends {
        s.pacer.next = start;
    }
    loop {
        let wake = sends
            .iter()
            .map(|s| s.pacer.next)
            .min()
            .unwrap_or(start + Duration::from_secs(3600));
        tokio::select! {
            r = socket.recv(&mut buf) => {
                let Ok(n) = r else { continue };
                if n < 12 + crate::media::STAMP_LEN {
                    continue;
                }
                let rtp_time = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                rx.on_packet(&ctx.stats, &buf[12..n], rtp_time, &mut ctx.first_video);
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                for s in &mut sends {
                    if s.pacer.next <= now {
                        s.send(&socket, to, &ctx.media, &ctx.stats);
                    }
                }
            }
            _ = ctx.stop.changed() => break,
        }
    }
    rx.finish(&ctx.stats);
}
