//! The accept loop: connection limits, one task and one tracing span per session, and the
//! shutdown path (stop accepting, idle sessions get `421 4.3.0`, in-flight ones get a grace
//! period, then whatever remains is dropped).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backend::Backend;
use super::limits::{ConnGuard, ConnLimiter, Over};
use super::session::{Conn, Session};
use super::starttls::drive;
use super::{Context, Mode, SessionConfig, SmtpError};

/// How long the "too many connections" reply may take before the socket is just closed.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves SMTP on `listener` until `shutdown` is cancelled, then drains.
///
/// `tls` enables STARTTLS (MX and submission) and is required for [`Mode::ImplicitTls`].
/// Returns once every session has ended or `cfg.shutdown_grace` has passed.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    cfg: Arc<SessionConfig>,
    tls: Option<Arc<rustls::ServerConfig>>,
    backend: Arc<B>,
    shutdown: CancellationToken,
) -> Result<(), SmtpError> {
    if cfg.mode == Mode::ImplicitTls && tls.is_none() {
        return Err(SmtpError::TlsRequired);
    }
    let limits = &cfg.limits;
    let conns = ConnLimiter::new(limits.max_connections, limits.max_connections_per_ip);
    let grace = cfg.shutdown_grace;
    let ctx = Arc::new(Context::new(cfg, backend, tls));
    let mut sessions = JoinSet::new();
    tracing::info!(addr = ?listener.local_addr().ok(), mode = ?ctx.cfg.mode, "smtp listening");

    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match conns.try_acquire(peer.ip()) {
                        Ok(guard) => {
                            let id = crate::util::new_id("smtp");
                            let span = tracing::info_span!("smtp", id = %id, peer = %peer);
                            let task = session_task(stream, peer, id, ctx.clone(), shutdown.clone(), guard);
                            sessions.spawn(task.instrument(span));
                        }
                        Err(over) => {
                            tracing::info!(%peer, ?over, "connection refused: limit");
                            sessions.spawn(refuse(stream, ctx.cfg.clone(), over));
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }

    drop(listener);
    tracing::info!(sessions = sessions.len(), "smtp shutting down");
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = sessions.len(),
            "grace period over, dropping sessions"
        );
        sessions.shutdown().await;
    }
    Ok(())
}

/// One connection, from handshake (implicit TLS) to close. `_guard` holds the connection slot.
async fn session_task<B: Backend>(
    stream: TcpStream,
    peer: SocketAddr,
    id: String,
    ctx: Arc<Context<B>>,
    shutdown: CancellationToken,
    _guard: ConnGuard,
) {
    tracing::debug!("connected");
    if ctx.cfg.mode == Mode::ImplicitTls {
        let Some(acceptor) = ctx.tls.clone() else {
            return;
        };
        let handshake = acceptor.accept(stream);
        match tokio::time::timeout(ctx.cfg.timeouts.tls_handshake, handshake).await {
            Ok(Ok(tls)) => {
                let conn = Conn {
                    peer,
                    id,
                    tls: true,
                };
                drive(Session::new(tls, ctx, conn, shutdown)).await;
            }
            Ok(Err(err)) => tracing::debug!(error = %err, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake timed out"),
        }
    } else {
        let conn = Conn {
            peer,
            id,
            tls: false,
        };
        drive(Session::new(stream, ctx, conn, shutdown)).await;
    }
    tracing::debug!("disconnected");
}

/// Tells a client over a connection limit why it is turned away. Over implicit TLS there is
/// no way to say it before a handshake we do not want to spend, so the socket just closes.
async fn refuse(mut stream: TcpStream, cfg: Arc<SessionConfig>, over: Over) {
    if cfg.mode == Mode::ImplicitTls {
        return;
    }
    let what = match over {
        Over::Total => "Too many connections",
        Over::PerIp => "Too many connections from your address",
    };
    let line = format!("421 4.7.0 {} {what}, try again later\r\n", cfg.hostname);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    async fn listen(opts: Opts) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let backend = Arc::new(FakeBackend::default());
        let task = tokio::spawn(serve(
            listener,
            Arc::new(opts.cfg.clone()),
            opts.tls.clone(),
            backend,
            token.clone(),
        ));
        let handle = tokio::spawn(async move {
            task.await.unwrap().unwrap();
        });
        (addr, token, handle)
    }

    #[tokio::test]
    async fn transaction_over_real_tcp() {
        let (addr, token, handle) = listen(Opts::mx()).await;
        let mut c = Client::tcp(addr).await;
        c.expect("220 mx.a.test").await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
        c.cmd("RCPT TO:<alice@a.test>", "250").await;
        c.cmd("DATA", "354").await;
        c.cmd("hi\r\n.", "250 2.0.0").await;
        c.cmd("QUIT", "221").await;
        token.cancel();
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn per_ip_connection_limit() {
        let mut opts = Opts::mx();
        opts.cfg.limits.max_connections_per_ip = 2;
        let (addr, _token, _handle) = listen(opts).await;
        let mut a = Client::tcp(addr).await;
        a.expect("220").await;
        let mut b = Client::tcp(addr).await;
        b.expect("220").await;
        let mut c = Client::tcp(addr).await;
        c.expect("421 4.7.0").await;
        c.expect_closed().await;
        a.cmd("QUIT", "221").await;
        a.expect_closed().await;
        // The slot is freed when the session ends; the task may need a moment to finish.
        let mut freed = false;
        for _ in 0..100 {
            let mut d = Client::tcp(addr).await;
            if d.read_reply().await.starts_with("220") {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(freed, "slot never freed");
    }

    #[tokio::test]
    async fn graceful_shutdown_sends_421_and_returns() {
        let (addr, token, handle) = listen(Opts::mx()).await;
        let mut c = Client::tcp(addr).await;
        c.expect("220").await;
        c.cmd("EHLO client.test", "250").await;
        token.cancel();
        c.expect("421 4.3.0").await;
        c.expect_closed().await;
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("serve returns after draining")
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer accepting"
        );
    }

    #[tokio::test]
    async fn implicit_tls_greets_after_the_handshake() {
        let opts = Opts::implicit_tls();
        let (addr, _token, _handle) = listen(opts.clone()).await;
        let mut c = Client::tls_tcp(addr, &opts).await;
        c.expect("220 mx.a.test").await;
        let r = c.cmd("EHLO client.test", "250").await;
        assert!(
            r.contains("AUTH PLAIN LOGIN") && !r.contains("STARTTLS"),
            "{r}"
        );
        c.auth_plain("alice@a.test", "lg_good", "235").await;
    }

    #[tokio::test]
    async fn implicit_tls_without_certificate_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = Arc::new(SessionConfig::new("mx.a.test", Mode::ImplicitTls));
        let r = serve(
            listener,
            cfg,
            None,
            Arc::new(FakeBackend::default()),
            CancellationToken::new(),
        )
        .await;
        assert!(matches!(r, Err(SmtpError::TlsRequired)));
    }
}
