//! The one error type at the HTTP edge: every failure becomes a hapi Boom JSON body.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::StoreError;
use crate::domain::Invalid;

/// The generic message of every 500: details go to the log, never to the client.
pub const INTERNAL_MESSAGE: &str = "An internal server error occurred";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Invalid input; `field` names the offending payload key (Boom's `validation.keys`).
    #[error("{message}")]
    Validation {
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    #[error("{0}")]
    Unauthorized(Cow<'static, str>),
    #[error("{0}")]
    Forbidden(Cow<'static, str>),
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    #[error("Payload content length greater than maximum allowed: {0}")]
    PayloadTooLarge(usize),
    #[error("Unsupported Media Type")]
    UnsupportedMediaType,
    /// The body did not arrive in time (a client that stalls after the headers).
    #[error("Request body was not received in time")]
    RequestTimeout,
    /// Too many failed sign-ins; the client may retry after this many seconds.
    #[error("Too many failed sign-in attempts, try again later")]
    TooManyRequests { retry_after: u64 },
    #[error("{0}")]
    ServiceUnavailable(Cow<'static, str>),
    /// Anything unexpected; logged with its cause chain, answered with [`INTERNAL_MESSAGE`].
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A validation error about one payload field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        match e.field {
            Some(field) => ApiError::Validation {
                message: e.message,
                field: Some(field),
            },
            None => ApiError::BadRequest(e.message.into()),
        }
    }
}

/// The message of the 404 of every route about a user that is not stored.
pub const USER_NOT_FOUND: &str = "User not found";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Taken(taken) => ApiError::Conflict(taken.message().into()),
            StoreError::NotFound => ApiError::NotFound(USER_NOT_FOUND.into()),
            StoreError::Unavailable(why) => {
                log::warn!("database unavailable: {why}");
                ApiError::ServiceUnavailable("The database is busy, try again".into())
            }
            e @ (StoreError::Corrupt(_) | StoreError::RolledBack | StoreError::Other(_)) => {
                ApiError::Internal(e.into())
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Boom<'a> {
    status_code: u16,
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    validation: Option<BoomValidation<'a>>,
}

#[derive(Serialize)]
struct BoomValidation<'a> {
    source: &'a str,
    keys: Vec<&'a str>,
}

/// A Boom JSON response for any status, e.g. for errors raised outside our handlers.
pub fn boom(status: StatusCode, message: &str) -> HttpResponse {
    boom_with(status, message, None)
}

/// The Boom JSON bytes for a status and message.
pub fn boom_json(status: StatusCode, message: &str) -> Vec<u8> {
    boom_bytes(status, message, None)
}

fn boom_bytes(status: StatusCode, message: &str, field: Option<&str>) -> Vec<u8> {
    let body = Boom {
        status_code: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error"),
        message,
        validation: field.map(|f| BoomValidation {
            source: "payload",
            keys: vec![f],
        }),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

fn boom_with(status: StatusCode, message: &str, field: Option<&str>) -> HttpResponse {
    let json = boom_bytes(status, message, field);
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        ))
        .body(json)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ApiError::Internal(e) => {
                log::error!("internal error: {e:#}");
                boom(status, INTERNAL_MESSAGE)
            }
            ApiError::Validation { message, field } => boom_with(status, message, field.as_deref()),
            ApiError::Unauthorized(_) => {
                let mut res = boom(status, &self.to_string());
                // hapi's Boom.unauthorized(message, 'Bearer') names the scheme to use.
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                res
            }
            ApiError::PayloadTooLarge(_) | ApiError::RequestTimeout => {
                // The rest of the body is never read, so the connection cannot carry another
                // request: say so, or a client may reuse it and see it cut.
                let mut res = boom(status, &self.to_string());
                res.head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
                res
            }
            ApiError::TooManyRequests { retry_after } => {
                let mut res = boom(status, &self.to_string());
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                res
            }
            ApiError::ServiceUnavailable(_) => {
                let mut res = boom(status, &self.to_string());
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                res
            }
            _ => boom(status, &self.to_string()),
        }
    }
}
