//! `legate backup` and `legate restore`: a consistent online snapshot of the store and the
//! message bodies it references, in one zstd-compressed file with a manifest.
//!
//! Consistency comes from the store ([`crate::store::snapshot`]): writes pause while every
//! tree is read, so the copy is the state after one write and before the next. The root
//! (master) key is never in a backup: the vault's keys are in it only wrapped by the root
//! key, so a stolen backup opens nothing, and the restored server needs the same root key
//! as the one backed up.

mod archive;

use crate::store::{BlobId, Store, StoreError, Tree};
use archive::{Frame, Reader, Writer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the file layout ([`archive`]).
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup I/O: {0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Format(String),
    #[error("{} is not empty: restore only into a new or empty directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("the backup was made by a newer legate (schema {found}, format {format}); this binary reads schema {supported}, format {FORMAT}")]
    Newer {
        found: u32,
        format: u32,
        supported: u32,
    },
    #[error("the restored data does not verify: {0}")]
    Verify(String),
}

impl From<std::io::Error> for BackupError {
    fn from(e: std::io::Error) -> Self {
        BackupError::Io(e.to_string())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    legate_version: String,
    schema_version: u32,
}

/// What a backup holds, written last into it and printed by both commands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub legate_version: String,
    pub schema_version: u32,
    pub created_at: String,
    /// Entries per store tree.
    pub trees: BTreeMap<String, u64>,
    pub counts: Counts,
    /// `SEQ:HASH` of the newest audit entry in the backup.
    pub audit_head: Option<String>,
    /// Always false; said explicitly so whoever reads the manifest knows where the key is not.
    pub master_key_included: bool,
    /// Hex SHA-256 of every frame before the manifest.
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub humans: u64,
    pub orgs: u64,
    pub agents: u64,
    pub api_keys: u64,
    pub credentials: u64,
    pub messages: u64,
    pub queued: u64,
    pub audit_pages: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
}

fn counts(trees: &BTreeMap<String, u64>) -> Counts {
    let n = |t: Tree| trees.get(t.name()).copied().unwrap_or(0);
    Counts {
        humans: n(Tree::Humans),
        orgs: n(Tree::Orgs),
        agents: n(Tree::Agents),
        api_keys: n(Tree::ApiKeys),
        credentials: n(Tree::VaultCredentials),
        messages: n(Tree::Messages),
        queued: n(Tree::Queue),
        audit_pages: n(Tree::Audit),
        blobs: 0,
        blob_bytes: 0,
    }
}

/// Writes a backup of `store` (whose data directory is `data_dir`) to `to`, atomically: a
/// temporary file renamed into place once complete and synced, so `to` is never half a
/// backup. Blocking.
pub fn create(store: &Store, data_dir: &Path, to: &Path) -> Result<Manifest, BackupError> {
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".legate-backup")
        .tempfile_in(dir)?;
    let file = std::io::BufWriter::new(tmp.as_file().try_clone()?);
    let mut w = Writer::new(file)?;
    let header = Header {
        format: FORMAT,
        legate_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: crate::store::SCHEMA_VERSION,
    };
    w.frame(b'H', &[&json_bytes(&header)?])?;
    let mut trees: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_audit: Option<Vec<u8>> = None;
    let anchor_path = data_dir.join(crate::audit::HEAD_FILE);
    let mut anchor: Option<Vec<u8>> = None;
    let blobs = store.snapshot::<BackupError>(
        |t, k, v| {
            *trees.entry(t.name().to_string()).or_insert(0) += 1;
            if t == Tree::Audit {
                last_audit = Some(v.to_vec());
            }
            w.entry(t.name(), k, v)
        },
        || {
            // The checkpoint names an entry the writer had stored before the gate closed,
            // so it matches this copy of the log.
            anchor = match std::fs::read(&anchor_path) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            Ok(())
        },
    )?;
    if let Some(a) = &anchor {
        w.frame(b'A', &[a])?;
    }
    let mut c = counts(&trees);
    for id in blobs.ids() {
        let body = store.blob_by_id(&id)?.ok_or_else(|| {
            BackupError::Store(StoreError::Corrupt(format!("blob {} is missing", id.hex())))
        })?;
        c.blobs += 1;
        c.blob_bytes += body.len() as u64;
        w.frame(b'B', &[&id.0, &body])?;
    }
    drop(blobs);
    let audit_head = last_audit
        .as_deref()
        .and_then(crate::audit::head_of_page)
        .map(|(seq, hash)| format!("{seq}:{hash}"));
    let manifest = Manifest {
        format: FORMAT,
        legate_version: header.legate_version,
        schema_version: header.schema_version,
        created_at: crate::util::rfc3339(crate::util::now_millis() / 1000),
        trees,
        counts: c,
        audit_head,
        master_key_included: false,
        sha256: w.digest(),
    };
    let file = w.finish(&json_bytes(&manifest)?)?;
    let file = file
        .into_inner()
        .map_err(|e| BackupError::Io(e.error().to_string()))?;
    file.sync_all()?;
    tmp.persist(to)
        .map_err(|e| BackupError::Io(format!("{}: {}", to.display(), e.error)))?;
    sync_parent(to);
    Ok(manifest)
}

fn json_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, BackupError> {
    serde_json::to_vec(v).map_err(|e| BackupError::Format(e.to_string()))
}

fn sync_parent(p: &Path) {
    if let Some(dir) = p.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Restores the backup `from` into `dir`, which must be missing or empty. Checks the
/// manifest (digest, counts), then opens the result as a server would (migrating an older
/// schema) and verifies the audit chain up to the recorded head and that every message has
/// its body. On any failure `dir` is emptied again. Blocking.
pub fn restore(from: &Path, dir: &Path) -> Result<Manifest, BackupError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(dir.to_path_buf()));
        }
    }
    let file = std::fs::File::open(from)
        .map_err(|e| BackupError::Io(format!("{}: {e}", from.display())))?;
    let result = restore_into(std::io::BufReader::new(file), dir);
    if result.is_err() {
        clear_dir(dir);
    }
    result
}

fn clear_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

fn restore_into(input: impl std::io::Read, dir: &Path) -> Result<Manifest, BackupError> {
    let mut r = Reader::new(input)?;
    let header: Header = match r.next()? {
        Frame::Header(h) => serde_json::from_slice(&h)
            .map_err(|e| BackupError::Format(format!("backup header: {e}")))?,
        _ => {
            return Err(BackupError::Format(
                "the backup does not start with its header".into(),
            ))
        }
    };
    if header.format > FORMAT || header.schema_version > crate::store::SCHEMA_VERSION {
        return Err(BackupError::Newer {
            found: header.schema_version,
            format: header.format,
            supported: crate::store::SCHEMA_VERSION,
        });
    }
    let store = Store::open(dir)?;
    let mut trees: BTreeMap<String, u64> = BTreeMap::new();
    let (mut blobs, mut blob_bytes) = (0u64, 0u64);
    let mut anchor = None;
    let manifest: Manifest = loop {
        match r.next()? {
            Frame::Entry { tree, key, value } => {
                store.import_entry(&tree, &key, &value)?;
                *trees.entry(tree).or_insert(0) += 1;
            }
            Frame::Blob { id, bytes } => {
                store.import_blob(&BlobId(id), &bytes)?;
                blobs += 1;
                blob_bytes += bytes.len() as u64;
            }
            Frame::Anchor(a) => anchor = Some(a),
            Frame::Header(_) => return Err(BackupError::Format("a second header".into())),
            Frame::Manifest(m) => {
                break serde_json::from_slice(&m)
                    .map_err(|e| BackupError::Format(format!("backup manifest: {e}")))?
            }
        }
    };
    if r.digest() != manifest.sha256 {
        return Err(BackupError::Verify(
            "the content does not match the manifest's digest".into(),
        ));
    }
    if trees != manifest.trees
        || blobs != manifest.counts.blobs
        || blob_bytes != manifest.counts.blob_bytes
    {
        return Err(BackupError::Verify(
            "entry or blob counts differ from the manifest".into(),
        ));
    }
    store.flush_blocking()?;
    drop(store);
    if let Some(a) = anchor {
        std::fs::write(dir.join(crate::audit::HEAD_FILE), a)?;
    }
    verify_restored(dir, &manifest)?;
    Ok(manifest)
}

/// Opens the restored directory as the server will: schema migrations, the audit chain
/// recomputed and reaching the manifest's head, every message's body present.
fn verify_restored(dir: &Path, m: &Manifest) -> Result<(), BackupError> {
    let store = Store::open(dir)?;
    let report = store.verify_blobs(false, None)?;
    if !report.missing.is_empty() {
        return Err(BackupError::Verify(format!(
            "{} message(s) without their body, e.g. {}",
            report.missing.len(),
            report.missing[0]
        )));
    }
    let audit = crate::audit::Audit::open(store.clone())
        .map_err(|e| BackupError::Verify(format!("audit log: {e}")))?;
    let head = m
        .audit_head
        .as_deref()
        .map(|h| {
            crate::audit::parse_head(h)
                .ok_or_else(|| BackupError::Format("manifest audit_head".into()))
        })
        .transpose()?;
    let v = audit
        .verify_with(head)
        .map_err(|e| BackupError::Verify(format!("audit log: {e}")))?;
    if let Some(seq) = v.first_broken {
        return Err(BackupError::Verify(format!(
            "audit chain broken at entry {seq}: {}",
            v.reason.unwrap_or_default()
        )));
    }
    if v.head != m.audit_head && m.audit_head.is_some() {
        return Err(BackupError::Verify(format!(
            "audit head {:?} is not the manifest's {:?}",
            v.head, m.audit_head
        )));
    }
    store.flush_blocking()?;
    Ok(())
}
