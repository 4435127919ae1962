//! `legate agent …`: create, list, show, revoke agents and sub-agents, rotate their identity
//! keys. Each is one admin request ([`super::session`]); printing is the same either path.

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum AgentCmd {
    /// Create an agent and its first API key (printed once).
    Create {
        /// Local part (ops) or a full address (ops@agents.example.com).
        address: String,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated scopes (default: all seven).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
    },
    /// Create a sub-agent of PARENT whose scopes are a subset of the parent's.
    CreateSub {
        /// The parent agent, by id or address.
        parent: String,
        /// Local part or full address of the new agent.
        address: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
    },
    List,
    /// Show one agent by id or address.
    Show {
        agent: String,
    },
    /// Revoke an agent and its sub-agents.
    Revoke {
        agent: String,
    },
    /// Give an agent a new identity key. The old key stays in did.json and jwks.json (and
    /// verifies) for the overlap, then is dropped; keep it at least the longest token TTL.
    RotateKey {
        agent: String,
        /// Seconds the previous key stays published.
        #[arg(long, default_value_t = legate::identity::DEFAULT_ROTATION_OVERLAP_SECS)]
        overlap_secs: i64,
    },
    /// Lift a circuit-breaker pause: the agent may send again.
    Resume {
        agent: String,
    },
    /// The agent's reputation: its 0-100 score and the factors behind it (README:
    /// Reputation score). With --json, the whole answer of GET /v1/agents/{id}/reputation.
    Reputation {
        agent: String,
    },
}

/// The `NewAgent` JSON of `create` and `create-sub`.
fn new_agent(address: String, name: Option<String>, scopes: Option<Vec<String>>) -> Value {
    let mut v = json!({"name": name, "scopes": scopes});
    if address.contains('@') {
        v["address"] = json!(address);
    } else {
        v["local"] = json!(address);
    }
    v
}

pub(super) async fn agent(cfg: Config, c: AgentCmd, as_json: bool) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    match c {
        AgentCmd::Create {
            address,
            name,
            scopes,
        } => print_json(
            &s.call("agent.create", new_agent(address, name, scopes))
                .await?,
        ),
        AgentCmd::CreateSub {
            parent,
            address,
            name,
            scopes,
        } => {
            let args = json!({"parent": parent, "agent": new_agent(address, name, scopes)});
            print_json(&s.call("subagent.create", args).await?)
        }
        AgentCmd::List => {
            let mut all = Vec::new();
            let mut cursor = Value::Null;
            loop {
                let page = s
                    .call("agent.list", json!({"limit": 1000, "cursor": cursor}))
                    .await?;
                all.extend(page["items"].as_array().cloned().unwrap_or_default());
                match &page["next_cursor"] {
                    Value::String(n) => cursor = json!(n),
                    _ => break,
                }
            }
            if as_json {
                print_json(&Value::Array(all));
            } else {
                for a in &all {
                    println!("{}", agent_line(a));
                }
            }
        }
        AgentCmd::Show { agent } => {
            print_json(&s.call("agent.get", json!({"agent": agent})).await?)
        }
        AgentCmd::Revoke { agent } => {
            let r = s.call("agent.revoke", json!({"agent": agent})).await?;
            if as_json {
                print_json(&r);
            } else {
                for a in r["revoked"].as_array().into_iter().flatten() {
                    println!("revoked {} ({})", text(&a["id"]), text(&a["address"]));
                }
            }
        }
        AgentCmd::RotateKey {
            agent,
            overlap_secs,
        } => print_json(
            &s.call(
                "agent.rotate_key",
                json!({"agent": agent, "overlap_secs": overlap_secs}),
            )
            .await?,
        ),
        AgentCmd::Resume { agent } => {
            print_json(&s.call("agent.resume", json!({"agent": agent})).await?)
        }
        AgentCmd::Reputation { agent } => {
            let r = s.call("agent.reputation", json!({"agent": agent})).await?;
            if as_json {
                print_json(&r);
            } else {
                print!("{}", reputation_text(&r));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `id  address  Status  scopes` (tab-separated), as `agent list` has always printed.
fn agent_line(a: &Value) -> String {
    let scopes: Vec<&str> = a["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let status = text(&a["status"]);
    let mut cap = status.chars();
    let status = match cap.next() {
        Some(f) => f.to_uppercase().chain(cap).collect(),
        None => String::new(),
    };
    format!(
        "{}\t{}\t{}\t{}",
        text(&a["id"]),
        text(&a["address"]),
        status,
        scopes.join(",")
    )
}

/// `agent reputation` without --json: the score, the window, then one line per factor.
fn reputation_text(r: &Value) -> String {
    let f = &r["factors"];
    let d = &f["delivery"];
    let c = &f["conduct"];
    let mut out = format!(
        "{}\tscore {}/100\t{} days from {}\n",
        text(&r["agent"]),
        text(&r["score"]),
        text(&r["window"]["days"]),
        text(&r["window"]["since"])
    );
    let lines = [
        (
            "age",
            format!("{} days", text(&f["age"]["days"])),
            &f["age"],
        ),
        (
            "volume",
            format!(
                "{} recipients, {} pending",
                text(&f["volume"]["recipients"]),
                text(&f["volume"]["pending"])
            ),
            &f["volume"],
        ),
        (
            "delivery",
            format!(
                "{} delivered, {} deferred, {} bounced, {} complained",
                text(&d["delivered"]),
                text(&d["deferred"]),
                text(&d["bounced"]),
                text(&d["complained"])
            ),
            d,
        ),
        (
            "dmarc",
            format!(
                "{} pass, {} fail",
                text(&f["dmarc"]["pass"]),
                text(&f["dmarc"]["fail"])
            ),
            &f["dmarc"],
        ),
        (
            "conduct",
            format!(
                "{} refused sends, {} denied requests, {} revoked keys",
                text(&c["policy_refusals"]),
                text(&c["denied_requests"]),
                text(&c["revoked_keys"])
            ),
            c,
        ),
    ];
    for (name, what, v) in lines {
        out.push_str(&format!("  {name}\t{}\t{what}\n", text(&v["points"])));
    }
    if f["revoked"] == Value::Bool(true) {
        out.push_str("  revoked: the score is 0\n");
    }
    out
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reputation_prints_the_score_and_each_factor() {
        let r = json!({"agent": "agt_1", "score": 56, "window": {"days": 30, "since": "2026-11-07T00:00:00Z"},
            "factors": {"revoked": false, "age": {"days": 45.0, "points": 10.0},
              "volume": {"recipients": 50, "pending": 0, "points": 5.0},
              "delivery": {"delivered": 40, "deferred": 50, "bounced": 10, "complained": 0, "points": 24.0},
              "dmarc": {"pass": 0, "fail": 0, "points": 5.0},
              "conduct": {"policy_refusals": 3, "denied_requests": 4, "revoked_keys": 1, "points": 12.0}}});
        let t = reputation_text(&r);
        assert!(
            t.starts_with("agt_1\tscore 56/100\t30 days from 2026-11-07T00:00:00Z\n"),
            "{t}"
        );
        assert!(
            t.contains("  delivery\t24.0\t40 delivered, 50 deferred, 10 bounced, 0 complained\n"),
            "{t}"
        );
        assert!(
            t.contains("  conduct\t12.0\t3 refused sends, 4 denied requests, 1 revoked keys\n"),
            "{t}"
        );
        assert!(!t.contains("revoked:"));
    }

    #[test]
    fn list_lines_keep_their_shape() {
        let a = json!({"id": "agt_1", "address": "ops@x.test", "status": "active",
                        "scopes": ["mail:read", "vault:read"]});
        assert_eq!(
            agent_line(&a),
            "agt_1\tops@x.test\tActive\tmail:read,vault:read"
        );
    }
}
