//! The audit log's head-checkpoint signer: HMAC-SHA256 under a key derived from the root key
//! for this one purpose, so the audit module gets checkpoints signed without holding key
//! bytes, and an attacker who can edit the data directory (but not read the root key) cannot
//! forge a lower head.

use super::crypto::Key32;
use super::VaultService;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Domain separation: this derived key signs audit heads and nothing else.
const LABEL: &[u8] = b"legate audit head checkpoint v1";

struct AuditHeadKey(Key32);

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; 32];
    };
    m.update(msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(&m.finalize().into_bytes());
    out
}

impl crate::audit::HeadSigner for AuditHeadKey {
    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        hmac(self.0.bytes(), msg)
    }
}

impl VaultService {
    /// The signer of the audit head checkpoint. Rotating the root key changes it: a live
    /// rotation re-signs the checkpoint at once (`rotate_root`); after an offline one, the
    /// next `serve` records the mismatch and re-signs (see `Audit::set_anchor`).
    pub fn audit_head_signer(&self) -> Box<dyn crate::audit::HeadSigner> {
        signer_for(&self.root())
    }
}

/// The checkpoint signer of one root key (also the new one, during a rotation).
pub(super) fn signer_for(root: &Key32) -> Box<dyn crate::audit::HeadSigner> {
    let derived = hmac(root.bytes(), LABEL);
    let key = Key32::from_bytes(&derived).unwrap_or_else(Key32::random);
    Box::new(AuditHeadKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::HeadSigner;

    #[test]
    fn derived_key_is_not_the_root_key_and_is_stable() {
        let root = [7u8; 32];
        let k = AuditHeadKey(Key32::from_bytes(&hmac(&root, LABEL)).unwrap());
        let k2 = AuditHeadKey(Key32::from_bytes(&hmac(&root, LABEL)).unwrap());
        assert_eq!(k.mac(b"x"), k2.mac(b"x"));
        assert_ne!(k.mac(b"x"), hmac(&root, b"x"));
    }
}
