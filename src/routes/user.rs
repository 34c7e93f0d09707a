//! `/user`: sign in, create a user, read the current user.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::extractor::{AuthUser, MaybeAuthUser};
use crate::auth::{reset, sign_in, sign_up};
use crate::body::JsonObject;
use crate::domain::{
    Email, Invalid, Password, Username, Vendor, check_label, optional_str, required_str,
};
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
    let username = Username::parse(required_str(&body, "username")?)?;
    // Without `email`, a username that is an address is the email too (third-party clients
    // send only `username`).
    let email = match optional_str(&body, "email")? {
        Some(e) => Email::parse(e)?,
        None => Email::parse(username.as_str())
            .map_err(|_| ApiError::field("email", "\"email\" is required"))?,
    };
    let new_user = sign_up::NewUser {
        username,
        email,
        password: Password::parse_new("password", required_str(&body, "password")?)?,
        metadata: match body.get("metadata") {
            None | Some(Value::Null) => json!({}),
            Some(m @ Value::Object(_)) => m.clone(),
            Some(_) => {
                return Err(ApiError::field(
                    "metadata",
                    "\"metadata\" must be of type object",
                ));
            }
        },
        asked: sign_up::Asked {
            scope: match body.get("scope") {
                None | Some(Value::Null) => None,
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => check_label("scope", s).map(|()| s.clone()),
                            _ => Err(Invalid::field(
                                "scope",
                                "\"scope\" must be an array of strings",
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Some(_) => {
                    return Err(ApiError::field("scope", "\"scope\" must be an array"));
                }
            },
            plan: match optional_str(&body, "plan")? {
                Some(p) => {
                    check_label("plan", p)?;
                    Some(p.to_owned())
                }
                None => None,
            },
            is_active: match body.get("isActive") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(ApiError::field(
                        "isActive",
                        "\"isActive\" must be a boolean",
                    ));
                }
            },
            vendor: match body.get("vendor") {
                None => None,
                Some(v) => Vendor::parse("vendor", v)?,
            },
        },
    };
    let (user, token) = sign_up::sign_up(&state, new_user, caller, address).await?;
    json_ok(&json!({ "token": token, "user": user.public() }))
}

/// `GET /user`: the caller's own user.
/// (The extractor read the stored user, remembered while unchanged, to check the token.)
pub async fn current(caller: AuthUser) -> HttpResponse {
    json_bytes(caller.public_json)
}

/// `POST /user/forgot-password` `{"email"}` → `{}`, known address or not.
pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(required_str(&body, "email")?)?;
    let address = crate::net::client_ip(&req, &state.trusted_proxies);
    reset::forgot(&state, email, address).await?;
    json_ok(&json!({}))
}

/// `POST /user/forgot-password/reset` `{"code", "password"}` → `{}`.
pub async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let code = required_str(&body, "code")?;
    if code.len() > 256 {
        return Err(ApiError::BadRequest(reset::INVALID_CODE.into()));
    }
    let password = Password::parse_new("password", required_str(&body, "password")?)?;
    let address = crate::net::client_ip(&req, &state.trusted_proxies);
    reset::reset(&state, code, password, address).await?;
    json_ok(&json!({}))
}
