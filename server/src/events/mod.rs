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
