//! API key tokens: `lg_` + base32(32 random bytes), stored only as SHA-256.

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const PREFIX: &str = "lg_";

/// A freshly minted token, shown once. Zeroized on drop.
pub fn generate() -> Zeroizing<String> {
    let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(crate::util::random_bytes());
    Zeroizing::new(format!("{PREFIX}{}", BASE32_NOPAD.encode(bytes.as_ref())))
}

/// Whether a string has the token shape; anything else is refused before a lookup.
pub fn well_formed(token: &str) -> bool {
    token
        .strip_prefix(PREFIX)
        .and_then(|b| BASE32_NOPAD.decode(b.as_bytes()).ok())
        .is_some_and(|raw| raw.len() == 32)
}

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two token hashes without leaking where they differ.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_designed_shape() {
        let t = generate();
        assert!(t.starts_with("lg_"));
        assert_eq!(t.len(), 3 + 52);
        assert!(well_formed(&t));
        assert!(!well_formed("lg_short"));
        assert!(!well_formed(
            "xx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
        assert!(hashes_equal(&hash(&t), &hash(&t)));
        assert!(!hashes_equal(&hash(&t), &hash("lg_other")));
    }
}
