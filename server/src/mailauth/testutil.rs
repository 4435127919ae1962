//! Keys and messages shared by this module's unit tests.

use super::RsaSha256Key;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::dkim::generate::DkimKeyPair;
use std::sync::OnceLock;

/// A fresh Ed25519 key and its DKIM TXT record.
pub(crate) fn ed25519_key() -> (Ed25519Key, String) {
    let pair = DkimKeyPair::generate_ed25519().unwrap();
    let key = Ed25519Key::from_pkcs8_der(pair.private_key()).unwrap();
    let txt = format!("v=DKIM1; k=ed25519; p={}", pair.encoded_public_key());
    (key, txt)
}

/// An RSA-2048 key and its DKIM TXT record. Generated once per test run: RSA key generation
/// takes seconds in a debug build.
pub(crate) fn rsa_key() -> (RsaSha256Key, String) {
    static PAIR: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    let (der, txt) = PAIR.get_or_init(|| {
        let pair = DkimKeyPair::generate_rsa(2048).unwrap();
        let txt = format!("v=DKIM1; k=rsa; p={}", pair.encoded_public_key());
        (pair.private_key().to_vec(), txt)
    });
    let key = RsaSha256Key::from_pkcs1_der(der).unwrap();
    (key, txt.clone())
}

/// A plain message from `alice@<from_domain>`.
pub(crate) fn message(from_domain: &str, body: &str) -> String {
    format!(
        "From: Alice <alice@{from_domain}>\r\n\
         To: bob@legate.test\r\n\
         Subject: Quarterly numbers\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <1@{from_domain}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}\r\n"
    )
}
