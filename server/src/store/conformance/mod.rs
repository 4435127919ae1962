//! One conformance suite for the store surface, run against every backend: sled always;
//! PostgreSQL when `LEGATE_TEST_PG_URL` names a server whose user may create databases
//! (each test gets a fresh database), otherwise each PostgreSQL test prints why it skipped.
//! `tests/interop/suites/95_postgres.sh` starts a throwaway cluster and runs it.

use super::*;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

mod nodes;
use nodes::*;

/// A store to open (and reopen) for one test.
struct Fixture {
    dir: tempfile::TempDir,
    opts: StoreOptions,
    /// Another, empty store of the same backend.
    another: fn() -> Option<Fixture>,
}

impl Fixture {
    fn open(&self) -> Store {
        Store::open_with(self.dir.path(), &self.opts).unwrap()
    }
}

fn sled() -> Option<Fixture> {
    Some(Fixture {
        dir: tempfile::tempdir().unwrap(),
        opts: StoreOptions::default(),
        another: sled,
    })
}

/// A fresh database on the server `LEGATE_TEST_PG_URL` names.
fn postgres() -> Option<Fixture> {
    let Ok(url) = std::env::var("LEGATE_TEST_PG_URL") else {
        eprintln!(
            "skipped: LEGATE_TEST_PG_URL is not set (tests/interop/suites/95_postgres.sh sets it)"
        );
        return None;
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "legate_t_{}_{}_{}",
        std::process::id(),
        crate::util::now_millis(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let admin = url.clone();
    let create = format!("CREATE DATABASE {name}");
    // The blocking client must not run on a tokio thread: a thread of its own.
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&create).unwrap();
    })
    .join()
    .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    Some(Fixture {
        dir: tempfile::tempdir().unwrap(),
        opts: StoreOptions {
            backend: Backend::Postgres(PgOptions {
                url: zeroize::Zeroizing::new(format!("{base}/{name}")),
                url_file: None,
                pool_size: 8,
                sslmode: SslMode::Disable,
                ca_file: None,
                danger_plaintext: false,
            }),
            ..StoreOptions::default()
        },
        another: postgres,
    })
}

fn keys_of(it: impl Iterator<Item = Result<Entry, StoreError>>) -> Vec<Vec<u8>> {
    it.map(|r| r.unwrap().0).collect()
}

fn ordered_scans_and_prefix_bounds(f: &Fixture) {
    let s = f.open();
    let keys: Vec<&[u8]> = vec![
        b"a",
        b"a\x00",
        b"a\x00b",
        b"a\xff",
        b"a\xff\xff",
        b"ab",
        b"b",
        b"\xff",
        b"\xff\xff",
        b"",
        b"\x00",
    ];
    for k in keys.iter().rev() {
        s.put(Tree::Humans, k, b"v").unwrap();
    }
    // Another tree's keys never show.
    s.put(Tree::Orgs, b"a1", b"x").unwrap();
    let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    sorted.sort();
    assert_eq!(keys_of(s.scan_prefix(Tree::Humans, b"")), sorted);
    assert_eq!(
        keys_of(s.scan_prefix(Tree::Humans, b"a")),
        vec![
            b"a".to_vec(),
            b"a\x00".to_vec(),
            b"a\x00b".to_vec(),
            b"ab".to_vec(),
            b"a\xff".to_vec(),
            b"a\xff\xff".to_vec(),
        ]
    );
    assert_eq!(
        keys_of(s.scan_prefix(Tree::Humans, b"a\xff")),
        vec![b"a\xff".to_vec(), b"a\xff\xff".to_vec()]
    );
    assert_eq!(
        keys_of(s.scan_prefix(Tree::Humans, b"\xff")),
        vec![b"\xff".to_vec(), b"\xff\xff".to_vec()]
    );
    assert!(keys_of(s.scan_prefix(Tree::Humans, b"c")).is_empty());
    assert_eq!(s.len(Tree::Humans), keys.len());
    assert!(!s.is_empty(Tree::Humans));
    assert!(s.is_empty(Tree::Agents));
    assert_eq!(s.last(Tree::Humans).unwrap().unwrap().0, b"\xff\xff");
    assert_eq!(s.last(Tree::Agents).unwrap(), None);
    s.remove(Tree::Humans, b"\xff\xff").unwrap();
    assert_eq!(s.last(Tree::Humans).unwrap().unwrap().0, b"\xff");
    assert_eq!(s.get(Tree::Humans, b"\xff\xff").unwrap(), None);
    assert_eq!(s.get(Tree::Humans, b"").unwrap().unwrap(), b"v");
}

fn range_bounds_both_ways_across_pages(f: &Fixture) {
    let s = f.open();
    let n = 3000u64;
    s.transact::<_, ()>(&[Tree::Audit], |tx| {
        for i in 0..n {
            tx.put(Tree::Audit, &keys::u64_key(i), &i.to_le_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    let k = |i: u64| keys::u64_key(i).to_vec();
    let nums = |it: Box<dyn Iterator<Item = Result<Entry, StoreError>> + '_>| -> Vec<u64> {
        it.map(|r| keys::read_u64(&r.unwrap().0).unwrap()).collect()
    };
    use Bound::*;
    let all = nums(s.range(Tree::Audit, Unbounded, Unbounded, false));
    assert_eq!(all, (0..n).collect::<Vec<_>>());
    let all_rev = nums(s.range(Tree::Audit, Unbounded, Unbounded, true));
    assert_eq!(all_rev, (0..n).rev().collect::<Vec<_>>());
    assert_eq!(
        nums(s.range(Tree::Audit, Included(k(10)), Excluded(k(15)), false)),
        vec![10, 11, 12, 13, 14]
    );
    assert_eq!(
        nums(s.range(Tree::Audit, Excluded(k(10)), Included(k(15)), false)),
        vec![11, 12, 13, 14, 15]
    );
    assert_eq!(
        nums(s.range(Tree::Audit, Excluded(k(10)), Included(k(15)), true)),
        vec![15, 14, 13, 12, 11]
    );
    assert_eq!(
        nums(s.range(Tree::Audit, Unbounded, Excluded(k(3)), true)),
        vec![2, 1, 0]
    );
    assert_eq!(
        nums(s.range(Tree::Audit, Included(k(n - 2)), Unbounded, false)),
        vec![n - 2, n - 1]
    );
    assert!(nums(s.range(Tree::Audit, Included(k(5)), Excluded(k(5)), false)).is_empty());
    // Taking a few of a long range (a page of a list) reads only what it needs.
    let first: Vec<u64> = s
        .range(Tree::Audit, Excluded(k(100)), Unbounded, true)
        .take(3)
        .map(|r| keys::read_u64(&r.unwrap().0).unwrap())
        .collect();
    assert_eq!(first, vec![n - 1, n - 2, n - 3]);
    // Values come with their keys.
    let (kk, v) = s
        .range(Tree::Audit, Included(k(2500)), Unbounded, false)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        (keys::read_u64(&kk), v),
        (Some(2500), 2500u64.to_le_bytes().to_vec())
    );
}

fn multi_tree_transactions_are_all_or_nothing(f: &Fixture) {
    let s = f.open();
    let r: Result<(), TxError<&str>> = s.transact(&[Tree::Humans, Tree::Orgs], |tx| {
        tx.put(Tree::Humans, b"a", b"1")?;
        tx.put(Tree::Orgs, b"b", b"2")?;
        Err(TxFail::Abort("no"))
    });
    assert!(matches!(r, Err(TxError::Abort("no"))));
    assert_eq!(s.get(Tree::Humans, b"a").unwrap(), None);
    assert_eq!(s.get(Tree::Orgs, b"b").unwrap(), None);
    let got = s
        .transact::<_, ()>(&[Tree::Humans, Tree::Orgs], |tx| {
            tx.put(Tree::Humans, b"a", b"1")?;
            tx.put_record(Tree::Orgs, b"b", &("org".to_string(), 2u32))?;
            // A transaction reads its own writes, and sees its removals.
            let mine = tx.get(Tree::Humans, b"a")?;
            tx.remove(Tree::Humans, b"gone")?;
            Ok((mine, tx.get_record::<(String, u32)>(Tree::Orgs, b"b")?))
        })
        .unwrap();
    assert_eq!(got, (Some(b"1".to_vec()), Some(("org".to_string(), 2))));
    assert_eq!(s.get(Tree::Humans, b"a").unwrap(), Some(b"1".to_vec()));
    let org: (String, u32) = s.get_record(Tree::Orgs, b"b").unwrap().unwrap();
    assert_eq!(org, ("org".to_string(), 2));
    // A removal inside a transaction.
    s.transact::<_, ()>(&[Tree::Humans], |tx| Ok(tx.remove(Tree::Humans, b"a")?))
        .unwrap();
    assert_eq!(s.get(Tree::Humans, b"a").unwrap(), None);
}

fn many_keys_are_read_at_once_in_the_order_asked(f: &Fixture) {
    let s = f.open();
    s.put(Tree::Humans, b"a", b"1").unwrap();
    s.put(Tree::Humans, b"c", b"3").unwrap();
    s.put(Tree::Orgs, b"b", b"other tree").unwrap();
    let asked: [&[u8]; 5] = [b"c", b"b", b"a", b"zz", b"c"];
    let want = vec![
        Some(b"3".to_vec()),
        None,
        Some(b"1".to_vec()),
        None,
        Some(b"3".to_vec()),
    ];
    assert_eq!(s.get_many(Tree::Humans, &asked).unwrap(), want);
    assert!(s.get_many(Tree::Humans, &[]).unwrap().is_empty());
    // Inside a transaction: its own writes and removals first, the rest from the store.
    let got = s
        .transact::<_, ()>(&[Tree::Humans], |tx| {
            tx.put(Tree::Humans, b"b", b"2")?;
            tx.remove(Tree::Humans, b"c")?;
            Ok(tx.get_many(Tree::Humans, &[b"a", b"b", b"c", b"d"])?)
        })
        .unwrap();
    assert_eq!(
        got,
        vec![Some(b"1".to_vec()), Some(b"2".to_vec()), None, None]
    );
    assert_eq!(s.get(Tree::Humans, b"b").unwrap(), Some(b"2".to_vec()));
}

fn the_last_entry_of_many_ranges_is_read_at_once(f: &Fixture) {
    let s = f.open();
    for k in [&b"a1"[..], b"a2", b"a3", b"b1", b"c1", b"c2"] {
        s.put(Tree::Humans, k, k).unwrap();
    }
    s.put(Tree::Orgs, b"a9", b"other tree").unwrap();
    let r = |lo: &[u8], hi: &[u8]| (lo.to_vec(), hi.to_vec());
    let got = s
        .last_in_ranges(
            Tree::Humans,
            &[
                r(b"c", b"c\xff"),
                r(b"a", b"a2"),
                r(b"d", b"z"),
                r(b"a", b"a\xff"),
                r(b"b1", b"b1"),
            ],
        )
        .unwrap();
    let e = |k: &[u8]| Some((k.to_vec(), k.to_vec()));
    assert_eq!(got, vec![e(b"c2"), e(b"a2"), None, e(b"a3"), e(b"b1")]);
    assert!(s.last_in_ranges(Tree::Humans, &[]).unwrap().is_empty());
}

fn conflicting_concurrent_transactions_retry(f: &Fixture) {
    let s = f.open();
    let (threads, each) = (6u64, 40u64);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..each {
                    // Read-modify-write of one counter plus a write to a second tree: lost
                    // updates would show as a short count.
                    s.transact::<_, ()>(&[Tree::Meta, Tree::Humans], |tx| {
                        let n = tx
                            .get(Tree::Meta, b"counter")?
                            .as_deref()
                            .and_then(keys::read_u64)
                            .unwrap_or(0);
                        tx.put(Tree::Meta, b"counter", &keys::u64_key(n + 1))?;
                        tx.put(Tree::Humans, &keys::u64_key(n + 1), &[t as u8, i as u8])?;
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let n = s
        .get(Tree::Meta, b"counter")
        .unwrap()
        .as_deref()
        .and_then(keys::read_u64);
    assert_eq!(n, Some(threads * each));
    // Every number was taken exactly once.
    let taken: Vec<u64> = s
        .scan_prefix(Tree::Humans, &[])
        .map(|r| keys::read_u64(&r.unwrap().0).unwrap())
        .collect();
    assert_eq!(taken, (1..=threads * each).collect::<Vec<_>>());
}

fn large_values_round_trip(f: &Fixture) {
    let s = f.open();
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    s.put(Tree::Messages, b"big", &big).unwrap();
    assert_eq!(s.get(Tree::Messages, b"big").unwrap().unwrap(), big);
    s.transact::<_, ()>(&[Tree::Messages], |tx| {
        let v = tx.get(Tree::Messages, b"big")?.unwrap_or_default();
        tx.put(Tree::Messages, b"big2", &v)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(s.get(Tree::Messages, b"big2").unwrap().unwrap(), big);
    // Empty values are values.
    s.put(Tree::Messages, b"empty", b"").unwrap();
    assert_eq!(s.get(Tree::Messages, b"empty").unwrap(), Some(Vec::new()));
}

fn committed_writes_survive_reopen(f: &Fixture) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let s = f.open();
        s.put_record(Tree::Meta, b"k", &("hello".to_string(), 7u32))
            .unwrap();
        s.transact::<_, ()>(&[Tree::Humans, Tree::Orgs], |tx| {
            tx.put(Tree::Humans, b"h", b"1")?;
            tx.put(Tree::Orgs, b"o", b"2")?;
            Ok(())
        })
        .unwrap();
        let pin = s.put_blob(b"a body").unwrap();
        s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.link_blob(b"m", &pin.id())?))
            .unwrap();
        drop(pin);
        rt.block_on(s.commit()).unwrap();
    }
    let s = f.open();
    let v: (String, u32) = s.get_record(Tree::Meta, b"k").unwrap().unwrap();
    assert_eq!(v, ("hello".to_string(), 7));
    assert_eq!(s.get(Tree::Orgs, b"o").unwrap().unwrap(), b"2");
    assert_eq!(s.blob_of(b"m").unwrap().unwrap(), b"a body");
    assert_eq!(
        s.get(Tree::Meta, b"schema_version").unwrap(),
        Some(SCHEMA_VERSION.to_be_bytes().to_vec())
    );
}

fn blobs_are_content_addressed_counted_and_go_with_their_last_holder(f: &Fixture) {
    let s = f.open();
    let link = |key: &[u8], body: &[u8]| {
        let pin = s.put_blob(body).unwrap();
        s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.link_blob(key, &pin.id())?))
            .unwrap();
    };
    let unlink = |key: &[u8]| {
        s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.unlink_blob(key)?))
            .unwrap();
    };
    let body = "Subject: hi\r\n\r\nthe same line again and again\r\n".repeat(100);
    link(b"m1", body.as_bytes());
    link(b"m2", body.as_bytes());
    link(b"m3", b"else");
    assert_eq!(s.blob_list().unwrap().len(), 2);
    assert_eq!(s.blob_of(b"m2").unwrap().unwrap(), body.as_bytes());
    assert_eq!(s.blob_range_of(b"m3", 1, 2).unwrap().unwrap(), b"ls");
    assert_eq!(s.blob_range_of(b"m3", 3, 100).unwrap().unwrap(), b"e");
    assert_eq!(s.blob_range_of(b"m3", 100, 2).unwrap().unwrap(), b"");
    assert_eq!(
        s.blob_range_of(b"m1", 1000, 30).unwrap().unwrap(),
        &body.as_bytes()[1000..1030]
    );
    let mut streamed = Vec::new();
    std::io::Read::read_to_end(
        &mut s.blob_reader_of(b"m1").unwrap().unwrap(),
        &mut streamed,
    )
    .unwrap();
    assert_eq!(streamed, body.as_bytes());
    assert_eq!(s.blob_of(b"nope").unwrap(), None);
    assert!(s.verify_blobs(true, None).unwrap().is_clean());
    unlink(b"m1");
    assert_eq!(s.blob_list().unwrap().len(), 2);
    assert_eq!(s.blob_of(b"m2").unwrap().unwrap(), body.as_bytes());
    unlink(b"m2");
    unlink(b"m2");
    assert_eq!(s.blob_list().unwrap().len(), 1);
    assert_eq!(s.blob_of(b"m2").unwrap(), None);
    // An aborted transaction links nothing, and leaves no blob behind once swept.
    let pin = s.put_blob(b"aborted").unwrap();
    let r: Result<(), TxError<&str>> = s.transact(&[Tree::BlobRefs], |tx| {
        tx.link_blob(b"m4", &pin.id())?;
        Err(TxFail::Abort("no"))
    });
    assert!(r.is_err());
    drop(pin);
    s.sweep_blobs(std::time::Duration::ZERO).unwrap();
    assert!(s.verify_blobs(false, None).unwrap().is_clean());
    assert_eq!(s.blob_of(b"m4").unwrap(), None);
    // Relinking a key to another body moves its reference.
    link(b"m3", b"other");
    assert_eq!(s.blob_of(b"m3").unwrap().unwrap(), b"other");
    let report = s.verify_blobs(true, None).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.blobs, 1);
}

fn outbox_events_are_sequenced_in_commit_order(f: &Fixture) {
    let s = f.open();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let ev = EventRecord::new("x", "", serde_json::json!({"t": t, "i": i}));
                    s.transact::<_, ()>(&EVENT_TREES, |tx| Ok(tx.emit(&ev).map(|_| ())?))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let evs = s.events_after(0, 100).unwrap();
    assert_eq!(
        evs.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    assert_eq!(s.last_event_seq().unwrap(), 40);
}

fn ids_are_unique_and_increasing(f: &Fixture) {
    let s = f.open();
    let a = s.next_id().unwrap();
    let b = s.next_id().unwrap();
    assert!(b > a);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || (0..50).map(|_| s.next_id().unwrap()).collect::<Vec<_>>())
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200);
}

fn snapshots_hold_whole_transactions_and_restore(f: &Fixture) {
    let s = f.open();
    for i in 0u64..50 {
        s.transact::<_, ()>(&[Tree::Humans, Tree::Orgs], |tx| {
            tx.put(Tree::Humans, &i.to_be_bytes(), b"h")?;
            tx.put(Tree::Orgs, &i.to_be_bytes(), b"o")?;
            Ok(())
        })
        .unwrap();
    }
    let pin = s.put_blob(b"snap body").unwrap();
    s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.link_blob(b"m", &pin.id())?))
        .unwrap();
    drop(pin);
    let mut copied = Vec::new();
    let blobs = s
        .snapshot::<StoreError>(
            |t, k, v| {
                copied.push((t, k.to_vec(), v.to_vec()));
                Ok(())
            },
            || Ok(()),
        )
        .unwrap();
    let count = |t| copied.iter().filter(|e| e.0 == t).count();
    assert_eq!((count(Tree::Humans), count(Tree::Orgs)), (50, 50));
    let ids: Vec<BlobId> = blobs.ids().collect();
    assert_eq!(ids, vec![BlobId::of(b"snap body")]);
    // Into an empty sled store, then read back.
    let dir = tempfile::tempdir().unwrap();
    let t = Store::open(dir.path()).unwrap();
    for (tree, k, v) in &copied {
        t.import_entry(tree.name(), k, v).unwrap();
    }
    t.import_blob(&ids[0], &s.blob_by_id(&ids[0]).unwrap().unwrap())
        .unwrap();
    assert!(t.import_blob(&ids[0], b"tampered").is_err());
    assert_eq!(t.blob_of(b"m").unwrap().unwrap(), b"snap body");
    assert!(t.verify_blobs(true, None).unwrap().is_clean());
}

fn copies_round_trip_through_the_other_engine(f: &Fixture) {
    let s = f.open();
    for i in 0u64..1500 {
        s.put(Tree::Humans, &i.to_be_bytes(), format!("m{i}").as_bytes())
            .unwrap();
    }
    for (k, body) in [(&b"m1"[..], &b"one"[..]), (b"m2", b"one"), (b"m3", b"two")] {
        let pin = s.put_blob(body).unwrap();
        s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.link_blob(k, &pin.id())?))
            .unwrap();
    }
    let audit = crate::audit::Audit::open(s.clone()).unwrap();
    for i in 0..20 {
        audit
            .append(crate::audit::NewEntry {
                actor: crate::audit::ActorRef::agent("ag_1"),
                chain: vec![],
                action: format!("a.{i}"),
                target: "t".into(),
                outcome: crate::audit::Outcome::Ok,
                detail: serde_json::json!({}),
            })
            .unwrap();
    }
    audit.sync_blocking();
    // Out to sled, and back into a new store of this backend.
    let mid_dir = tempfile::tempdir().unwrap();
    let mid = Store::open(mid_dir.path()).unwrap();
    let out = s.copy_into(&mid).unwrap();
    assert!(out.mismatches.is_empty(), "{out:?}");
    let back_f = (f.another)().unwrap();
    let back = back_f.open();
    let r = mid.copy_into(&back).unwrap();
    assert!(r.mismatches.is_empty(), "{r:?}");
    assert_eq!(out.trees, r.trees);
    assert_eq!((r.blobs, r.trees["humans"]), (2, 1500));
    assert_eq!(back.blob_of(b"m2").unwrap().unwrap(), b"one");
    assert_eq!(
        back.get(Tree::Humans, &7u64.to_be_bytes())
            .unwrap()
            .unwrap(),
        b"m7"
    );
    assert!(back.verify_blobs(true, None).unwrap().is_clean());
    let v = crate::audit::Audit::open(back.clone())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!((v.entries, v.first_broken), (20, None));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sled_backend {
            $(#[test]
            fn $name() {
                if let Some(f) = super::sled() {
                    super::$name(&f);
                }
            })*
        }
        mod postgres_backend {
            $(#[test]
            fn $name() {
                if let Some(f) = super::postgres() {
                    super::$name(&f);
                }
            })*
        }
    };
}

conformance!(
    ordered_scans_and_prefix_bounds,
    range_bounds_both_ways_across_pages,
    multi_tree_transactions_are_all_or_nothing,
    many_keys_are_read_at_once_in_the_order_asked,
    the_last_entry_of_many_ranges_is_read_at_once,
    conflicting_concurrent_transactions_retry,
    large_values_round_trip,
    committed_writes_survive_reopen,
    blobs_are_content_addressed_counted_and_go_with_their_last_holder,
    outbox_events_are_sequenced_in_commit_order,
    ids_are_unique_and_increasing,
    snapshots_hold_whole_transactions_and_restore,
    copies_round_trip_through_the_other_engine,
    leases_are_held_by_one_node_until_released_or_expired,
    outbox_writes_wake_every_node,
    signals_reach_every_other_node,
);
