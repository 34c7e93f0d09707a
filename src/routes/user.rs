//! `/user`: sign in, create a user, read the current user.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::extractor::{AuthUser, INSUFFICIENT_SCOPE, MISSING_AUTH, MaybeAuthUser};
use crate::body::JsonObject;
use crate::db::{self, users};
use crate::domain::{Email, Password, UserId, Username, optional_str, required_str};
use crate::error::ApiError;
use crate::routes::{json_bytes, json_ok};
use crate::startup::AppState;

/// One answer for unknown users and wrong passwords alike, so neither can be told apart.
pub const INVALID_CREDENTIALS: &str = "Invalid credentials";

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
    // Each field given is an identifier of its own for the limit: one that names a locked-out
    // username or email is refused, before any bcrypt work, whatever else it names.
    let by_username = username.as_deref().map(|u| format!("u:{u}"));
    let by_email = email.as_deref().map(|e| format!("e:{e}"));
    let identifiers: Vec<&str> = by_username
        .iter()
        .chain(&by_email)
        .map(String::as_str)
        .collect();
    let attempt = state
        .limiter
        .begin(
            &identifiers,
            crate::net::client_ip(&req, &state.trusted_proxies),
        )
        .map_err(|retry_after| {
            state.count_sign_in("rate_limited");
            ApiError::TooManyRequests { retry_after }
        })?;

    // `username` first; when both are given and no user has that username, `email` (decided;
    // the engine's rule is not public). A sign-in page can send what a person typed as both.
    let user = db::run(&state.pool, move |conn| {
        if let Some(u) = &username
            && let Some(user) = users::find_by_username(conn, u)?
        {
            return Ok(Some((user, true)));
        }
        match &email {
            Some(e) => Ok(users::find_by_email(conn, e)?.map(|user| (user, false))),
            None => Ok(None),
        }
    })
    .await?;
    let hash = user.as_ref().map(|(u, _)| u.password_hash.0.clone());
    // Unknown users are verified against a dummy hash: the same work, the same time.
    let ok = state.hasher.verify(password, hash).await?;
    let (user, matched) = match user {
        Some((user, by_name)) if ok => (user, if by_name { by_username } else { by_email }),
        _ => {
            state.count_sign_in("failure");
            return Err(ApiError::Forbidden(INVALID_CREDENTIALS.into()));
        }
    };
    state
        .limiter
        .succeeded(attempt, matched.as_deref().unwrap_or_default());
    state.count_sign_in("success");
    let token = state
        .tokens
        .issue(user.id.as_str(), &user.scope)
        .map_err(ApiError::internal)?;
    json_ok(&json!({ "user": user.public(), "token": token }))
}

/// `POST /user`: `username`, `email`, `password`, optional `metadata` → `{token, user}`.
pub async fn create(
    state: web::Data<AppState>,
    MaybeAuthUser(caller): MaybeAuthUser,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let needed = &state.settings.tenant.api_user_create_scope;
    if !needed.is_empty() {
        match &caller {
            None => return Err(ApiError::Unauthorized(MISSING_AUTH.into())),
            Some(c) if !c.has_any_scope(needed) => {
                return Err(ApiError::Forbidden(INSUFFICIENT_SCOPE.into()));
            }
            Some(_) => {}
        }
    }
    let username = Username::parse(required_str(&body, "username")?)?;
    let email = Email::parse(required_str(&body, "email")?)?;
    let password = Password::parse_new("password", required_str(&body, "password")?)?;
    let metadata = match body.get("metadata") {
        None => json!({}),
        Some(m @ Value::Object(_)) => m.clone(),
        Some(_) => {
            return Err(ApiError::field(
                "metadata",
                "\"metadata\" must be of type object",
            ));
        }
    };

    // Refuse a taken name before paying for a hash; the unique indexes still decide races.
    let (u, e) = (username.clone(), email.clone());
    if let Some(conflict) = db::run(&state.pool, move |conn| {
        users::taken(conn, u.as_str(), e.as_str())
    })
    .await?
    {
        return Err(conflict);
    }
    let hash = state.hasher.hash(password).await?;
    let user = users::User {
        metadata,
        ..users::User::new(
            UserId::generate(),
            username.as_str().to_owned(),
            email.as_str().to_owned(),
            hash,
            state.settings.tenant.default_user_vendor.clone(),
        )
    };
    let user = db::run(&state.pool, move |conn| {
        users::insert(conn, &user)?;
        Ok(user)
    })
    .await?;
    let token = state
        .tokens
        .issue(user.id.as_str(), &user.scope)
        .map_err(ApiError::internal)?;
    json_ok(&json!({ "token": token, "user": user.public() }))
}

/// `GET /user`: the caller's own user.
pub async fn current(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let body = state
        .user_cache
        .get_or_read(&caller.id, || async {
            let id = caller.id.clone();
            let user = db::read(&state.pool, move |conn| users::get(conn, &id)).await?;
            let json = serde_json::to_vec(&user.public()).map_err(ApiError::internal)?;
            Ok::<_, ApiError>(Bytes::from(json))
        })
        .await?;
    Ok(json_bytes(body))
}
