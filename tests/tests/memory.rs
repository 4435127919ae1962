//! Memory suite (issue 15, resource exhaustion): measurements of this process's resident
//! memory while a server in it holds many connections or slow message bodies. It is a test
//! binary of its own, with one test running the scenarios in turn, because any other test
//! allocating in the same process at the same moment would be counted too.

use legate::mailauth::StaticDns;
use legate_tests::TestServer;

const MSG: &str = "From: Alice <alice@sender.test>\r\nTo: ops@agents.test\r\nSubject: Your code\r\nMessage-ID: <m1@sender.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nYour verification code is 482913.\r\n";

/// An MX server with its DNS on a loopback server (SPF for sender.test), `tune` applied.
async fn server(tune: impl FnOnce(&mut legate::config::SmtpConfig)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let dns = StaticDns::new();
    dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    let dns_server = std::sync::Arc::new(
        legate_testdns::TestDns::start(dns)
            .await
            .expect("loopback dns"),
    );
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.smtp = "127.0.0.1:0".into();
    cfg.dns.nameservers = vec![dns_server.addr().to_string()];
    tune(&mut cfg.smtp);
    let mut s = TestServer::start_with(dir, cfg).await;
    s.dns = Some(dns_server);
    s
}

#[path = "memory/connections.rs"]
mod connections;

#[tokio::test]
async fn memory_stays_bounded_under_idle_and_slow_connections() {
    connections::a_thousand_idle_connections_do_not_lock_out_a_new_client().await;
    connections::slow_concurrent_bodies_are_spooled_not_held_in_memory().await;
}
