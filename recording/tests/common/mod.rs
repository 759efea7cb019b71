//! Test helpers: a session's worth of RTP from `recording::fixtures` (ffmpeg-made frames), and
//! real servers on 127.0.0.1. A missing tool skips the test, except under `CI=true` where it fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use recording::fixtures::*;
use recording::{Codec, RtpPacket};

/// A session's packets: video frames at 25 fps and 20 ms Opus, interleaved by arrival time.
pub struct Clip {
    pub packets: Vec<RtpPacket>,
    pub video_frames: usize,
    pub audio_frames: usize,
}

/// `audio_delay`: audio starts this much after video (both RTP clocks start at their `ts0`).
pub fn clip(
    video: &[Vec<u8>],
    vcodec: Codec,
    audio: &[Vec<u8>],
    start: Instant,
    audio_delay: Duration,
) -> Clip {
    // Sequence numbers and timestamps close to their wrap points.
    let mut vp = Packetizer::new(vcodec, 0x1111, 65500, u32::MAX - 90_000);
    let mut ap = Packetizer::new(Codec::Opus, 0x2222, 65530, u32::MAX - 48_000);
    let mut timed: Vec<(Duration, RtpPacket)> = Vec::new();
    for (i, f) in video.iter().enumerate() {
        let at = Duration::from_millis(i as u64 * 1000 / FPS as u64);
        for p in vp.frame(f, i as u32 * (90_000 / FPS), start + at) {
            timed.push((at, p));
        }
    }
    for (i, f) in audio.iter().enumerate() {
        let at = audio_delay + Duration::from_millis(i as u64 * 20);
        for p in ap.frame(f, i as u32 * 960, start + at) {
            timed.push((at, p));
        }
    }
    timed.sort_by_key(|(at, _)| *at);
    Clip {
        packets: timed.into_iter().map(|(_, p)| p).collect(),
        video_frames: video.len(),
        audio_frames: audio.len(),
    }
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
    pub fn start(cmd: &mut Command, port: u16) -> Server {
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("server starts");
        let s = Server { child, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
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
    Server::start(&mut c, port)
}

/// Bytes that look like nothing in particular (a stand-in recording).
pub fn some_bytes(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
