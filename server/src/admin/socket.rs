//! The listener of `<data>/admin.sock`: binds it owner-only, admits peers of the server's own
//! uid, and answers one JSON line per request line (see the module docs of [`super`]).

use super::{dispatch, AdminError, Request, Response};
use crate::config::AdminConfig;
use crate::identity::Actor;
use crate::services::Services;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// A bound socket and the uid its peers must have.
pub struct AdminListener {
    listener: UnixListener,
    path: PathBuf,
    /// The uid of the socket file, which this process just created: our own uid, learnt
    /// without calling `getuid` (which would need unsafe code or another crate).
    uid: u32,
}

impl AdminListener {
    /// Binds `path`, replacing a file left by a server that did not exit cleanly (the store
    /// lock, taken before this, proves no other server of this data directory runs), and
    /// makes it mode 0600. Between bind and chmod the socket briefly has the umask's mode;
    /// the uid check on every connection is what admits a peer, the mode is a second wall.
    pub fn bind(path: &Path) -> std::io::Result<AdminListener> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let uid = std::fs::metadata(path)?.uid();
        Ok(AdminListener {
            listener,
            path: path.to_path_buf(),
            uid,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown`; then removes the socket file, so the CLI sees no server.
    pub async fn serve(
        self,
        services: Arc<Services>,
        actor: Option<Actor>,
        cfg: AdminConfig,
        shutdown: CancellationToken,
    ) {
        let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections.max(1)));
        let ctx = Arc::new(Conn {
            services,
            actor,
            max_line: cfg.max_request_bytes,
            idle: Duration::from_secs(cfg.idle_timeout_secs),
            uid: self.uid,
            shutdown: shutdown.clone(),
        });
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                ctx.run(stream).await;
                drop(permit);
            });
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What every connection shares.
struct Conn {
    services: Arc<Services>,
    /// The operator the CLI acts as; None before any human exists (every request refused).
    actor: Option<Actor>,
    max_line: usize,
    idle: Duration,
    uid: u32,
    shutdown: CancellationToken,
}

impl Conn {
    async fn run(&self, stream: UnixStream) {
        let peer_uid = stream.peer_cred().map(|c| c.uid());
        let (read, mut write) = stream.into_split();
        if peer_uid.as_ref().ok() != Some(&self.uid) {
            tracing::warn!(peer_uid = ?peer_uid.ok(), "admin socket: refused a peer of another uid");
            let e =
                AdminError::Forbidden("the admin socket serves only the server's own uid".into());
            let _ = write_response(&mut write, Err(e)).await;
            return;
        }
        let mut reader = BufReader::new(read);
        loop {
            let mut line = Vec::new();
            let limit = self.max_line as u64 + 1;
            let mut bounded = (&mut reader).take(limit);
            let read = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = tokio::time::timeout(self.idle, bounded.read_until(b'\n', &mut line)) => r,
            };
            match read {
                Err(_) | Ok(Err(_)) | Ok(Ok(0)) => return,
                Ok(Ok(_)) => {}
            }
            if line.last() != Some(&b'\n') && line.len() > self.max_line {
                let e = AdminError::Invalid(format!(
                    "request longer than admin.max_request_bytes ({})",
                    self.max_line
                ));
                let _ = write_response(&mut write, Err(e)).await;
                return;
            }
            let answer = self.answer(&line).await;
            if write_response(&mut write, answer).await.is_err() {
                return;
            }
        }
    }

    async fn answer(&self, line: &[u8]) -> Result<serde_json::Value, AdminError> {
        let req: Request = serde_json::from_slice(line)
            .map_err(|e| AdminError::Protocol(format!("not a request line: {e}")))?;
        let actor = self
            .actor
            .as_ref()
            .ok_or_else(|| AdminError::Forbidden("this data directory has no admin yet".into()))?;
        dispatch::handle(&self.services, actor, &req).await
    }
}

async fn write_response(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    r: Result<serde_json::Value, AdminError>,
) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(&Response::from_result(r)).unwrap_or_else(|_| {
        br#"{"ok":false,"error":{"code":"internal_error","message":"unencodable answer"}}"#.to_vec()
    });
    out.push(b'\n');
    w.write_all(&out).await
}
