//! A stable, coverage-free fuzz driver for legate (issue 15, "Fuzzing and bad input").
//!
//! Why not `cargo fuzz`: it needs nightly and a second, instrumented build of the whole
//! server (minutes on the 2-core CI box), and CI must run every target on every change. This
//! driver builds with the workspace, runs as an ordinary `cargo test`, and is reproducible: a
//! seeded RNG mutates committed seed corpora (byte flips, inserts, deletes, repeats, splices
//! of seeds, dictionary tokens such as SMTP verbs, MIME boundaries, CRLF and dots).
//!
//! Each target is in-process and calls what legate calls: smtp-proto's codec and the SASL
//! step, the SMTP session state machine over an in-memory pipe, mail-parser + `extract`,
//! mail-auth's DKIM/ARC/DMARC verification through `MailAuth`, the REST router and the MCP
//! JSON-RPC endpoint. A finding is a panic (on any thread the target runs), a hang, or an
//! answer the target's oracle rejects (a 5xx, a non-JSON API error, DATA ended by something
//! other than `<CRLF>.<CRLF>`). Findings are saved to files and replayed as regression seeds.

#![forbid(unsafe_code)]

pub mod mutate;
pub mod targets;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use mutate::{Mutator, Rng};

/// What one input did.
#[derive(Debug)]
pub enum Verdict {
    Ok,
    /// The oracle rejected the answer (the text says why).
    Bad(String),
}

/// One fuzz target: a name, seed corpora, a dictionary and a function over bytes.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Tokens the mutator inserts (protocol verbs, delimiters).
    fn dictionary(&self) -> &'static [&'static [u8]];
    /// Runs one input. Panics are caught by the driver.
    fn run(&mut self, input: &[u8]) -> Verdict;
    /// Largest input worth generating.
    fn max_len(&self) -> usize {
        64 * 1024
    }
}

/// The names `make` accepts, in CI order.
pub const TARGETS: &[&str] = &[
    "smtp_proto",
    "mime",
    "mailauth",
    "smtp_session",
    "rest",
    "mcp",
];

/// Builds a target by name.
pub fn make(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "smtp_proto" => Box::new(targets::smtp_proto::SmtpProto),
        "mime" => Box::new(targets::mime::Mime),
        "mailauth" => Box::new(targets::mailauth::MailAuthTarget::new()),
        "smtp_session" => Box::new(targets::session::SmtpSession::new()),
        "rest" => Box::new(targets::http::Http::rest()),
        "mcp" => Box::new(targets::http::Http::mcp()),
        "selftest" => Box::new(targets::selftest::SelfTest::new()),
        _ => return None,
    })
}

/// The workspace root (seed corpora are found from here).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The seed directories of a target: its own under `bench/fuzz/seeds/<name>/` (crash
/// regressions included) plus, for the mail targets, the repository's mail corpora.
pub fn seed_dirs(name: &str) -> Vec<PathBuf> {
    let root = repo_root();
    let mut dirs = vec![root.join("bench/fuzz/seeds").join(name)];
    if matches!(name, "mime" | "mailauth") {
        for d in [
            "tests/corpus/cpython",
            "tests/corpus/mail-parser",
            "tests/corpus/bad/mime",
        ] {
            dirs.push(root.join(d));
        }
    }
    dirs
}

/// Reads every regular file under `dirs` (sorted, so runs are reproducible); files named
/// `*.gen` are recipes for the bad-input corpus, not inputs, and are skipped.
pub fn load_seeds(dirs: &[PathBuf], max_len: usize) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let skip = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.ends_with(".gen") || n.starts_with('.') || n == "LICENSE");
            if p.is_file() && !skip {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut seeds: Vec<Vec<u8>> = files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|mut b| {
            b.truncate(max_len);
            b
        })
        .collect();
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    seeds
}

/// How long or how much to run.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Iterations(u64),
    Time(Duration),
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub budget: Budget,
    pub seed: u64,
    /// Where crashing inputs are written (created on the first crash).
    pub crash_dir: PathBuf,
    /// Stop after this many distinct crashes.
    pub max_crashes: usize,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Crash {
    pub what: String,
    pub file: Option<PathBuf>,
    pub input_len: usize,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub iterations: u64,
    pub elapsed: Duration,
    pub crashes: Vec<Crash>,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.iterations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} iterations in {:.1}s ({:.0}/s), {} crash(es)",
            self.target,
            self.iterations,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.crashes.len()
        )?;
        for c in &self.crashes {
            write!(f, "\n  {} ({} bytes", c.what, c.input_len)?;
            if let Some(p) = &c.file {
                write!(f, ", saved to {}", p.display())?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Threads whose panics count as findings are named `fuzz-<run>-…`: the driver's own and
/// its targets' runtimes. Panics are filed per run, so two runs in one process (tests run in
/// parallel) never see each other's; panics elsewhere go to the hook that was there before.
pub const THREAD_PREFIX: &str = "fuzz-";

/// Per run: panics seen, and the last one's text.
static PANICS: Mutex<Vec<(u64, u64, String)>> = Mutex::new(Vec::new());
static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The run this thread works for (0: none), so runtimes name their threads after it.
    static RUN_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn run_of_thread() -> Option<u64> {
    let t = std::thread::current();
    let rest = t.name()?.strip_prefix(THREAD_PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

fn panics_of(run: u64) -> (u64, String) {
    PANICS
        .lock()
        .ok()
        .and_then(|p| p.iter().find(|e| e.0 == run).map(|e| (e.1, e.2.clone())))
        .unwrap_or((0, String::new()))
}

/// Installs (once) a panic hook that counts and records panics of fuzz threads, quietly:
/// a run may see thousands.
fn install_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let Some(run) = run_of_thread() else {
                previous(info);
                return;
            };
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let text = format!("panic at {at}: {msg}");
            if let Ok(mut p) = PANICS.lock() {
                match p.iter_mut().find(|e| e.0 == run) {
                    Some(e) => {
                        e.1 += 1;
                        e.2 = text;
                    }
                    None => p.push((run, 1, text)),
                }
            }
        }));
    });
}

/// Builds target `name` and runs it within `opts.budget` on a thread of its own (named so its
/// panics are recognised). Seeds run unmutated first, so committed crash regressions replay
/// every time. `None`: no such target.
pub fn run(name: &str, opts: &RunOptions) -> Option<Report> {
    if !TARGETS.contains(&name) && name != "selftest" {
        return None;
    }
    install_hook();
    let opts = opts.clone();
    let name = name.to_string();
    let run = NEXT_RUN.fetch_add(1, Ordering::SeqCst);
    let handle = std::thread::Builder::new()
        .name(format!("{THREAD_PREFIX}{run}-main"))
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            RUN_ID.with(|r| r.set(run));
            make(&name).map(|t| run_here(t, run, &opts))
        });
    Some(match handle.map(|h| h.join()) {
        Ok(Ok(Some(report))) => report,
        _ => Report {
            target: "?",
            iterations: 0,
            elapsed: Duration::ZERO,
            crashes: vec![Crash {
                what: "the driver itself failed".into(),
                file: None,
                input_len: 0,
            }],
        },
    })
}

fn run_here(mut target: Box<dyn Target>, run: u64, opts: &RunOptions) -> Report {
    let name = target.name();
    let max_len = target.max_len();
    let seeds = load_seeds(&seed_dirs(name), max_len);
    let mut mutator = Mutator::new(Rng::new(opts.seed), seeds.clone(), target.dictionary());
    let start = Instant::now();
    let mut report = Report {
        target: name,
        iterations: 0,
        elapsed: Duration::ZERO,
        crashes: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    loop {
        let done = match opts.budget {
            Budget::Iterations(n) => report.iterations >= n,
            Budget::Time(t) => start.elapsed() >= t,
        };
        if done || report.crashes.len() >= opts.max_crashes {
            break;
        }
        let i = report.iterations as usize;
        let input = if i < seeds.len() {
            seeds[i].clone()
        } else {
            mutator.next(max_len)
        };
        report.iterations += 1;
        let (before, _) = panics_of(run);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(&input)));
        let (after, last) = panics_of(run);
        let what = match result {
            Ok(Verdict::Ok) if after == before => continue,
            Ok(Verdict::Bad(why)) if after == before => why,
            _ => last,
        };
        // One file per distinct finding (by its text without numbers, which vary).
        let key: String = what.chars().filter(|c| !c.is_ascii_digit()).collect();
        if !seen.insert(key) {
            continue;
        }
        let file = save(&opts.crash_dir, name, &input);
        report.crashes.push(Crash {
            what,
            file,
            input_len: input.len(),
        });
    }
    report.elapsed = start.elapsed();
    report
}

fn save(dir: &Path, target: &str, input: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let p = dir.join(format!("{target}-{h:016x}.bin"));
    std::fs::write(&p, input).ok()?;
    Some(p)
}

/// `LEGATE_FUZZ_TRACE=1`: targets print what each input got (to check seeds reach deep).
pub fn trace(what: impl FnOnce() -> String) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("LEGATE_FUZZ_TRACE").is_some()) {
        eprintln!("{}", what());
    }
}

/// A multi-threaded runtime whose threads are fuzz threads (their panics are findings).
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{THREAD_PREFIX}{}-rt", RUN_ID.with(|r| r.get())))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    }
}
