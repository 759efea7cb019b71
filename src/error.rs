//! The one API error type: an HTTP status and `{"error": {"code", "message"}}`.
//! Also the extractors whose rejections must come out in that shape (JSON bodies, paths, queries).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_parameter` (400: a path or query parameter does not
    /// parse), `invalid_json` (400: the body is not JSON), `validation_failed` (422: the body or a
    /// field breaks the schema or a rule), `unsupported_media_type` (415), `payload_too_large` (413),
    /// `bad_request`, `unauthorized`,
    /// `forbidden`, `ip_restricted`, `not_found`, `conflict`, `email_taken`, `group_not_empty`,
    /// `too_many_requests`, `password_change_required`, `sso_required`, `ticket_expired`, `internal`...
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// A field failed validation; the message names the field.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: {why}"),
        )
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// The role may call the operation, but this object is outside what the caller manages.
    pub fn not_in_scope(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "not_in_scope", message)
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
    pub fn too_many(retry_after_secs: u64, message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(retry_after_secs.max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
        }
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        // The detail goes to the log, not to the client.
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::not_found("resource"),
            StoreError::Conflict("email_taken") => {
                ApiError::conflict("email_taken", "a user with this email already exists")
            }
            StoreError::Conflict(what) => ApiError::conflict("conflict", what),
            // PostgreSQL restarting or out of reach: a retry may well succeed, unlike a 500.
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the store is unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store does not answer; try again shortly",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        ApiError::from(StoreError::from(e))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `Json<T>` whose rejections are API errors (bad JSON, wrong types, unknown fields, wrong content type).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let mut value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        integral_floats_to_integers(&mut value);
        crate::strict_json::from_value(value)
            .map(Json)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                )
            })
    }
}

/// JSON has one number type: `946.0` is the integer 946 to JSON Schema (and to the OpenAPI
/// document's `type: integer`), while serde refuses it for an `i64`. Whole floats within the
/// `i64` range become integers before the body meets its Rust type; fractions stay as they are
/// (and are refused where an integer is due).
fn integral_floats_to_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f >= i64::MIN as f64
                && f < i64::MAX as f64
            {
                *v = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(o) => o.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            e.body_text(),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("invalid_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(e.status(), "payload_too_large", e.body_text())
        }
        JsonRejection::BytesRejection(e) => ApiError::new(e.status(), "bad_request", e.body_text()),
        other => ApiError::new(other.status(), "bad_request", other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Path<T>` with API-shaped rejections (e.g. a non-numeric id).
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(invalid_parameter("path", e.body_text()))
            }
            // Only a route without path parameters can miss them: a wiring mistake, not the client's.
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// `Query<T>` with API-shaped rejections.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(invalid_parameter("query", e.body_text()))
            }
            Err(other) => Err(invalid_parameter("query", other.body_text())),
        }
    }
}

/// A path or query parameter that does not parse (a non-numeric id, an unknown enum value, a
/// missing required query parameter): always 400 `invalid_parameter`, whatever the route, so that
/// clients and the OpenAPI document have one answer to expect. Bodies that parse but do not
/// validate are 422 `validation_failed` instead.
pub fn invalid_parameter(place: &str, detail: impl Into<String>) -> ApiError {
    let detail: String = detail.into();
    // axum's text starts with a generic prefix; the part after it names the parameter.
    let detail = detail
        .strip_prefix("Invalid URL: ")
        .or_else(|| detail.strip_prefix("Failed to deserialize query string: "))
        .unwrap_or(&detail)
        .to_string();
    ApiError::bad_request("invalid_parameter", format!("{place} parameter: {detail}"))
}
