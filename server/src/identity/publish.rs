//! The delegation chain as the world sees it. Inside legate a chain names its human by email
//! (`human:alice@corp.example`), which is what the audit trail needs. The agent card, the
//! `Agent-Signature:` header of every sent message and the Web Bot Auth verification route
//! go to anyone, and an operator's staff addresses are not theirs to give away (harvested,
//! phished, spammed): there the human is named by legate's id for them (`human:hu_…`), which
//! the operator can resolve and nobody else can.

use super::{Agent, IdentityService};
use crate::store::Tree;

/// What stands for a human who is no longer known (deleted since the agent was made).
const WITHHELD: &str = "human:withheld";

impl IdentityService {
    /// `agent`'s chain with every `human:<email>` link replaced by `human:<id>`.
    pub fn public_chain(&self, agent: &Agent) -> Vec<String> {
        agent
            .chain
            .iter()
            .map(|link| match link.strip_prefix("human:") {
                Some(who) if who.contains('@') => self.human_id_by_email(who),
                _ => link.clone(),
            })
            .collect()
    }

    fn human_id_by_email(&self, email: &str) -> String {
        let key = email.to_ascii_lowercase();
        match self.store.get(Tree::HumanEmail, key.as_bytes()) {
            Ok(Some(id)) => match std::str::from_utf8(&id) {
                Ok(id) => format!("human:{id}"),
                Err(_) => WITHHELD.to_string(),
            },
            _ => WITHHELD.to_string(),
        }
    }
}
