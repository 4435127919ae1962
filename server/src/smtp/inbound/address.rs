//! Recipient address classification: pure functions, no I/O.
//!
//! smtp-proto already validated the path syntax, but it normalises away two things a relay
//! defence must see: it drops source routes (`<@a.test:x@b.test>` becomes `x@b.test`) and the
//! quotes of a quoted local part (`<"x@b.test"@a.test>` becomes `x@b.test@a.test`). So the raw
//! command line is looked at too, and the relay-era routing forms are flagged here, before any
//! lookup, so none of them can ever be taken for a local agent.

use super::backend::RcptAddress;

/// Why a forward-path is not acceptable as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddrError {
    /// `<>` is only a reverse-path.
    Null,
    /// `<@hop:user@domain>`: obsolete (RFC 5321 Appendix C) and a relay vector.
    SourceRoute,
    /// Not `local@domain` with a plausible domain.
    Syntax,
}

/// A parsed recipient, and whether its local part carries relay-era routing syntax (`%`, `!`,
/// or a quoted `@`), which must never reach a local mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Classified {
    pub(crate) addr: RcptAddress,
    pub(crate) routing: bool,
}

/// How the forward-path was written on the wire: the byte after the first `<` of the line.
fn path_start(line: &[u8]) -> Option<u8> {
    let open = line.iter().position(|&b| b == b'<')?;
    line.get(open + 1).copied()
}

/// Classifies the forward-path of a RCPT line; `parsed` is smtp-proto's address for that line.
pub(crate) fn classify(line: &[u8], parsed: &str) -> Result<Classified, AddrError> {
    let start = path_start(line);
    if start == Some(b'@') {
        return Err(AddrError::SourceRoute);
    }
    if parsed.is_empty() {
        // smtp-proto returns "" both for `<>` and for the bare `<postmaster>`.
        if start == Some(b'>') {
            return Err(AddrError::Null);
        }
        return Ok(Classified {
            addr: RcptAddress {
                address: "postmaster".into(),
                local: "postmaster".into(),
                tag: None,
                domain: String::new(),
            },
            routing: false,
        });
    }
    let (full_local, domain) = parsed.rsplit_once('@').ok_or(AddrError::Syntax)?;
    let domain = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
    if full_local.is_empty() || !valid_domain(&domain) {
        return Err(AddrError::Syntax);
    }
    let routing = full_local.contains(['@', '%', '!']);
    let (local, tag) = match full_local.split_once('+') {
        Some((l, t)) if !l.is_empty() => (l, (!t.is_empty()).then(|| t.to_string())),
        _ => (full_local, None),
    };
    Ok(Classified {
        addr: RcptAddress {
            address: format!("{full_local}@{domain}"),
            local: local.to_string(),
            tag,
            domain,
        },
        routing,
    })
}

/// Letters, digits, hyphens and dots in non-empty labels; non-ASCII is allowed for IDNs under
/// SMTPUTF8. Address literals (`[1.2.3.4]`) are already refused by the parser.
fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::Request;

    /// Runs a RCPT line through smtp-proto and then [`classify`], as the session does.
    fn rcpt(line: &str) -> Result<Classified, AddrError> {
        let raw = format!("RCPT TO:{line}\r\n");
        match Request::parse(&mut raw.as_bytes().iter()) {
            Ok(Request::Rcpt { to }) => classify(raw.as_bytes(), &to.address),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn plain_and_tagged_addresses() {
        let c = rcpt("<Alice+News@A.Test.>").unwrap();
        assert!(!c.routing);
        assert_eq!(c.addr.local, "Alice");
        assert_eq!(c.addr.tag.as_deref(), Some("News"));
        assert_eq!(c.addr.domain, "a.test");
        assert_eq!(c.addr.address, "Alice+News@a.test");
        let c = rcpt("<bob+@a.test>").unwrap();
        assert_eq!((c.addr.local.as_str(), c.addr.tag), ("bob", None));
        let c = rcpt("<+x@a.test>").unwrap();
        assert_eq!((c.addr.local.as_str(), c.addr.tag), ("+x", None));
    }

    #[test]
    fn relay_forms_are_flagged_or_refused() {
        assert_eq!(rcpt("<@a.test:x@b.test>"), Err(AddrError::SourceRoute));
        assert_eq!(
            rcpt("<@a.test,@c.test:x@b.test>"),
            Err(AddrError::SourceRoute)
        );
        assert!(rcpt("<x%b.test@a.test>").unwrap().routing);
        assert!(rcpt("<b.test!x@a.test>").unwrap().routing);
        let quoted = rcpt("<\"x@b.test\"@a.test>").unwrap();
        assert!(quoted.routing);
        assert_eq!(quoted.addr.domain, "a.test");
    }

    #[test]
    fn null_and_postmaster() {
        assert_eq!(rcpt("<>"), Err(AddrError::Null));
        let pm = rcpt("<Postmaster>").unwrap();
        assert_eq!(
            (pm.addr.local.as_str(), pm.addr.domain.as_str()),
            ("postmaster", "")
        );
    }

    #[test]
    fn random_lines_never_panic() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let alphabet = b"<>@%!:,\"\\+. \r\nRCPT TO:aZ\x00\xff\xc3";
        for _ in 0..20_000 {
            let mut line = b"RCPT TO:".to_vec();
            let len = (seed % 40) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                line.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            line.extend_from_slice(b"\r\n");
            if let Ok(Request::Rcpt { to }) = Request::parse(&mut line.iter()) {
                let _ = classify(&line, &to.address);
            }
            let _ = classify(&line, &String::from_utf8_lossy(&line));
        }
    }

    #[test]
    fn bad_domains() {
        assert_eq!(
            classify(b"RCPT TO:<x@a..b>", "x@a..b"),
            Err(AddrError::Syntax)
        );
        assert_eq!(
            classify(b"RCPT TO:<x@a_b>", "x@a_b"),
            Err(AddrError::Syntax)
        );
        assert_eq!(classify(b"RCPT TO:<x>", "x"), Err(AddrError::Syntax));
        assert!(classify("RCPT TO:<ü@bücher.test>".as_bytes(), "ü@bücher.test").is_ok());
    }
}
