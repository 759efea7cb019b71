//! One recording: the customer's video and both voices of a session in one fragmented MP4.
//!
//! Timeline: each track's file time is its RTP time (extended) minus the RTP time of its first
//! written frame, plus the track's start offset. The file starts on the first video keyframe
//! (or the first audio frame when there is no video); the audio start offset comes from the
//! streams' RTCP sender reports when both have one, otherwise from arrival times. The audio track
//! is the customer's and the technician's voices mixed (`mix.rs`): the technician's audio is
//! placed by arrival time (its sender reports are another machine's clock); holes (muted
//! stretches, hold, a talker who sends nothing) are silence, short losses are concealed, so
//! audio stays in step with video. Video holes keep the last frame on screen (its duration
//! grows). After a video loss, frames are skipped until the next keyframe, which is requested.

use std::collections::HashMap;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use shiguredo_mp4::TrackKind;
use shiguredo_mp4::bitstream::h264::{H264SampleEntryConfig, LengthSize, build_avc1_box};
use shiguredo_mp4::bitstream::opus::{ChannelCount, OpusSampleEntryConfig, build_opus_box};
use shiguredo_mp4::bitstream::vp8::{Vp8SampleEntryConfig, build_vp08_box, parse_frame_header};
use shiguredo_mp4::bitstream::vp9;
use shiguredo_mp4::boxes::SampleEntry;

use crate::depacketize::{Depacketizer, Frame, OPUS_FRAME_20MS};
use crate::mix::Mixer;
use crate::mp4::{Fmp4Writer, MediaSample};
use crate::reorder::ReorderBuffer;
use crate::{Codec, Kind, RtpPacket, SenderReport, Source};

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// How long a missing packet is waited for.
    pub reorder_wait: Duration,
    pub reorder_capacity: usize,
    /// A fragment is written at least this often (the file is playable up to the last one).
    pub fragment_interval: Duration,
    /// How long to wait for the second track before starting the file with one.
    pub start_wait: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            reorder_wait: Duration::from_millis(150),
            reorder_capacity: 512,
            fragment_interval: Duration::from_secs(1),
            start_wait: Duration::from_secs(5),
        }
    }
}

/// Counters of one recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    pub packets: u64,
    /// Technician video and codecs we do not record.
    pub packets_ignored: u64,
    pub packets_lost: u64,
    pub packets_late: u64,
    pub packets_duplicate: u64,
    pub video_frames: u64,
    /// Mixed 20 ms audio frames written that a talker covered (a voice, or a muted talker).
    pub audio_frames: u64,
    /// Mixed 20 ms audio frames written that no talker covered (holes: silence).
    pub silence_frames: u64,
    /// Opus frames decoded for the mix: the technician's (the customer's are the rest).
    pub technician_frames: u64,
    /// 20 ms stretches of lost audio filled by the decoder's concealment.
    pub concealed_frames: u64,
    /// Frames dropped: incomplete, before the file's start, or waiting for a keyframe.
    pub frames_dropped: u64,
    pub keyframe_requests: u64,
    pub bytes: u64,
    /// Video keyframes at a new picture size (or new H.264 parameter sets) than the one before.
    pub resolution_changes: u64,
    /// Video-orientation changes after the file started (its display matrix keeps the first).
    pub orientation_changes: u64,
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSummary {
    pub bytes: u64,
    pub duration: Duration,
    /// Codec names in the file (`vp8`, `h264`, `opus`), video first.
    pub codecs: Vec<&'static str>,
    pub stats: RecorderStats,
}

struct Stream {
    ssrc: u32,
    codec: Codec,
    clock_rate: u32,
    reorder: ReorderBuffer,
    depack: Depacketizer,
    /// Frames waiting for the file to start.
    pending: Vec<Frame>,
    first: Option<(Instant, i64)>,
    /// The latest video-orientation bits the sender sent (it sends them on keyframes and changes).
    orientation: u8,
}

struct Track {
    kind: TrackKind,
    codec: Codec,
    timescale: NonZeroU32,
    entry: SampleEntry,
    /// Extended RTP time that maps to `offset` in the file.
    base_ts: i64,
    offset: i64,
    last: Option<Held>,
    ready: Vec<MediaSample>,
    /// File time where the samples written so far end.
    end: i64,
    /// Usual distance between frames, for the last frame and for gap detection.
    step: i64,
    waiting_keyframe: bool,
    last_arrival: Option<Instant>,
    /// Video: what the latest keyframe said (picture size, H.264 parameter sets), to notice a
    /// change, and the H.264 parameter sets of the sample entry.
    picture: Option<Picture>,
    entry_params: Option<(Vec<u8>, Vec<u8>)>,
    orientation: u8,
}

/// What a video keyframe configures.
#[derive(Debug, Clone, PartialEq)]
enum Picture {
    Size(u32, u32),
    H264 { sps: Vec<u8>, pps: Vec<u8> },
}

/// The newest sample: its duration is known when the next one comes.
struct Held {
    at: i64,
    data: Vec<u8>,
    keyframe: bool,
}

pub struct Recorder<W: Write> {
    config: RecorderConfig,
    writer: Option<Fmp4Writer<W>>,
    /// The customer's streams.
    streams: HashMap<Kind, Stream>,
    /// The technician's audio (mixed with the customer's).
    technician: Option<Stream>,
    /// Decodes, mixes and re-encodes both voices for the audio track.
    mixer: Option<Mixer>,
    reports: HashMap<u32, SenderReport>,
    video: Option<Track>,
    audio: Option<Track>,
    running: bool,
    first_packet: Option<Instant>,
    last_flush: Option<Instant>,
    keyframe_wanted: bool,
    stats: RecorderStats,
}

impl<W: Write> Recorder<W> {
    pub fn new(out: W, config: RecorderConfig) -> io::Result<Self> {
        Ok(Recorder {
            config,
            writer: Some(Fmp4Writer::new(out)?),
            streams: HashMap::new(),
            technician: None,
            mixer: None,
            reports: HashMap::new(),
            video: None,
            audio: None,
            running: false,
            first_packet: None,
            last_flush: None,
            // The file must start on a keyframe: ask for one at once.
            keyframe_wanted: true,
            stats: RecorderStats::default(),
        })
    }

    pub fn stats(&self) -> RecorderStats {
        let mut s = self.stats;
        if let Some(m) = &self.mixer {
            s.technician_frames = m.stats.decoded[1];
            s.concealed_frames = m.stats.concealed;
        }
        for st in self.streams.values().chain(&self.technician) {
            s.packets_lost += st.reorder.stats.lost;
            s.packets_late += st.reorder.stats.late;
            s.packets_duplicate += st.reorder.stats.duplicates;
        }
        s.bytes = self.writer.as_ref().map_or(0, |w| w.bytes());
        s
    }

    /// True once after the recorder decided it needs a keyframe (start, loss, new stream).
    pub fn take_keyframe_request(&mut self) -> bool {
        let w = std::mem::take(&mut self.keyframe_wanted);
        if w {
            self.stats.keyframe_requests += 1;
        }
        w
    }

    pub fn push_sender_report(&mut self, sr: SenderReport) {
        self.reports.insert(sr.ssrc, sr);
    }

    pub fn push_rtp(&mut self, p: RtpPacket) -> io::Result<()> {
        self.stats.packets += 1;
        if p.clock_rate == 0 || (p.source == Source::Technician && p.codec != Codec::Opus) {
            self.stats.packets_ignored += 1;
            return Ok(());
        }
        let now = p.arrival;
        if p.source == Source::Technician {
            self.push_technician(p);
            return self.tick(now);
        }
        self.first_packet.get_or_insert(now);
        let kind = p.codec.kind();
        if self
            .streams
            .get(&kind)
            .is_some_and(|s| s.ssrc != p.ssrc || s.codec != p.codec)
        {
            self.replace_stream(kind);
        }
        let cfg = &self.config;
        let stream = self
            .streams
            .entry(kind)
            .or_insert_with(|| Stream::new(&p, cfg));
        if let Some(o) = p.video_orientation {
            stream.orientation = o & 3;
        }
        let mut frames = Vec::new();
        for o in stream.reorder.push(p) {
            frames.extend(stream.depack.push(o));
        }
        self.take_frames(kind, frames);
        self.tick(now)
    }

    /// Timer work: give up on late packets, start the file, write a fragment when due.
    pub fn tick(&mut self, now: Instant) -> io::Result<()> {
        let kinds: Vec<Kind> = self.streams.keys().copied().collect();
        for kind in kinds {
            let frames = match self.streams.get_mut(&kind) {
                Some(s) => s.poll(now),
                None => continue,
            };
            self.take_frames(kind, frames);
        }
        let frames = self
            .technician
            .as_mut()
            .map_or_else(Vec::new, |s| s.poll(now));
        self.take_technician(frames);
        if !self.running {
            self.try_start(now, false);
        }
        self.mix(false)?;
        let due = self
            .last_flush
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.fragment_interval);
        if self.running && due {
            self.flush(false)?;
            self.last_flush = Some(now);
        }
        Ok(())
    }

    /// Writes everything still buffered and the index; hands the output back.
    pub fn finish(mut self) -> io::Result<(W, RecordingSummary)> {
        let kinds: Vec<Kind> = self.streams.keys().copied().collect();
        for kind in kinds {
            let frames = self.drain_stream(kind);
            self.take_frames(kind, frames);
        }
        let frames = self
            .technician
            .as_mut()
            .map_or_else(Vec::new, Stream::drain);
        self.take_technician(frames);
        if !self.running {
            self.try_start(Instant::now(), true);
        }
        self.mix(true)?;
        self.flush(true)?;
        let duration_secs = [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .map(|t| t.end as f64 / t.timescale.get() as f64)
            .fold(0.0, f64::max);
        let codecs = [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .map(|t| t.codec.name())
            .collect();
        let stats = self.stats();
        let writer = self.writer.take().expect("writer present until finish");
        let (out, bytes) = writer.finish()?;
        Ok((
            out,
            RecordingSummary {
                bytes,
                duration: Duration::from_secs_f64(duration_secs),
                codecs,
                stats: RecorderStats { bytes, ..stats },
            },
        ))
    }

    fn drain_stream(&mut self, kind: Kind) -> Vec<Frame> {
        self.streams
            .get_mut(&kind)
            .map_or_else(Vec::new, Stream::drain)
    }

    /// The sender changed its stream (new SSRC or codec): finish the old one and re-anchor the
    /// track on arrival time when the new one starts.
    fn replace_stream(&mut self, kind: Kind) {
        let frames = self.drain_stream(kind);
        self.take_frames(kind, frames);
        if let Some(old) = self.streams.remove(&kind) {
            self.stats.packets_lost += old.reorder.stats.lost;
            self.stats.packets_late += old.reorder.stats.late;
            self.stats.packets_duplicate += old.reorder.stats.duplicates;
            self.stats.frames_dropped += old.depack.dropped_frames;
        }
        if kind == Kind::Audio {
            if let Some(m) = self.mixer.as_mut() {
                m.reanchor(Source::Customer);
            }
        } else if let Some(t) = self.track_mut(kind) {
            // A codec change cannot continue in the same track; the new stream's frames are
            // dropped (counted) rather than written under the wrong sample entry.
            t.base_ts = i64::MIN;
        }
        if kind == Kind::Video {
            self.keyframe_wanted = true;
        }
    }

    fn track_mut(&mut self, kind: Kind) -> Option<&mut Track> {
        match kind {
            Kind::Video => self.video.as_mut(),
            Kind::Audio => self.audio.as_mut(),
        }
    }

    fn take_frames(&mut self, kind: Kind, frames: Vec<Frame>) {
        if frames.is_empty() {
            return;
        }
        let Some(stream) = self.streams.get_mut(&kind) else {
            return;
        };
        if stream.first.is_none() {
            stream.first = Some((frames[0].arrival, frames[0].timestamp));
        }
        if !self.running {
            stream.pending.extend(frames);
            // Before the start only the frames from the newest keyframe on matter for video.
            if kind == Kind::Video
                && let Some(k) = stream.pending.iter().rposition(|f| f.keyframe)
                && k > 0
            {
                self.stats.frames_dropped += k as u64;
                stream.pending.drain(..k);
            }
            return;
        }
        let (codec, clock_rate) = (stream.codec, stream.clock_rate);
        let params = stream.depack.sps.clone().zip(stream.depack.pps.clone());
        let orientation = stream.orientation;
        for mut f in frames {
            if kind == Kind::Video
                && f.keyframe
                && let Some(t) = self.video.as_mut()
            {
                if t.orientation != orientation {
                    t.orientation = orientation;
                    self.stats.orientation_changes += 1;
                }
                if let Some(p) = picture(codec, &f.data, params.as_ref()) {
                    if t.picture.as_ref().is_some_and(|old| *old != p) {
                        self.stats.resolution_changes += 1;
                    }
                    t.picture = Some(p);
                }
                if let Some((sps, pps)) = &params
                    && t.entry_params.as_ref() != Some(&(sps.clone(), pps.clone()))
                {
                    // A new H.264 configuration: its parameter sets go in-band, before the IDR
                    // (see `README.md`, "A turning phone", for why not a second sample entry).
                    let mut data = Vec::with_capacity(f.data.len() + sps.len() + pps.len() + 8);
                    for nal in [sps, pps] {
                        data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        data.extend_from_slice(nal);
                    }
                    data.extend_from_slice(&f.data);
                    f.data = data;
                }
            }
            self.write_frame(kind, codec, clock_rate, f);
        }
    }

    fn write_frame(&mut self, kind: Kind, codec: Codec, clock_rate: u32, f: Frame) {
        if kind == Kind::Audio {
            self.mix_frame(Source::Customer, codec, clock_rate, f);
            return;
        }
        let track = match kind {
            Kind::Video => &mut self.video,
            Kind::Audio => &mut self.audio,
        };
        let Some(t) = track.as_mut() else {
            // The file started without this kind: it cannot be added to the init segment.
            self.stats.frames_dropped += 1;
            return;
        };
        if t.codec != codec || t.timescale.get() != clock_rate {
            self.stats.frames_dropped += 1;
            return;
        }
        if t.base_ts == i64::MIN {
            // First frame of a replacement stream: continue where the track ended, plus the
            // time that passed in between.
            let gap = t
                .last_arrival
                .map(|a| f.arrival.saturating_duration_since(a))
                .unwrap_or_default();
            let at = t.last.as_ref().map_or(t.end, |h| h.at + t.step)
                + (gap.as_secs_f64() * clock_rate as f64) as i64
                - t.step;
            t.base_ts = f.timestamp;
            t.offset = at.max(t.last.as_ref().map_or(t.end, |h| h.at + 1));
            if kind == Kind::Video {
                t.waiting_keyframe = true;
            }
        }
        let at = f.timestamp - t.base_ts + t.offset;
        t.last_arrival = Some(f.arrival);
        match kind {
            Kind::Video => {
                if f.after_loss && !f.keyframe {
                    t.waiting_keyframe = true;
                }
                if t.waiting_keyframe && !f.keyframe {
                    self.stats.frames_dropped += 1;
                    self.keyframe_wanted = true;
                    return;
                }
                if t.last.as_ref().is_some_and(|h| at <= h.at) || at < t.end {
                    self.stats.frames_dropped += 1;
                    return;
                }
                t.waiting_keyframe = false;
                t.hold_and_release(at, f.data, f.keyframe);
                self.stats.video_frames += 1;
            }
            // Returned above: audio goes to the mixer.
            Kind::Audio => {}
        }
    }

    /// One Opus frame of a talker into the mix (dropped when the file has no audio track).
    fn mix_frame(&mut self, source: Source, codec: Codec, clock_rate: u32, f: Frame) {
        match self.mixer.as_mut() {
            Some(m) if codec == Codec::Opus && clock_rate == crate::opus::RATE as u32 => {
                m.push(source, &f)
            }
            _ => self.stats.frames_dropped += 1,
        }
    }

    /// The technician's audio: reordered and depacketized like the customer's, then mixed.
    fn push_technician(&mut self, p: RtpPacket) {
        if self.technician.as_ref().is_some_and(|s| s.ssrc != p.ssrc) {
            // A restarted stream: what the old one still holds, then placed by arrival time.
            let frames = self
                .technician
                .as_mut()
                .map_or_else(Vec::new, Stream::drain);
            self.take_technician(frames);
            if let Some(old) = self.technician.take() {
                self.stats.packets_lost += old.reorder.stats.lost;
                self.stats.packets_late += old.reorder.stats.late;
                self.stats.packets_duplicate += old.reorder.stats.duplicates;
            }
            if let Some(m) = self.mixer.as_mut() {
                m.reanchor(Source::Technician);
            }
        }
        let cfg = &self.config;
        let stream = self.technician.get_or_insert_with(|| Stream::new(&p, cfg));
        let mut frames = Vec::new();
        for o in stream.reorder.push(p) {
            frames.extend(stream.depack.push(o));
        }
        self.take_technician(frames);
    }

    fn take_technician(&mut self, frames: Vec<Frame>) {
        let Some(s) = self.technician.as_mut() else {
            return;
        };
        if !self.running {
            // Kept for the start (placed by arrival then); only the last few seconds matter.
            s.pending.extend(frames);
            let keep = (self.config.start_wait.as_millis() / 20 + 50) as usize;
            if s.pending.len() > keep {
                let extra = s.pending.len() - keep;
                self.stats.frames_dropped += extra as u64;
                s.pending.drain(..extra);
            }
            return;
        }
        let (codec, rate) = (s.codec, s.clock_rate);
        for f in frames {
            self.mix_frame(Source::Technician, codec, rate, f);
        }
    }

    /// Moves the mixed frames that are done into the audio track.
    fn mix(&mut self, end: bool) -> io::Result<()> {
        let (Some(m), Some(t)) = (self.mixer.as_mut(), self.audio.as_mut()) else {
            return Ok(());
        };
        for f in m.ready(end)? {
            if f.voiced {
                self.stats.audio_frames += 1;
            } else {
                self.stats.silence_frames += 1;
            }
            t.hold_and_release(f.at, f.data, true);
        }
        Ok(())
    }

    /// Starts the file when video has a keyframe and audio has frames, or after `start_wait`
    /// with what there is (or at the end, `force`).
    fn try_start(&mut self, now: Instant, force: bool) {
        let video_ready = self.streams.get(&Kind::Video).is_some_and(|s| {
            s.pending
                .first()
                .is_some_and(|f| f.keyframe && video_entry(s, f).is_some())
        });
        let customer_audio = self
            .streams
            .get(&Kind::Audio)
            .is_some_and(|s| !s.pending.is_empty());
        // The audio track is the mix: either voice is enough to have one.
        let audio_ready = customer_audio
            || self
                .technician
                .as_ref()
                .is_some_and(|s| !s.pending.is_empty());
        let waited = self
            .first_packet
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.start_wait);
        let both = video_ready && audio_ready;
        if !(both || ((waited || force) && (video_ready || audio_ready))) {
            return;
        }
        // Wall-clock position of a stream's RTP time: sender reports when every stream that is
        // starting has one, otherwise arrival time (relative to the first packet).
        let starting: Vec<Kind> = [(Kind::Video, video_ready), (Kind::Audio, customer_audio)]
            .into_iter()
            .filter_map(|(k, r)| r.then_some(k))
            .collect();
        let use_reports = starting.iter().all(|k| {
            self.streams
                .get(k)
                .is_some_and(|s| self.reports.contains_key(&s.ssrc))
        });
        let reference = self.first_packet.unwrap_or(now);
        let wall = |s: &Stream, ts: i64| -> f64 {
            let rate = s.clock_rate as f64;
            match self.reports.get(&s.ssrc) {
                Some(sr) if use_reports => {
                    let sr_ts = unwrap_near(sr.rtp_time, ts);
                    sr.ntp_seconds() + (ts - sr_ts) as f64 / rate
                }
                _ => {
                    let (arr, ts0) = s.first.unwrap_or((reference, ts));
                    arr.saturating_duration_since(reference).as_secs_f64()
                        + (ts - ts0) as f64 / rate
                }
            }
        };
        let t0 = if video_ready {
            let s = &self.streams[&Kind::Video];
            wall(s, s.pending[0].timestamp)
        } else {
            let s = &self.streams[&Kind::Audio];
            wall(s, s.pending[0].timestamp)
        };
        let mut audio_start = None;
        if customer_audio {
            let s = &self.streams[&Kind::Audio];
            // Audio from before the first video frame is cut; later audio starts later.
            let first = s
                .pending
                .iter()
                .position(|f| wall(s, f.timestamp) >= t0 - 0.010);
            if let Some(i) = first {
                let offset = ((wall(s, s.pending[i].timestamp) - t0) * s.clock_rate as f64)
                    .round()
                    .max(0.0) as i64;
                audio_start = Some((i, offset));
            }
        }
        if video_ready {
            let s = self.streams.get_mut(&Kind::Video).expect("checked");
            let f = &s.pending[0];
            let entry = video_entry(s, f).expect("checked");
            let mut track = Track::new(
                TrackKind::Video,
                s.codec,
                s.clock_rate,
                entry,
                f.timestamp,
                0,
                3000,
            );
            let params = s.depack.sps.clone().zip(s.depack.pps.clone());
            track.picture = picture(s.codec, &f.data, params.as_ref());
            if s.codec == Codec::H264 {
                track.entry_params = params;
            }
            track.orientation = s.orientation;
            if let Some(w) = self.writer.as_mut() {
                w.set_video_rotation(s.orientation);
            }
            self.video = Some(track);
        }
        // File time 0 on the server's clock: where the technician's voice is placed from.
        let origin = if video_ready {
            self.streams[&Kind::Video].pending[0].arrival
        } else if let Some((i, offset)) = audio_start {
            let first = self.streams[&Kind::Audio].pending[i].arrival;
            first
                .checked_sub(Duration::from_secs_f64(offset as f64 / 48_000.0))
                .unwrap_or(first)
        } else {
            self.technician
                .as_ref()
                .and_then(|s| s.pending.first())
                .map_or(now, |f| f.arrival)
        };
        if audio_ready {
            match Mixer::new(origin) {
                Ok(mut mixer) => {
                    if let Some((i, offset)) = audio_start {
                        let s = self.streams.get_mut(&Kind::Audio).expect("checked");
                        self.stats.frames_dropped += i as u64;
                        s.pending.drain(..i);
                        mixer.anchor(Source::Customer, s.pending[0].timestamp, offset);
                    }
                    let entry = SampleEntry::Opus(build_opus_box(&OpusSampleEntryConfig {
                        // The mix is mono; the encoder's delay is skipped by players.
                        channel_count: ChannelCount::Mono,
                        pre_skip: mixer.pre_skip(),
                        input_sample_rate: 48000,
                        output_gain: 0,
                    }));
                    self.audio = Some(Track::new(
                        TrackKind::Audio,
                        Codec::Opus,
                        48_000,
                        entry,
                        0,
                        0,
                        OPUS_FRAME_20MS,
                    ));
                    self.mixer = Some(mixer);
                }
                Err(e) => tracing::error!(error = %e, "recording: no audio track (Opus mixer)"),
            }
        }
        self.running = true;
        for kind in [Kind::Video, Kind::Audio] {
            let Some(s) = self.streams.get_mut(&kind) else {
                continue;
            };
            let pending = std::mem::take(&mut s.pending);
            let (codec, rate) = (s.codec, s.clock_rate);
            for f in pending {
                self.write_frame(kind, codec, rate, f);
            }
        }
        let pending = self
            .technician
            .as_mut()
            .map(|s| std::mem::take(&mut s.pending))
            .unwrap_or_default();
        self.take_technician(pending);
    }

    /// Writes a fragment of every sample whose duration is known (all of them at the end).
    fn flush(&mut self, end: bool) -> io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let mut tracks: Vec<&mut Track> = [&mut self.video, &mut self.audio]
            .into_iter()
            .flatten()
            .collect();
        if end {
            for t in tracks.iter_mut() {
                t.release_last();
            }
        }
        // The first fragment defines the file's tracks: wait until each has a sample.
        if !writer.started() && !end && tracks.iter().any(|t| t.ready.is_empty()) {
            return Ok(());
        }
        let mut samples = Vec::new();
        for t in tracks {
            samples.append(&mut t.ready);
        }
        writer.write_fragment(&samples)
    }
}

impl Stream {
    /// A stream that starts with `p`, its first packet.
    fn new(p: &RtpPacket, cfg: &RecorderConfig) -> Self {
        Stream {
            ssrc: p.ssrc,
            codec: p.codec,
            clock_rate: p.clock_rate,
            reorder: ReorderBuffer::new(cfg.reorder_wait, cfg.reorder_capacity),
            depack: Depacketizer::new(p.codec),
            pending: Vec::new(),
            first: None,
            orientation: 0,
        }
    }

    /// The frames the reorder buffer stops waiting for by `now`.
    fn poll(&mut self, now: Instant) -> Vec<Frame> {
        let mut f = Vec::new();
        for o in self.reorder.poll(now) {
            f.extend(self.depack.push(o));
        }
        f
    }

    /// Everything still buffered (the end, or a replaced stream).
    fn drain(&mut self) -> Vec<Frame> {
        let mut f = Vec::new();
        for o in self.reorder.flush() {
            f.extend(self.depack.push(o));
        }
        f.extend(self.depack.flush());
        f
    }
}

impl Track {
    fn new(
        kind: TrackKind,
        codec: Codec,
        clock_rate: u32,
        entry: SampleEntry,
        base_ts: i64,
        offset: i64,
        step: i64,
    ) -> Track {
        Track {
            kind,
            codec,
            timescale: NonZeroU32::new(clock_rate).unwrap_or(NonZeroU32::MIN),
            entry,
            base_ts,
            offset,
            last: None,
            ready: Vec::new(),
            end: 0,
            step,
            waiting_keyframe: false,
            last_arrival: None,
            picture: None,
            entry_params: None,
            orientation: 0,
        }
    }

    fn hold_and_release(&mut self, at: i64, data: Vec<u8>, keyframe: bool) {
        if let Some(h) = self.last.take() {
            let d = at - h.at;
            // Remember the usual frame distance (ignoring holes) for the last frame.
            if d > 0 && d <= self.timescale.get() as i64 / 5 {
                self.step = d;
            }
            self.release(h, d);
        } else if at > self.end && self.kind == TrackKind::Video {
            // Only possible for a replacement stream: the previous frame already ended.
            self.end = at;
        }
        self.last = Some(Held { at, data, keyframe });
    }

    fn release(&mut self, h: Held, duration: i64) {
        let duration = duration.clamp(1, u32::MAX as i64);
        self.end = h.at + duration;
        self.ready.push(MediaSample {
            kind: self.kind,
            timescale: self.timescale,
            entry: self.entry.clone(),
            duration: duration as u32,
            keyframe: h.keyframe,
            data: h.data,
        });
    }

    fn release_last(&mut self) {
        if let Some(h) = self.last.take() {
            let step = self.step;
            self.release(h, step);
        }
    }
}

/// The sample entry for a video stream's keyframe, when it carries what it needs.
fn video_entry(s: &Stream, f: &Frame) -> Option<SampleEntry> {
    match s.codec {
        Codec::Vp8 => {
            let key = parse_frame_header(&f.data).ok()?.keyframe?;
            Some(SampleEntry::Vp08(build_vp08_box(&Vp8SampleEntryConfig {
                video_full_range_flag: false,
                colour_primaries: Vp8SampleEntryConfig::COLOUR_PRIMARIES_BT601,
                transfer_characteristics: Vp8SampleEntryConfig::TRANSFER_CHARACTERISTICS_BT601,
                matrix_coefficients: Vp8SampleEntryConfig::MATRIX_COEFFICIENTS_BT601,
                width: key.width,
                height: key.height,
            })))
        }
        Codec::Vp9 => {
            // Only a key frame's header carries the size, bit depth and colour the entry needs.
            let header = vp9::parse_frame_header(&f.data).ok()?;
            if header.frame_type != vp9::Vp9FrameType::Key {
                return None;
            }
            let vp9::Vp9FrameSize::Resolved { width, height } = header.frame_size else {
                return None;
            };
            let config = vp9::Vp9SampleEntryConfig {
                level: vp9::Vp9SampleEntryConfig::LEVEL_UNDEFINED,
                colour_primaries: vp9::Vp9SampleEntryConfig::COLOUR_PRIMARIES_BT601,
                transfer_characteristics: vp9::Vp9SampleEntryConfig::TRANSFER_CHARACTERISTICS_BT601,
                matrix_coefficients: vp9::Vp9SampleEntryConfig::MATRIX_COEFFICIENTS_BT601,
                width: u16::try_from(width).ok()?,
                height: u16::try_from(height).ok()?,
            };
            vp9::build_vp09_box(&header, &config)
                .ok()
                .map(SampleEntry::Vp09)
        }
        Codec::H264 => {
            let sps = s.depack.sps.clone()?;
            let pps = s.depack.pps.clone()?;
            build_avc1_box(
                &[sps],
                &[pps],
                &H264SampleEntryConfig {
                    length_size: LengthSize::FourBytes,
                },
            )
            .ok()
            .map(SampleEntry::Avc1)
        }
        Codec::Opus => None,
    }
}

/// What a video keyframe configures: VP8 / VP9 carry their picture size in the keyframe (a
/// decoder follows a change by itself), H.264 in its parameter sets.
fn picture(codec: Codec, data: &[u8], params: Option<&(Vec<u8>, Vec<u8>)>) -> Option<Picture> {
    match codec {
        Codec::Vp8 => {
            let key = parse_frame_header(data).ok()?.keyframe?;
            Some(Picture::Size(key.width.into(), key.height.into()))
        }
        Codec::Vp9 => match vp9::parse_frame_header(data).ok()?.frame_size {
            vp9::Vp9FrameSize::Resolved { width, height } => Some(Picture::Size(width, height)),
            _ => None,
        },
        Codec::H264 => params.map(|(sps, pps)| Picture::H264 {
            sps: sps.clone(),
            pps: pps.clone(),
        }),
        Codec::Opus => None,
    }
}

/// Extends a sender report's 32-bit RTP time to the lap of `near`.
fn unwrap_near(ts: u32, near: i64) -> i64 {
    near + ts.wrapping_sub(near as u32) as i32 as i64
}
