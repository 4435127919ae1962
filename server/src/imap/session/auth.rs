//! Not-authenticated state: CAPABILITY, LOGIN, AUTHENTICATE PLAIN (with SASL-IR), and the
//! any-state ID and ENABLE.
//!
//! The login is the agent's address, the password one of its API keys holding
//! `mail:read` (`IdentityService::login`, the door SMTP AUTH uses too). Failures are
//! limited per source IP (the shared limiter) and per address (`limits`), and audited by
//! `login`; a success is audited here with the key id. Credentials live zeroized in the
//! session, to be re-checked before every command.

use super::{Authed, Reply, Session, State};
use crate::audit::Outcome;
use crate::identity::Scope;
use imap_codec::fragmentizer::DecodeMessageError;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::core::{Atom, NString, Tag, Vec1};
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::response::{Capability, Code, Data};
use imap_codec::AuthenticateDataCodec;
use std::time::Duration;
use zeroize::Zeroizing;

/// A failed login waits this long before its answer: guessing costs time, not only tries.
const FAILURE_DELAY: Duration = Duration::from_millis(300);

fn cap(name: &str) -> Option<Capability<'static>> {
    Atom::try_from(name.to_string()).ok().map(Capability::from)
}

impl Session {
    pub(super) fn capabilities(&self) -> Vec1<Capability<'static>> {
        let mut names: Vec<String> = vec!["IMAP4rev1".into(), "IMAP4rev2".into()];
        if self.authed().is_none() {
            if self.tls.is_some() && !self.secure {
                names.push("STARTTLS".into());
            }
            if self.login_allowed() {
                names.push("AUTH=PLAIN".into());
                names.push("SASL-IR".into());
            } else {
                names.push("LOGINDISABLED".into());
            }
            names.extend(["LITERAL+", "ID", "ENABLE", "IDLE"].map(String::from));
        } else {
            names.extend(
                [
                    "LITERAL+",
                    "ID",
                    "ENABLE",
                    "IDLE",
                    "NAMESPACE",
                    "UIDPLUS",
                    "MOVE",
                    "UNSELECT",
                    "CHILDREN",
                    "SPECIAL-USE",
                    "LIST-EXTENDED",
                    "LIST-STATUS",
                    "ESEARCH",
                    "CONDSTORE",
                    "QRESYNC",
                    "QUOTA",
                    "QUOTA=RES-STORAGE",
                    "STATUS=SIZE",
                    "BINARY",
                    "WITHIN",
                ]
                .map(String::from),
            );
            names.push(format!("APPENDLIMIT={}", self.ctx.config.max_append_bytes));
        }
        let caps: Vec<Capability<'static>> = names.iter().filter_map(|n| cap(n)).collect();
        Vec1::try_from(caps).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
    }

    pub(super) async fn login(&mut self, user: String, pass: Zeroizing<String>) -> Reply {
        if !self.login_allowed() {
            return Reply::no("Log in only after STARTTLS")
                .code(super::other_code("PRIVACYREQUIRED"));
        }
        let ip = self.peer.ip();
        let r = if self.ctx.auth_limiter.is_blocked(ip) || self.ctx.limits.login_blocked(&user) {
            // Past a limit only guesses are stopped: valid credentials still get in, so
            // failing logins in an agent's name cannot lock the agent out.
            match self
                .ctx
                .identity
                .login_valid_only(&user, &pass, Scope::MailRead)
            {
                Some(actor) => Ok(actor),
                None => {
                    self.failed_logins += 1;
                    tokio::time::sleep(FAILURE_DELAY).await;
                    return Reply::no("Too many failed logins; try again later")
                        .code(super::other_code("UNAVAILABLE"));
                }
            }
        } else {
            self.ctx
                .identity
                .login(&user, &pass, Scope::MailRead, &ip.to_string())
        };
        let actor = match r {
            Ok(a) => a,
            Err(crate::identity::IdentityError::Store(_))
            | Err(crate::identity::IdentityError::Audit(_)) => {
                return Reply::no("Temporary failure; try again later")
                    .code(super::other_code("UNAVAILABLE"));
            }
            Err(_) => {
                self.failed_logins += 1;
                self.ctx.limits.login_failed(&user);
                tokio::time::sleep(FAILURE_DELAY).await;
                return Reply::no("Invalid credentials")
                    .code(super::other_code("AUTHENTICATIONFAILED"));
            }
        };
        let (Some(agent), crate::identity::Principal::Agent { address, .. }) =
            (actor.agent_id().map(str::to_string), &actor.principal)
        else {
            return Reply::no("Invalid credentials")
                .code(super::other_code("AUTHENTICATIONFAILED"));
        };
        let address = address.clone();
        let Some(slot) = self.ctx.limits.admit_agent(&agent) else {
            self.ctx
                .metrics
                .imap_refused
                .with_label_values(&["per_agent"])
                .inc();
            return Reply::no(format!(
                "This agent already has {} IMAP sessions open",
                self.ctx.config.max_connections_per_agent
            ))
            .code(super::other_code("LIMIT"));
        };
        self.ctx.limits.login_succeeded(&user);
        let detail =
            serde_json::json!({"peer": ip.to_string(), "session": self.id, "tls": self.secure});
        if let Err(e) = actor.audit(&self.ctx.audit, "imap.login", &agent, Outcome::Ok, detail) {
            tracing::error!(error = %e, "could not audit an IMAP login");
            return Reply::no("Temporary failure; try again later")
                .code(super::other_code("UNAVAILABLE"));
        }
        tracing::info!(agent = %agent, address = %address, "imap login");
        self.state = State::Authenticated(Box::new(Authed {
            actor,
            agent,
            login: user,
            key: pass,
            _slot: slot,
        }));
        let ceiling = u32::try_from(self.ctx.config.max_append_bytes).unwrap_or(u32::MAX);
        self.conn.set_max_literal(ceiling);
        Reply::ok("Logged in").code(Code::Capability(self.capabilities()))
    }

    pub(super) async fn authenticate(
        &mut self,
        tag: &Tag<'static>,
        mechanism: AuthMechanism<'static>,
        initial: Option<Zeroizing<Vec<u8>>>,
    ) -> Reply {
        let _ = tag;
        if !matches!(mechanism, AuthMechanism::Plain) {
            return Reply::no("Only AUTHENTICATE PLAIN is offered");
        }
        if !self.login_allowed() {
            return Reply::no("Log in only after STARTTLS")
                .code(super::other_code("PRIVACYREQUIRED"));
        }
        let response = match initial {
            Some(r) => r,
            None => {
                // An empty challenge: `+ ` and nothing else (RFC 4616 PLAIN has none).
                self.conn.send(
                    &imap_codec::imap_types::response::Response::CommandContinuationRequest(
                        imap_codec::imap_types::response::CommandContinuationRequest::base64(
                            b"".as_slice(),
                        ),
                    ),
                );
                // The time to log in runs from the connection, not from this command.
                let t = Duration::from_secs(self.ctx.config.pre_auth_timeout_secs)
                    .saturating_sub(self.started.elapsed());
                match self.conn.next_message(t).await {
                    Ok(super::Incoming::Message) => {}
                    _ => return Reply::bad("Authentication exchange failed"),
                }
                let data = self
                    .conn
                    .frag
                    .decode_message(&AuthenticateDataCodec::default());
                match data {
                    Ok(AuthenticateData::Continue(d)) => Zeroizing::new(d.declassify().to_vec()),
                    Ok(AuthenticateData::Cancel) => return Reply::bad("Authentication cancelled"),
                    Err(DecodeMessageError::DecodingFailure(_)) | Err(_) => {
                        return Reply::bad("Cannot decode the authentication response")
                    }
                }
            }
        };
        let Some((user, pass)) = crate::identity::sasl_plain(&response) else {
            return Reply::bad("Malformed PLAIN response");
        };
        self.login(user.to_string(), pass).await
    }

    pub(super) fn enable(&mut self, caps: Vec1<CapabilityEnable<'static>>) -> Reply {
        let mut on = Vec::new();
        for c in caps.into_inner() {
            let name = c.to_string().to_ascii_uppercase();
            match name.as_str() {
                "CONDSTORE" => {
                    self.enabled.condstore = true;
                    on.push(c);
                }
                "QRESYNC" => {
                    // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                    self.enabled.qresync = true;
                    self.enabled.condstore = true;
                    on.push(c);
                }
                "IMAP4REV2" => {
                    self.enabled.rev2 = true;
                    on.push(c);
                }
                _ => {}
            }
        }
        self.data(Data::Enabled { capabilities: on });
        Reply::ok("ENABLE completed")
    }

    pub(super) fn id_response(&mut self) {
        let pairs = [("name", "legate"), ("version", env!("CARGO_PKG_VERSION"))];
        let params: Vec<_> = pairs
            .iter()
            .filter_map(|(k, v)| {
                let k = imap_codec::imap_types::core::IString::try_from(k.to_string()).ok()?;
                let v = imap_codec::imap_types::core::IString::try_from(v.to_string()).ok()?;
                Some((k, NString(Some(v))))
            })
            .collect();
        self.data(Data::Id {
            parameters: Some(params),
        });
    }
}
