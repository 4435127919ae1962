//! `oauth` credentials (issue 25 §1): a connected account's client secret, PKCE verifier
//! and tokens, sealed like every credential (data key wrapped by the agent key), so revoking
//! the agent crypto-shreds them with the rest of its vault.
//!
//! Only `connections` calls these operations, after its own checks (an admin or an owner
//! starting or revoking a grant; the agent holding `vault:read` asking for an access token);
//! the vault routes list such a credential but never show, replace or delete its secrets.

use super::credential::{CredentialKind, CredentialMeta, SecretPayload};
use super::crypto::{self, Key32, Purpose};
use super::service::{accessed, cred_key, CredentialRecord};
use super::{VaultError, VaultService};
use crate::store::{Tree, TxFail};
use crate::util::{new_id, now_unix};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The sealed secrets of a connection.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct OauthSecrets {
    pub client_secret: Option<Zeroizing<String>>,
    /// The PKCE verifier of a grant under way; cleared once the code is exchanged.
    pub code_verifier: Option<Zeroizing<String>>,
    pub access_token: Option<Zeroizing<String>>,
    pub refresh_token: Option<Zeroizing<String>>,
    pub token_type: Option<String>,
    /// Unix time the access token expires (none: the provider did not say).
    pub access_expires_at: Option<i64>,
}

impl std::fmt::Debug for OauthSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OauthSecrets([redacted])")
    }
}

impl VaultService {
    /// Stores (`create`: a new credential, refused if the name is taken) or replaces (an
    /// existing `oauth` credential) the secrets of a connection. `url` is the provider's
    /// issuer or token endpoint, shown in the vault listing.
    pub fn oauth_put(
        &self,
        agent: &str,
        name: &str,
        url: Option<String>,
        secrets: &OauthSecrets,
        create: bool,
    ) -> Result<CredentialMeta, VaultError> {
        super::credential::validate_name(name).map_err(VaultError::Invalid)?;
        self.ensure_live(agent)?;
        let payload = SecretPayload {
            oauth: Some(secrets.clone()),
            ..Default::default()
        };
        let plaintext =
            Zeroizing::new(serde_json::to_vec(&payload).map_err(|_| VaultError::Decrypt)?);
        let kek = self.agent_key(agent, true)?;
        let k = cred_key(agent, name);
        let existing: Option<CredentialRecord> =
            self.store.get_record(Tree::VaultCredentials, &k)?;
        let now = now_unix();
        let (id, version, created_at) = match &existing {
            Some(r) if !create && r.meta.kind == CredentialKind::Oauth => {
                (r.meta.id.clone(), r.meta.version + 1, r.meta.created_at)
            }
            Some(_) => {
                return Err(VaultError::Invalid(format!(
                    "the agent already has a credential named {name}"
                )))
            }
            None if create => (new_id("cr"), 1, now),
            None => return Err(VaultError::NotFound),
        };
        let dek = Key32::random();
        let rec = CredentialRecord {
            meta: CredentialMeta {
                id: id.clone(),
                name: name.into(),
                kind: CredentialKind::Oauth,
                username: None,
                // A replacement keeps the provider URL the credential was made with.
                url: url.or_else(|| existing.as_ref().and_then(|r| r.meta.url.clone())),
                has_totp: false,
                version,
                created_at,
                updated_at: now,
                last_used_at: existing.as_ref().and_then(|r| r.meta.last_used_at),
            },
            wrapped_dek: crypto::wrap(&kek, agent, &id, Purpose::DataKeyWrap, &dek),
            payload: crypto::seal(&dek, agent, &id, Purpose::CredentialPayload, &plaintext),
        };
        self.store.transact::<_, VaultError>(
            &[
                Tree::VaultCredentials,
                Tree::VaultAgentKeys,
                Tree::Events,
                Tree::Meta,
            ],
            |tx| {
                if tx.get(Tree::VaultAgentKeys, agent.as_bytes())?.is_none() {
                    return Err(TxFail::Abort(VaultError::Shredded));
                }
                let cur = tx.get_record::<CredentialRecord>(Tree::VaultCredentials, &k)?;
                match cur {
                    Some(c) if c.meta.version >= version || c.meta.id != id => {
                        return Err(TxFail::Abort(VaultError::Invalid(
                            "concurrent update; retry".into(),
                        )))
                    }
                    None if !create => return Err(TxFail::Abort(VaultError::NotFound)),
                    _ => {}
                }
                tx.put_record(Tree::VaultCredentials, &k, &rec)?;
                tx.emit(&accessed(agent, name, "store"))?;
                Ok(())
            },
        )?;
        self.records.forget(&k);
        Ok(rec.meta)
    }

    /// The secrets of an `oauth` credential.
    pub fn oauth_open(&self, agent: &str, name: &str) -> Result<OauthSecrets, VaultError> {
        self.ensure_live(agent)?;
        let rec: CredentialRecord = self
            .store
            .get_record(Tree::VaultCredentials, &cred_key(agent, name))?
            .ok_or(VaultError::NotFound)?;
        if rec.meta.kind != CredentialKind::Oauth {
            return Err(VaultError::Invalid(format!(
                "the credential {name} is no connected account"
            )));
        }
        self.decrypt(agent, &rec)?.oauth.ok_or(VaultError::Decrypt)
    }

    /// Deletes an `oauth` credential: its data key and sealed tokens are gone for good.
    pub fn oauth_remove(&self, agent: &str, name: &str) -> Result<(), VaultError> {
        let k = cred_key(agent, name);
        self.store.transact::<_, VaultError>(
            &[Tree::VaultCredentials, Tree::Events, Tree::Meta],
            |tx| {
                if let Some(c) = tx.get_record::<CredentialRecord>(Tree::VaultCredentials, &k)? {
                    if c.meta.kind == CredentialKind::Oauth {
                        tx.remove(Tree::VaultCredentials, &k)?;
                        tx.emit(&accessed(agent, name, "delete"))?;
                    }
                }
                Ok(())
            },
        )?;
        self.records.forget(&k);
        Ok(())
    }
}
