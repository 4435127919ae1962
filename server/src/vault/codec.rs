//! A tiny length-prefixed byte codec for plaintexts that go into a seal.
//!
//! Hand-written rather than serde + postcard for one reason: the output buffer is sized
//! exactly up front and is `Zeroizing`, so no reallocation leaves a stray copy of a secret
//! behind in freed memory. Inputs are authenticated before they are decoded, but the reader
//! still bounds-checks everything and never panics.

use zeroize::Zeroizing;

/// Builds a plaintext into a wiped-on-drop buffer of a capacity the caller computed.
pub(super) struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    /// `len as u32 BE || bytes`. Callers bound their fields far below 4 GiB.
    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }

    pub(super) fn finish(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

/// Bytes taken by [`Writer::bytes`] for a field of `len` bytes.
pub(super) fn bytes_len(len: usize) -> usize {
    4 + len
}

/// Reads what [`Writer`] wrote. `None` means malformed; the caller turns it into
/// `VaultError::Corrupt` naming what it was decoding.
pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn new(input: &'a [u8]) -> Self {
        Self(input)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        let head = self.take(4)?;
        Some(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))
    }

    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }

    pub(super) fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sizes_exactly() {
        let mut w = Writer::with_capacity(1 + 4 + bytes_len(3));
        w.u8(9);
        w.u32(0x0102_0304);
        w.bytes(b"abc");
        let out = w.finish();
        assert_eq!(out.len(), out.capacity());
        let mut r = Reader::new(&out);
        assert_eq!(r.u8(), Some(9));
        assert_eq!(r.u32(), Some(0x0102_0304));
        assert_eq!(r.str(), Some("abc"));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
    }

    #[test]
    fn truncated_input_is_none() {
        let mut r = Reader::new(&[0, 0, 0, 5, b'a']);
        assert_eq!(r.bytes(), None);
        let mut r = Reader::new(&[0, 0]);
        assert_eq!(r.u32(), None);
        let mut r = Reader::new(&[0, 0, 0, 1, 0xff]);
        assert_eq!(r.str(), None);
    }
}
