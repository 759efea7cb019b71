//! The recorder service: at the start of a session whose technician's group has forced screen
//! recording, it opens the SFU's tap for the session, asks for a keyframe and feeds the
//! `recording` crate; one file per session (a transfer keeps the same file: the customer's
//! streams go on). Deferred recordings (the group setting, and always FTP / HTTP(S)) go to the
//! spool and are uploaded after the session (and, with `recording.stream_uploads`, also while
//! it runs); the recordings table follows each step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use recording::recorder::RecorderConfig;
use recording::spool::{Job, JobState, Spool, SpoolConfig, UploadEvent, Uploader};
use recording::{Codec, Location, Recorder, RtpPacket, SenderReport, Source};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::settings::group::TechnicianGroupSettings;
use crate::store::Store;
use crate::store::recordings::{RecordingRow, RecordingStatus, RecordingUpdate};

/// Events the tap may hold before the SFU starts dropping (about 3 s of a 1.5 Mbit/s session).
const TAP_CAPACITY: usize = 4096;
/// How often the recorder's timer runs (reorder give-up, fragment flush).
const TICK: Duration = Duration::from_millis(250);

#[derive(Clone)]
struct RecordingMetrics {
    active: IntGauge,
    bytes: IntCounter,
    spool_bytes: IntGauge,
    spool_full: IntCounter,
    uploads: IntCounterVec,
    tap_dropped: IntCounter,
    failed: IntCounter,
}

impl RecordingMetrics {
    fn new(registry: &Registry) -> RecordingMetrics {
        let m = RecordingMetrics {
            active: IntGauge::new("recordings_active", "Recordings being written")
                .expect("static metric definition"),
            bytes: IntCounter::new(
                "recording_bytes_written_total",
                "Bytes written to recording files",
            )
            .expect("static metric definition"),
            spool_bytes: IntGauge::new(
                "recording_spool_bytes",
                "Bytes of recordings in the upload spool",
            )
            .expect("static metric definition"),
            spool_full: IntCounter::new(
                "recording_spool_full_total",
                "Recordings refused because the spool was full",
            )
            .expect("static metric definition"),
            uploads: IntCounterVec::new(
                Opts::new("recording_uploads_total", "Upload attempts by outcome"),
                &["outcome"],
            )
            .expect("static metric definition"),
            tap_dropped: IntCounter::new(
                "recording_tap_dropped_total",
                "Packets the SFU dropped because a recorder fell behind",
            )
            .expect("static metric definition"),
            failed: IntCounter::new(
                "recordings_failed_total",
                "Recordings that failed while being written",
            )
            .expect("static metric definition"),
        };
        let all: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(m.active.clone()),
            Box::new(m.bytes.clone()),
            Box::new(m.spool_bytes.clone()),
            Box::new(m.spool_full.clone()),
            Box::new(m.uploads.clone()),
            Box::new(m.tap_dropped.clone()),
            Box::new(m.failed.clone()),
        ];
        for c in all {
            if let Err(e) = registry.register(c) {
                tracing::warn!(error = %e, "recording metric not registered");
            }
        }
        m
    }
}

pub struct RecorderService {
    store: Store,
    config: Arc<Config>,
    sfu: sfu::SfuHandle,
    spool: Arc<Spool>,
    /// Held while the node runs (shared spool folder): a free lock means the node is gone.
    _spool_lock: Option<std::fs::File>,
    /// Stored with each recording: which node's recorder writes it.
    node_id: String,
    uploader: Uploader,
    metrics: RecordingMetrics,
    /// Sessions being recorded: dropping the sender (or sending) ends the recording.
    active: Mutex<HashMap<i64, oneshot::Sender<()>>>,
    /// Recording tasks not finished yet (stopped ones included, while they close their file).
    writing: std::sync::atomic::AtomicUsize,
}

/// Why a retry was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryError {
    NotFound,
    /// Not failed, or nothing left to upload.
    Conflict(String),
    BadLocation(String),
}

/// How often a node with a shared spool folder looks for the spools of gone nodes.
const SPOOL_SWEEP: Duration = Duration::from_secs(5);
/// How long a starting node waits for its spool folder's lock (held by a node taking its
/// leftovers over, briefly; or by a second process with the same node id, for good).
const SPOOL_LOCK_WAIT: Duration = Duration::from_secs(30);

fn open_lock(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(".lock"))
}

/// This node's spool folder, and with a shared spool root the lock it holds there while it runs.
async fn own_spool(
    config: &Config,
    node_id: &str,
) -> anyhow::Result<(PathBuf, Option<std::fs::File>)> {
    let shared = &config.recording.shared_spool_dir;
    if shared.is_empty() {
        return Ok((config.recordings_dir().join("spool"), None));
    }
    if !node_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || node_id.starts_with('.')
    {
        anyhow::bail!(
            "recording.shared_spool_dir: the node id {node_id:?} is a folder name there: use letters, digits, '-', '_' or '.'"
        );
    }
    let dir = Path::new(shared).join(node_id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("recording.shared_spool_dir {}: {e}", dir.display()))?;
    let lock = open_lock(&dir)
        .map_err(|e| anyhow::anyhow!("recording.shared_spool_dir {}: {e}", dir.display()))?;
    let deadline = tokio::time::Instant::now() + SPOOL_LOCK_WAIT;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok((dir, Some(lock))),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => anyhow::bail!(
                "recording.shared_spool_dir: cannot lock {} ({e}); is another process running with node id {node_id:?}?",
                dir.display()
            ),
        }
    }
}

fn spool_id(recording_id: i64) -> String {
    format!("rec-{recording_id}")
}

fn now_ms() -> i64 {
    crate::store::now_ms()
}

impl RecorderService {
    /// Opens the spool (uploading what a previous run left), closes the rows a stop interrupted.
    pub async fn start(
        config: Arc<Config>,
        store: Store,
        sfu: sfu::SfuHandle,
        registry: &Registry,
        node: &crate::cluster::Node,
    ) -> anyhow::Result<Arc<RecorderService>> {
        let rc = &config.recording;
        let (spool_dir, spool_lock) = own_spool(&config, &node.id).await?;
        let spool = Arc::new(
            Spool::open(SpoolConfig {
                dir: spool_dir,
                max_bytes: rc.spool_max_bytes,
                max_attempts: rc.upload_max_attempts,
                backoff_base: Duration::from_secs(rc.upload_backoff_seconds),
                backoff_max: Duration::from_secs(
                    rc.upload_backoff_max_seconds.max(rc.upload_backoff_seconds),
                ),
                network_root: network_root(&config),
            })
            .map_err(|e| anyhow::anyhow!("recording spool (recordings_dir): {e}"))?,
        );
        // With several nodes, the others' open recordings are theirs to close.
        let node_id = node.id.clone();
        let mine = node.shares_store().then_some(node_id.as_str());
        close_interrupted(&store, &config, &spool, mine).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let uploader = Uploader::start(spool.clone(), tx);
        let service = Arc::new(RecorderService {
            store,
            config,
            sfu,
            spool,
            _spool_lock: spool_lock,
            uploader,
            node_id,
            metrics: RecordingMetrics::new(registry),
            active: Mutex::new(HashMap::new()),
            writing: Default::default(),
        });
        service
            .metrics
            .spool_bytes
            .set(service.spool.usage() as i64);
        tokio::spawn(service.clone().follow_uploads(rx));
        if !service.config.recording.shared_spool_dir.is_empty() {
            tokio::spawn(service.clone().take_over_spools());
        }
        Ok(service)
    }

    /// With a shared spool folder: every [`SPOOL_SWEEP`], moves the spooled recordings of nodes
    /// whose process is gone (their lock is free) into this node's spool and uploads them here.
    async fn take_over_spools(self: Arc<Self>) {
        let root = PathBuf::from(&self.config.recording.shared_spool_dir);
        loop {
            tokio::time::sleep(SPOOL_SWEEP).await;
            let me = self.clone();
            let root = root.clone();
            let taken = tokio::task::spawn_blocking(move || me.move_orphaned_spools(&root))
                .await
                .unwrap_or_default();
            // Each gone node's lock is held until its rows name this node: a node coming back
            // meanwhile waits for it before it closes what it thinks it left open.
            for (from, jobs, _lock) in taken {
                self.adopt_spooled(&from, &jobs).await;
            }
        }
    }

    /// Moves each unlocked node folder's jobs (file first, then job) into this node's spool,
    /// holding that folder's lock meanwhile; returns the jobs moved per node, with its lock.
    fn move_orphaned_spools(&self, root: &Path) -> Vec<(String, Vec<Job>, std::fs::File)> {
        let Ok(dirs) = std::fs::read_dir(root) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        for dir in dirs.flatten() {
            let from = dir.file_name().to_string_lossy().into_owned();
            let path = dir.path();
            if from == self.node_id || !path.is_dir() {
                continue;
            }
            // A live node holds its folder's lock for as long as it runs.
            let Ok(lock) = open_lock(&path) else { continue };
            if lock.try_lock().is_err() {
                continue;
            }
            let other = Spool::open(SpoolConfig {
                dir: path.clone(),
                ..self.spool.config.clone()
            });
            let Ok(other) = other else { continue };
            let mut moved = Vec::new();
            for job in other.jobs() {
                match other.move_job(&job.id, &self.spool) {
                    Ok(()) => moved.push(job),
                    Err(e) => {
                        tracing::error!(node = %from, recording = %job.id, error = %e, "recording: cannot move a gone node's spooled recording")
                    }
                }
            }
            if !moved.is_empty() {
                taken.push((from, moved, lock));
            }
        }
        taken
    }

    /// The moved recordings are this node's now: their rows name it (so the next take-over, or
    /// a retry through this node, finds them), those cut off while being written are closed, and
    /// every one not failed for good is uploaded from here.
    async fn adopt_spooled(&self, from: &str, jobs: &[Job]) {
        let stored =
            match close_interrupted(&self.store, &self.config, &self.spool, Some(from)).await {
                Ok(()) => self
                    .store
                    .recordings_to_node(from, &self.node_id)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
        if let Err(e) = stored {
            // The files are here now: upload them anyway (their rows follow the upload events).
            tracing::error!(node = %from, error = %e, "recording: cannot mark a gone node's recordings as this node's");
        }
        self.metrics.spool_bytes.set(self.spool.usage() as i64);
        for job in jobs {
            if job.state != JobState::Failed {
                self.uploader.enqueue(&job.id);
            }
        }
        tracing::warn!(node = %from, recordings = jobs.len(), "recording: took over the spooled recordings of a gone node");
    }

    /// A session's media started (not a transfer): record it if its technician's group says so.
    /// Returns at once; the work happens on a task.
    pub fn session_started(self: &Arc<Self>, session: i64, technician: i64) {
        let (stop_tx, stop_rx) = oneshot::channel();
        match self.active.lock() {
            Ok(mut a) => {
                if a.contains_key(&session) {
                    return;
                }
                a.insert(session, stop_tx);
            }
            Err(_) => return,
        }
        let me = self.clone();
        me.writing.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            let result = me.record(session, technician, stop_rx).await;
            me.writing.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            if let Err(e) = result {
                tracing::error!(session_id = session, error = %e, "recording: failed");
            }
            if let Ok(mut a) = me.active.lock() {
                a.remove(&session);
            }
        });
    }

    /// Recordings being written or closed now (a draining node waits for them before it exits).
    pub fn active_count(&self) -> usize {
        self.writing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The session's media stopped: finish its recording.
    pub fn session_stopped(&self, session: i64) {
        if let Ok(mut a) = self.active.lock()
            && let Some(stop) = a.remove(&session)
        {
            let _ = stop.send(());
        }
    }

    /// Tries a failed upload again, to the group's current location (which may have been fixed).
    pub async fn retry(&self, recording_id: i64) -> Result<RecordingRow, RetryError> {
        let row = self
            .store
            .recording(recording_id)
            .await
            .map_err(|_| RetryError::NotFound)?;
        if row.status != RecordingStatus::Failed {
            return Err(RetryError::Conflict(format!(
                "the recording is {}, not failed",
                row.status.as_str()
            )));
        }
        let id = spool_id(recording_id);
        if self.spool.job(&id).is_none() {
            return Err(RetryError::Conflict(
                "nothing to upload: the recording is not in the spool".into(),
            ));
        }
        let settings = load_settings(&self.store, row.group_id)
            .await
            .map_err(RetryError::BadLocation)?;
        let loc_text = settings.screen_recording.location.clone().ok_or_else(|| {
            RetryError::BadLocation("the group has no screen recording location".into())
        })?;
        let loc = parse_location(&self.config, &loc_text)
            .map_err(|e| RetryError::BadLocation(e.to_string()))?;
        let update = RecordingUpdate {
            status: Some(RecordingStatus::Spooled),
            attempts: Some(0),
            ..Default::default()
        };
        self.store
            .update_recording(recording_id, &update, now_ms())
            .await
            .map_err(|e| RetryError::Conflict(e.to_string()))?;
        self.store
            .set_recording_location(recording_id, &loc.redacted())
            .await
            .map_err(|e| RetryError::Conflict(e.to_string()))?;
        self.uploader.retry(&id, Some(loc));
        self.store
            .recording(recording_id)
            .await
            .map_err(|_| RetryError::NotFound)
    }

    /// Where a finished recording's file is on this server, if it is (see [`local_file`]).
    pub fn local_file(&self, row: &RecordingRow) -> Option<std::path::PathBuf> {
        local_file(&self.config, &self.spool, row)
    }

    async fn record(
        &self,
        session: i64,
        technician: i64,
        mut stop: oneshot::Receiver<()>,
    ) -> anyhow::Result<()> {
        let tech = self.store.user_any(technician).await?;
        let row = self.store.session(session).await?;
        let group_id = tech.group_id.unwrap_or(row.group_id);
        let settings = load_settings(&self.store, group_id)
            .await
            .map_err(anyhow::Error::msg)?;
        let sr = &settings.screen_recording;
        let Some(loc_text) = sr.location.as_deref().filter(|_| sr.forced) else {
            return Ok(());
        };
        let group_name = self
            .store
            .group(group_id)
            .await
            .map(|g| g.name)
            .unwrap_or_default();
        let started = now_ms();
        let file_name = file_name(
            &self.config.recording.file_name_pattern,
            session,
            &tech.name,
            &group_name,
            started,
        );
        // A session recorded again (moved to another node, or after a restart) within the same
        // second, or under a pattern without `{start}`, must not overwrite its first file.
        let taken: Vec<String> = self
            .store
            .recordings_of_session(session)
            .await?
            .into_iter()
            .map(|r| r.file_name)
            .collect();
        let file_name = (1..)
            .map(|n| match n {
                1 => file_name.clone(),
                n => format!("{file_name}_{n}"),
            })
            .find(|name| !taken.contains(name))
            .unwrap_or(file_name);
        let parsed = parse_location(&self.config, loc_text);
        let deferred =
            sr.effective_deferred_upload() || parsed.as_ref().is_ok_and(|l| l.is_remote());
        let mut new_row = RecordingRow {
            id: 0,
            session_id: session,
            group_id,
            location: parsed
                .as_ref()
                .map(|l| l.redacted())
                .unwrap_or_else(|_| "(invalid location)".into()),
            file_name: file_name.clone(),
            deferred,
            size_bytes: 0,
            duration_ms: 0,
            codecs: String::new(),
            status: RecordingStatus::Recording,
            last_error: None,
            attempts: 0,
            started_at: started,
            ended_at: None,
            updated_at: started,
        };
        let loc = match parsed {
            Ok(l) => l,
            Err(e) => {
                new_row.status = RecordingStatus::Failed;
                new_row.last_error = Some(format!("screen recording location: {e}"));
                new_row.ended_at = Some(started);
                self.store.insert_recording(&new_row, &self.node_id).await?;
                self.metrics.failed.inc();
                return Ok(());
            }
        };
        let id = self.store.insert_recording(&new_row, &self.node_id).await?;
        let fail = |error: String| async move {
            self.metrics.failed.inc();
            tracing::error!(session_id = session, recording = id, %error, "recording: failed; the session goes on");
            let u = RecordingUpdate {
                status: Some(RecordingStatus::Failed),
                last_error: Some(Some(error)),
                ended_at: Some(now_ms()),
                ..Default::default()
            };
            let _ = self.store.update_recording(id, &u, now_ms()).await;
        };
        let file = if deferred {
            match self
                .spool
                .begin(&spool_id(id), &loc, &format!("{file_name}.mp4"))
            {
                Ok(f) => f,
                Err(e) => {
                    if matches!(e, recording::spool::SpoolError::Full { .. }) {
                        self.metrics.spool_full.inc();
                    }
                    fail(e.to_string()).await;
                    return Ok(());
                }
            }
        } else {
            match open_in_folder(&loc, &file_name) {
                Ok(f) => f,
                Err(e) => {
                    fail(e).await;
                    return Ok(());
                }
            }
        };
        // With `recording.stream_uploads`, FTP / HTTP(S) recordings are also sent as they grow.
        let live = (deferred && self.config.recording.stream_uploads)
            .then(|| self.uploader.stream(&spool_id(id)))
            .flatten();
        let mut rec = Recorder::new(file, RecorderConfig::default())?;
        let mut tap = self.sfu.tap(session, TAP_CAPACITY)?;
        self.metrics.active.inc();
        tracing::info!(session_id = session, recording = id, location = %loc, deferred, "recording: started");
        let mut tick = tokio::time::interval(TICK);
        let mut written = 0u64;
        let mut error = None;
        loop {
            let step = tokio::select! {
                ev = tap.recv() => match ev {
                    Some(ev) => push_event(&mut rec, ev),
                    None => break,
                },
                _ = tick.tick() => rec.tick(Instant::now()),
                _ = &mut stop => break,
            };
            if let Err(e) = step {
                error = Some(write_error(&e));
                break;
            }
            if rec.take_keyframe_request() {
                let _ = self.sfu.request_keyframe(session);
            }
            let bytes = rec.stats().bytes;
            self.metrics.bytes.inc_by(bytes - written);
            if bytes != written
                && let Some(l) = &live
            {
                l.written(bytes);
            }
            written = bytes;
        }
        drop(tap);
        self.metrics.active.dec();
        if let Some(st) = self.sfu.stats(session) {
            self.metrics.tap_dropped.inc_by(st.tap_dropped);
        }
        if let Some(e) = error {
            fail(e).await;
            return Ok(());
        }
        let summary = match rec.finish() {
            Ok((file, summary)) => {
                if let Err(e) = file.sync_all() {
                    fail(write_error(&e)).await;
                    return Ok(());
                }
                summary
            }
            Err(e) => {
                fail(format!("cannot finish the recording: {e}")).await;
                return Ok(());
            }
        };
        self.metrics
            .bytes
            .inc_by(summary.bytes.saturating_sub(written));
        let u = RecordingUpdate {
            status: Some(if deferred {
                RecordingStatus::Spooled
            } else {
                RecordingStatus::Uploaded
            }),
            size_bytes: Some(summary.bytes as i64),
            duration_ms: Some(summary.duration.as_millis() as i64),
            codecs: Some(summary.codecs.join(",")),
            ended_at: Some(now_ms()),
            ..Default::default()
        };
        self.store.update_recording(id, &u, now_ms()).await?;
        tracing::info!(
            session_id = session, recording = id, bytes = summary.bytes,
            duration_ms = summary.duration.as_millis() as u64, codecs = %summary.codecs.join(","),
            lost = summary.stats.packets_lost, silence_frames = summary.stats.silence_frames,
            technician_frames = summary.stats.technician_frames, concealed_frames = summary.stats.concealed_frames,
            "recording: finished"
        );
        if deferred {
            self.metrics.spool_bytes.set(self.spool.usage() as i64);
            match live {
                // Confirms (the row becomes uploaded) or hands over to the deferred upload.
                Some(l) => {
                    l.finish(summary.bytes).await;
                }
                None => self.uploader.enqueue(&spool_id(id)),
            }
        }
        Ok(())
    }

    /// Mirrors the uploader's progress into the recordings table and the metrics.
    async fn follow_uploads(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<UploadEvent>) {
        while let Some(ev) = rx.recv().await {
            let (id, u, outcome) = match ev {
                UploadEvent::Uploading { id, attempt } => (
                    id,
                    RecordingUpdate {
                        status: Some(RecordingStatus::Uploading),
                        attempts: Some(attempt as i64),
                        ..Default::default()
                    },
                    None,
                ),
                UploadEvent::Uploaded { id, bytes } => (
                    id,
                    RecordingUpdate {
                        status: Some(RecordingStatus::Uploaded),
                        size_bytes: Some(bytes as i64),
                        last_error: Some(None),
                        ..Default::default()
                    },
                    Some("ok"),
                ),
                UploadEvent::Retrying {
                    id,
                    attempts,
                    error,
                    ..
                } => (
                    id,
                    upload_error(RecordingStatus::Spooled, attempts, error),
                    Some("retry"),
                ),
                UploadEvent::Failed {
                    id,
                    attempts,
                    error,
                } => (
                    id,
                    upload_error(RecordingStatus::Failed, attempts, error),
                    Some("failed"),
                ),
            };
            if let Some(o) = outcome {
                self.metrics.uploads.with_label_values(&[o]).inc();
                self.metrics.spool_bytes.set(self.spool.usage() as i64);
            }
            let Some(rid) = id.strip_prefix("rec-").and_then(|n| n.parse::<i64>().ok()) else {
                continue;
            };
            if let Err(e) = self.store.update_recording(rid, &u, now_ms()).await {
                tracing::warn!(recording = rid, error = %e, "recording: cannot store the upload status");
            }
        }
    }
}

/// What a recording cut off by a stopped server (a crash, `kill -9`) becomes at the next start.
/// Its file is kept and plays up to its last fragment (at most a fragment interval is lost), so
/// it is closed like a finished one — `uploaded` when written in place, `spooled` when deferred
/// (the spool uploads it) — with its size taken from the file, its duration and codecs read back
/// from the init segment and the whole fragments (`recording::probe`), and `last_error` saying it
/// was cut off.
pub const INTERRUPTED: &str =
    "the server stopped during the session: the file ends at its last fragment";

async fn close_interrupted(
    store: &Store,
    config: &Config,
    spool: &Spool,
    node: Option<&str>,
) -> anyhow::Result<()> {
    for row in store.recordings_in_progress(node).await? {
        let file = local_file(config, spool, &row);
        let size = file
            .as_deref()
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(0, |m| m.len() as i64);
        // Reading a file back is blocking work; a server starts with few of these.
        let facts = match file {
            Some(f) => tokio::task::spawn_blocking(move || recording::probe::read_facts(&f))
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        tracing::warn!(
            recording = row.id,
            session_id = row.session_id,
            size,
            duration_ms = facts.as_ref().map_or(0, |f| f.duration.as_millis() as u64),
            "recording: cut off by a server stop, closed (the file ends at its last fragment)"
        );
        let u = RecordingUpdate {
            status: Some(if row.deferred {
                RecordingStatus::Spooled
            } else {
                RecordingStatus::Uploaded
            }),
            size_bytes: Some(size),
            duration_ms: facts.as_ref().map(|f| f.duration.as_millis() as i64),
            codecs: facts.as_ref().map(|f| f.codecs.join(",")),
            last_error: Some(Some(INTERRUPTED.into())),
            ended_at: Some(now_ms()),
            ..Default::default()
        };
        store.update_recording(row.id, &u, now_ms()).await?;
    }
    Ok(())
}

/// Where a recording's file is on this server: the spool copy while it is there, else the file in
/// its folder location (local or mounted network path). `None` for a file only on an FTP/HTTP(S)
/// location.
fn local_file(config: &Config, spool: &Spool, row: &RecordingRow) -> Option<std::path::PathBuf> {
    let spooled = spool.file_path(&spool_id(row.id));
    if row.deferred && spooled.exists() {
        return Some(spooled);
    }
    // The stored location is redacted; a folder has nothing to redact, so it parses back.
    match parse_location(config, &row.location) {
        Ok(Location::Folder { path, .. }) => {
            recording::sink::folder_target(&path, &format!("{}.mp4", row.file_name)).ok()
        }
        _ => None,
    }
}

/// Why the file could not be written, for the recordings table: a full disk said in words.
fn write_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::StorageFull {
        format!("cannot write the recording: the disk is full ({e})")
    } else {
        format!("cannot write the recording: {e}")
    }
}

/// A failed attempt: `Spooled` while retries remain, `Failed` when they are used up.
fn upload_error(status: RecordingStatus, attempts: u32, error: String) -> RecordingUpdate {
    RecordingUpdate {
        status: Some(status),
        attempts: Some(attempts as i64),
        last_error: Some(Some(error)),
        ..Default::default()
    }
}

/// A group's screen recording location as this server records to it (a network path resolved
/// under `recording.network_mount_root`). Settings are checked with it when they are saved.
pub fn parse_location(config: &Config, text: &str) -> Result<Location, recording::LocationError> {
    Location::parse(text, network_root(config).as_deref())
}

fn network_root(config: &Config) -> Option<std::path::PathBuf> {
    let r = &config.recording.network_mount_root;
    (!r.is_empty()).then(|| r.into())
}

async fn load_settings(store: &Store, group_id: i64) -> Result<TechnicianGroupSettings, String> {
    crate::api::settings::load_group(store, group_id)
        .await
        .map_err(|e| format!("group {group_id} settings: {}", e.message))
}

/// Real-time mode: the file is written straight into its folder (local or mounted network path).
fn open_in_folder(loc: &Location, file_name: &str) -> Result<std::fs::File, String> {
    let Location::Folder { path, .. } = loc else {
        return Err("only folders are written in real time".into());
    };
    let target = recording::sink::folder_target(path, &format!("{file_name}.mp4"))
        .map_err(|e| e.to_string())?;
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))?;
    }
    std::fs::File::create(&target).map_err(|e| format!("cannot create {}: {e}", target.display()))
}

/// Expands the file name pattern; every field is reduced to `[A-Za-z0-9._-]` so a name cannot
/// climb out of the location or make surprising folders.
pub fn file_name(
    pattern: &str,
    session: i64,
    technician: &str,
    group: &str,
    start_ms: i64,
) -> String {
    let t = chrono::DateTime::from_timestamp_millis(start_ms).unwrap_or_default();
    let clean = |s: &str| -> String {
        let c: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        c.trim_matches('.').to_owned()
    };
    let out = pattern
        .replace("{date}", &t.format("%Y-%m-%d").to_string())
        .replace("{session_id}", &session.to_string())
        .replace("{technician}", &clean(technician))
        .replace("{group}", &clean(group))
        .replace("{start}", &t.format("%Y%m%dT%H%M%SZ").to_string());
    let parts: Vec<String> = out
        .split('/')
        .map(clean)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        format!("{session}")
    } else {
        parts.join("/")
    }
}

fn push_event(rec: &mut Recorder<std::fs::File>, ev: sfu::TapEvent) -> std::io::Result<()> {
    match ev {
        sfu::TapEvent::Rtp(p) => {
            let Some(codec) = Codec::from_name(&p.codec.name) else {
                return Ok(());
            };
            rec.push_rtp(RtpPacket {
                source: match p.from {
                    sfu::PeerRole::Customer => Source::Customer,
                    sfu::PeerRole::Technician => Source::Technician,
                },
                codec,
                clock_rate: p.codec.clock_rate,
                ssrc: p.ssrc,
                seq: p.seq,
                timestamp: p.rtp_time,
                marker: p.marker,
                payload: p.payload,
                arrival: p.arrival,
                muted: p.muted,
                video_orientation: p.video_orientation,
            })
        }
        sfu::TapEvent::SenderReport {
            ssrc,
            ntp_time,
            rtp_time,
            ..
        } => {
            rec.push_sender_report(SenderReport {
                ssrc,
                ntp_time: ntp64(ntp_time),
                rtp_time,
            });
            Ok(())
        }
    }
}

/// SystemTime as a 64-bit NTP timestamp (seconds since 1900 . fraction).
fn ntp64(t: SystemTime) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_name_pattern() {
        // 2026-11-28 02:03:04 UTC
        let at = 1_795_831_384_000;
        assert_eq!(
            file_name(
                "{date}/{session_id}_{technician}_{start}",
                42,
                "Ann Lee/x",
                "G",
                at
            ),
            "2026-11-28/42_Ann_Lee_x_20261128T020304Z"
        );
        assert_eq!(file_name("../{group}/..", 7, "t", "..", at), "7");
    }

    #[test]
    fn ntp_time_of_the_unix_epoch() {
        assert_eq!(ntp64(UNIX_EPOCH) >> 32, 2_208_988_800);
        let half = UNIX_EPOCH + Duration::from_millis(500);
        assert_eq!(ntp64(half) & 0xFFFF_FFFF, 1 << 31);
    }
}
