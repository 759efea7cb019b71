//! Simulated WebRTC peers on str0m (sans-IO): the phone (VP8 sendonly, Opus sendrecv) and the
//! technician's console (video recvonly, Opus sendrecv). One tokio task per peer owns its `Rtc`
//! and its UDP socket on 127.0.0.1, replays the media loops and accounts what arrives.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

use crate::media::{Media, Pacer, Stream, VideoCodec};
use crate::stats::{Receiver, Stats};

/// A peer offering or accepting only `video` for the camera (and Opus), so the answer picks it.
fn rtc(video: VideoCodec) -> Rtc {
    Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_vp8(video == VideoCodec::Vp8)
        .enable_h264(video == VideoCodec::H264)
        .enable_opus(true, false)
        .build(Instant::now())
}

fn str0m_codec(video: VideoCodec) -> Codec {
    match video {
        VideoCodec::Vp8 => Codec::Vp8,
        VideoCodec::H264 => Codec::H264,
    }
}

/// Where the Lens and UDP-forwarder peers live.
pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn bind(rtc: &mut Rtc, ip: IpAddr) -> anyhow::Result<UdpSocket> {
    let socket = UdpSocket::bind((ip, 0)).await?;
    let addr = socket.local_addr()?;
    rtc.add_local_candidate(Candidate::host(addr, "udp")?);
    Ok(socket)
}

/// Sends one datagram at once, or drops it if the kernel's send buffer is full. Not tokio's
/// `try_send_to`: that refuses (`WouldBlock`, without trying) until its reactor has seen the
/// socket writable once, so the first datagrams of a new socket were lost — the console's first
/// ICE check, made as soon as it answers, in ~5 % of sessions at 100, which then waited for
/// the check's retransmission (250 ms) and showed as the set-up tail.
pub fn send_now(socket: &UdpSocket, data: &[u8], to: SocketAddr) {
    let _ = socket2::SockRef::from(socket).send_to(data, &to.into());
}

/// A phone whose offer is out, waiting for the server's answer.
pub struct PendingCustomer {
    rtc: Rtc,
    socket: UdpSocket,
    pending: SdpPendingOffer,
    video: Mid,
    audio: Option<Mid>,
    pub offer: String,
}

impl PendingCustomer {
    /// A phone with its socket and host candidate on `ip`.
    pub async fn new(
        audio: bool,
        video: VideoCodec,
        ip: IpAddr,
    ) -> anyhow::Result<PendingCustomer> {
        let mut rtc = rtc(video);
        let socket = bind(&mut rtc, ip).await?;
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let audio =
            audio.then(|| api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None));
        let (offer, pending) = api.apply().context("no SDP changes")?;
        Ok(PendingCustomer {
            offer: offer.to_sdp_string(),
            rtc,
            socket,
            pending,
            video,
            audio,
        })
    }

    pub fn start(
        mut self,
        answer: &str,
        ctx: PeerContext,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let answer = SdpAnswer::from_sdp_string(answer)?;
        self.rtc.sdp_api().accept_answer(self.pending, answer)?;
        let mut sends = vec![Sender::new(
            &self.rtc,
            self.video,
            str0m_codec(ctx.media.codec),
            Stream::Video,
        )?];
        if let Some(mid) = self.audio {
            sends.push(Sender::new(
                &self.rtc,
                mid,
                Codec::Opus,
                Stream::CustomerAudio,
            )?);
        }
        Ok(tokio::spawn(drive(
            self.rtc,
            self.socket,
            sends,
            false,
            ctx,
        )))
    }
}

/// The console's peer (socket and host candidate on `ip`): answers the server's offer and starts
/// at once.
pub async fn technician(
    offer: &str,
    ip: IpAddr,
    ctx: PeerContext,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let mut rtc = rtc(ctx.media.codec);
    let socket = bind(&mut rtc, ip).await?;
    let answer = rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(offer)?)?;
    Ok((
        answer.to_sdp_string(),
        tokio::spawn(drive(rtc, socket, Vec::new(), true, ctx)),
    ))
}

/// What every peer task shares with the run.
pub struct PeerContext {
    pub media: Arc<Media>,
    pub stats: Arc<Stats>,
    /// `true` stops the peer.
    pub stop: watch::Receiver<bool>,
    /// Told when the first video packet arrives (the technician's peer).
    pub first_video: Option<oneshot::Sender<Instant>>,
}

impl PeerContext {
    pub fn new(
        media: &Arc<Media>,
        stats: &Arc<Stats>,
        stop: &watch::Receiver<bool>,
        first_video: Option<oneshot::Sender<Instant>>,
    ) -> PeerContext {
        PeerContext {
            media: media.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            first_video,
        }
    }
}

/// One outgoing stream replaying its loop.
struct Sender {
    mid: Mid,
    pt: Pt,
    seq: u64,
    pacer: Pacer,
}

impl Sender {
    fn new(rtc: &Rtc, mid: Mid, codec: Codec, stream: Stream) -> anyhow::Result<Sender> {
        let media = rtc.media(mid).context("negotiated media")?;
        let pt = media
            .remote_pts()
            .iter()
            .copied()
            .find(|pt| {
                rtc.codec_config()
                    .find(|p| p.pt() == *pt)
                    .is_some_and(|p| p.spec().codec == codec)
            })
            .ok_or_else(|| anyhow!("{codec:?} was not negotiated"))?;
        Ok(Sender {
            mid,
            pt,
            seq: 1,
            pacer: Pacer::new(stream, rand_u32()),
        })
    }

    /// Writes what is due at `now` (one video frame or one audio packet).
    fn send(&mut self, rtc: &mut Rtc, media: &Media, stats: &Stats, now: Instant) {
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(self.mid, None) else {
            return;
        };
        let video = self.pacer.stream == Stream::Video;
        let (rtp_time, due) = self.pacer.take_due(media, stats, now);
        for (payload, marker) in due {
            tx.write_rtp(
                RtpWrite::new(self.pt, self.seq.into(), rtp_time, now, payload)
                    .marker(marker)
                    .nackable(video),
            );
            self.seq += 1;
        }
    }
}

pub fn rand_u32() -> u32 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    n.wrapping_mul(2_654_435_761)
}

/// The peer's loop: socket in, timers, media out, until stopped or the `Rtc` dies. A console
/// (`console_audio`) learns its audio mid from `MediaAdded`, which str0m emits once connected.
async fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    mut sends: Vec<Sender>,
    console_audio: bool,
    mut ctx: PeerContext,
) {
    let local: SocketAddr = match socket.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let mut rx = Receiver::default();
    let mut connected = false;
    let mut buf = vec![0u8; 2000];
    loop {
        // Drain str0m's output.
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    send_now(&socket, &t.contents, t.destination);
                }
                Ok(Output::Event(event)) => match event {
                    Event::Connected => {
                        connected = true;
                        let now = Instant::now();
                        for s in &mut sends {
                            s.pacer.next = now;
                        }
                    }
                    Event::MediaAdded(m)
                        if console_audio
                            && m.kind == MediaKind::Audio
                            && m.direction.is_sending() =>
                    {
                        match Sender::new(&rtc, m.mid, Codec::Opus, Stream::TechnicianAudio) {
                            Ok(s) => sends.push(s),
                            Err(e) => ctx.stats.error(format!("console audio: {e}")),
                        }
                    }
                    Event::RtpPacket(packet) => rx.on_packet(
                        &ctx.stats,
                        &packet.payload,
                        packet.header.timestamp,
                        &mut ctx.first_video,
                    ),
                    _ => {}
                },
                Err(e) => {
                    ctx.stats.error(format!("peer: {e}"));
                    rtc.disconnect();
                    rx.finish(&ctx.stats);
                    return;
                }
            }
        };
        if !rtc.is_alive() {
            break;
        }
        let mut wake = timeout;
        if connected {
            for s in &sends {
                wake = wake.min(s.pacer.next);
            }
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { continue };
                let Ok(contents) = buf[..n].try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents,
                });
                if let Err(e) = rtc.handle_input(input) {
                    ctx.stats.error(format!("peer input: {e}"));
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                    ctx.stats.error(format!("peer timeout: {e}"));
                }
                if connected {
                    for s in &mut sends {
                        if s.pacer.next <= now {
                            s.send(&mut rtc, &ctx.media, &ctx.stats, now);
                        }
                    }
                }
            }
            _ = ctx.stop.changed() => break,
        }
    }
    rtc.disconnect();
    rx.finish(&ctx.stats);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// On a current-thread runtime the reactor has not run between the bind and the send, which
    /// is the moment `try_send_to` refused: `send_now` must not.
    #[tokio::test(flavor = "current_thread")]
    async fn the_first_datagram_of_a_new_socket_is_sent() {
        let receiver = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        let to = receiver.local_addr().unwrap();
        let sender = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        send_now(&sender, b"first check", to);
        let mut buf = [0u8; 32];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), receiver.recv_from(&mut buf))
            .await
            .expect("the first datagram arrives")
            .unwrap();
        assert_eq!(&buf[..n], b"first check");
        assert_eq!(from, sender.local_addr().unwrap());
    }
}
