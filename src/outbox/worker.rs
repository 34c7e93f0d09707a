//! Delivers what the outbox holds: a task in the server process that claims due messages,
//! POSTs them with the Standard Webhooks headers, and settles each (delivered, retried later
//! with exponential backoff, or given up after `webhooks.give_up_after`). A claim is a lease:
//! a process killed mid-delivery leaves the message to be sent again once the lease runs out.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::db::outbox::{Message, Settle};
use crate::db::users::now_ms;
use crate::state::AppState;

/// Deliveries in flight at once.
const IN_FLIGHT: usize = 64;
/// How often the outbox is looked at when nothing woke the worker (messages written by the
/// command line or another process, retries coming due).
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// Settled messages are kept this long (the fixture API lists them), then forgotten.
const KEEP_SETTLED_MS: i64 = 24 * 3_600_000;

/// Starts the worker on the current runtime.
pub fn spawn(state: web::Data<AppState>) {
    actix_web::rt::spawn(run(state));
}

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s, … up to an hour.
pub fn backoff_ms(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(30);
    (1000i64 << exp).min(MAX_BACKOFF_MS)
}

/// The `webhook-signature` value for a message sent at `timestamp` (seconds):
/// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The signing key a secret names: `whsec_` and base64 is decoded, anything else is the key.
pub fn signing_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

async fn run(state: web::Data<AppState>) {
    crate::tls::install_provider();
    let timeout = Duration::from_secs(state.settings.webhooks.timeout.0);
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("appmixer-auth/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log::error!("webhooks: cannot make an HTTP client, nothing will be delivered: {e}");
            return;
        }
    };
    let key = state
        .settings
        .webhooks
        .secret
        .as_ref()
        .map(|s| Arc::new(signing_key(s.expose())));
    let mailer = match mailer(&state.settings.smtp) {
        Ok(m) => m.map(Arc::new),
        Err(e) => {
            log::error!("smtp: {e:#}; mail will not be sent");
            None
        }
    };
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut last_prune = 0;
    loop {
        let now = now_ms();
        if now - last_prune > 600_000 {
            last_prune = now;
            let before = now - KEEP_SETTLED_MS;
            if let Err(e) = state.store.write(move |ops| ops.outbox_prune(before)).await {
                log::warn!("webhooks: cannot prune the outbox: {e}");
            }
        }
        // Every slot busy: wait for a quarter of them to come free (claimed together, in one
        // write), not for the next poll: a backlog, such as an import's announcements,
        // drained 64 messages a second that way.
        if slots.available_permits() == 0 {
            drop(slots.acquire_many(IN_FLIGHT as u32 / 4).await);
        }
        let due = match state.store.read(|ops| ops.outbox_next_due()).await {
            Ok(due) => due,
            Err(e) => {
                log::warn!("webhooks: cannot read the outbox: {e}");
                None
            }
        };
        let free = slots.available_permits() as u32;
        if let Some(at) = due
            && at <= now
            && free > 0
        {
            let lease_until = now + timeout.as_millis() as i64 + LEASE_MARGIN_MS;
            match state
                .store
                .write(move |ops| ops.outbox_claim(now, lease_until, free))
                .await
            {
                // Nothing claimed: another replica took them; wait like an idle worker.
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => {
                    for message in batch {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let (state, client, key) = (state.clone(), client.clone(), key.clone());
                        let mailer = mailer.clone();
                        actix_web::rt::spawn(async move {
                            let out = Out {
                                client: &client,
                                key: key.as_ref().map(|k| k.as_slice()),
                                mailer: mailer.as_deref(),
                            };
                            deliver(&state, &out, message).await;
                            drop(permit);
                        });
                    }
                    continue;
                }
                Err(e) => log::warn!("webhooks: cannot claim from the outbox: {e}"),
            }
        }
        let wait = match due {
            Some(at) if at > now => Duration::from_millis((at - now) as u64).min(POLL),
            _ => POLL,
        };
        tokio::select! {
            _ = state.outbox_wake.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
}

/// What delivers messages: the HTTP client (and signing key) for webhooks, the SMTP transport
/// for mail.
struct Out<'a> {
    client: &'a reqwest::Client,
    key: Option<&'a [u8]>,
    mailer: Option<&'a Mailer>,
}

type Mailer = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;

/// The SMTP transport `smtp` describes, if it names a host.
fn mailer(smtp: &crate::settings::SmtpSettings) -> anyhow::Result<Option<Mailer>> {
    use crate::settings::SmtpTls;
    use lettre::transport::smtp::authentication::Credentials;
    let Some(host) = &smtp.host else {
        return Ok(None);
    };
    let mut builder = match smtp.tls {
        SmtpTls::Starttls => Mailer::starttls_relay(host)?,
        SmtpTls::Tls => Mailer::relay(host)?,
        SmtpTls::None => Mailer::builder_dangerous(host),
    }
    .port(smtp.port)
    .timeout(Some(Duration::from_secs(30)));
    let password = match (&smtp.password, &smtp.password_file) {
        (Some(p), _) => Some(p.expose().to_owned()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("smtp.password_file {}: {e}", file.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    if let Some(user) = &smtp.user {
        builder = builder.credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
    }
    Ok(Some(builder.build()))
}

/// Sends a mail message (`{"to", "subject", "html"}`); the error says why not.
async fn send_mail(state: &AppState, mailer: Option<&Mailer>, m: &Message) -> Result<(), String> {
    use lettre::AsyncTransport;
    let mailer = mailer.ok_or("smtp.host is not set (any more)")?;
    let body: serde_json::Value =
        serde_json::from_str(&m.body).map_err(|e| format!("unreadable mail: {e}"))?;
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let from = state
        .settings
        .smtp
        .from
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| format!("smtp.from: {e}"))?;
    let to = text("to").parse().map_err(|e| format!("recipient: {e}"))?;
    let mail = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(text("subject"))
        .header(lettre::message::header::ContentType::TEXT_HTML)
        .body(text("html"))
        .map_err(|e| format!("cannot build the mail: {e}"))?;
    mailer
        .send(mail)
        .await
        .map(|_| ())
        .map_err(|e| format!("smtp: {e}"))
}

/// How much longer than `webhooks.timeout` a claim is leased: an attempt is cut off at
/// `timeout + LEASE_MARGIN / 2`, well before another worker may take the message again.
const LEASE_MARGIN_MS: i64 = 60_000;

async fn deliver(state: &AppState, out: &Out<'_>, m: Message) {
    let limit = Duration::from_millis(
        state.settings.webhooks.timeout.0 * 1000 + LEASE_MARGIN_MS as u64 / 2,
    );
    let failure = match tokio::time::timeout(limit, attempt(state, out, &m)).await {
        Ok(failure) => failure,
        Err(_) => Some("timed out".to_owned()),
    };
    settle(state, m, failure).await;
}

/// One attempt: `None` when delivered, else why not.
async fn attempt(state: &AppState, out: &Out<'_>, m: &Message) -> Option<String> {
    if m.target.starts_with(super::MAILTO) {
        send_mail(state, out.mailer, m).await.err()
    } else {
        let timestamp = now_ms() / 1000;
        let mut request = out
            .client
            .post(&m.target)
            .header("content-type", "application/json")
            .header("webhook-id", &m.id)
            .header("webhook-timestamp", timestamp.to_string())
            .body(m.body.clone());
        if let Some(key) = out.key
            && let Some(sig) = signature(key, &m.id, timestamp, &m.body)
        {
            request = request.header("webhook-signature", sig);
        }
        match request.send().await {
            Ok(res) if res.status().is_success() => None,
            Ok(res) => Some(format!("answered {}", res.status().as_u16())),
            // The URL may hold a token in its query: the error is logged without it.
            Err(e) => Some(describe(&e.without_url())),
        }
    }
}

/// Records how an attempt ended.
async fn settle(state: &AppState, m: Message, failure: Option<String>) {
    let now = now_ms();
    let (settle, outcome) = match failure {
        None => (Settle::Delivered, "delivered"),
        Some(error) => {
            let at = now + backoff_ms(m.attempts);
            if at > m.give_up_at {
                log::warn!(
                    "webhook {} ({}) given up after {} attempts: {error}",
                    m.id,
                    m.event,
                    m.attempts
                );
                (Settle::Abandoned { error }, "abandoned")
            } else {
                log::info!(
                    "webhook {} ({}) attempt {} failed ({error}); retrying in {} s",
                    m.id,
                    m.event,
                    m.attempts,
                    (at - now) / 1000
                );
                (Settle::Retry { at, error }, "retried")
            }
        }
    };
    if let Some(metrics) = &state.metrics {
        metrics.webhook(outcome);
    }
    let id = m.id.clone();
    // A reset code is a secret: once its message is settled it is no longer kept (the fixture
    // API's inbox, for test suites, keeps it).
    let redact = m.event == super::FORGOT_PASSWORD
        && !matches!(settle, Settle::Retry { .. })
        && !state.settings.fixtures.api;
    if let Err(e) = state
        .store
        .write(move |ops| {
            ops.outbox_settle(&id, &settle)?;
            if redact {
                ops.outbox_redact(&id)?;
            }
            Ok::<_, crate::db::StoreError>(())
        })
        .await
    {
        // The lease runs out and the message is tried again: at least once, not at most.
        log::warn!("webhook {}: cannot record the outcome: {e}", m.id);
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_an_hour() {
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(2), 2000);
        assert_eq!(backoff_ms(3), 4000);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
    }

    #[test]
    fn the_signature_is_standard_webhooks_v1() {
        // The example of the Standard Webhooks specification.
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }
}
