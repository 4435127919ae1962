//! Credential operations, each behind the scope gate and audited (DESIGN §3, §6).

use super::credential::{
    validate_name, CredentialInput, CredentialMeta, CredentialView, SecretPayload, TotpInfo,
};
use super::crypto::{self, Key32, Purpose, Sealed};
use super::totp::TotpCode;
use super::{VaultError, VaultService};
use crate::audit::Outcome;
use crate::identity::{Actor, Agent, Denied, Scope};
use crate::store::{keys, Tree, TxFail};
use crate::util::{new_id, now_unix};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

/// A stored credential: plaintext metadata, the data key wrapped by the agent key, and the
/// payload sealed by the data key.
#[derive(Serialize, Deserialize)]
pub(super) struct CredentialRecord {
    pub meta: CredentialMeta,
    pub wrapped_dek: Sealed,
    pub payload: Sealed,
}

/// How far (in TOTP periods, either way) a `vault:read` key may move `at` from now: enough
/// to check a clock or cover a code that just rolled over, never enough to precompute.
pub const TOTP_AT_WINDOW_PERIODS: u64 = 2;

/// Why the vault routes do not replace or delete an `oauth` credential: its tokens must be
/// revoked at the provider first, which only the connection's owners may ask for.
const OAUTH_IS_A_CONNECTION: &str = "this credential is a connected account; an admin or an owner of the agent removes it with DELETE /v1/agents/{id}/connections/{cid}";

/// Most cached records; past it the cache starts over.
const RECORD_CACHE_MAX: usize = 10_000;

/// A read that started before a write must not repopulate the cache with what the write
/// replaced: every write bumps the generation, and a read only caches what it read if the
/// generation is unchanged when it inserts.
#[derive(Default)]
pub(super) struct RecordCache {
    map: std::sync::RwLock<std::collections::HashMap<Vec<u8>, std::sync::Arc<CredentialRecord>>>,
    generation: std::sync::atomic::AtomicU64,
}

impl RecordCache {
    fn get(&self, k: &[u8]) -> Option<std::sync::Arc<CredentialRecord>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(k)
            .cloned()
    }
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn put(&self, k: Vec<u8>, r: std::sync::Arc<CredentialRecord>, read_at: u64) {
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation() != read_at {
            return;
        }
        if m.len() >= RECORD_CACHE_MAX {
            m.clear();
        }
        m.insert(k, r);
    }
    pub(super) fn forget(&self, k: &[u8]) {
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        m.remove(k);
    }
    fn clear(&self) {
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        m.clear();
    }
}

/// `vault.accessed`: which credential and what was done, never a secret field.
pub(super) fn accessed(agent: &str, name: &str, action: &str) -> crate::store::EventRecord {
    crate::store::EventRecord::new(
        "vault.accessed",
        agent,
        json!({"name": name, "action": action}),
    )
}

pub(super) fn cred_key(agent: &str, name: &str) -> Vec<u8> {
    keys::join(&[agent, name])
}

/// `Meta` key of an agent's shred tombstone. Written in the same transaction that deletes the
/// agent key, and checked inside every transaction that would create one or store under it,
/// so a request racing the revocation can never bring the vault back.
fn tombstone_key(agent: &str) -> Vec<u8> {
    keys::join(&["vault_shredded", agent])
}

impl VaultService {
    /// The agent's key, made on first use (never after the agent is revoked or shredded).
    pub(super) fn agent_key(&self, agent_id: &str, create: bool) -> Result<Key32, VaultError> {
        // Several nodes on one store: another node may shred this key at any moment, so
        // none is kept here (and every use reads the tombstone with the key).
        let shared = self.store.is_shared();
        if let Some(k) = self
            .keks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent_id)
            .filter(|_| !shared)
        {
            return Ok(k.clone());
        }
        let key = self.load_agent_key(agent_id, create)?;
        if shared {
            if self.is_shredded(agent_id)? {
                return Err(VaultError::Shredded);
            }
            return Ok(key);
        }
        let mut cache = self.keks.write().unwrap_or_else(|p| p.into_inner());
        // A shred that committed while this request loaded the key must not be undone by
        // caching it: `shred` empties the cache only after its transaction commits, and this
        // check runs under the same lock, so one of the two always wins cleanly.
        if self.is_shredded(agent_id)? {
            return Err(VaultError::Shredded);
        }
        cache.insert(agent_id.to_string(), key.clone());
        Ok(key)
    }

    /// Whether the agent's vault was crypto-shredded (its agent was revoked).
    fn is_shredded(&self, agent_id: &str) -> Result<bool, VaultError> {
        Ok(self
            .store
            .get(Tree::Meta, &tombstone_key(agent_id))?
            .is_some())
    }

    /// Fails every operation of a shredded vault, even one that an authentication made just
    /// before the revocation let through.
    pub(super) fn ensure_live(&self, agent_id: &str) -> Result<(), VaultError> {
        if self.is_shredded(agent_id)? {
            self.count("any", "shredded");
            return Err(VaultError::Shredded);
        }
        Ok(())
    }

    fn load_agent_key(&self, agent_id: &str, create: bool) -> Result<Key32, VaultError> {
        let root = self.root();
        if let Some(s) = self
            .store
            .get_record::<Sealed>(Tree::VaultAgentKeys, agent_id.as_bytes())?
        {
            return crypto::unwrap(&root, agent_id, "kek", Purpose::AgentKeyWrap, &s);
        }
        if !create {
            return Err(VaultError::Shredded);
        }
        let kek = Key32::random();
        let sealed = crypto::wrap(&root, agent_id, "kek", Purpose::AgentKeyWrap, &kek);
        let tomb = tombstone_key(agent_id);
        // Checked and created in one transaction with the tombstone and the agent's status,
        // so a `put` racing the revocation cannot recreate the key the shred destroyed.
        let stored = self.store.transact::<_, VaultError>(
            &[Tree::VaultAgentKeys, Tree::Meta, Tree::Agents],
            |tx| {
                if tx.get(Tree::Meta, &tomb)?.is_some() {
                    return Err(TxFail::Abort(VaultError::Shredded));
                }
                if let Some(a) = tx.get_record::<Agent>(Tree::Agents, agent_id.as_bytes())? {
                    if !a.is_active() {
                        return Err(TxFail::Abort(VaultError::Shredded));
                    }
                }
                if let Some(cur) =
                    tx.get_record::<Sealed>(Tree::VaultAgentKeys, agent_id.as_bytes())?
                {
                    return Ok(Some(cur));
                }
                tx.put_record(Tree::VaultAgentKeys, agent_id.as_bytes(), &sealed)?;
                Ok(None)
            },
        )?;
        match stored {
            // Another request made it first: use that one.
            Some(cur) => crypto::unwrap(&root, agent_id, "kek", Purpose::AgentKeyWrap, &cur),
            None => Ok(kek),
        }
    }

    pub(super) fn create_agent_key(&self, agent_id: &str) -> Result<(), VaultError> {
        self.agent_key(agent_id, true).map(|_| ())
    }

    /// Crypto-shred: the wrapped agent key and the agent's identity keys are deleted, and
    /// its credential records purged; what remains of them anywhere is ciphertext under a
    /// key that no longer exists. A tombstone written in the same transaction keeps any later
    /// or racing request from making a new agent key or storing a credential.
    pub fn shred(&self, agent_id: &str) -> Result<usize, VaultError> {
        self.keks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id);
        let prefix = keys::prefix(&[agent_id]);
        let tomb = tombstone_key(agent_id);
        let mut purged = 0;
        // Twice: a credential committed between the scan and the tombstone is purged by the
        // second pass; after the tombstone none can be written (see `put`).
        for _ in 0..2 {
            let creds: Vec<Vec<u8>> = self
                .store
                .scan_prefix(Tree::VaultCredentials, &prefix)
                .map(|r| r.map(|(k, _)| k))
                .collect::<Result<_, _>>()?;
            self.store.transact::<_, VaultError>(
                &[Tree::VaultAgentKeys, Tree::VaultCredentials, Tree::Meta],
                |tx| {
                    tx.remove(Tree::VaultAgentKeys, agent_id.as_bytes())?;
                    tx.put(Tree::Meta, &tomb, &now_unix().to_be_bytes())?;
                    for k in &creds {
                        tx.remove(Tree::VaultCredentials, k)?;
                    }
                    Ok(())
                },
            )?;
            purged += creds.len();
        }
        self.records.clear();
        self.destroy_identity_keys(agent_id)?;
        // After the commit, under the lock `agent_key` checks the tombstone under: a request
        // that loaded the key before the shred either cached it before this (and loses it
        // now) or sees the tombstone and caches nothing.
        self.keks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id);
        Ok(purged)
    }

    /// Loads a credential; a miss is audited too (probing for names is worth seeing).
    fn load(
        &self,
        actor: &Actor,
        action: &str,
        agent: &str,
        name: &str,
    ) -> Result<std::sync::Arc<CredentialRecord>, VaultError> {
        self.ensure_live(agent)?;
        let k = cred_key(agent, name);
        // Several nodes: another one may have changed the record; read it every time.
        let shared = self.store.is_shared();
        if let Some(r) = self.records.get(&k).filter(|_| !shared) {
            return Ok(r);
        }
        let read_at = self.records.generation();
        match self
            .store
            .get_record::<CredentialRecord>(Tree::VaultCredentials, &k)?
        {
            Some(r) => {
                let r = std::sync::Arc::new(r);
                if !shared {
                    self.records.put(k, r.clone(), read_at);
                }
                Ok(r)
            }
            None => {
                actor.audit(
                    &self.audit,
                    action,
                    name,
                    Outcome::Error,
                    json!({"reason": "not_found"}),
                )?;
                self.count(action.trim_start_matches("vault."), "not_found");
                Err(VaultError::NotFound)
            }
        }
    }

    pub(super) fn decrypt(
        &self,
        agent: &str,
        rec: &CredentialRecord,
    ) -> Result<SecretPayload, VaultError> {
        let kek = self.agent_key(agent, false)?;
        let id = &rec.meta.id;
        let dek = crypto::unwrap(&kek, agent, id, Purpose::DataKeyWrap, &rec.wrapped_dek)?;
        let bytes = crypto::open(&dek, agent, id, Purpose::CredentialPayload, &rec.payload)?;
        serde_json::from_slice(&bytes).map_err(|_| VaultError::Decrypt)
    }

    fn count(&self, op: &str, outcome: &str) {
        self.metrics
            .vault_ops
            .with_label_values(&[op, outcome])
            .inc();
    }

    /// `PUT /v1/vault/{name}`: create or replace; returns the metadata and whether it is new.
    pub async fn put(
        &self,
        actor: &Actor,
        name: &str,
        input: CredentialInput,
    ) -> Result<(CredentialMeta, bool), VaultError> {
        let agent = actor
            .require(&self.audit, Scope::VaultWrite, "vault.store", name)?
            .to_string();
        validate_name(name).map_err(VaultError::Invalid)?;
        self.ensure_live(&agent)?;
        let kind = input.kind;
        let (username, url, payload) = input.into_payload().map_err(VaultError::Invalid)?;
        let plaintext =
            Zeroizing::new(serde_json::to_vec(&payload).map_err(|_| VaultError::Decrypt)?);
        let kek = self.agent_key(&agent, true)?;
        let now = now_unix();
        let existing: Option<CredentialRecord> = self
            .store
            .get_record(Tree::VaultCredentials, &cred_key(&agent, name))?;
        let (id, version, created_at, last_used_at) = match &existing {
            Some(r) => (
                r.meta.id.clone(),
                r.meta.version + 1,
                r.meta.created_at,
                r.meta.last_used_at,
            ),
            None => (new_id("cr"), 1, now, None),
        };
        let dek = Key32::random();
        let rec = CredentialRecord {
            meta: CredentialMeta {
                id: id.clone(),
                name: name.into(),
                kind,
                username,
                url,
                has_totp: payload.totp.is_some(),
                version,
                created_at,
                updated_at: now,
                last_used_at,
            },
            wrapped_dek: crypto::wrap(&kek, &agent, &id, Purpose::DataKeyWrap, &dek),
            payload: crypto::seal(&dek, &agent, &id, Purpose::CredentialPayload, &plaintext),
        };
        let k = cred_key(&agent, name);
        self.store.transact::<_, VaultError>(
            &[
                Tree::VaultCredentials,
                Tree::VaultAgentKeys,
                Tree::Events,
                Tree::Meta,
            ],
            |tx| {
                // The agent key this was sealed under must still exist: a shred that committed
                // since it was loaded means the agent is gone, and nothing may be stored for it.
                if tx.get(Tree::VaultAgentKeys, agent.as_bytes())?.is_none() {
                    return Err(TxFail::Abort(VaultError::Shredded));
                }
                // Another writer replaced it meanwhile: the later version number must still win.
                if let Some(cur) = tx.get_record::<CredentialRecord>(Tree::VaultCredentials, &k)? {
                    if cur.meta.kind == super::CredentialKind::Oauth {
                        return Err(TxFail::Abort(VaultError::Invalid(
                            OAUTH_IS_A_CONNECTION.into(),
                        )));
                    }
                    if cur.meta.version >= version {
                        return Err(TxFail::Abort(VaultError::Invalid(
                            "concurrent update; retry".into(),
                        )));
                    }
                }
                tx.put_record(Tree::VaultCredentials, &k, &rec)?;
                tx.emit(&accessed(&agent, name, "store"))?;
                Ok(())
            },
        )?;
        self.records.forget(&k);
        actor.audit(
            &self.audit,
            "vault.store",
            name,
            Outcome::Ok,
            json!({"kind": kind, "version": version, "has_totp": rec.meta.has_totp}),
        )?;
        self.audit.commit().await?;
        self.count("store", "ok");
        Ok((rec.meta, existing.is_none()))
    }

    /// `GET /v1/vault`: metadata only.
    pub fn list(&self, actor: &Actor) -> Result<Vec<CredentialMeta>, VaultError> {
        let agent = actor.require(&self.audit, Scope::VaultRead, "vault.list", "")?;
        self.ensure_live(agent)?;
        let items = self
            .store
            .scan_prefix(Tree::VaultCredentials, &keys::prefix(&[agent]))
            .map(|r| Ok(crate::store::decode::<CredentialRecord>(&r?.1)?.meta))
            .collect::<Result<Vec<_>, VaultError>>()?;
        actor.audit(
            &self.audit,
            "vault.list",
            "",
            Outcome::Ok,
            json!({"count": items.len()}),
        )?;
        Ok(items)
    }

    /// Records use, at most once a minute per credential, so reads stay reads.
    fn touch(&self, agent: &str, rec: &CredentialRecord) {
        let now = now_unix();
        if rec.meta.last_used_at.is_some_and(|t| now - t < 60) {
            return;
        }
        let name = &rec.meta.name;
        let k = cred_key(agent, name);
        let r = self
            .store
            .transact::<_, ()>(&[Tree::VaultCredentials], |tx| {
                if let Some(mut rec) =
                    tx.get_record::<CredentialRecord>(Tree::VaultCredentials, &k)?
                {
                    rec.meta.last_used_at = Some(now);
                    tx.put_record(Tree::VaultCredentials, &k, &rec)?;
                }
                Ok(())
            });
        self.records.forget(&k);
        if r.is_err() {
            tracing::warn!("could not record credential use");
        }
    }

    /// `GET /v1/vault/{name}`: secret fields; of a TOTP seed only its parameters.
    pub fn get(&self, actor: &Actor, name: &str) -> Result<CredentialView, VaultError> {
        let agent = actor
            .require(&self.audit, Scope::VaultRead, "vault.get", name)?
            .to_string();
        let rec = self.load(actor, "vault.get", &agent, name)?;
        let p = self.decrypt(&agent, &rec)?;
        self.touch(&agent, &rec);
        // A read changes nothing else: the event's insert is its own transaction.
        self.store.emit(&accessed(&agent, name, "get"))?;
        actor.audit(
            &self.audit,
            "vault.get",
            name,
            Outcome::Ok,
            json!({"kind": rec.meta.kind}),
        )?;
        self.count("get", "ok");
        Ok(CredentialView {
            meta: rec.meta.clone(),
            password: p.password,
            secret: p.secret,
            notes: p.notes,
            fields: p.fields,
            totp: p.totp.map(|t| TotpInfo {
                algorithm: t.algorithm,
                digits: t.digits,
                period: t.period,
            }),
        })
    }

    pub async fn delete(&self, actor: &Actor, name: &str) -> Result<(), VaultError> {
        let agent = actor
            .require(&self.audit, Scope::VaultWrite, "vault.delete", name)?
            .to_string();
        let rec = self.load(actor, "vault.delete", &agent, name)?;
        if rec.meta.kind == super::CredentialKind::Oauth {
            return Err(VaultError::Invalid(OAUTH_IS_A_CONNECTION.into()));
        }
        let k = cred_key(&agent, name);
        self.store.transact::<_, VaultError>(
            &[Tree::VaultCredentials, Tree::Events, Tree::Meta],
            |tx| {
                tx.remove(Tree::VaultCredentials, &k)?;
                tx.emit(&accessed(&agent, name, "delete"))?;
                Ok(())
            },
        )?;
        self.records.forget(&cred_key(&agent, name));
        actor.audit(
            &self.audit,
            "vault.delete",
            name,
            Outcome::Ok,
            serde_json::Value::Null,
        )?;
        self.audit.commit().await?;
        self.count("delete", "ok");
        Ok(())
    }

    /// A code for an arbitrary time is the seed in all but name: whoever can ask for every
    /// future period can precompute every future code. `at` is therefore a clock check only,
    /// within [`TOTP_AT_WINDOW_PERIODS`] periods of now, unless the key could replace the seed
    /// anyway (`vault:write`). A refusal is audited like any other denial.
    fn check_totp_at(
        &self,
        actor: &Actor,
        name: &str,
        at: u64,
        now: u64,
        period: u32,
    ) -> Result<(), VaultError> {
        let window = u64::from(period.max(1)).saturating_mul(TOTP_AT_WINDOW_PERIODS);
        if at.abs_diff(now) <= window || actor.scopes.contains(Scope::VaultWrite) {
            return Ok(());
        }
        self.count("totp", "denied");
        Err(actor
            .refuse(
                &self.audit,
                "vault.totp",
                name,
                Denied::Other(format!(
                    "\"at\" must be within {TOTP_AT_WINDOW_PERIODS} periods ({window} s) of now \
                     unless the key holds vault:write"
                )),
            )
            .into())
    }

    /// `POST /v1/vault/{name}/totp`: the code for now (or for `at`, for checking a clock).
    pub fn totp(&self, actor: &Actor, name: &str, at: Option<u64>) -> Result<TotpCode, VaultError> {
        let agent = actor
            .require(&self.audit, Scope::VaultRead, "vault.totp", name)?
            .to_string();
        let rec = self.load(actor, "vault.totp", &agent, name)?;
        let p = self.decrypt(&agent, &rec)?;
        let totp = p
            .totp
            .ok_or_else(|| VaultError::Invalid(format!("the credential {name} has no TOTP")))?;
        let clock = u64::try_from(now_unix()).unwrap_or(0);
        if let Some(t) = at {
            self.check_totp_at(actor, name, t, clock, totp.period)?;
        }
        let now = at.unwrap_or(clock);
        let code = totp.generate(now);
        self.touch(&agent, &rec);
        self.store.emit(&accessed(&agent, name, "totp"))?;
        actor.audit(
            &self.audit,
            "vault.totp",
            name,
            Outcome::Ok,
            json!({"at": now, "at_requested": at.is_some()}),
        )?;
        self.count("totp", "ok");
        Ok(code)
    }
}
