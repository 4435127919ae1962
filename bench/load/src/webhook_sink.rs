//! The webhook endpoint of bench/events.sh: a fast HTTP/1.1 keep-alive receiver that answers
//! every POST with 204 and writes, per request, how long after the event's `created_at` it
//! arrived (ms, one number per line). Compiled, so the receiver's own CPU (on the same two
//! cores) weighs on legate as little as a production endpoint's would.
//! Usage: webhook-sink OUT_FILE PORT_FILE
use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[path = "lag.rs"]
mod lag;
use lag::{created_at_ms, now_ms};

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
