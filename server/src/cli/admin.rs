//! `legate admin token …`: the admin tokens, managed like agent keys.

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum AdminCmd {
    /// List, create, keep or revoke admin tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Set a human's console password (read from standard input, one line; at least 12
    /// characters). Ends that human's console sessions.
    Password {
        /// The human's email; default: the first admin, admin@<server.domain>.
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Subcommand)]
pub(super) enum TokenCmd {
    /// Every admin token (never the secret) and whether it works now.
    List,
    /// A new admin token, printed once.
    Create {
        #[arg(long)]
        name: String,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Keep the LEGATE_BOOTSTRAP_ADMIN_TOKEN token working after other tokens exist.
    Keep { id: String },
    /// Revoke an admin token (the last working one is refused).
    Revoke { id: String },
}

pub(super) async fn admin_token(
    cfg: Config,
    c: TokenCmd,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    match c {
        TokenCmd::List => {
            let r = s.call("admin_token.list", json!({})).await?;
            if as_json {
                print_json(&r["items"]);
            } else {
                for t in r["items"].as_array().into_iter().flatten() {
                    println!("{t}");
                }
            }
        }
        TokenCmd::Create { name, expires_in } => print_json(
            &s.call(
                "admin_token.create",
                json!({"name": name, "expires_in": expires_in}),
            )
            .await?,
        ),
        TokenCmd::Keep { id } => {
            let r = s.call("admin_token.keep", json!({"id": id})).await?;
            if as_json {
                print_json(&r);
            } else {
                println!("kept admin token {id}");
            }
        }
        TokenCmd::Revoke { id } => {
            let r = s.call("admin_token.revoke", json!({"id": id})).await?;
            if as_json {
                print_json(&r);
            } else {
                println!("revoked admin token {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `legate admin password`: the password comes from standard input, never the command line
/// (which other local users can read in the process list).
pub(super) async fn admin_password(
    cfg: Config,
    email: Option<String>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let email = email.unwrap_or_else(|| format!("admin@{}", cfg.server.domain));
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line)?;
    let password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    let mut s = Session::open(&cfg).await?;
    let r = s
        .call(
            "human.password",
            json!({"email": email, "password": password.as_str()}),
        )
        .await?;
    if as_json {
        print_json(&r);
    } else {
        println!("console password set for {email}");
    }
    Ok(ExitCode::SUCCESS)
}
