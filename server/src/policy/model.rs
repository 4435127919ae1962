//! A send policy as set on an agent (every field optional: absent inherits the org default),
//! the effective policy a send is judged by, and the two ways a send can be refused.

use super::pattern::DomainPattern;
use crate::config::{FirstContact, SendPolicyConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;

/// An agent's own policy (`PUT /v1/agents/{id}/send-policy`). Unknown fields are refused, so
/// a misspelt limit is an error rather than a silently absent one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendPolicy {
    #[serde(default)]
    pub max_per_hour: Option<u64>,
    #[serde(default)]
    pub max_per_day: Option<u64>,
    #[serde(default)]
    pub max_recipients_per_message: Option<u64>,
    #[serde(default)]
    pub max_recipients_per_day: Option<u64>,
    #[serde(default)]
    pub allow_domains: Option<Vec<String>>,
    #[serde(default)]
    pub block_domains: Option<Vec<String>>,
    #[serde(default)]
    pub max_message_bytes: Option<u64>,
    #[serde(default)]
    pub first_contact: Option<FirstContact>,
}

impl SendPolicy {
    /// Checks and normalises the domain patterns (lower case, as they will be compared).
    pub fn normalized(mut self, max_patterns: usize) -> Result<SendPolicy, String> {
        for (name, list) in [
            ("allow_domains", &mut self.allow_domains),
            ("block_domains", &mut self.block_domains),
        ] {
            if let Some(l) = list {
                if l.len() > max_patterns {
                    return Err(format!("{name}: at most {max_patterns} patterns"));
                }
                let mut out = Vec::with_capacity(l.len());
                for s in l.iter() {
                    let p = DomainPattern::parse(s).map_err(|e| format!("{name}: {e}"))?;
                    let p = p.to_string();
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
                *l = out;
            }
        }
        Ok(self)
    }
}

/// The policy a send is judged by: the org default overlaid with the agent's own, then
/// narrowed by every ancestor's effective policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub max_per_hour: u64,
    pub max_per_day: u64,
    pub max_recipients_per_message: u64,
    pub max_recipients_per_day: u64,
    /// `None`: any domain; `Some(list)`: only these (an empty list after narrowing: none).
    pub allow_domains: Option<Vec<DomainPattern>>,
    pub block_domains: Vec<DomainPattern>,
    pub max_message_bytes: u64,
    pub first_contact: FirstContact,
}

fn patterns(list: &[String]) -> Vec<DomainPattern> {
    // Stored and configured lists were validated on the way in; a bad entry is skipped
    // rather than allowed to fail every send.
    list.iter()
        .filter_map(|s| DomainPattern::parse(s).ok())
        .collect()
}

impl Effective {
    pub fn from_config(c: &SendPolicyConfig) -> Effective {
        Effective {
            max_per_hour: c.max_per_hour,
            max_per_day: c.max_per_day,
            max_recipients_per_message: c.max_recipients_per_message,
            max_recipients_per_day: c.max_recipients_per_day,
            allow_domains: (!c.allow_domains.is_empty()).then(|| patterns(&c.allow_domains)),
            block_domains: patterns(&c.block_domains),
            max_message_bytes: c.max_message_bytes,
            first_contact: c.first_contact,
        }
    }

    /// This policy with `own`'s fields in place of the ones it sets. An empty own allow list
    /// lifts the default's restriction (for this agent; ancestors still narrow it).
    pub fn overlay(&self, own: &SendPolicy) -> Effective {
        Effective {
            max_per_hour: own.max_per_hour.unwrap_or(self.max_per_hour),
            max_per_day: own.max_per_day.unwrap_or(self.max_per_day),
            max_recipients_per_message: own
                .max_recipients_per_message
                .unwrap_or(self.max_recipients_per_message),
            max_recipients_per_day: own
                .max_recipients_per_day
                .unwrap_or(self.max_recipients_per_day),
            allow_domains: match &own.allow_domains {
                Some(l) if l.is_empty() => None,
                Some(l) => Some(patterns(l)),
                None => self.allow_domains.clone(),
            },
            block_domains: match &own.block_domains {
                Some(l) => patterns(l),
                None => self.block_domains.clone(),
            },
            max_message_bytes: own.max_message_bytes.unwrap_or(self.max_message_bytes),
            first_contact: own.first_contact.unwrap_or(self.first_contact),
        }
    }

    /// The stricter of the two on every rule: what a sub-agent gets under its parent.
    pub fn meet(&self, parent: &Effective) -> Effective {
        let mut block = self.block_domains.clone();
        for p in &parent.block_domains {
            if !block.iter().any(|b| b.covers(p)) {
                block.push(p.clone());
            }
        }
        let allow = match (&self.allow_domains, &parent.allow_domains) {
            (None, x) | (x, None) => x.clone(),
            // Patterns are nested or disjoint, so the intersection is the entries of either
            // list that the other list covers.
            (Some(a), Some(b)) => {
                let mut out: Vec<DomainPattern> = Vec::new();
                let both = a
                    .iter()
                    .filter(|x| b.iter().any(|y| y.covers(x)))
                    .chain(b.iter().filter(|y| a.iter().any(|x| x.covers(y))));
                for p in both {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
                Some(out)
            }
        };
        Effective {
            max_per_hour: self.max_per_hour.min(parent.max_per_hour),
            max_per_day: self.max_per_day.min(parent.max_per_day),
            max_recipients_per_message: self
                .max_recipients_per_message
                .min(parent.max_recipients_per_message),
            max_recipients_per_day: self
                .max_recipients_per_day
                .min(parent.max_recipients_per_day),
            allow_domains: allow,
            block_domains: block,
            max_message_bytes: self.max_message_bytes.min(parent.max_message_bytes),
            first_contact: self.first_contact.max(parent.first_contact),
        }
    }

    /// The rules `own` sets that are looser than this (a parent's effective) policy: a
    /// sub-agent may not be given them. Fields `own` leaves unset are narrowed by [`meet`]
    /// anyway, so only what is asked for explicitly is judged.
    pub fn looser_in(&self, own: &SendPolicy) -> Vec<&'static str> {
        let mut out = Vec::new();
        let nums = [
            ("max_per_hour", own.max_per_hour, self.max_per_hour),
            ("max_per_day", own.max_per_day, self.max_per_day),
            (
                "max_recipients_per_message",
                own.max_recipients_per_message,
                self.max_recipients_per_message,
            ),
            (
                "max_recipients_per_day",
                own.max_recipients_per_day,
                self.max_recipients_per_day,
            ),
            (
                "max_message_bytes",
                own.max_message_bytes,
                self.max_message_bytes,
            ),
        ];
        for (name, mine, parent) in nums {
            if mine.is_some_and(|m| m > parent) {
                out.push(name);
            }
        }
        if own.first_contact.is_some_and(|f| f < self.first_contact) {
            out.push("first_contact");
        }
        if let (Some(mine), Some(parent)) = (&own.allow_domains, &self.allow_domains) {
            let mine = patterns(mine);
            if mine.is_empty() || !mine.iter().all(|m| parent.iter().any(|p| p.covers(m))) {
                out.push("allow_domains");
            }
        }
        if let Some(mine) = &own.block_domains {
            let mine = patterns(mine);
            if !self
                .block_domains
                .iter()
                .all(|p| mine.iter().any(|m| m.covers(p)))
            {
                out.push("block_domains");
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let list = |l: &[DomainPattern]| l.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        json!({
            "max_per_hour": self.max_per_hour,
            "max_per_day": self.max_per_day,
            "max_recipients_per_message": self.max_recipients_per_message,
            "max_recipients_per_day": self.max_recipients_per_day,
            "allow_domains": self.allow_domains.as_deref().map(list),
            "block_domains": list(&self.block_domains),
            "max_message_bytes": self.max_message_bytes,
            "first_contact": self.first_contact,
        })
    }
}

/// Why a send was refused, naming the rule. A cap (`Limit`) clears when its window ends;
/// a rule (`Denied`) does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// REST/MCP `429 send_limit` with `Retry-After`; SMTP `452 4.5.3`.
    Limit {
        rule: &'static str,
        limit: u64,
        retry_after_secs: u64,
    },
    /// REST/MCP `403 policy_denied`; SMTP `550 5.7.1`.
    Denied { rule: &'static str, detail: String },
    /// The address is on the org's suppression list: REST/MCP `422 suppressed`; SMTP
    /// `550 5.7.1`. Says when and why it was added.
    Suppressed {
        address: String,
        since_ms: i64,
        reason: String,
    },
    /// Not a refusal but a wait: a rule (`first_contact = hold`) wants a human's approval.
    /// The queue stores the message in the approval queue (REST `202` `"status": "held"`,
    /// SMTP `250`); it is never an error answer.
    Hold { rule: &'static str, detail: String },
    /// The circuit breaker paused the agent's sending (`policy::breaker`) until an admin
    /// resumes it: REST/MCP `403 sending_paused`; SMTP `550 5.7.1`.
    Paused { reason: String, since_ms: i64 },
}

impl Refusal {
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::Limit { rule, .. }
            | Refusal::Denied { rule, .. }
            | Refusal::Hold { rule, .. } => rule,
            Refusal::Suppressed { .. } => "suppressed",
            Refusal::Paused { .. } => "sending_paused",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Limit {
                rule,
                limit,
                retry_after_secs,
            } => write!(
                f,
                "send policy {rule} ({limit}) reached; try again in {retry_after_secs} s"
            ),
            Refusal::Denied { rule, detail } => write!(f, "send policy {rule}: {detail}"),
            Refusal::Suppressed {
                address,
                since_ms,
                reason,
            } => {
                write!(
                    f,
                    "{address} is on the suppression list since {}",
                    crate::util::rfc3339(since_ms / 1000)
                )?;
                if reason.is_empty() {
                    Ok(())
                } else {
                    write!(f, ": {reason}")
                }
            }
            Refusal::Hold { rule, detail } => {
                write!(f, "held for a human's approval ({rule}): {detail}")
            }
            Refusal::Paused { reason, since_ms } => write!(
                f,
                "this agent's sending is paused since {} until an admin resumes it: {reason}",
                crate::util::rfc3339(since_ms / 1000)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Effective {
        Effective::from_config(&SendPolicyConfig::default())
    }

    #[test]
    fn a_sub_agent_is_never_looser_than_its_parent() {
        let parent = base().overlay(&SendPolicy {
            max_per_hour: Some(5),
            allow_domains: Some(vec!["example.com".into()]),
            block_domains: Some(vec!["bad.example.com".into()]),
            first_contact: Some(FirstContact::Deny),
            ..Default::default()
        });
        let child = base()
            .overlay(&SendPolicy {
                max_per_hour: Some(50),
                allow_domains: Some(vec!["*.example.com".into(), "other.org".into()]),
                first_contact: Some(FirstContact::Allow),
                ..Default::default()
            })
            .meet(&parent);
        assert_eq!(child.max_per_hour, 5);
        assert_eq!(child.first_contact, FirstContact::Deny);
        let allow: Vec<String> = child
            .allow_domains
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(allow, vec!["*.example.com"]);
        assert!(child
            .block_domains
            .iter()
            .any(|b| b.matches("bad.example.com")));
    }

    #[test]
    fn looser_rules_are_named() {
        let parent = base().overlay(&SendPolicy {
            max_per_day: Some(10),
            allow_domains: Some(vec!["example.com".into()]),
            block_domains: Some(vec!["x.example.com".into()]),
            ..Default::default()
        });
        let own = SendPolicy {
            max_per_day: Some(11),
            allow_domains: Some(vec!["example.org".into()]),
            block_domains: Some(vec![]),
            max_per_hour: Some(1),
            ..Default::default()
        };
        assert_eq!(
            parent.looser_in(&own),
            vec!["max_per_day", "allow_domains", "block_domains"]
        );
        let tighter = SendPolicy {
            max_per_day: Some(3),
            allow_domains: Some(vec!["a.example.com".into()]),
            block_domains: Some(vec!["example.com".into()]),
            ..Default::default()
        };
        assert!(parent.looser_in(&tighter).is_empty());
    }

    #[test]
    fn unknown_fields_and_bad_patterns_are_refused() {
        let r: Result<SendPolicy, _> = serde_json::from_value(json!({"max_per_hours": 3}));
        assert!(r.is_err());
        let r: Result<SendPolicy, _> = serde_json::from_value(json!({"max_per_hour": -1}));
        assert!(r.is_err());
        let p = SendPolicy {
            block_domains: Some(vec!["a.com\r\nX".into()]),
            ..Default::default()
        };
        assert!(p.normalized(10).is_err());
    }
}
