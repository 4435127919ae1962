//! Where a message body waits while it arrives: memory up to `smtp.spool_threshold_bytes`,
//! then an anonymous temporary file in the data directory.
//!
//! Without it every connection could hold `max_message_size` (25 MiB) in memory while a
//! client trickles its DATA in, so a few hundred slow senders would exhaust the host. The
//! file is unlinked from the start (`tempfile::tempfile_in` uses `O_TMPFILE` or unlinks at
//! once), so it disappears on every exit path: the transaction dropped, the session ended, or
//! the process killed. The writes are plain blocking writes of at most one read buffer at a
//! time into the page cache, which the runtime tolerates as it does any small syscall.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// A message body being received.
#[derive(Debug)]
pub(super) struct Spool {
    /// The body while it is small.
    mem: Vec<u8>,
    /// The body once it outgrew `threshold`.
    file: Option<std::fs::File>,
    len: usize,
    threshold: usize,
    dir: PathBuf,
    /// A write to the file failed: the message is answered with a temporary failure.
    failed: bool,
}

impl Spool {
    pub fn new(threshold: usize, dir: PathBuf) -> Self {
        Self {
            mem: Vec::new(),
            file: None,
            len: 0,
            threshold,
            dir,
            failed: false,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body went to disk.
    #[cfg(test)]
    pub fn on_disk(&self) -> bool {
        self.file.is_some()
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Appends bytes, moving the body to a file when it passes the threshold.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed || bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if self.file.is_none() && self.mem.len() + bytes.len() <= self.threshold {
            self.mem.extend_from_slice(bytes);
            return;
        }
        if self.file.is_none() {
            let moved = std::fs::create_dir_all(&self.dir)
                .and_then(|_| tempfile::tempfile_in(&self.dir))
                .and_then(|mut f| f.write_all(&self.mem).map(|_| f));
            match moved {
                Ok(f) => {
                    self.file = Some(f);
                    self.mem = Vec::new();
                }
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.dir.display(), "cannot spool a message body");
                    self.fail();
                    return;
                }
            }
        }
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.write_all(bytes) {
                tracing::error!(error = %e, "cannot spool a message body");
                self.fail();
            }
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.discard();
    }

    /// Drops what was received (an oversize or refused body keeps being read, not kept).
    pub fn discard(&mut self) {
        self.mem = Vec::new();
        self.file = None;
    }

    /// The whole body, read back for verification and storage.
    pub fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        match self.file {
            None => Ok(self.mem),
            Some(mut f) => {
                f.seek(SeekFrom::Start(0))?;
                let mut out = Vec::with_capacity(self.len);
                f.read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory_large_ones_go_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(10, dir.path().join("spool"));
        s.push(b"hello ");
        assert!(!s.on_disk());
        s.push(b"world, and more");
        assert!(s.on_disk());
        s.push(b"!");
        assert_eq!(s.len(), 22);
        assert_eq!(s.into_bytes().unwrap(), b"hello world, and more!");
        // the file was never linked into the directory
        let left = std::fs::read_dir(dir.path().join("spool")).unwrap().count();
        assert_eq!(left, 0);
    }

    #[test]
    fn an_unwritable_spool_fails_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let mut s = Spool::new(2, blocker.join("spool"));
        s.push(b"abcdef");
        assert!(s.failed());
        assert!(s.into_bytes().unwrap().is_empty());
    }
}
