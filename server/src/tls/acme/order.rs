//! One certificate order (RFC 8555 §7.4): account, authorizations, challenge answers,
//! finalization with our own key, download of the chain.

use super::challenge::{publish_tls_alpn, Withdraw};
use super::{Acme, AcmeError};
use crate::config::AcmeChallenge;
use crate::tls::write_private;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long the CA may take to validate and to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// A new certificate chain and the key it was issued for.
pub(super) struct Issued {
    pub chain_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// The stored account, tied to the directory it was made on: a new directory gets a new
/// account rather than credentials it would not recognise.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

async fn account(acme: &Acme) -> Result<Account, AcmeError> {
    let builder = || {
        if acme.cfg.ca_file.is_empty() {
            Account::builder()
        } else {
            Account::builder_with_root(&acme.cfg.ca_file)
        }
    };
    let path = acme.account_path();
    if let Ok(text) = std::fs::read(&path) {
        let text = Zeroizing::new(text);
        match serde_json::from_slice::<StoredAccount>(&text) {
            Ok(s) if s.directory == acme.cfg.directory => {
                return Ok(builder()?.from_credentials(s.credentials).await?);
            }
            Ok(_) => tracing::info!("acme directory changed: registering a new account"),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable acme account file: registering a new one")
            }
        }
    }
    let contact = format!("mailto:{}", acme.cfg.email);
    let contacts: Vec<&str> = if acme.cfg.email.is_empty() {
        Vec::new()
    } else {
        vec![contact.as_str()]
    };
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.cfg.directory.clone(),
            None,
        )
        .await?;
    let stored = StoredAccount {
        directory: acme.cfg.directory.clone(),
        credentials,
    };
    let json =
        Zeroizing::new(serde_json::to_vec(&stored).map_err(|e| AcmeError::Order(e.to_string()))?);
    super::ensure_private_dir(&acme.dir)?;
    write_private(&path, &json)?;
    tracing::info!(id = account.id(), "acme account registered");
    Ok(account)
}

/// Runs one order for `acme.domains` to completion.
pub(super) async fn issue(acme: &Acme) -> Result<Issued, AcmeError> {
    let account = account(acme).await?;
    let ids: Vec<Identifier> = acme
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    let kind = match acme.cfg.challenge {
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    // Held until the order is decided: the CA may validate at any time after set_ready.
    let mut answers: Vec<Withdraw> = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Order(format!(
                    "authorization for {} is {other:?}",
                    authz.identifier()
                )))
            }
        }
        let name = authz.identifier().to_string();
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| AcmeError::Order(format!("the CA offers no {kind:?} for {name}")))?;
        let ka = challenge.key_authorization();
        answers.push(match kind {
            ChallengeType::TlsAlpn01 => {
                publish_tls_alpn(&acme.resolver, &name, ka.digest().as_ref())?
            }
            _ => acme.tokens.publish(&challenge.token, ka.as_str()),
        });
        challenge.set_ready().await?;
    }
    let status = order.poll_ready(&POLL).await?;
    if status != OrderStatus::Ready {
        let detail = order
            .state()
            .error
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        return Err(AcmeError::Order(format!("order is {status:?} {detail}")));
    }
    drop(answers);
    let invalid = |e: rcgen::Error| AcmeError::Order(format!("cannot make the CSR: {e}"));
    let key = certificate_key(&acme.dir).map_err(invalid)?;
    let params = rcgen::CertificateParams::new(acme.domains.clone()).map_err(invalid)?;
    let csr = params.serialize_request(&key).map_err(invalid)?;
    order.finalize_csr(csr.der()).await?;
    let chain_pem = order.poll_certificate(&POLL).await?;
    Ok(Issued {
        chain_pem,
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// The key of the next certificate: the current one's when there is one, so a renewal keeps
/// the SubjectPublicKeyInfo and the published DANE `3 1 1` TLSA record stays valid (RFC 7671
/// §8.1 "keep the key"); a new key only for the first order or an unreadable file. Rotating
/// it is a manual step: publish the next key's TLSA beside the current one, wait a TTL,
/// then delete `key.pem` and let the next renewal make a new key.
fn certificate_key(dir: &std::path::Path) -> Result<rcgen::KeyPair, rcgen::Error> {
    let current = std::fs::read_to_string(dir.join("key.pem"))
        .ok()
        .map(Zeroizing::new)
        .and_then(|pem| rcgen::KeyPair::from_pem(&pem).ok());
    match current {
        Some(key) => Ok(key),
        None => rcgen::KeyPair::generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_keep_the_certificate_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = certificate_key(dir.path()).unwrap();
        write_private(
            &dir.path().join("key.pem"),
            first.serialize_pem().as_bytes(),
        )
        .unwrap();
        let again = certificate_key(dir.path()).unwrap();
        assert_eq!(again.public_key_pem(), first.public_key_pem());
        std::fs::remove_file(dir.path().join("key.pem")).unwrap();
        let fresh = certificate_key(dir.path()).unwrap();
        assert_ne!(fresh.public_key_pem(), first.public_key_pem());
    }
}
