//! The webhook endpoint of bench/events.sh: a fast HTTP/1.1 keep-alive receiver that answers
//! every POST with 204 and writes, per request, how long after the event's `created_at` it
//! arrived (ms, one number per line). Compiled, so the receiver's own CPU (on the same two
//! cores) weighs on legate as little as a production endpoint's would.
//! Usage: webhook-sink OUT_FILE PORT_FILE
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (out, port_file) = match (args.get(1), args.get(2)) {
        (Some(o), Some(p)) => (o.clone(), p.clone()),
        _ => {
            eprintln!("usage: webhook-sink OUT_FILE PORT_FILE");
            std::process::exit(2);
        }
    };
    let out = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)?,
    ));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    std::fs::write(port_file, l.local_addr()?.port().to_string())?;
    loop {
        let (sock, _) = l.accept().await?;
        let out = out.clone();
        tokio::spawn(async move {
            let _ = serve(sock, out).await;
        });
    }
}

async fn serve(sock: tokio::net::TcpStream, out: Arc<Mutex<std::fs::File>>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    loop {
        let mut len = 0usize;
        let mut first = true;
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" && !first {
                break;
            }
            first = false;
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len.min(64 << 20)];
        r.read_exact(&mut body).await?;
        if let Some(lag) = created_at_ms(&body).map(|t| now_ms() - t) {
            let mut f = out.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{lag:.1}");
        }
        w.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .await?;
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// `"created_at":"2026-12-06T14:48:09.123Z"` (any number of fraction digits, or none) as
/// Unix milliseconds.
fn created_at_ms(body: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(body).ok()?;
    let i = s.find("\"created_at\":\"")? + 14;
    let t = s.get(i..)?;
    let t = &t[..t.find('"')?];
    let num = |a: usize, b: usize| t.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let frac = t
        .get(19..)?
        .strip_prefix('.')
        .map(|f| f.trim_end_matches('Z'))
        .filter(|f| !f.is_empty())
        .map(|f| format!("0.{f}").parse::<f64>().unwrap_or(0.0))
        .unwrap_or(0.0);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + h) * 60 + mi) * 60 + sec) as f64 * 1000.0 + (frac * 1000.0).round())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_created_at() {
        let b = br#"{"id":"evt_1","created_at":"1970-01-02T00:00:01.500Z"}"#;
        assert_eq!(super::created_at_ms(b), Some(86_401_500.0));
        let b = br#"{"created_at":"2026-12-06T14:48:09.123Z"}"#;
        assert_eq!(super::created_at_ms(b), Some(1_796_568_489_123.0));
        let b = br#"{"created_at":"2026-12-06T14:48:09Z"}"#;
        assert_eq!(super::created_at_ms(b), Some(1_796_568_489_000.0));
        let b = br#"{"created_at":"2026-12-06T14:48:09.12Z"}"#;
        assert_eq!(super::created_at_ms(b), Some(1_796_568_489_120.0));
    }
}
