//! Allow and block lists of senders, per agent and per org.
//!
//! An operator blocks a spammer for the whole org (refused at RCPT by envelope sender and at
//! the end of DATA by header From, `550 5.7.1`); an agent blocks a sender for itself (filed to
//! Junk, or refused if `senders.agent_block = "reject"`); a sign-up agent receives only from
//! the senders on its allow list. Entries are addresses (exact) or domains (the domain and its
//! subdomains), matched case-insensitively against addresses, never display names.
//!
//! Allow lists match the header From, because mail services send with their own bounce
//! address; and a header From is whatever the sender typed, so by default it only counts as
//! allowed when the sender is proven (DMARC aligned pass, `sender_authenticated`: one
//! definition with the rest of legate). Block lists match the envelope sender too: a block
//! needs no proof.
//!
//! The lists live in the store and are read at every decision, so every node and every
//! session sees a change at once.

use super::{MailboxError, MailboxService};
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::store::{keys, Tree};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Whose list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderOwner {
    Agent(String),
    Org(String),
}

impl SenderOwner {
    /// The calling agent's own lists. A principal that is no agent (an admin) has none: the
    /// service answers not found for the empty id.
    pub fn caller(actor: &Actor) -> SenderOwner {
        SenderOwner::Agent(actor.agent_id().unwrap_or_default().to_string())
    }

    fn tag(&self) -> (&'static str, &str) {
        match self {
            SenderOwner::Agent(id) => ("agent", id),
            SenderOwner::Org(id) => ("org", id),
        }
    }

    fn target(&self) -> String {
        let (kind, id) = self.tag();
        format!("{kind}:{id}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderList {
    Allow,
    Block,
}

impl SenderList {
    pub fn parse(s: &str) -> Result<SenderList, MailboxError> {
        match s {
            "allow" => Ok(SenderList::Allow),
            "block" => Ok(SenderList::Block),
            _ => Err(MailboxError::Invalid(format!(
                "unknown list \"{s}\" (allow or block)"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            SenderList::Allow => "allow",
            SenderList::Block => "block",
        }
    }
}

/// One entry as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderEntry {
    pub list: SenderList,
    /// `user@example.com` or `example.com`, lower case.
    pub entry: String,
    #[serde(default)]
    pub note: String,
    pub created_at: i64,
    pub created_by: String,
}

/// What an agent-level block does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AgentBlockAction {
    #[default]
    Junk,
    Reject,
}

/// `[senders]` as the mailbox applies it.
#[derive(Debug, Clone, Copy)]
pub struct SenderPolicy {
    pub agent_block: AgentBlockAction,
    /// An allow-list match on the header From counts only for a proven sender.
    pub allow_requires_authentication: bool,
    /// Entries per list of one owner.
    pub max_entries: usize,
}

impl Default for SenderPolicy {
    fn default() -> Self {
        Self {
            agent_block: AgentBlockAction::Junk,
            allow_requires_authentication: true,
            max_entries: 1000,
        }
    }
}

/// The decision for one recipient's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderVerdict {
    Accept,
    Junk,
    /// Refused with a reason safe to give the sending server.
    Refuse(&'static str),
}

/// `{allow: [...], block: [...]}`: the REST and MCP answer.
pub fn lists_json(entries: &[SenderEntry]) -> serde_json::Value {
    let of =
        |l: SenderList| -> Vec<&SenderEntry> { entries.iter().filter(|e| e.list == l).collect() };
    json!({"allow": of(SenderList::Allow), "block": of(SenderList::Block)})
}

/// Lower-cases and checks an entry: an address with one `@`, or a domain of at least two
/// labels. No spaces, controls or angle brackets: entries end up in audit details and API
/// answers, and a pattern language would be a second thing to get wrong.
pub fn normalize_entry(raw: &str) -> Result<String, MailboxError> {
    let e = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = || {
        MailboxError::Invalid(format!(
            "\"{}\" is not an address (user@example.com) or a domain (example.com)",
            raw.chars().take(80).collect::<String>()
        ))
    };
    if e.is_empty() || e.len() > 254 || !e.is_ascii() {
        return Err(bad());
    }
    let (local, domain) = match e.split_once('@') {
        Some((l, d)) => (Some(l), d),
        None => (None, e.as_str()),
    };
    if let Some(l) = local {
        if l.is_empty()
            || l.len() > 64
            || l.bytes()
                .any(|b| b <= b' ' || b == 0x7f || b"<>()[]\\,;:\"@".contains(&b))
        {
            return Err(bad());
        }
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    {
        return Err(bad());
    }
    Ok(e)
}

/// The entries that match `sender`: the address itself, then its domain and each parent
/// domain down to two labels.
fn candidates(sender: &str) -> Vec<String> {
    let s = sender.trim().trim_end_matches('.').to_ascii_lowercase();
    let Some((_, domain)) = s.rsplit_once('@') else {
        return Vec::new();
    };
    let mut out = vec![s.clone()];
    let mut d = domain;
    while d.contains('.') {
        out.push(d.to_string());
        match d.split_once('.') {
            Some((_, rest)) => d = rest,
            None => break,
        }
    }
    out
}

fn prefix(owner: &SenderOwner, list: SenderList) -> Vec<u8> {
    let (kind, id) = owner.tag();
    let mut p = keys::join(&[kind, id, list.name()]);
    p.push(0);
    p
}

fn key(owner: &SenderOwner, list: SenderList, entry: &str) -> Vec<u8> {
    let mut k = prefix(owner, list);
    k.extend_from_slice(entry.as_bytes());
    k
}

impl MailboxService {
    /// `[senders]`, set once at start.
    pub fn set_sender_policy(&self, p: SenderPolicy) {
        *self
            .sender_policy
            .write()
            .unwrap_or_else(|e| e.into_inner()) = p;
    }

    fn sender_policy(&self) -> SenderPolicy {
        *self.sender_policy.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Who may read and change a list: an admin any; an agent its own (`mail:manage`).
    /// Unknown owners are not found, for an agent indistinguishable from another's.
    fn gate(&self, actor: &Actor, owner: &SenderOwner, action: &str) -> Result<(), MailboxError> {
        let target = owner.target();
        match owner {
            SenderOwner::Org(id) => {
                actor.require_admin(&self.audit, action, &target)?;
                if self.store.get(Tree::Orgs, id.as_bytes())?.is_none() {
                    return Err(MailboxError::NotFound("org"));
                }
            }
            SenderOwner::Agent(id) => {
                if actor.is_admin() {
                    if self.store.get(Tree::Agents, id.as_bytes())?.is_none() {
                        return Err(MailboxError::NotFound("agent"));
                    }
                } else {
                    let me = actor.require(&self.audit, Scope::MailManage, action, &target)?;
                    if me != id {
                        return Err(MailboxError::NotFound("agent"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Both lists of an owner, allow first, each in entry order.
    pub fn sender_lists(
        &self,
        actor: &Actor,
        owner: &SenderOwner,
    ) -> Result<Vec<SenderEntry>, MailboxError> {
        self.gate(actor, owner, "senders.list")?;
        let mut out = Vec::new();
        for list in [SenderList::Allow, SenderList::Block] {
            for r in self
                .store
                .scan_prefix(Tree::SenderLists, &prefix(owner, list))
            {
                let (_, v) = r?;
                out.push(crate::store::decode::<SenderEntry>(&v)?);
            }
        }
        Ok(out)
    }

    /// Adds (or replaces the note of) one entry; audited.
    pub async fn add_sender(
        &self,
        actor: &Actor,
        owner: &SenderOwner,
        list: SenderList,
        entry: &str,
        note: &str,
    ) -> Result<SenderEntry, MailboxError> {
        self.gate(actor, owner, "senders.add")?;
        let entry = normalize_entry(entry)?;
        if note.len() > 500 || note.chars().any(char::is_control) {
            return Err(MailboxError::Invalid(
                "note: at most 500 characters, no control characters".into(),
            ));
        }
        let max = self.sender_policy().max_entries;
        let k = key(owner, list, &entry);
        let exists = self.store.get(Tree::SenderLists, &k)?.is_some();
        if !exists
            && self
                .store
                .scan_prefix(Tree::SenderLists, &prefix(owner, list))
                .take(max)
                .count()
                >= max
        {
            return Err(MailboxError::Invalid(format!(
                "this {} list already has {max} entries (senders.max_entries)",
                list.name()
            )));
        }
        let e = SenderEntry {
            list,
            entry,
            note: note.to_string(),
            created_at: crate::util::now_unix(),
            created_by: actor.actor_ref().id,
        };
        self.store.put_record(Tree::SenderLists, &k, &e)?;
        actor.audit(
            &self.audit,
            "senders.add",
            &owner.target(),
            Outcome::Ok,
            json!({"list": list.name(), "entry": e.entry}),
        )?;
        self.audit.commit().await?;
        Ok(e)
    }

    /// Removes one entry; audited. An entry that is not there is not found.
    pub async fn remove_sender(
        &self,
        actor: &Actor,
        owner: &SenderOwner,
        list: SenderList,
        entry: &str,
    ) -> Result<(), MailboxError> {
        self.gate(actor, owner, "senders.remove")?;
        let entry = normalize_entry(entry)?;
        let k = key(owner, list, &entry);
        if self.store.get(Tree::SenderLists, &k)?.is_none() {
            return Err(MailboxError::NotFound("entry"));
        }
        self.store.remove(Tree::SenderLists, &k)?;
        actor.audit(
            &self.audit,
            "senders.remove",
            &owner.target(),
            Outcome::Ok,
            json!({"list": list.name(), "entry": entry}),
        )?;
        self.audit.commit().await?;
        Ok(())
    }

    fn listed(
        &self,
        owner: &SenderOwner,
        list: SenderList,
        sender: &str,
    ) -> Result<bool, MailboxError> {
        let [listed] = self.any_listed([(owner, list, &[sender][..])])?;
        Ok(listed)
    }

    /// For each (owner, list, senders) asked: is any of the senders on that list? All the
    /// candidate entries (each address and its parent domains) are read at once: on
    /// PostgreSQL a delivery's sender checks were ten round trips, one per candidate.
    pub(super) fn any_listed<const N: usize>(
        &self,
        asked: [(&SenderOwner, SenderList, &[&str]); N],
    ) -> Result<[bool; N], MailboxError> {
        let mut keys: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, (owner, list, senders)) in asked.iter().enumerate() {
            for s in senders.iter() {
                keys.extend(candidates(s).iter().map(|c| (i, key(owner, *list, c))));
            }
        }
        let flat: Vec<&[u8]> = keys.iter().map(|(_, k)| k.as_slice()).collect();
        let found = self.store.get_many(Tree::SenderLists, &flat)?;
        let mut hit = [false; N];
        for ((i, _), v) in keys.iter().zip(found) {
            hit[*i] |= v.is_some();
        }
        Ok(hit)
    }

    fn has_list(&self, owner: &SenderOwner, list: SenderList) -> Result<bool, MailboxError> {
        Ok(self
            .store
            .scan_prefix(Tree::SenderLists, &prefix(owner, list))
            .next()
            .transpose()?
            .is_some())
    }

    /// At RCPT: is the envelope sender on the org's block list? The null sender (bounces)
    /// is never judged here.
    pub fn envelope_blocked(&self, org_id: &str, mail_from: &str) -> Result<bool, MailboxError> {
        if mail_from.is_empty() {
            return Ok(false);
        }
        self.listed(
            &SenderOwner::Org(org_id.to_string()),
            SenderList::Block,
            mail_from,
        )
    }

    /// Which recipients are judged alike at the end of DATA: the org, plus the agent when its
    /// own lists can refuse (an allow list, or a block list in `reject` mode). The SMTP
    /// session keeps one class per transaction (`452 4.5.3` asks the client to send the rest
    /// again), so a refusal after DATA is the answer for every recipient of it, and no copy
    /// acknowledged with 250 is ever dropped.
    pub fn refusal_class(&self, org_id: &str, agent_id: &str) -> Result<String, MailboxError> {
        let agent = SenderOwner::Agent(agent_id.to_string());
        let own = self.has_list(&agent, SenderList::Allow)?
            || (self.sender_policy().agent_block == AgentBlockAction::Reject
                && self.has_list(&agent, SenderList::Block)?);
        Ok(if own {
            format!("{org_id} {agent_id}")
        } else {
            org_id.to_string()
        })
    }

    /// At the end of DATA, for one recipient's copy: blocks (org, then agent) by envelope
    /// sender or header From, then allow lists (org, then agent) by header From.
    pub(super) fn judge_sender(
        &self,
        org_id: &str,
        agent_id: &str,
        envelope_from: &str,
        header_from: Option<&str>,
        authenticated: bool,
    ) -> Result<SenderVerdict, MailboxError> {
        let policy = self.sender_policy();
        let org = SenderOwner::Org(org_id.to_string());
        let agent = SenderOwner::Agent(agent_id.to_string());
        let senders: Vec<&str> = [Some(envelope_from), header_from]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        let proven = authenticated || !policy.allow_requires_authentication;
        // An allow list counts the header From only, and only a proven one.
        let allow_from: Vec<&str> = header_from.filter(|_| proven).into_iter().collect();
        let [org_blocked, agent_blocked, org_allows, agent_allows] = self.any_listed([
            (&org, SenderList::Block, &senders[..]),
            (&agent, SenderList::Block, &senders[..]),
            (&org, SenderList::Allow, &allow_from[..]),
            (&agent, SenderList::Allow, &allow_from[..]),
        ])?;
        if org_blocked {
            return Ok(SenderVerdict::Refuse(
                "sender blocked by the recipient's organisation",
            ));
        }
        if agent_blocked && policy.agent_block == AgentBlockAction::Reject {
            return Ok(SenderVerdict::Refuse("sender blocked by the recipient"));
        }
        // A sender on an allow list passes it whether or not the list has others.
        for (owner, allowed) in [(&org, org_allows), (&agent, agent_allows)] {
            if !allowed && self.has_list(owner, SenderList::Allow)? {
                return Ok(SenderVerdict::Refuse(
                    "the recipient only accepts mail from listed senders",
                ));
            }
        }
        Ok(if agent_blocked {
            SenderVerdict::Junk
        } else {
            SenderVerdict::Accept
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_addresses_or_domains() {
        assert_eq!(
            normalize_entry(" Spam@Example.COM. ").unwrap(),
            "spam@example.com"
        );
        assert_eq!(normalize_entry("example.com").unwrap(), "example.com");
        for bad in [
            "",
            "com",
            "a b@example.com",
            "x@com",
            "@example.com",
            "x@@example.com",
            "<x@example.com>",
            "x@exa mple.com",
            "x\r\n@example.com",
            "-bad.example.com",
            "ünï.example.com",
        ] {
            assert!(normalize_entry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_sender_matches_its_address_and_parent_domains() {
        assert_eq!(
            candidates("Bob@Mail.Example.com"),
            vec!["bob@mail.example.com", "mail.example.com", "example.com"]
        );
        assert!(candidates("no-at-sign").is_empty());
    }

    #[tokio::test]
    async fn verdicts_follow_the_lists() {
        let dir = tempfile::tempdir().unwrap();
        let mb = super::super::testutil::service_in(dir.path(), 0);
        let store = &mb.store;
        let put = |owner: &SenderOwner, list, e: &str| {
            let rec = SenderEntry {
                list,
                entry: e.into(),
                note: String::new(),
                created_at: 0,
                created_by: "t".into(),
            };
            store
                .put_record(Tree::SenderLists, &key(owner, list, e), &rec)
                .unwrap();
        };
        let org = SenderOwner::Org("org1".into());
        let agent = SenderOwner::Agent("ag1".into());
        let judge = |env: &str, from: Option<&str>, auth: bool| {
            mb.judge_sender("org1", "ag1", env, from, auth).unwrap()
        };
        assert_eq!(
            judge("a@x.com", Some("a@x.com"), false),
            SenderVerdict::Accept
        );
        put(&org, SenderList::Block, "spam.example");
        assert!(mb.envelope_blocked("org1", "bulk@mx.spam.example").unwrap());
        assert!(!mb.envelope_blocked("org1", "").unwrap());
        assert!(matches!(
            judge("ok@x.com", Some("boss@spam.example"), true),
            SenderVerdict::Refuse(_)
        ));
        put(&agent, SenderList::Block, "pest@x.com");
        assert_eq!(judge("pest@x.com", None, false), SenderVerdict::Junk);
        mb.set_sender_policy(SenderPolicy {
            agent_block: AgentBlockAction::Reject,
            ..Default::default()
        });
        assert!(matches!(
            judge("pest@x.com", None, false),
            SenderVerdict::Refuse(_)
        ));
        mb.set_sender_policy(SenderPolicy::default());
        // An allow list: only a proven header From on it passes.
        put(&agent, SenderList::Allow, "bank.example");
        assert_eq!(
            judge("bounce@esp.example", Some("alerts@bank.example"), true),
            SenderVerdict::Accept
        );
        assert!(matches!(
            judge("bounce@esp.example", Some("alerts@bank.example"), false),
            SenderVerdict::Refuse(_)
        ));
        assert!(matches!(
            judge("alerts@bank.example", Some("other@x.com"), true),
            SenderVerdict::Refuse(_)
        ));
        mb.set_sender_policy(SenderPolicy {
            allow_requires_authentication: false,
            ..Default::default()
        });
        assert_eq!(
            judge("b@esp.example", Some("alerts@bank.example"), false),
            SenderVerdict::Accept
        );
    }
}
