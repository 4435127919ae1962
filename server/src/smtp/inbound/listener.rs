//! Accepting connections within the total and per-IP limits; one span per connection.

use super::reply::Reply;
use super::session::Ended;
use super::{Inbound, Session};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Live connections per IP; the guard gives the slot back when the session ends.
#[derive(Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

struct Slot(Arc<Counts>, IpAddr);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
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
        let (mut stream, peer) = tokio::select! {
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
        let refuse = {
            let mut m = counts.0.lock().unwrap_or_else(|p| p.into_inner());
            let total: usize = m.values().sum();
            let n = m.entry(peer.ip()).or_insert(0);
            if total >= ctx.limits.max_connections || *n >= ctx.limits.max_connections_per_ip {
                true
            } else {
                *n += 1;
                false
            }
        };
        if refuse {
            tasks.spawn(async move {
                let mut out = Vec::new();
                Reply::new(421, "4.7.0", "Too many connections, try again later")
                    .write_to(&mut out);
                let _ = stream.write_all(&out).await;
            });
            continue;
        }
        let slot = Slot(counts.clone(), peer.ip());
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
                        if let Ok(Ok(tls)) = handshake.await {
                            Session::new(tls, ctx.clone(), peer, None)
                                .submission()
                                .secured()
                                .run(token, true)
                                .await;
                        }
                    }
                    ctx.metrics.smtp_active.dec();
                    return;
                }
                let mut session = Session::new(stream, ctx.clone(), peer, acceptor);
                if kind == Kind::Submission {
                    session = session.submission();
                }
                let ended = session.run(token.clone(), true).await;
                if let Ended::StartTls(stream, acceptor) = ended {
                    let handshake =
                        tokio::time::timeout(ctx.limits.command_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            let mut session = Session::new(tls, ctx.clone(), peer, None);
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
