//! What every request can reach: the store, keys, hashing, limits, metrics. Built once from
//! the settings by `startup`, below every route.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::limits::Limits;
use crate::auth::password::PasswordHasher;
use crate::auth::token::TokenService;
use crate::db::Store;
use crate::domain::UserId;
use crate::fixtures;
use crate::settings::Settings;
use crate::tls::ReloadableCert;

/// What every request can reach.
#[derive(Debug)]
pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub tokens: TokenService,
    pub hasher: PasswordHasher,
    pub deletions: DeleteTickets,
    /// Wakes the outbox worker when a request has just recorded a message.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Where people reach this server (`server.public_url`, else the listener's address,
    /// known once it is bound).
    pub public_url: std::sync::OnceLock<String>,
    pub limiter: Limits,
    pub trusted_proxies: crate::net::TrustedProxies,
    /// The certificate in use when `server.tls` is set.
    pub tls: Option<Arc<ReloadableCert>>,
    /// Counters and histograms when `metrics.enabled`.
    pub metrics: Option<crate::metrics::Metrics>,
}

impl AppState {
    /// Opens the database and prepares keys and hashing; no socket yet.
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::open(&settings.database)?;
        let secret = crate::secret::resolve(&settings, &store)?;
        let report = fixtures::apply(
            &store,
            &settings.users,
            settings.auth.bcrypt_cost,
            settings.tenant.default_user_vendor.as_ref(),
            &settings.webhooks,
        )
        .map_err(|e| anyhow::anyhow!("fixture users: {e}"))?;
        if !settings.users.is_empty() {
            log::info!(
                "fixture users: {} created, {} updated, {} unchanged",
                report.created,
                report.updated,
                report.unchanged
            );
        }
        let tokens = TokenService::new(secret.as_bytes(), settings.auth.token_expiration.0);
        let hasher = PasswordHasher::new(
            settings.auth.bcrypt_cost,
            settings.hash_concurrency(),
            settings.auth.hash_queue,
        )?;
        if settings.auth.bcrypt_cost < 10 {
            log::warn!(
                "auth.bcrypt_cost is {}: fine for tests, too weak for real passwords (use 10 or more)",
                settings.auth.bcrypt_cost
            );
        }
        // In memory, or in the database when replicas share it.
        let limiter = Limits::new(
            &store,
            settings.auth.max_failed_attempts,
            Duration::from_secs(settings.auth.lockout_window.0),
        )?;
        Ok(Self {
            store,
            tokens,
            hasher,
            deletions: DeleteTickets::new(&secret),
            outbox_wake: Arc::default(),
            public_url: std::sync::OnceLock::new(),
            limiter,
            trusted_proxies: crate::net::TrustedProxies::parse(
                &settings.server.trusted_proxies,
                &settings.server.forwarded_header,
            )
            .map_err(anyhow::Error::msg)?,
            metrics: settings.metrics.enabled.then(crate::metrics::Metrics::new),
            tls: match &settings.server.tls {
                Some(t) => Some(ReloadableCert::open(&t.cert, &t.key)?),
                None => None,
            },
            settings,
        })
    }
}

impl AppState {
    /// Where people reach this server, for links in messages.
    pub fn public_url(&self) -> String {
        if let Some(url) = &self.settings.server.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        self.public_url.get().cloned().unwrap_or_else(|| {
            format!(
                "http://{}:{}",
                self.settings.server.host, self.settings.server.port
            )
        })
    }

    /// The revocation second a password change made now sets, unless
    /// `auth.revoke_on_password_change` is off.
    pub fn password_change_revocation(&self) -> Option<i64> {
        self.settings
            .auth
            .revoke_on_password_change
            .then(|| self.tokens.revocation_second())
    }

    /// The settings with the keys stored through `/config` over them.
    pub async fn effective(
        &self,
    ) -> Result<crate::system_config::Effective, crate::db::StoreError> {
        let stored = self.store.config().await?;
        Ok(crate::system_config::Effective::new(
            &self.settings,
            &stored,
        ))
    }

    /// Counts a sign-in outcome when metrics are on.
    pub fn count_sign_in(&self, outcome: &'static str) {
        if let Some(m) = &self.metrics {
            m.sign_in(outcome);
        }
    }

    /// What SIGHUP does: reload the TLS certificate and key when TLS is on.
    pub fn reload(&self) {
        match &self.tls {
            Some(cert) => match cert.reload() {
                Ok(()) => log::info!("SIGHUP: TLS certificate and key reloaded"),
                Err(e) => {
                    log::error!("SIGHUP: TLS reload failed, the old certificate stays: {e:#}")
                }
            },
            None => log::info!("SIGHUP received: nothing to reload without TLS"),
        }
    }
}

/// The tickets `DELETE /users/{id}` gives, so `GET /users/{id}/delete-status/{ticket}` can
/// answer for them. A ticket is a UUID made of 64 random bits and 64 bits of an HMAC (under
/// the token secret) of those and the user's id: any replica with the same secret knows it,
/// and nothing is kept.
pub struct DeleteTickets(crate::domain::Secret);

impl std::fmt::Debug for DeleteTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeleteTickets")
    }
}

impl DeleteTickets {
    pub fn new(secret: &str) -> Self {
        Self(crate::domain::Secret::new(secret))
    }

    fn mac(&self, nonce: &[u8; 8], user: &UserId) -> [u8; 8] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"delete-ticket\0");
        mac.update(nonce);
        mac.update(user.as_str().as_bytes());
        let mut out = [0u8; 8];
        out.copy_from_slice(&mac.finalize().into_bytes()[..8]);
        out
    }

    pub fn record(&self, user: UserId) -> String {
        let nonce: [u8; 8] = rand::random();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&nonce);
        bytes[8..].copy_from_slice(&self.mac(&nonce, &user));
        uuid::Uuid::from_bytes(bytes).to_string()
    }

    pub fn knows(&self, ticket: &str, user: &UserId) -> bool {
        let Ok(uuid) = uuid::Uuid::parse_str(ticket) else {
            return false;
        };
        let bytes = uuid.as_bytes();
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&bytes[..8]);
        let expected = self.mac(&nonce, user);
        // Compared without an early exit.
        expected
            .iter()
            .zip(&bytes[8..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}
