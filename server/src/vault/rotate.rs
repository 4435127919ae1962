//! Re-wrapping everything under a new root key in one transaction.
//!
//! Only wrapped keys change (agent keys, identity and DKIM keys, the key check); credential
//! payloads are sealed by data keys and stay untouched. The transaction makes the switch
//! atomic: an interrupted rotation leaves a vault that opens with exactly one of the keys.

use super::crypto::{self, Key32, Purpose, Sealed};
use super::rootkey;
use super::VaultError;
use crate::store::{Store, Tree};

/// Returns how many agent keys were re-wrapped.
pub fn rotate_master(store: &Store, old: &Key32, new: &Key32) -> Result<usize, VaultError> {
    rootkey::verify(store, old)?;
    let agent_keys: Vec<(Vec<u8>, Vec<u8>)> = store
        .scan_prefix(Tree::VaultAgentKeys, &[])
        .collect::<Result<_, _>>()?;
    let custody: Vec<(Vec<u8>, Vec<u8>)> = store
        .scan_prefix(Tree::KeyCustody, &[])
        .collect::<Result<_, _>>()?;
    // Re-wrap outside the transaction (pure computation), write inside it.
    let mut writes: Vec<(Tree, Vec<u8>, Vec<u8>)> = Vec::new();
    for (k, v) in &agent_keys {
        let agent = String::from_utf8_lossy(k).to_string();
        let sealed: Sealed = crate::store::decode(v)?;
        let kek = crypto::unwrap(old, &agent, "kek", Purpose::AgentKeyWrap, &sealed)?;
        let s = crypto::wrap(new, &agent, "kek", Purpose::AgentKeyWrap, &kek);
        writes.push((Tree::VaultAgentKeys, k.clone(), crate::store::encode(&s)?));
    }
    for (k, v) in &custody {
        if k.as_slice() == rootkey::check_key() {
            writes.push((
                Tree::KeyCustody,
                k.clone(),
                crate::store::encode(&rootkey::check_record(new))?,
            ));
            continue;
        }
        if let Some(v) = super::custody::reseal_record(k, v, old, new)? {
            writes.push((Tree::KeyCustody, k.clone(), v));
        }
    }
    store.transact::<_, VaultError>(&[Tree::VaultAgentKeys, Tree::KeyCustody], |tx| {
        for (t, k, v) in &writes {
            tx.put(*t, k, v)?;
        }
        Ok(())
    })?;
    store.flush_blocking()?;
    Ok(agent_keys.len())
}

/// `legate vault rotate-master`: resolves the current root key as `serve` would, reads (or
/// creates, mode 0600) the new key file, and re-wraps. Key bytes never leave this module.
/// Returns (agent keys re-wrapped, whether the new key file was created).
pub fn rotate_master_files(
    store: &Store,
    current_key_file: &str,
    data_dir: &std::path::Path,
    new_key_file: &std::path::Path,
) -> Result<(usize, bool), VaultError> {
    let env = std::env::var("LEGATE_MASTER_KEY").ok();
    let (old, _) = rootkey::resolve(current_key_file, env.as_deref(), data_dir)?;
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
        &rootkey::check_record(&old),
    )
    .is_ok()
    {
        return Err(VaultError::Invalid("the new key is the current key".into()));
    }
    Ok((rotate_master(store, &old, &new)?, created))
}
