//! mail-auth through `MailAuth`, as the inbound session calls it: SPF for MAIL FROM, then
//! DKIM + ARC verification and DMARC on the message, then the `Authentication-Results`
//! header legate prepends. DNS is a static table (no network); an input may add TXT records
//! of its own with leading `@txt <name> <value>` lines, so DKIM key, SPF and DMARC record
//! parsing are fuzzed too.

use crate::{Target, Verdict};
use legate::mailauth::{AuthStatus, MailAuth, SpfResult, SpfScope, StaticDns};
use std::net::{IpAddr, Ipv4Addr};

/// A real RSA-1024 public key (DKIM `p=`), so RSA signatures get as far as verification.
const RSA_P: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDI7thwE8n3KhwZrh5o/prs+x6RtheNnx9Qj2gkal4PhBOy4mIPnMZMkj+gJr+qrTQuTDWvrdT0wYv/eb+4DnzyVprLd5uC8Qr9bzhQ7ms1xVRwrnv2URgMjtyB9V7CftS4L9M03PglxxvhN4AXTQNhumv6z2zydtxAE376HqQ+nQIDAQAB";
const ED_P: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

pub struct MailAuthTarget {
    rt: tokio::runtime::Runtime,
    dns: StaticDns,
    auth: Option<MailAuth>,
}

impl MailAuthTarget {
    pub fn new() -> Self {
        let dns = StaticDns::new();
        let auth = MailAuth::with_static_records(dns.clone()).ok();
        Self {
            rt: crate::runtime(),
            dns,
            auth,
        }
    }

    fn base_records(&self) {
        self.dns.clear();
        self.dns
            .add_txt("bank.test", "v=spf1 ip4:192.0.2.1 -all")
            .add_txt("_dmarc.bank.test", "v=DMARC1; p=reject; adkim=s; aspf=s")
            .add_txt(
                "sel._domainkey.bank.test",
                format!("v=DKIM1; k=rsa; p={RSA_P}"),
            )
            .add_txt(
                "ed._domainkey.bank.test",
                format!("v=DKIM1; k=ed25519; p={ED_P}"),
            )
            .add_a("mx.bank.test", Ipv4Addr::new(192, 0, 2, 1));
    }
}

impl Default for MailAuthTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for MailAuthTarget {
    fn name(&self) -> &'static str {
        "mailauth"
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        super::MIME_DICT
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        let Some(auth) = &self.auth else {
            return Verdict::Bad("cannot build MailAuth".into());
        };
        self.base_records();
        let mut raw = input;
        while let Some(rest) = raw.strip_prefix(b"@txt ") {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = String::from_utf8_lossy(&rest[..end]).into_owned();
            if let Some((name, value)) = line.trim_end().split_once(' ') {
                self.dns.add_txt(name, value);
            }
            raw = rest.get(end + 1..).unwrap_or_default();
        }
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let verdict = self.rt.block_on(async {
            let spf = auth
                .check_spf_mail_from(ip, "mx.bank.test", "mx.agents.test", "x@bank.test")
                .await;
            let _ = auth.check_spf_helo(ip, "mx.bank.test").await;
            let spf = SpfResult {
                result: if spf.result == AuthStatus::Pass {
                    AuthStatus::Pass
                } else {
                    spf.result
                },
                scope: SpfScope::MailFrom,
                ..spf
            };
            let v = auth
                .verify_message(raw, ip, "mx.bank.test", "x@bank.test", &spf)
                .await;
            let _ = v.action();
            let _ = v.dkim_summary();
            v.authentication_results_header("mx.agents.test")
        });
        if verdict.contains('\r') && !verdict.ends_with("\r\n") {
            return Verdict::Bad("Authentication-Results is not one header".into());
        }
        // A header we prepend must not carry a bare CR/LF (header injection into storage).
        let body = verdict.trim_end_matches("\r\n");
        if body.bytes().any(|b| b == b'\0')
            || body
                .split("\r\n")
                .skip(1)
                .any(|l| !l.starts_with([' ', '\t']))
            || body.split("\r\n").any(|l| l.contains(['\r', '\n']))
        {
            return Verdict::Bad(format!(
                "Authentication-Results would inject a header: {:?}",
                &verdict[..verdict.len().min(200)]
            ));
        }
        Verdict::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target reaches DKIM verification (a key is found, the signature checked), not
    /// just the "no signature" path.
    #[test]
    fn a_seed_signature_is_checked_against_its_key() {
        let t = MailAuthTarget::new();
        let auth = t.auth.as_ref().expect("mailauth");
        t.base_records();
        let raw = std::fs::read(crate::repo_root().join("bench/fuzz/seeds/mailauth/dkim.eml"))
            .expect("seed");
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let spf =
            t.rt.block_on(auth.check_spf_mail_from(ip, "mx.bank.test", "mx", "x@bank.test"));
        assert_eq!(spf.result, AuthStatus::Pass, "{spf:?}");
        let v =
            t.rt.block_on(auth.verify_message(&raw, ip, "mx.bank.test", "x@bank.test", &spf));
        let h = v.authentication_results_header("mx.agents.test");
        assert!(h.contains("dkim=") && !h.contains("dkim=none"), "{h}");
    }
}
