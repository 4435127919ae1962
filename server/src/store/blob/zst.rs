//! Compression of blob files (zstd). A body at or above the threshold is stored as
//! `<hash>.zst` when that saves at least an eighth of it and at least one filesystem block
//! (a 3 KiB message takes one 4 KiB block either way, and compressed it only cost a
//! decompression on every read: IMAP bulk FETCH of such bodies ran at half dovecot's rate);
//! anything else stays a plain file,
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

/// The filesystem block size assumed for "saves disk": ext4's and XFS's default.
const BLOCK: usize = 4096;

/// The compressed form of `bytes`, or None when it would not save an eighth, or not a
/// single block on disk (then none is tried: a body of one block or less stays plain).
pub(super) fn compress(bytes: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let blocks = |n: usize| n.div_ceil(BLOCK);
    if blocks(bytes.len()) <= 1 {
        return Ok(None);
    }
    let out = COMPRESSOR.with(|c| c.borrow_mut().compress(bytes, LEVEL))?;
    let saves =
        out.len() < bytes.len() - bytes.len() / 8 && blocks(out.len()) < blocks(bytes.len());
    Ok(saves.then_some(out))
}

thread_local! {
    /// One decompression context per thread, for whole blobs: a bulk FETCH reads thousands
    /// of small bodies, and a fresh context per message cost a quarter of the CPU.
    static DECOMPRESSOR: RefCell<zstd::block::Decompressor> =
        RefCell::new(zstd::block::Decompressor::new());
}

/// Whole blobs at most this large are decompressed in one call; larger or unsized ones
/// stream.
const BULK_MAX: u64 = 256 * 1024 * 1024;

/// The raw bytes of a whole `.zst` file's contents. Our frames record their size (the bulk
/// compressor writes it); a frame that does not, or a huge one, is streamed instead.
pub(super) fn decompress_all(packed: &[u8]) -> io::Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(packed);
    if size <= BULK_MAX {
        let out = DECOMPRESSOR.with(|d| d.borrow_mut().decompress(packed, size as usize))?;
        if out.len() as u64 == size {
            return Ok(out);
        }
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a compressed blob's size does not match its frame",
        ));
    }
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(packed)?.read_to_end(&mut out)?;
    Ok(out)
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
        assert_eq!(decompress_all(&z).unwrap(), text.as_bytes());
        assert!(decompress_all(&z[..z.len() / 2]).is_err());
        assert!(decompress_all(b"not zstd").is_err());
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
        // One block or less: nothing to save on disk, so stored plain.
        assert!(
            compress("Subject: hi\r\n\r\nhello\r\n".repeat(100).as_bytes())
                .unwrap()
                .is_none()
        );
    }
}
