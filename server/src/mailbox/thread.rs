//! Thread ids from Message-ID, References and In-Reply-To.
//!
//! A per-agent index maps every Message-ID seen (own ids and referenced ones) to a thread id.
//! A new message joins the thread of the first id it mentions that the index knows, so a
//! reply that carries only In-Reply-To (no References) still joins its parent's thread. When
//! none is known, the id is derived from the thread root (first References entry, else
//! In-Reply-To, else its own Message-ID) by hashing, so two replies to a message we never saw
//! still agree. Index entries outlive purged messages on purpose: late replies keep threading.

use super::index;
use super::MailboxError;
use crate::extract::Extracted;
use crate::store::{Tree, Tx, TxFail};
use sha2::{Digest, Sha256};

/// Ids indexed per message at most (References can be very long in old threads).
const MAX_IDS: usize = 32;

/// The Message-IDs one message contributes, lookup order first.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ThreadRefs {
    /// References (root first), then In-Reply-To, then the message's own id.
    pub ids: Vec<String>,
    /// The root a fresh thread id is derived from.
    pub root: Option<String>,
}

/// Ids may be peer-supplied garbage: keep only what can be a key.
fn clean(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty() && id.len() <= 250 && !id.bytes().any(|b| b == 0 || b.is_ascii_control()))
        .then(|| id.to_string())
}

impl ThreadRefs {
    pub(super) fn of(ex: &Extracted) -> ThreadRefs {
        let refs: Vec<String> = ex.references.iter().filter_map(|r| clean(r)).collect();
        let irt: Vec<String> = ex.in_reply_to.iter().filter_map(|r| clean(r)).collect();
        let own = ex.message_id.as_deref().and_then(clean);
        let root = refs.first().or(irt.first()).or(own.as_ref()).cloned();
        let mut ids: Vec<String> = Vec::new();
        // Keep the root and the nearest ancestors when References is too long.
        let keep_tail = MAX_IDS.saturating_sub(4);
        let tail_start = refs.len().saturating_sub(keep_tail);
        for id in refs
            .iter()
            .take(1)
            .chain(refs.iter().skip(tail_start.max(1)))
        {
            ids.push(id.clone());
        }
        ids.extend(irt);
        ids.extend(own);
        let mut seen = std::collections::HashSet::new();
        ids.retain(|i| seen.insert(i.clone()));
        ids.truncate(MAX_IDS);
        ThreadRefs { ids, root }
    }
}

/// A thread id from a root Message-ID, stable for an agent.
fn derived(agent: &str, root: &str) -> String {
    let mut h = Sha256::new();
    h.update(agent.as_bytes());
    h.update([0u8]);
    h.update(root.as_bytes());
    let d = h.finalize();
    format!(
        "th_{}",
        data_encoding::BASE32_NOPAD
            .encode(&d[..10])
            .to_ascii_lowercase()
    )
}

/// Finds or makes the thread id inside the delivery transaction and indexes every id the
/// message mentions. `fresh` is used when the message has no Message-ID at all.
pub(super) fn resolve(
    tx: &Tx<'_>,
    agent: &str,
    refs: &ThreadRefs,
    fresh: &str,
) -> Result<String, TxFail<MailboxError>> {
    // Every id at once: on PostgreSQL one round trip, not two per id.
    let keys: Vec<Vec<u8>> = refs.ids.iter().map(|id| index::thread(agent, id)).collect();
    let asked: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let known = tx.get_many(Tree::MailThreads, &asked)?;
    let found = known
        .iter()
        .flatten()
        .next()
        .map(|t| String::from_utf8_lossy(t).into_owned());
    let thread = found.unwrap_or_else(|| match &refs.root {
        Some(r) => derived(agent, r),
        None => fresh.to_string(),
    });
    for (k, v) in keys.iter().zip(&known) {
        if v.is_none() {
            tx.put(Tree::MailThreads, k, thread.as_bytes())?;
        }
    }
    Ok(thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(own: Option<&str>, irt: &[&str], refs: &[&str]) -> Extracted {
        Extracted {
            subject: String::new(),
            from: None,
            to: vec![],
            cc: vec![],
            reply_to: vec![],
            date: None,
            message_id: own.map(str::to_string),
            in_reply_to: irt.iter().map(|s| s.to_string()).collect(),
            references: refs.iter().map(|s| s.to_string()).collect(),
            text: None,
            html: None,
            extracted_text: String::new(),
            preview: String::new(),
            codes: vec![],
            links: vec![],
            attachments: vec![],
            headers: vec![],
        }
    }

    #[test]
    fn refs_keep_root_and_order_and_drop_garbage() {
        let r = ThreadRefs::of(&ex(Some("<c@x>"), &["b@x"], &["a@x", "b@x", "bad\0id"]));
        assert_eq!(r.ids, vec!["a@x", "b@x", "c@x"]);
        assert_eq!(r.root.as_deref(), Some("a@x"));
        let r = ThreadRefs::of(&ex(None, &[], &[]));
        assert!(r.ids.is_empty() && r.root.is_none());
        let many: Vec<String> = (0..100).map(|i| format!("{i}@x")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let r = ThreadRefs::of(&ex(Some("own@x"), &[], &many));
        assert!(r.ids.len() <= MAX_IDS);
        assert_eq!(r.ids[0], "0@x");
        assert!(r.ids.contains(&"99@x".to_string()));
        assert!(r.ids.contains(&"own@x".to_string()));
    }

    #[test]
    fn derived_ids_depend_on_agent_and_root() {
        assert_eq!(derived("ag_a", "r@x"), derived("ag_a", "r@x"));
        assert_ne!(derived("ag_a", "r@x"), derived("ag_b", "r@x"));
        assert!(derived("ag_a", "r@x").starts_with("th_"));
    }
}
