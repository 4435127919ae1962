//! Time-based one-time passwords: RFC 6238 on top of RFC 4226's HOTP.
//!
//! The seed only exists inside [`TotpParams`], which has no serde, no `Display`, a redacted
//! `Debug` and no public accessor for the secret: callers get codes, never the seed.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::codec::{bytes_len, Reader, Writer};
use super::error::{echo, VaultError};

/// Shortest accepted seed. RFC 4226 §4 asks for at least 128 bits, but 80-bit (16 base32
/// characters) seeds are common in the wild and refusing them would make real accounts
/// unusable; 80 bits is still far beyond what the code length lets anyone guess.
pub const MIN_SECRET_LEN: usize = 10;
/// Longest accepted seed: four times a SHA-512 block, far above any real provisioning URI,
/// and a bound on what one credential may store.
pub const MAX_SECRET_LEN: usize = 256;
/// Accepted step lengths, in seconds. Outside this range no issuer is known to operate, and
/// a very short or very long step is more likely a typo than a real setting.
pub const PERIOD_RANGE: std::ops::RangeInclusive<u32> = 15..=120;
/// When fewer seconds than this remain in the step, the next code is returned too, so an
/// agent does not type a code that expires in transit.
pub const NEXT_CODE_THRESHOLD_SECS: u32 = 5;

/// The HMAC hash of a TOTP generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Algorithm {
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    fn code(self) -> u8 {
        match self {
            Algorithm::Sha1 => 1,
            Algorithm::Sha256 => 2,
            Algorithm::Sha512 => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Algorithm::Sha1),
            2 => Some(Algorithm::Sha256),
            3 => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Case-insensitive; `SHA-256` style spellings are accepted too since some issuers use them.
impl FromStr for Algorithm {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(VaultError::UnsupportedAlgorithm(echo(s))),
        }
    }
}

/// A validated TOTP generator. Construct with [`TotpParams::new`] or from an otpauth URI /
/// JSON object via `TotpSpec`.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpParams {
    secret: Zeroizing<Vec<u8>>,
    algorithm: Algorithm,
    digits: u8,
    period: u32,
}

/// One answer to "give me a code", as `POST /v1/vault/{name}/totp` returns it (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotpCode {
    pub code: String,
    /// Seconds until `code` stops being current, 1..=period.
    pub seconds_remaining: u32,
    pub period: u32,
    pub digits: u8,
    /// Unix time of the start of the step `code` belongs to: the code is current from `at`
    /// to `at + period`. (The step start rather than the request time, so that two calls in
    /// the same step return identical objects.)
    pub at: u64,
    /// The code of the following step, present only when fewer than
    /// [`NEXT_CODE_THRESHOLD_SECS`] seconds remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_code: Option<String>,
}

impl TotpParams {
    /// Checks every parameter: secret 10..=256 bytes, digits 6 or 8, period 15..=120 s.
    pub fn new(
        secret: Zeroizing<Vec<u8>>,
        algorithm: Algorithm,
        digits: u8,
        period: u32,
    ) -> Result<Self, VaultError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(VaultError::SecretTooShort(secret.len()));
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(VaultError::SecretTooLong(secret.len()));
        }
        if digits != 6 && digits != 8 {
            return Err(VaultError::InvalidDigits(digits.to_string()));
        }
        if !PERIOD_RANGE.contains(&period) {
            return Err(VaultError::InvalidPeriod(period.to_string()));
        }
        Ok(Self {
            secret,
            algorithm,
            digits,
            period,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn digits(&self) -> u8 {
        self.digits
    }

    pub fn period(&self) -> u32 {
        self.period
    }

    /// The code for the step containing `unix`.
    pub fn code_at(&self, unix: u64) -> String {
        hotp(
            &self.secret,
            self.algorithm,
            self.digits,
            unix / u64::from(self.period),
        )
    }

    /// The current code at `now` with its timing, plus the next code near the end of a step.
    pub fn generate(&self, now: u64) -> TotpCode {
        let period = u64::from(self.period);
        let at = now - now % period;
        // In 1..=period, so it fits the u32 the period came from.
        let seconds_remaining = u32::try_from(at + period - now).unwrap_or(self.period);
        let next_code = (seconds_remaining < NEXT_CODE_THRESHOLD_SECS)
            .then(|| self.code_at(at.saturating_add(period)));
        TotpCode {
            code: self.code_at(now),
            seconds_remaining,
            period: self.period,
            digits: self.digits,
            at,
            next_code,
        }
    }

    /// Plaintext for sealing: `version || algorithm || digits || period || secret`.
    pub(super) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(3 + 4 + bytes_len(self.secret.len()));
        w.u8(1);
        w.u8(self.algorithm.code());
        w.u8(self.digits);
        w.u32(self.period);
        w.bytes(&self.secret);
        w.finish()
    }

    pub(super) fn decode(input: &[u8]) -> Result<Self, VaultError> {
        let corrupt = VaultError::Corrupt { what: "totp seed" };
        let mut r = Reader::new(input);
        let parsed = (|| {
            if r.u8()? != 1 {
                return None;
            }
            let algorithm = Algorithm::from_code(r.u8()?)?;
            let digits = r.u8()?;
            let period = r.u32()?;
            let secret = Zeroizing::new(r.bytes()?.to_vec());
            r.is_empty().then_some((secret, algorithm, digits, period))
        })();
        let (secret, algorithm, digits, period) = parsed.ok_or(corrupt)?;
        Self::new(secret, algorithm, digits, period)
    }
}

impl fmt::Debug for TotpParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpParams")
            .field("secret", &"[redacted]")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .finish()
    }
}

/// RFC 4226 HOTP: HMAC over the big-endian counter, dynamic truncation, `digits` decimals.
fn hotp(secret: &[u8], algorithm: Algorithm, digits: u8, counter: u64) -> String {
    let msg = counter.to_be_bytes();
    let hash = match algorithm {
        Algorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(secret, &msg),
        Algorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(secret, &msg),
        Algorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(secret, &msg),
    };
    // Every hash here is at least 20 bytes, so `offset + 3 <= 15 + 3 < 20`.
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    let modulus = 10u32.pow(u32::from(digits));
    format!("{:0width$}", binary % modulus, width = usize::from(digits))
}

fn mac<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length (RFC 2104 §2 hashes long ones), so this cannot fail.
    let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn params(seed: &[u8], algorithm: Algorithm, digits: u8, period: u32) -> TotpParams {
        TotpParams::new(Zeroizing::new(seed.to_vec()), algorithm, digits, period).unwrap()
    }

    /// RFC 6238 Appendix B, every row.
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
        let sha1 = params(SEED_SHA1, Algorithm::Sha1, 8, 30);
        let sha256 = params(SEED_SHA256, Algorithm::Sha256, 8, 30);
        let sha512 = params(SEED_SHA512, Algorithm::Sha512, 8, 30);
        for (time, c1, c256, c512) in table {
            assert_eq!(sha1.code_at(time), c1, "SHA1 at {time}");
            assert_eq!(sha256.code_at(time), c256, "SHA256 at {time}");
            assert_eq!(sha512.code_at(time), c512, "SHA512 at {time}");
        }
    }

    /// RFC 4226 Appendix D, counters 0..=9.
    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                hotp(SEED_SHA1, Algorithm::Sha1, 6, counter as u64),
                *code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn six_digits_are_the_low_digits_and_keep_leading_zeros() {
        let p = params(SEED_SHA1, Algorithm::Sha1, 6, 30);
        assert_eq!(p.code_at(1111111109), "081804");
        assert_eq!(p.code_at(59), "287082");
    }

    #[test]
    fn generate_reports_timing_and_next_code_near_the_end() {
        let p = params(SEED_SHA1, Algorithm::Sha1, 8, 30);
        let early = p.generate(1111111110);
        assert_eq!(early.at, 1111111110);
        assert_eq!(early.seconds_remaining, 30);
        assert_eq!(early.code, "14050471");
        assert_eq!(early.next_code, None);
        let json = serde_json::to_value(&early).unwrap();
        assert!(json.get("next_code").is_none());

        let late = p.generate(1111111109);
        assert_eq!(late.at, 1111111080);
        assert_eq!(late.seconds_remaining, 1);
        assert_eq!(late.code, "07081804");
        assert_eq!(late.next_code.as_deref(), Some("14050471"));

        let boundary = p.generate(1111111105); // 5 s remain: not "fewer than 5"
        assert_eq!(boundary.seconds_remaining, 5);
        assert_eq!(boundary.next_code, None);
        assert_eq!(p.generate(1111111106).seconds_remaining, 4);
        assert!(p.generate(1111111106).next_code.is_some());
        assert_eq!((late.period, late.digits), (30, 8));
    }

    #[test]
    fn constructor_rejects_bad_parameters() {
        let ok = || Zeroizing::new(SEED_SHA1.to_vec());
        assert!(matches!(
            TotpParams::new(Zeroizing::new(vec![1; 9]), Algorithm::Sha1, 6, 30),
            Err(VaultError::SecretTooShort(9))
        ));
        assert!(TotpParams::new(Zeroizing::new(vec![1; 10]), Algorithm::Sha1, 6, 30).is_ok());
        assert!(matches!(
            TotpParams::new(Zeroizing::new(vec![1; 257]), Algorithm::Sha1, 6, 30),
            Err(VaultError::SecretTooLong(257))
        ));
        assert!(matches!(
            TotpParams::new(ok(), Algorithm::Sha1, 7, 30),
            Err(VaultError::InvalidDigits(_))
        ));
        for period in [0, 14, 121] {
            assert!(matches!(
                TotpParams::new(ok(), Algorithm::Sha1, 6, period),
                Err(VaultError::InvalidPeriod(_))
            ));
        }
        assert!(TotpParams::new(ok(), Algorithm::Sha1, 6, 15).is_ok());
        assert!(TotpParams::new(ok(), Algorithm::Sha1, 6, 120).is_ok());
    }

    #[test]
    fn algorithm_parses_loosely_and_names_the_bad_one() {
        assert_eq!("sha256".parse::<Algorithm>().unwrap(), Algorithm::Sha256);
        assert_eq!("SHA-512".parse::<Algorithm>().unwrap(), Algorithm::Sha512);
        let err = "MD5".parse::<Algorithm>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported totp algorithm `MD5`; use SHA1, SHA256 or SHA512"
        );
    }

    #[test]
    fn codec_round_trips_and_rejects_garbage() {
        let p = params(SEED_SHA256, Algorithm::Sha256, 6, 60);
        let bytes = p.encode();
        assert_eq!(TotpParams::decode(&bytes).unwrap(), p);
        assert!(TotpParams::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut extra = bytes.to_vec();
        extra.push(0);
        assert!(TotpParams::decode(&extra).is_err());
        let mut bad_alg = bytes.to_vec();
        bad_alg[1] = 9;
        assert!(TotpParams::decode(&bad_alg).is_err());
    }

    #[test]
    fn debug_hides_the_seed() {
        let p = params(SEED_SHA1, Algorithm::Sha1, 6, 30);
        let dbg = format!("{p:?}");
        assert!(dbg.contains("[redacted]") && dbg.contains("Sha1"));
        assert!(!dbg.contains("1234567890"));
        assert!(!dbg.contains("49, 50")); // the seed as a byte list
    }
}
