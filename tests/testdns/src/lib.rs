//! A minimal authoritative DNS server on 127.0.0.1 for tests: unit tests of `legate` (outbound
//! routing, mail authentication over a real resolver) and the `tests/` end-to-end suites that
//! need SPF/DKIM/DMARC/MX answers without the internet. A crate of its own so the release
//! binary does not carry it (DESIGN §1: test-only code never sits in production source).
//!
//! It serves a `StaticDns` over UDP and TCP on the same port, answering A, AAAA, MX, TXT, SRV,
//! CNAME and PTR; edits to the table are visible to the next query. Point `MailAuth::new` (or
//! any resolver) at `addr()`. Dropping the `TestDns` stops it.

#![forbid(unsafe_code)]

mod answer;

use answer::{respond, Transport};
use legate::mailauth::ResolverConfig;
/// The table it serves, re-exported so `legate`'s own unit tests (which see this crate's copy
/// of `legate`, not theirs) can build one.
pub use legate::mailauth::StaticDns;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// A TCP client that goes quiet is dropped after this long.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Binding UDP and then TCP on the same ephemeral port can race with other tests.
const BIND_ATTEMPTS: usize = 20;

pub struct TestDns {
    addr: SocketAddr,
    records: StaticDns,
    /// The UDP and TCP loops; aborted on drop. TCP connection tasks live in a `JoinSet`
    /// owned by the TCP loop, so they die with it.
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns").field("addr", &self.addr).finish()
    }
}

impl TestDns {
    /// Binds 127.0.0.1 on a free port (UDP and TCP) and starts serving `records`.
    pub async fn start(records: StaticDns) -> io::Result<Self> {
        let (udp, tcp) = bind_pair().await?;
        let addr = udp.local_addr()?;
        let tasks = vec![
            tokio::spawn(serve_udp(udp, records.clone())),
            tokio::spawn(serve_tcp(tcp, records.clone())),
        ];
        Ok(Self {
            addr,
            records,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The live table; edits apply to the next query.
    pub fn records(&self) -> &StaticDns {
        &self.records
    }

    /// A resolver configuration that uses only this server.
    pub fn resolver_config(&self) -> ResolverConfig {
        ResolverConfig {
            nameservers: vec![self.addr],
            timeout: Duration::from_secs(2),
        }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = io::Error::other("no bind attempt made");
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

async fn serve_udp(socket: UdpSocket, records: StaticDns) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let packet = buf.get(..len).unwrap_or_default();
        // The read guard is dropped before the await below.
        let reply = respond(&records.read(), packet, Transport::Udp);
        if let Some(reply) = reply {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, records: StaticDns) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_tcp_conn(stream, records.clone()));
                }
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// RFC 1035 §4.2.2 / RFC 7766: two-byte length prefix, several queries per connection.
async fn serve_tcp_conn(mut stream: TcpStream, records: StaticDns) {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return,
        };
        let mut packet = vec![0u8; len];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(reply) = respond(&records.read(), &packet, Transport::Tcp) else {
            continue;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_survives_garbage_and_serves_several_queries() {
        let server = TestDns::start(StaticDns::new()).await.unwrap();
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        // A 3-byte "query": FORMERR, and the connection stays usable.
        stream.write_all(&[0, 3, 0xab, 0xcd, 0xff]).await.unwrap();
        let len = stream.read_u16().await.unwrap();
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply[..2], &[0xab, 0xcd]);
        assert_eq!(reply[3] & 0x0f, 1, "rcode FORMERR");
        stream.write_all(&[0, 3, 0x01, 0x02, 0xff]).await.unwrap();
        let len = stream.read_u16().await.unwrap();
        assert!(len >= 12);
    }
}
