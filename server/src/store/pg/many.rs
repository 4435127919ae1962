//! Reads of many keys in one statement: a caller that needs several keys of one tree (a
//! sender's candidate entries, a merge's pending messages, a delivery's counters) waits
//! for one round trip instead of one per key.

use super::conn::{Conn, PgError};
use crate::store::Entry;
use std::collections::HashMap;

/// An index scan of the primary key for every key asked (`key = ANY`).
const KV_GET_MANY: &str = "SELECT key, value FROM legate_kv WHERE tree = $1 AND key = ANY($2)";

/// The rows of `keys` that exist in `tree`, by key: one statement however many keys.
pub(super) fn kv_get_many(
    c: &mut Conn,
    tree: i16,
    keys: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, Vec<u8>>, PgError> {
    if keys.is_empty() {
        return Ok(Default::default());
    }
    let rows = c.query(KV_GET_MANY, &[&tree, &keys])?;
    rows.iter()
        .map(|r| -> Result<_, PgError> { Ok((r.try_get(0)?, r.try_get(1)?)) })
        .collect()
}

/// `found` laid out as `keys` asked: a value where the key exists, `None` where not (a key
/// asked twice gets its value twice).
pub(super) fn in_order(keys: &[&[u8]], found: HashMap<Vec<u8>, Vec<u8>>) -> Vec<Option<Vec<u8>>> {
    keys.iter().map(|k| found.get(*k).cloned()).collect()
}

/// The last entry of each inclusive range `[lo, hi]` of `tree`, in the order asked: one
/// statement, a bounded index scan per range.
const KV_LAST_IN_RANGES: &str = "SELECT r.i, kv.key, kv.value
     FROM unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS r(lo, hi, i)
     CROSS JOIN LATERAL (SELECT key, value FROM legate_kv
         WHERE tree = $1 AND key >= r.lo AND key <= r.hi ORDER BY key DESC LIMIT 1) kv";

pub(super) fn kv_last_in_ranges(
    c: &mut Conn,
    tree: i16,
    ranges: &[(Vec<u8>, Vec<u8>)],
) -> Result<Vec<Option<Entry>>, PgError> {
    let mut out = vec![None; ranges.len()];
    if ranges.is_empty() {
        return Ok(out);
    }
    let (lo, hi): (Vec<&[u8]>, Vec<&[u8]>) = ranges
        .iter()
        .map(|(l, h)| (l.as_slice(), h.as_slice()))
        .unzip();
    for r in c.query(KV_LAST_IN_RANGES, &[&tree, &lo, &hi])? {
        let i: i64 = r.try_get(0)?;
        let slot = usize::try_from(i - 1)
            .ok()
            .and_then(|i| out.get_mut(i))
            .ok_or_else(|| PgError::new("a range read answered for a range not asked"))?;
        *slot = Some((r.try_get(1)?, r.try_get(2)?));
    }
    Ok(out)
}
