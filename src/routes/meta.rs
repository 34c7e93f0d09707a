//! The version route and the answers for unknown routes and methods.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::routes::json_ok;
use crate::state::AppState;

/// `GET /`: the engine's version, which the SDK compares with its own.
pub async fn version(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    json_ok(&json!({ "version": state.settings.tenant.version }))
}

/// Any path no route serves.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not Found".into()))
}

/// A known path asked with a method it does not serve; `Allow` lists the ones it does.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<HttpResponse> + Clone {
    move || {
        let mut res = actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed);
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(res)
    }
}

/// The OpenAPI 3 document of every route, body and error (hand-written; a test keeps it in
/// step with the route table).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /openapi.json`
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json; charset=utf-8"),
        ))
        .body(OPENAPI)
}

/// `GET /metrics` (when `metrics.enabled`): the Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(metrics) = &state.metrics else {
        return Err(ApiError::NotFound("Not Found".into()));
    };
    let users = state
        .store
        .read(|ops| ops.count_users(&crate::db::users::ListQuery::default()))
        .await?;
    let body = metrics.render(users, state.hasher.waiting());
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        ))
        .body(body))
}
