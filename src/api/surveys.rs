//! Built-in survey answers at session end: the customer's (authenticated by the session's resume
//! token, since the customer has no account and its socket is closed after `ended`) and the
//! technician's session evaluation. Both are checked against the survey the session was created
//! with (its policy keeps the group's enabled questions) and stored once per session and kind.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::sessions::SessionPolicy;
use crate::settings::global::SurveyIssuer;
use crate::store::reports::SurveyRow;
use crate::store::sessions::SessionRow;
use crate::store::{Role, StoreError, now_ms};

/// Longest open answer, in characters.
pub const MAX_OPEN_ANSWER: usize = 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(customer_survey))
        .routes(routes!(technician_survey))
}

/// One answer: `index` is the question's `index` from the `ended` frame's `survey.questions`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswer {
    pub index: usize,
    /// Drop-down questions: one of the question's `answers`. Open questions: free text.
    pub answer: String,
}

/// The technician's answers.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveySubmission {
    pub answers: Vec<SurveyAnswer>,
}

/// The customer's answers, with the `resume_token` its `join` (or latest `resume`) reply carried.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerSurveySubmission {
    pub resume_token: String,
    pub answers: Vec<SurveyAnswer>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SurveyStored {
    pub session_id: i64,
    /// How many questions were answered.
    pub answered: usize,
}

/// The customer submits the built-in Customer Survey after its session ended.
///
/// Credited to the technician Global Settings > Customer Survey Issuance > "Survey issued by"
/// names: the closing technician (the session's technician at the end) or the starting one (who
/// first picked it up). Accepted until the server restarts.
#[utoipa::path(post, path = "/api/v1/surveys/customer", tag = "sessions",
    request_body = CustomerSurveySubmission,
    responses((status = 201, description = "Stored", body = SurveyStored),
        (status = 400, description = "Answers do not fit the survey (`survey_invalid`)", body = ErrorBody),
        (status = 401, description = "Unknown resume token or the session is not over", body = ErrorBody),
        (status = 409, description = "No built-in survey (`no_survey`) or already submitted (`survey_submitted`)", body = ErrorBody)))]
async fn customer_survey(
    State(state): State<AppState>,
    Json(body): Json<CustomerSurveySubmission>,
) -> ApiResult<(StatusCode, Json<SurveyStored>)> {
    let hash = crate::auth::token_hash(&body.resume_token);
    let id = state.hub.ended_session_of(&hash).ok_or_else(|| {
        ApiError::unauthorized("the resume token belongs to no session that has ended")
    })?;
    // The session's last status and technician reach the store through the hub's writer a few
    // milliseconds after the `ended` frame: wait for it so a quick answer sees the final row.
    state.hub.flush().await;
    let session = state.store.session(id).await?;
    let policy = policy_of(&session)?;
    let closing = session.technician_id.ok_or_else(|| {
        ApiError::conflict("no_survey", "no technician took part in this session")
    })?;
    let by_closing =
        state.global().customer_survey_issuance.survey_issued_by == SurveyIssuer::ClosingTechnician;
    let technician_id = if by_closing {
        closing
    } else {
        // The first technician the session was handed to: its pickup is the first event that
        // names one.
        state
            .store
            .session_events(id)
            .await?
            .iter()
            .find_map(|e| e.technician_id)
            .unwrap_or(closing)
    };
    store(
        &state,
        &session,
        "customer",
        technician_id,
        by_closing,
        policy.customer_survey.as_ref(),
        &body.answers,
    )
    .await
}

/// The technician submits the built-in Technician Survey of its own ended session.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/technician-survey", tag = "sessions", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Session ID")),
    request_body = SurveySubmission,
    responses((status = 201, description = "Stored", body = SurveyStored),
        (status = 400, description = "Answers do not fit the survey (`survey_invalid`)", body = ErrorBody),
        (status = 403, description = "Not the session's technician", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "Session not over (`session_live`), no built-in survey (`no_survey`) or already submitted (`survey_submitted`)", body = ErrorBody)))]
async fn technician_survey(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<SurveySubmission>,
) -> ApiResult<(StatusCode, Json<SurveyStored>)> {
    if caller.user.role != Role::Technician {
        return Err(ApiError::forbidden("only technicians evaluate sessions"));
    }
    state.hub.flush().await;
    let session = match state.store.session(id).await {
        Err(StoreError::NotFound) => return Err(ApiError::not_found("session")),
        other => other?,
    };
    if session.technician_id != Some(caller.user.id) {
        return Err(ApiError::not_in_scope(
            "only the session's technician evaluates it",
        ));
    }
    if session.ended_at.is_none() {
        return Err(ApiError::conflict(
            "session_live",
            "the session has not ended yet",
        ));
    }
    let policy = policy_of(&session)?;
    store(
        &state,
        &session,
        "technician",
        caller.user.id,
        true,
        policy.technician_survey.as_ref(),
        &body.answers,
    )
    .await
}

fn policy_of(session: &SessionRow) -> ApiResult<SessionPolicy> {
    serde_json::from_str(&session.policy).map_err(ApiError::internal)
}

async fn store(
    state: &AppState,
    session: &SessionRow,
    kind: &str,
    technician_id: i64,
    issued_by_closing: bool,
    survey: Option<&serde_json::Value>,
    answers: &[SurveyAnswer],
) -> ApiResult<(StatusCode, Json<SurveyStored>)> {
    let questions = survey
        .and_then(|s| s.get("questions"))
        .and_then(|q| q.as_array())
        .ok_or_else(|| {
            ApiError::conflict(
                "no_survey",
                format!("the session's group has no built-in {kind} survey"),
            )
        })?;
    let answers = check_answers(questions, answers)?;
    if state
        .store
        .session_survey(session.id, kind)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "survey_submitted",
            format!("the {kind} survey of this session was already submitted"),
        ));
    }
    let answered = answers.iter().filter(|(_, a)| !a.is_empty()).count();
    state
        .store
        .insert_survey(&SurveyRow {
            session_id: session.id,
            kind: kind.to_owned(),
            technician_id,
            group_id: session.group_id,
            issued_by_closing,
            submitted_at: now_ms(),
            answers,
            session_name: String::new(),
            session_ended_at: None,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SurveyStored {
            session_id: session.id,
            answered,
        }),
    ))
}

/// The (question, answer) pairs to store, in the survey's order (unanswered questions as empty
/// answers, so TSurvey0–9 keep their positions), or why the answers do not fit.
fn check_answers(
    questions: &[serde_json::Value],
    answers: &[SurveyAnswer],
) -> ApiResult<Vec<(String, String)>> {
    let bad = |m: String| ApiError::bad_request("survey_invalid", m);
    let mut given: Vec<Option<&str>> = vec![None; questions.len()];
    for a in answers {
        let pos = questions
            .iter()
            .position(|q| q["index"].as_u64() == Some(a.index as u64))
            .ok_or_else(|| bad(format!("question {} is not in this survey", a.index)))?;
        if given[pos].is_some() {
            return Err(bad(format!("question {} is answered twice", a.index)));
        }
        given[pos] = Some(a.answer.trim());
    }
    questions
        .iter()
        .zip(given)
        .map(|(q, a)| {
            let index = q["index"].as_u64().unwrap_or_default();
            let text = q["text"].as_str().unwrap_or_default().to_owned();
            let a = a.unwrap_or_default();
            if a.is_empty() {
                if q["mandatory"].as_bool() == Some(true) {
                    return Err(bad(format!("question {index} is mandatory")));
                }
                return Ok((text, String::new()));
            }
            if q["kind"] == "drop_down" {
                let choices = q["answers"].as_array().cloned().unwrap_or_default();
                if !choices.iter().any(|c| c.as_str() == Some(a)) {
                    return Err(bad(format!(
                        "question {index}: the answer must be one of its choices"
                    )));
                }
            } else if a.chars().count() > MAX_OPEN_ANSWER {
                return Err(bad(format!(
                    "question {index}: at most {MAX_OPEN_ANSWER} characters"
                )));
            }
            Ok((text, a.to_owned()))
        })
        .collect()
}
