//! Uploads to real servers on 127.0.0.1 (pyftpdlib, tests/put_server.py) and the spool's retries.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use recording::Location;
use recording::sink::upload;
use recording::spool::{JobState, Spool, SpoolConfig, UploadEvent, Uploader};
use tokio::sync::mpsc;

const NAME: &str = "2026-11-28/42_alice_20261128T020000Z.mp4";

fn spool_in(dir: &Path, max_attempts: u32) -> Arc<Spool> {
    Arc::new(
        Spool::open(SpoolConfig {
            dir: dir.into(),
            max_bytes: 1 << 30,
            max_attempts,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
            network_root: None,
        })
        .unwrap(),
    )
}

/// Puts `data` in the spool as a finished recording `id` for `location`.
fn spooled(spool: &Spool, id: &str, location: &str, data: &[u8]) {
    let loc = Location::parse(location, None).unwrap();
    let mut f = spool.begin(id, &loc, NAME).unwrap();
    std::io::Write::write_all(&mut f, data).unwrap();
}

/// A stand-in recording of `n` bytes in a temporary folder.
fn local_file(n: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let data = some_bytes(n);
    let file = dir.path().join("r.mp4");
    std::fs::write(&file, &data).unwrap();
    (dir, file, data)
}

/// A spool with its upload task started.
fn uploader(
    dir: &Path,
    max_attempts: u32,
) -> (Arc<Spool>, Uploader, mpsc::UnboundedReceiver<UploadEvent>) {
    let spool = spool_in(dir, max_attempts);
    let (tx, rx) = mpsc::unbounded_channel();
    let up = Uploader::start(spool.clone(), tx);
    (spool, up, rx)
}

async fn next_final(
    rx: &mut mpsc::UnboundedReceiver<UploadEvent>,
) -> (UploadEvent, Vec<UploadEvent>) {
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("an upload outcome within a minute")
            .expect("uploader running");
        match e {
            UploadEvent::Uploaded { .. } | UploadEvent::Failed { .. } => return (e, seen),
            other => seen.push(other),
        }
    }
}

#[tokio::test]
async fn ftp_upload_is_byte_identical_and_folders_are_created() {
    let Some(py) = python_with("pyftpdlib") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let srv = ftp_server(&py, root.path(), free_port());
    let (_local, file, data) = local_file(700_000);
    let loc = Location::parse(
        &format!("ftp://test:secret@127.0.0.1:{}/recs/lens", srv.port),
        None,
    )
    .unwrap();
    assert_eq!(upload(&loc, NAME, &file).await.unwrap(), data.len() as u64);
    let got = std::fs::read(root.path().join("recs/lens").join(NAME)).unwrap();
    assert!(got == data, "byte-identical");
}

#[tokio::test]
async fn ftp_upload_resumes_a_cut_off_file() {
    let Some(py) = python_with("pyftpdlib") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let srv = ftp_server(&py, root.path(), free_port());
    let (_local, file, data) = local_file(500_000);
    // What an upload cut by a stop leaves behind: the first part of the file.
    let target = root.path().join(NAME);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, &data[..123_456]).unwrap();
    let loc = Location::parse(&format!("ftp://test:secret@127.0.0.1:{}/", srv.port), None).unwrap();
    assert_eq!(upload(&loc, NAME, &file).await.unwrap(), data.len() as u64);
    assert!(std::fs::read(&target).unwrap() == data);
}

#[tokio::test]
async fn http_put_with_basic_auth_is_byte_identical() {
    let Some(py) = python_with("http.server") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let srv = put_server(&py, root.path(), free_port(), false);
    let (_local, file, data) = local_file(400_000);
    let loc = Location::parse(
        &format!("http://test:secret@127.0.0.1:{}/up/", srv.port),
        None,
    )
    .unwrap();
    assert_eq!(upload(&loc, NAME, &file).await.unwrap(), data.len() as u64);
    assert!(std::fs::read(root.path().join("up").join(NAME)).unwrap() == data);

    let bad = Location::parse(
        &format!("http://test:nope@127.0.0.1:{}/up/", srv.port),
        None,
    )
    .unwrap();
    let e = upload(&bad, NAME, &file).await.unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("password"), "{e}");
    assert!(!e.contains("nope"), "no credentials in errors: {e}");
}

#[tokio::test]
async fn a_short_upload_is_not_confirmed_and_the_spooled_file_stays() {
    let Some(py) = python_with("http.server") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let srv = put_server(&py, root.path(), free_port(), true);
    let sp = tempfile::tempdir().unwrap();
    let (spool, up, mut rx) = uploader(sp.path(), 1);
    let data = some_bytes(10_000);
    spooled(
        &spool,
        "r1",
        &format!("http://test:secret@127.0.0.1:{}/", srv.port),
        &data,
    );
    up.enqueue("r1");
    let (e, _) = next_final(&mut rx).await;
    let UploadEvent::Failed { error, .. } = e else {
        panic!("{e:?}")
    };
    assert!(error.contains("9999 bytes of 10000"), "{error}");
    assert!(spool.file_path("r1").exists());
    assert_eq!(spool.job("r1").unwrap().state, JobState::Failed);
}

#[tokio::test]
async fn wrong_ftp_credentials_fail_clearly_and_a_retry_with_the_fixed_location_succeeds() {
    let Some(py) = python_with("pyftpdlib") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let srv = ftp_server(&py, root.path(), free_port());
    let sp = tempfile::tempdir().unwrap();
    let (spool, up, mut rx) = uploader(sp.path(), 2);
    let data = some_bytes(50_000);
    spooled(
        &spool,
        "r2",
        &format!("ftp://test:wrong@127.0.0.1:{}/x", srv.port),
        &data,
    );
    up.enqueue("r2");
    let (e, seen) = next_final(&mut rx).await;
    let UploadEvent::Failed {
        error, attempts, ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(attempts, 2);
    assert!(
        error.contains("login refused") && !error.contains("wrong"),
        "{error}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, UploadEvent::Retrying { attempts: 1, .. }))
    );
    assert!(
        spool.file_path("r2").exists(),
        "a failed upload loses nothing"
    );

    let fixed =
        Location::parse(&format!("ftp://test:secret@127.0.0.1:{}/x", srv.port), None).unwrap();
    up.retry("r2", Some(fixed));
    let (e, _) = next_final(&mut rx).await;
    assert_eq!(
        e,
        UploadEvent::Uploaded {
            id: "r2".into(),
            bytes: data.len() as u64
        }
    );
    assert!(std::fs::read(root.path().join("x").join(NAME)).unwrap() == data);
    assert!(!spool.file_path("r2").exists(), "deleted once confirmed");
    assert!(spool.job("r2").is_none());
}

#[tokio::test]
async fn an_upload_to_a_stopped_server_is_retried_until_it_is_back() {
    let Some(py) = python_with("pyftpdlib") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let sp = tempfile::tempdir().unwrap();
    let (spool, up, mut rx) = uploader(sp.path(), 1000);
    let data = some_bytes(80_000);
    spooled(
        &spool,
        "r3",
        &format!("ftp://test:secret@127.0.0.1:{port}/"),
        &data,
    );
    up.enqueue("r3");
    // The server is down: the first attempt fails and a retry is scheduled.
    loop {
        let e = rx.recv().await.unwrap();
        if let UploadEvent::Retrying { error, .. } = e {
            assert!(error.contains("cannot connect"), "{error}");
            break;
        }
    }
    let srv = ftp_server(&py, root.path(), port);
    let (e, _) = next_final(&mut rx).await;
    assert!(matches!(e, UploadEvent::Uploaded { .. }), "{e:?}");
    assert!(std::fs::read(root.path().join(NAME)).unwrap() == data);
    srv.stop();
}

#[tokio::test]
async fn a_restart_picks_up_the_spool_including_a_recording_cut_off_by_a_kill() {
    let Some(py) = python_with("pyftpdlib") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let srv = ftp_server(&py, root.path(), free_port());
    let sp = tempfile::tempdir().unwrap();
    let data = some_bytes(30_000);
    {
        // The previous run: a recording in progress when the server was killed.
        let spool = spool_in(sp.path(), 3);
        spooled(
            &spool,
            "r4",
            &format!("ftp://test:secret@127.0.0.1:{}/", srv.port),
            &data,
        );
        assert_eq!(spool.job("r4").unwrap().state, JobState::Recording);
    }
    let (spool, _up, mut rx) = uploader(sp.path(), 3);
    let (e, _) = next_final(&mut rx).await;
    assert_eq!(
        e,
        UploadEvent::Uploaded {
            id: "r4".into(),
            bytes: data.len() as u64
        }
    );
    assert!(std::fs::read(root.path().join(NAME)).unwrap() == data);
    assert_eq!(spool.usage(), 0);
}

#[tokio::test]
async fn a_deferred_upload_to_a_folder_copies_the_file() {
    let dest = tempfile::tempdir().unwrap();
    let (_local, file, data) = local_file(20_000);
    let loc = Location::parse(dest.path().to_str().unwrap(), None).unwrap();
    assert_eq!(upload(&loc, NAME, &file).await.unwrap(), 20_000);
    assert!(std::fs::read(dest.path().join(NAME)).unwrap() == data);
}

/// Where a streamed test recording goes, and how to see what arrived there.
enum Remote {
    Ftp,
    Http,
}

impl Remote {
    fn start(&self, py: &Path, root: &Path, port: u16) -> Server {
        match self {
            Remote::Ftp => ftp_server(py, root, port),
            Remote::Http => put_server(py, root, port, false),
        }
    }

    fn location(&self, port: u16) -> String {
        match self {
            Remote::Ftp => format!("ftp://test:secret@127.0.0.1:{port}/live"),
            Remote::Http => format!("http://test:secret@127.0.0.1:{port}/live/"),
        }
    }

    fn python_module(&self) -> &'static str {
        match self {
            Remote::Ftp => "pyftpdlib",
            Remote::Http => "http.server",
        }
    }
}

/// Waits until the remote file holds at least `n` bytes (the recording is still going on).
async fn remote_reaches(path: &Path, n: u64) -> u64 {
    for _ in 0..600 {
        let have = std::fs::metadata(path).map_or(0, |m| m.len());
        if have >= n {
            return have;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the remote file did not reach {n} bytes while the recording was written");
}

/// A recording written in pieces into the spool (the way the recorder flushes fragments) and
/// streamed to `remote`. Bytes must arrive before the end; with `cut`, the server is stopped in
/// the middle and started again before the end, and the deferred upload finishes the job. Either
/// way the remote file ends byte-identical and the spooled copy is deleted.
async fn streamed_recording(remote: Remote, cut: bool) {
    let Some(py) = python_with(remote.python_module()) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut srv = Some(remote.start(&py, root.path(), port));
    let sp = tempfile::tempdir().unwrap();
    let (spool, up, mut rx) = uploader(sp.path(), 20);
    let loc = Location::parse(&remote.location(port), None).unwrap();
    let mut file = spool.begin("s1", &loc, NAME).unwrap();
    let live = up.stream("s1").expect("FTP / HTTP locations stream");
    let target = root.path().join("live").join(NAME);

    let data = some_bytes(1_200_000);
    let pieces: Vec<&[u8]> = data.chunks(100_000).collect();
    let mut written = 0u64;
    let mut seen_growing = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        std::io::Write::write_all(&mut file, piece).unwrap();
        written += piece.len() as u64;
        live.written(written);
        if i == 2 || i == 5 {
            // Before the end: the location already holds what was written so far.
            seen_growing.push(remote_reaches(&target, written).await);
        }
        if cut && i == 6 {
            srv.take().unwrap().stop();
        }
        if cut && i == 9 {
            srv = Some(remote.start(&py, root.path(), port));
        }
    }
    assert!(seen_growing[0] < seen_growing[1] && seen_growing[1] < data.len() as u64);
    drop(file);

    let streamed = live.finish(data.len() as u64).await;
    assert_eq!(
        streamed, !cut,
        "a cut stream falls back to the deferred upload"
    );
    let (e, _) = next_final(&mut rx).await;
    assert_eq!(
        e,
        UploadEvent::Uploaded {
            id: "s1".into(),
            bytes: data.len() as u64
        }
    );
    assert!(std::fs::read(&target).unwrap() == data, "byte-identical");
    assert!(!spool.file_path("s1").exists(), "deleted once confirmed");
    assert!(spool.job("s1").is_none());
}

#[tokio::test]
async fn a_streamed_ftp_upload_arrives_during_the_recording_byte_identical() {
    streamed_recording(Remote::Ftp, false).await;
}

#[tokio::test]
async fn a_streamed_http_put_arrives_during_the_recording_byte_identical() {
    streamed_recording(Remote::Http, false).await;
}

#[tokio::test]
async fn a_streamed_ftp_upload_cut_by_a_server_stop_is_finished_by_the_deferred_upload() {
    streamed_recording(Remote::Ftp, true).await;
}

#[tokio::test]
async fn a_streamed_http_put_cut_by_a_server_stop_is_finished_by_the_deferred_upload() {
    streamed_recording(Remote::Http, true).await;
}
