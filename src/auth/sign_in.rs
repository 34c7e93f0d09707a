//! What a sign-in is: the names it gives, the brute-force limit on them, the users they name,
//! the password check, and the token. The route only parses the body and answers.

use std::net::IpAddr;

use crate::auth::limiter::Checked;
use crate::db::users;
use crate::domain::{Email, Password, check_name_length};
use crate::error::ApiError;
use crate::state::AppState;

/// One answer for unknown users and wrong passwords alike, so neither can be told apart.
pub const INVALID_CREDENTIALS: &str = "Invalid credentials";

/// A sign-in request: a password and at least one of username and email.
#[derive(Debug)]
pub struct Credentials {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Password,
}

/// How a sign-in ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    RateLimited,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::RateLimited => "rate_limited",
        }
    }
}

/// The limiter's name for a username, and for an email: an email is folded the way the store
/// matches it (without regard to case), so changing its case does not buy more guesses.
pub fn username_name(username: &str) -> String {
    format!("u:{username}")
}

pub fn email_name(email: &str) -> String {
    format!("e:{}", Email::key_of(email))
}

/// Signs in: the user and a fresh token, or 403 [`INVALID_CREDENTIALS`], 429 when a name or
/// the address is locked out, 400 for a name longer than any stored one can be.
///
/// Each field names a candidate (the user with that username, the user with that email); the
/// password is checked against every candidate, a dummy hash standing in for a missing one,
/// so the work depends only on how many fields were given; the first that matches, username
/// before email, signs in. For the limit, each field is a name of its own, charged before any
/// bcrypt work, and a locked one refuses the whole request. A check that failed against a
/// stored user keeps its charge even when another candidate matched: naming a victim beside
/// one's own account is a guess at the victim, whatever else succeeds.
pub async fn sign_in(
    state: &AppState,
    credentials: Credentials,
    address: Option<IpAddr>,
) -> Result<(users::User, String), ApiError> {
    let Credentials {
        username,
        email,
        password,
    } = credentials;
    // No stored name is longer; refusing here keeps megabyte names out of every table.
    if let Some(u) = &username {
        check_name_length("username", u)?;
    }
    if let Some(e) = &email {
        check_name_length("email", e)?;
    }
    let names: Vec<String> = username
        .iter()
        .map(|u| username_name(u))
        .chain(email.iter().map(|e| email_name(e)))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // The address is charged a guess per distinct text: the sign-in page, which sends what a
    // person typed as both fields, makes one guess.
    let guesses = match (&username, &email) {
        (Some(u), Some(e)) if u != e => 2,
        _ => 1,
    };
    let attempt = state
        .limiter
        .begin(&names, guesses, address)
        .await?
        .map_err(|retry_after| {
            state.count_sign_in(Outcome::RateLimited.label());
            ApiError::TooManyRequests { retry_after }
        })?;

    let found = state
        .store
        .read(move |ops| {
            let mut found = Vec::with_capacity(2);
            if let Some(u) = &username {
                found.push(ops.find_by_username(u)?);
            }
            if let Some(e) = &email {
                found.push(ops.find_by_email(e)?);
            }
            Ok(found)
        })
        .await;
    let mut candidates = match found {
        Ok(c) => c,
        Err(e) => {
            state.limiter.abandon(attempt).await;
            return Err(e.into());
        }
    };
    let hashes = candidates
        .iter()
        .map(|c| c.as_ref().map(|u| u.password_hash.0.clone()))
        .collect();
    let offered = password.clone();
    let matched = match state.hasher.verify_each(password, hashes).await {
        Ok(m) => m,
        // The hash queue was full: no password was checked, so nothing counts as a guess.
        Err(e) => {
            state.limiter.abandon(attempt).await;
            return Err(e);
        }
    };
    let checked: Vec<Checked> = candidates
        .iter()
        .zip(&matched)
        .map(|(c, &ok)| match (c, ok) {
            (Some(_), true) => Checked::Matched,
            (Some(_), false) => Checked::Failed,
            (None, _) => Checked::NoUser,
        })
        .collect();
    let Some(first) = checked.iter().position(|c| *c == Checked::Matched) else {
        // Every charge stays: a failure for each name and the address.
        drop(attempt);
        state.count_sign_in(Outcome::Failure.label());
        return Err(ApiError::Forbidden(INVALID_CREDENTIALS.into()));
    };
    let matched = candidates
        .get_mut(first)
        .and_then(Option::take)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("matched candidate vanished")))?;
    // The password was checked against the user as read before the hash, which takes long:
    // a password change or a sign-out everywhere may have landed meanwhile. The user is read
    // again, and the token is issued against that: a changed hash is a failed sign-in (the
    // password that matched is no longer the password), and the token's `iat` is at least
    // the latest revocation second, or a revocation after this read refuses it.
    let id = matched.id.clone();
    let user = match state.store.user(id).await {
        Ok(u) if u.password_hash == matched.password_hash => u,
        Ok(_) | Err(crate::db::StoreError::NotFound) => {
            drop(attempt);
            state.count_sign_in(Outcome::Failure.label());
            return Err(ApiError::Forbidden(INVALID_CREDENTIALS.into()));
        }
        Err(e) => {
            state.limiter.abandon(attempt).await;
            return Err(e.into());
        }
    };
    // Revocations in quick succession push the second from which tokens count ahead of the
    // clock; a token issued now would be refused at once, so ask to come back instead.
    let ahead = user.tokens_since - state.tokens.clock.now() as i64;
    if ahead >= crate::auth::token::TIME_TOLERANCE_SECS as i64 {
        state.limiter.abandon(attempt).await;
        return Err(ApiError::ServiceUnavailable(
            "The account was just signed out everywhere; try again in a few seconds".into(),
        ));
    }
    state.limiter.succeeded(attempt, &names, &checked).await;
    state.count_sign_in(Outcome::Success.label());
    let user = upgrade(state, user, offered).await;
    let token = state
        .tokens
        .issue_since(user.id.as_str(), &user.scope, user.tokens_since)
        .map_err(ApiError::internal)?;
    Ok((user, token))
}

/// After a sign-in that matched a foreign hash (an imported argon2, scrypt or PBKDF2) or bcrypt
/// of a lower cost than `auth.bcrypt_cost`: the password is hashed again with bcrypt at the
/// configured cost and stored, unless the hash changed meanwhile. A failure here costs the
/// sign-in nothing (it is logged and tried again at the next one).
async fn upgrade(state: &AppState, mut user: users::User, password: Password) -> users::User {
    let cost = state.settings.auth.bcrypt_cost;
    let Some(from) = crate::auth::hashes::upgrade_from(&user.password_hash.0, cost) else {
        return user;
    };
    let new = match state.hasher.hash(password).await {
        Ok(h) => h,
        Err(e) => {
            log::warn!("user {}: the stored hash was not upgraded: {e}", user.id);
            return user;
        }
    };
    let (id, old, stored) = (user.id.clone(), user.password_hash.0.clone(), new.clone());
    match state
        .store
        .write(move |ops| ops.upgrade_password_hash(&id, &old, &stored))
        .await
    {
        Ok(true) => {
            if let Some(m) = &state.metrics {
                m.rehash(from.label());
            }
            log::info!("user {}: {} hash replaced by bcrypt", user.id, from.label());
            user.password_hash = users::PasswordHash(new);
        }
        Ok(false) => {}
        Err(e) => log::warn!("user {}: the stored hash was not upgraded: {e}", user.id),
    }
    user
}

/// Checks the caller's current password before a change, under the same limit as sign-in:
/// the user's id is the name, so a stolen token cannot be turned into the password by
/// guessing. 403 for a wrong password, 429 when locked out.
pub async fn check_current_password(
    state: &AppState,
    user: &users::User,
    password: Password,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    let name = format!("id:{}", user.id);
    let attempt = state
        .limiter
        .begin(&[&name], 1, address)
        .await?
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    match state
        .hasher
        .verify_each(password, vec![Some(user.password_hash.0.clone())])
        .await
    {
        Ok(ok) if ok.first() == Some(&true) => {
            state
                .limiter
                .succeeded(attempt, &[&name], &[Checked::Matched])
                .await;
            Ok(())
        }
        Ok(_) => Err(ApiError::Forbidden("Old password is incorrect".into())),
        Err(e) => {
            state.limiter.abandon(attempt).await;
            Err(e)
        }
    }
}
