//! Just enough DER to move RSA keys between the PKCS#1 form mail-auth generates and the
//! standard containers: PKCS#8 for the stored private key, SubjectPublicKeyInfo for the DKIM
//! `p=` value (what `openssl rsa -pubout` prints and RFC 6376 §3.6.1 describes).

use zeroize::Zeroizing;

/// AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
const RSA_ALGORITHM_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// INTEGER 0: the PrivateKeyInfo version.
const VERSION_0: [u8; 3] = [0x02, 0x01, 0x00];

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;

/// Wraps a PKCS#1 RSAPrivateKey into a PKCS#8 PrivateKeyInfo, in a wiped-on-drop buffer of
/// exact size.
pub(super) fn rsa_pkcs1_to_pkcs8(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    let inner_len = VERSION_0.len() + RSA_ALGORITHM_ID.len() + tlv_len(pkcs1.len());
    let mut out = Zeroizing::new(Vec::with_capacity(tlv_len(inner_len)));
    header(&mut out, SEQUENCE, inner_len);
    out.extend_from_slice(&VERSION_0);
    out.extend_from_slice(&RSA_ALGORITHM_ID);
    header(&mut out, OCTET_STRING, pkcs1.len());
    out.extend_from_slice(pkcs1);
    out
}

/// Wraps a PKCS#1 RSAPublicKey into a SubjectPublicKeyInfo.
pub(super) fn rsa_pkcs1_public_to_spki(pkcs1: &[u8]) -> Vec<u8> {
    let bits_len = 1 + pkcs1.len();
    let inner_len = RSA_ALGORITHM_ID.len() + tlv_len(bits_len);
    let mut out = Vec::with_capacity(tlv_len(inner_len));
    header(&mut out, SEQUENCE, inner_len);
    out.extend_from_slice(&RSA_ALGORITHM_ID);
    header(&mut out, BIT_STRING, bits_len);
    out.push(0); // no unused bits
    out.extend_from_slice(pkcs1);
    out
}

/// Total size of a TLV whose value is `len` bytes.
fn tlv_len(len: usize) -> usize {
    1 + len_of_len(len) + len
}

fn len_of_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        1 + (usize::BITS as usize / 8 - len.leading_zeros() as usize / 8)
    }
}

fn header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = len.leading_zeros() as usize / 8;
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_encode_in_short_and_long_form() {
        let mut v = Vec::new();
        header(&mut v, 0x04, 5);
        assert_eq!(v, [0x04, 0x05]);
        v.clear();
        header(&mut v, 0x04, 0x80);
        assert_eq!(v, [0x04, 0x81, 0x80]);
        v.clear();
        header(&mut v, 0x04, 0x04a8);
        assert_eq!(v, [0x04, 0x82, 0x04, 0xa8]);
        assert_eq!(tlv_len(0x04a8), 4 + 0x04a8);
        assert_eq!(tlv_len(0x7f), 2 + 0x7f);
    }

    #[test]
    fn wrappers_have_exact_sizes() {
        let body = vec![0x30u8; 300];
        let p8 = rsa_pkcs1_to_pkcs8(&body);
        assert_eq!(p8.len(), p8.capacity());
        assert_eq!(&p8[..4], &[0x30, 0x82, 0x01, 0x42]);
        assert!(p8.ends_with(&body));
        let spki = rsa_pkcs1_public_to_spki(&body);
        assert_eq!(spki.len(), spki.capacity());
        assert_eq!(&spki[4..19], &RSA_ALGORITHM_ID);
    }
}
