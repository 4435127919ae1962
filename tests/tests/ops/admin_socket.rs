//! Every admin subcommand runs against a running server (over `<data>/admin.sock`) and
//! against a stopped one (the store opened directly), with the same output and exit codes.

use legate_tests::{cli, cli_init, TestServer};
use serde_json::{json, Value};
use std::process::Output;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).expect("JSON output")
}

/// The read-only commands whose output must not depend on the path taken.
const READS: &[&[&str]] = &[
    &["agent", "list"],
    &["agent", "list", "--json"],
    &["agent", "show", "ops@sock.test"],
    &["key", "list", "ops@sock.test"],
    &["org", "list"],
    &["org", "list", "--json"],
    &["admin", "token", "list"],
    &["audit", "list", "--action", "agent.create", "--json"],
    &["audit", "tail", "-n", "5", "--action", "key.create"],
    &["queue", "list"],
    &["dns", "plan"],
    &["dns", "plan", "--format", "json"],
    &["dkim", "records", "--json"],
];

/// Runs the mutating commands once; every one must succeed on whichever path is live.
fn mutate(cfg: &str, tag: &str) {
    let v = json_of(&cli(
        cfg,
        &[
            "agent",
            "create",
            &format!("a{tag}"),
            "--scopes",
            "mail:read,mail:send",
        ],
    ));
    assert_eq!(v["address"], format!("a{tag}@sock.test"));
    let sub = json_of(&cli(
        cfg,
        &[
            "agent",
            "create-sub",
            &format!("a{tag}@sock.test"),
            &format!("s{tag}"),
            "--scopes",
            "mail:read",
        ],
    ));
    assert_eq!(sub["parent"], v["id"], "{sub}");
    let k = json_of(&cli(
        cfg,
        &[
            "key",
            "create",
            &format!("a{tag}@sock.test"),
            "--scopes",
            "mail:read",
        ],
    ));
    assert!(k["key"].as_str().unwrap().starts_with("lg_"));
    let out = ok(&cli(
        cfg,
        &[
            "key",
            "revoke",
            &format!("a{tag}@sock.test"),
            k["id"].as_str().unwrap(),
        ],
    ));
    assert!(out.starts_with("revoked key "), "{out}");
    let org = json_of(&cli(
        cfg,
        &[
            "org",
            "create",
            &format!("o{tag}"),
            &format!("o{tag}.sock.test"),
        ],
    ));
    assert_eq!(org["domain"], format!("o{tag}.sock.test"));
    let t = json_of(&cli(
        cfg,
        &["admin", "token", "create", "--name", &format!("t{tag}")],
    ));
    assert!(t["key"].as_str().unwrap().starts_with("lg_"));
    let out = ok(&cli(
        cfg,
        &["admin", "token", "revoke", t["id"].as_str().unwrap()],
    ));
    assert!(out.starts_with("revoked admin token"), "{out}");
    let rk = json_of(&cli(
        cfg,
        &["agent", "rotate-key", &format!("a{tag}@sock.test")],
    ));
    assert!(rk["kid"].as_str().unwrap().contains('#'), "{rk}");
    let keys = json_of(&cli(cfg, &["dkim", "rotate", "--json"]));
    assert!(keys.as_array().unwrap().len() >= 4, "{keys}");
    let out = ok(&cli(
        cfg,
        &["agent", "revoke", &format!("s{tag}@sock.test")],
    ));
    assert!(out.contains(&format!("s{tag}@sock.test")), "{out}");
    let out = ok(&cli(cfg, &["audit", "verify"]));
    assert!(out.contains("audit chain ok"), "{out}");
    let v = json_of(&cli(cfg, &["audit", "verify", "--json"]));
    assert_eq!(v["ok"], true);
    let q = json_of(&cli(cfg, &["queue", "list"]));
    assert!(q["items"].is_array(), "{q}");
    // The suppression list (issue 24 item 4): add, see, remove.
    let gone = format!("gone{tag}@remote.test");
    let e = json_of(&cli(
        cfg,
        &["suppressions", "add", &gone, "--reason", "mailbox closed"],
    ));
    assert_eq!(e["address"], gone.as_str(), "{e}");
    assert_eq!(e["reason"], "mailbox closed", "{e}");
    let l = json_of(&cli(cfg, &["suppressions", "list"]));
    assert!(
        l["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["address"] == gone.as_str())),
        "{l}"
    );
    ok(&cli(cfg, &["suppressions", "remove", &gone]));
    assert_eq!(
        cli(cfg, &["suppressions", "remove", &gone]).status.code(),
        Some(3)
    );
    // Refusals: exit 3, the reason on stderr.
    for (args, says) in [
        (&["agent", "show", "nobody@sock.test"][..], "not found"),
        (
            &["key", "create", "ops@sock.test", "--scopes", "vault:write"][..],
            "scope",
        ),
        (&["queue", "show", "nope"][..], "not found"),
        (&["org", "create", "dup", "sock.test"][..], ""),
    ] {
        let o = cli(cfg, args);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}"
        );
    }
    // A usage error stays clap's 2.
    assert_eq!(cli(cfg, &["agent", "frobnicate"]).status.code(), Some(2));
}

fn snapshot(cfg: &str) -> Vec<(String, String, Option<i32>)> {
    READS
        .iter()
        .map(|args| {
            let o = cli(cfg, args);
            (
                args.join(" "),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                o.status.code(),
            )
        })
        .collect()
}

/// The config `init` wrote, with loopback-only listeners for the in-process server (init's
/// mail ports are the real ones) and DNS that never leaves the machine.
pub(crate) fn served_config(path: &str) -> legate::config::Config {
    let mut cfg = legate::config::load_file(std::path::Path::new(path)).unwrap();
    let l = &mut cfg.listen;
    l.http = "127.0.0.1:0".into();
    for p in [
        &mut l.https,
        &mut l.smtp,
        &mut l.submission,
        &mut l.submissions,
        &mut l.imap,
        &mut l.imaps,
    ] {
        p.clear();
    }
    cfg.dns.nameservers = vec!["127.0.0.1:9".into()];
    cfg.dns.timeout_secs = 1;
    cfg
}

// Multi-threaded: the CLI runs as a blocking child process while the in-process server
// answers it on another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_command_runs_against_a_running_and_a_stopped_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let init = cli_init(&data, "sock.test");
    // One config for the server and the CLI, so both derive the same did:web host.
    let mut cfg = served_config(init["config"].as_str().unwrap());
    cfg.server.public_url = "https://sock.test".into();
    let cfg_path = dir.path().join("served.toml").display().to_string();
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    json_of(&cli(
        &cfg_path,
        &["agent", "create", "ops", "--scopes", "mail:read,mail:send"],
    ));

    // Running: the store is locked, so only the socket can answer.
    let holder = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(holder, cfg.clone()).await;
    let sock = data.join("admin.sock");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let md = std::fs::metadata(&sock).expect("admin.sock exists while serving");
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    mutate(&cfg_path, "1");
    let online = snapshot(&cfg_path);
    // The server's own audit trail names the CLI operator for what the socket did.
    let rows = server
        .services()
        .audit
        .query(
            &legate::audit::Filter {
                action: Some("agent.create".into()),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert!(rows
        .items
        .iter()
        .any(|e| e.target.contains("a1@sock.test")
            || e.to_json().to_string().contains("a1@sock.test")));
    server.stop().await;
    assert!(!sock.exists(), "the socket is removed at shutdown");

    // Stopped: the same reads print the same bytes.
    let offline = snapshot(&cfg_path);
    for (a, b) in online.iter().zip(&offline) {
        assert_eq!(
            a, b,
            "output differs between the running and the stopped server"
        );
    }
    assert!(online.iter().all(|(_, _, c)| *c == Some(0)), "{online:?}");
    mutate(&cfg_path, "2");
    // A socket file left by a crashed server does not stop the CLI opening the store.
    let stale = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    drop(stale);
    ok(&cli(&cfg_path, &["agent", "show", "a2@sock.test"]));
}

/// The wire protocol itself: one JSON line each way, errors named, limits enforced.
#[tokio::test]
async fn the_socket_protocol_names_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.admin.max_request_bytes = 4096;
    let holder = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(holder, cfg).await;
    let s = tokio::net::UnixStream::connect(dir.path().join("admin.sock"))
        .await
        .unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut ask = async |line: &[u8]| -> Value {
        w.write_all(line).await.unwrap();
        let mut out = String::new();
        r.read_line(&mut out).await.unwrap();
        serde_json::from_str(&out).unwrap()
    };
    let v = ask(b"{\"op\":\"ping\"}\n").await;
    assert_eq!(v["ok"], true);
    assert_eq!(v["result"]["schema_version"], legate::store::SCHEMA_VERSION);
    let v = ask(b"not json\n").await;
    assert_eq!(v["error"]["code"], "protocol_error", "{v}");
    let v = ask(b"{\"op\":\"nope\"}\n").await;
    assert_eq!(v["error"]["code"], "unknown_op");
    let v = ask(b"{\"op\":\"agent.create\",\"args\":{\"local\":\"x\",\"colour\":1}}\n").await;
    assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("colour"));
    let v = ask(&json!({"op": "agent.create", "args": {"local": "wire"}})
        .to_string()
        .into_bytes()
        .into_iter()
        .chain(*b"\n")
        .collect::<Vec<u8>>())
    .await;
    assert_eq!(v["result"]["address"], "wire@agents.test", "{v}");
    let mut long = vec![b'x'; 5000];
    long.push(b'\n');
    let v = ask(&long).await;
    assert_eq!(v["error"]["code"], "invalid_request");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_request_bytes"));
    server.stop().await;
}

/// `vault rotate-master` against a running server: every key is re-wrapped, the server goes
/// on with the new key at once (old and new secrets open, new ones seal under it), the audit
/// head checkpoint is re-signed (no mismatch at the next start), and only the new key opens
/// the data afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_rotate_master_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    std::fs::create_dir_all(&data).unwrap();
    let (k1, k2) = (dir.path().join("k1"), dir.path().join("k2"));
    legate::vault::create_key_file(&k1).unwrap();
    let mut cfg = legate_tests::test_config(&data);
    cfg.vault.master_key_file = k1.display().to_string();
    let cfg_path = dir.path().join("c.toml").display().to_string();
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();

    let s = TestServer::start_with(tempfile::tempdir().unwrap(), cfg.clone()).await;
    let (_, before) = s.agent("rot1", &["vault:read", "vault:write"]).await;
    let put = |pw: &str| json!({"kind": "login", "password": pw});
    assert_eq!(
        s.call("PUT", "/v1/vault/site", Some(&before), Some(put("pw-1")))
            .await
            .0,
        201
    );

    let v = json_of(&cli(
        &cfg_path,
        &[
            "--json",
            "vault",
            "rotate-master",
            "--new-key-file",
            k2.to_str().unwrap(),
        ],
    ));
    assert_eq!(v["created"], true, "{v}");
    assert!(v["agent_keys"].as_u64().unwrap() >= 1, "{v}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&k2).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The same key again is refused (exit 3).
    let again = cli(
        &cfg_path,
        &[
            "vault",
            "rotate-master",
            "--new-key-file",
            k2.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(3), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("current key"));

    // The running server goes on: the old secret opens, a new agent's keys seal under k2.
    let (st, got) = s.call("GET", "/v1/vault/site", Some(&before), None).await;
    assert_eq!((st, got["password"].as_str()), (200, Some("pw-1")));
    let (_, after) = s.agent("rot2", &["vault:read", "vault:write"]).await;
    assert_eq!(
        s.call("PUT", "/v1/vault/site", Some(&after), Some(put("pw-2")))
            .await
            .0,
        201
    );
    let rows = s
        .services()
        .audit
        .query(
            &legate::audit::Filter {
                action: Some("vault.rotate_master".into()),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(rows.items.len(), 1, "the rotation is audited once");
    s.stop().await;

    // Only the new key opens the data now.
    let err = legate::app::start(cfg.clone(), Default::default())
        .await
        .err()
        .expect("the old key must not open the vault");
    assert!(format!("{err:#}").contains("does not open this vault"));
    let mut new = cfg.clone();
    new.vault.master_key_file = k2.display().to_string();
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), new).await;
    for (key, pw) in [(&before, "pw-1"), (&after, "pw-2")] {
        let (st, got) = s.call("GET", "/v1/vault/site", Some(key), None).await;
        assert_eq!((st, got["password"].as_str()), (200, Some(pw)));
    }
    // The checkpoint was re-signed under the new key: the start found nothing to report.
    let report = s.services().audit.verify().unwrap();
    assert_eq!(report.first_broken, None, "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    s.stop().await;
}
