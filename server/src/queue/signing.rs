//! DKIM signing for the queue: every message is signed twice (ed25519-sha256 and
//! rsa-sha256, DESIGN §5) off the async workers, with each domain's signers cached.

use super::service::QueueService;
use super::QueueError;
use crate::mailauth::DkimSigning;
use crate::mailbox::Folder;
use crate::metrics::SendStage;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long signers are reused before the vault is asked again (so a rotation made by
/// another process is picked up without a restart).
const SIGNER_TTL: Duration = Duration::from_secs(60);

/// A domain's signers and when they were loaded.
pub(super) type CachedSigners = (Instant, Arc<Vec<DkimSigning>>);

impl QueueService {
    /// Prepends both DKIM signatures, and parses the message for its Sent copy in the same
    /// blocking task (one hop off the async workers, not two). Keys are made on first use
    /// for a domain that has none (an org domain added after start). The `compose` stage
    /// ends once long lines are fitted; `dkim` and `parse` are timed here too.
    pub(super) async fn sign(
        &self,
        domain: &str,
        raw: Vec<u8>,
        composing: Instant,
    ) -> Result<(Arc<[u8]>, crate::mailbox::Parsed), QueueError> {
        let signers = self.signers_for(domain)?;
        let metrics = self.metrics.clone();
        // RSA signing is a fraction of a millisecond of CPU: off the async workers.
        let (signed, parsed) = {
            let signers = signers.clone();
            // Composing so far; the blocking task adds fitting long lines (the wait for
            // that task to start is no stage's).
            let composed = composing.elapsed();
            tokio::task::spawn_blocking(move || {
                let stages = &metrics.send_stages;
                let fitting = Instant::now();
                // A line over 998 octets is re-encoded before it is signed (issue 15, 18).
                let raw = super::longlines::fit(raw).map_err(|_| {
                    QueueError::Invalid(
                        "the message has a header or MIME line longer than 998 octets".into(),
                    )
                })?;
                stages.observe(
                    SendStage::Compose,
                    (composed + fitting.elapsed()).as_secs_f64(),
                );
                let signing = Instant::now();
                let headers = crate::mailauth::dkim_sign(&raw, &signers)
                    .map_err(|e| QueueError::Signing(e.to_string()))?;
                let mut out = Vec::with_capacity(headers.len() + raw.len());
                out.extend_from_slice(headers.as_bytes());
                out.extend_from_slice(&raw);
                stages.done(SendStage::Dkim, signing);
                let parsing = Instant::now();
                let parsed = crate::mailbox::parse_for(Folder::Sent, &out);
                stages.done(SendStage::Parse, parsing);
                Ok::<_, QueueError>((Arc::<[u8]>::from(out), parsed))
            })
            .await
            .map_err(|e| QueueError::Signing(e.to_string()))??
        };
        for s in signers.iter() {
            self.metrics
                .dkim_signed
                .with_label_values(&[s.algorithm()])
                .inc();
        }
        Ok((signed, parsed))
    }

    /// Prepends the agent's `Agent-Signature:` (identity::mailsig) so DKIM, signed next,
    /// covers it. A message without Message-ID or Date (raw submission) goes without.
    pub(super) fn with_agent_signature(
        &self,
        agent: &crate::identity::Agent,
        raw: Vec<u8>,
    ) -> Result<Vec<u8>, QueueError> {
        match self.identity.agent_mail_signature(agent, &raw) {
            Ok(Some(h)) => {
                let mut out = Vec::with_capacity(h.len() + raw.len());
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(&raw);
                Ok(out)
            }
            Ok(None) => Ok(raw),
            Err(e) => Err(QueueError::Signing(e.to_string())),
        }
    }

    fn signers_for(&self, domain: &str) -> Result<Arc<Vec<DkimSigning>>, QueueError> {
        {
            let cache = self.signers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, s)) = cache.get(domain) {
                if at.elapsed() < SIGNER_TTL {
                    return Ok(s.clone());
                }
            }
        }
        let mut s = self.vault.dkim_signers(domain)?;
        if s.is_empty() {
            self.vault
                .ensure_dkim(domain, &self.settings.selector_prefix)?;
            s = self.vault.dkim_signers(domain)?;
        }
        if s.is_empty() {
            return Err(QueueError::Signing(format!("no DKIM key for {domain}")));
        }
        let s = Arc::new(s);
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_string(), (Instant::now(), s.clone()));
        Ok(s)
    }

    /// Forgets cached signers (after `legate dkim rotate` in this process).
    pub fn reload_signers(&self) {
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
