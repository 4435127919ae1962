//! OAuth 2.1 state for MCP clients: registered public clients (RFC 7591), and the grants a
//! human's consent creates — an authorization code (PKCE S256 only), then access and refresh
//! tokens, all bound to one agent, a subset of its scopes, the consenting human and the MCP
//! resource URL (the audience).
//!
//! Only hashes of codes and tokens are stored. Every use re-reads the grant, the client and
//! the agent (and its ancestors): revoking any of them holds on the very next request. A
//! refresh token is replaced on each use; presenting a replaced one again (a stolen copy
//! racing the client) ends the whole family of tokens of that consent (RFC 9700 §4.14.2).

use super::error::{AuthFailure, IdentityError};
use super::{Actor, IdentityService, Principal, ScopeSet};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::store::Tree;
use crate::util::now_unix;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::Zeroizing;

pub const ACCESS_PREFIX: &str = "lgat_";
const REFRESH_PREFIX: &str = "lgrt_";
const CODE_PREFIX: &str = "lgc_";
/// Redirect URIs one client may register, and their longest length.
const MAX_REDIRECTS: usize = 10;
const MAX_URI: usize = 2000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthClient {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub created_at: i64,
    #[serde(default)]
    pub last_used_at: Option<i64>,
    /// When a human first consented to it; a client never consented to expires
    /// (`oauth.unused_client_ttl`).
    #[serde(default)]
    pub consented_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum GrantKind {
    Code,
    Access,
    Refresh,
}

#[derive(Clone, Serialize, Deserialize)]
struct Grant {
    kind: GrantKind,
    client_id: String,
    agent_id: String,
    human_id: String,
    scopes: ScopeSet,
    /// The MCP resource URL the tokens are for (their audience).
    resource: String,
    /// All tokens of one consent share it; ending a family ends them all.
    family: String,
    created_at: i64,
    expires_at: i64,
    /// Codes: the PKCE S256 challenge and the redirect URI they were issued for.
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    redirect_uri: String,
    /// Codes and refresh tokens: spent (kept until expiry to recognise a replay).
    #[serde(default)]
    used: bool,
}

/// What the token endpoint answers.
pub struct TokenPair {
    pub access: Zeroizing<String>,
    pub refresh: Zeroizing<String>,
    pub expires_in: u64,
    pub scopes: ScopeSet,
}

/// Lifetimes from `[oauth]`.
#[derive(Debug, Clone, Copy)]
pub struct OAuthLifetimes {
    pub code_secs: i64,
    pub access_secs: i64,
    pub refresh_secs: i64,
}

impl OAuthLifetimes {
    /// The `[oauth]` lifetimes.
    pub fn from_config(c: &crate::config::Config) -> Self {
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        OAuthLifetimes {
            code_secs: secs(c.oauth.code_secs),
            access_secs: secs(c.oauth.access_token_secs),
            refresh_secs: secs(c.oauth.refresh_token_secs),
        }
    }
}

/// A refusal of the token endpoint, as RFC 6749 §5.2 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    InvalidGrant(&'static str),
    InvalidClient,
    InvalidRequest(&'static str),
}

fn digest(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn new_secret(prefix: &str) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{prefix}{}",
        data_encoding::BASE64URL_NOPAD.encode(&crate::util::random_bytes::<32>())
    ))
}

/// `BASE64URL(SHA256(verifier))` against the stored challenge (RFC 7636 §4.6), with the
/// verifier's own rules (43 to 128 unreserved characters).
fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed =
        data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha256::digest(verifier.as_bytes()));
    valid && subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into()
}

/// A redirect URI a public client may register: https anywhere, http only to loopback
/// (native apps, RFC 8252 §7.3), or a private-use scheme (`com.example.app:/cb`); no
/// fragment.
fn valid_redirect(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    if uri.len() > MAX_URI || u.fragment().is_some() {
        return false;
    }
    match u.scheme() {
        "https" => u.host_str().is_some(),
        "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => false,
        s => s.contains('.'),
    }
}

mod access;
mod clients;
mod grants;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_with_a_well_formed_verifier() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        // RFC 7636 appendix B.
        assert!(pkce_ok(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_ok(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_ok("short", "x"));
        assert!(!pkce_ok(&"a".repeat(129), "x"));
    }

    #[test]
    fn unconsented_registrations_expire_and_free_their_places() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let audit = std::sync::Arc::new(crate::audit::Audit::open(store.clone()).unwrap());
        let id = IdentityService::new(store, audit, "agents.test".into());
        let uris = vec!["http://127.0.0.1/cb".to_string()];
        let register = |name: &str| id.register_oauth_client(name, &uris, 2, 600, "test");
        let age = |c: &OAuthClient, consented: bool| {
            let mut c = c.clone();
            c.created_at -= 601;
            c.consented_at = consented.then_some(c.created_at);
            id.store
                .put_record(Tree::OAuthClients, c.id.as_bytes(), &c)
                .unwrap();
        };
        let old = register("old").unwrap();
        let kept = register("kept").unwrap();
        // Full, and nothing is old enough yet.
        assert!(matches!(register("x"), Err(IdentityError::Conflict(_))));
        age(&old, false);
        age(&kept, true);
        let new = register("new").unwrap();
        assert!(id.oauth_client(&old.id).unwrap().is_none());
        assert!(id.oauth_client(&kept.id).unwrap().is_some());
        assert!(id.oauth_client(&new.id).unwrap().is_some());
        // ttl 0 never expires anything.
        age(&new, false);
        assert_eq!(id.expire_unused_clients(0).unwrap(), 0);
        assert_eq!(id.expire_unused_clients(600).unwrap(), 1);
    }

    #[test]
    fn redirect_uris_are_https_loopback_or_app_schemes() {
        assert!(valid_redirect("https://claude.ai/api/mcp/auth_callback"));
        assert!(valid_redirect("http://127.0.0.1:33418/callback"));
        assert!(valid_redirect("http://localhost/cb"));
        assert!(valid_redirect("com.example.app:/oauth"));
        assert!(!valid_redirect("http://evil.test/cb"));
        assert!(!valid_redirect("javascript:alert(1)"));
        assert!(!valid_redirect("https://a.test/cb#frag"));
        assert!(!valid_redirect("not a uri"));
    }
}
