//! RSA DKIM keys in the form receivers can read.

/// DER AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
const RSA_ALGORITHM_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

/// The vault keeps RSA public keys as PKCS#1 `RSAPublicKey`. Verifiers built on OpenSSL's
/// `d2i_PUBKEY` (OpenDKIM, and so many receivers) only read the `SubjectPublicKeyInfo` form
/// that `openssl rsa -pubout` prints (`MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A...`), while mail-auth
/// and dkimpy read both; so every record we print (`legate dkim records`, `legate init`, the
/// DNS plan) publishes SPKI. A key already in SPKI is left alone.
pub fn rsa_spki(key: &[u8]) -> Vec<u8> {
    // PKCS#1 is SEQUENCE { INTEGER n, INTEGER e }; SPKI is SEQUENCE { SEQUENCE {..}, BIT STRING }.
    let first_inner_tag = match key {
        [0x30, l, rest @ ..] if *l < 0x80 => rest.first(),
        [0x30, l, rest @ ..] => rest.get(usize::from(*l & 0x7f)),
        _ => None,
    };
    if first_inner_tag != Some(&0x02) {
        return key.to_vec();
    }
    let mut bit_string = vec![0x03];
    der_len(key.len() + 1, &mut bit_string);
    bit_string.push(0x00);
    bit_string.extend_from_slice(key);
    let mut out = vec![0x30];
    der_len(RSA_ALGORITHM_ID.len() + bit_string.len(), &mut out);
    out.extend_from_slice(&RSA_ALGORITHM_ID);
    out.extend(bit_string);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_keys_are_published_as_subject_public_key_info() {
        // A PKCS#1 RSAPublicKey of a 2048-bit modulus: SEQUENCE(270) { INTEGER(257), INTEGER(3) }.
        let mut pkcs1 = vec![0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00];
        pkcs1.extend([0xc5; 256]);
        pkcs1.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(pkcs1.len(), 270);
        let spki = rsa_spki(&pkcs1);
        let b64 = data_encoding::BASE64.encode(&spki);
        // What `openssl rsa -pubout` prints for every 2048-bit key.
        assert!(
            b64.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"),
            "{b64}"
        );
        assert_eq!(spki.len(), 294);
        assert!(spki.ends_with(&pkcs1));
        assert_eq!(rsa_spki(&spki), spki, "SPKI is left alone");
        assert_eq!(rsa_spki(b"junk"), b"junk", "anything else is left alone");
        assert_eq!(rsa_spki(&[]), Vec::<u8>::new());
    }
}
