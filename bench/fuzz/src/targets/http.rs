//! The REST router and the MCP JSON-RPC endpoint, in-process (`tower::ServiceExt::oneshot`).
//!
//! An input is `<who> <METHOD> <path>\n<body>` with `who` one of `admin`, `agent`, `none`
//! (anything else: the agent). Oracle: never a 5xx (503 aside), never a hang (long-polls
//! aside), and on REST every 4xx is the `{"error": {"code", "message"}}` JSON shape.

use super::server::Fixture;
use crate::{Target, Verdict};
use std::time::Duration;

pub struct Http {
    mcp: bool,
    fixture: Option<Fixture>,
    error: String,
}

impl Http {
    pub fn rest() -> Self {
        Self::with(false)
    }

    pub fn mcp() -> Self {
        Self::with(true)
    }

    fn with(mcp: bool) -> Self {
        match Fixture::new() {
            Ok(f) => Self {
                mcp,
                fixture: Some(f),
                error: String::new(),
            },
            Err(e) => Self {
                mcp,
                fixture: None,
                error: e,
            },
        }
    }
}

const REST_DICT: &[&[u8]] = &[
    b"admin POST /v1/agents\n",
    b"agent POST /v1/messages/send\n",
    b"agent PUT /v1/vault/x\n",
    b"agent POST /v1/vault/x/totp\n",
    b"agent PATCH /v1/messages/@MSG@\n",
    b"agent POST /v1/messages/@MSG@/reply\n",
    b"agent GET /v1/messages?from=",
    b"agent POST /v1/identity/sign\n",
    b"agent POST /v1/identity/token\n",
    b"\"to\":[\"a@b.test\"]",
    b"\"subject\":\"",
    b"\"headers\":{\"X-A\":\"",
    b"\"attachments\":[{\"filename\":\"",
    b"\"totp\":\"otpauth://totp/x?secret=",
    b"\"scopes\":[\"mail:read\"]",
    b"\"at\":",
    b"[[[[[[[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":",
    b"\\u0000",
    b"\\ud800",
    b"\\r\\n",
    b"1e999",
    b"null",
    b"true",
    b"\"",
    b",",
    b"%0d%0a",
    b"&limit=",
    b"&cursor=",
];

const MCP_DICT: &[&[u8]] = &[
    b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"",
    b"\"arguments\":{",
    b"\"method\":\"initialize\"",
    b"\"method\":\"tools/list\"",
    b"\"method\":\"notifications/initialized\"",
    b"\"method\":\"ping\"",
    b"\"id\":null",
    b"\"id\":\"x\"",
    b"mail_send",
    b"mail_list_messages",
    b"mail_get_message",
    b"mail_wait_for_message",
    b"vault_store",
    b"vault_totp",
    b"identity_sign",
    b"identity_token",
    b"audit_list",
    b"[[[[[[[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":",
    b"\\u0000",
    b"\\ud800",
    b"1e999",
    b"null",
    b"\"",
    b",",
];

impl Target for Http {
    fn name(&self) -> &'static str {
        if self.mcp {
            "mcp"
        } else {
            "rest"
        }
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        if self.mcp {
            MCP_DICT
        } else {
            REST_DICT
        }
    }

    fn max_len(&self) -> usize {
        256 * 1024
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        let Some(f) = &self.fixture else {
            return Verdict::Bad(format!("fixture: {}", self.error));
        };
        let input = f.expand(input);
        let (head, body) = match input.iter().position(|&b| b == b'\n') {
            Some(p) => (&input[..p], &input[p + 1..]),
            None => (&input[..], &[][..]),
        };
        let head = String::from_utf8_lossy(head);
        let mut words = head.split(' ');
        let who = words.next().unwrap_or("");
        let method = words.next().unwrap_or("POST").to_string();
        let path = words.next().unwrap_or("/").to_string();
        let token = match who {
            "admin" => Some(f.admin.as_str()),
            "none" => None,
            _ => Some(f.agent_key.as_str()),
        };
        let m = method.to_ascii_uppercase();
        // Keep the fixture usable: no revoking or rewriting the agent or the admin token.
        let lower = path.to_ascii_lowercase();
        if (m == "DELETE" || m == "PATCH" || lower.contains("revoke"))
            && (lower.contains("/v1/agents") || lower.contains("/v1/admin"))
        {
            return Verdict::Ok;
        }
        // Verifying against a DID fetches did:web documents from the named host: never from
        // the fuzzer (no network beyond this process).
        let verify = lower.contains("identity/verify") || contains(body, b"identity_verify");
        if verify
            && [&b"did:"[..], b"token", b"kid", b"%3a"]
                .iter()
                .any(|w| contains(&body.to_ascii_lowercase(), w))
        {
            return Verdict::Ok;
        }
        let waits = lower.contains("wait") || body.windows(4).any(|w| w == b"wait");
        let answer = f.rt.block_on(f.request(
            &method,
            &path,
            token,
            body,
            self.mcp,
            // A long-poll may legitimately hold its answer: give it 2 s, then move on.
            Duration::from_secs(if waits { 2 } else { 10 }),
        ));
        let (status, v) = match answer {
            Ok(Some(a)) => a,
            Ok(None) if waits => return Verdict::Ok,
            Ok(None) => return Verdict::Bad(format!("no answer in 10 s to {m} {}", shape(&path))),
            // An unbuildable request (bad method or URI) never reaches the server.
            Err(_) => return Verdict::Ok,
        };
        crate::trace(|| format!("{m} {path} -> {status} {}", excerpt(&v)));
        if status >= 500 && status != 503 {
            return Verdict::Bad(format!("{status} on {m} {}: {}", shape(&path), excerpt(&v)));
        }
        if !self.mcp && (400..500).contains(&status) {
            let e = &v["error"];
            if !e["code"].is_string() || !e["message"].is_string() {
                return Verdict::Bad(format!(
                    "{status} on {m} {} is not a JSON error: {}",
                    shape(&path),
                    excerpt(&v)
                ));
            }
        }
        Verdict::Ok
    }
}

/// The route without ids or query, so one bug is one finding.
fn shape(path: &str) -> String {
    let p = path.split('?').next().unwrap_or("");
    p.split('/')
        .take(4)
        .map(|s| if s.len() > 20 { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn excerpt(v: &serde_json::Value) -> String {
    let s = v.to_string();
    s.chars().take(160).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
