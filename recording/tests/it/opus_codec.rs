//! The mixer's Opus decoder (libopus 1.3.1 translated to Rust) against ffmpeg's libopus on the
//! same packets: the decoded signals must agree (SNR ≥ 30 dB), for CELT (music-like, high
//! rate) and SILK/hybrid (voice, low rate) streams.

use crate::common;

use common::*;
use recording::opus::{Decoder, MAX_FRAME};

/// Decodes `lavfi`'s Opus packets (ffmpeg `libopus` encoder with `args`) both ways; the SNR in dB.
fn snr_against_ffmpeg(lavfi: &str, args: &[&str]) -> Option<f64> {
    if !have_tool("ffmpeg") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pre_skip, packets) = opus_stream(dir.path(), lavfi, args, "a.ogg");
    let reference = decode_audio(&dir.path().join("a.ogg"), Some("libopus"));
    let mut dec = Decoder::new().unwrap();
    let mut ours = Vec::new();
    let mut buf = vec![0f32; MAX_FRAME];
    for p in &packets {
        let n = dec.decode(p, &mut buf).unwrap();
        ours.extend_from_slice(&buf[..n]);
    }
    // ffmpeg drops the encoder's delay (pre-skip) and trims the end to the granule position.
    let ours = &ours[pre_skip as usize..];
    let n = reference.len().min(ours.len());
    assert!(
        n > 48_000 * 3,
        "{} and {} samples",
        reference.len(),
        ours.len()
    );
    let signal: f64 = reference[..n].iter().map(|&s| (s as f64).powi(2)).sum();
    let noise: f64 = reference[..n]
        .iter()
        .zip(&ours[..n])
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    assert!(signal > 1.0, "the test signal is not silent");
    Some(10.0 * (signal / noise.max(1e-20)).log10())
}

const MIXED: &str =
    "aevalsrc=0.3*sin(2*PI*(200+300*t)*t)+0.2*sin(2*PI*3100*t)+0.05*(random(0)-0.5):s=48000";

#[test]
fn decoding_matches_ffmpeg_libopus_for_celt() {
    if let Some(snr) = snr_against_ffmpeg(MIXED, &["-application", "audio", "-b:a", "96k"]) {
        eprintln!("CELT, 96 kbit/s: SNR {snr:.1} dB against ffmpeg's libopus");
        assert!(snr >= 30.0, "SNR {snr:.1} dB");
    }
}

#[test]
fn decoding_matches_ffmpeg_libopus_for_silk_voice() {
    if let Some(snr) = snr_against_ffmpeg(MIXED, &["-application", "voip", "-b:a", "16k"]) {
        eprintln!("SILK/hybrid, 16 kbit/s: SNR {snr:.1} dB against ffmpeg's libopus");
        assert!(snr >= 30.0, "SNR {snr:.1} dB");
    }
}
