//! Inbound trust (issue 24, item 7): the labels each delivery records (`Trust`), and the
//! optional per-agent screening that files mail from a first contact in `Screened` instead
//! of INBOX, so an agent can refuse to act on instructions from strangers.
//! `GET|PUT /v1/agents/{id}/screening`: an admin, or the agent itself with `mail:manage`.

use super::{
    contacts::contact_key, Folder, FolderState, MailboxError, MailboxService, SenderList,
    SenderOwner, Trust,
};
use crate::audit::Outcome;
use crate::identity::{Actor, Principal, Scope};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The folder screened mail goes to (a user folder, made on first use).
pub const SCREENED: &str = "Screened";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Screening {
    /// Mail from a sender the agent never exchanged mail with goes to `Screened`.
    #[serde(default)]
    pub hold_first_contact: bool,
}

impl MailboxService {
    /// The agent's screening settings (absent: none).
    pub fn screening(&self, agent: &str) -> Result<Screening, MailboxError> {
        Ok(self
            .store
            .get_record(Tree::Screening, agent.as_bytes())?
            .unwrap_or_default())
    }

    /// The agent's `Screened` folder, if it exists (made when screening is turned on; an
    /// agent that deleted it gets its strangers' mail in INBOX again, labelled).
    pub(super) fn screened_folder(&self, agent: &str) -> Result<Option<Folder>, MailboxError> {
        let folder = Folder::user(SCREENED)?;
        let key = super::index::folder_state(agent, folder);
        Ok(self.store.get(Tree::Folders, &key)?.map(|_| folder))
    }

    /// Makes the `Screened` folder (no audit of its own: part of turning screening on).
    async fn ensure_screened(&self, agent: &str) -> Result<(), MailboxError> {
        self.ensure_mailbox(agent).await?;
        let folder = Folder::user(SCREENED)?;
        let now = crate::util::now_unix();
        self.store.transact(&[Tree::Folders], |tx| {
            let key = super::index::folder_state(agent, folder);
            if tx.get(Tree::Folders, &key)?.is_some() {
                return Ok(());
            }
            let mut st = super::slots::load_state(tx, agent, now)?;
            st.modseq += 1;
            let validity = u32::try_from(st.modseq % u64::from(u32::MAX))
                .unwrap_or(1)
                .max(1);
            let mut fs = FolderState::new(folder, validity);
            fs.highest_modseq = st.modseq;
            tx.put_record(Tree::Folders, &key, &fs)?;
            tx.put_record(Tree::Folders, &super::index::agent_state(agent), &st)?;
            Ok::<_, crate::store::TxFail<MailboxError>>(())
        })?;
        Ok(())
    }

    /// The trust labels of mail from `from` (the header From) to `agent` of `org`.
    pub(super) fn trust_of(
        &self,
        org: &str,
        agent: &str,
        from: Option<&str>,
        proven: bool,
    ) -> Result<Trust, MailboxError> {
        let Some(from) = from.filter(|f| !f.is_empty()) else {
            return Ok(Trust {
                first_contact: true,
                allowlisted: false,
            });
        };
        let known = self
            .store
            .get(Tree::SendContacts, &contact_key(agent, from))?
            .is_some();
        // An allow list names addresses anyone can type into a From: only a proven sender
        // counts as allowlisted, whatever `senders.allow_requires_authentication` says.
        let allowlisted = proven && {
            let (agent, org) = (
                SenderOwner::Agent(agent.into()),
                SenderOwner::Org(org.into()),
            );
            let [mine, org] = self.any_listed([
                (&agent, SenderList::Allow, &[from][..]),
                (&org, SenderList::Allow, &[from][..]),
            ])?;
            mine || org
        };
        // Likewise a known contact: anyone can forge the From of someone the agent talks to,
        // so an unproven sender is a first contact (and screened) whoever it claims to be.
        Ok(Trust {
            first_contact: !(known && proven),
            allowlisted,
        })
    }

    fn screening_target(
        &self,
        actor: &Actor,
        id: &str,
        action: &str,
    ) -> Result<String, MailboxError> {
        if actor.is_admin() {
            actor.require_admin(&self.audit, action, id)?;
            let exists = super::index::valid_agent_id(id)
                && self.store.get(Tree::Agents, id.as_bytes())?.is_some();
            if !exists {
                return Err(MailboxError::NotFound("agent"));
            }
            return Ok(id.to_string());
        }
        let me = actor.require(&self.audit, Scope::MailManage, action, id)?;
        let is_me = matches!(&actor.principal, Principal::Agent { address, .. } if address.eq_ignore_ascii_case(id))
            || me == id;
        if !is_me {
            return Err(MailboxError::NotFound("agent"));
        }
        Ok(me.to_string())
    }

    /// `GET /v1/agents/{id}/screening`.
    pub fn screening_json(&self, actor: &Actor, id: &str) -> Result<Value, MailboxError> {
        let agent = self.screening_target(actor, id, "agent.screening.get")?;
        let s = self.screening(&agent)?;
        Ok(
            json!({"agent_id": agent, "hold_first_contact": s.hold_first_contact, "folder": SCREENED}),
        )
    }

    /// `PUT /v1/agents/{id}/screening`.
    pub async fn set_screening(
        &self,
        actor: &Actor,
        id: &str,
        s: Screening,
    ) -> Result<Value, MailboxError> {
        let action = "agent.screening.set";
        let agent = self.screening_target(actor, id, action)?;
        if s.hold_first_contact {
            self.ensure_screened(&agent).await?;
        }
        self.store
            .put_record(Tree::Screening, agent.as_bytes(), &s)?;
        actor.audit_on_agent(
            &self.audit,
            action,
            &agent,
            Outcome::Ok,
            json!({"hold_first_contact": s.hold_first_contact}),
        )?;
        self.audit.commit().await?;
        Ok(
            json!({"agent_id": agent, "hold_first_contact": s.hold_first_contact, "folder": SCREENED}),
        )
    }
}
