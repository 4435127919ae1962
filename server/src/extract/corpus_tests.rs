//! The corpus in `corpus/`: `NN-name.eml` with its expectations in `NN-name.json`.
//!
//! Expectation keys (all but `codes` and `links` optional):
//! - `extracted_text`: exact, after collapsing every whitespace run to one space;
//! - `contains` / `not_contains`: substrings of `extracted_text`, when exact is brittle;
//! - `codes`: exactly the codes found, in order;
//! - `links`: exactly the links whose kind is not `other` (`url`, `kind`), in order;
//! - `other_links`: URLs that must be present with kind `other`;
//! - `attachments`: exactly `[{"filename", "content_type", "size"}]`;
//! - `subject`, `from`: exact.
//!
//! The test runs every pair and fails once, listing every mismatch in every file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{attachment, parse, LinkKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    extracted_text: Option<String>,
    #[serde(default)]
    contains: Vec<String>,
    #[serde(default)]
    not_contains: Vec<String>,
    codes: Vec<String>,
    links: Vec<ExpectLink>,
    #[serde(default)]
    other_links: Vec<String>,
    #[serde(default)]
    attachments: Option<Vec<ExpectAttachment>>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    from: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ExpectLink {
    url: String,
    kind: LinkKind,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ExpectAttachment {
    filename: Option<String>,
    content_type: String,
    size: u64,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/extract/corpus")
}

fn corpus() -> Vec<(String, Vec<u8>, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let raw = std::fs::read(&p).unwrap();
            (name, raw, p.with_extension("json"))
        })
        .collect();
    out.sort();
    out
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every mismatch between a message and its expectations, one per line.
fn check(raw: &[u8], expect: &Expect) -> Vec<String> {
    let mut errs = Vec::new();
    let e = match parse(raw) {
        Ok(e) => e,
        Err(err) => return vec![format!("parse failed: {err}")],
    };
    if let Some(want) = &expect.extracted_text {
        if squash(want) != squash(&e.extracted_text) {
            errs.push(format!(
                "extracted_text\n      want: {:?}\n       got: {:?}",
                squash(want),
                squash(&e.extracted_text)
            ));
        }
    }
    let got_text = squash(&e.extracted_text);
    for s in &expect.contains {
        if !got_text.contains(&squash(s)) {
            errs.push(format!("extracted_text lacks {s:?}; got {got_text:?}"));
        }
    }
    for s in &expect.not_contains {
        if got_text.contains(&squash(s)) {
            errs.push(format!("extracted_text has {s:?}; got {got_text:?}"));
        }
    }
    let codes: Vec<&str> = e.codes.iter().map(|c| c.code.as_str()).collect();
    if codes != expect.codes {
        errs.push(format!("codes: want {:?}, got {:?}", expect.codes, e.codes));
    }
    let links: Vec<ExpectLink> = e
        .links
        .iter()
        .filter(|l| l.kind != LinkKind::Other)
        .map(|l| ExpectLink {
            url: l.url.clone(),
            kind: l.kind,
        })
        .collect();
    if links != expect.links {
        errs.push(format!("links: want {:?}, got {:?}", expect.links, e.links));
    }
    for url in &expect.other_links {
        if !e
            .links
            .iter()
            .any(|l| &l.url == url && l.kind == LinkKind::Other)
        {
            errs.push(format!("other link missing: {url}"));
        }
    }
    if let Some(want) = &expect.attachments {
        let got: Vec<ExpectAttachment> = e
            .attachments
            .iter()
            .map(|a| ExpectAttachment {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.size,
            })
            .collect();
        if &got != want {
            errs.push(format!("attachments: want {want:?}, got {got:?}"));
        }
        for a in &e.attachments {
            match attachment(raw, a.id) {
                Some((info, bytes)) if info == *a && bytes.len() as u64 == a.size => {}
                other => errs.push(format!(
                    "attachment({}) disagrees: {:?}",
                    a.id,
                    other.map(|(i, b)| (i, b.len()))
                )),
            }
        }
    }
    if let Some(want) = &expect.subject {
        if *want != e.subject {
            errs.push(format!("subject: want {want:?}, got {:?}", e.subject));
        }
    }
    if let Some(want) = &expect.from {
        let got = e.from.as_ref().map(|a| a.email.as_str());
        if Some(want.as_str()) != got {
            errs.push(format!("from: want {want:?}, got {got:?}"));
        }
    }
    if e.preview.chars().count() > 201 || e.preview.contains('\n') {
        errs.push(format!("preview not one short line: {:?}", e.preview));
    }
    errs
}

#[test]
fn corpus_matches_expectations() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 40,
        "corpus has only {} messages",
        corpus.len()
    );
    let mut report = String::new();
    for (name, raw, json) in &corpus {
        let expect: Expect = match std::fs::read_to_string(json)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
        {
            Ok(x) => x,
            Err(err) => {
                let _ = writeln!(report, "{name}: bad or missing expectations: {err}");
                continue;
            }
        };
        let errs = check(raw, &expect);
        if !errs.is_empty() {
            let _ = writeln!(report, "{name}:");
            for err in errs {
                let _ = writeln!(report, "    {err}");
            }
        }
    }
    assert!(report.is_empty(), "corpus mismatches:\n{report}");
}

#[test]
fn messages_without_codes_have_none() {
    // Belt and braces for the corpus rule "no false code": every message whose name says
    // it carries no code must yield none, whatever its JSON says.
    for (name, raw, _) in corpus() {
        let codeless = [
            "invoice",
            "receipt",
            "newsletter",
            "shipping",
            "reply",
            "order",
        ]
        .iter()
        .any(|w| name.contains(w));
        if codeless {
            let e = parse(&raw).unwrap();
            assert!(e.codes.is_empty(), "{name}: false codes {:?}", e.codes);
        }
    }
}

#[test]
fn every_prefix_of_some_messages_parses_without_panic() {
    let corpus = corpus();
    let picks = corpus.iter().filter(|(n, _, _)| {
        ["03-", "14-", "27-", "33-"]
            .iter()
            .any(|p| n.starts_with(p))
    });
    let mut n = 0;
    for (_, raw, _) in picks {
        for end in 0..=raw.len() {
            let prefix = &raw[..end];
            let _ = parse(prefix);
            let _ = attachment(prefix, 0);
            n += 1;
        }
    }
    assert!(n > 1000, "too few prefixes tried: {n}");
}

#[test]
fn garbage_never_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for len in [1usize, 2, 7, 64, 512, 4096] {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
            let _ = parse(&bytes);
            let _ = attachment(&bytes, 0);
        }
    }
    let nasty: Vec<Vec<u8>> = vec![
        b"\0\0\0\0".to_vec(),
        b":\r\n\r\n".to_vec(),
        b"Subject: =?UTF-8?B?////?=\r\n\r\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n--x--".to_vec(),
        b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!"
            .to_vec(),
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\n\xff\xfe\xfd".to_vec(),
        format!("Subject: {}\r\n\r\nx", "a".repeat(100_000)).into_bytes(),
        format!(
            "Content-Type: text/html\r\n\r\n{}code 123456{}",
            "<blockquote type=cite>".repeat(5_000),
            "</blockquote>".repeat(5_000)
        )
        .into_bytes(),
        "Content-Type: multipart/mixed; boundary=a\r\n\r\n"
            .repeat(200)
            .into_bytes(),
        format!("Subject: x\r\n\r\n{}", "> ".repeat(50_000)).into_bytes(),
        format!(
            "Subject: x\r\n\r\n{}",
            "On 1 Jan 2024 a@b.c\n".repeat(5_000)
        )
        .into_bytes(),
        b"Subject: \xc3\x28 bad utf8\r\nFrom: \xff <a@b>\r\n\r\n\xc3\x28".to_vec(),
    ];
    for raw in nasty {
        let _ = parse(&raw);
        let _ = attachment(&raw, 0);
        let _ = attachment(&raw, u32::MAX);
    }
}
