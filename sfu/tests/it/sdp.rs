//! The phone's codec, and the SDP the server writes.
//!
//! Offers shaped like Chromium's (all its codecs, the page's choice first, as
//! `RTCRtpTransceiver.setCodecPreferences` orders them) go to the SFU; every SDP it writes — the
//! customer's answer, the console's offer, the answer to an ICE restart — must parse under
//! webrtc-rs' SDP grammar (`rtc-sdp`, an implementation independent of str0m), put directions
//! only on media sections, and carry only well-formed fmtp values. The answer holds exactly one
//! video codec (plus its RTX): the phone's first choice, or the server's preference.

use std::io::Cursor;

use rtc_sdp::SessionDescription;
use sfu::{CustomerAnswer, Sfu, SfuConfig, SfuError, SfuHandle, VideoCodec};

const FINGERPRINT: &str = "sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08";

/// Chromium's video codecs (payload type, rtpmap, fmtp, RTX payload type), in its default order.
const CHROMIUM_VIDEO: &[(u8, &str, &str, Option<u8>)] = &[
    (96, "VP8/90000", "", Some(97)),
    (98, "VP9/90000", "profile-id=0", Some(99)),
    (100, "VP9/90000", "profile-id=2", Some(101)),
    (
        102,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        Some(103),
    ),
    (
        104,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
        Some(105),
    ),
    (
        106,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        Some(107),
    ),
    (
        108,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        Some(109),
    ),
    (
        127,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
        Some(125),
    ),
    (45, "AV1/90000", "level-idx=5;profile=0;tier=0", Some(46)),
    (
        112,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f",
        Some(113),
    ),
    (114, "red/90000", "", Some(115)),
    (116, "ulpfec/90000", "", None),
];

/// A Chromium-like offer: video sendonly with `first` (a codec name) moved to the front of the
/// list, Opus sendrecv, one ICE ufrag.
fn chromium_offer(first: &str, ufrag: &str) -> String {
    let mut video: Vec<_> = CHROMIUM_VIDEO.to_vec();
    video.sort_by_key(|(_, map, _, _)| !map.starts_with(first));
    let pts: Vec<String> = video
        .iter()
        .flat_map(|(pt, _, _, rtx)| [Some(*pt), *rtx])
        .flatten()
        .map(|pt| pt.to_string())
        .collect();
    let transport = format!(
        "c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\n\
         a=ice-pwd:{ufrag}bP+XJMM09aR8AiX1jd\r\na=ice-options:trickle\r\n\
         a=fingerprint:{FINGERPRINT}\r\na=setup:actpass\r\n"
    );
    let mut sdp = format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS cam\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF {}\r\n{transport}a=mid:0\r\n\
         a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r\n\
         a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
         a=extmap:4 urn:3gpp:video-orientation\r\n\
         a=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
         a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
         a=sendonly\r\na=msid:cam v0\r\na=rtcp-mux\r\na=rtcp-rsize\r\n",
        pts.join(" ")
    );
    for (pt, map, fmtp, rtx) in &video {
        sdp.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
        if !map.starts_with("red") && !map.starts_with("ulpfec") {
            for fb in ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"] {
                sdp.push_str(&format!("a=rtcp-fb:{pt} {fb}\r\n"));
            }
        }
        if !fmtp.is_empty() {
            sdp.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
        }
        if let Some(rtx) = rtx {
            sdp.push_str(&format!(
                "a=rtpmap:{rtx} rtx/90000\r\na=fmtp:{rtx} apt={pt}\r\n"
            ));
        }
    }
    sdp.push_str(
        "a=ssrc-group:FID 1001 1002\r\na=ssrc:1001 cname:lens\r\na=ssrc:1001 msid:cam v0\r\n\
         a=ssrc:1002 cname:lens\r\na=ssrc:1002 msid:cam v0\r\n",
    );
    sdp.push_str(&format!(
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n{transport}a=mid:1\r\n\
         a=extmap:14 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
         a=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
         a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
         a=sendrecv\r\na=msid:cam a0\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
         a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n\
         a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n\
         a=ssrc:2001 cname:lens\r\na=ssrc:2001 msid:cam a0\r\n"
    ));
    sdp
}

/// One media section as read by the grammar parser: kind, formats, attributes.
struct Section {
    kind: String,
    formats: Vec<String>,
    attrs: Vec<(String, Option<String>)>,
}

impl Section {
    fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attrs
            .iter()
            .filter(move |(k, _)| k == key)
            .filter_map(|(_, v)| v.as_deref())
    }

    /// `a=rtpmap` as (payload type, encoding name).
    fn rtpmaps(&self) -> Vec<(u8, String)> {
        self.values("rtpmap")
            .map(|v| {
                let (pt, map) = v.split_once(' ').expect("rtpmap: PT then encoding");
                let name = map.split('/').next().unwrap().to_ascii_lowercase();
                (pt.parse().expect("rtpmap PT is a number"), name)
            })
            .collect()
    }

    /// The video codecs that are not retransmissions.
    fn media_codecs(&self) -> Vec<(u8, String)> {
        self.rtpmaps()
            .into_iter()
            .filter(|(_, name)| name != "rtx")
            .collect()
    }
}

/// Parses `sdp` with webrtc-rs' grammar and checks what the grammar leaves open: directions
/// only on media sections (exactly one each), rtpmap / fmtp only for listed payload types, and
/// every fmtp parameter's value. Returns the media sections.
fn check_sdp(what: &str, sdp: &str) -> Vec<Section> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp))
        .unwrap_or_else(|e| panic!("{what}: not valid SDP ({e}):\n{sdp}"));
    const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];
    for a in &desc.attributes {
        assert!(
            !DIRECTIONS.contains(&a.key.as_str()),
            "{what}: session-level a={} beside the media-level directions:\n{sdp}",
            a.key
        );
    }
    assert!(!desc.media_descriptions.is_empty(), "{what}: no media");
    let mut sections = Vec::new();
    for m in &desc.media_descriptions {
        let s = Section {
            kind: m.media_name.media.clone(),
            formats: m.media_name.formats.clone(),
            attrs: m
                .attributes
                .iter()
                .map(|a| (a.key.clone(), a.value.clone()))
                .collect(),
        };
        let directions = s
            .attrs
            .iter()
            .filter(|(k, _)| DIRECTIONS.contains(&k.as_str()))
            .count();
        assert_eq!(
            directions, 1,
            "{what}: {} directions in m={}",
            directions, s.kind
        );
        let maps = s.rtpmaps();
        for (pt, _) in &maps {
            assert!(
                s.formats.contains(&pt.to_string()),
                "{what}: a=rtpmap:{pt} for a payload type the m={} line does not list",
                s.kind
            );
        }
        for f in &s.formats {
            let pt: u8 = f.parse().unwrap_or_else(|_| panic!("{what}: format {f}"));
            assert!(
                pt < 96 || maps.iter().any(|(p, _)| *p == pt),
                "{what}: dynamic payload type {pt} without a=rtpmap"
            );
        }
        for fmtp in s.values("fmtp") {
            check_fmtp(what, fmtp, &maps);
        }
        for (pt, name) in &maps {
            if name == "rtx" {
                assert!(
                    s.values("fmtp")
                        .any(|f| f.starts_with(&format!("{pt} apt="))),
                    "{what}: RTX {pt} without apt"
                );
            }
        }
        sections.push(s);
    }
    sections
}

fn is_uint(v: &str) -> bool {
    !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit())
}

/// One `a=fmtp` value: `PT params`, each parameter known and with a valid value.
fn check_fmtp(what: &str, fmtp: &str, maps: &[(u8, String)]) {
    let (pt, params) = fmtp
        .split_once(' ')
        .unwrap_or_else(|| panic!("{what}: a=fmtp:{fmtp} has no parameters"));
    let pt: u8 = pt
        .parse()
        .unwrap_or_else(|_| panic!("{what}: a=fmtp:{fmtp}: payload type"));
    let codec = maps
        .iter()
        .find(|(p, _)| *p == pt)
        .map(|(_, n)| n.as_str())
        .unwrap_or_else(|| panic!("{what}: a=fmtp:{fmtp} for a payload type without rtpmap"));
    let bad = |why: &str| -> ! { panic!("{what}: a=fmtp:{fmtp}: {why}") };
    if codec == "red" {
        // RFC 2198: the redundant payload types, `111/111`.
        if !params
            .split('/')
            .all(|p| p.parse::<u8>().is_ok_and(|p| maps.iter().any(|m| m.0 == p)))
        {
            bad("red lists a payload type that is not in the section");
        }
        return;
    }
    if codec == "telephone-event" {
        if !params
            .split_once('-')
            .is_some_and(|(a, b)| is_uint(a) && is_uint(b))
        {
            bad("telephone-event wants a range such as 0-16");
        }
        return;
    }
    for kv in params.split(';') {
        let Some((key, value)) = kv.split_once('=') else {
            bad(&format!("{kv:?} is not key=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        let ok = match key {
            "maxplaybackrate" | "sprop-maxcapturerate" => {
                is_uint(value) && (8000..=48000).contains(&value.parse::<u32>().unwrap_or(0))
            }
            "minptime" | "ptime" | "maxptime" | "maxaveragebitrate" => {
                is_uint(value) && value.parse::<u32>().unwrap_or(0) > 0
            }
            "useinbandfec"
            | "usedtx"
            | "stereo"
            | "sprop-stereo"
            | "cbr"
            | "level-asymmetry-allowed" => value == "0" || value == "1",
            "packetization-mode" => value == "0" || value == "1",
            "profile-level-id" => value.len() == 6 && value.bytes().all(|b| b.is_ascii_hexdigit()),
            "profile-id" => codec == "vp9" && matches!(value, "0" | "1" | "2" | "3"),
            "profile" => codec == "av1" && matches!(value, "0" | "1" | "2"),
            "level-idx" => is_uint(value) && value.parse::<u32>().unwrap_or(99) <= 31,
            "tier" => value == "0" || value == "1",
            "apt" => {
                codec == "rtx"
                    && value
                        .parse::<u8>()
                        .is_ok_and(|apt| maps.iter().any(|(p, n)| *p == apt && n != "rtx"))
            }
            _ => bad(&format!("unknown parameter {key}")),
        };
        if !ok {
            bad(&format!("{key}={value} is not a valid value"));
        }
    }
}

fn sfu(preference: &[VideoCodec]) -> SfuHandle {
    let mut config = SfuConfig::new("127.0.0.1:0".parse().unwrap(), None).with_shards(1);
    config.video_codecs = preference.to_vec();
    let (sfu, threads) = Sfu::start(config).unwrap();
    // The shard stops with the last handle; nothing to join.
    drop(threads);
    sfu
}

fn ready(answer: CustomerAnswer) -> String {
    match answer {
        CustomerAnswer::Ready(sdp) => sdp,
        CustomerAnswer::Pending(_) => panic!("a new peer connection is answered at once"),
    }
}

/// The one video codec (name, payload type) of a section, and its RTX payload type.
fn one_video_codec(what: &str, video: &Section) -> (String, u8, Option<u8>) {
    let codecs = video.media_codecs();
    assert_eq!(codecs.len(), 1, "{what}: video codecs {codecs:?}");
    let (pt, name) = codecs[0].clone();
    let rtx = video
        .values("fmtp")
        .find_map(|f| f.strip_suffix(&format!(" apt={pt}")))
        .map(|r| r.parse().unwrap());
    let formats: Vec<u8> = video.formats.iter().map(|f| f.parse().unwrap()).collect();
    assert_eq!(
        formats,
        [Some(pt), rtx].into_iter().flatten().collect::<Vec<_>>(),
        "{what}: the m=video line lists the codec and its RTX only"
    );
    (name, pt, rtx)
}

#[tokio::test]
async fn the_phone_sends_its_first_codec_and_every_sdp_the_server_writes_is_valid() {
    let sfu = sfu(&[]);
    for (session, first, pt) in [(1, "VP8", 96), (2, "H264", 102), (3, "VP9", 98)] {
        sfu.start(session, true).unwrap();
        let offer = chromium_offer(first, "EsAw");
        check_sdp("the test's own offer", &offer);
        let what = format!("answer to a {first}-first offer");
        let answer = ready(sfu.customer_offer(session, &offer).unwrap());
        let sections = check_sdp(&what, &answer);
        let video = sections.iter().find(|s| s.kind == "video").unwrap();
        let (name, got_pt, rtx) = one_video_codec(&what, video);
        assert_eq!(
            (name.as_str(), got_pt),
            (first.to_ascii_lowercase().as_str(), pt),
            "{what}"
        );
        assert!(rtx.is_some(), "{what}: the phone's RTX is kept");
        let audio = sections.iter().find(|s| s.kind == "audio").unwrap();
        assert_eq!(
            audio.media_codecs(),
            [(111, "opus".to_string())],
            "{what}: Opus only"
        );
        println!("{what}: video {name} PT {got_pt}, RTX {rtx:?}");

        let what = format!("console offer after a {first}-first offer");
        let console = sfu.technician_offer(session).unwrap();
        let sections = check_sdp(&what, &console);
        let video = sections.iter().find(|s| s.kind == "video").unwrap();
        let (name, console_pt, console_rtx) = one_video_codec(&what, video);
        assert_eq!(
            (name.as_str(), console_pt),
            (first.to_ascii_lowercase().as_str(), pt),
            "{what}: exactly the phone's codec, same payload type"
        );
        assert!(console_rtx.is_some(), "{what}: NACKs are answered over RTX");

        // An ICE restart from the same peer connection: new credentials, same fingerprint,
        // answered by the live peer.
        let what = format!("ICE-restart answer ({first})");
        let again = sfu
            .customer_offer(session, &chromium_offer(first, "Rq9z"))
            .unwrap();
        assert!(matches!(again, CustomerAnswer::Pending(_)), "{what}");
        let restart = again.sdp().await.unwrap();
        let sections = check_sdp(&what, &restart);
        let video = sections.iter().find(|s| s.kind == "video").unwrap();
        assert_eq!(one_video_codec(&what, video).1, pt, "{what}");
    }
}

#[tokio::test]
async fn the_servers_preference_comes_before_the_phones_order() {
    let sfu = sfu(&[VideoCodec::Vp9, VideoCodec::H264]);
    for (session, first, want) in [(1, "VP8", "vp9"), (2, "H264", "vp9"), (3, "VP9", "vp9")] {
        sfu.start(session, false).unwrap();
        let what = format!("answer to a {first}-first offer, server prefers VP9");
        let answer = ready(
            sfu.customer_offer(session, &chromium_offer(first, "EsAw"))
                .unwrap(),
        );
        let sections = check_sdp(&what, &answer);
        let video = sections.iter().find(|s| s.kind == "video").unwrap();
        assert_eq!(one_video_codec(&what, video).0, want, "{what}");
    }
}

#[test]
fn a_phone_without_the_preferred_codec_sends_its_own() {
    let sfu = sfu(&[VideoCodec::H264]);
    sfu.start(1, false).unwrap();
    let offer = chromium_offer("VP8", "EsAw");
    // Drop every video codec but VP8 and its RTX from the m-line (their attributes may stay:
    // the grammar allows them, str0m ignores them).
    let offer = offer
        .lines()
        .map(|l| {
            if l.starts_with("m=video") {
                "m=video 9 UDP/TLS/RTP/SAVPF 96 97".to_string()
            } else {
                l.to_string()
            }
        })
        .filter(|l| {
            !(l.starts_with("a=rtpmap:") || l.starts_with("a=fmtp:") || l.starts_with("a=rtcp-fb:"))
                || ["96 ", "97 "]
                    .iter()
                    .any(|pt| l.contains(&format!(":{pt}")))
                || l.contains(":111 ")
                || l.contains(":63 ")
                || l.contains(":9 ")
                || l.contains(":0 ")
                || l.contains(":8 ")
                || l.contains(":13 ")
                || l.contains(":110 ")
                || l.contains(":126 ")
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n";
    let answer = ready(sfu.customer_offer(1, &offer).unwrap());
    let what = "answer to a VP8-only offer, server prefers H.264";
    let sections = check_sdp(what, &answer);
    let video = sections.iter().find(|s| s.kind == "video").unwrap();
    assert_eq!(one_video_codec(what, video).0, "vp8", "{what}");
}

#[test]
fn the_fmtp_check_refuses_what_the_issue_saw() {
    let maps = [(111, "opus".to_string()), (97, "rtx".to_string())];
    for bad in [
        "111 minptime=10;maxplaybackrate=0",
        "111 maxplaybackrate=",
        "111 useinbandfec=2",
        "111 whatever=1",
        "97 apt=96",
    ] {
        let caught = std::panic::catch_unwind(|| check_fmtp("test", bad, &maps));
        assert!(caught.is_err(), "{bad} passed the check");
    }
    check_fmtp("test", "111 minptime=10;useinbandfec=1", &maps);
    let caught = std::panic::catch_unwind(|| {
        check_sdp(
            "test",
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=sendrecv\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\n\
             a=rtpmap:111 opus/48000/2\r\n",
        )
    });
    assert!(
        caught.is_err(),
        "a session-level direction passed the check"
    );
}

/// Two offers to the console in a row (its `hello` and the phone's new peer connection after a
/// drain): the console's answer to the first arrives when the second is pending. It is refused
/// and the second offer stays pending for its own answer (the console answers each offer it gets).
#[tokio::test]
async fn an_answer_to_an_earlier_console_offer_leaves_the_newer_one_pending() {
    let sfu = sfu(&[]);
    sfu.start(7, true).unwrap();
    ready(
        sfu.customer_offer(7, &chromium_offer("VP8", "EsAw"))
            .unwrap(),
    );
    let first = sfu.technician_offer(7).unwrap();
    let second = sfu.technician_offer(7).unwrap();
    let answer = |offer: &str| {
        let mut console = str0m::RtcConfig::new().build(std::time::Instant::now());
        let offer = str0m::change::SdpOffer::from_sdp_string(offer).unwrap();
        console
            .sdp_api()
            .accept_offer(offer)
            .unwrap()
            .to_sdp_string()
    };
    let stale = sfu.technician_answer(7, &answer(&first)).unwrap_err();
    assert!(matches!(stale, SfuError::StaleAnswer(7)), "{stale}");
    sfu.technician_answer(7, &answer(&second)).unwrap();
    // Answered: nothing is pending any more.
    let again = sfu.technician_answer(7, &answer(&second)).unwrap_err();
    assert!(matches!(again, SfuError::NoPendingOffer(7)), "{again}");
}
