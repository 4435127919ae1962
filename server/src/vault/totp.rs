//! RFC 6238 TOTP (over RFC 4226 HOTP) with HMAC-SHA1, -SHA256 and -SHA512.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// Periods outside this range are refused (seconds).
pub const PERIODS: std::ops::RangeInclusive<u32> = 15..=120;
/// When fewer seconds than this remain, the next code is returned too.
pub const NEXT_CODE_WINDOW: u64 = 5;

/// A TOTP generator. The seed never leaves this type except into the sealed payload.
#[derive(Clone, Serialize, Deserialize)]
pub struct Totp {
    pub(super) secret: Zeroizing<Vec<u8>>,
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u32,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("secret", &"[redacted]")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .finish()
    }
}

/// What the API returns: codes, never the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotpCode {
    pub code: String,
    pub seconds_remaining: u64,
    pub period: u32,
    pub digits: u8,
    /// Unix time the code was computed for (so a caller can reproduce it, e.g. with oathtool).
    pub at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_code: Option<String>,
}

fn hmac_digest(alg: Algorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    macro_rules! mac {
        ($h:ty) => {{
            // HMAC accepts keys of any length.
            let mut m = <Hmac<$h> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }};
    }
    match alg {
        Algorithm::Sha1 => mac!(sha1::Sha1),
        Algorithm::Sha256 => mac!(sha2::Sha256),
        Algorithm::Sha512 => mac!(sha2::Sha512),
    }
}

/// RFC 4226 HOTP with dynamic truncation.
pub fn hotp(alg: Algorithm, secret: &[u8], counter: u64, digits: u8) -> String {
    let d = hmac_digest(alg, secret, &counter.to_be_bytes());
    let offset = (d[d.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(d[offset] & 0x7f) << 24)
        | (u32::from(d[offset + 1]) << 16)
        | (u32::from(d[offset + 2]) << 8)
        | u32::from(d[offset + 3]);
    let modulo = 10u64.pow(u32::from(digits));
    format!(
        "{:0width$}",
        u64::from(bin) % modulo,
        width = digits as usize
    )
}

impl Totp {
    pub fn new(secret: Vec<u8>, algorithm: Algorithm, digits: u8, period: u32) -> Self {
        Self {
            secret: Zeroizing::new(secret),
            algorithm,
            digits,
            period,
        }
    }

    pub fn code_at(&self, unix: u64) -> String {
        hotp(
            self.algorithm,
            &self.secret,
            unix / u64::from(self.period),
            self.digits,
        )
    }

    pub fn generate(&self, now: u64) -> TotpCode {
        let period = u64::from(self.period);
        let remaining = period - now % period;
        TotpCode {
            code: self.code_at(now),
            seconds_remaining: remaining,
            period: self.period,
            digits: self.digits,
            at: now,
            next_code: (remaining < NEXT_CODE_WINDOW).then(|| self.code_at(now + period)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B: every time, every algorithm, 8 digits.
    #[test]
    fn rfc6238_appendix_b() {
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in table {
            assert_eq!(
                Totp::new(SEED20.to_vec(), Algorithm::Sha1, 8, 30).code_at(t),
                sha1,
                "SHA1 {t}"
            );
            assert_eq!(
                Totp::new(SEED32.to_vec(), Algorithm::Sha256, 8, 30).code_at(t),
                sha256,
                "SHA256 {t}"
            );
            assert_eq!(
                Totp::new(SEED64.to_vec(), Algorithm::Sha512, 8, 30).code_at(t),
                sha512,
                "SHA512 {t}"
            );
        }
    }

    /// RFC 4226 Appendix D.
    #[test]
    fn rfc4226_appendix_d() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (c, w) in want.iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, SEED20, c as u64, 6), *w);
        }
    }

    #[test]
    fn next_code_only_near_the_end() {
        let t = Totp::new(SEED20.to_vec(), Algorithm::Sha1, 6, 30);
        let early = t.generate(60);
        assert_eq!(early.seconds_remaining, 30);
        assert!(early.next_code.is_none());
        let late = t.generate(88);
        assert_eq!(late.seconds_remaining, 2);
        assert_eq!(late.next_code.as_deref(), Some(t.code_at(90).as_str()));
        assert_eq!(late.code.len(), 6);
    }

    #[test]
    fn debug_hides_seed() {
        let t = Totp::new(SEED20.to_vec(), Algorithm::Sha1, 6, 30);
        assert!(!format!("{t:?}").contains("1234567890"));
    }
}
