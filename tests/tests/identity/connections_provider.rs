//! Connected accounts against a provider we steer (issue 25 §1, hardening): a small OAuth
//! server on loopback whose answers can be slowed, to show what oidc-provider (the interop
//! suite `25_connections`) cannot: a forged callback with the right state but another
//! issuer's `iss` (RFC 9207), revocation of an agent's connections at their providers
//! concurrently and within `connections.revoke_timeout_secs`, and a refresh in flight during
//! the agent's revocation leaving no live token behind, and refreshes taking turns with
//! another node sharing the store.

use super::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Default)]
struct Steer {
    /// Advertise `authorization_response_iss_parameter_supported`.
    iss: bool,
    refresh_delay: Duration,
    revoke_delay: Duration,
}

/// What the provider saw.
#[derive(Default)]
struct Seen {
    /// `POST /token` grant types, in order.
    grants: Vec<String>,
    /// Tokens revoked (RFC 7009 requests that completed).
    revoked: Vec<String>,
    issued: u32,
}

struct Provider {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

async fn provider(steer: Steer) -> Provider {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (b, sn) = (base.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(serve(sock, b.clone(), steer.clone(), sn.clone()));
        }
    });
    Provider { base, seen }
}

/// One HTTP/1.1 request per connection (`connection: close`).
async fn serve(
    mut sock: tokio::net::TcpStream,
    base: String,
    steer: Steer,
    seen: Arc<Mutex<Seen>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let Ok(n) = sock.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let Ok(n) = sock.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..];
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    let answer = match path.as_str() {
        "/.well-known/openid-configuration" => json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/auth"),
            "token_endpoint": format!("{base}/token"),
            "revocation_endpoint": format!("{base}/revoke"),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": steer.iss,
        })
        .to_string(),
        "/token" => {
            let grant = form.get("grant_type").cloned().unwrap_or_default();
            seen.lock().unwrap().grants.push(grant.clone());
            if grant == "refresh_token" {
                tokio::time::sleep(steer.refresh_delay).await;
            }
            let n = {
                let mut s = seen.lock().unwrap();
                s.issued += 1;
                s.issued
            };
            // A one-second access token: every token request refreshes.
            json!({"access_token": format!("at-{n}"), "refresh_token": format!("rt-{n}"),
                   "token_type": "Bearer", "expires_in": 1})
            .to_string()
        }
        "/revoke" => {
            tokio::time::sleep(steer.revoke_delay).await;
            if let Some(t) = form.get("token") {
                seen.lock().unwrap().revoked.push(t.clone());
            }
            String::new()
        }
        _ => "{}".to_string(),
    };
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
}

async fn server(revoke_timeout: u64) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.connections.danger_allow_private = true;
    cfg.connections.revoke_timeout_secs = revoke_timeout;
    TestServer::start_with(dir, cfg).await
}

/// Starts a grant of `name` at the provider; returns the connection id and its state.
async fn start(s: &TestServer, agent: &str, p: &Provider, name: &str) -> (String, String) {
    start_as(s, &s.admin_token, agent, p, name).await
}

/// [`start`] by the human whose key is `by`.
async fn start_as(
    s: &TestServer,
    by: &str,
    agent: &str,
    p: &Provider,
    name: &str,
) -> (String, String) {
    let (st, c) = s
        .call(
            "POST",
            &format!("/v1/agents/{agent}/connections"),
            Some(by),
            Some(
                json!({"name": name, "issuer": p.base, "client_id": "legate",
                        "client_secret": "client-secret-value", "scopes": ["read"]}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    let url = url::Url::parse(c["authorization_url"].as_str().unwrap()).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    (c["id"].as_str().unwrap().to_string(), state)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The provider's redirect back, as the human's browser would follow it.
async fn callback(s: &TestServer, state: &str, iss: Option<&str>) -> (u16, Value) {
    let mut path = format!("/connections/callback?state={}&code=the-code", enc(state));
    if let Some(i) = iss {
        path.push_str(&format!("&iss={}", enc(i)));
    }
    s.call("GET", &path, None, None).await
}

async fn status_of(s: &TestServer, agent: &str, cid: &str) -> Value {
    let (_, list) = s
        .call(
            "GET",
            &format!("/v1/agents/{agent}/connections"),
            Some(&s.admin_token),
            None,
        )
        .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == cid)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_callback_carrying_another_issuers_iss_is_refused() {
    let p = provider(Steer {
        iss: true,
        ..Default::default()
    })
    .await;
    let s = server(15).await;
    let (a, key) = s.agent("ops", ALL).await;
    let id = a["id"].as_str().unwrap();

    // the right state, another issuer: refused before any code exchange, the grant failed
    let (cid, state) = start(&s, id, &p, "gh").await;
    let (st, v) = callback(&s, &state, Some("https://evil.example")).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_issuer", "{v}");
    assert_eq!(status_of(&s, id, &cid).await["status"], "failed");
    assert!(
        p.seen.lock().unwrap().grants.is_empty(),
        "the code was spent"
    );
    let (st, v) = callback(&s, &state, Some(&p.base)).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_state")),
        "single use"
    );

    // the provider says it sends iss: a callback without one is refused too
    let (cid, state) = start(&s, id, &p, "gh2").await;
    let (st, v) = callback(&s, &state, None).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_issuer")),
        "{v}"
    );
    assert_eq!(status_of(&s, id, &cid).await["status"], "failed");
    // an error answer from "another provider" is refused as such, not believed
    let (cid, state) = start(&s, id, &p, "gh3").await;
    let (st, v) = s
        .call(
            "GET",
            &format!(
                "/connections/callback?state={}&error=access_denied&iss=https%3A%2F%2Fevil.example",
                enc(&state)
            ),
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_issuer")),
        "{v}"
    );
    assert_eq!(status_of(&s, id, &cid).await["status"], "failed");

    // the right one connects
    let (cid, state) = start(&s, id, &p, "github").await;
    let (st, v) = callback(&s, &state, Some(&p.base)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(status_of(&s, id, &cid).await["status"], "active");
    let (st, t) = s
        .call("POST", "/v1/vault/github/token", Some(&key), None)
        .await;
    assert_eq!(st, 200, "{t}");
}

#[tokio::test]
async fn an_agents_connections_are_revoked_at_their_providers_at_once_within_the_timeout() {
    // each revocation request takes 6 s; three connections, two tokens each: 36 s one after
    // the other, 1 s (the timeout) all at once
    let p = provider(Steer {
        revoke_delay: Duration::from_secs(6),
        ..Default::default()
    })
    .await;
    let s = server(1).await;
    let (a, _) = s.agent("ops", ALL).await;
    let id = a["id"].as_str().unwrap();
    let mut cids = Vec::new();
    for name in ["one", "two", "three"] {
        let (cid, state) = start(&s, id, &p, name).await;
        let (st, v) = callback(&s, &state, Some(&p.base)).await;
        assert_eq!(st, 200, "{v}");
        cids.push(cid);
    }
    let t0 = Instant::now();
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{id}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let mut all = false;
    while t0.elapsed() < Duration::from_secs(20) && !all {
        let mut n = 0;
        for cid in &cids {
            if status_of(&s, id, cid).await["status"] == "revoked" {
                n += 1;
            }
        }
        all = n == cids.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t0.elapsed();
    assert!(all, "not all revoked");
    assert!(took < Duration::from_secs(5), "revocation took {took:?}");
    for cid in &cids {
        let c = status_of(&s, id, cid).await;
        assert_eq!(
            c["provider_revoked"], false,
            "timed out, so not confirmed: {c}"
        );
    }
}

/// While a revoked agent's connections are still being revoked at a slow provider, its keys
/// are already dead: a key cached as live just before must not read the vault meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agents_keys_die_before_its_connections_are_revoked_at_the_provider() {
    let p = provider(Steer {
        revoke_delay: Duration::from_secs(4),
        ..Default::default()
    })
    .await;
    let s = server(5).await;
    let (a, key) = s.agent("ops", ALL).await;
    let id = a["id"].as_str().unwrap();
    let (_, state) = start(&s, id, &p, "slow").await;
    let (st, v) = callback(&s, &state, Some(&p.base)).await;
    assert_eq!(st, 200, "{v}");
    // the key is used, so it is cached as live
    let (st, _) = s.call("GET", "/v1/whoami", Some(&key), None).await;
    assert_eq!(st, 200);
    let t0 = Instant::now();
    let path = format!("/v1/agents/{id}");
    let revoke = async {
        let r = s.call("DELETE", &path, Some(&s.admin_token), None).await;
        (r, t0.elapsed())
    };
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let during = s.call("GET", "/v1/whoami", Some(&key), None).await;
        (during, t0.elapsed())
    };
    let (((st, v), took), ((during, _), at)) = tokio::join!(revoke, meanwhile);
    assert_eq!(st, 200, "{v}");
    assert!(
        took > at,
        "the revocation ({took:?}) was over before the key was tried ({at:?})"
    );
    assert_eq!(during, 401, "the revoked agent's key worked at {at:?}");
}

/// A removed owner's delegations end with the ownership: the connection they granted is
/// revoked (at the provider too) when the agent next asks for its token, and a grant they
/// started completes no more.
#[tokio::test]
async fn a_removed_owners_connections_and_grants_end_with_the_ownership() {
    let p = provider(Steer::default()).await;
    let s = server(5).await;
    let (a, key) = s.agent("ops", ALL).await;
    let id = a["id"].as_str().unwrap();
    let admin = s.admin_token.clone();
    let bob = super::owner_keys::add_owner(&s, &admin, id, "bob@agents.test").await;
    let (cid, state) = start_as(&s, &bob, id, &p, "linear").await;
    let (st, v) = callback(&s, &state, Some(&p.base)).await;
    assert_eq!(st, 200, "{v}");
    let (st, t) = s
        .call("POST", "/v1/vault/linear/token", Some(&key), None)
        .await;
    assert_eq!(st, 200, "{t}");
    let (_, pending_state) = start_as(&s, &bob, id, &p, "github").await;

    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{id}/owners/bob@agents.test"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, t) = s
        .call("POST", "/v1/vault/linear/token", Some(&key), None)
        .await;
    assert_eq!(st, 409, "{t}");
    assert!(t["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("no longer owns")));
    let c = status_of(&s, id, &cid).await;
    assert_eq!(c["status"], "revoked", "{c}");
    assert!(
        !p.seen.lock().unwrap().revoked.is_empty(),
        "not revoked at the provider"
    );
    let before = p.seen.lock().unwrap().grants.len();
    let (st, v) = callback(&s, &pending_state, Some(&p.base)).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        p.seen.lock().unwrap().grants.len(),
        before,
        "bob's grant spent a code"
    );
}

/// A server with an agent `ops` whose connection `gh` to `p` is granted (at-1/rt-1 from the
/// code, an access token already all but expired): (server, the agent's key, its id, the
/// connection's id).
async fn connected(p: &Provider) -> (Arc<TestServer>, String, String, String) {
    let s = Arc::new(server(5).await);
    let (a, key) = s.agent("ops", ALL).await;
    let id = a["id"].as_str().unwrap().to_string();
    let (cid, state) = start(&s, &id, p, "gh").await;
    let (st, v) = callback(&s, &state, Some(&p.base)).await;
    assert_eq!(st, 200, "{v}");
    (s, key, id, cid)
}

/// A token request refreshes (slowly) while the agent is revoked: the rotated refresh token
/// it obtains must not stay live at the provider.
async fn refresh_racing_revocation() {
    let p = provider(Steer {
        refresh_delay: Duration::from_millis(1500),
        ..Default::default()
    })
    .await;
    let (s, key, id, cid) = connected(&p).await;
    // at-1/rt-1 from the code; the access token is already (nearly) expired
    let s2 = s.clone();
    let k2 = key.clone();
    let inflight =
        tokio::spawn(async move { s2.call("POST", "/v1/vault/gh/token", Some(&k2), None).await });
    // the refresh is at the provider now
    let t0 = Instant::now();
    while !p
        .seen
        .lock()
        .unwrap()
        .grants
        .iter()
        .any(|g| g == "refresh_token")
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "no refresh started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{id}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, t) = inflight.await.unwrap();
    assert_ne!(st, 200, "no token for a revoked agent: {t}");
    let t0 = Instant::now();
    loop {
        let revoked = p.seen.lock().unwrap().revoked.clone();
        if revoked.iter().any(|t| t == "rt-2") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the rotated refresh token rt-2 was never revoked: {revoked:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&s, &id, &cid).await["status"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_in_flight_when_the_agent_is_revoked_leaves_no_live_token() {
    refresh_racing_revocation().await;
}

#[tokio::test]
async fn a_refresh_in_flight_when_the_agent_is_revoked_leaves_no_live_token_single_threaded() {
    refresh_racing_revocation().await;
}

/// Nodes sharing a store refresh a connection one at a time (each presenting the refresh
/// token the one before stored): while another node holds the connection's refresh turn, a
/// token request here waits without refreshing, and refreshes once the turn is given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_waits_while_another_node_refreshes() {
    use legate::store::{keys, Tree};
    let p = provider(Steer::default()).await;
    let (s, key, _, cid) = connected(&p).await;
    let refreshes = || {
        let seen = p.seen.lock().unwrap();
        seen.grants.iter().filter(|g| *g == "refresh_token").count()
    };
    let store = s.running.as_ref().unwrap().services.store.clone();
    let turn = keys::join(&["connection_refresh", &cid]);
    let other = "node_other";
    let now = legate::util::now_millis();
    assert!(store
        .take_lease_at(Tree::Leases, &turn, other, now, 60_000)
        .unwrap());
    let (s2, k2) = (s.clone(), key.clone());
    let inflight =
        tokio::spawn(async move { s2.call("POST", "/v1/vault/gh/token", Some(&k2), None).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !inflight.is_finished(),
        "answered during another node's turn"
    );
    assert_eq!(refreshes(), 0, "refreshed during another node's turn");
    store.release_lease_at(Tree::Leases, &turn, other).unwrap();
    let (st, t) = tokio::time::timeout(Duration::from_secs(10), inflight)
        .await
        .expect("the request waited on after the turn was given up")
        .unwrap();
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["access_token"], "at-2", "{t}");
    assert_eq!(refreshes(), 1);
    // The turn was given back: the next request (the token is a second long, so stale at
    // once) refreshes without waiting, and the other node can take the turn again after it.
    let t0 = Instant::now();
    let (st, t) = s.call("POST", "/v1/vault/gh/token", Some(&key), None).await;
    assert_eq!((st, t["access_token"].as_str()), (200, Some("at-3")), "{t}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let now = legate::util::now_millis();
    assert!(store
        .take_lease_at(Tree::Leases, &turn, other, now, 60_000)
        .unwrap());
}
