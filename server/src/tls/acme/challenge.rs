//! Answers to ACME challenges while an order is validated: HTTP-01 tokens served on the plain
//! HTTP listener, and TLS-ALPN-01 certificates handed to the shared resolver. Each answer is
//! registered through a guard that withdraws it when the order ends, failed or not. HTTP-01
//! answers are also written to the store (`shared`), so behind a load balancer every node
//! sharing it answers the CA, not only the one that placed the order.

use super::shared;
use crate::store::{Store, StoreError};
use crate::tls::{CertResolver, TlsError};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Longest token looked up (RFC 8555 tokens are 43 base64url characters; pebble's too).
const MAX_TOKEN: usize = 128;

/// HTTP-01 key authorizations by token: this node's own, and (with a store) every node's.
#[derive(Default)]
pub struct Http01Tokens {
    map: RwLock<HashMap<String, String>>,
    store: Option<Store>,
}

impl std::fmt::Debug for Http01Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http01Tokens").finish_non_exhaustive()
    }
}

impl Http01Tokens {
    /// Tokens shared through `store` with the other nodes.
    pub fn shared(store: Store) -> Self {
        Self {
            map: Default::default(),
            store: Some(store),
        }
    }

    fn get(&self, token: &str) -> Option<String> {
        if let Some(ka) = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
        {
            return Some(ka.clone());
        }
        if token.len() > MAX_TOKEN {
            return None;
        }
        let store = self.store.as_ref()?;
        shared::token(store, token).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "acme: cannot read a shared HTTP-01 answer");
            None
        })
    }

    /// Serves `key_auth` at `/.well-known/acme-challenge/<token>` on every node until the
    /// guard drops.
    pub fn publish(self: &Arc<Self>, token: &str, key_auth: &str) -> Result<Withdraw, StoreError> {
        if let Some(store) = &self.store {
            shared::put_token(store, token, key_auth)?;
        }
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_string(), key_auth.to_string());
        Ok(Withdraw::Http01(self.clone(), token.to_string()))
    }
}

/// The route the plain HTTP listener mounts (RFC 8555 §8.3).
pub fn router(tokens: Arc<Http01Tokens>) -> axum::Router {
    axum::Router::new()
        .route("/.well-known/acme-challenge/{token}", get(serve_token))
        .with_state(tokens)
}

async fn serve_token(
    State(tokens): State<Arc<Http01Tokens>>,
    Path(token): Path<String>,
) -> axum::response::Response {
    match tokens.get(&token) {
        Some(ka) => ([(header::CONTENT_TYPE, "application/octet-stream")], ka).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Removes a published answer when dropped.
pub enum Withdraw {
    Http01(Arc<Http01Tokens>, String),
    TlsAlpn01(Arc<CertResolver>, String),
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        match self {
            Withdraw::Http01(t, token) => {
                t.map
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(token);
                if let Some(store) = &t.store {
                    if let Err(e) = shared::remove_token(store, token) {
                        // The next order's holder clears what is left (`shared::clear_tokens`).
                        tracing::warn!(error = %e, "acme: cannot withdraw a shared HTTP-01 answer");
                    }
                }
            }
            Withdraw::TlsAlpn01(r, domain) => r.remove_challenge(domain),
        }
    }
}

/// Hands `resolver` the RFC 8737 certificate for `domain`: self-signed, the name as its only
/// SAN, and the critical acmeIdentifier extension holding SHA-256(key authorization).
pub fn publish_tls_alpn(
    resolver: &Arc<CertResolver>,
    domain: &str,
    digest: &[u8],
) -> Result<Withdraw, TlsError> {
    if digest.len() != 32 {
        return Err(TlsError::Invalid(
            "acmeIdentifier needs a SHA-256 digest".into(),
        ));
    }
    let invalid = |e: rcgen::Error| TlsError::Invalid(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(invalid)?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(invalid)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(invalid)?;
    // Not `load_pem`: its key/certificate consistency check parses the certificate with
    // webpki, which (rightly, for real certificates) rejects the unknown critical extension.
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = crate::tls::provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let ck = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer));
    resolver.add_challenge(domain, ck);
    Ok(Withdraw::TlsAlpn01(resolver.clone(), domain.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::load_pem;
    use tower::ServiceExt;

    async fn fetch(app: axum::Router, token: &str) -> (StatusCode, String) {
        let req = axum::http::Request::get(format!("/.well-known/acme-challenge/{token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn token_is_served_only_while_published() {
        let tokens = Arc::new(Http01Tokens::default());
        let app = router(tokens.clone());
        assert_eq!(fetch(app.clone(), "tok").await.0, StatusCode::NOT_FOUND);
        let guard = tokens.publish("tok", "tok.thumb").unwrap();
        assert_eq!(
            fetch(app.clone(), "tok").await,
            (StatusCode::OK, "tok.thumb".to_string())
        );
        assert_eq!(fetch(app.clone(), "other").await.0, StatusCode::NOT_FOUND);
        drop(guard);
        assert_eq!(fetch(app, "tok").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_token_published_by_another_node_is_served_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Two nodes' token maps over one store: B serves what A published.
        let a = Arc::new(Http01Tokens::shared(store.clone()));
        let b = Arc::new(Http01Tokens::shared(store));
        let app_b = router(b);
        let guard = a.publish("tokA", "tokA.thumb").unwrap();
        assert_eq!(
            fetch(app_b.clone(), "tokA").await,
            (StatusCode::OK, "tokA.thumb".to_string())
        );
        drop(guard);
        assert_eq!(fetch(app_b.clone(), "tokA").await.0, StatusCode::NOT_FOUND);
        let long = "x".repeat(MAX_TOKEN + 1);
        assert_eq!(fetch(app_b, &long).await.0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn tls_alpn_certificate_carries_the_digest_and_is_withdrawn() {
        let made = rcgen::generate_simple_self_signed(vec!["mx.a.test".into()]).unwrap();
        let real = load_pem(
            made.cert.pem().as_bytes(),
            made.signing_key.serialize_pem().as_bytes(),
            "t",
        )
        .unwrap();
        let r = Arc::new(CertResolver::new(real));
        assert!(publish_tls_alpn(&r, "mx.a.test", &[1; 31]).is_err());
        let digest = [7u8; 32];
        let guard = publish_tls_alpn(&r, "mx.a.test", &digest).unwrap();
        let ck = r.challenges_for_test("mx.a.test").unwrap();
        let der = ck.end_entity_cert().unwrap().to_vec();
        // OID 1.3.6.1.5.5.7.1.31, critical, OCTET STRING(OCTET STRING(digest)).
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der.windows(oid.len()).position(|w| w == oid).unwrap();
        let tail = &der[at + oid.len()..];
        assert_eq!(&tail[..3], &[0x01, 0x01, 0xff], "critical");
        assert_eq!(&tail[3..7], &[0x04, 34, 0x04, 32]);
        assert_eq!(&tail[7..39], &digest);
        drop(guard);
        assert!(r.challenges_for_test("mx.a.test").is_none());
    }
}
