//! One certificate order (RFC 8555 §7.4): account, authorizations, challenge answers,
//! finalization with our own key, download of the chain.

use super::challenge::{publish_tls_alpn, Withdraw};
use super::{Acme, AcmeError};
use crate::config::AcmeChallenge;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use std::time::Duration;

/// How long the CA may take to validate and to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// The account in the vault, tied to the directory it was made on: a new directory gets a
/// new account rather than credentials it would not recognise.
async fn account(acme: &Acme) -> Result<Account, AcmeError> {
    let builder = || {
        if acme.cfg.ca_file.is_empty() {
            Account::builder()
        } else {
            Account::builder_with_root(&acme.cfg.ca_file)
        }
    };
    match acme.vault.acme_account(&acme.cfg.directory) {
        Ok(Some(credentials)) => return Ok(builder()?.from_credentials(credentials).await?),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "unreadable acme account: registering a new one"),
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
    acme.vault
        .set_acme_account(&acme.cfg.directory, &credentials)?;
    tracing::info!(id = account.id(), "acme account registered");
    Ok(account)
}

/// Runs one order for `acme.domains` to completion; returns the PEM chain, issued for the
/// certificate key the vault holds (`vault::acme`, kept across renewals).
pub(super) async fn issue(acme: &Acme) -> Result<String, AcmeError> {
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
            _ => acme.tokens.publish(&challenge.token, ka.as_str())?,
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
    let csr = acme.vault.acme_csr(&acme.domains)?;
    order.finalize_csr(&csr).await?;
    Ok(order.poll_certificate(&POLL).await?)
}
