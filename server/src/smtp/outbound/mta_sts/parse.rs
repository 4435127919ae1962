//! The MTA-STS wire formats (RFC 8461 §3): the `_mta-sts` TXT record and the policy file.
//! Pure functions, strict where the RFC says MUST and tolerant of extension keys where it
//! says senders ignore them.

/// RFC 8461 §3.2: `max_age` is at most 31557600 seconds (about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Lower case, no trailing dot; `*.example.net` wildcards kept as written.
    pub mx: Vec<String>,
    pub max_age: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no v=STSv1 TXT record")]
    NoRecord,
    #[error("{0} v=STSv1 TXT records (want exactly one)")]
    ManyRecords(usize),
    #[error("bad TXT record: {0}")]
    Txt(String),
    #[error("bad policy: {0}")]
    Policy(String),
}

/// The policy id of the domain's TXT records (RFC 8461 §3.1): records not starting with
/// `v=STSv1` are ignored; not exactly one left, or a bad one, means no policy.
pub fn txt_id<S: AsRef<str>>(records: &[S]) -> Result<String, ParseError> {
    let sts: Vec<&str> = records
        .iter()
        .map(|r| r.as_ref().trim())
        .filter(|r| r.starts_with("v=STSv1"))
        .collect();
    let record = match sts.as_slice() {
        [] => return Err(ParseError::NoRecord),
        [one] => *one,
        many => return Err(ParseError::ManyRecords(many.len())),
    };
    let mut id = None;
    for (i, field) in record.split(';').enumerate() {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| ParseError::Txt(format!("field {field:?} has no '='")))?;
        let (k, v) = (k.trim(), v.trim());
        match (i, k) {
            (0, "v") if v == "STSv1" => {}
            (0, _) => return Err(ParseError::Txt("must start with v=STSv1".into())),
            (_, "id") if id.is_some() => return Err(ParseError::Txt("two ids".into())),
            (_, "id") => {
                if v.is_empty() || v.len() > 32 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(ParseError::Txt(format!(
                        "bad id {v:?} (1-32 letters and digits)"
                    )));
                }
                id = Some(v.to_string());
            }
            // Extension fields are ignored (§3.1).
            _ => {}
        }
    }
    id.ok_or_else(|| ParseError::Txt("no id".into()))
}

/// Parses a policy file (RFC 8461 §3.2): `key: value` lines (LF or CRLF), `version: STSv1`,
/// one `mode`, one `max_age`, and at least one `mx` unless the mode is `none`.
pub fn policy(text: &str) -> Result<Policy, ParseError> {
    let bad = |m: String| ParseError::Policy(m);
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("line {line:?} is not key: value")))?;
        let (k, v) = (k.trim(), v.trim());
        let once = |slot: &Option<String>| match slot {
            Some(_) => Err(bad(format!("{k} given twice"))),
            None => Ok(Some(v.to_string())),
        };
        match k {
            "version" => version = once(&version)?,
            "mode" => mode = once(&mode)?,
            "max_age" => max_age = once(&max_age)?,
            "mx" => mx.push(mx_pattern(v).ok_or_else(|| bad(format!("bad mx {v:?}")))?),
            // Extension keys are ignored (§3.2).
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err(bad("version is not STSv1".into()));
    }
    let mode = match mode.as_deref() {
        Some("enforce") => Mode::Enforce,
        Some("testing") => Mode::Testing,
        Some("none") => Mode::None,
        Some(m) => return Err(bad(format!("unknown mode {m:?}"))),
        None => return Err(bad("no mode".into())),
    };
    let max_age: u64 = match max_age.as_deref() {
        Some(s) if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| bad(format!("bad max_age {s:?}")))?
        }
        Some(s) => return Err(bad(format!("bad max_age {s:?}"))),
        None => return Err(bad("no max_age".into())),
    };
    if max_age > MAX_AGE_LIMIT {
        return Err(bad(format!("max_age {max_age} exceeds {MAX_AGE_LIMIT}")));
    }
    if mx.is_empty() && mode != Mode::None {
        return Err(bad("no mx".into()));
    }
    Ok(Policy { mode, mx, max_age })
}

/// A policy `mx` value: a host name, or `*.` and a host name; lower-cased.
fn mx_pattern(v: &str) -> Option<String> {
    let v = v.trim_end_matches('.').to_ascii_lowercase();
    let host = v.strip_prefix("*.").unwrap_or(&v);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(v)
}

/// Whether MX host `host` matches policy pattern `pattern` (RFC 8461 §4.1): exact, or
/// `*.suffix` matching exactly one more label on the left.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => host == pattern,
    }
}

impl Policy {
    pub fn allows(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mx_matches(p, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_records() {
        assert_eq!(
            txt_id(&["v=STSv1; id=20160831085700Z;"]).unwrap(),
            "20160831085700Z"
        );
        assert_eq!(txt_id(&["other", "v=STSv1;id=abc; ext=1"]).unwrap(), "abc");
        assert_eq!(txt_id::<&str>(&[]), Err(ParseError::NoRecord));
        assert_eq!(txt_id(&["v=spf1 -all"]), Err(ParseError::NoRecord));
        assert_eq!(
            txt_id(&["v=STSv1; id=a", "v=STSv1; id=b"]),
            Err(ParseError::ManyRecords(2))
        );
        for bad in [
            "v=STSv1;",
            "v=STSv1; id=",
            "v=STSv1; id=has-dash",
            "v=STSv1; id=012345678901234567890123456789012",
            "v=STSv1; id=a; id=b",
            "v=STSv1; junk",
            "v=STSv10; id=a",
        ] {
            assert!(txt_id(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn good_policies() {
        let p = policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.net.\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, ["mail.example.com", "*.example.net"]);
        assert_eq!(p.max_age, 604_800);
        let p = policy("version: STSv1\nmode: none\nmax_age: 0\nfuture: 1\n").unwrap();
        assert_eq!(p.mode, Mode::None);
    }

    #[test]
    fn bad_policies_are_refused() {
        let ok = "version: STSv1\nmode: testing\nmx: mx.b.test\nmax_age: 86400\n";
        assert!(policy(ok).is_ok());
        for bad in [
            "",
            "mode: testing\nmx: mx.b.test\nmax_age: 86400\n",
            "version: STSv2\nmode: testing\nmx: mx.b.test\nmax_age: 86400\n",
            "version: STSv1\nmode: strict\nmx: mx.b.test\nmax_age: 86400\n",
            "version: STSv1\nmode: testing\nmax_age: 86400\n",
            "version: STSv1\nmode: testing\nmx: mx.b.test\n",
            "version: STSv1\nmode: testing\nmx: mx.b.test\nmax_age: 31557601\n",
            "version: STSv1\nmode: testing\nmx: mx.b.test\nmax_age: -1\n",
            "version: STSv1\nmode: testing\nmx: mx.b.test\nmax_age: 99999999999999999999\n",
            "version: STSv1\nmode: testing\nmode: enforce\nmx: mx.b.test\nmax_age: 1\n",
            "version: STSv1\nmode: testing\nmx: mx b.test\nmax_age: 1\n",
            "version: STSv1\nmode: testing\nmx: *.\nmax_age: 1\n",
            "version: STSv1\nmode: testing\nmx: a.*.b.test\nmax_age: 1\n",
            "version: STSv1\nmode testing\nmx: mx.b.test\nmax_age: 1\n",
            "<html>not a policy</html>",
        ] {
            assert!(policy(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mx_patterns() {
        assert!(mx_matches("mail.example.com", "MAIL.example.com."));
        assert!(!mx_matches("mail.example.com", "mail.example.com.evil"));
        assert!(mx_matches("*.example.net", "mx1.example.net"));
        assert!(!mx_matches("*.example.net", "example.net"));
        assert!(!mx_matches("*.example.net", "a.b.example.net"));
        assert!(!mx_matches("*.example.net", "mx1.badexample.net"));
        let p = policy("version: STSv1\nmode: enforce\nmx: *.b.test\nmax_age: 1\n").unwrap();
        assert!(p.allows("mx.b.test"));
        assert!(!p.allows("mx.c.test"));
    }
}
