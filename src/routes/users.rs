//! Administration (`admin` scope): list, count, read, update and delete users; passwords.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::extractor::{AdminUser, AuthUser};
use crate::body::JsonObject;
use crate::db::{StoreError, users};
use crate::domain::{Email, Invalid, Object, Password, UserId, Vendor, check_label, required_str};
use crate::error::ApiError;
use crate::routes::json_ok;
use crate::state::AppState;

/// Most users one page may hold.
pub const MAX_LIMIT: u32 = 10_000;

fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        message: message.into(),
        field: None,
    }
}

/// The most `filter` parameters one query may give.
pub const MAX_FILTERS: usize = 32;

/// Reads `limit`, `offset`, `sort`, `pattern` and any number of `filter` parameters.
fn list_query(req: &HttpRequest) -> Result<users::ListQuery, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| bad_query("Invalid query string"))?
        .into_inner();
    let mut q = users::ListQuery::default();
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad_query(format!(
                            "\"limit\" must be an integer from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            "offset" => {
                q.offset = value
                    .parse()
                    .map_err(|_| bad_query("\"offset\" must be a non-negative integer"))?;
            }
            "sort" => q.sort = parse_sort(&value)?,
            "pattern" if !value.is_empty() => q.pattern = Some(value),
            "pattern" => {}
            "filter" => {
                // Each filter is a condition and a bound parameter; SQLite allows 999 of them.
                if q.filters.len() >= MAX_FILTERS {
                    return Err(bad_query(format!(
                        "at most {MAX_FILTERS} \"filter\" parameters are allowed"
                    )));
                }
                q.filters.push(parse_filter(&value)?)
            }
            _ => {}
        }
    }
    Ok(q)
}

fn parse_sort(value: &str) -> Result<(users::SortKey, bool), ApiError> {
    let (field, dir) = value.split_once(':').unwrap_or((value, "1"));
    let column = users::SORT_FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, column)| *column)
        .ok_or_else(|| {
            let names: Vec<&str> = users::SORT_FIELDS.iter().map(|(n, _)| *n).collect();
            bad_query(format!(
                "\"sort\" field must be one of {}",
                names.join(", ")
            ))
        })?;
    match dir {
        "1" => Ok((column, true)),
        "-1" => Ok((column, false)),
        _ => Err(bad_query("\"sort\" direction must be 1 or -1")),
    }
}

fn parse_filter(value: &str) -> Result<users::Filter, ApiError> {
    let (field, v) = value
        .split_once(':')
        .ok_or_else(|| bad_query("\"filter\" must look like field:value"))?;
    let v = v.to_owned();
    Ok(match field {
        "scope" => users::Filter::Scope(v),
        "plan" => users::Filter::Plan(v),
        "vendor" => users::Filter::Vendor(v),
        "username" => users::Filter::Username(v),
        "email" => users::Filter::Email(v),
        "isActive" => users::Filter::IsActive(match v.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(bad_query("\"isActive\" filter must be true or false")),
        }),
        _ => {
            return Err(bad_query(
                "\"filter\" field must be one of scope, plan, vendor, username, email, isActive",
            ));
        }
    })
}

/// `GET /users`
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = list_query(&req)?;
    let found = state.store.read(move |ops| ops.list_users(&q)).await?;
    let found: Vec<_> = found.iter().map(users::User::admin_view).collect();
    json_ok(&found)
}

/// `GET /users/count`
pub async fn count(
    state: web::Data<AppState>,
    _admin: AdminUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = list_query(&req)?;
    let n = state.store.read(move |ops| ops.count_users(&q)).await?;
    json_ok(&json!({ "count": n }))
}

/// `GET /users/{id}`
pub async fn read(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state.store.user(UserId::parse(&path)?).await?;
    json_ok(&user.admin_view())
}

/// The fields `PUT /users/{id}` may change.
const UPDATABLE: &[&str] = &["email", "scope", "vendor", "metadata", "isActive", "plan"];

/// Applies a `PUT /users/{id}` body to a user; unknown keys are refused, not ignored.
fn apply_update(user: &mut users::User, body: &Object) -> Result<(), ApiError> {
    if body.is_empty() {
        return Err(bad_query("\"value\" must have at least 1 key"));
    }
    for (key, value) in body {
        match (key.as_str(), value) {
            ("email", Value::String(s)) => user.email = Email::parse(s)?.as_str().to_owned(),
            ("scope", Value::Array(items)) => {
                user.scope = items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => check_label("scope", s).map(|()| s.clone()),
                        _ => Err(Invalid::field(
                            "scope",
                            "\"scope\" must be an array of non-empty strings",
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            // `null` is "not given", as everywhere a body is read (Go clients send it for
            // empty fields); a string or an array is stored as given.
            (_, Value::Null) if UPDATABLE.contains(&key.as_str()) => {}
            ("vendor", v) => user.vendor = Vendor::parse("vendor", v)?,
            ("metadata", Value::Object(_)) => user.metadata = value.clone(),
            ("isActive", Value::Bool(b)) => user.is_active = *b,
            ("plan", Value::String(s)) => {
                check_label("plan", s)?;
                user.plan = s.clone();
            }
            ("email" | "scope" | "metadata" | "isActive" | "plan", _) => {
                return Err(ApiError::field(
                    key,
                    format!("\"{key}\" has the wrong type or is empty"),
                ));
            }
            _ => {
                return Err(ApiError::field(key, format!("\"{key}\" is not allowed")));
            }
        }
    }
    user.mtime = users::now_ms();
    Ok(())
}

/// `PUT /users/{id}`: any of `email`, `scope`, `vendor`, `metadata`, `isActive`, `plan`.
pub async fn update(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<String>,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::parse(&path)?;
    let user = state
        .store
        .write(move |ops| {
            let mut user = ops.get(&id)?;
            apply_update(&mut user, &body)?;
            if !ops.replace_user(&user)? {
                return Err(StoreError::NotFound.into());
            }
            Ok::<_, ApiError>(user)
        })
        .await?;
    json_ok(&user.admin_view())
}

/// `DELETE /users/{id}` → `{"ticket"}`. The deletion is done before the answer.
pub async fn delete(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::parse(&path)?;
    let gone = id.clone();
    if !state.store.write(move |ops| ops.delete_user(&gone)).await? {
        return Err(StoreError::NotFound.into());
    }
    let ticket = state.deletions.record(id);
    json_ok(&json!({ "ticket": ticket }))
}

/// `GET /users/{id}/delete-status/{ticket}`
pub async fn delete_status(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, ticket) = path.into_inner();
    let id = UserId::parse(&id)?;
    if !state.deletions.knows(&ticket, &id) {
        return Err(ApiError::NotFound("Ticket not found".into()));
    }
    json_ok(&json!({ "status": "completed", "stepsDone": 1, "stepsTotal": 1 }))
}

/// `POST /user/reset-password` (admin): `{"email", "password"}` sets that user's password.
pub async fn reset_password(
    state: web::Data<AppState>,
    _admin: AdminUser,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(required_str(&body, "email")?)?;
    let password = Password::parse_new("password", required_str(&body, "password")?)?;
    let user = state
        .store
        .read(move |ops| ops.find_by_email(email.as_str()))
        .await?
        .ok_or(StoreError::NotFound)?;
    set_password(&state, user.id, password).await
}

/// `POST /user/change-password` (own token): `{"oldPassword", "newPassword"}`.
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: AuthUser,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    let old = Password::parse_existing("oldPassword", required_str(&body, "oldPassword")?)?;
    let new = Password::parse_new("newPassword", required_str(&body, "newPassword")?)?;
    let user = state.store.user(caller.id).await?;
    let address = crate::net::client_ip(&req, &state.trusted_proxies);
    crate::auth::sign_in::check_current_password(&state, &user, old, address).await?;
    set_password(&state, user.id, new).await
}

/// Hashes a new password (outside any pooled connection), stores it, answers the public user.
async fn set_password(
    state: &AppState,
    id: UserId,
    password: Password,
) -> Result<HttpResponse, ApiError> {
    let hash = state.hasher.hash(password).await?;
    let revoke = state.password_change_revocation();
    let user = state
        .store
        .write(move |ops| {
            if !ops.set_password_hash(&id, &hash, users::now_ms(), revoke)? {
                return Err(StoreError::NotFound);
            }
            ops.get(&id)
        })
        .await?;
    json_ok(&user.public())
}

/// Refuses every token of `id` issued until now; the answer says from when tokens count.
async fn revoke(state: &AppState, id: UserId) -> Result<HttpResponse, ApiError> {
    let since = state.tokens.revocation_second();
    let since = state
        .store
        .write(move |ops| ops.revoke_tokens(&id, since, users::now_ms()))
        .await?
        .ok_or(StoreError::NotFound)?;
    json_ok(&json!({ "revokedBefore": crate::domain::iso8601(since * 1000) }))
}

/// `POST /users/{id}/revoke-tokens` (admin): signs the user out everywhere.
pub async fn revoke_tokens(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    revoke(&state, UserId::parse(&path)?).await
}

/// `POST /user/revoke-tokens` (own token): "sign out everywhere", this token included.
pub async fn revoke_own_tokens(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<HttpResponse, ApiError> {
    revoke(&state, caller.id).await
}
