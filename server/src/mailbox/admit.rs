//! Admission: what a message must pass before it is parsed or stored — the agent id, its
//! flags and labels, the agent's quota, and (where mail enters the server) the disk reserve.
//! Checked early here; the delivery's transaction checks the quota again, which is what
//! holds the line.

use super::flags::{normalize_flag, normalize_label, normalize_set};
use super::model::DeliveryMeta;
use super::{index, MailboxError, MailboxService};

/// A delivery that passed [`MailboxService::admit`]: its metadata, flags and labels
/// normalised.
pub(super) struct Admitted {
    pub meta: DeliveryMeta,
    pub flags: Vec<String>,
    pub labels: Vec<String>,
    /// The recipient's org, when the copy is judged against the sender lists (mail from
    /// the outside); None for our own copies, DSNs and IMAP APPEND.
    pub senders: Option<String>,
}

impl MailboxService {
    /// Refuses early (SMTP RCPT or DATA time) when `incoming` bytes would not fit. `deliver`
    /// checks again inside its transaction, which is what actually holds the line.
    pub fn check_quota(&self, agent: &str, incoming: u64) -> Result<(), MailboxError> {
        if self.quota_bytes == 0 {
            return Ok(());
        }
        let used = self.usage(agent)?.map_or(0, |s| s.used_bytes);
        if used.saturating_add(incoming) > self.quota_bytes {
            return Err(MailboxError::QuotaExceeded {
                used,
                quota: self.quota_bytes,
                incoming,
            });
        }
        Ok(())
    }

    /// Refuses new mail of `incoming` bytes while the data filesystem is below its reserve
    /// (`storage.min_free_mb`, see `store::space`). Called where mail ENTERS the server:
    /// SMTP (MAIL and end of data) and the queue's `enqueue` (REST, MCP, submission). Not
    /// by [`deliver`](Self::deliver) itself: the queue's local deliveries and DSNs carry
    /// mail already accepted, which the reserve exists to make room for.
    pub fn check_space(&self, incoming: u64) -> Result<(), MailboxError> {
        if self.store.space().check(incoming).accepting {
            Ok(())
        } else {
            Err(MailboxError::InsufficientStorage)
        }
    }

    /// The checks before anything is parsed or stored: agent id, flags and labels, quota
    /// (checked again inside the transaction, which is what holds the line).
    pub(super) fn admit(
        &self,
        agent: &str,
        meta: DeliveryMeta,
        size: u64,
    ) -> Result<Admitted, MailboxError> {
        if !index::valid_agent_id(agent) {
            return Err(MailboxError::Invalid("invalid agent id".into()));
        }
        let flags = normalize_set(&meta.flags, normalize_flag, "flags")?;
        let labels = normalize_set(&meta.labels, normalize_label, "labels")?;
        self.check_quota(agent, size)?;
        Ok(Admitted {
            meta,
            flags,
            labels,
            senders: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Folder;
    use super::*;

    #[tokio::test]
    async fn below_the_disk_reserve_new_mail_is_refused_but_accepted_mail_still_lands() {
        let (_d, mb) = service(0);
        mb.check_space(1 << 20).unwrap();
        mb.store.space().set_reserve_bytes(u64::MAX);
        let e = mb.check_space(0).unwrap_err();
        assert!(matches!(e, MailboxError::InsufficientStorage), "{e:?}");
        assert!(e.is_temporary(), "SMTP 4xx, not 5xx");
        // `deliver` itself is not guarded: queued local deliveries and DSNs (mail already
        // accepted) use the reserve.
        deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "queued")).await;
        mb.store.space().set_reserve_bytes(0);
        mb.check_space(1 << 20).unwrap();
    }

    #[tokio::test]
    async fn quota_refuses_what_does_not_fit_and_stores_nothing() {
        let raw = simple("x", "fits");
        let (_d, mb) = service(raw.len() as u64 * 2);
        deliver(&mb, "ag_a", Folder::Inbox, &raw).await;
        mb.check_quota("ag_a", raw.len() as u64).unwrap();
        deliver(&mb, "ag_a", Folder::Inbox, &raw).await;
        assert!(matches!(
            mb.check_quota("ag_a", 1),
            Err(MailboxError::QuotaExceeded { .. })
        ));
        let r = mb
            .deliver("ag_a", Folder::Inbox, raw.clone(), meta(3))
            .await;
        match r {
            Err(e @ MailboxError::QuotaExceeded { .. }) => assert!(!e.is_temporary()),
            other => panic!("expected quota error, got {other:?}"),
        }
        assert_eq!(mb.usage("ag_a").unwrap().unwrap().messages, 2);
        // Other agents have their own quota.
        deliver(&mb, "ag_b", Folder::Inbox, &raw).await;
    }
}
