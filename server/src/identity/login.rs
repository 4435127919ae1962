//! The identity checks the mail front-ends make: SMTP AUTH / IMAP LOGIN, and RCPT TO.
//!
//! Both read the stored agent on every call, so a revocation refuses the very next login or
//! recipient with no session cache to expire.

use super::address;
use super::error::{AuthFailure, Denied};
use super::{Actor, IdentityError, IdentityService, Principal, Scope};
use crate::audit::{NewEntry, Outcome};
use zeroize::Zeroizing;

/// What SMTP should answer to `RCPT TO:<address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptDecision {
    /// Deliver to this agent (`address` canonical, without any `+tag`).
    Accept { agent_id: String, address: String },
    /// One of our domains, but no such agent: `550 5.1.1`.
    UnknownUser,
    /// The agent exists and is revoked: `550 5.1.1` too (the mailbox is gone).
    Revoked,
    /// Not a domain we serve: relay rules apply.
    NotLocal,
    /// Not an address at all: `501 5.1.3`.
    Invalid,
}

/// The credentials of a SASL PLAIN response (RFC 4616), decoded from base64 already:
/// `authzid NUL authcid NUL passwd`. Acting as someone else (an authzid other than the
/// login) is not offered, so such a response is refused like a malformed one.
pub fn sasl_plain(decoded: &[u8]) -> Option<(Zeroizing<String>, Zeroizing<String>)> {
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let user = Zeroizing::new(std::str::from_utf8(user).ok()?.to_string());
    let pass = Zeroizing::new(std::str::from_utf8(pass).ok()?.to_string());
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(user.as_bytes()) {
        return None;
    }
    Some((user, pass))
}

impl IdentityService {
    /// SMTP AUTH and IMAP LOGIN: the login is the agent's address, the password one of its
    /// API keys, which must hold `scope` (`mail:send` for submission, `mail:read` for IMAP).
    /// A key of another agent, of a human, or of a revoked agent is refused; every refusal
    /// is audited (the key's own failures by [`IdentityService::authenticate`]).
    pub fn login(
        &self,
        login: &str,
        api_key: &str,
        scope: Scope,
        peer: &str,
    ) -> Result<Actor, IdentityError> {
        let actor = self.authenticate(api_key, peer)?;
        let matches = match &actor.principal {
            Principal::Agent { address: a, .. } => {
                address::normalize_address(login).is_ok_and(|(l, d)| format!("{l}@{d}") == *a)
            }
            Principal::Human { .. } | Principal::Owner { .. } => false,
        };
        if !matches {
            // The key is valid but not this login's: say nothing more than "invalid".
            // A failure like any other: limited and aggregated per source.
            self.audit.auth_denied(
                peer,
                NewEntry {
                    actor: actor.actor_ref(),
                    chain: actor.chain.clone(),
                    action: "auth.denied".into(),
                    target: "login".into(),
                    outcome: Outcome::Denied,
                    detail: serde_json::json!({"reason": "login_mismatch", "login": login, "peer": peer}),
                },
            )?;
            return Err(IdentityError::Unauthorized(AuthFailure::Unknown));
        }
        if !actor.scopes.contains(scope) {
            return Err(actor
                .refuse(
                    &self.audit,
                    "auth.login",
                    login,
                    Denied::MissingScope(scope),
                )
                .into());
        }
        Ok(actor)
    }

    /// For a source or login past its failure limit: the actor when the credentials are
    /// valid (right key, its agent's address, `scope` held), else `None`, and nothing
    /// recorded. As [`IdentityService::authenticate_valid_only`] says for REST: a valid key
    /// is 256 random bits, so letting it through costs no brute-force resistance, while
    /// refusing it would let anyone lock an agent out by failing logins in its name.
    pub fn login_valid_only(&self, login: &str, api_key: &str, scope: Scope) -> Option<Actor> {
        let actor = self.authenticate_valid_only(api_key)?;
        let matches = match &actor.principal {
            Principal::Agent { address: a, .. } => {
                address::normalize_address(login).is_ok_and(|(l, d)| format!("{l}@{d}") == *a)
            }
            Principal::Human { .. } | Principal::Owner { .. } => false,
        };
        (matches && actor.scopes.contains(scope)).then_some(actor)
    }

    /// `RCPT TO`: whether mail for `address` is ours to accept. `local+tag@domain` is
    /// `local@domain`. Not audited: anyone on the internet can send RCPTs, and the audit log
    /// must not grow at a spammer's pace (SMTP logs its replies).
    pub fn accepts_mail_for(&self, rcpt: &str) -> Result<RcptDecision, IdentityError> {
        let rcpt = self.qualify_rcpt(rcpt.trim());
        let Some((local, domain)) = rcpt.rsplit_once('@') else {
            return Ok(RcptDecision::Invalid);
        };
        let Ok(domain) = address::normalize_domain(domain) else {
            return Ok(RcptDecision::Invalid);
        };
        if self.org_by_domain(&domain)?.is_none() {
            return Ok(RcptDecision::NotLocal);
        }
        let base = local.split_once('+').map_or(local, |(b, _)| b);
        let Ok(local) = address::normalize_local(base) else {
            return Ok(RcptDecision::UnknownUser);
        };
        let address = format!("{local}@{domain}");
        Ok(match self.rcpt_agent(&address)? {
            None => RcptDecision::UnknownUser,
            Some(a) if !a.is_active() => RcptDecision::Revoked,
            Some(a) => RcptDecision::Accept {
                agent_id: a.id,
                address,
            },
        })
    }
}
