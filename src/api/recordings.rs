//! Screen recordings: a session's recordings and the retry of a failed upload. Administrators
//! only (master administrators, and administrators for the groups they manage). Locations are
//! returned redacted: a password in an FTP/HTTP(S) URL shows as `********`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Caller, load_org, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::recorder::RetryError;
use crate::store::recordings::{RecordingRow, RecordingStatus};
use crate::store::{Role, StoreError};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_session_recordings))
        .routes(routes!(retry_recording))
        .routes(routes!(recording_file))
}

/// One recording of a session.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RecordingView {
    pub id: i64,
    pub session_id: i64,
    /// The technician group whose forced screen recording applied.
    pub group_id: i64,
    /// The screen recording location, password replaced by `********`.
    pub location: String,
    /// The file's path under the location.
    pub file_name: String,
    /// Spooled and uploaded after the session (deferred upload, always for FTP/HTTP(S)).
    pub deferred: bool,
    pub size_bytes: i64,
    pub duration_ms: i64,
    /// Codecs in the file, video first (`vp8`, `h264`, `opus`).
    pub codecs: Vec<String>,
    pub status: RecordingStatus,
    pub last_error: Option<String>,
    /// Upload attempts so far.
    pub attempts: i64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub ended_at: Option<String>,
}

fn view(r: RecordingRow) -> RecordingView {
    RecordingView {
        id: r.id,
        session_id: r.session_id,
        group_id: r.group_id,
        location: r.location,
        file_name: format!("{}.mp4", r.file_name),
        deferred: r.deferred,
        size_bytes: r.size_bytes,
        duration_ms: r.duration_ms,
        codecs: r
            .codecs
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        status: r.status,
        last_error: r.last_error,
        attempts: r.attempts,
        started_at: rfc3339(r.started_at),
        ended_at: r.ended_at.map(rfc3339),
    }
}

fn administrators_only(caller: &Caller) -> ApiResult<()> {
    if caller.user.role == Role::Technician {
        return Err(ApiError::forbidden("recordings are for administrators"));
    }
    Ok(())
}

/// Administrators of the group (the technician's group) or of the session's group.
async fn may_manage(state: &AppState, caller: &Caller, groups: &[i64]) -> ApiResult<bool> {
    Ok(match caller.user.role {
        Role::MasterAdministrator => true,
        Role::Administrator => {
            let scope = caller.scope(&load_org(state).await?);
            groups.iter().any(|g| scope.manages_group(*g))
        }
        Role::Technician => false,
    })
}

/// A recording the caller administers (404 for one of another group, as for none).
async fn managed_recording(state: &AppState, caller: &Caller, id: i64) -> ApiResult<RecordingRow> {
    administrators_only(caller)?;
    let row = match state.store.recording(id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("recording")),
        Err(e) => return Err(e.into()),
    };
    if !may_manage(state, caller, &[row.group_id]).await? {
        return Err(ApiError::not_found("recording"));
    }
    Ok(row)
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/recordings", tag = "recordings", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Session id")),
    responses((status = 200, description = "OK", body = Vec<RecordingView>),
              (status = 403, description = "Not an administrator", body = ErrorBody),
              (status = 404, description = "No such session (or not one of your groups)", body = ErrorBody)))]
async fn list_session_recordings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<RecordingView>>> {
    administrators_only(&caller)?;
    let session = match state.store.session(id).await {
        Ok(s) => s,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("session")),
        Err(e) => return Err(e.into()),
    };
    let rows = state.store.recordings_of_session(id).await?;
    let mut groups: Vec<i64> = rows.iter().map(|r| r.group_id).collect();
    groups.push(session.group_id);
    if !may_manage(&state, &caller, &groups).await? {
        return Err(ApiError::not_found("session"));
    }
    Ok(Json(rows.into_iter().map(view).collect()))
}

#[utoipa::path(post, path = "/api/v1/recordings/{id}/retry", tag = "recordings", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Recording id")),
    responses((status = 200, description = "The upload is queued again (status spooled)", body = RecordingView),
              (status = 403, description = "Not an administrator", body = ErrorBody),
              (status = 404, description = "No such recording (or not one of your groups)", body = ErrorBody),
              (status = 409, description = "Not failed, or not in the spool", body = ErrorBody),
              (status = 422, description = "The group's screen recording location is not usable", body = ErrorBody)))]
async fn retry_recording(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<RecordingView>> {
    managed_recording(&state, &caller, id).await?;
    match state.recorder.retry(id).await {
        Ok(r) => Ok(Json(view(r))),
        Err(RetryError::NotFound) => Err(ApiError::not_found("recording")),
        Err(RetryError::Conflict(m)) => Err(ApiError::conflict("recording_not_retryable", m)),
        Err(RetryError::BadLocation(m)) => Err(ApiError::invalid("screen_recording.location", m)),
    }
}

#[utoipa::path(get, path = "/api/v1/recordings/{id}/file", tag = "recordings", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Recording id"),
           ("Range" = Option<String>, Header, description = "One byte range, `bytes=first-last`, `bytes=first-` or `bytes=-suffix` (what a `<video>` element asks to seek)")),
    responses((status = 200, description = "The whole file", body = Vec<u8>, content_type = "video/mp4"),
              (status = 206, description = "The range asked for (`Content-Range`)", body = Vec<u8>, content_type = "video/mp4"),
              (status = 403, description = "Not an administrator", body = ErrorBody),
              (status = 404, description = "No such recording (or not one of your groups), or its file is gone", body = ErrorBody),
              (status = 409, description = "Still being recorded, or kept only on an FTP/HTTP(S) location", body = ErrorBody),
              (status = 416, description = "The range is outside the file", body = ErrorBody)))]
/// A finished recording's file, from its folder location (local or mounted network path) or from
/// the spool while it waits there for its upload. Range requests let a `<video>` element seek.
async fn recording_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let row = managed_recording(&state, &caller, id).await?;
    if row.status == RecordingStatus::Recording {
        return Err(ApiError::conflict(
            "recording_in_progress",
            "the recording is still being written; it can be fetched once the session ended",
        ));
    }
    let Some(path) = state.recorder.local_file(&row) else {
        return Err(ApiError::conflict(
            "recording_not_on_this_server",
            "the recording was uploaded to an FTP or HTTP(S) location and is not kept on this \
             server; fetch it from there",
        ));
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "the recording's file is no longer in its location",
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| byte_range(r, len))
        .transpose()
        .map_err(|()| {
            ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {len} bytes"),
            )
        })?
        .flatten();
    let (status, first, count) = match range {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        None => (StatusCode::OK, 0, len),
    };
    if first > 0 {
        use tokio::io::AsyncSeekExt;
        file.seek(std::io::SeekFrom::Start(first))
            .await
            .map_err(ApiError::internal)?;
    }
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::ACCEPT_RANGES, "bytes".to_owned()),
            (header::CONTENT_LENGTH, count.to_string()),
        ],
        Body::from_stream(read_chunks(file, count)),
    )
        .into_response();
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = format!("bytes {first}-{}/{len}", first + count - 1).parse()
    {
        response.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// `count` bytes of `file` from where it stands, 64 KiB at a time (a recording can be large).
fn read_chunks(
    file: tokio::fs::File,
    count: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0; left.min(64 * 1024) as usize];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    })
}

/// The one range of a `Range` header as (first, last) byte, inclusive. `Ok(None)`: serve the
/// whole file (not a byte range, or several ranges, which a server may answer in full);
/// `Err`: the range lies outside the file (416).
fn byte_range(header: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (first, last) = if a.is_empty() {
        // The last `b` bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let first: u64 = a.parse().map_err(|_| ())?;
        let last = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        (first, last)
    };
    if first >= len || first > last {
        return Err(());
    }
    Ok(Some((first, last)))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(byte_range("bytes=500-", 1000), Ok(Some((500, 999))));
        assert_eq!(byte_range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(byte_range("bytes=-5000", 1000), Ok(Some((0, 999))));
        assert_eq!(byte_range("bytes=900-5000", 1000), Ok(Some((900, 999))));
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(byte_range("items=0-1", 1000), Ok(None));
        assert_eq!(byte_range("bytes=1000-", 1000), Err(()));
        assert_eq!(byte_range("bytes=5-4", 1000), Err(()));
        assert_eq!(byte_range("bytes=x-4", 1000), Err(()));
        assert_eq!(byte_range("bytes=-0", 1000), Err(()));
        assert_eq!(byte_range("bytes=0-", 0), Err(()));
    }
}
