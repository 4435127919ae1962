//! The two ways a caller hands us a TOTP generator: an `otpauth://totp/...` provisioning URI
//! (the QR-code format, Google Authenticator "Key Uri Format") or a JSON object.
//!
//! Parameter policy for the URI form:
//! - `secret` (required), `algorithm`, `digits`, `period`, `issuer` are understood; each may
//!   appear once, since two different secrets would make it a guess which one is meant.
//! - `counter` is an error: it only means something for HOTP, and silently dropping it would
//!   hide that the caller pasted a counter-based URI.
//! - Any other parameter (`image`, `color`, `lock`, `icon`, ... added by various issuers and
//!   apps) is ignored, so real-world URIs are accepted as they are.
//!
//! Base32 secrets are case-insensitive, padding is optional, and spaces are ignored (issuers
//! print setup keys in groups of four).

use std::fmt;

use data_encoding::{Encoding, BASE32_NOPAD};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use url::Url;
use zeroize::Zeroizing;

use super::error::{echo, VaultError};
use super::secret::SecretString;
use super::totp::{Algorithm, TotpParams};

const DEFAULT_DIGITS: u8 = 6;
const DEFAULT_PERIOD: u32 = 30;

/// An otpauth URI, parsed. `issuer` and `account` come from the label and the `issuer`
/// parameter; they are not secret and may be shown.
#[derive(Debug)]
pub struct ParsedOtpauth {
    pub params: TotpParams,
    pub issuer: Option<String>,
    pub account: Option<String>,
}

/// Parses `otpauth://totp/Label?secret=BASE32&issuer=..&algorithm=..&digits=..&period=..`.
pub fn parse_otpauth(uri: &str) -> Result<ParsedOtpauth, VaultError> {
    let url = Url::parse(uri.trim()).map_err(|_| VaultError::NotAUri)?;
    if url.scheme() != "otpauth" {
        return Err(VaultError::NotOtpauth(echo(url.scheme())));
    }
    match url.host_str().map(str::to_ascii_lowercase).as_deref() {
        Some("totp") => {}
        Some("hotp") => return Err(VaultError::HotpUnsupported),
        other => return Err(VaultError::UnknownOtpType(echo(other.unwrap_or("")))),
    }

    let mut secret: Option<Zeroizing<Vec<u8>>> = None;
    let mut algorithm: Option<Algorithm> = None;
    let mut digits: Option<u8> = None;
    let mut period: Option<u32> = None;
    let mut issuer: Option<String> = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "secret" => set_once(
                &mut secret,
                decode_base32_secret(&Zeroizing::new(value.into_owned()))?,
                &key,
            )?,
            "algorithm" => set_once(&mut algorithm, value.parse()?, &key)?,
            "digits" => set_once(&mut digits, parse_digits(&value)?, &key)?,
            "period" => set_once(&mut period, parse_period(&value)?, &key)?,
            "issuer" => set_once(&mut issuer, value.into_owned(), &key)?,
            "counter" => return Err(VaultError::UnsupportedParameter("counter".into())),
            _ => {}
        }
    }

    let secret = secret.ok_or(VaultError::MissingSecret)?;
    let params = TotpParams::new(
        secret,
        algorithm.unwrap_or_default(),
        digits.unwrap_or(DEFAULT_DIGITS),
        period.unwrap_or(DEFAULT_PERIOD),
    )?;
    let (label_issuer, account) = split_label(url.path());
    Ok(ParsedOtpauth {
        params,
        issuer: issuer.or(label_issuer),
        account,
    })
}

/// Fills a parameter slot, refusing a second value for it.
fn set_once<T>(slot: &mut Option<T>, value: T, key: &str) -> Result<(), VaultError> {
    if slot.replace(value).is_some() {
        return Err(VaultError::DuplicateParameter(echo(key)));
    }
    Ok(())
}

/// Decodes a base32 seed leniently (see the module doc) into a wiped-on-drop buffer.
pub fn decode_base32_secret(text: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let cleaned: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    let unpadded = cleaned.trim_end_matches('=');
    if unpadded.is_empty() {
        return Err(VaultError::MissingSecret);
    }
    lenient_base32()?
        .decode(unpadded.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| VaultError::InvalidBase32)
}

/// RFC 4648 base32 without padding, accepting non-zero trailing bits: some issuers generate
/// seeds whose length is not a multiple of 5 bytes and leave junk in the last character.
fn lenient_base32() -> Result<Encoding, VaultError> {
    let mut spec = BASE32_NOPAD.specification();
    spec.check_trailing_bits = false;
    spec.encoding().map_err(|_| VaultError::InvalidBase32)
}

fn parse_digits(value: &str) -> Result<u8, VaultError> {
    match value.trim() {
        "6" => Ok(6),
        "8" => Ok(8),
        other => Err(VaultError::InvalidDigits(echo(other))),
    }
}

fn parse_period(value: &str) -> Result<u32, VaultError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|p| super::totp::PERIOD_RANGE.contains(p))
        .ok_or_else(|| VaultError::InvalidPeriod(echo(value)))
}

/// `/Issuer:account` (the colon may be percent-encoded) -> (issuer, account).
fn split_label(path: &str) -> (Option<String>, Option<String>) {
    let label = percent_decode(path.trim_start_matches('/'));
    let non_empty = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    match label.split_once(':') {
        Some((issuer, account)) => (non_empty(issuer), non_empty(account)),
        None => (None, non_empty(&label)),
    }
}

/// Percent-decoding for the label. Not `form_urlencoded`, which would turn the `+` of
/// `user+tag@example.com` into a space. Malformed escapes are kept literally.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `totp` field of `PUT /v1/vault/{name}`: a URI string or an object (DESIGN §6).
#[derive(Debug)]
pub enum TotpSpec {
    Uri(SecretString),
    Object(TotpObject),
}

/// `{"secret": "BASE32", "algorithm": "SHA1", "digits": 6, "period": 30}`; all but `secret`
/// optional with those defaults. Unknown fields are rejected so a typo is not silently lost.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpObject {
    pub secret: SecretString,
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub digits: Option<u64>,
    #[serde(default)]
    pub period: Option<u64>,
}

impl TotpSpec {
    /// Validates and converts into a generator; the errors name the bad parameter.
    pub fn to_params(&self) -> Result<TotpParams, VaultError> {
        match self {
            TotpSpec::Uri(uri) => parse_otpauth(uri.expose()).map(|parsed| parsed.params),
            TotpSpec::Object(obj) => {
                let secret = decode_base32_secret(obj.secret.expose())?;
                let algorithm = match &obj.algorithm {
                    Some(name) => name.parse()?,
                    None => Algorithm::default(),
                };
                let digits = match obj.digits {
                    None => DEFAULT_DIGITS,
                    Some(d @ (6 | 8)) => d as u8,
                    Some(d) => return Err(VaultError::InvalidDigits(d.to_string())),
                };
                let period = match obj.period {
                    None => DEFAULT_PERIOD,
                    Some(p) => {
                        u32::try_from(p).map_err(|_| VaultError::InvalidPeriod(p.to_string()))?
                    }
                };
                TotpParams::new(secret, algorithm, digits, period)
            }
        }
    }
}

/// Hand-written rather than `#[serde(untagged)]`, whose only error is "data did not match any
/// variant": this way an object with a typo says which field is unknown.
impl<'de> Deserialize<'de> for TotpSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;

        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = TotpSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an otpauth://totp/ URI or an object {secret, algorithm, digits, period}",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TotpSpec, E> {
                Ok(TotpSpec::Uri(SecretString::from(v)))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<TotpSpec, E> {
                Ok(TotpSpec::Uri(SecretString::new(v)))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TotpSpec, A::Error> {
                TotpObject::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(TotpSpec::Object)
            }
        }

        deserializer.deserialize_any(SpecVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "12345678901234567890" in base32: the RFC 6238 SHA1 seed.
    const RFC_SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn parse(uri: &str) -> Result<ParsedOtpauth, VaultError> {
        parse_otpauth(uri)
    }

    #[test]
    fn full_uri_parses() {
        let p = parse(&format!(
            "otpauth://totp/ACME%20Co:john.doe+x@email.com?secret={RFC_SEED_B32}&issuer=ACME%20Co\
             &algorithm=SHA1&digits=8&period=30&image=https%3A%2F%2Fx%2Fa.png"
        ))
        .unwrap();
        assert_eq!(p.issuer.as_deref(), Some("ACME Co"));
        assert_eq!(p.account.as_deref(), Some("john.doe+x@email.com"));
        assert_eq!(p.params.digits(), 8);
        assert_eq!(p.params.code_at(59), "94287082");
    }

    #[test]
    fn defaults_and_lenient_base32() {
        let lower_spaced = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq";
        let p = parse(&format!(
            "otpauth://totp/x?secret={}",
            lower_spaced.replace(' ', "%20")
        ))
        .unwrap();
        assert_eq!(p.params.algorithm(), Algorithm::Sha1);
        assert_eq!((p.params.digits(), p.params.period()), (6, 30));
        assert_eq!(p.params.code_at(59), "287082");
        assert_eq!(p.issuer, None);
        assert_eq!(p.account.as_deref(), Some("x"));
        // Padding optional: 10 bytes is 16 chars (no padding); 11 bytes needs '='.
        let padded = data_encoding::BASE32.encode(&[7u8; 11]);
        assert!(padded.ends_with('='));
        assert!(decode_base32_secret(&padded).is_ok());
        assert!(decode_base32_secret(padded.trim_end_matches('=')).is_ok());
        assert!(parse(&format!("OTPAUTH://TOTP?secret={RFC_SEED_B32}")).is_ok());
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: Vec<(String, &str)> = vec![
            ("not a uri".into(), "not a valid URI"),
            (
                format!("https://x/?secret={RFC_SEED_B32}"),
                "scheme must be `otpauth`, got `https`",
            ),
            (
                format!("otpauth://hotp/x?secret={RFC_SEED_B32}&counter=1"),
                "`hotp`",
            ),
            (
                format!("otpauth://motp/x?secret={RFC_SEED_B32}"),
                "`motp` is unknown",
            ),
            (
                format!("otpauth://totp/x?secret={RFC_SEED_B32}&algorithm=MD5"),
                "`MD5`",
            ),
            (
                format!("otpauth://totp/x?secret={RFC_SEED_B32}&digits=7"),
                "6 or 8, got `7`",
            ),
            (
                format!("otpauth://totp/x?secret={RFC_SEED_B32}&period=10"),
                "15 to 120, got `10`",
            ),
            (
                format!("otpauth://totp/x?secret={RFC_SEED_B32}&period=121"),
                "got `121`",
            ),
            (
                format!("otpauth://totp/x?secret={RFC_SEED_B32}&period=abc"),
                "got `abc`",
            ),
            (
                format!("otpauth://totp/x?secret={RFC_SEED_B32}&counter=3"),
                "`counter` is not valid",
            ),
            ("otpauth://totp/x?issuer=a".into(), "secret is missing"),
            ("otpauth://totp/x?secret=".into(), "secret is missing"),
            (
                "otpauth://totp/x?secret=ABC!DEF".into(),
                "secret is not valid base32",
            ),
            (
                "otpauth://totp/x?secret=A".into(),
                "secret is not valid base32",
            ),
            (
                "otpauth://totp/x?secret=JBSWY3DP".into(),
                "secret is 5 bytes; at least 10",
            ),
            (
                format!("otpauth://totp/x?secret={RFC_SEED_B32}&secret=JBSWY3DP"),
                "`secret` is given more than once",
            ),
        ];
        for (uri, needle) in cases {
            let err = parse(&uri).unwrap_err().to_string();
            assert!(err.contains(needle), "{uri}: {err}");
            assert!(
                !err.contains(RFC_SEED_B32),
                "{uri}: message leaks the secret"
            );
        }
    }

    #[test]
    fn spec_accepts_uri_string_and_object() {
        let from_uri: TotpSpec =
            serde_json::from_str(&format!("\"otpauth://totp/x?secret={RFC_SEED_B32}\"")).unwrap();
        assert_eq!(from_uri.to_params().unwrap().code_at(59), "287082");

        let obj = format!(
            r#"{{"secret": "{RFC_SEED_B32}", "algorithm": "SHA1", "digits": 8, "period": 30}}"#
        );
        let from_obj: TotpSpec = serde_json::from_str(&obj).unwrap();
        assert_eq!(from_obj.to_params().unwrap().code_at(59), "94287082");

        let minimal: TotpSpec =
            serde_json::from_str(&format!(r#"{{"secret": "{RFC_SEED_B32}"}}"#)).unwrap();
        let p = minimal.to_params().unwrap();
        assert_eq!(
            (p.digits(), p.period(), p.algorithm()),
            (6, 30, Algorithm::Sha1)
        );
    }

    #[test]
    fn spec_object_errors_are_specific() {
        let typo = format!(r#"{{"secret": "{RFC_SEED_B32}", "digit": 6}}"#);
        let err = serde_json::from_str::<TotpSpec>(&typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `digit`"), "{err}");

        let bad = |json: String| serde_json::from_str::<TotpSpec>(&json).unwrap().to_params();
        assert!(matches!(
            bad(format!(r#"{{"secret": "{RFC_SEED_B32}", "digits": 7}}"#)),
            Err(VaultError::InvalidDigits(_))
        ));
        assert!(matches!(
            bad(format!(
                r#"{{"secret": "{RFC_SEED_B32}", "period": 5000000000}}"#
            )),
            Err(VaultError::InvalidPeriod(_))
        ));
        assert!(matches!(
            bad(format!(
                r#"{{"secret": "{RFC_SEED_B32}", "algorithm": "MD5"}}"#
            )),
            Err(VaultError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            bad(r#"{"secret": "not base32!"}"#.into()),
            Err(VaultError::InvalidBase32)
        ));
        assert!(serde_json::from_str::<TotpSpec>("5").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let spec: TotpSpec =
            serde_json::from_str(&format!(r#"{{"secret": "{RFC_SEED_B32}"}}"#)).unwrap();
        let uri: TotpSpec =
            serde_json::from_str(&format!("\"otpauth://totp/x?secret={RFC_SEED_B32}\"")).unwrap();
        let parsed = parse(&format!("otpauth://totp/x?secret={RFC_SEED_B32}")).unwrap();
        for dbg in [
            format!("{spec:?}"),
            format!("{uri:?}"),
            format!("{parsed:?}"),
        ] {
            assert!(dbg.contains("[redacted]"), "{dbg}");
            assert!(
                !dbg.contains(RFC_SEED_B32) && !dbg.contains("1234567890"),
                "{dbg}"
            );
        }
    }

    #[test]
    fn label_percent_decoding_keeps_plus_and_bad_escapes() {
        assert_eq!(percent_decode("a%3Ab+c%zz%4"), "a:b+c%zz%4");
        assert_eq!(
            split_label("/Issuer%3Aalice"),
            (Some("Issuer".into()), Some("alice".into()))
        );
        assert_eq!(split_label(""), (None, None));
    }
}
