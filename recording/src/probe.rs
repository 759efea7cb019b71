//! Reads a recording's facts back from the file: its codecs from the init segment's sample
//! entries and its duration from the fragments' decode times. Used at start-up for a file a
//! crash cut off, when only the recorder (now gone) knew them. A sample counts when its data is
//! in the file: a player reads the last fragment's table and plays what is there.

use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

/// What a (possibly cut-off) fragmented MP4 holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFacts {
    pub duration: Duration,
    /// Codec names (`vp8`, `vp9`, `h264`, `opus`), video first, as [`crate::RecordingSummary`].
    pub codecs: Vec<&'static str>,
    /// Bytes up to the end of the last whole fragment.
    pub playable_bytes: u64,
}

struct TrackInfo {
    id: u32,
    video: bool,
    timescale: u32,
    codec: Option<&'static str>,
    /// Decode time where the samples read so far end.
    end: u64,
}

/// Reads the facts of the fMP4 file at `path`. A file without an init segment has none (an
/// `InvalidData` error); a file cut inside a fragment counts up to the fragment before.
pub fn read_facts(path: &Path) -> io::Result<FileFacts> {
    let mut data = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut data)?;
    facts(&data)
}

/// [`read_facts`] of bytes in memory.
pub fn facts(data: &[u8]) -> io::Result<FileFacts> {
    let mut tracks: Vec<TrackInfo> = Vec::new();
    let mut playable = 0u64;
    let mut pos = 0usize;
    while let Some((kind, body, next)) = read_box(data, pos) {
        match &kind {
            b"moov" => tracks = parse_moov(body),
            b"moof" => {
                for (id, base, dur) in parse_moof(body, pos, data.len()) {
                    if let Some(t) = tracks.iter_mut().find(|t| t.id == id) {
                        t.end = base.unwrap_or(t.end) + dur;
                    }
                }
            }
            b"mdat" => playable = next as u64,
            _ => {}
        }
        pos = next;
        if &kind == b"moof" && read_box(data, pos).is_none() {
            // The fragment's `mdat` is cut: its samples counted as far as their data goes.
            break;
        }
    }
    if tracks.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no init segment (moov) in the file",
        ));
    }
    let duration = tracks
        .iter()
        .filter(|t| t.timescale > 0)
        .map(|t| t.end as f64 / t.timescale as f64)
        .fold(0.0, f64::max);
    tracks.sort_by_key(|t| !t.video);
    Ok(FileFacts {
        duration: Duration::from_secs_f64(duration),
        codecs: tracks.iter().filter_map(|t| t.codec).collect(),
        playable_bytes: playable,
    })
}

/// The box at `pos`: its type, its body and where the next box starts. `None` at the end or when
/// the box runs past the data (cut off).
pub(crate) fn read_box(data: &[u8], pos: usize) -> Option<([u8; 4], &[u8], usize)> {
    let head = data.get(pos..pos + 8)?;
    let size32 = u32::from_be_bytes(head[0..4].try_into().ok()?) as u64;
    let kind: [u8; 4] = head[4..8].try_into().ok()?;
    let (size, header) = match size32 {
        0 => ((data.len() - pos) as u64, 8),
        1 => (be_u64(data.get(pos + 8..pos + 16)?)?, 16),
        n => (n, 8),
    };
    let end = pos.checked_add(usize::try_from(size).ok()?)?;
    if size < header as u64 || end > data.len() {
        return None;
    }
    Some((kind, &data[pos + header..end], end))
}

fn children(body: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (kind, b, next) = read_box(body, pos)?;
        pos = next;
        Some((kind, b))
    })
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(body).find(|(k, _)| k == kind).map(|(_, b)| b)
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn parse_moov(moov: &[u8]) -> Vec<TrackInfo> {
    children(moov)
        .filter(|(k, _)| k == b"trak")
        .filter_map(|(_, trak)| parse_trak(trak))
        .collect()
}

fn parse_trak(trak: &[u8]) -> Option<TrackInfo> {
    let tkhd = child(trak, b"tkhd")?;
    let id = be_u32(tkhd.get(if tkhd.first()? == &1 { 20 } else { 12 }..)?)?;
    let mdia = child(trak, b"mdia")?;
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = be_u32(mdhd.get(if mdhd.first()? == &1 { 20 } else { 12 }..)?)?;
    let hdlr = child(mdia, b"hdlr")?;
    let video = hdlr.get(8..12)? == b"vide";
    let stsd = child(child(child(mdia, b"minf")?, b"stbl")?, b"stsd")?;
    // version/flags, entry count, then the first entry's size and type.
    let codec = match stsd.get(12..16)? {
        b"avc1" | b"avc3" => Some("h264"),
        b"vp08" => Some("vp8"),
        b"vp09" => Some("vp9"),
        b"Opus" => Some("opus"),
        _ => None,
    };
    Some(TrackInfo {
        id,
        video,
        timescale,
        codec,
        end: 0,
    })
}

/// Per `traf`: track id, base decode time (`tfdt`) and the durations of its samples whose data
/// ends within the file (`moof_at`: where the `moof` starts, `file_len`: the file's length).
fn parse_moof(moof: &[u8], moof_at: usize, file_len: usize) -> Vec<(u32, Option<u64>, u64)> {
    children(moof)
        .filter(|(k, _)| k == b"traf")
        .filter_map(|(_, traf)| {
            let tfhd = child(traf, b"tfhd")?;
            let flags = be_u32(tfhd)? & 0x00FF_FFFF;
            let id = be_u32(tfhd.get(4..)?)?;
            let mut at = 8;
            let mut data_base = moof_at as u64;
            if flags & 0x1 != 0 {
                data_base = be_u64(tfhd.get(8..)?)?;
                at += 8;
            }
            if flags & 0x2 != 0 {
                at += 4; // sample description index
            }
            let default_duration = if flags & 0x8 != 0 {
                be_u32(tfhd.get(at..)?)
            } else {
                None
            };
            let base = child(traf, b"tfdt").and_then(|t| {
                if t.first()? == &1 {
                    be_u64(t.get(4..)?)
                } else {
                    be_u32(t.get(4..)?).map(u64::from)
                }
            });
            let default_size = if flags & 0x10 != 0 {
                be_u32(tfhd.get(at + if flags & 0x8 != 0 { 4 } else { 0 }..)?)
            } else {
                None
            };
            let defaults = (default_duration.unwrap_or(0), default_size.unwrap_or(0));
            let mut total = 0u64;
            for (_, trun) in children(traf).filter(|(k, _)| k == b"trun") {
                total += trun_duration(trun, defaults, data_base, file_len as u64)?;
            }
            Some((id, base, total))
        })
        .collect()
}

/// The durations of a run's samples whose data ends within the file.
fn trun_duration(
    trun: &[u8],
    (default_duration, default_size): (u32, u32),
    data_base: u64,
    file_len: u64,
) -> Option<u64> {
    let flags = be_u32(trun)? & 0x00FF_FFFF;
    let count = be_u32(trun.get(4..)?)? as usize;
    let mut at = 8;
    let mut data_at = data_base;
    if flags & 0x1 != 0 {
        data_at = data_base.checked_add_signed(i64::from(be_u32(trun.get(8..)?)? as i32))?;
        at += 4;
    }
    if flags & 0x4 != 0 {
        at += 4;
    }
    let per_sample = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    let mut total = 0u64;
    for i in 0..count {
        let s = at + i * per_sample;
        let duration = if flags & 0x100 != 0 {
            be_u32(trun.get(s..)?)?
        } else {
            default_duration
        };
        let size_at = s + if flags & 0x100 != 0 { 4 } else { 0 };
        let size = if flags & 0x200 != 0 {
            be_u32(trun.get(size_at..)?)?
        } else {
            default_size
        };
        data_at += u64::from(size);
        if data_at > file_len {
            break;
        }
        total += u64::from(duration);
    }
    Some(total)
}

/// Writes the display matrix of the video track's `tkhd` in an init segment (in place: the size
/// does not change): `quarter_turns` clockwise turns show the picture upright, as the
/// video-orientation extension says. Returns whether a video track was found.
pub(crate) fn set_video_rotation(init: &mut [u8], quarter_turns: u8) -> bool {
    // 16.16 fixed point a, b, c, d of the matrix [a b u; c d v; x y w] (ISO 14496-12 §8.2.2.3);
    // a clockwise turn of 90° is (0, 1, -1, 0), as cameras write a portrait recording.
    let one = 0x0001_0000i32;
    let (a, b, c, d) = match quarter_turns & 3 {
        0 => (one, 0, 0, one),
        1 => (0, one, -one, 0),
        2 => (-one, 0, 0, -one),
        _ => (0, -one, one, 0),
    };
    let Some(tkhd) = video_tkhd_offset(init) else {
        return false;
    };
    let version = init[tkhd];
    // The matrix follows version/flags, times, track id, reserved, duration, reserved (8),
    // layer, alternate group, volume and reserved (2 each).
    let at = tkhd + if version == 1 { 52 } else { 40 };
    if init.len() < at + 36 {
        return false;
    }
    let matrix = [a, b, 0, c, d, 0, 0, 0, 0x4000_0000];
    for (i, v) in matrix.iter().enumerate() {
        init[at + 4 * i..at + 4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    true
}

/// Offset of the video track's `tkhd` body in an init segment.
fn video_tkhd_offset(init: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while let Some((kind, body, next)) = read_box(init, pos) {
        if &kind == b"moov" {
            let moov_at = body.as_ptr() as usize - init.as_ptr() as usize;
            let mut p = 0;
            while let Some((k, trak, n)) = read_box(body, p) {
                if &k == b"trak" {
                    let video = child(trak, b"mdia")
                        .and_then(|m| child(m, b"hdlr"))
                        .and_then(|h| h.get(8..12))
                        == Some(b"vide");
                    if video {
                        let tkhd = child(trak, b"tkhd")?;
                        return Some(moov_at + (tkhd.as_ptr() as usize - body.as_ptr() as usize));
                    }
                }
                p = n;
            }
        }
        pos = next;
    }
    None
}
