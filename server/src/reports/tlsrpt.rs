//! TLS-RPT reports (RFC 8460 §4): the JSON other senders write about their TLS to us, read
//! tolerantly (reporters differ: `mx-host` a string or a list, missing optional members), and
//! the types of the outcomes we record about our own outbound TLS.

use super::ReportsError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One received TLS-RPT report, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsReport {
    pub org_name: String,
    pub report_id: String,
    pub contact_info: String,
    /// Unix seconds.
    pub begin: i64,
    pub end: i64,
    pub policies: Vec<TlsPolicyResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsPolicyResult {
    pub policy_type: String,
    pub policy_domain: String,
    pub mx_hosts: Vec<String>,
    pub success: u64,
    pub failure: u64,
    pub failures: Vec<FailureDetail>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureDetail {
    pub result_type: String,
    pub sending_mta_ip: String,
    pub receiving_mx_hostname: String,
    pub receiving_ip: String,
    pub count: u64,
    pub additional_information: String,
}

/// The policy an outbound delivery ran under (RFC 8460 §4.3 `policy-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsPolicyType {
    Sts,
    Tlsa,
    NoPolicyFound,
}

impl TlsPolicyType {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsPolicyType::Sts => "sts",
            TlsPolicyType::Tlsa => "tlsa",
            TlsPolicyType::NoPolicyFound => "no-policy-found",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sts" => Some(TlsPolicyType::Sts),
            "tlsa" => Some(TlsPolicyType::Tlsa),
            "no-policy-found" => Some(TlsPolicyType::NoPolicyFound),
            _ => None,
        }
    }
}

/// RFC 8460 §4.3 result types of a failed session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsResultType {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
}

impl TlsResultType {
    pub const ALL: [TlsResultType; 11] = [
        TlsResultType::StarttlsNotSupported,
        TlsResultType::CertificateHostMismatch,
        TlsResultType::CertificateExpired,
        TlsResultType::CertificateNotTrusted,
        TlsResultType::ValidationFailure,
        TlsResultType::TlsaInvalid,
        TlsResultType::DnssecInvalid,
        TlsResultType::DaneRequired,
        TlsResultType::StsPolicyFetchError,
        TlsResultType::StsPolicyInvalid,
        TlsResultType::StsWebpkiInvalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsResultType::StarttlsNotSupported => "starttls-not-supported",
            TlsResultType::CertificateHostMismatch => "certificate-host-mismatch",
            TlsResultType::CertificateExpired => "certificate-expired",
            TlsResultType::CertificateNotTrusted => "certificate-not-trusted",
            TlsResultType::ValidationFailure => "validation-failure",
            TlsResultType::TlsaInvalid => "tlsa-invalid",
            TlsResultType::DnssecInvalid => "dnssec-invalid",
            TlsResultType::DaneRequired => "dane-required",
            TlsResultType::StsPolicyFetchError => "sts-policy-fetch-error",
            TlsResultType::StsPolicyInvalid => "sts-policy-invalid",
            TlsResultType::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Why one outbound TLS session failed, as the outbound code reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    pub result_type: TlsResultType,
    /// The MX address the session went to, when one was reached.
    pub receiving_ip: Option<std::net::IpAddr>,
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn n(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn when(v: &Value, k: &str) -> i64 {
    time::OffsetDateTime::parse(&s(v, k), &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// Parses one report document.
pub fn parse(json: &[u8]) -> Result<TlsReport, ReportsError> {
    let v: Value =
        serde_json::from_slice(json).map_err(|e| ReportsError::Parse(format!("bad JSON: {e}")))?;
    let range = v.get("date-range").cloned().unwrap_or(Value::Null);
    let mut r = TlsReport {
        org_name: s(&v, "organization-name"),
        report_id: s(&v, "report-id"),
        contact_info: s(&v, "contact-info"),
        begin: when(&range, "start-datetime"),
        end: when(&range, "end-datetime"),
        policies: Vec::new(),
    };
    if r.org_name.is_empty() || r.report_id.is_empty() {
        return Err(ReportsError::Parse(
            "not a TLS-RPT report (organization-name, report-id)".into(),
        ));
    }
    let empty = Vec::new();
    for p in v
        .get("policies")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let pol = p.get("policy").cloned().unwrap_or(Value::Null);
        let sum = p.get("summary").cloned().unwrap_or(Value::Null);
        let mx_hosts = match pol.get("mx-host") {
            Some(Value::String(h)) => vec![h.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let failures = p
            .get("failure-details")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .map(|f| FailureDetail {
                result_type: s(f, "result-type"),
                sending_mta_ip: s(f, "sending-mta-ip"),
                receiving_mx_hostname: s(f, "receiving-mx-hostname"),
                receiving_ip: s(f, "receiving-ip"),
                count: n(f, "failed-session-count"),
                additional_information: s(f, "additional-information"),
            })
            .collect();
        r.policies.push(TlsPolicyResult {
            policy_type: s(&pol, "policy-type"),
            policy_domain: s(&pol, "policy-domain").to_ascii_lowercase(),
            mx_hosts,
            success: n(&sum, "total-successful-session-count"),
            failure: n(&sum, "total-failure-session-count"),
            failures,
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_example_shape() {
        let j = r#"{"organization-name":"Company-X","date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},
"contact-info":"sts-reporting@company-x.example","report-id":"5065427c-23d3-47ca-b6e0-946ea0e8c4be",
"policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing"],"policy-domain":"Company-Y.example","mx-host":["*.mail.company-y.example"]},
"summary":{"total-successful-session-count":5326,"total-failure-session-count":303},
"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"2001:db8:abcd:0012::1","receiving-mx-hostname":"mx1.mail.company-y.example","failed-session-count":100}]}]}"#;
        let r = parse(j.as_bytes()).unwrap();
        assert_eq!(r.org_name, "Company-X");
        assert_eq!(r.begin, 1459468800);
        let p = &r.policies[0];
        assert_eq!(
            (p.policy_domain.as_str(), p.success, p.failure),
            ("company-y.example", 5326, 303)
        );
        assert_eq!(p.failures[0].result_type, "certificate-expired");
        assert_eq!(p.failures[0].count, 100);
        assert!(parse(b"{}").is_err());
        assert!(parse(b"not json").is_err());
    }

    #[test]
    fn result_types_round_trip() {
        for t in TlsResultType::ALL {
            assert_eq!(TlsResultType::parse(t.as_str()), Some(t));
        }
        assert_eq!(
            TlsPolicyType::parse("no-policy-found"),
            Some(TlsPolicyType::NoPolicyFound)
        );
    }
}
