//! Postings in blocks: one store entry holds up to [`BLOCK_MAX`] positions of one term.
//!
//! Why blocks: a key per (term, message) made every delivery write one entry per distinct
//! word, each touching its own page of the tree; the engine rewrote (and, compressed,
//! re-compressed) a page per word. Blocks are written by the merger (`merge`) a batch of
//! messages at a time, so a term that many new messages share costs one write per batch.
//!
//! A block's key is the posting key of its OLDEST position (`agent \0 term \0 received ms
//! (BE) \0 message id`), so the block holding a position is the last block whose key is at
//! or before it, blocks of a term never overlap, and a reverse walk of a term's keys is its
//! positions newest first. A value is [`FORMAT`], then per position, oldest first: the
//! received ms as a varint delta from the previous one, the id's length (one byte) and the
//! id. An empty value is the layout before blocks (schema 4 and 5): one position, the
//! key's own, so an upgraded store needs no rewrite.

/// A message's place in an ordered posting list: (received ms, message id).
pub(in crate::mailbox) type Pos = (i64, String);

/// Positions per block: large enough that a common term costs a write per batch of mail,
/// small enough that rewriting the newest block stays cheap (a few KiB).
pub(in crate::mailbox) const BLOCK_MAX: usize = 128;

const FORMAT: u8 = 2;

/// `positions` (sorted ascending, ids under 256 bytes) as a block value.
pub(in crate::mailbox) fn encode(positions: &[Pos]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + positions.len() * 24);
    v.push(FORMAT);
    let mut prev = 0u64;
    for (ms, id) in positions {
        let ms = u64::try_from(*ms).unwrap_or(0);
        put_varint(&mut v, ms.saturating_sub(prev));
        prev = ms;
        let id = id.as_bytes();
        let len = id.len().min(255);
        v.push(len as u8);
        v.extend_from_slice(&id[..len]);
    }
    v
}

/// The positions of a block stored under the key whose position is `at`, oldest first. A
/// value that does not decode yields what it could read (never an error for a reader: a
/// damaged block costs matches, not the search).
pub(in crate::mailbox) fn decode(at: &Pos, v: &[u8]) -> Vec<Pos> {
    let Some((&FORMAT, mut rest)) = v.split_first() else {
        return vec![at.clone()];
    };
    let mut out = Vec::new();
    let mut prev = 0u64;
    while !rest.is_empty() {
        let Some((delta, r)) = get_varint(rest) else {
            break;
        };
        let Some((&len, r)) = r.split_first() else {
            break;
        };
        let Some((id, r)) = r.split_at_checked(usize::from(len)) else {
            break;
        };
        prev = prev.saturating_add(delta);
        let (Ok(ms), Ok(id)) = (i64::try_from(prev), std::str::from_utf8(id)) else {
            break;
        };
        out.push((ms, id.to_string()));
        rest = r;
    }
    out
}

/// How many positions a block holds, without building them.
pub(in crate::mailbox) fn count(v: &[u8]) -> usize {
    let Some((&FORMAT, mut rest)) = v.split_first() else {
        return 1;
    };
    let mut n = 0;
    while let Some((_, r)) = get_varint(rest) {
        let Some((&len, r)) = r.split_first() else {
            break;
        };
        let Some((_, r)) = r.split_at_checked(usize::from(len)) else {
            break;
        };
        n += 1;
        rest = r;
    }
    n
}

fn put_varint(v: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        v.push((n as u8) | 0x80);
        n >>= 7;
    }
    v.push(n as u8);
}

fn get_varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut n = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(ms: i64, id: &str) -> Pos {
        (ms, id.to_string())
    }

    #[test]
    fn round_trip_count_and_the_old_layout() {
        let p = vec![
            pos(1_700_000_000_000, "msg_a"),
            pos(1_700_000_000_000, "msg_b"),
            pos(1_700_000_999_123, "msg_c"),
        ];
        let v = encode(&p);
        assert_eq!(decode(&p[0], &v), p);
        assert_eq!(count(&v), 3);
        // Before blocks: an empty value is the key's own position.
        assert_eq!(decode(&p[1], &[]), vec![p[1].clone()]);
        assert_eq!(count(&[]), 1);
    }

    #[test]
    fn damaged_values_yield_what_decodes() {
        let p = vec![pos(5, "msg_a"), pos(9, "msg_b")];
        let v = encode(&p);
        assert_eq!(decode(&p[0], &v[..v.len() - 2]), vec![p[0].clone()]);
        assert_eq!(decode(&p[0], &[FORMAT, 0xff, 0xff]), Vec::<Pos>::new());
        assert_eq!(count(&[FORMAT, 0x80]), 0);
        assert_eq!(decode(&p[0], &[FORMAT, 1, 200, b'x']), Vec::<Pos>::new());
    }
}
