//! Role addresses (RFC 2142, RFC 5321 §4.5.1): names that mean "the operator" to the rest of
//! the internet. An agent must not be able to hand itself `postmaster@` or `abuse@` (and
//! receive the abuse reports, or the DMARC reports, or password resets for `admin@`), so only
//! an admin may create agents with these local parts; and `postmaster@` / `abuse@` of every
//! hosted domain always deliver somewhere: to the configured operator mailbox agent.

use super::error::{Denied, IdentityError};
use super::{address, Actor, Agent, IdentityService, NewAgent, Scope};

/// Local parts reserved for admins, in canonical form (see [`canonical`]).
const ROLE_LOCALS: &[&str] = &[
    "postmaster",
    "abuse",
    "hostmaster",
    "webmaster",
    "mailerdaemon",
    "noreply",
    "dmarcreports",
    "tlsreports",
    "security",
    "admin",
    "root",
];

/// Role names that must always deliver (RFC 5321 §4.5.1: postmaster; RFC 2142: abuse).
const ALWAYS_DELIVERED: &[&str] = &["postmaster", "abuse"];

/// Lowercase, without a `+tag`, and without the separators `.`, `-` and `_`: `No-Reply`,
/// `no.reply` and `noreply+x` are all `noreply`, so a look-alike cannot slip past the list.
fn canonical(local: &str) -> String {
    let base = local.split_once('+').map_or(local, |(b, _)| b);
    base.chars()
        .filter(|c| !matches!(c, '.' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

impl IdentityService {
    /// Whether `local` is a role name or in `identity.reserved_locals`.
    pub fn is_reserved_local(&self, local: &str) -> bool {
        let c = canonical(local);
        ROLE_LOCALS.contains(&c.as_str())
            || self
                .options()
                .reserved_locals
                .iter()
                .any(|r| canonical(r) == c)
    }

    /// Refuses (audited) a reserved local part unless an admin is creating the agent.
    pub(super) fn check_reserved(
        &self,
        actor: &Actor,
        action: &str,
        local: &str,
    ) -> Result<(), IdentityError> {
        if actor.is_admin() || !self.is_reserved_local(local) {
            return Ok(());
        }
        Err(actor
            .refuse(
                &self.audit,
                action,
                local,
                Denied::Other(format!(
                    "\"{local}\" is a reserved role address; only an admin may create it"
                )),
            )
            .into())
    }

    /// `RCPT TO:<postmaster>` with no domain (RFC 5321 §4.5.1 requires it to be accepted) is
    /// `postmaster@<server domain>`; any other address is returned unchanged. Only for RCPT:
    /// an empty reverse-path (`MAIL FROM:<>`) means something else.
    pub fn qualify_rcpt(&self, to: &str) -> String {
        // smtp-proto reports `RCPT TO:<postmaster>` as the empty address (as it does `<>`,
        // which is no valid recipient): an empty recipient is therefore the postmaster.
        if to.is_empty() || to.eq_ignore_ascii_case("postmaster") {
            if let Some(d) = self.default_domain() {
                return format!("postmaster@{d}");
            }
        }
        to.to_string()
    }

    /// The agent that receives mail for `local@domain` (one of our domains): the agent of
    /// that address if it is active, else, for `postmaster` and `abuse`, the operator
    /// mailbox. `None`: no such user.
    pub fn rcpt_agent(&self, address: &str) -> Result<Option<Agent>, IdentityError> {
        let found = self.agent_by_address(address)?;
        if found.as_ref().is_some_and(Agent::is_active) {
            return Ok(found);
        }
        let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
        if ALWAYS_DELIVERED.contains(&canonical(local).as_str()) {
            if let Some(pm) = self.postmaster()? {
                return Ok(Some(pm));
            }
        }
        Ok(found)
    }

    /// The operator mailbox agent, if it exists and is active.
    pub fn postmaster(&self) -> Result<Option<Agent>, IdentityError> {
        let Some(addr) = self.postmaster_address() else {
            return Ok(None);
        };
        Ok(self.agent_by_address(&addr)?.filter(Agent::is_active))
    }

    fn postmaster_address(&self) -> Option<String> {
        let name = self.options().postmaster_agent;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        if name.contains('@') {
            return Some(name.to_string());
        }
        Some(format!("{name}@{}", self.default_domain()?))
    }

    /// At start: makes the operator mailbox agent if it does not exist (mail scopes only; an
    /// admin makes it a key when someone should read it). Acts as the first human.
    pub async fn ensure_postmaster(&self) -> Result<(), IdentityError> {
        let Some(addr) = self.postmaster_address() else {
            return Ok(());
        };
        if self.agent_by_address(&addr)?.is_some() {
            return Ok(());
        }
        let Some(human) = self.first_human()? else {
            return Ok(());
        };
        let (_, domain) = address::normalize_address(&addr).map_err(IdentityError::Invalid)?;
        if self.org_by_domain(&domain)?.is_none() {
            return Err(IdentityError::Invalid(format!(
                "identity.postmaster_agent {addr}: no org serves {domain}"
            )));
        }
        let admin = Actor::cli(&human.id, &human.email);
        let scopes = [Scope::MailRead, Scope::MailManage].map(|s| s.as_str().to_string());
        let req = NewAgent {
            address: Some(addr),
            name: Some("Postmaster (operator mailbox)".into()),
            scopes: Some(scopes.to_vec()),
            ..Default::default()
        };
        match self.create_agent(&admin, &req).await {
            // Another node or a concurrent start made it first.
            Ok(_) | Err(IdentityError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn look_alikes_are_one_name() {
        for (a, b) in [
            ("No-Reply", "noreply"),
            ("no.reply", "noreply"),
            ("noreply+x", "noreply"),
            ("Mailer-Daemon", "mailerdaemon"),
            ("dmarc_reports", "dmarcreports"),
            ("POST.MASTER", "postmaster"),
        ] {
            assert_eq!(canonical(a), b);
        }
    }
}
