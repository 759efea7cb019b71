//! The media the simulated phones and consoles send: real VP8 or H.264 and real Opus, made once at
//! set-up by ffmpeg (libvpx or libx264, libopus) and cut into RTP payloads, then replayed in a loop
//! by every sender.
//!
//! Every payload sent gets a 13-byte trailer (`Stamp`): which stream it is, a per-stream packet
//! counter and the send time. The SFU passes payloads through byte for byte, so the receiver reads
//! the trailer to measure forwarding latency and loss without a header extension (str0m rewrites
//! abs-send-time with the server's own send time).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Room for SRTP, RTP header, extensions and the stamp under a 1200-byte datagram.
const MAX_VIDEO_CHUNK: usize = 1100;

/// The phone camera's codec (the SFU forwards either without transcoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// VP8 (libvpx), RFC 7741 packetization.
    Vp8,
    /// H.264 constrained baseline (libx264), RFC 6184 packetization-mode 1.
    H264,
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H.264",
        }
    }
    pub fn encoder(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "libvpx",
            VideoCodec::H264 => "libx264",
        }
    }
}

/// A video profile: what a phone's camera sends.
#[derive(Clone, Copy, Debug, clap::ValueEnum, serde::Serialize)]
pub enum Profile {
    #[value(name = "360p")]
    P360,
    #[value(name = "720p")]
    P720,
    #[value(name = "1080p")]
    P1080,
}

impl Profile {
    pub fn size(self) -> (u32, u32) {
        match self {
            Profile::P360 => (640, 360),
            Profile::P720 => (1280, 720),
            Profile::P1080 => (1920, 1080),
        }
    }
    pub fn kbps(self) -> u32 {
        match self {
            Profile::P360 => 500,
            Profile::P720 => 1500,
            Profile::P1080 => 3000,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Profile::P360 => "360p",
            Profile::P720 => "720p",
            Profile::P1080 => "1080p",
        }
    }
}

pub const FPS: u32 = 30;
pub const AUDIO_PTIME: Duration = Duration::from_millis(20);

/// One video frame as RTP payloads (VP8 payload descriptor, or H.264 NAL unit / FU-A headers,
/// included).
pub struct VideoFrame {
    pub payloads: Vec<Vec<u8>>,
}

/// The loops every sender replays.
pub struct Media {
    pub codec: VideoCodec,
    pub video: Vec<VideoFrame>,
    pub audio: Vec<Vec<u8>>,
}

impl Media {
    /// Encodes `seconds` of a test pattern and a tone with ffmpeg into `dir` (kept as a cache:
    /// a second run with the same profile reuses the files).
    pub fn make(dir: &Path, profile: Profile, codec: VideoCodec) -> anyhow::Result<Media> {
        std::fs::create_dir_all(dir)?;
        let (w, h) = profile.size();
        let kbps = profile.kbps();
        let rate = format!("{kbps}k");
        let (extension, encoder): (&str, Vec<&str>) = match codec {
            VideoCodec::Vp8 => (
                "ivf",
                vec![
                    "-c:v",
                    "libvpx",
                    "-deadline",
                    "realtime",
                    "-cpu-used",
                    "8",
                    "-f",
                    "ivf",
                ],
            ),
            // Constrained baseline as phones send it; access unit delimiters mark the frames.
            VideoCodec::H264 => (
                "h264",
                vec![
                    "-c:v",
                    "libx264",
                    "-profile:v",
                    "baseline",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                    "-x264-params",
                    "aud=1",
                    "-bufsize",
                    &rate,
                    "-bsf:v",
                    "h264_mp4toannexb",
                    "-f",
                    "h264",
                ],
            ),
        };
        let file = dir.join(format!("video-{}.{extension}", profile.name()));
        if !file.exists() {
            let tmp = dir.join(format!("video.tmp.{extension}"));
            let source = format!("testsrc2=size={w}x{h}:rate={FPS}");
            let mut args = vec!["-f", "lavfi", "-i", &source, "-t", "4"];
            args.extend([
                "-b:v", &rate, "-minrate", &rate, "-maxrate", &rate, "-g", "120",
            ]);
            args.extend(encoder);
            args.push(tmp.to_str().context("temp path")?);
            ffmpeg(&args)?;
            std::fs::rename(&tmp, &file)?;
        }
        let ogg = dir.join("audio.ogg");
        if !ogg.exists() {
            let tmp = dir.join("audio.tmp.ogg");
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "4",
                "-c:a",
                "libopus",
                "-b:a",
                "32k",
                "-frame_duration",
                "20",
                "-f",
                "ogg",
                tmp.to_str().context("temp path")?,
            ])?;
            std::fs::rename(&tmp, &ogg)?;
        }
        let data = std::fs::read(&file)?;
        let video = match codec {
            VideoCodec::Vp8 => ivf_frames(&data)?
                .into_iter()
                .map(|f| VideoFrame {
                    payloads: vp8_payloads(&f),
                })
                .collect::<Vec<_>>(),
            VideoCodec::H264 => h264_access_units(&data)
                .into_iter()
                .map(|nals| VideoFrame {
                    payloads: nals.iter().flat_map(|nal| h264_payloads(nal)).collect(),
                })
                .collect(),
        };
        let audio = ogg_packets(&std::fs::read(&ogg)?)?
            .into_iter()
            // The first two are the OpusHead and OpusTags headers.
            .skip(2)
            .collect::<Vec<_>>();
        if video.is_empty() || audio.is_empty() {
            bail!("ffmpeg made no media");
        }
        Ok(Media {
            codec,
            video,
            audio,
        })
    }

    /// Video bytes per second of the loop (RTP payloads), to report the offered load.
    pub fn video_bits_per_second(&self) -> f64 {
        let bytes: usize = self
            .video
            .iter()
            .flat_map(|f| f.payloads.iter())
            .map(Vec::len)
            .sum();
        bytes as f64 * 8.0 * f64::from(FPS) / self.video.len() as f64
    }

    pub fn video_packets_per_second(&self) -> f64 {
        let n: usize = self.video.iter().map(|f| f.payloads.len()).sum();
        n as f64 * f64::from(FPS) / self.video.len() as f64
    }
}

fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .context("running ffmpeg (install it: apt-get install ffmpeg)")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The frames of an IVF file (32-byte file header, then 12-byte frame headers).
fn ivf_frames(data: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    if data.len() < 32 || &data[..4] != b"DKIF" {
        bail!("not an IVF file");
    }
    let header = usize::from(u16::from_le_bytes([data[6], data[7]]));
    let mut at = header;
    let mut frames = Vec::new();
    while at + 12 <= data.len() {
        let size = u32::from_le_bytes(data[at..at + 4].try_into()?) as usize;
        at += 12;
        let end = at.checked_add(size).context("IVF frame size")?;
        if end > data.len() {
            bail!("IVF frame cut short");
        }
        frames.push(data[at..end].to_vec());
        at = end;
    }
    Ok(frames)
}

/// RFC 7741 packetization: a one-byte payload descriptor (S bit on the first packet, partition 0).
fn vp8_payloads(frame: &[u8]) -> Vec<Vec<u8>> {
    let n = frame.len().div_ceil(MAX_VIDEO_CHUNK).max(1);
    // Equal-sized chunks, as browsers do, so no tiny trailing packet.
    let size = frame.len().div_ceil(n);
    frame
        .chunks(size.max(1))
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = Vec::with_capacity(chunk.len() + 1 + STAMP_LEN);
            p.push(if i == 0 { 0x10 } else { 0x00 });
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

const NAL_SEI: u8 = 6;
const NAL_AUD: u8 = 9;
const NAL_FU_A: u8 = 28;

/// The NAL units of an Annex B stream, grouped by frame (an access unit delimiter starts each).
/// Delimiters and SEI (the encoder's banner) are left out: phones send neither.
fn h264_access_units(data: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units: Vec<Vec<&[u8]>> = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |next| next - 3);
        // A four-byte start code leaves a zero byte behind the previous NAL unit.
        while end > start && data[end - 1] == 0 {
            end -= 1;
        }
        let nal = &data[start..end];
        let Some(&header) = nal.first() else { continue };
        match header & 0x1f {
            NAL_AUD => units.push(Vec::new()),
            NAL_SEI => {}
            _ => match units.last_mut() {
                Some(unit) => unit.push(nal),
                None => units.push(vec![nal]),
            },
        }
    }
    units.retain(|u| !u.is_empty());
    units
}

/// RFC 6184 packetization-mode 1: a NAL unit that fits goes as it is (single NAL unit packet),
/// a bigger one as equal-sized FU-A fragments.
fn h264_payloads(nal: &[u8]) -> Vec<Vec<u8>> {
    if nal.len() <= MAX_VIDEO_CHUNK {
        return vec![nal.to_vec()];
    }
    let header = nal[0];
    let body = &nal[1..];
    let n = body.len().div_ceil(MAX_VIDEO_CHUNK - 2);
    let size = body.len().div_ceil(n);
    let last = body.len().div_ceil(size) - 1;
    body.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = Vec::with_capacity(chunk.len() + 2 + STAMP_LEN);
            p.push((header & 0xe0) | NAL_FU_A);
            let start = if i == 0 { 0x80 } else { 0 };
            let end = if i == last { 0x40 } else { 0 };
            p.push(start | end | (header & 0x1f));
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

/// The packets of an Ogg stream (one logical stream), joined across pages by the lacing values.
fn ogg_packets(data: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut at = 0;
    while at + 27 <= data.len() {
        if &data[at..at + 4] != b"OggS" {
            bail!("bad Ogg page at {at}");
        }
        let segments = usize::from(data[at + 26]);
        let table = at + 27;
        let mut body = table + segments;
        if body > data.len() {
            bail!("Ogg page cut short");
        }
        for &lace in &data[table..table + segments] {
            let lace = usize::from(lace);
            if body + lace > data.len() {
                bail!("Ogg segment cut short");
            }
            current.extend_from_slice(&data[body..body + lace]);
            body += lace;
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = body;
    }
    Ok(packets)
}

/// Which stream a payload belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stream {
    /// The phone's camera, to the technician.
    Video = b'V',
    /// The phone's microphone, to the technician.
    CustomerAudio = b'A',
    /// The technician's headset, to the phone.
    TechnicianAudio = b'T',
}

/// When a stream's next packet (audio) or frame (video) is due, and which one of the loop it is.
pub struct Pacer {
    pub stream: Stream,
    /// The stamp counter of the next packet.
    pub counter: u32,
    index: usize,
    pub rtp_time: u32,
    pub next: Instant,
    period: Duration,
    clock_step: u32,
}

impl Pacer {
    pub fn new(stream: Stream, rtp_time: u32) -> Pacer {
        let (period, clock_step) = if stream == Stream::Video {
            (Duration::from_secs(1) / FPS, 90_000 / FPS)
        } else {
            (AUDIO_PTIME, 960)
        };
        Pacer {
            stream,
            counter: 0,
            index: 0,
            rtp_time,
            next: Instant::now(),
            period,
            clock_step,
        }
    }

    /// The payloads due now: one video frame's or one audio packet.
    pub fn payloads<'a>(&self, media: &'a Media) -> &'a [Vec<u8>] {
        match self.stream {
            Stream::Video => &media.video[self.index % media.video.len()].payloads,
            _ => std::slice::from_ref(&media.audio[self.index % media.audio.len()]),
        }
    }

    /// What is due now (one video frame's payloads, or one audio packet), each stamped and
    /// counted as sent in `stats`, with the marker bit it takes (the frame's last packet), and
    /// the RTP time they carry; the pacer moves on to the next.
    pub fn take_due(
        &mut self,
        media: &Media,
        stats: &crate::stats::Stats,
        now: Instant,
    ) -> (u32, Vec<(Vec<u8>, bool)>) {
        let payloads = self.payloads(media);
        let video = self.stream == Stream::Video;
        let mut due = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.iter().enumerate() {
            let payload = stamped(payload, self.stream, self.counter);
            stats.sent(self.stream, payload.len());
            due.push((payload, video && i + 1 == payloads.len()));
            self.counter += 1;
        }
        let rtp_time = self.rtp_time;
        self.advance(now);
        (rtp_time, due)
    }

    /// After sending what was due at `now`.
    fn advance(&mut self, now: Instant) {
        self.index += 1;
        self.rtp_time = self.rtp_time.wrapping_add(self.clock_step);
        self.next += self.period;
        // After a stall, do not burst to catch up.
        if self.next < now {
            self.next = now + self.period;
        }
    }
}

pub const STAMP_LEN: usize = 13;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since the process' first stamp: sender and receiver are in this process.
pub fn now_micros() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// `payload` + stream tag + counter + send time.
pub fn stamped(payload: &[u8], stream: Stream, counter: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(payload.len() + STAMP_LEN);
    p.extend_from_slice(payload);
    p.push(stream as u8);
    p.extend_from_slice(&counter.to_be_bytes());
    p.extend_from_slice(&now_micros().to_be_bytes());
    p
}

/// A received payload's stamp: stream, counter, microseconds in flight.
pub fn read_stamp(payload: &[u8]) -> Option<(Stream, u32, u64)> {
    let t = payload.len().checked_sub(STAMP_LEN)?;
    let stream = match payload[t] {
        b'V' => Stream::Video,
        b'A' => Stream::CustomerAudio,
        b'T' => Stream::TechnicianAudio,
        _ => return None,
    };
    let counter = u32::from_be_bytes(payload[t + 1..t + 5].try_into().ok()?);
    let sent = u64::from_be_bytes(payload[t + 5..t + 13].try_into().ok()?);
    Some((stream, counter, now_micros().saturating_sub(sent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back() {
        let p = stamped(b"\x10abc", Stream::Video, 77);
        let (s, n, _) = read_stamp(&p).unwrap();
        assert_eq!((s, n), (Stream::Video, 77));
        assert_eq!(&p[..4], b"\x10abc");
        assert!(read_stamp(b"short").is_none());
    }

    #[test]
    fn vp8_frames_are_cut_into_equal_chunks_with_descriptors() {
        let frame = vec![7u8; 2500];
        let p = vp8_payloads(&frame);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0][0], 0x10);
        assert_eq!(p[1][0], 0x00);
        assert_eq!(p.iter().map(|c| c.len() - 1).sum::<usize>(), 2500);
    }

    #[test]
    fn h264_frames_split_at_delimiters_and_big_nal_units_become_fu_a() {
        let mut big = vec![0x65u8];
        big.extend((0..3000u32).map(|i| (i % 251) as u8 + 1));
        let mut stream = Vec::new();
        for nal in [
            &[0x09u8, 0xf0][..],
            &[0x67, 1, 2],
            &[0x68, 3],
            &[0x06, 9, 9],
            &big[..],
        ] {
            stream.extend_from_slice(&[0, 0, 0, 1]);
            stream.extend_from_slice(nal);
        }
        stream.extend_from_slice(&[0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 7, 7]);
        let units = h264_access_units(&stream);
        assert_eq!(units.len(), 2, "two frames");
        assert_eq!(units[0].len(), 3, "SPS, PPS, IDR; no delimiter, no SEI");
        assert_eq!(units[0][0], &[0x67, 1, 2]);
        assert_eq!(units[0][2], &big[..]);
        assert_eq!(units[1], vec![&[0x41u8, 7, 7][..]]);

        assert_eq!(h264_payloads(&[0x67, 1, 2]), vec![vec![0x67, 1, 2]]);
        let fu = h264_payloads(&big);
        assert_eq!(fu.len(), 3);
        assert!(
            fu.iter()
                .all(|p| p.len() <= MAX_VIDEO_CHUNK && p[0] == 0x7c)
        );
        assert_eq!(fu[0][1], 0x85, "start bit + IDR type");
        assert_eq!(fu[1][1], 0x05);
        assert_eq!(fu[2][1], 0x45, "end bit + IDR type");
        let joined: Vec<u8> = fu.iter().flat_map(|p| p[2..].to_vec()).collect();
        assert_eq!(joined, big[1..]);
    }
}
