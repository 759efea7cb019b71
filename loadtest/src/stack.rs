//! The client stack, chosen by measurement (`loadtest client-stack`): the same sessions (the
//! phone's VP8 and Opus to the technician, the technician's Opus back) between two peers inside
//! this process, no server, once with str0m peers (what `loadtest` uses) and once with webrtc-rs
//! peers (the `webrtc` crate, as `tests/it/media.rs` uses it: default interceptors, one
//! `TrackLocalStaticRTP` per stream). What counts is this process' CPU per live session, since
//! every simulated session costs the generator one phone and one technician.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCSessionDescription, Registry, register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::runtime::{Runtime, default_runtime};

use crate::media::{Media, Pacer, Stream};
use crate::peer::{LOOPBACK, PeerContext, PendingCustomer, rand_u32, technician};
use crate::stats::{Receiver, Stats};
use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stack {
    /// str0m 0.25 (sans-IO; one task and one socket per peer).
    Str0m,
    /// webrtc-rs (the `webrtc` crate, 0.21).
    Webrtc,
}

/// One stack's figures over the measured window.
#[derive(Serialize)]
pub struct StackRun {
    pub stack: Stack,
    pub sessions: usize,
    pub live: u64,
    pub failed: u64,
    pub seconds: f64,
    /// This process' CPU (user + system) over the window, % of one core.
    pub cpu_pct: f64,
    /// The same per live session: what one simulated session costs the generator.
    pub cpu_pct_per_session: f64,
    /// Packets sent plus packets received per CPU-second (each packet is sent by one peer and
    /// received by the other, so both ends' work is in it).
    pub packets_per_cpu_second: f64,
    pub loss_pct: f64,
    pub rss_mb: f64,
}

fn packets(stats: &Stats) -> (u64, u64, u64) {
    [&stats.video, &stats.customer_audio, &stats.technician_audio]
        .iter()
        .fold((0, 0, 0), |(s, r, e), d| {
            (
                s + d.sent_packets.load(Relaxed),
                r + d.received_packets.load(Relaxed),
                e + d.expected.load(Relaxed),
            )
        })
}

/// Runs `sessions` peer-to-peer sessions on `stack`, measures `hold` once they are up, ends them.
pub async fn measure(
    stack: Stack,
    sessions: usize,
    hold: Duration,
    audio: bool,
    media: Arc<Media>,
) -> anyhow::Result<StackRun> {
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let runtime = default_runtime().context("no async runtime for webrtc-rs")?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let (stats, stop, media, runtime) = (
            stats.clone(),
            stop_rx.clone(),
            media.clone(),
            runtime.clone(),
        );
        tasks.spawn(async move {
            // 20 sessions a second, as the load test's default ramp is of that order.
            tokio::time::sleep(Duration::from_millis(50) * i as u32).await;
            let r = match stack {
                Stack::Str0m => str0m_session(audio, media, stats.clone(), stop).await,
                Stack::Webrtc => webrtc_session(runtime, audio, media, stats.clone(), stop).await,
            };
            if let Err(e) = r {
                stats.sessions_failed.fetch_add(1, Relaxed);
                stats.error(format!("{stack:?} session {i}: {e:#}"));
            }
        });
    }
    let deadline =
        Instant::now() + Duration::from_secs(30) + Duration::from_millis(50) * sessions as u32;
    while Instant::now() < deadline
        && (stats.sessions_live.load(Relaxed) + stats.sessions_failed.load(Relaxed))
            < sessions as u64
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let set-up traffic (DTLS, first key frames, RTCP) settle before the window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0, (s0, r0, e0)) = (sys::sample(None), Instant::now(), packets(&stats));
    tokio::time::sleep(hold).await;
    let (cpu1, seconds, (s1, r1, e1)) = (
        sys::sample(None),
        t0.elapsed().as_secs_f64(),
        packets(&stats),
    );
    let live = stats.sessions_live.load(Relaxed);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => b.cpu_seconds - a.cpu_seconds,
        _ => return Err(anyhow!("no CPU figures from /proc/self")),
    };
    let errors = stats
        .errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for e in errors.iter().take(3) {
        eprintln!("  {e}");
    }
    let (sent, received, expected) = (s1 - s0, r1 - r0, e1 - e0);
    Ok(StackRun {
        stack,
        sessions,
        live,
        failed: stats.sessions_failed.load(Relaxed),
        seconds,
        cpu_pct: 100.0 * cpu / seconds,
        cpu_pct_per_session: 100.0 * cpu / seconds / live.max(1) as f64,
        packets_per_cpu_second: (sent + received) as f64 / cpu.max(1e-3),
        loss_pct: if expected == 0 {
            0.0
        } else {
            100.0 * expected.saturating_sub(received) as f64 / expected as f64
        },
        rss_mb: cpu1.map_or(0.0, |s| s.rss_bytes as f64 / 1e6),
    })
}

/// A phone and a technician on str0m, offer and answer handed over directly.
async fn str0m_session(
    audio: bool,
    media: Arc<Media>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let ctx = |first| PeerContext::new(&media, &stats, &stop, first);
    let phone = PendingCustomer::new(audio, media.codec, LOOPBACK).await?;
    let (first_tx, first_rx) = oneshot::channel();
    let (answer, tech_task) = technician(&phone.offer, LOOPBACK, ctx(Some(first_tx))).await?;
    let phone_task = phone.start(&answer, ctx(None))?;
    stats.first_video(t0, first_rx).await?;
    let _ = tokio::join!(phone_task, tech_task);
    stats.sessions_live.fetch_sub(1, Relaxed);
    Ok(())
}

const VIDEO_PT: u8 = 96;
const OPUS_PT: u8 = 111;

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Reports gathering completion; every remote track's packets go into the run's stats.
struct Handler {
    runtime: Arc<dyn Runtime>,
    gathered: mpsc::UnboundedSender<()>,
    stats: Arc<Stats>,
    /// Told at the first video packet (the technician's peer).
    first_video: Arc<Mutex<Option<oneshot::Sender<Instant>>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let stats = self.stats.clone();
        let first_video = self.first_video.clone();
        self.runtime.spawn(Box::pin(async move {
            let mut rx = Receiver::default();
            let mut told = false;
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let s = rx.on_payload(&stats, &packet.payload, packet.header.timestamp);
                        if s == Some(Stream::Video) && !told {
                            told = true;
                            let tx = first_video.lock().unwrap_or_else(|p| p.into_inner()).take();
                            if let Some(tx) = tx {
                                let _ = tx.send(Instant::now());
                            }
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
            rx.finish(&stats);
        }));
    }
}

struct WebrtcPeer {
    pc: Arc<dyn PeerConnection>,
    gathered: mpsc::UnboundedReceiver<()>,
}

impl WebrtcPeer {
    /// Adds a sendrecv Opus track `id` sending with `ssrc`.
    async fn add_opus_track(
        &self,
        id: &str,
        ssrc: u32,
    ) -> anyhow::Result<Arc<TrackLocalStaticRTP>> {
        let track = local_track(id, RtpCodecKind::Audio, opus(), ssrc);
        self.pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await?;
        Ok(track)
    }

    async fn new(
        runtime: &Arc<dyn Runtime>,
        stats: &Arc<Stats>,
        first_video: Option<oneshot::Sender<Instant>>,
    ) -> anyhow::Result<WebrtcPeer> {
        let mut engine = MediaEngine::default();
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8(),
                payload_type: VIDEO_PT,
            },
            RtpCodecKind::Video,
        )?;
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )?;
        // NACK, RTCP reports and TWCC, as a browser-like client runs them.
        let registry = register_default_interceptors(Registry::new(), &mut engine)?;
        let (gathered_tx, gathered) = mpsc::unbounded_channel();
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                runtime: runtime.clone(),
                gathered: gathered_tx,
                stats: stats.clone(),
                first_video: Arc::new(Mutex::new(first_video)),
            }))
            .with_runtime(runtime.clone())
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?;
        Ok(WebrtcPeer {
            pc: Arc::new(pc),
            gathered,
        })
    }

    /// The local description once every candidate is in it.
    async fn gathered_sdp(&mut self) -> anyhow::Result<String> {
        tokio::time::timeout(Duration::from_secs(10), self.gathered.recv())
            .await
            .context("ICE gathering did not complete")?;
        Ok(self
            .pc
            .local_description()
            .await
            .context("no local description")?
            .sdp)
    }
}

/// A track sending with SSRC `ssrc` (the packets written to it must carry it).
fn local_track(
    id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    ssrc: u32,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("{id}-stream"),
        id.to_owned(),
        format!("{id}-label"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

/// Replays `stream`'s loop into `track` (SSRC `ssrc`) until stopped.
async fn send_loop(
    (track, stream, ssrc): (Arc<TrackLocalStaticRTP>, Stream, u32),
    media: Arc<Media>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let pt = if stream == Stream::Video {
        VIDEO_PT
    } else {
        OPUS_PT
    };
    let mut pacer = Pacer::new(stream, rand_u32());
    let mut seq = rand_u32() as u16;
    pacer.next = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(pacer.next.into()) => {}
            _ = stop.changed() => return,
        }
        let (rtp_time, due) = pacer.take_due(&media, &stats, Instant::now());
        for (payload, marker) in due {
            let packet = rtc::rtp::packet::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: rtp_time,
                    ssrc,
                    ..Default::default()
                },
                payload: bytes::Bytes::from(payload),
            };
            // Fails until the track is bound (the PeerConnection connected): keep pacing.
            let _ = track.write_rtp(packet).await;
            seq = seq.wrapping_add(1);
        }
    }
}

/// A phone and a technician on webrtc-rs: the phone offers VP8 sendonly (and Opus sendrecv), the
/// technician answers with its Opus track; both use complete (non-trickled) descriptions.
async fn webrtc_session(
    runtime: Arc<dyn Runtime>,
    audio: bool,
    media: Arc<Media>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut phone = WebrtcPeer::new(&runtime, &stats, None).await?;
    let ssrc = rand_u32();
    let camera = local_track("camera", RtpCodecKind::Video, vp8(), ssrc);
    phone
        .pc
        .add_transceiver_from_track(
            camera.clone() as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await?;
    let mut sends = vec![(camera, Stream::Video, ssrc)];
    if audio {
        let ssrc = ssrc.wrapping_add(1);
        let mic = phone.add_opus_track("mic", ssrc).await?;
        sends.push((mic, Stream::CustomerAudio, ssrc));
    }
    let offer = phone.pc.create_offer(None).await?;
    phone.pc.set_local_description(offer).await?;
    let offer = phone.gathered_sdp().await?;

    let (first_tx, first_rx) = oneshot::channel();
    let mut tech = WebrtcPeer::new(&runtime, &stats, Some(first_tx)).await?;
    tech.pc
        .set_remote_description(RTCSessionDescription::offer(offer)?)
        .await?;
    if audio {
        let ssrc = ssrc.wrapping_add(2);
        let headset = tech.add_opus_track("headset", ssrc).await?;
        sends.push((headset, Stream::TechnicianAudio, ssrc));
    }
    let answer = tech.pc.create_answer(None).await?;
    tech.pc.set_local_description(answer).await?;
    let answer = tech.gathered_sdp().await?;
    phone
        .pc
        .set_remote_description(RTCSessionDescription::answer(answer)?)
        .await?;
    let senders: Vec<_> = sends
        .into_iter()
        .map(|send| tokio::spawn(send_loop(send, media.clone(), stats.clone(), stop.clone())))
        .collect();
    let setup = stats.first_video(t0, first_rx).await;
    if setup.is_ok() {
        let mut stop = stop.clone();
        let _ = stop.wait_for(|s| *s).await;
        stats.sessions_live.fetch_sub(1, Relaxed);
    }
    for s in senders {
        s.abort();
    }
    let _ = phone.pc.close().await;
    let _ = tech.pc.close().await;
    setup
}

/// The comparison table on stdout.
pub fn print(runs: &[StackRun]) {
    println!();
    println!(
        "| client stack | sessions live / failed | generator CPU (% of one core) | per session | packets sent+received per CPU-second | loss | RSS (MB) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in runs {
        println!(
            "| {:?} | {} / {} | {:.1} | {:.2} | {:.0} | {:.3} % | {:.0} |",
            r.stack,
            r.live,
            r.failed,
            r.cpu_pct,
            r.cpu_pct_per_session,
            r.packets_per_cpu_second,
            r.loss_pct,
            r.rss_mb
        );
    }
    if let [a, b] = runs
        && a.cpu_pct_per_session > 0.0
    {
        println!(
            "\n{:?} costs {:.2}× the CPU per session of {:?}",
            b.stack,
            b.cpu_pct_per_session / a.cpu_pct_per_session,
            a.stack
        );
    }
}
