//! What "forgot password" is: a single-use code for a known address, delivered through the
//! outbox; the same answer, in the same time, for an unknown one; and the reset that uses it.

use std::net::IpAddr;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::auth::sign_in::{email_name, username_name};
use crate::db::StoreError;
use crate::domain::{Email, Password};
use crate::error::ApiError;
use crate::outbox::{self, Reset, ResetDelivery};
use crate::state::AppState;

/// The one answer for an unknown, used or expired code.
pub const INVALID_CODE: &str = "Invalid or expired code";

/// A fresh code (256 random bits, URL-safe base64) and the hash that is stored.
pub fn new_code() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = code_hash(&code);
    (code, hash)
}

/// What is stored of a code: its SHA-256 (a code has 256 bits of entropy, so a fast hash
/// reveals nothing; a slow one would only make resets a denial of service).
pub fn code_hash(code: &str) -> String {
    Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The server's now in milliseconds, on the (movable) clock that tokens use, so the fixture
/// API's clock expires codes too.
fn now_ms(state: &AppState) -> i64 {
    state.tokens.clock.now() as i64 * 1000
}

/// `POST /user/forgot-password`: a code for a known address, delivered by webhook and/or mail;
/// nothing for an unknown one, with the same write and the same answer. 429 while the address
/// or the client is locked out.
pub async fn forgot(
    state: &AppState,
    email: Email,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    let name = format!("f:{}", Email::key_of(email.as_str()));
    // Each request counts against the client, as a failed sign-in does (429 when it is locked
    // out), and against the address asked about: past the limit, requests about it are
    // answered as before but send nothing, so strangers can neither flood a mailbox nor, by
    // locking the address, keep its owner from resetting (the owner is one more request).
    let client = state
        .limiter
        .begin(&[], 1, address)
        .await?
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    drop(client);
    match state.limiter.begin(&[&name], 1, None).await? {
        Ok(asked) => drop(asked),
        Err(_) => {
            log::info!("password resets of one address are over the limit; this one is not sent");
            return Ok(());
        }
    }
    let config = state.effective().await?;
    let (code, hash) = new_code();
    let link = match &config.reset_page {
        Some(page) => format!("{page}?code={code}"),
        None => format!("{}/signin?code={code}", state.public_url()),
    };
    let ttl_secs = state.settings.auth.reset_code_ttl.0;
    let delivery = ResetDelivery {
        webhook: config.webhook_user_forgot_password.clone(),
        mail: state
            .settings
            .smtp
            .host
            .is_some()
            .then(|| (config.mail_subject.clone(), config.mail_body.clone())),
        keep: state.settings.fixtures.api,
        // A message is not worth sending once its code has expired; until then it is retried.
        give_up_after: state.settings.webhooks.give_up_after.0.min(ttl_secs),
    };
    // The code expires on the server's (movable) clock; the outbox keeps the real one.
    let now = now_ms(state);
    let sent_at = crate::db::users::now_ms();
    let expires = now.saturating_add(ttl_secs as i64 * 1000);
    let outcome = state
        .store
        .write(move |ops| {
            let Some(user) = ops.find_by_email(email.as_str())? else {
                ops.reset_code_decoy(&hash, now)?;
                return Ok::<_, StoreError>(None);
            };
            ops.reset_code_put(&user.id, &hash, now, expires)?;
            let reset = Reset {
                user: &user,
                code: &code,
                link: &link,
                created: sent_at,
            };
            let sent = outbox::forgot_password(ops, &delivery, &reset)?;
            Ok(Some((user.id, sent)))
        })
        .await?;
    match outcome {
        Some((id, 0)) => log::warn!(
            "user {id} asked for a password reset, and nothing can deliver it: set WEBHOOK_USER_FORGOT_PASSWORD (or webhooks.user_forgot_password) or smtp.host"
        ),
        Some(_) => state.outbox_wake.notify_one(),
        None => {}
    }
    Ok(())
}

/// `POST /user/forgot-password/reset`: sets the password of the code's user and uses the code
/// up. 400 [`INVALID_CODE`] for an unknown, used or expired code (each counted against the
/// client like a failed sign-in). A reset clears the user's failed sign-ins and, unless turned
/// off, refuses the user's earlier tokens.
pub async fn reset(
    state: &AppState,
    code: &str,
    password: Password,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    let attempt = state
        .limiter
        .begin(&[], 1, address)
        .await?
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let hash = code_hash(code);
    let now = now_ms(state);
    // The code is checked before paying for a hash, and used up in the write that sets it.
    let peeked = hash.clone();
    if state
        .store
        .read(move |ops| ops.reset_code_peek(&peeked, now))
        .await?
        .is_none()
    {
        drop(attempt);
        return Err(ApiError::BadRequest(INVALID_CODE.into()));
    }
    let new_hash = match state.hasher.hash(password).await {
        Ok(h) => h,
        Err(e) => {
            state.limiter.abandon(attempt).await;
            return Err(e);
        }
    };
    let revoke = state.password_change_revocation();
    let user = state
        .store
        .write(move |ops| {
            let Some(id) = ops.reset_code_take(&hash, now)? else {
                return Ok(None);
            };
            let mtime = crate::db::users::now_ms();
            ops.set_password_hash(&id, &new_hash, mtime, revoke)?;
            ops.find_by_id(&id)
        })
        .await?;
    let Some(user) = user else {
        drop(attempt);
        return Err(ApiError::BadRequest(INVALID_CODE.into()));
    };
    state.limiter.succeeded(attempt, &[], &[]).await;
    let id_name = format!("id:{}", user.id);
    state
        .limiter
        .forgive(&[
            &username_name(&user.username),
            &email_name(&user.email),
            &id_name,
        ])
        .await;
    log::info!("user {} reset the password with a code", user.id);
    Ok(())
}
