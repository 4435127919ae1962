//! The owned, serialisable outcome of inbound authentication.
//!
//! mail-auth's outputs borrow the message; these types copy out what the rest of legate needs
//! (the mailbox stores them, the SMTP session acts on them) as plain lowercase strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// An RFC 8601 result value. Anything but `Pass` is not passing (DESIGN §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthStatus {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl AuthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthStatus::Pass => "pass",
            AuthStatus::Fail => "fail",
            AuthStatus::SoftFail => "softfail",
            AuthStatus::Neutral => "neutral",
            AuthStatus::None => "none",
            AuthStatus::TempError => "temperror",
            AuthStatus::PermError => "permerror",
        }
    }

    pub fn is_pass(self) -> bool {
        self == AuthStatus::Pass
    }
}

impl fmt::Display for AuthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which SPF identity was checked: RFC 7208 §2.3 (HELO) or §2.4 (MAIL FROM; a null
/// reverse-path is checked as `postmaster@<helo>`, so it is reported as HELO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfScope {
    Helo,
    MailFrom,
}

/// SPF outcome, computed at MAIL time and carried into `verify_message` for DMARC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpfResult {
    pub result: AuthStatus,
    pub scope: SpfScope,
    /// The domain whose policy was evaluated (MAIL FROM domain, or the HELO name).
    pub domain: String,
    /// The checked identity as given: the MAIL FROM address, or the HELO name.
    pub identity: String,
    /// The domain's `exp=` text for a fail, if it published one.
    pub explanation: Option<String>,
}

/// One DKIM-Signature header's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimResult {
    pub result: AuthStatus,
    /// `d=`; empty when the header was too malformed to parse.
    pub domain: String,
    /// `s=`; empty when unparsed.
    pub selector: String,
    /// `a=`, e.g. `ed25519-sha256`; empty when unparsed.
    pub algorithm: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArcResult {
    pub result: AuthStatus,
    /// Number of ARC sets found (0 when the message carries no ARC headers).
    pub chain_length: usize,
    pub reason: Option<String>,
}

/// The policy that applies to the From domain after `sp=`/`np=` and `t=y` are taken into
/// account; `none` when there is no DMARC record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

impl DmarcPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcResult {
    pub result: AuthStatus,
    pub policy: DmarcPolicy,
    /// The RFC 5322.From domain; empty when the message has no usable From.
    pub from_domain: String,
    pub reason: Option<String>,
}

/// What the SMTP session does with the message (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAction {
    Accept,
    /// Deliver to the Junk folder.
    Quarantine,
    /// Answer `550 5.7.1`.
    Reject,
}

/// Everything inbound authentication learned about one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthVerdict {
    pub spf: SpfResult,
    pub dkim: Vec<DkimResult>,
    pub arc: ArcResult,
    pub dmarc: DmarcResult,
    /// Kept for the `smtp.remote-ip` property of the ARC result.
    pub remote_ip: IpAddr,
}

impl AuthVerdict {
    /// Only a DMARC *fail* is enforced: a temperror or a missing record never rejects mail
    /// that might be legitimate.
    pub fn action(&self) -> PolicyAction {
        match (self.dmarc.result, self.dmarc.policy) {
            (AuthStatus::Fail, DmarcPolicy::Reject) => PolicyAction::Reject,
            (AuthStatus::Fail, DmarcPolicy::Quarantine) => PolicyAction::Quarantine,
            _ => PolicyAction::Accept,
        }
    }

    /// One word for the message record's `auth.dkim`: pass if any signature passed, else the
    /// first signature's result, else none.
    pub fn dkim_summary(&self) -> AuthStatus {
        if self.dkim.iter().any(|d| d.result.is_pass()) {
            AuthStatus::Pass
        } else {
            self.dkim.first().map_or(AuthStatus::None, |d| d.result)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(result: AuthStatus, policy: DmarcPolicy) -> AuthVerdict {
        AuthVerdict {
            spf: SpfResult {
                result: AuthStatus::SoftFail,
                scope: SpfScope::MailFrom,
                domain: "example.com".into(),
                identity: "a@example.com".into(),
                explanation: None,
            },
            dkim: vec![],
            arc: ArcResult {
                result: AuthStatus::None,
                chain_length: 0,
                reason: None,
            },
            dmarc: DmarcResult {
                result,
                policy,
                from_domain: "example.com".into(),
                reason: None,
            },
            remote_ip: "192.0.2.1".parse().unwrap(),
        }
    }

    #[test]
    fn only_a_dmarc_fail_is_enforced() {
        use AuthStatus::*;
        use DmarcPolicy as P;
        assert_eq!(verdict(Fail, P::Reject).action(), PolicyAction::Reject);
        assert_eq!(
            verdict(Fail, P::Quarantine).action(),
            PolicyAction::Quarantine
        );
        assert_eq!(verdict(Fail, P::None).action(), PolicyAction::Accept);
        assert_eq!(verdict(TempError, P::Reject).action(), PolicyAction::Accept);
        assert_eq!(verdict(Pass, P::Reject).action(), PolicyAction::Accept);
        assert_eq!(verdict(None, P::None).action(), PolicyAction::Accept);
    }

    #[test]
    fn serialises_as_lowercase_strings() {
        let json =
            serde_json::to_value(verdict(AuthStatus::TempError, DmarcPolicy::Quarantine)).unwrap();
        assert_eq!(json["spf"]["result"], "softfail");
        assert_eq!(json["spf"]["scope"], "mailfrom");
        assert_eq!(json["dmarc"]["result"], "temperror");
        assert_eq!(json["dmarc"]["policy"], "quarantine");
        let back: AuthVerdict = serde_json::from_value(json).unwrap();
        assert_eq!(back.dmarc.policy, DmarcPolicy::Quarantine);
    }

    #[test]
    fn dkim_summary_prefers_any_pass() {
        let mut v = verdict(AuthStatus::None, DmarcPolicy::None);
        assert_eq!(v.dkim_summary(), AuthStatus::None);
        let sig = |result| DkimResult {
            result,
            domain: "example.com".into(),
            selector: "s".into(),
            algorithm: "rsa-sha256".into(),
            reason: None,
        };
        v.dkim = vec![sig(AuthStatus::Fail), sig(AuthStatus::Pass)];
        assert_eq!(v.dkim_summary(), AuthStatus::Pass);
        v.dkim.pop();
        assert_eq!(v.dkim_summary(), AuthStatus::Fail);
    }
}
