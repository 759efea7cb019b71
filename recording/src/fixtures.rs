//! Test support (feature `fixtures`): real encoded frames made by ffmpeg, RTP packetizers like a
//! WebRTC sender's, and ffprobe. Used by this crate's tests and by the `lens` end-to-end tests;
//! not part of the recorder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Codec, RtpPacket, Source};

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when `tool` runs; otherwise skips (false) or, under CI, panics.
pub fn have_tool(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !ci(),
            "{tool} is missing but CI=true (apt-get install ffmpeg)"
        );
        eprintln!("skipped: {tool} not installed");
    }
    ok
}

pub const FPS: u32 = 25;
pub const SECONDS: u32 = 4;

fn ffmpeg(dir: &Path, args: &[&str]) -> PathBuf {
    let out = dir.join(args.last().expect("output name"));
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(&args[..args.len() - 1])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg {args:?}");
    out
}

/// Encoded video frames of a test pattern (320×240, 25 fps, keyframe every second).
pub fn video_frames(dir: &Path, codec: Codec) -> Vec<Vec<u8>> {
    video_frames_sized(dir, codec, 320, 240, SECONDS)
}

/// Encoded video frames of a `width`×`height` test pattern, 25 fps, a keyframe every second.
pub fn video_frames_sized(
    dir: &Path,
    codec: Codec,
    width: u32,
    height: u32,
    seconds: u32,
) -> Vec<Vec<u8>> {
    let secs = seconds.to_string();
    let source = format!("testsrc=size={width}x{height}:rate=25");
    let ivf = format!("v{width}x{height}.ivf");
    let h264 = format!("v{width}x{height}.h264");
    let base = [
        "-f",
        "lavfi",
        "-i",
        source.as_str(),
        "-t",
        &secs,
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
    ];
    match codec {
        Codec::Vp8 => {
            let mut a = base.to_vec();
            a.extend([
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-b:v",
                "300k",
                "-f",
                "ivf",
            ]);
            a.push(&ivf);
            parse_ivf(&std::fs::read(ffmpeg(dir, &a)).unwrap())
        }
        Codec::Vp9 => {
            let mut a = base.to_vec();
            // No look-ahead: no hidden alt-ref frames, one shown frame per picture as WebRTC sends.
            a.extend([
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-lag-in-frames",
                "0",
                "-b:v",
                "300k",
                "-f",
                "ivf",
            ]);
            a.push(&ivf);
            parse_ivf(&std::fs::read(ffmpeg(dir, &a)).unwrap())
        }
        Codec::H264 => {
            let mut a = base.to_vec();
            a.extend([
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-bf",
                "0",
                "-x264-params",
                "aud=1",
                "-f",
                "h264",
            ]);
            a.push(&h264);
            split_access_units(&std::fs::read(ffmpeg(dir, &a)).unwrap())
        }
        Codec::Opus => panic!("video_frames: {codec:?} is not a video codec"),
    }
}

/// 20 ms Opus packets of a 440 Hz tone.
pub fn opus_frames(dir: &Path) -> Vec<Vec<u8>> {
    opus_stream(dir, "sine=frequency=440:sample_rate=48000", &[], "a.ogg").1
}

/// 20 ms Opus packets (libopus, mono, encoder options `opts`) of an ffmpeg `lavfi` source,
/// `SECONDS` long, written to `name` (an Ogg file); returns the stream's pre-skip and the packets.
pub fn opus_stream(dir: &Path, lavfi: &str, opts: &[&str], name: &str) -> (u16, Vec<Vec<u8>>) {
    let secs = SECONDS.to_string();
    let mut a = vec![
        "-f",
        "lavfi",
        "-i",
        lavfi,
        "-t",
        &secs,
        "-ac",
        "1",
        "-c:a",
        "libopus",
        "-frame_duration",
        "20",
    ];
    a.extend_from_slice(opts);
    a.extend_from_slice(&["-f", "ogg", name]);
    let packets = parse_ogg(&std::fs::read(ffmpeg(dir, &a)).unwrap());
    // OpusHead (pre-skip at bytes 10..12) and OpusTags come first.
    let pre_skip = u16::from_le_bytes([packets[0][10], packets[0][11]]);
    (pre_skip, packets.into_iter().skip(2).collect())
}

/// The first audio stream of `file` decoded by ffmpeg to mono 48 kHz samples; `decoder`
/// chooses ffmpeg's decoder (e.g. `libopus`), `None` its default.
pub fn decode_audio(file: &Path, decoder: Option<&str>) -> Vec<f32> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error"]);
    if let Some(d) = decoder {
        cmd.args(["-c:a", d]);
    }
    let out = cmd
        .arg("-i")
        .arg(file)
        .args([
            "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "f32le", "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg decode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Amplitude of the `hz` component of `pcm` (48 kHz), by the Goertzel algorithm: about 0.5
/// for a sine of amplitude 0.5, near 0 when the tone is absent.
pub fn tone_level(pcm: &[f32], hz: f64) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s0 = x as f64 + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    2.0 * power.max(0.0).sqrt() / pcm.len() as f64
}

fn parse_ivf(b: &[u8]) -> Vec<Vec<u8>> {
    let header = u16::from_le_bytes([b[6], b[7]]) as usize;
    let mut i = header;
    let mut out = Vec::new();
    while i + 12 <= b.len() {
        let n = u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        out.push(b[i + 12..i + 12 + n].to_vec());
        i += 12 + n;
    }
    out
}

/// Annex-B NAL units (start codes removed), grouped into access units at each delimiter.
fn split_access_units(b: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= b.len() {
        if b[i] == 0 && b[i + 1] == 0 && b[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map_or(b.len(), |&n| n - 3);
        while e > s && b[e - 1] == 0 {
            e -= 1;
        }
        nals.push(&b[s..e]);
    }
    // Each access unit is returned as 4-byte-length-prefixed NAL units (easy to split again).
    let mut aus: Vec<Vec<u8>> = Vec::new();
    for n in nals {
        if n[0] & 0x1F == 9 {
            aus.push(Vec::new());
            continue;
        }
        let au = aus.last_mut().expect("stream starts with an AUD");
        au.extend_from_slice(&(n.len() as u32).to_be_bytes());
        au.extend_from_slice(n);
    }
    aus
}

pub fn nal_units(au: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= au.len() {
        let n = u32::from_be_bytes(au[i..i + 4].try_into().unwrap()) as usize;
        out.push(&au[i + 4..i + 4 + n]);
        i += 4 + n;
    }
    out
}

fn parse_ogg(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i + 27 <= b.len() {
        assert_eq!(&b[i..i + 4], b"OggS");
        let nseg = b[i + 26] as usize;
        let lacing = &b[i + 27..i + 27 + nseg];
        let mut d = i + 27 + nseg;
        for &l in lacing {
            cur.extend_from_slice(&b[d..d + l as usize]);
            d += l as usize;
            if l < 255 {
                out.push(std::mem::take(&mut cur));
            }
        }
        i = d;
    }
    out
}

/// Builds RTP packets the way a WebRTC sender does.
pub struct Packetizer {
    pub codec: Codec,
    pub ssrc: u32,
    pub seq: u16,
    pub ts0: u32,
    pub mtu: usize,
}

impl Packetizer {
    pub fn new(codec: Codec, ssrc: u32, seq: u16, ts0: u32) -> Self {
        Packetizer {
            codec,
            ssrc,
            seq,
            ts0,
            mtu: 1000,
        }
    }

    fn pkt(&mut self, ts: u32, marker: bool, payload: Vec<u8>, arrival: Instant) -> RtpPacket {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        RtpPacket {
            source: Source::Customer,
            codec: self.codec,
            clock_rate: if self.codec == Codec::Opus {
                48000
            } else {
                90000
            },
            ssrc: self.ssrc,
            seq: seq as u64,
            timestamp: ts,
            marker,
            payload: Bytes::from(payload),
            arrival,
            muted: false,
            video_orientation: None,
        }
    }

    /// The packets of one frame at RTP time `ts0 + rtp_offset`.
    pub fn frame(&mut self, frame: &[u8], rtp_offset: u32, arrival: Instant) -> Vec<RtpPacket> {
        let ts = self.ts0.wrapping_add(rtp_offset);
        match self.codec {
            Codec::Opus => vec![self.pkt(ts, true, frame.to_vec(), arrival)],
            Codec::Vp8 => {
                let chunks: Vec<&[u8]> = frame.chunks(self.mtu).collect();
                let n = chunks.len();
                chunks
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        // Extended descriptor with a 15-bit picture id, as Chrome sends.
                        let mut p = vec![if i == 0 { 0x90 } else { 0x80 }, 0x80, 0x80, 0x01];
                        p.extend_from_slice(c);
                        self.pkt(ts, i + 1 == n, p, arrival)
                    })
                    .collect()
            }
            Codec::Vp9 => {
                // RFC 9628 descriptor: I (15-bit picture id), P on inter pictures, B / E.
                let inter = frame.first().is_some_and(|b| b & 0x04 != 0);
                let chunks: Vec<&[u8]> = frame.chunks(self.mtu).collect();
                let n = chunks.len();
                chunks
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let mut b0 = 0x80;
                        if inter {
                            b0 |= 0x40;
                        }
                        if i == 0 {
                            b0 |= 0x08;
                        }
                        if i + 1 == n {
                            b0 |= 0x04;
                        }
                        let mut p = vec![b0, 0x80, 0x01];
                        p.extend_from_slice(c);
                        self.pkt(ts, i + 1 == n, p, arrival)
                    })
                    .collect()
            }
            Codec::H264 => {
                let nals = nal_units(frame);
                let mut payloads = Vec::new();
                let (params, rest): (Vec<&[u8]>, Vec<&[u8]>) =
                    nals.into_iter().partition(|n| matches!(n[0] & 0x1F, 7 | 8));
                if !params.is_empty() {
                    let mut stap = vec![0x78];
                    for n in params {
                        stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
                        stap.extend_from_slice(n);
                    }
                    payloads.push(stap);
                }
                for n in rest {
                    if n.len() <= self.mtu {
                        payloads.push(n.to_vec());
                        continue;
                    }
                    let (h, body) = (n[0], &n[1..]);
                    let chunks: Vec<&[u8]> = body.chunks(self.mtu).collect();
                    let k = chunks.len();
                    for (i, c) in chunks.into_iter().enumerate() {
                        let mut fu = (h & 0x1F) | if i == 0 { 0x80 } else { 0 };
                        if i + 1 == k {
                            fu |= 0x40;
                        }
                        let mut p = vec![(h & 0xE0) | 28, fu];
                        p.extend_from_slice(c);
                        payloads.push(p);
                    }
                }
                let n = payloads.len();
                payloads
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| self.pkt(ts, i + 1 == n, p, arrival))
                    .collect()
            }
        }
    }
}

#[derive(Debug)]
pub struct Probe {
    pub json: serde_json::Value,
}

impl Probe {
    pub fn stream(&self, kind: &str) -> Option<&serde_json::Value> {
        self.json["streams"]
            .as_array()?
            .iter()
            .find(|s| s["codec_type"] == kind)
    }
    pub fn codec(&self, kind: &str) -> Option<String> {
        self.stream(kind)?["codec_name"].as_str().map(str::to_owned)
    }
    pub fn frames(&self, kind: &str) -> u64 {
        self.stream(kind)
            .and_then(|s| s["nb_read_frames"].as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    pub fn duration(&self) -> f64 {
        self.json["format"]["duration"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
    }
    pub fn start_time(&self, kind: &str) -> f64 {
        self.stream(kind)
            .and_then(|s| s["start_time"].as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    }
    pub fn stream_duration(&self, kind: &str) -> f64 {
        self.stream(kind)
            .and_then(|s| s["duration"].as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// The size of every decoded video frame, in order (`ffprobe -show_frames`), and what ffprobe
/// said on stderr.
pub fn frame_sizes(file: &Path) -> (Vec<(u64, u64)>, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("frame=width,height")
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let sizes = json["frames"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|f| Some((f["width"].as_u64()?, f["height"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    (sizes, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The rotation ffprobe reads from the video stream's display matrix (degrees, counter-clockwise
/// as ffmpeg counts: a picture to be turned 90° clockwise says -90), `None` without one.
pub fn display_rotation(file: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json["streams"][0]["side_data_list"]
        .as_array()?
        .iter()
        .find_map(|d| d["rotation"].as_f64())
}

/// `ffprobe -count_frames`; also returns what ffprobe said on stderr.
pub fn ffprobe(file: &Path) -> (Probe, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,codec_type,width,height,nb_read_frames,start_time,duration:format=duration")
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        Probe { json },
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The test venv's python (scripts/test exports `LENS_TEST_VENV_PYTHON`), if it has `module`.
/// Missing: skip, or panic under CI.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("LENS_TEST_VENV_PYTHON").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lens-test/venv/bin/python")),
        Some(PathBuf::from("/usr/bin/python3")),
    ];
    let found = candidates.into_iter().flatten().find(|py| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            !ci(),
            "python module {module} missing but CI=true (run scripts/test)"
        );
        eprintln!("skipped: python module {module} not installed");
    }
    found
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process on 127.0.0.1, killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub port: u16,
}

impl Server {
    /// Starts `cmd` and waits until `port` answers; with `banner`, until the first line the
    /// server sends starts with it (so another process that took the port is not mistaken for it).
    pub fn start(cmd: &mut Command, port: u16, banner: Option<&str>) -> Server {
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("server starts");
        let mut s = Server { child, port };
        for _ in 0..200 {
            if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let Some(b) = banner else { return s };
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(c), &mut line);
                assert!(
                    line.starts_with(b),
                    "port {port} answers {line:?}, not our server"
                );
                return s;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("server on port {port} exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server on port {port} did not come up");
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// pyftpdlib with user `test` / `secret`, writable root `dir`.
pub fn ftp_server(py: &Path, dir: &Path, port: u16) -> Server {
    Server::start(
        Command::new(py)
            .args([
                "-m",
                "pyftpdlib",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args(["-u", "test", "-P", "secret", "-w", "-d"])
            .arg(dir),
        port,
        Some("220"),
    )
}

/// pyftpdlib like `ftp_server`, but receiving at most `bytes_per_second` (tests/slow_ftp_server.py):
/// an upload takes long enough to be cut in the middle.
pub fn slow_ftp_server(py: &Path, dir: &Path, port: u16, bytes_per_second: u32) -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slow_ftp_server.py");
    Server::start(
        Command::new(py)
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .args(["test", "secret", &bytes_per_second.to_string()]),
        port,
        Some("220"),
    )
}

/// tests/put_server.py with user `test` / `secret`, root `dir`.
pub fn put_server(py: &Path, dir: &Path, port: u16, short: bool) -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/put_server.py");
    let mut c = Command::new(py);
    c.arg(script)
        .arg(port.to_string())
        .arg(dir)
        .args(["test", "secret"]);
    if short {
        c.arg("--short");
    }
    Server::start(&mut c, port, None)
}
