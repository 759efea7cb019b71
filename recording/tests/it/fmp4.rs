//! Real encoded frames (ffmpeg) → RTP → Recorder → fragmented MP4 → ffprobe.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use recording::recorder::RecorderConfig;
use recording::{Codec, Recorder, RecordingSummary, SenderReport, Source};

fn record(
    clip: &Clip,
    path: &std::path::Path,
    mut each: impl FnMut(usize, &mut Recorder<std::fs::File>),
) -> RecordingSummary {
    let file = std::fs::File::create(path).unwrap();
    let mut r = Recorder::new(file, RecorderConfig::default()).unwrap();
    assert!(
        r.take_keyframe_request(),
        "a recording asks for a keyframe at once"
    );
    for (i, p) in clip.packets.iter().enumerate() {
        each(i, &mut r);
        r.push_rtp(p.clone()).unwrap();
    }
    r.finish().unwrap().1
}

/// ffmpeg-made frames as one RTP clip, or `None` (skip) when the tools are missing.
fn setup(vcodec: Codec, audio_delay: Duration) -> Option<(tempfile::TempDir, Clip)> {
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let video = video_frames(dir.path(), vcodec);
    let audio = opus_frames(dir.path());
    let c = clip(&video, vcodec, &audio, Instant::now(), audio_delay);
    Some((dir, c))
}

fn check_whole_file(vcodec: Codec) {
    let Some((dir, mut c)) = setup(vcodec, Duration::ZERO) else {
        return;
    };
    // Swap neighbours now and then and send a few twice, as a network does.
    for i in (10..c.packets.len() - 1).step_by(37) {
        c.packets.swap(i, i + 1);
    }
    for i in (15..c.packets.len()).step_by(101) {
        let dup = c.packets[i].clone();
        c.packets.insert(i, dup);
    }
    let path = dir.path().join("rec.mp4");
    let sum = record(&c, &path, |_, _| {});
    assert_eq!(sum.codecs, vec![vcodec.name(), "opus"]);
    assert_eq!(sum.stats.video_frames, c.video_frames as u64);
    assert_eq!(sum.stats.audio_frames, c.audio_frames as u64);
    assert_eq!(sum.stats.frames_dropped, 0);
    // A copy of a packet already handed on counts as late.
    assert!(sum.stats.packets_duplicate + sum.stats.packets_late > 0);
    assert_eq!(sum.bytes, std::fs::metadata(&path).unwrap().len());

    let (p, err) = ffprobe(&path);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    assert_eq!(p.codec("video").as_deref(), Some(vcodec.name()));
    assert_eq!(p.codec("audio").as_deref(), Some("opus"));
    let v = p.stream("video").unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(p.frames("video"), c.video_frames as u64);
    assert_eq!(p.frames("audio"), c.audio_frames as u64);
    let d = p.duration();
    assert!(
        (d - SECONDS as f64).abs() <= 0.05 * SECONDS as f64,
        "duration {d}"
    );
    assert!((p.start_time("video") - p.start_time("audio")).abs() < 0.1);
    // No orientation extension: no display matrix turn.
    assert_eq!(display_rotation(&path), None);
    // What a restart after a crash reads back from the file is what the recorder knew.
    let facts = recording::probe::read_facts(&path).unwrap();
    assert_eq!(facts.codecs, sum.codecs);
    assert!(
        (facts.duration.as_secs_f64() - sum.duration.as_secs_f64()).abs() < 0.001,
        "{facts:?} vs {sum:?}"
    );
}

#[test]
fn vp8_and_opus_make_a_whole_file() {
    check_whole_file(Codec::Vp8);
}

#[test]
fn h264_and_opus_make_a_whole_file() {
    check_whole_file(Codec::H264);
}

#[test]
fn vp9_and_opus_make_a_whole_file() {
    check_whole_file(Codec::Vp9);
}

#[test]
fn a_file_cut_at_70_percent_still_decodes() {
    let Some((dir, c)) = setup(Codec::Vp8, Duration::ZERO) else {
        return;
    };
    let path = dir.path().join("rec.mp4");
    // Stands in for a killed server: the bytes written while the session ran, no clean end.
    let mut sizes = Vec::new();
    let file = std::fs::File::create(&path).unwrap();
    let mut r = Recorder::new(file, RecorderConfig::default()).unwrap();
    for p in &c.packets {
        r.push_rtp(p.clone()).unwrap();
        sizes.push(std::fs::metadata(&path).unwrap().len());
    }
    let grown = *sizes.last().unwrap();
    assert!(grown > 0, "fragments are written while the session runs");
    let cut_at = (grown as f64 * 0.7) as usize;
    let bytes = std::fs::read(&path).unwrap();
    drop(r);
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..cut_at]).unwrap();
    let (p, _) = ffprobe(&cut);
    assert_eq!(p.codec("video").as_deref(), Some("vp8"));
    let frames = p.frames("video");
    // The growing file holds all but the last ~second (one fragment interval); 70 % of that.
    let expect = c.video_frames as f64 * 0.7 * grown as f64 / bytes.len() as f64;
    assert!(
        frames as f64 >= expect * 0.5 && frames < c.video_frames as u64,
        "{frames} frames decoded of {} (expected about {expect:.0})",
        c.video_frames
    );
    assert!(p.frames("audio") > 0);
    // The facts a restart reads back from the cut file: its codecs and the duration a player sees.
    let facts = recording::probe::read_facts(&cut).unwrap();
    assert_eq!(facts.codecs, vec!["vp8", "opus"]);
    let d = facts.duration.as_secs_f64();
    assert!(
        d > 0.0 && (d - p.duration()).abs() <= 0.05 * p.duration(),
        "{d} s read back, ffprobe says {} s",
        p.duration()
    );
    assert!(facts.playable_bytes <= cut_at as u64 && facts.playable_bytes > 0);
}

/// A camera change or a turned phone: 640×480, then 1280×720 from a keyframe on, in one stream.
/// Every frame is in the file and decodes at its own size, to the end.
fn check_resolution_change(vcodec: Codec) {
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut video = video_frames_sized(dir.path(), vcodec, 640, 480, 2);
    let small = video.len();
    video.extend(video_frames_sized(dir.path(), vcodec, 1280, 720, 2));
    let audio = opus_frames(dir.path());
    let c = clip(&video, vcodec, &audio, Instant::now(), Duration::ZERO);
    let path = dir.path().join("turned.mp4");
    let sum = record(&c, &path, |_, _| {});
    assert_eq!(sum.stats.video_frames, video.len() as u64);
    assert_eq!(sum.stats.frames_dropped, 0);
    assert_eq!(sum.stats.resolution_changes, 1);
    let (sizes, err) = frame_sizes(&path);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    assert_eq!(sizes.len(), video.len(), "every frame decodes");
    assert!(sizes[..small].iter().all(|s| *s == (640, 480)), "{sizes:?}");
    assert!(
        sizes[small..].iter().all(|s| *s == (1280, 720)),
        "{sizes:?}"
    );
    let (p, err) = ffprobe(&path);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    assert_eq!(p.frames("video"), video.len() as u64);
    let d = p.duration();
    assert!((d - 4.0).abs() <= 0.2, "duration {d}");
}

#[test]
fn a_vp8_resolution_change_plays_at_the_new_size() {
    check_resolution_change(Codec::Vp8);
}

#[test]
fn a_vp9_resolution_change_plays_at_the_new_size() {
    check_resolution_change(Codec::Vp9);
}

#[test]
fn an_h264_resolution_change_with_new_parameter_sets_plays_at_the_new_size() {
    check_resolution_change(Codec::H264);
}

/// A phone held upright whose camera sends landscape frames with the video-orientation extension
/// (one quarter turn clockwise, on each frame's last packet, as WebRTC sends it): the file's
/// display matrix turns it upright.
#[test]
fn the_video_orientation_extension_turns_the_display_matrix() {
    let Some((dir, mut c)) = setup(Codec::Vp8, Duration::ZERO) else {
        return;
    };
    for p in c.packets.iter_mut() {
        if p.codec == Codec::Vp8 && p.marker {
            p.video_orientation = Some(1);
        }
    }
    let path = dir.path().join("portrait.mp4");
    let sum = record(&c, &path, |_, _| {});
    assert_eq!(sum.stats.video_frames, c.video_frames as u64);
    let (p, err) = ffprobe(&path);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    assert_eq!(p.frames("video"), c.video_frames as u64);
    // ffmpeg counts counter-clockwise: a picture turned 90° clockwise to stand upright is -90.
    assert_eq!(display_rotation(&path), Some(-90.0));
}

#[test]
fn a_muted_hole_becomes_silence_and_keeps_audio_in_step() {
    let Some((dir, mut c)) = setup(Codec::Vp8, Duration::ZERO) else {
        return;
    };
    // One second of audio never reaches the recorder (the SFU dropped it while muted), and the
    // next half second is tapped with the muted flag.
    let audio_seq0 = 65530u16;
    let idx = |p: &recording::RtpPacket| (p.seq as u16).wrapping_sub(audio_seq0) as usize;
    c.packets
        .retain(|p| p.codec != Codec::Opus || !(50..100).contains(&idx(p)));
    for p in c.packets.iter_mut() {
        if p.codec == Codec::Opus && (100..125).contains(&idx(p)) {
            p.muted = true;
        }
    }
    let path = dir.path().join("rec.mp4");
    let sum = record(&c, &path, |_, _| {});
    assert_eq!(sum.stats.silence_frames, 50);
    assert_eq!(sum.stats.audio_frames, c.audio_frames as u64 - 50);
    let (p, err) = ffprobe(&path);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    assert_eq!(p.frames("audio"), c.audio_frames as u64);
    let (va, aa) = (p.stream_duration("video"), p.stream_duration("audio"));
    assert!((va - aa).abs() < 0.1, "video {va} s, audio {aa} s");
}

#[test]
fn sender_reports_align_late_audio_with_silence() {
    let Some((dir, c)) = setup(Codec::Vp8, Duration::ZERO) else {
        return;
    };
    // Audio arrives with the video (arrival time says "together") but the sender reports say
    // its first sample was captured 300 ms after the first video frame.
    let ntp = |secs: f64| ((secs * 4_294_967_296.0) as u64) + (3_900_000_000u64 << 32);
    let v_ts0 = u32::MAX - 90_000;
    let a_ts0 = u32::MAX - 48_000;
    let path = dir.path().join("rec.mp4");
    let sum = record(&c, &path, |i, r| {
        if i == 0 {
            r.push_sender_report(SenderReport {
                ssrc: 0x1111,
                ntp_time: ntp(10.0),
                rtp_time: v_ts0,
            });
            r.push_sender_report(SenderReport {
                ssrc: 0x2222,
                ntp_time: ntp(10.3),
                rtp_time: a_ts0,
            });
        }
    });
    assert_eq!(
        sum.stats.silence_frames, 15,
        "300 ms of 20 ms silence frames"
    );
    let (p, _) = ffprobe(&path);
    assert_eq!(p.frames("audio"), c.audio_frames as u64 + 15);
}

#[test]
fn both_voices_are_mixed_and_a_muted_technician_is_silent() {
    let Some((dir, c)) = setup(Codec::Vp8, Duration::ZERO) else {
        return;
    };
    // The customer says 440 Hz (the clip); the technician 1000 Hz, from a console whose clock
    // has nothing to do with the phone's (other SSRC, other timestamps), muted from 1.5 s to
    // 2.5 s: the SFU taps those packets without content.
    let (_, tech) = opus_stream(
        dir.path(),
        "sine=frequency=1000:sample_rate=48000",
        &[],
        "t.ogg",
    );
    let start = c.packets[0].arrival;
    let mut tp = Packetizer::new(Codec::Opus, 0x3333, 100, 12_345);
    let mut packets = c.packets.clone();
    let mut muted = 0;
    for (i, f) in tech.iter().enumerate() {
        let arrival = start + Duration::from_millis(i as u64 * 20 + 7);
        for mut p in tp.frame(f, i as u32 * 960, arrival) {
            p.source = Source::Technician;
            if (75..125).contains(&i) {
                p.muted = true;
                p.payload = bytes::Bytes::new();
                muted += 1;
            }
            packets.push(p);
        }
    }
    packets.sort_by_key(|p| p.arrival);
    let clip = Clip { packets, ..c };
    let path = dir.path().join("rec.mp4");
    let sum = record(&clip, &path, |_, _| {});
    assert_eq!(sum.codecs, vec!["vp8", "opus"]);
    assert_eq!(sum.stats.technician_frames, tech.len() as u64 - muted);
    assert_eq!(sum.stats.packets_ignored, 0);

    let (p, err) = ffprobe(&path);
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    let audio_tracks = p.json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .count();
    assert_eq!(audio_tracks, 1, "one audio track holds both voices");
    assert_eq!(p.codec("audio").as_deref(), Some("opus"));
    assert!((p.stream_duration("video") - p.stream_duration("audio")).abs() < 0.1);

    let pcm = decode_audio(&path, None);
    let window = |from: f64, to: f64| &pcm[(from * 48_000.0) as usize..(to * 48_000.0) as usize];
    for (from, to, technician) in [(0.3, 1.3, true), (1.7, 2.3, false), (2.8, 3.8, true)] {
        let (c, t) = (
            tone_level(window(from, to), 440.0),
            tone_level(window(from, to), 1000.0),
        );
        eprintln!("{from}–{to} s: 440 Hz {c:.3}, 1000 Hz {t:.3}");
        // ffmpeg's sine has amplitude 1/8.
        assert!(c > 0.06, "the customer is heard {from}–{to} s: {c:.3}");
        if technician {
            assert!(t > 0.06, "the technician is heard {from}–{to} s: {t:.3}");
        } else {
            assert!(
                t < 0.005,
                "the muted technician is silent {from}–{to} s: {t:.3}"
            );
        }
    }
}
