//! Key encodings of DID documents: multibase base58btc Multikeys and JWKs for Ed25519.
//!
//! A `Multikey` (W3C Controlled Identifiers §2.2.2) for Ed25519 is `z` (base58btc) followed
//! by the multicodec prefix `0xed 0x01` and the 32 raw key bytes, so it always starts `z6Mk`.
//! base58btc is a dozen lines, so it lives here rather than as one more dependency.

use data_encoding::BASE64URL_NOPAD;
use serde_json::{json, Value};

/// The Bitcoin base58 alphabet (no 0, O, I, l).
const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Multicodec varint for `ed25519-pub`.
const ED25519_PUB: [u8; 2] = [0xed, 0x01];

/// Longest input [`base58_decode`] accepts: a Multikey is 46 characters; anything much longer
/// is not a key, and the quadratic decoder should not be fed peer data without a bound.
const MAX_DECODE_CHARS: usize = 128;

pub fn base58_encode(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    // Base-58 digits, least significant first.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &b in &bytes[zeros..] {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(digits.iter().rev().map(|d| ALPHABET[*d as usize] as char));
    out
}

pub fn base58_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() > MAX_DECODE_CHARS {
        return None;
    }
    let zeros = s.bytes().take_while(|c| *c == b'1').count();
    // Bytes, least significant first.
    let mut bytes: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes().skip(zeros) {
        let mut carry = ALPHABET.iter().position(|a| *a == c)? as u32;
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    Some(out)
}

/// `z6Mk...` for an Ed25519 public key.
pub fn ed25519_multikey(public: &[u8; 32]) -> String {
    let mut b = Vec::with_capacity(34);
    b.extend_from_slice(&ED25519_PUB);
    b.extend_from_slice(public);
    format!("z{}", base58_encode(&b))
}

/// The raw key of an Ed25519 Multikey; `None` for any other codec or encoding.
pub fn parse_ed25519_multikey(s: &str) -> Option<[u8; 32]> {
    let raw = base58_decode(s.strip_prefix('z')?)?;
    raw.strip_prefix(&ED25519_PUB)?.try_into().ok()
}

/// An RFC 8037 OKP JWK for an Ed25519 public key.
pub fn ed25519_jwk(public: &[u8; 32], kid: &str) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": BASE64URL_NOPAD.encode(public),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

/// The raw key of an OKP/Ed25519 JWK; `None` for other key types.
pub fn parse_ed25519_jwk(jwk: &Value) -> Option<[u8; 32]> {
    if jwk.get("kty")?.as_str()? != "OKP" || jwk.get("crv")?.as_str()? != "Ed25519" {
        return None;
    }
    let x = jwk.get("x")?.as_str()?;
    BASE64URL_NOPAD
        .decode(x.trim_end_matches('=').as_bytes())
        .ok()?
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_known_vectors() {
        assert_eq!(base58_encode(b"Hello World!"), "2NEpo7TZRRrLZSi2U");
        assert_eq!(base58_encode(&[0, 0, 1]), "112");
        assert_eq!(base58_encode(&[]), "");
        assert_eq!(base58_decode("2NEpo7TZRRrLZSi2U").unwrap(), b"Hello World!");
        assert_eq!(base58_decode("112").unwrap(), vec![0, 0, 1]);
        assert!(base58_decode("0OIl").is_none());
        assert!(base58_decode(&"2".repeat(MAX_DECODE_CHARS + 1)).is_none());
    }

    #[test]
    fn round_trips_arbitrary_bytes() {
        for n in 0..40u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            assert_eq!(base58_decode(&base58_encode(&v)).unwrap(), v);
        }
    }

    /// The did:key specification's Ed25519 example: the JWK `x` and the multibase name the
    /// same key.
    #[test]
    fn multikey_matches_the_did_key_vector() {
        let x = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik";
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
        let key = parse_ed25519_jwk(&jwk).unwrap();
        let mk = ed25519_multikey(&key);
        assert_eq!(mk, "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp");
        assert_eq!(parse_ed25519_multikey(&mk), Some(key));
        assert_eq!(ed25519_jwk(&key, "k")["x"], x);
        // wrong codec (x25519 is 0xec01) and non-base58btc multibase are refused
        let mut b = vec![0xec, 0x01];
        b.extend_from_slice(&key);
        assert!(parse_ed25519_multikey(&format!("z{}", base58_encode(&b))).is_none());
        assert!(parse_ed25519_multikey(&format!("u{x}")).is_none());
        assert!(parse_ed25519_jwk(&json!({"kty": "EC", "crv": "P-256", "x": x})).is_none());
    }
}
