//! Fetching remote did:web documents, defensively: the URL comes from whoever presented a
//! token or a DID to our verify endpoint, so the fetch is bounded in every dimension.
//!
//! - HTTPS only, and every redirect must stay HTTPS; at most [`MAX_REDIRECTS`] of them.
//! - Connect and read timeouts, plus an overall deadline so a slow drip cannot hold a request.
//! - At most [`MAX_DOCUMENT_BYTES`] of body, checked while streaming, not after.
//! - Host names must resolve to public addresses and IP literals are refused, so a verify
//!   call cannot be used to probe loopback or the operator's private network.
//! - No proxies from the environment (they would bypass the address check).
//!
//! `danger_allow_http` lifts the HTTPS and public-address rules, for tests that resolve
//! another legate over plain HTTP on loopback. Never set it in production.

use crate::net::is_public;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// did:web documents are a few kilobytes; anything bigger is not one.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
pub const MAX_REDIRECTS: usize = 3;
/// Connect and per-read timeout.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Whole fetch, redirects included.
pub const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct FetchLimits {
    pub timeout: Duration,
    pub deadline: Duration,
    pub max_bytes: usize,
    pub max_redirects: usize,
    pub danger_allow_http: bool,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            timeout: TIMEOUT,
            deadline: DEADLINE,
            max_bytes: MAX_DOCUMENT_BYTES,
            max_redirects: MAX_REDIRECTS,
            danger_allow_http: false,
        }
    }
}

/// What the remote host answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    Document(Value),
    /// 410: the DID is deactivated (did:web §3.2.4).
    Gone,
    NotFound,
}

pub struct DidFetcher {
    client: reqwest::Client,
    limits: FetchLimits,
}

impl DidFetcher {
    pub fn new(limits: FetchLimits) -> Result<DidFetcher, String> {
        let allow_http = limits.danger_allow_http;
        let max = limits.max_redirects;
        let policy = Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                return attempt.error(format!("more than {max} redirects"));
            }
            match check_target(attempt.url(), allow_http) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        });
        let mut b = reqwest::Client::builder()
            .redirect(policy)
            .connect_timeout(limits.timeout)
            .read_timeout(limits.timeout)
            .timeout(limits.deadline)
            .no_proxy()
            .user_agent(concat!(
                "legate/",
                env!("CARGO_PKG_VERSION"),
                " did-resolver"
            ));
        if !allow_http {
            b = b.https_only(true).dns_resolver(Arc::new(PublicOnly));
        }
        let client = b.build().map_err(|e| error_chain(&e))?;
        Ok(DidFetcher { client, limits })
    }

    /// GETs a document URL within the limits; any failure is a message saying which limit or
    /// step failed.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, String> {
        let u = reqwest::Url::parse(url).map_err(|e| format!("bad URL {url}: {e}"))?;
        check_target(&u, self.limits.danger_allow_http)?;
        let mut resp = self
            .client
            .get(u)
            .header("accept", "application/did+json, application/json")
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::GONE => return Ok(Fetched::Gone),
            StatusCode::NOT_FOUND => return Ok(Fetched::NotFound),
            s => return Err(format!("the host answered HTTP {}", s.as_u16())),
        }
        let max = self.limits.max_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(format!("the document is larger than {max} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
            if body.len() + chunk.len() > max {
                return Err(format!("the document is larger than {max} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| format!("the document is not JSON: {e}"))?;
        if !doc.is_object() {
            return Err("the document is not a JSON object".into());
        }
        Ok(Fetched::Document(doc))
    }
}

/// The scheme and host rules every URL (first or redirected) must pass.
fn check_target(url: &reqwest::Url, allow_http: bool) -> Result<(), String> {
    if allow_http {
        return match url.scheme() {
            "https" | "http" => Ok(()),
            s => Err(format!("refusing the {s}: scheme")),
        };
    }
    if url.scheme() != "https" {
        return Err(format!(
            "refusing {url}: did:web documents are fetched over HTTPS only"
        ));
    }
    match url.host() {
        Some(url::Host::Domain(_)) => Ok(()),
        Some(_) => Err(format!(
            "refusing {url}: an IP address is not a did:web host"
        )),
        None => Err(format!("refusing {url}: no host")),
    }
}

/// The system resolver, keeping only public addresses.
pub(crate) struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An error and its causes on one line (reqwest's own message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback HTTP server answering each connection with the next canned response
    /// (`{port}` is replaced by its own port); `None` accepts and never answers.
    async fn serve(responses: Vec<Option<String>>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for r in responses {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                match r {
                    Some(r) => {
                        let _ = s
                            .write_all(r.replace("{port}", &port.to_string()).as_bytes())
                            .await;
                        let _ = s.shutdown().await;
                    }
                    None => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            }
        });
        port
    }

    fn ok(body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    fn redirect() -> Option<String> {
        Some("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/next\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into())
    }

    fn loopback(timeout_ms: u64) -> DidFetcher {
        DidFetcher::new(FetchLimits {
            timeout: Duration::from_millis(timeout_ms),
            deadline: Duration::from_millis(timeout_ms * 2),
            danger_allow_http: true,
            ..Default::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn fetches_and_classifies() {
        let port = serve(vec![
            ok(r#"{"id":"did:web:x"}"#),
            Some("HTTP/1.1 410 Gone\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()),
            Some("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()),
            ok("[1,2]"),
            Some("HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()),
        ])
        .await;
        let f = loopback(2000);
        let url = format!("http://127.0.0.1:{port}/did.json");
        assert_eq!(
            f.fetch(&url).await.unwrap(),
            Fetched::Document(serde_json::json!({"id": "did:web:x"}))
        );
        assert_eq!(f.fetch(&url).await.unwrap(), Fetched::Gone);
        assert_eq!(f.fetch(&url).await.unwrap(), Fetched::NotFound);
        assert!(f
            .fetch(&url)
            .await
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(f.fetch(&url).await.unwrap_err().contains("HTTP 500"));
    }

    #[tokio::test]
    async fn size_cap_redirect_limit_and_timeout() {
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_DOCUMENT_BYTES));
        // a chunked body without a length is cut off while streaming
        let chunked = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        );
        let port = serve(vec![ok(&big), Some(chunked)]).await;
        let f = loopback(2000);
        let url = format!("http://127.0.0.1:{port}/did.json");
        assert!(f.fetch(&url).await.unwrap_err().contains("larger than"));
        assert!(f.fetch(&url).await.unwrap_err().contains("larger than"));

        // three redirects are followed, a fourth is refused
        let port = serve(vec![redirect(), redirect(), redirect(), ok("{}")]).await;
        let url = format!("http://127.0.0.1:{port}/did.json");
        assert_eq!(
            f.fetch(&url).await.unwrap(),
            Fetched::Document(serde_json::json!({}))
        );
        let port = serve(vec![
            redirect(),
            redirect(),
            redirect(),
            redirect(),
            ok("{}"),
        ])
        .await;
        let url = format!("http://127.0.0.1:{port}/did.json");
        assert!(f.fetch(&url).await.unwrap_err().contains("redirects"));

        // a server that never answers is given up on
        let port = serve(vec![None]).await;
        let started = std::time::Instant::now();
        let err = f
            .fetch(&format!("http://127.0.0.1:{port}/did.json"))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    }

    #[tokio::test]
    async fn production_rules_refuse_http_ip_literals_and_private_names() {
        let f = DidFetcher::new(FetchLimits::default()).unwrap();
        let e = f.fetch("http://example.com/did.json").await.unwrap_err();
        assert!(e.contains("HTTPS only"), "{e}");
        let e = f.fetch("https://127.0.0.1/did.json").await.unwrap_err();
        assert!(e.contains("IP address"), "{e}");
        // "localhost" resolves, but only to loopback: refused before any connection
        let e = f.fetch("https://localhost:1/did.json").await.unwrap_err();
        assert!(e.contains("no public address"), "{e}");
        let https = reqwest::Url::parse("https://a.test/").unwrap();
        assert!(check_target(&https, false).is_ok());
        let redirected = reqwest::Url::parse("http://a.test/").unwrap();
        assert!(check_target(&redirected, false).is_err());
        assert!(check_target(&redirected, true).is_ok());
    }

    #[test]
    fn public_addresses() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
