//! The one record encoding: a format byte, then MessagePack with field names.
//!
//! Named fields make records self-describing, so a field added with `#[serde(default)]` reads
//! old records without a migration; the leading byte lets a future encoding coexist.

use super::StoreError;
use serde::{de::DeserializeOwned, Serialize};

/// Format byte of records written by this version.
const FORMAT_MSGPACK_NAMED: u8 = 1;

pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_MSGPACK_NAMED];
    rmp_serde::encode::write_named(&mut out, v).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_MSGPACK_NAMED, rest)) => {
            rmp_serde::from_slice(rest).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Some((b, _)) => Err(StoreError::Corrupt(format!("unknown record format {b}"))),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        a: u32,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn added_fields_read_old_records() {
        let old = encode(&V1 { a: 3 }).unwrap();
        let new: V2 = decode(&old).unwrap();
        assert_eq!(new, V2 { a: 3, b: None });
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<V1>(&[]).is_err());
        assert!(decode::<V1>(&[9, 1, 2]).is_err());
        assert!(decode::<V1>(&[1, 0xff, 0xff]).is_err());
    }
}
