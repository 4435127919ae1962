//! A minimal authoritative DNS server on 127.0.0.1 for tests (unit, `tests/` end-to-end and
//! interop scripts that need SPF/DKIM/DMARC/MX answers without the internet).
//!
//! It serves a `StaticDns` over UDP and TCP on the same port, answering A, AAAA, MX, TXT and
//! PTR; edits to the table are visible to the next query. Point `MailAuth::new` (or any
//! resolver) at `addr()`. Dropping the `TestDns` stops it.

mod answer;

use super::{MailAuthError, ResolverConfig, StaticDns};
use answer::{respond, Transport};
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
    pub async fn start(records: StaticDns) -> Result<Self, MailAuthError> {
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
    use super::super::testutil::{ed25519_key, message, rsa_key};
    use super::super::{dkim_sign, AuthStatus, DkimSigning, MailAuth, PolicyAction};
    use super::*;
    use std::net::IpAddr;

    /// The full path: hickory resolver -> loopback UDP/TCP -> this server -> the table.
    #[tokio::test]
    async fn spf_dkim_and_dmarc_pass_over_loopback_dns() {
        let (ed, ed_txt) = ed25519_key();
        let (rsa, rsa_txt) = rsa_key();
        let records = StaticDns::new();
        records
            .add_txt("example.com", "v=spf1 mx -all")
            .add_mx("example.com", 10, "mail.example.com")
            .add_a("mail.example.com", Ipv4Addr::new(127, 0, 0, 9))
            .add_txt("ed._domainkey.example.com", ed_txt)
            .add_txt("rsa._domainkey.example.com", rsa_txt)
            .add_txt("_dmarc.example.com", "v=DMARC1; p=reject");
        let server = TestDns::start(records).await.unwrap();
        let auth = MailAuth::new(&server.resolver_config()).unwrap();

        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let spf = auth
            .check_spf_mail_from(ip, "mail.example.com", "mx.legate.test", "a@example.com")
            .await;
        assert_eq!(spf.result, AuthStatus::Pass);

        let signers = [
            DkimSigning::new("example.com", "ed", ed),
            DkimSigning::new("example.com", "rsa", rsa),
        ];
        let raw = message("example.com", "over the wire");
        let raw = dkim_sign(raw.as_bytes(), &signers).unwrap() + &raw;
        let v = auth
            .verify_message(
                raw.as_bytes(),
                ip,
                "mail.example.com",
                "a@example.com",
                &spf,
            )
            .await;
        assert_eq!(v.dkim.len(), 2);
        assert!(
            v.dkim.iter().all(|d| d.result == AuthStatus::Pass),
            "{:?}",
            v.dkim
        );
        assert_eq!(v.dmarc.result, AuthStatus::Pass);
        assert_eq!(v.action(), PolicyAction::Accept);

        // NXDOMAIN over the wire is SPF none, not an error.
        let r = auth
            .check_spf_mail_from(ip, "h", "mx", "a@nowhere.example")
            .await;
        assert_eq!(r.result, AuthStatus::None);
    }

    #[tokio::test]
    async fn edits_are_live_and_big_answers_fall_back_to_tcp() {
        let records = StaticDns::new();
        records.add_txt("example.com", "v=spf1 -all");
        let server = TestDns::start(records).await.unwrap();
        let auth = MailAuth::new(&server.resolver_config()).unwrap();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let check = || auth.check_spf_mail_from(ip, "h", "mx", "a@example.com");
        assert_eq!(check().await.result, AuthStatus::Fail);

        server
            .records()
            .remove("example.com")
            .add_txt("example.com", "v=spf1 ip4:127.0.0.0/8 -all");
        assert_eq!(check().await.result, AuthStatus::Pass);

        // 3000 bytes exceed the 1232-byte EDNS limit: answered with TC=1, then over TCP.
        let big = "x".repeat(3000);
        server.records().add_txt("big.example.com", big.clone());
        let got = auth
            .authenticator
            .txt_raw_lookup("big.example.com.")
            .await
            .unwrap();
        assert_eq!(got, big.into_bytes());
    }

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
