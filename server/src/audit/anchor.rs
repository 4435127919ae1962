//! The signed head checkpoint: the newest sequence number and hash, kept outside the log.
//!
//! A hash chain proves nothing about its end: deleting the newest entries leaves a valid
//! chain. So the writer keeps `<data>/audit-head.json` with the head it last made durable,
//! MACed with a key only the vault holds (an attacker who can edit the store cannot forge a
//! lower head), and `legate audit verify` compares the log with it. The head is also printed
//! so an operator can keep it elsewhere and check it later with `--head SEQ:HASH`.

use super::{checkpoint_problem, lock, ActorRef, AuditError, NewEntry, Outcome};
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name in the data directory.
pub const FILE: &str = "audit-head.json";

/// Signs checkpoints; implemented by the vault over a key derived from its root key, so no
/// key bytes ever reach this module.
pub trait HeadSigner: Send + Sync {
    /// HMAC-SHA256 of `msg`.
    fn mac(&self, msg: &[u8]) -> [u8; 32];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    /// Unix milliseconds when it was written.
    pub ts: i64,
    /// Hex HMAC over the three fields above (see [`Checkpoint::message`]).
    pub mac: String,
}

impl Checkpoint {
    fn message(seq: u64, hash: &str, ts: i64) -> Vec<u8> {
        format!("legate audit head v1\n{seq}\n{hash}\n{ts}").into_bytes()
    }

    pub fn sign(seq: u64, hash: &str, signer: &dyn HeadSigner) -> Self {
        let ts = crate::util::now_millis();
        let mac = signer.mac(&Self::message(seq, hash, ts));
        Self {
            seq,
            hash: hash.to_string(),
            ts,
            mac: data_encoding::HEXLOWER.encode(&mac),
        }
    }

    /// Constant-time comparison of the MAC.
    pub fn is_authentic(&self, signer: &dyn HeadSigner) -> bool {
        let want = signer.mac(&Self::message(self.seq, &self.hash, self.ts));
        let Ok(got) = data_encoding::HEXLOWER.decode(self.mac.as_bytes()) else {
            return false;
        };
        got.len() == want.len() && got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Where the checkpoint lives and who signs it.
pub struct Anchor {
    path: PathBuf,
    /// Locked for each sign-and-write, so a signer replaced during a root-key rotation is
    /// never raced by a checkpoint signed with the old one landing after the new one.
    signer: std::sync::Mutex<Box<dyn HeadSigner>>,
}

/// What reading the checkpoint found.
#[derive(Debug)]
pub enum Found {
    Missing,
    Unreadable(String),
    Forged,
    Valid(Checkpoint),
}

impl Anchor {
    pub fn new(dir: &Path, signer: Box<dyn HeadSigner>) -> Self {
        Self {
            path: dir.join(FILE),
            signer: std::sync::Mutex::new(signer),
        }
    }

    fn signer(&self) -> std::sync::MutexGuard<'_, Box<dyn HeadSigner>> {
        self.signer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read(&self) -> Found {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Missing,
            Err(e) => return Found::Unreadable(e.to_string()),
        };
        match serde_json::from_slice::<Checkpoint>(&bytes) {
            Ok(c) if c.is_authentic(&**self.signer()) => Found::Valid(c),
            Ok(_) => Found::Forged,
            Err(e) => Found::Unreadable(e.to_string()),
        }
    }

    /// Replaces the checkpoint atomically (write, fsync, rename): a crash leaves the old one
    /// or the new one, never half of either.
    pub fn write(&self, seq: u64, hash: &str) -> std::io::Result<()> {
        let signer = self.signer();
        self.write_with(&**signer, seq, hash)
    }

    /// Swaps the signer and, when given a head, re-signs it under the new one before any
    /// other checkpoint can be written.
    pub fn replace_signer(
        &self,
        new: Box<dyn HeadSigner>,
        head: Option<(u64, &str)>,
    ) -> std::io::Result<()> {
        let mut signer = self.signer();
        *signer = new;
        match head {
            Some((seq, hash)) => self.write_with(&**signer, seq, hash),
            None => Ok(()),
        }
    }

    fn write_with(&self, signer: &dyn HeadSigner, seq: u64, hash: &str) -> std::io::Result<()> {
        use std::io::Write;
        let c = Checkpoint::sign(seq, hash, signer);
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&c).unwrap_or_default())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)
    }
}

/// Checkpointing the head of the log under the vault's signer.
impl super::Audit {
    /// Signs head checkpoints from now on (the vault provides the signer, once it is open).
    /// If the checkpoint on disk does not match the log (entries removed, checkpoint edited or
    /// deleted), the problem is kept, checkpoints are not overwritten, and `verify` reports
    /// it; `serve` records it in the log with [`Audit::record_anchor_problem`] first.
    pub fn set_anchor(&self, dir: &std::path::Path, signer: Box<dyn HeadSigner>) {
        let a = Arc::new(Anchor::new(dir, signer));
        *lock(&self.anchor) = Some(a.clone());
        let (seq, hash) = self.head();
        match self.quick_check(&a, seq, &hash) {
            None => *lock(&self.shared.anchor) = Some(a),
            Some(problem) => *lock(&self.anchor_problem) = Some(problem),
        }
    }

    /// A root-key rotation in a running server changed the checkpoint key: sign the head
    /// again under the new one now (after making the log durable up to it), so a crash
    /// before the next checkpoint does not leave one the next start calls forged. A mismatch
    /// found at start-up and not yet recorded stays untouched: it is evidence.
    pub fn replace_signer(&self, signer: Box<dyn HeadSigner>) -> Result<(), AuditError> {
        let Some(a) = lock(&self.anchor).clone() else {
            return Ok(());
        };
        let (seq, hash) = self.head();
        self.sync_blocking();
        self.store.flush_blocking()?;
        let live = lock(&self.shared.anchor).is_some();
        a.replace_signer(signer, live.then_some((seq, hash.as_str())))
            .map_err(|e| StoreError::Io(format!("cannot write the audit head checkpoint: {e}")))?;
        Ok(())
    }

    /// `serve` only: writes a start-up's checkpoint mismatch into the log (so the evidence
    /// outlives the checkpoint the writer now replaces) and resumes checkpointing.
    pub fn record_anchor_problem(&self) -> Result<Option<String>, AuditError> {
        let problem = lock(&self.anchor_problem).take();
        if let Some(p) = &problem {
            let (seq, hash) = self.head();
            self.append(NewEntry {
                actor: ActorRef::system(),
                chain: vec![],
                action: "audit.head_mismatch".into(),
                target: "audit".into(),
                outcome: Outcome::Error,
                detail: serde_json::json!({"problem": p, "log_head": format!("{seq}:{hash}")}),
            })?;
        }
        *lock(&self.shared.anchor) = lock(&self.anchor).clone();
        Ok(problem)
    }

    /// Compares the checkpoint with the head without walking the chain.
    fn quick_check(&self, a: &Anchor, seq: u64, hash: &str) -> Option<String> {
        match a.read() {
            Found::Missing if seq == 0 => None,
            Found::Valid(cp) if cp.seq == seq && cp.hash == hash => None,
            Found::Valid(cp) if cp.seq < seq => {
                // Entries after the checkpoint (a crash before it was refreshed): the entry
                // it names must still be the one it names.
                match self.entry(cp.seq) {
                    Ok(Some(e)) if e.hash == cp.hash => None,
                    _ => Some(checkpoint_problem(&Found::Valid(cp), seq, None)),
                }
            }
            found => Some(checkpoint_problem(&found, seq, None)),
        }
    }
}

/// Parses `SEQ:HASH` (the form `legate audit verify` prints and `--head` takes).
pub fn parse_head(s: &str) -> Option<(u64, String)> {
    let (seq, hash) = s.trim().split_once(':')?;
    let seq = seq.parse().ok()?;
    let hash = hash.to_ascii_lowercase();
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some((seq, hash))
}

#[cfg(test)]
pub(super) struct TestSigner(pub u8);

#[cfg(test)]
impl HeadSigner for TestSigner {
    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        let h = super::sha256_hex(&[&[self.0], msg]);
        let mut out = [0u8; 32];
        out.copy_from_slice(
            &data_encoding::HEXLOWER
                .decode(h.as_bytes())
                .unwrap_or_default()[..32],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_verify_only_under_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = Anchor::new(dir.path(), Box::new(TestSigner(1)));
        assert!(matches!(a.read(), Found::Missing));
        a.write(7, &"ab".repeat(32)).unwrap();
        match a.read() {
            Found::Valid(c) => assert_eq!((c.seq, c.hash.len()), (7, 64)),
            other => panic!("{other:?}"),
        }
        let other = Anchor::new(dir.path(), Box::new(TestSigner(2)));
        assert!(matches!(other.read(), Found::Forged));
        // Lowering the head by hand breaks the MAC.
        let p = dir.path().join(FILE);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"seq\":7", "\"seq\":3");
        std::fs::write(&p, text).unwrap();
        assert!(matches!(a.read(), Found::Forged));
    }

    #[test]
    fn head_strings_parse() {
        let h = "AB".repeat(32);
        assert_eq!(parse_head(&format!("12:{h}")), Some((12, h.to_lowercase())));
        assert_eq!(parse_head("12"), None);
        assert_eq!(parse_head("x:ab"), None);
    }
}
