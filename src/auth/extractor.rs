//! Auth as a type: a handler that takes `AuthUser` cannot run without a valid token.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Bytes;
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
/// A genuine token issued before its user's last password change or sign-out everywhere.
pub const REVOKED_TOKEN: &str = "Token revoked";

/// The caller, as its token says, checked against the store: the user exists and the token
/// was issued after the user's last revocation (a password change, a sign-out everywhere).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub scope: Vec<String>,
    /// The user's public JSON as stored now (what `GET /user` answers).
    pub public_json: Bytes,
}

impl AuthUser {
    pub fn has_any_scope(&self, wanted: &[String]) -> bool {
        self.scope.iter().any(|s| wanted.contains(s))
    }
}

/// What a verified token says.
struct Verified {
    id: UserId,
    scope: Vec<String>,
    /// `iat`, when the token has one.
    issued: Option<u64>,
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

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))
}

fn verify(state: &AppState, token: &str) -> Result<Verified, ApiError> {
    let claims = state.tokens.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::Unauthorized(EXPIRED_TOKEN.into()),
        TokenError::NotYetValid => ApiError::Unauthorized(NOT_YET_VALID_TOKEN.into()),
        TokenError::Invalid => ApiError::Unauthorized(INVALID_TOKEN.into()),
    })?;
    let id = UserId::parse(&claims.custom.id)
        .map_err(|_| ApiError::Unauthorized(INVALID_TOKEN.into()))?;
    Ok(Verified {
        id,
        scope: claims.custom.scope,
        issued: claims.issued_at.map(|t| t.as_secs()),
    })
}

/// Whether a token issued at `issued` (seconds) is still good for a user whose tokens before
/// `since` are refused. A token without `iat` is good only while nothing was revoked.
pub fn issued_in_time(issued: Option<u64>, since: i64) -> bool {
    since <= 0 || issued.is_some_and(|t| i64::try_from(t).is_ok_and(|t| t >= since))
}

/// Verifies the token and checks it against the stored user.
async fn authenticate(state: &web::Data<AppState>, token: &str) -> Result<AuthUser, ApiError> {
    let v = verify(state, token)?;
    let entry = state.store.user_entry(&v.id).await?;
    if !issued_in_time(v.issued, entry.tokens_since) {
        return Err(ApiError::Unauthorized(REVOKED_TOKEN.into()));
    }
    Ok(AuthUser {
        id: v.id,
        scope: v.scope,
        public_json: entry.json,
    })
}

type Boxed<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(|t| t.map(str::to_owned));
        let state = state(req);
        Box::pin(async move {
            let token = token?.ok_or_else(|| ApiError::Unauthorized(MISSING_AUTH.into()))?;
            authenticate(&state?, &token).await
        })
    }
}

/// A caller that may be anonymous: `None` without an `Authorization` header, but a header
/// that is there must hold a valid, unrevoked token. A token whose user is gone passes as
/// anonymous would not: the route decides (so `None` is only "no header").
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequest for MaybeAuthUser {
    type Error = ApiError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(|t| t.map(str::to_owned));
        let state = state(req);
        Box::pin(async move {
            let Some(token) = token? else {
                return Ok(MaybeAuthUser(None));
            };
            let state = state?;
            match authenticate(&state, &token).await {
                Ok(user) => Ok(MaybeAuthUser(Some(user))),
                // The token is genuine but its user was deleted: as before revocation existed,
                // the route sees the caller and answers for the missing user itself.
                Err(ApiError::NotFound(_)) => {
                    let v = verify(&state, &token)?;
                    Ok(MaybeAuthUser(Some(AuthUser {
                        id: v.id,
                        scope: v.scope,
                        public_json: Bytes::new(),
                    })))
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// A caller whose stored user has the `admin` scope. The scope is read from the database, not
/// the token, so taking `admin` away takes effect at once.
#[derive(Debug, Clone)]
pub struct AdminUser(pub crate::db::users::User);

pub const ADMIN_SCOPE: &str = "admin";

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(|t| t.map(str::to_owned));
        let state = state(req);
        Box::pin(async move {
            let token = token?.ok_or_else(|| ApiError::Unauthorized(MISSING_AUTH.into()))?;
            let state = state?;
            let caller = verify(&state, &token)?;
            let user = state.store.user(caller.id).await?;
            if !issued_in_time(caller.issued, user.tokens_since) {
                return Err(ApiError::Unauthorized(REVOKED_TOKEN.into()));
            }
            if !user.scope.iter().any(|s| s == ADMIN_SCOPE) {
                return Err(ApiError::Forbidden(INSUFFICIENT_SCOPE.into()));
            }
            Ok(AdminUser(user))
        })
    }
}
