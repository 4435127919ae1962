//! Open handles on the blob store's 256 fan-out directories (`ab/` of `ab/cdef…`), so a
//! blob's file is opened, tested or renamed by its name relative to its directory.
//!
//! Why: a bulk IMAP FETCH opens one file per message, and an absolute path makes the kernel
//! walk every component of the data directory again each time (7% of a 5,000-message
//! FETCH); the put path fsynced each directory by opening it anew per message. A handle
//! is kept once its directory exists and lives as long as the store: nothing removes a
//! fan-out directory while the store is open (a restore replaces the data directory of a
//! stopped server). Replacing one under a running server is as unsupported as replacing
//! its database: reads would go on in the old directory.

use super::BlobId;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A blob's file name inside its directory: the hash's last 31 bytes in hex, with `.zst`
/// for the compressed form. Built on the stack: no allocation per open.
pub(super) struct Name {
    buf: [u8; 66],
    len: usize,
}

impl Name {
    pub(super) fn of(id: &BlobId, packed: bool) -> Name {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 66];
        for (i, b) in id.0[1..].iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        let mut len = 62;
        if packed {
            buf[62..66].copy_from_slice(b".zst");
            len = 66;
        }
        Name { buf, len }
    }

    pub(super) fn as_str(&self) -> &str {
        // Only ASCII hex digits and ".zst" are ever written into it.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// The fan-out directories of one blob root, opened on first use.
pub(super) struct Dirs {
    root: PathBuf,
    fds: Box<[OnceLock<OwnedFd>]>,
}

impl Dirs {
    pub(super) fn new(root: &Path) -> Dirs {
        Dirs {
            root: root.to_path_buf(),
            fds: (0..256).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The directory of `id`; None while it does not exist yet.
    pub(super) fn get(&self, id: &BlobId) -> io::Result<Option<&OwnedFd>> {
        let slot = &self.fds[usize::from(id.0[0])];
        if let Some(fd) = slot.get() {
            return Ok(Some(fd));
        }
        let path = self.root.join(&id.hex()[..2]);
        let fd = match rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Two threads may open it at once: the first handle kept wins, the other is closed.
        let _ = slot.set(fd);
        Ok(slot.get())
    }

    /// Opens `id`'s file of the given form for reading; None if it is not there.
    pub(super) fn open(&self, id: &BlobId, packed: bool) -> io::Result<Option<File>> {
        let Some(dir) = self.get(id)? else {
            return Ok(None);
        };
        match rustix::fs::openat(
            dir,
            Name::of(id, packed).as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `id`'s file of the given form exists.
    pub(super) fn exists(&self, id: &BlobId, packed: bool) -> io::Result<bool> {
        let Some(dir) = self.get(id)? else {
            return Ok(false);
        };
        match rustix::fs::statat(dir, Name::of(id, packed).as_str(), AtFlags::empty()) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves the file at `from` (a finished temp file) to `id`'s name in its directory.
    pub(super) fn rename_into(&self, from: &Path, id: &BlobId, packed: bool) -> io::Result<()> {
        let Some(dir) = self.get(id)? else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "blob directory vanished",
            ));
        };
        Ok(rustix::fs::renameat(
            rustix::fs::CWD,
            from,
            dir,
            Name::of(id, packed).as_str(),
        )?)
    }

    /// Makes a rename into `id`'s directory durable.
    pub(super) fn sync(&self, id: &BlobId) -> io::Result<()> {
        match self.get(id)? {
            Some(dir) => Ok(rustix::fs::fsync(dir)?),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "blob directory vanished",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_the_path_without_its_directory() {
        let id = BlobId::of(b"x");
        let hex = id.hex();
        assert_eq!(Name::of(&id, false).as_str(), &hex[2..]);
        assert_eq!(Name::of(&id, true).as_str(), format!("{}.zst", &hex[2..]));
    }

    #[test]
    fn opens_by_name_once_the_directory_exists() {
        let d = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(d.path());
        let id = BlobId::of(b"x");
        assert!(dirs.open(&id, false).unwrap().is_none());
        assert!(!dirs.exists(&id, false).unwrap());
        let hex = id.hex();
        std::fs::create_dir(d.path().join(&hex[..2])).unwrap();
        std::fs::write(d.path().join(&hex[..2]).join(&hex[2..]), b"x").unwrap();
        let mut s = String::new();
        use std::io::Read;
        dirs.open(&id, false)
            .unwrap()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "x");
        assert!(dirs.exists(&id, false).unwrap());
        assert!(!dirs.exists(&id, true).unwrap());
        dirs.sync(&id).unwrap();
    }
}
