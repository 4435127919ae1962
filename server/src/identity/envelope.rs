//! Envelope address checks done before any lookup, for inbound RCPT and outbound sends alike.
//!
//! Forms that older MTAs interpreted as routing instructions are refused outright, whatever
//! the domain, so no reading of an address can turn us into a relay: the percent hack
//! (`x%b.test@a.test`), source routes (`@a.test:x@b.test`), bang paths (`b.test!x@a.test`),
//! and quoted local parts (which can hide an `@`).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// `local`, `domain` (lowercased) and the `+tag` if any.
    Address {
        local: String,
        domain: String,
        tag: Option<String>,
    },
    /// A routing form or a malformed address.
    Refused(&'static str),
}

pub fn check_rcpt(addr: &str) -> Checked {
    if addr.starts_with('@') || addr.contains(':') {
        return Checked::Refused("source routes are not accepted");
    }
    if addr.contains('"') || addr.contains('\\') {
        return Checked::Refused("quoted local parts are not accepted");
    }
    if addr.contains('%') {
        return Checked::Refused("the percent hack is not accepted");
    }
    if addr.contains('!') {
        return Checked::Refused("bang paths are not accepted");
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Checked::Refused("an address needs a domain");
    };
    if local.is_empty() || local.contains('@') || domain.is_empty() {
        return Checked::Refused("malformed address");
    }
    let local = local.to_ascii_lowercase();
    let (local, tag) = match local.split_once('+') {
        Some((l, t)) => (l.to_string(), (!t.is_empty()).then(|| t.to_string())),
        None => (local, None),
    };
    Checked::Address {
        local,
        domain: domain.trim_end_matches('.').to_ascii_lowercase(),
        tag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_forms_are_refused() {
        for a in [
            "x%b.test@a.test",
            "@a.test:x@b.test",
            "b.test!x@a.test",
            "\"x@b.test\"@a.test",
            "nodomain",
            "@a.test",
        ] {
            assert!(matches!(check_rcpt(a), Checked::Refused(_)), "{a}");
        }
    }

    #[test]
    fn tags_are_split() {
        assert_eq!(
            check_rcpt("Ops+Signup@Agents.Test"),
            Checked::Address {
                local: "ops".into(),
                domain: "agents.test".into(),
                tag: Some("signup".into())
            }
        );
    }
}
