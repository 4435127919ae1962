//! did:web identifiers and documents (DESIGN §8), as pure functions.
//!
//! **Identifiers.** `did:web:<host>[%3A<port>](:<segment>)*` names the document at
//! `https://<host>[:<port>]/<segments>/did.json`, or `https://<host>[:<port>]/.well-known/did.json`
//! without segments (did:web method §3.2). Agents are `did:web:<host>:agents:<local>`; the
//! domain itself is `did:web:<host>` and is the `controller` of its agents' documents.
//!
//! **Agent documents.** Each published identity key appears twice, because DID Core §5.2.1
//! forbids one verification method carrying the same key in two material properties:
//! - `<did>#key-N`, type `Multikey`, `publicKeyMultibase` (`z6Mk...`): the canonical method,
//!   and the `kid` of identity tokens and signatures;
//! - `<did>#key-N-jwk`, type `JsonWebKey2020`, `publicKeyJwk` (OKP/Ed25519) whose own `kid`
//!   member is `<did>#key-N`, so a JOSE library that selects JWKs by `kid` finds it.
//!
//! Both are listed under `authentication` and `assertionMethod`. A `service` entry gives the
//! agent's `mailto:` address.
//!
//! **Deactivation.** A revoked agent's `did.json` answers `410 Gone` with a DID resolution
//! result body (`didDocumentMetadata.deactivated = true`), not a document: did:web §3.2.4 says
//! deactivation is the document no longer being available, and 410 tells resolvers it is gone
//! for good rather than missing (404).

use super::custody::IdentityKey;
use super::multibase;
use serde_json::{json, Value};

/// Longest DID we parse; real ones are far shorter.
const MAX_DID_LEN: usize = 2048;

const DID_CONTEXTS: [&str; 3] = [
    "https://www.w3.org/ns/did/v1",
    "https://w3id.org/security/multikey/v1",
    "https://w3id.org/security/suites/jws-2020/v1",
];

/// A parsed `did:web` identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidWeb {
    /// The host as written in the DID (port encoded `%3A`), lowercased.
    pub host: String,
    /// `host[:port]` for the URL.
    pub authority: String,
    /// Path segments after the host (`["agents", "ops"]`); empty for a domain DID.
    pub path: Vec<String>,
}

impl DidWeb {
    /// The DID this parses back to (host lowercased).
    pub fn did(&self) -> String {
        let mut s = format!("did:web:{}", self.host);
        for seg in &self.path {
            s.push(':');
            s.push_str(seg);
        }
        s
    }

    /// Where the document lives, with `scheme` `https` (or `http` for loopback tests).
    pub fn document_url(&self, scheme: &str) -> String {
        if self.path.is_empty() {
            format!("{scheme}://{}/.well-known/did.json", self.authority)
        } else {
            format!(
                "{scheme}://{}/{}/did.json",
                self.authority,
                self.path.join("/")
            )
        }
    }

    /// The agent's local part, for `did:web:<host>:agents:<local>`.
    pub fn agent_local(&self) -> Option<&str> {
        match self.path.as_slice() {
            [a, local] if a == "agents" => Some(local),
            _ => None,
        }
    }

    /// The agent a path names: `agents:<local>` (the server's own domain, domain `None`) or
    /// `orgs:<domain>:agents:<local>` (an agent of another org hosted here).
    pub fn agent_ref(&self) -> Option<(Option<&str>, &str)> {
        match self.path.as_slice() {
            [a, local] if a == "agents" => Some((None, local)),
            [o, domain, a, local] if o == "orgs" && a == "agents" => Some((Some(domain), local)),
            _ => None,
        }
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Parses a `did:web` DID (no fragment). The error says which rule failed.
pub fn parse_did_web(did: &str) -> Result<DidWeb, String> {
    if did.len() > MAX_DID_LEN {
        return Err("the DID is too long".into());
    }
    let rest = did
        .strip_prefix("did:web:")
        .ok_or("only did:web identifiers are supported")?;
    let mut parts = rest.split(':');
    let host_part = parts.next().unwrap_or_default().to_ascii_lowercase();
    let (name, port) = match host_part.split_once("%3a") {
        Some((n, p)) => {
            let port: u16 = p
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("the port after %3A is not a port number")?;
            (n.to_string(), Some(port))
        }
        None => (host_part.clone(), None),
    };
    if !valid_hostname(&name) {
        return Err(format!("\"{name}\" is not a host name"));
    }
    let path: Vec<String> = parts.map(str::to_string).collect();
    if let Some(bad) = path.iter().find(|s| !valid_segment(s)) {
        return Err(format!("\"{bad}\" is not a valid did:web path segment"));
    }
    let authority = match port {
        Some(p) => format!("{name}:{p}"),
        None => name,
    };
    Ok(DidWeb {
        host: host_part,
        authority,
        path,
    })
}

/// Splits a DID URL into the DID and its fragment.
pub fn split_did_url(url: &str) -> (&str, Option<&str>) {
    match url.split_once('#') {
        Some((did, frag)) => (did, Some(frag)),
        None => (url, None),
    }
}

/// The DID document of an active agent.
pub fn agent_document(did: &str, controller: &str, address: &str, keys: &[IdentityKey]) -> Value {
    let mut methods = Vec::new();
    let mut refs = Vec::new();
    for k in keys {
        let id = format!("{did}#{}", k.kid);
        let jwk_id = format!("{id}-jwk");
        methods.push(json!({
            "id": id,
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": multibase::ed25519_multikey(&k.public),
        }));
        methods.push(json!({
            "id": jwk_id,
            "type": "JsonWebKey2020",
            "controller": did,
            "publicKeyJwk": multibase::ed25519_jwk(&k.public, &id),
        }));
        refs.push(Value::String(id));
        refs.push(Value::String(jwk_id));
    }
    json!({
        "@context": DID_CONTEXTS,
        "id": did,
        "controller": controller,
        "verificationMethod": methods,
        "authentication": refs,
        "assertionMethod": refs,
        "service": [{
            "id": format!("{did}#mail"),
            "type": "EmailService",
            "serviceEndpoint": format!("mailto:{address}"),
        }],
    })
}

/// The domain's own DID document: the controller its agents' documents name.
pub fn domain_document(did: &str, origin: &str) -> Value {
    json!({
        "@context": [DID_CONTEXTS[0]],
        "id": did,
        "service": [{
            "id": format!("{did}#origin"),
            "type": "LinkedDomains",
            "serviceEndpoint": origin,
        }],
    })
}

/// The body served with `410 Gone` for a revoked agent (a DID resolution result).
pub fn deactivated_result(did: &str, updated: &str) -> Value {
    json!({
        "didDocument": { "@context": [DID_CONTEXTS[0]], "id": did },
        "didDocumentMetadata": { "deactivated": true, "updated": updated },
        "didResolutionMetadata": { "contentType": "application/did+json" },
    })
}

/// `jwks.json`: each published key with `kid` = its DID URL (the identity token `kid`).
pub fn jwks(did: &str, keys: &[IdentityKey]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| multibase::ed25519_jwk(&k.public, &format!("{did}#{}", k.kid)))
        .collect();
    json!({ "keys": keys })
}

/// A key a document authorises for `authentication` or `assertionMethod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationKey {
    /// Absolute DID URL of the verification method.
    pub id: String,
    /// Other names for the same key (a JWK's own `kid`).
    pub aliases: Vec<String>,
    pub public: [u8; 32],
}

impl VerificationKey {
    pub fn is_named(&self, kid: &str) -> bool {
        same_did_url(&self.id, kid) || self.aliases.iter().any(|a| same_did_url(a, kid))
    }
}

/// DID URL equality, ignoring the case of the host (`%3A` vs `%3a`, `Example.com`).
pub fn same_did_url(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let ((da, fa), (db, fb)) = (split_did_url(a), split_did_url(b));
    fa == fb
        && match (parse_did_web(da), parse_did_web(db)) {
            (Ok(x), Ok(y)) => x.did() == y.did(),
            _ => false,
        }
}

fn absolute(did: &str, id: &str) -> String {
    if id.starts_with('#') {
        format!("{did}{id}")
    } else {
        id.to_string()
    }
}

/// Ed25519 key material of one verification method, in any of the encodings in use.
fn method_key(m: &Value) -> Option<[u8; 32]> {
    if let Some(mb) = m.get("publicKeyMultibase").and_then(Value::as_str) {
        return multibase::parse_ed25519_multikey(mb);
    }
    if let Some(jwk) = m.get("publicKeyJwk") {
        return multibase::parse_ed25519_jwk(jwk);
    }
    // Ed25519VerificationKey2018 documents still publish raw base58.
    let b58 = m.get("publicKeyBase58").and_then(Value::as_str)?;
    multibase::base58_decode(b58)?.try_into().ok()
}

/// The Ed25519 keys of a document that may authenticate its subject or assert for it: methods
/// referenced (or embedded) under `authentication` or `assertionMethod`. Keys listed only in
/// `verificationMethod` (say, for key agreement) do not count.
pub fn verification_keys(doc: &Value, did: &str) -> Vec<VerificationKey> {
    let mut methods: Vec<&Value> = Vec::new();
    let mut allowed: Vec<String> = Vec::new();
    if let Some(vms) = doc.get("verificationMethod").and_then(Value::as_array) {
        methods.extend(vms.iter().filter(|m| m.is_object()));
    }
    for rel in ["authentication", "assertionMethod"] {
        for r in doc.get(rel).and_then(Value::as_array).into_iter().flatten() {
            match r {
                Value::String(id) => allowed.push(absolute(did, id)),
                Value::Object(_) => {
                    if let Some(id) = r.get("id").and_then(Value::as_str) {
                        allowed.push(absolute(did, id));
                        methods.push(r);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out: Vec<VerificationKey> = Vec::new();
    for m in methods {
        let Some(id) = m
            .get("id")
            .and_then(Value::as_str)
            .map(|i| absolute(did, i))
        else {
            continue;
        };
        if !allowed.contains(&id) || out.iter().any(|k| k.id == id) {
            continue;
        }
        let Some(public) = method_key(m) else {
            continue;
        };
        let aliases = m
            .get("publicKeyJwk")
            .and_then(|j| j.get("kid"))
            .and_then(Value::as_str)
            .map(|k| vec![absolute(did, k)])
            .unwrap_or_default();
        out.push(VerificationKey {
            id,
            aliases,
            public,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> IdentityKey {
        IdentityKey {
            kid: format!("key-{n}"),
            public: [n; 32],
            created_at: 0,
            retire_at: None,
        }
    }

    #[test]
    fn did_web_to_url_per_the_method_spec() {
        let d = parse_did_web("did:web:agents.test%3A8443:agents:ops").unwrap();
        assert_eq!(d.authority, "agents.test:8443");
        assert_eq!(d.agent_local(), Some("ops"));
        assert_eq!(
            d.document_url("https"),
            "https://agents.test:8443/agents/ops/did.json"
        );
        assert_eq!(d.did(), "did:web:agents.test%3a8443:agents:ops");
        let d = parse_did_web("did:web:Example.COM").unwrap();
        assert_eq!(
            d.document_url("https"),
            "https://example.com/.well-known/did.json"
        );
        assert_eq!(d.agent_local(), None);
        for bad in [
            "did:key:z6Mk",
            "did:web:",
            "did:web:exa mple.com",
            "did:web:example.com%3Ahttp",
            "did:web:example.com%3A0",
            "did:web:example.com:..:x",
            "did:web:example.com::x",
            "did:web:user@example.com",
            "did:web:example.com/x",
        ] {
            assert!(parse_did_web(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            split_did_url("did:web:a#key-1"),
            ("did:web:a", Some("key-1"))
        );
        assert!(same_did_url(
            "did:web:A.test%3A80:agents:x#k",
            "did:web:a.test%3a80:agents:x#k"
        ));
        assert!(!same_did_url(
            "did:web:a.test:agents:x#k",
            "did:web:a.test:agents:x#j"
        ));
        assert!(!same_did_url(
            "did:web:a.test:agents:x#k",
            "did:web:a.test:agents:X#k"
        ));
    }

    #[test]
    fn agent_document_shape_and_keys_round_trip() {
        let did = "did:web:agents.test:agents:ops";
        let doc = agent_document(
            did,
            "did:web:agents.test",
            "ops@agents.test",
            &[key(1), key(2)],
        );
        assert_eq!(doc["id"], did);
        assert_eq!(doc["controller"], "did:web:agents.test");
        assert_eq!(doc["verificationMethod"][0]["type"], "Multikey");
        assert!(doc["verificationMethod"][0]["publicKeyMultibase"]
            .as_str()
            .unwrap()
            .starts_with("z6Mk"));
        assert_eq!(doc["verificationMethod"][1]["type"], "JsonWebKey2020");
        assert_eq!(
            doc["verificationMethod"][1]["publicKeyJwk"]["kid"],
            format!("{did}#key-1")
        );
        assert_eq!(
            doc["service"][0]["serviceEndpoint"],
            "mailto:ops@agents.test"
        );
        let keys = verification_keys(&doc, did);
        assert_eq!(keys.len(), 4);
        assert!(keys[0].is_named(&format!("{did}#key-1")));
        assert!(
            keys[1].is_named(&format!("{did}#key-1")),
            "the JWK's kid aliases it"
        );
        assert_eq!(keys[2].public, [2; 32]);
        let set = jwks(did, &[key(1)]);
        assert_eq!(set["keys"][0]["kid"], format!("{did}#key-1"));
        assert_eq!(set["keys"][0]["crv"], "Ed25519");
    }

    #[test]
    fn only_authorised_methods_count() {
        let did = "did:web:x.test";
        let mk = multibase::ed25519_multikey(&[7; 32]);
        let doc = json!({
            "id": did,
            "verificationMethod": [
                {"id": "#listed", "type": "Multikey", "publicKeyMultibase": mk},
                {"id": "#unreferenced", "type": "Multikey", "publicKeyMultibase": mk},
                {"id": "#garbage", "type": "Multikey", "publicKeyMultibase": "zzz"},
            ],
            "authentication": ["#listed", "#garbage", 42],
            "assertionMethod": [{"id": "#embedded", "type": "Ed25519VerificationKey2018",
                                 "publicKeyBase58": multibase::base58_encode(&[9; 32])}],
        });
        let keys = verification_keys(&doc, did);
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(
            ids,
            vec!["did:web:x.test#listed", "did:web:x.test#embedded"]
        );
        assert_eq!(keys[1].public, [9; 32]);
        assert!(verification_keys(&json!("not a document"), did).is_empty());
    }

    #[test]
    fn deactivated_body_says_so() {
        let b = deactivated_result("did:web:a:agents:b", "2026-01-01T00:00:00Z");
        assert_eq!(b["didDocumentMetadata"]["deactivated"], true);
        assert_eq!(b["didDocument"]["id"], "did:web:a:agents:b");
    }
}
