//! Registered MCP clients (RFC 7591): registration, expiry of those nobody consented to,
//! lookup.

use super::*;

impl IdentityService {
    /// RFC 7591 dynamic registration of a public client (no secret). Anyone may register;
    /// a client can do nothing until a signed-in human consents. Registrations nobody
    /// consented to within `unused_ttl` seconds (0: never) are deleted first, so anonymous
    /// registrations cannot keep `max_clients` full.
    pub fn register_oauth_client(
        &self,
        name: &str,
        redirect_uris: &[String],
        max_clients: usize,
        unused_ttl: u64,
        peer: &str,
    ) -> Result<OAuthClient, IdentityError> {
        if redirect_uris.is_empty() || redirect_uris.len() > MAX_REDIRECTS {
            return Err(IdentityError::Invalid(format!(
                "redirect_uris must list 1 to {MAX_REDIRECTS} URIs"
            )));
        }
        if let Some(bad) = redirect_uris.iter().find(|u| !valid_redirect(u)) {
            return Err(IdentityError::Invalid(format!(
                "redirect URI not allowed: {bad:.200} (https, http on loopback, or an app scheme)"
            )));
        }
        self.expire_unused_clients(unused_ttl)?;
        if self
            .store
            .scan_prefix(Tree::OAuthClients, &[])
            .take(max_clients)
            .count()
            >= max_clients
        {
            return Err(IdentityError::Conflict(
                "too many registered clients".into(),
            ));
        }
        let name: String = name
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        let client = OAuthClient {
            id: crate::util::new_id("oc"),
            name: if name.is_empty() {
                "MCP client".into()
            } else {
                name
            },
            redirect_uris: redirect_uris.to_vec(),
            created_at: now_unix(),
            last_used_at: None,
            consented_at: None,
        };
        self.store
            .put_record(Tree::OAuthClients, client.id.as_bytes(), &client)?;
        self.audit.append(NewEntry {
            actor: ActorRef::anonymous(peer),
            chain: vec![],
            action: "oauth.register".into(),
            target: client.id.clone(),
            outcome: Outcome::Ok,
            detail: serde_json::json!({"name": client.name, "redirect_uris": client.redirect_uris}),
        })?;
        Ok(client)
    }

    /// Deletes the clients registered more than `ttl` seconds ago that no human ever
    /// consented to (and that were never used). Returns how many.
    pub fn expire_unused_clients(&self, ttl: u64) -> Result<usize, IdentityError> {
        if ttl == 0 {
            return Ok(0);
        }
        let cutoff = now_unix().saturating_sub(i64::try_from(ttl).unwrap_or(i64::MAX));
        let mut doomed = Vec::new();
        for r in self.store.scan_prefix(Tree::OAuthClients, &[]) {
            let (k, v) = r?;
            let Ok(c) = crate::store::decode::<OAuthClient>(&v) else {
                continue;
            };
            if c.consented_at.is_none() && c.last_used_at.is_none() && c.created_at <= cutoff {
                doomed.push(k);
            }
        }
        for k in &doomed {
            self.store.remove(Tree::OAuthClients, k)?;
        }
        if !doomed.is_empty() {
            tracing::info!(
                clients = doomed.len(),
                "expired OAuth clients nobody consented to"
            );
        }
        Ok(doomed.len())
    }

    pub fn oauth_client(&self, id: &str) -> Result<Option<OAuthClient>, IdentityError> {
        if id.is_empty() || id.len() > 100 {
            return Ok(None);
        }
        Ok(self.store.get_record(Tree::OAuthClients, id.as_bytes())?)
    }
}
