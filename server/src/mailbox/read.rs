//! Reading one message: the full record, its raw bytes, one attachment. All `mail:read`.

use super::{MailboxError, MailboxService, Message};
use crate::audit::Outcome;
use crate::extract::{self, AttachmentInfo};
use crate::identity::{Actor, Scope};

impl MailboxService {
    /// The full record (DESIGN §5): bodies, extracted text, codes, links, auth, headers.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Message, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailRead, "mail.get", id)?;
        let m = self.message(agent, id).await?;
        actor.audit(
            &self.audit,
            "mail.get",
            id,
            Outcome::Ok,
            serde_json::Value::Null,
        )?;
        Ok(m)
    }

    /// The message exactly as received (RFC 5322, with our trace headers), as a blocking
    /// reader with its length: a large message is streamed, never held whole per request.
    pub fn raw_reader(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(u64, crate::store::BlobReader), MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailRead, "mail.raw", id)?;
        let meta = self.own(agent, id)?;
        let reader = self
            .store
            .blob_reader_of(id.as_bytes())?
            .ok_or(MailboxError::NotFound("message"))?;
        actor.audit(
            &self.audit,
            "mail.raw",
            id,
            Outcome::Ok,
            serde_json::Value::Null,
        )?;
        Ok((meta.size, reader))
    }

    /// [`Self::raw_reader`], read whole (for callers that need the bytes at once).
    pub fn raw(&self, actor: &Actor, id: &str) -> Result<Vec<u8>, MailboxError> {
        use std::io::Read;
        let (size, mut reader) = self.raw_reader(actor, id)?;
        let mut raw = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        reader
            .read_to_end(&mut raw)
            .map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
        Ok(raw)
    }

    /// One attachment's metadata and decoded bytes, by the id listed in `attachments`.
    pub async fn attachment(
        &self,
        actor: &Actor,
        id: &str,
        attachment_id: u32,
    ) -> Result<(AttachmentInfo, Vec<u8>), MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailRead, "mail.attachment", id)?;
        let raw = self.raw_bytes(agent, id)?;
        // MIME decoding of a large part is CPU work.
        let found = tokio::task::spawn_blocking(move || extract::attachment(&raw, attachment_id))
            .await
            .ok()
            .flatten()
            .ok_or(MailboxError::NotFound("attachment"))?;
        actor.audit(
            &self.audit,
            "mail.attachment",
            id,
            Outcome::Ok,
            serde_json::json!({"attachment": attachment_id, "size": found.1.len()}),
        )?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Folder;
    use super::*;

    const WITH_ATTACHMENT: &[u8] = b"From: Bob <bob@b.test>\r\n\
To: a@agents.test\r\n\
Subject: report\r\n\
Message-ID: <rep@b.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
See attached.\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--b1--\r\n";

    #[tokio::test]
    async fn get_raw_and_attachment_are_the_agents_own() {
        let (_d, mb) = service(0);
        let m = deliver(&mb, "ag_a", Folder::Inbox, WITH_ATTACHMENT).await;
        let me = reader("ag_a");
        let full = mb.get(&me, &m.id).await.unwrap();
        assert_eq!(full.meta.subject, "report");
        assert_eq!(
            full.content.text.as_deref().map(str::trim),
            Some("See attached.")
        );
        assert_eq!(full.meta.attachments.len(), 1);
        assert_eq!(full.meta.attachments[0].filename.as_deref(), Some("r.pdf"));
        assert_eq!(mb.raw(&me, &m.id).unwrap(), WITH_ATTACHMENT);
        let aid = full.meta.attachments[0].id;
        let (info, bytes) = mb.attachment(&me, &m.id, aid).await.unwrap();
        assert_eq!(bytes, b"%PDF-1.4\n");
        assert_eq!(info.content_type, "application/pdf");
        assert!(matches!(
            mb.attachment(&me, &m.id, aid + 7).await,
            Err(MailboxError::NotFound("attachment"))
        ));
        // Another agent sees nothing, not even that it exists.
        let other = reader("ag_b");
        assert!(matches!(
            mb.get(&other, &m.id).await,
            Err(MailboxError::NotFound(_))
        ));
        assert!(matches!(
            mb.raw(&other, &m.id),
            Err(MailboxError::NotFound(_))
        ));
        assert!(matches!(
            mb.attachment(&other, &m.id, aid).await,
            Err(MailboxError::NotFound(_))
        ));
        assert!(matches!(
            mb.get(&me, "../etc").await,
            Err(MailboxError::NotFound(_))
        ));
        let blind = agent("ag_a", &[crate::identity::Scope::MailManage]);
        assert!(matches!(
            mb.get(&blind, &m.id).await,
            Err(MailboxError::Denied(_))
        ));
    }
}
