//! DKIM, ARC and DMARC on a received message, after DATA/BDAT.

use super::spf;
use super::verdict::{
    ArcResult, AuthStatus, AuthVerdict, DkimResult, DmarcPolicy, DmarcResult, SpfResult,
};
use super::MailAuth;
use mail_auth::arc::ArcError;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::{AuthenticatedMessage, Error, Parameters};
use std::net::IpAddr;

/// RFC 6376 §6.1 lets a verifier limit how many signatures it checks; each costs a DNS
/// lookup and a public-key operation, and a sender can add as many as it likes.
pub const MAX_DKIM_SIGNATURES: usize = 10;

impl MailAuth {
    /// Verifies every DKIM signature and the ARC chain, then evaluates DMARC for the From
    /// domain using `spf` (from MAIL time) and the DKIM results. Never fails: DNS trouble
    /// shows up as `temperror` in the verdict.
    pub async fn verify_message(
        &self,
        raw: &[u8],
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        spf: &SpfResult,
    ) -> AuthVerdict {
        let Some(mut message) = AuthenticatedMessage::parse(raw) else {
            return unparsed(ip, spf);
        };
        message.dkim_headers.truncate(MAX_DKIM_SIGNATURES);
        let message = message;
        let dkim = self
            .authenticator
            .verify_dkim(
                Parameters::new(&message)
                    .with_txt_cache(&self.dns)
                    .with_mx_cache(&self.dns)
                    .with_ipv4_cache(&self.dns)
                    .with_ipv6_cache(&self.dns)
                    .with_ptr_cache(&self.dns),
            )
            .await;
        let arc = self
            .authenticator
            .verify_arc(
                Parameters::new(&message)
                    .with_txt_cache(&self.dns)
                    .with_mx_cache(&self.dns)
                    .with_ipv4_cache(&self.dns)
                    .with_ipv6_cache(&self.dns)
                    .with_ptr_cache(&self.dns),
            )
            .await;

        // RFC 7489 §4.1: a null reverse-path uses the HELO identity for alignment.
        let mail_from_domain = match mail_from.rsplit_once('@') {
            Some((_, domain)) if !domain.is_empty() => domain,
            _ => helo,
        }
        .to_ascii_lowercase();
        let spf_output = spf::to_output(spf);
        let dmarc = self
            .authenticator
            .verify_dmarc(
                Parameters::new(DmarcParameters::new(
                    &message,
                    &dkim,
                    &mail_from_domain,
                    &spf_output,
                ))
                .with_txt_cache(&self.dns)
                .with_mx_cache(&self.dns)
                .with_ipv4_cache(&self.dns)
                .with_ipv6_cache(&self.dns)
                .with_ptr_cache(&self.dns),
            )
            .await;

        let dkim = dkim
            .iter()
            .map(|out| {
                let (result, reason) = dkim_status(out.result());
                let sig = out.signature();
                DkimResult {
                    result,
                    domain: sig.map(|s| s.d.to_ascii_lowercase()).unwrap_or_default(),
                    selector: sig.map(|s| s.s.clone()).unwrap_or_default(),
                    algorithm: sig.map(|s| s.a.name().to_string()).unwrap_or_default(),
                    reason,
                }
            })
            .collect();
        let (arc_result, arc_reason) = dkim_status(arc.result());
        let (dmarc_result, dmarc_reason) = dmarc_status(&dmarc.result());
        AuthVerdict {
            spf: spf.clone(),
            dkim,
            arc: ArcResult {
                result: arc_result,
                chain_length: arc.sets().len(),
                reason: arc_reason,
            },
            dmarc: DmarcResult {
                result: dmarc_result,
                policy: policy(dmarc.policy()),
                from_domain: dmarc.domain().to_ascii_lowercase(),
                reason: dmarc_reason,
            },
            remote_ip: ip,
        }
    }
}

/// A message with no header section at all: nothing to verify, no From to apply DMARC to.
fn unparsed(ip: IpAddr, spf: &SpfResult) -> AuthVerdict {
    AuthVerdict {
        spf: spf.clone(),
        dkim: Vec::new(),
        arc: ArcResult {
            result: AuthStatus::None,
            chain_length: 0,
            reason: None,
        },
        dmarc: DmarcResult {
            result: AuthStatus::None,
            policy: DmarcPolicy::None,
            from_domain: String::new(),
            reason: Some("message has no header section".into()),
        },
        remote_ip: ip,
    }
}

/// mail-auth reports a body-hash mismatch as `Neutral`; RFC 8601 calls a signature that does
/// not verify `fail`, and that is what a tampered message is, so we say `fail`.
fn dkim_status(result: &mail_auth::DkimResult) -> (AuthStatus, Option<String>) {
    use mail_auth::DkimResult as D;
    match result {
        D::Pass => (AuthStatus::Pass, None),
        D::None => (AuthStatus::None, None),
        D::Neutral(
            e @ (Error::Dkim(DkimError::FailedBodyHashMatch)
            | Error::Arc(ArcError::FailedBodyHashMatch)),
        ) => (AuthStatus::Fail, Some(e.to_string())),
        D::Neutral(e) => (AuthStatus::Neutral, Some(e.to_string())),
        D::Fail(e) => (AuthStatus::Fail, Some(e.to_string())),
        D::PermError(e) => (AuthStatus::PermError, Some(e.to_string())),
        D::TempError(e) => (AuthStatus::TempError, Some(e.to_string())),
    }
}

fn dmarc_status(result: &mail_auth::DmarcResult) -> (AuthStatus, Option<String>) {
    use mail_auth::DmarcResult as D;
    match result {
        D::Pass => (AuthStatus::Pass, None),
        D::None => (AuthStatus::None, None),
        D::Fail(e) => (AuthStatus::Fail, Some(e.to_string())),
        D::PermError(e) => (AuthStatus::PermError, Some(e.to_string())),
        D::TempError(e) => (AuthStatus::TempError, Some(e.to_string())),
    }
}

fn policy(policy: Policy) -> DmarcPolicy {
    match policy {
        Policy::Reject => DmarcPolicy::Reject,
        Policy::Quarantine => DmarcPolicy::Quarantine,
        Policy::None | Policy::Unspecified => DmarcPolicy::None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ed25519_key, message, rsa_key};
    use super::super::verdict::{PolicyAction, SpfScope};
    use super::super::{dkim_sign, DkimSigning, StaticDns};
    use super::*;
    use mail_auth::arc::ArcSealer;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::AuthenticationResults;

    const IP: &str = "192.0.2.10";

    /// example.com: SPF for 192.0.2.0/24, both DKIM keys published, DMARC `p=<policy>`.
    fn setup(policy: &str) -> (MailAuth, StaticDns, [DkimSigning; 2]) {
        let (ed, ed_txt) = ed25519_key();
        let (rsa, rsa_txt) = rsa_key();
        let dns = StaticDns::new();
        dns.add_txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all")
            .add_txt("ed._domainkey.example.com", ed_txt)
            .add_txt("rsa._domainkey.example.com", rsa_txt)
            .add_txt("_dmarc.example.com", format!("v=DMARC1; p={policy}"));
        let signers = [
            DkimSigning::new("example.com", "ed", ed),
            DkimSigning::new("example.com", "rsa", rsa),
        ];
        (
            MailAuth::with_static_records(dns.clone()).unwrap(),
            dns,
            signers,
        )
    }

    fn signed(signers: &[DkimSigning], body: &str) -> String {
        let raw = message("example.com", body);
        dkim_sign(raw.as_bytes(), signers).unwrap() + &raw
    }

    async fn verify(auth: &MailAuth, raw: &str, mail_from: &str) -> AuthVerdict {
        let ip: IpAddr = IP.parse().unwrap();
        let spf = auth
            .check_spf_mail_from(ip, "client.test", "mx.legate.test", mail_from)
            .await;
        auth.verify_message(raw.as_bytes(), ip, "client.test", mail_from, &spf)
            .await
    }

    #[tokio::test]
    async fn both_algorithms_verify_and_dmarc_passes() {
        let (auth, _, signers) = setup("reject");
        let raw = signed(&signers, "Numbers attached.");
        let v = verify(&auth, &raw, "alice@example.com").await;
        assert_eq!(v.spf.result, AuthStatus::Pass);
        assert_eq!(v.dkim.len(), 2);
        for (sig, (selector, alg)) in v
            .dkim
            .iter()
            .zip([("ed", "ed25519-sha256"), ("rsa", "rsa-sha256")])
        {
            assert_eq!(sig.result, AuthStatus::Pass, "{sig:?}");
            assert_eq!(
                (sig.domain.as_str(), sig.selector.as_str()),
                ("example.com", selector)
            );
            assert_eq!(sig.algorithm, alg);
        }
        assert_eq!(v.arc.result, AuthStatus::None);
        assert_eq!(v.dmarc.result, AuthStatus::Pass);
        assert_eq!(v.dmarc.policy, DmarcPolicy::Reject);
        assert_eq!(v.dmarc.from_domain, "example.com");
        assert_eq!(v.action(), PolicyAction::Accept);
        let h = v.authentication_results_header("mx.legate.test");
        assert!(h.starts_with("Authentication-Results: mx.legate.test;\r\n"));
        for needle in [
            "spf=pass",
            "dkim=pass header.d=example.com header.s=ed",
            "dmarc=pass",
        ] {
            assert!(h.contains(needle), "{needle} missing from {h}");
        }
    }

    #[tokio::test]
    async fn aligned_dkim_alone_passes_dmarc() {
        let (auth, _, signers) = setup("reject");
        let raw = signed(&signers, "hi");
        // Bounced through a forwarder: SPF for the forwarder's domain does not align.
        let v = verify(&auth, &raw, "fwd@forwarder.test").await;
        assert_eq!(v.spf.result, AuthStatus::None);
        assert_eq!(v.dmarc.result, AuthStatus::Pass);
        assert_eq!(v.action(), PolicyAction::Accept);
    }

    #[tokio::test]
    async fn tampered_body_fails_and_dmarc_reject_applies() {
        let (auth, _, signers) = setup("reject");
        let raw = signed(&signers, "Pay invoice 1001.").replace("1001", "9999");
        // Spoofed from elsewhere: SPF for example.com fails as well.
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let spf = auth
            .check_spf_mail_from(ip, "evil.test", "mx", "alice@example.com")
            .await;
        assert_eq!(spf.result, AuthStatus::Fail);
        let v = auth
            .verify_message(raw.as_bytes(), ip, "evil.test", "alice@example.com", &spf)
            .await;
        assert_eq!(v.dkim.len(), 2);
        assert!(
            v.dkim.iter().all(|d| d.result == AuthStatus::Fail),
            "{:?}",
            v.dkim
        );
        assert!(v.dkim[0].reason.as_deref().unwrap().contains("body hash"));
        assert_eq!(v.dmarc.result, AuthStatus::Fail);
        assert_eq!(v.action(), PolicyAction::Reject);
        let h = v.authentication_results_header("mx");
        assert!(h.contains("spf=fail") && h.contains("dkim=fail") && h.contains("dmarc=fail"));
        assert!(h.contains("policy.dmarc=reject"));
    }

    #[tokio::test]
    async fn a_header_added_in_transit_breaks_the_signatures() {
        let (auth, _, signers) = setup("reject");
        let raw = signed(&signers, "hi").replace(
            "Subject: Quarterly",
            "Cc: mallory@evil.test\r\nSubject: Quarterly",
        );
        let v = verify(&auth, &raw, "alice@example.com").await;
        assert!(
            v.dkim.iter().all(|d| d.result == AuthStatus::Fail),
            "{:?}",
            v.dkim
        );
        // SPF still passes and aligns, so DMARC passes on SPF alone.
        assert_eq!(v.dmarc.result, AuthStatus::Pass);
    }

    #[tokio::test]
    async fn only_the_first_signatures_are_checked() {
        let (auth, _, signers) = setup("none");
        let raw = message("example.com", "many");
        let one = dkim_sign(raw.as_bytes(), &signers[..1]).unwrap();
        let flood = one.repeat(MAX_DKIM_SIGNATURES + 5) + &raw;
        let v = verify(&auth, &flood, "alice@example.com").await;
        assert_eq!(v.dkim.len(), MAX_DKIM_SIGNATURES);
        assert!(v.dkim.iter().all(|d| d.result == AuthStatus::Pass));
    }

    #[tokio::test]
    async fn quarantine_and_none_policies() {
        let (auth, dns, _) = setup("quarantine");
        let raw = message("example.com", "unsigned");
        let v = verify(&auth, &raw, "x@elsewhere.test").await;
        assert_eq!(
            (v.dmarc.result, v.dmarc.policy),
            (AuthStatus::Fail, DmarcPolicy::Quarantine)
        );
        assert_eq!(v.action(), PolicyAction::Quarantine);

        dns.remove("_dmarc.example.com")
            .add_txt("_dmarc.example.com", "v=DMARC1; p=none");
        let v = verify(&auth, &raw, "x@elsewhere.test").await;
        assert_eq!(
            (v.dmarc.result, v.dmarc.policy),
            (AuthStatus::Fail, DmarcPolicy::None)
        );
        assert_eq!(v.action(), PolicyAction::Accept);

        dns.remove("_dmarc.example.com");
        let v = verify(&auth, &raw, "x@elsewhere.test").await;
        assert_eq!(v.dmarc.result, AuthStatus::None);
        assert_eq!(v.action(), PolicyAction::Accept);
    }

    #[tokio::test]
    async fn unsigned_message_has_no_dkim_result() {
        let (auth, _, _) = setup("none");
        let v = verify(&auth, &message("example.com", "plain"), "alice@example.com").await;
        assert!(v.dkim.is_empty());
        assert_eq!(v.dkim_summary(), AuthStatus::None);
        let h = v.authentication_results_header("mx");
        assert!(h.contains("\tdkim=none;"));
        assert!(h.contains("spf=pass smtp.mailfrom=alice@example.com"));
    }

    #[tokio::test]
    async fn missing_key_record_is_permerror_and_no_headers_is_harmless() {
        let (auth, dns, signers) = setup("reject");
        dns.remove("ed._domainkey.example.com");
        let v = verify(&auth, &signed(&signers, "x"), "alice@example.com").await;
        assert_eq!(v.dkim[0].result, AuthStatus::PermError);
        assert_eq!(v.dkim[1].result, AuthStatus::Pass);
        assert_eq!(v.dkim_summary(), AuthStatus::Pass);

        let ip: IpAddr = IP.parse().unwrap();
        let spf = SpfResult {
            result: AuthStatus::None,
            scope: SpfScope::Helo,
            domain: "client.test".into(),
            identity: "client.test".into(),
            explanation: None,
        };
        let v = auth.verify_message(b"", ip, "client.test", "", &spf).await;
        assert_eq!(v.dmarc.result, AuthStatus::None);
        assert_eq!(v.action(), PolicyAction::Accept);
    }

    /// A relay seals the message; we then see `arc=pass` with a chain of one.
    #[tokio::test]
    async fn arc_sealed_by_a_relay_passes() {
        let (auth, dns, signers) = setup("reject");
        let (seal_key, seal_txt) = ed25519_key();
        dns.add_txt("arc._domainkey.relay.test", seal_txt);
        let original = signed(&signers, "via the list");

        let message = AuthenticatedMessage::parse(original.as_bytes()).unwrap();
        let arc_in = auth
            .authenticator
            .verify_arc(Parameters::new(&message).with_txt_cache(&auth.dns))
            .await;
        let dkim_in = auth
            .authenticator
            .verify_dkim(Parameters::new(&message).with_txt_cache(&auth.dns))
            .await;
        let results = AuthenticationResults::new("relay.test")
            .with_dkim_results(&dkim_in, "alice@example.com")
            .with_arc_result(&arc_in, IP.parse().unwrap());
        let set = ArcSealer::from_key(seal_key)
            .domain("relay.test")
            .selector("arc")
            .headers(["From", "To", "Subject", "DKIM-Signature"])
            .seal(&message, &results, &arc_in)
            .unwrap();
        let sealed = set.to_header() + &original;

        let v = verify(&auth, &sealed, "alice@example.com").await;
        assert_eq!(
            (v.arc.result, v.arc.chain_length),
            (AuthStatus::Pass, 1),
            "{:?}",
            v.arc
        );
        assert!(v
            .authentication_results_header("mx")
            .contains("arc=pass smtp.remote-ip="));

        let tampered = sealed.replace("via the list", "via a thief");
        let v = verify(&auth, &tampered, "alice@example.com").await;
        assert!(!v.arc.result.is_pass());
    }
}
