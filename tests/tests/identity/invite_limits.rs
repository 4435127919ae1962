//! Owner invites are rationed per agent (`owners.max_invites_per_hour`): each one is a mail
//! from the postmaster to an address the adder chose, so adding and removing owners in a
//! loop must not turn the server into a mailer.

use super::owner_keys::human_inbox;
use super::*;

async fn add(s: &TestServer, agent: &str, email: &str) -> (u16, Value) {
    s.call(
        "POST",
        &format!("/v1/agents/{agent}/owners"),
        Some(&s.admin_token),
        Some(json!({"email": email})),
    )
    .await
}

#[tokio::test]
async fn owner_invites_are_rationed_per_agent_and_hour() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.owners.max_invites_per_hour = 2;
    let s = TestServer::start_with(dir, cfg).await;
    let (a, _) = s.agent("alpha", ALL).await;
    let (b, _) = s.agent("beta", ALL).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    for who in ["o1", "o2", "o3", "o4"] {
        human_inbox(&s, &format!("{who}@agents.test")).await;
    }
    for who in ["o1", "o2"] {
        let (st, v) = add(&s, a, &format!("{who}@agents.test")).await;
        assert_eq!((st, &v["invited"]), (201, &json!(true)), "{v}");
    }
    // The third invite of the hour is refused, with when to try again; nobody is added.
    let r = s
        .http
        .post(format!("{}/v1/agents/{a}/owners", s.base))
        .bearer_auth(&s.admin_token)
        .json(&json!({"email": "o3@agents.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    let (_, owners) = s
        .call(
            "GET",
            &format!("/v1/agents/{a}/owners"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(!owners.to_string().contains("o3@agents.test"), "{owners}");
    // Removing an owner gives no invite back.
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{a}/owners/o1@agents.test"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 204, "{v}");
    assert_eq!(add(&s, a, "o3@agents.test").await.0, 429);
    // Another agent has its own ration.
    let (st, v) = add(&s, b, "o4@agents.test").await;
    assert_eq!((st, &v["invited"]), (201, &json!(true)), "{v}");
}
