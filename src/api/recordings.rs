//! Screen recordings: a session's recordings and the retry of a failed upload. Administrators
//! only (master administrators, and administrators for the groups they manage). Locations are
//! returned redacted: a password in an FTP/HTTP(S) URL shows as `********`.

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Caller, load_org, rfc3339};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::recorder::RetryError;
use crate::store::recordings::{RecordingRow, RecordingStatus};
use crate::store::{Role, StoreError};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_session_recordings))
        .routes(routes!(retry_recording))
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
    administrators_only(&caller)?;
    let row = match state.store.recording(id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("recording")),
        Err(e) => return Err(e.into()),
    };
    if !may_manage(&state, &caller, &[row.group_id]).await? {
        return Err(ApiError::not_found("recording"));
    }
    match state.recorder.retry(id).await {
        Ok(r) => Ok(Json(view(r))),
        Err(RetryError::NotFound) => Err(ApiError::not_found("recording")),
        Err(RetryError::Conflict(m)) => Err(ApiError::conflict("recording_not_retryable", m)),
        Err(RetryError::BadLocation(m)) => Err(ApiError::invalid("screen_recording.location", m)),
    }
}
