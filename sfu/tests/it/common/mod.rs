//! Test peers: a customer and a technician built on webrtc-rs (an implementation independent of
//! str0m) connected through an SFU on 127.0.0.1, sending tagged synthetic payloads.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio;
use rtc::shared::error::Error;
use sfu::{CustomerAnswer, PeerEvent, PeerRole, Sfu, SfuConfig, SfuHandle};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCSessionDescription, Registry, SettingEngineBuilder,
    configure_twcc_sender_only, register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::runtime::{Runtime, default_runtime};

pub const SESSION: i64 = 7;
pub const VIDEO_PT: u8 = 96;
pub const OPUS_PT: u8 = 111;
/// First payload byte says who sent what, so a receiver can tell streams apart.
pub const TAG_VIDEO: u8 = b'V';
pub const TAG_CUSTOMER_AUDIO: u8 = b'A';
pub const TAG_TECHNICIAN_AUDIO: u8 = b'T';
/// Read as VP8 (RFC 7741), [`TAG_VIDEO`] ('V', 0x56) is a descriptor with S = 1 and partition
/// id 6: never a key frame's start. The customer answers a keyframe request with one packet
/// whose payload is this prefix — S = 1, partition 0, then a payload header with P = 0 (a key
/// frame) — followed by the video packet it would have sent ([`keyframe_payload`]).
pub const KEYFRAME_PREFIX: [u8; 2] = [0x10, 0x10];

pub fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The synthetic payload of packet `n` of a stream: a tag, the counter, then filler that
/// depends on both, so any change on the way is seen.
pub fn payload(tag: u8, n: u16) -> Vec<u8> {
    let mut p = vec![tag, (n >> 8) as u8, n as u8];
    p.extend((0..(120 + n % 50)).map(|i| (i as u8).wrapping_mul(7).wrapping_add(n as u8)));
    p
}

/// The customer's answer to a keyframe request: packet `n` of its video, behind
/// [`KEYFRAME_PREFIX`].
pub fn keyframe_payload(n: u16) -> Vec<u8> {
    let mut p = KEYFRAME_PREFIX.to_vec();
    p.extend(payload(TAG_VIDEO, n));
    p
}

/// A payload as [`payload`] made it: a keyframe's [`KEYFRAME_PREFIX`] removed.
pub fn unkeyed(p: &[u8]) -> &[u8] {
    p.strip_prefix(&KEYFRAME_PREFIX[..]).unwrap_or(p)
}

/// Every inbound RTP packet as the peer's interceptors saw it: payload type, sequence number,
/// payload (RTX repair packets included, before anything reassembles them).
pub type Recorded = Arc<Mutex<Vec<(u8, u16, Vec<u8>)>>>;

/// Marks every inbound RTCP packet for the application and counts the keyframe requests and
/// TWCC feedback among them; optionally records inbound RTP.
#[derive(Default)]
pub struct DeliverRtcp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    record: Option<Recorded>,
    /// Transport-wide congestion control feedback (RTCP TWCC) packets received.
    twcc: Arc<AtomicU32>,
    /// Keyframe requests (PLI) received. Counted here, in every compound packet the peer
    /// decrypted, not on the video track: webrtc-rs hands a compound packet to the track of its
    /// *first* report's SSRC, so a PLI behind a report about another stream never reaches it.
    plis: Arc<AtomicU32>,
}

impl sansio::Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if let (Packet::Rtp(rtp), Some(record)) = (&msg.message.packet, &self.record) {
            record.lock().unwrap().push((
                rtp.header.payload_type,
                rtp.header.sequence_number,
                rtp.payload.to_vec(),
            ));
        }
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let twcc = packets
                .iter()
                .filter(|p| p.as_any().is::<TransportLayerCc>())
                .count();
            self.twcc.fetch_add(twcc as u32, Ordering::SeqCst);
            let plis = packets
                .iter()
                .filter(|p| p.as_any().is::<PictureLossIndication>())
                .count();
            self.plis.fetch_add(plis as u32, Ordering::SeqCst);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
    fn handle_timeout(&mut self, _now: std::time::Instant) -> Result<(), Error> {
        Ok(())
    }
    fn poll_timeout(&mut self) -> Option<std::time::Instant> {
        None
    }
}

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Reports gathering completion and hands every received RTP payload to a channel.
pub struct Handler {
    runtime: Arc<dyn Runtime>,
    gathered: mpsc::UnboundedSender<()>,
    received: mpsc::UnboundedSender<Vec<u8>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = self.received.clone();
        self.runtime.spawn(Box::pin(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let _ = received.send(packet.payload.to_vec());
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        }));
    }
}

pub struct TestPeer {
    pub pc: Arc<dyn PeerConnection>,
    pub gathered: mpsc::UnboundedReceiver<()>,
    pub received: mpsc::UnboundedReceiver<Vec<u8>>,
    /// TWCC feedback packets received (bandwidth feedback about what this peer sends).
    pub twcc: Arc<AtomicU32>,
    /// Keyframe requests (PLI) received, whatever stream they name.
    pub plis: Arc<AtomicU32>,
}

pub async fn peer(runtime: &Arc<dyn Runtime>, with_video: bool) -> TestPeer {
    peer_with(runtime, with_video, None, None, false).await
}

/// `rtx_pt`: also accept RTX (RFC 4588) for VP8 on that payload type; `record`: keep every
/// inbound RTP packet; `twcc_sender`: number outgoing packets transport-wide (as browsers do) so
/// the other end can send TWCC feedback.
pub async fn peer_with(
    runtime: &Arc<dyn Runtime>,
    with_video: bool,
    rtx_pt: Option<u8>,
    record: Option<Recorded>,
    twcc_sender: bool,
) -> TestPeer {
    let mut media_engine = MediaEngine::default();
    if let Some(pt) = rtx_pt {
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: "video/rtx".to_owned(),
                        clock_rate: 90_000,
                        channels: 0,
                        sdp_fmtp_line: format!("apt={VIDEO_PT}"),
                        rtcp_feedback: vec![],
                    },
                    payload_type: pt,
                },
                RtpCodecKind::Video,
            )
            .unwrap();
    }
    if with_video {
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: vp8(),
                    payload_type: VIDEO_PT,
                },
                RtpCodecKind::Video,
            )
            .unwrap();
    }
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .unwrap();
    let mut registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
    if twcc_sender {
        registry = configure_twcc_sender_only(registry, &mut media_engine).unwrap();
    }
    let (twcc, plis) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let registry = registry.with(
        Slot::from(14_000),
        DeliverRtcp {
            record,
            twcc: twcc.clone(),
            plis: plis.clone(),
            ..Default::default()
        },
    );
    let (gathered_tx, gathered) = mpsc::unbounded_channel();
    let (received_tx, received) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            runtime: runtime.clone(),
            gathered: gathered_tx,
            received: received_tx,
        }))
        .with_runtime(runtime.clone())
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        // An ICE restart moves the peer to a new UDP socket, as a phone changing network does.
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_discard_local_candidates_during_ice_restart(true)
                // Chromium's SRTP replay window (libwebrtc: 1024 packets, for late
                // retransmissions), not webrtc-rs' default 64: an SFU may forward a repair late.
                .with_srtp_replay_protection_window(1024)
                .build(),
        )
        .build()
        .await
        .unwrap();
    TestPeer {
        pc: Arc::new(pc),
        gathered,
        received,
        twcc,
        plis,
    }
}

pub fn local_track(
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

/// Sends packets of one stream every 20 ms until the task is dropped with the runtime.
pub fn send_stream(track: Arc<TrackLocalStaticRTP>, tag: u8, pt: u8, ssrc: u32, clock_step: u32) {
    send_stream_while(
        track,
        tag,
        pt,
        ssrc,
        clock_step,
        Arc::new(AtomicBool::new(true)),
        None,
    );
}

/// [`send_stream`], skipping packets while `sending` is false (a paused camera, a muted mic:
/// no RTP, while RTCP and ICE carry on). With `keyframe_requests` (a count of requests
/// received), the next packet after each new request is a keyframe ([`keyframe_payload`]), as
/// a phone's encoder answers a PLI with its next frame.
pub fn send_stream_while(
    track: Arc<TrackLocalStaticRTP>,
    tag: u8,
    pt: u8,
    ssrc: u32,
    clock_step: u32,
    sending: Arc<AtomicBool>,
    keyframe_requests: Option<Arc<AtomicU32>>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut answered = 0;
        for n in 0u16.. {
            tick.tick().await;
            if !sending.load(Ordering::Relaxed) {
                continue;
            }
            let asked = keyframe_requests
                .as_ref()
                .map_or(0, |r| r.load(Ordering::SeqCst));
            let body = if asked != answered {
                answered = asked;
                keyframe_payload(n)
            } else {
                payload(tag, n)
            };
            let packet = rtc::rtp::packet::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker: true,
                    payload_type: pt,
                    sequence_number: n.wrapping_add(1000),
                    timestamp: u32::from(n).wrapping_mul(clock_step),
                    ssrc,
                    ..Default::default()
                },
                payload: bytes::Bytes::from(body),
            };
            if track.write_rtp(packet).await.is_err() {
                break;
            }
        }
    });
}

pub struct Call {
    pub sfu: SfuHandle,
    pub session: i64,
    pub customer: TestPeer,
    pub technician: TestPeer,
    pub plis_at_customer: Arc<AtomicU32>,
    /// Clear it to stop the customer's RTP (video and audio) without closing anything.
    pub customer_sending: Arc<AtomicBool>,
}

impl Call {
    /// Both directions still flow after `what`: 50 more video and audio packets at the
    /// technician, 20 more audio packets at the customer.
    pub async fn still_forwarding(&mut self, what: &str) {
        let later = wait_for(
            &mut self.technician.received,
            [50, 50, 0],
            Duration::from_secs(10),
        )
        .await;
        assert!(
            later[0] >= 50 && later[1] >= 50,
            "forwarding stopped after {what}: {later:?}"
        );
        let back = wait_for(
            &mut self.customer.received,
            [0, 0, 20],
            Duration::from_secs(5),
        )
        .await;
        assert!(back[2] >= 20, "after {what} the customer got {back:?}");
    }

    /// The customer's peer connection restarts ICE from a new socket (a network change) and
    /// offers again: the SFU answers on the same `Rtc` (same DTLS certificate, so DTLS and SRTP
    /// carry on), reports the customer's media down and up again, and forwarding resumes both
    /// ways.
    pub async fn restart_customer_ice(&mut self) {
        let mut events = self.sfu.peer_events().unwrap();
        let pc = self.customer.pc.clone();
        let first_answer = pc.remote_description().await.unwrap().sdp;

        pc.restart_ice().await.unwrap();
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.customer.gathered.recv())
            .await
            .expect("gathering after the restart");
        let sdp = pc.local_description().await.unwrap().sdp;
        let answer = self.sfu.customer_offer(self.session, &sdp).unwrap();
        assert!(
            matches!(answer, CustomerAnswer::Pending(_)),
            "a re-offer goes to the live peer"
        );
        let answer = answer.sdp().await.unwrap();
        assert_eq!(fingerprint(&answer), fingerprint(&first_answer));
        let down = next_event(&mut events).await;
        assert_eq!(
            down,
            PeerEvent {
                session: self.session,
                role: PeerRole::Customer,
                up: false
            }
        );
        pc.set_remote_description(RTCSessionDescription::answer(answer).unwrap())
            .await
            .unwrap();
        let up = next_event(&mut events).await;
        assert_eq!(up, PeerEvent { up: true, ..down });
        // Drop what may have arrived over the old path.
        collect(&mut self.technician.received, Duration::from_millis(200)).await;
        self.still_forwarding("the ICE restart").await;
    }

    /// Closes both WebRTC peers (the SFU session is stopped by the test).
    pub async fn hang_up(self) {
        self.customer.pc.close().await.ok();
        self.technician.pc.close().await.ok();
    }
}

/// How the technician side of a [`call_with`] differs from the plain one.
#[derive(Default)]
pub struct TechnicianSide {
    /// The technician accepts RTX on this payload type.
    pub rtx_pt: Option<u8>,
    pub record: Option<Recorded>,
    /// Rewrites the server's offer (e.g. to put a proxy's port in its candidate).
    pub offer: Option<Box<dyn Fn(String) -> String + Send>>,
    /// Rewrites the technician's answer before the server sees it.
    pub answer: Option<Box<dyn Fn(String) -> String + Send>>,
    /// The answer reaches the server this long after the console made it (and started its
    /// connectivity checks): a slow signalling path.
    pub answer_after: Option<Duration>,
}

/// Starts an SFU and connects a customer (VP8 video sendonly + Opus sendrecv) and a technician
/// (the server's offer; Opus back), both sending from the start.
pub async fn call() -> Call {
    let (sfu, _task) = Sfu::start(SfuConfig::new("127.0.0.1:0".parse().unwrap(), None)).unwrap();
    call_with(sfu, TechnicianSide::default()).await
}

/// [`call`] on a given SFU, with a technician side set up as `side` says.
pub async fn call_with(sfu: SfuHandle, side: TechnicianSide) -> Call {
    call_in(sfu, SESSION, side).await
}

/// How the customer side of a [`call_via`] differs from the plain one.
#[derive(Default)]
pub struct CustomerSide {
    /// Rewrites the customer's offer before the server sees it.
    pub offer: Option<Box<dyn Fn(String) -> String + Send>>,
    /// Rewrites the server's answer before the customer sees it.
    pub answer: Option<Box<dyn Fn(String) -> String + Send>>,
}

/// [`call_with`] for a given session id.
pub async fn call_in(sfu: SfuHandle, session: i64, side: TechnicianSide) -> Call {
    call_via(sfu, session, side, CustomerSide::default()).await
}

/// [`call_in`] with the customer's SDP rewritten as `customer` says (e.g. to put it behind a
/// relay).
pub async fn call_via(
    sfu: SfuHandle,
    session: i64,
    side: TechnicianSide,
    customer_side: CustomerSide,
) -> Call {
    let runtime = default_runtime().unwrap();
    sfu.start(session, true).unwrap();

    // The customer offers.
    let mut customer = peer_with(&runtime, true, None, None, true).await;
    let video = local_track("camera", RtpCodecKind::Video, vp8(), 0x1111);
    let mic = local_track("mic", RtpCodecKind::Audio, opus(), 0x2222);
    customer
        .pc
        .add_transceiver_from_track(
            video.clone() as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await
        .unwrap();
    customer
        .pc
        .add_track(mic.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let offer = customer.pc.create_offer(None).await.unwrap();
    customer.pc.set_local_description(offer).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), customer.gathered.recv())
        .await
        .unwrap();
    let mut offer = customer.pc.local_description().await.unwrap().sdp;
    if let Some(rewrite) = &customer_side.offer {
        offer = rewrite(offer);
    }
    let mut answer = sfu
        .customer_offer(session, &offer)
        .unwrap()
        .sdp()
        .await
        .unwrap();
    if let Some(rewrite) = &customer_side.answer {
        answer = rewrite(answer);
    }
    customer
        .pc
        .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();

    let plis_at_customer = customer.plis.clone();
    let customer_sending = Arc::new(AtomicBool::new(true));
    let sending = customer_sending.clone();
    send_stream_while(
        video,
        TAG_VIDEO,
        VIDEO_PT,
        0x1111,
        3000,
        sending.clone(),
        Some(plis_at_customer.clone()),
    );
    send_stream_while(mic, TAG_CUSTOMER_AUDIO, OPUS_PT, 0x2222, 960, sending, None);

    let technician = technician(&runtime, &sfu, session, side).await;
    Call {
        sfu,
        session,
        customer,
        technician,
        plis_at_customer,
        customer_sending,
    }
}

/// A relay between the customer (which talks UDP to [`Relay::addr`]) and the server: over UDP
/// to the server's UDP port, or over one TCP connection to its ICE-TCP port with RFC 4571
/// framing (each datagram one frame). Setting `quiet` drops everything both ways without
/// closing anything (a path that went dead); `close` ends the TCP connection. Over UDP, setting
/// `drop_rtcp_down` drops every SRTCP datagram from the server to the customer (counted in
/// `rtcp_dropped`): SRTCP cannot be decrypted here, so a keyframe request is lost that way.
pub struct Relay {
    pub addr: SocketAddr,
    pub quiet: Arc<AtomicBool>,
    pub close: Arc<tokio::sync::Notify>,
    pub drop_rtcp_down: Arc<AtomicBool>,
    pub rtcp_dropped: Arc<AtomicU32>,
}

pub async fn relay(server: SocketAddr, tcp: bool) -> Relay {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listen = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = listen.local_addr().unwrap();
    let quiet = Arc::new(AtomicBool::new(false));
    let close = Arc::new(tokio::sync::Notify::new());
    let drop_rtcp_down = Arc::new(AtomicBool::new(false));
    let rtcp_dropped = Arc::new(AtomicU32::new(0));
    let (q, c) = (quiet.clone(), close.clone());
    let (drop_rtcp, dropped) = (drop_rtcp_down.clone(), rtcp_dropped.clone());
    tokio::spawn(async move {
        let mut customer: Option<SocketAddr> = None;
        let mut a = vec![0u8; 2048];
        if !tcp {
            let upstream = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut b = vec![0u8; 2048];
            loop {
                tokio::select! {
                    Ok((n, from)) = listen.recv_from(&mut a) => {
                        customer = Some(from);
                        if !q.load(Ordering::Relaxed) {
                            let _ = upstream.send_to(&a[..n], server).await;
                        }
                    }
                    Ok((n, _)) = upstream.recv_from(&mut b) => {
                        // RFC 7983 / 5761: RTP and RTCP start with 128..=191; RTCP's packet
                        // type (second byte) is 192..=223.
                        let rtcp = n >= 2 && b[0] >> 6 == 2 && (192..=223).contains(&b[1]);
                        if rtcp && drop_rtcp.load(Ordering::SeqCst) {
                            dropped.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        if let Some(to) = customer.filter(|_| !q.load(Ordering::Relaxed)) {
                            let _ = listen.send_to(&b[..n], to).await;
                        }
                    }
                }
            }
        }
        // TCP: connect on the customer's first datagram (its first connectivity check).
        let (n, from) = listen.recv_from(&mut a).await.unwrap();
        customer = Some(from);
        let stream = tokio::net::TcpStream::connect(server).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let mut frame = (n as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&a[..n]);
        wr.write_all(&frame).await.unwrap();
        let back = listen.clone();
        let q2 = q.clone();
        let reader = tokio::spawn(async move {
            let mut len = [0u8; 2];
            let mut buf = vec![0u8; 65536];
            loop {
                if rd.read_exact(&mut len).await.is_err() {
                    break;
                }
                let n = usize::from(u16::from_be_bytes(len));
                if rd.read_exact(&mut buf[..n]).await.is_err() {
                    break;
                }
                if let Some(to) = customer.filter(|_| !q2.load(Ordering::Relaxed)) {
                    let _ = back.send_to(&buf[..n], to).await;
                }
            }
        });
        loop {
            tokio::select! {
                Ok((n, _)) = listen.recv_from(&mut a) => {
                    if q.load(Ordering::Relaxed) {
                        continue;
                    }
                    let mut frame = (n as u16).to_be_bytes().to_vec();
                    frame.extend_from_slice(&a[..n]);
                    if wr.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                _ = c.notified() => break,
            }
        }
        reader.abort();
        drop(wr);
    });
    Relay {
        addr,
        quiet,
        close,
        drop_rtcp_down,
        rtcp_dropped,
    }
}

/// Rewrites for a customer behind `relay`: its offer loses its candidates (the server learns
/// the relay's address from its checks), and the server's answer names only the relay.
pub fn behind(relay: SocketAddr) -> CustomerSide {
    CustomerSide {
        offer: Some(Box::new(|sdp: String| {
            sdp.split_inclusive("\r\n")
                .filter(|l| !l.starts_with("a=candidate"))
                .collect()
        })),
        answer: Some(Box::new(move |sdp: String| {
            let mut out = String::new();
            let mut added = false;
            for line in sdp.split_inclusive("\r\n") {
                if line.starts_with("a=candidate") {
                    if !added {
                        out.push_str(&format!(
                            "a=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
                            relay.ip(),
                            relay.port()
                        ));
                        added = true;
                    }
                    continue;
                }
                out.push_str(line);
            }
            out
        })),
    }
}

/// The server offers a technician's console for `session`; the console answers and sends Opus.
/// A second one for the same session replaces the first (a transfer).
pub async fn technician(
    runtime: &Arc<dyn Runtime>,
    sfu: &SfuHandle,
    session: i64,
    side: TechnicianSide,
) -> TestPeer {
    let mut technician = peer_with(runtime, true, side.rtx_pt, side.record, false).await;
    let mut offer = sfu.technician_offer(session).unwrap();
    if let Some(rewrite) = &side.offer {
        offer = rewrite(offer);
    }
    technician
        .pc
        .set_remote_description(RTCSessionDescription::offer(offer).unwrap())
        .await
        .unwrap();
    let headset = local_track("headset", RtpCodecKind::Audio, opus(), 0x3333);
    technician
        .pc
        .add_track(headset.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let answer = technician.pc.create_answer(None).await.unwrap();
    technician.pc.set_local_description(answer).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), technician.gathered.recv())
        .await
        .unwrap();
    let mut answer = technician.pc.local_description().await.unwrap().sdp;
    if let Some(rewrite) = &side.answer {
        answer = rewrite(answer);
    }
    if let Some(delay) = side.answer_after {
        tokio::time::sleep(delay).await;
    }
    sfu.technician_answer(session, &answer).unwrap();
    send_stream(headset, TAG_TECHNICIAN_AUDIO, OPUS_PT, 0x3333, 960);
    technician
}

/// Collects what arrives for `window`, counted by tag (keyframes as video); payloads are
/// checked byte for byte.
pub async fn collect(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>, window: Duration) -> [u32; 3] {
    let mut counts = [0u32; 3];
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(p)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let p = unkeyed(&p);
        let n = u16::from_be_bytes([p[1], p[2]]);
        assert_eq!(p, payload(p[0], n), "payload changed on the way");
        match p[0] {
            TAG_VIDEO => counts[0] += 1,
            TAG_CUSTOMER_AUDIO => counts[1] += 1,
            TAG_TECHNICIAN_AUDIO => counts[2] += 1,
            other => panic!("unexpected payload tag {other}"),
        }
    }
    counts
}

/// Waits until `rx` has delivered at least `want` packets of each tag (0 = none needed).
pub async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    want: [u32; 3],
    limit: Duration,
) -> [u32; 3] {
    let mut got = [0u32; 3];
    let deadline = tokio::time::Instant::now() + limit;
    while got.iter().zip(want).any(|(g, w)| *g < w) && tokio::time::Instant::now() < deadline {
        let c = collect(rx, Duration::from_millis(100)).await;
        for i in 0..3 {
            got[i] += c[i];
        }
    }
    got
}

pub fn fingerprint(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=fingerprint:"))
        .expect("a=fingerprint")
}

pub async fn next_event(events: &mut mpsc::UnboundedReceiver<PeerEvent>) -> PeerEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no peer event within 10 s")
        .expect("events open")
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
pub struct Noise(pub u64);

impl Noise {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
