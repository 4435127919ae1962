//! Recipient domain patterns of the allow and block lists: `example.com` (the domain and its
//! subdomains) or `*.example.com` (the subdomains only). Parsed once, so a pattern with a
//! space, a CR or an LF never reaches the store or a comparison.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    /// Lower case, no trailing dot.
    base: String,
    /// `*.base`: subdomains only.
    wildcard: bool,
}

impl DomainPattern {
    pub fn parse(s: &str) -> Result<DomainPattern, String> {
        let lower = s.to_ascii_lowercase();
        let (wildcard, base) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let base = base.strip_suffix('.').unwrap_or(base);
        let ok = !base.is_empty()
            && base.len() <= 253
            && base.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(format!(
                "{:?} is not a domain pattern (example.com or *.example.com)",
                s.chars().take(80).collect::<String>()
            ));
        }
        Ok(DomainPattern {
            base: base.to_string(),
            wildcard,
        })
    }

    /// Whether `domain` (lower case, as queued) falls under this pattern.
    pub fn matches(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        let below = d.len() > self.base.len()
            && d.ends_with(&self.base)
            && d.as_bytes()[d.len() - self.base.len() - 1] == b'.';
        below || (!self.wildcard && d == self.base)
    }

    /// Whether every domain `other` matches, this pattern matches too.
    pub fn covers(&self, other: &DomainPattern) -> bool {
        if other.base == self.base {
            return !self.wildcard || other.wildcard;
        }
        let b = &other.base;
        b.len() > self.base.len()
            && b.ends_with(&self.base)
            && b.as_bytes()[b.len() - self.base.len() - 1] == b'.'
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            write!(f, "*.{}", self.base)
        } else {
            f.write_str(&self.base)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DomainPattern {
        DomainPattern::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_domains_and_subdomains() {
        assert!(p("Example.com").matches("example.com"));
        assert!(p("example.com").matches("mx.example.com"));
        assert!(!p("example.com").matches("badexample.com"));
        assert!(!p("*.example.com").matches("example.com"));
        assert!(p("*.example.com").matches("a.b.example.com"));
    }

    #[test]
    fn coverage_is_set_inclusion() {
        assert!(p("example.com").covers(&p("*.example.com")));
        assert!(p("example.com").covers(&p("a.example.com")));
        assert!(!p("*.example.com").covers(&p("example.com")));
        assert!(p("*.example.com").covers(&p("*.a.example.com")));
        assert!(!p("a.example.com").covers(&p("example.com")));
        assert!(!p("example.com").covers(&p("example.org")));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "",
            "*",
            "a..b",
            "exa mple.com",
            "example.com\r\nX: y",
            "-a.com",
            "a@b.com",
            "*.*.a.com",
        ] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
