//! Connection limits and per-connection memory (issue 15, resource exhaustion): idle
//! connections cannot lock a new client out, and slow message bodies are spooled to disk
//! rather than each held in memory.
//!
//! Memory is read from `/proc/self/status` (VmRSS) of this test process, which runs the
//! server in-process, so the figures include both ends of every connection. The bounds
//! stated below are generous on purpose: they catch a per-connection cost of the size of a
//! message body, not allocator noise. The scenarios run one after the other in a test binary
//! of their own, so no other test allocates in this process while they measure.

use super::{server, MSG};
use legate_tests::SmtpClient;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Connects from a given loopback source address (all of 127/8 is on `lo`).
async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.expect("connect")
}

/// The first line the server sends.
async fn first_line(s: &mut TcpStream) -> String {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line)).await;
    line
}

/// Bound on memory for 1,000 idle connections (both ends, this process): 100 MiB, that is
/// about 100 KiB per connection, where a held message body would be up to 25 MiB.
const IDLE_RSS_BOUND_KIB: u64 = 100 * 1024;

pub(super) async fn a_thousand_idle_connections_do_not_lock_out_a_new_client() {
    let s = server(|c| {
        c.max_connections = 1000;
        c.max_connections_per_ip = 50;
    })
    .await;
    let addr = s.smtp_addr();
    let before = rss_kib();
    // 20 sources x 50: every slot of the listener held by a connection that says nothing
    let mut idle = Vec::new();
    for i in 1..=20 {
        for _ in 0..50 {
            let mut c = connect_from(&format!("127.0.1.{i}"), addr).await;
            let greet = first_line(&mut c).await;
            assert!(greet.starts_with("220"), "{greet}");
            idle.push(c);
        }
    }
    assert_eq!(idle.len(), 1000);
    // one source cannot take more than its share
    let mut extra = connect_from("127.0.1.1", addr).await;
    let r = first_line(&mut extra).await;
    assert!(r.starts_with("421 4.7.0"), "per-IP cap: {r}");
    // a new client from elsewhere is served within a second
    let t = Instant::now();
    let tcp = connect_from("127.0.0.2", addr).await;
    let mut c = SmtpClient::from_stream(tcp);
    let greet = c.read_reply().await;
    assert!(greet.starts_with("220"), "{greet}");
    assert!(c.cmd("EHLO new.sender.test").await.starts_with("250"));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "served in {took:?}");
    // ...because the longest-idle connection was shed with a 421
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut shed = 0;
    for c in &idle {
        let mut buf = [0u8; 256];
        if let Ok(n) = c.try_read(&mut buf) {
            if buf[..n].starts_with(b"421 4.7.0") {
                shed += 1;
            }
        }
    }
    assert!(shed >= 1, "an idle session was shed");
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < IDLE_RSS_BOUND_KIB,
        "1,000 idle connections cost {grown} KiB (bound {IDLE_RSS_BOUND_KIB} KiB)"
    );
    eprintln!("1,000 idle connections: +{grown} KiB RSS, new client served in {took:?}");
    let m = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("legate_smtp_connections_refused_total{listener=\"smtp\",reason=\"per_ip\"} 1"),
        "{m}"
    );
    assert!(m.contains("legate_smtp_connections_refused_total{listener=\"smtp\",reason=\"shed\"}"));
    drop(idle);
    s.stop().await;
}

/// Bound on memory while 12 clients are each 4 MiB into a message (48 MiB on the wire): 24
/// MiB, half of what holding the bodies would take.
const SPOOL_RSS_BOUND_KIB: u64 = 24 * 1024;

pub(super) async fn slow_concurrent_bodies_are_spooled_not_held_in_memory() {
    let s = server(|c| {
        c.spool_threshold_bytes = 256 * 1024;
        c.max_message_size = 8 * 1024 * 1024;
        c.data_timeout_secs = 60;
    })
    .await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let addr = s.smtp_addr();
    let line = format!("{}\r\n", "z".repeat(998));
    let body: Vec<u8> = line.repeat(4 * 1024 * 1024 / line.len()).into_bytes();
    let mut clients = Vec::new();
    for _ in 0..12 {
        let (mut c, _) = SmtpClient::connect(addr).await;
        c.cmd("EHLO c.sender.test").await;
        c.cmd("MAIL FROM:<alice@sender.test>").await;
        c.cmd("RCPT TO:<ops@agents.test>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.write(MSG.as_bytes()).await;
        clients.push(c);
    }
    let before = rss_kib();
    for c in clients.iter_mut() {
        c.write(&body).await;
    }
    // let the server drain its sockets before measuring
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = rss_kib().saturating_sub(before);
    eprintln!("12 bodies of 4 MiB in flight: +{grown} KiB RSS");
    assert!(
        grown < SPOOL_RSS_BOUND_KIB,
        "bodies in flight cost {grown} KiB (bound {SPOOL_RSS_BOUND_KIB} KiB)"
    );
    // a spooled body is delivered whole
    let mut c = clients.pop().unwrap();
    c.write(b".\r\n").await;
    let r = c.read_reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let (_, list) = s.call("GET", "/v1/messages", Some(&key), None).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (_, _, raw) = s.get_bytes(&format!("/v1/messages/{id}/raw"), &key).await;
    assert!(raw.len() > body.len(), "{} bytes stored", raw.len());
    assert!(raw.ends_with(&body[body.len() - 2000..]));
    drop(clients);
    s.stop().await;
}
