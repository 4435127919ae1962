//! Loading the root key, and proving at start-up that it is the one this vault was made with.

use super::crypto::{self, Key32, Purpose, Sealed};
use super::VaultError;
use crate::store::{Store, Tree};
use std::path::Path;

/// Where the root key came from, for the start-up log line (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKeySource {
    File(String),
    Env,
    DevFile(String),
}

const CHECK_KEY: &[u8] = b"root_key_check";
const CHECK_PLAINTEXT: &[u8] = b"legate root key check v1";

/// Parses key material: 32 raw bytes, or base64 of 32 bytes (with or without a newline).
pub fn parse_key(bytes: &[u8]) -> Result<Key32, VaultError> {
    if bytes.len() == 32 {
        return Key32::from_bytes(bytes).ok_or_else(|| VaultError::RootKey("bad length".into()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| VaultError::RootKey("not 32 bytes nor base64 text".into()))?
        .trim();
    let raw = zeroize::Zeroizing::new(
        data_encoding::BASE64
            .decode(text.as_bytes())
            .map_err(|_| VaultError::RootKey("not valid base64".into()))?,
    );
    Key32::from_bytes(&raw)
        .ok_or_else(|| VaultError::RootKey(format!("decodes to {} bytes, not 32", raw.len())))
}

/// Reads a key file, refusing one that group or others can read.
pub fn load_file(path: &Path) -> Result<Key32, VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| VaultError::RootKey(format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::RootKey(format!(
            "{} has mode {mode:o}; it must not be readable by group or others (chmod 600)",
            path.display()
        )));
    }
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| VaultError::RootKey(format!("cannot read {}: {e}", path.display())))?,
    );
    parse_key(&bytes)
}

/// Creates a new key file (mode 0600, never world-readable even briefly). Refuses to
/// overwrite.
pub fn create_file(path: &Path) -> Result<Key32, VaultError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = Key32::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| VaultError::RootKey(format!("cannot create {}: {e}", path.display())))?;
    let text = zeroize::Zeroizing::new(data_encoding::BASE64.encode(key.bytes()));
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| VaultError::RootKey(format!("cannot write {}: {e}", path.display())))?;
    // The directory entry too: a rotation commits right after, and a power cut that lost the
    // file's name would leave a vault no key opens.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| VaultError::RootKey(format!("cannot sync {}: {e}", dir.display())))?;
    }
    Ok(key)
}

/// The configured file, else `LEGATE_MASTER_KEY`, else a dev key in the data directory.
pub fn resolve(
    configured: &str,
    env: Option<&str>,
    data_dir: &Path,
) -> Result<(Key32, RootKeySource), VaultError> {
    if !configured.is_empty() {
        return Ok((
            load_file(Path::new(configured))?,
            RootKeySource::File(configured.into()),
        ));
    }
    if let Some(v) = env {
        return Ok((parse_key(v.as_bytes())?, RootKeySource::Env));
    }
    let dev = data_dir.join("master.key");
    let key = if dev.exists() {
        load_file(&dev)?
    } else {
        std::fs::create_dir_all(data_dir).map_err(|e| VaultError::RootKey(e.to_string()))?;
        create_file(&dev)?
    };
    Ok((key, RootKeySource::DevFile(dev.display().to_string())))
}

pub(super) fn check_record(root: &Key32) -> Sealed {
    crypto::seal(root, "legate", "root", Purpose::KeyCheck, CHECK_PLAINTEXT)
}

/// Opens the key-check record (creating it on a new vault). A key that cannot open it is
/// the wrong key: refuse to start rather than produce garbage later.
pub fn verify(store: &Store, root: &Key32) -> Result<(), VaultError> {
    match store.get_record::<Sealed>(Tree::KeyCustody, CHECK_KEY)? {
        Some(sealed) => {
            let p = crypto::open(root, "legate", "root", Purpose::KeyCheck, &sealed)
                .map_err(|_| VaultError::WrongRootKey)?;
            if p.as_slice() != CHECK_PLAINTEXT {
                return Err(VaultError::WrongRootKey);
            }
            Ok(())
        }
        None => {
            store.put_record(Tree::KeyCustody, CHECK_KEY, &check_record(root))?;
            store.flush_blocking()?;
            Ok(())
        }
    }
}

pub(super) fn check_key() -> &'static [u8] {
    CHECK_KEY
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_files_are_private_and_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        create_file(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(load_file(&p).is_ok());
        assert!(create_file(&p).is_err(), "never overwrites");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_file(&p).unwrap_err().to_string().contains("chmod 600"));
        assert!(parse_key(b"c2hvcnQ=").is_err());
    }

    #[test]
    fn wrong_root_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let k1 = Key32::random();
        verify(&store, &k1).unwrap();
        verify(&store, &k1).unwrap();
        assert!(matches!(
            verify(&store, &Key32::random()),
            Err(VaultError::WrongRootKey)
        ));
    }
}
