//! The validity period of an X.509 certificate, read from its DER. Renewal only needs
//! notBefore and notAfter, so this walks the few fields before them (RFC 5280 §4.1) instead
//! of pulling in a full X.509 parser.

use super::TlsError;

/// Unix times (seconds) of notBefore and notAfter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// When to renew: at two thirds of the lifetime or `before_secs` before expiry, whichever
    /// comes first (a 90-day certificate renews 30 days before it ends either way).
    pub fn renew_at(&self, before_secs: i64) -> i64 {
        let lifetime = (self.not_after - self.not_before).max(0);
        let two_thirds = self.not_before + lifetime * 2 / 3;
        two_thirds.min(self.not_after - before_secs)
    }
}

fn bad(what: &str) -> TlsError {
    TlsError::Invalid(format!("certificate DER: {what}"))
}

/// One DER element: (tag, contents, rest).
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), TlsError> {
    let (&tag, rest) = input.split_first().ok_or_else(|| bad("truncated"))?;
    let (&first, rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad("truncated"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), TlsError> {
    let (t, body, rest) = element(input)?;
    if t != tag {
        return Err(bad("unexpected field"));
    }
    Ok((body, rest))
}

fn digits(s: &[u8]) -> Result<i32, TlsError> {
    let s = std::str::from_utf8(s).map_err(|_| bad("time"))?;
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("time"));
    }
    s.parse().map_err(|_| bad("time"))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as a unix time.
fn time(tag: u8, v: &[u8]) -> Result<i64, TlsError> {
    let (year, rest) = match tag {
        0x17 if v.len() == 13 => {
            let yy = digits(&v[..2])?;
            // RFC 5280 §4.1.2.5.1: 50-99 are 19xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &v[2..])
        }
        0x18 if v.len() == 15 => (digits(&v[..4])?, &v[4..]),
        _ => return Err(bad("time format")),
    };
    if rest[10] != b'Z' {
        return Err(bad("time zone"));
    }
    let n = |i: usize| digits(&rest[i..i + 2]);
    let month = u8::try_from(n(0)?)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(|| bad("month"))?;
    let date = time::Date::from_calendar_date(year, month, n(2)? as u8).map_err(|_| bad("date"))?;
    let t = time::Time::from_hms(n(4)? as u8, n(6)? as u8, n(8)? as u8).map_err(|_| bad("time"))?;
    Ok(time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp())
}

/// Reads the validity of a DER certificate.
pub fn of_der(cert: &[u8]) -> Result<Validity, TlsError> {
    let (cert, _) = expect(cert, 0x30)?;
    let (tbs, _) = expect(cert, 0x30)?;
    let mut rest = tbs;
    // version [0] EXPLICIT is optional (absent means v1).
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    rest = expect(rest, 0x02)?.1; // serialNumber
    rest = expect(rest, 0x30)?.1; // signature AlgorithmIdentifier
    rest = expect(rest, 0x30)?.1; // issuer Name
    let (validity, _) = expect(rest, 0x30)?;
    let (t1, v1, after) = element(validity)?;
    let (t2, v2, _) = element(after)?;
    Ok(Validity {
        not_before: time(t1, v1)?,
        not_after: time(t2, v2)?,
    })
}

/// The validity of the first certificate of a PEM chain.
pub fn of_pem(pem: &[u8]) -> Result<Validity, TlsError> {
    let first = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .ok_or_else(|| bad("no certificate"))?
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    of_der(&first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_period_rcgen_wrote() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["mx.a.test".to_string()]).unwrap();
        p.not_before = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        p.not_after = time::macros::datetime!(2026-04-02 03:04:05 UTC);
        let pem = p.self_signed(&key).unwrap().pem();
        let v = of_pem(pem.as_bytes()).unwrap();
        assert_eq!(v.not_before, 1_767_323_045);
        assert_eq!(v.not_after - v.not_before, 90 * 86_400);
        // 90 days: two thirds and 30 days before coincide.
        assert_eq!(v.renew_at(30 * 86_400), v.not_before + 60 * 86_400);
        // A long certificate renews at two thirds, a huge window renews at once.
        assert_eq!(v.renew_at(86_400), v.not_before + 60 * 86_400);
        assert!(v.renew_at(10_000 * 86_400) < v.not_before);
    }

    #[test]
    fn generalized_time_after_2049() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        p.not_after = time::macros::datetime!(2051-06-01 00:00:00 UTC);
        let v = of_pem(p.self_signed(&key).unwrap().pem().as_bytes()).unwrap();
        assert_eq!(v.not_after, 2_569_190_400);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01\x02",
        ] {
            assert!(of_der(input).is_err());
        }
        assert!(of_pem(b"not pem").is_err());
    }
}
