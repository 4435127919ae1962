//! ACME keys in custody: the private key of the served TLS certificate and the ACME account
//! key, sealed under the root key in [`Tree::KeyCustody`] like the DKIM keys, so every node
//! sharing the store serves and renews with the same ones. Other modules get a certificate
//! ready to serve, a signed CSR, or the account credentials handed straight to the ACME
//! client; never the key text.

use super::crypto::{self, Purpose, Sealed};
use super::{VaultError, VaultService};
use crate::store::{keys, Tree};
use crate::util::now_unix;
use instant_acme::AccountCredentials;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The owner every ACME box is bound to (its AAD), and the record names under it.
const OWNER: &str = "acme";
const CERT_KEY: &str = "tls";
const ACCOUNT: &str = "account";

/// One sealed ACME secret: the certificate key (PKCS#8 PEM) or the account credentials
/// (JSON), with the directory the account was registered on.
#[derive(Clone, Serialize, Deserialize)]
struct AcmeSecret {
    /// The ACME directory URL (account only; empty for the certificate key).
    directory: String,
    created_at: i64,
    sealed: Sealed,
}

fn record_key(record: &str) -> Vec<u8> {
    keys::join(&[OWNER, record, "key"])
}

fn purpose(record: &str) -> Purpose {
    if record == ACCOUNT {
        Purpose::AcmeAccount
    } else {
        Purpose::AcmeCertKey
    }
}

/// The account file of older versions (`<storage.path>/acme/account.json`).
#[derive(Deserialize)]
struct AccountFile {
    directory: String,
    credentials: AccountCredentials,
}

impl VaultService {
    fn acme_secret(&self, record: &str) -> Result<Option<AcmeSecret>, VaultError> {
        Ok(self
            .store
            .get_record(Tree::KeyCustody, &record_key(record))?)
    }

    fn put_acme_secret(
        &self,
        root: &crypto::Key32,
        record: &str,
        directory: &str,
        plaintext: &[u8],
    ) -> Result<(), VaultError> {
        let rec = AcmeSecret {
            directory: directory.into(),
            created_at: now_unix(),
            sealed: crypto::seal(root, OWNER, record, purpose(record), plaintext),
        };
        Ok(self
            .store
            .put_record(Tree::KeyCustody, &record_key(record), &rec)?)
    }

    /// The certificate `chain_pem` with the sealed certificate key, ready to serve. Fails when
    /// no key is stored or it does not match the chain.
    pub fn acme_certificate(&self, chain_pem: &[u8]) -> Result<Arc<CertifiedKey>, VaultError> {
        let root = self.root();
        let rec = self.acme_secret(CERT_KEY)?.ok_or(VaultError::NotFound)?;
        let pem = crypto::open(&root, OWNER, CERT_KEY, Purpose::AcmeCertKey, &rec.sealed)?;
        crate::tls::load_pem(chain_pem, &pem, "the stored ACME certificate")
            .map_err(|e| VaultError::Invalid(e.to_string()))
    }

    /// A CSR for `names`, signed with the certificate key. A renewal keeps the key, so the
    /// SubjectPublicKeyInfo and the published DANE `3 1 1` TLSA record stay valid (RFC 7671
    /// §8.1); a key is made and sealed only when none is stored (the first order).
    pub fn acme_csr(&self, names: &[String]) -> Result<Vec<u8>, VaultError> {
        let root = self.root();
        let invalid = |e: rcgen::Error| VaultError::Crypto(format!("cannot make the CSR: {e}"));
        let key = match self.acme_secret(CERT_KEY)? {
            Some(rec) => {
                let pem = crypto::open(&root, OWNER, CERT_KEY, Purpose::AcmeCertKey, &rec.sealed)?;
                let pem = std::str::from_utf8(&pem).map_err(|_| VaultError::Decrypt)?;
                rcgen::KeyPair::from_pem(pem).map_err(invalid)?
            }
            None => {
                let key = rcgen::KeyPair::generate().map_err(invalid)?;
                let pem = Zeroizing::new(key.serialize_pem());
                self.put_acme_secret(&root, CERT_KEY, "", pem.as_bytes())?;
                key
            }
        };
        let params = rcgen::CertificateParams::new(names.to_vec()).map_err(invalid)?;
        Ok(params
            .serialize_request(&key)
            .map_err(invalid)?
            .der()
            .to_vec())
    }

    /// The account registered on `directory`; None when there is none yet, or the stored one
    /// belongs to another directory (a new directory gets a new account).
    pub fn acme_account(&self, directory: &str) -> Result<Option<AccountCredentials>, VaultError> {
        let root = self.root();
        let Some(rec) = self.acme_secret(ACCOUNT)? else {
            return Ok(None);
        };
        if rec.directory != directory {
            return Ok(None);
        }
        let json = crypto::open(&root, OWNER, ACCOUNT, Purpose::AcmeAccount, &rec.sealed)?;
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| VaultError::Invalid(format!("stored ACME account: {e}")))
    }

    /// Seals the account registered on `directory`, replacing any other.
    pub fn set_acme_account(
        &self,
        directory: &str,
        credentials: &AccountCredentials,
    ) -> Result<(), VaultError> {
        let root = self.root();
        let json = Zeroizing::new(
            serde_json::to_vec(credentials).map_err(|e| VaultError::Invalid(e.to_string()))?,
        );
        self.put_acme_secret(&root, ACCOUNT, directory, &json)
    }

    /// Takes over the key and account files of a version that kept them in the data
    /// directory (`key.pem`, `account.json`). A secret already in the store wins (another
    /// node migrated first); an unreadable file is refused, so the caller keeps it.
    pub fn import_acme_files(
        &self,
        key_pem: Option<&[u8]>,
        account_json: Option<&[u8]>,
    ) -> Result<(), VaultError> {
        let root = self.root();
        if let Some(pem) = key_pem {
            let text = std::str::from_utf8(pem)
                .map_err(|_| VaultError::Invalid("key.pem is not PEM".into()))?;
            rcgen::KeyPair::from_pem(text)
                .map_err(|e| VaultError::Invalid(format!("key.pem: {e}")))?;
            if self.acme_secret(CERT_KEY)?.is_none() {
                self.put_acme_secret(&root, CERT_KEY, "", pem)?;
            }
        }
        if let Some(json) = account_json {
            let file: AccountFile = serde_json::from_slice(json)
                .map_err(|e| VaultError::Invalid(format!("account.json: {e}")))?;
            if self.acme_secret(ACCOUNT)?.is_none() {
                let creds = Zeroizing::new(
                    serde_json::to_vec(&file.credentials)
                        .map_err(|e| VaultError::Invalid(e.to_string()))?,
                );
                self.put_acme_secret(&root, ACCOUNT, &file.directory, &creds)?;
            }
        }
        Ok(())
    }
}

/// Re-seals one ACME secret under a new root key (`rotate`); `record` is the key's middle
/// part. None for a record this version does not know.
pub(super) fn reseal(
    record: &str,
    bytes: &[u8],
    old: &crypto::Key32,
    new: &crypto::Key32,
) -> Result<Option<Vec<u8>>, VaultError> {
    if record != CERT_KEY && record != ACCOUNT {
        return Ok(None);
    }
    let mut rec: AcmeSecret = crate::store::decode(bytes)?;
    let p = crypto::open(old, OWNER, record, purpose(record), &rec.sealed)?;
    rec.sealed = crypto::seal(new, OWNER, record, purpose(record), &p);
    Ok(Some(crate::store::encode(&rec)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> (tempfile::TempDir, VaultService, crypto::Key32) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let audit = Arc::new(crate::audit::Audit::open(store.clone()).unwrap());
        let root = crypto::Key32::random();
        let vault = VaultService::with_root(
            store,
            audit,
            Arc::new(crate::metrics::Metrics::new()),
            root.clone(),
        )
        .unwrap();
        (dir, vault, root)
    }

    /// The P-256 public key a CSR carries (rcgen parses CSRs only with x509-parser): the
    /// point after the fixed SubjectPublicKeyInfo header.
    struct CsrKey(Vec<u8>);

    impl rcgen::PublicKeyData for CsrKey {
        fn der_bytes(&self) -> &[u8] {
            &self.0
        }
        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_ECDSA_P256_SHA256
        }
    }

    fn csr_key(csr: &[u8]) -> CsrKey {
        let head = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        let at = csr.windows(head.len()).position(|w| w == head).unwrap() + head.len();
        CsrKey(csr[at..at + 65].to_vec())
    }

    /// A certificate for the key of `csr`, as a CA would issue it.
    fn chain_for_csr(csr: &[u8]) -> String {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = rcgen::CertificateParams::new(vec!["mx.a.test".to_string()]).unwrap();
        leaf.signed_by(&csr_key(csr), &issuer).unwrap().pem()
    }

    #[test]
    fn sealed_key_round_trip_keeps_the_key_and_never_stores_it_in_the_clear() {
        let (_dir, vault, root) = vault();
        let names = vec!["mx.a.test".to_string()];
        assert!(matches!(
            vault.acme_certificate(b"x"),
            Err(VaultError::NotFound)
        ));
        let csr = vault.acme_csr(&names).unwrap();
        let chain = chain_for_csr(&csr);
        let ck = vault.acme_certificate(chain.as_bytes()).unwrap();
        assert_eq!(ck.cert.len(), 1);
        // A renewal signs with the same key: the new chain loads with the stored key.
        let again = chain_for_csr(&vault.acme_csr(&names).unwrap());
        assert!(vault.acme_certificate(again.as_bytes()).is_ok());
        // Stored sealed: no PEM in the record, and only the root key opens it.
        let raw = vault
            .store
            .get(Tree::KeyCustody, &record_key(CERT_KEY))
            .unwrap()
            .unwrap();
        assert!(!raw.windows(11).any(|w| w == b"PRIVATE KEY"));
        let bytes = reseal(CERT_KEY, &raw, &root, &crypto::Key32::random()).unwrap();
        assert!(bytes.is_some());
        assert!(reseal(CERT_KEY, &raw, &crypto::Key32::random(), &root).is_err());
        // Another certificate's chain does not load with this key.
        let other = rcgen::generate_simple_self_signed(names).unwrap();
        assert!(vault.acme_certificate(other.cert.pem().as_bytes()).is_err());
    }

    #[test]
    fn account_is_tied_to_its_directory_and_files_are_imported_once() {
        let (_dir, vault, _) = vault();
        assert!(vault.acme_account("https://ca.test/dir").unwrap().is_none());
        let key = rcgen::KeyPair::generate().unwrap();
        // instant-acme's own credential format (what `account.json` held).
        let creds = serde_json::json!({
            "id": "https://ca.test/acct/1",
            "key_pkcs8": data_encoding::BASE64URL_NOPAD.encode(&key.serialize_der()),
            "directory": "https://ca.test/dir",
        });
        let file = serde_json::json!({"directory": "https://ca.test/dir", "credentials": creds});
        let file = serde_json::to_vec(&file).unwrap();
        assert!(vault.import_acme_files(Some(b"junk"), None).is_err());
        vault
            .import_acme_files(Some(key.serialize_pem().as_bytes()), Some(&file))
            .unwrap();
        let got = vault.acme_account("https://ca.test/dir").unwrap().unwrap();
        assert_eq!(serde_json::to_value(&got).unwrap()["id"], creds["id"]);
        assert!(vault
            .acme_account("https://other.test/dir")
            .unwrap()
            .is_none());
        // The imported key is the certificate key.
        let csr = vault.acme_csr(&["mx.a.test".into()]).unwrap();
        assert_eq!(csr_key(&csr).0, key.public_key_raw());
        // A second import does not replace what the store holds.
        let other = rcgen::KeyPair::generate().unwrap();
        vault
            .import_acme_files(Some(other.serialize_pem().as_bytes()), None)
            .unwrap();
        let csr2 = vault.acme_csr(&["mx.a.test".into()]).unwrap();
        assert_eq!(csr_key(&csr2).0, key.public_key_raw());
    }
}
