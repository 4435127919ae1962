//! TOTP set-up input: an `otpauth://totp/...` URI or a JSON object. Every error names the
//! problem, and none contains the secret.

use super::totp::{Algorithm, Totp, PERIODS};
use data_encoding::BASE32_NOPAD;
use serde::Deserialize;

/// Seeds shorter than this are refused. RFC 4226 §4 asks for 128 bits; 80-bit seeds are still
/// common in the wild (and are what many sites issue), so 10 bytes is the floor.
const MIN_SEED_BYTES: usize = 10;

/// `"totp": "otpauth://..."` or `"totp": {"secret": "BASE32", ...}`.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum TotpSpec {
    Uri(String),
    Object {
        secret: String,
        #[serde(default)]
        algorithm: Option<String>,
        #[serde(default)]
        digits: Option<u8>,
        #[serde(default)]
        period: Option<u32>,
    },
}

impl std::fmt::Debug for TotpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSpec([redacted])")
    }
}

/// Decodes base32 the way authenticator apps do: any case, optional padding, spaces ignored.
pub fn decode_base32(s: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|_| "totp secret is not valid base32".to_string())?;
    if bytes.len() < MIN_SEED_BYTES {
        return Err(format!(
            "totp secret is too short ({} bytes; at least {MIN_SEED_BYTES})",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn build(
    secret: &str,
    alg: Option<&str>,
    digits: Option<u8>,
    period: Option<u32>,
) -> Result<Totp, String> {
    let algorithm = match alg {
        None => Algorithm::Sha1,
        Some(a) => Algorithm::parse(a).ok_or_else(|| {
            format!("unsupported totp algorithm \"{a}\" (SHA1, SHA256 or SHA512)")
        })?,
    };
    let digits = digits.unwrap_or(6);
    if digits != 6 && digits != 8 {
        return Err(format!("unsupported totp digits {digits} (6 or 8)"));
    }
    let period = period.unwrap_or(30);
    if !PERIODS.contains(&period) {
        return Err(format!(
            "unsupported totp period {period} (between {} and {} seconds)",
            PERIODS.start(),
            PERIODS.end()
        ));
    }
    Ok(Totp::new(decode_base32(secret)?, algorithm, digits, period))
}

impl TotpSpec {
    pub fn to_totp(&self) -> Result<Totp, String> {
        match self {
            TotpSpec::Object {
                secret,
                algorithm,
                digits,
                period,
            } => build(secret, algorithm.as_deref(), *digits, *period),
            TotpSpec::Uri(uri) => parse_uri(uri),
        }
    }
}

/// Parses `otpauth://totp/Label?secret=...&issuer=...&algorithm=...&digits=...&period=...`.
/// Unknown parameters that authenticator apps add (`image`, `color`, `icon`) are ignored;
/// `counter` (an HOTP parameter) is refused on a TOTP URI.
pub fn parse_uri(uri: &str) -> Result<Totp, String> {
    let u = url::Url::parse(uri).map_err(|_| "totp is not a valid otpauth:// URI".to_string())?;
    if u.scheme() != "otpauth" {
        return Err(format!(
            "totp URI scheme must be otpauth, not \"{}\"",
            u.scheme()
        ));
    }
    match u.host_str() {
        Some("totp") => {}
        Some("hotp") => {
            return Err("hotp URIs are not supported (counter-based codes); use totp".into())
        }
        other => {
            return Err(format!(
                "unsupported otpauth type \"{}\"",
                other.unwrap_or("")
            ))
        }
    }
    let (mut secret, mut alg, mut digits, mut period) = (None, None, None, None);
    for (k, v) in u.query_pairs() {
        match k.to_ascii_lowercase().as_str() {
            "secret" => secret = Some(v.into_owned()),
            "algorithm" => alg = Some(v.into_owned()),
            "digits" => {
                digits = Some(
                    v.parse::<u8>()
                        .map_err(|_| format!("totp digits \"{v}\" is not a number"))?,
                )
            }
            "period" => {
                period = Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("totp period \"{v}\" is not a number"))?,
                )
            }
            "counter" => return Err("the counter parameter belongs to hotp, not totp".into()),
            "issuer" | "image" | "color" | "icon" => {}
            other => return Err(format!("unsupported otpauth parameter \"{other}\"")),
        }
    }
    let secret = secret.ok_or("otpauth URI has no secret parameter")?;
    build(&secret, alg.as_deref(), digits, period)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"

    #[test]
    fn uri_and_object_forms() {
        let t = parse_uri(&format!(
            "otpauth://totp/ACME:bob?secret={S}&issuer=ACME&algorithm=SHA256&digits=8&period=60"
        ))
        .unwrap();
        assert_eq!(
            (t.algorithm, t.digits, t.period),
            (Algorithm::Sha256, 8, 60)
        );
        let t = parse_uri(&format!("otpauth://totp/x?secret={}", S.to_lowercase())).unwrap();
        assert_eq!(t.code_at(59), "287082");
        let spec: TotpSpec = serde_json::from_value(
            serde_json::json!({"secret": "gezd gnbv gy3t qojq gezd gnbv gy3t qojq"}),
        )
        .unwrap();
        assert_eq!(spec.to_totp().unwrap().digits, 6);
    }

    #[test]
    fn errors_say_which() {
        let cases = [
            ("not a uri", "not a valid otpauth"),
            ("https://totp/x?secret=AAAA", "scheme"),
            ("otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQ&counter=1", "hotp"),
            ("otpauth://totp/x?secret=!!!!", "base32"),
            ("otpauth://totp/x?secret=GEZDGNBV", "too short"),
            (
                &format!("otpauth://totp/x?secret={S}&algorithm=MD5") as &str,
                "MD5",
            ),
            (&format!("otpauth://totp/x?secret={S}&digits=7"), "digits 7"),
            (&format!("otpauth://totp/x?secret={S}&period=5"), "period 5"),
            (&format!("otpauth://totp/x?secret={S}&counter=3"), "counter"),
            (&format!("otpauth://totp/x?secret={S}&foo=1"), "\"foo\""),
            ("otpauth://totp/x?issuer=a", "no secret"),
        ];
        for (uri, want) in cases {
            let e = parse_uri(uri).unwrap_err();
            assert!(e.contains(want), "{uri}: {e}");
            assert!(!e.contains(S));
        }
    }
}
