//! HS256 tokens with the engine's claims `{id, scope, iat, exp}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use jwt_simple::JWTError;
use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};

/// Clock skew forgiven when checking `exp`, `nbf` and `iat` (jwt-simple's default is 15 minutes,
/// far too lenient for expiry enforced "to the second").
pub const TIME_TOLERANCE_SECS: u64 = 5;
/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Verified tokens remembered, so a client that sends the same token with every request pays
/// for the signature once; the memory is emptied when it is full.
const VERIFIED_TOKENS: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserClaims {
    pub id: String,
    pub scope: Vec<String>,
}

/// Why a token was refused; the cases the API tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    /// Signed by this server, but its `iat` or `nbf` is still ahead of the server's clock
    /// (issued by a server whose clock runs ahead, or the test clock was moved back).
    NotYetValid,
    Invalid,
}

/// The last second a token time can name: jwt-simple counts time in 1/2^32 s in a u64, so
/// 2^32 - 1 s after the epoch (February 2106). Later `exp` values are capped here.
pub const LAST_TOKEN_SECOND: u64 = u32::MAX as u64;
/// The latest the (movable) clock may be set to, leaving room for the tolerance.
pub const LATEST_CLOCK_SECS: u64 = LAST_TOKEN_SECOND - 86_400;

/// The server's notion of now, in seconds since the epoch. It can be moved (test fixtures
/// use this to expire tokens without waiting).
#[derive(Debug, Default)]
pub struct ServerClock {
    offset_secs: AtomicI64,
}

impl ServerClock {
    /// Now, in seconds, between [`TIME_TOLERANCE_SECS`] (jwt-simple refuses every token
    /// before that) and [`LATEST_CLOCK_SECS`].
    pub fn now(&self) -> u64 {
        let moved = Self::real().saturating_add(self.offset_secs.load(Ordering::Relaxed));
        moved.clamp(TIME_TOLERANCE_SECS as i64, LATEST_CLOCK_SECS as i64) as u64
    }
    /// The machine's clock, in seconds since the epoch.
    pub fn real() -> i64 {
        Clock::now_since_epoch().as_secs() as i64
    }
    pub fn set_offset(&self, secs: i64) {
        self.offset_secs.store(secs, Ordering::Relaxed);
    }
    pub fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }
}

pub struct TokenService {
    key: HS256Key,
    lifetime_secs: u64,
    pub clock: ServerClock,
    /// Tokens whose signature checked out, by their exact text; their times are checked again
    /// on every use, against the (movable) clock.
    verified: Mutex<HashMap<Box<str>, JWTClaims<UserClaims>>>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("key", &"[redacted]")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

impl TokenService {
    /// `secret`'s bytes are the HMAC key, as Node's `jsonwebtoken` uses a string secret.
    pub fn new(secret: &[u8], lifetime_secs: u64) -> Self {
        Self {
            key: HS256Key::from_bytes(secret),
            lifetime_secs,
            clock: ServerClock::default(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    /// Issues a token valid for the configured lifetime.
    pub fn issue(&self, id: &str, scope: &[String]) -> anyhow::Result<String> {
        self.issue_for(id, scope, self.lifetime_secs, 0)
    }

    /// Issues a token for a user whose tokens issued before second `since` are refused
    /// (revocation): its `iat` is never earlier, so a sign-in in the very second of a password
    /// change works. `since` is a second or so ahead of now, within the tolerance.
    pub fn issue_since(&self, id: &str, scope: &[String], since: i64) -> anyhow::Result<String> {
        self.issue_for(id, scope, self.lifetime_secs, since)
    }

    /// Issues a token valid for `lifetime_secs` from the server's now (or from `since`, when
    /// that is up to a second later).
    pub fn issue_for(
        &self,
        id: &str,
        scope: &[String],
        lifetime_secs: u64,
        since: i64,
    ) -> anyhow::Result<String> {
        let now = self.clock.now();
        let now = match u64::try_from(since) {
            Ok(since) if since > now && since < now + TIME_TOLERANCE_SECS => since,
            _ => now,
        };
        // Times are set here, from the server's clock; jwt-simple's own are replaced.
        let mut claims = Claims::with_custom_claims(
            UserClaims {
                id: id.to_owned(),
                scope: scope.to_vec(),
            },
            Duration::from_secs(0),
        );
        claims.issued_at = Some(Duration::from_secs(now));
        claims.invalid_before = Some(Duration::from_secs(now));
        let exp = now.saturating_add(lifetime_secs).min(LAST_TOKEN_SECOND);
        claims.expires_at = Some(Duration::from_secs(exp));
        self.key.authenticate(claims)
    }

    /// The second from which tokens issued now are accepted after a revocation: the next one,
    /// so every token issued up to this moment (same second included) is refused.
    pub fn revocation_second(&self) -> i64 {
        self.clock.now() as i64 + 1
    }

    /// Verifies signature, algorithm (HS256 only) and times; `exp` is required.
    pub fn verify(&self, token: &str) -> Result<JWTClaims<UserClaims>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let now = self.clock.now();
        if let Some(claims) = self.remembered(token, now) {
            return Ok(claims);
        }
        let claims = self.verify_signature_and_times(token, now)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
            verified.insert(token.into(), claims.clone());
        }
        Ok(claims)
    }

    /// The claims of a token verified before, if its times still hold at `now` (the same
    /// rules and tolerance as jwt-simple's). Anything else goes through the full check, which
    /// also tells an expired token from an invalid one.
    fn remembered(&self, token: &str, now: u64) -> Option<JWTClaims<UserClaims>> {
        let verified = self.verified.lock().ok()?;
        let claims = verified.get(token)?;
        let tolerance = TIME_TOLERANCE_SECS;
        let in_time = claims
            .issued_at
            .is_none_or(|t| t.as_secs() <= now + tolerance)
            && claims
                .invalid_before
                .is_none_or(|t| t.as_secs() <= now + tolerance)
            && claims
                .expires_at
                .is_some_and(|t| now >= tolerance && now - tolerance <= t.as_secs());
        in_time.then(|| claims.clone())
    }

    fn verify_signature_and_times(
        &self,
        token: &str,
        now: u64,
    ) -> Result<JWTClaims<UserClaims>, TokenError> {
        let options = VerificationOptions {
            time_tolerance: Some(Duration::from_secs(TIME_TOLERANCE_SECS)),
            max_token_length: Some(MAX_TOKEN_BYTES),
            max_header_length: Some(MAX_TOKEN_BYTES),
            artificial_time: Some(Duration::from_secs(now)),
            accept_future: false,
            ..Default::default()
        };
        match self.key.verify_token::<UserClaims>(token, Some(options)) {
            Ok(claims) if claims.expires_at.is_some() && times_are_whole_seconds(token) => {
                Ok(claims)
            }
            Ok(_) => Err(TokenError::Invalid),
            // jwt-simple checks times only after the signature: these tokens are genuine.
            Err(e) => match e.downcast_ref::<JWTError>() {
                Some(JWTError::TokenHasExpired) => Err(TokenError::Expired),
                Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => {
                    Err(TokenError::NotYetValid)
                }
                _ => Err(TokenError::Invalid),
            },
        }
    }
}

/// Whether the token's `exp` (and `iat`, `nbf` where given) are whole seconds that a token
/// time can name. jwt-simple reads a float, or a number past 2^32 s, into a time that wraps or
/// rounds; such a token from another issuer with the same secret could never expire, so it is
/// refused. Called only after the signature checked out.
fn times_are_whole_seconds(token: &str) -> bool {
    let Some(payload) = token.split('.').nth(1) else {
        return false;
    };
    let Ok(bytes) = Base64UrlSafeNoPadding::decode_to_vec(payload, None) else {
        return false;
    };
    let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice(&bytes) else {
        return false;
    };
    ["exp", "iat", "nbf"].iter().all(|k| match claims.get(*k) {
        None => *k != "exp",
        Some(v) => v.as_u64().is_some_and(|t| t <= LAST_TOKEN_SECOND),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        TokenService::new(b"a-test-secret-of-enough-length", 3600)
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_engine_claims() {
        let s = service();
        let token = s
            .issue("5c88c7cc04a917256c726c3d", &["user".into()])
            .expect("issue");
        let claims = s.verify(&token).expect("valid");
        assert_eq!(claims.custom.id, "5c88c7cc04a917256c726c3d");
        assert_eq!(claims.custom.scope, vec!["user".to_string()]);
        let iat = claims.issued_at.expect("iat").as_secs();
        let exp = claims.expires_at.expect("exp").as_secs();
        assert_eq!(exp - iat, 3600);
    }

    #[test]
    fn expiry_is_enforced_within_the_tolerance_not_minutes() {
        let s = service();
        let token = s.issue("5c88c7cc04a917256c726c3d", &[]).expect("issue");
        s.clock.set_offset(3600 + TIME_TOLERANCE_SECS as i64 - 1);
        assert!(s.verify(&token).is_ok());
        s.clock.set_offset(3600 + TIME_TOLERANCE_SECS as i64 + 2);
        assert_eq!(s.verify(&token).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn a_remembered_token_is_held_to_its_times_on_every_use() {
        let s = service();
        let token = s.issue("5c88c7cc04a917256c726c3d", &[]).expect("issue");
        assert!(s.verify(&token).is_ok());
        // Before its `iat`/`nbf` (the clock moved back): refused, though verified before.
        s.clock.set_offset(-(TIME_TOLERANCE_SECS as i64) - 2);
        assert_eq!(s.verify(&token).unwrap_err(), TokenError::NotYetValid);
        s.clock.set_offset(0);
        assert!(s.verify(&token).is_ok());
        s.clock.set_offset(3600 + TIME_TOLERANCE_SECS as i64 + 2);
        assert_eq!(s.verify(&token).unwrap_err(), TokenError::Expired);
        // One character changed is another token: checked in full, and refused.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        s.clock.set_offset(0);
        let forged = String::from_utf8(forged).expect("ascii");
        assert_eq!(s.verify(&forged).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn lifetimes_past_2106_are_capped_not_wrapped() {
        let s = service();
        let token = s
            .issue_for("5c88c7cc04a917256c726c3d", &[], 100 * 365 * 86_400, 0)
            .expect("issue");
        let claims = s.verify(&token).expect("valid");
        assert_eq!(claims.expires_at.expect("exp").as_secs(), LAST_TOKEN_SECOND);
        // The clock cannot be moved past the last time a token can name.
        s.clock.set_offset(i64::MAX);
        assert_eq!(s.clock.now(), LATEST_CLOCK_SECS);
        let late = s.issue("5c88c7cc04a917256c726c3d", &[]).expect("issue");
        assert!(s.verify(&late).is_ok());
        s.clock.set_offset(i64::MIN);
        assert_eq!(s.clock.now(), TIME_TOLERANCE_SECS);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let other = TokenService::new(b"another-secret-entirely", 3600);
        let token = other.issue("5c88c7cc04a917256c726c3d", &[]).expect("issue");
        assert_eq!(service().verify(&token).unwrap_err(), TokenError::Invalid);
    }
}
