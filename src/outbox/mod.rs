//! The one way this server sends anything out. A change that promises a message (a webhook
//! today, a mail next) records it in the outbox in its own transaction; [`worker`] delivers it
//! afterwards, at least once, retrying with backoff, across restarts and crashes. The request
//! that caused it never waits for the receiver.

pub mod worker;

use serde_json::json;

use crate::db::outbox::Message;
use crate::db::users::{User, now_ms};
use crate::db::{Ops, StoreError};
use crate::settings::WebhookSettings;
use crate::system_config::WEBHOOK_USER_CREATED;

pub const USER_CREATED: &str = "user.created";
pub const FORGOT_PASSWORD: &str = "user.forgot_password";
/// A target that is a mail address (sent over SMTP) rather than a URL.
pub const MAILTO: &str = "mailto:";
/// The target of a message kept only for the fixture API's inbox.
pub const KEPT: &str = "kept:";

/// Records the `user.created` webhook of a user just inserted through `ops` (same
/// transaction), when `WEBHOOK_USER_CREATED` (stored key, else `webhooks.user_created`) names
/// a receiver. True when one was recorded.
pub fn user_created(
    ops: &mut dyn Ops,
    settings: &WebhookSettings,
    user: &User,
) -> Result<bool, StoreError> {
    let Some(target) = user_created_target(ops, settings)? else {
        return Ok(false);
    };
    user_created_to(ops, settings, &target, user)?;
    Ok(true)
}

/// Where `user.created` goes now (stored key, else `webhooks.user_created`), if anywhere: read
/// once by a caller that creates many users in one transaction.
pub fn user_created_target(
    ops: &mut dyn Ops,
    settings: &WebhookSettings,
) -> Result<Option<String>, StoreError> {
    Ok(match ops.config_get(WEBHOOK_USER_CREATED)? {
        Some(stored) => (!stored.is_empty()).then_some(stored),
        None => settings.user_created.clone(),
    })
}

/// Records the `user.created` webhook of `user` for `target`, in `ops`' transaction.
pub fn user_created_to(
    ops: &mut dyn Ops,
    settings: &WebhookSettings,
    target: &str,
    user: &User,
) -> Result<(), StoreError> {
    let body = json!({ "event": USER_CREATED, "user": user.public() });
    let now = now_ms();
    ops.outbox_add(&Message {
        id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        event: USER_CREATED.into(),
        target: target.to_owned(),
        body: body.to_string(),
        created: now,
        attempts: 0,
        give_up_at: now.saturating_add((settings.give_up_after.0 as i64).saturating_mul(1000)),
        state: "pending".into(),
    })
}

/// A forgot-password request of a known address, to be delivered.
#[derive(Debug)]
pub struct Reset<'a> {
    pub user: &'a User,
    pub code: &'a str,
    pub link: &'a str,
    /// Milliseconds since the epoch.
    pub created: i64,
}

/// Where forgot-password messages go.
#[derive(Debug, Clone, Default)]
pub struct ResetDelivery {
    pub webhook: Option<String>,
    /// The subject and HTML body templates (`{{link}}`, `{{code}}`), when SMTP is set.
    pub mail: Option<(String, String)>,
    /// Keep a copy for the fixture API's inbox when nothing else delivers it.
    pub keep: bool,
    /// Seconds a failed delivery is retried.
    pub give_up_after: u64,
}

/// Records a reset's messages in the caller's transaction: to the webhook, by mail, or (with
/// the fixture API on and neither set) kept for the inbox. How many can be delivered (0: no way
/// to reach the person was configured).
pub fn forgot_password(
    ops: &mut dyn Ops,
    to: &ResetDelivery,
    reset: &Reset<'_>,
) -> Result<usize, StoreError> {
    let give_up_at = reset
        .created
        .saturating_add((to.give_up_after as i64).saturating_mul(1000));
    let payload = json!({
        "code": reset.code,
        "email": reset.user.email,
        "userId": reset.user.id,
        "created": crate::domain::iso8601(reset.created),
        "link": reset.link,
    })
    .to_string();
    let message = |target: String, body: String, state: &str| Message {
        id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        event: FORGOT_PASSWORD.into(),
        target,
        body,
        created: reset.created,
        attempts: 0,
        give_up_at,
        state: state.into(),
    };
    let mut sent = 0;
    if let Some(url) = &to.webhook {
        ops.outbox_add(&message(url.clone(), payload.clone(), "pending"))?;
        sent += 1;
    }
    if let Some((subject, body)) = &to.mail {
        let fill = |t: &str| {
            t.replace("{{link}}", &html_escape(reset.link))
                .replace("{{code}}", &html_escape(reset.code))
        };
        let mail = json!({
            "to": reset.user.email,
            "subject": fill(subject),
            "html": fill(body),
            "code": reset.code,
        })
        .to_string();
        ops.outbox_add(&message(
            format!("{MAILTO}{}", reset.user.email),
            mail,
            "pending",
        ))?;
        sent += 1;
    }
    if sent == 0 && to.keep {
        ops.outbox_add(&message(KEPT.into(), payload, "kept"))?;
    }
    Ok(sent)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
