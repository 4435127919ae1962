//! `legate audit …`: verify the hash chain, read the newest entries.

use clap::Subcommand;
use legate::app::{self, Services};
use legate::config::Config;
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
    /// Print the newest entries.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        action: Option<String>,
    },
}

pub(super) fn audit(cfg: Config, c: AuditCmd) -> anyhow::Result<ExitCode> {
    let did = app::did_host(&cfg, None);
    let s = Services::open(cfg, did)?;
    match c {
        AuditCmd::Verify { head } => {
            let external = match head.as_deref() {
                Some(h) => Some(
                    legate::audit::parse_head(h)
                        .ok_or_else(|| anyhow::anyhow!("--head wants SEQ:HASH (64 hex digits)"))?,
                ),
                None => None,
            };
            let r = s.audit.verify_with(external)?;
            for w in &r.warnings {
                println!("warning: {w}");
            }
            match r.first_broken {
                None => {
                    println!("audit chain ok: {} entries verified", r.entries);
                    if let Some(c) = &r.checkpoint {
                        println!("{c}");
                    }
                    if let Some(h) = &r.head {
                        println!("head: {h}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(seq) => {
                    println!(
                        "audit chain BROKEN at entry {seq}: {} ({} entries verified before it)",
                        r.reason.unwrap_or_default(),
                        r.entries
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCmd::Tail {
            lines,
            agent,
            action,
        } => {
            let agent = match agent {
                Some(a) => Some(s.identity.find_agent(&a)?.map(|a| a.id).unwrap_or(a)),
                None => None,
            };
            let f = legate::audit::Filter {
                agent,
                action,
                ..Default::default()
            };
            let page = s.audit.query(&f, lines, None)?;
            for e in page.items.iter().rev() {
                println!("{}", e.to_json());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
