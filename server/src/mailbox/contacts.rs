//! The addresses each agent has exchanged mail with: written by the queue when the agent
//! sends and by delivery when authenticated mail arrives; read by the send policy, for which
//! any other address is a "first contact". One key per (agent, address), in the store, so
//! every node sees the same set.

use super::StoredMessage;
use crate::store::{keys, Tree, Tx, TxStoreError};

/// The key of "`agent` has exchanged mail with `address`" in [`Tree::SendContacts`].
pub fn contact_key(agent: &str, address: &str) -> Vec<u8> {
    keys::join(&[agent, &address.to_ascii_lowercase()])
}

/// Records the sender of a received message as a contact, when it is proven (a DMARC pass
/// aligned with its From domain): a From anyone could type must not open the door.
pub(super) fn record_received(tx: &Tx<'_>, rec: &StoredMessage) -> Result<(), TxStoreError> {
    if !rec.sender_authenticated() {
        return Ok(());
    }
    match &rec.from {
        Some(from) if !from.email.is_empty() && !from.email.contains('\0') => tx.put(
            Tree::SendContacts,
            &contact_key(&rec.agent_id, &from.email),
            &[],
        ),
        _ => Ok(()),
    }
}
