//! IMAP4rev2 (RFC 9051, with IMAP4rev1 clients) over the agents' mailboxes (DESIGN §9).
//!
//! The wire format is imap-codec's; this module holds behaviour only. `render` turns stored
//! raw messages into what FETCH returns (ENVELOPE, BODYSTRUCTURE, sections).

pub mod render;
