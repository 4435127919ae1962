//! What `legate init` prints: a summary for a person, or one JSON object for scripts.

use super::{CertMode, InitOutcome};

fn cert_summary(o: &InitOutcome) -> String {
    match (&o.cert, &o.certificate) {
        (
            CertMode::Acme {
                directory,
                challenge,
                ..
            },
            _,
        ) => {
            format!("ACME from {directory} ({challenge}), ordered at first start")
        }
        (CertMode::Files { cert, .. }, _) => format!("{}", cert.display()),
        (CertMode::SelfSigned, Some(p)) => format!("self-signed, {}", p.display()),
        (CertMode::SelfSigned, None) => "self-signed".into(),
    }
}

impl InitOutcome {
    /// One JSON object (`init --json`): paths, admin token, DKIM records, next commands.
    pub fn to_json(&self) -> serde_json::Value {
        let o = self;
        let cfg = o.config.display().to_string();
        serde_json::json!({
            "domain": o.domain, "hostname": o.hostname,
            "config": o.config, "master_key": o.master_key, "data": o.data,
            "admin_email": o.admin_email, "org_id": o.org_id,
            "admin_token": o.admin_token.as_ref().map(|t| t.as_str()),
            "certificate": cert_summary(o),
            "dkim": o.dkim.iter().map(|(name, value)| serde_json::json!({
                "name": name, "type": "TXT", "value": value,
            })).collect::<Vec<_>>(),
            "dns_plan": o.dns_plan,
            "dns_plan_command": format!("legate --config {cfg} dns plan"),
            "next": format!("legate --config {cfg} serve"),
        })
    }

    /// What a person reads after `init`: what was made, the DKIM records, the next steps.
    pub fn summary(&self) -> String {
        let o = self;
        let cfg = o.config.display().to_string();
        let mut t = format!("legate: initialised {} in {}\n", o.domain, o.data.display());
        t += &format!("  config:      {cfg}\n");
        t += &format!(
            "  master key:  {} (mode 0600; back it up, it opens the vault)\n",
            o.master_key.display()
        );
        t += &format!("  certificate: {}\n", cert_summary(o));
        t += &format!("  admin:       {}\n", o.admin_email);
        if let Some(tok) = &o.admin_token {
            t += &format!("  admin token (shown once): {}\n", tok.as_str());
        }
        t += &format!(
            "\nDNS: publish these records (`legate --config {cfg} dns plan --format zone` prints\n\
             them as a zone fragment; `dns check` verifies them live):\n\n"
        );
        t += &o.dns_plan;
        if !t.ends_with('\n') {
            t.push('\n');
        }
        t += "\nnext steps:\n";
        t += &format!("  1. DNS:         legate --config {cfg} dns plan\n");
        t += &format!(
            "  2. start:       legate --config {cfg} serve   (or deploy/systemd, deploy/helm)\n"
        );
        t += &format!("  3. first agent: legate --config {cfg} agent create ops\n");
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn summary_and_json_carry_the_records_and_the_token() {
        let o = InitOutcome {
            domain: "a.test".into(),
            hostname: "mx.a.test".into(),
            data: PathBuf::from("/d"),
            config: PathBuf::from("/d/config.toml"),
            master_key: PathBuf::from("/d/master.key"),
            admin_email: "admin@a.test".into(),
            org_id: "org_1".into(),
            admin_token: Some(zeroize::Zeroizing::new("lg_TOKEN".into())),
            certificate: None,
            dkim: vec![(
                "lg1ed._domainkey.a.test".into(),
                "v=DKIM1; k=ed25519; p=AA".into(),
            )],
            dns_plan: "[ ] TXT lg1ed._domainkey.a.test v=DKIM1; k=ed25519; p=AA\n".into(),
            cert: CertMode::Acme {
                email: "e@a.test".into(),
                directory: "https://ca.test/dir".into(),
                challenge: "http-01".into(),
            },
        };
        let text = o.summary();
        assert!(text.contains("admin token (shown once): lg_TOKEN"));
        assert!(text.contains("[ ] TXT lg1ed._domainkey.a.test v=DKIM1; k=ed25519; p=AA"));
        assert!(text.contains("legate --config /d/config.toml dns plan"));
        assert!(text.contains("ACME from https://ca.test/dir (http-01)"));
        let j = o.to_json();
        assert_eq!(j["admin_token"], "lg_TOKEN");
        assert_eq!(j["dkim"][0]["type"], "TXT");
        assert!(j["dns_plan"].as_str().unwrap().contains("lg1ed._domainkey"));
        assert_eq!(j["next"], "legate --config /d/config.toml serve");
    }
}
