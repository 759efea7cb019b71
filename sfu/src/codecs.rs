//! Which video codec the phone sends, chosen from its offer.
//!
//! str0m writes an answer's codecs in the order of the answerer's `CodecConfig`, not the offer's:
//! with our config (VP8 before H.264) a Chromium offer listing H.264 first was answered VP8 first,
//! and a browser sends the first codec of the answer. So the customer's `Rtc` is built with one
//! video codec only: the first in the offer's order (after the server's `media.video_codecs`
//! preference) among those the SFU forwards and the recorder writes. The answer then carries
//! exactly that codec and its RTX, the phone can send nothing else, and the console is offered
//! the same one (see `SfuHandle::technician_offer`).

use std::fmt;
use std::str::FromStr;

use str0m::format::{Codec, CodecConfig, CodecSpec, FormatParams, PayloadParams};
use str0m::media::Frequency;

/// A video codec the SFU forwards (and the recorder writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Vp8,
    /// Profile 0 only (8-bit 4:2:0), which every WebRTC VP9 decoder takes.
    Vp9,
    H264,
}

impl VideoCodec {
    /// Every video codec the SFU negotiates.
    pub const ALL: [VideoCodec; 3] = [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264];

    /// The lower-case name used in `media.video_codecs`.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::H264 => "h264",
        }
    }

    /// The forwarded video codec `codec` is, if any.
    pub(crate) fn of(codec: Codec) -> Option<VideoCodec> {
        VideoCodec::ALL.into_iter().find(|c| c.codec() == codec)
    }

    fn codec(self) -> Codec {
        match self {
            VideoCodec::Vp8 => Codec::Vp8,
            VideoCodec::Vp9 => Codec::Vp9,
            VideoCodec::H264 => Codec::H264,
        }
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VideoCodec {
    type Err = String;

    /// `vp8`, `vp9`, `h264` (any case).
    fn from_str(s: &str) -> Result<Self, String> {
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown video codec {s:?} (known: vp8, vp9, h264)"))
    }
}

/// The video codecs of the offer's first video section, in the offer's order, each with the RTX
/// payload type the offer pairs with it. Read from the text because str0m does not expose the
/// parsed offer; str0m has already parsed the same text successfully when this runs.
pub(crate) fn offered_video(sdp: &str) -> Vec<PayloadParams> {
    let mut order: Vec<u8> = Vec::new();
    let mut rtpmaps: Vec<(u8, Codec, u32)> = Vec::new();
    let mut fmtps: Vec<(u8, &str)> = Vec::new();
    let mut in_video = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if !order.is_empty() {
                break;
            }
            in_video = m.starts_with("video ");
            if in_video {
                order = m
                    .split_whitespace()
                    .skip(3)
                    .filter_map(|pt| pt.parse().ok())
                    .collect();
            }
            continue;
        }
        if !in_video {
            continue;
        }
        if let Some((pt, rest)) = line.strip_prefix("a=rtpmap:").and_then(pt_and_rest) {
            let mut parts = rest.split('/');
            let codec = Codec::from(parts.next().unwrap_or(""));
            let clock = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            rtpmaps.push((pt, codec, clock));
        } else if let Some((pt, rest)) = line.strip_prefix("a=fmtp:").and_then(pt_and_rest) {
            fmtps.push((pt, rest));
        }
    }
    let fmtp = |pt: u8| fmtps.iter().find(|(p, _)| *p == pt).map(|(_, v)| *v);
    let rtx_of = |pt: u8| {
        rtpmaps
            .iter()
            .filter(|(_, codec, _)| *codec == Codec::Rtx)
            .find(|(rtx, _, _)| {
                fmtp(*rtx).is_some_and(|v| {
                    v.split(';')
                        .any(|kv| kv.trim().strip_prefix("apt=") == Some(&pt.to_string()))
                })
            })
            .map(|(rtx, _, _)| *rtx)
    };
    order
        .iter()
        .filter_map(|pt| {
            let (_, codec, clock) = rtpmaps.iter().find(|(p, _, _)| p == pt)?;
            if !codec.is_video() || *clock != 90_000 {
                return None;
            }
            let spec = CodecSpec {
                codec: *codec,
                clock_rate: Frequency::NINETY_KHZ,
                channels: None,
                format: fmtp(*pt).map(FormatParams::parse_line).unwrap_or_default(),
            };
            Some(PayloadParams::new(
                (*pt).into(),
                rtx_of(*pt).map(Into::into),
                spec,
            ))
        })
        .collect()
}

fn pt_and_rest(s: &str) -> Option<(u8, &str)> {
    let (pt, rest) = s.split_once(' ')?;
    Some((pt.parse().ok()?, rest.trim()))
}

/// The offered video codec the phone will send: among the offered ones `config` can take, the
/// first by the server's `preference` (codecs it does not list come after, in the phone's
/// order), then by the offer's order. Returned with the offer's payload types, its spec and
/// str0m's feedback settings for that codec.
pub(crate) fn choose_video(
    config: &CodecConfig,
    offered: &[PayloadParams],
    preference: &[VideoCodec],
) -> Option<PayloadParams> {
    let rank = |p: &PayloadParams| {
        preference
            .iter()
            .position(|c| c.codec() == p.spec().codec)
            .unwrap_or(preference.len())
    };
    offered
        .iter()
        .enumerate()
        .filter_map(|(i, p)| config.match_params(*p).map(|ours| (rank(p), i, p, *ours)))
        .min_by_key(|(rank, i, _, _)| (*rank, *i))
        .map(|(_, _, p, ours)| {
            let mut q = PayloadParams::new(p.pt(), p.resend(), p.spec());
            q.set_fb_transport_cc(ours.fb_transport_cc());
            q.set_fb_nack(ours.fb_nack());
            q.set_fb_pli(ours.fb_pli());
            q.set_fb_fir(ours.fb_fir());
            q.set_fb_remb(ours.fb_remb());
            q
        })
}

/// `config` with its video codecs replaced by `video` alone (audio kept as configured).
pub(crate) fn only_video(config: &CodecConfig, video: PayloadParams) -> CodecConfig {
    let mut params: Vec<PayloadParams> = vec![video];
    params.extend(
        config
            .params()
            .iter()
            .filter(|p| !p.spec().codec.is_video())
            .copied(),
    );
    CodecConfig::new_from_payload_params(params)
}

/// Drops the VP9 profiles other than 0 that str0m's `enable_vp9` adds.
pub(crate) fn vp9_profile_0_only(config: &mut CodecConfig) {
    let kept: Vec<PayloadParams> = config
        .params()
        .iter()
        .filter(|p| p.spec().codec != Codec::Vp9 || p.spec().format.profile_id.unwrap_or(0) == 0)
        .copied()
        .collect();
    *config = CodecConfig::new_from_payload_params(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The video section of a Chromium offer whose page put H.264 first
    /// (`setCodecPreferences`), shortened.
    const H264_FIRST: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102 103 104 105 96 97 98 99 35\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
        a=rtpmap:104 H264/90000\r\n\
        a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
        a=rtpmap:105 rtx/90000\r\na=fmtp:105 apt=104\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n\
        a=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n\
        a=rtpmap:35 AV1/90000\r\n";

    fn ours() -> CodecConfig {
        let mut c = CodecConfig::new_with_defaults();
        c.clear();
        c.enable_opus(true, false);
        c.enable_vp8(true);
        c.enable_h264(true);
        c.enable_vp9(true);
        vp9_profile_0_only(&mut c);
        c
    }

    #[test]
    fn the_offer_is_read_in_its_order_with_rtx_pairs() {
        let offered = offered_video(H264_FIRST);
        let pts: Vec<(u8, Option<u8>)> = offered
            .iter()
            .map(|p| (*p.pt(), p.resend().map(|r| *r)))
            .collect();
        assert_eq!(
            pts,
            [
                (102, Some(103)),
                (104, Some(105)),
                (96, Some(97)),
                (98, Some(99)),
                (35, None)
            ]
        );
        assert_eq!(offered[0].spec().format.profile_level_id, Some(0x42001f));
        assert_eq!(offered[3].spec().format.profile_id, Some(0));
    }

    #[test]
    fn the_phones_order_wins_unless_the_server_prefers_otherwise() {
        let offered = offered_video(H264_FIRST);
        let config = ours();
        let chosen = choose_video(&config, &offered, &[]).unwrap();
        assert_eq!(chosen.spec().codec, Codec::H264);
        assert_eq!(
            (*chosen.pt(), chosen.resend().map(|r| *r)),
            (102, Some(103))
        );
        assert!(chosen.fb_nack() && chosen.fb_pli());
        let vp9 = choose_video(&config, &offered, &[VideoCodec::Vp9]).unwrap();
        assert_eq!((vp9.spec().codec, *vp9.pt()), (Codec::Vp9, 98));
        // AV1 is not forwarded: preferring it falls back to the phone's order.
        let only_vp8 = &offered[2..3];
        assert_eq!(
            choose_video(&config, only_vp8, &[VideoCodec::H264])
                .unwrap()
                .spec()
                .codec,
            Codec::Vp8
        );
        assert!(choose_video(&config, &offered[4..], &[]).is_none());
    }

    #[test]
    fn only_the_chosen_video_codec_is_kept_beside_audio() {
        let config = ours();
        let chosen = choose_video(&config, &offered_video(H264_FIRST), &[]).unwrap();
        let one = only_video(&config, chosen);
        let video: Vec<_> = one
            .params()
            .iter()
            .filter(|p| p.spec().codec.is_video())
            .collect();
        assert_eq!(video.len(), 1);
        assert!(one.params().iter().any(|p| p.spec().codec == Codec::Opus));
    }

    #[test]
    fn names_parse_both_ways() {
        for c in VideoCodec::ALL {
            assert_eq!(c.name().parse::<VideoCodec>(), Ok(c));
        }
        assert_eq!("H264".parse::<VideoCodec>(), Ok(VideoCodec::H264));
        assert!("av1".parse::<VideoCodec>().is_err());
    }
}
