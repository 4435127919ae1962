//! legate: a self-hosted mail and identity appliance for AI agents.
//!
//! The module map and the direction of dependencies are fixed by `DESIGN.md` §1:
//! front-ends (`smtp`, `imap`, `api`, `mcp`) call services (`identity`, `vault`, `mailbox`,
//! `queue`, `extract`, `mailauth`, `dns`), which write through `audit`, which stands on `store`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod backup;
pub mod config;
pub mod connections;
pub mod console;
pub mod dns;
pub mod doctor;
pub mod events;
pub mod extract;
pub mod identity;
pub mod imap;
pub mod init;
pub mod mailauth;
pub mod mailbox;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod nodes;
pub mod oauth;
pub mod policy;
pub mod queue;
pub mod reports;
pub mod reputation;
pub mod services;
pub mod smtp;
pub mod store;
pub mod tls;
pub mod util;
pub mod vault;
