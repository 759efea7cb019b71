//! Fragmented MP4 on any `Write`: the init segment (`ftyp` + `moov`) goes out with the first
//! fragment, then one `moof` + `mdat` per flush, and `mfra` (a random-access index) at a clean
//! end. A file cut anywhere plays up to its last whole fragment.

use std::io::{self, Write};
use std::num::NonZeroU32;

use shiguredo_mp4::TrackKind;
use shiguredo_mp4::boxes::SampleEntry;
use shiguredo_mp4::mux::{Fmp4SegmentMuxer, Sample};

/// One sample with its payload.
#[derive(Debug, Clone)]
pub struct MediaSample {
    pub kind: TrackKind,
    pub timescale: NonZeroU32,
    pub entry: SampleEntry,
    pub duration: u32,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

pub struct Fmp4Writer<W: Write> {
    out: W,
    muxer: Fmp4SegmentMuxer,
    started: bool,
    bytes: u64,
    /// Quarter turns clockwise for the video track's display matrix.
    video_rotation: u8,
}

fn mux_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("mp4: {e}"))
}

impl<W: Write> Fmp4Writer<W> {
    pub fn new(out: W) -> io::Result<Self> {
        Ok(Fmp4Writer {
            out,
            muxer: Fmp4SegmentMuxer::new().map_err(mux_error)?,
            started: false,
            bytes: 0,
            video_rotation: 0,
        })
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// The video track's display matrix turns the picture `quarter_turns` × 90° clockwise (the
    /// video-orientation extension at the start). Only before the first fragment: a track has one
    /// matrix, written in the init segment.
    pub fn set_video_rotation(&mut self, quarter_turns: u8) {
        if !self.started {
            self.video_rotation = quarter_turns & 3;
        }
    }

    /// Writes one fragment (the init segment first, the first time). The tracks of the file are
    /// the kinds present in the first fragment.
    pub fn write_fragment(&mut self, samples: &[MediaSample]) -> io::Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        // The muxer wants each track's payloads contiguous: order by track, keep sample order.
        let mut order: Vec<&MediaSample> = samples.iter().collect();
        order.sort_by_key(|s| s.kind != TrackKind::Video);
        let mut offset = 0u64;
        let meta: Vec<Sample> = order
            .iter()
            .map(|s| {
                let m = Sample {
                    track_kind: s.kind,
                    timescale: s.timescale,
                    sample_entry: Some(s.entry.clone()),
                    duration: s.duration,
                    keyframe: s.keyframe,
                    composition_time_offset: None,
                    data_offset: offset,
                    data_size: s.data.len(),
                };
                offset += s.data.len() as u64;
                m
            })
            .collect();
        let head = self
            .muxer
            .create_media_segment_metadata(&meta)
            .map_err(mux_error)?;
        let mut buf = Vec::with_capacity(head.len() + offset as usize + 1024);
        if !self.started {
            let mut init = self.muxer.init_segment_bytes().map_err(mux_error)?;
            if self.video_rotation != 0 {
                // shiguredo_mp4 writes the identity matrix; the tkhd is patched in place.
                crate::probe::set_video_rotation(&mut init, self.video_rotation);
            }
            buf.extend_from_slice(&init);
        }
        buf.extend_from_slice(&head);
        for s in order {
            buf.extend_from_slice(&s.data);
        }
        // One write per fragment: a crash leaves at most one partial fragment at the end.
        self.out.write_all(&buf)?;
        self.out.flush()?;
        self.started = true;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Appends the random-access index and hands the output back.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if self.started {
            let mfra = self.muxer.mfra_bytes().map_err(mux_error)?;
            self.out.write_all(&mfra)?;
            self.bytes += mfra.len() as u64;
        }
        self.out.flush()?;
        Ok((self.out, self.bytes))
    }
}
