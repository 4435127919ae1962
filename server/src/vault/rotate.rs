//! Re-wrapping everything under a new root key in one transaction.
//!
//! Only wrapped keys change (agent keys, identity and DKIM keys, the key check); credential
//! payloads are sealed by data keys and stay untouched. The transaction makes the switch
//! atomic: an interrupted rotation leaves a vault that opens with exactly one of the keys.
//!
//! A running server rotates too ([`VaultService::rotate_root`]): the root key sits behind a
//! lock that every operation sealing or opening under it holds for its whole read-seal-write,
//! and the rotation holds it exclusively, so nothing is ever sealed under the old key after
//! the switch nor opened with the new key before it. Writers that only move records (retire
//! a DKIM selector, shred an agent) are caught by the transaction instead: records are read
//! inside it, so a concurrent write conflicts and the rotation re-reads.

use super::crypto::{self, Key32, Purpose, Sealed};
use super::VaultError;
use super::{rootkey, VaultService};
use crate::store::{Store, Tree, TxFail};

/// Returns how many agent keys were re-wrapped.
pub fn rotate_master(store: &Store, old: &Key32, new: &Key32) -> Result<usize, VaultError> {
    rootkey::verify(store, old)?;
    let names = |tree| -> Result<Vec<Vec<u8>>, VaultError> {
        Ok(store
            .scan_prefix(tree, &[])
            .map(|r| r.map(|(k, _)| k))
            .collect::<Result<_, _>>()?)
    };
    let agent_keys = names(Tree::VaultAgentKeys)?;
    let custody = names(Tree::KeyCustody)?;
    let n = store.transact::<_, VaultError>(&[Tree::VaultAgentKeys, Tree::KeyCustody], |tx| {
        let mut n = 0;
        for k in &agent_keys {
            // Gone since the scan (a shred): nothing to re-wrap.
            let Some(v) = tx.get(Tree::VaultAgentKeys, k)? else {
                continue;
            };
            let agent = String::from_utf8_lossy(k).to_string();
            let s = rewrap_agent_key(&agent, &v, old, new).map_err(TxFail::Abort)?;
            tx.put(Tree::VaultAgentKeys, k, &s)?;
            n += 1;
        }
        for k in &custody {
            if k.as_slice() == rootkey::check_key() {
                let check = crate::store::encode(&rootkey::check_record(new))
                    .map_err(|e| TxFail::Abort(e.into()))?;
                tx.put(Tree::KeyCustody, k, &check)?;
                continue;
            }
            let Some(v) = tx.get(Tree::KeyCustody, k)? else {
                continue;
            };
            if let Some(v) =
                super::custody::reseal_record(k, &v, old, new).map_err(TxFail::Abort)?
            {
                tx.put(Tree::KeyCustody, k, &v)?;
            }
        }
        Ok(n)
    })?;
    store.flush_blocking()?;
    Ok(n)
}

fn rewrap_agent_key(
    agent: &str,
    bytes: &[u8],
    old: &Key32,
    new: &Key32,
) -> Result<Vec<u8>, VaultError> {
    let sealed: Sealed = crate::store::decode(bytes)?;
    let kek = crypto::unwrap(old, agent, "kek", Purpose::AgentKeyWrap, &sealed)?;
    let s = crypto::wrap(new, agent, "kek", Purpose::AgentKeyWrap, &kek);
    Ok(crate::store::encode(&s)?)
}

/// Reads the new key file, or creates it (mode 0600) when absent; refuses the current key.
/// Returns the key and whether the file was created.
fn new_root(current: &Key32, new_key_file: &std::path::Path) -> Result<(Key32, bool), VaultError> {
    let (new, created) = if new_key_file.exists() {
        (rootkey::load_file(new_key_file)?, false)
    } else {
        (rootkey::create_file(new_key_file)?, true)
    };
    if crypto::open(
        &new,
        "legate",
        "root",
        Purpose::KeyCheck,
        &rootkey::check_record(current),
    )
    .is_ok()
    {
        return Err(VaultError::Invalid("the new key is the current key".into()));
    }
    Ok((new, created))
}

/// `legate vault rotate-master` with no server running: resolves the current root key as
/// `serve` would, reads (or creates, mode 0600) the new key file, and re-wraps. Key bytes
/// never leave this module. Returns (agent keys re-wrapped, whether the new key file was
/// created).
pub fn rotate_master_files(
    store: &Store,
    current_key_file: &str,
    data_dir: &std::path::Path,
    new_key_file: &std::path::Path,
) -> Result<(usize, bool), VaultError> {
    let env = std::env::var("LEGATE_MASTER_KEY").ok();
    let (old, _) = rootkey::resolve(current_key_file, env.as_deref(), data_dir)?;
    let (new, created) = new_root(&old, new_key_file)?;
    Ok((rotate_master(store, &old, &new)?, created))
}

impl VaultService {
    /// The same rotation in a running server, on the root key it holds: every key is
    /// re-wrapped, the server goes on with the new key at once, and the audit head
    /// checkpoint (whose signing key derives from the root key) is re-signed, so the next
    /// start finds it authentic under the new key. Once the store transaction commits the
    /// rotation has happened: a checkpoint that could not be re-signed is a warning in the
    /// answer (the next start records the mismatch), not a failure. Returns (agent keys
    /// re-wrapped, whether the new key file was created, that warning).
    pub fn rotate_root(
        &self,
        new_key_file: &std::path::Path,
    ) -> Result<(usize, bool, Option<String>), VaultError> {
        let mut root = self.root.write().unwrap_or_else(|p| p.into_inner());
        let (new, created) = new_root(&root, new_key_file)?;
        let n = rotate_master(&self.store, &root, &new)?;
        *root = new;
        let signer = super::anchor::signer_for(&root);
        drop(root);
        let warning = self.audit.replace_signer(signer).err().map(|e| {
            tracing::error!(error = %e, "the root key was rotated but the audit checkpoint was not re-signed");
            format!("the audit head checkpoint was not re-signed ({e}); the next start records the mismatch")
        });
        Ok((n, created, warning))
    }
}
