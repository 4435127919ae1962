//! The MCP server (DESIGN §7): Streamable HTTP at `/mcp` on the API listener.
//!
//! A request passes [`auth::authenticate`] (API key -> [`crate::identity::Actor`], or HTTP 401
//! with the REST error body), then rmcp's `StreamableHttpService`, which checks `Host`/`Origin`
//! against [`allowed_hosts`] and hands the JSON-RPC message to a fresh [`server::LegateMcp`].
//! Tools read the Actor back from the request extensions ([`server::Caller`]) and call the same
//! service methods as the REST handlers, so scopes and audit are decided once, below both.
//!
//! The server is stateless (no `Mcp-Session-Id`): every POST stands alone, which is what both
//! the handshake-era clients (`initialize` then calls) and the 2026-07-28 per-request clients
//! need, and what lets several legate replicas sit behind one load balancer.

mod auth;
mod error;
mod server;
mod tools_drafts;
mod tools_identity;
mod tools_mail;
mod tools_senders;
mod tools_threads;
mod tools_vault;
mod watch;

pub use server::{tool_scope, LegateMcp, UNTRUSTED_NOTE};

use crate::services::Services;
use axum::Router;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The `/mcp` endpoint, ready for `nest_service("/mcp", ..)`. `shutdown` ends in-flight
/// streams when the server stops.
pub fn router(services: Arc<Services>, shutdown: CancellationToken) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(&services.config))
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(services.config.api.max_body_bytes)
        .with_cancellation_token(shutdown);
    let for_tools = services.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(LegateMcp::new(for_tools.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .fallback_service(mcp)
        .layer(axum::middleware::from_fn_with_state(
            services,
            auth::authenticate,
        ))
}

/// `Host` values accepted (DNS-rebinding defence): loopback, the configured hostname and
/// domain, and the host of `server.public_url`. rmcp matches a bare name against any port.
pub fn allowed_hosts(config: &crate::config::Config) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let public = url::Url::parse(&config.server.public_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()));
    for h in [
        Some(config.server.hostname.clone()),
        Some(config.server.domain.clone()),
        public,
    ]
    .into_iter()
    .flatten()
    {
        let h = h.trim().to_ascii_lowercase();
        if !h.is_empty() && !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_are_loopback_and_the_configured_names() {
        let mut c = crate::config::Config::default();
        c.server.domain = "Agents.Test".into();
        c.server.hostname = "mx.agents.test".into();
        c.server.public_url = "https://api.agents.test:8443/".into();
        let h = allowed_hosts(&c);
        for want in [
            "localhost",
            "127.0.0.1",
            "::1",
            "agents.test",
            "mx.agents.test",
        ] {
            assert!(h.contains(&want.to_string()), "{want} missing from {h:?}");
        }
        assert!(h.contains(&"api.agents.test".to_string()));
        assert!(!h.iter().any(|x| x.contains("evil")));
        c.server.public_url = String::new();
        assert_eq!(allowed_hosts(&c).len(), 5);
    }
}
