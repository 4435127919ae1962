//! `legate store stats`: where the database's bytes go, tree by tree. Operators use it to
//! see what grows with the mailbox; the storage benchmark uses it to keep the record small.

use super::{Store, StoreError, Tree};

/// Live entries and bytes of one tree. `bytes` counts keys and values only: the engine's own
/// overhead (node headers, old page versions awaiting cleanup) is the gap between the sum over
/// trees and [`StoreStats::db_bytes_on_disk`].
#[derive(Debug, Default, serde::Serialize)]
pub struct TreeStats {
    pub tree: &'static str,
    pub entries: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct StoreStats {
    pub trees: Vec<TreeStats>,
    pub live_bytes: u64,
    pub db_bytes_on_disk: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
}

impl Store {
    /// Walks every tree once (a full read: for the CLI, not for a request path).
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut out = StoreStats::default();
        for t in Tree::ALL {
            let mut s = TreeStats {
                tree: t.name(),
                ..Default::default()
            };
            for kv in self.scan_prefix(t, &[]) {
                let (k, v) = kv?;
                s.entries += 1;
                s.key_bytes += k.len() as u64;
                s.value_bytes += v.len() as u64;
            }
            out.live_bytes += s.key_bytes + s.value_bytes;
            if s.entries > 0 {
                out.trees.push(s);
            }
        }
        out.trees
            .sort_by_key(|s| std::cmp::Reverse(s.key_bytes + s.value_bytes));
        out.db_bytes_on_disk = self.size_on_disk();
        let listed = self.blob_list()?;
        out.blobs = listed.len() as u64;
        out.blob_bytes = listed.iter().map(|l| l.len).sum();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.put(Tree::Humans, b"abc", b"12345").unwrap();
        let st = s.stats().unwrap();
        let h = st.trees.iter().find(|t| t.tree == "humans").unwrap();
        assert_eq!((h.entries, h.key_bytes, h.value_bytes), (1, 3, 5));
        assert!(st.live_bytes >= 8);
    }
}
