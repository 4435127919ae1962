//! The operator's own signing key: the domain DID (`did:web:<host>`) speaks for the server
//! itself, e.g. in reputation attestations (issue 24 §6) that must come from the operator,
//! not from the agent they describe. Kept in key custody like an agent's key (under the id
//! `operator:<did host>`), made on first use, published in `/.well-known/did.json` and
//! `/.well-known/jwks.json`.

use super::custody::IdentityKey;
use super::{did, multibase, IdentityError, IdentityService};
use data_encoding::BASE64URL_NOPAD;
use serde_json::{json, Value};

impl IdentityService {
    fn operator_key_id(&self) -> String {
        format!("operator:{}", self.did_host)
    }

    /// The operator's published keys, made on first call.
    pub fn operator_keys(&self) -> Result<Vec<IdentityKey>, IdentityError> {
        let custody = self.custody()?;
        let id = self.operator_key_id();
        let keys = custody.public_keys(&id).map_err(IdentityError::Keys)?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        custody.rotate(&id, 0).map_err(IdentityError::Keys)?;
        custody.public_keys(&id).map_err(IdentityError::Keys)
    }

    /// A compact EdDSA JWT over `claims` signed by the operator key (`iss` is set to the
    /// domain DID; `kid` is its DID URL).
    pub fn operator_jwt(&self, mut claims: Value) -> Result<String, IdentityError> {
        let custody = self.custody()?;
        let domain = self.domain_did();
        claims["iss"] = json!(domain);
        for _ in 0..3 {
            let keys = self.operator_keys()?;
            let current = keys
                .last()
                .ok_or_else(|| IdentityError::Keys("the operator has no key".into()))?;
            let header =
                json!({"alg": "EdDSA", "typ": "JWT", "kid": format!("{domain}#{}", current.kid)});
            let input = format!(
                "{}.{}",
                BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
                BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
            );
            let (used, sig) = custody
                .sign(&self.operator_key_id(), input.as_bytes())
                .map_err(IdentityError::Keys)?;
            if used == current.kid {
                return Ok(format!("{input}.{}", BASE64URL_NOPAD.encode(&sig)));
            }
        }
        Err(IdentityError::Keys(
            "the operator key kept changing while signing".into(),
        ))
    }

    /// `GET /.well-known/jwks.json`: the operator's keys, `kid` = their DID URL.
    pub fn operator_jwks(&self) -> Result<Value, IdentityError> {
        Ok(did::jwks(&self.domain_did(), &self.operator_keys()?))
    }

    /// The domain DID document with the operator's keys as verification methods.
    pub(super) fn with_operator_keys(&self, mut doc: Value) -> Value {
        let Ok(keys) = self.operator_keys() else {
            return doc;
        };
        let domain = self.domain_did();
        let methods: Vec<Value> = keys
            .iter()
            .map(|k| {
                let id = format!("{domain}#{}", k.kid);
                json!({
                    "id": id, "type": "JsonWebKey2020", "controller": domain,
                    "publicKeyJwk": multibase::ed25519_jwk(&k.public, &id),
                })
            })
            .collect();
        let refs: Vec<Value> = methods.iter().map(|m| m["id"].clone()).collect();
        doc["@context"] = json!([
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/suites/jws-2020/v1"
        ]);
        doc["verificationMethod"] = Value::Array(methods);
        doc["assertionMethod"] = Value::Array(refs);
        doc
    }
}
