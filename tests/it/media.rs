//! Media end to end: the real server (HTTP API, `/ws/customer`, `/ws/console`, the SFU on its UDP
//! port on 127.0.0.1) with a customer and technicians that are real WebRTC peers built on
//! webrtc-rs, an implementation independent of ours (str0m). Everything goes through the protocol
//! of signaling/PROTOCOL.md §3-§5: the phone offers after `Active` and gets the answer in the `ok`,
//! the server offers the console, the console answers.
//!
//! Timing: arrival waits are generous (seconds); the only time bound asserted is the issue's
//! "muting stops the muted side's audio within 100 ms".

use crate::common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio;
use rtc::shared::error::Error;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::runtime::{Runtime, default_runtime};

const VIDEO_PT: u8 = 96;
const OPUS_PT: u8 = 111;
/// The video-orientation RTP header extension (CVO).
const CVO_URI: &str = "urn:3gpp:video-orientation";
/// The first payload byte says who sent what, so a receiver can tell streams apart.
const TAG_VIDEO: u8 = b'V';
const TAG_CUSTOMER_AUDIO: u8 = b'A';
/// Each technician's microphone has its own tag: the customer can tell whose voice arrives.
const TAG_TECH1_AUDIO: u8 = b'T';
const TAG_TECH2_AUDIO: u8 = b'U';
/// What the technician may receive, and what the customer may receive.
const AT_TECHNICIAN: &[u8] = &[TAG_VIDEO, TAG_CUSTOMER_AUDIO];
const AT_CUSTOMER: &[u8] = &[TAG_TECH1_AUDIO, TAG_TECH2_AUDIO];

/// How long media may take to arrive (ICE, DTLS, first packets): generous, not a performance bound.
const ARRIVAL: Duration = Duration::from_secs(15);
/// The issue's bound: muting stops the muted side's audio within 100 ms.
const MUTE_BOUND: Duration = Duration::from_millis(100);
/// How long a stopped stream is watched.
const SILENCE: Duration = Duration::from_millis(1000);

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// What a phone's browser offers for H.264: constrained baseline, packetization mode 1.
fn h264() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The phone's video codec as webrtc-rs describes it.
fn video_codec(codec: recording::Codec) -> RTCRtpCodec {
    match codec {
        recording::Codec::H264 => h264(),
        _ => vp8(),
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

/// The synthetic payload of packet `n` of a stream: a tag, the counter, then filler that depends on
/// both, so any change on the way is seen.
fn payload(tag: u8, n: u16) -> Vec<u8> {
    let mut p = vec![tag, (n >> 8) as u8, n as u8];
    p.extend((0..(120 + n % 50)).map(|i| (i as u8).wrapping_mul(7).wrapping_add(n as u8)));
    p
}

/// Marks every inbound RTCP packet for the application, and counts the keyframe requests (PLI)
/// among them.
#[derive(Default)]
struct DeliverRtcp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    /// Counted here, in every compound packet the peer decrypted, not on the video track:
    /// webrtc-rs hands a compound packet to the track of its *first* report's SSRC, so a PLI
    /// behind a sender or receiver report about another stream never reaches the video track.
    plis: Arc<AtomicU32>,
}

impl sansio::Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
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
    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Error> {
        Ok(())
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// A received RTP payload and when the application got it.
type Arrival = (Instant, Vec<u8>);

/// Reports gathering completion and hands every received RTP payload, time-stamped, to a channel.
struct Handler {
    runtime: Arc<dyn Runtime>,
    gathered: mpsc::UnboundedSender<()>,
    received: mpsc::UnboundedSender<Arrival>,
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
                        let _ = received.send((Instant::now(), packet.payload.to_vec()));
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        }));
    }
}

/// What one peer received, checked as it is read: known tags only, payloads byte for byte.
struct Inbox {
    who: &'static str,
    allowed: &'static [u8],
    rx: mpsc::UnboundedReceiver<Arrival>,
}

fn count(packets: &[Arrival], tag: u8) -> usize {
    packets.iter().filter(|(_, p)| p[0] == tag).count()
}

impl Inbox {
    fn check(&self, p: &[u8]) {
        assert!(
            self.allowed.contains(&p[0]),
            "{}: unexpected stream {:?}",
            self.who,
            p[0] as char
        );
        let n = u16::from_be_bytes([p[1], p[2]]);
        assert_eq!(
            p,
            payload(p[0], n),
            "{}: payload changed on the way",
            self.who
        );
    }

    /// Everything that arrives until `deadline`.
    async fn collect_until(&mut self, deadline: Instant) -> Vec<Arrival> {
        let mut got = Vec::new();
        while let Ok(Some(a)) = tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
            self.check(&a.1);
            got.push(a);
        }
        got
    }

    /// Everything that arrives within `window`.
    async fn collect(&mut self, window: Duration) -> Vec<Arrival> {
        self.collect_until(Instant::now() + window).await
    }

    /// Reads until `want` packets of `tag` arrived; fails after `ARRIVAL`.
    async fn wait_for(&mut self, tag: u8, want: usize, what: &str) -> Vec<Arrival> {
        let deadline = Instant::now() + ARRIVAL;
        let mut got = Vec::new();
        while count(&got, tag) < want {
            match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                Ok(Some(a)) => {
                    self.check(&a.1);
                    got.push(a);
                }
                _ => panic!(
                    "{}: {what}: {} of {want} {:?} packets within {ARRIVAL:?}",
                    self.who,
                    count(&got, tag),
                    tag as char
                ),
            }
        }
        got
    }

    /// A stream stopped: after `since + MUTE_BOUND` (packets already on their way may land until
    /// then) nothing of `tag` arrives for `SILENCE`. Returns what arrived after the bound.
    async fn assert_stopped(&mut self, tag: u8, since: Instant, what: &str) -> Vec<Arrival> {
        let bound = since + MUTE_BOUND;
        let got = self.collect_until(bound + SILENCE).await;
        let late: Vec<Duration> = got
            .iter()
            .filter(|(at, p)| p[0] == tag && *at >= bound)
            .map(|(at, _)| *at - since)
            .collect();
        assert!(
            late.is_empty(),
            "{}: {what}: {:?} packets still arrived after {MUTE_BOUND:?}, at {late:?}",
            self.who,
            tag as char
        );
        got.into_iter().filter(|(at, _)| *at >= bound).collect()
    }
}

struct TestPeer {
    pc: Arc<dyn PeerConnection>,
    gathered: mpsc::UnboundedReceiver<()>,
    inbox: Inbox,
    /// Keyframe requests (PLI) received, whatever stream they name.
    plis: Arc<AtomicU32>,
}

async fn peer(runtime: &Arc<dyn Runtime>, who: &'static str, allowed: &'static [u8]) -> TestPeer {
    peer_with(runtime, who, allowed, vp8()).await
}

/// A peer whose only video codec is `video`.
async fn peer_with(
    runtime: &Arc<dyn Runtime>,
    who: &'static str,
    allowed: &'static [u8],
    video: RTCRtpCodec,
) -> TestPeer {
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: video,
                payload_type: VIDEO_PT,
            },
            RtpCodecKind::Video,
        )
        .unwrap();
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .unwrap();
    // Offered as phones' browsers do; a test that turns the phone sends it (`send_clip_turned`).
    media_engine
        .register_header_extension(
            rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability {
                uri: CVO_URI.to_owned(),
            },
            RtpCodecKind::Video,
            None,
        )
        .unwrap();
    let plis = Arc::new(AtomicU32::new(0));
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)
        .unwrap()
        .with(
            Slot::from(14_000),
            DeliverRtcp {
                plis: plis.clone(),
                ..Default::default()
            },
        );
    let (gathered_tx, gathered) = mpsc::unbounded_channel();
    let (received_tx, rx) = mpsc::unbounded_channel();
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
        // An ICE restart moves the peer to a new UDP socket (a new port), as a phone that
        // changed network does.
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_discard_local_candidates_during_ice_restart(true)
                .build(),
        )
        .build()
        .await
        .unwrap();
    TestPeer {
        pc: Arc::new(pc),
        gathered,
        inbox: Inbox { who, allowed, rx },
        plis,
    }
}

impl TestPeer {
    /// The local description once every candidate is in it (no trickling needed).
    async fn gathered_sdp(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), self.gathered.recv())
            .await
            .expect("ICE gathering did not complete");
        self.pc.local_description().await.unwrap().sdp
    }
}

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

/// Sends packets of one stream every 20 ms until the test's runtime goes.
fn send_stream(track: Arc<TrackLocalStaticRTP>, tag: u8, pt: u8, ssrc: u32, clock_step: u32) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for n in 0u16.. {
            tick.tick().await;
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
                payload: bytes::Bytes::from(payload(tag, n)),
            };
            if track.write_rtp(packet).await.is_err() {
                break;
            }
        }
    });
}

/// The phone: VP8 video sendonly and Opus sendrecv, offered over `/ws/customer` once `Active`.
struct Phone {
    peer: TestPeer,
    plis: Arc<AtomicU32>,
}

/// The phone's peer connected to the server (offer in, answer back), its tracks not sending yet.
async fn phone_peer(
    runtime: &Arc<dyn Runtime>,
    cus: &mut Ws,
    codec: recording::Codec,
) -> (TestPeer, Arc<TrackLocalStaticRTP>, Arc<TrackLocalStaticRTP>) {
    let (peer, video, mic, _) = phone_peer_relayed(runtime, cus, codec, false).await;
    (peer, video, mic)
}

/// A UDP relay between the phone and `server` that can go quiet: everything dropped both ways,
/// nothing closed (a path that went dead).
async fn quiet_relay(server: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicBool>) {
    let listen = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = listen.local_addr().unwrap();
    let quiet = Arc::new(AtomicBool::new(false));
    let q = quiet.clone();
    tokio::spawn(async move {
        let mut phone = None;
        let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
        loop {
            tokio::select! {
                Ok((n, from)) = listen.recv_from(&mut a) => {
                    phone = Some(from);
                    if !q.load(Ordering::Relaxed) {
                        let _ = upstream.send_to(&a[..n], server).await;
                    }
                }
                Ok((n, _)) = upstream.recv_from(&mut b) => {
                    if let Some(to) = phone.filter(|_| !q.load(Ordering::Relaxed)) {
                        let _ = listen.send_to(&b[..n], to).await;
                    }
                }
            }
        }
    });
    (addr, quiet)
}

/// [`phone_peer`]; with `relay`, all its traffic crosses a [`quiet_relay`] (its offer loses its
/// candidates, the server's answer names only the relay), whose switch is returned.
async fn phone_peer_relayed(
    runtime: &Arc<dyn Runtime>,
    cus: &mut Ws,
    codec: recording::Codec,
    relay: bool,
) -> (
    TestPeer,
    Arc<TrackLocalStaticRTP>,
    Arc<TrackLocalStaticRTP>,
    Option<Arc<AtomicBool>>,
) {
    let mut peer = peer_with(runtime, "customer", AT_CUSTOMER, video_codec(codec)).await;
    let video = local_track("camera", RtpCodecKind::Video, video_codec(codec), 0x1111);
    let mic = local_track("mic", RtpCodecKind::Audio, opus(), 0x2222);
    peer.pc
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
    peer.pc
        .add_track(mic.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let offer = peer.pc.create_offer(None).await.unwrap();
    peer.pc.set_local_description(offer).await.unwrap();
    let mut sdp = peer.gathered_sdp().await;
    let candidate = |l: &&str| l.starts_with("a=candidate");
    if relay {
        sdp = sdp
            .split_inclusive("\r\n")
            .filter(|l| !candidate(l))
            .collect();
    }
    let ok = cus.request(json!({"type": "offer", "sdp": sdp})).await;
    assert_eq!(ok["type"], "ok", "the phone's offer was refused: {ok}");
    let mut answer = ok["sdp"].as_str().expect("the answer in the ok").to_owned();
    let mut quiet = None;
    if relay {
        // The server's UDP host candidate: `candidate:F 1 udp PRIO IP PORT typ host ...`.
        let server = answer
            .split("\r\n")
            .filter(candidate)
            .find(|l| l.split(' ').nth(2) == Some("udp"))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                format!("{}:{}", f[4], f[5]).parse().unwrap()
            })
            .expect("a UDP candidate in the answer");
        let (addr, switch) = quiet_relay(server).await;
        quiet = Some(switch);
        let mut added = false;
        answer = answer
            .split_inclusive("\r\n")
            .filter_map(|l| {
                if !candidate(&l) {
                    return Some(l.to_owned());
                }
                (!std::mem::replace(&mut added, true)).then(|| {
                    format!(
                        "a=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
                        addr.ip(),
                        addr.port()
                    )
                })
            })
            .collect();
    }
    peer.pc
        .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();
    (peer, video, mic, quiet)
}

async fn phone_media(runtime: &Arc<dyn Runtime>, cus: &mut Ws) -> Phone {
    let (peer, video, mic) = phone_peer(runtime, cus, recording::Codec::Vp8).await;
    let plis = peer.plis.clone();
    send_stream(video, TAG_VIDEO, VIDEO_PT, 0x1111, 3000);
    send_stream(mic, TAG_CUSTOMER_AUDIO, OPUS_PT, 0x2222, 960);
    Phone { peer, plis }
}

/// The phone acts on `reoffer` as the customer page does (PROTOCOL.md §3.4): it keeps its socket,
/// closes its peer connection and offers from a new one. Returns the new phone and the reason.
async fn reoffered(
    runtime: &Arc<dyn Runtime>,
    cus: &mut Ws,
    old: Phone,
    within: Duration,
) -> (Phone, String) {
    let r = cus
        .until_within("reoffer", within, |v| v["type"] == "reoffer")
        .await;
    old.peer.pc.close().await.ok();
    let reason = r["reason"].as_str().unwrap_or_default().to_string();
    (phone_media(runtime, cus).await, reason)
}

/// A console's media: waits for the server's `offer` for `session`, answers it (video recvonly,
/// Opus sendrecv) and sends its microphone tagged `tag`.
async fn console_media(
    runtime: &Arc<dyn Runtime>,
    con: &mut Ws,
    session: i64,
    tag: u8,
    ssrc: u32,
) -> TestPeer {
    let offer = con.frame("offer", Some(session)).await;
    let sdp = offer["sdp"].as_str().expect("sdp in the offer").to_owned();
    let mut peer = peer(runtime, "technician", AT_TECHNICIAN).await;
    peer.pc
        .set_remote_description(RTCSessionDescription::offer(sdp).unwrap())
        .await
        .unwrap();
    let headset = local_track("headset", RtpCodecKind::Audio, opus(), ssrc);
    peer.pc
        .add_track(headset.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let answer = peer.pc.create_answer(None).await.unwrap();
    peer.pc.set_local_description(answer).await.unwrap();
    let sdp = peer.gathered_sdp().await;
    // `answer` carries no id and gets no reply; a refusal is an `error` without id.
    con.send_raw(&json!({"type": "answer", "session_id": session, "sdp": sdp}).to_string())
        .await;
    send_stream(headset, tag, OPUS_PT, ssrc, 960);
    peer
}

/// A session set up through the API and the protocol, with media both ways.
struct Call {
    s: TestServer,
    runtime: Arc<dyn Runtime>,
    group: i64,
    token: String,
    id: i64,
    con: Ws,
    cus: Ws,
    phone: Phone,
    tech: TestPeer,
}

async fn create_pin(s: &TestServer, token: &str) -> (i64, String) {
    let created = s
        .post("/api/v1/sessions", token, json!({"method": "pin"}))
        .await
        .expect(201);
    (
        created["id"].as_i64().unwrap(),
        created["pin"].as_str().unwrap().to_owned(),
    )
}

/// A PIN session the technician (`token`) picked up: the console, the customer and the id.
async fn picked_up(s: &TestServer, token: &str) -> (Ws, Ws, i64) {
    let (mut con, _) = console(s, token).await;
    let (id, pin) = create_pin(s, token).await;
    let (mut cus, joined) = customer(s, &pin).await;
    assert_eq!(joined["type"], "ok", "{joined}");
    assert_eq!(joined["audio"], true, "{joined}");
    ready_and_picked_up(&mut con, &mut cus, id).await;
    (con, cus, id)
}

/// The joined customer says it is ready; the technician picks the session up.
async fn ready_and_picked_up(con: &mut Ws, cus: &mut Ws, id: i64) {
    assert_eq!(cus.request(json!({"type": "ready"})).await["type"], "ok");
    con.session_status(id, "Waiting").await;
    let r = con
        .request(json!({"type": "pickup", "session_id": id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.status("Active").await;
}

async fn call(email: &str) -> Call {
    let runtime = default_runtime().unwrap();
    let s = start().await;
    let (group, _, token) = technician_with(&s, email, |_| {}).await;
    let (mut con, mut cus, id) = picked_up(&s, &token).await;
    let phone = phone_media(&runtime, &mut cus).await;
    let tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x3333).await;
    Call {
        s,
        runtime,
        group,
        token,
        id,
        con,
        cus,
        phone,
        tech,
    }
}

impl Call {
    /// Video and audio reach the technician, the technician's audio reaches the phone.
    async fn flowing(&mut self, what: &str) {
        self.tech.inbox.wait_for(TAG_VIDEO, 10, what).await;
        self.tech.inbox.wait_for(TAG_CUSTOMER_AUDIO, 10, what).await;
        self.phone
            .peer
            .inbox
            .wait_for(TAG_TECH1_AUDIO, 10, what)
            .await;
    }

    /// The console sends a request about this session; returns the `ok` and when it came.
    async fn console_ok(&mut self, mut frame: Value) -> Instant {
        frame["session_id"] = json!(self.id);
        let r = self.con.request(frame.clone()).await;
        let at = Instant::now();
        assert_eq!(r["type"], "ok", "{frame} -> {r}");
        at
    }

    async fn close(self) {
        self.phone.peer.pc.close().await.ok();
        self.tech.pc.close().await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_reaches_the_technician_unchanged_and_opus_flows_both_ways() {
    let mut call = call("media@example.com").await;
    // `Inbox` checks every payload byte for byte and that nobody gets its own media back.
    let at_tech = call
        .tech
        .inbox
        .wait_for(TAG_VIDEO, 50, "customer video")
        .await;
    let audio_so_far = count(&at_tech, TAG_CUSTOMER_AUDIO);
    call.tech
        .inbox
        .wait_for(
            TAG_CUSTOMER_AUDIO,
            50usize.saturating_sub(audio_so_far),
            "customer audio",
        )
        .await;
    call.phone
        .peer
        .inbox
        .wait_for(TAG_TECH1_AUDIO, 50, "technician audio")
        .await;
    // The request is RTCP on its own schedule: wait for it rather than expect it by now.
    let deadline = Instant::now() + ARRIVAL;
    while call.phone.plis.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        call.phone.plis.load(Ordering::SeqCst) >= 1,
        "the phone was not asked for a keyframe when the console connected"
    );

    // The media path on /metrics.
    let metrics = call.s.metrics().await;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
    };
    assert_eq!(value("lens_media_rooms"), 1.0);
    assert_eq!(value("lens_media_peers_connected"), 2.0);
    assert!(value("lens_media_rtp_forwarded_packets_total") >= 150.0);
    assert!(value("lens_media_rtp_forwarded_bytes_total") > 0.0);
    assert!(value(r#"lens_media_keyframe_requests_total{origin="server"}"#) >= 1.0);
    value(r#"lens_media_keyframe_requests_total{origin="repeat"}"#);
    assert_eq!(
        value("lens_media_forward_latency_seconds_count"),
        value("lens_media_rtp_forwarded_packets_total")
    );
    value("lens_media_nacks_received_total");
    value("lens_media_rtp_retransmitted_packets_total");
    value("lens_media_garbage_datagrams_total");
    value("lens_media_ice_early_checks_total");
    value("lens_media_send_failures_total");
    value("lens_media_shard_queue_drops_total");
    // The kernel batching counters are there (how much of the traffic they cover depends on
    // how packets fall into batches).
    value(r#"lens_media_udp_batched_datagrams_total{way="gso_sent"}"#);
    value(r#"lens_media_udp_batched_datagrams_total{way="gro_received"}"#);
    // media.shards = 0: one engine shard per available core.
    assert_eq!(value("lens_media_shards"), sfu::default_shards() as f64);
    // Each shard's measured load, a share of one core (the call has been up for seconds, so
    // every shard has published a sample).
    for shard in 0..sfu::default_shards() {
        let cpu = value(&format!(r#"lens_media_shard_cpu_ratio{{shard="{shard}"}}"#));
        assert!((0.0..=1.0).contains(&cpu), "shard {shard}: {cpu}");
        let wait = value(&format!(
            r#"lens_media_shard_wait_ratio{{shard="{shard}"}}"#
        ));
        assert!(wait >= 0.0, "shard {shard}: {wait}");
    }
    // The media socket got the default 8 MiB buffers or the kernel's cap (Linux doubles both).
    let rmem_max: f64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        value(r#"lens_media_socket_buffer_bytes{direction="receive"}"#),
        2.0 * rmem_max.min(sfu::DEFAULT_SOCKET_BUFFER_BYTES as f64)
    );
    assert!(value(r#"lens_media_socket_buffer_bytes{direction="send"}"#) > 0.0);
    value("lens_media_socket_kernel_drops_total");

    // Ending the session stores what it transmitted (every datagram of both peers, both ways).
    call.console_ok(json!({"type": "end"})).await;
    let path = format!("/api/v1/sessions/{}", call.id);
    let deadline = Instant::now() + ARRIVAL;
    let transmitted = loop {
        let session = call.s.get(&path, &call.token).await.expect(200);
        let bytes = session["transmitted_bytes"].as_i64().unwrap();
        if bytes > 0 || Instant::now() > deadline {
            break bytes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // 100 video and audio packets of 120+ bytes each reached the technician alone.
    assert!(transmitted > 100 * 120, "transmitted_bytes = {transmitted}");
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_stops_the_muted_sides_audio_within_100_ms_and_unmuting_resumes_it() {
    let mut call = call("mute@example.com").await;
    call.flowing("before muting").await;

    // The customer mutes its microphone.
    let r = call
        .cus
        .request(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    let at = Instant::now();
    assert_eq!(r["type"], "ok", "{r}");
    let after = call
        .tech
        .inbox
        .assert_stopped(TAG_CUSTOMER_AUDIO, at, "customer muted")
        .await;
    assert!(
        count(&after, TAG_VIDEO) >= 10,
        "video stopped while only audio was muted: {} packets",
        count(&after, TAG_VIDEO)
    );
    // The console is told (it also got a `mute_state` at pickup).
    let id = call.id;
    call.con
        .until("customer muted", |v| {
            v["type"] == "mute_state" && v["session_id"] == id && v["customer_audio"] == false
        })
        .await;
    // The technician's microphone still reaches the customer.
    call.phone
        .peer
        .inbox
        .wait_for(
            TAG_TECH1_AUDIO,
            10,
            "technician audio while the customer is muted",
        )
        .await;
    let r = call
        .cus
        .request(json!({"type": "mute", "kind": "audio", "muted": false}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    call.tech
        .inbox
        .wait_for(TAG_CUSTOMER_AUDIO, 10, "customer audio after unmute")
        .await;

    // The technician mutes its own microphone.
    let at = call
        .console_ok(json!({"type": "mute", "target": "self", "kind": "audio", "muted": true}))
        .await;
    call.phone
        .peer
        .inbox
        .assert_stopped(TAG_TECH1_AUDIO, at, "technician muted")
        .await;
    call.tech
        .inbox
        .wait_for(
            TAG_CUSTOMER_AUDIO,
            10,
            "customer audio while the technician is muted",
        )
        .await;
    call.console_ok(json!({"type": "mute", "target": "self", "kind": "audio", "muted": false}))
        .await;
    call.phone
        .peer
        .inbox
        .wait_for(TAG_TECH1_AUDIO, 10, "technician audio after unmute")
        .await;
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_stops_forwarding_both_ways_and_resume_restarts_it_with_a_keyframe_request() {
    let mut call = call("hold@example.com").await;
    call.flowing("before hold").await;

    let at = call.console_ok(json!({"type": "hold"})).await;
    call.cus.status("On Hold").await;
    let customer = call.phone.peer.inbox.collect_until(at + MUTE_BOUND);
    let technician = call.tech.inbox.collect_until(at + MUTE_BOUND);
    tokio::join!(customer, technician);
    let at_customer = call.phone.peer.inbox.collect(SILENCE);
    let at_tech = call.tech.inbox.collect(SILENCE);
    let (at_customer, at_tech) = tokio::join!(at_customer, at_tech);
    assert!(
        at_tech.is_empty(),
        "{} packets reached the technician on hold",
        at_tech.len()
    );
    assert!(
        at_customer.is_empty(),
        "{} packets reached the customer on hold",
        at_customer.len()
    );

    let plis_before = call.phone.plis.load(Ordering::SeqCst);
    call.console_ok(json!({"type": "resume"})).await;
    call.cus.status("Active").await;
    call.flowing("after resume").await;
    let deadline = Instant::now() + ARRIVAL;
    while call.phone.plis.load(Ordering::SeqCst) <= plis_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        call.phone.plis.load(Ordering::SeqCst) > plis_before,
        "the phone got no keyframe request on resume"
    );
    call.close().await;
}

/// The host candidate ports and the ICE username fragment of a local description.
fn ice_of(sdp: &str) -> (Vec<String>, String) {
    let ports = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter_map(|c| c.split_whitespace().nth(5).map(str::to_owned))
        .collect();
    let ufrag = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("a=ice-ufrag")
        .to_owned();
    (ports, ufrag)
}

/// The phone changes network mid-call: its peer connection restarts ICE from a new UDP socket
/// and offers again over its socket. The server answers on the same WebRTC peer (DTLS and SRTP go
/// on), the session passes through Reconnecting and comes back to Active, and video keeps
/// reaching the technician: same session, no new pickup, no new console offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_after_a_network_change_resumes_media_in_the_same_session() {
    let mut call = call("ice-restart@example.com").await;
    call.flowing("before the network change").await;
    let pc = call.phone.peer.pc.clone();
    let (old_ports, old_ufrag) = ice_of(&pc.local_description().await.unwrap().sdp);

    pc.restart_ice().await.unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();
    let sdp = call.phone.peer.gathered_sdp().await;
    let (ports, ufrag) = ice_of(&sdp);
    assert_ne!(ufrag, old_ufrag, "an ICE restart has new credentials");
    // The description still lists the old candidates too, but their socket is gone.
    assert!(
        ports.iter().any(|p| !old_ports.contains(p)),
        "the phone moved to a new socket: {old_ports:?} -> {ports:?}"
    );
    for port in &old_ports {
        let port: u16 = port.parse().unwrap();
        assert!(
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            "the phone's old socket (port {port}) is still open"
        );
    }
    let ok = call.cus.request(json!({"type": "offer", "sdp": sdp})).await;
    assert_eq!(ok["type"], "ok", "the restart offer was refused: {ok}");
    let answer = ok["sdp"].as_str().expect("the answer").to_owned();
    assert_ne!(
        ice_of(&answer).1,
        ice_of(&call.phone.peer.pc.remote_description().await.unwrap().sdp).1,
        "the server's answer restarts its side too"
    );
    // The phone (the controlling ICE agent) cannot connect before it has the answer: the
    // session is Reconnecting meanwhile; 20 s pass on the server's clock.
    call.con.session_status(call.id, "Reconnecting").await;
    call.s.state.hub.advance_clock(20_000);
    pc.set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();
    call.con.session_status(call.id, "Active").await;

    // What arrived over the old path does not count: video and audio flow again from here on.
    call.tech.inbox.collect(Duration::from_millis(200)).await;
    call.phone
        .peer
        .inbox
        .collect(Duration::from_millis(200))
        .await;
    call.flowing("after the ICE restart").await;

    let master = call.s.master().await;
    let detail = call
        .s
        .get(&format!("/api/v1/sessions/{}", call.id), &master)
        .await
        .expect(200);
    assert_eq!(detail["status"], "Active", "{detail}");
    let steps: Vec<(String, String, String)> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (text("from"), text("to"), text("reason"))
        })
        .skip_while(|(_, to, _)| to != "Reconnecting")
        .collect();
    assert_eq!(
        steps,
        [
            ("Active", "Reconnecting", "customer_media_lost"),
            ("Reconnecting", "Active", "reconnected"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())),
        "{detail}"
    );
    // No second session was made for the phone, and the console kept its peer (no new offer).
    let sessions = call.s.get("/api/v1/sessions", &master).await.expect(200);
    let ids: Vec<&Value> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&json!(call.id)], "{sessions}");

    // The Session report counts the time in Reconnecting.
    call.console_ok(json!({"type": "end"})).await;
    call.s.state.hub.flush().await;
    let report = call
        .s
        .get("/api/v1/reports/session?range=last_7_days", &master)
        .await
        .expect(200);
    let columns = report["columns"].as_array().unwrap();
    let at = columns
        .iter()
        .position(|c| c == "Reconnecting Time")
        .expect("a Reconnecting Time column");
    let id_at = columns.iter().position(|c| c == "Session ID").unwrap();
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[id_at] == call.id)
        .unwrap_or_else(|| panic!("no row for the session: {report}"));
    assert_eq!(row[at], "0:00:20", "{row:?}");
    call.close().await;
}

/// A transfer holds the room (Active -> Transferring); the new technician's pickup lifts the hold
/// and its console's answer replaces the old technician's peer.
/// Issue 14: a phone whose path goes dead without closing anything (a relay that stops
/// relaying) is noticed within `media.lost_after` plus a second: the session is Reconnecting
/// (`customer_media_lost`) and Active again as soon as packets flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_phone_is_reconnecting_within_lost_after_and_active_when_heard_again() {
    let lost_after = Duration::from_millis(1500);
    let runtime = default_runtime().unwrap();
    let s = start_on(Backend::Sqlite, |c| {
        c.media.lost_after = lost_after.as_secs_f64()
    })
    .await
    .unwrap();
    let (_, _, token) = technician_with(&s, "silent@example.com", |_| {}).await;
    let (mut con, mut cus, id) = picked_up(&s, &token).await;
    let (peer, video, mic, quiet) =
        phone_peer_relayed(&runtime, &mut cus, recording::Codec::Vp8, true).await;
    let quiet = quiet.unwrap();
    send_stream(video, TAG_VIDEO, VIDEO_PT, 0x1111, 3000);
    send_stream(mic, TAG_CUSTOMER_AUDIO, OPUS_PT, 0x2222, 960);
    let mut tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x3333).await;
    tech.inbox
        .wait_for(TAG_VIDEO, 10, "before the silence")
        .await;

    quiet.store(true, Ordering::Relaxed);
    let silent = Instant::now();
    con.session_status(id, "Reconnecting").await;
    let took = silent.elapsed();
    assert!(
        took <= lost_after + Duration::from_secs(1),
        "Reconnecting after {took:?}"
    );
    println!("silent phone: Reconnecting after {took:?} (lost_after {lost_after:?})");
    quiet.store(false, Ordering::Relaxed);
    let heard = Instant::now();
    con.session_status(id, "Active").await;
    println!("Active again {:?} after packets flowed", heard.elapsed());
    tech.inbox.collect(Duration::from_millis(200)).await;
    tech.inbox
        .wait_for(TAG_VIDEO, 10, "after the silence")
        .await;

    let master = s.master().await;
    let detail = s
        .get(&format!("/api/v1/sessions/{id}"), &master)
        .await
        .expect(200);
    let reasons: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.ends_with(&["customer_media_lost", "reconnected"]),
        "{reasons:?}"
    );
    assert_eq!(
        detail["transport"],
        json!({"customer": "udp", "technician": "udp"}),
        "{detail}"
    );
    peer.pc.close().await.ok();
    tech.pc.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transferred_session_reaches_the_new_technicians_console() {
    let mut call = call("first@example.com").await;
    call.flowing("before the transfer").await;
    let master = call.s.master().await;
    let second = call
        .s
        .create_user(
            &master,
            "technicians",
            "second@example.com",
            Some(call.group),
        )
        .await;
    let token2 = call.s.token("second@example.com", USER_PASSWORD).await;
    let (mut con2, _) = console(&call.s, &token2).await;

    call.console_ok(json!({"type": "transfer", "to_technician_id": second}))
        .await;
    call.con.frame("session_removed", Some(call.id)).await;
    call.cus.status("Transferring").await;
    call.cus.status("Waiting").await;
    con2.session_status(call.id, "Waiting").await;
    let r = con2
        .request(json!({"type": "pickup", "session_id": call.id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    call.cus.status("Active").await;
    // The phone keeps its media session; only the new console is offered.
    let mut tech2 = console_media(&call.runtime, &mut con2, call.id, TAG_TECH2_AUDIO, 0x4444).await;
    tech2
        .inbox
        .wait_for(TAG_VIDEO, 20, "video at the new technician")
        .await;
    tech2
        .inbox
        .wait_for(
            TAG_CUSTOMER_AUDIO,
            10,
            "customer audio at the new technician",
        )
        .await;
    call.phone
        .peer
        .inbox
        .wait_for(TAG_TECH2_AUDIO, 10, "the new technician's audio")
        .await;
    // The first technician's peer was replaced: nothing reaches it any more.
    call.tech.inbox.collect(Duration::ZERO).await;
    let left = call.tech.inbox.collect(SILENCE).await;
    assert!(
        left.is_empty(),
        "{} packets still reach the first technician",
        left.len()
    );
    let at_customer = call.phone.peer.inbox.collect(SILENCE).await;
    assert_eq!(
        count(&at_customer, TAG_TECH1_AUDIO),
        0,
        "the first technician's audio still reaches the customer"
    );
    tech2.pc.close().await.ok();
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pickup_is_refused_while_media_flows() {
    let mut call = call("busy@example.com").await;
    call.flowing("the first session").await;
    let (other, pin) = create_pin(&call.s, &call.token).await;
    let (mut cus2, joined) = customer(&call.s, &pin).await;
    assert_eq!(joined["type"], "ok", "{joined}");
    cus2.request(json!({"type": "ready"})).await;
    call.con.session_status(other, "Waiting").await;
    let r = call
        .con
        .request(json!({"type": "pickup", "session_id": other}))
        .await;
    assert_eq!(r["code"], "one_active_session", "{r}");
    // The waiting customer may not offer media; the first session's media goes on.
    let r = cus2
        .request(json!({"type": "offer", "sdp": "v=0\r\n"}))
        .await;
    assert_eq!(r["code"], "not_allowed", "{r}");
    call.flowing("the first session after the refused pickup")
        .await;
    assert!(
        call.con
            .backlog
            .iter()
            .all(|f| f["type"] != "offer" || f["session_id"] == call.id),
        "the console was offered media of the refused session"
    );
    call.close().await;
}

/// Sends real frames (a test pattern and a tone, made by ffmpeg) as the phone would, paced in real
/// time: video every 40 ms, Opus every 20 ms. Returns the frames sent.
async fn send_clip(
    video: &Arc<TrackLocalStaticRTP>,
    mic: &Arc<TrackLocalStaticRTP>,
    dir: &std::path::Path,
    codec: recording::Codec,
) -> (usize, usize) {
    send_clip_rounds(
        video,
        mic,
        dir,
        codec,
        1,
        &std::sync::Mutex::new(Vec::new()),
    )
    .await
}

/// Sends the clip `rounds` times in a row (timestamps go on; each round starts on a keyframe);
/// `sent` gets the time each video frame went out.
async fn send_clip_rounds(
    video: &Arc<TrackLocalStaticRTP>,
    mic: &Arc<TrackLocalStaticRTP>,
    dir: &std::path::Path,
    codec: recording::Codec,
    rounds: usize,
    sent: &std::sync::Mutex<Vec<Instant>>,
) -> (usize, usize) {
    send_clip_turned(video, mic, dir, codec, rounds, sent, None).await
}

/// [`send_clip_rounds`], each video frame's last packet carrying the video-orientation
/// extension `(id, byte)` when given (as WebRTC senders put it).
async fn send_clip_turned(
    video: &Arc<TrackLocalStaticRTP>,
    mic: &Arc<TrackLocalStaticRTP>,
    dir: &std::path::Path,
    codec: recording::Codec,
    rounds: usize,
    sent: &std::sync::Mutex<Vec<Instant>>,
    cvo: Option<(u8, u8)>,
) -> (usize, usize) {
    use recording::Codec;
    use recording::fixtures::{Packetizer, opus_frames, video_frames};
    let frames = video_frames(dir, codec);
    let tone = opus_frames(dir);
    let mut vp = Packetizer::new(codec, 0x1111, 65_000, u32::MAX - 45_000);
    let mut ap = Packetizer::new(Codec::Opus, 0x2222, 65_500, 1_000);
    let to_rtp = |p: recording::RtpPacket, pt: u8| rtc::rtp::packet::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            marker: p.marker,
            payload_type: pt,
            sequence_number: p.seq as u16,
            timestamp: p.timestamp,
            ssrc: p.ssrc,
            ..Default::default()
        },
        payload: p.payload,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let now = std::time::Instant::now();
    let mut video_sent = 0;
    for round in 0..rounds {
        for (i, opus) in tone.iter().enumerate() {
            let n = round * tone.len() + i;
            tick.tick().await;
            if i % 2 == 0
                && let Some(f) = frames.get(i / 2)
            {
                for p in vp.frame(f, video_sent as u32 * 3600, now) {
                    let last = p.marker;
                    let mut packet = to_rtp(p, VIDEO_PT);
                    if let Some((id, byte)) = cvo.filter(|_| last) {
                        packet
                            .header
                            .set_extension(id, bytes::Bytes::from(vec![byte]))
                            .unwrap();
                    }
                    video.write_rtp(packet).await.unwrap();
                }
                video_sent += 1;
                sent.lock().unwrap().push(Instant::now());
            }
            for p in ap.frame(opus, n as u32 * 960, now) {
                mic.write_rtp(to_rtp(p, OPUS_PT)).await.unwrap();
            }
        }
    }
    (video_sent, rounds * tone.len())
}

/// The session's (first) recording once `done` holds for it; fails after a while.
/// Waits until the phone's media is up (ICE and DTLS done), so that every frame sent can arrive.
async fn phone_media_up(s: &TestServer) {
    let deadline = Instant::now() + ARRIVAL;
    while !s
        .metrics()
        .await
        .lines()
        .any(|l| l == "lens_media_peers_connected 1")
    {
        assert!(
            Instant::now() < deadline,
            "the phone's media did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn recording_when(s: &TestServer, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let m = s.master().await;
    let path = format!("/api/v1/sessions/{id}/recordings");
    let deadline = Instant::now() + 2 * ARRIVAL;
    loop {
        let rec = s.get(&path, &m).await.expect(200)[0].clone();
        if done(&rec) {
            return rec;
        }
        assert!(
            Instant::now() < deadline,
            "the recording did not reach the expected state: {rec}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A recorded session: the technician's group and token, the session, the phone, the frames sent
/// and the recording's row.
struct Recorded {
    group: i64,
    token: String,
    id: i64,
    phone: TestPeer,
    video_sent: usize,
    audio_sent: usize,
    rec: Value,
}

/// A technician (`email`) of a group with `screen_recording` picks a session up, the phone sends
/// the clip in `codec` once its media is up, the console ends the session; returns once the
/// session's recording satisfies `done`.
async fn record_clip(
    s: &TestServer,
    runtime: &Arc<dyn Runtime>,
    email: &str,
    screen_recording: Value,
    codec: recording::Codec,
    done: impl Fn(&Value) -> bool,
) -> Recorded {
    let (group, _, token) = technician_with(s, email, |doc| {
        doc["screen_recording"] = screen_recording;
    })
    .await;
    let (mut con, mut cus, id) = picked_up(s, &token).await;
    let (phone, video, mic) = phone_peer(runtime, &mut cus, codec).await;
    // Send once the phone's media is up (ICE and DTLS done), so every frame can arrive.
    phone_media_up(s).await;
    let fixtures = tempfile::tempdir().unwrap();
    let (video_sent, audio_sent) = send_clip(&video, &mic, fixtures.path(), codec).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");

    let rec = recording_when(s, id, done).await;
    Recorded {
        group,
        token,
        id,
        phone,
        video_sent,
        audio_sent,
        rec,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_recording_session_becomes_a_playable_file() {
    forced_recording_to_a_folder(recording::Codec::Vp8).await;
}

/// H.264 as phones send it: constrained baseline, packetization mode 1 (SPS/PPS in a STAP-A,
/// FU-A fragments), negotiated by webrtc-rs with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_recording_of_an_h264_phone_becomes_a_playable_file() {
    forced_recording_to_a_folder(recording::Codec::H264).await;
}

/// A phone sends the ffmpeg-made clip in `codec` + Opus through the real server into a forced
/// recording written in real time to a folder; ffprobe checks what arrived.
async fn forced_recording_to_a_folder(codec: recording::Codec) {
    use recording::fixtures::{ffprobe, have_tool};
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return;
    }
    let name = codec.name();
    let runtime = default_runtime().unwrap();
    let s = start().await;
    let folder = tempfile::tempdir().unwrap();
    let location = folder.path().to_str().unwrap().to_owned();
    let Recorded {
        token,
        id,
        phone,
        video_sent,
        audio_sent,
        rec,
        ..
    } = record_clip(
        &s,
        &runtime,
        &format!("recorded-{name}@example.com"),
        json!({"forced": true, "location": location, "deferred_upload": false}),
        codec,
        |r| r["status"] != "recording",
    )
    .await;
    assert_eq!(rec["status"], "uploaded", "{rec}");
    assert_eq!(rec["codecs"], json!([name, "opus"]), "{rec}");
    assert_eq!(rec["location"], json!(location));
    // Technicians do not see recordings.
    s.get(&format!("/api/v1/sessions/{id}/recordings"), &token)
        .await
        .expect(403);

    let file = folder.path().join(rec["file_name"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&file).unwrap().len() as i64,
        rec["size_bytes"].as_i64().unwrap()
    );
    let (p, err) = ffprobe(&file);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    assert_eq!(p.codec("video").as_deref(), Some(name));
    assert_eq!(p.codec("audio").as_deref(), Some("opus"));
    let v = p.stream("video").unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    let frames = p.frames("video") as f64;
    assert!(
        (frames - video_sent as f64).abs() <= 0.02 * video_sent as f64,
        "{frames} of {video_sent} video frames"
    );
    assert!(
        p.frames("audio") as f64 >= 0.98 * audio_sent as f64,
        "{} of {audio_sent} audio frames",
        p.frames("audio")
    );
    let want = video_sent as f64 / 25.0;
    let d = p.duration();
    assert!(
        (d - want).abs() <= 0.05 * want,
        "duration {d} s, sent {want} s"
    );
    assert!((p.start_time("video") - p.start_time("audio")).abs() < 0.1);

    // An administrator fetches the file, whole or a range of it (how <video> seeks).
    let m = s.master().await;
    let url = format!("/api/v1/recordings/{}/file", rec["id"]);
    let bytes = std::fs::read(&file).unwrap();
    let (status, headers, body) = fetch(&s, &url, &m, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(body == bytes, "the file differs from the recording");
    let (status, headers, body) = fetch(&s, &url, &m, Some("bytes=100-1123")).await;
    assert_eq!(status, 206);
    assert_eq!(
        headers["content-range"],
        format!("bytes 100-1123/{}", bytes.len()).as_str()
    );
    assert!(body == bytes[100..1124]);
    let (_, _, body) = fetch(&s, &url, &m, Some("bytes=-10")).await;
    assert!(body == bytes[bytes.len() - 10..]);
    let past = format!("bytes={}-", bytes.len());
    assert_eq!(fetch(&s, &url, &m, Some(&past)).await.0, 416);
    s.get(&url, &token).await.expect(403);
    s.get("/api/v1/recordings/999999/file", &m)
        .await
        .expect(404);
    signed_links_play_the_recording(&s, &m, &rec, &bytes).await;
    phone.pc.close().await.ok();
}

/// `POST /api/v1/recordings/{id}/link`: the link plays without a login, whole and by range, only
/// for its recording, only until it expires and only until the key is rotated; an administrator
/// of another group cannot get one.
async fn signed_links_play_the_recording(s: &TestServer, m: &str, rec: &Value, bytes: &[u8]) {
    use hmac::Mac;
    let id = rec["id"].as_i64().unwrap();
    let link = s
        .post(&format!("/api/v1/recordings/{id}/link"), m, json!({}))
        .await
        .expect(200);
    let path = link["path"].as_str().unwrap().to_owned();
    assert!(link["url"].as_str().unwrap().ends_with(&path), "{link}");
    let play = |p: String, range: Option<&'static str>| async move {
        let mut req = s.http.get(format!("{}{p}", s.base));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap().to_vec();
        (status, body)
    };
    let (status, body) = play(path.clone(), None).await;
    assert_eq!(status, 200);
    assert!(body == bytes, "the linked file differs from the recording");
    let (status, body) = play(path.clone(), Some("bytes=100-199")).await;
    assert_eq!(status, 206);
    assert!(body == bytes[100..200]);
    let refused = |body: Vec<u8>, code: &str| {
        let v: Value = serde_json::from_slice(&body).expect("a JSON error");
        assert_eq!(v["error"]["code"], code, "{v}");
    };
    // Tampered: another recording's id with this signature, or a changed signature or expiry.
    let (status, body) = play(
        path.replace(&format!("/{id}/"), &format!("/{}/", id + 1)),
        None,
    )
    .await;
    assert_eq!(status, 403);
    refused(body, "link_invalid");
    let sig_at = path.find("sig=").unwrap() + 4;
    let mut tampered = path.clone();
    let flipped = if &path[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(sig_at..sig_at + 1, flipped);
    let (status, body) = play(tampered, None).await;
    assert_eq!(status, 403);
    refused(body, "link_invalid");
    let (status, body) = play(path.replace("expires=", "expires=1"), None).await;
    assert_eq!(status, 403);
    refused(body, "link_invalid");
    // Expired: correctly signed (with the store's key), a minute ago.
    let key = s.state.store.recording_link_key().await.unwrap();
    let expires = chrono::Utc::now().timestamp() - 60;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("lens-recording-link:v1:{id}:{expires}").as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let (status, body) = play(
        format!("/api/v1/recordings/{id}/play?expires={expires}&sig={sig}"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    refused(body, "link_expired");
    // An administrator of another group: as if the recording did not exist.
    let other = s.create_group(m, "Elsewhere", None).await;
    let admin = s
        .create_user(m, "administrators", "elsewhere-admin@example.com", None)
        .await;
    s.call(
        reqwest::Method::PUT,
        &format!("/api/v1/administrators/{admin}/technician-groups/{other}"),
        Some(m),
        None,
    )
    .await
    .expect(204);
    let a = s.token("elsewhere-admin@example.com", USER_PASSWORD).await;
    s.post(&format!("/api/v1/recordings/{id}/link"), &a, json!({}))
        .await
        .expect(404);
    let listed = s.get("/api/v1/recordings", &a).await.expect(200);
    assert_eq!(
        listed,
        json!([]),
        "another group's recordings are not listed"
    );
    let listed = s.get("/api/v1/recordings", m).await.expect(200);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["recording"]["id"] == id && r["technician_name"].is_string()),
        "{listed}"
    );
    // Rotating the key revokes the link.
    s.post("/api/v1/recording-links/rotate-key", m, json!({}))
        .await
        .expect(200);
    let (status, body) = play(path, None).await;
    assert_eq!(status, 403);
    refused(body, "link_invalid");
}

/// A phone held upright whose camera sends landscape frames with the video-orientation extension
/// (CVO: a quarter turn clockwise shows them upright), through the real server: the recording's
/// display matrix turns the picture upright (ffprobe reads a -90° rotation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turned_phone_records_an_upright_file() {
    use recording::fixtures::{display_rotation, ffprobe, have_tool};
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return;
    }
    let runtime = default_runtime().unwrap();
    let s = start().await;
    let folder = tempfile::tempdir().unwrap();
    let location = folder.path().to_str().unwrap().to_owned();
    let (_, _, token) = technician_with(&s, "turned@example.com", |doc| {
        doc["screen_recording"] =
            json!({"forced": true, "location": location, "deferred_upload": false});
    })
    .await;
    let (mut con, mut cus, id) = picked_up(&s, &token).await;
    let (phone, video, mic) = phone_peer(&runtime, &mut cus, recording::Codec::Vp8).await;
    let offer = phone.pc.local_description().await.unwrap().sdp;
    let cvo_id: u8 = offer
        .split("\r\n")
        .find_map(|l| {
            l.strip_prefix("a=extmap:")?
                .strip_suffix(&format!(" {CVO_URI}"))
        })
        .and_then(|id| id.split('/').next()?.parse().ok())
        .expect("the phone offers the video-orientation extension");
    phone_media_up(&s).await;
    let fixtures = tempfile::tempdir().unwrap();
    let sent = std::sync::Mutex::new(Vec::new());
    let (video_sent, _) = send_clip_turned(
        &video,
        &mic,
        fixtures.path(),
        recording::Codec::Vp8,
        1,
        &sent,
        Some((cvo_id, 1)),
    )
    .await;
    // The console's leg offers the extension too: the SFU forwards its value (str0m's RTP mode
    // keeps extension values), and the console's browser turns the picture itself.
    let console_offer = con.frame("offer", Some(id)).await;
    assert!(
        console_offer["sdp"].as_str().unwrap().contains(CVO_URI),
        "the console is not offered the video-orientation extension"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    let rec = recording_when(&s, id, |r| r["status"] != "recording").await;
    assert_eq!(rec["status"], "uploaded", "{rec}");
    let file = folder.path().join(rec["file_name"].as_str().unwrap());
    let (p, err) = ffprobe(&file);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    assert!(
        p.frames("video") as f64 >= 0.98 * video_sent as f64,
        "{} of {video_sent} frames",
        p.frames("video")
    );
    assert_eq!(
        display_rotation(&file),
        Some(-90.0),
        "the picture is not turned upright"
    );
    phone.pc.close().await.ok();
}

/// GET `path` with `token` and an optional `Range`: status, headers, body bytes.
async fn fetch(
    s: &TestServer,
    path: &str,
    token: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = s.http.get(format!("{}{path}", s.base)).bearer_auth(token);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_to_ftp_with_wrong_credentials_fails_clearly_and_a_retry_after_the_fix_uploads_it()
 {
    use recording::fixtures::{free_port, ftp_server};
    let Some(py) = ftp_tools() else {
        return;
    };
    let ftp_root = tempfile::tempdir().unwrap();
    let ftp = ftp_server(&py, ftp_root.path(), free_port());
    let runtime = default_runtime().unwrap();
    let s = start_on(Backend::Sqlite, |c| {
        c.recording.upload_max_attempts = 1;
        c.recording.file_name_pattern = "lens/{session_id}".into();
    })
    .await
    .unwrap();
    let wrong = format!("ftp://test:wrong-pass@127.0.0.1:{}/rec", ftp.port);
    let Recorded {
        group,
        token,
        id,
        phone,
        video_sent,
        rec,
        ..
    } = record_clip(
        &s,
        &runtime,
        "ftp-rec@example.com",
        // FTP is always deferred, whatever the checkbox says.
        json!({"forced": true, "location": wrong, "deferred_upload": false}),
        recording::Codec::Vp8,
        |r| r["status"] == "failed",
    )
    .await;
    let error = rec["last_error"].as_str().unwrap();
    assert!(error.contains("login refused"), "{rec}");
    assert!(
        !rec.to_string().contains("wrong-pass"),
        "credentials leaked: {rec}"
    );
    assert_eq!(rec["deferred"], true);
    assert_eq!(rec["attempts"], 1);
    let spool = s.state.config.recordings_dir().join("spool");
    let spooled = spool.join(format!("rec-{}.mp4", rec["id"]));
    assert!(spooled.exists(), "a failed upload keeps the spooled file");
    // Meanwhile the spooled copy can be fetched.
    let m = s.master().await;
    let url = format!("/api/v1/recordings/{}/file", rec["id"]);
    let (status, _, body) = fetch(&s, &url, &m, None).await;
    assert_eq!(status, 200);
    assert!(body == std::fs::read(&spooled).unwrap());

    // Fix the location, retry.
    let settings = format!("/api/v1/technician-groups/{group}/settings");
    let mut doc = s.get(&settings, &m).await.expect(200);
    doc["screen_recording"]["location"] =
        json!(format!("ftp://test:secret@127.0.0.1:{}/rec", ftp.port));
    s.put(&settings, &m, doc).await.expect(200);
    let retry = format!("/api/v1/recordings/{}/retry", rec["id"]);
    s.post(&retry, &token, json!({})).await.expect(403);
    let r = s.post(&retry, &m, json!({})).await.expect(200);
    assert_eq!(r["status"], "spooled", "{r}");
    let rec = recording_when(&s, id, |r| r["status"] == "uploaded").await;
    assert_eq!(
        rec["location"],
        json!(format!("ftp://test:********@127.0.0.1:{}/rec", ftp.port))
    );
    assert!(
        !spooled.exists(),
        "the spooled copy goes once the upload is confirmed"
    );
    // A retry of an uploaded recording is refused.
    s.post(&retry, &m, json!({})).await.expect(409);
    // Uploaded to FTP, the file is not kept here.
    let r = s.get(&url, &m).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "recording_not_on_this_server");
    assert_on_ftp(ftp_root.path(), &rec, video_sent);
    phone.pc.close().await.ok();
}

/// The recording `rec` is in the FTP server's folder `rec` (under `ftp_root`) at its full size and
/// plays: VP8, every frame sent.
fn assert_on_ftp(ftp_root: &std::path::Path, rec: &Value, video_sent: usize) {
    let uploaded = ftp_root
        .join("rec")
        .join(rec["file_name"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&uploaded).unwrap().len() as i64,
        rec["size_bytes"].as_i64().unwrap()
    );
    let (p, err) = recording::fixtures::ffprobe(&uploaded);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    assert_eq!(p.codec("video").as_deref(), Some("vp8"));
    assert!((p.frames("video") as f64 - video_sent as f64).abs() <= 0.02 * video_sent as f64);
}

/// Size of the first `.mp4` found under `dir` (0 if none yet).
fn first_mp4_size(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in rd.flatten() {
        let p = e.path();
        let n = if p.is_dir() {
            first_mp4_size(&p)
        } else if p.extension().is_some_and(|x| x == "mp4") {
            e.metadata().map_or(0, |m| m.len())
        } else {
            0
        };
        if n > 0 {
            return n;
        }
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_stream_uploads_an_ftp_recording_arrives_while_the_session_runs() {
    use recording::fixtures::{free_port, ftp_server};
    let Some(py) = ftp_tools() else {
        return;
    };
    let ftp_root = tempfile::tempdir().unwrap();
    let ftp = ftp_server(&py, ftp_root.path(), free_port());
    let runtime = default_runtime().unwrap();
    let s = start_on(Backend::Sqlite, |c| {
        c.recording.stream_uploads = true;
        c.recording.file_name_pattern = "lens/{session_id}".into();
    })
    .await
    .unwrap();
    // Watches the FTP folder: the first size seen, and when (UTC ms).
    let seen = Arc::new(std::sync::Mutex::new(None::<(u64, i64)>));
    let watcher = {
        let (seen, root) = (seen.clone(), ftp_root.path().to_path_buf());
        tokio::spawn(async move {
            loop {
                let n = first_mp4_size(&root);
                if n > 0 {
                    let at = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64;
                    *seen.lock().unwrap() = Some((n, at));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let location = format!("ftp://test:secret@127.0.0.1:{}/rec", ftp.port);
    let Recorded {
        phone,
        video_sent,
        rec,
        ..
    } = record_clip(
        &s,
        &runtime,
        "ftp-live@example.com",
        json!({"forced": true, "location": location, "deferred_upload": true}),
        recording::Codec::Vp8,
        |r| r["status"] == "uploaded",
    )
    .await;
    let (first_size, first_at) = seen
        .lock()
        .unwrap()
        .expect("the file reached the FTP server");
    watcher.abort();
    let size = rec["size_bytes"].as_u64().unwrap();
    let ended = chrono::DateTime::parse_from_rfc3339(rec["ended_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(
        first_at < ended && first_size < size,
        "bytes arrived before the recording ended: {first_size} of {size} at {first_at}, ended {ended}"
    );
    assert_eq!(
        rec["attempts"], 0,
        "streamed, not uploaded afterwards: {rec}"
    );
    let spooled = s
        .state
        .config
        .recordings_dir()
        .join("spool")
        .join(format!("rec-{}.mp4", rec["id"]));
    assert!(!spooled.exists(), "the spooled copy goes once confirmed");
    assert_on_ftp(ftp_root.path(), &rec, video_sent);
    phone.pc.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_recording_folder_fails_the_recording_not_the_session() {
    let s = start().await;
    // A folder that cannot be created: its parent is a file.
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let location = blocker.path().join("recordings");
    let location = location.to_str().unwrap().to_owned();
    let (_, _, token) = technician_with(&s, "unwritable@example.com", |doc| {
        doc["screen_recording"] =
            json!({"forced": true, "location": location, "deferred_upload": false});
    })
    .await;
    let (mut con, _cus, id) = picked_up(&s, &token).await;
    let rec = recording_when(&s, id, |r| r["status"] == "failed").await;
    let error = rec["last_error"].as_str().unwrap();
    assert!(error.contains("cannot create the folder"), "{rec}");
    // The session goes on.
    let r = con.request(json!({"type": "hold", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
}

/// A free TCP address on 127.0.0.1 for a spawned `lens serve`.
fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// On a spawned server: a technician group whose screen recording is `screen_recording`, and a
/// technician of it. Returns the master's and the technician's tokens.
async fn spawned_technician(
    addr: std::net::SocketAddr,
    email: &str,
    screen_recording: Value,
) -> (String, String) {
    use reqwest::Method;
    let m = login(addr, MASTER_EMAIL, MASTER_PASSWORD).await;
    let g = common::call(
        addr,
        Method::POST,
        "/api/v1/technician-groups",
        Some(&m),
        json!({"name": format!("group of {email}")}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/technician-groups/{g}/settings");
    let mut doc = common::call(addr, Method::GET, &path, Some(&m), Value::Null).await;
    doc["audio"]["enabled"] = json!(true);
    doc["screen_recording"] = screen_recording;
    let saved = common::call(addr, Method::PUT, &path, Some(&m), doc).await;
    assert!(saved.get("error").is_none(), "{saved}");
    common::call(
        addr,
        Method::POST,
        "/api/v1/technicians",
        Some(&m),
        json!({"name": "Rec", "email": email, "password": USER_PASSWORD, "group_id": g}),
    )
    .await;
    // The default policy makes an administrator-set password temporary: the technician sets one.
    let first = login(addr, email, USER_PASSWORD).await;
    common::call(
        addr,
        Method::POST,
        "/api/v1/auth/password",
        Some(&first),
        json!({"old_password": USER_PASSWORD, "new_password": "Own-Pass-7rec"}),
    )
    .await;
    (m, login(addr, email, "Own-Pass-7rec").await)
}

/// On a spawned server: a PIN session the technician picked up.
async fn spawned_pickup(addr: std::net::SocketAddr, token: &str) -> (Ws, Ws, i64) {
    let mut con = Ws::connect_to(addr, "/ws/console").await;
    let hello = con
        .request(json!({"type": "hello", "v": 1, "token": token}))
        .await;
    assert_eq!(hello["type"], "ok", "{hello}");
    let created = con
        .request(json!({"type": "create_session", "method": "pin", "name": "Recorded"}))
        .await;
    let id = created["session_id"].as_i64().unwrap();
    let mut cus = Ws::connect_to(addr, "/ws/customer").await;
    let joined = cus
        .request(json!({"type": "join", "v": 1, "code": created["pin"]}))
        .await;
    assert_eq!(joined["type"], "ok", "{joined}");
    ready_and_picked_up(&mut con, &mut cus, id).await;
    (con, cus, id)
}

/// Waits until a spawned server's metrics have `line` (e.g. the phone's media is up).
async fn spawned_metric(addr: std::net::SocketAddr, line: &str) {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no `{line}` in the metrics");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A session's recordings on a spawned server, once `done` holds for the first.
async fn spawned_recording(
    addr: std::net::SocketAddr,
    token: &str,
    session: i64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/api/v1/sessions/{session}/recordings");
    // Uploads to the slowed-down FTP server take a while.
    let deadline = Instant::now() + 2 * ARRIVAL;
    loop {
        let list = common::call(addr, reqwest::Method::GET, &path, Some(token), Value::Null).await;
        if list[0].is_object() && done(&list[0]) {
            return list[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "recording not as expected: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `kill -9` of the real `lens` binary while a phone sends into a forced recording: the file
/// plays everything sent up to 2 s before the kill; after a restart the recording is no longer
/// `recording` but closed, its size taken from the file and its note saying it was cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_by_kill_9_plays_all_but_its_last_two_seconds() {
    use recording::fixtures::{ffprobe, have_tool};
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = default_runtime().unwrap();
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut server = spawn(data.path(), addr, &[]).await;
    let location = folder.path().to_str().unwrap();
    let (m, t) = spawned_technician(
        addr,
        "killed@example.com",
        json!({"forced": true, "location": location, "deferred_upload": false}),
    )
    .await;
    let (_con, mut cus, id) = spawned_pickup(addr, &t).await;
    let (phone, video, mic) = phone_peer(&runtime, &mut cus, recording::Codec::Vp8).await;
    spawned_metric(addr, "lens_media_peers_connected 1").await;
    let rec = spawned_recording(addr, &m, id, |r| r["status"] == "recording").await;
    let file = folder.path().join(rec["file_name"].as_str().unwrap());

    // Three rounds of the 4 s clip; the kill comes during the second.
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sender = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let fixtures = tempfile::tempdir().unwrap();
            send_clip_rounds(
                &video,
                &mic,
                fixtures.path(),
                recording::Codec::Vp8,
                3,
                &sent,
            )
            .await
        })
    };
    while sent.lock().unwrap().len() < 150 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = Instant::now();
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    sender.abort();
    let want = sent
        .lock()
        .unwrap()
        .iter()
        .filter(|at| **at + Duration::from_secs(2) <= killed_at)
        .count();

    let size = std::fs::metadata(&file).unwrap().len();
    let (p, _) = ffprobe(&file);
    assert_eq!(p.codec("video").as_deref(), Some("vp8"), "{:?}", p.json);
    assert_eq!(p.codec("audio").as_deref(), Some("opus"), "{:?}", p.json);
    assert!(
        p.frames("video") as usize >= want,
        "{} video frames in the cut file; {want} were sent up to 2 s before the kill",
        p.frames("video")
    );
    assert!(p.frames("audio") as usize >= 2 * want, "{:?}", p.json);

    drop(server);
    let _server = spawn(data.path(), addr, &[]).await;
    let m = login(addr, MASTER_EMAIL, MASTER_PASSWORD).await;
    let rec = spawned_recording(addr, &m, id, |_| true).await;
    assert_eq!(rec["status"], "uploaded", "{rec}");
    assert!(
        rec["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("the server stopped during the session")),
        "{rec}"
    );
    assert_eq!(rec["size_bytes"].as_u64(), Some(size), "{rec}");
    assert!(rec["ended_at"].is_string(), "{rec}");
    // Duration and codecs read back from the fragments at the restart.
    assert_eq!(rec["codecs"], json!(["vp8", "opus"]), "{rec}");
    let d = rec["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        (d - p.duration()).abs() <= 0.05 * p.duration() && d > 0.0,
        "duration {d} s in the table, ffprobe says {} s",
        p.duration()
    );
    phone.pc.close().await.ok();
}

/// ffmpeg, ffprobe and pyftpdlib (the python that has it); `None` skips (a failure under CI).
fn ftp_tools() -> Option<std::path::PathBuf> {
    use recording::fixtures::{have_tool, python_with};
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return None;
    }
    python_with("pyftpdlib")
}

/// Uploads to pyftpdlib receiving at 20 kB/s take several seconds: long enough to cut one.
const SLOW_FTP: u32 = 20_000;

/// A deferred upload to FTP (the location's folder `rec` under the FTP server's root) under way.
struct Upload {
    /// The spooled recording, read once it was finished.
    original: Vec<u8>,
    spooled: std::path::PathBuf,
    remote: std::path::PathBuf,
}

impl Upload {
    /// Waits until the copy on the FTP server has some bytes, not all.
    async fn started(
        recordings_dir: &std::path::Path,
        ftp_root: &std::path::Path,
        rec: &Value,
    ) -> Upload {
        let spooled = recordings_dir
            .join("spool")
            .join(format!("rec-{}.mp4", rec["id"]));
        let original = std::fs::read(&spooled).unwrap();
        let remote = ftp_root
            .join("rec")
            .join(rec["file_name"].as_str().unwrap());
        let deadline = Instant::now() + ARRIVAL;
        while std::fs::metadata(&remote).map_or(0, |m| m.len()) == 0 {
            assert!(Instant::now() < deadline, "the upload did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let upload = Upload {
            original,
            spooled,
            remote,
        };
        upload.assert_cut();
        upload
    }

    /// The FTP server's copy is shorter than the recording.
    fn assert_cut(&self) {
        let size = std::fs::metadata(&self.remote).unwrap().len() as usize;
        assert!(
            size < self.original.len(),
            "the upload is not cut: {size} of {} bytes",
            self.original.len()
        );
    }

    /// The whole recording arrived, byte for byte, and only then left the spool.
    fn assert_arrived(&self, rec: &Value) {
        assert_eq!(
            rec["size_bytes"].as_u64(),
            Some(self.original.len() as u64),
            "{rec}"
        );
        assert!(
            std::fs::read(&self.remote).unwrap() == self.original,
            "the uploaded file differs from the recording"
        );
        assert!(
            !self.spooled.exists(),
            "the spooled copy goes after the upload"
        );
    }
}

/// The FTP server stops in the middle of a deferred upload and comes back: the recording is
/// uploaded in full (completed with APPE from what the server kept), byte-identical, and the
/// spooled copy goes only then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_upload_survives_the_ftp_server_stopping_mid_upload() {
    use recording::fixtures::{free_port, ftp_server, slow_ftp_server};
    let Some(py) = ftp_tools() else {
        return;
    };
    let ftp_root = tempfile::tempdir().unwrap();
    let port = free_port();
    let ftp = slow_ftp_server(&py, ftp_root.path(), port, SLOW_FTP);
    let runtime = default_runtime().unwrap();
    let s = start_on(Backend::Sqlite, |c| {
        c.recording.upload_max_attempts = 30;
        c.recording.upload_backoff_seconds = 1;
        c.recording.upload_backoff_max_seconds = 1;
        c.recording.file_name_pattern = "lens/{session_id}".into();
    })
    .await
    .unwrap();
    let location = format!("ftp://test:secret@127.0.0.1:{port}/rec");
    let Recorded { id, phone, rec, .. } = record_clip(
        &s,
        &runtime,
        "ftp-stop@example.com",
        json!({"forced": true, "location": location, "deferred_upload": true}),
        recording::Codec::Vp8,
        |r| r["status"] == "uploading",
    )
    .await;
    let upload = Upload::started(&s.state.config.recordings_dir(), ftp_root.path(), &rec).await;
    ftp.stop();
    upload.assert_cut();

    let _ftp = ftp_server(&py, ftp_root.path(), port);
    let rec = recording_when(&s, id, |r| r["status"] == "uploaded").await;
    assert!(rec["attempts"].as_i64().unwrap() >= 2, "{rec}");
    upload.assert_arrived(&rec);
    phone.pc.close().await.ok();
}

/// The `lens` binary is killed (SIGKILL) in the middle of a deferred FTP upload and started again:
/// the upload picks up where the FTP server's copy ends and the file arrives byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_upload_survives_a_kill_9_of_the_server_mid_upload() {
    use recording::fixtures::{free_port, slow_ftp_server};
    let Some(py) = ftp_tools() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ftp_root = tempfile::tempdir().unwrap();
    let port = free_port();
    let _ftp = slow_ftp_server(&py, ftp_root.path(), port, SLOW_FTP);
    let runtime = default_runtime().unwrap();
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let env = [
        ("LENS_RECORDING_UPLOAD_BACKOFF_SECONDS", "1"),
        ("LENS_RECORDING_FILE_NAME_PATTERN", "lens/{session_id}"),
    ];
    let mut server = spawn(data.path(), addr, &env).await;
    let (m, t) = spawned_technician(
        addr,
        "upload-killed@example.com",
        json!({"forced": true, "location": format!("ftp://test:secret@127.0.0.1:{port}/rec"),
               "deferred_upload": true}),
    )
    .await;
    let (mut con, mut cus, id) = spawned_pickup(addr, &t).await;
    let (phone, video, mic) = phone_peer(&runtime, &mut cus, recording::Codec::Vp8).await;
    spawned_metric(addr, "lens_media_peers_connected 1").await;
    let fixtures = tempfile::tempdir().unwrap();
    send_clip(&video, &mic, fixtures.path(), recording::Codec::Vp8).await;
    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    let rec = spawned_recording(addr, &m, id, |r| r["status"] == "uploading").await;
    let upload = Upload::started(&data.path().join("recordings"), ftp_root.path(), &rec).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    upload.assert_cut();
    drop(server);

    let _server = spawn(data.path(), addr, &env).await;
    let m = login(addr, MASTER_EMAIL, MASTER_PASSWORD).await;
    // The row still says `uploading` until the restarted uploader reports.
    let rec = spawned_recording(addr, &m, id, |r| r["status"] == "uploaded").await;
    upload.assert_arrived(&rec);
    phone.pc.close().await.ok();
}

/// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped. Mounting needs root (CI
/// runs as root); without it the test is skipped, or fails under CI.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                !recording::fixtures::ci(),
                "cannot mount a tmpfs (needs root) but CI=true"
            );
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The recording folder is a 64 KiB filesystem: the recording fills it within the first seconds,
/// is marked failed with "the disk is full", and the session goes on (media included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_recording_not_the_session() {
    if !recording::fixtures::have_tool("ffmpeg") {
        return;
    }
    let Some(disk) = SmallDisk::mount("64k") else {
        return;
    };
    let runtime = default_runtime().unwrap();
    let s = start().await;
    let location = disk.dir.path().to_str().unwrap().to_owned();
    let (_, _, token) = technician_with(&s, "full-disk@example.com", |doc| {
        doc["screen_recording"] =
            json!({"forced": true, "location": location, "deferred_upload": false});
    })
    .await;
    let (mut con, mut cus, id) = picked_up(&s, &token).await;
    let (phone, video, mic) = phone_peer(&runtime, &mut cus, recording::Codec::Vp8).await;
    let mut tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x3333).await;
    let fixtures = tempfile::tempdir().unwrap();
    send_clip(&video, &mic, fixtures.path(), recording::Codec::Vp8).await;

    let m = s.master().await;
    let rec = recording_when(&s, id, |r| r["status"] == "failed").await;
    let error = rec["last_error"].as_str().unwrap();
    assert!(error.contains("the disk is full"), "{rec}");
    assert!(
        s.metrics()
            .await
            .lines()
            .any(|l| l == "lens_recordings_failed_total 1")
    );
    // The session goes on: still Active, and the phone's media still reaches the technician.
    let session = s
        .get(&format!("/api/v1/sessions/{id}"), &m)
        .await
        .expect(200);
    assert_eq!(session["status"], "Active", "{session}");
    // (The clip's packets are not tagged: read the technician's inbox raw.)
    send_stream(video, TAG_VIDEO, VIDEO_PT, 0x1111, 3000);
    let mut tagged = 0;
    while tagged < 10 {
        let (_, p) = tokio::time::timeout(ARRIVAL, tech.inbox.rx.recv())
            .await
            .expect("video reaches the technician after the recording failed")
            .unwrap();
        if p.first() == Some(&TAG_VIDEO) && p.len() > 3 {
            tagged += 1;
        }
    }
    let r = con.request(json!({"type": "hold", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    phone.pc.close().await.ok();
    tech.pc.close().await.ok();
}

/// The largest gap between consecutive packets of `tag` in `got`, and how many there were.
fn gaps(got: &[Arrival], tag: u8) -> (usize, Duration) {
    let at: Vec<Instant> = got
        .iter()
        .filter(|(_, p)| p[0] == tag)
        .map(|(at, _)| *at)
        .collect();
    let widest = at
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::MAX);
    (at.len(), widest)
}

/// Waits until `addr`'s `/healthz` answers `status` (and, for a 503, the error `code`).
async fn health_becomes(addr: std::net::SocketAddr, status: u16, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap();
        let got = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if got == status && (status == 200 || body["error"]["code"] == code) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: /healthz still {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// PostgreSQL stopped for 12 s mid-session, then started again (issue 15), on a cluster of the
/// test's own: node A in-process, node B the real binary. The session and its room are on B, the
/// customer's socket on A (routed to B), the console on B. While the store is down, media keeps
/// flowing both ways, both nodes answer `/healthz` 503 `store_unavailable` and refuse new
/// sessions, and what the console does on B is decided at once and stored once the store is back.
/// B is kept out 5 s longer after the restart (its role refused): A must not take it for dead
/// meanwhile (nobody could beat while the store was down). Afterwards routed signaling works
/// again, and the store holds the whole session: its events and chat from before, during and
/// after the outage, in one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_mid_session_media_goes_on_and_nothing_stored_is_lost() {
    let Some(pg) = common::pg::OwnPostgres::start() else {
        return;
    };
    // The backend follows the URL: A is a PostgreSQL node on the test's own server.
    let url = pg.url.clone();
    let a = start_on(Backend::Sqlite, move |c| {
        c.database_url = url;
        c.cluster.node_id = "pg-a".into();
        c.cluster.placement = lens::config::Placement::Local;
    })
    .await
    .unwrap();
    // B logs in as a role of its own, so that it can be kept out for a while after the restart.
    pg.psql("CREATE ROLE lens_b LOGIN SUPERUSER");
    let b_url = pg.url_as("lens_b");
    let b_addr = free_addr();
    let dir = a.dir.path().join("pg-b");
    std::fs::create_dir_all(&dir).unwrap();
    let _b = spawn(
        &dir,
        b_addr,
        &[
            ("LENS_DATABASE_URL", b_url.as_str()),
            ("LENS_CLUSTER_NODE_ID", "pg-b"),
            ("LENS_CLUSTER_PLACEMENT", "local"),
        ],
    )
    .await;
    let runtime = default_runtime().unwrap();
    let (_, _, token) = technician_with(&a, "pg-restart@example.com", |_| {}).await;
    let mut con = Ws::connect_to(b_addr, "/ws/console").await;
    let hello = con
        .request(json!({"type": "hello", "v": 1, "token": token}))
        .await;
    assert_eq!(hello["type"], "ok", "{hello}");
    let created = common::call(
        b_addr,
        reqwest::Method::POST,
        "/api/v1/sessions",
        Some(&token),
        json!({"method": "pin"}),
    )
    .await;
    let id = created["id"].as_i64().expect("session created on B");
    let (mut cus, joined) = customer(&a, created["pin"].as_str().unwrap()).await;
    assert_eq!(joined["type"], "ok", "{joined}");
    ready_and_picked_up(&mut con, &mut cus, id).await;
    let mut phone = phone_media(&runtime, &mut cus).await;
    let mut tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x3333).await;
    tech.inbox.wait_for(TAG_VIDEO, 10, "video via B").await;
    phone
        .peer
        .inbox
        .wait_for(TAG_TECH1_AUDIO, 10, "technician audio via B")
        .await;
    let r = cus.request(json!({"type": "chat", "text": "before"})).await;
    assert_eq!(r["type"], "ok", "{r}");
    con.until("the line before", |v| {
        v["type"] == "chat" && v["text"] == "before"
    })
    .await;

    // Connections B already has are not affected; new ones are refused until LOGIN again.
    pg.psql("ALTER ROLE lens_b NOLOGIN");
    pg.down();
    let down = Instant::now();
    health_becomes(a.addr, 503, "store_unavailable").await;
    health_becomes(b_addr, 503, "store_unavailable").await;
    let refused = con
        .request(json!({"type": "create_session", "method": "pin"}))
        .await;
    assert_eq!(refused["code"], "node_unavailable", "{refused}");
    let refused = common::call(
        b_addr,
        reqwest::Method::POST,
        "/api/v1/sessions",
        Some(&token),
        json!({"method": "pin"}),
    )
    .await;
    assert_eq!(refused["error"]["code"], "store_unavailable", "{refused}");
    // Media goes on: packets every 20 ms each way; no gap of a second in any stream.
    let window = Duration::from_secs(5);
    let (at_tech, at_phone) =
        tokio::join!(tech.inbox.collect(window), phone.peer.inbox.collect(window));
    for (got, tag, what) in [
        (&at_tech, TAG_VIDEO, "video"),
        (&at_tech, TAG_CUSTOMER_AUDIO, "customer audio"),
        (&at_phone, TAG_TECH1_AUDIO, "technician audio"),
    ] {
        let (n, widest) = gaps(got, tag);
        eprintln!("during the outage: {n} {what} packets in {window:?}, widest gap {widest:?}");
        assert!(
            n >= 100,
            "{what}: {n} packets in {window:?} without the store"
        );
        assert!(
            widest < Duration::from_secs(1),
            "{what}: a gap of {widest:?}"
        );
    }
    // The console's requests on the owner are decided without the store; stored later.
    let r = con
        .request(json!({"type": "chat", "session_id": id, "text": "during"}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let r = con.request(json!({"type": "hold", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    con.session_status(id, "On Hold").await;
    // Longer than a node's time to be judged dead (10 s without a heartbeat).
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(down.elapsed())).await;
    let outage = down.elapsed();
    pg.up();
    let back = Instant::now();
    health_becomes(a.addr, 200, "").await;
    let a_back = back.elapsed();
    // B stays cut off a few more seconds: A checks the registry meanwhile, sees B's heartbeat
    // from before the outage, and must still not take B for dead (PostgreSQL was up for less
    // than 10 s; A itself reached it again less than 10 s ago).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(a.state.hub.live_count(), 0, "A took B's session over");
    pg.psql("ALTER ROLE lens_b LOGIN");
    health_becomes(b_addr, 200, "").await;
    eprintln!(
        "PostgreSQL down {outage:?}; A healthy {a_back:?} and B {:?} after it started",
        back.elapsed()
    );
    // The hold reaches the customer through the bus once it is written.
    cus.status("On Hold").await;
    // Resume claims the technician's one Active session in the store: it works again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = con
            .request(json!({"type": "resume", "session_id": id}))
            .await;
        if r["type"] == "ok" {
            break;
        }
        assert_eq!(r["code"], "node_unavailable", "{r}");
        assert!(Instant::now() < deadline, "resume still refused: {r}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cus.status("Active").await;
    tech.inbox
        .wait_for(TAG_VIDEO, 10, "video after the resume")
        .await;
    // The customer's socket is still carried from A to B (B closed no hosted socket).
    let r = cus.request(json!({"type": "chat", "text": "after"})).await;
    assert_eq!(r["type"], "ok", "{r}");
    con.until("the line after", |v| {
        v["type"] == "chat" && v["text"] == "after"
    })
    .await;
    let r = cus
        .request(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    assert_eq!(
        cus.frame("ended", None).await["status"],
        "Closed by technician"
    );

    // Everything stored: one row, owned by B all along, never Reconnecting.
    let pool = a.state.store.pool();
    let rows: Vec<(i64, String, Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT id, status, node_id, ended_at FROM sessions")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, id);
    assert_eq!(rows[0].1, "Closed by technician");
    assert_eq!(rows[0].2.as_deref(), Some("pg-b"));
    assert!(rows[0].3.is_some());
    let detail = a
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    let to: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        to,
        [
            "Connecting",
            "Waiting",
            "Active",
            "On Hold",
            "Active",
            "Closed by technician"
        ],
        "{detail}"
    );
    let lines: Vec<&str> = detail["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["before", "during", "after"], "{detail}");
    phone.peer.pc.close().await.ok();
    tech.pc.close().await.ok();
}

/// One gauge's value on a server's `/metrics`.
async fn gauge(s: &TestServer, name: &str) -> f64 {
    let metrics = s.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// A node on PostgreSQL (`url`: the database of the first node; a fresh one when `None`) whose
/// sessions stay on the node that creates them, whatever the loads.
async fn pg_node(id: &'static str, url: Option<String>) -> Option<TestServer> {
    start_on(Backend::Postgres, move |c| {
        c.cluster.node_id = id.into();
        c.cluster.placement = lens::config::Placement::Local;
        if let Some(url) = url {
            c.database_url = url;
        }
    })
    .await
}

/// Several nodes on one PostgreSQL (issue 15): the customer's socket on node A, the console's on
/// node B, the session and its room on node C. Signaling is routed to C; both peers' media goes to
/// C's SFU, whose candidates their SDP carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_with_the_customer_the_console_and_the_room_on_three_nodes() {
    let Some(a) = pg_node("node-a", None).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let b = pg_node("node-b", Some(url.clone())).await.unwrap();
    let c = pg_node("node-c", Some(url)).await.unwrap();
    let runtime = default_runtime().unwrap();
    let (_, _, token) = technician_with(&a, "three-nodes@example.com", |_| {}).await;
    let (mut con, _) = console(&b, &token).await;
    let (id, pin) = create_pin(&c, &token).await;
    let (mut cus, joined) = customer(&a, &pin).await;
    assert_eq!(joined["type"], "ok", "{joined}");
    ready_and_picked_up(&mut con, &mut cus, id).await;
    let mut phone = phone_media(&runtime, &mut cus).await;
    let mut tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x3333).await;
    tech.inbox.wait_for(TAG_VIDEO, 20, "video via C").await;
    tech.inbox
        .wait_for(TAG_CUSTOMER_AUDIO, 20, "customer audio via C")
        .await;
    phone
        .peer
        .inbox
        .wait_for(TAG_TECH1_AUDIO, 20, "technician audio via C")
        .await;
    // The room is on C alone, both peers connected to it.
    assert_eq!(gauge(&c, "lens_media_rooms").await, 1.0);
    assert_eq!(gauge(&c, "lens_media_peers_connected").await, 2.0);
    for other in [&a, &b] {
        assert_eq!(gauge(other, "lens_media_rooms").await, 0.0);
    }

    // Hold stops the media both ways; resume brings it back.
    let r = con.request(json!({"type": "hold", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.status("On Hold").await;
    let r = con
        .request(json!({"type": "resume", "session_id": id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.status("Active").await;
    tech.inbox
        .wait_for(TAG_VIDEO, 10, "video after resume")
        .await;
    phone
        .peer
        .inbox
        .wait_for(TAG_TECH1_AUDIO, 10, "technician audio after resume")
        .await;
    // The technician mutes the customer: its audio stops at the console.
    let r = con
        .request(json!({"type": "mute", "session_id": id, "target": "customer", "kind": "audio", "muted": true}))
        .await;
    let at = Instant::now();
    assert_eq!(r["type"], "ok", "{r}");
    // The routed reply comes a bus trip after the owner acted; allow for it.
    tech.inbox
        .assert_stopped(TAG_CUSTOMER_AUDIO, at, "customer muted through B")
        .await;
    // Chat across both routes, then the end.
    cus.request(json!({"type": "chat", "text": "over three nodes"}))
        .await;
    con.until("the customer's line", |v| {
        v["type"] == "chat" && v["text"] == "over three nodes"
    })
    .await;
    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    assert_eq!(
        cus.frame("ended", None).await["status"],
        "Closed by technician"
    );
    phone.peer.pc.close().await.ok();
    tech.pc.close().await.ok();
}

/// Failover (issue 15): the node that holds the session (C, the real binary) is killed with
/// SIGKILL mid-session; another node takes the session over, the customer resumes through its
/// socket on A, the phone offers again and the console answers the new offer: media flows again
/// through the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_again_through_another_node_after_the_owner_is_killed() {
    let Some(a) = pg_node("node-a", None).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let b = pg_node("node-b", Some(url.clone())).await.unwrap();
    let c_addr = free_addr();
    let dir = a.dir.path().join("node-c");
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = spawn(
        &dir,
        c_addr,
        &[
            ("LENS_DATABASE_URL", url.as_str()),
            ("LENS_CLUSTER_NODE_ID", "node-c"),
            ("LENS_CLUSTER_PLACEMENT", "local"),
        ],
    )
    .await;
    let runtime = default_runtime().unwrap();
    let (_, _, token) = technician_with(&a, "failover-media@example.com", |_| {}).await;
    let (mut con, _) = console(&b, &token).await;
    let created = common::call(
        c_addr,
        reqwest::Method::POST,
        "/api/v1/sessions",
        Some(&token),
        json!({"method": "pin"}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let (mut cus, joined) = customer(&a, created["pin"].as_str().unwrap()).await;
    assert_eq!(joined["type"], "ok", "{joined}");
    ready_and_picked_up(&mut con, &mut cus, id).await;
    let phone = phone_media(&runtime, &mut cus).await;
    let mut tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x3333).await;
    tech.inbox.wait_for(TAG_VIDEO, 10, "video via C").await;

    c.child.kill().unwrap();
    c.child.wait().unwrap();
    let killed = Instant::now();
    // Nobody does anything: A re-homes the customer's socket to the node that takes the session
    // over, which tells the phone to offer again; the console answers the new owner's offer.
    let (mut phone, reason) = reoffered(&runtime, &mut cus, phone, Duration::from_secs(30)).await;
    assert_eq!(reason, "node_failed");
    tech.pc.close().await.ok();
    let mut tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x4444).await;
    tech.inbox
        .wait_for(TAG_VIDEO, 10, "video after the takeover")
        .await;
    tech.inbox
        .wait_for(TAG_CUSTOMER_AUDIO, 10, "customer audio after the takeover")
        .await;
    phone
        .peer
        .inbox
        .wait_for(TAG_TECH1_AUDIO, 10, "technician audio after the takeover")
        .await;
    let back = killed.elapsed();
    eprintln!("media flowed again {back:?} after the SIGKILL");
    // The issue's bar: media again within 15 s of the kill, nobody doing anything.
    assert!(
        back < Duration::from_secs(15),
        "media back only after {back:?}"
    );
    let owner: (String,) = sqlx::query_as("SELECT node_id FROM sessions WHERE id = $1")
        .bind(id)
        .fetch_one(a.state.store.pool())
        .await
        .unwrap();
    let owner = if owner.0 == "node-a" { &a } else { &b };
    assert_eq!(gauge(owner, "lens_media_rooms").await, 1.0);
    phone.peer.pc.close().await.ok();
    tech.pc.close().await.ok();
}

/// Drain (issue 15): the node that holds the session (C, the real binary) gets SIGTERM
/// mid-session. It moves the session to another node, which keeps its status; the customer's
/// socket on A is re-homed there and the phone, told to offer again, does so from a new peer
/// connection; the console answers the new owner's offer; media flows again; C exits. The session
/// stays one session (one id, no Reconnecting, no Disconnected), and its recording continues in a
/// second file listed with the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_on_with_its_status_when_its_node_drains_with_sigterm() {
    let Some(a) = pg_node("node-a", None).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let b = pg_node("node-b", Some(url.clone())).await.unwrap();
    let c_addr = free_addr();
    let dir = a.dir.path().join("node-c");
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = spawn(
        &dir,
        c_addr,
        &[
            ("LENS_DATABASE_URL", url.as_str()),
            ("LENS_CLUSTER_NODE_ID", "node-c"),
            ("LENS_CLUSTER_PLACEMENT", "local"),
        ],
    )
    .await;
    let folder = tempfile::tempdir().unwrap();
    let location = folder.path().to_str().unwrap().to_owned();
    let runtime = default_runtime().unwrap();
    let (_, _, token) = technician_with(&a, "drain-media@example.com", |doc| {
        doc["screen_recording"] =
            json!({"forced": true, "location": location, "deferred_upload": false});
    })
    .await;
    let (mut con, _) = console(&b, &token).await;
    let created = common::call(
        c_addr,
        reqwest::Method::POST,
        "/api/v1/sessions",
        Some(&token),
        json!({"method": "pin"}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let (mut cus, joined) = customer(&a, created["pin"].as_str().unwrap()).await;
    assert_eq!(joined["type"], "ok", "{joined}");
    ready_and_picked_up(&mut con, &mut cus, id).await;
    let phone = phone_media(&runtime, &mut cus).await;
    let mut tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x3333).await;
    tech.inbox.wait_for(TAG_VIDEO, 10, "video via C").await;
    // The customer mutes its video before the move: the mute moves with the session.
    let r = cus
        .request(json!({"type": "mute", "kind": "video", "muted": true}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.backlog.clear();

    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(c.child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let drained = Instant::now();
    let (mut phone, reason) = reoffered(&runtime, &mut cus, phone, Duration::from_secs(30)).await;
    assert_eq!(reason, "node_moved");
    tech.pc.close().await.ok();
    let mut tech = console_media(&runtime, &mut con, id, TAG_TECH1_AUDIO, 0x4444).await;
    tech.inbox
        .wait_for(TAG_CUSTOMER_AUDIO, 10, "customer audio after the move")
        .await;
    phone
        .peer
        .inbox
        .wait_for(TAG_TECH1_AUDIO, 10, "technician audio after the move")
        .await;
    let gap = drained.elapsed();
    // The video was muted on C: it stays muted on the new owner until the customer unmutes it.
    let r = cus
        .request(json!({"type": "mute", "kind": "video", "muted": false}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    tech.inbox
        .wait_for(TAG_VIDEO, 10, "video after the move and the unmute")
        .await;
    eprintln!("drain: media flowed again {gap:?} after the SIGTERM");

    // C exits once it holds nothing.
    let exit_deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = c.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < exit_deadline, "node C did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let pool = a.state.store.pool();
    let owner: (String, String) =
        sqlx::query_as("SELECT node_id, status FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(
        ["node-a", "node-b"].contains(&owner.0.as_str()),
        "{owner:?}"
    );
    assert_eq!(owner.1, "Active");
    // The customer never saw the session leave Active.
    assert!(
        cus.backlog
            .iter()
            .all(|v| v["type"] != "status" || v["status"] == "Active"),
        "{:?}",
        cus.backlog
    );

    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.frame("ended", None).await;
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT from_status, to_status FROM session_events WHERE session_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap();
    let path: Vec<&str> = events.iter().map(|(_, to)| to.as_str()).collect();
    assert_eq!(
        path,
        ["Connecting", "Waiting", "Active", "Closed by technician"],
        "{events:?}"
    );
    let seqs: Vec<(i64,)> =
        sqlx::query_as("SELECT seq FROM session_events WHERE session_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        seqs.iter().map(|s| s.0).collect::<Vec<_>>(),
        (1..=seqs.len() as i64).collect::<Vec<_>>()
    );

    // Two files of one session, listed together, both complete.
    let m = a.master().await;
    let path = format!("/api/v1/sessions/{id}/recordings");
    let deadline = Instant::now() + ARRIVAL;
    let list = loop {
        let list = a.get(&path, &m).await.expect(200);
        let done = list
            .as_array()
            .is_some_and(|l| l.len() == 2 && l.iter().all(|r| r["status"] == "uploaded"));
        if done {
            break list;
        }
        assert!(Instant::now() < deadline, "recordings: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for r in list.as_array().unwrap() {
        assert_eq!(r["session_id"], id);
        assert!(r["size_bytes"].as_i64().unwrap() > 0, "{r}");
        assert!(
            folder
                .path()
                .join(r["file_name"].as_str().unwrap())
                .exists(),
            "{r}"
        );
    }
    assert_ne!(list[0]["file_name"], list[1]["file_name"]);
    // The Recordings list, filtered to the session (its report row's link), has both.
    let listed = a
        .get(&format!("/api/v1/recordings?session_id={id}"), &m)
        .await
        .expect(200);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    phone.peer.pc.close().await.ok();
    tech.pc.close().await.ok();
}
