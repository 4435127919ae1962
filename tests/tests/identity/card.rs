//! A2A agent cards (issue 25 §4): linked from the DID document, signed with a detached JWS
//! over the JCS form of the card, and saying so when the agent is revoked.

use super::*;
use legate::identity::card::jcs;

#[tokio::test]
async fn agent_cards_are_signed_linked_and_revocable() {
    let s = TestServer::start().await;
    let (a, _) = s.agent("ops", ALL).await;
    let did = a["did"].as_str().unwrap().to_string();
    let (_, doc) = s.call("GET", "/agents/ops/did.json", None, None).await;
    let svc = doc["service"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "AgentCard")
        .expect("the DID document lists the card")
        .clone();
    assert_eq!(svc["id"], format!("{did}#agent-card"));
    let url = svc["serviceEndpoint"].as_str().unwrap();
    assert!(
        url.ends_with("/agents/ops/.well-known/agent-card.json"),
        "{url}"
    );

    let (st, card) = s
        .call("GET", "/agents/ops/.well-known/agent-card.json", None, None)
        .await;
    assert_eq!(st, 200, "{card}");
    assert_eq!(
        card["name"], "ops",
        "the agent's name (default: its local part)"
    );
    let ifaces = card["supportedInterfaces"].as_array().unwrap();
    assert_eq!(ifaces[0]["url"], "mailto:ops@agents.test");
    assert!(ifaces[1]["url"].as_str().unwrap().ends_with("/mcp"));
    let ext = &card["capabilities"]["extensions"][0];
    assert_eq!(ext["params"]["did"], did);
    // The public chain names the human by id, never by email.
    let public = ext["params"]["chain"].as_array().unwrap();
    assert!(
        public[0].as_str().unwrap().starts_with("human:hu_"),
        "{public:?}"
    );
    assert_eq!(public[1..], a["chain"].as_array().unwrap()[1..]);
    let email = a["chain"][0].as_str().unwrap().trim_start_matches("human:");
    assert!(!card.to_string().contains(email), "{card}");
    assert_eq!(ext["params"]["status"], "active");

    // the detached JWS: protected header + JCS(card without signatures), EdDSA, kid = DID URL
    let sig = &card["signatures"][0];
    let protected = sig["protected"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&BASE64URL_NOPAD.decode(protected.as_bytes()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], format!("{did}#key-1"));
    let mut unsigned = card.clone();
    unsigned.as_object_mut().unwrap().remove("signatures");
    let input = format!(
        "{protected}.{}",
        BASE64URL_NOPAD.encode(jcs(&unsigned).as_bytes())
    );
    let (_, jwks) = s.call("GET", "/agents/ops/jwks.json", None, None).await;
    let x: [u8; 32] = BASE64URL_NOPAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    let token = format!("{input}.{}", sig["signature"].as_str().unwrap());
    assert!(jwt_verifies(&token, &x), "the card signature verifies");
    // any change to the card breaks it
    let mut forged = unsigned.clone();
    forged["name"] = json!("evil");
    let forged_input = format!(
        "{protected}.{}.{}",
        BASE64URL_NOPAD.encode(jcs(&forged).as_bytes()),
        sig["signature"].as_str().unwrap()
    );
    assert!(!jwt_verifies(&forged_input, &x));

    // revoked: 410, unsigned, and it says so
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{}", a["id"].as_str().unwrap()),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, card) = s
        .call("GET", "/agents/ops/.well-known/agent-card.json", None, None)
        .await;
    assert_eq!(st, 410, "{card}");
    assert_eq!(
        card["capabilities"]["extensions"][0]["params"]["status"],
        "revoked"
    );
    assert!(card["description"].as_str().unwrap().starts_with("REVOKED"));
    assert!(card.get("signatures").is_none());
    let (st, e) = s
        .call(
            "GET",
            "/agents/nobody/.well-known/agent-card.json",
            None,
            None,
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("not_found")));
    s.stop().await;
}
