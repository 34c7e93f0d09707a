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

/// Records the `user.created` webhook of a user just inserted through `ops` (same
/// transaction), when `WEBHOOK_USER_CREATED` (stored key, else `webhooks.user_created`) names
/// a receiver. True when one was recorded.
pub fn user_created(
    ops: &mut dyn Ops,
    settings: &WebhookSettings,
    user: &User,
) -> Result<bool, StoreError> {
    let target = match ops.config_get(WEBHOOK_USER_CREATED)? {
        Some(stored) => (!stored.is_empty()).then_some(stored),
        None => settings.user_created.clone(),
    };
    let Some(target) = target else {
        return Ok(false);
    };
    let body = json!({ "event": USER_CREATED, "user": user.public() });
    let now = now_ms();
    ops.outbox_add(&Message {
        id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        event: USER_CREATED.into(),
        target,
        body: body.to_string(),
        created: now,
        attempts: 0,
        give_up_at: now.saturating_add((settings.give_up_after.0 as i64).saturating_mul(1000)),
        state: "pending".into(),
    })?;
    Ok(true)
}
