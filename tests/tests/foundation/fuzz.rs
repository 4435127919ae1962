//! Every fuzz target (bench/fuzz, issue 15) for a small fixed budget, from a fixed RNG seed,
//! over the committed seed corpora: CI's fuzz step. The seeds run first, unmutated, so a
//! crash once found and committed as a seed is a regression test from then on. Long runs:
//! `bench/fuzz.sh TARGET MINUTES`.

use legate_fuzz::{run, Budget, RunOptions, TARGETS};

/// Iterations per target: the whole step takes well under a minute in a debug build.
fn budget(target: &str) -> u64 {
    match target {
        "smtp_proto" => 20_000,
        "mailauth" => 4_000,
        "smtp_session" => 2_000,
        "mime" => 1_000,
        "mcp" => 600,
        "rest" => 300,
        _ => 200,
    }
}

#[test]
fn every_fuzz_target_survives_its_ci_budget() {
    let crash_dir =
        std::env::temp_dir().join(format!("legate-fuzz-crashes-{}", std::process::id()));
    let mut failures = Vec::new();
    for target in TARGETS {
        let opts = RunOptions {
            budget: Budget::Iterations(budget(target)),
            seed: 0x1e6a_7e15,
            crash_dir: crash_dir.clone(),
            max_crashes: 5,
        };
        let report = run(target, &opts).expect("known target");
        eprintln!("{report}");
        assert!(report.iterations >= budget(target).min(10), "{report}");
        if !report.crashes.is_empty() {
            failures.push(report.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz findings:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_driver_catches_panics_on_any_thread_and_saves_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions {
        budget: Budget::Iterations(5_000),
        seed: 7,
        crash_dir: dir.path().to_path_buf(),
        max_crashes: 2,
    };
    let report = run("selftest", &opts).expect("selftest target");
    assert_eq!(report.crashes.len(), 2, "{report}");
    let whats: Vec<&str> = report.crashes.iter().map(|c| c.what.as_str()).collect();
    assert!(
        whats.iter().any(|w| w.contains("selftest boom")),
        "{whats:?}"
    );
    assert!(
        whats.iter().any(|w| w.contains("selftest bad")),
        "{whats:?}"
    );
    for c in &report.crashes {
        let saved = std::fs::read(c.file.as_ref().expect("saved")).expect("crash file");
        assert_eq!(saved.len(), c.input_len);
    }
    // Seeds are found, and an unknown target is refused.
    let seeds = legate_fuzz::load_seeds(&legate_fuzz::seed_dirs("smtp_session"), 1 << 16);
    assert!(seeds.len() >= 5, "seed corpus missing");
    assert!(run("nope", &opts).is_none());
}
