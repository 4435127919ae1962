//! One webhook POST: signed per Standard Webhooks, to an address the SSRF guard allowed,
//! with no redirects followed and a deadline.
//!
//! The client resolves names through [`crate::net::GuardedResolver`] (the one definition of
//! "not public", shared with did:web fetches), so the address checked is the address
//! connected to; an IP literal never reaches a resolver and is checked here with the same
//! rule. A redirect answer is a failed attempt: following it would let an endpoint send us
//! anywhere, the operator's network included.

use crate::config::WebhooksConfig;
use crate::net::AllowPrivate;
use std::sync::Arc;
use std::time::Duration;

/// The most of an endpoint's answer body read (and thrown away) to keep its connection.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// 2xx.
    Ok(u16),
    /// 410: the receiver wants no more; the webhook is disabled.
    Gone,
    /// Another status (3xx included: redirects are not followed).
    Status(u16),
    /// No answer: refused address, connect error, timeout.
    Error(String),
}

pub struct Sender {
    client: reqwest::Client,
    allow: AllowPrivate,
    allow_http: bool,
}

impl Sender {
    pub fn new(cfg: &WebhooksConfig) -> Result<Sender, String> {
        let allow = AllowPrivate::parse(&cfg.allow_private)?;
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .no_proxy()
            .https_only(!cfg.danger_allow_http)
            .dns_resolver(Arc::new(crate::net::GuardedResolver {
                allow: allow.clone(),
            }))
            .user_agent(concat!("legate/", env!("CARGO_PKG_VERSION"), " webhooks"))
            .build()
            .map_err(|e| crate::net::error_chain(&e))?;
        Ok(Sender {
            client,
            allow,
            allow_http: cfg.danger_allow_http,
        })
    }

    /// POSTs `body` with the Standard Webhooks headers.
    pub async fn post(
        &self,
        url: &str,
        msg_id: &str,
        keys: &[impl AsRef<[u8]>],
        body: Vec<u8>,
    ) -> Sent {
        let u = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return Sent::Error(format!("bad URL: {e}")),
        };
        match u.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            s => return Sent::Error(format!("refusing the {s}: scheme")),
        }
        let literal = match u.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Sent::Error("no host".into()),
        };
        if let Some(ip) = literal {
            if !self.allow.permits(&ip.to_string(), ip) {
                let why = crate::net::non_public_reason(ip).unwrap_or("not allowed");
                return Sent::Error(format!(
                    "refusing {ip}: {why} address (not in webhooks.allow_private)"
                ));
            }
        }
        if keys.is_empty() {
            return Sent::Error("the webhook has no signing secret".into());
        }
        let ts = crate::util::now_unix();
        let sig = super::sign::header(keys, msg_id, ts, &body);
        let resp = self
            .client
            .post(u)
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await;
        match resp {
            Ok(mut r) => {
                let code = r.status().as_u16();
                // Read (a bounded amount of) the answer's body: a connection whose body
                // was left unread is closed, not reused, and every event then paid a new
                // connection (a TLS handshake on a real endpoint).
                let mut seen = 0usize;
                while let Ok(Some(chunk)) = r.chunk().await {
                    seen += chunk.len();
                    if seen > MAX_ANSWER_BYTES {
                        break;
                    }
                }
                match code {
                    200..=299 => Sent::Ok(code),
                    410 => Sent::Gone,
                    c => Sent::Status(c),
                }
            }
            Err(e) => Sent::Error(crate::net::error_chain(&e)),
        }
    }
}
