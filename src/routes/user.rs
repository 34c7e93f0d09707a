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
    // Each field given is a name of its own for the limit (a username and an email are counted
    // apart even when they are the same text, so a success through one never resets the
    // other), and a locked name is refused before any bcrypt work, whatever else is named. The
    // address is charged a guess per distinct text: a sign-in page that sends what a person
    // typed as both makes one guess.
    let names: Vec<String> = username
        .iter()
        .map(|u| format!("u:{u}"))
        .chain(email.iter().map(|e| format!("e:{e}")))
        .collect();
    let guesses = match (&username, &email) {
        (Some(u), Some(e)) if u != e => 2,
        _ => 1,
    };
    let attempt = state
        .limiter
        .begin(
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
            guesses,
            crate::net::client_ip(&req, &state.trusted_proxies),
        )
        .map_err(|retry_after| {
            state.count_sign_in("rate_limited");
            ApiError::TooManyRequests { retry_after }
        })?;

    // Each field names a candidate: the user with that username, the user with that email.
    // The password is checked against every candidate (a dummy hash standing in for a missing
    // one), so the work depends only on how many fields were given; the first that matches,
    // username before email, signs in (decided; the engine's rule is not public). Checking the
    // email's user even when the username exists means nobody can shut a person out by taking
    // their email address as a username.
    let mut candidates = db::run(&state.pool, move |conn| {
        let mut found = Vec::with_capacity(2);
        if let Some(u) = &username {
            found.push(users::find_by_username(conn, u)?);
        }
        if let Some(e) = &email {
            found.push(users::find_by_email(conn, e)?);
        }
        Ok(found)
    })
    .await?;
    let hashes = candidates
        .iter()
        .map(|c| c.as_ref().map(|u| u.password_hash.0.clone()))
        .collect();
    let signed_in = state
        .hasher
        .verify_first(password, hashes)
        .await?
        .and_then(|i| Some((candidates.get_mut(i)?.take()?, i)));
    let Some((user, i)) = signed_in else {
        state.count_sign_in("failure");
        return Err(ApiError::Forbidden(INVALID_CREDENTIALS.into()));
    };
    state.limiter.succeeded(attempt, &names[i]);
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
