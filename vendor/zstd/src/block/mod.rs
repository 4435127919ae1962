//! Compress and decompress individual blocks.
//!
//! These methods process all the input data at once.
//! It is therefore best used with relatively small blocks
//! (like small network packets).

mod compressor;
mod decompressor;

pub use self::compressor::Compressor;
pub use self::decompressor::Decompressor;

use std::cell::Cell;
use std::io;

// Patched for legate: one context per thread. Creating a zstd context costs more than
// compressing a small block with it (it clears its tables, and zstd asks the CPU for its
// features with `cpuid`, which traps to the hypervisor on a virtual machine: about 20 µs
// each on the machine this was measured on, three per context). sled compresses every page
// write with `compress` below, so a context per call was most of the cost of storing a
// message. A context keeps no state between these one-shot calls (each sets its level and
// starts a new frame), so the output is byte-identical.
thread_local! {
    static COMPRESSOR: Cell<Option<Compressor>> = Cell::new(None);
    static DECOMPRESSOR: Cell<Option<Decompressor>> = Cell::new(None);
}

/// Runs `f` on this thread's compressor, taken out for the call (a re-entrant call, or one
/// during thread exit, makes its own).
fn with_compressor<T>(f: impl FnOnce(&mut Compressor) -> T) -> T {
    let mut c = COMPRESSOR
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default();
    let out = f(&mut c);
    let _ = COMPRESSOR.try_with(|slot| slot.set(Some(c)));
    out
}

/// [`with_compressor`] for decompression.
fn with_decompressor<T>(f: impl FnOnce(&mut Decompressor) -> T) -> T {
    let mut d = DECOMPRESSOR
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default();
    let out = f(&mut d);
    let _ = DECOMPRESSOR.try_with(|slot| slot.set(Some(d)));
    out
}

/// Compresses a single block of data to the given destination buffer.
///
/// Returns the number of bytes written, or an error if something happened
/// (for instance if the destination buffer was too small).
///
/// A level of `0` uses zstd's default (currently `3`).
pub fn compress_to_buffer(
    source: &[u8],
    destination: &mut [u8],
    level: i32,
) -> io::Result<usize> {
    with_compressor(|c| c.compress_to_buffer(source, destination, level))
}

/// Compresses a block of data and returns the compressed result.
///
/// A level of `0` uses zstd's default (currently `3`).
pub fn compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    with_compressor(|c| c.compress(data, level))
}

/// Deompress a single block of data to the given destination buffer.
///
/// Returns the number of bytes written, or an error if something happened
/// (for instance if the destination buffer was too small).
pub fn decompress_to_buffer(
    source: &[u8],
    destination: &mut [u8],
) -> io::Result<usize> {
    with_decompressor(|d| d.decompress_to_buffer(source, destination))
}

/// Decompresses a block of data and returns the decompressed result.
///
/// The decompressed data should be less than `capacity` bytes,
/// or an error will be returned.
pub fn decompress(data: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
    with_decompressor(|d| d.decompress(data, capacity))
}

#[cfg(test)]
mod tests {
    use super::{compress, decompress};

    #[test]
    fn test_direct() {
        // Can we include_str!("assets/example.txt")?
        // It's excluded from the packaging step, so maybe not.
        let text = include_str!("../../assets/example.txt");
        crate::test_cycle_unwrap(
            text.as_bytes(),
            |data| compress(data, 1),
            |data| decompress(data, text.len()),
        );
    }
}
