//! `legate backup` while the server takes 2,000 inbound messages, then `legate restore`:
//! everything acknowledged before the backup began is served by the restored server, as are
//! the agent, its key, DID, credential and TOTP codes (with the same master key).

use legate::mailauth::StaticDns;
use legate_tests::{cli, SmtpClient, TestServer};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const CONNECTIONS: usize = 4;
const PER_CONNECTION: usize = 500;

fn message(subject: &str) -> String {
    format!(
        "From: Alice <alice@sender.test>\r\nTo: ops@agents.test\r\nSubject: {subject}\r\n\
Message-ID: <{subject}@sender.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n\
Body of {subject}.\r\n"
    )
}

/// Every subject in the agent's mailbox, paging through the API.
async fn subjects(s: &TestServer, key: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/messages?limit=1000&cursor={c}"),
            None => "/v1/messages?limit=1000".into(),
        };
        let (st, page) = s.call("GET", &path, Some(key), None).await;
        assert_eq!(st, 200, "{page}");
        for m in page["items"].as_array().unwrap() {
            out.push((
                m["subject"].as_str().unwrap_or_default().to_string(),
                m["id"].as_str().unwrap().to_string(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_inbound_load_restores_everything_acknowledged() {
    let root = tempfile::tempdir().unwrap();
    let key_file = root.path().join("master.key");
    legate::vault::create_key_file(&key_file).unwrap();
    let dns = StaticDns::new();
    dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    let dns_server = Arc::new(legate_testdns::TestDns::start(dns).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.smtp = "127.0.0.1:0".into();
    cfg.dns.nameservers = vec![dns_server.addr().to_string()];
    cfg.vault.master_key_file = key_file.display().to_string();
    // The restored server listens elsewhere; its DIDs must not change with the port.
    cfg.server.public_url = "https://agents.test".into();
    let cfg_file = root.path().join("legate.toml");
    std::fs::write(&cfg_file, toml::to_string(&cfg).unwrap()).unwrap();
    let cfg_file = cfg_file.display().to_string();
    let s = TestServer::start_with(dir, cfg.clone()).await;

    let (agent, key) = s
        .agent(
            "ops",
            &["mail:read", "vault:read", "vault:write", "identity:sign"],
        )
        .await;
    let cred = json!({"kind": "login", "username": "ops", "password": "hunter2",
        "totp": {"secret": "JBSWY3DPEHPK3PXP", "algorithm": "SHA1", "digits": 6, "period": 30}});
    let (st, _) = s
        .call("PUT", "/v1/vault/site", Some(&key), Some(cred))
        .await;
    assert!(st == 200 || st == 201);

    // The load: four connections, 500 messages each; each acknowledgement's time is kept.
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let addr = s.smtp_addr();
    let mut senders = Vec::new();
    for c in 0..CONNECTIONS {
        let (acked, count) = (acked.clone(), count.clone());
        senders.push(tokio::spawn(async move {
            let (mut smtp, greeting) = SmtpClient::connect(addr).await;
            assert!(greeting.starts_with("220"), "{greeting}");
            assert!(smtp.cmd("EHLO sender.test").await.starts_with("250"));
            for i in 0..PER_CONNECTION {
                let subject = format!("load-{c}-{i}");
                let r = smtp
                    .send_mail(
                        "alice@sender.test",
                        &["ops@agents.test"],
                        &message(&subject),
                    )
                    .await;
                assert!(r.starts_with("250"), "{subject}: {r}");
                acked.lock().unwrap().push((subject, Instant::now()));
                count.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    while count.load(Ordering::SeqCst) < 400 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The backup's point is after this instant: whatever was acknowledged before it is in.
    let backup_file = root.path().join("b.legate");
    let started = Instant::now();
    let out = {
        let (c, f) = (cfg_file.clone(), backup_file.display().to_string());
        tokio::task::spawn_blocking(move || cli(&c, &["backup", "--to", &f, "--json"]))
            .await
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["master_key_included"], false);
    for t in senders {
        t.await.unwrap();
    }
    let during = count.load(Ordering::SeqCst);
    let before: HashSet<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at < started)
        .map(|(s, _)| s.clone())
        .collect();
    assert!(before.len() >= 400);
    assert_eq!(during, CONNECTIONS * PER_CONNECTION);
    let in_backup = manifest["counts"]["messages"].as_u64().unwrap() as usize;
    assert!(in_backup >= before.len(), "{in_backup} < {}", before.len());
    eprintln!(
        "acknowledged before the backup: {}, in it: {in_backup}, of {during}",
        before.len()
    );
    // The root key is in no byte of the backup.
    let raw = std::fs::read(&backup_file).unwrap();
    let key_bytes = std::fs::read(&key_file).unwrap();
    assert!(!raw
        .windows(key_bytes.len().min(32))
        .any(|w| w == &key_bytes[..key_bytes.len().min(32)]));

    // Restore: refuses a non-empty directory, then verifies into an empty one.
    let busy = root.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), b"x").unwrap();
    let restore = |to: &std::path::Path| {
        let b = backup_file.display().to_string();
        let t = to.display().to_string();
        std::process::Command::new(legate_tests::legate_bin())
            .args(["restore", "--from", &b, "--data", &t])
            .output()
            .unwrap()
    };
    let o = restore(&busy);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    let target = root.path().join("restored");
    let o = restore(&target);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("master key is not in the backup"), "{text}");

    let mut cfg2 = cfg.clone();
    cfg2.storage.path = target.clone();
    cfg2.listen.smtp = String::new();
    let r = TestServer::start_with(tempfile::tempdir().unwrap(), cfg2).await;
    // The same key works, for the same agent and DID.
    let (st, who) = r.call("GET", "/v1/whoami", Some(&key), None).await;
    assert_eq!(st, 200, "{who}");
    assert_eq!(who["did"], agent["did"]);
    for path in ["/agents/ops/did.json", "/agents/ops/jwks.json"] {
        let (_, a) = s.call("GET", path, None, None).await;
        let (_, b) = r.call("GET", path, None, None).await;
        assert_eq!(a, b, "{path}");
    }
    // The credential opens (the vault is unsealed by the same master key), TOTP agrees.
    let (_, a) = s.call("GET", "/v1/vault/site", Some(&key), None).await;
    let (st, b) = r.call("GET", "/v1/vault/site", Some(&key), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(a, b);
    let at = json!({"at": 1_800_000_000u64});
    let (_, a) = s
        .call("POST", "/v1/vault/site/totp", Some(&key), Some(at.clone()))
        .await;
    let (_, b) = r
        .call("POST", "/v1/vault/site/totp", Some(&key), Some(at))
        .await;
    assert_eq!(a["code"], b["code"]);
    // Every message acknowledged before the backup is there, body and all.
    let restored = subjects(&r, &key).await;
    let have: HashSet<&str> = restored.iter().map(|(s, _)| s.as_str()).collect();
    let missing: Vec<&String> = before
        .iter()
        .filter(|s| !have.contains(s.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged before the backup are missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    assert_eq!(restored.len(), in_backup);
    let (subject, id) = restored
        .iter()
        .find(|(s, _)| before.contains(s))
        .unwrap()
        .clone();
    let a = s.get_bytes(&format!("/v1/messages/{id}/raw"), &key).await.2;
    let b = r.get_bytes(&format!("/v1/messages/{id}/raw"), &key).await.2;
    assert_eq!(a, b, "{subject}");
    let report = r.services().audit.verify().unwrap();
    assert!(report.first_broken.is_none(), "{report:?}");
    r.stop().await;
    s.stop().await;
}
