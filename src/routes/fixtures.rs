//! The fixture API for test suites (`fixtures.api = true` or `--fixture-api`): reset users,
//! create a batch of users, move the clock. Off by default, when these routes do not exist.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::token::{LATEST_CLOCK_SECS, ServerClock};
use crate::body::JsonObject;
use crate::db::users;
use crate::error::ApiError;
use crate::fixtures::{self, FixtureUser};
use crate::routes::json_ok;
use crate::settings::Timespan;
use crate::state::AppState;

fn invalid(message: String) -> ApiError {
    ApiError::Validation {
        message,
        field: None,
    }
}

/// Turns a fixtures error into 409 when it is a clash with a stored user, else 400.
fn fixture_error(message: String) -> ApiError {
    if message.contains("already taken") || message.contains("already exists") {
        ApiError::Conflict(message.into())
    } else if message.starts_with("database") {
        ApiError::internal(anyhow::anyhow!(message))
    } else {
        invalid(message)
    }
}

/// Who may drive the fixture API: a test suite on this machine, never a web page. Every
/// fixture request must
/// - come from a loopback peer and be addressed to a loopback name (`Host`: `localhost`,
///   `127.0.0.1`, `[::1]`), so a page that rebinds its own DNS name to 127.0.0.1 is refused;
/// - carry no `Origin` other than a loopback one (a page on another site is refused);
/// - when it is a POST, say `Content-Type: application/json`, which a browser cannot send
///   across origins without a preflight (forms and `text/plain` bodies can be sent without).
///
/// With `fixtures.allow_remote` (a fixture server in a container, say) the address, `Host`
/// and `Origin` checks are off; the content type is still required.
pub fn guard(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let refuse = |why: &str| ApiError::Forbidden(format!("Fixture API: {why}").into());
    if !state.settings.fixtures.allow_remote {
        let peer_is_local = req.peer_addr().is_some_and(|a| {
            let ip = a.ip();
            ip.is_loopback()
                || matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
        });
        if !peer_is_local {
            return Err(refuse("only clients on this machine may call it"));
        }
        // A reverse proxy on this machine connects from loopback with a loopback Host: what
        // it forwarded says so in one of these headers.
        if ["forwarded", "x-forwarded-for", "x-real-ip"]
            .iter()
            .any(|h| req.headers().contains_key(*h))
        {
            return Err(refuse("requests that came through a proxy may not call it"));
        }
        // The request's own Host (never X-Forwarded-Host, which anyone can write).
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        if !is_loopback_authority(&host) {
            return Err(refuse("requests must be addressed to localhost"));
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let local = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .is_some_and(|(scheme, rest)| {
                    matches!(scheme, "http" | "https") && is_loopback_authority(rest)
                });
            if !local {
                return Err(refuse("web pages of other origins may not call it"));
            }
        }
    }
    if req.method() == actix_web::http::Method::POST {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    Ok(())
}

/// `localhost`, `app.localhost`, `127.0.0.1`, `[::1]`, each with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.trim_end_matches('.');
    crate::settings::is_loopback(host)
        || host
            .to_ascii_lowercase()
            .strip_suffix(".localhost")
            .is_some_and(|sub| !sub.is_empty())
}

/// `POST /_fixtures/reset`: every user not declared in the settings file is removed, the
/// declared ones are applied again. Answers `{"users": n}`, the users now stored.
pub async fn reset(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    guard(&req, &state)?;
    let st = state.clone();
    let n = blocking(move || {
        let declared = &st.settings.users;
        st.store.write_blocking(|ops| {
            let keep = fixtures::stored_ids(ops, declared)?;
            ops.delete_users_except(&keep)
        })?;
        fixtures::apply(
            &st.store,
            declared,
            st.settings.auth.bcrypt_cost,
            st.settings.tenant.default_user_vendor.as_ref(),
            &st.settings.webhooks,
        )
        .map_err(fixture_error)?;
        Ok(st
            .store
            .read_blocking(|ops| ops.count_users(&users::ListQuery::default()))?)
    })
    .await?;
    // A fresh start: the brute-force counters go too.
    state.limiter.clear().await?;
    json_ok(&json!({ "users": n }))
}

/// `POST /_fixtures/limits/reset`: forgets every failed sign-in count and lock (they live in
/// memory; a restart clears them as well). Answers `{}`.
pub async fn reset_limits(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    guard(&req, &state)?;
    state.limiter.clear().await?;
    json_ok(&json!({}))
}

/// `POST /_fixtures/users`: an array of users with the fields of `[[users]]`, created or
/// updated in one transaction (all or nothing). Answers the public users.
pub async fn batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    guard(&req, &state)?;
    let body = crate::body::read_body(&req, payload.into_inner(), BATCH_BYTES).await?;
    let list: Vec<Value> = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("Expected a JSON array of users".into()))?;
    let mut batch = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        let user: FixtureUser =
            serde_json::from_value(v).map_err(|e| invalid(format!("users[{i}]: {e}")))?;
        batch.push(user);
    }
    fixtures::validate(&batch).map_err(invalid)?;
    let st = state.clone();
    let stored = blocking(move || {
        fixtures::apply(
            &st.store,
            &batch,
            st.settings.auth.bcrypt_cost,
            st.settings.tenant.default_user_vendor.as_ref(),
            &st.settings.webhooks,
        )
        .map_err(fixture_error)?;
        Ok(st.store.read_blocking(|ops| {
            let mut out = Vec::with_capacity(batch.len());
            for f in &batch {
                out.extend(fixtures::stored(ops, f)?);
            }
            Ok(out)
        })?)
    })
    .await?;
    let public: Vec<_> = stored.iter().map(users::User::public).collect();
    json_ok(&public)
}

/// Token times end in February 2106 (see [`LATEST_CLOCK_SECS`]).
const TOO_LATE: &str = "the clock cannot go past 2106-02-06 (token times end there)";

/// `POST /_fixtures/clock`: `{"advance": "31d"}`, `{"set": <unix seconds>}` or
/// `{"reset": true}` moves the clock used to issue and verify tokens. Answers `{"now"}`.
pub async fn clock(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonObject(body): JsonObject,
) -> Result<HttpResponse, ApiError> {
    guard(&req, &state)?;
    let clock = &state.tokens.clock;
    let real = ServerClock::real();
    match (body.get("advance"), body.get("set"), body.get("reset")) {
        (Some(advance), None, None) => {
            let secs = match advance {
                Value::String(s) => {
                    Timespan::parse(s)
                        .map_err(|e| ApiError::field("advance", e))?
                        .0
                }
                Value::Number(n) => n.as_u64().ok_or_else(|| {
                    ApiError::field("advance", "\"advance\" must be a positive timespan")
                })?,
                _ => {
                    return Err(ApiError::field(
                        "advance",
                        "\"advance\" must be a timespan like \"31d\"",
                    ));
                }
            };
            // Exactly `secs` more offset, checked against the end of token time.
            let offset = i64::try_from(secs)
                .ok()
                .and_then(|secs| clock.offset().checked_add(secs))
                .filter(|o| {
                    real.checked_add(*o)
                        .is_some_and(|t| t <= LATEST_CLOCK_SECS as i64)
                })
                .ok_or_else(|| ApiError::field("advance", TOO_LATE))?;
            clock.set_offset(offset);
        }
        (None, Some(set), None) => {
            let at = set
                .as_u64()
                .ok_or_else(|| ApiError::field("set", "\"set\" must be unix seconds"))?;
            if at > LATEST_CLOCK_SECS {
                return Err(ApiError::field("set", TOO_LATE));
            }
            clock.set_offset(at as i64 - real);
        }
        (None, None, Some(Value::Bool(true))) => clock.set_offset(0),
        _ => {
            return Err(invalid(
                "give exactly one of \"advance\", \"set\" or \"reset\": true".into(),
            ));
        }
    }
    json_ok(&json!({ "now": clock.now() }))
}

/// The largest `/_fixtures/users` body: thousands of users at once.
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Registers the fixture routes (only called when the API is on).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let post_only = |path: &str, route: actix_web::Route| {
        web::resource(path)
            .route(route)
            .default_service(web::to(crate::routes::meta::method_not_allowed("POST")))
    };
    cfg.service(post_only("/_fixtures/reset", web::post().to(reset)))
        .service(post_only("/_fixtures/users", web::post().to(batch)))
        .service(post_only("/_fixtures/clock", web::post().to(clock)))
        .service(post_only(
            "/_fixtures/limits/reset",
            web::post().to(reset_limits),
        ))
        .service(
            web::resource("/_fixtures/messages")
                .route(web::get().to(messages))
                .default_service(web::to(crate::routes::meta::method_not_allowed("GET"))),
        );
}

/// Most messages `GET /_fixtures/messages` lists (the newest).
const INBOX: u32 = 1000;

/// `GET /_fixtures/messages[?to=ADDRESS]`: the webhooks and mails sent or queued, newest last,
/// codes included, so a suite finishes a forgot-password flow with no receiver. `to` keeps
/// those about that address (a mail to it, or a webhook naming it).
pub async fn messages(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    guard(&req, &state)?;
    let to =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map_err(|_| ApiError::BadRequest("Invalid query".into()))?
            .get("to")
            .map(|t| crate::domain::Email::key_of(t));
    let all = state.store.read(|ops| ops.outbox_recent(INBOX)).await?;
    let mut out = Vec::with_capacity(all.len());
    for m in all {
        let body: Value = serde_json::from_str(&m.body).unwrap_or(Value::String(m.body.clone()));
        let (kind, target) = if let Some(addr) = m.target.strip_prefix(crate::outbox::MAILTO) {
            ("mail", addr.to_owned())
        } else if m.target == crate::outbox::KEPT {
            ("kept", String::new())
        } else {
            ("webhook", m.target.clone())
        };
        let about = [
            (kind == "mail").then_some(target.as_str()),
            body["email"].as_str(),
            body["user"]["email"].as_str(),
        ];
        if let Some(to) = &to
            && !about
                .iter()
                .flatten()
                .any(|a| crate::domain::Email::key_of(a) == *to)
        {
            continue;
        }
        out.push(json!({
            "id": m.id,
            "event": m.event,
            "kind": kind,
            "to": target,
            "body": body,
            "created": crate::domain::iso8601(m.created),
            "state": m.state,
            "attempts": m.attempts,
        }));
    }
    json_ok(&out)
}

/// Runs blocking work (bcrypt, the store) on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(work).await.map_err(ApiError::internal)?
}
