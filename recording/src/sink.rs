//! Copies a finished recording to its location and confirms it arrived whole (the sink reports
//! the same size as the local file). Error messages never contain credentials.

use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use suppaftp::tokio::AsyncFtpStream;
use suppaftp::types::FileType;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use url::Url;

use crate::Location;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// An upload may take this long plus a second per 64 KiB before it is given up (a server that
/// stops answering must not hold the queue).
const UPLOAD_TIMEOUT_BASE: Duration = Duration::from_secs(60);
const UPLOAD_MIN_RATE: u64 = 64 * 1024;

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
    let limit = UPLOAD_TIMEOUT_BASE + Duration::from_secs(size / UPLOAD_MIN_RATE);
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

async fn ftp_upload(
    url: &Url,
    remote_name: &str,
    file: &Path,
    size: u64,
) -> Result<u64, UploadError> {
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
    let confirmed = ftp
        .size(name)
        .await
        .map_err(|e| err("FTP SIZE (cannot confirm the upload)", e))? as u64;
    let _ = ftp.quit().await;
    Ok(confirmed)
}

fn http_client() -> Result<reqwest::Client, UploadError> {
    // The binary may have installed it already; either way one provider is in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| err("HTTP client", e))
}

async fn http_upload(
    url: &Url,
    remote_name: &str,
    file: &Path,
    size: u64,
) -> Result<u64, UploadError> {
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
    let client = http_client()?;
    let with_auth = |r: reqwest::RequestBuilder| match &auth {
        Some((u, p)) => r.basic_auth(u, p.as_ref()),
        None => r,
    };
    let body = tokio::fs::File::open(file)
        .await
        .map_err(|e| err("spooled file", e))?;
    let resp = with_auth(client.put(target.clone()))
        .header(reqwest::header::CONTENT_TYPE, "video/mp4")
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::from(body))
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
    // Confirm with HEAD; a server that does not answer HEAD confirms by its 2xx to the PUT.
    let head = with_auth(client.head(target))
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
        reqwest::StatusCode::METHOD_NOT_ALLOWED | reqwest::StatusCode::NOT_IMPLEMENTED => Ok(size),
        s => Err(UploadError(format!("HTTP HEAD after the upload: {s}"))),
    }
}
