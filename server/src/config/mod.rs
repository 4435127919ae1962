//! `config.toml` -> a typed, validated [`Config`].
//!
//! Every section is a struct with `deny_unknown_fields` and defaults equal to the embedded dev
//! mode of DESIGN §11, so `legate serve` runs with no file at all. Loading reports *every*
//! problem at once, each with its key path, because an operator fixing a config one error per
//! restart is a miserable loop.

mod connections;
mod console;
mod events;
mod imap;
mod load;
mod ops;
mod outbound;
mod policy;
mod storage;
mod types;
mod validate;

pub use connections::{ConnectionsConfig, OwnersConfig};
pub use console::{public_origin, ConsoleConfig, OAuthConfig};
pub use events::{parse_duration, EventsConfig, WebhooksConfig};
pub use imap::ImapConfig;
pub use load::{load_file, parse_str, ConfigError, ConfigErrors};
pub use ops::{AdminConfig, DoctorConfig};
pub use outbound::*;
pub use policy::{BreakerConfig, FeedbackConfig};
pub use policy::{DmarcConfig, FirstContact, ReportsConfig, SendPolicyConfig, SendersConfig};
pub use storage::*;
pub use types::*;
