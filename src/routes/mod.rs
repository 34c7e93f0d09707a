//! HTTP routes, one file per resource.

pub mod config;
pub mod fixtures;
pub mod meta;
pub mod pages;
pub mod user;
pub mod users;

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use serde::Serialize;

use crate::error::ApiError;

/// A 200 JSON answer with the engine's content type.
pub fn json_ok(body: &impl Serialize) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(ApiError::internal)?;
    Ok(json_bytes(bytes.into()))
}

/// 200 with a body that is already JSON.
pub fn json_bytes(body: actix_web::web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        ))
        .body(body)
}
