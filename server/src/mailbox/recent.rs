//! The derived content (bodies, extracted text, codes, links) of the newest deliveries, kept
//! in memory for a while. Since schema 5 nothing derived is stored: a whole-message read
//! parses the raw bytes again. The reads that come right after a delivery — the webhook and
//! event dispatchers rendering `message.received`, an agent fetching the mail it was waiting
//! for — would each pay that parse a second time; they find it here instead. Bounded by
//! bytes, oldest out first; content never changes for a message id, so nothing goes stale.

use super::MessageContent;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What the cache may hold in all, counted as what each entry takes on the heap: some 100
/// messages of 4 KB (about 20 KB each once parsed, extracted and indexed by id), a fifth of
/// a second of full-speed inbound mail, while the event readers stay within a few dozen
/// messages of it (webhook p99 34-46 ms in `bench/events.sh`). It was 16 MiB, a fifth of the
/// server's memory after a burst of deliveries, for reads that come within moments or not at
/// all; a reader later than this parses the message again. Entries were once weighed at twice
/// their raw size, which heaptrack showed to be a third of what they hold (7.4 MB held
/// against a 2 MiB budget).
const BUDGET: usize = 2 << 20;
/// Messages larger than this are not kept: one would push out hundreds of small ones (the
/// readers parse such a message once more instead).
pub(super) const ENTRY_MAX: usize = 64 << 10;

#[derive(Default)]
pub(super) struct RecentContent {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Arc<MessageContent>>,
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

impl RecentContent {
    pub(super) fn put(&self, id: &str, content: MessageContent, raw_size: usize) {
        if raw_size > ENTRY_MAX {
            return;
        }
        // The content, its id twice (map key and queue), the map's and the queue's slots.
        let weight = content.heap_bytes() + 2 * id.len() + 128;
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while g.bytes + weight > BUDGET {
            let Some((old, w)) = g.order.pop_front() else {
                break;
            };
            g.map.remove(&old);
            g.bytes = g.bytes.saturating_sub(w);
        }
        if g.map.insert(id.to_string(), Arc::new(content)).is_none() {
            g.order.push_back((id.to_string(), weight));
            g.bytes += weight;
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<MessageContent> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.map.get(id).map(|c| (**c).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_recent_small_messages_within_its_budget() {
        let c = RecentContent::default();
        let content = |t: &str| MessageContent {
            extracted_text: t.into(),
            ..Default::default()
        };
        c.put("msg_a", content("a"), 4096);
        assert_eq!(c.get("msg_a").unwrap().extracted_text, "a");
        c.put("msg_big", content("big"), ENTRY_MAX + 1);
        assert!(c.get("msg_big").is_none());
        // Filling the budget pushes the oldest out: entries weigh what they hold, whatever
        // the raw size they came from.
        let big = "x".repeat(64 << 10);
        for i in 0..(BUDGET / (64 << 10) + 1) {
            c.put(&format!("msg_{i}"), content(&big), 4096);
        }
        assert!(c.get("msg_a").is_none());
        let g = c.inner.lock().unwrap();
        assert!(g.bytes <= BUDGET && g.map.len() == g.order.len());
        assert!(g.map.len() < BUDGET / (64 << 10), "{}", g.map.len());
    }

    #[test]
    fn an_entry_weighs_its_strings_and_lists() {
        let mut m = MessageContent {
            text: Some("t".repeat(1000)),
            extracted_text: "e".repeat(3000),
            ..Default::default()
        };
        let plain = m.heap_bytes();
        assert!(plain >= 4000, "{plain}");
        m.headers = vec![("Subject".into(), "s".repeat(500)); 4];
        assert!(m.heap_bytes() >= plain + 4 * 507, "{}", m.heap_bytes());
    }

    /// What a read right after delivery finds here is what parsing the raw bytes gives.
    #[tokio::test]
    async fn a_fresh_delivery_reads_as_its_parse() {
        use super::super::testutil::*;
        let (_d, mb) = service(0);
        let raw = b"From: Shop <no-reply@shop.test>\r\nTo: a@agents.test\r\nSubject: Code\r\n\
Content-Type: text/html\r\n\r\n<p>Your code is <b>482913</b>. <a href=\"https://shop.test/verify?t=1\">Verify</a></p>\r\n";
        let m = deliver(&mb, "ag_a", super::super::Folder::Inbox, raw).await;
        assert!(mb.recent.get(&m.id).is_some(), "kept after delivery");
        let read = mb.message("ag_a", &m.id).await.unwrap();
        assert_eq!(read.content, MessageContent::derive(raw));
        assert!(read.content.codes.iter().any(|c| c.code == "482913"));
    }
}
