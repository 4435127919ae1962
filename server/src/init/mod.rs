//! `legate init`: turn an [`InitPlan`] (from flags, or from the prompts in [`prompt`]) into a
//! ready data directory — config.toml, the root key (0600), DKIM keys, a certificate or ACME
//! settings, the first human and org, and the admin token. Writing is separate from asking so
//! both are testable without a terminal.

pub mod prompt;
mod report;

use crate::config;
use crate::services::Services;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Let's Encrypt's production directory, the default for `--cert acme`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{0} already exists; refusing to overwrite (use --force to replace it and delete its data)"
    )]
    Exists(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write {path}: {reason}")]
    Io { path: String, reason: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn io(path: &Path, e: impl std::fmt::Display) -> InitError {
    InitError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertMode {
    /// Made now in the data directory; fine for trying legate, not for mail from the internet.
    SelfSigned,
    /// From an ACME CA at first start (`[acme]`).
    Acme {
        email: String,
        directory: String,
        /// `http-01` or `tls-alpn-01`.
        challenge: String,
    },
    /// Existing PEM files (`[tls]`).
    Files { cert: PathBuf, key: PathBuf },
}

/// Listener addresses, `""` to disable, in config order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    pub smtp: String,
    pub submission: String,
    pub submissions: String,
    pub imap: String,
    pub imaps: String,
    pub http: String,
    pub https: String,
}

impl Listeners {
    /// The production ports on `bind`.
    pub fn standard(bind: &str) -> Self {
        Self::with_ports(bind, [25, 587, 465, 143, 993, 80, 443])
    }

    /// `ports` in the order smtp, submission, submissions, imap, imaps, http, https; 0 disables.
    pub fn with_ports(bind: &str, ports: [u16; 7]) -> Self {
        let a = |p: u16| {
            if p == 0 {
                String::new()
            } else if bind.contains(':') {
                format!("[{bind}]:{p}")
            } else {
                format!("{bind}:{p}")
            }
        };
        Self {
            smtp: a(ports[0]),
            submission: a(ports[1]),
            submissions: a(ports[2]),
            imap: a(ports[3]),
            imaps: a(ports[4]),
            http: a(ports[5]),
            https: a(ports[6]),
        }
    }

    fn pairs(&self) -> [(&'static str, &str); 7] {
        [
            ("smtp", &self.smtp),
            ("submission", &self.submission),
            ("submissions", &self.submissions),
            ("imap", &self.imap),
            ("imaps", &self.imaps),
            ("http", &self.http),
            ("https", &self.https),
        ]
    }
}

/// Everything `init` needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitPlan {
    pub domain: String,
    pub hostname: String,
    pub data: PathBuf,
    pub admin_email: String,
    pub listen: Listeners,
    pub cert: CertMode,
    /// Replace an existing data directory.
    pub force: bool,
}

/// What `init` made; the admin token is in it once.
pub struct InitOutcome {
    pub domain: String,
    pub hostname: String,
    pub data: PathBuf,
    pub config: PathBuf,
    pub master_key: PathBuf,
    pub admin_email: String,
    pub org_id: String,
    pub admin_token: Option<Zeroizing<String>>,
    /// The self-signed certificate, when that mode was chosen.
    pub certificate: Option<PathBuf>,
    /// `(name, TXT value)` of each DKIM selector to publish.
    pub dkim: Vec<(String, String)>,
    /// The whole DNS plan as the `legate dns plan --format text` checklist.
    pub dns_plan: String,
    pub cert: CertMode,
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A production layout (HTTPS served, plain HTTP reachable from other hosts) keeps the API
/// and its keys off plain HTTP; a loopback HTTP listener (dev, a local proxy) serves it all.
fn redirect_http(l: &Listeners) -> bool {
    let off_loopback = l
        .http
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback());
    !l.https.is_empty() && off_loopback
}

/// The config file for `plan`, with data at `data` (absolute).
pub fn render_config(plan: &InitPlan, data: &Path, key: &Path) -> String {
    let mut t = String::from(
        "# Written by `legate init`; every option is documented in config.toml.example.\n",
    );
    t += &format!(
        "[server]\ndomain = {}\nhostname = {}\n\n[storage]\npath = {}\n\n[vault]\nmaster_key_file = {}\n\n[listen]\n",
        q(&plan.domain),
        q(&plan.hostname),
        q(&data.display().to_string()),
        q(&key.display().to_string()),
    );
    for (name, addr) in plan.listen.pairs() {
        t += &format!("{name} = {}\n", q(addr));
    }
    if redirect_http(&plan.listen) {
        t += "# Plain HTTP only redirects to HTTPS and answers ACME HTTP-01 challenges.\n";
        t += "http_mode = \"redirect\"\n";
    }
    match &plan.cert {
        CertMode::SelfSigned => {
            t += "\n# No [tls] or [acme]: the self-signed certificate in the data directory.\n"
        }
        CertMode::Files { cert, key } => {
            t += &format!(
                "\n[tls]\ncert = {}\nkey = {}\n",
                q(&cert.display().to_string()),
                q(&key.display().to_string())
            )
        }
        CertMode::Acme {
            email,
            directory,
            challenge,
        } => {
            t += &format!(
                "\n[acme]\ndirectory = {}\nemail = {}\nchallenge = {}\n",
                q(directory),
                q(email),
                q(challenge)
            )
        }
    }
    t
}

/// Removes what a previous `init` or `serve` left, or refuses without `force`.
fn clear(data: &Path, force: bool) -> Result<(), InitError> {
    let names = [
        "config.toml",
        "master.key",
        "db",
        "acme",
        "tls-cert.pem",
        "tls-key.pem",
    ];
    let existing: Vec<PathBuf> = names
        .iter()
        .map(|n| data.join(n))
        .filter(|p| p.exists())
        .collect();
    match existing.first() {
        None => Ok(()),
        Some(first) if !force => Err(InitError::Exists(first.clone())),
        Some(_) => {
            for p in existing {
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(|e| io(&p, e))?;
            }
            Ok(())
        }
    }
}

/// Checks the plan, writes the data directory, opens the services once (which makes the DKIM
/// keys) and creates the first human, org and admin token (`bootstrap_token` if given).
pub fn write(plan: &InitPlan, bootstrap_token: Option<&str>) -> Result<InitOutcome, InitError> {
    let domain =
        crate::identity::address::normalize_domain(&plan.domain).map_err(InitError::Invalid)?;
    if let CertMode::Files { cert, key } = &plan.cert {
        crate::tls::load_files(cert, key).map_err(|e| InitError::Invalid(e.to_string()))?;
    }
    std::fs::create_dir_all(&plan.data).map_err(|e| io(&plan.data, e))?;
    let data = std::fs::canonicalize(&plan.data).map_err(|e| io(&plan.data, e))?;
    clear(&data, plan.force)?;
    let cfg_path = data.join("config.toml");
    let key_path = data.join("master.key");
    let plan = InitPlan {
        domain: domain.clone(),
        ..plan.clone()
    };
    let text = render_config(&plan, &data, &key_path);
    // Validate before anything is written, so a bad answer leaves no half-made directory.
    let cfg = config::parse_str(&text).map_err(|e| InitError::Invalid(e.to_string()))?;
    crate::vault::create_key_file(&key_path).map_err(|e| io(&key_path, e))?;
    std::fs::write(&cfg_path, &text).map_err(|e| io(&cfg_path, e))?;
    let certificate = match plan.cert {
        CertMode::SelfSigned => {
            let names = vec![cfg.server.hostname.clone(), cfg.server.domain.clone()];
            let (c, _) = crate::tls::self_signed(&data, &names)
                .map_err(|e| InitError::Invalid(e.to_string()))?;
            Some(c)
        }
        _ => None,
    };
    let services = Services::open(cfg.clone(), crate::services::did_host(&cfg, None))?;
    let b = services
        .identity
        .bootstrap(&plan.admin_email, &domain, &domain, bootstrap_token)
        .map_err(|e| InitError::Invalid(e.to_string()))?
        .ok_or_else(|| InitError::Invalid("the new store already had a human".into()))?;
    let dkim = services
        .vault
        .dkim_records(&domain)
        .map_err(|e| InitError::Invalid(e.to_string()))?
        .iter()
        .filter(|r| r.retired_at.is_none())
        .map(|r| (format!("{}._domainkey.{domain}", r.selector), r.txt()))
        .collect();
    let admin = crate::identity::Actor::cli(&b.human.id, &b.human.email);
    let dns_plan = crate::dns::DnsWizard::new(&cfg, &services.vault, &services.audit)
        .plan(&admin)
        .and_then(|p| crate::dns::render::render(&p, crate::dns::Format::Text))
        .map_err(|e| InitError::Invalid(e.to_string()))?;
    services.audit.sync_blocking();
    services
        .store
        .flush_blocking()
        .map_err(|e| InitError::Invalid(e.to_string()))?;
    Ok(InitOutcome {
        domain,
        hostname: plan.hostname.clone(),
        data,
        config: cfg_path,
        master_key: key_path,
        admin_email: b.human.email,
        org_id: b.org.id,
        admin_token: b.token,
        certificate,
        dkim,
        dns_plan,
        cert: plan.cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path, cert: CertMode) -> InitPlan {
        InitPlan {
            domain: "Agents.Init.Test".into(),
            hostname: "mx.agents.init.test".into(),
            data: dir.join("data"),
            admin_email: "alice@init.test".into(),
            listen: Listeners::with_ports("127.0.0.1", [0, 0, 0, 0, 0, 18080, 0]),
            cert,
            force: false,
        }
    }

    #[test]
    fn writes_a_directory_that_loads_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = write(&plan(dir.path(), CertMode::SelfSigned), None).unwrap();
        assert_eq!(out.domain, "agents.init.test");
        assert!(out.admin_token.as_ref().unwrap().starts_with("lg_"));
        assert_eq!(out.admin_email, "alice@init.test");
        assert_eq!(out.dkim.len(), 2, "ed25519 and rsa selectors");
        assert!(out.dkim[0].0.ends_with("._domainkey.agents.init.test"));
        assert!(out.dkim.iter().all(|(_, v)| v.starts_with("v=DKIM1;")));
        assert!(out.certificate.unwrap().exists());
        let cfg = config::load_file(&out.config).unwrap();
        assert_eq!(cfg.listen.http, "127.0.0.1:18080");
        assert_eq!(cfg.listen.smtp, "");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out.master_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = write(&plan(dir.path(), CertMode::SelfSigned), None);
        assert!(matches!(again, Err(InitError::Exists(_))));
        let mut forced = plan(dir.path(), CertMode::SelfSigned);
        forced.force = true;
        let second = write(&forced, None).unwrap();
        assert_ne!(
            second.admin_token.as_deref(),
            out.admin_token.as_deref(),
            "a fresh store, a fresh token"
        );
    }

    #[test]
    fn acme_and_file_modes_write_their_sections() {
        let dir = tempfile::tempdir().unwrap();
        let acme = CertMode::Acme {
            email: "ops@init.test".into(),
            directory: LETS_ENCRYPT.into(),
            challenge: "tls-alpn-01".into(),
        };
        let out = write(&plan(dir.path(), acme), None).unwrap();
        let cfg = config::load_file(&out.config).unwrap();
        assert_eq!(cfg.acme.directory, LETS_ENCRYPT);
        assert_eq!(cfg.acme.challenge, config::AcmeChallenge::TlsAlpn01);
        assert!(out.certificate.is_none());

        let (c, k) = crate::tls::self_signed(dir.path(), &["mx.agents.init.test".into()]).unwrap();
        let mut p = plan(
            &dir.path().join("two"),
            CertMode::Files {
                cert: c.clone(),
                key: k,
            },
        );
        let out = write(&p, None).unwrap();
        let cfg = config::load_file(&out.config).unwrap();
        assert_eq!(cfg.tls.cert, c.display().to_string());
        p.cert = CertMode::Files {
            cert: c.clone(),
            key: c,
        };
        p.data = dir.path().join("three");
        assert!(matches!(write(&p, None), Err(InitError::Invalid(_))));
        assert!(
            !dir.path().join("three").exists(),
            "nothing written for a bad plan"
        );
    }

    #[test]
    fn quoting_survives_odd_paths_and_ipv6() {
        let l = Listeners::with_ports("::", [25, 0, 0, 0, 0, 0, 443]);
        assert_eq!(l.smtp, "[::]:25");
        let mut p = plan(Path::new("/tmp/a \"b\""), CertMode::SelfSigned);
        p.listen = l;
        p.domain = "a.test".into();
        let text = render_config(&p, Path::new("/tmp/a \"b\"/data"), Path::new("/k"));
        let cfg = config::parse_str(&text).unwrap();
        assert_eq!(cfg.storage.path, PathBuf::from("/tmp/a \"b\"/data"));
        assert_eq!(cfg.listen.https, "[::]:443");
    }

    #[test]
    fn a_public_layout_redirects_plain_http_and_a_loopback_one_does_not() {
        let mut p = plan(Path::new("/tmp/x"), CertMode::SelfSigned);
        p.domain = "a.test".into();
        p.listen = Listeners::standard("0.0.0.0");
        let text = render_config(&p, Path::new("/tmp/x/data"), Path::new("/k"));
        let cfg = config::parse_str(&text).unwrap();
        assert_eq!(cfg.listen.http_mode, config::HttpMode::Redirect);
        p.listen = Listeners::with_ports("127.0.0.1", [0, 0, 0, 0, 0, 18080, 18443]);
        let text = render_config(&p, Path::new("/tmp/x/data"), Path::new("/k"));
        let cfg = config::parse_str(&text).unwrap();
        assert_eq!(cfg.listen.http_mode, config::HttpMode::Full);
    }
}
