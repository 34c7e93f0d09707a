//! `/user`: sign in, create a user, read the current user.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::extractor::{AuthUser, INSUFFICIENT_SCOPE, MISSING_AUTH, MaybeAuthUser};
use crate::auth::sign_in;
use crate::body::JsonObject;
use crate::db::{self, users};
use crate::domain::{Email, Password, UserId, Username, optional_str, required_str};
use crate::error::ApiError;
use crate::routes::{json_bytes, json_ok};
use crate::startup::AppState;

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
    let needed = &state.settings.tenant.api_user_create_scope;
    if !needed.is_empty() {
        let Some(caller) = caller else {
            return Err(ApiError::Unauthorized(MISSING_AUTH.into()));
        };
        // The stored user's scope, not the token's: a demoted or deleted caller loses the
        // right at once, as on the admin routes.
        let stored = users::load(&state.pool, caller.id).await?;
        if !stored.scope.iter().any(|s| needed.contains(s)) {
            return Err(ApiError::Forbidden(INSUFFICIENT_SCOPE.into()));
        }
    }
    // "Username already taken" tells a client something: such answers count against its
    // address like failed sign-ins, so names cannot be harvested at thousands a second.
    let address = crate::net::client_ip(&req, &state.trusted_proxies);
    if let Some(retry_after) = state.limiter.address_locked(address) {
        return Err(ApiError::TooManyRequests { retry_after });
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
        state.limiter.charge_address(address);
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
    .await
    .inspect_err(|e| {
        if matches!(e, ApiError::Conflict(_)) {
            state.limiter.charge_address(address);
        }
    })?;
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
