//! Issue 23: message bodies in the blob store, the schema 2 -> 3 upgrade, `legate store
//! verify`.

use super::{id_of, plain, WITH_ATTACHMENT};
use legate::mailbox::Folder;
use legate::store::{Store, StoreOptions, Tree};
use legate_tests::{legate_bin, test_config, TestServer};
use std::path::Path;

/// The decoded first attachment of message `id`.
async fn first_attachment(s: &TestServer, key: &str, id: &str) -> Vec<u8> {
    let (st, m) = s
        .call("GET", &format!("/v1/messages/{id}"), Some(key), None)
        .await;
    assert_eq!(st, 200, "{m}");
    let aid = m["attachments"][0]["id"].as_u64().expect("attachment id");
    let (st, _, body) = s
        .get_bytes(&format!("/v1/messages/{id}/attachments/{aid}"), key)
        .await;
    assert_eq!(st, 200);
    body
}

/// Blob files under `<data>/blobs/ab/…` (not the temp directory).
fn blob_files(data: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(data.join("blobs")) else {
        return out;
    };
    for d in dirs.flatten() {
        if d.file_name().len() == 2 {
            for f in std::fs::read_dir(d.path()).expect("blob dir").flatten() {
                out.push(f.path());
            }
        }
    }
    out
}

/// `legate store verify` on `data`: exit success and the JSON report.
fn verify(data: &Path, args: &[&str]) -> (bool, serde_json::Value) {
    let cfg = data.join("verify.toml");
    std::fs::write(
        &cfg,
        format!("[storage]\npath = {:?}\n", data.display().to_string()),
    )
    .expect("config");
    let out = std::process::Command::new(legate_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["store", "verify"])
        .args(args)
        .output()
        .expect("run legate");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

#[tokio::test]
async fn bodies_are_files_stored_once_and_raw_reads_them_byte_identical() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("blobs", &["mail:read", "mail:manage"]).await;
    let a = id_of(&agent);
    let same = plain("x@remote.test", "same", "identical body");
    let m1 = s.deliver(&a, Folder::Inbox, &same).await;
    let m2 = s.deliver(&a, Folder::Inbox, &same).await;
    let m3 = s.deliver(&a, Folder::Inbox, WITH_ATTACHMENT).await;
    // Two distinct bodies, two files; nothing raw left in the trees.
    let data = s.data_dir();
    assert_eq!(blob_files(&data).len(), 2);
    assert!(s.services().store.is_empty(Tree::MessageBlobs));
    // Each file is the body itself, or (a body of 1 KiB or more, storage.compression on by
    // default) its zstd form, named `….zst` and smaller.
    for f in blob_files(&data) {
        let file = std::fs::read(&f).expect("read blob");
        if f.extension().is_some_and(|e| e == "zst") {
            assert!(file.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "{f:?}");
            assert!(file.len() < WITH_ATTACHMENT.len().max(same.len()), "{f:?}");
        } else {
            assert!(file == same || file == WITH_ATTACHMENT, "{f:?}");
        }
    }
    for (m, raw) in [(&m1, &same[..]), (&m2, &same), (&m3, WITH_ATTACHMENT)] {
        let (st, _, body) = s
            .get_bytes(&format!("/v1/messages/{}/raw", m.id), &key)
            .await;
        assert_eq!(st, 200);
        assert_eq!(body, raw);
    }
    let pdf = first_attachment(&s, &key, &m3.id).await;
    assert!(pdf.starts_with(b"%PDF-1.4"), "{pdf:?}");
    // Purging one holder of the shared body keeps the file; purging the last removes it.
    for m in [&m1, &m1] {
        let (st, v) = s
            .call(
                "DELETE",
                &format!("/v1/messages/{}", m.id),
                Some(&key),
                None,
            )
            .await;
        assert!(st == 200 || st == 204, "{st} {v}");
    }
    assert_eq!(blob_files(&data).len(), 2);
    for m in [&m2, &m2] {
        s.call(
            "DELETE",
            &format!("/v1/messages/{}", m.id),
            Some(&key),
            None,
        )
        .await;
    }
    assert_eq!(blob_files(&data).len(), 1);
    let dir = s.stop().await;
    let (ok, report) = verify(dir.path(), &[]);
    assert!(ok, "{report}");
    assert_eq!(report["records"], 1);
    assert_eq!(report["blobs"], 1);
}

#[tokio::test]
async fn large_text_bodies_are_stored_compressed_and_read_back_byte_identical() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("zst", &["mail:read"]).await;
    let a = id_of(&agent);
    let body = "The quarterly figures are attached below, line after line.\r\n".repeat(200);
    let raw = plain("x@remote.test", "long", &body);
    let m = s.deliver(&a, Folder::Inbox, &raw).await;
    let files = blob_files(&s.data_dir());
    assert_eq!(files.len(), 1);
    assert!(files[0].to_string_lossy().ends_with(".zst"), "{files:?}");
    let stored = std::fs::metadata(&files[0]).expect("blob").len() as usize;
    assert!(stored * 5 < raw.len(), "{stored} of {}", raw.len());
    let (st, _, got) = s
        .get_bytes(&format!("/v1/messages/{}/raw", m.id), &key)
        .await;
    assert_eq!((st, got == raw), (200, true));
    let (st, v) = s
        .call("GET", &format!("/v1/messages/{}", m.id), Some(&key), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap_or("")
            .contains("quarterly figures"),
        "{v}"
    );
    let dir = s.stop().await;
    let (ok, report) = verify(dir.path(), &["--deep"]);
    assert!(ok, "{report}");
}

#[tokio::test]
async fn a_schema_2_data_directory_upgrades_and_verify_finds_and_sweeps_orphans() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("upgrade", &["mail:read"]).await;
    let a = id_of(&agent);
    let admin = s.admin_token.clone();
    let mut sent = Vec::new();
    for i in 0..5 {
        let raw = plain(
            "old@remote.test",
            &format!("old {i}"),
            &"line\r\n".repeat(i * 50),
        );
        sent.push((s.deliver(&a, Folder::Inbox, &raw).await.id, raw));
    }
    let att = s.deliver(&a, Folder::Inbox, WITH_ATTACHMENT).await;
    sent.push((att.id.clone(), WITH_ATTACHMENT.to_vec()));
    let dir = s.stop().await;

    // Rewrite the data directory into the schema 2 layout: raw bodies in the MessageBlobs
    // tree, no blob references, no blob files.
    {
        let opts = StoreOptions {
            sweep_on_open: false,
            ..Default::default()
        };
        let store = Store::open_with(dir.path(), &opts).expect("open");
        for (id, raw) in &sent {
            assert_eq!(
                store.blob_of(id.as_bytes()).unwrap().as_deref(),
                Some(&raw[..])
            );
            store.put(Tree::MessageBlobs, id.as_bytes(), raw).unwrap();
            store
                .transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.unlink_blob(id.as_bytes())?))
                .unwrap();
        }
        store
            .put(Tree::Meta, b"schema_version", &2u32.to_be_bytes())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    assert!(blob_files(dir.path()).is_empty());
    let (ok, report) = verify(dir.path(), &[]);
    assert!(ok, "verify migrates on open like serve: {report}");

    // Back to schema 2, and start the server on it this time.
    {
        let store = Store::open(dir.path()).expect("open");
        for (id, raw) in &sent {
            store.put(Tree::MessageBlobs, id.as_bytes(), raw).unwrap();
            store
                .transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.unlink_blob(id.as_bytes())?))
                .unwrap();
        }
        store
            .put(Tree::Meta, b"schema_version", &2u32.to_be_bytes())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let cfg = test_config(dir.path());
    let mut s = TestServer::start_with(dir, cfg).await;
    s.admin_token = admin;
    assert!(s.services().store.is_empty(Tree::MessageBlobs));
    assert_eq!(blob_files(&s.data_dir()).len(), sent.len());
    for (id, raw) in &sent {
        let (st, _, body) = s.get_bytes(&format!("/v1/messages/{id}/raw"), &key).await;
        assert_eq!(st, 200);
        assert_eq!(&body, raw, "message {id} changed in the upgrade");
    }
    let pdf = first_attachment(&s, &key, &att.id).await;
    assert!(pdf.starts_with(b"%PDF-1.4"));
    let dir = s.stop().await;
    let (ok, report) = verify(dir.path(), &["--deep"]);
    assert!(ok, "{report}");
    assert_eq!(report["records"], sent.len());

    // A file no record names (a crash between blob write and commit): reported, kept by
    // --sweep within the grace period, removed after it.
    let orphan_dir = dir.path().join("blobs").join("ff");
    std::fs::create_dir_all(&orphan_dir).unwrap();
    std::fs::write(orphan_dir.join("f".repeat(62)), b"orphan").unwrap();
    let (ok, report) = verify(dir.path(), &[]);
    assert!(!ok);
    assert_eq!(report["orphans"][0], "f".repeat(64));
    let (ok, _) = verify(dir.path(), &["--sweep"]);
    assert!(!ok, "a fresh orphan is within the grace period");
    let (ok, report) = verify(dir.path(), &["--sweep", "--grace-secs", "0"]);
    assert!(ok, "{report}");
    assert_eq!(report["swept"], 1);
    // A record whose body is gone is reported.
    let victim = blob_files(dir.path()).pop().expect("a blob");
    std::fs::remove_file(victim).unwrap();
    let (ok, report) = verify(dir.path(), &[]);
    assert!(!ok);
    assert_eq!(report["missing"].as_array().map(Vec::len), Some(1));
}
