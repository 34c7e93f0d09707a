//! `/user`: sign in, create a user, read the current user.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::extractor::{AuthUser, MaybeAuthUser};
use crate::auth::{sign_in, sign_up};
use crate::body::JsonObject;
use crate::domain::{Email, Password, Username, optional_str, required_str};
use crate::error::ApiError;
use crate::routes::{json_bytes, json_ok};
use crate::state::AppState;

/// `POST /user/auth`: `password` and `username` or `email` → `{user, token}`.
pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let username = optional_str(&body, "username")?.map(str::to_owned);
    let email = optional_str(&body, "email")?.map(str::to_owned);
    if username.is_none() && email.is_none() {
        return Err(ApiError::Validation {
            message: "\"value\" must contain at least one of [username, email]".into(),
            field: Some("username".into()),
        });
    }
    let password = Password::parse_existing("password", required_str(&body, "password")?)?;
    let credentials = sign_in::Credentials {
        username,
        email,
        password,
    };
    let address = crate::net::client_ip(&req, &state.trusted_proxies);
    let (user, token) = sign_in::sign_in(&state, credentials, address).await?;
    json_ok(&json!({ "user": user.public(), "token": token }))
}

/// `POST /user`: `username`, `email`, `password`, optional `metadata` → `{token, user}`.
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    MaybeAuthUser(caller): MaybeAuthUser,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let address = crate::net::client_ip(&req, &state.trusted_proxies);
    let new_user = sign_up::NewUser {
        username: Username::parse(required_str(&body, "username")?)?,
        email: Email::parse(required_str(&body, "email")?)?,
        password: Password::parse_new("password", required_str(&body, "password")?)?,
        metadata: match body.get("metadata") {
            None => json!({}),
            Some(m @ Value::Object(_)) => m.clone(),
            Some(_) => {
                return Err(ApiError::field(
                    "metadata",
                    "\"metadata\" must be of type object",
                ));
            }
        },
    };
    let (user, token) = sign_up::sign_up(&state, new_user, caller, address).await?;
    json_ok(&json!({ "token": token, "user": user.public() }))
}

/// `GET /user`: the caller's own user.
pub async fn current(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<HttpResponse, ApiError> {
    Ok(json_bytes(state.store.public_user_json(&caller.id).await?))
}
