//! The CLI's side of the admin socket: is a server running, and ask it.

use super::{AdminError, Request, Response};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// An open connection to a running server.
pub struct Client {
    stream: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the socket at `path`. `Ok(None)` when no server listens there: no file,
    /// or a file a crashed server left behind (connection refused). Anything else (e.g.
    /// permission denied: a socket of another user) is an error, not a reason to open the
    /// store behind a running server's back.
    pub async fn connect(path: &Path) -> Result<Option<Client>, AdminError> {
        match UnixStream::connect(path).await {
            Ok(s) => Ok(Some(Client {
                stream: BufReader::new(s),
            })),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(AdminError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// Sends one request and reads its answer.
    pub async fn call(&mut self, req: &Request) -> Result<serde_json::Value, AdminError> {
        let mut line = serde_json::to_vec(req).map_err(|e| AdminError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let io = |e: std::io::Error| AdminError::Io(e.to_string());
        self.stream.get_mut().write_all(&line).await.map_err(io)?;
        let mut answer = Vec::new();
        let n = self
            .stream
            .read_until(b'\n', &mut answer)
            .await
            .map_err(io)?;
        if n == 0 {
            return Err(AdminError::Io(
                "the server closed the connection without an answer".into(),
            ));
        }
        let resp: Response = serde_json::from_slice(&answer)
            .map_err(|e| AdminError::Protocol(format!("not a response line: {e}")))?;
        resp.into_result()
    }
}
