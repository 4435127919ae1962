//! `[events]` (the outbox and live streams) and `[webhooks]` (signed HTTP deliveries). Kept
//! apart from `types.rs` so each file stays small.

use serde::{Deserialize, Serialize};

/// `[events]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// How long events stay in the outbox (and can be replayed or resumed from): a number
    /// with a unit, `s`, `m`, `h` or `d` ("7d").
    pub retention: String,
    /// How often the pruning task runs, in seconds.
    pub prune_interval_secs: u64,
    /// Live streams (SSE, WebSocket) send a heartbeat this often, in seconds.
    pub heartbeat_secs: u64,
    /// Live streams one caller (an agent, or the admins together) may hold open at once;
    /// one more is answered 429.
    pub max_streams_per_caller: usize,
    /// Milliseconds a live stream or a webhook dispatcher that an outbox write woke waits
    /// for the writes behind it before it reads: under load one read of the outbox and one
    /// socket write then carry several events instead of one each. It adds at most this
    /// much to an event's latency; 0 reads at once.
    pub gather_ms: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            retention: "7d".into(),
            prune_interval_secs: 3600,
            heartbeat_secs: 15,
            max_streams_per_caller: 8,
            gather_ms: 10,
        }
    }
}

impl EventsConfig {
    /// `retention` in seconds, or why it does not parse.
    pub fn retention_secs(&self) -> Result<u64, String> {
        parse_duration(&self.retention)
    }
}

/// `[webhooks]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Allow plain `http://` endpoint URLs. Off: `https://` only. For tests and a receiver on
    /// the same host; never for a real deployment.
    pub danger_allow_http: bool,
    /// Loopback, private, link-local or metadata destinations that endpoints may reach
    /// anyway: CIDRs ("10.0.0.0/8", "127.0.0.1/32") or host names. Empty: public addresses
    /// only (checked on the address actually connected to, at delivery time).
    pub allow_private: Vec<String>,
    /// One delivery attempt's whole time (connect, send, answer), in seconds.
    pub timeout_secs: u64,
    /// A failing event is retried for this long (seconds), then given up on.
    pub retry_for_secs: u64,
    /// The first retry's delay in milliseconds; each next one doubles, with jitter.
    pub retry_initial_ms: u64,
    /// The longest delay between two attempts, in seconds.
    pub retry_max_secs: u64,
    /// Consecutive failed attempts after which a webhook is disabled (audited as
    /// `webhook.disabled`); PATCH `{"enabled": true}` turns it back on.
    pub max_consecutive_failures: u32,
    /// Deliveries in flight at once, over all webhooks.
    pub max_concurrent: usize,
    /// Deliveries in flight at once to one endpoint (scheme, host and port).
    pub max_concurrent_per_endpoint: usize,
    /// Webhooks one agent (or the operator, per org) may register.
    pub max_per_owner: usize,
    /// After a secret rotation the old secret still signs (both signatures are sent) for
    /// this many seconds.
    pub rotation_overlap_secs: u64,
    /// The dispatchers are woken by every outbox write; they also rescan this often
    /// (seconds), a backstop.
    pub rescan_secs: u64,
    /// Threads of the webhook dispatchers' own runtime. They wait on endpoints almost all
    /// the time; on a runtime of their own their wake-ups are not queued behind the mail
    /// sessions' work, which kept one agent's in-order deliveries behind inbound mail.
    pub dispatch_threads: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            danger_allow_http: false,
            allow_private: Vec::new(),
            timeout_secs: 10,
            retry_for_secs: 86_400,
            retry_initial_ms: 1_000,
            retry_max_secs: 3_600,
            max_consecutive_failures: 50,
            max_concurrent: 64,
            max_concurrent_per_endpoint: 4,
            max_per_owner: 20,
            rotation_overlap_secs: 86_400,
            rescan_secs: 30,
            dispatch_threads: 1,
        }
    }
}

/// "90s", "15m", "24h", "7d" (or a bare number of seconds) -> seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"7d\""))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("2h"), Ok(7_200));
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn streams_gather_ten_milliseconds_unless_told_and_at_most_a_second() {
        assert_eq!(crate::config::parse_str("").unwrap().events.gather_ms, 10);
        let c = crate::config::parse_str("[events]\ngather_ms = 0\n").unwrap();
        assert_eq!(c.events.gather_ms, 0);
        let e = crate::config::parse_str("[events]\ngather_ms = 1001\n").unwrap_err();
        assert!(e.to_string().contains("events.gather_ms"), "{e}");
    }

    #[test]
    fn sections_parse_and_bad_values_are_named() {
        let c = crate::config::parse_str(
            "[events]\nretention = '1d'\n[webhooks]\nallow_private = ['127.0.0.1/32', 'hooks.internal']\n",
        )
        .unwrap();
        assert_eq!(c.events.retention_secs(), Ok(86_400));
        assert_eq!(c.webhooks.timeout_secs, 10);
        assert!(!c.webhooks.danger_allow_http);
        let e = crate::config::parse_str(
            "[events]\nretention = 'soon'\n[webhooks]\nallow_private = ['10.0.0.0/99']\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["events.retention", "webhooks.allow_private"]);
    }
}
