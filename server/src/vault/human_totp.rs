//! The console's second factor: a TOTP seed per human, sealed under the root key like every
//! other secret here and checked with the vault's own RFC 6238 code function ([`Totp`]).
//!
//! Enrolment is two steps: [`VaultService::begin_human_totp`] makes a pending seed and hands
//! it out once (for the authenticator app); only a correct code from that app
//! ([`VaultService::confirm_human_totp`]) switches it on, so a mistyped enrolment never locks
//! the human out. A code is accepted for the current step and one step either side (clock
//! skew), and never twice: the last accepted step is remembered.

use super::crypto::{self, Purpose, Sealed};
use super::totp::{Algorithm, Totp};
use super::{VaultError, VaultService};
use crate::identity::Actor;
use crate::store::{keys, Tree};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const SEED_BYTES: usize = 20;
const DIGITS: u8 = 6;
const PERIOD: u32 = 30;

#[derive(Serialize, Deserialize)]
struct HumanTotp {
    sealed: Sealed,
    /// Switched on by a first correct code.
    confirmed: bool,
    /// The last time step a code was accepted for (replay guard).
    last_step: u64,
}

fn record_key(human_id: &str) -> Vec<u8> {
    keys::join(&["human", human_id, "totp"])
}

impl VaultService {
    fn human_totp(&self, human_id: &str) -> Result<Option<HumanTotp>, VaultError> {
        Ok(self
            .store
            .get_record(Tree::KeyCustody, &record_key(human_id))?)
    }

    /// Whether the human signs in with a TOTP code after the password.
    pub fn human_totp_enabled(&self, human_id: &str) -> Result<bool, VaultError> {
        Ok(self.human_totp(human_id)?.is_some_and(|r| r.confirmed))
    }

    /// Starts enrolment for the acting human: a new pending seed, returned once as base32
    /// for the authenticator. Enrolling again replaces the seed and leaves the factor off
    /// until a code confirms the new one; the console offers it only to the signed-in human.
    pub fn begin_human_totp(
        &self,
        actor: &Actor,
        human_id: &str,
    ) -> Result<Zeroizing<String>, VaultError> {
        actor.require_admin(&self.audit, "console.totp_begin", human_id)?;
        let root = self.root();
        let seed: Zeroizing<[u8; SEED_BYTES]> = Zeroizing::new(crate::util::random_bytes());
        let sealed = crypto::seal(&root, human_id, "totp", Purpose::HumanTotp, seed.as_ref());
        let rec = HumanTotp {
            sealed,
            confirmed: false,
            last_step: 0,
        };
        self.store
            .put_record(Tree::KeyCustody, &record_key(human_id), &rec)?;
        actor.audit(
            &self.audit,
            "console.totp_begin",
            human_id,
            crate::audit::Outcome::Ok,
            serde_json::Value::Null,
        )?;
        Ok(Zeroizing::new(
            data_encoding::BASE32_NOPAD.encode(seed.as_ref()),
        ))
    }

    /// Checks `code` against the human's seed (pending, or only a confirmed one when
    /// `confirmed_only`) at unix time `now`; a match marks the step used and, for a pending
    /// seed, switches the factor on. The step is spent in a transaction that re-reads the
    /// record: two sign-ins racing with one code cannot both see the step unused, and a
    /// seed replaced meanwhile (enrolment started again) is not confirmed by the old code.
    fn accept_code(
        &self,
        human_id: &str,
        code: &str,
        now: u64,
        confirmed_only: bool,
    ) -> Result<bool, VaultError> {
        let code = code.trim();
        if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(false);
        }
        let root = self.root();
        let Some(rec) = self.human_totp(human_id)? else {
            return Ok(false);
        };
        if confirmed_only && !rec.confirmed {
            return Ok(false);
        }
        let seed = crypto::open(&root, human_id, "totp", Purpose::HumanTotp, &rec.sealed)?;
        let totp = Totp::new(seed.to_vec(), Algorithm::Sha1, DIGITS, PERIOD);
        let step = now / u64::from(PERIOD);
        let mut found = None;
        for s in [step.saturating_sub(1), step, step + 1] {
            let expected = totp.code_at(s * u64::from(PERIOD));
            let same: bool =
                subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into();
            if same {
                found = Some(s);
            }
        }
        let Some(s) = found else {
            return Ok(false);
        };
        let key = record_key(human_id);
        let spent = self
            .store
            .transact::<_, VaultError>(&[Tree::KeyCustody], |tx| {
                let Some(mut cur) = tx.get_record::<HumanTotp>(Tree::KeyCustody, &key)? else {
                    return Ok(false);
                };
                if cur.sealed != rec.sealed
                    || s <= cur.last_step
                    || (confirmed_only && !cur.confirmed)
                {
                    return Ok(false);
                }
                cur.last_step = s;
                cur.confirmed = true;
                tx.put_record(Tree::KeyCustody, &key, &cur)?;
                Ok(true)
            })?;
        Ok(spent)
    }

    /// Finishes enrolment with the first code from the authenticator.
    pub fn confirm_human_totp(
        &self,
        actor: &Actor,
        human_id: &str,
        code: &str,
        now: u64,
    ) -> Result<bool, VaultError> {
        actor.require_admin(&self.audit, "console.totp_confirm", human_id)?;
        let ok = self.accept_code(human_id, code, now, false)?;
        actor.audit(
            &self.audit,
            "console.totp_confirm",
            human_id,
            if ok {
                crate::audit::Outcome::Ok
            } else {
                crate::audit::Outcome::Denied
            },
            serde_json::Value::Null,
        )?;
        Ok(ok)
    }

    /// The second factor of a sign-in: a confirmed seed and a fresh, correct code.
    pub fn check_human_totp(
        &self,
        human_id: &str,
        code: &str,
        now: u64,
    ) -> Result<bool, VaultError> {
        self.accept_code(human_id, code, now, true)
    }

    /// Turns the second factor off for the acting human.
    pub fn remove_human_totp(&self, actor: &Actor, human_id: &str) -> Result<(), VaultError> {
        actor.require_admin(&self.audit, "console.totp_remove", human_id)?;
        self.store.remove(Tree::KeyCustody, &record_key(human_id))?;
        actor.audit(
            &self.audit,
            "console.totp_remove",
            human_id,
            crate::audit::Outcome::Ok,
            serde_json::Value::Null,
        )?;
        Ok(())
    }

    /// The code a human's seed gives at `unix`, for tests (the seed never leaves the vault).
    #[cfg(test)]
    fn human_code_at(&self, human_id: &str, unix: u64) -> Result<String, VaultError> {
        let root = self.root();
        let rec = self.human_totp(human_id)?.ok_or(VaultError::NotFound)?;
        let seed = crypto::open(&root, human_id, "totp", Purpose::HumanTotp, &rec.sealed)?;
        Ok(Totp::new(seed.to_vec(), Algorithm::Sha1, DIGITS, PERIOD).code_at(unix))
    }
}

/// Re-seals a human's seed under a new root key (`rotate`).
pub(super) fn reseal(
    owner: &str,
    bytes: &[u8],
    old: &crypto::Key32,
    new: &crypto::Key32,
) -> Result<Vec<u8>, VaultError> {
    let mut rec: HumanTotp = crate::store::decode(bytes)?;
    let p = crypto::open(old, owner, "totp", Purpose::HumanTotp, &rec.sealed)?;
    rec.sealed = crypto::seal(new, owner, "totp", Purpose::HumanTotp, &p);
    Ok(crate::store::encode(&rec)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Actor;

    /// A vault on a fresh store (the directory lives as long as the returned guard).
    fn vault() -> (tempfile::TempDir, VaultService) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let audit = std::sync::Arc::new(crate::audit::Audit::open(store.clone()).unwrap());
        let vault = VaultService::with_root(
            store,
            audit,
            std::sync::Arc::new(crate::metrics::Metrics::new()),
            crypto::Key32::random(),
        )
        .unwrap();
        (dir, vault)
    }

    #[test]
    fn enrolment_needs_a_code_and_codes_are_not_replayed() {
        let (_dir, vault) = vault();
        let admin = Actor::cli("hu_1", "a@example.com");
        let seed = vault.begin_human_totp(&admin, "hu_1").expect("begin");
        assert_eq!(seed.len(), 32);
        assert!(!vault.human_totp_enabled("hu_1").unwrap());
        let now = 1_800_000_000;
        assert!(!vault.check_human_totp("hu_1", "000000", now).unwrap());
        let code = vault.human_code_at("hu_1", now).unwrap();
        assert!(vault
            .confirm_human_totp(&admin, "hu_1", &code, now)
            .unwrap());
        assert!(vault.human_totp_enabled("hu_1").unwrap());
        // The step just used is spent; the next one works.
        assert!(!vault.check_human_totp("hu_1", &code, now).unwrap());
        let next = vault.human_code_at("hu_1", now + 30).unwrap();
        assert!(vault.check_human_totp("hu_1", &next, now + 30).unwrap());
        assert!(!vault.check_human_totp("hu_1", "12345", now + 60).unwrap());
        vault.remove_human_totp(&admin, "hu_1").unwrap();
        assert!(!vault.human_totp_enabled("hu_1").unwrap());
    }

    /// One code, many sign-ins at once: exactly one spends the step.
    #[test]
    fn a_code_races_to_one_sign_in() {
        let (_dir, vault) = vault();
        let vault = std::sync::Arc::new(vault);
        let admin = Actor::cli("hu_1", "a@example.com");
        vault.begin_human_totp(&admin, "hu_1").unwrap();
        let now = 1_800_000_000;
        let first = vault.human_code_at("hu_1", now).unwrap();
        assert!(vault
            .confirm_human_totp(&admin, "hu_1", &first, now)
            .unwrap());
        let code = vault.human_code_at("hu_1", now + 30).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let wins: usize = (0..8)
            .map(|_| {
                let (v, b, c) = (vault.clone(), barrier.clone(), code.clone());
                std::thread::spawn(move || {
                    b.wait();
                    v.check_human_totp("hu_1", &c, now + 30).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(wins, 1);
    }

    /// A code of the seed being replaced does not confirm the new pending seed.
    #[test]
    fn a_replaced_seed_is_not_confirmed_by_the_old_code() {
        let (_dir, vault) = vault();
        let admin = Actor::cli("hu_1", "a@example.com");
        vault.begin_human_totp(&admin, "hu_1").unwrap();
        let now = 1_800_000_000;
        let old = vault.human_code_at("hu_1", now).unwrap();
        vault.begin_human_totp(&admin, "hu_1").unwrap();
        let new = vault.human_code_at("hu_1", now).unwrap();
        if old != new {
            assert!(!vault.confirm_human_totp(&admin, "hu_1", &old, now).unwrap());
        }
        // A pending seed never passes a sign-in check.
        assert!(!vault.check_human_totp("hu_1", &new, now).unwrap());
        assert!(!vault.human_totp_enabled("hu_1").unwrap());
    }
}
