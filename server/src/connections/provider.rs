//! Talking to an OAuth provider: discovery (OpenID Connect Discovery, RFC 8414), the code
//! exchange with PKCE (RFC 7636), refresh (RFC 6749 §6) and revocation (RFC 7009).
//!
//! Every call is bounded like the did:web fetch (`identity::fetch`): one overall timeout, a
//! response size cap checked while streaming, no redirects, no proxies, and, unless
//! `connections.danger_allow_private`, HTTPS only to public addresses (the resolver drops
//! private ones, so the address checked is the address connected to).

use super::error::{clean, ConnectionsError};
use super::model::{Endpoints, MAX_URL};
use crate::net::error_chain;
use data_encoding::BASE64URL_NOPAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Debug, Clone)]
pub struct ProviderLimits {
    pub timeout: Duration,
    pub max_bytes: usize,
    pub danger_allow_private: bool,
}

/// Tokens as a token endpoint answers them.
#[derive(Deserialize)]
pub struct TokenAnswer {
    pub access_token: Zeroizing<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub refresh_token: Option<Zeroizing<String>>,
}

/// How a token request failed.
pub enum TokenFailure {
    /// `invalid_grant`: the code or refresh token is dead.
    InvalidGrant(String),
    Other(String),
}

impl From<TokenFailure> for ConnectionsError {
    fn from(f: TokenFailure) -> Self {
        match f {
            TokenFailure::InvalidGrant(m) | TokenFailure::Other(m) => ConnectionsError::Provider(m),
        }
    }
}

/// The client's credentials for one call.
pub struct ClientAuth<'a> {
    pub client_id: &'a str,
    pub client_secret: Option<&'a str>,
    pub method: &'a str,
}

pub struct Provider {
    client: reqwest::Client,
    limits: ProviderLimits,
}

/// A fresh PKCE verifier (43 characters of base64url, 256 bits) and its S256 challenge.
pub fn pkce() -> (Zeroizing<String>, String) {
    let raw: [u8; 32] = crate::util::random_bytes();
    let verifier = Zeroizing::new(BASE64URL_NOPAD.encode(&raw));
    let challenge = BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A fresh `state`: 256 random bits, base64url.
pub fn new_state() -> Zeroizing<String> {
    let raw: [u8; 32] = crate::util::random_bytes();
    Zeroizing::new(BASE64URL_NOPAD.encode(&raw))
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Provider {
    pub fn new(limits: ProviderLimits) -> Result<Provider, String> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.timeout)
            .timeout(limits.timeout)
            .no_proxy()
            .user_agent(concat!(
                "legate/",
                env!("CARGO_PKG_VERSION"),
                " oauth-client"
            ));
        if !limits.danger_allow_private {
            b = b
                .https_only(true)
                .dns_resolver(Arc::new(crate::net::GuardedResolver {
                    allow: Default::default(),
                }));
        }
        let client = b.build().map_err(|e| error_chain(&e))?;
        Ok(Provider { client, limits })
    }

    /// Checks a provider URL against the rules: http(s), no user info or fragment, and
    /// (without `danger_allow_private`) https to a name or a public address.
    pub fn check_url(&self, what: &str, raw: &str) -> Result<url::Url, ConnectionsError> {
        let bad = |m: String| ConnectionsError::BadRequest(format!("{what}: {m}"));
        if raw.len() > MAX_URL {
            return Err(bad(format!("longer than {MAX_URL} characters")));
        }
        let u = url::Url::parse(raw).map_err(|e| bad(format!("not a URL ({e})")))?;
        if !u.username().is_empty() || u.password().is_some() || u.fragment().is_some() {
            return Err(bad("no user info or fragment allowed".into()));
        }
        match u.scheme() {
            "https" => {}
            "http" if self.limits.danger_allow_private => {}
            _ => {
                return Err(bad(
                    "must be https:// (http:// needs connections.danger_allow_private)".into(),
                ))
            }
        }
        match u.host() {
            None => return Err(bad("no host".into())),
            Some(url::Host::Domain(_)) => {}
            Some(url::Host::Ipv4(ip)) if !self.limits.danger_allow_private => {
                if !crate::net::is_public(ip.into()) {
                    return Err(bad(
                        "a private or loopback address needs connections.danger_allow_private"
                            .into(),
                    ));
                }
            }
            Some(url::Host::Ipv6(ip)) if !self.limits.danger_allow_private => {
                if !crate::net::is_public(ip.into()) {
                    return Err(bad(
                        "a private or loopback address needs connections.danger_allow_private"
                            .into(),
                    ));
                }
            }
            Some(_) => {}
        }
        Ok(u)
    }

    /// Reads a bounded body.
    async fn body(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
        let max = self.limits.max_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
            if body.len() + chunk.len() > max {
                return Err(format!("the answer is larger than {max} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn get_json(&self, url: url::Url) -> Result<Option<serde_json::Value>, String> {
        let resp = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let body = self.body(resp).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| "the answer is not JSON".to_string())?;
        Ok(Some(v))
    }

    /// Discovery: `<issuer>/.well-known/openid-configuration`, else RFC 8414's
    /// `/.well-known/oauth-authorization-server<path>`. The document's `issuer` must be the
    /// one asked for, and every endpoint in it passes the same URL rules.
    pub async fn discover(
        &self,
        issuer: &str,
        revocation: Option<&str>,
    ) -> Result<Endpoints, ConnectionsError> {
        let iss = self.check_url("issuer", issuer)?;
        if iss.query().is_some() {
            return Err(ConnectionsError::BadRequest(
                "issuer: no query allowed".into(),
            ));
        }
        let trimmed = issuer.trim_end_matches('/');
        let oidc = self.check_url(
            "issuer",
            &format!("{trimmed}/.well-known/openid-configuration"),
        )?;
        let path = iss.path().trim_end_matches('/');
        let rfc8414 = self.check_url(
            "issuer",
            &format!(
                "{}/.well-known/oauth-authorization-server{path}",
                iss.origin().ascii_serialization()
            ),
        )?;
        let fail = |m: String| ConnectionsError::Provider(format!("discovery at {issuer}: {m}"));
        let doc = match self.get_json(oidc).await.map_err(fail)? {
            Some(d) => d,
            None => self
                .get_json(rfc8414)
                .await
                .map_err(fail)?
                .ok_or_else(|| fail("no metadata document".into()))?,
        };
        let text = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if text("issuer").map(|s| s.trim_end_matches('/').to_string()) != Some(trimmed.to_string())
        {
            return Err(fail("the metadata names another issuer".into()));
        }
        if let Some(m) = doc.get("code_challenge_methods_supported") {
            if !m
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("S256")))
            {
                return Err(fail("the provider does not offer PKCE S256".into()));
            }
        }
        let need = |k: &str| text(k).ok_or_else(|| fail(format!("no {k}")));
        let authorization_endpoint = need("authorization_endpoint")?;
        let token_endpoint = need("token_endpoint")?;
        let revocation_endpoint = revocation
            .map(str::to_string)
            .or(text("revocation_endpoint"));
        let methods: Vec<String> = doc
            .get("token_endpoint_auth_methods_supported")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let token_auth = if !methods.is_empty()
            && !methods.iter().any(|m| m == "client_secret_basic")
            && methods.iter().any(|m| m == "client_secret_post")
        {
            "client_secret_post"
        } else {
            "client_secret_basic"
        };
        let e = Endpoints {
            issuer: Some(trimmed.to_string()),
            authorization_endpoint,
            token_endpoint,
            revocation_endpoint,
            token_auth: token_auth.into(),
            metadata_issuer: text("issuer"),
            iss_parameter: doc
                .get("authorization_response_iss_parameter_supported")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        };
        self.check_endpoints(&e)?;
        Ok(e)
    }

    pub fn check_endpoints(&self, e: &Endpoints) -> Result<(), ConnectionsError> {
        self.check_url("authorization_endpoint", &e.authorization_endpoint)?;
        self.check_url("token_endpoint", &e.token_endpoint)?;
        if let Some(r) = &e.revocation_endpoint {
            self.check_url("revocation_endpoint", r)?;
        }
        Ok(())
    }

    /// POSTs a form with the client's authentication to a provider endpoint; the status and
    /// the bounded body.
    async fn post_form(
        &self,
        endpoint: &str,
        auth: &ClientAuth<'_>,
        pairs: &[(&str, &str)],
    ) -> Result<(reqwest::StatusCode, Vec<u8>), String> {
        let mut pairs: Vec<(&str, &str)> = pairs.to_vec();
        let mut req = self.client.post(endpoint);
        match (auth.client_secret, auth.method) {
            (Some(secret), "client_secret_basic") => {
                // RFC 6749 §2.3.1: each part form-urlencoded, then Basic.
                let cred = format!("{}:{}", urlenc(auth.client_id), urlenc(secret));
                let b64 = Zeroizing::new(data_encoding::BASE64.encode(cred.as_bytes()));
                req = req.header("authorization", format!("Basic {}", b64.as_str()));
            }
            (Some(secret), _) => {
                pairs.push(("client_id", auth.client_id));
                pairs.push(("client_secret", secret));
            }
            (None, _) => pairs.push(("client_id", auth.client_id)),
        }
        let body = Zeroizing::new(form(&pairs));
        let resp = req
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body.as_bytes().to_vec())
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status();
        let body = self.body(resp).await?;
        Ok((status, body))
    }

    /// A token request (code exchange or refresh).
    pub async fn token(
        &self,
        endpoint: &str,
        auth: &ClientAuth<'_>,
        pairs: &[(&str, &str)],
    ) -> Result<TokenAnswer, TokenFailure> {
        let (status, body) = self
            .post_form(endpoint, auth, pairs)
            .await
            .map_err(TokenFailure::Other)?;
        if status.is_success() {
            let t: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
                TokenFailure::Other("the token endpoint answered no usable token".into())
            })?;
            if t.access_token.is_empty() || t.access_token.len() > 16 * 1024 {
                return Err(TokenFailure::Other(
                    "the token endpoint answered no usable token".into(),
                ));
            }
            return Ok(t);
        }
        #[derive(Deserialize)]
        struct Err {
            error: String,
            #[serde(default)]
            error_description: Option<String>,
        }
        match serde_json::from_slice::<Err>(&body) {
            Ok(e) => {
                let m = format!(
                    "{} ({})",
                    clean(&e.error),
                    clean(e.error_description.as_deref().unwrap_or(""))
                );
                if e.error == "invalid_grant" {
                    Err(TokenFailure::InvalidGrant(m))
                } else {
                    Err(TokenFailure::Other(m))
                }
            }
            Err(_) => Err(TokenFailure::Other(format!(
                "the token endpoint answered HTTP {}",
                status.as_u16()
            ))),
        }
    }

    /// RFC 7009: asks the provider to revoke `token`. `Ok` when it said 200.
    pub async fn revoke(
        &self,
        endpoint: &str,
        auth: &ClientAuth<'_>,
        token: &str,
        hint: &str,
    ) -> Result<(), String> {
        let (status, _) = self
            .post_form(
                endpoint,
                auth,
                &[("token", token), ("token_type_hint", hint)],
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "the revocation endpoint answered HTTP {}",
                status.as_u16()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(danger: bool) -> Provider {
        Provider::new(ProviderLimits {
            timeout: Duration::from_secs(1),
            max_bytes: 1024,
            danger_allow_private: danger,
        })
        .unwrap()
    }

    #[test]
    fn pkce_is_s256_of_the_verifier() {
        let (v, c) = pkce();
        assert_eq!(v.len(), 43);
        assert_eq!(c, BASE64URL_NOPAD.encode(&Sha256::digest(v.as_bytes())));
        // RFC 7636 appendix B
        let c = BASE64URL_NOPAD.encode(&Sha256::digest(
            b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ));
        assert_eq!(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_ne!(new_state().as_str(), new_state().as_str());
    }

    #[test]
    fn url_rules() {
        let strict = p(false);
        assert!(strict.check_url("x", "https://id.example.com/a").is_ok());
        for bad in [
            "http://id.example.com/",
            "https://127.0.0.1/",
            "https://10.0.0.1/",
            "https://[::1]/",
            "https://u:p@id.example.com/",
            "https://id.example.com/#f",
            "ftp://id.example.com/",
            "not a url",
        ] {
            assert!(strict.check_url("x", bad).is_err(), "{bad}");
        }
        let lax = p(true);
        assert!(lax.check_url("x", "http://127.0.0.1:9/").is_ok());
        assert!(lax.check_url("x", "ftp://127.0.0.1/").is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_private_names() {
        let e = p(false)
            .discover("https://localhost:1", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no public address"), "{e}");
    }
}
