//! Compression of blob files (zstd). A body at or above the threshold is stored as
//! `<hash>.zst` when that saves at least an eighth of it; anything else stays a plain file,
//! so stores written before compression, or with it off, read as they always did. The
//! suffix, not a magic number, marks the format: a raw message may begin with any bytes.
//!
//! Readers decompress as a stream ([`open`]), so a range or a whole `/raw` never needs the
//! message in memory. The blob's name stays the hash of the raw bytes, so deduplication and
//! `store verify --deep` are unaffected by how a file is stored.

use std::cell::RefCell;
use std::io::{self, Read};

/// zstd level 3 (zstd's default): most of the ratio of higher levels on text mail, at a
/// cost well under the fsync that follows it.
const LEVEL: i32 = 3;

thread_local! {
    /// One compression context per thread: creating one costs more than compressing a
    /// small message (it allocates and clears its tables).
    static COMPRESSOR: RefCell<zstd::block::Compressor> = RefCell::new(zstd::block::Compressor::new());
}

/// The compressed form of `bytes`, or None when it would not save an eighth.
pub(super) fn compress(bytes: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let out = COMPRESSOR.with(|c| c.borrow_mut().compress(bytes, LEVEL))?;
    Ok((out.len() < bytes.len() - bytes.len() / 8).then_some(out))
}

/// A streaming reader of the raw bytes of a `.zst` file.
pub(super) fn open(f: std::fs::File) -> io::Result<Box<dyn Read + Send>> {
    Ok(Box::new(zstd::stream::read::Decoder::new(f)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_compresses_and_reads_back_and_noise_is_left_alone() {
        let text = "Dear agent, your code is 482913.\r\n".repeat(200);
        let z = compress(text.as_bytes()).unwrap().unwrap();
        assert!(z.len() < text.len() / 10);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.zst");
        std::fs::write(&p, &z).unwrap();
        let mut back = String::new();
        open(std::fs::File::open(&p).unwrap())
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        // Random bytes do not shrink: stored plain.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert!(compress(&noise).unwrap().is_none());
    }
}
