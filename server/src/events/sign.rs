//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the receiver verifies
//! `webhook-signature` over `"{webhook-id}.{webhook-timestamp}.{body}"` with the HMAC key
//! that its `whsec_` secret encodes, so `standardwebhooks` and `svix` libraries accept ours.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `v1,<base64 HMAC-SHA256>` for one key.
pub fn signature(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; an error here would be a bug in the hmac crate.
    let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return String::new();
    };
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!(
        "v1,{}",
        data_encoding::BASE64.encode(&m.finalize().into_bytes())
    )
}

/// The `webhook-signature` header: one signature per live key, space-separated (during a
/// rotation the receiver accepts either secret).
pub fn header<K: AsRef<[u8]>>(keys: &[K], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| signature(k.as_ref(), msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The HMAC key a `whsec_` secret encodes (for tests and tools that hold the secret).
pub fn key_of_secret(secret: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret).as_bytes())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let key = key_of_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let both = header(&[key.clone(), vec![1, 2, 3]], "m", 1, b"x");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&key, "m", 1, b"x"));
        assert_ne!(parts[0], parts[1]);
    }
}
