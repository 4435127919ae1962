//! The top-level header block of recent and recently read messages, kept in memory.
//!
//! Why: a client opening a mailbox asks for the headers of every message (`FETCH 1:*
//! BODY.PEEK[HEADER]`), and again on every sync. Without this each header costs a blob file
//! open, a zstd decompression of the whole message and a scan for the blank line, for a few
//! hundred bytes; dovecot answers the same from its index cache. Bounded by bytes, oldest
//! out first; a message's bytes never change under its id, so nothing goes stale (an entry
//! of a deleted message only waits to be pushed out, and is read only by its owner, whose
//! record the caller already holds).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What the cache may hold in all (header bytes plus a fixed cost per entry).
const BUDGET: usize = 8 << 20;
/// Headers longer than this are not kept: one would push out hundreds of ordinary ones.
const ENTRY_MAX: usize = 64 << 10;
/// The map, queue and id strings of one entry, roughly.
const ENTRY_COST: usize = 128;

#[derive(Default)]
pub(super) struct HeaderCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Arc<[u8]>>,
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

impl HeaderCache {
    /// Keeps the header of `raw` (a whole message) under `id`; returns it.
    pub(super) fn put_from_raw(&self, id: &str, raw: &[u8]) -> Arc<[u8]> {
        let header: Arc<[u8]> = Arc::from(&raw[..header_len(raw)]);
        self.put(id, header.clone());
        header
    }

    fn put(&self, id: &str, header: Arc<[u8]>) {
        if header.len() > ENTRY_MAX {
            return;
        }
        let weight = header.len() + id.len() + ENTRY_COST;
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.map.contains_key(id) {
            return;
        }
        while g.bytes + weight > BUDGET {
            let Some((old, w)) = g.order.pop_front() else {
                break;
            };
            g.map.remove(&old);
            g.bytes = g.bytes.saturating_sub(w);
        }
        g.map.insert(id.to_string(), header);
        g.order.push_back((id.to_string(), weight));
        g.bytes += weight;
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<[u8]>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.map.get(id).cloned()
    }
}

/// The length of a message's top-level header with its terminating empty line (CRLF or
/// bare LF); a message without one is all header. IMAP's `BODY[HEADER]` of the message.
pub fn header_len(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        let line_end = raw[i..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(raw.len(), |p| i + p + 1);
        let line = &raw[i..line_end];
        if line == b"\r\n" || line == b"\n" {
            return line_end;
        }
        i = line_end;
    }
    raw.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ends_at_the_first_empty_line() {
        assert_eq!(header_len(b"A: b\r\n\r\nbody\r\n\r\nmore"), 8);
        assert_eq!(header_len(b"A: b\n\nbody"), 6);
        assert_eq!(header_len(b"A: b\r\nC: d"), 10);
        assert_eq!(header_len(b""), 0);
        assert_eq!(header_len(b"\r\nbody"), 2);
    }

    #[test]
    fn holds_headers_within_its_budget() {
        let c = HeaderCache::default();
        let h = c.put_from_raw("msg_a", b"Subject: a\r\n\r\nbody");
        assert_eq!(&*h, b"Subject: a\r\n\r\n");
        assert_eq!(c.get("msg_a").as_deref(), Some(&b"Subject: a\r\n\r\n"[..]));
        // Too long a header is answered but not kept.
        let mut big = vec![b'X'; ENTRY_MAX + 1];
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(c.put_from_raw("msg_big", &big).len(), big.len());
        assert!(c.get("msg_big").is_none());
        // Filling the budget pushes the oldest out.
        let line = vec![b'Y'; 60 << 10];
        for i in 0..(BUDGET / (60 << 10) + 2) {
            c.put_from_raw(&format!("msg_{i}"), &line);
        }
        assert!(c.get("msg_a").is_none());
        let g = c.inner.lock().unwrap();
        assert!(g.bytes <= BUDGET && g.map.len() == g.order.len());
    }
}
