//! The ACME state every node sharing the store sees ([`Tree::AcmeState`]): the certificate
//! chain being served with its names and validity, the lease of the node placing an order,
//! and the HTTP-01 answers of that order, so whichever node the CA's validation reaches
//! answers it. The keys are sealed by the vault (`vault::acme`), never kept here. On sled
//! one process owns the store and all of this is that node's own state, unchanged in
//! behaviour from the files older versions kept.

use crate::store::{keys, Store, StoreError, Tree, TxError};
use serde::{Deserialize, Serialize};

const CERT: &[u8] = b"cert";
const LEASE: &[u8] = b"lease";

/// The certificate every node serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Bumped at every store: a node serving another generation reloads.
    pub generation: u64,
    pub chain_pem: String,
    /// The names it was ordered for, in order.
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// The node that ordered it (for logs).
    pub by: String,
}

fn token_key(token: &str) -> Vec<u8> {
    keys::join(&["http01", token])
}

/// The stored certificate, if any.
pub fn cert(store: &Store) -> Result<Option<CertRecord>, StoreError> {
    store.get_record(Tree::AcmeState, CERT)
}

/// Stores a new certificate as the next generation; returns the stored record.
pub fn put_cert(store: &Store, mut rec: CertRecord) -> Result<CertRecord, StoreError> {
    store
        .transact::<_, ()>(&[Tree::AcmeState], |tx| {
            let prev = tx.get_record::<CertRecord>(Tree::AcmeState, CERT)?;
            let mut rec = rec.clone();
            rec.generation = prev.map_or(0, |p| p.generation).saturating_add(1);
            tx.put_record(Tree::AcmeState, CERT, &rec)?;
            Ok(rec.generation)
        })
        .map(|g| {
            rec.generation = g;
            rec
        })
        .map_err(tx_error)
}

fn tx_error(e: TxError<()>) -> StoreError {
    match e {
        TxError::Store(e) => e,
        TxError::Abort(()) => StoreError::Io("acme state transaction aborted".into()),
    }
}

/// Takes (or renews) the order lease for `holder` until `now_ms + ttl_ms`; false when another
/// holder's lease has not expired. Written on both backends (unlike the queue's leases), so
/// the rule is the same on sled, where it is also tested.
pub fn take_lease(
    store: &Store,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    store.take_lease_at(Tree::AcmeState, LEASE, holder, now_ms, ttl_ms)
}

/// Gives the order lease up, if `holder` holds it.
pub fn release_lease(store: &Store, holder: &str) -> Result<(), StoreError> {
    store.release_lease_at(Tree::AcmeState, LEASE, holder)
}

/// Publishes an HTTP-01 answer to every node.
pub fn put_token(store: &Store, token: &str, key_auth: &str) -> Result<(), StoreError> {
    store.put_record(Tree::AcmeState, &token_key(token), &key_auth)
}

/// The HTTP-01 answer for `token`, published by any node.
pub fn token(store: &Store, token: &str) -> Result<Option<String>, StoreError> {
    store.get_record(Tree::AcmeState, &token_key(token))
}

pub fn remove_token(store: &Store, token: &str) -> Result<(), StoreError> {
    store.remove(Tree::AcmeState, &token_key(token))
}

/// Removes every published answer: what a node killed mid-order left behind. Called by the
/// lease holder before it orders, when no other order can be in flight.
pub fn clear_tokens(store: &Store) -> Result<usize, StoreError> {
    let prefix = keys::prefix(&["http01"]);
    let mut stale = Vec::new();
    for r in store.scan_prefix(Tree::AcmeState, &prefix) {
        stale.push(r?.0);
    }
    for k in &stale {
        store.remove(Tree::AcmeState, k)?;
    }
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(chain: &str) -> CertRecord {
        CertRecord {
            generation: 0,
            chain_pem: chain.into(),
            names: vec!["mx.a.test".into()],
            not_before: 1,
            not_after: 2,
            by: "node_a".into(),
        }
    }

    #[test]
    fn lease_is_taken_refused_expires_and_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ttl = 60_000;
        assert!(take_lease(&store, "a", 1_000, ttl).unwrap());
        assert!(!take_lease(&store, "b", 2_000, ttl).unwrap(), "a holds it");
        assert!(
            take_lease(&store, "a", 3_000, ttl).unwrap(),
            "the holder renews"
        );
        release_lease(&store, "b").unwrap();
        assert!(
            !take_lease(&store, "b", 4_000, ttl).unwrap(),
            "only the holder releases"
        );
        // A holder killed mid-order: its lease lapses at the expiry, not before.
        assert!(!take_lease(&store, "b", 2_999 + ttl, ttl).unwrap());
        assert!(take_lease(&store, "b", 3_000 + ttl, ttl).unwrap());
        release_lease(&store, "b").unwrap();
        assert!(
            take_lease(&store, "a", 3_002 + ttl, ttl).unwrap(),
            "released"
        );
    }

    #[test]
    fn certificates_get_new_generations_and_tokens_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(cert(&store).unwrap(), None);
        let first = put_cert(&store, record("one")).unwrap();
        assert_eq!(first.generation, 1);
        let second = put_cert(&store, record("two")).unwrap();
        assert_eq!(second.generation, 2);
        assert_eq!(cert(&store).unwrap(), Some(second));
        put_token(&store, "tok", "tok.thumb").unwrap();
        put_token(&store, "tok2", "tok2.thumb").unwrap();
        assert_eq!(token(&store, "tok").unwrap().as_deref(), Some("tok.thumb"));
        remove_token(&store, "tok").unwrap();
        assert_eq!(token(&store, "tok").unwrap(), None);
        assert_eq!(clear_tokens(&store).unwrap(), 1);
        assert_eq!(token(&store, "tok2").unwrap(), None);
        assert!(
            cert(&store).unwrap().is_some(),
            "clearing keeps the certificate"
        );
    }
}
