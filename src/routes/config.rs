//! `/config` (admin): the engine's system configuration, stored in the database.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::extractor::AdminUser;
use crate::body::JsonObject;
use crate::domain::required_str;
use crate::error::ApiError;
use crate::routes::json_ok;
use crate::state::AppState;
use crate::system_config;

/// `GET /config` → `[{"key", "value"}]`, the keys stored through this API.
pub async fn list(state: web::Data<AppState>, _admin: AdminUser) -> Result<HttpResponse, ApiError> {
    let keys = state.store.config().await?;
    let out: Vec<Value> = keys
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    json_ok(&out)
}

/// `POST /config` `{"key", "value"}` → the stored pair; an existing key is replaced.
pub async fn set(
    state: web::Data<AppState>,
    _admin: AdminUser,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let key = required_str(&body, "key")?.to_owned();
    let value = match body.get("value") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            return Err(ApiError::field("value", "\"value\" is required"));
        }
        Some(_) => return Err(ApiError::field("value", "\"value\" must be a string")),
    };
    if let Some(extra) = body.keys().find(|k| *k != "key" && *k != "value") {
        return Err(ApiError::field(
            extra,
            format!("\"{extra}\" is not allowed"),
        ));
    }
    system_config::check(&key, &value)?;
    let (k, v) = (key.clone(), value.clone());
    state.store.write(move |ops| ops.config_set(&k, &v)).await?;
    log::info!("config key {key} stored");
    json_ok(&json!({ "key": key, "value": value }))
}

/// `DELETE /config/{key}` → `{"ok": true}`; 404 when the key is not stored.
pub async fn delete(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = path.into_inner();
    if system_config::REFUSED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&key))
    {
        return Err(ApiError::field(
            "key",
            format!("{key} cannot be read or written through /config"),
        ));
    }
    let k = key.clone();
    if !state.store.write(move |ops| ops.config_delete(&k)).await? {
        return Err(ApiError::NotFound("Config key not found".into()));
    }
    log::info!("config key {key} deleted");
    json_ok(&json!({ "ok": true }))
}
