//! What legate accepts and reports about mail from others: sender lists (`[senders]`),
//! the reports it receives and sends (`[reports]`, `[dmarc]`).

use serde::{Deserialize, Serialize};

/// Allow and block lists of senders (per agent and per org, managed over REST and MCP).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SendersConfig {
    /// What an agent's own block list does: "junk" files the mail to Junk, "reject" refuses
    /// it (`550 5.7.1`). An org's block list always refuses.
    pub agent_block: crate::mailbox::AgentBlockAction,
    /// An allow list matches the header From, which anyone can type: count a match only when
    /// the sender is proven (a DMARC pass aligned with the From domain).
    pub allow_requires_authentication: bool,
    /// Entries per list of one agent or org.
    pub max_entries: usize,
}

impl Default for SendersConfig {
    fn default() -> Self {
        let p = crate::mailbox::SenderPolicy::default();
        Self {
            agent_block: p.agent_block,
            allow_requires_authentication: p.allow_requires_authentication,
            max_entries: p.max_entries,
        }
    }
}

impl From<&SendersConfig> for crate::mailbox::SenderPolicy {
    fn from(c: &SendersConfig) -> Self {
        Self {
            agent_block: c.agent_block,
            allow_requires_authentication: c.allow_requires_authentication,
            max_entries: c.max_entries,
        }
    }
}

/// DMARC aggregate and TLS-RPT reports sent to us (`dmarc-reports@`, `tls-reports@`): the
/// bounds a hostile "report" meets before anything is parsed, and TLS-RPT sending.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReportsConfig {
    /// Largest compressed attachment (zip, gzip) taken from a report message.
    pub max_compressed_bytes: usize,
    /// Largest document after decompression: a zip bomb stops here, unread past the cap.
    pub max_decompressed_bytes: usize,
    /// Files a zip may hold (a report zip holds one).
    pub max_zip_files: usize,
    /// XML nodes a DMARC report may have (the parser refuses DTDs and entities anyway).
    pub max_xml_nodes: u32,
    /// Send RFC 8460 TLS-RPT reports of our outbound TLS to domains that publish
    /// `_smtp._tls` (off by default: it sends mail on the operator's behalf).
    pub send_tls_reports: bool,
    /// How often the TLS-RPT job runs (one report per policy domain per UTC day).
    pub tls_report_interval_secs: u64,
    /// Let an `https:` TLS-RPT rua point at a private or loopback address (tests only).
    pub danger_allow_private_report_urls: bool,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            max_compressed_bytes: 5 * 1024 * 1024,
            max_decompressed_bytes: 20 * 1024 * 1024,
            max_zip_files: 4,
            max_xml_nodes: 2_000_000,
            send_tls_reports: false,
            tls_report_interval_secs: 86_400,
            danger_allow_private_report_urls: false,
        }
    }
}

/// DMARC aggregate reports we send (RFC 7489 §7.2) about the mail we received.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DmarcConfig {
    /// Record every inbound DMARC evaluation and send the daily aggregate report to the
    /// `rua` of each sending domain (off by default: it sends mail about who wrote to us).
    pub send_reports: bool,
    /// How often the report job runs (one report per domain per UTC day).
    pub report_interval_secs: u64,
    /// Evaluations kept per day before further ones are dropped (bounds the store).
    pub max_events_per_day: u64,
}

impl Default for DmarcConfig {
    fn default() -> Self {
        Self {
            send_reports: false,
            report_interval_secs: 86_400,
            max_events_per_day: 1_000_000,
        }
    }
}

/// What an agent may do when mailing an address it has never exchanged mail with.
/// Ordered from loosest to strictest, so attenuation keeps the larger value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstContact {
    Allow,
    /// Wait for a human's approval. Until approvals exist (issue 24, item 2) a held send is
    /// refused like `deny`, with a reason saying so.
    Hold,
    Deny,
}

/// The org-wide default send policy (`[send_policy]`): what an agent may send when neither
/// it nor an ancestor sets a tighter rule (`/v1/agents/{id}/send-policy`). A sub-agent is
/// never looser than its parent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SendPolicyConfig {
    /// Messages per agent per clock hour.
    pub max_per_hour: u64,
    /// Messages per agent per UTC day.
    pub max_per_day: u64,
    /// Recipients (to, cc and bcc, after deduplication) of one message.
    pub max_recipients_per_message: u64,
    /// Recipients per agent per UTC day, summed over its messages.
    pub max_recipients_per_day: u64,
    /// Recipient domain patterns an agent may send to (empty: any). `example.com` covers
    /// the domain and its subdomains, `*.example.com` the subdomains only.
    pub allow_domains: Vec<String>,
    /// Recipient domain patterns an agent may never send to (same patterns).
    pub block_domains: Vec<String>,
    /// Largest message an agent may send, in bytes, as submitted (before DKIM signing).
    pub max_message_bytes: u64,
    /// Mail to an address the agent never exchanged mail with: allow, hold or deny.
    pub first_contact: FirstContact,
    /// Patterns per allow or block list (of the default or of one agent).
    pub max_domain_patterns: usize,
    /// How long a held message waits for a human's approval before it expires (the agent
    /// is told, as for a rejection).
    pub approval_ttl_secs: u64,
    /// Held messages one agent may have waiting at once; more are refused (429
    /// send_limit), so an agent in a loop cannot fill the approval queue.
    pub max_pending_approvals: u64,
    /// DANGER: no send policy, suppression list or circuit breaker is checked at all (the
    /// counters are not kept either). Only for measuring what the checks cost
    /// (`bench/smtp_outbound.sh` with POLICY=unlimited); never on a server that sends mail.
    pub danger_unchecked: bool,
}

impl Default for SendPolicyConfig {
    fn default() -> Self {
        Self {
            max_per_hour: 100,
            max_per_day: 500,
            max_recipients_per_message: 100,
            max_recipients_per_day: 1000,
            allow_domains: Vec::new(),
            block_domains: Vec::new(),
            max_message_bytes: 25 * 1024 * 1024,
            first_contact: FirstContact::Allow,
            max_domain_patterns: 256,
            approval_ttl_secs: 3 * 86_400,
            max_pending_approvals: 100,
            danger_unchecked: false,
        }
    }
}

/// The circuit breaker (`[breaker]`, issue 24 item 5): an agent whose recent mail bounces
/// too often, or draws complaints, stops sending until an admin resumes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Trip automatically (off: outcomes are still recorded, nothing pauses).
    pub enabled: bool,
    /// Recipient outcomes (delivered or hard-bounced) the bounce rate is taken over.
    pub window: usize,
    /// Outcomes needed in the window before the rate can trip the breaker.
    pub min_sends: usize,
    /// Hard bounces in the window, in percent of its outcomes, that trip the breaker.
    pub max_hard_bounce_percent: u32,
    /// Complaints (ARF reports) since the last resume that trip the breaker; 1: any.
    pub max_complaints: u64,
    /// Mail a notice to the human at the head of the agent's delegation chain on a trip.
    pub notify_owner: bool,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: 50,
            min_sends: 10,
            max_hard_bounce_percent: 10,
            max_complaints: 1,
            notify_owner: true,
        }
    }
}

/// Bounces and complaints coming back (`[feedback]`, issue 24 item 3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Send with a per-recipient envelope sender (`local+b.<token>@domain`, VERP) so an
    /// asynchronous bounce is tied to its message and recipient. Off: the agent's address.
    pub verp: bool,
    /// Bytes of each received report kept with it (the rest is cut, and says so).
    pub keep_bytes: usize,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            verp: true,
            keep_bytes: 64 * 1024,
        }
    }
}
