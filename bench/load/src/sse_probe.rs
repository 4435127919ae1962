//! The SSE client of bench/events.sh: follows `/v1/events` and writes, per event, how long
//! after its `created_at` it arrived (ms, one number per line). Compiled, like webhook-sink:
//! the Python client it replaces spent a good part of a core parsing every event's JSON on
//! the same two cores as legate, and so counted as webhook cost.
//! Usage: sse-probe BASE_URL API_KEY OUT_FILE   (BASE_URL = http://127.0.0.1:PORT)
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

#[path = "lag.rs"]
mod lag;
use lag::{created_at_ms, now_ms};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(key), Some(out)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: sse-probe BASE_URL API_KEY OUT_FILE");
        std::process::exit(2);
    };
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut sock = TcpStream::connect(host)?;
    sock.set_nodelay(true)?;
    write!(
        sock,
        "GET /v1/events?types=message.received HTTP/1.1\r\nHost: {host}\r\n\
         Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?;
    let mut r = BufReader::with_capacity(1 << 16, sock);
    let mut line = String::new();
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let l = line.to_ascii_lowercase();
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
        if line == "\r\n" {
            break;
        }
    }
    // The stream's bytes (chunk framing removed), cut into lines as they complete.
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if chunked {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let size = line.trim().split(';').next().unwrap_or("");
            let Ok(n) = usize::from_str_radix(size, 16) else {
                continue;
            };
            if n == 0 {
                return Ok(());
            }
            let start = pending.len();
            pending.resize(start + n, 0);
            r.read_exact(&mut pending[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        } else {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
        }
        let mut used = 0;
        while let Some(nl) = pending[used..].iter().position(|&b| b == b'\n') {
            let l = &pending[used..used + nl];
            if l.starts_with(b"data:") {
                if let Some(t) = created_at_ms(l) {
                    writeln!(out, "{:.1}", now_ms() - t)?;
                }
            }
            used += nl + 1;
        }
        pending.drain(..used);
    }
}
