//! Console sessions: a random id in an `HttpOnly` cookie, the record server-side under the
//! id's SHA-256 (a copy of the store holds no usable session), with an idle and an absolute
//! expiry checked on every request.
//!
//! A sign-in with a second factor goes through two sessions: the password opens one at stage
//! [`SessionStage::SecondFactor`], which grants nothing but the code form; a good code closes
//! it and opens a fresh [`SessionStage::Full`] one (a new id, so an id seen before the second
//! factor is worthless after it).

use super::error::IdentityError;
use super::model::Human;
use super::{Actor, IdentityService, Principal, ScopeSet};
use crate::audit::Outcome;
use crate::store::Tree;
use crate::util::now_unix;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::Zeroizing;

/// `last_seen` is written at most this often (seconds): a page view stays a read.
const TOUCH_GRANULARITY: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStage {
    /// The password was right; the TOTP code is still due.
    SecondFactor,
    Full,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ConsoleSession {
    pub human_id: String,
    pub stage: SessionStage,
    /// The `Host` the session was opened on: presented on another host (a cookie carried
    /// across, a DNS-rebinding page), it is refused.
    pub host: String,
    /// The token every form of this session carries (compared in constant time).
    pub csrf: String,
    pub created_at: i64,
    pub last_seen: i64,
    /// Wrong second-factor codes presented in this session: at [`MAX_CODE_TRIES`] it ends,
    /// so guessing a code takes a password per few tries, whatever addresses it comes from.
    #[serde(default)]
    pub failed_codes: u32,
}

/// Wrong TOTP codes a signing-in session may present before it is closed.
pub const MAX_CODE_TRIES: u32 = 5;

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("human_id", &self.human_id)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// How long sessions live (`[console]` idle_timeout_secs and max_session_secs).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

fn session_key(sid: &str) -> [u8; 32] {
    sha2::Sha256::digest(sid.as_bytes()).into()
}

/// A session's name in audit entries: a prefix of its hash, never the id.
pub fn session_label(sid: &str) -> String {
    format!(
        "console:{}",
        &data_encoding::HEXLOWER.encode(&session_key(sid))[..12]
    )
}

/// Whether a presented id could be one of ours (length and alphabet), before any lookup.
fn well_formed(sid: &str) -> bool {
    sid.len() == 43
        && sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl IdentityService {
    /// A new session for `human` at `stage`; returns its id (for the cookie, shown nowhere
    /// else) and the record.
    pub fn open_session(
        &self,
        human: &Human,
        stage: SessionStage,
        host: &str,
    ) -> Result<(Zeroizing<String>, ConsoleSession), IdentityError> {
        let sid = Zeroizing::new(
            data_encoding::BASE64URL_NOPAD.encode(&crate::util::random_bytes::<32>()),
        );
        let now = now_unix();
        let session = ConsoleSession {
            human_id: human.id.clone(),
            stage,
            host: host.to_ascii_lowercase(),
            csrf: data_encoding::BASE64URL_NOPAD.encode(&crate::util::random_bytes::<32>()),
            created_at: now,
            last_seen: now,
            failed_codes: 0,
        };
        self.store
            .put_record(Tree::ConsoleSessions, &session_key(&sid), &session)?;
        Ok((sid, session))
    }

    /// The live session `sid` names and its human, or `None` (unknown, expired, opened on
    /// another host, the human gone). An expired session is deleted on sight.
    pub fn console_session(
        &self,
        sid: &str,
        host: &str,
        limits: SessionLimits,
    ) -> Result<Option<(ConsoleSession, Human)>, IdentityError> {
        if !well_formed(sid) {
            return Ok(None);
        }
        let key = session_key(sid);
        let Some(mut s) = self
            .store
            .get_record::<ConsoleSession>(Tree::ConsoleSessions, &key)?
        else {
            return Ok(None);
        };
        if !s.host.eq_ignore_ascii_case(host) {
            return Ok(None);
        }
        let now = now_unix();
        if now - s.last_seen >= limits.idle_secs || now - s.created_at >= limits.absolute_secs {
            self.store.remove(Tree::ConsoleSessions, &key)?;
            return Ok(None);
        }
        let Some(human) = self.human(&s.human_id)? else {
            self.store.remove(Tree::ConsoleSessions, &key)?;
            return Ok(None);
        };
        if now - s.last_seen >= TOUCH_GRANULARITY {
            s.last_seen = now;
            self.store.put_record(Tree::ConsoleSessions, &key, &s)?;
        }
        Ok(Some((s, human)))
    }

    /// Counts a wrong second-factor code against session `sid`; past [`MAX_CODE_TRIES`] the
    /// session is closed. Returns whether it is still open.
    pub fn note_failed_code(&self, sid: &str) -> Result<bool, IdentityError> {
        if !well_formed(sid) {
            return Ok(false);
        }
        let key = session_key(sid);
        Ok(self
            .store
            .transact::<_, IdentityError>(&[Tree::ConsoleSessions], |tx| {
                let Some(mut s) = tx.get_record::<ConsoleSession>(Tree::ConsoleSessions, &key)?
                else {
                    return Ok(false);
                };
                s.failed_codes += 1;
                if s.failed_codes >= MAX_CODE_TRIES {
                    tx.remove(Tree::ConsoleSessions, &key)?;
                    return Ok(false);
                }
                tx.put_record(Tree::ConsoleSessions, &key, &s)?;
                Ok(true)
            })?)
    }

    /// Ends one session (sign-out, or the first stage of a two-factor sign-in).
    pub fn close_session(&self, sid: &str) -> Result<(), IdentityError> {
        if well_formed(sid) {
            self.store
                .remove(Tree::ConsoleSessions, &session_key(sid))?;
        }
        Ok(())
    }

    /// Deletes every session of `human_id`; returns how many there were. Sessions are few
    /// (people, not agents), so a scan is fine.
    pub(super) fn end_sessions_of(&self, human_id: &str) -> Result<usize, IdentityError> {
        let mut doomed = Vec::new();
        for r in self.store.scan_prefix(Tree::ConsoleSessions, &[]) {
            let (k, v) = r?;
            match crate::store::decode::<ConsoleSession>(&v) {
                Ok(s) if s.human_id != human_id => {}
                _ => doomed.push(k),
            }
        }
        for k in &doomed {
            self.store.remove(Tree::ConsoleSessions, k)?;
        }
        Ok(doomed.len())
    }

    /// Deletes sessions past either expiry (a session nobody presents again is otherwise
    /// only removed when seen); run at each sign-in, so the tree stays the size of the live
    /// sessions.
    pub fn purge_expired_sessions(&self, limits: SessionLimits) -> Result<usize, IdentityError> {
        let now = now_unix();
        let mut doomed = Vec::new();
        for r in self.store.scan_prefix(Tree::ConsoleSessions, &[]) {
            let (k, v) = r?;
            let expired = crate::store::decode::<ConsoleSession>(&v).map_or(true, |s| {
                now - s.last_seen >= limits.idle_secs || now - s.created_at >= limits.absolute_secs
            });
            if expired {
                doomed.push(k);
            }
        }
        for k in &doomed {
            self.store.remove(Tree::ConsoleSessions, k)?;
        }
        Ok(doomed.len())
    }

    /// "Sign out everywhere": every console session of the acting human ends, this one too.
    pub async fn close_all_sessions(&self, actor: &Actor) -> Result<usize, IdentityError> {
        actor.require_admin(&self.audit, "console.logout_all", "")?;
        let Principal::Human { id, .. } = &actor.principal else {
            return Err(IdentityError::Invalid(
                "only humans have console sessions".into(),
            ));
        };
        let n = self.end_sessions_of(id)?;
        actor.audit(
            &self.audit,
            "console.logout_all",
            id,
            Outcome::Ok,
            serde_json::json!({"sessions": n}),
        )?;
        self.audit.commit().await?;
        Ok(n)
    }

    /// The actor a full console session stands for: the human, as an admin token would, named
    /// in audit entries by the session's label.
    pub fn session_actor(human: &Human, sid: &str) -> Actor {
        Actor {
            principal: Principal::Human {
                id: human.id.clone(),
                email: human.email.clone(),
            },
            key_id: session_label(sid),
            scopes: ScopeSet::all(),
            chain: vec![format!("human:{}", human.email)],
        }
    }

    /// Audits a console sign-in or sign-out of `human` (the session is not an API key, so
    /// no key use records it).
    pub async fn audit_console(
        &self,
        human: &Human,
        sid: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), IdentityError> {
        let actor = Self::session_actor(human, sid);
        actor.audit(&self.audit, action, &human.id, Outcome::Ok, detail)?;
        self.audit.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_lookup_and_labels_hide_them() {
        let sid = data_encoding::BASE64URL_NOPAD.encode(&[7u8; 32]);
        assert!(well_formed(&sid));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}=", &sid[..42])));
        let label = session_label(&sid);
        assert!(label.starts_with("console:"));
        assert!(!label.contains(&sid[..12]));
    }

    fn setup() -> (tempfile::TempDir, IdentityService, Human) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let audit = std::sync::Arc::new(crate::audit::Audit::open(store.clone()).unwrap());
        let id = IdentityService::new(store, audit, "agents.test".into());
        let b = id
            .bootstrap("alice@acme.com", "acme", "agents.test", None)
            .unwrap()
            .unwrap();
        (dir, id, b.human)
    }

    const LONG: SessionLimits = SessionLimits {
        idle_secs: 3600,
        absolute_secs: 7200,
    };

    #[test]
    fn sessions_expire_are_host_bound_and_end_together() {
        let (_d, id, human) = setup();
        let (sid, s) = id
            .open_session(&human, SessionStage::Full, "Console.Test")
            .unwrap();
        let (found, h) = id
            .console_session(&sid, "console.test", LONG)
            .unwrap()
            .unwrap();
        assert_eq!(h.id, human.id);
        assert_eq!(found.csrf, s.csrf);
        // Another host: refused, and the session still works on its own host.
        assert!(id
            .console_session(&sid, "evil.test", LONG)
            .unwrap()
            .is_none());
        assert!(id
            .console_session(&sid, "console.test", LONG)
            .unwrap()
            .is_some());
        // Idle and absolute expiry: the session is gone for good once seen expired.
        let idle = SessionLimits {
            idle_secs: 0,
            absolute_secs: 7200,
        };
        assert!(id
            .console_session(&sid, "console.test", idle)
            .unwrap()
            .is_none());
        assert!(id
            .console_session(&sid, "console.test", LONG)
            .unwrap()
            .is_none());
        let (sid2, _) = id
            .open_session(&human, SessionStage::Full, "console.test")
            .unwrap();
        let absolute = SessionLimits {
            idle_secs: 3600,
            absolute_secs: 0,
        };
        assert!(id
            .console_session(&sid2, "console.test", absolute)
            .unwrap()
            .is_none());
        // Expired sessions nobody presents again are swept.
        let (_stale, _) = id
            .open_session(&human, SessionStage::Full, "console.test")
            .unwrap();
        let none = SessionLimits {
            idle_secs: 0,
            absolute_secs: 0,
        };
        assert_eq!(id.purge_expired_sessions(none).unwrap(), 1);
        // Sign out everywhere ends every session of the human.
        let (a, _) = id
            .open_session(&human, SessionStage::Full, "console.test")
            .unwrap();
        let (b, _) = id
            .open_session(&human, SessionStage::SecondFactor, "console.test")
            .unwrap();
        assert_eq!(id.end_sessions_of(&human.id).unwrap(), 2);
        assert!(id
            .console_session(&a, "console.test", LONG)
            .unwrap()
            .is_none());
        assert!(id
            .console_session(&b, "console.test", LONG)
            .unwrap()
            .is_none());
        // Garbage ids are refused before any lookup.
        assert!(id
            .console_session("x", "console.test", LONG)
            .unwrap()
            .is_none());
    }
}
