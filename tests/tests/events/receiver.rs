//! A loopback HTTP endpoint for webhook deliveries: records every request and answers with
//! the status the test sets (or a redirect), one request per connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Hit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

pub struct Receiver {
    pub port: u16,
    pub hits: mpsc::UnboundedReceiver<Hit>,
    /// What the next requests are answered with: a status, or `Location` for a 302.
    pub answer: Arc<Mutex<Answer>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    Redirect(String),
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::on(0).await
    }

    /// On a given port (0: any), e.g. to come back on the port a webhook names.
    pub async fn on(port: u16) -> Receiver {
        let l = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = l.local_addr().unwrap().port();
        let (tx, hits) = mpsc::unbounded_channel();
        let answer = Arc::new(Mutex::new(Answer::Status(200)));
        let a = answer.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    break;
                };
                let tx = tx.clone();
                let a = a.clone();
                tokio::spawn(async move {
                    let Some(hit) = read_request(&mut s).await else {
                        return;
                    };
                    let answer = a.lock().unwrap().clone();
                    let _ = tx.send(hit);
                    let resp = match answer {
                        Answer::Status(c) => format!(
                            "HTTP/1.1 {c} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        ),
                        Answer::Redirect(to) => format!(
                            "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        ),
                    };
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Receiver {
            port,
            hits,
            answer,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    /// The next request, within `secs`.
    pub async fn next(&mut self, secs: u64) -> Option<Hit> {
        tokio::time::timeout(std::time::Duration::from_secs(secs), self.hits.recv())
            .await
            .ok()
            .flatten()
    }

    /// Stops listening (the port refuses connections until a receiver binds it again).
    pub fn stop(self) -> u16 {
        self.task.abort();
        self.port
    }
}

async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Hit> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let mut headers = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Hit {
        path,
        headers,
        body: buf[head_end..].to_vec(),
    })
}
