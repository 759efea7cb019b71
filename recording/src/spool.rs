//! Deferred upload: recordings are written to a local spool folder and uploaded after the
//! session, retried with exponential back-off, picked up again after a restart, and deleted only
//! once the location confirmed their size.
//!
//! Each recording is `<id>.mp4` plus `<id>.json` (its job: location with credentials, so the
//! file is created 0600, remote name, attempts, last error, state). A job still in state
//! `recording` at start-up belongs to a session the server was killed in: its file is playable up
//! to its last fragment and is uploaded like any other.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::Location;
use crate::sink::{Progress, stream_upload, upload, upload_limit};

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// New recordings are refused while the spool holds this much.
    pub max_bytes: u64,
    /// Attempts before a job is marked failed (a retry from the API starts over).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Where `\\host\share` locations are mounted.
    pub network_root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Recording,
    Pending,
    Failed,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    /// With credentials: never log this field (use [`Job::location_redacted`]).
    location: String,
    pub remote_name: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub state: JobState,
}

impl Job {
    pub fn location_redacted(&self, network_root: Option<&Path>) -> String {
        Location::parse(&self.location, network_root)
            .map(|l| l.redacted())
            .unwrap_or_else(|_| "(unparsable location)".into())
    }
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Bytes in spooled recordings (updated on each scan and upload).
    pub bytes: AtomicU64,
    /// Recordings refused because the spool was full.
    pub refused_full: AtomicU64,
    pub uploads_ok: AtomicU64,
    pub uploads_retried: AtomicU64,
    pub uploads_failed: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the recording spool is full ({used} bytes of {limit}): recording refused \
         (raise recording.spool_max_bytes or fix the uploads)"
    )]
    Full { used: u64, limit: u64 },
    #[error("recording spool: {0}")]
    Io(#[from] io::Error),
}

pub struct Spool {
    pub config: SpoolConfig,
    pub stats: Arc<SpoolStats>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Spool {
    pub fn open(config: SpoolConfig) -> io::Result<Spool> {
        std::fs::create_dir_all(&config.dir)?;
        let s = Spool {
            config,
            stats: Arc::new(SpoolStats::default()),
        };
        s.usage();
        Ok(s)
    }

    pub fn file_path(&self, id: &str) -> PathBuf {
        self.config.dir.join(format!("{id}.mp4"))
    }

    fn job_path(&self, id: &str) -> PathBuf {
        self.config.dir.join(format!("{id}.json"))
    }

    /// Bytes held by spooled recordings (also published in the stats).
    pub fn usage(&self) -> u64 {
        let used = std::fs::read_dir(&self.config.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "mp4"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        self.stats.bytes.store(used, Ordering::Relaxed);
        used
    }

    /// Starts a spooled recording: its job (state `recording`) and its empty file.
    pub fn begin(
        &self,
        id: &str,
        location: &Location,
        remote_name: &str,
    ) -> Result<std::fs::File, SpoolError> {
        if !valid_id(id) {
            return Err(SpoolError::Io(io::Error::other("bad recording id")));
        }
        let used = self.usage();
        if used >= self.config.max_bytes {
            self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
            let e = SpoolError::Full {
                used,
                limit: self.config.max_bytes,
            };
            tracing::error!(dir = %self.config.dir.display(), "{e}");
            return Err(e);
        }
        self.save(&Job {
            id: id.to_owned(),
            location: location.secret_string(),
            remote_name: remote_name.to_owned(),
            attempts: 0,
            last_error: None,
            state: JobState::Recording,
        })?;
        Ok(std::fs::File::create(self.file_path(id))?)
    }

    pub fn job(&self, id: &str) -> Option<Job> {
        if !valid_id(id) {
            return None;
        }
        let b = std::fs::read(self.job_path(id)).ok()?;
        serde_json::from_slice(&b).ok()
    }

    pub fn jobs(&self) -> Vec<Job> {
        let Ok(rd) = std::fs::read_dir(&self.config.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Moves job `id` (its file, then its job) into `to`, a spool on the same file system.
    pub fn move_job(&self, id: &str, to: &Spool) -> io::Result<()> {
        std::fs::rename(self.file_path(id), to.file_path(id))?;
        std::fs::rename(self.job_path(id), to.job_path(id))
    }

    fn save(&self, job: &Job) -> io::Result<()> {
        let tmp = self.config.dir.join(format!("{}.json.tmp", job.id));
        {
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            let mut f = o.open(&tmp)?;
            io::Write::write_all(&mut f, &serde_json::to_vec(job).map_err(io::Error::other)?)?;
            f.sync_all()?;
        }
        std::fs::rename(tmp, self.job_path(&job.id))
    }

    fn remove(&self, id: &str) -> io::Result<()> {
        std::fs::remove_file(self.file_path(id))?;
        std::fs::remove_file(self.job_path(id))?;
        self.usage();
        Ok(())
    }
}

/// What the uploader reports about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    Uploading {
        id: String,
        attempt: u32,
    },
    Uploaded {
        id: String,
        bytes: u64,
    },
    /// The attempt failed; another comes after `retry_in`.
    Retrying {
        id: String,
        attempts: u32,
        error: String,
        retry_in: Duration,
    },
    /// Out of attempts: the file stays in the spool until a retry.
    Failed {
        id: String,
        attempts: u32,
        error: String,
    },
}

enum Command {
    Enqueue(String),
    Retry {
        id: String,
        location: Option<Location>,
    },
}

/// Handle of the upload task.
#[derive(Clone)]
pub struct Uploader {
    tx: mpsc::UnboundedSender<Command>,
    spool: Arc<Spool>,
    events: mpsc::UnboundedSender<UploadEvent>,
}

impl Uploader {
    /// Starts the task; it first picks up every job left by a previous run (not failed ones).
    pub fn start(spool: Arc<Spool>, events: mpsc::UnboundedSender<UploadEvent>) -> Uploader {
        let (tx, rx) = mpsc::unbounded_channel();
        // Listed now, not when the task first runs: a recording begun meanwhile is not left over.
        let left = spool.jobs();
        tokio::spawn(run(spool.clone(), left, rx, events.clone()));
        Uploader { tx, spool, events }
    }

    /// Starts uploading the spooled recording `id` (FTP or HTTP(S)) while it is written; `None`
    /// for a folder location or a job that cannot be read (it is uploaded after the session).
    pub fn stream(&self, id: &str) -> Option<LiveUpload> {
        let job = self.spool.job(id)?;
        let loc = Location::parse(&job.location, self.spool.config.network_root.as_deref()).ok()?;
        if !loc.is_remote() {
            return None;
        }
        let (progress, rx) = watch::channel(Progress::Written(0));
        let file = self.spool.file_path(id);
        let task = tokio::spawn(async move {
            stream_upload(&loc, &job.remote_name, &file, rx)
                .await
                .map_err(|e| format!("{loc}: {e}"))
        });
        Some(LiveUpload {
            id: id.to_owned(),
            progress,
            task,
            uploader: self.clone(),
        })
    }

    /// The recording `id` is complete: upload it.
    pub fn enqueue(&self, id: &str) {
        let _ = self.tx.send(Command::Enqueue(id.to_owned()));
    }

    /// Tries a (failed) job again from attempt 1, optionally to a corrected location.
    pub fn retry(&self, id: &str, location: Option<Location>) {
        let _ = self.tx.send(Command::Retry {
            id: id.to_owned(),
            location,
        });
    }
}

/// A spooled recording being uploaded while it is written. Dropping it (the recording failed)
/// stops the stream; the spooled file stays for the deferred upload.
pub struct LiveUpload {
    id: String,
    progress: watch::Sender<Progress>,
    task: JoinHandle<Result<u64, String>>,
    uploader: Uploader,
}

impl LiveUpload {
    /// The file now holds `bytes` (whole fragments): they may be sent.
    pub fn written(&self, bytes: u64) {
        self.progress.send_replace(Progress::Written(bytes));
    }

    /// The recording is complete at `size` bytes. Returns `true` once the location confirmed the
    /// streamed file at the spooled copy's size (the copy is deleted, `Uploaded` reported);
    /// otherwise (the stream broke, or the size differs) it is queued for the deferred upload,
    /// with its retries, and `false` is returned.
    pub async fn finish(mut self, size: u64) -> bool {
        self.progress.send_replace(Progress::Finished(size));
        let spool = &self.uploader.spool;
        let id = self.id.clone();
        let limit = upload_limit(size);
        let result = match tokio::time::timeout(limit, &mut self.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("streamed upload: {e}")),
            Err(_) => Err(format!(
                "streamed upload: no answer from the location within {limit:?}"
            )),
        };
        let local = std::fs::metadata(spool.file_path(&id)).map(|m| m.len());
        let result = match (result, local) {
            (Ok(n), Ok(l)) if n == l && l == size => Ok(n),
            (Ok(n), Ok(l)) => Err(format!(
                "streamed upload: the location holds {n} bytes of {l}"
            )),
            (Ok(_), Err(e)) => Err(format!("spooled file: {e}")),
            (Err(e), _) => Err(e),
        };
        let root = spool.config.network_root.as_deref();
        let location = spool.job(&id).map(|j| j.location_redacted(root));
        match result {
            Ok(bytes) => {
                if let Err(e) = spool.remove(&id) {
                    tracing::error!(recording = %id, error = %e, "recording: uploaded, but cannot delete the spooled copy");
                }
                spool.stats.uploads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(recording = %id, bytes, location = location.as_deref().unwrap_or_default(), "recording: streamed and confirmed");
                let _ = self
                    .uploader
                    .events
                    .send(UploadEvent::Uploaded { id, bytes });
                true
            }
            Err(error) => {
                tracing::warn!(recording = %id, %error, "recording: the streamed upload did not complete; uploading the spooled copy instead");
                self.uploader.enqueue(&id);
                false
            }
        }
    }
}

impl Drop for LiveUpload {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn backoff(config: &SpoolConfig, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(16);
    config
        .backoff_base
        .saturating_mul(factor)
        .min(config.backoff_max)
}

async fn run(
    spool: Arc<Spool>,
    left: Vec<Job>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<UploadEvent>,
) {
    let mut due: HashMap<String, Instant> = HashMap::new();
    for job in left {
        if job.state != JobState::Failed {
            if job.state == JobState::Recording {
                tracing::warn!(
                    recording = %job.id,
                    "recording: found a recording cut off by a stop; uploading what was written"
                );
            }
            due.insert(job.id, Instant::now());
        }
    }
    loop {
        let next = due
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(id, at)| (id.clone(), *at));
        let cmd = match &next {
            Some((_, at)) => tokio::select! {
                c = rx.recv() => match c { Some(c) => Some(c), None => return },
                _ = tokio::time::sleep_until(*at) => None,
            },
            None => match rx.recv().await {
                Some(c) => Some(c),
                None => return,
            },
        };
        match cmd {
            Some(Command::Enqueue(id)) => {
                due.insert(id, Instant::now());
            }
            Some(Command::Retry { id, location }) => {
                if let Some(mut job) = spool.job(&id) {
                    if let Some(l) = location {
                        job.location = l.secret_string();
                    }
                    job.attempts = 0;
                    job.state = JobState::Pending;
                    if let Err(e) = spool.save(&job) {
                        tracing::error!(recording = %id, error = %e, "recording: cannot save the job");
                    }
                    due.insert(id, Instant::now());
                }
            }
            None => {
                let Some((id, _)) = next else { continue };
                due.remove(&id);
                if let Some(retry_in) = attempt(&spool, &id, &events).await {
                    due.insert(id, Instant::now() + retry_in);
                }
            }
        }
    }
}

/// One upload attempt; returns when to try again, if at all.
async fn attempt(
    spool: &Spool,
    id: &str,
    events: &mpsc::UnboundedSender<UploadEvent>,
) -> Option<Duration> {
    let mut job = spool.job(id)?;
    job.state = JobState::Pending;
    job.attempts += 1;
    let _ = events.send(UploadEvent::Uploading {
        id: id.to_owned(),
        attempt: job.attempts,
    });
    let root = spool.config.network_root.as_deref();
    let result = match Location::parse(&job.location, root) {
        Ok(loc) => upload(&loc, &job.remote_name, &spool.file_path(id))
            .await
            .map_err(|e| format!("{loc}: {e}")),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(bytes) => {
            if let Err(e) = spool.remove(id) {
                tracing::error!(recording = %id, error = %e, "recording: uploaded, but cannot delete the spooled copy");
            }
            spool.stats.uploads_ok.fetch_add(1, Ordering::Relaxed);
            tracing::info!(recording = %id, bytes, location = %job.location_redacted(root), "recording: uploaded");
            let _ = events.send(UploadEvent::Uploaded {
                id: id.to_owned(),
                bytes,
            });
            None
        }
        Err(error) => {
            job.last_error = Some(error.clone());
            let out = if job.attempts >= spool.config.max_attempts {
                job.state = JobState::Failed;
                spool.stats.uploads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(recording = %id, attempts = job.attempts, %error, "recording: upload failed; the file stays in the spool");
                let _ = events.send(UploadEvent::Failed {
                    id: id.to_owned(),
                    attempts: job.attempts,
                    error,
                });
                None
            } else {
                let retry_in = backoff(&spool.config, job.attempts);
                spool.stats.uploads_retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(recording = %id, attempts = job.attempts, %error, ?retry_in, "recording: upload failed; will retry");
                let _ = events.send(UploadEvent::Retrying {
                    id: id.to_owned(),
                    attempts: job.attempts,
                    error,
                    retry_in,
                });
                Some(retry_in)
            };
            if let Err(e) = spool.save(&job) {
                tracing::error!(recording = %id, error = %e, "recording: cannot save the job");
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = SpoolConfig {
            dir: PathBuf::new(),
            max_bytes: 0,
            max_attempts: 5,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            network_root: None,
        };
        let got: Vec<u64> = (1..=7).map(|a| backoff(&c, a).as_secs()).collect();
        assert_eq!(got, vec![2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn a_full_spool_refuses_a_recording_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig {
            dir: dir.path().into(),
            max_bytes: 10,
            max_attempts: 1,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(1),
            network_root: None,
        })
        .unwrap();
        let loc = Location::parse("ftp://u:pw@127.0.0.1/x", None).unwrap();
        let mut f = spool.begin("a", &loc, "a.mp4").unwrap();
        io::Write::write_all(&mut f, &[0u8; 20]).unwrap();
        assert!(matches!(
            spool.begin("b", &loc, "b.mp4"),
            Err(SpoolError::Full {
                used: 20,
                limit: 10
            })
        ));
        assert_eq!(spool.stats.refused_full.load(Ordering::Relaxed), 1);
        assert_eq!(spool.stats.bytes.load(Ordering::Relaxed), 20);
        let job = spool.job("a").unwrap();
        assert_eq!(job.state, JobState::Recording);
        assert_eq!(job.location_redacted(None), "ftp://u:********@127.0.0.1/x");
        assert!(spool.job("../a").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("a.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the job holds credentials");
        }
    }
}
