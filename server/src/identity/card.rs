//! A2A agent cards (A2A v1 §8): a public JSON description of each agent — its name, its
//! endpoints (the mail address; MCP on this server) and its DID — signed so a peer can check
//! who published it.
//!
//! **Signature** (A2A v1 §8.4): a JWS (RFC 7515) whose payload is the RFC 8785 (JCS)
//! canonical form of the card without its `signatures` member, detached: the card carries
//! `signatures: [{protected, signature}]`, and a verifier re-canonicalizes the card to rebuild
//! `protected.payload`. The protected header is `{"alg": "EdDSA", "typ": "JOSE", "kid":
//! <DID URL of the key>, "jku": <the agent's jwks.json>}`, the same key and kid as identity
//! tokens.
//!
//! **Shape.** The card holds only fields the A2A v1 schema defines, and none that the SDKs'
//! canonicalization would drop (empty strings, lists or objects; `false`; numbers inside
//! `params`): a verifier that parses the card into the A2A model and canonicalizes *that*
//! must get our bytes. The DID, email and delegation chain ride in a
//! `capabilities.extensions` entry ([`EXTENSION_URI`]).
//!
//! **Revocation.** A revoked agent's card is served with `410 Gone`, unsigned (its key is
//! shredded), with its status `revoked` in the extension and the description.

use super::{Agent, IdentityError, IdentityService, PublicDoc};
use crate::util::rfc3339;
use data_encoding::BASE64URL_NOPAD;
use serde_json::{json, Value};

pub const CARD_PATH: &str = ".well-known/agent-card.json";
/// Names the extension that carries the agent's DID and delegation chain.
pub const EXTENSION_URI: &str = "urn:legate:agent-identity:v1";
const A2A_VERSION: &str = "1.0";

/// RFC 8785: object members sorted by their UTF-16 code units, no whitespace, strings in
/// the ECMAScript escaping (which serde_json's matches), integers as written. Cards hold no
/// fractional numbers.
pub fn jcs(v: &Value) -> String {
    let mut out = String::new();
    write_jcs(v, &mut out);
    out
}

fn write_jcs(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_jcs(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_jcs(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

impl IdentityService {
    /// `https://<host>/agents/<local>/.well-known/agent-card.json` (or the `orgs/` form).
    pub fn agent_card_url(&self, agent: &Agent) -> String {
        format!("{}/{CARD_PATH}", self.agent_base_url(agent))
    }

    /// `https://<host>/agents/<local>`: where the agent's documents live.
    fn agent_base_url(&self, agent: &Agent) -> String {
        let origin = self.public_origin();
        match self.default_domain() {
            Some(d) if d != agent.domain => {
                format!("{origin}/orgs/{}/agents/{}", agent.domain, agent.local)
            }
            _ => format!("{origin}/agents/{}", agent.local),
        }
    }

    fn unsigned_card(&self, agent: &Agent, did: &str, revoked: bool) -> Value {
        let origin = self.public_origin();
        let address = agent.address();
        let name = if agent.name.trim().is_empty() {
            address.clone()
        } else {
            agent.name.clone()
        };
        let chain = self.public_chain(agent);
        let mut params = json!({
            "did": did,
            "email": address,
            "chain": chain,
            "status": if revoked { "revoked" } else { "active" },
            "didDocument": format!("{}/did.json", self.agent_base_url(agent)),
        });
        let description = if revoked {
            let when = rfc3339(agent.revoked_at.unwrap_or_default());
            params["revokedAt"] = json!(when);
            format!("REVOKED on {when}: {address} no longer acts for its operator. Do not trust messages or requests signed by {did}.")
        } else {
            format!("{name}, an AI agent at {address}, acting under the delegation chain {}. Identity: {did}.", chain.join(" > "))
        };
        json!({
            "name": name,
            "description": description,
            "version": env!("CARGO_PKG_VERSION"),
            "provider": {"organization": agent.domain, "url": origin},
            "supportedInterfaces": [
                {"url": format!("mailto:{address}"), "protocolBinding": "EMAIL", "protocolVersion": A2A_VERSION},
                {"url": format!("{origin}/mcp"), "protocolBinding": "MCP", "protocolVersion": A2A_VERSION},
            ],
            "capabilities": {
                "extensions": [{
                    "uri": EXTENSION_URI,
                    "description": "The agent's did:web identifier, address and delegation chain (authorising human first).",
                    "params": params,
                }],
            },
            "defaultInputModes": ["text/plain", "message/rfc822"],
            "defaultOutputModes": ["text/plain", "message/rfc822"],
            "skills": [{
                "id": "email",
                "name": "Email",
                "description": format!("Write to {address}; replies come from the same address, DKIM-signed and with an Agent-Signature header."),
                "tags": ["email"],
            }],
        })
    }

    /// `GET [/orgs/{domain}]/agents/{local}/.well-known/agent-card.json`.
    pub fn agent_card(
        &self,
        domain: Option<&str>,
        local: &str,
    ) -> Result<PublicDoc, IdentityError> {
        let agent = self
            .agent_by_did_path(domain, local)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let did = self.agent_did(&agent);
        if !agent.is_active() {
            return Ok(PublicDoc::Deactivated(
                self.unsigned_card(&agent, &did, true),
            ));
        }
        let mut card = self.unsigned_card(&agent, &did, false);
        let payload = BASE64URL_NOPAD.encode(jcs(&card).as_bytes());
        let custody = self.custody()?;
        // The kid is inside the signed header: re-sign if a rotation slips in between.
        for _ in 0..3 {
            let keys = custody
                .public_keys(&agent.id)
                .map_err(IdentityError::Keys)?;
            let current = keys
                .last()
                .ok_or_else(|| IdentityError::Keys("the agent has no identity key".into()))?;
            let header = json!({
                "alg": "EdDSA",
                "typ": "JOSE",
                "kid": format!("{did}#{}", current.kid),
                "jku": format!("{}/jwks.json", self.agent_base_url(&agent)),
            });
            let protected = BASE64URL_NOPAD.encode(header.to_string().as_bytes());
            let (used, sig) = custody
                .sign(&agent.id, format!("{protected}.{payload}").as_bytes())
                .map_err(IdentityError::Keys)?;
            if used != current.kid {
                continue;
            }
            card["signatures"] = json!([{
                "protected": protected,
                "signature": BASE64URL_NOPAD.encode(&sig),
            }]);
            return Ok(PublicDoc::Active(card));
        }
        Err(IdentityError::Keys(
            "the identity key kept changing while signing".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8785 §3.2.3's ordering example and escaping.
    #[test]
    fn jcs_orders_by_utf16_and_escapes_like_ecmascript() {
        let v: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        assert_eq!(
            jcs(&v),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
        assert_eq!(
            jcs(&json!({"b": [1, true, null, "x\u{1f}\"/"], "a": {}})),
            r#"{"a":{},"b":[1,true,null,"x\u001f\"/"]}"#
        );
    }
}
