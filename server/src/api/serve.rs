//! Serving the HTTP application on a listener, with the limits `axum::serve` cannot set:
//! connections per listener and per IP, and a header read timeout (slowloris, idle
//! keep-alive). Each request also learns whether its connection is TLS ([`Transport`]), so
//! API keys can be refused over plain non-loopback HTTP.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How the request reached us.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub tls: bool,
    pub local: SocketAddr,
}

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub header_read_timeout: Duration,
}

impl ServeLimits {
    pub fn from_config(c: &crate::config::ApiConfig) -> Self {
        Self {
            max_connections: c.max_connections,
            max_connections_per_ip: c.max_connections_per_ip,
            header_read_timeout: Duration::from_secs(c.header_read_timeout_secs),
        }
    }
}

/// Open connections per IP (IPv6 by /64) and in total; a slot is freed when its guard drops.
#[derive(Default)]
struct Gate {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

struct Slot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Gate {
    fn enter(self: &Arc<Self>, ip: IpAddr, limits: &ServeLimits) -> Option<Slot> {
        let ip = crate::net::subscriber(ip);
        let mut g = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let per_ip = g.1.get(&ip).copied().unwrap_or(0);
        if g.0 >= limits.max_connections || per_ip >= limits.max_connections_per_ip {
            return None;
        }
        g.0 += 1;
        *g.1.entry(ip).or_default() += 1;
        Some(Slot {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = g.0.saturating_sub(1);
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on connections from `listener` until `shutdown`, then lets open connections
/// finish their requests (the caller bounds that wait with the grace period).
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    tls: bool,
    limits: ServeLimits,
    shutdown: CancellationToken,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: Unpin,
{
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "http listener has no address");
            return;
        }
    };
    let gate = Arc::new(Gate::default());
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            x = listener.accept() => x,
        };
        let Some(slot) = gate.enter(peer.ip(), &limits) else {
            // Over a cap: closed at once, so a flood of idle sockets costs us a file
            // descriptor for microseconds and never a slot another client needs.
            tracing::debug!(%peer, "http connection refused: connection limit");
            drop(io);
            continue;
        };
        let transport = Transport { tls, local };
        let svc = app
            .clone()
            .map_request(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(transport);
                req
            });
        let svc = TowerToHyperService::new(svc.map_request(
            |req: hyper::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
        ));
        let token = shutdown.clone();
        let close_rx = close_rx.clone();
        let timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout);
            builder.http2().timer(TokioTimer::new());
            let io = FirstByteDeadline::new(io, timeout);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::trace!(error = %e, "http connection ended");
                    }
                }
                _ = token.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    close_tx.closed().await;
}

/// Fails the first read that has not produced a byte by the deadline.
///
/// hyper's HTTP/1 header read timeout starts only once the auto builder has read enough to
/// tell HTTP/1 from HTTP/2, so a client that connects and sends nothing would otherwise
/// hold its slot for ever; this covers that first wait, hyper covers the rest.
struct FirstByteDeadline<I> {
    io: I,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> FirstByteDeadline<I> {
    fn new(io: I, timeout: Duration) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FirstByteDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FirstByteDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_caps_per_ip_and_in_total_and_frees_slots() {
        let gate = Arc::new(Gate::default());
        let limits = ServeLimits {
            max_connections: 3,
            max_connections_per_ip: 2,
            header_read_timeout: Duration::from_secs(1),
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let s1 = gate.enter(a, &limits).unwrap();
        let _s2 = gate.enter(a, &limits).unwrap();
        assert!(gate.enter(a, &limits).is_none(), "per ip");
        let _s3 = gate.enter(b, &limits).unwrap();
        assert!(
            gate.enter("2001:db8::2".parse().unwrap(), &limits)
                .is_none(),
            "total, and the same /64"
        );
        drop(s1);
        assert!(gate.enter(a, &limits).is_some());
    }
}
