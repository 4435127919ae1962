//! The PostgreSQL backend: several legate nodes on one database.
//!
//! Trees are one table of `(tree, key, value)` ([`schema`]); a store transaction is a
//! SERIALIZABLE database transaction, retried on serialization failures and deadlocks like
//! sled retries on conflicts; a committed transaction is durable (so [`crate::store::Store::commit`]
//! has nothing left to flush); message bodies are rows written in the transaction that links
//! them. Clients run on connection threads of their own ([`conn`]).

mod conn;
mod listen;
mod many;
pub(super) mod schema;
mod signal;
mod tls;
pub(super) mod tx;

use super::blob::{BlobId, Listed, Pins};
use super::{Entry, StoreError, Tree};
pub(super) use conn::PgError;
use conn::{Connector, Counters, Pool};
use many::{in_order, kv_get_many, kv_last_in_ranges};
use std::collections::VecDeque;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// TLS to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS: refused unless every host is loopback or a Unix socket, or
    /// [`PgOptions::danger_plaintext`] is set.
    Disable,
    /// TLS with the server's certificate verified against the roots and its name checked.
    VerifyFull,
}

/// How to reach the database (`[storage]` with `backend = "postgres"`).
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/db` or key=value form; may hold a password.
    pub url: Zeroizing<String>,
    /// A file holding the URL instead (read at open; its trailing newline is ignored).
    pub url_file: Option<PathBuf>,
    /// Connections (threads) to open; at least 2: a quarter (at least one) serve single
    /// statements, the rest transactions.
    pub pool_size: usize,
    pub sslmode: SslMode,
    /// PEM roots to verify the server against instead of the system's.
    pub ca_file: Option<PathBuf>,
    pub danger_plaintext: bool,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"<redacted>")
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("sslmode", &self.sslmode)
            .field("ca_file", &self.ca_file)
            .field("danger_plaintext", &self.danger_plaintext)
            .finish()
    }
}

pub(super) struct PgEngine {
    /// Single statements: never held across a caller's code, so a transaction body that
    /// makes a plain store call always finds one.
    ops: Pool,
    /// Held for a whole transaction.
    txs: Pool,
    /// Database tree ids, in `Tree::ALL` order.
    ids: Vec<i16>,
    pub(super) pins: Arc<Pins>,
    /// The database schema version found when opening (before migrating).
    pub(super) found_version: i32,
    /// Signals to the other nodes (`Store::signal`).
    signaller: signal::Publisher,
    pub(super) counters: Arc<Counters>,
}

const KV_GET: &str = "SELECT value FROM legate_kv WHERE tree = $1 AND key = $2";
const KV_PUT: &str = "INSERT INTO legate_kv (tree, key, value) VALUES ($1, $2, $3)
     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value";
const KV_DEL: &str = "DELETE FROM legate_kv WHERE tree = $1 AND key = $2";

impl PgEngine {
    pub(super) fn open(
        opts: &PgOptions,
        events_rung: std::sync::Weak<tokio::sync::watch::Sender<()>>,
        signals: tokio::sync::broadcast::Sender<Arc<str>>,
        node: &str,
    ) -> Result<PgEngine, StoreError> {
        let url = match &opts.url_file {
            Some(p) => Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| StoreError::Io(format!("storage.url_file: {e}")))?
                    .trim()
                    .to_string(),
            ),
            None => opts.url.clone(),
        };
        let mut cfg: postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Io("storage.url is not a valid PostgreSQL URL".into()))?;
        cfg.application_name("legate");
        cfg.connect_timeout(std::time::Duration::from_secs(10));
        let connect: Connector = match opts.sslmode {
            SslMode::Disable => {
                if !opts.danger_plaintext && !tls::all_local(&cfg) {
                    return Err(StoreError::Io(
                        "storage.sslmode = \"disable\" is only for a database on loopback or a Unix socket; use \"verify-full\" (or danger_plaintext)".into(),
                    ));
                }
                cfg.ssl_mode(postgres::config::SslMode::Disable);
                Arc::new(move || Ok(cfg.connect(postgres::NoTls)?))
            }
            SslMode::VerifyFull => {
                let tls = tls::connector(opts.ca_file.as_deref())?;
                cfg.ssl_mode(postgres::config::SslMode::Require);
                Arc::new(move || Ok(cfg.connect(tls.clone())?))
            }
        };
        let size = opts.pool_size.max(2);
        let ops_n = (size / 4).max(1);
        let counters = Arc::new(Counters::default());
        let ops = Pool::new(ops_n, "op", &connect, "", &counters)?;
        // Serializable by default, so a transaction with no read before its writes runs as
        // one statement without a BEGIN, at the same isolation as the others (`tx`).
        let txs = Pool::new(
            size - ops_n,
            "tx",
            &connect,
            "SET default_transaction_isolation TO 'serializable'",
            &counters,
        )?;
        let (found_version, ids) = txs.lease()?.run(|c| Ok(schema::migrate(c)))??;
        listen::spawn(
            connect.clone(),
            listen::Ears {
                rung: events_rung,
                signals,
                node: node.to_string(),
                counters: counters.clone(),
            },
        )?;
        let signaller = signal::Publisher::spawn(connect.clone(), node.to_string())?;
        Ok(PgEngine {
            ops,
            txs,
            ids,
            pins: Default::default(),
            found_version,
            signaller,
            counters,
        })
    }

    pub(super) fn signal(&self, line: &str) {
        self.signaller.send(line);
    }

    pub(super) fn id(&self, t: Tree) -> i16 {
        self.ids[t as usize]
    }

    pub(in crate::store) fn txs(&self) -> &Pool {
        &self.txs
    }

    pub(super) fn get(&self, t: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (tree, key) = (self.id(t), key.to_vec());
        Ok(self.ops.run(move |c| {
            let rows = c.query(KV_GET, &[&tree, &key])?;
            rows.first()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
                .map_err(PgError::from)
        })?)
    }

    /// Several keys of one tree in one round trip, each `None` when absent, in `keys` order.
    pub(super) fn get_many(
        &self,
        t: Tree,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let tree = self.id(t);
        let want: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        let found = self.ops.run(move |c| kv_get_many(c, tree, &want))?;
        Ok(in_order(keys, found))
    }

    pub(super) fn last_in_ranges(
        &self,
        t: Tree,
        ranges: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        let (tree, ranges) = (self.id(t), ranges.to_vec());
        Ok(self.ops.run(move |c| kv_last_in_ranges(c, tree, &ranges))?)
    }

    pub(super) fn put(&self, t: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let (tree, key, value) = (self.id(t), key.to_vec(), value.to_vec());
        self.ops
            .run(move |c| c.execute(KV_PUT, &[&tree, &key, &value]))?;
        Ok(())
    }

    pub(super) fn remove(&self, t: Tree, key: &[u8]) -> Result<(), StoreError> {
        let (tree, key) = (self.id(t), key.to_vec());
        self.ops.run(move |c| c.execute(KV_DEL, &[&tree, &key]))?;
        Ok(())
    }

    pub(super) fn last(&self, t: Tree) -> Result<Option<Entry>, StoreError> {
        let tree = self.id(t);
        Ok(self.ops.run(move |c| {
            let rows = c.query(
                "SELECT key, value FROM legate_kv WHERE tree = $1 ORDER BY key DESC LIMIT 1",
                &[&tree],
            )?;
            rows.first()
                .map(|r| Ok::<_, postgres::Error>((r.try_get(0)?, r.try_get(1)?)))
                .transpose()
                .map_err(PgError::from)
        })?)
    }

    pub(super) fn len(&self, t: Tree) -> Result<usize, StoreError> {
        let tree = self.id(t);
        let n: i64 = self.ops.run(move |c| {
            let rows = c.query("SELECT count(*) FROM legate_kv WHERE tree = $1", &[&tree])?;
            rows.first()
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(PgError::from)
                .map(|n| n.unwrap_or(0))
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    pub(super) fn is_empty(&self, t: Tree) -> Result<bool, StoreError> {
        let tree = self.id(t);
        Ok(self.ops.run(move |c| {
            Ok(
                c.query("SELECT 1 FROM legate_kv WHERE tree = $1 LIMIT 1", &[&tree])?
                    .is_empty(),
            )
        })?)
    }

    pub(super) fn next_id(&self) -> Result<u64, StoreError> {
        let n: i64 = self.ops.run(|c| {
            let rows = c.query("SELECT nextval('legate_ids')", &[])?;
            rows.first()
                .ok_or_else(|| PgError::new("nextval returned nothing"))?
                .try_get(0)
                .map_err(PgError::from)
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(super) fn size_on_disk(&self) -> Result<u64, StoreError> {
        let n: i64 = self.ops.run(|c| {
            let rows = c.query(
                "SELECT (pg_total_relation_size('legate_kv') + pg_total_relation_size('legate_blobs'))::bigint",
                &[],
            )?;
            rows.first()
                .ok_or_else(|| PgError::new("no size"))?
                .try_get(0)
                .map_err(PgError::from)
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Moves the id sequence past `n` (never back).
    pub(super) fn advance_ids(&self, n: u64) -> Result<(), StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.ops.run(move |c| {
            c.query(
                "SELECT setval('legate_ids', greatest($1, (SELECT last_value FROM legate_ids)))",
                &[&n],
            )
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Answers a trivial query (readiness).
    pub(super) fn ping(&self) -> Result<(), StoreError> {
        self.ops.run(|c| c.batch("SELECT 1"))?;
        Ok(())
    }

    pub(super) fn range(
        &self,
        t: Tree,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        reverse: bool,
    ) -> PgScan<'_> {
        PgScan {
            eng: self,
            tree: self.id(t),
            lo: from,
            hi: to,
            reverse,
            buf: VecDeque::new(),
            page: FIRST_PAGE,
            done: false,
        }
    }

    pub(super) fn scan(&self, t: Tree, prefix: &[u8]) -> PgScan<'_> {
        let hi = match successor(prefix) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        self.range(t, Bound::Included(prefix.to_vec()), hi, false)
    }

    // Blobs.

    pub(super) fn blob_get(&self, id: &BlobId) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.0.to_vec();
        Ok(self.ops.run(move |c| {
            let rows = c.query("SELECT data FROM legate_blobs WHERE id = $1", &[&id])?;
            rows.first()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
                .map_err(PgError::from)
        })?)
    }

    pub(super) fn blob_range(
        &self,
        id: &BlobId,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.0.to_vec();
        // bytea values are at most 1 GiB: anything past i32 is past the end.
        let from = i32::try_from(offset.saturating_add(1)).unwrap_or(i32::MAX);
        let n = i32::try_from(len).unwrap_or(i32::MAX);
        Ok(self.ops.run(move |c| {
            let rows = c.query(
                "SELECT substring(data FROM $2 FOR $3) FROM legate_blobs WHERE id = $1",
                &[&id, &from, &n],
            )?;
            rows.first()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
                .map_err(PgError::from)
        })?)
    }

    pub(super) fn blob_list(&self) -> Result<Vec<Listed>, StoreError> {
        let rows = self.ops.run(|c| {
            let rows = c.query(
                "SELECT id, length(data)::bigint, created_at FROM legate_blobs ORDER BY id",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let id: Vec<u8> = r.try_get(0)?;
                    let len: i64 = r.try_get(1)?;
                    let at: std::time::SystemTime = r.try_get(2)?;
                    Ok((id, len, at))
                })
                .collect::<Result<Vec<_>, postgres::Error>>()
                .map_err(PgError::from)
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, len, modified)| {
                Some(Listed {
                    id: BlobId::from_slice(&id)?,
                    len: u64::try_from(len).unwrap_or(0),
                    modified,
                })
            })
            .collect())
    }

    /// Stores a blob outside any transaction (a restore or copy, whose counts come with
    /// the records).
    pub(super) fn blob_insert(&self, id: &BlobId, bytes: &[u8]) -> Result<(), StoreError> {
        let (id, data) = (id.0.to_vec(), bytes.to_vec());
        self.ops.run(move |c| {
            c.execute(
                "INSERT INTO legate_blobs (id, data) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                &[&id, &data],
            )
        })?;
        Ok(())
    }

    /// Deletes blob rows nothing counts, older than `grace` and not pinned here: each in a
    /// serializable transaction of its own, so a transaction linking it meanwhile wins.
    pub(super) fn sweep(&self, grace: std::time::Duration) -> Result<u64, StoreError> {
        let counts = self.id(Tree::BlobCounts);
        let secs = grace.as_secs_f64();
        let ids: Vec<Vec<u8>> = self.ops.run(move |c| {
            let rows = c.query(
                "SELECT b.id FROM legate_blobs b
                 WHERE b.created_at <= now() - make_interval(secs => $2)
                 AND NOT EXISTS (SELECT 1 FROM legate_kv k WHERE k.tree = $1 AND k.key = b.id)",
                &[&counts, &secs],
            )?;
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<Vec<u8>>, _>>()
                .map_err(PgError::from)
        })?;
        let mut n = 0;
        for id in ids {
            if BlobId::from_slice(&id).is_some_and(|b| self.pins.contains(&b)) {
                continue;
            }
            if tx::delete_unreferenced_blob(self, id)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every entry of every tree as of one instant: one REPEATABLE READ transaction, read a
    /// page at a time (other nodes keep writing meanwhile).
    pub(super) fn snapshot(&self, each: &mut Visit<'_>) -> Result<(), StoreError> {
        let lease = self.txs.lease()?;
        lease.run(|c| c.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))?;
        lease.in_tx.set(true);
        for t in Tree::ALL {
            let tree = self.id(t);
            let mut after: Option<Vec<u8>> = None;
            loop {
                let from = after.clone();
                let rows: Vec<Entry> = lease.run(move |c| {
                    let rows = match from {
                        Some(k) => c.query(
                            "SELECT key, value FROM legate_kv WHERE tree = $1 AND key > $2 ORDER BY key LIMIT 1000",
                            &[&tree, &k],
                        )?,
                        None => c.query(
                            "SELECT key, value FROM legate_kv WHERE tree = $1 ORDER BY key LIMIT 1000",
                            &[&tree],
                        )?,
                    };
                    rows.iter()
                        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                        .collect::<Result<Vec<Entry>, postgres::Error>>()
                        .map_err(PgError::from)
                })?;
                let full = rows.len() == 1000;
                for (k, v) in &rows {
                    each(t, k, v)?;
                }
                match rows.into_iter().last() {
                    Some((k, _)) if full => after = Some(k),
                    _ => break,
                }
            }
        }
        lease.run(|c| c.batch("COMMIT"))?;
        lease.in_tx.set(false);
        Ok(())
    }
}

/// What a snapshot calls for each entry.
pub(super) type Visit<'a> = dyn FnMut(Tree, &[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// The smallest key greater than every key starting with `prefix` (None: no such key).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Rows fetched by a scan's first page, growing fourfold per page up to [`MAX_PAGE`]: most
/// scans stop after a few entries (a page of a list, the newest event), some read a tree.
const FIRST_PAGE: i64 = 32;
const MAX_PAGE: i64 = 2048;

/// A range read a page at a time (keyset pagination on the primary key).
pub(super) struct PgScan<'a> {
    eng: &'a PgEngine,
    tree: i16,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    reverse: bool,
    buf: VecDeque<Entry>,
    page: i64,
    done: bool,
}

impl PgScan<'_> {
    fn fetch(&mut self) -> Result<(), StoreError> {
        let mut sql = String::from("SELECT key, value FROM legate_kv WHERE tree = $1");
        let mut params: Vec<Vec<u8>> = Vec::new();
        for (b, inc, exc) in [(&self.lo, ">=", ">"), (&self.hi, "<=", "<")] {
            let op = match b {
                Bound::Included(_) => inc,
                Bound::Excluded(_) => exc,
                Bound::Unbounded => continue,
            };
            if let Bound::Included(k) | Bound::Excluded(k) = b {
                params.push(k.clone());
            }
            sql.push_str(&format!(" AND key {op} ${}", params.len() + 1));
        }
        sql.push_str(if self.reverse {
            " ORDER BY key DESC"
        } else {
            " ORDER BY key"
        });
        sql.push_str(&format!(" LIMIT ${}", params.len() + 2));
        let (tree, limit) = (self.tree, self.page);
        let rows: Vec<Entry> = self.eng.ops.run(move |c| {
            let mut p: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&tree];
            for k in &params {
                p.push(k);
            }
            p.push(&limit);
            let rows = c.query(&sql, &p)?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<Vec<Entry>, postgres::Error>>()
                .map_err(PgError::from)
        })?;
        if (rows.len() as i64) < self.page {
            self.done = true;
        }
        if let Some((k, _)) = rows.last() {
            if self.reverse {
                self.hi = Bound::Excluded(k.clone());
            } else {
                self.lo = Bound::Excluded(k.clone());
            }
        }
        self.page = (self.page * 4).min(MAX_PAGE);
        self.buf.extend(rows);
        Ok(())
    }
}

impl Iterator for PgScan<'_> {
    type Item = Result<Entry, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_a_prefix() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff, 0xff]), None);
        assert_eq!(successor(b""), None);
    }

    #[test]
    fn options_debug_hides_the_url() {
        let o = PgOptions {
            url: Zeroizing::new("postgres://u:secret@db/x".into()),
            url_file: None,
            pool_size: 4,
            sslmode: SslMode::VerifyFull,
            ca_file: None,
            danger_plaintext: false,
        };
        assert!(!format!("{o:?}").contains("secret"));
    }
}
