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
        let mut buf = [0u8; 66];
        data_encoding::HEXLOWER.encode_mut(&id.0[1..], &mut buf[..62]);
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

    fn path_of(&self, id: &BlobId) -> PathBuf {
        self.root.join(&id.hex()[..2])
    }

    /// The directory of `id`; None while it does not exist yet.
    pub(super) fn get(&self, id: &BlobId) -> io::Result<Option<&OwnedFd>> {
        let slot = &self.fds[usize::from(id.0[0])];
        if let Some(fd) = slot.get() {
            return Ok(Some(fd));
        }
        let fd = match rustix::fs::open(
            self.path_of(id),
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

    /// The directory of `id`, made (and its entry in the root made durable) if it is not
    /// there yet: where a new blob goes.
    pub(super) fn ensure(&self, id: &BlobId) -> io::Result<&OwnedFd> {
        if let Some(fd) = self.get(id)? {
            return Ok(fd);
        }
        std::fs::create_dir_all(self.path_of(id))?;
        File::open(&self.root)?.sync_all()?;
        self.get(id)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "blob directory vanished"))
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

    /// Moves the file at `from` (a finished temp file) to `id`'s name in its directory, and
    /// makes the rename durable.
    pub(super) fn rename_into(&self, from: &Path, id: &BlobId, packed: bool) -> io::Result<()> {
        let dir = self.ensure(id)?;
        rustix::fs::renameat(rustix::fs::CWD, from, dir, Name::of(id, packed).as_str())?;
        Ok(rustix::fs::fsync(dir)?)
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
    }

    #[test]
    fn a_temp_file_is_renamed_into_a_directory_made_for_it() {
        let d = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(d.path());
        let id = BlobId::of(b"y");
        let tmp = d.path().join("t");
        std::fs::write(&tmp, b"y").unwrap();
        dirs.rename_into(&tmp, &id, true).unwrap();
        assert!(!tmp.exists());
        assert!(dirs.exists(&id, true).unwrap());
        let hex = id.hex();
        let placed = d.path().join(&hex[..2]).join(format!("{}.zst", &hex[2..]));
        assert_eq!(std::fs::read(placed).unwrap(), b"y");
    }
}
