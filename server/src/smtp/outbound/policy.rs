//! What TLS a delivery must reach, and who asked for it (issue 19, DESIGN §14): nothing
//! (opportunistic, RFC 7435), a `require_tls` route, an MTA-STS policy (RFC 8461) or DANE
//! (RFC 7672), which may also ask for encryption alone (secure but unusable TLSA records). The session asks [`TlsPolicy::check`] about the certificate right after the
//! handshake, before any mail is sent.

use super::dane::{self, Tlsa};
use super::tls::TlsClient;
use crate::queue::TlsLevel;
use rustls::pki_types::{CertificateDer, ServerName};

/// Who set the requirement; the names are RFC 8460's `policy-type` (plus `route`), so a
/// TLS-RPT reporter can use them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// No policy: opportunistic TLS.
    None,
    /// A `[[outbound.route]]` with `require_tls = true`.
    Route,
    /// An MTA-STS policy of the recipient domain.
    Sts,
    /// DNSSEC-secure TLSA records of the MX host.
    Tlsa,
}

impl PolicySource {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicySource::None => "no-policy-found",
            PolicySource::Route => "route",
            PolicySource::Sts => "sts",
            PolicySource::Tlsa => "tlsa",
        }
    }

    /// For reply texts: who requires TLS.
    fn who(self) -> &'static str {
        match self {
            PolicySource::None => "nothing",
            PolicySource::Route => "the route",
            PolicySource::Sts => "the domain's MTA-STS policy",
            PolicySource::Tlsa => "the MX host's DANE TLSA records",
        }
    }
}

/// The requirement for one hop.
#[derive(Debug, Clone)]
pub(crate) struct TlsPolicy {
    pub source: PolicySource,
    /// A failed requirement defers the delivery. False for MTA-STS `testing`, where the
    /// failure is only reported (RFC 8461 §5).
    pub enforce: bool,
    /// DANE: the usable TLSA records the certificate must match (RFC 7672 §2.2).
    pub tlsa: Vec<Tlsa>,
    /// DANE: more names a DANE-TA chain may be issued for besides the hop's (the TLSA base
    /// domains, RFC 7672 §2.2.2: a CNAME'd host's certificate may name the alias's target).
    pub names: Vec<String>,
    /// False when an enforced policy asks for encryption only: a DNSSEC-secure TLSA RRset
    /// with no usable record (RFC 7672 §2.2.3). The session must still be TLS (never clear
    /// text, no fallback), but any certificate will do; it records the level it reached
    /// (`opportunistic`, or `verified` when the chain happens to verify).
    pub authenticate: bool,
}

impl TlsPolicy {
    pub fn opportunistic() -> Self {
        Self {
            source: PolicySource::None,
            enforce: false,
            tlsa: Vec::new(),
            names: Vec::new(),
            authenticate: false,
        }
    }

    pub fn enforced(source: PolicySource) -> Self {
        Self {
            source,
            enforce: true,
            tlsa: Vec::new(),
            names: Vec::new(),
            authenticate: true,
        }
    }

    /// Mandatory TLS without authentication (RFC 7672 §2.2.3, postfix's `encrypt`).
    pub fn encrypted(source: PolicySource) -> Self {
        Self {
            authenticate: false,
            ..Self::enforced(source)
        }
    }

    /// A session without TLS (or with TLS that fails its check) must not carry the mail.
    pub fn requires_tls(&self) -> bool {
        self.enforce && self.source != PolicySource::None
    }

    /// The least level a reused session must have reached.
    pub fn min_level(&self) -> TlsLevel {
        match (self.requires_tls(), self.authenticate, self.source) {
            (false, _, _) => TlsLevel::None,
            (true, false, _) => TlsLevel::Opportunistic,
            (true, true, PolicySource::Tlsa) => TlsLevel::Dane,
            (true, true, _) => TlsLevel::Verified,
        }
    }

    /// The level a session with this certificate chain reaches under this policy, or why it
    /// fails the policy (RFC 8460 result type and detail). With no policy, or one that asks
    /// for encryption only, a chain that does not verify is simply `opportunistic`.
    pub fn check(
        &self,
        client: &TlsClient,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
    ) -> Result<TlsLevel, Failure> {
        if self.source == PolicySource::Tlsa && self.authenticate {
            let matched = dane::matches(&self.tlsa, chain, name)
                || self
                    .names
                    .iter()
                    .filter_map(|n| ServerName::try_from(n.clone()).ok())
                    .any(|n| dane::matches(&self.tlsa, chain, &n));
            return match matched {
                true => Ok(TlsLevel::Dane),
                false => Err(Failure::new(
                    FailureKind::TlsaInvalid,
                    "no TLSA record matches the certificate",
                )),
            };
        }
        match client.verify(chain, name) {
            Ok(()) => Ok(TlsLevel::Verified),
            Err(_) if self.source == PolicySource::None || !self.authenticate => {
                Ok(TlsLevel::Opportunistic)
            }
            Err(e) => Err(Failure::new(FailureKind::certificate(&e), e.to_string())),
        }
    }

    /// The reply for a session that failed this policy: temporary, naming the reason, so
    /// the queue retries and, at the end of the retry window, bounces with it.
    pub fn refusal(&self, remote: &str, failure: &Failure) -> String {
        let what = match self.authenticate {
            true => "authenticated TLS",
            // RFC 7672 §2.2.3: no usable record, but DNSSEC says the server does TLS.
            false => "TLS (none of them is usable to authenticate)",
        };
        format!(
            "451 4.7.5 {remote}: {} ({}); {} requires {what}",
            failure.detail,
            failure.kind.as_str(),
            self.source.who()
        )
    }
}

/// Why a session failed its policy: RFC 8460 §4.3 result types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    TlsaInvalid,
    DnssecInvalid,
    StsPolicyFetchError,
    StsPolicyInvalid,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::StarttlsNotSupported => "starttls-not-supported",
            FailureKind::CertificateHostMismatch => "certificate-host-mismatch",
            FailureKind::CertificateExpired => "certificate-expired",
            FailureKind::CertificateNotTrusted => "certificate-not-trusted",
            FailureKind::ValidationFailure => "validation-failure",
            FailureKind::TlsaInvalid => "tlsa-invalid",
            FailureKind::DnssecInvalid => "dnssec-invalid",
            FailureKind::StsPolicyFetchError => "sts-policy-fetch-error",
            FailureKind::StsPolicyInvalid => "sts-policy-invalid",
        }
    }

    /// The result type of a certificate check that failed.
    fn certificate(e: &rustls::Error) -> Self {
        use rustls::CertificateError as C;
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    FailureKind::CertificateHostMismatch
                }
                C::Expired | C::ExpiredContext { .. } => FailureKind::CertificateExpired,
                C::UnknownIssuer => FailureKind::CertificateNotTrusted,
                _ => FailureKind::ValidationFailure,
            },
            _ => FailureKind::ValidationFailure,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_requirements() {
        let none = TlsPolicy::opportunistic();
        assert!(!none.requires_tls());
        assert_eq!(none.min_level(), TlsLevel::None);
        let route = TlsPolicy::enforced(PolicySource::Route);
        assert!(route.requires_tls());
        assert_eq!(route.min_level(), TlsLevel::Verified);
        let testing = TlsPolicy {
            enforce: false,
            ..TlsPolicy::enforced(PolicySource::Sts)
        };
        assert!(!testing.requires_tls());
        let dane = TlsPolicy::enforced(PolicySource::Tlsa);
        assert_eq!(dane.min_level(), TlsLevel::Dane);
        // Unusable TLSA records: TLS is required, a certificate is not checked.
        let encrypt = TlsPolicy::encrypted(PolicySource::Tlsa);
        assert!(encrypt.requires_tls());
        assert_eq!(encrypt.min_level(), TlsLevel::Opportunistic);
    }

    #[test]
    fn dane_ta_accepts_a_certificate_for_a_tlsa_base_domain() {
        use sha2::{Digest, Sha256};
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        // The server behind the alias `b.test` has a certificate for its real name only.
        let leaf = rcgen::CertificateParams::new(vec!["host.c.test".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let ca_der = ca.der().clone();
        let chain = [leaf.der().clone(), ca_der.clone()];
        let tlsa = vec![Tlsa {
            usage: 2,
            selector: 1,
            matching: 1,
            data: Sha256::digest(dane::spki(&ca_der).unwrap()).to_vec(),
        }];
        let client = TlsClient::new(super::super::tls::TrustRoots::Webpki, &[]).unwrap();
        let alias = ServerName::try_from("b.test".to_string()).unwrap();
        let only_alias = TlsPolicy {
            tlsa: tlsa.clone(),
            ..TlsPolicy::enforced(PolicySource::Tlsa)
        };
        assert!(only_alias.check(&client, &chain, &alias).is_err());
        let with_target = TlsPolicy {
            tlsa,
            names: vec!["host.c.test".into(), "b.test".into()],
            ..TlsPolicy::enforced(PolicySource::Tlsa)
        };
        assert_eq!(
            with_target.check(&client, &chain, &alias),
            Ok(TlsLevel::Dane)
        );
    }

    #[test]
    fn encryption_only_accepts_any_certificate_and_says_why_it_refuses() {
        let c = rcgen::generate_simple_self_signed(vec!["mx.b.test".to_string()]).unwrap();
        let chain = [c.cert.der().clone()];
        let name = ServerName::try_from("mx.b.test".to_string()).unwrap();
        let client = TlsClient::new(super::super::tls::TrustRoots::Webpki, &[]).unwrap();
        let encrypt = TlsPolicy::encrypted(PolicySource::Tlsa);
        assert_eq!(
            encrypt.check(&client, &chain, &name),
            Ok(TlsLevel::Opportunistic)
        );
        // The same untrusted certificate fails a DANE policy with no matching record.
        let dane = TlsPolicy::enforced(PolicySource::Tlsa);
        let err = dane.check(&client, &chain, &name).unwrap_err();
        assert_eq!(err.kind, FailureKind::TlsaInvalid);
        let no_tls = Failure::new(FailureKind::StarttlsNotSupported, "no STARTTLS");
        let why = encrypt.refusal("mx.b.test [127.0.0.4]", &no_tls);
        assert!(why.starts_with("451 4.7.5 "), "{why}");
        assert!(why.contains("starttls-not-supported"), "{why}");
        assert!(why.contains("requires TLS"), "{why}");
    }

    #[test]
    fn certificate_errors_map_to_rfc8460_result_types() {
        use rustls::CertificateError as C;
        let kind = |c| FailureKind::certificate(&rustls::Error::InvalidCertificate(c));
        assert_eq!(
            kind(C::NotValidForName),
            FailureKind::CertificateHostMismatch
        );
        assert_eq!(kind(C::UnknownIssuer), FailureKind::CertificateNotTrusted);
        assert_eq!(kind(C::Expired), FailureKind::CertificateExpired);
        assert_eq!(kind(C::BadSignature), FailureKind::ValidationFailure);
    }
}
