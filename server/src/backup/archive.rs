//! The backup file: a zstd stream of frames, each `tag (1 byte) | length (u64 BE) | body`.
//!
//! | tag | body |
//! |-----|------|
//! | `H` | header JSON: format, legate and schema versions (first, so a restore refuses a newer schema before writing anything) |
//! | `T` | one store entry: tree-name length (u8), tree name, key length (u32 BE), key, value |
//! | `B` | one message body: blob id (32 bytes, SHA-256 of the body), the body |
//! | `A` | the signed audit head checkpoint file, as it was at the snapshot's point |
//! | `M` | manifest JSON (last): counts, audit head, SHA-256 of every frame before it |
//!
//! zstd's own frame checksum is on, so a flipped bit fails decompression; the manifest's
//! digest and counts catch a file cut between frames.

use super::BackupError;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

pub(super) const MAGIC: &[u8] = b"LEGATE-BACKUP\n";
/// zstd level: 3 is zstd's default, fast enough to run while writers wait on the snapshot.
const LEVEL: i32 = 3;

pub(super) struct Writer<W: Write> {
    out: zstd::stream::Encoder<'static, W>,
    digest: Sha256,
}

impl<W: Write> Writer<W> {
    pub(super) fn new(w: W) -> Result<Self, BackupError> {
        let mut out = zstd::stream::Encoder::new(w, LEVEL)?;
        out.include_checksum(true)?;
        out.write_all(MAGIC)?;
        Ok(Writer {
            out,
            digest: Sha256::new(),
        })
    }

    pub(super) fn frame(&mut self, tag: u8, parts: &[&[u8]]) -> Result<(), BackupError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut head = [0u8; 9];
        head[0] = tag;
        head[1..].copy_from_slice(&(len as u64).to_be_bytes());
        self.out.write_all(&head)?;
        self.digest.update(head);
        for p in parts {
            self.out.write_all(p)?;
            self.digest.update(p);
        }
        Ok(())
    }

    pub(super) fn entry(
        &mut self,
        tree: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), BackupError> {
        let name = u8::try_from(tree.len())
            .map_err(|_| BackupError::Format(format!("tree name {tree:?} too long")))?;
        let klen = u32::try_from(key.len())
            .map_err(|_| BackupError::Format("key longer than 4 GiB".into()))?;
        self.frame(
            b'T',
            &[&[name], tree.as_bytes(), &klen.to_be_bytes(), key, value],
        )
    }

    /// Hex SHA-256 of every frame written so far (what the manifest records).
    pub(super) fn digest(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.digest.clone().finalize())
    }

    /// Writes the manifest frame and ends the stream.
    pub(super) fn finish(mut self, manifest: &[u8]) -> Result<W, BackupError> {
        let len = manifest.len() as u64;
        let mut head = [0u8; 9];
        head[0] = b'M';
        head[1..].copy_from_slice(&len.to_be_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(manifest)?;
        Ok(self.out.finish()?)
    }
}

/// One frame read back.
pub(super) enum Frame {
    Header(Vec<u8>),
    Entry {
        tree: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Blob {
        id: [u8; 32],
        bytes: Vec<u8>,
    },
    Anchor(Vec<u8>),
    Manifest(Vec<u8>),
}

pub(super) struct Reader<R: Read> {
    input: zstd::stream::Decoder<'static, std::io::BufReader<R>>,
    digest: Sha256,
}

impl<R: Read> Reader<R> {
    pub(super) fn new(r: R) -> Result<Self, BackupError> {
        let mut input = zstd::stream::Decoder::new(r)
            .map_err(|e| BackupError::Format(format!("not a legate backup: {e}")))?;
        let mut magic = [0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .map_err(|_| BackupError::Format("not a legate backup (no header)".into()))?;
        if magic != MAGIC {
            return Err(BackupError::Format(
                "not a legate backup (bad magic)".into(),
            ));
        }
        Ok(Reader {
            input,
            digest: Sha256::new(),
        })
    }

    /// Digest of the frames read so far, manifest excluded (compare with the manifest's).
    pub(super) fn digest(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.digest.clone().finalize())
    }

    /// The next frame. A length is never trusted for an allocation: the body grows only as
    /// bytes actually arrive, so a corrupt length costs an error, not the memory it names.
    pub(super) fn next(&mut self) -> Result<Frame, BackupError> {
        let mut head = [0u8; 9];
        self.input
            .read_exact(&mut head)
            .map_err(|_| BackupError::Format("the backup ends before its manifest".into()))?;
        let mut len = [0u8; 8];
        len.copy_from_slice(&head[1..]);
        let len = u64::from_be_bytes(len);
        let mut body = Vec::new();
        (&mut self.input)
            .take(len)
            .read_to_end(&mut body)
            .map_err(|e| BackupError::Format(format!("unreadable frame: {e}")))?;
        if body.len() as u64 != len {
            return Err(BackupError::Format("the backup is cut short".into()));
        }
        if head[0] != b'M' {
            self.digest.update(head);
            self.digest.update(&body);
        }
        match head[0] {
            b'H' => Ok(Frame::Header(body)),
            b'A' => Ok(Frame::Anchor(body)),
            b'M' => Ok(Frame::Manifest(body)),
            b'B' => {
                if body.len() < 32 {
                    return Err(BackupError::Format("short blob frame".into()));
                }
                let bytes = body.split_off(32);
                let mut id = [0u8; 32];
                id.copy_from_slice(&body);
                Ok(Frame::Blob { id, bytes })
            }
            b'T' => parse_entry(body),
            t => Err(BackupError::Format(format!("unknown frame type {t:#04x}"))),
        }
    }
}

fn parse_entry(body: Vec<u8>) -> Result<Frame, BackupError> {
    let bad = || BackupError::Format("malformed entry frame".into());
    let n = *body.first().ok_or_else(bad)? as usize;
    let tree = body.get(1..1 + n).ok_or_else(bad)?;
    let tree = String::from_utf8(tree.to_vec()).map_err(|_| bad())?;
    let at = 1 + n;
    let klen: [u8; 4] = body
        .get(at..at + 4)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let klen = u32::from_be_bytes(klen) as usize;
    let key = body.get(at + 4..at + 4 + klen).ok_or_else(bad)?.to_vec();
    let value = body.get(at + 4 + klen..).ok_or_else(bad)?.to_vec();
    Ok(Frame::Entry { tree, key, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_named() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.frame(b'H', &[b"{}"]).unwrap();
        w.entry("agents", b"k", b"value").unwrap();
        w.frame(b'B', &[&[7u8; 32], b"body"]).unwrap();
        let digest = w.digest();
        let bytes = w.finish(b"{\"m\":1}").unwrap();
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert!(matches!(r.next().unwrap(), Frame::Header(h) if h == b"{}"));
        match r.next().unwrap() {
            Frame::Entry { tree, key, value } => {
                assert_eq!(
                    (tree.as_str(), &key[..], &value[..]),
                    ("agents", &b"k"[..], &b"value"[..])
                )
            }
            _ => panic!("entry expected"),
        }
        assert!(
            matches!(r.next().unwrap(), Frame::Blob { id, bytes } if id == [7u8; 32] && bytes == b"body")
        );
        assert!(matches!(r.next().unwrap(), Frame::Manifest(m) if m == b"{\"m\":1}"));
        assert_eq!(r.digest(), digest);
        // Cut short: named, not a panic, wherever the cut falls.
        for cut in [bytes.len() / 2, bytes.len() - 3] {
            let failed = match Reader::new(&bytes[..cut]) {
                Err(_) => true,
                Ok(mut r) => (0..5).any(|_| r.next().is_err()),
            };
            assert!(failed, "cut at {cut}");
        }
        assert!(Reader::new(&b"plain text"[..]).is_err());
        assert!(parse_entry(vec![200, b'a']).is_err());
    }
}
