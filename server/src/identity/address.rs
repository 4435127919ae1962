//! Address validation for agents we host.
//!
//! RFC 5321 allows far more in a local part (quoted strings, most printable ASCII) than a
//! hosted identity should: we accept the Dot-string form of §4.1.2 over a conservative atom
//! alphabet, lowercase it (addresses are unique ignoring case, as every real mail system treats
//! them), and reserve `+` for subaddressing (`ops+tag@` delivers to `ops`).

/// Lowercases and checks a local part; the error says what is wrong.
pub fn normalize_local(local: &str) -> Result<String, String> {
    let l = local.trim().to_ascii_lowercase();
    if l.is_empty() {
        return Err("local part is empty".into());
    }
    if l.len() > 64 {
        return Err("local part is longer than 64 characters (RFC 5321 §4.5.3.1.1)".into());
    }
    if l.starts_with('.') || l.ends_with('.') || l.contains("..") {
        return Err("local part may not start or end with a dot or contain two dots".into());
    }
    if let Some(c) = l
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "local part may only contain a-z, 0-9, '.', '-' and '_' (found {c:?})"
        ));
    }
    Ok(l)
}

/// Lowercases and checks a domain name (letter-digit-hyphen labels, RFC 1035 / RFC 5321 §4.1.2).
pub fn normalize_domain(domain: &str) -> Result<String, String> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if crate::util::valid_domain(&d) {
        Ok(d)
    } else {
        Err(format!("\"{domain}\" is not a valid domain name"))
    }
}

/// Splits and normalizes `local@domain`.
pub fn normalize_address(addr: &str) -> Result<(String, String), String> {
    let (local, domain) = addr
        .trim()
        .rsplit_once('@')
        .ok_or_else(|| format!("\"{addr}\" is not an address (local@domain)"))?;
    Ok((normalize_local(local)?, normalize_domain(domain)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lowercases() {
        assert_eq!(
            normalize_address("Ops.Bot@Agents.Example.COM").unwrap(),
            ("ops.bot".into(), "agents.example.com".into())
        );
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a+b",
            "a b",
            "\"q\"",
            "a@b",
            "a%b",
            "a!b",
            &"x".repeat(65),
        ] {
            assert!(normalize_local(bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["", "-a.com", "a..com", "a_b.com", "exa mple.com"] {
            assert!(normalize_domain(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize_address("nodomain").is_err());
    }
}
