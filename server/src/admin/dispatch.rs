//! One admin request -> one service call, as the REST admin handlers make it: the services
//! check the actor and write the audit entry; this file only parses arguments and shapes
//! the JSON answer (the same JSON the REST endpoint answers, where there is one).

use super::{AdminError, Request};
use crate::identity::{Actor, AuditParams, NewAdminToken, NewAgent, NewKey};
use crate::queue::QueueQuery;
use crate::services::Services;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Every operation, for `legate` help texts and the README.
pub const OPS: &[&str] = &[
    "ping",
    "agent.create",
    "agent.list",
    "agent.get",
    "agent.revoke",
    "agent.rotate_key",
    "subagent.create",
    "key.create",
    "key.list",
    "key.revoke",
    "org.create",
    "org.list",
    "audit.list",
    "audit.verify",
    "queue.list",
    "queue.get",
    "queue.retry",
    "queue.cancel",
    "suppression.list",
    "suppression.add",
    "suppression.remove",
    "approval.list",
    "approval.approve",
    "approval.reject",
    "agent.resume",
    "agent.reputation",
    "dns.plan",
    "dns.check",
    "admin_token.list",
    "admin_token.create",
    "admin_token.keep",
    "admin_token.revoke",
    "dkim.records",
    "dkim.rotate",
    "dkim.remove",
    "vault.rotate_master",
    "backup",
    "reports.dmarc",
    "reports.tls",
    "reports.generate",
    "reports.send",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionList {
    org: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionAdd {
    address: String,
    #[serde(default)]
    reason: String,
    org: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionRemove {
    address: String,
    org: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalDecision {
    id: String,
    note: Option<String>,
}

/// The arguments of `op`, or a clear error naming the operation.
fn args<T: DeserializeOwned>(req: &Request) -> Result<T, AdminError> {
    let v = match &req.args {
        Value::Null => json!({}),
        v => v.clone(),
    };
    serde_json::from_value(v).map_err(|e| AdminError::Invalid(format!("{}: {e}", req.op)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentArg {
    agent: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateMasterArgs {
    new_key_file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdArg {
    id: String,
}

/// `human.password`: the console password of a human (never logged; only its hash is kept).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordArg {
    email: String,
    password: zeroize::Zeroizing<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    agent: String,
    overlap_secs: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubAgent {
    parent: String,
    agent: NewAgent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyCreate {
    agent: String,
    #[serde(default)]
    key: Option<NewKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRevoke {
    agent: String,
    key_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
    domain: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyArgs {
    /// `SEQ:HASH` recorded earlier.
    head: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckArgs {
    #[serde(default)]
    nameservers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorArg {
    selector: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportWindow {
    since: Option<String>,
    until: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendArgs {
    /// `YYYY-MM-DD` (UTC); yesterday when absent.
    day: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateArgs {
    /// `dmarc` or `tls`.
    kind: String,
    domain: String,
    /// `YYYY-MM-DD` (UTC).
    day: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupArgs {
    /// Absolute path of the file to write (the server resolves nothing against its own
    /// working directory).
    to: String,
}

/// Carries out `req` as `actor` over `s`.
pub async fn handle(s: &Services, actor: &Actor, req: &Request) -> Result<Value, AdminError> {
    let id = &s.identity;
    let v = match req.op.as_str() {
        "ping" => json!({
            "version": env!("CARGO_PKG_VERSION"),
            "schema_version": crate::store::SCHEMA_VERSION,
            "domain": s.config.server.domain,
        }),
        "agent.create" => {
            let a: NewAgent = args(req)?;
            id.created_json(&id.create_agent(actor, &a).await?)
        }
        "agent.list" => {
            let p: Page = args(req)?;
            let (agents, next) =
                id.list_agents(actor, p.limit.unwrap_or(1000), p.cursor.as_deref())?;
            let items: Vec<Value> = agents.iter().map(|a| id.agent_json(a)).collect();
            json!({"items": items, "next_cursor": next})
        }
        "agent.get" => {
            let a: AgentArg = args(req)?;
            id.agent_json(&id.get_agent(actor, &a.agent)?)
        }
        "agent.revoke" => {
            let a: AgentArg = args(req)?;
            let revoked = id.revoke_agent(actor, &a.agent).await?;
            let items: Vec<Value> = revoked
                .iter()
                .map(|a| json!({"id": a.id, "address": a.address()}))
                .collect();
            json!({"revoked": items})
        }
        "agent.rotate_key" => {
            let a: RotateKey = args(req)?;
            let overlap = a
                .overlap_secs
                .unwrap_or(crate::identity::DEFAULT_ROTATION_OVERLAP_SECS);
            let key = id.rotate_identity_key(actor, &a.agent, overlap).await?;
            let agent = id.get_agent(actor, &a.agent)?;
            json!({
                "agent": agent.id,
                "kid": format!("{}#{}", id.agent_did(&agent), key.kid),
                "public_key_multibase": crate::identity::multibase::ed25519_multikey(&key.public),
                "previous_keys_retire_at": crate::util::rfc3339(key.created_at + overlap),
            })
        }
        "subagent.create" => {
            let a: SubAgent = args(req)?;
            // The CLI names agents by address too; the service takes the parent's id.
            let parent = id.get_agent(actor, &a.parent)?.id;
            id.created_json(&id.create_subagent(actor, &parent, &a.agent).await?)
        }
        "key.create" => {
            let a: KeyCreate = args(req)?;
            let new = a.key.unwrap_or_default();
            let (k, token) = id.create_key(actor, &a.agent, &new).await?;
            let mut v = k.to_json();
            v["key"] = json!(token.as_str());
            v
        }
        "key.list" => {
            let a: AgentArg = args(req)?;
            let items: Vec<Value> = id
                .list_keys(actor, &a.agent)?
                .iter()
                .map(|k| k.to_json())
                .collect();
            json!({"items": items, "next_cursor": null})
        }
        "key.revoke" => {
            let a: KeyRevoke = args(req)?;
            id.revoke_key(actor, &a.agent, &a.key_id).await?.to_json()
        }
        "org.create" => {
            let a: NewOrg = args(req)?;
            id.create_org(actor, &a.name, &a.domain).await?.to_json()
        }
        "org.list" => {
            let items: Vec<Value> = id.list_orgs(actor)?.iter().map(|o| o.to_json()).collect();
            json!({"items": items, "next_cursor": null})
        }
        "audit.list" => {
            let p: AuditParams = args(req)?;
            id.audit_trail(actor, &p)?
        }
        "audit.verify" => {
            let a: VerifyArgs = args(req)?;
            verify_audit(s, a.head.as_deref())?
        }
        "queue.list" => {
            let q: QueueQuery = args(req)?;
            s.queue.list(actor, &q)?
        }
        "queue.get" => s.queue.get_queued(actor, &args::<IdArg>(req)?.id)?,
        "queue.retry" => s.queue.retry_now(actor, &args::<IdArg>(req)?.id).await?,
        "queue.cancel" => s.queue.cancel(actor, &args::<IdArg>(req)?.id).await?,
        "suppression.list" => {
            let a: SuppressionList = args(req)?;
            let (items, next) = s.policy.suppressions(
                actor,
                a.org.as_deref(),
                a.limit.unwrap_or(100),
                a.cursor.as_deref(),
            )?;
            let items: Vec<Value> = items.iter().map(|e| e.to_json()).collect();
            json!({"items": items, "next_cursor": next})
        }
        "suppression.add" => {
            let a: SuppressionAdd = args(req)?;
            s.policy
                .suppress(actor, a.org.as_deref(), &a.address, &a.reason)
                .await?
                .to_json()
        }
        "suppression.remove" => {
            let a: SuppressionRemove = args(req)?;
            s.policy
                .unsuppress(actor, a.org.as_deref(), &a.address)
                .await?;
            json!({"removed": a.address})
        }
        "approval.list" => {
            let q: crate::queue::ApprovalQuery = args(req)?;
            s.queue.approvals(actor, &q)?
        }
        "approval.approve" => {
            let a: ApprovalDecision = args(req)?;
            s.queue.approve(actor, &a.id, a.note.as_deref()).await?
        }
        "approval.reject" => {
            let a: ApprovalDecision = args(req)?;
            s.queue.reject(actor, &a.id, a.note.as_deref()).await?
        }
        "agent.resume" => {
            let a: AgentArg = args(req)?;
            s.policy.resume(actor, &a.agent).await?
        }
        "agent.reputation" => {
            let a: AgentArg = args(req)?;
            s.reputation.reputation(actor, &a.agent)?
        }
        "dns.plan" => {
            let plan = crate::dns::DnsWizard::new(&s.config, &s.vault, &s.audit).plan(actor)?;
            serde_json::to_value(plan).map_err(|e| AdminError::Internal(e.to_string()))?
        }
        "dns.check" => {
            let a: CheckArgs = args(req)?;
            let servers = a
                .nameservers
                .iter()
                .map(|n| {
                    n.parse().map_err(|_| {
                        AdminError::Invalid(format!("nameserver {n:?} is not ip:port"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let report = crate::dns::DnsWizard::new(&s.config, &s.vault, &s.audit)
                .check(actor, &servers)
                .await?;
            serde_json::to_value(report).map_err(|e| AdminError::Internal(e.to_string()))?
        }
        "admin_token.list" => json!({"items": id.list_admin_tokens(actor)?, "next_cursor": null}),
        "human.password" => {
            let a: PasswordArg = args(req)?;
            let h = id.set_password(actor, &a.email, &a.password)?;
            json!({"email": h.email, "password_set": true})
        }
        "admin_token.create" => {
            let a: NewAdminToken = args(req)?;
            let (k, token) = id.create_admin_token(actor, &a).await?;
            let mut v = id.admin_token_json(&k, true);
            v["key"] = json!(token.as_str());
            v
        }
        "admin_token.keep" => {
            let k = id.keep_admin_token(actor, &args::<IdArg>(req)?.id).await?;
            id.admin_token_json(&k, true)
        }
        "admin_token.revoke" => id
            .revoke_admin_token(actor, &args::<IdArg>(req)?.id)
            .await?
            .to_json(),
        "dkim.records" => dkim_json(s, s.vault.dkim_records(&s.config.server.domain)?),
        "dkim.rotate" => {
            actor.require_admin(&s.audit, "dkim.rotate", &s.config.server.domain)?;
            let domain = &s.config.server.domain;
            let r = s
                .vault
                .rotate_dkim(domain, &s.config.dkim.selector_prefix)?;
            dkim_changed(s, domain);
            audit_ok(s, actor, "dkim.rotate", domain)?;
            dkim_json(s, r)
        }
        "dkim.remove" => {
            let a: SelectorArg = args(req)?;
            actor.require_admin(&s.audit, "dkim.remove", &a.selector)?;
            let r = s.vault.remove_dkim(&s.config.server.domain, &a.selector)?;
            dkim_changed(s, &s.config.server.domain);
            audit_ok(s, actor, "dkim.remove", &a.selector)?;
            dkim_json(s, r)
        }
        "vault.rotate_master" => {
            let a: RotateMasterArgs = args(req)?;
            let path = std::path::PathBuf::from(&a.new_key_file);
            if !path.is_absolute() {
                return Err(AdminError::Invalid(
                    "vault.rotate_master: `new_key_file` must be an absolute path".into(),
                ));
            }
            actor.require_admin(&s.audit, "vault.rotate_master", "vault")?;
            let vault = s.vault.clone();
            let (n, created, warning) =
                tokio::task::spawn_blocking(move || vault.rotate_root(&path))
                    .await
                    .map_err(|e| {
                        AdminError::Internal(format!("the rotation task failed: {e}"))
                    })??;
            audit_ok(s, actor, "vault.rotate_master", "vault")?;
            serde_json::json!({
                "agent_keys": n,
                "created": created,
                "new_key_file": a.new_key_file,
                // Nothing persists the switch but the operator: a restart with the old
                // setting refuses to start.
                "next_step": format!(
                    "set vault.master_key_file = \"{}\" (or LEGATE_MASTER_KEY) before the next start: the old key no longer opens this vault",
                    a.new_key_file
                ),
                "warning": warning,
            })
        }
        "backup" => {
            let a: BackupArgs = args(req)?;
            let to = std::path::PathBuf::from(&a.to);
            if !to.is_absolute() {
                return Err(AdminError::Invalid(
                    "backup: `to` must be an absolute path".into(),
                ));
            }
            let (store, data) = (s.store.clone(), s.config.storage.path.clone());
            let m = tokio::task::spawn_blocking(move || crate::backup::create(&store, &data, &to))
                .await
                .map_err(|e| AdminError::Internal(format!("the backup task failed: {e}")))??;
            audit_ok(s, actor, "backup.create", &a.to)?;
            serde_json::to_value(m).map_err(|e| AdminError::Internal(e.to_string()))?
        }
        "reports.dmarc" | "reports.tls" => {
            let w: ReportWindow = args(req)?;
            let t = |s: &Option<String>| s.as_deref().map(crate::reports::parse_time).transpose();
            let (since, until) = (t(&w.since)?, t(&w.until)?);
            if req.op == "reports.dmarc" {
                s.reports.dmarc_summary(actor, since, until)?
            } else {
                s.reports.tls_summary(actor, since, until)?
            }
        }
        "reports.generate" => {
            let a: GenerateArgs = args(req)?;
            let kind = match a.kind.as_str() {
                "dmarc" => crate::reports::ReportKind::Dmarc,
                "tls" => crate::reports::ReportKind::Tls,
                k => {
                    return Err(AdminError::Invalid(format!(
                        "unknown report kind {k:?} (dmarc or tls)"
                    )))
                }
            };
            json!({"document": s.reports.generate(actor, kind, &a.domain, &a.day)?})
        }
        "reports.send" => {
            let a: SendArgs = args(req)?;
            let sum = s.reports.send_now(actor, a.day.as_deref()).await?;
            serde_json::to_value(sum).map_err(|e| AdminError::Internal(e.to_string()))?
        }
        other => return Err(AdminError::UnknownOp(other.to_string())),
    };
    Ok(v)
}

fn audit_ok(s: &Services, actor: &Actor, action: &str, target: &str) -> Result<(), AdminError> {
    actor.audit(
        &s.audit,
        action,
        target,
        crate::audit::Outcome::Ok,
        Value::Null,
    )?;
    Ok(())
}

/// The DKIM selectors as `legate dkim records --json` prints them.
/// The domain's DKIM keys changed: signers are read again here and on every other node
/// sharing the store (the queue caches them).
fn dkim_changed(s: &Services, domain: &str) {
    s.queue.reload_signers();
    s.store
        .signal(&crate::nodes::Signal::Dkim { domain }.to_string());
}

fn dkim_json(s: &Services, records: Vec<crate::vault::DkimKeyRecord>) -> Value {
    let domain = &s.config.server.domain;
    let items: Vec<Value> = records
        .iter()
        .map(|k| {
            json!({
                "selector": k.selector,
                "algorithm": k.algorithm,
                "name": format!("{}._domainkey.{domain}", k.selector),
                "txt": k.txt(),
                "active": k.retired_at.is_none(),
            })
        })
        .collect();
    json!({ "items": items })
}

/// `audit.verify`: the chain recomputed, as JSON the CLI prints either way.
pub fn verify_audit(s: &Services, head: Option<&str>) -> Result<Value, AdminError> {
    let external = match head {
        Some(h) => Some(
            crate::audit::parse_head(h)
                .ok_or_else(|| AdminError::Invalid("head wants SEQ:HASH (64 hex digits)".into()))?,
        ),
        None => None,
    };
    let r = s.audit.verify_with(external)?;
    Ok(json!({
        "ok": r.first_broken.is_none(),
        "entries": r.entries,
        "first_broken": r.first_broken,
        "reason": r.reason,
        "head": r.head,
        "checkpoint": r.checkpoint,
        "warnings": r.warnings,
    }))
}
