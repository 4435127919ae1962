//! The key behind VERP bounce tokens (`queue::feedback::verp`): HMAC-SHA256 under a key
//! derived from the root key for this one purpose. The queue gets MACs, never key bytes;
//! whoever can read the data directory but not the root key cannot mint a token that links
//! a forged bounce to a message. A root-key rotation changes it: bounces to tokens minted
//! before are kept unlinked for an admin.

use super::VaultService;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Domain separation: this derived key makes bounce tokens and nothing else.
const LABEL: &[u8] = b"legate verp bounce token v1";

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

impl VaultService {
    /// The MAC of `msg` under the bounce-token key.
    pub fn verp_mac(&self, msg: &[u8]) -> [u8; 32] {
        let derived = zeroize::Zeroizing::new(hmac(self.root().bytes(), LABEL));
        hmac(derived.as_ref(), msg)
    }
}
