//! Schema version and migrations.
//!
//! The version lives in `Meta/schema_version`. Opening a database runs every migration from
//! its version up to [`CURRENT`], each in order, recording progress after each step, so an
//! interrupted upgrade resumes where it stopped.

use super::{Store, StoreError, Tree};

/// The schema this binary writes.
pub const CURRENT: u32 = 1;
const KEY: &[u8] = b"schema_version";

/// `MIGRATIONS[i]` upgrades a database from version `i + 1` to `i + 2`.
type Migration = fn(&Store) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[];

pub(super) fn migrate(store: &Store) -> Result<(), StoreError> {
    let found = match store.get(Tree::Meta, KEY)? {
        Some(v) => {
            let b: [u8; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("schema_version".into()))?;
            u32::from_be_bytes(b)
        }
        None => {
            store.put(Tree::Meta, KEY, &CURRENT.to_be_bytes())?;
            store.flush_blocking()?;
            return Ok(());
        }
    };
    if found > CURRENT {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: CURRENT,
        });
    }
    for v in found..CURRENT {
        let step = MIGRATIONS
            .get((v - 1) as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("no migration from schema {v}")))?;
        step(store)?;
        store.put(Tree::Meta, KEY, &(v + 1).to_be_bytes())?;
        store.flush_blocking()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put(Tree::Meta, KEY, &(CURRENT + 1).to_be_bytes())
                .unwrap();
            s.flush_blocking().unwrap();
        }
        match Store::open(dir.path()) {
            Err(StoreError::SchemaTooNew { found, .. }) => assert_eq!(found, CURRENT + 1),
            other => panic!("expected SchemaTooNew, got {:?}", other.err()),
        }
    }
}
