//! The suppression list of each org (issue 24, item 4): addresses no agent of the org may
//! send to, each with when and why it was added. Admins list, add and remove entries (REST
//! and the command line); a send to a listed address is refused (`422 suppressed`). Bounces
//! and complaints will add entries themselves once they are attributed (item 3).

use super::PolicyError;
use crate::audit::Outcome;
use crate::identity::{address, Actor};
use crate::store::{keys, Tree};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::ops::Bound;

/// One suppressed address of one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub org_id: String,
    /// Lower case, as compared.
    pub address: String,
    /// Why, in the words of whoever added it (or of the bounce, later).
    pub reason: String,
    /// `manual` for an admin's entry; `bounce` and `complaint` once item 3 adds them.
    pub source: String,
    pub added_ms: i64,
    /// The admin (`human:<email>`) or the process that added it.
    pub added_by: String,
}

impl Suppression {
    pub fn to_json(&self) -> Value {
        json!({
            "org_id": self.org_id,
            "address": self.address,
            "reason": self.reason,
            "source": self.source,
            "added_at": crate::util::rfc3339(self.added_ms / 1000),
            "added_by": self.added_by,
        })
    }
}

/// The key of `address` in `org`'s list, in [`Tree::Suppressions`].
pub fn suppression_key(org_id: &str, address: &str) -> Vec<u8> {
    keys::join(&[org_id, &address.to_ascii_lowercase()])
}

/// A suppressible address: `local@domain`, nothing that could smuggle a header or a key
/// separator.
pub fn parse_address(s: &str) -> Result<String, PolicyError> {
    let s = s.trim();
    let bad = || {
        PolicyError::BadRequest(format!(
            "{:?} is not an email address",
            s.chars().take(80).collect::<String>()
        ))
    };
    if s.len() > 254 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || address::normalize_domain(domain).is_err() {
        return Err(bad());
    }
    Ok(s.to_ascii_lowercase())
}

impl super::PolicyService {
    /// The org an admin's request is about: the one named, or the org of the server's
    /// domain when none is.
    fn org_of(&self, org: Option<&str>) -> Result<String, PolicyError> {
        let found = match org {
            Some(id) => self.identity.org(id)?,
            None => self.identity.org_by_domain(&self.home_domain)?,
        };
        found.map(|o| o.id).ok_or(PolicyError::NotFound("org"))
    }

    /// `GET /v1/suppressions` (admins): a page in address order; the cursor is the last
    /// address returned.
    pub fn suppressions(
        &self,
        actor: &Actor,
        org: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Suppression>, Option<String>), PolicyError> {
        actor.require_admin(&self.audit, "suppression.list", "")?;
        let org = self.org_of(org)?;
        let limit = limit.clamp(1, 1000);
        let prefix = keys::prefix(&[&org]);
        let from = match cursor {
            Some(c) => Bound::Excluded(suppression_key(&org, c)),
            None => Bound::Included(prefix.clone()),
        };
        let mut items = Vec::new();
        for r in self
            .store
            .range(Tree::Suppressions, from, Bound::Unbounded, false)
        {
            let (k, v) = r?;
            if !k.starts_with(&prefix) {
                break;
            }
            items.push(crate::store::decode::<Suppression>(&v)?);
            if items.len() == limit + 1 {
                items.pop();
                let next = items.last().map(|s| s.address.clone());
                return Ok((items, next));
            }
        }
        Ok((items, None))
    }

    /// `POST /v1/suppressions` (admins): adds (or replaces) an entry.
    pub async fn suppress(
        &self,
        actor: &Actor,
        org: Option<&str>,
        address: &str,
        reason: &str,
    ) -> Result<Suppression, PolicyError> {
        let action = "suppression.add";
        actor.require_admin(&self.audit, action, address)?;
        let org_id = self.org_of(org)?;
        let address = parse_address(address)?;
        if reason.len() > 500 || reason.chars().any(|c| c.is_control()) {
            return Err(PolicyError::BadRequest(
                "reason: at most 500 characters, no control characters".into(),
            ));
        }
        let entry = Suppression {
            org_id: org_id.clone(),
            address: address.clone(),
            reason: reason.to_string(),
            source: "manual".into(),
            added_ms: crate::util::now_millis(),
            added_by: actor.chain.first().cloned().unwrap_or_default(),
        };
        self.store.put_record(
            Tree::Suppressions,
            &suppression_key(&org_id, &address),
            &entry,
        )?;
        actor.audit(
            &self.audit,
            action,
            &address,
            Outcome::Ok,
            json!({"org_id": org_id, "reason": reason}),
        )?;
        self.audit.commit().await?;
        Ok(entry)
    }

    /// `DELETE /v1/suppressions/{address}` (admins).
    pub async fn unsuppress(
        &self,
        actor: &Actor,
        org: Option<&str>,
        address: &str,
    ) -> Result<(), PolicyError> {
        let action = "suppression.remove";
        actor.require_admin(&self.audit, action, address)?;
        let org_id = self.org_of(org)?;
        let key = suppression_key(&org_id, address.trim());
        if self.store.get(Tree::Suppressions, &key)?.is_none() {
            return Err(PolicyError::NotFound("suppression"));
        }
        self.store.remove(Tree::Suppressions, &key)?;
        actor.audit(
            &self.audit,
            action,
            address,
            Outcome::Ok,
            json!({"org_id": org_id}),
        )?;
        self.audit.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_lower_cased() {
        assert_eq!(
            parse_address(" Gone@Example.COM ").unwrap(),
            "gone@example.com"
        );
        for bad in [
            "",
            "x",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@b.com\r\nBcc: c@d.com",
            "a@ex ample.com",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            suppression_key("org_1", "A@B.test"),
            suppression_key("org_1", "a@b.test")
        );
    }
}
