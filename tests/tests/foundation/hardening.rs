//! Issue 15 items 5 (auth flooding), 6 (audit head anchor), 15 (HTTP limits) and 17
//! (transport defaults), over real sockets.

use legate_tests::{test_config, TestServer};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Entries in the whole log (the chain walk counts them).
fn audit_len(s: &TestServer) -> u64 {
    s.services().audit.verify().expect("verify").entries
}

/// All `auth.denied` entries, oldest first (read in-process: the flooding address is
/// itself refused by the API now).
fn denied_entries(s: &TestServer) -> Vec<Value> {
    let f = legate::audit::Filter {
        action: Some("auth.denied".into()),
        ..Default::default()
    };
    let page = s.services().audit.query(&f, 1000, None).expect("query");
    page.items.iter().rev().map(|e| e.to_json()).collect()
}

/// A client whose connections come from another loopback address (127.0.0.2 is on `lo`).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_tokens_are_throttled_and_add_a_handful_of_entries() {
    let s = TestServer::start().await;
    let (_, good) = s.agent("flood", &["mail:read"]).await;
    let before = audit_len(&s);
    let url = format!("{}/v1/whoami", s.base);
    let bad = format!("lg_{}", "B".repeat(52));
    // 10,000 requests over keep-alive connections, 40 at a time.
    let mut workers = Vec::new();
    for _ in 0..40 {
        let (http, url, bad) = (s.http.clone(), url.clone(), bad.clone());
        workers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..250 {
                let r = http.get(&url).bearer_auth(&bad).send().await.expect("send");
                statuses.push(r.status().as_u16());
                let _ = r.bytes().await;
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for w in workers {
        statuses.extend(w.await.expect("worker"));
    }
    assert_eq!(statuses.len(), 10_000);
    let unauthorized = statuses.iter().filter(|&&c| c == 401).count();
    let throttled = statuses.iter().filter(|&&c| c == 429).count();
    assert_eq!(unauthorized + throttled, statuses.len(), "only 401 and 429");
    // limits.auth_failures_per_minute = 10 by default (a few more may race past the check).
    assert!(
        unauthorized <= 10 + 40,
        "{unauthorized} got past the limiter"
    );
    assert!(throttled >= 9_900, "{throttled}");

    // The 429 has the API's JSON error body, and MCP refuses the same source the same way.
    let (st, e) = s.call("GET", "/v1/whoami", Some(&bad), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (429, Some("too_many_auth_failures"))
    );
    // A valid key from the same address (another agent behind the same NAT) still gets in:
    // the limit is on failures, and a 256-bit key cannot be guessed.
    let (st, e) = s.call("GET", "/v1/whoami", Some(&good), None).await;
    assert_eq!(st, 200, "{e}");
    let mcp = s
        .http
        .post(format!("{}/mcp", s.base))
        .bearer_auth(&bad)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("mcp");
    assert_eq!(mcp.status().as_u16(), 429);
    // Another address is not affected.
    let other = client_from([127, 0, 0, 2])
        .get(&url)
        .bearer_auth(&good)
        .send()
        .await
        .expect("send");
    assert_eq!(other.status().as_u16(), 200);

    // A few dozen entries at most, and the summary accounts for every attempt.
    s.services().audit.flush_denials(true).expect("flush");
    let grown = audit_len(&s) - before;
    assert!(grown <= 36, "the flood added {grown} audit entries");
    let denied = denied_entries(&s);
    let from_flood: Vec<&Value> = denied
        .iter()
        .filter(|e| e["detail"]["peer"] == "127.0.0.1")
        .collect();
    let accounted: u64 = from_flood
        .iter()
        .map(|e| e["detail"]["count"].as_u64().unwrap_or(1))
        .sum();
    // 10,000 bad tokens, one more at 429, the good key let through while throttled, and
    // the MCP request.
    assert_eq!(accounted, 10_000 + 3, "{from_flood:?}");
    let summary = from_flood
        .iter()
        .find(|e| e["detail"]["aggregated"] == true)
        .expect("a summary entry");
    assert_eq!(summary["actor"]["kind"], "anonymous");
    assert!(summary["detail"]["throttled"].as_u64().unwrap_or(0) >= 9_900);
    assert_eq!(
        s.services().audit.verify().expect("verify").first_broken,
        None
    );
    s.stop().await;
}

fn b64(s: &str) -> String {
    data_encoding::BASE64.encode(s.as_bytes())
}

#[tokio::test]
async fn smtp_auth_failures_get_421_and_share_the_limit_with_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    cfg.listen.submissions = "127.0.0.1:0".into();
    let s = TestServer::start_with(dir, cfg).await;
    let (_, key) = s.agent("smtpflood", &["mail:send"]).await;
    let tls = legate_tests::tls_connector(&s.data_dir());
    let before = audit_len(&s);
    let (mut c, _) =
        legate_tests::SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let wrong = b64(&format!("\0smtpflood@agents.test\0lg_{}", "C".repeat(52)));
    let mut replies = Vec::new();
    for _ in 0..20 {
        let r = c.cmd(&format!("AUTH PLAIN {wrong}")).await;
        let last = r.starts_with("421");
        replies.push(r);
        if last {
            break;
        }
    }
    let last = replies.last().expect("a reply");
    assert!(last.starts_with("421 4.7.0"), "{replies:?}");
    assert_eq!(
        replies.len(),
        10,
        "the tenth failure is refused: {replies:?}"
    );
    // A new connection is refused at once, even with the right key...
    let (mut c, _) =
        legate_tests::SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let right = b64(&format!("\0smtpflood@agents.test\0{key}"));
    assert!(c
        .cmd(&format!("AUTH PLAIN {right}"))
        .await
        .starts_with("421 4.7.0"));
    // ...and so is the same address on the API: one limiter (a valid API key still gets in).
    let bad = format!("lg_{}", "D".repeat(52));
    assert_eq!(s.call("GET", "/v1/whoami", Some(&bad), None).await.0, 429);
    assert_eq!(s.call("GET", "/v1/whoami", Some(&key), None).await.0, 200);
    s.services().audit.flush_denials(true).expect("flush");
    assert!(audit_len(&s) - before <= 24);
    s.stop().await;
}

#[tokio::test]
async fn audit_verify_names_a_truncated_tail_and_checks_a_recorded_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    let v = legate_tests::cli_init(&data, "cut.test");
    let cfg = v["config"].as_str().expect("config path").to_string();
    let run = |args: &[&str]| legate_tests::cli(&cfg, args);
    for name in ["one", "two", "three"] {
        let o = run(&["agent", "create", name, "--scopes", "mail:read"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = run(&["audit", "verify"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}");
    let head = out
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .expect("verify prints the head")
        .to_string();
    assert!(out.contains("signed head checkpoint matches"), "{out}");
    assert!(run(&["audit", "verify", "--head", &head]).status.success());

    // Offline, delete the newest entries from the store.
    {
        let store = legate::store::Store::open(&data).expect("store");
        let (k, _) = store
            .last(legate::store::Tree::Audit)
            .expect("read")
            .expect("a page");
        store
            .remove(legate::store::Tree::Audit, &k)
            .expect("remove");
        store.flush_blocking().expect("flush");
    }
    let o = run(&["audit", "verify"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("truncated"), "{out}");
    // The externally recorded head is missing too, even with the checkpoint file gone.
    std::fs::remove_file(data.join(legate::audit::HEAD_FILE)).expect("rm checkpoint");
    let o = run(&["audit", "verify", "--head", &head]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("missing") || out.contains("truncated"),
        "{out}"
    );
}

/// Sends one raw HTTP/1.1 request and returns the whole response text.
async fn raw_get<S>(mut io: S, path: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: agents.test\r\nConnection: close\r\n\r\n");
    io.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = io.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_stop_a_new_client() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    cfg.api.header_read_timeout_secs = 2;
    let s = TestServer::start_with(dir, cfg).await;
    let addr: SocketAddr = s.base.trim_start_matches("http://").parse().expect("addr");
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // A client from another address is served within a second.
    let started = std::time::Instant::now();
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind");
    let c = sock.connect(addr).await.expect("connect");
    let resp = raw_get(c, "/healthz").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "served in {:?}",
        started.elapsed()
    );
    // Past api.max_connections_per_ip (256) the idle sockets were closed at once, and the
    // ones admitted are closed by the header read timeout (slowloris), not held forever.
    let mut closed = 0;
    for c in idle.iter_mut() {
        let mut b = [0u8; 1];
        match tokio::time::timeout(std::time::Duration::from_secs(15), c.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            other => panic!("idle connection still open: {other:?}"),
        }
    }
    assert_eq!(closed, 1000);
    s.stop().await;
}

#[tokio::test]
async fn plain_http_redirects_to_https_in_redirect_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    cfg.listen.https = "127.0.0.1:0".into();
    cfg.listen.http_mode = legate::config::HttpMode::Redirect;
    cfg.server.public_url = "https://agents.test".into();
    let s = TestServer::start_with(dir, cfg).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = http
        .post(format!("{}/v1/messages/send?x=1", s.base))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(
        r.headers()["location"],
        "https://agents.test/v1/messages/send?x=1"
    );
    // Probes and metrics stay on plain HTTP (orchestrators call them there); nothing else.
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let r = http
            .get(format!("{}{probe}", s.base))
            .send()
            .await
            .expect("probe");
        assert_eq!(r.status().as_u16(), 200, "{probe}");
    }
    let r = http
        .get(format!("{}/v1/whoami", s.base))
        .send()
        .await
        .expect("whoami");
    assert_eq!(r.status().as_u16(), 308);
    // The API itself is on the HTTPS listener.
    let https = s
        .running
        .as_ref()
        .and_then(|r| r.https_addr)
        .expect("https");
    let tcp = tokio::net::TcpStream::connect(https)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("mx.agents.test").expect("name");
    let tls = legate_tests::tls_connector(&s.data_dir())
        .connect(name, tcp)
        .await
        .expect("handshake");
    let resp = raw_get(tls, "/healthz").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    s.stop().await;
}
