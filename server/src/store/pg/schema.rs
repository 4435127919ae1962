//! The PostgreSQL schema and its versioned migrations.
//!
//! One table holds every tree: `legate_kv (tree smallint, key bytea, value bytea, primary
//! key (tree, key))`. Why one table and not one per tree: the store's surface is exactly an
//! ordered key-value map per tree, the primary key's b-tree gives ordered scans and range
//! bounds within a tree (bytea compares bytewise, as sled's keys do), a transaction across
//! trees is a transaction over one table, and adding a tree is a row in `legate_trees`
//! rather than DDL. Trees are numbered by the database (`legate_trees`), by name, so the
//! numbers never depend on the order of the `Tree` enum in a given build.
//!
//! Message bodies are rows of `legate_blobs (id = SHA-256, data bytea)`, content-addressed
//! like the file blob store, inserted by the transaction that links them (PostgreSQL
//! compresses large `bytea` values itself, TOAST). `legate_ids` hands out
//! [`crate::store::Store::next_id`] numbers unique across nodes.
//!
//! Migrations are numbered; `legate_migrations` records those applied. They run in one
//! transaction under an advisory lock, so two nodes starting together apply each once, and
//! a database written by a newer legate (a version this binary does not know) is refused.

use super::conn::{Conn, PgError};
use crate::store::{StoreError, Tree};

/// `MIGRATIONS[i]` is version `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: the key-value table, the tree names, blobs, the id sequence.
    "CREATE TABLE legate_trees (id smallint PRIMARY KEY, name text NOT NULL UNIQUE);
     CREATE TABLE legate_kv (
         tree smallint NOT NULL,
         key bytea NOT NULL,
         value bytea NOT NULL,
         PRIMARY KEY (tree, key)
     );
     CREATE TABLE legate_blobs (
         id bytea PRIMARY KEY,
         data bytea NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE SEQUENCE legate_ids;",
    // 2: empty tables locked (LOCK TABLE, which takes no snapshot) by the transactions of a
    // class that all write one hot row, so they queue instead of failing each other (`tx`).
    "CREATE TABLE legate_lock_events ();
     CREATE TABLE legate_lock_audit ();",
];

/// The database schema version this binary writes.
pub(in crate::store) const CURRENT: i32 = MIGRATIONS.len() as i32;

/// Any fixed number: the key of the advisory lock migrations hold.
const LOCK_KEY: i64 = 0x6c65_6761_7465_0001;

/// Applies the missing migrations and numbers any new tree; returns the version found
/// before, and the database id of every tree in `Tree::ALL` order.
pub(super) fn migrate(c: &mut Conn) -> Result<(i32, Vec<i16>), StoreError> {
    // Read committed: what follows the advisory lock must see what the node that held it
    // before committed (a serializable snapshot would be taken before the wait).
    c.batch("BEGIN ISOLATION LEVEL READ COMMITTED")?;
    let r = migrate_in_tx(c);
    match r {
        Ok(v) => {
            c.batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_in_tx(c: &mut Conn) -> Result<(i32, Vec<i16>), StoreError> {
    c.query("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
    c.batch(
        "CREATE TABLE IF NOT EXISTS legate_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let found: i32 = c
        .query(
            "SELECT coalesce(max(version), 0) FROM legate_migrations",
            &[],
        )?
        .first()
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(PgError::from)?
        .unwrap_or(0);
    if found > CURRENT {
        return Err(StoreError::SchemaTooNew {
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported: CURRENT as u32,
        });
    }
    for v in found.max(0)..CURRENT {
        let step = usize::try_from(v)
            .ok()
            .and_then(|i| MIGRATIONS.get(i))
            .ok_or_else(|| StoreError::Corrupt(format!("no database migration {v}")))?;
        c.batch(step)?;
        c.execute(
            "INSERT INTO legate_migrations (version) VALUES ($1)",
            &[&(v + 1)],
        )?;
        tracing::info!(version = v + 1, "applied a database migration");
    }
    let mut ids = Vec::with_capacity(Tree::ALL.len());
    for t in Tree::ALL {
        let name = t.name();
        let row = c.query("SELECT id FROM legate_trees WHERE name = $1", &[&name])?;
        let id: i16 = match row.first() {
            Some(r) => r.try_get(0).map_err(PgError::from)?,
            None => {
                let r = c.query(
                    "INSERT INTO legate_trees (id, name)
                     SELECT coalesce(max(id), 0) + 1, $1 FROM legate_trees RETURNING id",
                    &[&name],
                )?;
                r.first()
                    .ok_or_else(|| StoreError::Corrupt("legate_trees".into()))?
                    .try_get(0)
                    .map_err(PgError::from)?
            }
        };
        ids.push(id);
    }
    Ok((found, ids))
}
