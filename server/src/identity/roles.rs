//! Role addresses (RFC 2142, RFC 5321 §4.5.1): names that mean "the operator" to the rest of
//! the internet. An agent must not be able to hand itself `postmaster@` or `abuse@` (and
//! receive the abuse reports, or the DMARC reports, or password resets for `admin@`), so only
//! an admin may create agents with these local parts; and `postmaster@` / `abuse@` of every
//! hosted domain always deliver somewhere: to the configured operator mailbox agent.

use super::error::{Denied, IdentityError};
use super::{address, Actor, Agent, IdentityService, Scope, ScopeSet};

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

    /// The operator mailbox agent, made on first need (so a server that never receives
    /// postmaster mail has no extra agent); `None` if it was revoked or cannot be made.
    pub fn postmaster(&self) -> Result<Option<Agent>, IdentityError> {
        let Some(addr) = self.postmaster_address() else {
            return Ok(None);
        };
        if let Some(a) = self.agent_by_address(&addr)? {
            // Revoked by an admin: they chose that; nothing is resurrected.
            return Ok(Some(a).filter(Agent::is_active));
        }
        match self.create_postmaster(&addr) {
            Ok(a) => Ok(Some(a)),
            // Made concurrently by another session.
            Err(IdentityError::Conflict(_)) => Ok(self.agent_by_address(&addr)?),
            Err(e) => Err(e),
        }
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

    /// The operator mailbox agent (mail scopes only; an admin gives it a key when someone
    /// should read it), created on behalf of the first human.
    fn create_postmaster(&self, addr: &str) -> Result<Agent, IdentityError> {
        let (local, domain) = address::normalize_address(addr).map_err(IdentityError::Invalid)?;
        let org = self.org_by_domain(&domain)?.ok_or_else(|| {
            IdentityError::Invalid(format!(
                "identity.postmaster_agent {addr}: no org serves {domain}"
            ))
        })?;
        let human = self
            .first_human()?
            .ok_or_else(|| IdentityError::Invalid("no admin exists yet".into()))?;
        let mut operator = Actor::cli(&human.id, &human.email);
        operator.key_id = "auto:postmaster".into();
        let mut chain = operator.chain.clone();
        chain.push(format!("org:{}", org.name));
        let created = self.insert_agent_now(
            &operator,
            &org.id,
            local,
            domain,
            Some("Postmaster (operator mailbox)".into()),
            ScopeSet::from_iter([Scope::MailRead, Scope::MailManage]),
            chain,
            None,
        )?;
        Ok(created.agent)
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
