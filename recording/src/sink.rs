//! Copies a finished recording to its location and confirms it arrived whole (the sink reports
//! the same size as the local file), or streams one while it is written ([`stream_upload`]).
//! Error messages never contain credentials.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use percent_encoding::percent_decode_str;
use suppaftp::tokio::AsyncFtpStream;
use suppaftp::types::FileType;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;
use url::Url;

use crate::Location;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// An upload may take this long plus a second per 64 KiB before it is given up (a server that
/// stops answering must not hold the queue).
const UPLOAD_TIMEOUT_BASE: Duration = Duration::from_secs(60);
const UPLOAD_MIN_RATE: u64 = 64 * 1024;

/// How long an upload of `size` bytes (or the rest of a streamed one) may take.
pub(crate) fn upload_limit(size: u64) -> Duration {
    UPLOAD_TIMEOUT_BASE + Duration::from_secs(size / UPLOAD_MIN_RATE)
}

/// Why an upload failed; the message is safe to log, store and return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UploadError(pub String);

fn err(what: &str, e: impl std::error::Error) -> UploadError {
    // The whole chain: "error sending request" alone says nothing useful.
    let mut msg = format!("{what}: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    UploadError(msg)
}

/// Splits `a/b/name.mp4` into its folders and file name (empty and `..` parts refused).
fn split_name(remote_name: &str) -> Result<(Vec<&str>, &str), UploadError> {
    let parts: Vec<&str> = remote_name.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == ".." || *p == ".") {
        return Err(UploadError(format!("bad file name {remote_name:?}")));
    }
    let (name, dirs) = parts.split_last().expect("not empty");
    Ok((dirs.to_vec(), name))
}

/// Uploads (or copies) `file` to `location` as `remote_name` (a relative path, folders created)
/// and returns the size the sink confirmed.
pub async fn upload(
    location: &Location,
    remote_name: &str,
    file: &Path,
) -> Result<u64, UploadError> {
    let size = tokio::fs::metadata(file)
        .await
        .map_err(|e| err("spooled file", e))?
        .len();
    let work = async {
        match location {
            Location::Folder { path, .. } => copy_to_folder(path, remote_name, file).await,
            Location::Ftp(url) => ftp_upload(url, remote_name, file, size).await,
            Location::Http(url) => http_upload(url, remote_name, file, size).await,
        }
    };
    let limit = upload_limit(size);
    let confirmed = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| UploadError(format!("no answer from the location within {limit:?}")))??;
    if confirmed != size {
        return Err(UploadError(format!(
            "the location holds {confirmed} bytes of {size}: upload incomplete"
        )));
    }
    Ok(size)
}

/// The final path of `remote_name` in a folder location.
pub fn folder_target(folder: &Path, remote_name: &str) -> Result<PathBuf, UploadError> {
    let (dirs, name) = split_name(remote_name)?;
    let mut p = folder.to_path_buf();
    p.extend(dirs);
    Ok(p.join(name))
}

async fn copy_to_folder(folder: &Path, remote_name: &str, file: &Path) -> Result<u64, UploadError> {
    let target = folder_target(folder, remote_name)?;
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| err(&format!("cannot create {}", dir.display()), e))?;
    }
    // Copy under a temporary name so a half-copied file never has the final name.
    let part = target.with_extension("part");
    tokio::fs::copy(file, &part)
        .await
        .map_err(|e| err(&format!("cannot write {}", part.display()), e))?;
    let f = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .await
        .map_err(|e| err("cannot reopen the copy", e))?;
    f.sync_all()
        .await
        .map_err(|e| err("cannot sync the copy", e))?;
    tokio::fs::rename(&part, &target)
        .await
        .map_err(|e| err(&format!("cannot rename to {}", target.display()), e))?;
    Ok(tokio::fs::metadata(&target)
        .await
        .map_err(|e| err("cannot read the copy's size", e))?
        .len())
}

fn decoded(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Connects, logs in and enters (creating) the folders of `remote_name`; returns the file name.
async fn ftp_open<'a>(
    url: &Url,
    remote_name: &'a str,
) -> Result<(AsyncFtpStream, &'a str), UploadError> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port().unwrap_or(21);
    let connect = AsyncFtpStream::connect((host.as_str(), port));
    let mut ftp = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| UploadError(format!("FTP {host}:{port}: connection timed out")))?
        .map_err(|e| err(&format!("FTP {host}:{port}: cannot connect"), e))?;
    let (user, pass) = match url.username() {
        "" => ("anonymous".to_owned(), "anonymous".to_owned()),
        u => (decoded(u), decoded(url.password().unwrap_or_default())),
    };
    ftp.login(user.as_str(), pass.as_str())
        .await
        .map_err(|e| err("FTP login refused (check the user name and password)", e))?;
    ftp.transfer_type(FileType::Binary)
        .await
        .map_err(|e| err("FTP TYPE I", e))?;
    let (dirs, name) = split_name(remote_name)?;
    let base: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).map(decoded).collect())
        .unwrap_or_default();
    if url.path().starts_with('/') {
        ftp.cwd("/").await.map_err(|e| err("FTP CWD /", e))?;
    }
    for d in base.iter().map(String::as_str).chain(dirs) {
        if ftp.cwd(d).await.is_err() {
            ftp.mkdir(d)
                .await
                .map_err(|e| err(&format!("FTP cannot create folder {d}"), e))?;
            ftp.cwd(d)
                .await
                .map_err(|e| err(&format!("FTP cannot enter folder {d}"), e))?;
        }
    }
    Ok((ftp, name))
}

/// The size the FTP server reports for `name` (the upload's confirmation).
async fn ftp_confirm(mut ftp: AsyncFtpStream, name: &str) -> Result<u64, UploadError> {
    let confirmed = ftp
        .size(name)
        .await
        .map_err(|e| err("FTP SIZE (cannot confirm the upload)", e))? as u64;
    let _ = ftp.quit().await;
    Ok(confirmed)
}

async fn ftp_upload(
    url: &Url,
    remote_name: &str,
    file: &Path,
    size: u64,
) -> Result<u64, UploadError> {
    let (mut ftp, name) = ftp_open(url, remote_name).await?;
    // A previous attempt that was cut off: append the rest instead of starting over.
    let have = ftp.size(name).await.map(|n| n as u64).unwrap_or(0);
    if have != size {
        let mut local = tokio::fs::File::open(file)
            .await
            .map_err(|e| err("spooled file", e))?;
        let mut stream = if have > 0 && have < size {
            local
                .seek(std::io::SeekFrom::Start(have))
                .await
                .map_err(|e| err("spooled file", e))?;
            ftp.append_with_stream(name).await
        } else {
            ftp.put_with_stream(name).await
        }
        .map_err(|e| err("FTP STOR", e))?;
        tokio::io::copy(&mut local, &mut stream)
            .await
            .map_err(|e| err("FTP transfer", e))?;
        stream.flush().await.map_err(|e| err("FTP transfer", e))?;
        stream.finish().await.map_err(|e| err("FTP transfer", e))?;
    }
    ftp_confirm(ftp, name).await
}

fn http_client() -> Result<reqwest::Client, UploadError> {
    // The binary may have installed it already; either way one provider is in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| err("HTTP client", e))
}

/// Where and how to PUT `remote_name`: the URL without credentials, and the basic auth.
struct HttpTarget {
    client: reqwest::Client,
    url: Url,
    auth: Option<(String, Option<String>)>,
}

impl HttpTarget {
    fn new(url: &Url, remote_name: &str) -> Result<HttpTarget, UploadError> {
        let (dirs, name) = split_name(remote_name)?;
        let mut target = url.clone();
        let auth = match target.username() {
            "" => None,
            u => Some((decoded(u), target.password().map(decoded))),
        };
        // Credentials go in the Authorization header, never in the URL (which errors may show).
        let _ = target.set_username("");
        let _ = target.set_password(None);
        target
            .path_segments_mut()
            .map_err(|_| UploadError("the URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(dirs)
            .push(name);
        Ok(HttpTarget {
            client: http_client()?,
            url: target,
            auth,
        })
    }

    fn with_auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, p.as_ref()),
            None => r,
        }
    }

    /// PUTs `body` (with a Content-Length when `length` is known, chunked otherwise) and
    /// returns the size the server confirms; `size()` is what was sent, for a server that does
    /// not answer HEAD (it confirms by its 2xx to the PUT).
    async fn put(
        &self,
        body: reqwest::Body,
        length: Option<u64>,
        size: impl FnOnce() -> u64,
    ) -> Result<u64, UploadError> {
        let mut req = self
            .with_auth(self.client.put(self.url.clone()))
            .header(reqwest::header::CONTENT_TYPE, "video/mp4");
        if let Some(n) = length {
            req = req.header(reqwest::header::CONTENT_LENGTH, n);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| err("HTTP PUT", e.without_url()))?;
        let status = resp.status();
        if !status.is_success() {
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                " (check the user name and password)"
            } else {
                ""
            };
            return Err(UploadError(format!("HTTP PUT refused: {status}{hint}")));
        }
        let head = self
            .with_auth(self.client.head(self.url.clone()))
            .send()
            .await
            .map_err(|e| err("HTTP HEAD", e.without_url()))?;
        match head.status() {
            s if s.is_success() => head
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    UploadError("HTTP HEAD: no Content-Length to confirm the upload".into())
                }),
            reqwest::StatusCode::METHOD_NOT_ALLOWED | reqwest::StatusCode::NOT_IMPLEMENTED => {
                Ok(size())
            }
            s => Err(UploadError(format!("HTTP HEAD after the upload: {s}"))),
        }
    }
}

async fn http_upload(
    url: &Url,
    remote_name: &str,
    file: &Path,
    size: u64,
) -> Result<u64, UploadError> {
    let target = HttpTarget::new(url, remote_name)?;
    let body = tokio::fs::File::open(file)
        .await
        .map_err(|e| err("spooled file", e))?;
    target
        .put(reqwest::Body::from(body), Some(size), || size)
        .await
}

/// How far a recording being streamed has been written (the writer only appends: a fragment,
/// once written, never changes, and the index goes after the last one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// This many bytes are in the file; more may come.
    Written(u64),
    /// The file is complete at this size.
    Finished(u64),
}

/// Reads a growing file up to what [`Progress`] announced, waiting for more until it is finished.
struct Tail {
    file: tokio::fs::File,
    offset: u64,
    progress: watch::Receiver<Progress>,
}

/// Largest piece sent at once.
const TAIL_CHUNK: u64 = 256 * 1024;

impl Tail {
    async fn open(file: &Path, progress: watch::Receiver<Progress>) -> Result<Tail, UploadError> {
        Ok(Tail {
            file: tokio::fs::File::open(file)
                .await
                .map_err(|e| err("spooled file", e))?,
            offset: 0,
            progress,
        })
    }

    /// The next piece of the file; `None` once all of a finished file was read.
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            let (available, finished) = match *self.progress.borrow_and_update() {
                Progress::Written(n) => (n, false),
                Progress::Finished(n) => (n, true),
            };
            if self.offset < available {
                let mut buf = vec![0; (available - self.offset).min(TAIL_CHUNK) as usize];
                let n = self.file.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::other(
                        "the spooled file is shorter than what was written",
                    ));
                }
                buf.truncate(n);
                self.offset += n as u64;
                return Ok(Some(Bytes::from(buf)));
            }
            if finished {
                return Ok(None);
            }
            if self.progress.changed().await.is_err() {
                return Err(std::io::Error::other(
                    "the recording stopped before its end",
                ));
            }
        }
    }
}

/// Uploads a recording while it is written: FTP `STOR` or a chunked HTTP PUT fed from `file` as
/// `progress` announces new bytes, ending when it says the file is finished. Returns the size the
/// location confirmed. A broken connection ends it with an error; the caller then uploads the
/// finished file the ordinary way (`upload`, which completes a partial FTP file with `APPE`).
pub async fn stream_upload(
    location: &Location,
    remote_name: &str,
    file: &Path,
    progress: watch::Receiver<Progress>,
) -> Result<u64, UploadError> {
    let mut tail = Tail::open(file, progress.clone()).await?;
    match location {
        Location::Folder { .. } => Err(UploadError(
            "a folder location is written in place, not streamed".into(),
        )),
        Location::Ftp(url) => {
            let (mut ftp, name) = ftp_open(url, remote_name).await?;
            let mut stream = ftp
                .put_with_stream(name)
                .await
                .map_err(|e| err("FTP STOR", e))?;
            while let Some(piece) = tail.next().await.map_err(|e| err("recording", e))? {
                stream
                    .write_all(&piece)
                    .await
                    .map_err(|e| err("FTP transfer", e))?;
                stream.flush().await.map_err(|e| err("FTP transfer", e))?;
            }
            stream.finish().await.map_err(|e| err("FTP transfer", e))?;
            ftp_confirm(ftp, name).await
        }
        Location::Http(url) => {
            let target = HttpTarget::new(url, remote_name)?;
            let body = futures_util::stream::unfold(Some(tail), |tail| async move {
                let mut tail = tail?;
                match tail.next().await {
                    Ok(Some(piece)) => Some((Ok(piece), Some(tail))),
                    Ok(None) => None,
                    // The error ends the body (and the request) after this item.
                    Err(e) => Some((Err(e), None)),
                }
            });
            let sent = || match *progress.borrow() {
                Progress::Written(n) | Progress::Finished(n) => n,
            };
            target
                .put(reqwest::Body::wrap_stream(body), None, sent)
                .await
        }
    }
}
