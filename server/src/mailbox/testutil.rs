//! Helpers shared by the mailbox unit tests.

use super::{DeliveryMeta, Folder, MailboxService, StoredMessage};
use crate::audit::Audit;
use crate::identity::{Actor, Principal, Scope, ScopeSet};
use crate::store::Store;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub fn service_in(dir: &Path, quota: u64) -> MailboxService {
    let store = Store::open(dir).unwrap();
    let audit = Arc::new(Audit::open(store.clone()).unwrap());
    MailboxService::new(store, audit, quota)
}

pub fn service(quota: u64) -> (tempfile::TempDir, MailboxService) {
    let dir = tempfile::tempdir().unwrap();
    let mb = service_in(dir.path(), quota);
    (dir, mb)
}

pub fn meta(received_at_ms: i64) -> DeliveryMeta {
    DeliveryMeta {
        received_at_ms,
        envelope_from: "sender@b.test".into(),
        envelope_to: vec!["a@agents.test".into()],
        ..Default::default()
    }
}

/// Strictly increasing receive times, so listing order is known.
static CLOCK: AtomicI64 = AtomicI64::new(1_700_000_000_000);

pub fn tick() -> i64 {
    CLOCK.fetch_add(1000, Ordering::SeqCst)
}

pub async fn deliver(
    mb: &MailboxService,
    agent: &str,
    folder: Folder,
    raw: &[u8],
) -> StoredMessage {
    mb.deliver(agent, folder, raw.to_vec(), meta(tick()))
        .await
        .unwrap()
}

pub fn simple(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: {from} <{from}@b.test>\r\nTo: a@agents.test\r\nSubject: {subject}\r\n\r\nBody of {subject}\r\n"
    )
    .into_bytes()
}

pub fn with_ids(own: &str, refs: &[&str], irt: &[&str]) -> Vec<u8> {
    let mut s = format!("From: x@b.test\r\nSubject: t\r\nMessage-ID: <{own}>\r\n");
    if !refs.is_empty() {
        let r: Vec<String> = refs.iter().map(|r| format!("<{r}>")).collect();
        s.push_str(&format!("References: {}\r\n", r.join(" ")));
    }
    if !irt.is_empty() {
        s.push_str(&format!("In-Reply-To: <{}>\r\n", irt[0]));
    }
    s.push_str("\r\nbody\r\n");
    s.into_bytes()
}

pub fn agent(id: &str, scopes: &[Scope]) -> Actor {
    Actor {
        principal: Principal::Agent {
            id: id.into(),
            address: format!("{id}@agents.test"),
            org_id: "org_x".into(),
        },
        key_id: "key_test".into(),
        scopes: scopes.iter().copied().collect::<ScopeSet>(),
        chain: vec!["human:h@x".into(), format!("agent:{id}")],
    }
}

pub fn reader(id: &str) -> Actor {
    agent(id, &[Scope::MailRead, Scope::MailManage])
}
