//! One stored credential: clear metadata plus its sealed parts, and the only ways to open it.
//!
//! Layout: a fresh data key per version, wrapped by the agent key; the secret fields sealed
//! under the data key as `CredentialPayload`; the TOTP parameters, if any, sealed separately
//! as `TotpSeed`. The storage layer keeps this struct as it is (it is serde) and never needs
//! to look inside.

use serde::{Deserialize, Serialize};

use super::credential::{CredentialMeta, CredentialView, ValidatedCredential};
use super::envelope::{
    open_payload, seal_payload, unwrap_data_key, wrap_data_key, Purpose, Sealed,
};
use super::error::VaultError;
use super::keys::{AgentKey, DataKey};
use super::payload::SecretPayload;
use super::totp::{TotpCode, TotpParams};
use crate::util::new_id;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCredential {
    pub meta: CredentialMeta,
    /// This version's data key, wrapped by the agent key.
    pub wrapped_dek: Sealed,
    pub payload: Sealed,
    pub totp: Option<Sealed>,
}

impl ValidatedCredential {
    /// Seals a new credential (`previous = None`) or a new version of an existing one (pass
    /// its metadata: the id, `created_at` and `last_used_at` carry over, `version` goes up).
    pub fn seal(
        self,
        kek: &AgentKey,
        agent_id: &str,
        previous: Option<&CredentialMeta>,
        now: i64,
    ) -> Result<SealedCredential, VaultError> {
        let meta = CredentialMeta {
            id: previous.map_or_else(|| new_id("cr"), |p| p.id.clone()),
            name: self.name,
            kind: self.kind,
            username: self.username,
            url: self.url,
            has_totp: self.totp.is_some(),
            version: previous.map_or(1, |p| p.version.saturating_add(1)),
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
            last_used_at: previous.and_then(|p| p.last_used_at),
        };
        let dek = DataKey::generate();
        let cred_id = meta.id.as_str();
        let payload = seal_payload(
            &dek,
            agent_id,
            cred_id,
            Purpose::CredentialPayload,
            &self.payload.encode(),
        )?;
        let totp = match &self.totp {
            Some(params) => Some(seal_payload(
                &dek,
                agent_id,
                cred_id,
                Purpose::TotpSeed,
                &params.encode(),
            )?),
            None => None,
        };
        let wrapped_dek = wrap_data_key(kek, agent_id, cred_id, &dek)?;
        Ok(SealedCredential {
            meta,
            wrapped_dek,
            payload,
            totp,
        })
    }
}

impl SealedCredential {
    /// Decrypts the secret fields for `GET /v1/vault/{name}`. Never touches the TOTP seed.
    pub fn open_view(&self, kek: &AgentKey, agent_id: &str) -> Result<CredentialView, VaultError> {
        let dek = self.data_key(kek, agent_id)?;
        let plain = open_payload(
            &dek,
            agent_id,
            &self.meta.id,
            Purpose::CredentialPayload,
            &self.payload,
        )?;
        Ok(CredentialView::new(
            self.meta.clone(),
            SecretPayload::decode(&plain)?,
        ))
    }

    /// Decrypts the TOTP parameters; `Err(NoTotp)` if the credential has none.
    pub fn open_totp(&self, kek: &AgentKey, agent_id: &str) -> Result<TotpParams, VaultError> {
        let sealed = self.totp.as_ref().ok_or(VaultError::NoTotp)?;
        let dek = self.data_key(kek, agent_id)?;
        let plain = open_payload(&dek, agent_id, &self.meta.id, Purpose::TotpSeed, sealed)?;
        TotpParams::decode(&plain)
    }

    /// `POST /v1/vault/{name}/totp`: the code at `now` (unix seconds).
    pub fn totp_code(
        &self,
        kek: &AgentKey,
        agent_id: &str,
        now: u64,
    ) -> Result<TotpCode, VaultError> {
        Ok(self.open_totp(kek, agent_id)?.generate(now))
    }

    fn data_key(&self, kek: &AgentKey, agent_id: &str) -> Result<DataKey, VaultError> {
        unwrap_data_key(kek, agent_id, &self.meta.id, &self.wrapped_dek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::credential::CredentialInput;

    const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn validated(json: &str) -> ValidatedCredential {
        serde_json::from_str::<CredentialInput>(json)
            .unwrap()
            .validate("github")
            .unwrap()
    }

    fn login_with_totp() -> ValidatedCredential {
        validated(&format!(
            r#"{{"kind": "login", "username": "bot", "password": "hunter2",
                "totp": {{"secret": "{SEED}", "digits": 8}}}}"#
        ))
    }

    #[test]
    fn seal_open_and_totp_round_trip() {
        let kek = AgentKey::generate();
        let rec = login_with_totp().seal(&kek, "ag_1", None, 100).unwrap();
        assert!(rec.meta.id.starts_with("cr_"));
        assert_eq!(
            (rec.meta.version, rec.meta.created_at, rec.meta.updated_at),
            (1, 100, 100)
        );
        assert!(rec.meta.has_totp);

        let view = rec.open_view(&kek, "ag_1").unwrap();
        assert_eq!(view.password.as_ref().map(|p| p.expose()), Some("hunter2"));
        assert_eq!(rec.totp_code(&kek, "ag_1", 59).unwrap().code, "94287082");

        // Stored form survives serialization and contains no plaintext.
        let stored = serde_json::to_string(&rec).unwrap();
        assert!(!stored.contains("hunter2") && !stored.contains(SEED));
        let back: SealedCredential = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.totp_code(&kek, "ag_1", 59).unwrap().code, "94287082");
    }

    #[test]
    fn new_version_keeps_identity_and_changes_key() {
        let kek = AgentKey::generate();
        let mut v1 = login_with_totp().seal(&kek, "ag_1", None, 100).unwrap();
        v1.meta.last_used_at = Some(150);
        let v2 = validated(r#"{"kind": "login", "password": "new"}"#)
            .seal(&kek, "ag_1", Some(&v1.meta), 200)
            .unwrap();
        assert_eq!(v2.meta.id, v1.meta.id);
        assert_eq!(
            (v2.meta.version, v2.meta.created_at, v2.meta.updated_at),
            (2, 100, 200)
        );
        assert_eq!(v2.meta.last_used_at, Some(150));
        assert!(!v2.meta.has_totp);
        assert_ne!(v2.wrapped_dek, v1.wrapped_dek);
        assert!(matches!(
            v2.open_totp(&kek, "ag_1"),
            Err(VaultError::NoTotp)
        ));
    }

    #[test]
    fn records_do_not_open_for_another_agent_or_record() {
        let kek = AgentKey::generate();
        let a = login_with_totp().seal(&kek, "ag_1", None, 1).unwrap();
        let b = login_with_totp().seal(&kek, "ag_1", None, 1).unwrap();
        assert!(a.open_view(&kek, "ag_2").is_err());
        assert!(a.open_view(&AgentKey::generate(), "ag_1").is_err());
        // Splice b's payload into a: a's DEK cannot open it.
        let mut spliced = a.clone();
        spliced.payload = b.payload.clone();
        assert!(spliced.open_view(&kek, "ag_1").is_err());
        // Swap the TOTP blob into the payload slot: the purpose no longer matches.
        let mut swapped = a.clone();
        swapped.payload = a.totp.clone().unwrap();
        assert!(matches!(
            swapped.open_view(&kek, "ag_1"),
            Err(VaultError::Decrypt {
                purpose: Purpose::CredentialPayload
            })
        ));
    }
}
