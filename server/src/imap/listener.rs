//! Accepting IMAP connections within the total and per-IP caps; one task and one span per
//! session. `imaps` speaks TLS from the first byte; `imap` offers STARTTLS.

use super::conn::Io;
use super::session::{Ended, Session};
use super::Imap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A TLS handshake, initial or after STARTTLS, must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, sessions have this long to hear BYE and go.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counts {
    per_source: HashMap<IpAddr, usize>,
    total: usize,
}

struct Slot {
    counts: Arc<Mutex<Counts>>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_source.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_source.remove(&self.key);
            }
        }
    }
}

fn admit(
    counts: &Arc<Mutex<Counts>>,
    ip: IpAddr,
    max: usize,
    per_ip: usize,
) -> Result<Slot, &'static str> {
    let key = crate::net::subscriber(ip);
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    if c.total >= max {
        return Err("full");
    }
    if c.per_source.get(&key).copied().unwrap_or(0) >= per_ip {
        return Err("per_ip");
    }
    c.total += 1;
    *c.per_source.entry(key).or_insert(0) += 1;
    Ok(Slot {
        counts: counts.clone(),
        key,
    })
}

/// Serves `listener` until `shutdown`; `implicit_tls` for `imaps`. Without `tls` (no
/// certificate) `imap` runs without STARTTLS and `imaps` cannot serve.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Imap>,
    tls: Option<Arc<rustls::ServerConfig>>,
    implicit_tls: bool,
    shutdown: CancellationToken,
) {
    let name = if implicit_tls { "imaps" } else { "imap" };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let counts = Arc::new(Mutex::new(Counts::default()));
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "imap accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let slot = match admit(
            &counts,
            peer.ip(),
            ctx.config.max_connections,
            ctx.config.max_connections_per_ip,
        ) {
            Ok(s) => s,
            Err(reason) => {
                ctx.metrics.imap_refused.with_label_values(&[reason]).inc();
                // One non-blocking write into the fresh socket, then close: a refused
                // flood costs no task and no timer.
                let _ = stream
                    .try_write(b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n");
                continue;
            }
        };
        ctx.metrics.imap_sessions.with_label_values(&[name]).inc();
        let ctx = ctx.clone();
        let token = shutdown.clone();
        let acceptor = acceptor.clone();
        let span = tracing::info_span!("imap", listener = name, peer = %peer);
        tasks.spawn(
            async move {
                let _slot = slot;
                let _ = stream.set_nodelay(true);
                ctx.metrics.imap_active.inc();
                let mut io: Box<dyn Io> = Box::new(stream);
                let mut secure = false;
                if implicit_tls {
                    let Some(acceptor) = acceptor.clone() else {
                        ctx.metrics.imap_active.dec();
                        return;
                    };
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => {
                            io = Box::new(tls);
                            secure = true;
                        }
                        _ => {
                            tracing::debug!("TLS handshake failed");
                            ctx.metrics.imap_active.dec();
                            return;
                        }
                    }
                }
                let offer = if secure { None } else { acceptor };
                let mut ended = Session::new(io, ctx.clone(), peer, secure, offer)
                    .run(token.clone(), true)
                    .await;
                // STARTTLS: the same connection continues, encrypted, as a fresh session
                // that greets no one (RFC 9051 §6.2.1).
                while let Ended::StartTls(io, acceptor) = ended {
                    ended = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await
                    {
                        Ok(Ok(tls)) => {
                            Session::new(Box::new(tls), ctx.clone(), peer, true, None)
                                .run(token.clone(), false)
                                .await
                        }
                        _ => {
                            tracing::debug!("TLS handshake after STARTTLS failed");
                            Ended::Done
                        }
                    };
                }
                ctx.metrics.imap_active.dec();
            }
            .instrument(span),
        );
    }
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "IMAP sessions outlived the shutdown grace period"
        );
    }
}
