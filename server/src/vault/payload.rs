//! The encrypted part of a credential and its plaintext encoding.
//!
//! The TOTP seed is deliberately NOT here: it is sealed separately (purpose `TotpSeed`), so
//! reading a credential for `GET /v1/vault/{name}` never even decrypts the seed, and no code
//! path from this type to a response can carry it.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use super::codec::{bytes_len, Reader, Writer};
use super::error::VaultError;
use super::secret::SecretString;

const PAYLOAD_VERSION: u8 = 1;
const TAG_PASSWORD: u8 = 1;
const TAG_SECRET: u8 = 2;
const TAG_NOTES: u8 = 3;
const TAG_FIELD: u8 = 4;

/// Secret fields of one credential. Every value is a [`SecretString`], so the derived-looking
/// `Debug` below prints only which fields are present.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretPayload {
    pub password: Option<SecretString>,
    /// The key of an `api_key` credential.
    pub secret: Option<SecretString>,
    /// Free text; kept secret because notes routinely hold recovery codes.
    pub notes: Option<SecretString>,
    /// Custom secret fields by name.
    pub fields: BTreeMap<String, SecretString>,
}

impl SecretPayload {
    /// `version || (tag || len || bytes)*`, field entries as `tag || name || value`.
    pub(super) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let singles = [
            (TAG_PASSWORD, &self.password),
            (TAG_SECRET, &self.secret),
            (TAG_NOTES, &self.notes),
        ];
        let capacity = 1
            + singles
                .iter()
                .filter_map(|(_, v)| v.as_ref().map(|s| 1 + bytes_len(s.len())))
                .sum::<usize>()
            + self
                .fields
                .iter()
                .map(|(k, v)| 1 + bytes_len(k.len()) + bytes_len(v.len()))
                .sum::<usize>();
        let mut w = Writer::with_capacity(capacity);
        w.u8(PAYLOAD_VERSION);
        for (tag, value) in singles {
            if let Some(value) = value {
                w.u8(tag);
                w.bytes(value.expose().as_bytes());
            }
        }
        for (name, value) in &self.fields {
            w.u8(TAG_FIELD);
            w.bytes(name.as_bytes());
            w.bytes(value.expose().as_bytes());
        }
        w.finish()
    }

    pub(super) fn decode(input: &[u8]) -> Result<Self, VaultError> {
        Self::try_decode(input).ok_or(VaultError::Corrupt {
            what: "credential payload",
        })
    }

    fn try_decode(input: &[u8]) -> Option<Self> {
        let mut r = Reader::new(input);
        if r.u8()? != PAYLOAD_VERSION {
            return None;
        }
        let mut out = Self::default();
        while !r.is_empty() {
            let tag = r.u8()?;
            let slot = match tag {
                TAG_PASSWORD => &mut out.password,
                TAG_SECRET => &mut out.secret,
                TAG_NOTES => &mut out.notes,
                TAG_FIELD => {
                    let name = r.str()?.to_owned();
                    let value = SecretString::from(r.str()?);
                    out.fields.insert(name, value);
                    continue;
                }
                _ => return None,
            };
            let value = SecretString::from(r.str()?);
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(out)
    }
}

impl fmt::Debug for SecretPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretPayload")
            .field("password", &self.password)
            .field("secret", &self.secret)
            .field("notes", &self.notes)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SecretPayload {
        SecretPayload {
            password: Some("hunter2".into()),
            secret: None,
            notes: Some("recovery: 1111-2222".into()),
            fields: BTreeMap::from([
                ("pin".to_owned(), "4321".into()),
                ("backup".to_owned(), "".into()),
            ]),
        }
    }

    #[test]
    fn round_trips_with_exact_capacity() {
        let p = sample();
        let bytes = p.encode();
        assert_eq!(bytes.len(), bytes.capacity());
        assert_eq!(SecretPayload::decode(&bytes).unwrap(), p);
        let empty = SecretPayload::default();
        assert_eq!(SecretPayload::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn malformed_plaintext_is_corrupt() {
        let bytes = sample().encode();
        assert!(SecretPayload::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(SecretPayload::decode(&[]).is_err());
        assert!(SecretPayload::decode(&[2]).is_err());
        assert!(SecretPayload::decode(&[1, 9, 0, 0, 0, 0]).is_err());
        // A repeated single field is not silently merged.
        assert!(SecretPayload::decode(&[1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn debug_shows_field_names_only() {
        let dbg = format!("{:?}", sample());
        assert!(dbg.contains("pin") && dbg.contains("[redacted]"), "{dbg}");
        for secret in ["hunter2", "1111-2222", "4321"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }
}
