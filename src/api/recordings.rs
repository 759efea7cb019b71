//! Screen recordings: a session's recordings, the Recordings list, the retry of a failed upload,
//! the file, and signed links that play it without a bearer header (a `<video src>`).
//! Administrators only (master administrators, and administrators for the groups they manage),
//! except the signed link itself, which its signature authorizes. Locations are returned
//! redacted: a password in an FTP/HTTP(S) URL shows as `********`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Caller, load_org, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::recorder::RetryError;
use crate::store::recordings::{RecordingRow, RecordingStatus};
use crate::store::{Role, StoreError, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_recordings))
        .routes(routes!(list_session_recordings))
        .routes(routes!(retry_recording))
        .routes(routes!(recording_file))
        .routes(routes!(recording_link))
        .routes(routes!(play_recording))
        .routes(routes!(rotate_recording_link_key))
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
    serve_file(&state, &row, &headers).await
}

/// The file of a finished recording kept on this server, whole or the one range asked for.
async fn serve_file(
    state: &AppState,
    row: &RecordingRow,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let path = servable(state, row)?;
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecordingsQuery {
    /// Only recordings of this technician group.
    pub group_id: Option<i64>,
    /// Only recordings of sessions this technician owns.
    pub technician_id: Option<i64>,
    /// Only the recordings of this session (the Session report's row).
    pub session_id: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// One recording in the Recordings list, with the technician of its session.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RecordingListItem {
    pub recording: RecordingView,
    /// The session's technician (none for a session never picked up).
    pub technician_id: Option<i64>,
    pub technician_name: Option<String>,
    /// The technician group's name.
    pub group_name: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/recordings", tag = "recordings", security(("bearer" = [])),
    params(RecordingsQuery),
    responses((status = 200, description = "The recordings of the groups the caller manages, newest sessions first, the files of one session together", body = Vec<RecordingListItem>),
              (status = 400, description = "Bad request", body = ErrorBody),
              (status = 403, description = "Not an administrator", body = ErrorBody)))]
/// Recordings by group and technician, for the admin center's Recordings view.
async fn list_recordings(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RecordingsQuery>,
) -> ApiResult<Json<Vec<RecordingListItem>>> {
    administrators_only(&caller)?;
    let org = load_org(&state).await?;
    let scope = caller.scope(&org);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let rows = state
        .store
        .recordings(q.group_id, q.technician_id, q.session_id)
        .await?;
    let items = rows
        .into_iter()
        .filter(|r| scope.manages_group(r.recording.group_id))
        .take(limit)
        .map(|r| RecordingListItem {
            technician_name: r
                .technician_id
                .and_then(|t| org.users.iter().find(|u| u.id == t))
                .map(|u| u.name.clone()),
            group_name: org.group(r.recording.group_id).map(|g| g.name.clone()),
            technician_id: r.technician_id,
            recording: view(r.recording),
        })
        .collect();
    Ok(Json(items))
}

/// A signed link to a recording's file.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RecordingLink {
    /// The absolute URL (the server's public URL), for a `<video src>` or to share.
    pub url: String,
    /// The same, relative to the server (what the admin center uses).
    pub path: String,
    /// RFC 3339, UTC: the link stops working then (or when the link key is rotated).
    pub expires_at: String,
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 over the recording id and the expiry (Unix seconds) with the store's link key.
fn link_mac(key: &str, id: i64, expires: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("lens-recording-link:v1:{id}:{expires}").as_bytes());
    mac
}

/// Refuses a recording whose file cannot be served (still being written, or kept elsewhere).
fn servable(state: &AppState, row: &RecordingRow) -> ApiResult<std::path::PathBuf> {
    if row.status == RecordingStatus::Recording {
        return Err(ApiError::conflict(
            "recording_in_progress",
            "the recording is still being written; it can be fetched once the session ended",
        ));
    }
    state.recorder.local_file(row).ok_or_else(|| {
        ApiError::conflict(
            "recording_not_on_this_server",
            "the recording was uploaded to an FTP or HTTP(S) location and is not kept on this \
             server; fetch it from there",
        )
    })
}

#[utoipa::path(post, path = "/api/v1/recordings/{id}/link", tag = "recordings", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Recording id")),
    responses((status = 200, description = "A link that plays the recording for `recording.link_minutes` (Range requests work; no bearer header needed)", body = RecordingLink),
              (status = 403, description = "Not an administrator", body = ErrorBody),
              (status = 404, description = "No such recording (or not one of your groups)", body = ErrorBody),
              (status = 409, description = "Still being recorded, or kept only on an FTP/HTTP(S) location", body = ErrorBody)))]
/// A short-lived signed URL for a recording's file, usable in `<video src>`: the same permission
/// rules as the file itself, checked now; the link then carries them until it expires.
async fn recording_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<RecordingLink>> {
    let row = managed_recording(&state, &caller, id).await?;
    servable(&state, &row)?;
    let key = state.store.recording_link_key().await?;
    let expires = now_ms() / 1000 + i64::from(state.config.recording.link_minutes) * 60;
    let sig = hex::encode(link_mac(&key, row.id, expires).finalize().into_bytes());
    let path = format!(
        "/api/v1/recordings/{}/play?expires={expires}&sig={sig}",
        row.id
    );
    Ok(Json(RecordingLink {
        url: format!("{}{path}", state.config.public_url()),
        path,
        expires_at: rfc3339(expires * 1000),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PlayQuery {
    /// Unix seconds: when the link stops working.
    pub expires: Option<i64>,
    /// The link's signature (hex).
    pub sig: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/recordings/{id}/play", tag = "recordings",
    params(("id" = i64, Path, description = "Recording id"), PlayQuery,
           ("Range" = Option<String>, Header, description = "One byte range, `bytes=first-last`, `bytes=first-` or `bytes=-suffix`")),
    responses((status = 200, description = "The whole file", body = Vec<u8>, content_type = "video/mp4"),
              (status = 206, description = "The range asked for (`Content-Range`)", body = Vec<u8>, content_type = "video/mp4"),
              (status = 400, description = "A parameter does not parse", body = ErrorBody),
              (status = 403, description = "The link is expired (`link_expired`), or not a link to this recording or not signed with the current key (`link_invalid`)", body = ErrorBody),
              (status = 404, description = "The recording or its file is gone", body = ErrorBody),
              (status = 409, description = "Kept only on an FTP/HTTP(S) location", body = ErrorBody),
              (status = 416, description = "The range is outside the file", body = ErrorBody),
              (status = 500, description = "Internal error", body = ErrorBody)))]
/// A recording's file through a signed link from `POST /api/v1/recordings/{id}/link`: no login,
/// the signature is the permission.
async fn play_recording(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<PlayQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let invalid = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "link_invalid",
            "this link does not play this recording (altered, or the link key was rotated)",
        )
    };
    let (Some(expires), Some(sig)) = (q.expires, q.sig.as_deref()) else {
        return Err(invalid());
    };
    let sig = hex::decode(sig).map_err(|_| invalid())?;
    let key = state.store.recording_link_key().await?;
    link_mac(&key, id, expires)
        .verify_slice(&sig)
        .map_err(|_| invalid())?;
    if expires < now_ms() / 1000 {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "link_expired",
            "this link has expired; ask the admin center for a new one",
        ));
    }
    let row = match state.store.recording(id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("recording")),
        Err(e) => return Err(e.into()),
    };
    serve_file(&state, &row, &headers).await
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LinkKeyRotated {
    /// RFC 3339, UTC.
    pub rotated_at: String,
}

#[utoipa::path(post, path = "/api/v1/recording-links/rotate-key", tag = "recordings", security(("bearer" = [])),
    responses((status = 200, description = "A new link key: every recording link handed out before stops working", body = LinkKeyRotated),
              (status = 403, description = "Not a master administrator", body = ErrorBody)))]
/// Revokes every signed recording link at once by replacing the key they are signed with.
async fn rotate_recording_link_key(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<LinkKeyRotated>> {
    caller.require_master()?;
    let at = state.store.rotate_recording_link_key().await?;
    tracing::info!(
        by = caller.user.id,
        "recording links: key rotated, every link revoked"
    );
    Ok(Json(LinkKeyRotated {
        rotated_at: rfc3339(at),
    }))
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
