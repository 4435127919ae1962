//! `legate audit …`: verify the hash chain, read entries.

use super::exit::problem_if;
use super::offline::print_json;
use super::session::Session;
use clap::{Args, Subcommand};
use legate::config::Config;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum AuditCmd {
    /// Recompute the hash chain and compare its end with the signed head checkpoint; exit 1
    /// naming the first broken entry (or the truncation). Prints the head (SEQ:HASH): keep it
    /// elsewhere and pass it back with --head to check the log still reaches it.
    Verify {
        /// A head recorded earlier, SEQ:HASH: the log must still contain that entry.
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
    },
    /// Print the newest entries, oldest first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        action: Option<String>,
    },
    /// One page of entries, newest first, filtered as GET /v1/audit filters; prints the
    /// cursor of the next page last.
    List(ListArgs),
}

#[derive(Args)]
pub(super) struct ListArgs {
    /// Agent id or address.
    #[arg(long)]
    agent: Option<String>,
    #[arg(long)]
    action: Option<String>,
    /// ok, denied or error.
    #[arg(long)]
    outcome: Option<String>,
    /// RFC 3339 or unix seconds.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long)]
    cursor: Option<String>,
}

pub(super) async fn audit(cfg: Config, c: AuditCmd, as_json: bool) -> anyhow::Result<ExitCode> {
    // Verifying reads only, and works on a data directory no admin has used yet (a fresh
    // install, a restored backup checked before its first start).
    let mut s = if matches!(c, AuditCmd::Verify { .. }) {
        Session::open_reader(&cfg).await?
    } else {
        Session::open(&cfg).await?
    };
    match c {
        AuditCmd::Verify { head } => {
            let r = s.call("audit.verify", json!({"head": head})).await?;
            if as_json {
                print_json(&r);
            } else {
                print!("{}", verify_text(&r));
            }
            Ok(problem_if(r["ok"] != Value::Bool(true)))
        }
        AuditCmd::Tail {
            lines,
            agent,
            action,
        } => {
            let args = json!({"agent": agent, "action": action, "limit": lines});
            let r = s.call("audit.list", args).await?;
            let mut items = r["items"].as_array().cloned().unwrap_or_default();
            items.reverse();
            if as_json {
                print_json(&Value::Array(items));
            } else {
                for e in &items {
                    println!("{e}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::List(a) => {
            let args = json!({
                "agent": a.agent, "action": a.action, "outcome": a.outcome,
                "since": a.since, "until": a.until, "limit": a.limit, "cursor": a.cursor,
            });
            let r = s.call("audit.list", args).await?;
            if as_json {
                print_json(&r);
            } else {
                for e in r["items"].as_array().into_iter().flatten() {
                    println!("{e}");
                }
                if let Some(n) = r["next_cursor"].as_str() {
                    println!("next cursor: {n}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The report of `audit verify` as lines (the form scripts have grepped since it existed).
fn verify_text(r: &Value) -> String {
    let mut out = String::new();
    for w in r["warnings"].as_array().into_iter().flatten() {
        out += &format!("warning: {}\n", w.as_str().unwrap_or_default());
    }
    if r["ok"] == Value::Bool(true) {
        out += &format!("audit chain ok: {} entries verified\n", r["entries"]);
        if let Some(c) = r["checkpoint"].as_str() {
            out += &format!("{c}\n");
        }
        if let Some(h) = r["head"].as_str() {
            out += &format!("head: {h}\n");
        }
    } else {
        out += &format!(
            "audit chain BROKEN at entry {}: {} ({} entries verified before it)\n",
            r["first_broken"],
            r["reason"].as_str().unwrap_or_default(),
            r["entries"]
        );
    }
    out
}
