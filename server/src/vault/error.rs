//! The one error type of the vault.
//!
//! Every message here may reach a log line or an API response, so no variant carries secret
//! material: key bytes, seeds, passwords and URIs holding a seed are never interpolated. Values
//! that are echoed back (an algorithm name, a digits value) come from non-secret parameters and
//! are cut to a few characters by [`echo`].

use std::path::PathBuf;

use super::envelope::Purpose;

/// Everything that can go wrong in the vault's cryptographic core.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    // ---- root key custody ------------------------------------------------------------------
    /// The key file could be read by someone other than its owner; a root key that others can
    /// read protects nothing, so refusing is the only safe answer.
    #[error(
        "root key file {path} is accessible by group or others (mode {mode:o}); \
         run `chmod 600` on it"
    )]
    KeyFileInsecure { path: PathBuf, mode: u32 },
    #[error("cannot read root key file {path}: {source}")]
    KeyFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write root key file {path}: {source}")]
    KeyFileWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("root key file {path} already exists; refusing to overwrite it")]
    KeyFileExists { path: PathBuf },
    /// The key material had the wrong shape. `what` names its origin (a path or the
    /// environment variable), `reason` says what was wrong without quoting the material.
    #[error("root key from {what} is unusable: {reason}")]
    BadKeyMaterial { what: String, reason: String },
    #[error(
        "the vault root key does not match the key this vault was created with; \
         check vault.master_key_file or LEGATE_MASTER_KEY"
    )]
    WrongRootKey,

    // ---- envelope ----------------------------------------------------------------------------
    /// AES-GCM refused the ciphertext: wrong key, tampered bytes, or a record moved to another
    /// agent, credential or purpose. These cases are indistinguishable by design.
    #[error(
        "cannot decrypt {purpose}: wrong key, tampered data, or a record bound to another owner"
    )]
    Decrypt { purpose: Purpose },
    #[error("cannot encrypt {purpose}")]
    Encrypt { purpose: Purpose },
    /// Decryption succeeded but the plaintext did not decode; only a bug or a format change
    /// can cause this, since the bytes were authenticated.
    #[error("sealed {what} is malformed")]
    Corrupt { what: &'static str },

    // ---- TOTP parameters and otpauth URIs -----------------------------------------------------
    #[error("totp is not a valid URI")]
    NotAUri,
    #[error("totp URI scheme must be `otpauth`, got `{0}`")]
    NotOtpauth(String),
    #[error("otpauth type `hotp` (counter-based) is not supported; only `totp`")]
    HotpUnsupported,
    #[error("otpauth type `{0}` is unknown; only `totp` is supported")]
    UnknownOtpType(String),
    #[error("unsupported totp algorithm `{0}`; use SHA1, SHA256 or SHA512")]
    UnsupportedAlgorithm(String),
    #[error("totp digits must be 6 or 8, got `{0}`")]
    InvalidDigits(String),
    #[error("totp period must be a whole number of seconds from 15 to 120, got `{0}`")]
    InvalidPeriod(String),
    #[error("totp secret is missing")]
    MissingSecret,
    #[error("totp secret is not valid base32")]
    InvalidBase32,
    #[error(
        "totp secret is {0} bytes; at least 10 bytes (80 bits, 16 base32 characters) are required"
    )]
    SecretTooShort(usize),
    #[error("totp secret is {0} bytes; at most 256 bytes are accepted")]
    SecretTooLong(usize),
    #[error("otpauth parameter `{0}` is not valid for totp")]
    UnsupportedParameter(String),
    #[error("otpauth parameter `{0}` is given more than once")]
    DuplicateParameter(String),

    // ---- credentials --------------------------------------------------------------------------
    #[error("invalid credential name: {0}")]
    InvalidName(&'static str),
    #[error("invalid `{field}`: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("a `{kind}` credential needs `{field}`")]
    MissingField {
        kind: &'static str,
        field: &'static str,
    },
    #[error("credential has no totp")]
    NoTotp,

    // ---- key custody ----------------------------------------------------------------------------
    #[error("cannot generate {what} key: {reason}")]
    KeyGeneration { what: &'static str, reason: String },
    #[error("stored {what} key is not usable: {reason}")]
    KeyDecode { what: &'static str, reason: String },
}

/// Cuts a caller-supplied, non-secret value to a length that is safe to echo in a message.
pub(super) fn echo(value: &str) -> String {
    const MAX_CHARS: usize = 32;
    let mut out: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CHARS)
        .collect();
    if value.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_truncates_and_strips_controls() {
        assert_eq!(echo("MD5"), "MD5");
        assert_eq!(echo("a\r\nb"), "ab");
        let long = "x".repeat(100);
        assert_eq!(echo(&long).chars().count(), 33);
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            VaultError::InvalidBase32.to_string(),
            "totp secret is not valid base32"
        );
        let e = VaultError::Decrypt {
            purpose: Purpose::CredentialPayload,
        };
        assert!(e.to_string().contains("credential payload"));
    }
}
