//! Where an admin command runs: on the running server through its admin socket, or, when no
//! server runs, on the data directory opened here. Both paths call the same
//! [`legate::admin::dispatch::handle`], so a command prints the same thing either way.

use super::offline::open_offline;
use legate::admin::client::Client;
use legate::admin::{dispatch, AdminError, Request, SOCKET_FILE};
use legate::app::Services;
use legate::config::Config;
use legate::identity::Actor;
use serde_json::Value;

pub(super) enum Session {
    Server(Client),
    Offline(Box<(Services, Actor)>),
}

impl Session {
    /// The running server's socket if one answers, else the data directory.
    pub(super) async fn open(cfg: &Config) -> anyhow::Result<Session> {
        match Self::server(cfg).await? {
            Some(c) => Ok(Session::Server(c)),
            None => {
                let (s, actor) = open_offline(cfg.clone())?;
                Ok(Session::Offline(Box::new((s, actor))))
            }
        }
    }

    /// [`Session::open`] for reading what exists before the first start (DKIM records, the
    /// audit chain): offline it needs no admin yet.
    pub(super) async fn open_reader(cfg: &Config) -> anyhow::Result<Session> {
        match Self::server(cfg).await? {
            Some(c) => Ok(Session::Server(c)),
            None => {
                let (s, actor) = super::offline::open_offline_reader(cfg.clone())?;
                Ok(Session::Offline(Box::new((s, actor))))
            }
        }
    }

    /// A connection to the running server, if one listens.
    pub(super) async fn server(cfg: &Config) -> anyhow::Result<Option<Client>> {
        Ok(Client::connect(&cfg.storage.path.join(SOCKET_FILE)).await?)
    }

    pub(super) async fn call(&mut self, op: &str, args: Value) -> Result<Value, AdminError> {
        let req = Request::new(op, args);
        match self {
            Session::Server(c) => c.call(&req).await,
            Session::Offline(o) => {
                let (s, actor) = &**o;
                let r = dispatch::handle(s, actor, &req).await;
                // What the command did is on disk before it prints, as the server's
                // durable commit makes it there.
                s.audit.sync_blocking();
                s.store.flush_blocking()?;
                r
            }
        }
    }
}
