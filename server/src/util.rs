//! Small helpers every layer shares: clocks, random identifiers, encodings.
//!
//! Kept free of any service type so that the lowest layers (store, audit) can use it too.

use data_encoding::BASE32_NOPAD;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::OffsetDateTime;

/// Unix time in whole seconds. Records store seconds; nothing here needs finer grain
/// except the audit log, which uses [`now_millis`].
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix time in milliseconds, for orderings finer than a second (audit, received_at).
pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 rendering of a unix time in seconds, for JSON responses.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// RFC 3339 rendering of a unix time in milliseconds.
pub fn rfc3339_millis(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// RFC 5322 date-time of a unix time in seconds, for message headers (Date, Received, DSNs).
pub fn rfc2822(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

/// A `Received` trace header (RFC 5321 §4.4), CRLF-terminated: `from` is the client's
/// `helo (ip)` (absent for local delivery), `with` the protocol (ESMTP, ESMTPS, ESMTPSA,
/// LOCAL), `rcpt` the one recipient this copy is for, if it is for one.
pub fn received_header(
    from: Option<&str>,
    by: &str,
    with: &str,
    id: &str,
    rcpt: Option<&str>,
    date: &str,
) -> String {
    let mut h = String::from("Received: ");
    if let Some(f) = from {
        h.push_str("from ");
        h.push_str(f);
        h.push_str("\r\n\t");
    }
    h.push_str(&format!("by {by} (legate) with {with} id {id}"));
    match rcpt {
        Some(r) => h.push_str(&format!("\r\n\tfor <{r}>; {date}\r\n")),
        None => h.push_str(&format!(";\r\n\t{date}\r\n")),
    }
    h
}

/// Parses an RFC 3339 timestamp or a plain unix-seconds integer into unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Fills a buffer from the operating system's CSPRNG. Failing to get randomness is not
/// something to limp on from: every caller needs unpredictable bytes for security.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS RNG only fails on a broken platform; no secret may be made without it.
    getrandom::fill(&mut buf).expect("operating system random number generator failed");
    buf
}

/// A new opaque identifier such as `ag_k3j...`: a type prefix (so an id in a log says what it
/// names) and 80 random bits in lowercase base32.
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 10] = random_bytes();
    format!(
        "{prefix}_{}",
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    )
}

/// Whether `id` can be one [`new_id`] made with `prefix` (`msg`, `th`, `dr`...): ids arrive
/// in paths and become store keys, so anything else names nothing.
pub fn is_id_of(id: &str, prefix: &str) -> bool {
    id.len() <= 64
        && id
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('_'))
            .is_some()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `d` is a host name: dot-separated letter-digit-hyphen labels (RFC 1035,
/// RFC 5321 §4.1.2), none empty or over 63 bytes, the whole at most 253 bytes.
pub fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_headers_name_the_hop_and_end_with_a_date() {
        let h = received_header(
            Some("c.test (192.0.2.1)"),
            "mx.a.test",
            "ESMTPS",
            "smtp_1",
            Some("x@a.test"),
            "D",
        );
        assert_eq!(
            h,
            "Received: from c.test (192.0.2.1)\r\n\tby mx.a.test (legate) with ESMTPS id smtp_1\r\n\tfor <x@a.test>; D\r\n"
        );
        let local = received_header(None, "mx.a.test", "LOCAL", "msg_1", None, "D");
        assert_eq!(
            local,
            "Received: by mx.a.test (legate) with LOCAL id msg_1;\r\n\tD\r\n"
        );
        assert!(rfc2822(0).starts_with("Thu, 01 Jan 1970"));
    }

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = new_id("ag");
        let b = new_id("ag");
        assert!(a.starts_with("ag_"));
        assert_eq!(a.len(), 3 + 16);
        assert_ne!(a, b);
    }

    #[test]
    fn domains() {
        assert!(valid_domain("agents.example.com"));
        for bad in ["", "-a.com", "a..com", "a_b.com", "exa mple.com"] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }

    #[test]
    fn time_round_trips() {
        let s = rfc3339(1_700_000_000);
        assert_eq!(s, "2023-11-14T22:13:20Z");
        assert_eq!(parse_time(&s), Some(1_700_000_000));
        assert_eq!(parse_time("42"), Some(42));
        assert_eq!(parse_time("nope"), None);
    }
}
