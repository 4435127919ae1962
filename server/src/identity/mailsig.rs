//! Agent-signed mail (issue 25 §5): which agent of which operator sent a message, and under
//! whose authority — DKIM only proves the domain.
//!
//! Outbound, before DKIM signing (and covered by it, see `mailauth::SIGNED_HEADERS`):
//!
//! ```text
//! Agent-Signature: v=1; did=did:web:agents.acme.com:agents:ops;
//!  jws=eyJhbGciOiJFZERTQSIs...<folded>
//! ```
//!
//! `jws` is a compact JWS, `{"alg":"EdDSA","typ":"agent-signature+jws","kid":"<DID URL>"}`,
//! over `{"iss","sub" (the DID), "mid" (Message-ID without brackets), "from" (the From
//! address), "date" (the Date header, whitespace collapsed), "chain" (the delegation chain,
//! authorising human first), "iat"}`. The JWS is folded for the 998-octet line limit;
//! verifiers drop all whitespace from it. No IETF draft defines an agent-identity mail
//! header (DKIM2 and ARC sign for domains, not principals), so the name is ours.
//!
//! Inbound, the header is checked against the DID document of its `did` (ours from the
//! store; another host's fetched with the did:web fetch limits) and bound to the message:
//! the signed Message-ID, From and Date must be this message's, and the From address must be
//! the DID document's `mailto:` service. A header copied onto another message, or one made
//! with another key, reads `verified: false` with the reason.

use super::token::{self, ed25519_verify};
use super::verdict::{Reason, Verdict};
use super::{Agent, IdentityError, IdentityService};
use crate::util::now_unix;
use data_encoding::BASE64URL_NOPAD;
use serde_json::{json, Value};

pub const HEADER: &str = "Agent-Signature";
const TYP: &str = "agent-signature+jws";
/// Longest header we parse; ours are about 1 KiB.
const MAX_HEADER_LEN: usize = 8 * 1024;
const MAX_CHAIN_LINKS: usize = 16;
const MAX_LINK_LEN: usize = 512;
/// Folded line width of the JWS.
const FOLD: usize = 76;

/// The fields of a message that its Agent-Signature covers.
#[derive(Debug, Clone, PartialEq)]
struct Covered {
    mid: String,
    from: String,
    date: String,
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Message-ID, From address and Date of a message; `None` if any is missing.
fn covered(raw: &[u8]) -> Option<Covered> {
    let m = mail_parser::MessageParser::default().parse_headers(raw)?;
    let mid = m.message_id()?.trim().to_string();
    let from = m.from()?.first()?.address()?.trim().to_ascii_lowercase();
    let date = m
        .header_raw("Date")
        .map(collapse)
        .filter(|d| !d.is_empty())?;
    Some(Covered { mid, from, date })
}

/// Every unfolded `Agent-Signature` value in the header section.
fn header_values(raw: &[u8]) -> Vec<String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(c) = current.as_mut() {
                c.push_str(line);
            }
            continue;
        }
        out.extend(current.take());
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case(HEADER) {
                current = Some(value.to_string());
            }
        }
    }
    out.extend(current);
    out
}

/// `v=1; did=...; jws=...` -> (did, jws without whitespace).
fn parse_value(v: &str) -> Result<(String, String), String> {
    if v.len() > MAX_HEADER_LEN {
        return Err("the header is too long".into());
    }
    let (mut version, mut did, mut jws) = (None, None, None);
    for part in v.split(';') {
        let Some((k, val)) = part.split_once('=') else {
            continue;
        };
        match k.trim() {
            "v" => version = Some(val.trim().to_string()),
            "did" => did = Some(val.trim().to_string()),
            "jws" => jws = Some(val.split_whitespace().collect::<String>()),
            _ => {}
        }
    }
    if version.as_deref() != Some("1") {
        return Err("only v=1 is understood".into());
    }
    match (did, jws) {
        (Some(d), Some(j)) if !d.is_empty() && !j.is_empty() => Ok((d, j)),
        _ => Err("did= and jws= are required".into()),
    }
}

fn fold(jws: &str) -> String {
    let chunks: Vec<&str> = jws
        .as_bytes()
        .chunks(FOLD)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    chunks.join("\r\n ")
}

fn b64_json(v: &Value) -> String {
    BASE64URL_NOPAD.encode(v.to_string().as_bytes())
}

impl IdentityService {
    /// The `Agent-Signature:` header line (with CRLF) for `raw`, sent by `agent`; `None`
    /// when the message has no Message-ID, From or Date to bind it to.
    pub fn agent_mail_signature(
        &self,
        agent: &Agent,
        raw: &[u8],
    ) -> Result<Option<String>, IdentityError> {
        let Some(c) = covered(raw) else {
            return Ok(None);
        };
        let did = self.agent_did(agent);
        let custody = self.custody()?;
        let claims = json!({
            "iss": did, "sub": did, "mid": c.mid, "from": c.from, "date": c.date,
            "chain": self.public_chain(agent), "iat": now_unix(),
        });
        for _ in 0..3 {
            let keys = custody
                .public_keys(&agent.id)
                .map_err(IdentityError::Keys)?;
            let current = keys
                .last()
                .ok_or_else(|| IdentityError::Keys("the agent has no identity key".into()))?;
            let header =
                json!({"alg": "EdDSA", "typ": TYP, "kid": format!("{did}#{}", current.kid)});
            let input = format!("{}.{}", b64_json(&header), b64_json(&claims));
            let (used, sig) = custody
                .sign(&agent.id, input.as_bytes())
                .map_err(IdentityError::Keys)?;
            if used != current.kid {
                continue;
            }
            let jws = format!("{input}.{}", BASE64URL_NOPAD.encode(&sig));
            return Ok(Some(format!(
                "{HEADER}: v=1; did={did};\r\n jws={}\r\n",
                fold(&jws)
            )));
        }
        Err(IdentityError::Keys(
            "the identity key kept changing while signing".into(),
        ))
    }

    /// `trust.agent` for a received message: `None` when it carries no Agent-Signature,
    /// else `{did, chain, verified, reason, detail?}`.
    ///
    /// `from_authenticated`: the From domain passed DMARC aligned. Without that no signature
    /// can verify (a DID document may list any address), so a DID on another host is not
    /// resolved: otherwise anyone could make this server fetch from any host once per
    /// message they send it, and hold their own SMTP transaction open while it does.
    pub async fn verify_agent_mail(&self, raw: &[u8], from_authenticated: bool) -> Option<Value> {
        let values = header_values(raw);
        let first = values.first()?;
        let (did, chain, verdict) = if values.len() > 1 {
            (
                Value::Null,
                Value::Null,
                Verdict::fail(Reason::Malformed, "more than one Agent-Signature header"),
            )
        } else {
            self.check_agent_mail(first, raw, from_authenticated).await
        };
        let mut v = json!({
            "did": did,
            "chain": chain,
            "verified": verdict.valid(),
            "reason": verdict.reason.code(),
        });
        if let Some(d) = verdict.detail {
            v["detail"] = json!(d);
        }
        Some(v)
    }

    async fn check_agent_mail(
        &self,
        value: &str,
        raw: &[u8],
        from_authenticated: bool,
    ) -> (Value, Value, Verdict) {
        let (did, jws) = match parse_value(value) {
            Ok(x) => x,
            Err(e) => {
                return (
                    Value::Null,
                    Value::Null,
                    Verdict::fail(Reason::Malformed, e),
                )
            }
        };
        let did_v = json!(did);
        let jwt = match token::parse(&jws) {
            Ok(j) => j,
            Err(v) => return (did_v, Value::Null, v),
        };
        // The chain is shown even when unverified (flagged so), never trusted.
        let chain = match jwt.claims.get("chain").and_then(Value::as_array) {
            Some(links)
                if links.len() <= MAX_CHAIN_LINKS
                    && links
                        .iter()
                        .all(|l| l.as_str().is_some_and(|s| s.len() <= MAX_LINK_LEN)) =>
            {
                Value::Array(links.clone())
            }
            _ => {
                let v = Verdict::fail(Reason::Malformed, "chain must be a short list of strings");
                return (did_v, Value::Null, v);
            }
        };
        let fail = |r: Reason, d: &str| (did_v.clone(), chain.clone(), Verdict::fail(r, d));
        if jwt.header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
            return fail(Reason::UnsupportedAlgorithm, "only EdDSA is accepted");
        }
        let kid = jwt.header.get("kid").and_then(Value::as_str).unwrap_or("");
        let (kid_did, _) = super::did::split_did_url(kid);
        let iss = jwt.claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if !super::did::same_did_url(kid_did, &did) || !super::did::same_did_url(iss, &did) {
            return fail(Reason::DidMismatch, "did, the kid's DID and iss must agree");
        }
        if !from_authenticated && !self.is_local_did(&did) {
            return fail(
                Reason::FromNotAuthenticated,
                "the From domain is not authenticated (no aligned DMARC pass): the DID was not resolved",
            );
        }
        let (keys, emails) = match self.resolve_agent(&did).await {
            Ok(x) => x,
            Err(v) => return (did_v, chain, v),
        };
        let Some(key) = keys.iter().find(|k| k.is_named(kid)) else {
            return fail(
                Reason::UnknownKey,
                "the DID document does not publish this kid",
            );
        };
        if !ed25519_verify(&key.public, jwt.signing_input.as_bytes(), &jwt.signature) {
            return fail(Reason::BadSignature, "the signature does not verify");
        }
        let Some(c) = covered(raw) else {
            return fail(
                Reason::Malformed,
                "the message has no Message-ID, From or Date",
            );
        };
        let claim = |n: &str| jwt.claims.get(n).and_then(Value::as_str).unwrap_or("");
        if claim("mid") != c.mid
            || claim("date") != c.date
            || !claim("from").eq_ignore_ascii_case(&c.from)
        {
            return fail(
                Reason::BadSignature,
                "the signature was made for another message (Message-ID, From or Date differ)",
            );
        }
        if !emails.iter().any(|e| e.eq_ignore_ascii_case(&c.from)) {
            return fail(
                Reason::DidMismatch,
                "the DID document does not list the From address",
            );
        }
        (
            did_v,
            chain,
            Verdict {
                reason: Reason::Ok,
                kid: Some(key.id.clone()),
                claims: None,
                detail: None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "From: Ops <OPS@a.test>\r\nDate: Sun, 6 Dec 2026\r\n  18:00:00 +0000\r\nMessage-ID: <m1@a.test>\r\nAgent-Signature: v=1; did=did:web:a.test:agents:ops;\r\n jws=abc\r\n def\r\nSubject: x\r\n\r\nAgent-Signature: not a header\r\n";

    #[test]
    fn finds_binds_and_parses() {
        let c = covered(MSG.as_bytes()).unwrap();
        assert_eq!(
            c,
            Covered {
                mid: "m1@a.test".into(),
                from: "ops@a.test".into(),
                date: "Sun, 6 Dec 2026 18:00:00 +0000".into()
            }
        );
        let values = header_values(MSG.as_bytes());
        assert_eq!(values.len(), 1, "the body line is not a header");
        let (did, jws) = parse_value(&values[0]).unwrap();
        assert_eq!(
            (did.as_str(), jws.as_str()),
            ("did:web:a.test:agents:ops", "abcdef")
        );
        for bad in [
            "v=2; did=x; jws=y",
            "v=1; did=x",
            "v=1; jws=y",
            "",
            &"v=1;".repeat(3000),
        ] {
            assert!(parse_value(bad).is_err(), "{bad}");
        }
        assert!(covered(b"From: a@b.test\r\n\r\nbody").is_none());
    }

    #[test]
    fn folding_keeps_lines_short_and_unfolds_back() {
        let jws = "x".repeat(1000);
        let folded = fold(&jws);
        assert!(folded.split("\r\n").all(|l| l.len() <= FOLD + 1));
        let line = format!("{HEADER}: v=1; did=d;\r\n jws={folded}\r\n\r\n");
        let (_, back) = parse_value(&header_values(line.as_bytes())[0]).unwrap();
        assert_eq!(back, jws);
    }
}
