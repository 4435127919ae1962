//! See DESIGN.md §1 for this module's place and §3 for its contract.
//!
//! The vault's cryptographic core: key hierarchy, envelope encryption, credential payloads,
//! TOTP, and custody of the private keys other modules sign with. It does no I/O besides the
//! root key file and knows nothing of storage or HTTP; the service layer above stores the
//! serde types here (`Sealed`, `KeyCheck`, `SealedCredential`, `SealedDkimKeys`) and calls
//! these functions.
//!
//! Key hierarchy (all AES-256-GCM, fresh random nonce, AAD = version, purpose, owner, record):
//!
//! ```text
//! RootKey (file 0600 / LEGATE_MASTER_KEY)
//!  ├─ KeyCheck                       detects a wrong root key at start-up
//!  ├─ AgentKey per agent             wrap_agent_key / unwrap_agent_key
//!  │   └─ DataKey per credential     wrap_data_key / unwrap_data_key (new one per version)
//!  │       ├─ CredentialPayload      password, api secret, notes, custom fields
//!  │       └─ TotpSeed               TOTP parameters (sealed apart: `get` never opens it)
//!  ├─ IdentityKey per agent          Ed25519 seed
//!  └─ DkimKeys per domain            Ed25519 + RSA-2048 PKCS#8
//! ```
//!
//! A typical store: `CredentialInput` (from JSON) -> `validate(name)` -> `seal(kek, agent,
//! previous, now)` -> keep the `SealedCredential`. A get: `open_view` -> `CredentialView`. A
//! code: `totp_code`. Revocation deletes the agent's wrapped `AgentKey`: every credential of
//! that agent becomes undecryptable (crypto-shred).
//!
//! Every secret type zeroizes on drop, prints `[redacted]` in `Debug`, and has no `Display`.

mod codec;
mod credential;
mod custody;
mod der;
mod envelope;
mod error;
mod keys;
mod otpauth;
mod payload;
mod record;
mod secret;
mod totp;

pub use credential::{
    validate_name, CredentialInput, CredentialKind, CredentialMeta, CredentialView,
    ValidatedCredential, MAX_FIELDS, MAX_NAME_LEN, MAX_NOTES_LEN, MAX_SECRET_LEN, MAX_URL_LEN,
    MAX_USERNAME_LEN,
};
pub use custody::{verify_ed25519, DkimAlgorithm, DkimKeys, IdentityKey, SealedDkimKeys};
pub use envelope::{
    open_payload, seal_payload, unwrap_agent_key, unwrap_data_key, wrap_agent_key, wrap_data_key,
    Aad, Purpose, Sealed,
};
pub use error::VaultError;
pub use keys::{AgentKey, DataKey, KeyCheck, RootKey, KEY_LEN};
pub use otpauth::{decode_base32_secret, parse_otpauth, ParsedOtpauth, TotpObject, TotpSpec};
pub use payload::SecretPayload;
pub use record::SealedCredential;
pub use secret::SecretString;
pub use totp::{
    Algorithm as TotpAlgorithm, TotpCode, TotpParams, MAX_SECRET_LEN as MAX_TOTP_SECRET_LEN,
    MIN_SECRET_LEN as MIN_TOTP_SECRET_LEN, NEXT_CODE_THRESHOLD_SECS, PERIOD_RANGE,
};

#[cfg(test)]
mod tests;
