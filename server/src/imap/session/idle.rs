//! IDLE (RFC 2177, RFC 9051 §6.3.13): changes pushed as they happen. The session sleeps on
//! its agent's mailbox bell (rung after every durable change, from any surface) and on
//! the client's DONE, and re-checks the login every few seconds so a revoked key's IDLE
//! ends with BYE promptly instead of at its next command.

use super::{Flow, Reply, Session, State};
use crate::imap::conn::{ConnError, Incoming};
use imap_codec::imap_types::core::Tag;
use imap_codec::IdleDoneCodec;
use std::time::Duration;

/// How often an idling session re-checks its login.
const RECHECK_EVERY: Duration = Duration::from_secs(2);

impl Session {
    pub(super) async fn idle(&mut self, _tag: Tag<'static>) -> (Reply, Flow) {
        if self.conn.continuation("idling").is_err() {
            return (Reply::bad("Cannot idle"), Flow::Continue);
        }
        self.sync(true).await;
        let mut bell = match &self.state {
            State::Selected(_, s) => Some(s.bell.clone()),
            _ => None,
        };
        if let Some(b) = bell.as_mut() {
            b.borrow_and_update();
        }
        let limit = Duration::from_secs(self.ctx.config.idle_timeout_secs);
        let deadline = tokio::time::Instant::now() + limit;
        let mut tick = tokio::time::interval(RECHECK_EVERY);
        tick.tick().await;
        self.ctx.metrics.imap_idle.inc();
        let ended = loop {
            // Output goes out before waiting, so the wait below never cuts a write short.
            if self.conn.flush().await.is_err() {
                break Err(ConnError::Closed);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                r = self.conn.next_message(left) => break r,
                changed = async {
                    match bell.as_mut() {
                        Some(b) => b.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if changed.is_err() {
                        bell = None;
                    }
                    self.sync(true).await;
                }
                _ = tick.tick() => {
                    if let Err(flow) = self.recheck().await {
                        self.ctx.metrics.imap_idle.dec();
                        return (Reply::none(), flow);
                    }
                }
            }
        };
        self.ctx.metrics.imap_idle.dec();
        match ended {
            Ok(Incoming::Message) => {
                let done = self
                    .conn
                    .frag
                    .decode_message(&IdleDoneCodec::default())
                    .is_ok();
                if done {
                    (Reply::ok("IDLE terminated"), Flow::Continue)
                } else {
                    (Reply::bad("Expected DONE"), Flow::Continue)
                }
            }
            Ok(Incoming::TooBig(_)) => (Reply::bad("Expected DONE"), Flow::Continue),
            Err(ConnError::TimedOut) => {
                self.bye(None, "Autologout; idle for too long");
                (Reply::none(), Flow::Logout)
            }
            Err(_) => (Reply::none(), Flow::Logout),
        }
    }
}
