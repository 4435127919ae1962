//! Phase (a) of bench/imap.sh: FETCH 1:* of every header, or every whole message, timed, over
//! plain IMAP. Compiled, as smtp-source is for SMTP: the Python client spent more time
//! reading 5,000 literals than either server spent sending them, so both servers measured
//! the client. Same output as `imap_load.py fetch`: `WHAT COUNT SECONDS RATE`, the median of
//! three runs after a warm-up `FETCH 1:* (UID FLAGS)`.
//! Usage: imap-fetch HOST PORT USER PASS headers|bodies
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    /// Where unread bytes start in `buf`.
    at: usize,
    n: u32,
    chunk: Vec<u8>,
}

impl Client {
    fn connect(addr: &str) -> io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let mut c = Client {
            s,
            buf: Vec::with_capacity(1 << 20),
            at: 0,
            n: 0,
            chunk: vec![0u8; 256 << 10],
        };
        c.line()?; // greeting
        Ok(c)
    }

    /// Appends what the server sent next.
    fn read_more(&mut self) -> io::Result<()> {
        let got = self.s.read(&mut self.chunk)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        self.buf.extend_from_slice(&self.chunk[..got]);
        Ok(())
    }

    /// Reads one response line with its literals; returns whether it is the tagged
    /// completion of command `tag` (and fails on a tagged NO or BAD).
    fn line_is_done(&mut self, tag: &[u8]) -> io::Result<bool> {
        // Bytes already read are dropped between lines, never inside one.
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at > (1 << 20) {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        let start = self.at;
        let mut from = start;
        loop {
            let Some(i) = find_crlf(&self.buf[from..]).map(|i| from + i) else {
                self.read_more()?;
                continue;
            };
            if let Some(n) = literal_len(&self.buf[from..i]) {
                let end = i + 2 + n;
                while self.buf.len() < end {
                    self.read_more()?;
                }
                from = end;
                continue;
            }
            let line = &self.buf[start..i];
            let done = line.starts_with(tag) && line.get(tag.len()) == Some(&b' ');
            if done && !line[tag.len() + 1..].starts_with(b"OK") {
                return Err(io::Error::other(String::from_utf8_lossy(line).into_owned()));
            }
            self.at = i + 2;
            return Ok(done);
        }
    }

    fn line(&mut self) -> io::Result<()> {
        self.line_is_done(b"*").map(|_| ())
    }

    /// Runs a command; returns the number of untagged lines.
    fn cmd(&mut self, text: &str) -> io::Result<usize> {
        self.n += 1;
        let tag = format!("t{}", self.n);
        self.s.write_all(format!("{tag} {text}\r\n").as_bytes())?;
        let mut untagged = 0;
        while !self.line_is_done(tag.as_bytes())? {
            untagged += 1;
        }
        Ok(untagged)
    }
}

/// Where the first CRLF starts.
fn find_crlf(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = b[from..].iter().position(|&c| c == b'\n') {
        let at = from + p;
        if at > 0 && b[at - 1] == b'\r' {
            return Some(at - 1);
        }
        from = at + 1;
    }
    None
}

/// `n` when a line (up to its CRLF) ends in a literal `{n}` or `{n+}`.
fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let body = body.strip_suffix(b"+").unwrap_or(body);
    let open = body.iter().rposition(|&c| c == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

fn main() -> io::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 6 || !matches!(a[5].as_str(), "headers" | "bodies") {
        eprintln!("usage: imap-fetch HOST PORT USER PASS headers|bodies");
        std::process::exit(2);
    }
    let mut c = Client::connect(&format!("{}:{}", a[1], a[2]))?;
    c.cmd(&format!("LOGIN \"{}\" \"{}\"", a[3], a[4]))?;
    c.cmd("SELECT INBOX")?;
    c.cmd("FETCH 1:* (UID FLAGS)")?;
    let item = if a[5] == "headers" {
        "BODY.PEEK[HEADER]"
    } else {
        "BODY.PEEK[]"
    };
    let mut runs = Vec::new();
    let mut got = 0;
    for _ in 0..3 {
        let t = Instant::now();
        got = c.cmd(&format!("FETCH 1:* ({item})"))?;
        runs.push(t.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    let best = runs[1];
    println!("{} {got} {best:.3} {:.0}", a[5], got as f64 / best);
    c.cmd("LOGOUT").ok();
    Ok(())
}
