//! Shared by the bench probes: how long after an event's `created_at` it arrived.
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// `"created_at":"2026-12-06T14:48:09.123Z"` (any number of fraction digits, or none) as
/// Unix milliseconds.
pub fn created_at_ms(body: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(body).ok()?;
    let i = s.find("\"created_at\":\"")? + 14;
    let t = s.get(i..)?;
    let t = &t[..t.find('"')?];
    let num = |a: usize, b: usize| t.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let frac = t
        .get(19..)?
        .strip_prefix('.')
        .map(|f| f.trim_end_matches('Z'))
        .filter(|f| !f.is_empty())
        .map(|f| format!("0.{f}").parse::<f64>().unwrap_or(0.0))
        .unwrap_or(0.0);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + h) * 60 + mi) * 60 + sec) as f64 * 1000.0 + (frac * 1000.0).round())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_created_at() {
        let b = br#"{"id":"evt_1","created_at":"1970-01-02T00:00:01.500Z"}"#;
        assert_eq!(super::created_at_ms(b), Some(86_401_500.0));
        let b = br#"{"created_at":"2026-12-06T14:48:09.123Z"}"#;
        assert_eq!(super::created_at_ms(b), Some(1_796_568_489_123.0));
        let b = br#"{"created_at":"2026-12-06T14:48:09Z"}"#;
        assert_eq!(super::created_at_ms(b), Some(1_796_568_489_000.0));
        let b = br#"{"created_at":"2026-12-06T14:48:09.12Z"}"#;
        assert_eq!(super::created_at_ms(b), Some(1_796_568_489_120.0));
    }
}
