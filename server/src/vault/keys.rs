//! The three symmetric keys of the vault and how the root key gets in and out of a file.
//!
//! Each key is its own type so a data key can never be passed where the root key is expected.
//! None has `Display`, `Serialize` or a public byte accessor: the only way key bytes leave this
//! module is sealed (see `envelope`) or, for the root key, written to its 0600 file.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use data_encoding::{BASE64, BASE64URL, BASE64URL_NOPAD, BASE64_NOPAD};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::envelope::{open_with, seal_with, Aad, Purpose, Sealed};
use super::error::VaultError;
use crate::util::random_bytes;

/// Length of every vault key: AES-256.
pub const KEY_LEN: usize = 32;

/// A key file is a few dozen bytes; anything much larger is the wrong file, and reading it
/// whole would be pointless.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// Known plaintext of the key check. Its content does not matter; that it authenticates does.
const KEY_CHECK_PLAINTEXT: &[u8] = b"legate vault root key check v1";

macro_rules! secret_key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(Zeroizing<[u8; KEY_LEN]>);

        impl $name {
            /// A fresh key from the operating system's CSPRNG.
            pub fn generate() -> Self {
                Self(Zeroizing::new(random_bytes()))
            }

            /// The raw key, for the cipher only; visible inside `vault` and nowhere else.
            pub(super) fn bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_key_type!(
    /// The root of the hierarchy: wraps agent keys, identity keys and DKIM keys. Comes from
    /// `vault.master_key_file` or `LEGATE_MASTER_KEY` (DESIGN §3).
    RootKey
);
secret_key_type!(
    /// An agent's key-encryption key. Destroying its wrapped copy crypto-shreds every
    /// credential of that agent, which is how revocation destroys a vault.
    AgentKey
);
secret_key_type!(
    /// A per-credential data key; a new one is made for every stored version.
    DataKey
);

/// Only unwrapping makes agent and data keys from bytes; the root key comes from a file or
/// the environment instead.
impl AgentKey {
    pub(super) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }
}

impl DataKey {
    pub(super) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }
}

impl RootKey {
    /// Loads the root key from a file holding either the 32 raw bytes or their base64 text
    /// (what [`RootKey::write_new_file`] writes). Refuses a file that group or others may
    /// access in any way, before reading it.
    pub fn load_file(path: &Path) -> Result<Self, VaultError> {
        let read_err = |source| VaultError::KeyFileRead {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::metadata(path).map_err(read_err)?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(VaultError::KeyFileInsecure {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        let what = || path.display().to_string();
        if !meta.is_file() {
            return Err(VaultError::BadKeyMaterial {
                what: what(),
                reason: "not a regular file".into(),
            });
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(VaultError::BadKeyMaterial {
                what: what(),
                reason: format!(
                    "file is {} bytes; a key file is 32 bytes or 44 characters of base64",
                    meta.len()
                ),
            });
        }
        let content = Zeroizing::new(fs::read(path).map_err(read_err)?);
        if content.len() == KEY_LEN {
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            key.copy_from_slice(&content);
            return Ok(Self(key));
        }
        let text = std::str::from_utf8(&content).map_err(|_| VaultError::BadKeyMaterial {
            what: what(),
            reason: "neither 32 raw bytes nor base64 text".into(),
        })?;
        Self::from_b64(text, &what())
    }

    /// Parses the `LEGATE_MASTER_KEY` value: base64 (standard or URL-safe, padding optional)
    /// of exactly 32 bytes; surrounding whitespace is ignored.
    pub fn from_env_b64(value: &str) -> Result<Self, VaultError> {
        Self::from_b64(value, "LEGATE_MASTER_KEY")
    }

    fn from_b64(text: &str, what: &str) -> Result<Self, VaultError> {
        let text = text.trim().as_bytes();
        let decoded = [&BASE64, &BASE64_NOPAD, &BASE64URL, &BASE64URL_NOPAD]
            .iter()
            .find_map(|enc| enc.decode(text).ok().map(Zeroizing::new))
            .ok_or_else(|| VaultError::BadKeyMaterial {
                what: what.to_owned(),
                reason: "not valid base64".into(),
            })?;
        if decoded.len() != KEY_LEN {
            return Err(VaultError::BadKeyMaterial {
                what: what.to_owned(),
                reason: format!("decodes to {} bytes; a root key is 32 bytes", decoded.len()),
            });
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&decoded);
        Ok(Self(key))
    }

    /// Writes this key as base64 text to a NEW file created with mode 0600. Refuses an
    /// existing file: overwriting a root key makes every sealed record unreadable.
    pub fn write_new_file(&self, path: &Path) -> Result<(), VaultError> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        self.write_with(path, &options)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => VaultError::KeyFileExists {
                    path: path.to_path_buf(),
                },
                _ => VaultError::KeyFileWrite {
                    path: path.to_path_buf(),
                    source,
                },
            })
    }

    /// Like [`RootKey::write_new_file`] but replaces an existing file (and resets its mode
    /// to 0600). Everything sealed under the old key becomes unreadable.
    pub fn danger_overwrite_file(&self, path: &Path) -> Result<(), VaultError> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true).mode(0o600);
        self.write_with(path, &options)
            .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o600)))
            .map_err(|source| VaultError::KeyFileWrite {
                path: path.to_path_buf(),
                source,
            })
    }

    fn write_with(&self, path: &Path, options: &OpenOptions) -> std::io::Result<()> {
        let mut text = Zeroizing::new(BASE64.encode(self.bytes()));
        text.push('\n');
        let mut file = options.open(path)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    }
}

/// A small sealed known plaintext stored beside the vault when it is created. Opening it at
/// start-up tells a wrong root key apart from a right one before any real record is touched,
/// so a misconfigured key is a clear error and never garbage or a crypto-shredded look-alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCheck {
    pub sealed: Sealed,
}

impl KeyCheck {
    pub fn create(root: &RootKey) -> Result<Self, VaultError> {
        seal_with(root.bytes(), &key_check_aad(), KEY_CHECK_PLAINTEXT).map(|sealed| Self { sealed })
    }

    /// `Err(WrongRootKey)` unless `root` is the key this check was created with.
    pub fn verify(&self, root: &RootKey) -> Result<(), VaultError> {
        let plain = open_with(root.bytes(), &key_check_aad(), &self.sealed)
            .map_err(|_| VaultError::WrongRootKey)?;
        if bool::from(plain.as_slice().ct_eq(KEY_CHECK_PLAINTEXT)) {
            Ok(())
        } else {
            Err(VaultError::WrongRootKey)
        }
    }
}

fn key_check_aad() -> Aad<'static> {
    Aad {
        agent_id: "",
        record_id: "root",
        purpose: Purpose::KeyCheck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = RootKey::generate();
        key.write_new_file(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim_end().len(), 44);
        let back = RootKey::load_file(&path).unwrap();
        assert_eq!(back.bytes(), key.bytes());
    }

    #[test]
    fn refuses_to_overwrite_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = RootKey::generate();
        first.write_new_file(&path).unwrap();
        let second = RootKey::generate();
        let err = second.write_new_file(&path).unwrap_err();
        assert!(matches!(err, VaultError::KeyFileExists { .. }), "{err}");
        assert_eq!(RootKey::load_file(&path).unwrap().bytes(), first.bytes());

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        second.danger_overwrite_file(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(RootKey::load_file(&path).unwrap().bytes(), second.bytes());
    }

    #[test]
    fn refuses_group_or_other_access() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        RootKey::generate().write_new_file(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o601, 0o610] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = RootKey::load_file(&path).unwrap_err();
            assert!(matches!(err, VaultError::KeyFileInsecure { .. }));
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(RootKey::load_file(&path).is_ok());
    }

    #[test]
    fn accepts_raw_bytes_and_rejects_wrong_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.key");
        let bytes: [u8; 32] = random_bytes();
        fs::write(&raw, bytes).unwrap();
        fs::set_permissions(&raw, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(RootKey::load_file(&raw).unwrap().bytes(), &bytes);

        let short = dir.path().join("short.key");
        fs::write(&short, BASE64.encode(&[7u8; 16])).unwrap();
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
        let err = RootKey::load_file(&short).unwrap_err().to_string();
        assert!(err.contains("16 bytes"), "{err}");

        let missing = dir.path().join("missing.key");
        assert!(matches!(
            RootKey::load_file(&missing).unwrap_err(),
            VaultError::KeyFileRead { .. }
        ));
    }

    #[test]
    fn env_value_parses_in_every_base64_flavour() {
        let bytes = [0xfbu8; 32];
        for text in [
            BASE64.encode(&bytes),
            BASE64_NOPAD.encode(&bytes),
            BASE64URL.encode(&bytes),
            format!("  {}\n", BASE64URL_NOPAD.encode(&bytes)),
        ] {
            assert_eq!(RootKey::from_env_b64(&text).unwrap().bytes(), &bytes);
        }
        let err = RootKey::from_env_b64("not base64!")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LEGATE_MASTER_KEY") && err.contains("base64"),
            "{err}"
        );
        assert!(RootKey::from_env_b64(&BASE64.encode(&[1u8; 31])).is_err());
    }

    #[test]
    fn key_check_detects_a_wrong_root_key() {
        let root = RootKey::generate();
        let check = KeyCheck::create(&root).unwrap();
        check.verify(&root).unwrap();
        let err = check.verify(&RootKey::generate()).unwrap_err();
        assert!(matches!(err, VaultError::WrongRootKey));
        // It survives storage.
        let json = serde_json::to_vec(&check).unwrap();
        let back: KeyCheck = serde_json::from_slice(&json).unwrap();
        back.verify(&root).unwrap();
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(AgentKey::generate().bytes(), AgentKey::generate().bytes());
        assert_ne!(DataKey::generate().bytes(), DataKey::generate().bytes());
    }
}
