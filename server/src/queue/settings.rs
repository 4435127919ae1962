//! Queue behaviour from `[outbound]`, `[dkim]`, `[feedback]` and `[server]`.

use std::time::Duration;

/// Queue behaviour from `[outbound]`, `[dkim]` and `[server]`.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Our host name: Message-IDs, `Received`, DSN `Reporting-MTA`.
    pub hostname: String,
    pub selector_prefix: String,
    pub retry: Vec<Duration>,
    pub max_age: Duration,
    pub delay_notice: Duration,
    pub max_per_domain: usize,
    pub max_concurrent: usize,
    pub scan_interval: Duration,
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// `feedback.verp`: per-recipient bounce addresses as the reverse-path.
    pub verp: bool,
    /// `feedback.keep_bytes`.
    pub feedback_keep_bytes: usize,
    /// How long an attempt holds a message's lease when several nodes share the store.
    pub lease: Duration,
}

impl QueueSettings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            hostname: c.server.hostname.clone(),
            selector_prefix: c.dkim.selector_prefix.clone(),
            retry: c
                .outbound
                .retry_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            max_age: Duration::from_secs(c.outbound.max_age_secs),
            delay_notice: Duration::from_secs(c.outbound.delay_notice_secs),
            max_per_domain: c.outbound.max_per_domain,
            max_concurrent: c.outbound.max_concurrent,
            scan_interval: Duration::from_secs(c.outbound.scan_interval_secs),
            max_message_size: c.smtp.max_message_size,
            max_recipients: c.smtp.max_recipients,
            verp: c.feedback.verp,
            feedback_keep_bytes: c.feedback.keep_bytes,
            lease: Duration::from_secs(c.outbound.lease_secs),
        }
    }

    /// The wait after the `attempts`-th failed attempt (1-based); the last delay repeats.
    pub fn retry_after(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.retry.len().saturating_sub(1));
        self.retry
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(7200))
    }
}
