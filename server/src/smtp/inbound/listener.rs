//! Accepting connections within the total and per-IP limits; one span per connection.
//!
//! The per-IP cap (`smtp.max_connections_per_ip`, an IPv6 /64 counting as one address,
//! since one host gets a whole /64) stops one source from taking the listener. Many sources
//! can still fill the total cap (`smtp.max_connections`) with connections that say nothing;
//! so at the cap the session idle longest (waiting for a command, no transaction open) is
//! shed with `421 4.7.0` to admit the newcomer, and only when none is idle is the newcomer
//! refused. A shed session is counted until it has closed (milliseconds), so the live count
//! can briefly exceed the cap by the sessions being shed, never by more.

use super::presence::Presence;
use super::reply::Reply;
use super::session::Ended;
use super::{Inbound, Session};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The unit the per-IP cap counts: the address, or its /64 for IPv6.
fn source_key(ip: IpAddr) -> IpAddr {
    crate::net::subscriber(ip)
}

/// Live connections: per source, and each one's presence (for shedding).
#[derive(Default)]
struct Live {
    per_source: HashMap<IpAddr, usize>,
    sessions: HashMap<u64, Arc<Presence>>,
    next_id: u64,
}

#[derive(Default)]
struct Counts(Mutex<Live>);

/// Why a connection was not admitted.
enum Refused {
    PerIp,
    Full,
}

impl Counts {
    /// Admits a connection from `ip`, shedding the longest-idle session at the total cap.
    fn admit(&self, ip: IpAddr, max: usize, max_per_ip: usize) -> Result<Slot, Refused> {
        let key = source_key(ip);
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.per_source.get(&key).copied().unwrap_or(0) >= max_per_ip {
            return Err(Refused::PerIp);
        }
        let shedding = m.sessions.values().filter(|p| p.is_evicted()).count();
        let mut shed = false;
        if m.sessions.len() - shedding >= max {
            let oldest = m
                .sessions
                .values()
                .filter_map(|p| p.idle_since().map(|t| (t, p)))
                .min_by_key(|(t, _)| *t)
                .map(|(_, p)| p.clone());
            match oldest {
                Some(p) => {
                    p.evict();
                    shed = true;
                }
                None => return Err(Refused::Full),
            }
        }
        *m.per_source.entry(key).or_insert(0) += 1;
        m.next_id += 1;
        let id = m.next_id;
        let presence = Arc::new(Presence::new_idle());
        m.sessions.insert(id, presence.clone());
        Ok(Slot {
            counts: None,
            key,
            id,
            presence,
            shed,
        })
    }
}

/// A live connection's place in the counts; given back when the session ends.
struct Slot {
    counts: Option<Arc<Counts>>,
    key: IpAddr,
    id: u64,
    presence: Arc<Presence>,
    /// Admitting it shed an idle session.
    shed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(counts) = &self.counts else { return };
        let mut m = counts.0.lock().unwrap_or_else(|p| p.into_inner());
        m.sessions.remove(&self.id);
        if let Some(n) = m.per_source.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.per_source.remove(&self.key);
            }
        }
    }
}

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Port 25: mail for our agents, STARTTLS offered.
    Mx,
    /// Port 587: STARTTLS, then AUTH (RFC 6409).
    Submission,
    /// Port 465: TLS from the first byte, then AUTH (RFC 8314).
    Submissions,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Mx => "smtp",
            Kind::Submission => "submission",
            Kind::Submissions => "submissions",
        }
    }
}

/// Serves MX until `shutdown`; see [`serve_as`].
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Inbound>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) {
    serve_as(listener, ctx, tls, Kind::Mx, shutdown).await
}

/// Serves until `shutdown`; then stops accepting, tells sessions `421`, and waits for them
/// (bounded).
pub async fn serve_as(
    listener: TcpListener,
    ctx: Arc<Inbound>,
    tls: Option<Arc<rustls::ServerConfig>>,
    kind: Kind,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let counts = Arc::new(Counts::default());
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "smtp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let admitted = counts.admit(
            peer.ip(),
            ctx.limits.max_connections,
            ctx.limits.max_connections_per_ip,
        );
        let mut slot = match admitted {
            Ok(slot) => slot,
            Err(why) => {
                let (label, text) = match why {
                    Refused::PerIp => ("per_ip", "Too many connections from your address"),
                    Refused::Full => ("full", "Too many connections, try again later"),
                };
                ctx.metrics
                    .smtp_connections_refused
                    .with_label_values(&[kind.name(), label])
                    .inc();
                // One non-blocking write into the fresh socket's empty send buffer, then
                // close: a refused flood costs no task, no timer and no descriptor beyond
                // this instant. (On 465 the peer expects TLS and sees a plain reply: it is
                // refused either way.)
                let mut out = Vec::new();
                Reply::new(421, "4.7.0", text).write_to(&mut out);
                let _ = stream.try_write(&out);
                drop(stream);
                continue;
            }
        };
        slot.counts = Some(counts.clone());
        if slot.shed {
            ctx.metrics
                .smtp_connections_refused
                .with_label_values(&[kind.name(), "shed"])
                .inc();
        }
        let presence = slot.presence.clone();
        let ctx = ctx.clone();
        let token = shutdown.clone();
        let acceptor = acceptor.clone();
        ctx.metrics
            .smtp_sessions
            .with_label_values(&[kind.name()])
            .inc();
        let span = tracing::info_span!("smtp", listener = kind.name(), peer = %peer);
        tasks.spawn(
            async move {
                let _slot = slot;
                ctx.metrics.smtp_active.inc();
                let _ = stream.set_nodelay(true);
                if kind == Kind::Submissions {
                    if let Some(acceptor) = acceptor {
                        let handshake = tokio::time::timeout(
                            ctx.limits.command_timeout,
                            acceptor.accept(stream),
                        );
                        let handshake = tokio::select! {
                            r = handshake => r.ok(),
                            _ = presence.evicted() => None,
                        };
                        if let Some(Ok(tls)) = handshake {
                            Session::new(tls, ctx.clone(), peer, None)
                                .submission()
                                .secured()
                                .with_presence(presence.clone())
                                .run(token, true)
                                .await;
                        }
                    }
                    ctx.metrics.smtp_active.dec();
                    return;
                }
                let mut session = Session::new(stream, ctx.clone(), peer, acceptor)
                    .with_presence(presence.clone());
                if kind == Kind::Submission {
                    session = session.submission();
                }
                let ended = session.run(token.clone(), true).await;
                if let Ended::StartTls(stream, acceptor) = ended {
                    let handshake =
                        tokio::time::timeout(ctx.limits.command_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            let mut session = Session::new(tls, ctx.clone(), peer, None)
                                .with_presence(presence.clone());
                            if kind == Kind::Submission {
                                session = session.submission();
                            }
                            session.secured().run(token, false).await;
                        }
                        _ => tracing::debug!("TLS handshake failed"),
                    }
                }
                ctx.metrics.smtp_active.dec();
            }
            .instrument(span),
        );
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(30), tasks.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_v4_is_v4() {
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa::1")),
            source_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            source_key(ip("2001:db8:1:2::1")),
            source_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn the_cap_sheds_the_longest_idle_session_or_refuses() {
        let counts = Arc::new(Counts::default());
        let mut slots = Vec::new();
        for i in 0..3 {
            let mut s = counts
                .admit(ip(&format!("192.0.2.{i}")), 3, 2)
                .ok()
                .unwrap();
            s.counts = Some(counts.clone());
            slots.push(s);
        }
        // per-IP cap first
        let mut again = counts.admit(ip("192.0.2.0"), 10, 2).ok().unwrap();
        again.counts = Some(counts.clone());
        assert!(matches!(
            counts.admit(ip("192.0.2.0"), 10, 2),
            Err(Refused::PerIp)
        ));
        drop(again);
        // at the total cap with every session busy: refused
        for s in &slots {
            s.presence.busy();
        }
        assert!(matches!(
            counts.admit(ip("198.51.100.1"), 3, 2),
            Err(Refused::Full)
        ));
        // one goes idle: it is shed for the newcomer, and only it
        slots[1].presence.idle();
        let newcomer = counts.admit(ip("198.51.100.1"), 3, 2).ok().unwrap();
        assert!(newcomer.shed);
        assert!(slots[1].presence.is_evicted());
        assert!(!slots[0].presence.is_evicted() && !slots[2].presence.is_evicted());
        // the shed one no longer counts against the cap while it closes
        let mut newcomer = newcomer;
        newcomer.counts = Some(counts.clone());
        newcomer.presence.busy();
        assert!(matches!(
            counts.admit(ip("198.51.100.2"), 3, 2),
            Err(Refused::Full)
        ));
        drop(slots);
        drop(newcomer);
        assert!(counts.0.lock().unwrap().sessions.is_empty());
    }
}
