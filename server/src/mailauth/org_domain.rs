//! Organizational domains (RFC 7489 §3.2) from the Public Suffix List compiled into the `psl`
//! crate. mail-auth 0.13 finds the organizational domain for its own DMARC verdict by walking
//! `_dmarc` records in DNS and keeps that private; what we decide ourselves (the alignment
//! written into aggregate reports, whether a report address needs external verification)
//! uses this one function, so `a.example.co.uk` and `b.example.co.uk` share an organization
//! while `alice.github.io` and `bob.github.io` do not.

use psl::Psl;

/// The registrable domain of `name` (its public suffix and one more label), lower case, no
/// trailing dot. A name that is itself a public suffix, or has no dot, is its own
/// organizational domain (RFC 7489 §3.2 step 3 finds nothing shorter).
pub fn org_domain(name: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    match psl::List.domain(name.as_bytes()) {
        Some(d) => String::from_utf8_lossy(d.as_bytes()).into_owned(),
        None => name,
    }
}

/// Relaxed identifier alignment (RFC 7489 §3.1.1, §3.1.2): both names have the same
/// organizational domain. An empty name aligns with nothing.
pub fn relaxed_aligned(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('.'), b.trim_end_matches('.'));
    !a.is_empty() && !b.is_empty() && org_domain(a) == org_domain(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domain_from_the_public_suffix_list() {
        assert_eq!(org_domain("mail.example.com"), "example.com");
        assert_eq!(org_domain("Example.COM."), "example.com");
        assert_eq!(org_domain("a.b.example.co.uk"), "example.co.uk");
        // A private-section suffix: each user's site is its own organization.
        assert_eq!(org_domain("alice.github.io"), "alice.github.io");
        // Unknown top-level domains (tests, internal names) take the default `*` rule.
        assert_eq!(org_domain("mx.agents.test"), "agents.test");
        // A public suffix alone, or a single label, is its own organizational domain.
        assert_eq!(org_domain("co.uk"), "co.uk");
        assert_eq!(org_domain("localhost"), "localhost");
    }

    #[test]
    fn relaxed_alignment_is_the_same_organizational_domain() {
        assert!(relaxed_aligned("example.com", "example.com"));
        assert!(relaxed_aligned("bounce.example.com", "example.com"));
        // Siblings under one organization align (the old suffix test said no).
        assert!(relaxed_aligned("a.example.co.uk", "b.example.co.uk"));
        // Neighbours under a public suffix do not (the old suffix test said yes for
        // `alice.github.io` against `github.io`).
        assert!(!relaxed_aligned("alice.github.io", "bob.github.io"));
        assert!(!relaxed_aligned("alice.github.io", "github.io"));
        assert!(!relaxed_aligned("example.co.uk", "co.uk"));
        assert!(!relaxed_aligned("evil-example.com", "example.com"));
        assert!(!relaxed_aligned("", "example.com"));
    }
}
