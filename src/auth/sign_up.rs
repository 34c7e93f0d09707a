//! What creating an account through `POST /user` is: who may, the limit on names it reveals,
//! the hash, the store, the first token.

use std::net::IpAddr;

use serde_json::Value;

use crate::auth::extractor::{AuthUser, INSUFFICIENT_SCOPE, MISSING_AUTH};
use crate::db::StoreError;
use crate::db::users::{DEFAULT_PLAN, DEFAULT_SCOPE, User};
use crate::domain::{Email, Password, UserId, Username, Vendor};
use crate::error::ApiError;
use crate::state::AppState;

/// A checked request for an account.
#[derive(Debug)]
pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub password: Password,
    pub metadata: Value,
    pub asked: Asked,
}

/// What a creator may ask for beyond a plain account; `None` is "the default".
#[derive(Debug, Default)]
pub struct Asked {
    pub scope: Option<Vec<String>>,
    pub plan: Option<String>,
    pub is_active: Option<bool>,
    pub vendor: Option<Vendor>,
}

impl Asked {
    /// Whether this asks for more than a new user gets anyway (`default_vendor` being the
    /// vendor it would get).
    fn beyond_defaults(&self, default_vendor: Option<&Vendor>) -> bool {
        self.scope
            .as_ref()
            .is_some_and(|s| s.as_slice() != [DEFAULT_SCOPE])
            || self.plan.as_ref().is_some_and(|p| p != DEFAULT_PLAN)
            || self.is_active == Some(true)
            || self
                .vendor
                .as_ref()
                .is_some_and(|v| Some(v) != default_vendor)
    }
}

/// Creates the user and signs it in: the stored user and a token. 401/403 when
/// `tenant.api_user_create_scope` asks for a caller with a scope, 409 when a name is taken,
/// 429 while the address is locked out.
pub async fn sign_up(
    state: &AppState,
    new_user: NewUser,
    caller: Option<AuthUser>,
    address: Option<IpAddr>,
) -> Result<(User, String), ApiError> {
    let config = state.effective().await?;
    let needed = &config.api_user_create_scope;
    if !needed.is_empty() {
        let Some(caller) = &caller else {
            return Err(ApiError::Unauthorized(MISSING_AUTH.into()));
        };
        // The stored user's scope, not the token's: a demoted or deleted caller loses the
        // right at once, as on the admin routes.
        let stored = state.store.user(caller.id.clone()).await?;
        if !stored.scope.iter().any(|s| needed.contains(s)) {
            return Err(ApiError::Forbidden(INSUFFICIENT_SCOPE.into()));
        }
    }
    // "Username already taken" tells a client something: such answers count against its
    // address like failed sign-ins, so names cannot be harvested at thousands a second.
    if let Some(retry_after) = state.limiter.address_locked(address).await? {
        return Err(ApiError::TooManyRequests { retry_after });
    }
    let NewUser {
        username,
        email,
        password,
        metadata,
        asked,
    } = new_user;
    // Scope, plan, activation or another vendor at creation are an administrator's to give:
    // never silently dropped, never granted to anyone else.
    if asked.beyond_defaults(config.default_user_vendor.as_ref()) {
        let admin = match &caller {
            Some(c) => state
                .store
                .user(c.id.clone())
                .await
                .map(|u| u.scope.iter().any(|s| s == "admin"))
                .or_else(|e| match e {
                    StoreError::NotFound => Ok(false),
                    e => Err(e),
                })?,
            None => false,
        };
        if !admin {
            return Err(ApiError::Forbidden(INSUFFICIENT_SCOPE.into()));
        }
    }
    // Refuse a taken name before paying for a hash; the unique indexes still decide races.
    let (u, e) = (username.clone(), email.clone());
    if let Some(taken) = state
        .store
        .read(move |ops| ops.taken(u.as_str(), e.as_str()))
        .await?
    {
        state.limiter.charge_address(address).await;
        return Err(StoreError::Taken(taken).into());
    }
    let hash = state.hasher.hash(password).await?;
    let defaults = User::new(
        UserId::generate(),
        username.as_str().to_owned(),
        email.as_str().to_owned(),
        hash,
        config.default_user_vendor,
    );
    let user = User {
        metadata,
        scope: asked.scope.unwrap_or(defaults.scope.clone()),
        plan: asked.plan.unwrap_or(defaults.plan.clone()),
        is_active: asked.is_active.unwrap_or(defaults.is_active),
        vendor: asked.vendor.or(defaults.vendor.clone()),
        ..defaults
    };
    let webhooks = state.settings.webhooks.clone();
    let created = state
        .store
        .write(move |ops| {
            ops.insert_user(&user)?;
            let queued = crate::outbox::user_created(ops, &webhooks, &user)?;
            Ok::<_, StoreError>((user, queued))
        })
        .await;
    if let Err(StoreError::Taken(_)) = &created {
        state.limiter.charge_address(address).await;
    }
    let (user, queued) = created?;
    if queued {
        state.outbox_wake.notify_one();
    }
    let token = state
        .tokens
        .issue(user.id.as_str(), &user.scope)
        .map_err(ApiError::internal)?;
    Ok((user, token))
}
