//! Renders an `AuthVerdict` as an RFC 8601 `Authentication-Results` header.
//!
//! Written here rather than with mail-auth's builder so the header says exactly what the
//! verdict says (e.g. a body-hash mismatch is `dkim=fail` in both), and so every value that
//! came from a peer (domains, selectors, addresses, error text) is escaped in one place: a
//! hostile `d=` must not be able to inject a `;`, a quote or a line break into our header.

use super::verdict::{AuthStatus, AuthVerdict, SpfScope};
use std::fmt::Write;

/// RFC 5322 lines must stay under 998 octets; values are capped well below that.
const MAX_VALUE_LEN: usize = 255;
const MAX_COMMENT_LEN: usize = 120;

impl AuthVerdict {
    /// The full header, folded one result per line, ending in CRLF.
    pub fn authentication_results_header(&self, authserv_id: &str) -> String {
        let mut out = String::with_capacity(512);
        out.push_str("Authentication-Results: ");
        out.push_str(&value(authserv_id));

        let spf = &self.spf;
        let mut line = format!("spf={}", spf.result);
        if let Some(exp) = spf.explanation.as_deref() {
            line.push_str(&comment(exp));
        }
        match spf.scope {
            SpfScope::MailFrom => {
                let _ = write!(line, " smtp.mailfrom={}", value(&spf.identity));
            }
            SpfScope::Helo => {
                let _ = write!(line, " smtp.helo={}", value(&spf.identity));
            }
        }
        push_line(&mut out, &line);

        if self.dkim.is_empty() {
            push_line(&mut out, "dkim=none");
        }
        for sig in &self.dkim {
            let mut line = format!("dkim={}", sig.result);
            if let Some(reason) = sig.reason.as_deref() {
                line.push_str(&comment(reason));
            }
            if !sig.domain.is_empty() {
                let _ = write!(line, " header.d={}", value(&sig.domain));
            }
            if !sig.selector.is_empty() {
                let _ = write!(line, " header.s={}", value(&sig.selector));
            }
            if !sig.algorithm.is_empty() {
                let _ = write!(line, " header.a={}", value(&sig.algorithm));
            }
            push_line(&mut out, &line);
        }

        let mut line = format!("arc={}", self.arc.result);
        if let Some(reason) = self.arc.reason.as_deref() {
            line.push_str(&comment(reason));
        }
        if self.arc.result != AuthStatus::None {
            let _ = write!(
                line,
                " smtp.remote-ip={}",
                value(&self.remote_ip.to_string())
            );
        }
        push_line(&mut out, &line);

        let dmarc = &self.dmarc;
        let mut line = format!("dmarc={}", dmarc.result);
        if let Some(reason) = dmarc.reason.as_deref() {
            line.push_str(&comment(reason));
        }
        if !dmarc.from_domain.is_empty() {
            let _ = write!(
                line,
                " header.from={} policy.dmarc={}",
                value(&dmarc.from_domain),
                dmarc.policy.as_str()
            );
        }
        push_line(&mut out, &line);

        out.push_str("\r\n");
        out
    }
}

fn push_line(out: &mut String, resinfo: &str) {
    out.push_str(";\r\n\t");
    out.push_str(resinfo);
}

/// RFC 2045 token characters, plus `@` (a pvalue may be `local-part@domain`).
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~@".contains(c)
}

/// A pvalue: bare when it is a token (or `token@token`), else a quoted-string with `"` and
/// `\` escaped and control characters dropped.
fn value(raw: &str) -> String {
    let raw: String = raw.chars().take(MAX_VALUE_LEN).collect();
    if !raw.is_empty() && raw.chars().all(is_plain) && raw.matches('@').count() <= 1 {
        return raw;
    }
    let mut quoted = String::with_capacity(raw.len() + 2);
    quoted.push('"');
    for c in raw.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// A CFWS comment; parentheses and backslashes are dropped rather than escaped, since the
/// text is only for humans.
fn comment(raw: &str) -> String {
    let text: String = raw
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '(' | ')' | '\\'))
        .take(MAX_COMMENT_LEN)
        .collect();
    format!(" ({})", text.trim())
}

#[cfg(test)]
mod tests {
    use super::super::verdict::*;

    fn sample() -> AuthVerdict {
        AuthVerdict {
            spf: SpfResult {
                result: AuthStatus::Pass,
                scope: SpfScope::MailFrom,
                domain: "example.com".into(),
                identity: "alice@example.com".into(),
                explanation: None,
            },
            dkim: vec![DkimResult {
                result: AuthStatus::Pass,
                domain: "example.com".into(),
                selector: "ed".into(),
                algorithm: "ed25519-sha256".into(),
                reason: None,
            }],
            arc: ArcResult {
                result: AuthStatus::None,
                chain_length: 0,
                reason: None,
            },
            dmarc: DmarcResult {
                result: AuthStatus::Pass,
                policy: DmarcPolicy::Reject,
                from_domain: "example.com".into(),
                reason: None,
            },
            remote_ip: "192.0.2.1".parse().unwrap(),
        }
    }

    #[test]
    fn renders_one_folded_result_per_line() {
        let h = sample().authentication_results_header("mx.legate.test");
        assert_eq!(
            h,
            "Authentication-Results: mx.legate.test;\r\n\
             \tspf=pass smtp.mailfrom=alice@example.com;\r\n\
             \tdkim=pass header.d=example.com header.s=ed header.a=ed25519-sha256;\r\n\
             \tarc=none;\r\n\
             \tdmarc=pass header.from=example.com policy.dmarc=reject\r\n"
        );
    }

    #[test]
    fn hostile_values_cannot_break_the_header() {
        let mut v = sample();
        v.dkim[0].domain = "evil.com; dkim=pass\r\nX-Injected: 1".into();
        v.dkim[0].result = AuthStatus::Fail;
        v.dkim[0].reason = Some("bad (nested) \\ \r\n reason".into());
        v.spf.identity = "\"quoted\"@example.com".into();
        let h = v.authentication_results_header("mx.legate.test");
        // Only our own folds contain CR/LF; the value is quoted and the comment is clean.
        assert_eq!(h.matches("\r\n").count(), 5);
        assert!(h.contains("header.d=\"evil.com; dkim=passX-Injected: 1\""));
        assert!(h.contains("dkim=fail (bad nested   reason)"));
        assert!(h.contains("smtp.mailfrom=\"\\\"quoted\\\"@example.com\""));
    }

    #[test]
    fn no_signatures_and_helo_scope() {
        let mut v = sample();
        v.dkim.clear();
        v.spf.scope = SpfScope::Helo;
        v.spf.identity = "mail.example.com".into();
        v.spf.result = AuthStatus::None;
        v.arc.result = AuthStatus::Fail;
        let h = v.authentication_results_header("mx");
        assert!(h.contains("\tspf=none smtp.helo=mail.example.com;"));
        assert!(h.contains("\tdkim=none;"));
        assert!(h.contains("\tarc=fail smtp.remote-ip=192.0.2.1;"));
    }
}
