//! Webhook signing secrets (Standard Webhooks `whsec_...`), kept like every other key here:
//! sealed under the root key, handed out only as the raw HMAC keys the dispatcher signs with,
//! and shown in full once, when made. A rotation keeps the previous secret signing for an
//! overlap, so receivers can switch without losing a delivery.

use super::crypto::{self, Purpose, Sealed};
use super::{VaultError, VaultService};
use crate::store::{keys, Tree};
use crate::util::now_unix;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Random bytes in a secret (the spec asks for 24 to 64).
const SECRET_BYTES: usize = 32;

#[derive(Default, Serialize, Deserialize)]
pub(super) struct WebhookSecrets {
    pub keys: Vec<WebhookSecretRecord>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct WebhookSecretRecord {
    /// The record name in the AAD (`s1`, `s2`, ...).
    pub label: String,
    pub created_at: i64,
    /// When it stops signing; none for the current secret.
    pub retire_at: Option<i64>,
    pub sealed: Sealed,
}

pub(super) fn secrets_key(webhook_id: &str) -> Vec<u8> {
    keys::join(&["webhook", webhook_id, "secrets"])
}

impl VaultService {
    /// Makes a new secret for `webhook_id` and returns it (`whsec_<base64>`) for the caller
    /// to show once. Secrets made before keep signing for `overlap_secs`.
    pub fn new_webhook_secret(
        &self,
        webhook_id: &str,
        overlap_secs: i64,
    ) -> Result<Zeroizing<String>, VaultError> {
        // Held across the read-modify-write, as every seal under the root key (`rotate`).
        let root = self.root();
        let k = secrets_key(webhook_id);
        let mut set: WebhookSecrets = self
            .store
            .get_record(Tree::KeyCustody, &k)?
            .unwrap_or_default();
        let now = now_unix();
        set.keys.retain(|r| r.retire_at.is_none_or(|t| t > now));
        for r in set.keys.iter_mut().filter(|r| r.retire_at.is_none()) {
            r.retire_at = Some(now + overlap_secs);
        }
        let n = set
            .keys
            .iter()
            .filter_map(|r| r.label.strip_prefix('s')?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let label = format!("s{n}");
        let raw: Zeroizing<[u8; SECRET_BYTES]> = Zeroizing::new(crate::util::random_bytes());
        let sealed = crypto::seal(
            &root,
            webhook_id,
            &label,
            Purpose::WebhookSecret,
            raw.as_ref(),
        );
        set.keys.push(WebhookSecretRecord {
            label,
            created_at: now,
            retire_at: None,
            sealed,
        });
        self.store.put_record(Tree::KeyCustody, &k, &set)?;
        Ok(Zeroizing::new(format!(
            "whsec_{}",
            data_encoding::BASE64.encode(raw.as_ref())
        )))
    }

    /// The HMAC keys `webhook_id` signs with now, newest first.
    pub fn webhook_signing_keys(
        &self,
        webhook_id: &str,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, VaultError> {
        let root = self.root();
        let set: WebhookSecrets = self
            .store
            .get_record(Tree::KeyCustody, &secrets_key(webhook_id))?
            .unwrap_or_default();
        let now = now_unix();
        let mut out = Vec::new();
        for r in set.keys.iter().rev() {
            if r.retire_at.is_some_and(|t| t <= now) {
                continue;
            }
            out.push(crypto::open(
                &root,
                webhook_id,
                &r.label,
                Purpose::WebhookSecret,
                &r.sealed,
            )?);
        }
        Ok(out)
    }

    /// Forgets every secret of a deleted webhook.
    pub fn remove_webhook_secrets(&self, webhook_id: &str) -> Result<(), VaultError> {
        self.store
            .remove(Tree::KeyCustody, &secrets_key(webhook_id))?;
        Ok(())
    }
}

/// Re-seals a secret set under a new root key (`rotate`).
pub(super) fn reseal(
    owner: &str,
    bytes: &[u8],
    old: &crypto::Key32,
    new: &crypto::Key32,
) -> Result<Vec<u8>, VaultError> {
    let mut set: WebhookSecrets = crate::store::decode(bytes)?;
    for r in &mut set.keys {
        let p = crypto::open(old, owner, &r.label, Purpose::WebhookSecret, &r.sealed)?;
        r.sealed = crypto::seal(new, owner, &r.label, Purpose::WebhookSecret, &p);
    }
    Ok(crate::store::encode(&set)?)
}

#[cfg(test)]
mod tests {
    use super::super::crypto::Key32;
    use super::super::VaultService;
    use crate::audit::Audit;
    use crate::store::Store;
    use std::sync::Arc;

    #[test]
    fn secrets_rotate_with_an_overlap_and_open_only_while_live() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let audit = Arc::new(Audit::open(store.clone()).unwrap());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let v = VaultService::with_root(store, audit, metrics, Key32::random()).unwrap();
        let s1 = v.new_webhook_secret("wh_a", 3600).unwrap();
        assert!(s1.starts_with("whsec_"));
        let k1 = v.webhook_signing_keys("wh_a").unwrap();
        assert_eq!(k1.len(), 1);
        assert_eq!(
            data_encoding::BASE64.encode(&k1[0]),
            s1.trim_start_matches("whsec_")
        );
        v.new_webhook_secret("wh_a", 3600).unwrap();
        let both = v.webhook_signing_keys("wh_a").unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(*both[1], *k1[0], "the old one signs too, listed last");
        // With no overlap the secret being replaced stops at once (the first one still has
        // its hour).
        v.new_webhook_secret("wh_a", 0).unwrap();
        let keys = v.webhook_signing_keys("wh_a").unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| **k != *both[0]));
        assert_eq!(*keys[1], *k1[0]);
        assert!(v.webhook_signing_keys("wh_b").unwrap().is_empty());
        v.remove_webhook_secrets("wh_a").unwrap();
        assert!(v.webhook_signing_keys("wh_a").unwrap().is_empty());
    }
}
