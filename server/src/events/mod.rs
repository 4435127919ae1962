//! Push: what the event outbox (`store::outbox`, written by every service in the same
//! transaction as its change) turns into outside the process. Webhooks signed per Standard
//! Webhooks, delivered at least once and in order, behind the SSRF guard of `net`; and the
//! live stream (SSE, WebSocket) resumable from any retained event.
//!
//! The outbox's write side lives in `store` so that the services emitting events (mailbox,
//! queue, identity, vault) need not import this module, which imports them to render what
//! it sends.

mod dispatch;
mod error;
mod http;
pub mod model;
pub mod sign;
mod stream;
mod webhooks;

pub use dispatch::Dispatcher;
pub use error::EventsError;
pub use model::{Delivery, Summary, Webhook, EVENT_TYPES};
pub use stream::{EventStreams, StreamEvent, Subscription};
pub use webhooks::{NewWebhook, WebhookPatch, WebhookService};

/// `events.gather_ms`: what a reader of the outbox (a live stream, a webhook worker) that a
/// write woke waits for the writes right behind it, so one read carries several events.
/// False when `stop` came first.
pub async fn gather(wait: std::time::Duration, stop: &tokio_util::sync::CancellationToken) -> bool {
    if wait.is_zero() {
        return !stop.is_cancelled();
    }
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}
