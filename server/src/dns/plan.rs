//! The DNS plan: the records a domain needs for legate, built from the config and the DKIM
//! keys by rendering `dns-templates/records.txt`. Pure: no store, no network, so the same
//! inputs always give the same plan (and the same MTA-STS id).

use super::template::{self, Context};
use super::DnsError;
use crate::config::Config;
use crate::vault::{DkimAlgorithm, DkimKeyRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

const RECORDS: &str = include_str!("../../../dns-templates/records.txt");
const MTA_STS: &str = include_str!("../../../dns-templates/mta-sts.txt");

/// Record types the plan uses. A plan read back from JSON (`legate dns check --server`) may
/// only name these, so the checker knows how to compare every record it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordType {
    MX,
    A,
    AAAA,
    TXT,
    CNAME,
    SRV,
    TLSA,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MX => "MX",
            Self::A => "A",
            Self::AAAA => "AAAA",
            Self::TXT => "TXT",
            Self::CNAME => "CNAME",
            Self::SRV => "SRV",
            Self::TLSA => "TLSA",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "MX" => Self::MX,
            "A" => Self::A,
            "AAAA" => Self::AAAA,
            "TXT" => Self::TXT,
            "CNAME" => Self::CNAME,
            "SRV" => Self::SRV,
            "TLSA" => Self::TLSA,
            _ => return None,
        })
    }
}

/// One record set: every value published at `name` with `rtype`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "RecordJson", try_from = "RecordJson")]
pub struct PlannedRecord {
    /// Fully qualified, lowercase, without the trailing dot.
    pub name: String,
    pub rtype: RecordType,
    pub ttl: u32,
    /// Presentation form; TXT values whole and unquoted.
    pub values: Vec<String>,
    pub purpose: String,
}

/// The JSON contract: `value` for a single value, `values` for several.
#[derive(Serialize, Deserialize)]
struct RecordJson {
    name: String,
    #[serde(rename = "type")]
    rtype: RecordType,
    ttl: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
    #[serde(default)]
    purpose: String,
}

impl From<PlannedRecord> for RecordJson {
    fn from(r: PlannedRecord) -> Self {
        let (value, values) = match <[String; 1]>::try_from(r.values) {
            Ok([one]) => (Some(one), None),
            Err(many) => (None, Some(many)),
        };
        RecordJson {
            name: r.name,
            rtype: r.rtype,
            ttl: r.ttl,
            value,
            values,
            purpose: r.purpose,
        }
    }
}

impl TryFrom<RecordJson> for PlannedRecord {
    type Error = String;

    fn try_from(j: RecordJson) -> Result<Self, String> {
        let mut values = j.values.unwrap_or_default();
        values.extend(j.value);
        if values.is_empty() {
            return Err(format!("record {} has no value", j.name));
        }
        Ok(PlannedRecord {
            name: j.name.trim_end_matches('.').to_ascii_lowercase(),
            rtype: j.rtype,
            ttl: j.ttl,
            values,
            purpose: j.purpose,
        })
    }
}

/// Something the operator must do that legate cannot spell as a record (for example the
/// host's address when `[dns] addresses` is empty). `legate dns check` still verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub domain: String,
    pub hostname: String,
    pub records: Vec<PlannedRecord>,
    #[serde(default)]
    pub notes: Vec<Note>,
    /// The file served at `https://mta-sts.<domain>/.well-known/mta-sts.txt` (CRLF lines).
    pub mta_sts_policy: String,
}

/// The public half of a DKIM key, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimPublic {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// Bytes published in `p=` (raw Ed25519, SubjectPublicKeyInfo RSA).
    pub public: Vec<u8>,
    /// Retired keys sign nothing but stay published so mail in flight still verifies.
    pub retired: bool,
}

impl From<&DkimKeyRecord> for DkimPublic {
    fn from(k: &DkimKeyRecord) -> Self {
        DkimPublic {
            selector: k.selector.clone(),
            algorithm: k.algorithm,
            public: k.published_key(),
            retired: k.retired_at.is_some(),
        }
    }
}

/// The RFC 8461 §3.2 policy file for `config`.
pub fn mta_sts_policy(config: &Config) -> Result<String, DnsError> {
    let mut ctx = Context::new();
    let mut mx = Context::new();
    mx.set("host", &config.server.hostname);
    ctx.set("mode", config.dns.mta_sts_mode.as_str())
        .set("max_age", config.dns.mta_sts_max_age.to_string())
        .list("mx", vec![mx]);
    let text = template::render("mta-sts.txt", MTA_STS, &ctx)?;
    Ok(text.lines().map(|l| format!("{l}\r\n")).collect())
}

/// RFC 8461 §3.1: the id must change whenever the policy does; deriving it from the content
/// makes it change exactly then, with no state to keep. 20 hex digits fit the 32-char limit.
pub fn mta_sts_id(policy: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(policy.as_bytes())[..10])
}

/// The port of a listener address, or "" when the listener is disabled.
fn port(listen: &str) -> String {
    listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.port().to_string())
        .unwrap_or_default()
}

fn default_rua(configured: &str, local: &str, domain: &str) -> String {
    if configured.is_empty() {
        format!("mailto:{local}@{domain}")
    } else {
        configured.to_string()
    }
}

fn context(config: &Config, dkim: &[DkimPublic], policy: &str, tlsa: Option<&str>) -> Context {
    let domain = &config.server.domain;
    let mut ctx = Context::new();
    ctx.set("domain", domain)
        .set("hostname", config.server.hostname.trim_end_matches('.'))
        .set("dmarc_policy", config.dns.dmarc_policy.as_str())
        .set(
            "dmarc_rua",
            default_rua(&config.dns.dmarc_rua, "dmarc-reports", domain),
        )
        .set(
            "tlsrpt_rua",
            default_rua(&config.dns.tlsrpt_rua, "tls-reports", domain),
        )
        .set("mta_sts_id", mta_sts_id(policy))
        .set("submissions_port", port(&config.listen.submissions))
        .set("submission_port", port(&config.listen.submission))
        .set("imaps_port", port(&config.listen.imaps))
        .set("imap_port", port(&config.listen.imap))
        .set("tlsa", tlsa.unwrap_or_default());
    let addresses = config
        .dns
        .addresses
        .iter()
        .map(|ip| {
            let mut c = Context::new();
            let (rtype, spf) = match ip {
                IpAddr::V4(v4) => ("A", format!("ip4:{v4}")),
                IpAddr::V6(v6) => ("AAAA", format!("ip6:{v6}")),
            };
            c.set("type", rtype)
                .set("address", ip.to_string())
                .set("spf", spf);
            c
        })
        .collect();
    ctx.list("addresses", addresses);
    let keys = dkim
        .iter()
        .map(|k| {
            let mut c = Context::new();
            let (k_tag, label) = match k.algorithm {
                DkimAlgorithm::Ed25519 => ("ed25519", "Ed25519"),
                DkimAlgorithm::Rsa => ("rsa", "RSA"),
            };
            c.set("selector", &k.selector)
                .set("k", k_tag)
                .set("algorithm", label)
                .set("p", data_encoding::BASE64.encode(&k.public))
                .set("retired", if k.retired { "yes" } else { "" });
            c
        })
        .collect();
    ctx.list("dkim", keys);
    ctx
}

/// `@` is the domain, a trailing dot makes a name absolute, anything else is under the domain.
fn absolute(name: &str, domain: &str) -> String {
    let name = name.trim();
    let full = if name == "@" {
        domain.to_string()
    } else if let Some(abs) = name.strip_suffix('.') {
        abs.to_string()
    } else {
        format!("{name}.{domain}")
    };
    full.to_ascii_lowercase()
}

/// Builds the plan for `config` with the domain's DKIM keys (all published ones, retired too).
/// `tlsa` is the hex SHA-256 of the served certificate's SubjectPublicKeyInfo, when there is
/// one: the plan then has the DANE `3 1 1` record of the MX host.
pub fn build(config: &Config, dkim: &[DkimPublic], tlsa: Option<&str>) -> Result<Plan, DnsError> {
    let policy = mta_sts_policy(config)?;
    let ctx = context(config, dkim, &policy, tlsa);
    let text = template::render("records.txt", RECORDS, &ctx)?;
    let domain = &config.server.domain;
    let mut plan = Plan {
        domain: domain.clone(),
        hostname: config.server.hostname.trim_end_matches('.').to_string(),
        records: Vec::new(),
        notes: Vec::new(),
        mta_sts_policy: policy,
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| DnsError::Template(format!("records.txt line {}: {why}", i + 1));
        if let Some(note) = line.strip_prefix('#') {
            let [name, rtype, text] =
                split_fields::<3>(note).ok_or_else(|| bad("a note needs NAME | TYPE | TEXT"))?;
            plan.notes.push(Note {
                name: absolute(name, domain),
                rtype: rtype.into(),
                text: text.into(),
            });
            continue;
        }
        let [name, rtype, value, purpose] = split_fields::<4>(line)
            .ok_or_else(|| bad("a record needs NAME | TYPE | VALUE | PURPOSE"))?;
        let rtype = RecordType::parse(rtype).ok_or_else(|| bad("unknown record type"))?;
        let name = absolute(name, domain);
        match plan
            .records
            .iter_mut()
            .find(|r| r.name == name && r.rtype == rtype)
        {
            Some(set) => set.values.push(value.into()),
            None => plan.records.push(PlannedRecord {
                name,
                rtype,
                ttl: config.dns.ttl,
                values: vec![value.into()],
                purpose: purpose.into(),
            }),
        }
    }
    Ok(plan)
}

/// Splits `a | b | c` into exactly N trimmed fields; the last one takes the rest.
fn split_fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut parts = line.splitn(N, '|').map(str::trim);
    let mut out = [""; N];
    for slot in &mut out {
        *slot = parts.next()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MtaStsMode;

    pub(crate) fn key(selector: &str, alg: DkimAlgorithm, public: Vec<u8>) -> DkimPublic {
        DkimPublic {
            selector: selector.into(),
            algorithm: alg,
            public,
            retired: false,
        }
    }

    pub(crate) fn config() -> Config {
        let mut c = Config::default();
        c.server.domain = "agents.example.com".into();
        c.server.hostname = "mx.agents.example.com".into();
        c.listen.submissions = "0.0.0.0:465".into();
        c.listen.submission = "0.0.0.0:587".into();
        c.listen.imaps = String::new();
        c.listen.imap = "0.0.0.0:143".into();
        c
    }

    fn find<'a>(p: &'a Plan, name: &str, t: RecordType) -> &'a PlannedRecord {
        p.records
            .iter()
            .find(|r| r.name == name && r.rtype == t)
            .unwrap_or_else(|| panic!("{name} {t:?} missing from {p:#?}"))
    }

    #[test]
    fn tlsa_of_the_served_key_is_planned_for_the_mx_host() {
        let p = build(&config(), &[], None).unwrap();
        assert!(!p.records.iter().any(|r| r.rtype == RecordType::TLSA));
        let hash = "ab".repeat(32);
        let p = build(&config(), &[], Some(&hash)).unwrap();
        let t = find(&p, "_25._tcp.mx.agents.example.com", RecordType::TLSA);
        assert_eq!(t.values, [format!("3 1 1 {hash}")]);
    }

    #[test]
    fn plan_has_every_record_of_design_10() {
        let keys = vec![
            key("lg1ed", DkimAlgorithm::Ed25519, vec![7; 32]),
            key("lg2rsa", DkimAlgorithm::Rsa, vec![9; 270]),
        ];
        let p = build(&config(), &keys, None).unwrap();
        let d = "agents.example.com";
        assert_eq!(
            find(&p, d, RecordType::MX).values,
            ["10 mx.agents.example.com."]
        );
        assert_eq!(find(&p, d, RecordType::TXT).values, ["v=spf1 mx -all"]);
        let ed = find(&p, "lg1ed._domainkey.agents.example.com", RecordType::TXT);
        assert_eq!(
            ed.values[0],
            format!(
                "v=DKIM1; k=ed25519; p={}",
                data_encoding::BASE64.encode(&[7; 32])
            )
        );
        let rsa = find(&p, "lg2rsa._domainkey.agents.example.com", RecordType::TXT);
        assert!(rsa.values[0].starts_with("v=DKIM1; k=rsa; p=CQkJ"));
        assert_eq!(
            find(&p, "_dmarc.agents.example.com", RecordType::TXT).values,
            ["v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@agents.example.com"]
        );
        let sts = &find(&p, "_mta-sts.agents.example.com", RecordType::TXT).values[0];
        assert_eq!(
            sts,
            &format!("v=STSv1; id={}", mta_sts_id(&p.mta_sts_policy))
        );
        assert_eq!(
            find(&p, "_smtp._tls.agents.example.com", RecordType::TXT).values,
            ["v=TLSRPTv1; rua=mailto:tls-reports@agents.example.com"]
        );
        let srv = |n: &str| find(&p, &format!("{n}._tcp.{d}"), RecordType::SRV).values[0].clone();
        assert_eq!(srv("_submissions"), "0 1 465 mx.agents.example.com.");
        assert_eq!(srv("_submission"), "10 1 587 mx.agents.example.com.");
        assert_eq!(srv("_imap"), "10 1 143 mx.agents.example.com.");
        // Disabled listener and POP3: "not offered" per RFC 6186 §4.
        assert_eq!(srv("_imaps"), "0 0 0 .");
        assert_eq!(srv("_pop3"), "0 0 0 .");
        for n in ["mta-sts", "autoconfig", "autodiscover"] {
            assert_eq!(
                find(&p, &format!("{n}.{d}"), RecordType::CNAME).values,
                ["mx.agents.example.com."]
            );
        }
        // No addresses configured: a note instead of A/AAAA records.
        assert!(!p.records.iter().any(|r| r.rtype == RecordType::A));
        assert_eq!(p.notes.len(), 1);
        assert_eq!(p.notes[0].name, "mx.agents.example.com");
        assert_eq!(p.notes[0].rtype, "A/AAAA");
    }

    #[test]
    fn addresses_become_a_aaaa_and_spf_terms() {
        let mut c = config();
        c.dns.addresses = vec![
            "203.0.113.25".parse().unwrap(),
            "2001:db8::25".parse().unwrap(),
        ];
        c.dns.dmarc_policy = crate::config::DmarcPolicyName::Reject;
        c.dns.dmarc_rua = "mailto:dmarc@ops.example.net".into();
        let p = build(&c, &[], None).unwrap();
        assert!(p.notes.is_empty());
        assert_eq!(
            find(&p, "mx.agents.example.com", RecordType::A).values,
            ["203.0.113.25"]
        );
        assert_eq!(
            find(&p, "mx.agents.example.com", RecordType::AAAA).values,
            ["2001:db8::25"]
        );
        assert_eq!(
            find(&p, "agents.example.com", RecordType::TXT).values,
            ["v=spf1 mx ip4:203.0.113.25 ip6:2001:db8::25 -all"]
        );
        assert_eq!(
            find(&p, "_dmarc.agents.example.com", RecordType::TXT).values,
            ["v=DMARC1; p=reject; rua=mailto:dmarc@ops.example.net"]
        );
    }

    #[test]
    fn retired_keys_stay_in_the_plan() {
        let mut old = key("lg1ed", DkimAlgorithm::Ed25519, vec![1; 32]);
        old.retired = true;
        let keys = vec![old, key("lg3ed", DkimAlgorithm::Ed25519, vec![2; 32])];
        let p = build(&config(), &keys, None).unwrap();
        let old = find(&p, "lg1ed._domainkey.agents.example.com", RecordType::TXT);
        assert!(old.purpose.contains("retired"));
        let new = find(&p, "lg3ed._domainkey.agents.example.com", RecordType::TXT);
        assert!(!new.purpose.contains("retired"));
    }

    #[test]
    fn mta_sts_policy_and_id_follow_the_config() {
        let c = config();
        let policy = mta_sts_policy(&c).unwrap();
        assert_eq!(
            policy,
            "version: STSv1\r\nmode: testing\r\nmx: mx.agents.example.com\r\nmax_age: 604800\r\n"
        );
        let id = mta_sts_id(&policy);
        assert_eq!(id.len(), 20);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(id, mta_sts_id(&mta_sts_policy(&c).unwrap()), "stable");
        let mut enforce = c.clone();
        enforce.dns.mta_sts_mode = MtaStsMode::Enforce;
        let p2 = mta_sts_policy(&enforce).unwrap();
        assert!(p2.contains("mode: enforce\r\n"));
        assert_ne!(mta_sts_id(&p2), id, "a new policy gets a new id");
    }

    #[test]
    fn json_uses_value_or_values_and_reads_back() {
        let mut c = config();
        c.dns.addresses = vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()];
        let p = build(
            &c,
            &[key("lg1ed", DkimAlgorithm::Ed25519, vec![3; 32])],
            None,
        )
        .unwrap();
        let v = serde_json::to_value(&p).unwrap();
        let recs = v["records"].as_array().unwrap();
        let mx = recs.iter().find(|r| r["type"] == "MX").unwrap();
        assert_eq!(mx["value"], "10 mx.agents.example.com.");
        assert!(mx.get("values").is_none());
        let a = recs.iter().find(|r| r["type"] == "A").unwrap();
        assert_eq!(a["values"], serde_json::json!(["192.0.2.1", "192.0.2.2"]));
        assert!(v["mta_sts_policy"]
            .as_str()
            .unwrap()
            .starts_with("version: STSv1"));
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    /// The published SPKI form verifies with our own verifier (mail-auth), end to end.
    #[tokio::test]
    async fn mail_signed_with_the_vault_key_verifies_against_the_planned_record() {
        use crate::mailauth::{dkim_sign, AuthStatus, DkimSigning, MailAuth, RsaSha256Key};
        let pair = mail_auth::dkim::generate::DkimKeyPair::generate_rsa(2048).unwrap();
        let (private, public) = pair.into_inner();
        let published = DkimPublic {
            selector: "s1rsa".into(),
            algorithm: DkimAlgorithm::Rsa,
            public: crate::mailauth::spki::rsa_spki(&public),
            retired: false,
        };
        let plan = build(&config(), &[published], None).unwrap();
        let name = "s1rsa._domainkey.agents.example.com";
        let txt = find(&plan, name, RecordType::TXT).values[0].clone();
        assert!(txt.contains("p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"), "{txt}");
        let dns = crate::mailauth::StaticDns::new();
        dns.add_txt(name, txt)
            .add_txt("agents.example.com", "v=spf1 ip4:127.0.0.1 -all");
        let auth = MailAuth::with_static_records(dns).unwrap();
        let key = RsaSha256Key::from_pkcs1_der(&private).unwrap();
        let raw = "From: ops@agents.example.com\r\nTo: b@b.test\r\nSubject: hi\r\n\
                   Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@agents.example.com>\r\n\r\nhello\r\n";
        let signer = DkimSigning::new("agents.example.com", "s1rsa", key);
        let signed = dkim_sign(raw.as_bytes(), &[signer]).unwrap() + raw;
        let ip = "127.0.0.1".parse().unwrap();
        let from = "ops@agents.example.com";
        let spf = auth
            .check_spf_mail_from(ip, "mx.agents.example.com", "mx.b.test", from)
            .await;
        let v = auth
            .verify_message(signed.as_bytes(), ip, "mx.agents.example.com", from, &spf)
            .await;
        assert_eq!(v.dkim.len(), 1);
        assert_eq!(v.dkim[0].result, AuthStatus::Pass, "{:?}", v.dkim);
    }

    #[test]
    fn names_are_resolved_against_the_domain() {
        assert_eq!(absolute("@", "d.test"), "d.test");
        assert_eq!(absolute("_dmarc", "d.test"), "_dmarc.d.test");
        assert_eq!(absolute("MX.Other.Test.", "d.test"), "mx.other.test");
        assert_eq!(
            split_fields::<3>("a | b | c | d"),
            Some(["a", "b", "c | d"])
        );
        assert_eq!(split_fields::<3>("a | b"), None);
    }
}
