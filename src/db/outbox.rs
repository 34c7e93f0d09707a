//! What the outbox holds: a message the server promised to send (a webhook today), recorded in
//! the transaction of the change that causes it.

use serde::Serialize;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Stable across retries (the `webhook-id` header), so a receiver drops duplicates.
    pub id: String,
    /// `user.created`, …
    pub event: String,
    /// Where it goes: a URL.
    pub target: String,
    /// The JSON body, as sent.
    pub body: String,
    /// Milliseconds since the epoch.
    pub created: i64,
    /// Attempts made so far (the claimed one included).
    pub attempts: u32,
    /// Past this time (ms) a failed attempt is the last.
    pub give_up_at: i64,
    /// `pending`, `delivered`, `abandoned`, or `kept` (recorded for the fixture API's inbox
    /// only, never sent).
    pub state: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Delivered,
    /// Try again at this time (ms), after this error.
    Retry {
        at: i64,
        error: String,
    },
    Abandoned {
        error: String,
    },
}
