//! Console passwords of humans (argon2id), the first factor of a console sign-in.
//!
//! A human has no password until one is set: by an admin (`legate admin password`, the console's
//! own settings page) or on a first sign-in that proves the human holds an admin token. Only
//! the PHC string is stored (salt and parameters inside it); a password is never logged or
//! returned. Verifying costs tens of milliseconds of CPU on purpose: callers run it on the
//! blocking pool, and failures count against the caller's address in the one failure limiter
//! that API keys, SMTP and IMAP share.

use super::error::{AuthFailure, IdentityError};
use super::model::Human;
use super::{Actor, IdentityService};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::store::Tree;
use crate::util::now_unix;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes: hashing cost grows with it.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Serialize, Deserialize)]
struct PasswordRecord {
    /// `$argon2id$v=19$m=...` (RFC 9106 parameters of the `argon2` crate's default).
    phc: String,
    set_at: i64,
}

/// A PHC string no password matches, verified when the email is unknown so that a probe
/// cannot tell unknown addresses from wrong passwords by the time the answer takes.
fn decoy_phc() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash(&data_encoding::HEXLOWER.encode(&crate::util::random_bytes::<16>()))
            .unwrap_or_default()
    })
}

fn hash(password: &str) -> Result<String, IdentityError> {
    let salt_bytes: [u8; 16] = crate::util::random_bytes();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| IdentityError::Invalid(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| IdentityError::Invalid(format!("cannot hash the password: {e}")))
}

fn matches(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Refuses passwords too short to resist guessing or too long to hash cheaply.
pub fn check_strength(password: &str) -> Result<(), IdentityError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(IdentityError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(IdentityError::Invalid(format!(
            "a password may have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

impl IdentityService {
    /// The human with this email (compared in lower case), if any.
    pub fn human_by_email(&self, email: &str) -> Result<Option<Human>, IdentityError> {
        let email = email.trim().to_ascii_lowercase();
        if email.is_empty() || email.len() > 320 {
            return Ok(None);
        }
        let Some(id) = self.store.get(Tree::HumanEmail, email.as_bytes())? else {
            return Ok(None);
        };
        Ok(self.store.get_record(Tree::Humans, &id)?)
    }

    /// Whether the human has a console password yet.
    pub fn has_password(&self, human_id: &str) -> Result<bool, IdentityError> {
        Ok(self
            .store
            .get(Tree::HumanPasswords, human_id.as_bytes())?
            .is_some())
    }

    /// Sets (or replaces) the console password of the human `email`: admins only. Every
    /// console session of that human ends, so a changed password locks out whoever knew the
    /// old one. CPU-heavy (argon2id): call it off the async threads.
    pub fn set_password(
        &self,
        actor: &Actor,
        email: &str,
        password: &str,
    ) -> Result<Human, IdentityError> {
        actor.require_admin(&self.audit, "human.password_set", email)?;
        check_strength(password)?;
        let human = self
            .human_by_email(email)?
            .ok_or(IdentityError::NotFound("human"))?;
        let record = PasswordRecord {
            phc: hash(password)?,
            set_at: now_unix(),
        };
        self.store
            .put_record(Tree::HumanPasswords, human.id.as_bytes(), &record)?;
        let ended = self.end_sessions_of(&human.id)?;
        actor.audit(
            &self.audit,
            "human.password_set",
            &human.id,
            Outcome::Ok,
            serde_json::json!({"email": human.email, "sessions_ended": ended}),
        )?;
        Ok(human)
    }

    /// The first factor of a console sign-in. A wrong email and a wrong password take the
    /// same time and give the same answer; each failure is audited and counted against
    /// `peer` (callers check [`crate::audit::Denials::throttle`] first). CPU-heavy.
    pub fn check_password(
        &self,
        email: &str,
        password: &str,
        peer: &str,
    ) -> Result<Human, IdentityError> {
        let human = self.human_by_email(email)?;
        let record: Option<PasswordRecord> = match &human {
            Some(h) => self
                .store
                .get_record(Tree::HumanPasswords, h.id.as_bytes())?,
            None => None,
        };
        let ok = match &record {
            Some(r) if password.len() <= MAX_PASSWORD_BYTES => matches(&r.phc, password),
            _ => {
                let _ = matches(decoy_phc(), password);
                false
            }
        };
        match human {
            Some(h) if ok => Ok(h),
            other => {
                let actor = match &other {
                    Some(h) => ActorRef::human(&h.id),
                    None => ActorRef::anonymous(peer),
                };
                self.audit.auth_denied(
                    peer,
                    NewEntry {
                        actor,
                        chain: vec![],
                        action: "auth.denied".into(),
                        target: "console".into(),
                        outcome: Outcome::Denied,
                        detail: serde_json::json!({"reason": "bad_password", "peer": peer}),
                    },
                )?;
                Err(IdentityError::Unauthorized(AuthFailure::Unknown))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify_only_their_password() {
        let phc = hash("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(matches(&phc, "correct horse battery"));
        assert!(!matches(&phc, "correct horse batterY"));
        assert!(!matches("not a phc", "x"));
        assert!(!matches(decoy_phc(), ""));
    }

    #[test]
    fn weak_and_huge_passwords_are_refused() {
        assert!(check_strength("short").is_err());
        assert!(check_strength(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(check_strength("twelve chars").is_ok());
    }
}
