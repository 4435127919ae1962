//! `legate-fuzz TARGET [--minutes M | --iterations N] [--seed S] [--crashes DIR]`
//! (or `legate-fuzz list`). Prints iterations, iterations/s and crashes; exits 1 on a crash.

use legate_fuzz::{run, Budget, RunOptions, TARGETS};
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first().cloned() else {
        eprintln!("usage: legate-fuzz TARGET|all|list [--minutes M | --iterations N] [--seed S] [--crashes DIR]");
        std::process::exit(2);
    };
    if target == "list" {
        for t in TARGETS {
            println!("{t}");
        }
        return;
    }
    let mut budget = Budget::Time(Duration::from_secs(60));
    let mut seed = 0x1e6a_7e15u64;
    let mut crashes = PathBuf::from("fuzz-crashes");
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let v = it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--minutes" => {
                let m: f64 = v.parse().unwrap_or(1.0);
                budget = Budget::Time(Duration::from_secs_f64(m * 60.0));
            }
            "--iterations" => budget = Budget::Iterations(v.parse().unwrap_or(1000)),
            "--seed" => seed = v.parse().unwrap_or(seed),
            "--crashes" => crashes = PathBuf::from(v),
            other => {
                eprintln!("unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    let names: Vec<&str> = if target == "all" {
        TARGETS.to_vec()
    } else {
        vec![target.as_str()]
    };
    let mut failed = false;
    for name in names {
        let opts = RunOptions {
            budget,
            seed,
            crash_dir: crashes.clone(),
            max_crashes: 20,
        };
        let Some(report) = run(name, &opts) else {
            eprintln!("unknown target {name}; one of {}", TARGETS.join(", "));
            std::process::exit(2);
        };
        println!("{report}");
        failed |= !report.crashes.is_empty();
    }
    if failed {
        std::process::exit(1);
    }
}
