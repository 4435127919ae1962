//! Webhook registrations: one door per action (DESIGN §1). An admin may register a webhook
//! for any agent or org; an agent only for itself, and for message events only while its key
//! holds `mail:read`. Every change is audited; the dispatcher is told at once.

use super::dispatch::Dispatcher;
use super::model::{
    delivery_key, is_message_event, progress_key, Delivery, Progress, Summary, Webhook, EVENT_TYPES,
};
use super::EventsError;
use crate::audit::{Audit, Outcome};
use crate::config::WebhooksConfig;
use crate::identity::{Actor, Denied, IdentityService, Scope};
use crate::store::{keys, Store, Tree, TxFail};
use crate::util::{new_id, now_millis};
use crate::vault::VaultService;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub summary: Summary,
    #[serde(default)]
    pub description: String,
}

/// `PATCH /v1/webhooks/{id}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub summary: Option<Summary>,
    pub description: Option<String>,
    /// `true`: a new secret (shown in the answer); the old one signs on for the overlap.
    #[serde(default)]
    pub rotate_secret: bool,
}

/// Longest endpoint URL accepted.
const MAX_URL: usize = 2048;

pub struct WebhookService {
    store: Store,
    audit: Arc<Audit>,
    vault: Arc<VaultService>,
    identity: Arc<IdentityService>,
    settings: WebhooksConfig,
    dispatcher: Arc<Dispatcher>,
}

impl WebhookService {
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        vault: Arc<VaultService>,
        identity: Arc<IdentityService>,
        settings: WebhooksConfig,
        dispatcher: Arc<Dispatcher>,
    ) -> WebhookService {
        WebhookService {
            store,
            audit,
            vault,
            identity,
            settings,
            dispatcher,
        }
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Creates a webhook; returns it and its secret (`whsec_...`), shown this once.
    pub async fn create(
        &self,
        actor: &Actor,
        input: NewWebhook,
    ) -> Result<(Webhook, Zeroizing<String>), EventsError> {
        const ACTION: &str = "webhook.create";
        self.check_url(&input.url)?;
        let types = check_types(&input.event_types)?;
        let (owner, agent, org) = match actor.agent_id() {
            Some(me) => {
                if input.agent.as_deref().is_some_and(|a| a != me) || input.org.is_some() {
                    return Err(actor
                        .refuse(
                            &self.audit,
                            ACTION,
                            input.agent.as_deref().unwrap_or(""),
                            Denied::Other("an agent may register webhooks for itself only".into()),
                        )
                        .into());
                }
                self.require_read_for(actor, ACTION, &types)?;
                (format!("agent:{me}"), Some(me.to_string()), None)
            }
            None => {
                actor.require_admin(&self.audit, ACTION, "")?;
                let agent = match &input.agent {
                    Some(a) => Some(
                        self.identity
                            .find_agent(a)?
                            .ok_or(EventsError::NotFound("agent"))?
                            .id,
                    ),
                    None => None,
                };
                let r = actor.actor_ref();
                (format!("{}:{}", r.kind, r.id), agent, input.org.clone())
            }
        };
        let mine = self.all()?.into_iter().filter(|w| w.owner == owner).count();
        if mine >= self.settings.max_per_owner {
            return Err(EventsError::Limit(format!(
                "at most {} webhooks per owner (webhooks.max_per_owner)",
                self.settings.max_per_owner
            )));
        }
        let w = Webhook {
            id: new_id("wh"),
            url: input.url,
            event_types: types,
            agent,
            org,
            owner,
            enabled: input.enabled.unwrap_or(true),
            summary: input.summary,
            description: input.description,
            created_at_ms: now_millis(),
            disabled_reason: None,
        };
        let secret = self.vault.new_webhook_secret(&w.id, 0)?;
        // Events from now on: a new webhook does not replay history (replay does).
        let progress = Progress {
            cursor: self.store.last_event_seq()?,
            consecutive_failures: 0,
            generation: 0,
        };
        self.store
            .transact::<_, EventsError>(&[Tree::Webhooks, Tree::Meta], |tx| {
                tx.put_record(Tree::Webhooks, w.id.as_bytes(), &w)?;
                tx.put_record(Tree::Meta, &progress_key(&w.id), &progress)?;
                Ok(())
            })?;
        self.audited(
            actor,
            ACTION,
            &w,
            json!({"url": w.url, "event_types": w.event_types}),
        )?;
        self.dispatcher.reload(&w.id);
        Ok((w, secret))
    }

    /// The webhooks the caller may see: an admin all, an agent its own.
    pub fn list(&self, actor: &Actor) -> Result<Vec<Webhook>, EventsError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|w| may_see(actor, w))
            .collect())
    }

    pub fn get(&self, actor: &Actor, id: &str) -> Result<Webhook, EventsError> {
        self.visible(actor, "webhook.get", id)
    }

    /// Applies `patch`; returns the webhook and, when rotated, the new secret.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        patch: WebhookPatch,
    ) -> Result<(Webhook, Option<Zeroizing<String>>), EventsError> {
        const ACTION: &str = "webhook.update";
        self.visible(actor, ACTION, id)?;
        if let Some(u) = &patch.url {
            self.check_url(u)?;
        }
        let types = patch.event_types.as_deref().map(check_types).transpose()?;
        if let Some(t) = &types {
            if actor.agent_id().is_some() {
                self.require_read_for(actor, ACTION, t)?;
            }
        }
        let w = self
            .store
            .transact::<_, EventsError>(&[Tree::Webhooks, Tree::Meta], |tx| {
                let mut w: Webhook = tx
                    .get_record(Tree::Webhooks, id.as_bytes())?
                    .ok_or(TxFail::Abort(EventsError::NotFound("webhook")))?;
                if let Some(u) = &patch.url {
                    w.url = u.clone();
                }
                if let Some(t) = &types {
                    w.event_types = t.clone();
                }
                if let Some(s) = patch.summary {
                    w.summary = s;
                }
                if let Some(d) = &patch.description {
                    w.description = d.clone();
                }
                if let Some(e) = patch.enabled {
                    if e && !w.enabled {
                        // Re-enabled: the failure count starts over.
                        let mut p: Progress = tx
                            .get_record(Tree::Meta, &progress_key(id))?
                            .unwrap_or_default();
                        p.consecutive_failures = 0;
                        p.generation += 1;
                        tx.put_record(Tree::Meta, &progress_key(id), &p)?;
                        w.disabled_reason = None;
                    }
                    w.enabled = e;
                }
                tx.put_record(Tree::Webhooks, id.as_bytes(), &w)?;
                Ok(w)
            })?;
        let secret = if patch.rotate_secret {
            Some(self.rotate_secret(&w)?)
        } else {
            None
        };
        self.audited(
            actor,
            ACTION,
            &w,
            json!({"enabled": w.enabled, "url": w.url, "rotated": secret.is_some()}),
        )?;
        self.dispatcher.reload(id);
        Ok((w, secret))
    }

    /// A new secret; the previous one keeps signing for `webhooks.rotation_overlap_secs`.
    pub async fn rotate(&self, actor: &Actor, id: &str) -> Result<Zeroizing<String>, EventsError> {
        let w = self.visible(actor, "webhook.rotate", id)?;
        let secret = self.rotate_secret(&w)?;
        self.audited(actor, "webhook.rotate", &w, json!({}))?;
        Ok(secret)
    }

    fn rotate_secret(&self, w: &Webhook) -> Result<Zeroizing<String>, EventsError> {
        let overlap = i64::try_from(self.settings.rotation_overlap_secs).unwrap_or(i64::MAX);
        Ok(self.vault.new_webhook_secret(&w.id, overlap)?)
    }

    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<(), EventsError> {
        let w = self.visible(actor, "webhook.delete", id)?;
        let deliveries: Vec<Vec<u8>> = self
            .store
            .scan_prefix(Tree::WebhookDeliveries, &keys::prefix(&[id]))
            .map(|r| r.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        self.store.transact::<_, EventsError>(
            &[Tree::Webhooks, Tree::Meta, Tree::WebhookDeliveries],
            |tx| {
                tx.remove(Tree::Webhooks, id.as_bytes())?;
                tx.remove(Tree::Meta, &progress_key(id))?;
                for k in &deliveries {
                    tx.remove(Tree::WebhookDeliveries, k)?;
                }
                Ok(())
            },
        )?;
        self.vault.remove_webhook_secrets(id)?;
        self.audited(actor, "webhook.delete", &w, json!({}))?;
        self.dispatcher.reload(id);
        Ok(())
    }

    /// Deliveries newest first, at most `limit`, before sequence `before` when given.
    pub fn deliveries(
        &self,
        actor: &Actor,
        id: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<Delivery>, EventsError> {
        self.visible(actor, "webhook.deliveries", id)?;
        let from = std::ops::Bound::Included(keys::prefix(&[id]));
        let to = match before {
            Some(b) => std::ops::Bound::Excluded(delivery_key(id, b)),
            None => std::ops::Bound::Excluded(keys::with_u64(&[id], u64::MAX)),
        };
        self.store
            .range(Tree::WebhookDeliveries, from, to, true)
            .take(limit)
            .map(|r| Ok(crate::store::decode(&r?.1)?))
            .collect()
    }

    /// Sends a `webhook.test` event now and reports what the endpoint answered.
    pub async fn test(&self, actor: &Actor, id: &str) -> Result<Value, EventsError> {
        let w = self.visible(actor, "webhook.test", id)?;
        let result = self.dispatcher.send_test(&w).await;
        self.audited(actor, "webhook.test", &w, json!({"result": result}))?;
        Ok(result)
    }

    /// Delivers again every retained event from `since` (unix ms) on, in order.
    pub async fn replay(&self, actor: &Actor, id: &str, since_ms: i64) -> Result<u64, EventsError> {
        let w = self.visible(actor, "webhook.replay", id)?;
        let cursor = self.dispatcher.cursor_before(since_ms)?;
        self.store.transact::<_, EventsError>(&[Tree::Meta], |tx| {
            let mut p: Progress = tx
                .get_record(Tree::Meta, &progress_key(id))?
                .unwrap_or_default();
            p.cursor = cursor;
            p.generation += 1;
            tx.put_record(Tree::Meta, &progress_key(id), &p)?;
            Ok(())
        })?;
        self.audited(
            actor,
            "webhook.replay",
            &w,
            json!({"since_ms": since_ms, "from_seq": cursor + 1}),
        )?;
        self.dispatcher.reload(id);
        Ok(cursor)
    }

    fn all(&self) -> Result<Vec<Webhook>, EventsError> {
        self.store
            .scan_prefix(Tree::Webhooks, &[])
            .map(|r| Ok(crate::store::decode(&r?.1)?))
            .collect()
    }

    /// The webhook if the caller may act on it. Another agent's webhook is "not found" (its
    /// existence is not the caller's business), and the attempt is audited as denied.
    fn visible(&self, actor: &Actor, action: &str, id: &str) -> Result<Webhook, EventsError> {
        let w: Option<Webhook> = self.store.get_record(Tree::Webhooks, id.as_bytes())?;
        match w {
            Some(w) if may_see(actor, &w) => Ok(w),
            Some(_) => {
                actor.refuse(
                    &self.audit,
                    action,
                    id,
                    Denied::Other("not this agent's webhook".into()),
                );
                Err(EventsError::NotFound("webhook"))
            }
            None => Err(EventsError::NotFound("webhook")),
        }
    }

    /// Message events need `mail:read` (an empty list means every type).
    fn require_read_for(
        &self,
        actor: &Actor,
        action: &str,
        types: &[String],
    ) -> Result<(), EventsError> {
        if types.is_empty() || types.iter().any(|t| is_message_event(t)) {
            actor.require(&self.audit, Scope::MailRead, action, "")?;
        }
        Ok(())
    }

    /// The scheme rule, checked when a URL is stored; the address rule is checked at every
    /// delivery, on the address connected to.
    fn check_url(&self, url: &str) -> Result<(), EventsError> {
        if url.len() > MAX_URL {
            return Err(EventsError::Invalid(format!(
                "url: longer than {MAX_URL} bytes"
            )));
        }
        let u = url::Url::parse(url).map_err(|e| EventsError::Invalid(format!("url: {e}")))?;
        match u.scheme() {
            "https" => {}
            "http" if self.settings.danger_allow_http => {}
            "http" => {
                return Err(EventsError::Invalid(
                    "url: must be https:// (webhooks.danger_allow_http is off)".into(),
                ))
            }
            s => {
                return Err(EventsError::Invalid(format!(
                    "url: the scheme {s} is not HTTP"
                )))
            }
        }
        if u.host_str().is_none_or(str::is_empty)
            || !u.username().is_empty()
            || u.password().is_some()
        {
            return Err(EventsError::Invalid(
                "url: needs a host and no user information".into(),
            ));
        }
        Ok(())
    }

    fn audited(
        &self,
        actor: &Actor,
        action: &str,
        w: &Webhook,
        detail: Value,
    ) -> Result<(), EventsError> {
        match &w.agent {
            Some(a) => actor.audit_on_agent(&self.audit, action, a, Outcome::Ok, detail)?,
            None => actor.audit(&self.audit, action, &w.id, Outcome::Ok, detail)?,
        };
        Ok(())
    }
}

fn may_see(actor: &Actor, w: &Webhook) -> bool {
    match actor.agent_id() {
        Some(me) => w.owner_agent() == Some(me),
        None => actor.is_admin(),
    }
}

fn check_types(types: &[String]) -> Result<Vec<String>, EventsError> {
    let mut out = Vec::new();
    for t in types {
        if !EVENT_TYPES.contains(&t.as_str()) {
            return Err(EventsError::Invalid(format!(
                "event_types: unknown type {t:?}; known: {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}
