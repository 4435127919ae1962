//! `smtp-load`: submits N messages of about SIZE bytes over SESSIONS parallel SMTP sessions,
//! each kept open for many messages (MAIL/RCPT/DATA in lockstep, as smtp-source does), and
//! prints the seconds the submissions took. With USER and PASSWORD every session does
//! STARTTLS and AUTH PLAIN first (submission, port 587).
//!
//! Usage: smtp-load HOST PORT N SIZE SESSIONS FROM TO [USER PASSWORD]
//!
//! A benchmark client, not a mail client: it trusts any certificate (the server under test
//! has a self-signed one) and stops at the first unexpected reply.

#![forbid(unsafe_code)]

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Args {
    addr: String,
    n: usize,
    size: usize,
    sessions: usize,
    from: String,
    to: String,
    auth: Option<(String, String)>,
}

fn args() -> Result<Args, Error> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 7 && a.len() != 9 {
        return Err("usage: smtp-load HOST PORT N SIZE SESSIONS FROM TO [USER PASSWORD]".into());
    }
    Ok(Args {
        addr: format!("{}:{}", a[0], a[1]),
        n: a[2].parse()?,
        size: a[3].parse()?,
        sessions: a[4].parse::<usize>()?.max(1),
        from: a[5].clone(),
        to: a[6].clone(),
        auth: (a.len() == 9).then(|| (a[7].clone(), a[8].clone())),
    })
}

/// Accepts any certificate: the bench talks to its own server on loopback.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn connector() -> Result<tokio_rustls::TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

struct Conn {
    s: BufReader<Box<dyn Io>>,
    line: String,
}

impl Conn {
    /// Reads one (possibly multi-line) reply and checks its code.
    async fn expect(&mut self, code: &str, what: &str) -> Result<(), Error> {
        loop {
            self.line.clear();
            if self.s.read_line(&mut self.line).await? == 0 {
                return Err(format!("{what}: connection closed").into());
            }
            if !self.line.starts_with(code) {
                return Err(format!("{what}: {}", self.line.trim_end()).into());
            }
            if self.line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }

    async fn cmd(&mut self, line: &str, code: &str) -> Result<(), Error> {
        self.s.get_mut().write_all(line.as_bytes()).await?;
        self.expect(code, line.trim_end()).await
    }
}

async fn session(a: Arc<Args>, next: Arc<AtomicUsize>, body: Arc<String>) -> Result<(), Error> {
    let tcp = TcpStream::connect(&a.addr).await?;
    tcp.set_nodelay(true)?;
    let mut c = Conn {
        s: BufReader::new(Box::new(tcp)),
        line: String::new(),
    };
    c.expect("220", "greeting").await?;
    c.cmd("EHLO load.test\r\n", "250").await?;
    if let Some((user, pass)) = &a.auth {
        c.cmd("STARTTLS\r\n", "220").await?;
        let tcp = c.s.into_inner();
        let tls = connector()?
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        c = Conn {
            s: BufReader::new(Box::new(tls)),
            line: String::new(),
        };
        c.cmd("EHLO load.test\r\n", "250").await?;
        let token = data_encoding::BASE64.encode(format!("\0{user}\0{pass}").as_bytes());
        c.cmd(&format!("AUTH PLAIN {token}\r\n"), "235").await?;
    }
    let mail = format!("MAIL FROM:<{}>\r\n", a.from);
    let rcpt = format!("RCPT TO:<{}>\r\n", a.to);
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= a.n {
            break;
        }
        c.cmd(&mail, "250").await?;
        c.cmd(&rcpt, "250").await?;
        c.cmd("DATA\r\n", "354").await?;
        let msg = format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: bench {i}\r\nMessage-ID: <bench{i}.{t0}@load.test>\r\n\r\n{body}.\r\n",
            a.from, a.to
        );
        c.s.get_mut().write_all(msg.as_bytes()).await?;
        c.expect("250", "end of data").await?;
    }
    c.cmd("QUIT\r\n", "221").await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = match args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // Lines never start with '.', so the body needs no dot-stuffing; it ends in CRLF.
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    let body: String = line.repeat(a.size / line.len() + 1);
    let cut = body[..a.size.min(body.len())]
        .rfind("\r\n")
        .map_or(0, |p| p + 2);
    let body = Arc::new(body[..cut].to_string());
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..a.sessions)
        .map(|_| tokio::spawn(session(a.clone(), next.clone(), body.clone())))
        .collect();
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("session failed: {e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("session panicked: {e}");
            }
        }
    }
    println!("{:.3}", t0.elapsed().as_secs_f64());
    if failed > 0 {
        std::process::exit(1);
    }
}
