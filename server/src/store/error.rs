//! Storage errors. Callers map every variant to "temporary failure" (SMTP 451, HTTP 503/500);
//! only `Corrupt` and `SchemaTooNew` need an operator.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error(
        "the data directory is in use by another legate process (stop it, or use the REST API)"
    )]
    Locked,
    #[error("stored record is corrupt or of an unknown format: {0}")]
    Corrupt(String),
    #[error("the data directory was written by a newer legate (schema {found}); this binary supports up to {supported}")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("cannot encode record: {0}")]
    Encode(String),
}

impl StoreError {
    pub(super) fn from_open(e: sled::Error) -> Self {
        match &e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => Self::Locked,
            sled::Error::Io(io) if io.to_string().contains("lock") => Self::Locked,
            _ => e.into(),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
            other => StoreError::Io(other.to_string()),
        }
    }
}
