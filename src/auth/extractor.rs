//! Auth as a type: a handler that takes `AuthUser` cannot run without a valid token.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use crate::auth::token::TokenError;
use crate::domain::UserId;
use crate::error::ApiError;
use crate::state::AppState;

pub const MISSING_AUTH: &str = "Missing authentication";
/// The appmixer CLI matches this text exactly.
pub const INVALID_TOKEN: &str = "Invalid JWT: key or signature is invalid";
pub const EXPIRED_TOKEN: &str = "Token expired";
pub const NOT_YET_VALID_TOKEN: &str = "Token not yet valid";
pub const INSUFFICIENT_SCOPE: &str = "Insufficient scope";

/// The caller, as its token says.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub scope: Vec<String>,
}

impl AuthUser {
    pub fn has_any_scope(&self, wanted: &[String]) -> bool {
        self.scope.iter().any(|s| wanted.contains(s))
    }
}

/// The token from `Authorization: Bearer …` (scheme word in any case), if the header is there.
fn bearer(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized(INVALID_TOKEN.into()))?;
    let mut parts = text.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default().trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthorized(MISSING_AUTH.into()));
    }
    Ok(Some(token))
}

fn verify(req: &HttpRequest, token: &str) -> Result<AuthUser, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
    let claims = state.tokens.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::Unauthorized(EXPIRED_TOKEN.into()),
        TokenError::NotYetValid => ApiError::Unauthorized(NOT_YET_VALID_TOKEN.into()),
        TokenError::Invalid => ApiError::Unauthorized(INVALID_TOKEN.into()),
    })?;
    let id = UserId::parse(&claims.custom.id)
        .map_err(|_| ApiError::Unauthorized(INVALID_TOKEN.into()))?;
    Ok(AuthUser {
        id,
        scope: claims.custom.scope,
    })
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(bearer(req).and_then(|token| match token {
            Some(token) => verify(req, token),
            None => Err(ApiError::Unauthorized(MISSING_AUTH.into())),
        }))
    }
}

/// A caller that may be anonymous: `None` without an `Authorization` header, but a header
/// that is there must hold a valid token.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequest for MaybeAuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(bearer(req).and_then(|token| match token {
            Some(token) => verify(req, token).map(|u| MaybeAuthUser(Some(u))),
            None => Ok(MaybeAuthUser(None)),
        }))
    }
}

/// A caller whose stored user has the `admin` scope. The scope is read from the database, not
/// the token, so taking `admin` away takes effect at once.
#[derive(Debug, Clone)]
pub struct AdminUser(pub crate::db::users::User);

pub const ADMIN_SCOPE: &str = "admin";

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = bearer(req).and_then(|token| match token {
            Some(token) => verify(req, token),
            None => Err(ApiError::Unauthorized(MISSING_AUTH.into())),
        });
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let caller = caller?;
            let state = state
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
            let user = state.store.user(caller.id).await?;
            if !user.scope.iter().any(|s| s == ADMIN_SCOPE) {
                return Err(ApiError::Forbidden(INSUFFICIENT_SCOPE.into()));
            }
            Ok(AdminUser(user))
        })
    }
}
