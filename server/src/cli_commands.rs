//! The administrative subcommands of the `legate` binary (agents, keys, admin tokens, DKIM,
//! DNS, audit, store, vault): argument handling and printing around service calls. Part of the
//! binary, not the library: `main.rs` holds the argument types, this file what they do.

use super::*;

/// `legate store …`: opens the store alone (no services), without the start-up sweep, so
/// orphans are reported rather than silently removed.
pub(super) fn store_cmd(cfg: Config, c: StoreCmd) -> anyhow::Result<ExitCode> {
    // No disk reserve: the tools must work on a full disk.
    let opts = legate::store::StoreOptions {
        min_free_bytes: 0,
        ..cfg.storage.store_options(false)
    };
    let store = legate::store::Store::open_with(&cfg.storage.path, &opts)
        .with_context(|| format!("cannot open the store in {}", cfg.storage.path.display()))?;
    match c {
        StoreCmd::Verify {
            deep,
            sweep,
            grace_secs,
        } => {
            let grace = sweep.then(|| std::time::Duration::from_secs(grace_secs));
            let report = store.verify_blobs(deep, grace)?;
            let clean = report.is_clean();
            let mut v = serde_json::to_value(&report)?;
            v["clean"] = serde_json::Value::Bool(clean);
            print_json(&v);
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        StoreCmd::Stats => {
            print_json(&serde_json::to_value(store.stats()?)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `legate dkim …`.
pub(super) fn dkim(cfg: Config, c: DkimCmd) -> anyhow::Result<ExitCode> {
    let domain = cfg.server.domain.clone();
    let prefix = cfg.dkim.selector_prefix.clone();
    let (s, records, json) = match c {
        // Reading needs no admin: the keys exist as soon as the data directory does, so the
        // records can be published before the first `serve`.
        DkimCmd::Records { json } => {
            let did = app::did_host(&cfg, None);
            let s = Services::open(cfg, did)?;
            let r = s.vault.dkim_records(&domain)?;
            (s, r, json)
        }
        DkimCmd::Rotate { json } => {
            let (s, actor) = open_offline(cfg)?;
            let r = s.vault.rotate_dkim(&domain, &prefix)?;
            audit_cli(&s, &actor, "dkim.rotate", &domain)?;
            (s, r, json)
        }
        DkimCmd::Remove { selector } => {
            let (s, actor) = open_offline(cfg)?;
            let r = s.vault.remove_dkim(&domain, &selector)?;
            audit_cli(&s, &actor, "dkim.remove", &selector)?;
            (s, r, false)
        }
    };
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    if json {
        let items: Vec<serde_json::Value> = records
            .iter()
            .map(|k| {
                serde_json::json!({
                    "selector": k.selector,
                    "algorithm": k.algorithm,
                    "name": format!("{}._domainkey.{domain}", k.selector),
                    "txt": k.txt(),
                    "active": k.retired_at.is_none(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
    } else {
        for k in &records {
            let state = if k.retired_at.is_none() {
                "active"
            } else {
                "retired"
            };
            println!(
                "{}._domainkey.{domain} ({state}) TXT \"{}\"",
                k.selector,
                k.txt()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn audit_cli(
    s: &Services,
    actor: &Actor,
    action: &str,
    target: &str,
) -> anyhow::Result<()> {
    actor.audit(
        &s.audit,
        action,
        target,
        legate::audit::Outcome::Ok,
        serde_json::Value::Null,
    )?;
    Ok(())
}

/// Opens the data directory for an offline command, acting as the first human.
pub(super) fn open_offline(cfg: Config) -> anyhow::Result<(Services, Actor)> {
    // As `serve` does: clients reach the API over HTTPS when that listener is on.
    let api = if cfg.listen.https.is_empty() {
        &cfg.listen.http
    } else {
        &cfg.listen.https
    };
    let did = app::did_host(&cfg, api.rsplit(':').next().and_then(|p| p.parse().ok()));
    let services = Services::open(cfg, did)?;
    let human = services.identity.first_human()?.context(
        "this data directory has no admin yet: run `legate init` or `legate serve` first",
    )?;
    let actor = Actor::cli(&human.id, &human.email);
    Ok((services, actor))
}

pub(super) fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(super) async fn agent(cfg: Config, c: AgentCmd) -> anyhow::Result<ExitCode> {
    let (s, actor) = open_offline(cfg)?;
    let id = &s.identity;
    match c {
        AgentCmd::Create {
            address,
            name,
            scopes,
        } => {
            let (local, address) = if address.contains('@') {
                (None, Some(address))
            } else {
                (Some(address), None)
            };
            let req = NewAgent {
                local,
                address,
                name,
                scopes,
                org_id: None,
            };
            let created = id.create_agent(&actor, &req).await?;
            print_json(&id.created_json(&created));
        }
        AgentCmd::List => {
            let mut cursor = None;
            loop {
                let (items, next) = id.list_agents(&actor, 1000, cursor.as_deref())?;
                for a in &items {
                    println!(
                        "{}\t{}\t{:?}\t{}",
                        a.id,
                        a.address(),
                        a.status,
                        a.scopes.names().join(",")
                    );
                }
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
        }
        AgentCmd::Show { agent } => print_json(&id.agent_json(&id.get_agent(&actor, &agent)?)),
        AgentCmd::Revoke { agent } => {
            for a in id.revoke_agent(&actor, &agent).await? {
                println!("revoked {} ({})", a.id, a.address());
            }
        }
        AgentCmd::RotateKey {
            agent,
            overlap_secs,
        } => {
            let key = id.rotate_identity_key(&actor, &agent, overlap_secs).await?;
            let a = id.get_agent(&actor, &agent)?;
            print_json(&serde_json::json!({
                "agent": a.id,
                "kid": format!("{}#{}", id.agent_did(&a), key.kid),
                "public_key_multibase": legate::identity::multibase::ed25519_multikey(&key.public),
                "previous_keys_retire_at": legate::util::rfc3339(key.created_at + overlap_secs),
            }));
        }
    }
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn key(cfg: Config, c: KeyCmd) -> anyhow::Result<ExitCode> {
    let (s, actor) = open_offline(cfg)?;
    let id = &s.identity;
    match c {
        KeyCmd::Create {
            agent,
            name,
            scopes,
            expires_in,
        } => {
            let (k, token) = id
                .create_key(
                    &actor,
                    &agent,
                    &NewKey {
                        name,
                        scopes,
                        expires_in,
                    },
                )
                .await?;
            let mut v = k.to_json();
            v["key"] = serde_json::json!(token.as_str());
            print_json(&v);
        }
        KeyCmd::List { agent } => {
            for k in id.list_keys(&actor, &agent)? {
                print_json(&k.to_json());
            }
        }
        KeyCmd::Revoke { agent, key_id } => {
            id.revoke_key(&actor, &agent, &key_id).await?;
            println!("revoked key {key_id}");
        }
    }
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn admin_token(cfg: Config, c: TokenCmd) -> anyhow::Result<ExitCode> {
    let (s, actor) = open_offline(cfg)?;
    let id = &s.identity;
    match c {
        TokenCmd::List => {
            for t in id.list_admin_tokens(&actor)? {
                println!("{t}");
            }
        }
        TokenCmd::Create { name, expires_in } => {
            let (k, token) = id
                .create_admin_token(
                    &actor,
                    &legate::identity::NewAdminToken { name, expires_in },
                )
                .await?;
            let mut v = id.admin_token_json(&k, true);
            v["key"] = serde_json::json!(token.as_str());
            print_json(&v);
        }
        TokenCmd::Keep { id: key_id } => {
            id.keep_admin_token(&actor, &key_id).await?;
            println!("kept admin token {key_id}");
        }
        TokenCmd::Revoke { id: key_id } => {
            id.revoke_admin_token(&actor, &key_id).await?;
            println!("revoked admin token {key_id}");
        }
    }
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(ExitCode::SUCCESS)
}

/// The plan from a running server's API, or else from the data directory.
pub(super) async fn dns_plan(
    cfg: &Config,
    source: &PlanSource,
) -> anyhow::Result<legate::dns::Plan> {
    if let Some(base) = &source.server {
        let token = source
            .token
            .as_deref()
            .context("--server needs an admin token (--token or LEGATE_ADMIN_TOKEN)")?;
        let url = format!("{}/v1/dns/plan", base.trim_end_matches('/'));
        let resp = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            anyhow::bail!("{url} answered {status}: {body}");
        }
        return serde_json::from_str(&body).with_context(|| format!("{url}: not a DNS plan"));
    }
    let store = open_existing_store(cfg)?;
    let domain = &cfg.server.domain;
    legate::dns::plan_from_store(cfg, &store)?.with_context(|| {
        format!(
            "no DKIM keys for {domain} in {}: is this the config `legate init` wrote \
             (--config <data>/config.toml)?",
            cfg.storage.path.display()
        )
    })
}

/// Opens an existing data directory for a command that only reads it. It never makes one: a
/// missing or mistyped `--config` must name the problem, not leave an empty store (and new
/// keys) behind. No disk reserve, so it works on a full disk.
pub(super) fn open_existing_store(cfg: &Config) -> anyhow::Result<legate::store::Store> {
    let path = &cfg.storage.path;
    if !path.join("db").is_dir() {
        anyhow::bail!(
            "no data directory at {}: run `legate init` first, or pass the config it wrote \
             (--config <data>/config.toml)",
            path.display()
        );
    }
    let opts = legate::store::StoreOptions {
        min_free_bytes: 0,
        ..cfg.storage.store_options(false)
    };
    legate::store::Store::open_with(path, &opts).with_context(|| {
        format!(
            "cannot open the store in {} (if the server is running, ask it instead: --server \
             URL with an admin token)",
            path.display()
        )
    })
}

pub(super) async fn dns(cfg: Config, c: DnsCmd) -> anyhow::Result<ExitCode> {
    match c {
        DnsCmd::Plan { format, source } => {
            let plan = dns_plan(&cfg, &source).await?;
            print!("{}", legate::dns::render::render(&plan, format)?);
            Ok(ExitCode::SUCCESS)
        }
        DnsCmd::Check {
            nameserver,
            json,
            source,
        } => {
            let plan = dns_plan(&cfg, &source).await?;
            let servers = if nameserver.is_empty() {
                legate::dns::configured_nameservers(&cfg)?
            } else {
                nameserver
            };
            let report =
                legate::dns::resolve::check(&plan, &servers, legate::dns::timeout(&cfg)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", legate::dns::report_text(&report));
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

pub(super) fn rotate_master(cfg: Config, new_key: &Path) -> anyhow::Result<ExitCode> {
    let store = legate::store::Store::open(&cfg.storage.path)?;
    let (n, created) = legate::vault::rotate_master_files(
        &store,
        &cfg.vault.master_key_file,
        &cfg.storage.path,
        new_key,
    )?;
    if created {
        println!("created new root key {} (mode 0600)", new_key.display());
    }
    println!("re-wrapped {n} agent key(s) and all custody keys under the new root key");
    println!(
        "now set vault.master_key_file = \"{}\" (the old key no longer opens this vault)",
        new_key.display()
    );
    Ok(ExitCode::SUCCESS)
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
