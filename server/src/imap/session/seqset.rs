//! Sequence sets (RFC 9051 §9 `sequence-set`) resolved against a session's sequence map,
//! without expanding ranges: `UID FETCH 1:4294967295` costs what the mailbox holds, not
//! four billion steps.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// The positions (0-based sequence indexes) in `uids` that `set` names, ascending and
/// without duplicates. `uid` says whether the numbers are UIDs or sequence numbers. A
/// number naming no message is ignored, as RFC 9051 §6.4.8 asks for UIDs.
pub(super) fn resolve(set: &SequenceSet, uids: &[u32], uid: bool) -> Vec<usize> {
    if uids.is_empty() {
        return Vec::new();
    }
    let largest = if uid {
        uids[uids.len() - 1]
    } else {
        u32::try_from(uids.len()).unwrap_or(u32::MAX)
    };
    let value = |s: &SeqOrUid| match s {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    let mut ranges: Vec<(u32, u32)> = set
        .0
        .as_ref()
        .iter()
        .map(|s| match s {
            Sequence::Single(v) => (value(v), value(v)),
            Sequence::Range(a, b) => {
                let (a, b) = (value(a), value(b));
                (a.min(b), a.max(b))
            }
        })
        .collect();
    ranges.sort_unstable();
    let mut out: Vec<usize> = Vec::new();
    for (lo, hi) in ranges {
        let (start, end) = if uid {
            (
                uids.partition_point(|u| *u < lo),
                uids.partition_point(|u| *u <= hi),
            )
        } else {
            let lo = (lo.max(1) - 1) as usize;
            ((lo).min(uids.len()), (hi as usize).min(uids.len()))
        };
        let from = out.last().map_or(start, |l| start.max(l + 1));
        out.extend(from..end);
    }
    out
}

/// Whether `set` names `n`, with `*` standing for `largest`.
pub(super) fn contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
    let value = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(x) => value(x) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (value(a), value(b));
            (a.min(b)..=a.max(b)).contains(&n)
        }
    })
}

/// A set of UIDs as the shortest sequence set (`1:3,7,9:12`), for COPYUID, VANISHED and
/// ESEARCH ALL. `uids` ascending.
pub(super) fn compress(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// A non-empty set of numbers as an imap-types sequence set (for codes and VANISHED).
pub(super) fn to_set(nums: &[u32]) -> Option<SequenceSet> {
    SequenceSet::try_from(compress(nums).as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> SequenceSet {
        SequenceSet::try_from(s).unwrap()
    }

    #[test]
    fn uid_sets_select_existing_uids_without_expanding() {
        let uids = [3, 5, 9, 10, 200];
        assert_eq!(
            resolve(&set("1:4294967295"), &uids, true),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(resolve(&set("4:9,200,*"), &uids, true), vec![1, 2, 4]);
        assert_eq!(resolve(&set("300:*"), &uids, true), vec![4]);
        assert_eq!(resolve(&set("6,7,8"), &uids, true), Vec::<usize>::new());
        assert_eq!(resolve(&set("10:5"), &uids, true), vec![1, 2, 3]);
    }

    #[test]
    fn sequence_sets_clamp_to_the_mailbox() {
        let uids = [3, 5, 9];
        assert_eq!(resolve(&set("2:*"), &uids, false), vec![1, 2]);
        assert_eq!(resolve(&set("*"), &uids, false), vec![2]);
        assert_eq!(resolve(&set("1,1,3:9"), &uids, false), vec![0, 2]);
        assert!(resolve(&set("1:*"), &[], false).is_empty());
    }

    #[test]
    fn compresses_runs() {
        assert_eq!(compress(&[1, 2, 3, 7, 9, 10, 11, 12]), "1:3,7,9:12");
        assert_eq!(compress(&[5]), "5");
        assert_eq!(compress(&[]), "");
        assert!(to_set(&[]).is_none());
        assert_eq!(to_set(&[1, 2]).unwrap(), set("1:2"));
    }
}
