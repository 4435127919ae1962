//! Key codecs. Composite keys join parts with a 0 byte (ids, addresses and names never contain
//! NUL: callers validate them) and numbers are big-endian so byte order is numeric order.

/// Joins string parts with a 0 separator.
pub fn join(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// `join(parts)` followed by a trailing 0: the prefix of every key under those parts.
pub fn prefix(parts: &[&str]) -> Vec<u8> {
    let mut out = join(parts);
    out.push(0);
    out
}

/// `prefix(parts)` followed by a big-endian number.
pub fn with_u64(parts: &[&str], n: u64) -> Vec<u8> {
    let mut out = prefix(parts);
    out.extend_from_slice(&n.to_be_bytes());
    out
}

pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads the big-endian number at the end of a key.
pub fn read_u64(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The text after the last 0 separator.
pub fn last_part(key: &[u8]) -> Option<&str> {
    let start = key.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
    std::str::from_utf8(&key[start..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_numerically() {
        assert!(with_u64(&["a"], 2) < with_u64(&["a"], 10));
        assert_eq!(read_u64(&with_u64(&["a", "b"], 77)), Some(77));
        assert_eq!(last_part(&join(&["x", "y"])), Some("y"));
        assert_eq!(read_u64(b"short"), None);
    }
}
