//! The questions `legate init` asks on a terminal. Every answer has a default (shown in
//! brackets, taken on Enter) drawn from the command-line flags, so flags and prompts agree;
//! a bad answer is explained and asked again. Generic over the streams so tests script it.

use super::{CertMode, InitError, InitPlan, Listeners, LETS_ENCRYPT};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// The flags of `legate init`; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct InitFlags {
    pub domain: Option<String>,
    pub hostname: Option<String>,
    pub data: PathBuf,
    pub admin_email: Option<String>,
    /// Address the listeners bind to.
    pub bind: String,
    /// smtp, submission, submissions, imap, imaps, http, https; 0 disables.
    pub ports: [u16; 7],
    /// `self-signed`, `acme` or `files`.
    pub cert: String,
    pub acme_email: Option<String>,
    pub acme_directory: Option<String>,
    pub acme_challenge: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub force: bool,
}

pub const PORT_NAMES: [&str; 7] = [
    "SMTP (inbound mail)",
    "submission (STARTTLS)",
    "submissions (implicit TLS)",
    "IMAP",
    "IMAPS",
    "HTTP (API, ACME http-01)",
    "HTTPS (API, MCP, did:web)",
];

fn cert_mode(
    mode: &str,
    acme_email: String,
    directory: String,
    challenge: String,
    files: Option<(PathBuf, PathBuf)>,
) -> Result<CertMode, String> {
    match mode {
        "self-signed" => Ok(CertMode::SelfSigned),
        "acme" => {
            if !matches!(challenge.as_str(), "http-01" | "tls-alpn-01") {
                return Err(format!(
                    "challenge \"{challenge}\": use http-01 or tls-alpn-01"
                ));
            }
            Ok(CertMode::Acme {
                email: acme_email,
                directory,
                challenge,
            })
        }
        "files" => match files {
            Some((cert, key)) => Ok(CertMode::Files { cert, key }),
            None => Err("--cert files needs --tls-cert and --tls-key".into()),
        },
        other => Err(format!(
            "certificate mode \"{other}\": use self-signed, acme or files"
        )),
    }
}

impl InitFlags {
    /// The plan from flags alone (no terminal): the domain is required, the rest defaults.
    pub fn plan(&self) -> Result<InitPlan, InitError> {
        let domain = self.domain.clone().ok_or_else(|| {
            InitError::Invalid("--domain is required when stdin is not a terminal".into())
        })?;
        let domain =
            crate::identity::address::normalize_domain(&domain).map_err(InitError::Invalid)?;
        let admin_email = self
            .admin_email
            .clone()
            .unwrap_or_else(|| format!("admin@{domain}"));
        let files = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            _ => None,
        };
        let cert = cert_mode(
            &self.cert,
            self.acme_email
                .clone()
                .unwrap_or_else(|| admin_email.clone()),
            self.acme_directory
                .clone()
                .unwrap_or_else(|| LETS_ENCRYPT.into()),
            self.acme_challenge.clone(),
            files,
        )
        .map_err(InitError::Invalid)?;
        Ok(InitPlan {
            hostname: self
                .hostname
                .clone()
                .unwrap_or_else(|| format!("mx.{domain}")),
            domain,
            data: self.data.clone(),
            admin_email,
            listen: Listeners::with_ports(&self.bind, self.ports),
            cert,
            force: self.force,
        })
    }
}

/// Reads answers from `input`, writing questions to `out`.
pub struct Prompter<'a, R, W> {
    input: &'a mut R,
    out: &'a mut W,
}

impl<'a, R: BufRead, W: Write> Prompter<'a, R, W> {
    pub fn new(input: &'a mut R, out: &'a mut W) -> Self {
        Self { input, out }
    }

    fn say(&mut self, text: &str) -> Result<(), InitError> {
        writeln!(self.out, "{text}").map_err(|e| InitError::Invalid(e.to_string()))
    }

    /// One answer; Enter takes `default`; end of input is an error (never a silent default
    /// for a question that has none).
    fn line(&mut self, question: &str, default: Option<&str>) -> Result<String, InitError> {
        loop {
            match default {
                Some(d) if !d.is_empty() => write!(self.out, "{question} [{d}]: "),
                _ => write!(self.out, "{question}: "),
            }
            .and_then(|_| self.out.flush())
            .map_err(|e| InitError::Invalid(e.to_string()))?;
            let mut s = String::new();
            let n = self
                .input
                .read_line(&mut s)
                .map_err(|e| InitError::Invalid(e.to_string()))?;
            if n == 0 {
                return Err(InitError::Invalid(
                    "input ended before init was complete".into(),
                ));
            }
            let s = s.trim();
            if !s.is_empty() {
                return Ok(s.to_string());
            }
            if let Some(d) = default {
                return Ok(d.to_string());
            }
            self.say("  an answer is needed")?;
        }
    }

    /// Asks until `check` accepts the answer.
    fn valid<T>(
        &mut self,
        question: &str,
        default: Option<&str>,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, InitError> {
        loop {
            let a = self.line(question, default)?;
            match check(&a) {
                Ok(v) => return Ok(v),
                Err(why) => self.say(&format!("  {why}"))?,
            }
        }
    }

    fn yes(&mut self, question: &str, default: bool) -> Result<bool, InitError> {
        let hint = if default { "Y/n" } else { "y/N" };
        self.valid(question, Some(hint), |a| {
            match a.to_ascii_lowercase().as_str() {
                "y" | "yes" => Ok(true),
                "n" | "no" => Ok(false),
                _ if a == hint => Ok(default),
                _ => Err("answer y or n".into()),
            }
        })
    }

    /// The whole interview, defaults from `f`.
    pub fn ask(&mut self, f: &InitFlags) -> Result<InitPlan, InitError> {
        self.say("legate init: answer each question, or press Enter for the value in brackets.")?;
        let domain = self.valid(
            "Agent mail domain (agents get local@domain)",
            f.domain.as_deref(),
            crate::identity::address::normalize_domain,
        )?;
        let host_default = f.hostname.clone().unwrap_or_else(|| format!("mx.{domain}"));
        let hostname = self.valid(
            "This host's name (MX target, EHLO)",
            Some(&host_default),
            crate::identity::address::normalize_domain,
        )?;
        let data = PathBuf::from(self.line("Data directory", Some(&f.data.display().to_string()))?);
        // Say so now, not after every other question.
        if !f.force && data.join("config.toml").exists() {
            return Err(InitError::Exists(data.join("config.toml")));
        }
        let mail_default = f
            .admin_email
            .clone()
            .unwrap_or_else(|| format!("admin@{domain}"));
        let admin_email = self.valid("First admin's email", Some(&mail_default), |a| {
            if a.contains('@') {
                Ok(a.to_string())
            } else {
                Err("an email address, please".into())
            }
        })?;
        let bind = self.valid("Listen address", Some(&f.bind), |a| {
            a.parse::<std::net::IpAddr>()
                .map(|_| a.to_string())
                .map_err(|_| "an IP address such as 0.0.0.0 or 127.0.0.1".into())
        })?;
        let listed: Vec<String> = f.ports.iter().map(|p| p.to_string()).collect();
        let ports = if self.yes(
            &format!("Ports {} (0 = off); keep them?", listed.join("/")),
            true,
        )? {
            f.ports
        } else {
            let mut ports = f.ports;
            for (i, name) in PORT_NAMES.iter().enumerate() {
                ports[i] = self.valid(
                    &format!("  {name} port"),
                    Some(&f.ports[i].to_string()),
                    |a| a.parse::<u16>().map_err(|_| "a port number 0-65535".into()),
                )?;
            }
            ports
        };
        let mode = self.valid(
            "Certificate: self-signed, acme or files",
            Some(&f.cert),
            |a| match a {
                "self-signed" | "acme" | "files" => Ok(a.to_string()),
                _ => Err("one of self-signed, acme, files".into()),
            },
        )?;
        let cert = match mode.as_str() {
            "acme" => {
                let email = self.line(
                    "ACME contact email",
                    Some(f.acme_email.as_deref().unwrap_or(&admin_email)),
                )?;
                let directory = self.valid(
                    "ACME directory URL",
                    Some(f.acme_directory.as_deref().unwrap_or(LETS_ENCRYPT)),
                    |a| {
                        if a.starts_with("https://") {
                            Ok(a.to_string())
                        } else {
                            Err("an https:// URL".into())
                        }
                    },
                )?;
                let challenge = self.valid(
                    "ACME challenge: http-01 (port 80) or tls-alpn-01 (port 443)",
                    Some(&f.acme_challenge),
                    |a| match a {
                        "http-01" | "tls-alpn-01" => Ok(a.to_string()),
                        _ => Err("http-01 or tls-alpn-01".into()),
                    },
                )?;
                CertMode::Acme {
                    email,
                    directory,
                    challenge,
                }
            }
            "files" => {
                let exists = |a: &str| {
                    let p = PathBuf::from(a);
                    if p.is_file() {
                        Ok(p)
                    } else {
                        Err(format!("no file at {a}"))
                    }
                };
                let cert = self.valid(
                    "Certificate chain (PEM)",
                    f.tls_cert
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .as_deref(),
                    exists,
                )?;
                let key = self.valid(
                    "Private key (PEM)",
                    f.tls_key
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .as_deref(),
                    exists,
                )?;
                CertMode::Files { cert, key }
            }
            _ => CertMode::SelfSigned,
        };
        let plan = InitPlan {
            domain,
            hostname,
            data,
            admin_email,
            listen: Listeners::with_ports(&bind, ports),
            cert,
            force: f.force,
        };
        if !self.yes(
            &format!("Write the configuration into {}?", plan.data.display()),
            true,
        )? {
            return Err(InitError::Invalid("cancelled; nothing was written".into()));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> InitFlags {
        InitFlags {
            data: PathBuf::from("./data"),
            bind: "0.0.0.0".into(),
            ports: [25, 587, 465, 143, 993, 80, 443],
            cert: "self-signed".into(),
            acme_challenge: "http-01".into(),
            ..Default::default()
        }
    }

    fn run(f: &InitFlags, answers: &str) -> (Result<InitPlan, InitError>, String) {
        let mut input = answers.as_bytes();
        let mut out = Vec::new();
        let r = Prompter::new(&mut input, &mut out).ask(f);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn enter_everywhere_takes_the_defaults() {
        let (plan, out) = run(&flags(), "agents.acme.test\n\n\n\n\n\n\n\n");
        let plan = plan.unwrap();
        assert_eq!(plan.hostname, "mx.agents.acme.test");
        assert_eq!(plan.admin_email, "admin@agents.acme.test");
        assert_eq!(plan.listen, Listeners::standard("0.0.0.0"));
        assert_eq!(plan.cert, CertMode::SelfSigned);
        assert!(out.contains("This host's name (MX target, EHLO) [mx.agents.acme.test]: "));
    }

    #[test]
    fn bad_answers_are_asked_again_and_acme_is_configured() {
        let answers = "not a domain!\nA.Test\nmx.a.test\n/srv/legate\nops@a.test\nloopback\n127.0.0.1\nn\n\
                       2525\n2587\n0\n2143\n0\n8080\n8443\nacme\n\nhttp://ca\nhttps://ca.test/dir\ndns-01\ntls-alpn-01\ny\n";
        let (plan, out) = run(&flags(), answers);
        let plan = plan.unwrap();
        assert_eq!(plan.domain, "a.test");
        assert_eq!(plan.data, PathBuf::from("/srv/legate"));
        assert_eq!(plan.listen.smtp, "127.0.0.1:2525");
        assert_eq!(plan.listen.submissions, "");
        assert_eq!(plan.listen.https, "127.0.0.1:8443");
        assert_eq!(
            plan.cert,
            CertMode::Acme {
                email: "ops@a.test".into(),
                directory: "https://ca.test/dir".into(),
                challenge: "tls-alpn-01".into()
            }
        );
        assert!(out.contains("an IP address"));
        assert!(out.contains("an https:// URL"));
        assert!(out.contains("http-01 or tls-alpn-01"));
    }

    #[test]
    fn end_of_input_and_no_are_errors() {
        assert!(run(&flags(), "a.test\n").0.is_err());
        let (r, _) = run(&flags(), "a.test\n\n\n\n\n\n\nn\n");
        assert!(r.unwrap_err().to_string().contains("cancelled"));
    }

    #[test]
    fn an_initialised_directory_stops_the_interview_early() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        let mut f = flags();
        f.data = dir.path().to_path_buf();
        let (r, _) = run(&f, "a.test\n\n\n");
        assert!(matches!(r, Err(InitError::Exists(_))));
        f.force = true;
        let (r, out) = run(&f, "a.test\n\n\n");
        assert!(r.is_err(), "input ends, but only after the next question");
        assert!(out.contains("First admin's email"));
    }

    #[test]
    fn flags_alone_need_a_domain() {
        assert!(flags().plan().is_err());
        let mut f = flags();
        f.domain = Some("B.test".into());
        f.cert = "files".into();
        assert!(f.plan().is_err(), "files without paths");
        f.cert = "acme".into();
        let p = f.plan().unwrap();
        assert_eq!(p.hostname, "mx.b.test");
        assert!(
            matches!(p.cert, CertMode::Acme { ref directory, .. } if directory == LETS_ENCRYPT)
        );
    }
}
