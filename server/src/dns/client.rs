//! Mail-client self-configuration documents: Thunderbird autoconfig and Outlook autodiscover,
//! rendered from `dns-templates/` with the listeners actually configured (a disabled
//! listener is never advertised). Implicit TLS comes first (RFC 8314 §5.1).

use super::template::{self, Context};
use super::DnsError;
use crate::config::Config;

const AUTOCONFIG: &str = include_str!("../../../dns-templates/autoconfig.xml");
const AUTODISCOVER: &str = include_str!("../../../dns-templates/autodiscover.xml");

/// Longest e-mail address we echo back (RFC 5321 §4.5.3.1: 64 + 1 + 255).
const MAX_ADDRESS: usize = 320;

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One offered mail service: its port and whether TLS is implicit.
struct Service {
    port: u16,
    implicit_tls: bool,
}

fn service(listen: &str, implicit_tls: bool) -> Option<Service> {
    let addr: std::net::SocketAddr = listen.parse().ok()?;
    Some(Service {
        port: addr.port(),
        implicit_tls,
    })
}

/// (incoming IMAP, outgoing submission), each implicit TLS first.
fn services(config: &Config) -> (Vec<Service>, Vec<Service>) {
    let l = &config.listen;
    let incoming = [service(&l.imaps, true), service(&l.imap, false)];
    let outgoing = [service(&l.submissions, true), service(&l.submission, false)];
    (
        incoming.into_iter().flatten().collect(),
        outgoing.into_iter().flatten().collect(),
    )
}

fn base(config: &Config) -> Context {
    let mut ctx = Context::new();
    ctx.set("domain", xml_escape(&config.server.domain)).set(
        "hostname",
        xml_escape(config.server.hostname.trim_end_matches('.')),
    );
    ctx
}

/// Thunderbird's `config-v1.1.xml`.
pub fn autoconfig_xml(config: &Config) -> Result<String, DnsError> {
    let (incoming, outgoing) = services(config);
    let item = |s: &Service| {
        let mut c = Context::new();
        c.set("port", s.port.to_string())
            .set("socket", if s.implicit_tls { "SSL" } else { "STARTTLS" });
        c
    };
    let mut ctx = base(config);
    ctx.list("incoming", incoming.iter().map(item).collect())
        .list("outgoing", outgoing.iter().map(item).collect());
    Ok(template::render("autoconfig.xml", AUTOCONFIG, &ctx)?)
}

/// The `<EMailAddress>` of an autodiscover request, if it looks like an address. The body is
/// the client's; anything odd simply yields no login name.
pub fn requested_address(body: &str) -> Option<String> {
    let start = body.find("<EMailAddress>")? + "<EMailAddress>".len();
    let len = body[start..].find("</EMailAddress>")?;
    let addr = body[start..start + len].trim();
    let ok = addr.len() <= MAX_ADDRESS
        && addr
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && crate::util::valid_domain(d))
        && !addr
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>&\"'".contains(c));
    ok.then(|| addr.to_string())
}

/// Outlook's POX autodiscover response; `login` is the address the client asked about.
pub fn autodiscover_xml(config: &Config, login: Option<&str>) -> Result<String, DnsError> {
    let (incoming, outgoing) = services(config);
    let login = login.map(xml_escape).unwrap_or_default();
    let item = |kind: &str, s: &Service| {
        let mut c = Context::new();
        c.set("type", kind)
            .set("port", s.port.to_string())
            .set("login", login.as_str())
            .set("encryption", if s.implicit_tls { "SSL" } else { "TLS" });
        c
    };
    let protocols = incoming
        .iter()
        .map(|s| item("IMAP", s))
        .chain(outgoing.iter().map(|s| item("SMTP", s)))
        .collect();
    let mut ctx = base(config);
    ctx.list("protocols", protocols);
    Ok(template::render("autodiscover.xml", AUTODISCOVER, &ctx)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut c = Config::default();
        c.server.domain = "agents.example.com".into();
        c.server.hostname = "mx.agents.example.com".into();
        c.listen.imaps = "0.0.0.0:993".into();
        c.listen.imap = String::new();
        c.listen.submissions = "0.0.0.0:465".into();
        c.listen.submission = "0.0.0.0:587".into();
        c
    }

    #[test]
    fn autoconfig_lists_enabled_listeners_implicit_tls_first() {
        let x = autoconfig_xml(&config()).unwrap();
        assert!(x.starts_with("<?xml version=\"1.0\""), "{x}");
        assert!(x.contains("<emailProvider id=\"agents.example.com\">"));
        assert_eq!(x.matches("<incomingServer type=\"imap\">").count(), 1);
        assert!(x.contains("<port>993</port>\n      <socketType>SSL</socketType>"));
        assert!(
            !x.contains("<port>143</port>"),
            "disabled IMAP is not advertised"
        );
        let ssl = x.find("<port>465</port>").unwrap();
        let starttls = x.find("<port>587</port>").unwrap();
        assert!(ssl < starttls);
        assert!(x.contains("<username>%EMAILADDRESS%</username>"));
        assert!(x.contains("<hostname>mx.agents.example.com</hostname>"));
    }

    #[test]
    fn autodiscover_echoes_a_valid_address_only() {
        let body = "<?xml version=\"1.0\"?><Autodiscover><Request>\
            <EMailAddress>ops@agents.example.com</EMailAddress></Request></Autodiscover>";
        let addr = requested_address(body);
        assert_eq!(addr.as_deref(), Some("ops@agents.example.com"));
        let x = autodiscover_xml(&config(), addr.as_deref()).unwrap();
        assert!(x.starts_with("<?xml"));
        assert_eq!(
            x.matches("<LoginName>ops@agents.example.com</LoginName>")
                .count(),
            3
        );
        assert!(x.contains("<Type>IMAP</Type>"));
        assert!(x.contains("<Port>587</Port>"));
        assert!(x.contains("<Encryption>TLS</Encryption>"));
        assert!(x.contains("<Encryption>SSL</Encryption>"));
        for bad in [
            "<EMailAddress>a<b>@x.test</EMailAddress>",
            "<EMailAddress>no-at-sign</EMailAddress>",
            "<EMailAddress>x@</EMailAddress>",
            "<EMailAddress>unterminated",
            "",
        ] {
            assert_eq!(requested_address(bad), None, "{bad}");
        }
        let anon = autodiscover_xml(&config(), None).unwrap();
        assert!(!anon.contains("<LoginName>"));
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
