//! SPF (RFC 7208), evaluated by the SMTP session at EHLO/MAIL time.

use super::verdict::{AuthStatus, SpfResult, SpfScope};
use super::MailAuth;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{Parameters, SpfOutput};
use std::net::IpAddr;

/// RFC 7208 §7.3: `%{r}` is "unknown" when the checking host's name is not available.
const UNKNOWN_HOST: &str = "unknown";

impl MailAuth {
    /// Checks the HELO identity (RFC 7208 §2.3).
    pub async fn check_spf_helo(&self, ip: IpAddr, helo: &str) -> SpfResult {
        let params = SpfParameters::verify_ehlo(ip, helo, UNKNOWN_HOST);
        let output = self.authenticator.verify_spf(self.spf_params(params)).await;
        spf_result(&output, SpfScope::Helo, helo)
    }

    /// Checks the MAIL FROM identity (RFC 7208 §2.4). A null reverse-path (`mail_from` empty)
    /// is checked as `postmaster@<helo>` and reported as the HELO identity.
    pub async fn check_spf_mail_from(
        &self,
        ip: IpAddr,
        helo: &str,
        hostname: &str,
        mail_from: &str,
    ) -> SpfResult {
        let params = SpfParameters::verify_mail_from(ip, helo, hostname, mail_from);
        let output = self.authenticator.verify_spf(self.spf_params(params)).await;
        if mail_from.is_empty() {
            spf_result(&output, SpfScope::Helo, helo)
        } else {
            spf_result(&output, SpfScope::MailFrom, mail_from)
        }
    }

    /// Attaches the DNS override to every cache slot mail-auth offers.
    fn spf_params<'x>(
        &'x self,
        params: SpfParameters<'x>,
    ) -> Parameters<
        'x,
        SpfParameters<'x>,
        super::DnsOverride,
        super::DnsOverride,
        super::DnsOverride,
        super::DnsOverride,
        super::DnsOverride,
    > {
        Parameters::new(params)
            .with_txt_cache(&self.dns)
            .with_mx_cache(&self.dns)
            .with_ipv4_cache(&self.dns)
            .with_ipv6_cache(&self.dns)
            .with_ptr_cache(&self.dns)
    }
}

fn spf_result(output: &SpfOutput, scope: SpfScope, identity: &str) -> SpfResult {
    SpfResult {
        result: status(output.result()),
        scope,
        domain: output.domain().to_ascii_lowercase(),
        identity: identity.to_string(),
        explanation: output.explanation().map(str::to_string),
    }
}

pub(super) fn status(result: mail_auth::SpfResult) -> AuthStatus {
    use mail_auth::SpfResult as S;
    match result {
        S::Pass => AuthStatus::Pass,
        S::Fail => AuthStatus::Fail,
        S::SoftFail => AuthStatus::SoftFail,
        S::Neutral => AuthStatus::Neutral,
        S::TempError => AuthStatus::TempError,
        S::PermError => AuthStatus::PermError,
        S::None => AuthStatus::None,
    }
}

/// Rebuilds the mail-auth output DMARC needs from our owned result.
pub(super) fn to_output(spf: &SpfResult) -> SpfOutput {
    use mail_auth::SpfResult as S;
    let result = match spf.result {
        AuthStatus::Pass => S::Pass,
        AuthStatus::Fail => S::Fail,
        AuthStatus::SoftFail => S::SoftFail,
        AuthStatus::Neutral => S::Neutral,
        AuthStatus::TempError => S::TempError,
        AuthStatus::PermError => S::PermError,
        AuthStatus::None => S::None,
    };
    SpfOutput::new(spf.domain.clone()).with_result(result)
}

#[cfg(test)]
mod tests {
    use super::super::StaticDns;
    use super::*;
    use std::net::Ipv4Addr;

    fn auth() -> MailAuth {
        let dns = StaticDns::new();
        dns.add_txt("pass.example", "v=spf1 ip4:192.0.2.0/24 -all")
            .add_txt("soft.example", "v=spf1 ip4:192.0.2.0/24 ~all")
            .add_txt("mx.example", "v=spf1 mx -all")
            .add_mx("mx.example", 10, "in.mx.example")
            .add_a("in.mx.example", Ipv4Addr::new(203, 0, 113, 7))
            .add_txt("helo.example", "v=spf1 a -all")
            .add_a("helo.example", Ipv4Addr::new(192, 0, 2, 9))
            .add_txt("broken.example", "v=spf1 ip4:not-an-ip -all")
            .add_txt("other.example", "google-site-verification=abc");
        MailAuth::with_static_records(dns).unwrap()
    }

    const INSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    const OUTSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

    async fn mail_from(ip: IpAddr, from: &str) -> SpfResult {
        auth()
            .check_spf_mail_from(ip, "client.test", "mx.legate.test", from)
            .await
    }

    #[tokio::test]
    async fn mail_from_pass_fail_softfail_none() {
        let r = mail_from(INSIDE, "a@pass.example").await;
        assert_eq!(r.result, AuthStatus::Pass);
        assert_eq!(
            (r.scope, r.domain.as_str()),
            (SpfScope::MailFrom, "pass.example")
        );
        assert_eq!(r.identity, "a@pass.example");
        assert_eq!(
            mail_from(OUTSIDE, "a@pass.example").await.result,
            AuthStatus::Fail
        );
        assert_eq!(
            mail_from(OUTSIDE, "a@soft.example").await.result,
            AuthStatus::SoftFail
        );
        assert_eq!(
            mail_from(INSIDE, "a@none.example").await.result,
            AuthStatus::None
        );
        assert_eq!(
            mail_from(INSIDE, "a@other.example").await.result,
            AuthStatus::None
        );
    }

    #[tokio::test]
    async fn mx_mechanism_uses_the_mx_and_a_tables() {
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
        assert_eq!(mail_from(ip, "a@mx.example").await.result, AuthStatus::Pass);
        assert_eq!(
            mail_from(INSIDE, "a@mx.example").await.result,
            AuthStatus::Fail
        );
    }

    #[tokio::test]
    async fn a_broken_record_is_permerror() {
        assert_eq!(
            mail_from(INSIDE, "a@broken.example").await.result,
            AuthStatus::PermError
        );
    }

    #[tokio::test]
    async fn helo_checks_and_null_sender() {
        let auth = auth();
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
        let r = auth.check_spf_helo(ip, "helo.example").await;
        assert_eq!((r.result, r.scope), (AuthStatus::Pass, SpfScope::Helo));
        let r = auth.check_spf_helo(OUTSIDE, "helo.example").await;
        assert_eq!(r.result, AuthStatus::Fail);
        // MAIL FROM:<> falls back to the HELO identity.
        let r = auth.check_spf_mail_from(ip, "helo.example", "mx", "").await;
        assert_eq!(r.result, AuthStatus::Pass);
        assert_eq!(
            (r.scope, r.identity.as_str()),
            (SpfScope::Helo, "helo.example")
        );
    }

    #[test]
    fn round_trips_to_mail_auth_output() {
        let r = SpfResult {
            result: AuthStatus::SoftFail,
            scope: SpfScope::MailFrom,
            domain: "x.example".into(),
            identity: "a@x.example".into(),
            explanation: None,
        };
        let out = to_output(&r);
        assert_eq!(status(out.result()), AuthStatus::SoftFail);
        assert_eq!(out.domain(), "x.example");
    }
}
